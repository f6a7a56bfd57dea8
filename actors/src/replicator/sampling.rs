//! Per-sender sampling: copy each sender at most once per `age`, and tell when it goes quiet.
//!
//! A sampled topic copies a message only when its sender (the value the
//! [`Inspector`](super::inspect::Inspector) extracts) is due. The [`SamplingTracker`] keeps one
//! [`SenderState`] per sender in an LRU bounded by `max_senders`, decides copy or skip for each
//! message ([`SamplingTracker::observe`]), is scrubbed on a timer ([`SamplingTracker::scrub`])
//! and is saved to disk so a restart keeps the schedule ([`SamplingTracker::save`]).
//!
//! # Rules
//!
//! In this order, for a message of a known sender:
//!
//! 1. **recover**: the sender was timed out; it is copied and a `recover` event is reported.
//! 2. **redelivered**: the message has the source sequence of the sender's last copy, i.e. the
//!    copy failed or choir crashed before the source ack, and the source delivers it again; it
//!    is copied again (the target dedupes by `Nats-Msg-Id`) without moving the schedule.
//! 3. **forced**: the force field is true; always copied.
//! 4. **due**: at least `age` passed since the sender's last copy; copied. A message that
//!    arrives exactly `age` after the last copy is due.
//! 5. **size trigger**: the payload size differs by at least `size_trigger` bytes from the size
//!    of the last copy; copied.
//! 6. Otherwise the message is skipped.
//!
//! A sender seen for the first time is copied and reported as `new`. So a sender is copied at
//! most once per `age` (forced, size-triggered, recovered and redelivered copies aside) and,
//! while it keeps sending, on its first message at or after `age` since its last copy.
//!
//! Senders that publish exactly once per `age` arrive a little early or late with jitter, and
//! an early message is skipped, which doubles the gap. Configure `age` somewhat below the
//! senders' interval (SRv2 uses `interval − 1 s − splay`).
//!
//! # Liveness
//!
//! [`SamplingTracker::scrub`], called on a timer (e.g. every `age / 2`, at least every 10 s):
//!
//! - an active sender not seen for longer than `timeout` becomes timed out and a `timeout`
//!   event is reported (once); its next message reports `recover` and is copied;
//! - a sender not seen for longer than `expire` is forgotten and an `expire` event is reported;
//!   its next message is `new` again. A sender not seen for longer than `2 × expire` is
//!   forgotten without an event: that is stale state loaded from disk after a long downtime
//!   (SRv2 #44), counted as `discarded`.
//!
//! Defaults: `timeout = 1.5 × age` (a sender publishing once per `age` is late by half a period
//! before it is reported), `expire = 2 × timeout = 3 × age` (SRv1's scrub horizon).
//! `timeout ≥ age` is required, so a recovering sender is always due anyway, and
//! `expire > timeout`.
//!
//! Time is the caller's: every call takes `now` (wall clock, stored as Unix milliseconds so it
//! survives a restart). `observe` may be given the message's stream timestamp instead of the
//! wall clock, so a replayed backlog is sampled in message time. Scrub only while the consumer
//! is caught up: while the worker is stalled (target down) or replaying a backlog, senders look
//! quiet only because their messages are not read yet.
//!
//! # Bound
//!
//! At most `max_senders` senders are tracked (default 100 000). When a new sender arrives at a
//! full tracker the least recently *seen* sender is evicted without an event (capacity pressure
//! is not a liveness signal, and an advisory storm would not help) and counted in `evictions`;
//! size `max_senders` above the fleet size so this never happens in steady state.

use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use serde::{Deserialize, Serialize};

/// Version of the state file layout written by [`SamplingTracker::save`].
const STATE_VERSION: u32 = 1;

