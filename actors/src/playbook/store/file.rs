//! A JSON file holding one object. Every write or delete is a read-modify-write under an OS
//! file lock (an exclusive `flock` on `<file>.lock`, which is never renamed), so several
//! processes (or store instances) writing the same file never lose each other's updates; the
//! new content replaces the file atomically ([`crate::atomic_file`]: temporary file, fsync,
//! rename, directory fsync), so a reader never needs the lock. No playbook locks.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::{DataStore, StoreError};
use crate::atomic_file;
use crate::error_chain::Chain;

/// A file store.
pub struct FileStore {
    name: String,
    path: PathBuf,
}

impl FileStore {
    /// Opens `path`; with `create`, a missing file is created empty.
    pub fn open(name: &str, path: &Path, create: bool) -> Result<Self, StoreError> {
        let store = Self {
            name: name.to_string(),
            path: path.to_path_buf(),
        };
        if !path.exists() {
            if !create {
                return Err(store.error(format!(
                    "{} does not exist (set create = true)",
                    path.display()
                )));
            }
            modify(path, |_| {}).map_err(|m| store.error(m))?;
        }
        load(path).map_err(|m| store.error(m))?;
        Ok(store)
    }

    /// The lock file next to `path`: `<path>.lock`.
    pub fn lock_path(path: &Path) -> PathBuf {
        let mut lock = path.as_os_str().to_owned();
        lock.push(".lock");
        PathBuf::from(lock)
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Backend {
            store: "file",
            name: self.name.clone(),
            message,
        }
    }

    /// Runs `change` on the file's object under the file lock, on a blocking thread.
    fn change<'a>(
        &'a self,
        change: impl FnOnce(&mut Map<String, Value>) + Send + 'static,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || modify(&path, change))
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
                .map_err(|m| self.error(m))
        })
    }
}

/// The object in `path` (a missing or blank file is empty).
fn load(path: &Path) -> Result<Map<String, Value>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("{}: not a JSON object", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Read-modify-write of `path` under an exclusive lock on `<path>.lock`. Blocking.
fn modify(path: &Path, change: impl FnOnce(&mut Map<String, Value>)) -> Result<(), String> {
    let lock_path = FileStore::lock_path(path);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("{}: cannot lock: {e}", lock_path.display()))?;
    let mut map = load(path)?;
    change(&mut map);
    let text = serde_json::to_string_pretty(&map).map_err(|e| e.to_string())?;
    atomic_file::write(path, text.as_bytes()).map_err(|e| Chain(&e).to_string())
    // `lock` is closed here, which releases the lock.
}

impl DataStore for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let result = load(&self.path)
            .map(|map| {
                map.get(key).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            })
            .map_err(|m| self.error(m));
        Box::pin(async move { result })
    }

    fn write<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let (key, value) = (key.to_string(), value.to_string());
        self.change(move |map| {
            map.insert(key, Value::from(value));
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = key.to_string();
        self.change(move |map| {
            map.remove(&key);
        })
    }
}
