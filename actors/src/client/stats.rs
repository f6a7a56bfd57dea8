//! [`Stats`]: summary statistics of reply arrival times.

use std::time::Duration;

use serde::Serialize;

/// Min, percentiles (nearest rank), max, mean and population standard deviation of a set of
/// durations, in nanoseconds. All zero for an empty set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Number of samples.
    pub count: usize,
    /// Smallest.
    pub min_ns: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Population standard deviation.
    pub stddev_ns: f64,
}

impl Stats {
    /// Statistics of `samples`.
    pub fn of(samples: &[Duration]) -> Self {
        let mut ns: Vec<u64> = samples.iter().map(|d| duration_ns(*d)).collect();
        Self::of_ns(&mut ns)
    }

    /// Statistics of nanosecond samples (sorted in place).
    pub fn of_ns(ns: &mut [u64]) -> Self {
        if ns.is_empty() {
            return Self::default();
        }
        ns.sort_unstable();
        let n = ns.len() as f64;
        let mean = ns.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = ns.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        Self {
            count: ns.len(),
            min_ns: ns[0],
            p50_ns: percentile(ns, 50.0),
            p90_ns: percentile(ns, 90.0),
            p99_ns: percentile(ns, 99.0),
            max_ns: ns[ns.len() - 1],
            mean_ns: mean,
            stddev_ns: var.sqrt(),
        }
    }
}

/// Nearest-rank percentile `p` (0..=100) of sorted, non-empty `sorted`.
pub(super) fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `d` in nanoseconds, saturating.
pub(super) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero() {
        assert_eq!(Stats::of(&[]), Stats::default());
    }

    #[test]
    fn one_to_hundred() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_nanos).collect();
        let s = Stats::of(&samples);
        assert_eq!(s.count, 100);
        assert_eq!(
            (s.min_ns, s.p50_ns, s.p90_ns, s.p99_ns, s.max_ns),
            (1, 50, 90, 99, 100)
        );
        assert!((s.mean_ns - 50.5).abs() < 1e-9);
        assert!((s.stddev_ns - 28.866_070_047_722_12).abs() < 1e-6);
    }

    #[test]
    fn single_and_unsorted() {
        let s = Stats::of_ns(&mut [7]);
        assert_eq!((s.min_ns, s.p50_ns, s.p99_ns, s.max_ns), (7, 7, 7, 7));
        assert_eq!(s.stddev_ns, 0.0);
        let s = Stats::of_ns(&mut [30, 10, 20]);
        assert_eq!((s.min_ns, s.p50_ns, s.max_ns), (10, 20, 30));
    }
}
