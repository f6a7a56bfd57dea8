//! The metric families of the adapters, labelled by adapter and worker.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::MetricsRegistry;

/// Labels of the per-worker adapter metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    /// The adapter's name.
    pub adapter: String,
    /// The worker's index, `0..workers`.
    pub worker: String,
}

/// Labels of the drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// The adapter's name.
    pub adapter: String,
    /// The worker's index.
    pub worker: String,
    /// `json`, `base64`, `protocol`, `invalid`, `expired`, `encode` or `publish`.
    pub reason: String,
}

/// The metric families of every adapter worker, registered once per node.
#[derive(Clone, Debug, Default)]
pub struct AdapterMetrics {
    /// `choir_adapter_received_total`: messages received from the subscription.
    pub received: Family<WorkerLabels, Counter>,
    /// `choir_adapter_received_bytes_total`: payload bytes received.
    pub received_bytes: Family<WorkerLabels, Counter>,
    /// `choir_adapter_published_total`: messages the stream stored.
    pub published: Family<WorkerLabels, Counter>,
    /// `choir_adapter_published_bytes_total`: payload bytes the stream stored.
    pub published_bytes: Family<WorkerLabels, Counter>,
    /// `choir_adapter_duplicates_total`: publishes the stream acked as duplicates
    /// (`Nats-Msg-Id` seen inside its duplicate window).
    pub duplicates: Family<WorkerLabels, Counter>,
    /// `choir_adapter_failed_total`: failed publish attempts (retried or not).
    pub failed: Family<WorkerLabels, Counter>,
    /// `choir_adapter_dropped_total{reason}`: messages dropped, by reason.
    pub dropped: Family<DropLabels, Counter>,
    /// `choir_adapter_in_flight`: publishes waiting for their ack.
    pub in_flight: Family<WorkerLabels, Gauge>,
    /// `choir_adapter_subscribed`: 1 while the worker's subscription is active.
    pub subscribed: Family<WorkerLabels, Gauge>,
    /// `choir_adapter_worker_starts_total`: starts of a worker (restarts included).
    pub worker_starts: Family<WorkerLabels, Counter>,
}

impl AdapterMetrics {
    /// Creates the families and registers them in `metrics`.
    pub fn register(metrics: &MetricsRegistry) -> Self {
        let this = Self::default();
        let counters = [
            (
                &this.received,
                "choir_adapter_received",
                "Messages an adapter worker received",
            ),
            (
                &this.received_bytes,
                "choir_adapter_received_bytes",
                "Payload bytes an adapter worker received",
            ),
            (
                &this.published,
                "choir_adapter_published",
                "Messages an adapter stored in its stream",
            ),
            (
                &this.published_bytes,
                "choir_adapter_published_bytes",
                "Payload bytes an adapter stored in its stream",
            ),
            (
                &this.duplicates,
                "choir_adapter_duplicates",
                "Publishes the stream dropped as duplicates of a Nats-Msg-Id",
            ),
            (
                &this.failed,
                "choir_adapter_failed",
                "Failed publish attempts of an adapter worker",
            ),
            (
                &this.worker_starts,
                "choir_adapter_worker_starts",
                "Starts of an adapter worker, restarts included",
            ),
        ];
        for (family, name, help) in counters {
            metrics.register(name, help, family.clone());
        }
        metrics.register(
            "choir_adapter_dropped",
            "Messages an adapter dropped, by reason",
            this.dropped.clone(),
        );
        metrics.register(
            "choir_adapter_in_flight",
            "Adapter publishes waiting for their ack",
            this.in_flight.clone(),
        );
        metrics.register(
            "choir_adapter_subscribed",
            "1 while an adapter worker is subscribed",
            this.subscribed.clone(),
        );
        this
    }

    /// The handles of one worker.
    pub fn worker(&self, adapter: &str, worker: usize) -> AdapterWorkerMetrics {
        let labels = WorkerLabels {
            adapter: adapter.to_owned(),
            worker: worker.to_string(),
        };
        AdapterWorkerMetrics {
            received: self.received.get_or_create(&labels).clone(),
            received_bytes: self.received_bytes.get_or_create(&labels).clone(),
            published: self.published.get_or_create(&labels).clone(),
            published_bytes: self.published_bytes.get_or_create(&labels).clone(),
            duplicates: self.duplicates.get_or_create(&labels).clone(),
            failed: self.failed.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            subscribed: self.subscribed.get_or_create(&labels).clone(),
            starts: self.worker_starts.get_or_create(&labels).clone(),
            dropped: self.dropped.clone(),
            labels,
        }
    }
}

/// The metric handles of one adapter worker (cheap clones of shared atomics).
#[derive(Clone, Debug)]
pub struct AdapterWorkerMetrics {
    /// Messages received.
    pub received: Counter,
    /// Bytes received.
    pub received_bytes: Counter,
    /// Messages stored.
    pub published: Counter,
    /// Bytes stored.
    pub published_bytes: Counter,
    /// Duplicates the stream dropped.
    pub duplicates: Counter,
    /// Failed publish attempts.
    pub failed: Counter,
    /// Publishes in flight.
    pub in_flight: Gauge,
    /// 1 while subscribed.
    pub subscribed: Gauge,
    /// Worker starts.
    pub starts: Counter,
    dropped: Family<DropLabels, Counter>,
    labels: WorkerLabels,
}

impl AdapterWorkerMetrics {
    /// Counts one message dropped for `reason`.
    pub fn dropped(&self, reason: &str) {
        self.dropped
            .get_or_create(&DropLabels {
                adapter: self.labels.adapter.clone(),
                worker: self.labels.worker.clone(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// How many messages were dropped for `reason` so far.
    pub fn dropped_count(&self, reason: &str) -> u64 {
        self.dropped
            .get_or_create(&DropLabels {
                adapter: self.labels.adapter.clone(),
                worker: self.labels.worker.clone(),
                reason: reason.to_owned(),
            })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_appear_with_adapter_and_worker_labels() {
        let metrics = MetricsRegistry::new();
        let families = AdapterMetrics::register(&metrics);
        let worker = families.worker("reg", 1);
        worker.received.inc();
        worker.dropped("json");
        assert_eq!(worker.dropped_count("json"), 1);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"choir_adapter_received_total{adapter="reg",worker="1"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"choir_adapter_dropped_total{adapter="reg",worker="1",reason="json"} 1"#
            ),
            "{text}"
        );
    }
}
