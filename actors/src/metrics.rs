//! The process-wide metrics registry.
//!
//! Every actor family registers its counters once, at node start, in one
//! [`MetricsRegistry`]; actors keep cheap clones of their metric handles (prometheus-client metrics are
//! atomics behind an `Arc`), so a restarted actor keeps counting where it left off.

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};

/// A shared Prometheus registry; cloning shares it.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRegistry").finish_non_exhaustive()
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `metric` under `name` (no `_total` suffix: counters get it when encoded).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().register(name, help, metric);
    }

    /// Registers `collector`, asked for its metrics at every scrape.
    pub fn register_collector(&self, collector: impl prometheus_client::collector::Collector) {
        self.registry.lock().register_collector(Box::new(collector));
    }

    /// The whole registry in the Prometheus text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn registered_counters_appear_in_the_text_format() {
        let metrics = MetricsRegistry::new();
        let counter: Counter = Counter::default();
        metrics.register(
            "choir_test_things",
            "Things counted by a test",
            counter.clone(),
        );
        counter.inc_by(3);
        let text = metrics.encode().unwrap();
        assert!(text.contains("choir_test_things_total 3"), "{text}");
    }
}
