//! [`FailureLog`]: how often a fleet logs its daemons' connect failures.
//!
//! Thousands of daemons failing to reach a server would print thousands of lines; instead
//! failures are logged at most once per period, each line saying how many failures it stands
//! for. The first period starts with the fleet: a node that starts its own servers has daemons
//! fail for a moment, which is the expected start-up order, not trouble.

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
    /// At most one line per `period`, the first one `period` after `start` at the earliest.
    pub(super) fn new(period: Duration, start: Instant) -> Self {
        Self {
            period,
            state: Mutex::new((Some(start), 0)),
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
    fn logs_once_per_period_with_the_count_and_not_at_start_up() {
        let t0 = Instant::now();
        let log = FailureLog::new(Duration::from_secs(10), t0);
        assert_eq!(log.note(t0), None);
        for s in 1..10 {
            assert_eq!(log.note(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(log.note(t0 + Duration::from_secs(10)), Some(11));
        assert_eq!(log.note(t0 + Duration::from_secs(11)), None);
        assert_eq!(log.note(t0 + Duration::from_secs(25)), Some(2));
        assert_eq!(log.note(t0 + Duration::from_secs(26)), None);
    }
}
