//! Read-only environment variables: key `k` is the variable `<prefix>k`.

use futures::future::BoxFuture;

use super::{DataStore, StoreError};

/// Environment variables with a prefix (default `PB_`).
pub struct EnvironmentStore {
    prefix: String,
}

impl EnvironmentStore {
    /// A store reading `<prefix><key>`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }
}

impl DataStore for EnvironmentStore {
    fn kind(&self) -> &'static str {
        "environment"
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let value = std::env::var(format!("{}{key}", self.prefix)).ok();
        Box::pin(async move { Ok(value) })
    }

    fn write<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::ReadOnly("environment")) })
    }

    fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::ReadOnly("environment")) })
    }
}
