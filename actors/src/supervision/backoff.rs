//! The one backoff policy of every retry loop: a delay that grows by `factor` from `initial`
//! up to `max`, spread by a bounded jitter so that many retriers do not retry in step.
//!
//! A [`Backoff`] is a plain value: [`Backoff::next_delay`] hands out the delay before the next
//! attempt and counts it, [`Backoff::reset`] starts over after a success, and
//! [`Backoff::delay`] answers for any attempt without state (for callers that count attempts
//! themselves, such as async-nats's reconnect callback). The random source of the jitter is a
//! parameter of the `*_with` methods, so tests pin it.

use std::time::Duration;

use rand::Rng;

/// How the delays of a [`Backoff`] are spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Exact delays.
    None,
    /// Up to this many percent (at most 100) of each delay taken off at random: a delay is
    /// never longer than the exact one, so the cap holds.
    Shorten(u8),
    /// A random extra in `[0, spread)` added to each delay: a fleet that lost its server at
    /// one moment does not come back in one burst, however short the exact delay.
    Spread(Duration),
}

/// A delay that grows from `initial` by `factor` per attempt up to `max`, with [`Jitter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: u32,
    jitter: Jitter,
    attempts: u32,
}

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

const fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// `d` in nanoseconds, saturated.
fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A uniform `draw` scaled into `0..bound` (0 when `bound` is 0), without rejection: the same
/// draw always gives the same value, so a pinned source pins the jitter.
fn scale(draw: u64, bound: u64) -> u64 {
    let scaled = (u128::from(draw) * u128::from(bound)) >> 64;
    u64::try_from(scaled).unwrap_or(bound)
}

/// The jitter of the presets: up to a fifth of each delay off.
const PRESET_JITTER: Jitter = Jitter::Shorten(20);

impl Backoff {
    /// Waiting for what a component needs before it can start: a replicator's networks and
    /// streams, an emulated daemon's first connect. 200 ms doubling to 5 s.
    pub const SETUP: Self = Self::new(ms(200), secs(5)).with_jitter(PRESET_JITTER);
    /// Resuming a replicator worker's copy loop after an interruption (ordered resync, queued
    /// re-subscribe): 50 ms doubling to 2 s, so a blip costs little.
    pub const RESUME: Self = Self::new(ms(50), secs(2)).with_jitter(PRESET_JITTER);
    /// Retrying one message or one request: a queued worker's failed publish, an adapter
    /// worker's wait for its network's client. 100 ms doubling to 2 s.
    pub const RETRY: Self = Self::new(ms(100), secs(2)).with_jitter(PRESET_JITTER);
    /// Restarting an actor whose setup failed (the federation broker), and connecting a
    /// dedicated connection (with the network's `max_backoff` as cap). 100 ms doubling to 5 s.
    pub const RESTART: Self = Self::new(ms(100), secs(5)).with_jitter(PRESET_JITTER);
    /// Restarting a child process that exited (the embedded nats-server): 250 ms doubling to
    /// 10 s, so a server that cannot start does not spin.
    pub const PROCESS_RESTART: Self = Self::new(ms(250), secs(10)).with_jitter(PRESET_JITTER);
    /// An emulated daemon reconnecting after its connection was lost: 250 ms doubling to 5 s,
    /// plus 0–2 s spread so that thousands of daemons do not come back in one burst.
    pub const FLEET_RECONNECT: Self =
        Self::new(ms(250), secs(5)).with_jitter(Jitter::Spread(secs(2)));

