//! JetStream KV: values in a data bucket, locks in a separate lock bucket whose `max_age` is
//! the lock TTL (history 1, file storage).
//!
//! Acquire is `create` (fails with "already exists" while someone holds the key: polled until
//! the timeout; any other error fails at once with the server's error); renew
//! is `update` with the held revision (each write resets the age); release is a
//! revision-checked purge, which can never remove a lock someone else took after ours
//! expired. A crashed holder's key simply ages out after the TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::{owner_record, DataStore, LockToken, StoreConfig, StoreError, StoreKind, LOCK_POLL};
use crate::playbook::template::uuid_v4;

/// A JetStream KV store.
pub struct NatsKvStore {
    name: String,
    data: kv::Store,
    locks: kv::Store,
    /// The last `-ERR` the server sent on this connection (a permissions violation is only
    /// reported that way; the request itself just goes unanswered).
    server_error: Arc<Mutex<Option<String>>>,
}

impl NatsKvStore {
    /// Connects to the servers and opens (creating when missing) both buckets.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let StoreKind::NatsKv {
            servers,
            bucket,
            lock_bucket,
            replicas,
        } = &config.kind
        else {
            return Err(backend(&config.name, "not a nats_kv store config".into()));
        };
        let err = |m: String| backend(&config.name, m);
        let addrs = servers
            .iter()
            .map(|s| s.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("invalid server url: {e}")))?;
        let server_error = Arc::new(Mutex::new(None));
        let last_error = server_error.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("choir playbook store {}", config.name))
            .event_callback(move |event| {
                if let async_nats::Event::ServerError(error) = event {
                    *last_error.lock() = Some(error.to_string());
                }
                async {}
            })
            .connection_timeout(Duration::from_secs(5))
            .connect(addrs)
            .await
            .map_err(|e| err(format!("cannot connect to {}: {e}", servers.join(","))))?;
        let js = jetstream::new(client);
        let data = bucket_open(
            &js,
            kv::Config {
                bucket: bucket.clone(),
                history: 5,
                num_replicas: *replicas,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| err(format!("data bucket {bucket}: {e}")))?;
        let locks = bucket_open(
            &js,
            kv::Config {
                bucket: lock_bucket.clone(),
                history: 1,
                max_age: config.ttl,
                max_value_size: 1024,
                num_replicas: *replicas,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| err(format!("lock bucket {lock_bucket}: {e}")))?;
        let status = locks
            .status()
            .await
            .map_err(|e| err(format!("lock bucket {lock_bucket}: {e}")))?;
        if status.max_age() != config.ttl {
            return Err(err(format!(
                "lock bucket {lock_bucket} has max_age {} but the store's ttl is {}: use the same ttl \
                 everywhere or another lock_bucket",
                humantime::format_duration(status.max_age()),
                humantime::format_duration(config.ttl)
            )));
        }
        Ok(Self {
            name: config.name.clone(),
            data,
            locks,
            server_error,
        })
    }

    fn error(&self, message: impl std::fmt::Display) -> StoreError {
        backend(&self.name, message.to_string())
    }
}

fn backend(name: &str, message: String) -> StoreError {
    StoreError::Backend {
        store: "nats_kv",
        name: name.to_string(),
        message,
    }
}

/// Opens a bucket, creating its stream when missing. The stream is created directly (the same
/// config `create_key_value` builds) because `create_key_value` first queries the account
/// info, whose reply older servers (2.9) shape differently.
async fn bucket_open(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, String> {
    if let Ok(store) = js.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    let stream = jetstream::stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history.max(1),
        max_bytes: -1,
        max_age: config.max_age,
        max_message_size: if config.max_value_size > 0 {
            config.max_value_size
        } else {
            -1
        },
        storage: config.storage,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        num_replicas: config.num_replicas.max(1),
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    // Another run may create the same bucket at the same moment: its create wins and ours
    // fails (name in use, or subjects overlap), and the bucket is then simply there.
    let created = js
        .get_or_create_stream(stream)
        .await
        .map_err(|e| e.to_string());
    match js.get_key_value(&config.bucket).await {
        Ok(store) => Ok(store),
        Err(e) => Err(created.err().unwrap_or_else(|| e.to_string())),
    }
}

impl DataStore for NatsKvStore {
    fn kind(&self) -> &'static str {
        "nats_kv"
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let value = self
                .data
                .get(key)
                .await
                .map_err(|e| self.error(format!("read {key}: {e}")))?;
            Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
        })
    }

    fn write<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.data
                .put(key, Bytes::copy_from_slice(value.as_bytes()))
                .await
                .map(|_| ())
                .map_err(|e| self.error(format!("write {key}: {e}")))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.data
                .delete(key)
                .await
                .map_err(|e| self.error(format!("delete {key}: {e}")))
        })
    }

    fn can_lock(&self) -> bool {
        true
    }

    fn lock<'a>(
        &'a self,
        key: &'a str,
        timeout: Duration,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<LockToken, StoreError>> {
        Box::pin(async move {
            let owner = Bytes::from(owner_record(&uuid_v4()));
            let deadline = Instant::now() + timeout;
            loop {
                // Only "the key exists" means someone holds it: wait and try again. Anything
                // else (permissions, a bucket that refuses the value, no JetStream) will not
                // get better by waiting: fail now with the server's error.
                *self.server_error.lock() = None;
                match self.locks.create(key, owner.clone()).await {
                    Ok(revision) => {
                        return Ok(LockToken {
                            store: self.name.clone(),
                            key: key.to_string(),
                            fence: revision,
                            handle: String::from_utf8_lossy(&owner).into_owned(),
                            lease: 0,
                            ttl,
                        })
                    }
                    Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {}
                    Err(error) => {
                        let said = self
                            .server_error
                            .lock()
                            .take()
                            .map(|e| format!(" (the server said: {e})"))
                            .unwrap_or_default();
                        return Err(self.error(format!("lock {key}: {error}{said}")));
                    }
                }
                if Instant::now() >= deadline {
                    let holder = match self.locks.get(key).await {
                        Ok(Some(value)) => format!("; held by {}", String::from_utf8_lossy(&value)),
                        _ => String::new(),
                    };
                    return Err(StoreError::LockTimeout {
                        store: self.name.clone(),
                        key: key.to_string(),
                        waited: humantime::format_duration(timeout).to_string(),
                        holder,
                    });
                }
                tokio::time::sleep(
                    LOCK_POLL.min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        })
    }

    fn renew<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<LockToken, StoreError>> {
        Box::pin(async move {
            let owner = Bytes::from(token.handle.clone());
            match self.locks.update(&token.key, owner, token.fence).await {
                Ok(revision) => Ok(LockToken {
                    fence: revision,
                    ..token.clone()
                }),
                Err(e) => Err(StoreError::LockLost {
                    store: self.name.clone(),
                    key: token.key.clone(),
                    reason: format!("renewal at revision {} failed: {e}", token.fence),
                }),
            }
        })
    }

    fn release<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // A wrong-revision error means it already expired (and maybe someone else holds
            // it now): nothing of ours to release.
            let _ = self
                .locks
                .purge_expect_revision(&token.key, Some(token.fence))
                .await;
            Ok(())
        })
    }
}
