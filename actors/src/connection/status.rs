//! Connection state of the networks, shared with the HTTP monitor (their counters are in
//! [`metrics`](super::metrics)).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

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
