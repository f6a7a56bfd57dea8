//! Starts the `[replicators.*]` of a config: one supervised, watched `TopicReplicatorActor`
//! each, which starts its own workers once both networks are up.

use std::collections::BTreeMap;

use actix::prelude::*;
use choir_actors::connection::NetworkActor;
use choir_actors::metrics::Metrics;
use choir_actors::replicator::{ReplicatorMetrics, StopReplicator, TopicReplicatorActor};
use choir_actors::supervision::{ActorSlot, Watch, WatchdogActor, WatchedActor};

use crate::config::Config;

/// Starts every replicator of `config`; validation guarantees the networks exist.
pub fn start(
    config: &Config,
    networks: &BTreeMap<String, ActorSlot<NetworkActor>>,
    metrics: &Metrics,
    watchdog: &Addr<WatchdogActor>,
) -> Vec<ActorSlot<TopicReplicatorActor>> {
    if config.replicators.is_empty() {
        return Vec::new();
    }
    let families = ReplicatorMetrics::register(metrics);
    let mut slots = Vec::new();
    for (name, replicator) in &config.replicators {
        let (Some(source), Some(target)) = (
            networks.get(&replicator.source),
            networks.get(&replicator.target),
        ) else {
            continue;
        };
        let settings = replicator.settings(name, &config.node.state_dir);
        let stats = families.for_replicator(name);
        let (source, target) = (source.clone(), target.clone());
        let (watched, slot) = WatchedActor::start(format!("replicator/{name}"), move || {
            let (settings, source, target, stats) = (
                settings.clone(),
                source.clone(),
                target.clone(),
                stats.clone(),
            );
            Supervisor::start(move |_| TopicReplicatorActor::new(settings, source, target, stats))
        });
        watchdog.do_send(Watch(Box::new(watched)));
        slots.push(slot);
    }
    slots
}

/// Stops every replicator (persisting sampling trackers).
pub async fn stop(replicators: &[ActorSlot<TopicReplicatorActor>]) {
    let stops = replicators
        .iter()
        .map(|slot| slot.get().send(StopReplicator));
    futures::future::join_all(stops).await;
}
