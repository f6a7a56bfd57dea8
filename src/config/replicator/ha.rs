//! `[replicators.<name>.ha]`: one leader among the choir nodes running the same replicator.

use std::time::Duration;

use choir_actors::replicator::settings::HaSettings;
use serde::Deserialize;

use super::super::names::valid_name;
use super::super::{Config, Problems};

/// The Choria Stream Replicator's election bucket, so its tools find choir's keys.
const DEFAULT_BUCKET: &str = "CHORIA_LEADER_ELECTION";

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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::super::parse;

    const BASE: &str = "[networks.a]\nurls=[\"nats://127.0.0.1:1\"]\n[networks.b]\nurls=[\"nats://127.0.0.1:2\"]\n\
                        [replicators.r]\nsource=\"a\"\ntarget=\"b\"\nstream=\"S\"\n";

    fn problems(ha: &str) -> Vec<String> {
        match parse(
            Path::new("t.toml"),
            &format!("{BASE}[replicators.r.ha]\n{ha}"),
        ) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn defaults_are_the_choria_bucket_five_seconds_and_the_source_network() {
        let config = parse(
            Path::new("t.toml"),
            &format!("{BASE}[replicators.r.ha]\nidentity = \"n1\"\n"),
        )
        .expect("valid");
        let settings = config.replicators["r"].settings("r", Path::new("/tmp"));
        let ha = settings.ha.clone().expect("ha on");
        assert_eq!(ha.bucket, "CHORIA_LEADER_ELECTION");
        assert_eq!(ha.ttl, std::time::Duration::from_secs(5));
        assert_eq!(ha.identity, "n1");
        assert_eq!(ha.network, "a");
        assert_eq!(settings.election_key(), "SR_r_S");
    }

    #[test]
    fn every_bad_key_is_named_with_its_value() {
        let found =
            problems("bucket = \"a.b\"\nttl = \"500ms\"\nidentity = \" \"\nnetwork = \"c\"\n");
        let text = found.join("\n");
        for expected in [
            "replicators.r.ha.bucket = \"a.b\"",
            "replicators.r.ha.ttl = \"500ms\"",
            "replicators.r.ha.identity = \" \"",
            "replicators.r.ha.network = \"c\"",
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let found = problems("leader = true\n");
        assert!(found.join("\n").contains("leader"), "{found:?}");
    }
}
