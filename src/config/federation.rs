//! `[federation.<cluster>]`: a Choria Federation Broker between a federation network and one
//! collective network.
//!
//! ```toml
//! [federation.london]               # the cluster name: choria.federation.london.*
//! federation = "central"            # required: the [networks.X] clients publish to
//! collective = "london"             # required: the [networks.X] the managed nodes are on
//! identity = "fb1.example.net"      # seen-by hops and metrics (default: [node].name)
//! workers = 2                       # workers per path, each ingest + transform + egest
//! ```
//!
//! `queue_size` (which sized the queues between the former separate stages) is deprecated:
//! still accepted, so existing configs load, but ignored with a WARN when the broker starts.

use std::num::NonZeroUsize;

use choir_actors::federation::BrokerSettings;
use serde::Deserialize;

use super::defaults;
use super::Config;
use super::Problems;

/// Most workers per stage.
pub const MAX_WORKERS: usize = 256;

/// `[federation.<cluster>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// The federation network: where federated requests arrive and replies go back.
    pub federation: String,
    /// The collective network: where the managed nodes are.
    pub collective: String,
    /// The broker's identity in `seen-by` hops and the `identity` metric label (default: the
    /// node's name).
    pub identity: Option<String>,
    /// Workers per path, each one queue subscription doing ingest, transform and egest (the
    /// Go broker runs 10 per stage; 2 by default here, see `defaults::federation_workers`).
    #[serde(default = "defaults::federation_workers")]
    pub workers: NonZeroUsize,
    /// Deprecated and ignored: it sized the queues between the former separate stages, which
    /// the fused workers do not have. Accepted so existing configs load; the broker logs a
    /// WARN when it is set.
    #[serde(default)]
    pub queue_size: Option<NonZeroUsize>,
}

impl FederationConfig {
    pub(super) fn validate(&self, cluster: &str, config: &Config, problems: &mut Problems) {
        let key = |k: &str| format!("federation.{cluster}.{k}");
        config.check_network_ref(key("federation"), &self.federation, problems);
        config.check_network_ref(key("collective"), &self.collective, problems);
        if self.federation == self.collective {
            problems.value(
                key("collective"),
                &self.collective,
                "must be another network than federation: a broker joins two networks",
            );
        }
        if let Some(identity) = &self.identity {
            if identity.is_empty() || identity.chars().any(|c| c.is_control()) {
                problems.value(
                    key("identity"),
                    identity,
                    "must be non-empty, without control characters",
                );
            }
        }
        if self.workers.get() > MAX_WORKERS {
            problems.value(
                key("workers"),
                self.workers,
                format!("at most {MAX_WORKERS}"),
            );
        }
    }

    /// What the `FederationBrokerActor` needs; `node` is the node's name (default identity).
    pub fn settings(&self, cluster: &str, node: &str) -> BrokerSettings {
        BrokerSettings {
            cluster: cluster.to_owned(),
            identity: self.identity.clone().unwrap_or_else(|| node.to_owned()),
            federation_network: self.federation.clone(),
            collective_network: self.collective.clone(),
            workers: self.workers,
            // Set from the networks' settings when the broker starts.
            federation_tls: false,
            collective_tls: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse, ConfigError};

    fn problems(text: &str) -> Vec<String> {
        match parse(Path::new("t.toml"), text) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    const NETWORKS: &str = r#"
        [networks.fed]
        urls = ["nats://127.0.0.1:4222"]
        [networks.ldn]
        urls = ["nats://127.0.0.1:4223"]
    "#;

    #[test]
    fn defaults_and_settings() {
        let text = format!(
            "{NETWORKS}\n[federation.london]\nfederation = \"fed\"\ncollective = \"ldn\"\n"
        );
        let config = parse(Path::new("t.toml"), &text).unwrap();
        let broker = &config.federation["london"];
        assert_eq!(broker.workers.get(), 2);
        assert_eq!(broker.queue_size, None);
        let deprecated = format!("{text}queue_size = 500\n");
        let config = parse(Path::new("t.toml"), &deprecated).unwrap();
        assert_eq!(
            config.federation["london"].queue_size.map(|q| q.get()),
            Some(500)
        );
        let settings = broker.settings("london", "node1");
        assert_eq!(settings.identity, "node1");
        assert_eq!(settings.request_queue_group(), "london_federation");
    }

    #[test]
    fn every_problem_names_key_and_value() {
        let text = format!(
            "{NETWORKS}\n[federation.london]\nfederation = \"nope\"\ncollective = \"nope\"\nworkers = 1000\nqueue_size = 2000000\nidentity = \"\"\n\n[federation.paris]\nfederation = \"fed\"\ncollective = \"ldn\"\nworkerz = 3\n"
        );
        let found = problems(&text);
        assert_eq!(found.len(), 6, "{found:#?}");
        let all = found.join("\n");
        assert!(
            !all.contains("federation.london.queue_size"),
            "deprecated, not checked: {all}"
        );
        for expected in [
            "federation.london.federation = \"nope\": no such network",
            "federation.london.collective = \"nope\": no such network",
            "federation.london.collective = \"nope\": must be another network",
            "federation.london.workers = \"1000\": at most 256",
            "federation.london.identity = \"\"",
            "federation.paris: unknown field `workerz`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
    }
}
