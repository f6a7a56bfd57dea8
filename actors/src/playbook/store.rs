//! Data stores behind one interface: read, write, delete, and (where the backend can) locks
//! with a timeout and a TTL that the holder renews.
//!
//! - [`memory`]: in-process (shared by every run in the process), in-process locks.
//! - [`nats_kv`]: JetStream KV: a data bucket and a separate lock bucket (`max_age` = ttl).
//! - [`etcd`]: etcd v3 through its JSON gateway: leases with keepalive and the Lock API.
//! - [`consul`]: Consul's HTTP API: sessions with a TTL (`Behavior: delete`) and
//!   `?acquire=`/`?release=` on the lock key.
//! - [`file`](mod@file): one JSON object in a file, replaced atomically under an OS file
//!   lock; no locks for playbooks.
//! - [`environment`]: read-only environment variables; no locks.

pub mod consul;
pub mod environment;
pub mod etcd;
pub mod file;
pub mod memory;
pub mod nats_kv;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

/// What a store operation failed with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store type has no locks.
    #[error("locks are not supported by the {0} store")]
    LockUnsupported(&'static str),
    /// Someone else held the lock for the whole timeout.
    #[error("timed out after {waited} waiting for lock {key:?} in store {store:?}{holder}")]
    LockTimeout {
        /// Store name.
        store: String,
        /// Lock key.
        key: String,
        /// How long we waited, humantime.
        waited: String,
        /// `; held by …` when known.
        holder: String,
    },
    /// A renewal failed: the lock may be held by someone else now.
    #[error("lock {key:?} in store {store:?} was lost: {reason}")]
    LockLost {
        /// Store name.
        store: String,
        /// Lock key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The store type cannot be written.
    #[error("the {0} store is read-only")]
    ReadOnly(&'static str),
    /// The backend failed.
    #[error("{store} store {name:?}: {message}")]
    Backend {
        /// Store type.
        store: &'static str,
        /// Store name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// A held lock: what renew and release need.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LockToken {
    /// Store name.
    pub store: String,
    /// Lock key.
    pub key: String,
    /// Fencing token, strictly increasing across successive holders of a key: the KV
    /// revision (nats_kv), the lock key's create revision (etcd), a counter (memory).
    pub fence: u64,
    /// Backend handle (etcd: the lock key it returned; nats_kv: the owner record; consul:
    /// the session id).
    #[serde(skip)]
    pub handle: String,
    /// The etcd lease that keeps the lock (0 elsewhere).
    #[serde(skip)]
    pub lease: u64,
    /// The TTL the lock was taken with.
    #[serde(skip)]
    pub ttl: Duration,
}

/// One data store.
pub trait DataStore: Send + Sync {
    /// The store type (`memory`, `nats_kv`, …).
    fn kind(&self) -> &'static str;

    /// The value at `key`, `None` when absent.
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// Sets `key` to `value`.
    fn write<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes `key` (absent is fine).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether [`DataStore::lock`] can work.
    fn can_lock(&self) -> bool {
        false
    }

    /// Takes the lock `key`, waiting up to `timeout`; a holder that stops renewing loses it
    /// after `ttl`.
    fn lock<'a>(
        &'a self,
        key: &'a str,
        timeout: Duration,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<LockToken, StoreError>> {
        let _ = (key, timeout, ttl);
        let kind = self.kind();
        Box::pin(async move { Err(StoreError::LockUnsupported(kind)) })
    }

    /// Extends a held lock by its TTL; returns the new token. Any error means the lock is
    /// lost.
    fn renew<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<LockToken, StoreError>> {
        let kind = self.kind();
        let _ = token;
        Box::pin(async move { Err(StoreError::LockUnsupported(kind)) })
    }

    /// Gives a held lock back; never removes someone else's lock.
    fn release<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<(), StoreError>> {
        let kind = self.kind();
        let _ = token;
        Box::pin(async move { Err(StoreError::LockUnsupported(kind)) })
    }
}

/// A shared store handle.
pub type SharedStore = Arc<dyn DataStore>;

/// A validated store definition.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The store's name in the playbook.
    pub name: String,
    /// How long to wait for a lock.
    pub timeout: Duration,
    /// How long a lock outlives a crashed holder.
    pub ttl: Duration,
    /// Type and backend options.
    pub kind: StoreKind,
}

/// A store type with its options.
#[derive(Clone, Debug)]
pub enum StoreKind {
    /// In-process.
    Memory,
    /// JetStream KV.
    NatsKv {
        /// Server URLs.
        servers: Vec<String>,
        /// Data bucket.
        bucket: String,
        /// Lock bucket.
        lock_bucket: String,
        /// Replicas for both buckets.
        replicas: usize,
    },
    /// etcd v3.
    Etcd {
        /// Client URL.
        url: String,
    },
    /// Consul's HTTP API.
    Consul {
        /// Agent URL.
        url: String,
        /// ACL token (`X-Consul-Token`).
        token: Option<consul::AclToken>,
    },
    /// A JSON file.
    File {
        /// Its path.
        path: std::path::PathBuf,
        /// Create it when missing.
        create: bool,
    },
    /// Environment variables.
    Environment {
        /// Variable prefix.
        prefix: String,
    },
}

/// Default lock wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default lock TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(20);
/// How often a waiting lock is retried.
pub const LOCK_POLL: Duration = Duration::from_millis(250);

/// Opens (connects) a store.
pub async fn open(config: &StoreConfig) -> Result<SharedStore, StoreError> {
    Ok(match &config.kind {
        StoreKind::Memory => Arc::new(memory::MemoryStore::named(&config.name)),
        StoreKind::NatsKv { .. } => Arc::new(nats_kv::NatsKvStore::open(config).await?),
        StoreKind::Etcd { url } => Arc::new(etcd::EtcdStore::new(&config.name, url)),
        StoreKind::Consul { url, token } => {
            Arc::new(consul::ConsulStore::new(&config.name, url, token.clone()))
        }
        StoreKind::File { path, create } => {
            Arc::new(file::FileStore::open(&config.name, path, *create)?)
        }
        StoreKind::Environment { prefix } => Arc::new(environment::EnvironmentStore::new(prefix)),
    })
}

/// Who holds a lock, as stored in its value.
pub fn owner_record(run_id: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    serde_json::json!({
        "run_id": run_id,
        "pid": std::process::id(),
        "host": host,
        "acquired_at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    })
    .to_string()
}
