//! [`ArrivalWindow`]: how long a discovery told how many nodes to expect keeps waiting.
//!
//! A large fleet answers in bursts, and the first replies may come late (the servers are busy
//! delivering the request to every node), so a fixed timeout either cuts a discovery of
//! 50 000 nodes short or makes every small one slow. The rule: a discovery that expects `n`
//! nodes ends as soon as `n` answered; at its timeout it keeps waiting while replies still
//! arrive, that is until no reply came for [`ArrivalWindow::quiet`] (1 s, or the timeout when
//! that is shorter), and never longer than [`EXTENSION_FACTOR`] × the timeout.

use std::time::Duration;

/// The longest a discovery waits, as a multiple of its timeout.
pub const EXTENSION_FACTOR: u32 = 10;

/// The longest pause between two replies that still counts as "replies still arrive".
pub const MAX_QUIET: Duration = Duration::from_secs(1);

/// What to do when a deadline of the request passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineAction {
    /// End the request now.
    Stop,
    /// Look again this long after the start of the request.
    CheckAt(Duration),
}

/// The waiting rule of one discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivalWindow {
    timeout: Duration,
    quiet: Duration,
    cap: Duration,
}

impl ArrivalWindow {
    /// The rule for a discovery with `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            quiet: timeout.min(MAX_QUIET),
            cap: timeout.saturating_mul(EXTENSION_FACTOR),
        }
    }

    /// The pause between replies that ends the extension.
    pub fn quiet(&self) -> Duration {
        self.quiet
    }

    /// The longest the request may take.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// At `elapsed` since the request started, with the last reply at `last_reply` (since
    /// the start too): stop, or when to look again.
    pub fn verdict(&self, elapsed: Duration, last_reply: Option<Duration>) -> DeadlineAction {
        let end = last_reply
            .map_or(self.timeout, |at| self.timeout.max(at + self.quiet))
            .min(self.cap);
        if elapsed >= end {
            DeadlineAction::Stop
        } else {
            DeadlineAction::CheckAt(end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn stops_at_the_timeout_when_nothing_arrives() {
        let w = ArrivalWindow::new(ms(2000));
        assert_eq!(w.verdict(ms(2000), None), DeadlineAction::Stop);
        assert_eq!(w.verdict(ms(1500), None), DeadlineAction::CheckAt(ms(2000)));
    }

    #[test]
    fn stops_at_the_timeout_when_replies_stopped_long_before() {
        let w = ArrivalWindow::new(ms(2000));
        assert_eq!(w.verdict(ms(2000), Some(ms(300))), DeadlineAction::Stop);
    }

    #[test]
    fn keeps_waiting_while_replies_arrive() {
        let w = ArrivalWindow::new(ms(2000));
        assert_eq!(w.quiet(), ms(1000));
        assert_eq!(
            w.verdict(ms(2000), Some(ms(1900))),
            DeadlineAction::CheckAt(ms(2900))
        );
        // Another burst at 2.8 s: look again a quiet period after it.
        assert_eq!(
            w.verdict(ms(2900), Some(ms(2800))),
            DeadlineAction::CheckAt(ms(3800))
        );
        // Quiet since 2.8 s: done.
        assert_eq!(w.verdict(ms(3800), Some(ms(2800))), DeadlineAction::Stop);
    }

    #[test]
    fn never_waits_beyond_the_cap() {
        let w = ArrivalWindow::new(ms(2000));
        assert_eq!(w.cap(), ms(20_000));
        assert_eq!(
            w.verdict(ms(19_900), Some(ms(19_800))),
            DeadlineAction::CheckAt(ms(20_000))
        );
        assert_eq!(
            w.verdict(ms(20_000), Some(ms(19_999))),
            DeadlineAction::Stop
        );
    }

    #[test]
    fn a_short_timeout_has_a_short_quiet_period() {
        let w = ArrivalWindow::new(ms(300));
        assert_eq!(w.quiet(), ms(300));
        assert_eq!(
            w.verdict(ms(300), Some(ms(250))),
            DeadlineAction::CheckAt(ms(550))
        );
    }
}