    /// Doubling from `initial` up to `max`, exact (no jitter): the shape of the configurable
    /// backoffs (`[networks.X]`, `[adapters.X]`), whose documented delays are exact.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            factor: 2,
            jitter: Jitter::None,
            attempts: 0,
        }
    }

    /// The same policy growing by `factor` per attempt (1: constant delay; 0 counts as 1).
    #[must_use]
    pub const fn with_factor(self, factor: u32) -> Self {
        Self {
            factor: if factor == 0 { 1 } else { factor },
            ..self
        }
    }

    /// The same policy with `jitter`.
    #[must_use]
    pub const fn with_jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// The same policy capped at `max` instead.
    #[must_use]
    pub const fn with_max(self, max: Duration) -> Self {
        Self { max, ..self }
    }

    /// The first delay.
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap of the exact delays.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The jitter.
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// How many delays [`Backoff::next_delay`] handed out since the start or the last
    /// [`Backoff::reset`]: the 0-based number of the coming attempt.
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay before attempt `attempt` (0-based) without jitter: `initial × factor^attempt`,
    /// capped at `max`.
    pub fn exact(&self, attempt: u32) -> Duration {
        match self.factor.max(1).checked_pow(attempt) {
            Some(growth) => self.initial.saturating_mul(growth).min(self.max),
            None => self.max,
        }
    }

    /// The delay before attempt `attempt` (0-based), jittered with `rng` (one draw).
    pub fn delay_with<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let exact = self.exact(attempt);
        match self.jitter {
            Jitter::None => exact,
            Jitter::Shorten(percent) => {
                let nanos = u128::from(nanos_of(exact));
                let most = nanos * u128::from(percent.min(100)) / 100;
                let most = u64::try_from(most).unwrap_or(u64::MAX);
                // 0..=most: the whole cut is reachable.
                let cut = scale(rng.gen(), most.saturating_add(1));
                exact.saturating_sub(Duration::from_nanos(cut))
            }
            Jitter::Spread(spread) => {
                let extra = scale(rng.gen(), nanos_of(spread));
                exact.saturating_add(Duration::from_nanos(extra))
            }
        }
    }

    /// The delay before attempt `attempt` (0-based), jittered with the thread's random source.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, &mut rand::thread_rng())
    }

    /// The delay before the next attempt, jittered with `rng`; counts the attempt.
    pub fn next_delay_with<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let delay = self.delay_with(self.attempts, rng);
        self.attempts = self.attempts.saturating_add(1);
        delay
    }

    /// The delay before the next attempt; counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(&mut rand::thread_rng())
    }

    /// Starts over from `initial` (after a success).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// A source whose every draw is the smallest value of the range.
    fn lowest() -> StepRng {
        StepRng::new(0, 0)
    }

    /// A source whose every draw is the largest value of the range.
    fn highest() -> StepRng {
        StepRng::new(u64::MAX, 0)
    }

    #[test]
    fn delays_double_from_initial_then_stay_at_the_cap() {
        let mut b = Backoff::new(ms(100), secs(5));
        let delays: Vec<_> = (0..9).map(|_| b.next_delay()).collect();
        assert_eq!(
            delays,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                secs(5),
                secs(5),
                secs(5)
            ]
        );
        assert_eq!(b.attempts(), 9);
    }

    #[test]
    fn the_factor_sets_the_growth() {
        let b = Backoff::new(ms(10), secs(60)).with_factor(3);
        assert_eq!(b.exact(0), ms(10));
        assert_eq!(b.exact(1), ms(30));
        assert_eq!(b.exact(2), ms(90));
        let constant = Backoff::new(ms(10), secs(60)).with_factor(1);
        assert_eq!(constant.exact(50), ms(10));
        assert_eq!(
            Backoff::new(ms(10), secs(60)).with_factor(0).exact(7),
            ms(10)
        );
    }

    #[test]
    fn huge_attempts_neither_overflow_nor_pass_the_cap() {
        let b = Backoff::new(ms(100), secs(5));
        assert_eq!(b.exact(31), secs(5));
        assert_eq!(b.exact(64), secs(5));
        assert_eq!(b.exact(u32::MAX), secs(5));
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.exact(3), Duration::MAX);
        let mut counted = Backoff::new(ms(1), ms(2));
        counted.attempts = u32::MAX;
        assert_eq!(counted.next_delay(), ms(2));
        assert_eq!(counted.attempts(), u32::MAX);
    }

    #[test]
    fn reset_starts_over_from_initial() {
        let mut b = Backoff::RESUME;
        for _ in 0..6 {
            b.next_delay_with(&mut lowest());
        }
        assert_eq!(b.next_delay_with(&mut lowest()), secs(2));
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay_with(&mut lowest()), ms(50));
        assert_eq!(b.next_delay_with(&mut lowest()), ms(100));
    }

    #[test]
    fn shorten_jitter_stays_between_the_cut_and_the_exact_delay() {
        let b = Backoff::new(ms(1000), secs(8)).with_jitter(Jitter::Shorten(20));
        // The pinned extremes: nothing taken off, or the whole fifth.
        assert_eq!(b.delay_with(0, &mut lowest()), ms(1000));
        assert_eq!(b.delay_with(0, &mut highest()), ms(800));
        assert_eq!(b.delay_with(10, &mut highest()), ms(6400));
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for attempt in 0..12 {
            for _ in 0..200 {
                let d = b.delay_with(attempt, &mut rng);
                let exact = b.exact(attempt);
                assert!(d <= exact && d >= exact * 4 / 5, "{d:?} for {exact:?}");
                assert!(d <= b.max());
                seen.insert(d);
            }
        }
        assert!(
            seen.len() > 100,
            "the jitter does spread: {} values",
            seen.len()
        );
    }

    #[test]
    fn shorten_jitter_is_bounded_by_a_whole_delay() {
        let b = Backoff::new(ms(100), secs(1)).with_jitter(Jitter::Shorten(250));
        assert_eq!(b.delay_with(0, &mut highest()), Duration::ZERO);
        assert_eq!(b.delay_with(0, &mut lowest()), ms(100));
    }

    #[test]
    fn spread_jitter_adds_less_than_the_spread() {
        let b = Backoff::FLEET_RECONNECT;
        assert_eq!(b.delay_with(0, &mut lowest()), ms(250));
        let top = b.delay_with(0, &mut highest());
        assert!(top < ms(2250) && top > ms(2249), "{top:?}");
        let mut rng = StdRng::seed_from_u64(11);
        for attempt in [0, 1, 4, 30] {
            for _ in 0..200 {
                let d = b.delay_with(attempt, &mut rng);
                let exact = b.exact(attempt);
                assert!(d >= exact && d < exact + secs(2), "{d:?} for {exact:?}");
            }
        }
        let none = Backoff::new(ms(5), ms(5)).with_jitter(Jitter::Spread(Duration::ZERO));
        assert_eq!(none.delay_with(0, &mut highest()), ms(5));
    }

    #[test]
    fn presets_keep_the_old_pairs() {
        let pairs = [
            (Backoff::SETUP, ms(200), secs(5)),
            (Backoff::RESUME, ms(50), secs(2)),
            (Backoff::RETRY, ms(100), secs(2)),
            (Backoff::RESTART, ms(100), secs(5)),
            (Backoff::PROCESS_RESTART, ms(250), secs(10)),
            (Backoff::FLEET_RECONNECT, ms(250), secs(5)),
        ];
        for (preset, initial, max) in pairs {
            assert_eq!((preset.initial(), preset.max()), (initial, max));
            assert_eq!(preset.exact(0), initial);
            assert_eq!(preset.exact(1), initial * 2);
            assert_eq!(preset.exact(40), max);
            assert_ne!(preset.jitter(), Jitter::None, "{preset:?} has jitter");
            assert_eq!(preset.attempts(), 0);
        }
        assert_eq!(
            Backoff::RESTART.with_max(secs(30)).exact(20),
            secs(30),
            "a dedicated connection takes its network's cap"
        );
    }

    #[test]
    fn the_configurable_shape_is_exact() {
        let b = Backoff::new(ms(100), ms(300));
        assert_eq!(b.jitter(), Jitter::None);
        assert_eq!(b.delay_with(0, &mut highest()), ms(100));
        assert_eq!(b.delay_with(1, &mut highest()), ms(200));
        assert_eq!(b.delay_with(2, &mut highest()), ms(300));
    }
}
