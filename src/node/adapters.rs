//! Starts the `[adapters.<name>]` sections: `workers` supervised `AdapterActor`s each, spread
//! over a small pool of arbiters and watched by the node's watchdog. The node stops them with
//! `Shutdown` through their slots.

use std::collections::BTreeMap;

use actix::prelude::*;
use choir_actors::adapter::{AdapterActor, AdapterMetrics};
use choir_actors::connection::NetworkActor;
use choir_actors::metrics::MetricsRegistry;
use choir_actors::supervision::{ActorSlot, Watch, WatchdogActor, WatchedActor};
use tracing::{error, info};

use crate::config::Config;

/// Starts every adapter of `config` on `networks`; returns the arbiters it created (the node
/// stops them at shutdown) and the slot of every worker (the node sends them `Shutdown`).
/// Registers the adapter metrics in `metrics` when there is at least one adapter.
pub fn start(
    config: &Config,
    networks: &BTreeMap<String, ActorSlot<NetworkActor>>,
    metrics: &MetricsRegistry,
    watchdog: &Addr<WatchdogActor>,
) -> (Vec<Arbiter>, Vec<ActorSlot<AdapterActor>>) {
    let mut slots = Vec::new();
    if config.adapters.is_empty() {
        return (Vec::new(), slots);
    }
    let families = AdapterMetrics::register(metrics);
    let total: usize = config.adapters.values().map(|a| a.workers.get()).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let arbiters: Vec<Arbiter> = (0..total.clamp(1, cores)).map(|_| Arbiter::new()).collect();
    let mut next = 0usize;
    for (name, adapter) in &config.adapters {
        let (Some(source), Some(target)) = (
            networks.get(&adapter.network),
            networks.get(adapter.stream_network()),
        ) else {
            // Unreachable on a validated config; never panic on it.
            error!(adapter = %name, "Adapter refers to an unknown network; not started.");
            continue;
        };
        let settings = adapter.settings(name);
        for worker in 0..settings.workers.get() {
            let Some(arbiter) = arbiters.get(next % arbiters.len()) else {
                continue;
            };
            next += 1;
            let handle = arbiter.handle();
            let (settings, source, target, families) = (
                settings.clone(),
                source.clone(),
                target.clone(),
                families.clone(),
            );
            let (watched, slot) =
                WatchedActor::start(format!("adapter/{name}/{worker}"), move || {
                    let (settings, source, target, families) = (
                        settings.clone(),
                        source.clone(),
                        target.clone(),
                        families.clone(),
                    );
                    Supervisor::start_in_arbiter(&handle, move |_| {
                        AdapterActor::new(settings, worker, source, target, &families)
                    })
                });
            let watched = watched.with_fault_injection();
            watchdog.do_send(Watch(Box::new(watched)));
            slots.push(slot);
        }
        info!(
            adapter = %name, network = %adapter.network, subject = %adapter.subject,
            stream_network = adapter.stream_network(), stream = %adapter.stream,
            workers = adapter.workers.get(), "Adapter started."
        );
    }
    (arbiters, slots)
}
