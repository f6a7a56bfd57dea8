//! The running parts of a node as `/debug/vars` lists them (`components`): each replicator,
//! adapter, federation broker and the emulator, with its kind, a state and its key counters.
//!
//! Each part is a [`StatusView`], read at every request. Replicators, adapters and brokers
//! read their counters from the node's metrics (the same numbers `/metrics` shows), the
//! brokers their state from the health of their dedicated connections.

use std::sync::Arc;

use choir_actors::connection::NetworkHealth;
use choir_actors::metrics::MetricsRegistry;
use serde_json::{json, Map, Value};

/// A running part of the node as `/debug/vars` shows it: `{name, kind, state, counters}`.
pub type StatusView = Arc<dyn Fn() -> Value + Send + Sync>;

/// The parts of the node listed in `/debug/vars`; parts started after the monitor add
/// themselves.
#[derive(Clone, Default)]
pub struct Components(Arc<parking_lot::RwLock<Vec<StatusView>>>);

impl Components {
    /// Lists one more part.
    pub fn add(&self, view: StatusView) {
        self.0.write().push(view);
    }

    /// Every part's status now.
    pub fn snapshot(&self) -> Vec<Value> {
        let views: Vec<StatusView> = self.0.read().clone();
        views.iter().map(|view| view()).collect()
    }
}

/// The sum of every sample of `metric` (a counter's `_total` too) whose labels include
/// `label="value"`, in OpenMetrics `text`.
pub fn sum_samples(text: &str, metric: &str, label: &str, value: &str) -> f64 {
    let wanted = format!("{label}=\"{value}\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (name_labels, sample) = line.rsplit_once(' ')?;
            let (name, labels) = name_labels.split_once('{')?;
            let name = name.strip_suffix("_total").unwrap_or(name);
            if name != metric {
                return None;
            }
            let has = labels
                .trim_end_matches('}')
                .split(',')
                .any(|pair| pair == wanted);
            has.then(|| sample.parse::<f64>().ok()).flatten()
        })
        .sum()
}

fn counters(text: &str, label: &str, value: &str, names: &[(&str, &str)]) -> Map<String, Value> {
    names
        .iter()
        .map(|(key, metric)| {
            // Counters are integers; print them so.
            let sum = sum_samples(text, metric, label, value);
            (key.to_string(), json!(sum as u64))
        })
        .collect()
}

fn encoded(metrics: &MetricsRegistry) -> String {
    metrics.encode().unwrap_or_default()
}

/// A replicator: `running` once it found its streams and copies, else `starting`.
pub fn replicator(name: String, metrics: MetricsRegistry) -> StatusView {
    Arc::new(move || {
        let text = encoded(&metrics);
        let ready = sum_samples(&text, "choir_replicator_ready", "replicator", &name) >= 1.0;
        let mut c = counters(
            &text,
            "replicator",
            &name,
            &[
                ("received", "choir_replicator_received"),
                ("copied", "choir_replicator_copied"),
                ("skipped", "choir_replicator_skipped"),
                ("failed_publishes", "choir_replicator_failed_publishes"),
                ("dead_lettered", "choir_replicator_dead_lettered"),
            ],
        );
        c.insert(
            "lag".into(),
            json!(sum_samples(&text, "choir_replicator_lag_messages", "replicator", &name) as u64),
        );
        let fast = sum_samples(
            &text,
            "choir_replicator_fast_batch_workers",
            "replicator",
            &name,
        );
        json!({
            "name": name,
            "kind": "replicator",
            "state": if ready { "running" } else { "starting" },
            "publish_path": if fast >= 1.0 { "fast_batch" } else { "per_message" },
            "fast_batch_workers": fast as u64,
            "counters": c,
        })
    })
}

/// An adapter of `workers` workers: `running` when every worker is subscribed, else
/// `starting`.
pub fn adapter(name: String, workers: usize, metrics: MetricsRegistry) -> StatusView {
    Arc::new(move || {
        let text = encoded(&metrics);
        let subscribed = sum_samples(&text, "choir_adapter_subscribed", "adapter", &name);
        let mut c = counters(
            &text,
            "adapter",
            &name,
            &[
                ("received", "choir_adapter_received"),
                ("published", "choir_adapter_published"),
                ("duplicates", "choir_adapter_duplicates"),
                ("failed", "choir_adapter_failed"),
                ("dropped", "choir_adapter_dropped"),
            ],
        );
        c.insert("workers".into(), json!(workers));
        c.insert("subscribed".into(), json!(subscribed as u64));
        let running = subscribed >= workers as f64;
        json!({
            "name": name,
            "kind": "adapter",
            "state": if running { "running" } else { "starting" },
            "counters": c,
        })
    })
}

/// The federation broker of `cluster`: `running` when its connections to both networks are
/// up, `disconnected` when one of them is down, `starting` before they were made.
pub fn broker(cluster: String, metrics: MetricsRegistry, health: NetworkHealth) -> StatusView {
    Arc::new(move || {
        let text = encoded(&metrics);
        let suffix = format!("/federation broker {cluster}");
        let links: Vec<bool> = health
            .dedicated_snapshot()
            .into_iter()
            .filter(|(key, _)| key.ends_with(&suffix))
            .map(|(_, up)| up)
            .collect();
        let state = if links.len() < 2 {
            "starting"
        } else if links.iter().all(|up| *up) {
            "running"
        } else {
            "disconnected"
        };
        let c = counters(
            &text,
            "cluster",
            &cluster,
            &[
                ("received", "choria_federation_received_msgs"),
                ("published", "choria_federation_published_msgs"),
                ("errors", "choria_federation_errors"),
                ("dropped", "choir_federation_dropped"),
            ],
        );
        json!({
            "name": cluster,
            "kind": "federation broker",
            "state": state,
            "counters": c,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_samples_of_one_part() {
        let text = "# TYPE choir_adapter_received counter\n\
            choir_adapter_received_total{adapter=\"reg\",worker=\"0\"} 3\n\
            choir_adapter_received_total{adapter=\"reg\",worker=\"1\"} 4\n\
            choir_adapter_received_total{adapter=\"regx\",worker=\"0\"} 100\n\
            choir_adapter_subscribed{adapter=\"reg\",worker=\"0\"} 1\n\
            choria_federation_received_msgs{name=\"nats_ingest\",cluster=\"c\"} 5\n";
        assert_eq!(
            sum_samples(text, "choir_adapter_received", "adapter", "reg"),
            7.0
        );
        assert_eq!(
            sum_samples(text, "choir_adapter_subscribed", "adapter", "reg"),
            1.0
        );
        assert_eq!(
            sum_samples(text, "choria_federation_received_msgs", "cluster", "c"),
            5.0
        );
        assert_eq!(
            sum_samples(text, "choir_adapter_failed", "adapter", "reg"),
            0.0
        );
    }
}
