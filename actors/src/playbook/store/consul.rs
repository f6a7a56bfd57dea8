//! Consul through its HTTP API: KV reads and writes (`/v1/kv/<key>`, values base64 in
//! reads), and locks on sessions.
//!
//! A lock is a session (`PUT /v1/session/create` with `TTL` = ttl, `Behavior: delete`,
//! `LockDelay: 0s`) and `PUT /v1/kv/<key>?acquire=<session>`, retried every
//! [`LOCK_POLL`] until it answers `true` or the timeout passes; the session is renewed
//! (`PUT /v1/session/renew/<id>`) while the run waits and every 0.75 × ttl while it holds the
//! lock (a 404 back means the session is gone: the lock is lost). Release is
//! `?release=<session>` and `PUT /v1/session/destroy/<id>`. The fencing token is the lock
//! key's `ModifyIndex` after the acquire (Consul's Raft index, one counter for the cluster). A
//! crashed holder's session expires after the TTL and Consul deletes its lock key. An ACL token
//! goes in the `X-Consul-Token` header.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::{owner_record, DataStore, LockToken, StoreError, LOCK_POLL};

/// An ACL token: its Debug form hides it (`choir playbook check` prints the store config).
#[derive(Clone)]
pub struct AclToken(pub String);

impl std::fmt::Debug for AclToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A Consul store.
pub struct ConsulStore {
    name: String,
    url: String,
    token: Option<AclToken>,
    agent: ureq::Agent,
}

/// The default agent address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8500";

