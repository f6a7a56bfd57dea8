//! [`DaemonStats`]: what one emulated daemon saw, for `rpcutil#daemon_stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{DropReason, Handled};
use crate::protocol::unix_now;

/// One daemon's message counters (as a Choria server keeps them) and its start time.
#[derive(Debug)]
pub struct DaemonStats {
    start_time: i64,
    total: AtomicU64,
    validated: AtomicU64,
    unvalidated: AtomicU64,
    passed: AtomicU64,
    filtered: AtomicU64,
    replies: AtomicU64,
    ttl_expired: AtomicU64,
}

impl Default for DaemonStats {
    fn default() -> Self {
        Self {
            start_time: unix_now(),
            total: AtomicU64::new(0),
            validated: AtomicU64::new(0),
            unvalidated: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            replies: AtomicU64::new(0),
            ttl_expired: AtomicU64::new(0),
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// When the daemon started, Unix seconds.
    pub start_time: i64,
    /// Messages received.
    pub total: u64,
    /// Messages that decoded and validated.
    pub validated: u64,
    /// Messages that did not decode or validate.
    pub unvalidated: u64,
    /// Messages the filter selected this daemon for.
    pub passed: u64,
    /// Messages the filter did not select this daemon for.
    pub filtered: u64,
    /// Replies sent.
    pub replies: u64,
    /// Messages outside their TTL window.
    pub ttl_expired: u64,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl DaemonStats {
    /// Counts one message and what became of it. A directed request for another identity
    /// (shared connections) was not this daemon's and is not counted.
    pub fn record(&self, handled: &Handled) {
        let reason = match handled {
            Ok(_) => None,
            Err(DropReason::UnknownIdentity) => return,
            Err(reason) => Some(*reason),
        };
        add(&self.total);
        match reason {
            Some(DropReason::Json | DropReason::Base64 | DropReason::Invalid) => {
                add(&self.unvalidated);
                return;
            }
            _ => add(&self.validated),
        }
        match reason {
            None => {
                add(&self.passed);
                add(&self.replies);
            }
            Some(DropReason::Expired) => add(&self.ttl_expired),
            Some(DropReason::Filtered | DropReason::UnsupportedFilter | DropReason::DataPlugin) => {
                add(&self.filtered)
            }
            Some(DropReason::UnknownAgent | DropReason::BadPayload | DropReason::Encode) => {
                add(&self.passed)
            }
            Some(_) => {}
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            start_time: self.start_time,
            total: get(&self.total),
            validated: get(&self.validated),
            unvalidated: get(&self.unvalidated),
            passed: get(&self.passed),
            filtered: get(&self.filtered),
            replies: get(&self.replies),
            ttl_expired: get(&self.ttl_expired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::Outgoing;

    #[test]
    fn counts_by_outcome() {
        let stats = DaemonStats::default();
        let ok: Handled = Ok(Outgoing {
            subject: "r".into(),
            payload: Vec::new(),
            audit: None,
        });
        stats.record(&ok);
        for reason in [
            DropReason::Json,
            DropReason::Expired,
            DropReason::Filtered,
            DropReason::DataPlugin,
            DropReason::UnknownAgent,
            DropReason::UnknownIdentity,
            DropReason::NoReplyTo,
        ] {
            stats.record(&Err(reason));
        }
        let s = stats.snapshot();
        assert_eq!(s.total, 7);
        assert_eq!(s.unvalidated, 1);
        assert_eq!(s.validated, 6);
        assert_eq!(s.ttl_expired, 1);
        assert_eq!(s.filtered, 2);
        assert_eq!(s.passed, 2);
        assert_eq!(s.replies, 1);
        assert!(s.start_time > 1_600_000_000);
    }
}