/// Errors of the sampling tracker: refused settings and state file I/O.
#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    /// The sampling age is zero.
    #[error("sampling age must be greater than zero")]
    ZeroAge,
    /// The timeout is shorter than the age.
    #[error("sampling timeout {timeout:?} is shorter than the age {age:?}")]
    TimeoutBelowAge {
        /// The configured timeout.
        timeout: Duration,
        /// The configured age.
        age: Duration,
    },
    /// The expiry is not longer than the timeout.
    #[error("sampling expire {expire:?} is not longer than the timeout {timeout:?}")]
    ExpireNotAfterTimeout {
        /// The configured expiry.
        expire: Duration,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The state file exists but cannot be read.
    #[error("cannot read sampling state {}", path.display())]
    Read {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The state file cannot be written, synced or renamed into place.
    #[error("cannot write sampling state {}", path.display())]
    Write {
        /// The state file (or its temporary sibling).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The state file is not a sampling state (corrupt or truncated).
    #[error("corrupt sampling state {}", path.display())]
    Decode {
        /// The state file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// The state file was written by an incompatible version.
    #[error("unsupported sampling state version {found} in {}", path.display())]
    UnsupportedVersion {
        /// The state file.
        path: PathBuf,
        /// The version found in it.
        found: u32,
    },
    /// The state cannot be encoded.
    #[error("cannot encode sampling state")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Settings of a [`SamplingTracker`]; see the module docs for the rules and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplingConfig {
    /// Copy each sender at most once per `age`.
    pub age: Duration,
    /// A sender unseen for longer than this is timed out (`timeout` event).
    pub timeout: Duration,
    /// A sender unseen for longer than this is forgotten (`expire` event).
    pub expire: Duration,
    /// Copy at once when the payload size moved by at least this many bytes since the last
    /// copy of the sender; `None` disables the trigger.
    pub size_trigger: Option<NonZeroUsize>,
    /// Most senders tracked; the least recently seen is evicted beyond it.
    pub max_senders: NonZeroUsize,
}

// === impl SamplingConfig ===

impl SamplingConfig {
    /// Default bound on tracked senders.
    pub const DEFAULT_MAX_SENDERS: NonZeroUsize = match NonZeroUsize::new(100_000) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    };

    /// Settings for `age` with the default timeout (`1.5 × age`), expiry (`2 × timeout`),
    /// no size trigger and [`SamplingConfig::DEFAULT_MAX_SENDERS`].
    pub fn new(age: Duration) -> Self {
        let timeout = Self::default_timeout(age);
        Self {
            age,
            timeout,
            expire: Self::default_expire(timeout),
            size_trigger: None,
            max_senders: Self::DEFAULT_MAX_SENDERS,
        }
    }

    /// The default timeout for `age`: `age + age / 2`.
    pub fn default_timeout(age: Duration) -> Duration {
        age.saturating_add(age / 2)
    }

    /// The default expiry for `timeout`: `2 × timeout`.
    pub fn default_expire(timeout: Duration) -> Duration {
        timeout.saturating_mul(2)
    }

    /// Sets the timeout and the default expiry for it (call [`SamplingConfig::with_expire`]
    /// afterwards to override that).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.expire = Self::default_expire(timeout);
        self
    }

    /// Sets the expiry.
    pub fn with_expire(mut self, expire: Duration) -> Self {
        self.expire = expire;
        self
    }

    /// Sets the size trigger.
    pub fn with_size_trigger(mut self, size_trigger: Option<NonZeroUsize>) -> Self {
        self.size_trigger = size_trigger;
        self
    }

    /// Sets the bound on tracked senders.
    pub fn with_max_senders(mut self, max_senders: NonZeroUsize) -> Self {
        self.max_senders = max_senders;
        self
    }

    /// Checks `age > 0`, `timeout ≥ age` and `expire > timeout`.
    pub fn validate(&self) -> Result<(), SamplingError> {
        if self.age.is_zero() {
            return Err(SamplingError::ZeroAge);
        }
        if self.timeout < self.age {
            return Err(SamplingError::TimeoutBelowAge {
                timeout: self.timeout,
                age: self.age,
            });
        }
        if self.expire <= self.timeout {
            return Err(SamplingError::ExpireNotAfterTimeout {
                expire: self.expire,
                timeout: self.timeout,
            });
        }
        Ok(())
    }
}

/// A sender's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderStatus {
    /// Seen within the timeout.
    Active,
    /// Reported as timed out; its next message recovers it.
    TimedOut,
}

/// What the tracker knows about one sender. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderState {
    /// When the sender was first seen.
    pub first_seen_ms: u64,
    /// When the sender was last seen.
    pub last_seen_ms: u64,
    /// When the sender was last copied.
    pub last_copied_ms: u64,
    /// Source stream sequence of the last copied message.
    pub last_copied_seq: u64,
    /// Payload size of the last copied message, for the size trigger.
    pub last_copied_size: u64,
    /// Messages seen from this sender.
    pub seen: u64,
    /// Messages copied from this sender.
    pub copied: u64,
    /// Liveness.
    pub status: SenderStatus,
}

/// A liveness event; the caller turns it into an advisory when advisories are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A sender was seen for the first time (or again after it expired or was evicted).
    New,
    /// A sender was not seen for longer than the timeout.
    Timeout,
    /// A timed-out sender was seen again.
    Recover,
    /// A sender was not seen for longer than the expiry and is forgotten.
    Expire,
}

// === impl EventKind ===

impl EventKind {
    /// The event's wire name: `new`, `timeout`, `recover` or `expire`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Timeout => "timeout",
            Self::Recover => "recover",
            Self::Expire => "expire",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A liveness event about one sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderEvent {
    /// What happened.
    pub kind: EventKind,
    /// The sender (value of the inspected field).
    pub sender: String,
    /// When the sender was last seen, Unix milliseconds.
    pub last_seen_ms: u64,
}

/// Why a message is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyReason {
    /// First message of the sender.
    New,
    /// First message of a timed-out sender.
    Recovered,
    /// The source delivers the sender's last copied message again.
    Redelivered,
    /// The force field is true.
    Forced,
    /// `age` passed since the sender's last copy.
    Due,
    /// The payload size moved by at least the size trigger.
    SizeChanged,
}

/// Copy or skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplingVerdict {
    /// Publish the message to the target.
    Copy(CopyReason),
    /// Do not publish; ack it on the source.
    Skip,
}

/// The outcome of [`SamplingTracker::observe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Copy or skip.
    pub verdict: SamplingVerdict,
    /// A `new` or `recover` event, if this message caused one.
    pub event: Option<SenderEvent>,
}

