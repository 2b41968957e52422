//! Files that hold personal data (report, rejects, summary, deletion backup,
//! state store and its lock) are created readable and writable by their
//! owner only: mode 0600 on unix, whatever the umask. Elsewhere the
//! platform's defaults apply.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The mode of every file this tool creates.
#[cfg(unix)]
pub(crate) const MODE: u32 = 0o600;

/// Options that create a new file owner-only.
pub(crate) fn options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, MODE);
    opts
}

/// Creates or truncates `path` for writing, owner-only. A file that existed
/// keeps its inode but loses any other reader: its mode is narrowed too.
pub(crate) fn create(path: &Path) -> io::Result<File> {
    let file = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    restrict(&file)?;
    Ok(file)
}

/// Narrows an open regular file to owner-only (unix); other systems: nothing.
pub(crate) fn restrict(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = file.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o777 != MODE {
            file.set_permissions(std::fs::Permissions::from_mode(MODE))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Makes sure `path` exists as an owner-only file before another library
/// (SQLite) opens it; an existing file is left as it is.
pub(crate) fn precreate(path: &Path) -> io::Result<()> {
    match options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_files_are_owner_only_and_existing_ones_are_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        create(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        let old = dir.path().join("old");
        std::fs::write(&old, "x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        create(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        let pre = dir.path().join("pre");
        precreate(&pre).unwrap();
        precreate(&pre).unwrap();
        assert_eq!(mode(&pre), 0o600);
    }
}
