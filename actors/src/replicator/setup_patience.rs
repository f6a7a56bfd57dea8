//! [`SetupPatience`]: how loudly a replicator reports that it cannot set itself up yet.
//!
//! At node start a replicator often comes up before the adapter or the other node that creates
//! its source stream: that is the expected start-up order, not trouble. So the first failure is
//! an INFO line, a WARN follows only when it still fails after [`WARN_AFTER`], and an ERROR
//! when it still fails after [`ERROR_AFTER_ATTEMPTS`] attempts (the operator must act).

use std::time::Duration;

/// How long set-up may keep failing before it is worth a WARN.
pub const WARN_AFTER: Duration = Duration::from_secs(30);

/// Failed attempts after which set-up is worth an ERROR (65–80 s with `Backoff::SETUP`).
pub const ERROR_AFTER_ATTEMPTS: u32 = 20;

/// A level to log a failed set-up attempt at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The first failure: waiting, as expected at start-up.
    Info,
    /// Still failing after [`WARN_AFTER`].
    Warn,
    /// Still failing after [`ERROR_AFTER_ATTEMPTS`].
    Error,
}

/// Which failed attempts are logged, and how.
#[derive(Debug, Default)]
pub struct SetupPatience {
    warned: bool,
}

impl SetupPatience {
    /// Failed attempt `attempt` (0-based), `elapsed` after the first one: the line to log, if
    /// any (each level at most once).
    pub fn failed(&mut self, attempt: u32, elapsed: Duration) -> Option<Report> {
        if attempt == 0 {
            return Some(Report::Info);
        }
        if attempt == ERROR_AFTER_ATTEMPTS {
            return Some(Report::Error);
        }
        if elapsed >= WARN_AFTER && !self.warned && attempt < ERROR_AFTER_ATTEMPTS {
            self.warned = true;
            return Some(Report::Warn);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_start_up_order_is_info_then_quiet() {
        let mut p = SetupPatience::default();
        assert_eq!(p.failed(0, Duration::ZERO), Some(Report::Info));
        for attempt in 1..8 {
            assert_eq!(
                p.failed(attempt, Duration::from_secs(u64::from(attempt))),
                None
            );
        }
    }

    #[test]
    fn a_lasting_failure_warns_once_then_errors() {
        let mut p = SetupPatience::default();
        assert_eq!(p.failed(0, Duration::ZERO), Some(Report::Info));
        assert_eq!(p.failed(9, WARN_AFTER), Some(Report::Warn));
        assert_eq!(p.failed(10, WARN_AFTER * 2), None);
        assert_eq!(
            p.failed(ERROR_AFTER_ATTEMPTS, WARN_AFTER * 3),
            Some(Report::Error)
        );
        assert_eq!(p.failed(ERROR_AFTER_ATTEMPTS + 1, WARN_AFTER * 4), None);
    }
}
