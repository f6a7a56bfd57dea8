//! The Choria Stream Replicator's metric names, served beside choir's own for replicators with
//! `compat = "choria"`, so the SR's dashboard (grafana.com 15928) and alerts find them.
//!
//! The values are read from choir's own counters at each scrape (nothing more is counted on
//! the copy path). Labels are the SR's: `stream` (source stream), `replicator` (the SR's
//! top-level name: choir's node name) and `worker` (the per-stream name: choir's replicator).
//!
//! The SR serves the Prometheus text format, where a counter's series is its bare name;
//! OpenMetrics (which choir serves) would add `_total` to a counter. So that queries written
//! for the SR match, the SR's counters are declared `unknown` and keep their bare names.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::ReplicatorStats;

/// The SR's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SrLabels {
    /// The source stream.
    pub stream: String,
    /// The SR's top-level name: choir's node name.
    pub replicator: String,
    /// The SR's per-stream name: choir's replicator name.
    pub worker: String,
}

/// One replicator exposed under the SR's names.
#[derive(Clone, Debug)]
struct Exposed {
    labels: SrLabels,
    stats: ReplicatorStats,
    heartbeat: bool,
}

/// How a series is declared.
#[derive(Clone, Copy)]
enum Kind {
    /// A counter in the SR, served under its bare name.
    Counter,
    /// A gauge.
    Gauge,
}

type Read = fn(&ReplicatorStats) -> f64;

fn n(v: u64) -> f64 {
    v as f64
}

/// The SR's per-replicator series and where choir keeps each value.
const SERIES: &[(&str, &str, Kind, Read)] = &[
    (
        "replicator_total_messages",
        "Messages received from the source, copied or not",
        Kind::Counter,
        |s| n(s.received.get()),
    ),
    (
        "replicator_total_bytes",
        "Payload bytes received from the source, copied or not",
        Kind::Counter,
        |s| n(s.received_bytes.get()),
    ),
    (
        "replicator_handler_error_count",
        "Target publishes that failed (transient, rejected, out of order)",
        Kind::Counter,
        |s| n(s.failed_transient.get() + s.failed_rejected.get() + s.failed_out_of_order.get()),
    ),
    (
        "replicator_stream_sequence",
        "Source stream sequence of the last message received",
        Kind::Gauge,
        |s| s.stream_sequence.get() as f64,
    ),
    (
        "replicator_too_old_messages",
        "Messages skipped as older than max_age",
        Kind::Counter,
        |s| n(s.skipped_too_old.get()),
    ),
    (
        "replicator_copied_messages",
        "Messages copied into the target",
        Kind::Counter,
        |s| n(s.copied.get()),
    ),
    (
        "replicator_copied_bytes",
        "Payload bytes copied into the target",
        Kind::Counter,
        |s| n(s.bytes.get()),
    ),
    (
        "replicator_skipped_messages",
        "Messages skipped by sampling",
        Kind::Counter,
        |s| n(s.skipped_sampling.get()),
    ),
    (
        "replicator_skipped_bytes",
        "Payload bytes skipped by sampling",
        Kind::Counter,
        |s| n(s.skipped_bytes.get()),
    ),
    (
        "replicator_meta_parse_failed_count",
        "Source messages without JetStream metadata (choir restarts the session on one; always 0)",
        Kind::Counter,
        |_| 0.0,
    ),
    (
        "replicator_ack_failed_count",
        "Source acks that failed (choir resyncs instead of counting; always 0)",
        Kind::Counter,
        |_| 0.0,
    ),
    (
        "replicator_consumer_recreated",
        "Times a worker resumed from the position known to be in the target",
        Kind::Counter,
        |s| n(s.resyncs.get()),
    ),
    (
        "tracker_total_items",
        "Senders in the sampling tracker",
        Kind::Gauge,
        |s| s.senders.get() as f64,
    ),
    (
        "tracker_seen_by_gossip",
        "Sampled copies learnt from HA peers' gossip and merged into the tracker",
        Kind::Gauge,
        |s| n(s.gossip_of("merged")),
    ),
    (
        "advisor_publish_errors",
        "Advisories that could not be published or were dropped",
        Kind::Counter,
        |s| n(s.advisories_of("failed") + s.advisories_of("dropped")),
    ),
    (
        "advisor_publish_total_messages",
        "Advisories published",
        Kind::Counter,
        |s| {
            n(["new", "timeout", "recover", "expire"]
                .iter()
                .map(|e| s.advisories_of(e))
                .sum())
        },
    ),
    (
        "limiter_messages_without_limit_field_count",
        "Messages without the inspected field or header, copied unsampled",
        Kind::Counter,
        |s| n(s.no_sender.get()),
    ),
    (
        "limiter_messages_copy_forced_count",
        "Copies forced by force_field",
        Kind::Counter,
        |s| n(s.forced.get()),
    ),
    (
        "election_campaigns",
        "Elections this node won (choir counts wins, the SR counts every campaign)",
        Kind::Counter,
        |s| n(s.elections.get()),
    ),
    (
        "election_leader",
        "1 while this node leads the replicator (always 1 without [replicators.X.ha])",
        Kind::Gauge,
        |s| s.leader.get() as f64,
    ),
];

