//! etcd v3 through its JSON gateway (`/v3/...`, keys and values base64): leases with
//! keepalive and the Lock API.
//!
//! A lock is a lease of `ttl` plus `Lock(name, lease)`, which blocks until the lock is ours;
//! renewal is a lease keepalive every 0.75 × ttl (a TTL of 0 back means the lease is gone:
//! the lock is lost); release is `Unlock` and a lease revoke. The fencing token is the lock
//! key's create revision. A crashed holder's lease
//! expires after the TTL and etcd deletes its lock key. Talking HTTP/JSON keeps the build free
//! of tonic/prost and protoc.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::{DataStore, LockToken, StoreError};

/// An etcd v3 store.
pub struct EtcdStore {
    name: String,
    url: String,
    agent: ureq::Agent,
}

enum CallError {
    Timeout,
    Other(String),
}

impl EtcdStore {
    /// A store talking to `url` (e.g. `http://127.0.0.1:2379`).
    pub fn new(name: &str, url: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        Self {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Backend {
            store: "etcd",
            name: self.name.clone(),
            message,
        }
    }

    async fn call(&self, path: &str, body: Value, timeout: Duration) -> Result<Value, CallError> {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.url);
        let joined = tokio::task::spawn_blocking(move || {
            let mut response = agent
                .post(&url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .header("Content-Type", "application/json")
                .send(body.to_string())
                .map_err(|e| match e {
                    ureq::Error::Timeout(_) => CallError::Timeout,
                    other => CallError::Other(format!("{url}: {other}")),
                })?;
            let status = response.status().as_u16();
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| CallError::Other(format!("{url}: {e}")))?;
            if status != 200 {
                return Err(CallError::Other(format!(
                    "{url}: HTTP {status}: {}",
                    text.trim()
                )));
            }
            serde_json::from_str::<Value>(&text)
                .map_err(|e| CallError::Other(format!("{url}: {e}")))
        })
        .await;
        joined.unwrap_or_else(|e| Err(CallError::Other(e.to_string())))
    }

    async fn request(&self, path: &str, body: Value) -> Result<Value, StoreError> {
        self.call(path, body, Duration::from_secs(10))
            .await
            .map_err(|e| match e {
                CallError::Timeout => self.error(format!("{path}: timed out")),
                CallError::Other(m) => self.error(m),
            })
    }

    /// The create revision of `key` (base64, as the Lock API returns it).
    async fn create_revision(&self, key: &str) -> Result<u64, StoreError> {
        let reply = self.request("/v3/kv/range", json!({ "key": key })).await?;
        reply
            .pointer("/kvs/0/create_revision")
            .and_then(int)
            .ok_or_else(|| self.error(format!("lock key {key}: no create_revision in {reply}")))
    }

    async fn revoke(&self, lease: u64) {
        let _ = self
            .request("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await;
    }
}

/// An int64 the gateway renders as a string (or a number).
fn int(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.parse().ok(),
        other => other.as_u64(),
    }
}

impl DataStore for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let reply = self
                .request("/v3/kv/range", json!({ "key": B64.encode(key) }))
                .await?;
            let Some(value) = reply.pointer("/kvs/0/value") else {
                return Ok(None);
            };
            let bytes = B64
                .decode(value.as_str().unwrap_or_default())
                .map_err(|e| self.error(format!("read {key}: {e}")))?;
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        })
    }

    fn write<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let body = json!({ "key": B64.encode(key), "value": B64.encode(value) });
            self.request("/v3/kv/put", body).await.map(|_| ())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.request("/v3/kv/deleterange", json!({ "key": B64.encode(key) }))
                .await
                .map(|_| ())
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
            let ttl_secs = ttl.as_secs_f64().ceil().max(1.0) as u64;
            let grant = self
                .request("/v3/lease/grant", json!({ "TTL": ttl_secs.to_string() }))
                .await?;
            let lease = grant
                .get("ID")
                .and_then(int)
                .ok_or_else(|| self.error(format!("lease grant: no ID in {grant}")))?;
            // The lease must outlive the wait: keep it alive while Lock blocks.
            let keepalive = async {
                loop {
                    tokio::time::sleep(ttl.mul_f64(0.5)).await;
                    let _ = self
                        .request("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
                        .await;
                }
            };
            let body = json!({ "name": B64.encode(key), "lease": lease.to_string() });
            let locked = tokio::select! {
                locked = self.call("/v3/lock/lock", body, timeout) => locked,
                () = keepalive => Err(CallError::Other("lease keepalive ended".into())),
            };
            match locked {
                Ok(reply) => {
                    let handle = reply
                        .get("key")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    // The fence is the lock key's create revision: etcd's revision counter is
                    // one for the whole cluster, and a waiter only gets the lock after every
                    // key created before its own is gone, so successive holders' fences
                    // strictly increase (lease ids do not: each member makes its own).
                    match self.create_revision(&handle).await {
                        Ok(fence) => Ok(LockToken {
                            store: self.name.clone(),
                            key: key.to_string(),
                            fence,
                            handle,
                            lease,
                            ttl,
                        }),
                        Err(error) => {
                            let token = LockToken {
                                store: self.name.clone(),
                                key: key.to_string(),
                                fence: 0,
                                handle,
                                lease,
                                ttl,
                            };
                            self.release(&token).await.ok();
                            Err(error)
                        }
                    }
                }
                Err(error) => {
                    self.revoke(lease).await;
                    Err(match error {
                        CallError::Timeout => StoreError::LockTimeout {
                            store: self.name.clone(),
                            key: key.to_string(),
                            waited: humantime::format_duration(timeout).to_string(),
                            holder: String::new(),
                        },
                        CallError::Other(m) => self.error(format!("lock {key}: {m}")),
                    })
                }
            }
        })
    }

    fn renew<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<LockToken, StoreError>> {
        Box::pin(async move {
            let lost = |reason: String| StoreError::LockLost {
                store: self.name.clone(),
                key: token.key.clone(),
                reason,
            };
            let reply = self
                .request(
                    "/v3/lease/keepalive",
                    json!({ "ID": token.lease.to_string() }),
                )
                .await
                .map_err(|e| lost(e.to_string()))?;
            match reply.pointer("/result/TTL").and_then(int) {
                Some(ttl) if ttl > 0 => Ok(token.clone()),
                _ => Err(lost(format!("lease {} expired", token.lease))),
            }
        })
    }

    fn release<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if !token.handle.is_empty() {
                let _ = self
                    .request("/v3/lock/unlock", json!({ "key": token.handle }))
                    .await;
            }
            self.revoke(token.lease).await;
            Ok(())
        })
    }
}
