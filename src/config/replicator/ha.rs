//! `[replicators.<name>.ha]`: one leader among the choir nodes running the same replicator.

use std::time::Duration;

use choir_actors::replicator::settings::HaSettings;
use serde::Deserialize;

use super::super::names::valid_name;
use super::super::{Config, Problems};

/// The Choria Stream Replicator's election bucket, so its tools find choir's keys.
pub const DEFAULT_BUCKET: &str = "CHORIA_LEADER_ELECTION";

/// Shortest and longest TTL (the Choria Stream Replicator's range).
const TTL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));

fn default_bucket() -> String {
    DEFAULT_BUCKET.to_owned()
}

fn default_ttl() -> Duration {
    Duration::from_secs(5)
}

/// `[replicators.<name>.ha]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// The KV bucket holding the election keys (created with `max_age = ttl` when missing).
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// How long a leader's key lives without renewal; failover takes about this long.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// This node's name in the election; every node must have its own (default: the host
    /// name).
    pub identity: Option<String>,
    /// The network whose JetStream holds the bucket (default: the replicator's source).
    pub network: Option<String>,
}

/// The host name, `None` when it cannot be read.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

impl HaConfig {
    pub(in crate::config) fn validate(
        &self,
        replicator: &str,
        config: &Config,
        problems: &mut Problems,
    ) {
        let key = |k: &str| format!("replicators.{replicator}.ha.{k}");
        if !valid_name(&self.bucket) {
            problems.value(
                key("bucket"),
                &self.bucket,
                "bucket names use letters, digits, '-' and '_' only",
            );
        }
        if self.ttl < TTL_RANGE.0 || self.ttl > TTL_RANGE.1 {
            problems.value(
                key("ttl"),
                humantime::format_duration(self.ttl),
                "between 1s and 1h",
            );
        }
        if let Some(identity) = &self.identity {
            if identity.trim().is_empty() {
                problems.value(key("identity"), identity, "empty");
            }
        }
        if let Some(network) = &self.network {
            config.check_network_ref(key("network"), network, problems);
        }
    }

    /// What the replicator needs; `source` is the replicator's source network, `node` the
    /// node's name (the identity when the host name cannot be read).
    pub fn settings(&self, source: &str, node: &str) -> HaSettings {
        HaSettings {
            bucket: self.bucket.clone(),
            ttl: self.ttl,
            identity: self
                .identity
                .clone()
                .or_else(hostname)
                .unwrap_or_else(|| node.to_owned()),
            network: self.network.clone().unwrap_or_else(|| source.to_owned()),
        }
    }
}