/// `key` with every byte outside `A-Z a-z 0-9 - . _ ~ /` percent-encoded.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.trim_start_matches('/').bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl ConsulStore {
    /// A store talking to the agent at `url`, with an optional ACL token.
    pub fn new(name: &str, url: &str, token: Option<AclToken>) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        Self {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            token,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Backend {
            store: "consul",
            name: self.name.clone(),
            message,
        }
    }

    /// `method path` with `body`: `(status, body text)`.
    async fn call(
        &self,
        method: &'static str,
        path: String,
        body: Option<String>,
    ) -> Result<(u16, String), StoreError> {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.url);
        let token = self.token.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut request = ureq::http::Request::builder().method(method).uri(&url);
            if let Some(AclToken(token)) = &token {
                request = request.header("X-Consul-Token", token);
            }
            let request = request
                .body(body.unwrap_or_default())
                .map_err(|e| format!("{url}: {e}"))?;
            let mut response = agent.run(request).map_err(|e| format!("{url}: {e}"))?;
            let status = response.status().as_u16();
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("{url}: {e}"))?;
            Ok::<_, String>((status, text))
        })
        .await;
        match joined {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(message)) => Err(self.error(message)),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// `call` that wants a 200 and JSON back.
    async fn json(
        &self,
        method: &'static str,
        path: String,
        body: Option<String>,
    ) -> Result<Value, StoreError> {
        let (status, text) = self.call(method, path.clone(), body).await?;
        if status != 200 {
            return Err(self.error(format!("{method} {path}: HTTP {status}: {}", text.trim())));
        }
        serde_json::from_str(&text).map_err(|e| self.error(format!("{method} {path}: {e}")))
    }

    /// The first entry of `GET /v1/kv/<key>`, `None` on 404.
    async fn entry(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let path = format!("/v1/kv/{}", encode_key(key));
        let (status, text) = self.call("GET", path.clone(), None).await?;
        match status {
            404 => Ok(None),
            200 => {
                let entries: Value = serde_json::from_str(&text)
                    .map_err(|e| self.error(format!("GET {path}: {e}")))?;
                Ok(entries.get(0).cloned())
            }
            other => Err(self.error(format!("GET {path}: HTTP {other}: {}", text.trim()))),
        }
    }

    async fn destroy(&self, session: &str) {
        let _ = self
            .call("PUT", format!("/v1/session/destroy/{session}"), None)
            .await;
    }

    async fn renew_session(&self, session: &str) -> Result<(), String> {
        match self
            .call("PUT", format!("/v1/session/renew/{session}"), None)
            .await
        {
            Ok((200, _)) => Ok(()),
            Ok((404, _)) => Err(format!("session {session} expired")),
            Ok((status, text)) => Err(format!("session renew: HTTP {status}: {}", text.trim())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `; held by …` from the lock key's value.
    async fn holder(&self, key: &str) -> String {
        let value = self.read(key).await.ok().flatten();
        value.map(|v| format!("; held by {v}")).unwrap_or_default()
    }
}

impl DataStore for ConsulStore {
    fn kind(&self) -> &'static str {
        "consul"
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let Some(entry) = self.entry(key).await? else {
                return Ok(None);
            };
            let Some(value) = entry.get("Value").and_then(Value::as_str) else {
                // A key with a null value reads as empty.
                return Ok(Some(String::new()));
            };
            let bytes = B64
                .decode(value)
                .map_err(|e| self.error(format!("read {key}: {e}")))?;
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        })
    }

    fn write<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let path = format!("/v1/kv/{}", encode_key(key));
            match self.json("PUT", path, Some(value.to_string())).await? {
                Value::Bool(true) => Ok(()),
                other => Err(self.error(format!("write {key}: consul answered {other}"))),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let path = format!("/v1/kv/{}", encode_key(key));
            self.json("DELETE", path, None).await.map(|_| ())
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
            let body = json!({
                "Name": format!("choir playbook lock {key}"),
                "TTL": format!("{ttl_secs}s"),
                "Behavior": "delete",
                "LockDelay": "0s",
            });
            let created = self
                .json("PUT", "/v1/session/create".into(), Some(body.to_string()))
                .await?;
            let session = created
                .get("ID")
                .and_then(Value::as_str)
                .ok_or_else(|| self.error(format!("session create: no ID in {created}")))?
                .to_string();
            let path = format!("/v1/kv/{}?acquire={session}", encode_key(key));
            let owner = owner_record(&session);
            let started = Instant::now();
            let mut renewed = Instant::now();
            loop {
                let acquired = match self.json("PUT", path.clone(), Some(owner.clone())).await {
                    Ok(reply) => reply == Value::Bool(true),
                    Err(error) => {
                        self.destroy(&session).await;
                        return Err(error);
                    }
                };
                if acquired {
                    break;
                }
                if started.elapsed() >= timeout {
                    let holder = self.holder(key).await;
                    self.destroy(&session).await;
                    return Err(StoreError::LockTimeout {
                        store: self.name.clone(),
                        key: key.to_string(),
                        waited: humantime::format_duration(timeout).to_string(),
                        holder,
                    });
                }
                // The session must outlive the wait.
                if renewed.elapsed() >= ttl.mul_f64(0.5) {
                    if let Err(reason) = self.renew_session(&session).await {
                        return Err(self.error(format!("lock {key}: {reason}")));
                    }
                    renewed = Instant::now();
                }
                tokio::time::sleep(LOCK_POLL.min(timeout.saturating_sub(started.elapsed()))).await;
            }
            let fence = match self.entry(key).await {
                Ok(Some(entry))
                    if entry.get("Session").and_then(Value::as_str) == Some(&session) =>
                {
                    entry.get("ModifyIndex").and_then(Value::as_u64)
                }
                _ => None,
            };
            let token = LockToken {
                store: self.name.clone(),
                key: key.to_string(),
                fence: fence.unwrap_or(0),
                handle: session,
                lease: 0,
                ttl,
            };
            if fence.is_none() {
                self.release(&token).await.ok();
                return Err(self.error(format!("lock {key}: no ModifyIndex for our session")));
            }
            Ok(token)
        })
    }

    fn renew<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<LockToken, StoreError>> {
        Box::pin(async move {
            self.renew_session(&token.handle)
                .await
                .map(|()| token.clone())
                .map_err(|reason| StoreError::LockLost {
                    store: self.name.clone(),
                    key: token.key.clone(),
                    reason,
                })
        })
    }

    fn release<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let path = format!("/v1/kv/{}?release={}", encode_key(&token.key), token.handle);
            let released = self.json("PUT", path, None).await;
            // Behavior delete: destroying the session also deletes a key it still holds.
            self.destroy(&token.handle).await;
            match released? {
                Value::Bool(true) => Ok(()),
                other => Err(self.error(format!("release {}: consul answered {other}", token.key))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::encode_key;

    #[test]
    fn keys_keep_slashes_and_encode_the_rest() {
        assert_eq!(encode_key("choria/kv/a b?&"), "choria/kv/a%20b%3F%26");
        assert_eq!(encode_key("/x"), "x");
    }
}
