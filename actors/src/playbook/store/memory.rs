//! The in-process store: shared by every run in this process under the same store name, with
//! in-process locks that also honour their TTL.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::{DataStore, LockToken, StoreError, LOCK_POLL};

#[derive(Default)]
struct State {
    values: HashMap<String, String>,
    locks: HashMap<String, (u64, Instant)>,
    next_fence: u64,
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Mutex<State>>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Mutex<State>>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// An in-process store.
pub struct MemoryStore {
    name: String,
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// The process-wide store called `name` (created empty on first use).
    pub fn named(name: &str) -> Self {
        let state = registry()
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone();
        Self {
            name: name.to_string(),
            state,
        }
    }

    fn try_lock(&self, key: &str, ttl: Duration) -> Option<u64> {
        let mut state = self.state.lock();
        let now = Instant::now();
        if matches!(state.locks.get(key), Some((_, expires)) if *expires > now) {
            return None;
        }
        state.next_fence += 1;
        let fence = state.next_fence;
        state.locks.insert(key.to_string(), (fence, now + ttl));
        Some(fence)
    }
}

impl DataStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let value = self.state.lock().values.get(key).cloned();
        Box::pin(async move { Ok(value) })
    }

    fn write<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.state
            .lock()
            .values
            .insert(key.to_string(), value.to_string());
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.state.lock().values.remove(key);
        Box::pin(async { Ok(()) })
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
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(fence) = self.try_lock(key, ttl) {
                    return Ok(LockToken {
                        store: self.name.clone(),
                        key: key.to_string(),
                        fence,
                        handle: String::new(),
                        lease: 0,
                        ttl,
                    });
                }
                if Instant::now() >= deadline {
                    return Err(StoreError::LockTimeout {
                        store: self.name.clone(),
                        key: key.to_string(),
                        waited: humantime::format_duration(timeout).to_string(),
                        holder: String::new(),
                    });
                }
                tokio::time::sleep(LOCK_POLL.min(timeout)).await;
            }
        })
    }

    fn renew<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<LockToken, StoreError>> {
        let result = {
            let mut state = self.state.lock();
            match state.locks.get_mut(&token.key) {
                Some((fence, expires)) if *fence == token.fence && *expires > Instant::now() => {
                    *expires = Instant::now() + token.ttl;
                    Ok(token.clone())
                }
                _ => Err(StoreError::LockLost {
                    store: self.name.clone(),
                    key: token.key.clone(),
                    reason: "expired or taken over".into(),
                }),
            }
        };
        Box::pin(async move { result })
    }

    fn release<'a>(&'a self, token: &'a LockToken) -> BoxFuture<'a, Result<(), StoreError>> {
        {
            let mut state = self.state.lock();
            if matches!(state.locks.get(&token.key), Some((fence, _)) if *fence == token.fence) {
                state.locks.remove(&token.key);
            }
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_exclude_and_expire() {
        let store = MemoryStore::named("memory-test-locks");
        let a = store
            .lock("k", Duration::from_millis(10), Duration::from_millis(200))
            .await
            .unwrap();
        let err = store
            .lock("k", Duration::from_millis(10), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("timed out after 10ms waiting for lock \"k\""),
            "{err}"
        );
        store.renew(&a).await.unwrap();
        let b = store
            .lock("k", Duration::from_secs(5), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(store.renew(&a).await.is_err(), "a expired and b holds it");
        store.release(&a).await.unwrap();
        assert!(store
            .lock("k", Duration::from_millis(10), Duration::from_secs(1))
            .await
            .is_err());
        store.release(&b).await.unwrap();
        store
            .lock("k", Duration::from_millis(10), Duration::from_secs(1))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn stores_with_the_same_name_share_data() {
        MemoryStore::named("memory-test-share")
            .write("a", "1")
            .await
            .unwrap();
        assert_eq!(
            MemoryStore::named("memory-test-share")
                .read("a")
                .await
                .unwrap()
                .as_deref(),
            Some("1")
        );
    }
}
