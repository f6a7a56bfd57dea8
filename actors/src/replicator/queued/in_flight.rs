//! The copies of one queued worker in flight, without any I/O: keyed by the token of their
//! current attempt, bounded by count and payload bytes, and due again after a backoff or an
//! unanswered publish.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What [`InFlight`] needs to know about one attempt.
pub(super) trait Attempt {
    /// Its payload size.
    fn bytes(&self) -> usize;
    /// When it was sent, or is due to be sent when `waiting`.
    fn sent(&self) -> Instant;
    /// Waiting for its backoff to pass before it is sent again.
    fn waiting(&self) -> bool;
}

/// The copies of one worker in flight, keyed by the token of their current attempt.
pub(super) struct InFlight<E> {
    entries: HashMap<u64, E>,
    next_token: u64,
    /// Payload bytes of the entries (bounded by `max_bytes`).
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl<E: Attempt> InFlight<E> {
    /// Empty, for at most `max_count` copies and `max_bytes` payload bytes.
    pub(super) fn new(max_count: usize, max_bytes: usize) -> Self {
        Self {
            entries: HashMap::with_capacity(max_count),
            next_token: 0,
            bytes: 0,
            max_count,
            max_bytes,
        }
    }

    /// How many copies are in flight.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Room for one more copy: fewer than `max_count` entries and fewer than `max_bytes`
    /// payload bytes (so one message larger than `max_bytes` still goes, alone).
    pub(super) fn has_room(&self) -> bool {
        self.len() < self.max_count && self.bytes < self.max_bytes
    }

    /// Keeps `entry` under `token`.
    pub(super) fn insert(&mut self, token: u64, entry: E) {
        self.bytes = self.bytes.saturating_add(entry.bytes());
        if let Some(old) = self.entries.insert(token, entry) {
            self.bytes = self.bytes.saturating_sub(old.bytes());
        }
    }

    /// Takes the entry of `token` out.
    pub(super) fn remove(&mut self, token: u64) -> Option<E> {
        let entry = self.entries.remove(&token)?;
        self.bytes = self.bytes.saturating_sub(entry.bytes());
        Some(entry)
    }

    /// Whether an ack for `token` settles something: an attempt sent and not yet answered
    /// (an attempt waiting for its backoff was not sent under this token).
    pub(super) fn awaits_answer(&self, token: u64) -> bool {
        self.entries.get(&token).is_some_and(|e| !e.waiting())
    }

    /// A fresh token for the next attempt.
    pub(super) fn token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    /// The tokens to send again at `now`: retries whose backoff passed, and attempts the
    /// target did not answer within `ack_timeout`.
    pub(super) fn due(&self, now: Instant, ack_timeout: Duration) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|(_, e)| {
                if e.waiting() {
                    e.sent() <= now
                } else {
                    now.duration_since(e.sent()) > ack_timeout
                }
            })
            .map(|(token, _)| *token)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Copy {
        bytes: usize,
        sent: Instant,
        waiting: bool,
    }

    impl Attempt for Copy {
        fn bytes(&self) -> usize {
            self.bytes
        }
        fn sent(&self) -> Instant {
            self.sent
        }
        fn waiting(&self) -> bool {
            self.waiting
        }
    }

    fn sent(bytes: usize, at: Instant) -> Copy {
        Copy {
            bytes,
            sent: at,
            waiting: false,
        }
    }

    #[test]
    fn the_window_is_full_by_count() {
        let now = Instant::now();
        let mut inflight = InFlight::new(2, usize::MAX);
        for _ in 0..2 {
            assert!(inflight.has_room());
            let token = inflight.token();
            inflight.insert(token, sent(1, now));
        }
        assert!(!inflight.has_room());
        assert!(inflight.remove(0).is_some());
        assert!(inflight.has_room());
        assert!(inflight.remove(0).is_none(), "removed once");
    }

    #[test]
    fn the_window_is_full_by_bytes_but_one_large_message_goes_alone() {
        let now = Instant::now();
        let mut inflight = InFlight::new(100, 100);
        inflight.insert(0, sent(500, now));
        assert!(!inflight.has_room());
        assert!(inflight.remove(0).is_some());
        assert!(inflight.has_room());
        inflight.insert(1, sent(60, now));
        assert!(inflight.has_room());
        inflight.insert(2, sent(40, now));
        assert!(!inflight.has_room(), "100 bytes reach the 100-byte window");
    }

    #[test]
    fn replacing_an_entry_under_the_same_token_keeps_the_bytes_right() {
        let now = Instant::now();
        let mut inflight = InFlight::new(100, 100);
        inflight.insert(0, sent(90, now));
        inflight.insert(0, sent(10, now));
        assert_eq!(inflight.len(), 1);
        assert!(inflight.has_room());
        assert!(inflight.remove(0).is_some());
        inflight.insert(1, sent(99, now));
        assert!(
            inflight.has_room(),
            "nothing left over from the replaced entry"
        );
    }

    #[test]
    fn tokens_are_never_reused() {
        let mut inflight = InFlight::<Copy>::new(4, 4);
        let tokens: Vec<u64> = (0..5).map(|_| inflight.token()).collect();
        assert_eq!(tokens, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn only_an_attempt_that_was_sent_is_settled_by_an_ack() {
        let now = Instant::now();
        let mut inflight = InFlight::new(4, 1000);
        inflight.insert(0, sent(1, now));
        inflight.insert(
            1,
            Copy {
                bytes: 1,
                sent: now + Duration::from_secs(1),
                waiting: true,
            },
        );
        assert!(inflight.awaits_answer(0));
        assert!(
            !inflight.awaits_answer(1),
            "a retry waiting for its backoff"
        );
        assert!(!inflight.awaits_answer(2), "unknown token");
    }

    #[test]
    fn retries_are_due_after_their_backoff_and_unanswered_copies_after_the_timeout() {
        let start = Instant::now();
        let timeout = Duration::from_secs(10);
        let mut inflight = InFlight::new(4, 1000);
        inflight.insert(0, sent(1, start));
        inflight.insert(
            1,
            Copy {
                bytes: 1,
                sent: start + Duration::from_secs(2),
                waiting: true,
            },
        );
        assert!(inflight.due(start, timeout).is_empty());
        assert_eq!(
            inflight.due(start + Duration::from_secs(2), timeout),
            vec![1]
        );
        assert_eq!(
            inflight.due(start + timeout, timeout),
            vec![1],
            "at the timeout, not yet"
        );
        let mut due = inflight.due(start + timeout + Duration::from_millis(1), timeout);
        due.sort_unstable();
        assert_eq!(due, vec![0, 1]);
    }
}
