//! `[adapters.<name>]`: a NATS subject (queue group, N workers) into a JetStream stream.

use serde::Deserialize;

use super::problems::Problems;
use super::Config;

/// `[adapters.<name>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// The network to subscribe on.
    pub network: String,
}

impl AdapterConfig {
    pub(super) fn validate(&self, name: &str, config: &Config, problems: &mut Problems) {
        config.check_network_ref(format!("adapters.{name}.network"), &self.network, problems);
    }
}
