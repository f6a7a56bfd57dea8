//! The `[emulator]` fleet of `choir run`: started with the node on its actix System, checked
//! by the same preflight as `choir emulate` ([`crate::emulate`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use choir_actors::emulator::{EmulatorMetrics, Fleet, SecurityMetrics};
use choir_actors::error_chain::Chain;
use choir_actors::metrics::MetricsRegistry;

use crate::config::Config;
use crate::emulate::{preflight, EmulateError};
use crate::monitor::Components;

/// The `[emulator]` fleet a node started (the node shuts it down with [`Fleet::shutdown`])
/// and, for a secure fleet, its verification counters (`security` in `/debug/vars`).
#[derive(Default)]
pub struct NodeFleet {
    /// The fleet.
    pub fleet: Option<Fleet>,
    /// The verification counters of a secure fleet.
    pub security: Option<SecurityMetrics>,
}

/// Starts the `[emulator]` fleet of `config`, if any, for `choir run`. A fleet that cannot
/// start is logged as an ERROR; the rest of the node runs on.
pub fn start(
    config: &Config,
    urls: &BTreeMap<String, Vec<String>>,
    metrics: &MetricsRegistry,
    components: &Components,
) -> NodeFleet {
    match start_from_config(config, urls, metrics) {
        Ok(Some(fleet)) => {
            let status = fleet.status();
            components.add(Arc::new(move || status.json()));
            let security = fleet
                .spec()
                .secure
                .is_some()
                .then(|| fleet.metrics().security.clone());
            NodeFleet {
                fleet: Some(fleet),
                security,
            }
        }
        Ok(None) => NodeFleet::default(),
        Err(error) => {
            tracing::error!(error = %Chain(&error), "Cannot start the [emulator] fleet.");
            NodeFleet::default()
        }
    }
}

/// Starts the `[emulator]` fleet of `config`, if any, on the current actix System; `urls` are
/// the resolved URLs of every network.
pub fn start_from_config(
    config: &Config,
    urls: &BTreeMap<String, Vec<String>>,
    metrics: &MetricsRegistry,
) -> Result<Option<Fleet>, EmulateError> {
    let Some(section) = &config.emulator else {
        return Ok(None);
    };
    let Some(network) = config.networks.get(&section.network) else {
        return Ok(None);
    };
    let settings = network.settings(
        &config.node.name,
        &section.network,
        urls.get(&section.network).cloned().unwrap_or_default(),
    );
    let spec = section.spec(settings);
    preflight(&spec)?;
    let fleet = Fleet::start(spec, EmulatorMetrics::register(metrics))?;
    Ok(Some(fleet))
}
