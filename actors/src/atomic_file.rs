//! Files replaced atomically: the new content goes to `<path>.tmp` in the same directory, is
//! fsynced, renamed over `path`, and the directory is fsynced (on Unix) so the rename
//! survives a power loss. A reader sees the old file or the new one, never a mix. Writers of
//! the same path must take turns (one process, or an OS file lock): they share the
//! temporary name.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// A file could not be written, synced or renamed into place.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct WriteError {
    /// The file (or its temporary sibling, or its directory) that failed.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

/// `<path>.tmp`: the file's own extension is kept (`state.json` → `state.json.tmp`).
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Replaces `path` with `bytes` atomically, creating its directory when missing. Blocking.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let tmp = temporary_path(path);
    let error = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError { path, source }
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(error(dir))?;
    }
    let written = File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(error(&tmp));
    if let Err(err) = written {
        // Best effort: a stale temporary file is overwritten by the next write anyway.
        fs::remove_file(&tmp).ok();
        return Err(err);
    }
    fs::rename(&tmp, path).map_err(error(path))?;
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(error(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_file_keeps_the_files_own_extension() {
        assert_eq!(
            temporary_path(Path::new("/d/data.json")),
            Path::new("/d/data.json.tmp")
        );
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("data.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!temporary_path(&path).exists());
        assert!(!dir.path().join("sub").join("data.tmp").exists());
    }
}
