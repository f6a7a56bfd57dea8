//! `[emulator]`: a fleet of emulated Choria daemons run by the node.

use serde::Deserialize;

use super::problems::Problems;
use super::Config;

/// `[emulator]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorConfig {
    /// The network the daemons connect to.
    pub network: String,
}

impl EmulatorConfig {
    pub(super) fn validate(&self, config: &Config, problems: &mut Problems) {
        config.check_network_ref("emulator.network".to_owned(), &self.network, problems);
    }
}
