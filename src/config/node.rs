//! `[node]`: the node's name, state directory, monitor address and shutdown behaviour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::defaults;
use super::Problems;

/// `[node]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name (logs, `/debug/vars`, default connection names).
    #[serde(default = "defaults::node_name")]
    pub name: String,
    /// Where the node keeps state (embedded nats-server stores, trackers).
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    /// `host:port` of the HTTP monitor, or `"off"`.
    #[serde(default = "defaults::monitor")]
    pub monitor: String,
    /// How long a graceful shutdown may take before the node exits anyway.
    #[serde(default = "defaults::shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How often the watchdog looks for actors whose mailbox closed.
    #[serde(default = "defaults::watchdog_interval", with = "humantime_serde")]
    pub watchdog_interval: Duration,
    /// Node-wide default of every replicator's `compat` (`"choir"` or `"choria"`).
    #[serde(default)]
    pub compat: Option<super::compat::Compat>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: defaults::node_name(),
            state_dir: defaults::state_dir(),
            monitor: defaults::monitor(),
            shutdown_timeout: defaults::shutdown_timeout(),
            watchdog_interval: defaults::watchdog_interval(),
            compat: None,
        }
    }
}

impl NodeConfig {
    /// The monitor's address, `None` when it is off. Only valid after validation.
    pub fn monitor_addr(&self) -> Option<SocketAddr> {
        self.monitor.parse().ok()
    }

    pub(super) fn validate(&self, problems: &mut Problems) {
        if !super::valid_name(&self.name) {
            problems.value("node.name", &self.name, super::NAME_RULE);
        }
        if self.monitor != "off" && self.monitor.parse::<SocketAddr>().is_err() {
            problems.value(
                "node.monitor",
                &self.monitor,
                "expected host:port (e.g. 127.0.0.1:9180) or \"off\"",
            );
        }
        if self.state_dir.as_os_str().is_empty() {
            problems.value("node.state_dir", "", "must not be empty");
        }
        if self.watchdog_interval.is_zero() {
            problems.value("node.watchdog_interval", "0s", "must be longer than zero");
        }
    }
}
