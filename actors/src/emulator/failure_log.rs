//! [`FailureLog`]: how often a fleet logs its daemons' connect failures.
//!
//! Thousands of daemons failing to reach a server would print thousands of lines; instead the
//! first failure is logged at once and later ones at most once per period, each line saying
//! how many failures it stands for.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often a fleet logs connect failures at most.
pub(super) const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(10);

/// Failures counted since the last line, and when that line was.
#[derive(Debug)]
pub(super) struct FailureLog {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl FailureLog {
    /// At most one line per `period`.
    pub(super) fn new(period: Duration) -> Self {
        Self {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// Notes one failure at `now`; returns `Some(failures)` when a line is due, with the
    /// failures it stands for (this one included).
    pub(super) fn note(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock();
        let (last, since) = &mut *state;
        *since = since.saturating_add(1);
        let due = last.is_none_or(|at| now.saturating_duration_since(at) >= self.period);
        if !due {
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_failure_then_once_per_period_with_the_count() {
        let log = FailureLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.note(t0), Some(1));
        for s in 1..10 {
            assert_eq!(log.note(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(log.note(t0 + Duration::from_secs(10)), Some(10));
        assert_eq!(log.note(t0 + Duration::from_secs(11)), None);
        assert_eq!(log.note(t0 + Duration::from_secs(25)), Some(2));
    }
}
