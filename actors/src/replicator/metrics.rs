//! Replicator metrics: families registered once per node, handles resolved once per
//! replicator so the hot path only touches atomics. [`choria`]: the same values under the
//! Choria Stream Replicator's metric names.

pub mod choria;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::metrics::MetricsRegistry;

/// Label of replicator metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicatorLabel {
    /// The replicator's name.
    pub replicator: String,
}

/// Replicator plus a reason or kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The replicator's name.
    pub replicator: String,
    /// Why (`sampling`, `too_old`; `transient`, `rejected`, `out_of_order`; event names).
    pub reason: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The metric families of every replicator.
#[derive(Clone, Debug)]
pub struct ReplicatorMetrics {
    received: Family<ReplicatorLabel, Counter>,
    copied: Family<ReplicatorLabel, Counter>,
    bytes: Family<ReplicatorLabel, Counter>,
    skipped: Family<ReasonLabels, Counter>,
    no_sender: Family<ReplicatorLabel, Counter>,
    failed: Family<ReasonLabels, Counter>,
    dead_lettered: Family<ReplicatorLabel, Counter>,
    resyncs: Family<ReplicatorLabel, Counter>,
    target_acks: Family<ReplicatorLabel, Counter>,
    advisories: Family<ReasonLabels, Counter>,
    lag: Family<ReplicatorLabel, Gauge>,
    last_copied_age: Family<ReplicatorLabel, FloatGauge>,
    senders: Family<ReplicatorLabel, Gauge>,
    latency: Family<ReplicatorLabel, Histogram, fn() -> Histogram>,
    ready: Family<ReplicatorLabel, Gauge>,
    fast_batch_workers: Family<ReplicatorLabel, Gauge>,
    leader: Family<ReplicatorLabel, Gauge>,
    elections: Family<ReplicatorLabel, Counter>,
    gossip: Family<ReasonLabels, Counter>,
    choria: choria::ChoriaSeries,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl ReplicatorMetrics {
    /// Creates the families and registers them in `metrics`.
    pub fn register(metrics: &MetricsRegistry) -> Self {
        let this = Self {
            received: Family::default(),
            copied: Family::default(),
            bytes: Family::default(),
            skipped: Family::default(),
            no_sender: Family::default(),
            failed: Family::default(),
            dead_lettered: Family::default(),
            resyncs: Family::default(),
            target_acks: Family::default(),
            advisories: Family::default(),
            lag: Family::default(),
            last_copied_age: Family::default(),
            senders: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            ready: Family::default(),
            fast_batch_workers: Family::default(),
            leader: Family::default(),
            elections: Family::default(),
            gossip: Family::default(),
            choria: choria::ChoriaSeries::default(),
        };
        metrics.register_collector(this.choria.clone());
        metrics.register(
            "choir_replicator_received",
            "Source messages received",
            this.received.clone(),
        );
        metrics.register(
            "choir_replicator_copied",
            "Messages copied into the target (target acked)",
            this.copied.clone(),
        );
        metrics.register(
            "choir_replicator_bytes",
            "Payload bytes copied into the target",
            this.bytes.clone(),
        );
        metrics.register(
            "choir_replicator_skipped",
            "Messages not copied, by reason (sampling, too_old)",
            this.skipped.clone(),
        );
        metrics.register(
            "choir_replicator_no_sender",
            "Messages copied without sampling because the inspected field was missing or not JSON",
            this.no_sender.clone(),
        );
        metrics.register(
            "choir_replicator_failed_publishes",
            "Target publishes that failed, by kind (transient, rejected, out_of_order)",
            this.failed.clone(),
        );
        metrics.register(
            "choir_replicator_dead_lettered",
            "Messages the target rejected for good, sent to the dead-letter subject",
            this.dead_lettered.clone(),
        );
        metrics.register(
            "choir_replicator_resyncs",
            "Times a worker resumed from the last position known to be in the target",
            this.resyncs.clone(),
        );
        metrics.register(
            "choir_replicator_target_acks",
            "Acks received from the target (ordered mode asks for one every few copies)",
            this.target_acks.clone(),
        );
        metrics.register(
            "choir_replicator_advisories",
            "Sender advisories published, by event",
            this.advisories.clone(),
        );
        metrics.register(
            "choir_replicator_lag_messages",
            "Source messages not yet acknowledged by the replicator (pending + ack pending)",
            this.lag.clone(),
        );
        metrics.register(
            "choir_replicator_last_copied_age_seconds",
            "Age of the last copied message when it was copied",
            this.last_copied_age.clone(),
        );
        metrics.register(
            "choir_replicator_tracker_senders",
            "Senders in the sampling tracker",
            this.senders.clone(),
        );
        metrics.register(
            "choir_replicator_ack_latency_seconds",
            "Target publish to target ack",
            this.latency.clone(),
        );
        metrics.register(
            "choir_replicator_ready",
            "1 once the replicator found its streams and started copying",
            this.ready.clone(),
        );
        metrics.register(
            "choir_replicator_fast_batch_workers",
            "Workers publishing to the target in fast-ingest batches (the others publish per message)",
            this.fast_batch_workers.clone(),
        );
        metrics.register(
            "choir_replicator_leader",
            "1 while this node leads the replicator's election (or runs it without HA), else 0",
            this.leader.clone(),
        );
        metrics.register(
            "choir_replicator_elections",
            "Elections this node won (it became the leader)",
            this.elections.clone(),
        );
        metrics.register(
            "choir_replicator_gossip",
            "Sampling gossip between HA replicas, by kind (sent, received, merged, dropped, failed, invalid)",
            this.gossip.clone(),
        );
        this
    }

    /// The replicators exposed under the Choria Stream Replicator's metric names.
    pub fn choria(&self) -> &choria::ChoriaSeries {
        &self.choria
    }

    /// Resolved handles for replicator `name`.
    pub fn for_replicator(&self, name: &str) -> ReplicatorStats {
        let l = ReplicatorLabel {
            replicator: name.to_owned(),
        };
        let reason = |r: &str| ReasonLabels {
            replicator: name.to_owned(),
            reason: r.to_owned(),
        };
        // One statement per handle: a family's read guard must be gone before the next
        // get_or_create on it takes the write lock.
        fn get<
            L: Clone + std::hash::Hash + Eq,
            M: Clone,
            C: prometheus_client::metrics::family::MetricConstructor<M>,
        >(
            family: &Family<L, M, C>,
            label: &L,
        ) -> M {
            let guard = family.get_or_create(label);
            let metric = guard.clone();
            drop(guard);
            metric
        }
        ReplicatorStats {
            received: get(&self.received, &l),
            copied: get(&self.copied, &l),
            bytes: get(&self.bytes, &l),
            skipped_sampling: get(&self.skipped, &reason("sampling")),
            skipped_too_old: get(&self.skipped, &reason("too_old")),
            no_sender: get(&self.no_sender, &l),
            failed_transient: get(&self.failed, &reason("transient")),
            failed_rejected: get(&self.failed, &reason("rejected")),
            failed_out_of_order: get(&self.failed, &reason("out_of_order")),
            dead_lettered: get(&self.dead_lettered, &l),
            resyncs: get(&self.resyncs, &l),
            target_acks: get(&self.target_acks, &l),
            advisories: self.advisories.clone(),
            lag: get(&self.lag, &l),
            last_copied_age: get(&self.last_copied_age, &l),
            senders: get(&self.senders, &l),
            latency: get(&self.latency, &l),
            ready: get(&self.ready, &l),
            fast_batch_workers: get(&self.fast_batch_workers, &l),
            leader: get(&self.leader, &l),
            elections: get(&self.elections, &l),
            gossip: self.gossip.clone(),
            received_bytes: Counter::default(),
            skipped_bytes: Counter::default(),
            stream_sequence: Gauge::default(),
            forced: Counter::default(),
            processing_micros: Counter::default(),
            heartbeats_sent: Counter::default(),
            heartbeat_errors: Counter::default(),
            heartbeat_seconds: FloatGauge::default(),
            name: name.to_owned(),
        }
    }
}

/// One replicator's metric handles (cheap to clone; all atomics).
#[derive(Clone, Debug)]
pub struct ReplicatorStats {
    name: String,
    /// Source messages received.
    pub received: Counter,
    /// Messages copied (target acked).
    pub copied: Counter,
    /// Payload bytes copied.
    pub bytes: Counter,
    /// Skipped by sampling.
    pub skipped_sampling: Counter,
    /// Skipped as older than `max_age`.
    pub skipped_too_old: Counter,
    /// Copied without sampling: no sender found.
    pub no_sender: Counter,
    /// Publishes that failed for a transient reason (target down, timeout).
    pub failed_transient: Counter,
    /// Publishes the target rejected.
    pub failed_rejected: Counter,
    /// Ordered publishes refused because the target's last sequence moved.
    pub failed_out_of_order: Counter,
    /// Dead-lettered messages.
    pub dead_lettered: Counter,
    /// Resyncs.
    pub resyncs: Counter,
    /// Acks received from the target.
    pub target_acks: Counter,
    advisories: Family<ReasonLabels, Counter>,
    /// Source lag.
    pub lag: Gauge,
    /// Age of the last copied message, seconds.
    pub last_copied_age: FloatGauge,
    /// Senders tracked.
    pub senders: Gauge,
    /// Publish → ack latency.
    pub latency: Histogram,
    /// 1 once the replicator is set up (streams found, consumer in place).
    pub ready: Gauge,
    /// Workers on the fast-ingest batch path.
    pub fast_batch_workers: Gauge,
    /// Payload bytes received from the source (the Choria SR's `total_bytes`).
    pub received_bytes: Counter,
    /// Payload bytes skipped by sampling.
    pub skipped_bytes: Counter,
    /// Source stream sequence of the last message received.
    pub stream_sequence: Gauge,
    /// Copies forced by `force_field`.
    pub forced: Counter,
    /// Sum of publish-to-ack times of copies, microseconds.
    pub processing_micros: Counter,
    /// Heartbeats published.
    pub heartbeats_sent: Counter,
    /// Heartbeats that could not be published.
    pub heartbeat_errors: Counter,
    /// How long the last heartbeat publish took, seconds.
    pub heartbeat_seconds: FloatGauge,
    /// 1 while this node leads (or copies without HA).
    pub leader: Gauge,
    /// Elections won.
    pub elections: Counter,
    gossip: Family<ReasonLabels, Counter>,
}

impl ReplicatorStats {
    /// Counts one gossip record of `kind`.
    pub fn gossip(&self, kind: &str) {
        self.gossip
            .get_or_create(&ReasonLabels {
                replicator: self.name.clone(),
                reason: kind.to_owned(),
            })
            .inc();
    }
    /// Gossip records of `kind` counted so far.
    pub fn gossip_of(&self, kind: &str) -> u64 {
        let label = ReasonLabels {
            replicator: self.name.clone(),
            reason: kind.to_owned(),
        };
        self.gossip.get(&label).map_or(0, |c| c.get())
    }
    /// Counts one source message of `bytes` payload bytes at stream sequence `seq`.
    pub fn record_received(&self, seq: u64, bytes: usize) {
        self.received.inc();
        self.received_bytes
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
        self.stream_sequence
            .set(i64::try_from(seq).unwrap_or(i64::MAX));
    }

    /// The replicator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Advisories counted under `event` (an event name, `failed` or `dropped`).
    pub fn advisories_of(&self, event: &str) -> u64 {
        let label = ReasonLabels {
            replicator: self.name.clone(),
            reason: event.to_owned(),
        };
        self.advisories.get(&label).map_or(0, |c| c.get())
    }

    /// Counts one advisory of `event`.
    pub fn advisory(&self, event: &str) {
        self.advisories
            .get_or_create(&ReasonLabels {
                replicator: self.name.clone(),
                reason: event.to_owned(),
            })
            .inc();
    }
}
