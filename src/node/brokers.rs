//! Starts the `[federation.<cluster>]` sections: one supervised `FederationBrokerActor` per
//! cluster, spread over a small pool of arbiters and watched by the node's watchdog.

use std::collections::BTreeMap;

use actix::prelude::*;
use choir_actors::connection::NetworkHealth;
use choir_actors::federation::{FederationBrokerActor, FederationMetrics};
use choir_actors::metrics::MetricsRegistry;
use choir_actors::supervision::{ActorSlot, Watch, WatchdogActor, WatchedActor};
use tracing::{error, info, warn};

use crate::config::Config;

/// Starts every broker of `config`, connecting to the networks' resolved `urls` (an embedded
/// network's server URL included); returns the arbiters it created and the brokers (the node
/// stops both at shutdown). Registers the federation metrics in `metrics` when there is at
/// least one broker.
pub fn start(
    config: &Config,
    urls: &BTreeMap<String, Vec<String>>,
    metrics: &MetricsRegistry,
    watchdog: &Addr<WatchdogActor>,
    health: &NetworkHealth,
) -> (Vec<Arbiter>, Vec<ActorSlot<FederationBrokerActor>>) {
    if config.federation.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut brokers = Vec::new();
    let families = FederationMetrics::register(metrics);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let arbiters: Vec<Arbiter> = (0..config.federation.len().clamp(1, cores))
        .map(|_| Arbiter::new())
        .collect();
    for (i, (cluster, broker)) in config.federation.iter().enumerate() {
        let (Some(federation), Some(collective)) = (
            config.networks.get(&broker.federation),
            config.networks.get(&broker.collective),
        ) else {
            // Unreachable on a validated config; never panic on it.
            error!(
                cluster,
                "Federation broker refers to an unknown network; not started."
            );
            continue;
        };
        if let Some(queue_size) = broker.queue_size {
            warn!(
                cluster,
                queue_size = queue_size.get(),
                "Setting queue_size is deprecated and has no effect; remove it from the section."
            );
        }
        let Some(arbiter) = arbiters.get(i % arbiters.len()) else {
            continue;
        };
        let handle = arbiter.handle();
        let settings = broker.settings(cluster, &config.node.name);
        let node = &config.node.name;
        let url_of = |name: &str| urls.get(name).cloned().unwrap_or_default();
        let federation = federation
            .settings(node, &broker.federation, url_of(&broker.federation))
            .reporting_to(health);
        let collective = collective
            .settings(node, &broker.collective, url_of(&broker.collective))
            .reporting_to(health);
        let families = families.clone();
        let (watched, slot) = WatchedActor::start(format!("federation/{cluster}"), move || {
            let (settings, federation, collective, families) = (
                settings.clone(),
                federation.clone(),
                collective.clone(),
                families.clone(),
            );
            Supervisor::start_in_arbiter(&handle, move |_| {
                FederationBrokerActor::new(settings, federation, collective, families)
            })
        });
        watchdog.do_send(Watch(Box::new(watched)));
        brokers.push(slot);
        info!(
            cluster, federation = %broker.federation, collective = %broker.collective,
            workers = broker.workers.get(), "Federation broker started."
        );
    }
    (arbiters, brokers)
}
