//! Connection state and counters of the networks, shared with the HTTP monitor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

/// Live state of one network, updated from async-nats events.
#[derive(Debug, Default)]
pub struct NetworkStatus {
    connected: AtomicBool,
    lost: AtomicBool,
}

impl NetworkStatus {
    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Records a connection that came up; returns true when it is a *re*connect (it had been
    /// lost before).
    pub fn mark_connected(&self) -> bool {
        self.connected.store(true, Ordering::Release);
        self.lost.swap(false, Ordering::AcqRel)
    }

    /// Records a lost connection.
    pub fn mark_disconnected(&self) {
        self.connected.store(false, Ordering::Release);
        self.lost.store(true, Ordering::Release);
    }
}

/// The state of every network of the node, by name, and of every dedicated connection (a
/// replica worker's, a federation broker's), by `<network>/<owner>`.
#[derive(Clone, Debug, Default)]
pub struct NetworkHealth {
    networks: Arc<Statuses>,
    dedicated: Arc<Statuses>,
}

impl NetworkHealth {
    /// The status of `network`, created on first use.
    pub fn status(&self, network: &str) -> Arc<NetworkStatus> {
        entry(&self.networks, network)
    }

    /// `(name, connected)` for every network.
    pub fn snapshot(&self) -> Vec<(String, bool)> {
        snapshot(&self.networks)
    }

    /// The status of dedicated connection `key`, created (not connected) on first use.
    pub fn dedicated(&self, key: &str) -> Arc<NetworkStatus> {
        entry(&self.dedicated, key)
    }

    /// `(key, connected)` for every dedicated connection.
    pub fn dedicated_snapshot(&self) -> Vec<(String, bool)> {
        snapshot(&self.dedicated)
    }

    /// Whether every known network and dedicated connection is connected (true when there
    /// is none).
    pub fn all_connected(&self) -> bool {
        self.networks.read().values().all(|s| s.is_connected())
            && self.dedicated.read().values().all(|s| s.is_connected())
    }
}

type Statuses = RwLock<BTreeMap<String, Arc<NetworkStatus>>>;

/// The status under `key`, created (not connected) on first use.
fn entry(statuses: &Statuses, key: &str) -> Arc<NetworkStatus> {
    if let Some(status) = statuses.read().get(key) {
        return Arc::clone(status);
    }
    Arc::clone(statuses.write().entry(key.to_owned()).or_default())
}

/// `(key, connected)` for every status.
fn snapshot(statuses: &Statuses) -> Vec<(String, bool)> {
    statuses
        .read()
        .iter()
        .map(|(key, s)| (key.clone(), s.is_connected()))
        .collect()
}

/// Label of network metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NetworkLabel {
    /// The network's name.
    pub network: String,
}

/// Labels of the connection-event counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The network's name.
    pub network: String,
    /// `connected`, `disconnected`, `reconnected`, `slow_consumer`, `server_error`,
    /// `client_error`, `lame_duck`, `draining` or `closed`.
    pub event: String,
}

/// The metric families of every `NetworkActor`, registered once per node.
#[derive(Clone, Debug, Default)]
pub struct NetworkMetrics {
    /// `choir_network_connected{network}`: 1 while connected.
    pub connected: Family<NetworkLabel, Gauge>,
    /// `choir_network_events_total{network,event}`.
    pub events: Family<EventLabels, Counter>,
    /// `choir_network_connect_attempts_total{network}`: first-connect attempts.
    pub connect_attempts: Family<NetworkLabel, Counter>,
    /// `choir_network_connect_failures_total{network}`: failed first-connect attempts.
    pub connect_failures: Family<NetworkLabel, Counter>,
    /// `choir_network_actor_starts_total{network}`: starts of the actor (restarts included).
    pub actor_starts: Family<NetworkLabel, Counter>,
}

impl NetworkMetrics {
    /// Creates the families and registers them in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "choir_network_connected",
            "1 while the network's connection is up",
            this.connected.clone(),
        );
        metrics.register(
            "choir_network_events",
            "Connection events reported by the NATS client",
            this.events.clone(),
        );
        metrics.register(
            "choir_network_connect_attempts",
            "Attempts at the first connection of a network actor",
            this.connect_attempts.clone(),
        );
        metrics.register(
            "choir_network_connect_failures",
            "Failed attempts at the first connection of a network actor",
            this.connect_failures.clone(),
        );
        metrics.register(
            "choir_network_actor_starts",
            "Starts of a network actor, restarts included",
            this.actor_starts.clone(),
        );
        this
    }

    /// Counts one `event` on `network`.
    pub fn event(&self, network: &str, event: &str) {
        self.events
            .get_or_create(&EventLabels {
                network: network.to_owned(),
                event: event.to_owned(),
            })
            .inc();
    }

    /// The label of `network`.
    pub fn label(network: &str) -> NetworkLabel {
        NetworkLabel {
            network: network.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_after_a_loss_is_a_reconnect() {
        let status = NetworkStatus::default();
        assert!(!status.mark_connected(), "first connect is not a reconnect");
        status.mark_disconnected();
        assert!(!status.is_connected());
        assert!(status.mark_connected(), "connect after loss is a reconnect");
        assert!(!status.mark_connected());
    }

    #[test]
    fn health_is_green_only_when_every_network_is_connected() {
        let health = NetworkHealth::default();
        health.status("a").mark_connected();
        health.status("b");
        assert!(!health.all_connected());
        health.status("b").mark_connected();
        assert!(health.all_connected());
        assert_eq!(
            health.snapshot(),
            vec![("a".into(), true), ("b".into(), true)]
        );
    }
}
