//! A JSON file holding one object; every write rewrites the file (write + rename) under a
//! process-wide lock. No distributed locks.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::{DataStore, StoreError};

/// A file store.
pub struct FileStore {
    name: String,
    path: PathBuf,
    write_lock: Mutex<()>,
}

impl FileStore {
    /// Opens `path`; with `create`, a missing file is created empty.
    pub fn open(name: &str, path: &Path, create: bool) -> Result<Self, StoreError> {
        let store = Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            write_lock: Mutex::new(()),
        };
        if !path.exists() {
            if !create {
                return Err(store.error(format!(
                    "{} does not exist (set create = true)",
                    path.display()
                )));
            }
            store.save(&Map::new())?;
        }
        store.load()?;
        Ok(store)
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Backend {
            store: "file",
            name: self.name.clone(),
            message,
        }
    }

    fn load(&self) -> Result<Map<String, Value>, StoreError> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| self.error(format!("{}: {e}", self.path.display())))?;
        if text.trim().is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(self.error(format!("{}: not a JSON object", self.path.display()))),
            Err(e) => Err(self.error(format!("{}: {e}", self.path.display()))),
        }
    }

    fn save(&self, map: &Map<String, Value>) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("tmp");
        let text = serde_json::to_string_pretty(map).map_err(|e| self.error(e.to_string()))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| self.error(format!("{}: {e}", self.path.display())))
    }

    fn modify(&self, f: impl FnOnce(&mut Map<String, Value>)) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock();
        let mut map = self.load()?;
        f(&mut map);
        self.save(&map)
    }
}

impl DataStore for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let result = self.load().map(|map| {
            map.get(key).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
        Box::pin(async move { result })
    }

    fn write<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self.modify(|map| {
            map.insert(key.to_string(), Value::from(value));
        });
        Box::pin(async move { result })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self.modify(|map| {
            map.remove(key);
        });
        Box::pin(async move { result })
    }
}