// === impl Decision ===

impl Decision {
    /// Whether the message is to be copied.
    pub fn is_copy(&self) -> bool {
        matches!(self.verdict, SamplingVerdict::Copy(_))
    }
}

/// Running totals of a tracker, for metrics. Not persisted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SamplingCounters {
    /// Messages copied (all reasons).
    pub copied: u64,
    /// Messages skipped.
    pub skipped: u64,
    /// Copies forced by the force field.
    pub forced: u64,
    /// Copies caused by the size trigger.
    pub size_triggered: u64,
    /// Copies of redelivered messages.
    pub redelivered: u64,
    /// `new` events.
    pub new: u64,
    /// `timeout` events.
    pub timeouts: u64,
    /// `recover` events.
    pub recovers: u64,
    /// `expire` events.
    pub expires: u64,
    /// Senders forgotten silently because they were stale (unseen for over `2 × expire`).
    pub discarded: u64,
    /// Senders evicted because the tracker was full.
    pub evictions: u64,
}

/// The on-disk layout: senders from least to most recently seen.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    /// [`STATE_VERSION`].
    version: u32,
    /// Senders, least recently seen first, so pushing them in order restores the LRU order.
    senders: Vec<(String, SenderState)>,
}

/// Only the version, read first so a future layout is reported as such.
#[derive(Debug, Deserialize)]
struct StateVersion {
    /// The layout version.
    version: u32,
}

/// Per-sender sampling state of one topic, bounded by an LRU (see the module docs).
#[derive(Debug)]
pub struct SamplingTracker {
    /// Validated settings.
    config: SamplingConfig,
    /// Senders, most recently seen first.
    senders: LruCache<String, SenderState>,
    /// Running totals.
    counters: SamplingCounters,
}

// === impl SamplingTracker ===

