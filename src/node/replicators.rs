//! Starts the `[replicators.*]` of a config: one supervised, watched `TopicReplicatorActor`
//! each, which starts its own workers once both networks are up.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use choir_actors::connection::{NetworkActor, NetworkHealth};
use choir_actors::metrics::MetricsRegistry;
use choir_actors::replicator::{ReplicatorMetrics, ReplicatorNetworks, TopicReplicatorActor};
use choir_actors::supervision::{ActorSlot, Watch, WatchdogActor, WatchedActor};

use crate::config::Config;

/// Starts every replicator of `config`; validation guarantees the networks exist. Workers
/// open their own connections to the networks' resolved `urls` (an embedded server's URL is
/// known only once the node picked its port).
pub fn start(
    config: &Config,
    networks: &BTreeMap<String, ActorSlot<NetworkActor>>,
    urls: &BTreeMap<String, Vec<String>>,
    metrics: &MetricsRegistry,
    watchdog: &Addr<WatchdogActor>,
    health: &NetworkHealth,
) -> Vec<ActorSlot<TopicReplicatorActor>> {
    if config.replicators.is_empty() {
        return Vec::new();
    }
    let families = ReplicatorMetrics::register(metrics);
    let mut slots = Vec::new();
    for (name, replicator) in &config.replicators {
        let (Some(source), Some(target), Some(source_net), Some(target_net)) = (
            networks.get(&replicator.source),
            networks.get(&replicator.target),
            config.networks.get(&replicator.source),
            config.networks.get(&replicator.target),
        ) else {
            continue;
        };
        let url_of = |name: &str| urls.get(name).cloned().unwrap_or_default();
        let networks = ReplicatorNetworks {
            source: source.clone(),
            target: target.clone(),
            source_settings: Arc::new(
                source_net
                    .settings(
                        &config.node.name,
                        &replicator.source,
                        url_of(&replicator.source),
                    )
                    .reporting_to(health),
            ),
            target_settings: Arc::new(
                target_net
                    .settings(
                        &config.node.name,
                        &replicator.target,
                        url_of(&replicator.target),
                    )
                    .reporting_to(health),
            ),
            election: replicator
                .ha
                .as_ref()
                .and_then(|ha| ha.network.as_ref())
                .and_then(|network| networks.get(network))
                .cloned(),
        };
        let mut settings = replicator.settings_on(name, &config.node.state_dir, &config.node.name);
        settings.choria = replicator.choria_compat(&config.node);
        let stats = families.for_replicator(name);
        if let Some(choria) = &settings.choria {
            families.choria().expose(
                &stats,
                &settings.source_stream,
                &choria.site,
                settings.heartbeat.is_some(),
            );
        }
        let (watched, slot) = WatchedActor::start(format!("replicator/{name}"), move || {
            let (settings, networks, stats) = (settings.clone(), networks.clone(), stats.clone());
            Supervisor::start(move |_| TopicReplicatorActor::new(settings, networks, stats))
        });
        let watched = watched.with_fault_injection();
        watchdog.do_send(Watch(Box::new(watched)));
        slots.push(slot);
    }
    slots
}