/// The SR's heartbeat series (replicators with a heartbeat only).
const HEARTBEAT_SERIES: &[(&str, &str, Kind, Read)] = &[
    (
        "heartbeat_subjects_count",
        "Heartbeat subjects (one per replicator in choir)",
        Kind::Gauge,
        |_| 1.0,
    ),
    (
        "heartbeat_published_count",
        "Heartbeats published",
        Kind::Counter,
        |s| n(s.heartbeats_sent.get()),
    ),
    (
        "heartbeat_published_error_count",
        "Heartbeats that could not be published",
        Kind::Counter,
        |s| n(s.heartbeat_errors.get()),
    ),
    (
        "heartbeat_publish_time",
        "How long the last heartbeat publish took, seconds",
        Kind::Gauge,
        |s| s.heartbeat_seconds.get(),
    ),
    (
        "heartbeat_paused",
        "1 while heartbeats are paused (never in choir)",
        Kind::Gauge,
        |_| 0.0,
    ),
];

/// The prefix of every SR metric.
pub const PREFIX: &str = "choria_stream_replicator_";

/// The replicators exposed under the SR's names; a [`Collector`] registered once per node.
#[derive(Clone, Debug, Default)]
pub struct ChoriaSeries {
    exposed: Arc<Mutex<Vec<Exposed>>>,
}

impl ChoriaSeries {
    /// Exposes `stats` (of the replicator copying `stream` on node `site`) under the SR's
    /// names; with `heartbeat`, the heartbeat series too.
    pub fn expose(&self, stats: &ReplicatorStats, stream: &str, site: &str, heartbeat: bool) {
        let labels = SrLabels {
            stream: stream.to_owned(),
            replicator: site.to_owned(),
            worker: stats.name().to_owned(),
        };
        let mut exposed = self.exposed.lock();
        exposed.retain(|e| e.labels != labels);
        exposed.push(Exposed {
            labels,
            stats: stats.clone(),
            heartbeat,
        });
    }

    /// Every series name served while at least one replicator is exposed (with and
    /// without heartbeats), for documentation and tests.
    pub fn names() -> Vec<String> {
        let mut names: Vec<String> = SERIES
            .iter()
            .chain(HEARTBEAT_SERIES)
            .map(|(name, ..)| format!("{PREFIX}{name}"))
            .collect();
        names.push(format!("{PREFIX}replicator_processing_time_seconds"));
        names
    }
}

fn encode_series(
    encoder: &mut DescriptorEncoder,
    series: &[(&str, &str, Kind, Read)],
    exposed: &[&Exposed],
) -> Result<(), std::fmt::Error> {
    for (name, help, kind, read) in series {
        let name = format!("{PREFIX}{name}");
        let metric_type = match kind {
            Kind::Counter => MetricType::Unknown,
            Kind::Gauge => MetricType::Gauge,
        };
        let mut family = encoder.encode_descriptor(&name, help, None, metric_type)?;
        for e in exposed {
            ConstGauge::new(read(&e.stats)).encode(family.encode_family(&e.labels)?)?;
        }
    }
    Ok(())
}

impl Collector for ChoriaSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let exposed = self.exposed.lock().clone();
        if exposed.is_empty() {
            return Ok(());
        }
        let all: Vec<&Exposed> = exposed.iter().collect();
        encode_series(&mut encoder, SERIES, &all)?;
        let name = format!("{PREFIX}replicator_processing_time_seconds");
        let mut family = encoder.encode_descriptor(
            &name,
            "Time from target publish to target ack of copies, seconds",
            None,
            MetricType::Histogram,
        )?;
        for e in &all {
            let count = e.stats.copied.get();
            let sum = e.stats.processing_micros.get() as f64 / 1e6;
            family.encode_family(&e.labels)?.encode_histogram(
                sum,
                count,
                &[(f64::MAX, count)],
                None::<&HashMap<usize, Exemplar<SrLabels, f64>>>,
            )?;
        }
        let beating: Vec<&Exposed> = exposed.iter().filter(|e| e.heartbeat).collect();
        if !beating.is_empty() {
            encode_series(&mut encoder, HEARTBEAT_SERIES, &beating)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsRegistry;
    use crate::replicator::metrics::ReplicatorMetrics;

    #[test]
    fn exposed_replicators_are_served_under_the_sr_names_and_labels() {
        let metrics = MetricsRegistry::new();
        let families = ReplicatorMetrics::register(&metrics);
        let stats = families.for_replicator("part1");
        let text = metrics.encode().unwrap();
        assert!(
            !text.contains(PREFIX),
            "nothing before a replicator is exposed"
        );
        families.choria().expose(&stats, "REG", "US-EAST-1", false);
        stats.record_received(7, 100);
        stats.copied.inc();
        stats.processing_micros.inc_by(2_500);
        let text = metrics.encode().unwrap();
        let labels = "{stream=\"REG\",replicator=\"US-EAST-1\",worker=\"part1\"}";
        for (series, value) in [
            ("replicator_total_messages", "1.0"),
            ("replicator_total_bytes", "100.0"),
            ("replicator_stream_sequence", "7.0"),
            ("replicator_copied_messages", "1.0"),
            ("replicator_processing_time_seconds_sum", "0.0025"),
            ("replicator_processing_time_seconds_count", "1"),
        ] {
            let line = format!("{PREFIX}{series}{labels} {value}");
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        assert!(text.contains(&format!("# TYPE {PREFIX}replicator_total_messages unknown")));
        assert!(!text.contains(&format!("{PREFIX}heartbeat_published_count")));
        for name in ChoriaSeries::names() {
            if !name.contains("heartbeat") {
                assert!(
                    text.contains(&format!("{name}{{")) || text.contains(&format!("{name}_sum{{")),
                    "{name}"
                );
            }
        }
    }
}
