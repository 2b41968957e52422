//! One run per store at a time: a lock file beside the store holding the
//! owner's process id. A lock whose process is gone (a killed run) is taken
//! over.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::StateError;

/// Held for the length of a run; the lock file goes when it is dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Takes the lock of the store at `store`, or says who holds it.
    pub(crate) fn acquire(store: &Path) -> Result<Lock, StateError> {
        if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StateError::unusable(store, format!("cannot create its directory: {e}"))
            })?;
        }
        let mut os = store.as_os_str().to_owned();
        os.push(".lock");
        let path = PathBuf::from(os);
        for _ in 0..3 {
            match crate::private::options()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    let written = writeln!(file, "{}", std::process::id());
                    let lock = Lock { path };
                    written.map_err(|e| {
                        StateError::unusable(store, format!("cannot write its lock file: {e}"))
                    })?;
                    return Ok(lock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        Some(pid) if alive(pid) => {
                            return Err(StateError::Locked {
                                path: store.display().to_string(),
                                pid,
                                lock: path.display().to_string(),
                            });
                        }
                        _ => {
                            tracing::warn!(
                                "taking over the lock of {} left by a run that did not finish",
                                store.display()
                            );
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(StateError::unusable(
                        store,
                        format!("cannot create its lock file {}: {e}", path.display()),
                    ));
                }
            }
        }
        Err(StateError::unusable(
            store,
            format!("cannot take its lock file {}", path.display()),
        ))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` still runs (on systems without `/proc`, assume so:
/// refusing is the safe side).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