impl SamplingTracker {
    /// An empty tracker; refuses invalid settings.
    pub fn new(config: SamplingConfig) -> Result<Self, SamplingError> {
        config.validate()?;
        Ok(Self {
            senders: LruCache::new(config.max_senders),
            config,
            counters: SamplingCounters::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &SamplingConfig {
        &self.config
    }

    /// Number of senders tracked.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Whether no sender is tracked.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Running totals.
    pub fn counters(&self) -> SamplingCounters {
        self.counters
    }

    /// What is known about `sender`, without touching its recency.
    pub fn get(&self, sender: &str) -> Option<&SenderState> {
        self.senders.peek(sender)
    }

    /// All senders, most recently seen first.
    pub fn senders(&self) -> impl Iterator<Item = (&str, &SenderState)> {
        self.senders.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Decides whether the message `seq` (source stream sequence) of `sender`, `size` bytes,
    /// seen at `now`, is copied; `forced` is the force field's value. Records the sighting and,
    /// for a copy, the copy.
    ///
    /// Messages without a sender should not be observed: copy them unconditionally.
    pub fn observe(
        &mut self,
        sender: &str,
        seq: u64,
        now: SystemTime,
        size: usize,
        forced: bool,
    ) -> Decision {
        let now_ms = unix_millis(now);
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        let age_ms = duration_millis(self.config.age);
        let size_trigger = self
            .config
            .size_trigger
            .map(|t| u64::try_from(t.get()).unwrap_or(u64::MAX));

        let Some(state) = self.senders.get_mut(sender) else {
            return self.insert_new(sender, seq, now_ms, size);
        };
        state.last_seen_ms = state.last_seen_ms.max(now_ms);
        state.seen = state.seen.saturating_add(1);

        let mut event = None;
        let verdict = if state.status == SenderStatus::TimedOut {
            state.status = SenderStatus::Active;
            event = Some(SenderEvent {
                kind: EventKind::Recover,
                sender: sender.to_owned(),
                last_seen_ms: state.last_seen_ms,
            });
            SamplingVerdict::Copy(CopyReason::Recovered)
        } else if seq == state.last_copied_seq {
            SamplingVerdict::Copy(CopyReason::Redelivered)
        } else if forced {
            SamplingVerdict::Copy(CopyReason::Forced)
        } else if is_due(state.last_copied_ms, now_ms, age_ms) {
            SamplingVerdict::Copy(CopyReason::Due)
        } else if size_trigger.is_some_and(|t| state.last_copied_size.abs_diff(size) >= t) {
            SamplingVerdict::Copy(CopyReason::SizeChanged)
        } else {
            SamplingVerdict::Skip
        };

        match verdict {
            SamplingVerdict::Skip => {
                self.counters.skipped = self.counters.skipped.saturating_add(1);
            }
            SamplingVerdict::Copy(reason) => {
                state.copied = state.copied.saturating_add(1);
                if reason != CopyReason::Redelivered {
                    state.last_copied_ms = now_ms;
                    state.last_copied_seq = seq;
                    state.last_copied_size = size;
                }
                let counters = &mut self.counters;
                counters.copied = counters.copied.saturating_add(1);
                let counter = match reason {
                    CopyReason::Recovered => Some(&mut counters.recovers),
                    CopyReason::Redelivered => Some(&mut counters.redelivered),
                    CopyReason::Forced => Some(&mut counters.forced),
                    CopyReason::SizeChanged => Some(&mut counters.size_triggered),
                    CopyReason::New | CopyReason::Due => None,
                };
                if let Some(counter) = counter {
                    *counter = counter.saturating_add(1);
                }
            }
        }
        Decision { verdict, event }
    }

    /// Tracks a sender seen for the first time; it is copied.
    fn insert_new(&mut self, sender: &str, seq: u64, now_ms: u64, size: u64) -> Decision {
        let state = SenderState {
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            last_copied_ms: now_ms,
            last_copied_seq: seq,
            last_copied_size: size,
            seen: 1,
            copied: 1,
            status: SenderStatus::Active,
        };
        if self.senders.push(sender.to_owned(), state).is_some() {
            // The sender was absent, so whatever came back was evicted to make room.
            self.counters.evictions = self.counters.evictions.saturating_add(1);
        }
        self.counters.copied = self.counters.copied.saturating_add(1);
        self.counters.new = self.counters.new.saturating_add(1);
        Decision {
            verdict: SamplingVerdict::Copy(CopyReason::New),
            event: Some(SenderEvent {
                kind: EventKind::New,
                sender: sender.to_owned(),
                last_seen_ms: now_ms,
            }),
        }
    }

    /// Records a copy another replica made (gossip, see [`super::gossip`]): `sender`'s message
    /// `seq` of `size` bytes, stored at `copied_ms` (Unix milliseconds, the stream's clock),
    /// was copied. Only moves a sender's last copy forward; raises no event (the replica that
    /// copied raised it).
    pub fn merge_copy(&mut self, sender: &str, copied_ms: u64, seq: u64, size: u64) {
        if let Some(state) = self.senders.get_mut(sender) {
            state.last_seen_ms = state.last_seen_ms.max(copied_ms);
            if copied_ms >= state.last_copied_ms {
                state.last_copied_ms = copied_ms;
                state.last_copied_seq = seq;
                state.last_copied_size = size;
                state.copied = state.copied.saturating_add(1);
                state.status = SenderStatus::Active;
            }
            return;
        }
        let state = SenderState {
            first_seen_ms: copied_ms,
            last_seen_ms: copied_ms,
            last_copied_ms: copied_ms,
            last_copied_seq: seq,
            last_copied_size: size,
            seen: 1,
            copied: 1,
            status: SenderStatus::Active,
        };
        if self.senders.push(sender.to_owned(), state).is_some() {
            self.counters.evictions = self.counters.evictions.saturating_add(1);
        }
    }

    /// Times out and expires quiet senders as of `now` (see the module docs) and returns the
    /// `timeout` and `expire` events, most recently seen sender first.
    pub fn scrub(&mut self, now: SystemTime) -> Vec<SenderEvent> {
        let now_ms = unix_millis(now);
        let timeout_ms = duration_millis(self.config.timeout);
        let expire_ms = duration_millis(self.config.expire);
        let stale_ms = expire_ms.saturating_mul(2);
        let mut events = Vec::new();
        let counters = &mut self.counters;
        self.senders.retain(|sender, state| {
            let unseen = now_ms.saturating_sub(state.last_seen_ms);
            if unseen > stale_ms {
                counters.discarded = counters.discarded.saturating_add(1);
                false
            } else if unseen > expire_ms {
                counters.expires = counters.expires.saturating_add(1);
                events.push(SenderEvent {
                    kind: EventKind::Expire,
                    sender: sender.clone(),
                    last_seen_ms: state.last_seen_ms,
                });
                false
            } else {
                if unseen > timeout_ms && state.status == SenderStatus::Active {
                    state.status = SenderStatus::TimedOut;
                    counters.timeouts = counters.timeouts.saturating_add(1);
                    events.push(SenderEvent {
                        kind: EventKind::Timeout,
                        sender: sender.clone(),
                        last_seen_ms: state.last_seen_ms,
                    });
                }
                true
            }
        });
        events
    }

    /// Encodes every sender (MessagePack, least recently seen first) for
    /// [`write_state_file`]; cheap enough for the actor, while the write can go to a blocking
    /// thread.
    pub fn encode(&self) -> Result<Vec<u8>, SamplingError> {
        let state = StateFile {
            version: STATE_VERSION,
            senders: self
                .senders
                .iter()
                .rev()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        Ok(rmp_serde::to_vec_named(&state)?)
    }

    /// Saves every sender to `path` atomically: written to `<path>.tmp`, synced, then renamed
    /// over `path` (see [`write_state_file`]).
    pub fn save(&self, path: &Path) -> Result<(), SamplingError> {
        write_state_file(path, &self.encode()?)
    }

    /// A tracker with the senders saved at `path`: empty when the file does not exist, an
    /// error when it cannot be read or decoded (log it and start with
    /// [`SamplingTracker::new`]). Counters start at zero; senders beyond `max_senders` (the
    /// least recently seen) are evicted and counted. Call [`SamplingTracker::scrub`] once the
    /// consumer caught up to expire what went quiet meanwhile.
    pub fn load(path: &Path, config: SamplingConfig) -> Result<Self, SamplingError> {
        let mut tracker = Self::new(config)?;
        let senders = match read_state_file(path) {
            Ok(senders) => senders,
            Err(SamplingError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(tracker)
            }
            Err(e) => return Err(e),
        };
        for (sender, state) in senders {
            if let Some((evicted, _)) = tracker.senders.push(sender.clone(), state) {
                if evicted != sender {
                    tracker.counters.evictions = tracker.counters.evictions.saturating_add(1);
                }
            }
        }
        Ok(tracker)
    }
}

/// The senders saved at `path`, least recently seen first (for tools: no config needed).
pub fn read_state_file(path: &Path) -> Result<Vec<(String, SenderState)>, SamplingError> {
    let bytes = fs::read(path).map_err(|source| SamplingError::Read {
        path: path.to_owned(),
        source,
    })?;
    let decode_error = |source| SamplingError::Decode {
        path: path.to_owned(),
        source,
    };
    let version: StateVersion = rmp_serde::from_slice(&bytes).map_err(decode_error)?;
    if version.version != STATE_VERSION {
        return Err(SamplingError::UnsupportedVersion {
            path: path.to_owned(),
            found: version.version,
        });
    }
    let state: StateFile = rmp_serde::from_slice(&bytes).map_err(decode_error)?;
    Ok(state.senders)
}

/// Writes `bytes` to `path` atomically (see [`crate::atomic_file::write`]). Blocking.
pub fn write_state_file(path: &Path, bytes: &[u8]) -> Result<(), SamplingError> {
    crate::atomic_file::write(path, bytes).map_err(|error| SamplingError::Write {
        path: error.path,
        source: error.source,
    })
}

/// `time` as Unix milliseconds (0 before the epoch, saturating far in the future).
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(duration_millis)
        .unwrap_or(0)
}

/// `duration` in whole milliseconds, saturating.
fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a sender last copied at `last_copied_ms` is due at `now_ms`. A clock that stepped
/// back by more than `age` also makes it due, so a clock fix does not stall sampling.
// Times are whole milliseconds: `age` is honoured at millisecond resolution.
fn is_due(last_copied_ms: u64, now_ms: u64, age_ms: u64) -> bool {
    match now_ms.checked_sub(last_copied_ms) {
        Some(elapsed) => elapsed >= age_ms,
        None => last_copied_ms.abs_diff(now_ms) > age_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE_MS: u64 = 1_700_000_000_000;

    /// A wall-clock instant `ms` milliseconds after a fixed base.
    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(BASE_MS + ms)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn tracker(config: SamplingConfig) -> SamplingTracker {
        SamplingTracker::new(config).unwrap()
    }

    /// Observes one unforced message of `sender`; `seq` and size are made up.
    fn observe(t: &mut SamplingTracker, sender: &str, seq: u64, ms: u64) -> Decision {
        t.observe(sender, seq, at(ms), 100, false)
    }

    #[test]
    fn default_timeout_and_expire_follow_the_age() {
        let config = SamplingConfig::new(secs(60));
        assert_eq!(config.timeout, secs(90));
        assert_eq!(config.expire, secs(180));
        assert_eq!(config.max_senders, SamplingConfig::DEFAULT_MAX_SENDERS);
        let config = config.with_timeout(secs(100));
        assert_eq!(config.expire, secs(200));
        config.validate().unwrap();
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(matches!(
            SamplingTracker::new(SamplingConfig::new(Duration::ZERO)),
            Err(SamplingError::ZeroAge)
        ));
        assert!(matches!(
            SamplingConfig::new(secs(60))
                .with_timeout(secs(30))
                .validate(),
            Err(SamplingError::TimeoutBelowAge { .. })
        ));
        assert!(matches!(
            SamplingConfig::new(secs(60))
                .with_expire(secs(90))
                .validate(),
            Err(SamplingError::ExpireNotAfterTimeout { .. })
        ));
        let err = SamplingConfig::new(secs(60))
            .with_timeout(secs(30))
            .validate();
        assert_eq!(
            err.unwrap_err().to_string(),
            "sampling timeout 30s is shorter than the age 60s"
        );
    }

    #[test]
    fn new_sender_is_copied_with_a_new_event() {
        let mut t = tracker(SamplingConfig::new(secs(1)));
        let d = observe(&mut t, "n1", 1, 0);
        assert_eq!(d.verdict, SamplingVerdict::Copy(CopyReason::New));
        let event = d.event.unwrap();
        assert_eq!(event.kind, EventKind::New);
        assert_eq!(event.sender, "n1");
        assert_eq!(event.last_seen_ms, BASE_MS);
        assert_eq!(t.len(), 1);
        assert_eq!(t.counters().new, 1);
        assert_eq!(t.counters().copied, 1);
    }

    #[test]
    fn sender_is_skipped_within_age() {
        let mut t = tracker(SamplingConfig::new(secs(1)));
        observe(&mut t, "n1", 1, 0);
        let d = observe(&mut t, "n1", 2, 999);
        assert_eq!(
            d,
            Decision {
                verdict: SamplingVerdict::Skip,
                event: None
            }
        );
        // Other senders have their own schedule.
        assert!(observe(&mut t, "n2", 3, 999).is_copy());
        let state = t.get("n1").unwrap();
        assert_eq!((state.seen, state.copied), (2, 1));
        assert_eq!(state.last_seen_ms, BASE_MS + 999);
        assert_eq!(t.counters().skipped, 1);
    }

    #[test]
    fn sender_is_copied_again_once_age_has_passed() {
        let mut t = tracker(SamplingConfig::new(secs(1)));
        observe(&mut t, "n1", 1, 0);
        let d = observe(&mut t, "n1", 2, 1000);
        assert_eq!(d.verdict, SamplingVerdict::Copy(CopyReason::Due));
        assert_eq!(d.event, None);
        // The schedule restarts from the last copy.
        assert!(!observe(&mut t, "n1", 3, 1999).is_copy());
        assert!(observe(&mut t, "n1", 4, 2000).is_copy());
    }

    #[test]
    fn forced_message_is_always_copied() {
        let mut t = tracker(SamplingConfig::new(secs(60)));
        observe(&mut t, "n1", 1, 0);
        let d = t.observe("n1", 2, at(10), 100, true);
        assert_eq!(d.verdict, SamplingVerdict::Copy(CopyReason::Forced));
        assert_eq!(t.counters().forced, 1);
        // A forced copy restarts the schedule.
        assert!(!observe(&mut t, "n1", 3, 60_005).is_copy());
        assert!(observe(&mut t, "n1", 4, 60_010).is_copy());
    }

    #[test]
    fn size_change_of_at_least_the_trigger_is_copied() {
        let config = SamplingConfig::new(secs(60)).with_size_trigger(NonZeroUsize::new(10));
        let mut t = tracker(config);
        t.observe("n1", 1, at(0), 100, false);
        assert!(!t.observe("n1", 2, at(1), 109, false).is_copy());
        assert!(!t.observe("n1", 3, at(2), 91, false).is_copy());
        let d = t.observe("n1", 4, at(3), 90, false);
        assert_eq!(d.verdict, SamplingVerdict::Copy(CopyReason::SizeChanged));
        // Measured from the last copy (90 now), not from the last message.
        assert!(!t.observe("n1", 5, at(4), 99, false).is_copy());
        assert!(t.observe("n1", 6, at(5), 100, false).is_copy());
        assert_eq!(t.counters().size_triggered, 2);
    }

    #[test]
    fn size_changes_are_ignored_without_a_trigger() {
        let mut t = tracker(SamplingConfig::new(secs(60)));
        t.observe("n1", 1, at(0), 100, false);
        assert!(!t.observe("n1", 2, at(1), 100_000, false).is_copy());
    }

    #[test]
    fn redelivered_copy_is_copied_again_without_moving_the_schedule() {
        let mut t = tracker(SamplingConfig::new(secs(1)));
        observe(&mut t, "n1", 7, 0);
        assert!(!observe(&mut t, "n1", 8, 100).is_copy());
        // The copy of 7 failed; the source delivers 7 and 8 again.
        let d = observe(&mut t, "n1", 7, 200);
        assert_eq!(d.verdict, SamplingVerdict::Copy(CopyReason::Redelivered));
        assert!(!observe(&mut t, "n1", 8, 300).is_copy());
        assert_eq!(t.get("n1").unwrap().last_copied_ms, BASE_MS);
        assert!(observe(&mut t, "n1", 9, 1000).is_copy());
        assert_eq!(t.counters().redelivered, 1);
    }

    #[test]
    fn scrub_times_out_quiet_senders_once() {
        let mut t = tracker(SamplingConfig::new(secs(10)));
        observe(&mut t, "quiet", 1, 0);
        observe(&mut t, "busy", 2, 0);
        observe(&mut t, "busy", 3, 14_000);
        assert!(
            t.scrub(at(15_000)).is_empty(),
            "not past the 15 s timeout yet"
        );
        let events = t.scrub(at(15_001));
        assert_eq!(
            events,
            vec![SenderEvent {
                kind: EventKind::Timeout,
                sender: "quiet".into(),
                last_seen_ms: BASE_MS,
            }]
        );
        assert_eq!(t.get("quiet").unwrap().status, SenderStatus::TimedOut);
        assert!(t.scrub(at(20_000)).is_empty(), "reported once");
        assert_eq!(t.counters().timeouts, 1);
    }

    #[test]
    fn timed_out_sender_recovers_and_is_copied() {
        let mut t = tracker(SamplingConfig::new(secs(10)));
        observe(&mut t, "n1", 1, 0);
        t.scrub(at(16_000));
        let d = observe(&mut t, "n1", 2, 17_000);
        assert_eq!(d.verdict, SamplingVerdict::Copy(CopyReason::Recovered));
        assert_eq!(d.event.unwrap().kind, EventKind::Recover);
        assert_eq!(t.get("n1").unwrap().status, SenderStatus::Active);
        assert!(!observe(&mut t, "n1", 3, 17_001).is_copy());
        assert_eq!(t.counters().recovers, 1);
    }

    #[test]
    fn scrub_expires_senders_and_they_come_back_as_new() {
        let mut t = tracker(SamplingConfig::new(secs(10)));
        observe(&mut t, "n1", 1, 0);
        let events = t.scrub(at(16_000));
        assert_eq!(events[0].kind, EventKind::Timeout);
        assert!(
            t.scrub(at(30_000)).is_empty(),
            "not past the 30 s expiry yet"
        );
        let events = t.scrub(at(30_001));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Expire);
        assert!(t.is_empty());
        let d = observe(&mut t, "n1", 2, 31_000);
        assert_eq!(d.event.unwrap().kind, EventKind::New);
        assert_eq!(t.counters().expires, 1);
        assert_eq!(t.counters().new, 2);
    }

    #[test]
    fn stale_senders_are_dropped_without_an_advisory() {
        let mut t = tracker(SamplingConfig::new(secs(10)));
        observe(&mut t, "n1", 1, 0);
        // Never scrubbed for over 2 × expire (60 s), e.g. state loaded after a long downtime.
        assert!(t.scrub(at(60_001)).is_empty());
        assert!(t.is_empty());
        assert_eq!(t.counters().discarded, 1);
        assert_eq!(t.counters().expires, 0);
    }

    #[test]
    fn full_tracker_evicts_the_least_recently_seen_sender() {
        let config = SamplingConfig::new(secs(10)).with_max_senders(NonZeroUsize::new(2).unwrap());
        let mut t = tracker(config);
        observe(&mut t, "a", 1, 0);
        observe(&mut t, "b", 2, 1);
        // Seeing "a" again (even skipped) makes "b" the least recently seen.
        assert!(!observe(&mut t, "a", 3, 2).is_copy());
        observe(&mut t, "c", 4, 3);
        assert_eq!(t.len(), 2);
        assert!(t.get("b").is_none());
        assert!(t.get("a").is_some());
        assert_eq!(t.counters().evictions, 1);
        // An evicted sender is new again.
        assert_eq!(
            observe(&mut t, "b", 5, 4).verdict,
            SamplingVerdict::Copy(CopyReason::New)
        );
    }

    #[test]
    fn clock_stepping_back_more_than_age_makes_a_sender_due() {
        let mut t = tracker(SamplingConfig::new(secs(1)));
        observe(&mut t, "n1", 1, 10_000);
        assert!(!observe(&mut t, "n1", 2, 9_500).is_copy());
        assert!(observe(&mut t, "n1", 3, 8_000).is_copy());
    }

    /// The scenario: 50 senders each sending every 100 ms for 3 s, age 1 s.
    #[test]
    fn fifty_senders_every_100ms_for_3s_are_each_copied_three_or_four_times() {
        let mut t = tracker(SamplingConfig::new(secs(1)));
        let senders: Vec<String> = (0..50).map(|i| format!("node{i}.example")).collect();
        let mut copies: Vec<Vec<u64>> = vec![Vec::new(); senders.len()];
        let mut seq = 0;
        for tick in 0..=30u64 {
            for (i, sender) in senders.iter().enumerate() {
                seq += 1;
                // Spread the senders over the tick so they are not in lockstep.
                let ms = tick * 100 + i as u64;
                if t.observe(sender, seq, at(ms), 512, false).is_copy() {
                    copies[i].push(ms);
                }
            }
            if tick % 5 == 0 {
                assert!(t.scrub(at(tick * 100)).is_empty());
            }
        }
        for (sender, times) in senders.iter().zip(&copies) {
            assert!((3..=4).contains(&times.len()), "{sender}: {times:?}");
            for pair in times.windows(2) {
                assert!(
                    pair[1] - pair[0] >= 1000,
                    "{sender} copied twice within 1 s: {times:?}"
                );
            }
        }
        let counters = t.counters();
        assert_eq!(counters.new, 50);
        assert_eq!(counters.copied + counters.skipped, 50 * 31);
        assert_eq!(t.len(), 50);
    }

    #[test]
    fn state_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topic.sampling");
        let config = SamplingConfig::new(secs(10));
        let mut t = tracker(config.clone());
        observe(&mut t, "a", 1, 0);
        observe(&mut t, "b", 2, 1);
        observe(&mut t, "c", 3, 2);
        assert_eq!(t.scrub(at(15_010)).len(), 3); // a, b and c time out
        observe(&mut t, "a", 4, 15_011); // a recovers and is the most recent
        t.save(&path).unwrap();
        assert!(!dir.path().join("topic.sampling.tmp").exists());

        let loaded = SamplingTracker::load(&path, config.clone()).unwrap();
        assert_eq!(
            loaded.senders().collect::<Vec<_>>(),
            t.senders().collect::<Vec<_>>(),
            "same senders, same recency order, same state"
        );
        assert_eq!(loaded.counters(), SamplingCounters::default());

        // The schedule and liveness carry over: b is still timed out and recovers.
        let mut loaded = loaded;
        assert!(!observe(&mut loaded, "a", 5, 15_012).is_copy());
        assert_eq!(
            observe(&mut loaded, "b", 6, 15_013).event.map(|e| e.kind),
            Some(EventKind::Recover)
        );

        // A smaller bound keeps the most recently seen senders.
        let small = config.with_max_senders(NonZeroUsize::new(1).unwrap());
        let loaded = SamplingTracker::load(&path, small).unwrap();
        assert_eq!(loaded.senders().map(|(k, _)| k).collect::<Vec<_>>(), ["a"]);
        assert_eq!(loaded.counters().evictions, 2);
    }

    #[test]
    fn saving_replaces_the_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let config = SamplingConfig::new(secs(10));
        let mut t = tracker(config.clone());
        observe(&mut t, "a", 1, 0);
        t.save(&path).unwrap();
        observe(&mut t, "b", 2, 1);
        t.save(&path).unwrap();
        assert_eq!(SamplingTracker::load(&path, config).unwrap().len(), 2);
    }

    #[test]
    fn missing_state_file_loads_empty() {
        let dir = tempfile::tempdir().unwrap();
        let t = SamplingTracker::load(&dir.path().join("absent"), SamplingConfig::new(secs(1)));
        assert!(t.unwrap().is_empty());
    }

    #[test]
    fn corrupt_state_file_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(&path, b"this is not messagepack").unwrap();
        let err = SamplingTracker::load(&path, SamplingConfig::new(secs(1))).unwrap_err();
        assert!(matches!(err, SamplingError::Decode { .. }), "{err:?}");
        assert!(err.to_string().starts_with("corrupt sampling state "));

        // A truncated file too.
        let mut t = tracker(SamplingConfig::new(secs(1)));
        observe(&mut t, "a", 1, 0);
        let bytes = t.encode().unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = SamplingTracker::load(&path, SamplingConfig::new(secs(1))).unwrap_err();
        assert!(matches!(err, SamplingError::Decode { .. }), "{err:?}");
    }

    #[test]
    fn state_file_of_another_version_is_refused() {
        #[derive(Serialize)]
        struct Future {
            version: u32,
            senders: Vec<u8>,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let bytes = rmp_serde::to_vec_named(&Future {
            version: 2,
            senders: vec![],
        })
        .unwrap();
        fs::write(&path, bytes).unwrap();
        let err = SamplingTracker::load(&path, SamplingConfig::new(secs(1))).unwrap_err();
        assert!(
            matches!(err, SamplingError::UnsupportedVersion { found: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unwritable_state_path_is_a_write_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = tracker(SamplingConfig::new(secs(1)));
        // A file where the state's directory should be: the directory cannot be created.
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let err = t.save(&blocker.join("state")).unwrap_err();
        assert!(matches!(err, SamplingError::Write { .. }), "{err:?}");
    }

    proptest! {
        /// Without force or size trigger a message is copied exactly when it is the sender's
        /// first or at least `age` after its last copy: never twice within `age`, and never
        /// skipped once due.
        #[test]
        fn copies_are_exactly_the_first_message_at_or_after_age(
            gaps in proptest::collection::vec((0usize..3, 0u64..700), 1..200),
        ) {
            let age_ms = 1000;
            let mut t = tracker(SamplingConfig::new(Duration::from_millis(age_ms)));
            let mut last_copy: [Option<u64>; 3] = [None; 3];
            let mut now = 0;
            for (seq, (sender, gap)) in gaps.into_iter().enumerate() {
                now += gap;
                let copied = t
                    .observe(&format!("s{sender}"), seq as u64 + 1, at(now), 10, false)
                    .is_copy();
                let expected = last_copy[sender].is_none_or(|last| now - last >= age_ms);
                prop_assert_eq!(copied, expected, "sender {} at {}", sender, now);
                if copied {
                    last_copy[sender] = Some(now);
                }
            }
        }
    }

    #[test]
    fn a_gossiped_copy_keeps_the_sender_from_being_copied_again_before_its_age() {
        let age = Duration::from_secs(60);
        let mut tracker = SamplingTracker::new(SamplingConfig::new(age)).expect("valid config");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        tracker.merge_copy("a", unix_millis(t0), 5, 10);
        let soon = tracker.observe("a", 6, t0 + Duration::from_secs(1), 10, false);
        assert_eq!(soon.verdict, SamplingVerdict::Skip);
        assert_eq!(soon.event, None, "a gossiped sender is not new");
        let due = tracker.observe("a", 7, t0 + age, 10, false);
        assert_eq!(due.verdict, SamplingVerdict::Copy(CopyReason::Due));
    }

    #[test]
    fn an_older_gossiped_copy_does_not_move_a_sender_back() {
        let age = Duration::from_secs(60);
        let mut tracker = SamplingTracker::new(SamplingConfig::new(age)).expect("valid config");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        tracker.observe("a", 9, t0, 10, false);
        tracker.merge_copy("a", unix_millis(t0) - 5_000, 4, 10);
        let state = tracker.get("a").expect("tracked");
        assert_eq!(
            (state.last_copied_ms, state.last_copied_seq),
            (unix_millis(t0), 9)
        );
    }

    #[test]
    fn a_gossiped_copy_of_a_message_seen_again_copies_it_as_a_redelivery() {
        let mut tracker =
            SamplingTracker::new(SamplingConfig::new(Duration::from_secs(60))).expect("valid");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        tracker.merge_copy("a", unix_millis(t0), 5, 10);
        let again = tracker.observe("a", 5, t0, 10, false);
        assert_eq!(
            again.verdict,
            SamplingVerdict::Copy(CopyReason::Redelivered)
        );
    }
}
