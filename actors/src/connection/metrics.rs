//! The metric counters of the networks' connections, registered once per node.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::MetricsRegistry;

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
    pub fn register(metrics: &MetricsRegistry) -> Self {
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
