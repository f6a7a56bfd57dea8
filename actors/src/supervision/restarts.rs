//! The restart policy of a supervised actor or process: how long to wait before the next
//! start, given how the earlier runs ended.
//!
//! ```text
//! first start ─────────────────────────────► now
//! the run ended on its own (subscription ended) ► after_end (a fixed pause), budget refilled
//! setup failed / the process exited        ─► backoff, growing with each failure in a row
//! a run that lasted stable_after, then exited ► budget refilled first: backoff from initial
//! ```
//!
//! Failures in a row spend the restart budget: each one makes the next wait longer (up to the
//! backoff's cap). A run that ended on its own, or one that lasted at least `stable_after`,
//! refills it. The actor keeps its [`Restarts`] across actix `Supervisor` restarts (it is part
//! of the actor's struct), reports each run's end, and asks [`Restarts::delay`] in `started`.

use std::time::Duration;

use rand::Rng;

use super::backoff::Backoff;

/// The restart-with-backoff state machine shared by every restarting actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restarts {
    backoff: Backoff,
    after_end: Duration,
    stable_after: Option<Duration>,
    /// Failures in a row.
    failures: u32,
    /// The last run ended on its own.
    ended: bool,
}

impl Restarts {
    /// Restarts after failures with `backoff`, at once after a run that ended on its own, and
    /// no run counts as stable.
    pub const fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            after_end: Duration::ZERO,
            stable_after: None,
            failures: 0,
            ended: false,
        }
    }

    /// The same policy waiting `pause` before restarting a run that ended on its own (a
    /// subscription that ended while its connection closes: retrying at once would spin).
    #[must_use]
    pub const fn after_end(self, pause: Duration) -> Self {
        Self {
            after_end: pause,
            ..self
        }
    }

    /// The same policy counting a run that lasted at least `lasted` as healthy: its exit
    /// restarts with the backoff's first delay, whatever failed before.
    #[must_use]
    pub const fn stable_after(self, lasted: Duration) -> Self {
        Self {
            stable_after: Some(lasted),
            ..self
        }
    }

    /// The last run ended on its own: the failures are forgiven and the next start waits the
    /// `after_end` pause.
    pub fn ended(&mut self) {
        self.failures = 0;
        self.ended = true;
    }

    /// The last run failed (its setup, or the process died at once): one more failure in a
    /// row.
    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.ended = false;
    }

    /// The last run failed after lasting `lasted`: counts as [`Restarts::failed`], after
    /// forgiving the earlier failures when it lasted `stable_after` or more.
    pub fn exited(&mut self, lasted: Duration) {
        if self.stable_after.is_some_and(|stable| lasted >= stable) {
            self.failures = 0;
        }
        self.failed();
    }

    /// Failures in a row so far (0 after a run that ended on its own or a stable run).
    pub const fn failures(&self) -> u32 {
        self.failures
    }

    /// The wait before the next start, jittered with `rng`: none before the first start,
    /// the `after_end` pause after a run that ended on its own, the backoff after failures.
    pub fn delay_with<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        if self.ended {
            self.after_end
        } else if self.failures == 0 {
            Duration::ZERO
        } else {
            self.backoff.delay_with(self.failures - 1, rng)
        }
    }

    /// The wait before the next start, jittered with the thread's random source.
    pub fn delay(&self) -> Duration {
        self.delay_with(&mut rand::thread_rng())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervision::backoff::Jitter;
    use rand::rngs::mock::StepRng;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn exact(restarts: &Restarts) -> Duration {
        restarts.delay_with(&mut StepRng::new(0, 0))
    }

    /// The adapter's and the broker's policy: exact backoff, 1 s after a run that ended.
    fn subscriber() -> Restarts {
        Restarts::new(Backoff::new(ms(100), ms(5000))).after_end(ms(1000))
    }

    #[test]
    fn the_first_start_does_not_wait() {
        let r = subscriber();
        assert_eq!(r.failures(), 0);
        assert_eq!(exact(&r), Duration::ZERO);
    }

    #[test]
    fn failures_in_a_row_grow_the_wait_up_to_the_cap() {
        let mut r = subscriber();
        let mut waits = Vec::new();
        for _ in 0..8 {
            r.failed();
            waits.push(exact(&r));
        }
        assert_eq!(
            waits,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(5000),
                ms(5000)
            ]
        );
        assert_eq!(r.failures(), 8);
    }

    #[test]
    fn a_run_that_ended_pauses_then_refills_the_budget() {
        let mut r = subscriber();
        for _ in 0..5 {
            r.failed();
        }
        r.ended();
        assert_eq!(r.failures(), 0);
        assert_eq!(exact(&r), ms(1000), "the fixed pause, not the backoff");
        r.ended();
        assert_eq!(exact(&r), ms(1000));
        r.failed();
        assert_eq!(exact(&r), ms(100), "the backoff starts over");
        assert_eq!(r.failures(), 1);
    }

    #[test]
    fn quick_exits_spend_the_budget_and_a_stable_run_refills_it() {
        // The embedded server's policy: every exit is a failure, a run of 30 s was healthy.
        let mut r = Restarts::new(Backoff::new(ms(250), ms(10_000))).stable_after(ms(30_000));
        r.exited(ms(10));
        assert_eq!(exact(&r), ms(250));
        r.exited(ms(10));
        assert_eq!(exact(&r), ms(500));
        r.exited(ms(29_999));
        assert_eq!(exact(&r), ms(1000), "not long enough: still spending");
        assert_eq!(r.failures(), 3);
        r.exited(ms(30_000));
        assert_eq!(r.failures(), 1);
        assert_eq!(exact(&r), ms(250), "a stable run refilled the budget");
        r.exited(ms(1));
        assert_eq!(exact(&r), ms(500));
    }

    #[test]
    fn without_stable_after_no_run_refills_the_budget() {
        let mut r = Restarts::new(Backoff::new(ms(250), ms(10_000)));
        r.exited(ms(1));
        r.exited(Duration::MAX);
        assert_eq!(r.failures(), 2);
        assert_eq!(exact(&r), ms(500));
    }

    #[test]
    fn the_budget_never_overflows() {
        let mut r = subscriber();
        r.failures = u32::MAX;
        r.failed();
        assert_eq!(r.failures(), u32::MAX);
        assert_eq!(exact(&r), ms(5000));
    }

    #[test]
    fn the_backoffs_jitter_applies_to_failures_only() {
        let backoff = Backoff::new(ms(1000), ms(8000)).with_jitter(Jitter::Shorten(20));
        let mut r = Restarts::new(backoff).after_end(ms(1000));
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(r.delay_with(&mut rng), Duration::ZERO);
        r.failed();
        for _ in 0..100 {
            let d = r.delay_with(&mut rng);
            assert!(d >= ms(800) && d <= ms(1000), "{d:?}");
        }
        r.ended();
        for _ in 0..10 {
            assert_eq!(r.delay_with(&mut rng), ms(1000));
        }
    }
}
