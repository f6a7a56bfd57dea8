//! The broker's metrics, with the names and labels of Choria's Go broker so existing
//! dashboards work (`broker/federation/stats/stats.go`).
//!
//! Go's client exposes its counters without a `_total` suffix; prometheus-client adds one to
//! every counter, so the Choria families use [`ChoriaCounter`], a counter encoded with the
//! plain name (`choria_federation_received_msgs{…} 12`). `choria_federation_time` is a
//! histogram (Go's is a summary; `_sum` and `_count` are the same).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::metrics::MetricsRegistry;

/// A monotonic counter encoded under its plain name (no `_total`), as Go's client does.
#[derive(Clone, Debug, Default)]
pub struct ChoriaCounter(Arc<AtomicU64>);

impl ChoriaCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for ChoriaCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for ChoriaCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The five labels of Choria's federation metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChoriaLabels {
    /// `nats_ingest`, `nats_egest`, `choria_request_transformer` or `choria_reply_transformer`.
    pub name: String,
    /// The worker's index in its pool.
    pub worker: String,
    /// `federation`, `collective` or `unconnected`.
    pub connected_to: String,
    /// The cluster.
    pub cluster: String,
    /// The broker's identity.
    pub identity: String,
}

/// Labels of the drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// The cluster.
    pub cluster: String,
    /// `request` or `reply`.
    pub path: String,
    /// See [`super::Rejection::reason`], plus `max_payload` and `publish`.
    pub reason: String,
}

type TimeFamily = Family<ChoriaLabels, Histogram, fn() -> Histogram>;

fn time_histogram() -> Histogram {
    // 10 µs … ~5 s.
    Histogram::new(exponential_buckets(0.000_01, 3.0, 13))
}

/// The broker's metric families, registered once per node.
#[derive(Clone, Debug)]
pub struct FederationMetrics {
    /// `choria_federation_received_msgs`: messages a worker received.
    pub received: Family<ChoriaLabels, ChoriaCounter>,
    /// `choria_federation_published_msgs`: messages an egest worker published (per target).
    pub published: Family<ChoriaLabels, ChoriaCounter>,
    /// `choria_federation_errors`: messages a worker could not handle.
    pub errors: Family<ChoriaLabels, ChoriaCounter>,
    /// `choria_federation_time`: seconds a worker spent on one message.
    pub time: TimeFamily,
    /// `choir_federation_dropped_total{cluster,path,reason}`: dropped messages by reason.
    pub dropped: Family<DropLabels, Counter>,
}

impl Default for FederationMetrics {
    fn default() -> Self {
        Self {
            received: Family::default(),
            published: Family::default(),
            errors: Family::default(),
            time: Family::new_with_constructor(time_histogram),
            dropped: Family::default(),
        }
    }
}

impl FederationMetrics {
    /// Creates the families and registers them in `metrics`.
    pub fn register(metrics: &MetricsRegistry) -> Self {
        let this = Self::default();
        metrics.register(
            "choria_federation_received_msgs",
            "Messages received by a federation broker worker",
            this.received.clone(),
        );
        metrics.register(
            "choria_federation_published_msgs",
            "Messages published by a federation broker worker",
            this.published.clone(),
        );
        metrics.register(
            "choria_federation_errors",
            "Messages a federation broker worker failed to handle",
            this.errors.clone(),
        );
        metrics.register(
            "choria_federation_time",
            "Seconds a federation broker worker spent on one message",
            this.time.clone(),
        );
        metrics.register(
            "choir_federation_dropped",
            "Messages the federation broker dropped, by path and reason",
            this.dropped.clone(),
        );
        this
    }

    /// The handles of one worker. One `get_or_create` per statement: two read guards of one
    /// family in one expression deadlock when the second must insert.
    pub fn worker(&self, labels: ChoriaLabels) -> StageMetrics {
        let received = self.received.get_or_create(&labels).clone();
        let published = self.published.get_or_create(&labels).clone();
        let errors = self.errors.get_or_create(&labels).clone();
        let time = self.time.get_or_create(&labels).clone();
        StageMetrics {
            received,
            published,
            errors,
            time,
        }
    }

    /// The drop counter of `cluster`, `path` and `reason`.
    pub fn drop_counter(&self, cluster: &str, path: &str, reason: &str) -> Counter {
        let labels = DropLabels {
            cluster: cluster.to_owned(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let counter = self.dropped.get_or_create(&labels).clone();
        counter
    }
}

/// The metric handles of one pipeline stage's worker (cheap clones of shared atomics).
#[derive(Clone, Debug)]
pub struct StageMetrics {
    /// Messages received.
    pub received: ChoriaCounter,
    /// Messages published.
    pub published: ChoriaCounter,
    /// Messages failed.
    pub errors: ChoriaCounter,
    /// Seconds per message.
    pub time: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choria_names_without_total_suffix() {
        let metrics = MetricsRegistry::new();
        let families = FederationMetrics::register(&metrics);
        let worker = families.worker(ChoriaLabels {
            name: "nats_ingest".into(),
            worker: "3".into(),
            connected_to: "federation".into(),
            cluster: "london".into(),
            identity: "fb1".into(),
        });
        worker.received.inc_by(2);
        worker.time.observe(0.001);
        families
            .drop_counter("london", "request", "bad_target")
            .inc();
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(
                r#"choria_federation_received_msgs{name="nats_ingest",worker="3",connected_to="federation",cluster="london",identity="fb1"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("choria_federation_time_count{"), "{text}");
        assert!(
            text.contains(
                r#"choir_federation_dropped_total{cluster="london",path="request",reason="bad_target"} 1"#
            ),
            "{text}"
        );
    }
}
