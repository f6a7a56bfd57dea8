//! `LockKeeper`: takes locks, renews each every 0.75 × its TTL in the background, reports the
//! first lost lock, and releases everything it took. It records when each lock was asked for,
//! taken and given back (for the report).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::report::precise_timestamp;
use super::store::{LockToken, SharedStore, StoreError};

/// Renewal interval as a fraction of the TTL.
pub const RENEW_FRACTION: f64 = 0.75;

struct Held {
    store: SharedStore,
    token: Arc<Mutex<LockToken>>,
    renewer: JoinHandle<()>,
    /// Index into `records`.
    record: usize,
}

/// One lock of a run, for the report: its latest token and when it was asked for, taken and
/// given back (RFC 3339 UTC, microseconds).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LockRecord {
    /// Store, key and the fencing token.
    #[serde(flatten)]
    pub token: LockToken,
    /// When the run started waiting for it.
    pub requested_at: String,
    /// When it was taken.
    pub acquired_at: String,
    /// When it was given back (`None` while held).
    pub released_at: Option<String>,
}

/// The locks one run holds.
pub struct LockKeeper {
    held: Vec<Held>,
    records: Vec<LockRecord>,
    lost_tx: Arc<watch::Sender<Option<String>>>,
    lost_rx: watch::Receiver<Option<String>>,
}

impl Default for LockKeeper {
    fn default() -> Self {
        Self::new()
    }
}

impl LockKeeper {
    /// Holds nothing yet.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(None);
        Self {
            held: Vec::new(),
            records: Vec::new(),
            lost_tx: Arc::new(tx),
            lost_rx: rx,
        }
    }

    /// Takes `key` in `store` and starts renewing it.
    pub async fn acquire(
        &mut self,
        store: SharedStore,
        key: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<LockToken, StoreError> {
        if !store.can_lock() {
            return Err(StoreError::LockUnsupported(store.kind()));
        }
        let requested_at = precise_timestamp(SystemTime::now());
        // Logged after `requested_at` is taken: whoever sees this line knows the request time
        // is earlier.
        tracing::info!(store_type = store.kind(), %key, timeout = %humantime::format_duration(timeout), "Waiting for lock.");
        let token = store.lock(key, timeout, ttl).await?;
        self.records.push(LockRecord {
            token: token.clone(),
            requested_at,
            acquired_at: precise_timestamp(SystemTime::now()),
            released_at: None,
        });
        tracing::info!(store = %token.store, key = %token.key, fence = token.fence, "Lock acquired.");
        let shared = Arc::new(Mutex::new(token.clone()));
        let renewer = tokio::spawn(renew_loop(
            store.clone(),
            shared.clone(),
            self.lost_tx.clone(),
        ));
        self.held.push(Held {
            store,
            token: shared,
            renewer,
            record: self.records.len() - 1,
        });
        Ok(token)
    }

    /// Receives the first lost-lock message (`Some(reason)`).
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        self.lost_rx.clone()
    }

    /// The current tokens.
    pub fn tokens(&self) -> Vec<LockToken> {
        self.held.iter().map(|h| h.token.lock().clone()).collect()
    }

    /// Every lock taken, in order, with its latest token and times.
    pub fn records(&self) -> Vec<LockRecord> {
        let mut records = self.records.clone();
        for held in &self.held {
            if let Some(record) = records.get_mut(held.record) {
                record.token = held.token.lock().clone();
            }
        }
        records
    }

    /// Stops renewing and releases every lock, newest first; errors are logged.
    pub async fn release_all(&mut self) {
        while let Some(held) = self.held.pop() {
            held.renewer.abort();
            let _ = held.renewer.await;
            let token = held.token.lock().clone();
            // Stamped before the release: the lock is still ours until the store answers, so
            // the record never claims a release later than the next holder's acquisition.
            let released_at = precise_timestamp(SystemTime::now());
            let released = held.store.release(&token).await;
            if let Some(record) = self.records.get_mut(held.record) {
                record.token = token.clone();
                record.released_at = Some(released_at);
            }
            match released {
                Ok(()) => tracing::info!(store = %token.store, key = %token.key, "Lock released."),
                Err(error) => {
                    tracing::warn!(store = %token.store, key = %token.key, %error, "Lock release failed; it expires after its ttl.")
                }
            }
        }
    }
}

impl Drop for LockKeeper {
    fn drop(&mut self) {
        for held in &self.held {
            held.renewer.abort();
        }
    }
}

async fn renew_loop(
    store: SharedStore,
    token: Arc<Mutex<LockToken>>,
    lost: Arc<watch::Sender<Option<String>>>,
) {
    let ttl = token.lock().ttl;
    let every = ttl.mul_f64(RENEW_FRACTION);
    loop {
        tokio::time::sleep(every).await;
        let current = token.lock().clone();
        match store.renew(&current).await {
            Ok(next) => *token.lock() = next,
            Err(error) => {
                tracing::error!(store = %current.store, key = %current.key, %error, "Lock lost; failing the run.");
                lost.send_if_modified(|slot| {
                    if slot.is_none() {
                        *slot = Some(error.to_string());
                        true
                    } else {
                        false
                    }
                });
                return;
            }
        }
    }
}
