//! The input's bytes, readable more than once: a regular file is opened once
//! and every pass reads that open file; anything else (standard input, a FIFO,
//! `<(…)`) is first copied to a private temporary file that no exit path
//! leaves behind.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The longest first line a spooled stream may have before it is judged not
/// to be a CSV file (the reader's own limit on one record).
const MAX_FIRST_LINE: u64 = crate::reader::MAX_RECORD_BYTES as u64;

/// How often (in bytes copied) the spool checks the free space left.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

/// Why the input bytes are not available.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file or stream cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The input's name.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The stream needs more room than the temporary directory has left.
    #[error(
        "{path} is larger than the free space in the temporary directory ({free_mib} MiB left after {copied_mib} MiB copied): save it to a file and pass that path instead"
    )]
    NoSpace {
        /// The input's name.
        path: String,
        /// MiB copied before stopping.
        copied_mib: u64,
        /// MiB still free.
        free_mib: u64,
    },
    /// The stream's first line never ends: not a CSV file (e.g. `/dev/zero`).
    #[error("{path}: the first line is longer than 1 MiB: this is not a CSV file")]
    NotCsv {
        /// The input's name.
        path: String,
    },
}

/// An input that every pass can read from the start, each with its own position.
#[derive(Debug, Clone)]
pub(crate) struct InputBytes {
    file: Arc<File>,
    len: u64,
}

/// How a spool ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpoolEnd {
    /// The whole stream was copied.
    Complete,
    /// The caller stopped it: the spool holds what came until then.
    Stopped,
}

/// Where an input path leads.
#[derive(Debug)]
pub(crate) enum Opened {
    /// A regular file, readable in place.
    File(InputBytes),
    /// Anything else (a FIFO, a character device, `/dev/stdin`): spool it.
    Stream(File),
}

impl InputBytes {
    /// Opens `path` once: a regular file is used in place; anything else is
    /// handed back to be spooled.
    pub(crate) fn open(path: &Path) -> Result<Opened, InputError> {
        let io_err = |source| InputError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(io::Error::other("it is a directory")));
        }
        Ok(match InputBytes::regular(file) {
            Ok(bytes) => Opened::File(bytes),
            Err(file) => Opened::Stream(file),
        })
    }

    /// An open regular file, read up to the length it has now: bytes another
    /// program appends later are not read. Anything else is handed back.
    pub(crate) fn regular(file: File) -> Result<InputBytes, File> {
        match file.metadata() {
            Ok(meta) if meta.is_file() => Ok(InputBytes {
                file: Arc::new(file),
                len: meta.len(),
            }),
            _ => Err(file),
        }
    }

    /// A reader from the first byte, independent of every other reader.
    pub(crate) fn reader(&self) -> FileReader {
        FileReader {
            file: Arc::clone(&self.file),
            pos: 0,
            end: self.len,
        }
    }

    /// When the file's size is no longer the size it had when opened (a
    /// file still being written, or replaced in place): `(opened, now)`.
    /// Every pass reads the opened length only, so they agree row for row.
    pub(crate) fn size_change(&self) -> Option<(u64, u64)> {
        let now = self.file.metadata().ok()?.len();
        (now != self.len).then_some((self.len, now))
    }

    /// A warning for [`InputBytes::size_change`], if the size changed.
    pub(crate) fn size_warning(&self) -> Option<String> {
        let (opened, now) = self.size_change()?;
        Some(if now > opened {
            format!(
                "the input grew by {} bytes while it was read (another program is still writing it?): only the {opened} bytes it had when the run started were read; run again once it is complete",
                now - opened
            )
        } else {
            format!(
                "the input shrank from {opened} to {now} bytes while it was read (replaced in place?): rows past byte {now} may be missing from this run; run again"
            )
        })
    }
}

/// What the copying thread and its caller share.
struct SpoolShared {
    file: File,
    /// Bytes copied; held while a chunk is written, so a stop sees whole chunks only.
    gate: Mutex<u64>,
    stop: AtomicBool,
}

/// A stream being copied to an unnamed temporary file (mode 0600, gone when
/// the process ends however it ends) by a thread of its own: a stream may
/// block forever (a FIFO whose writer hangs), and a signal must still end
/// the run with what was copied.
pub(crate) struct Spooling {
    shared: Arc<SpoolShared>,
    done: tokio::sync::oneshot::Receiver<Result<(), InputError>>,
}

impl Spooling {
    /// Starts copying `stream` (named `name` in messages). The copy fails when
    /// the disk is nearly full or the first line never ends.
    pub(crate) fn start(
        stream: impl Read + Send + 'static,
        name: &str,
    ) -> Result<Spooling, InputError> {
        // Unlinked at once (or never named: O_TMPFILE), and owner-only
        // besides: it holds the whole input.
        let file = tempfile::tempfile()
            .and_then(|f| crate::private::restrict(&f).map(|()| f))
            .map_err(|source| InputError::Io {
                path: "a temporary file for the input".into(),
                source,
            })?;
        let shared = Arc::new(SpoolShared {
            file,
            gate: Mutex::new(0),
            stop: AtomicBool::new(false),
        });
        let (tx, done) = tokio::sync::oneshot::channel();
        let copier = Arc::clone(&shared);
        let name = name.to_string();
        std::thread::Builder::new()
            .name("spool".into())
            .spawn(move || {
                let _ = tx.send(copy(stream, &name, &copier));
            })
            .map_err(|source| InputError::Io {
                path: "a thread to read the input".into(),
                source,
            })?;
        Ok(Spooling { shared, done })
    }

