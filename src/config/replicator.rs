//! `[replicators.<name>]`: copy a JetStream stream from one network to another.

use serde::Deserialize;

use super::problems::Problems;
use super::Config;

/// `[replicators.<name>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicatorConfig {
    /// The network holding the source stream.
    pub source: String,
    /// The network receiving the copy.
    pub target: String,
}

impl ReplicatorConfig {
    pub(super) fn validate(&self, name: &str, config: &Config, problems: &mut Problems) {
        config.check_network_ref(format!("replicators.{name}.source"), &self.source, problems);
        config.check_network_ref(format!("replicators.{name}.target"), &self.target, problems);
    }
}