    /// Waits for the copy to end, or for `stop` to resolve, whichever comes
    /// first; either way the spool then holds whole chunks only.
    pub(crate) async fn finish(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(InputBytes, SpoolEnd), InputError> {
        let end = tokio::select! {
            biased;
            done = self.done => {
                match done {
                    Ok(result) => result?,
                    Err(_) => return Err(InputError::Io {
                        path: "the input".into(),
                        source: io::Error::other("the thread reading it stopped"),
                    }),
                }
                SpoolEnd::Complete
            }
            () = stop => SpoolEnd::Stopped,
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        let len = *self
            .shared
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let file = self
            .shared
            .file
            .try_clone()
            .map_err(|source| InputError::Io {
                path: "the input's temporary copy".into(),
                source,
            })?;
        let input = InputBytes {
            file: Arc::new(file),
            len,
        };
        Ok((input, end))
    }
}

/// The copying thread's loop.
fn copy(mut stream: impl Read, name: &str, shared: &SpoolShared) -> Result<(), InputError> {
    let io_err = |source| InputError::Io {
        path: name.to_string(),
        source,
    };
    let no_space = |copied: u64, free: u64| InputError::NoSpace {
        path: name.to_string(),
        copied_mib: copied >> 20,
        free_mib: free >> 20,
    };
    let mut buf = vec![0u8; 64 << 10];
    let mut line_ended = false;
    let mut next_space_check = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        let mut copied = shared.gate.lock().unwrap_or_else(PoisonError::into_inner);
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !line_ended {
            line_ended = buf[..n].iter().any(|&b| b == b'\n' || b == b'\r');
            if !line_ended && *copied + n as u64 > MAX_FIRST_LINE {
                return Err(InputError::NotCsv {
                    path: name.to_string(),
                });
            }
        }
        if *copied >= next_space_check {
            if let Some(free) = free_space(&shared.file)
                && free < reserve(&shared.file)
            {
                return Err(no_space(*copied, free));
            }
            next_space_check = *copied + SPACE_CHECK_EVERY;
        }
        (&shared.file).write_all(&buf[..n]).map_err(|e| {
            if e.kind() == io::ErrorKind::StorageFull {
                no_space(*copied, 0)
            } else {
                io_err(e)
            }
        })?;
        if *copied == 0 {
            tracing::debug!("spooled the first {n} bytes of {name}");
        }
        *copied += n as u64;
    }
}

/// Reads an [`InputBytes`] with its own position (positioned reads, so
/// readers never disturb each other); it ends at the length seen when the
/// input was opened, even if the file grows meanwhile.
#[derive(Debug)]
pub(crate) struct FileReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = read_at(&self.file, &mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

/// Bytes still free for unprivileged users on the file system of `file`.
#[cfg(unix)]
fn free_space(file: &File) -> Option<u64> {
    let st = rustix::fs::fstatvfs(file).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
fn free_space(_file: &File) -> Option<u64> {
    None
}

/// Room the spool leaves free: a tenth of the file system, at most 512 MiB.
#[cfg(unix)]
fn reserve(file: &File) -> u64 {
    rustix::fs::fstatvfs(file)
        .map(|st| (st.f_blocks.saturating_mul(st.f_frsize) / 10).min(512 << 20))
        .unwrap_or(0)
}

#[cfg(not(unix))]
fn reserve(_file: &File) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn spool(
        stream: impl Read + Send + 'static,
    ) -> Result<(InputBytes, SpoolEnd), InputError> {
        Spooling::start(stream, "test")?
            .finish(std::future::pending())
            .await
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_spool_is_owner_only_and_has_no_name_on_disk() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (bytes, _) = spool(&b"phone\n0612345678\n"[..]).await.unwrap();
        let meta = bytes.file.metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            meta.nlink(),
            0,
            "unlinked: nothing left behind, nothing to open"
        );
    }

    #[tokio::test]
    async fn readers_are_independent_and_stop_at_the_opened_length() {
        let (input, end) = spool(&b"a,b\n1,2\n"[..]).await.unwrap();
        assert_eq!(end, SpoolEnd::Complete);
        let mut one = input.reader();
        let mut two = input.reader();
        let mut first = [0u8; 4];
        one.read_exact(&mut first).unwrap();
        let mut all = String::new();
        two.read_to_string(&mut all).unwrap();
        assert_eq!(all, "a,b\n1,2\n");
        let mut rest = String::new();
        one.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "1,2\n");
    }

    #[tokio::test]
    async fn a_first_line_that_never_ends_is_not_csv() {
        let zeros = io::repeat(0).take(4 * MAX_FIRST_LINE);
        assert!(matches!(spool(zeros).await, Err(InputError::NotCsv { .. })));
    }

    /// A stream that gives one line, then blocks forever.
    struct Hangs(bool);
    impl Read for Hangs {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                loop {
                    std::thread::park();
                }
            }
            buf[..4].copy_from_slice(b"a,b\n");
            Ok(4)
        }
    }

    #[tokio::test]
    async fn a_stop_ends_a_blocked_spool_with_what_came() {
        let spooling = Spooling::start(Hangs(false), "fifo").unwrap();
        // Stop once the first chunk is in (watching the copy's progress, no sleep).
        let shared = Arc::clone(&spooling.shared);
        let stop = async move {
            while *shared.gate.lock().unwrap() < 4 {
                tokio::task::yield_now().await;
            }
        };
        let (input, end) = spooling.finish(stop).await.unwrap();
        assert_eq!(end, SpoolEnd::Stopped);
        let mut s = String::new();
        input.reader().read_to_string(&mut s).unwrap();
        assert_eq!(s, "a,b\n");
    }
}
