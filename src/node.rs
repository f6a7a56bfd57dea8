//! The node: turns a validated [`Config`] into running, supervised actors, and shuts them
//! down in order.
//!
//! ```text
//! System
//!  ├─ EmbeddedServerActor ×embedded networks   (a supervised nats-server child each)
//!  ├─ NetworkActor ×networks                   (own arbiter each, actix Supervisor)
//!  ├─ TopicReplicatorActor ×replicators      (workers on their own arbiters)
//!  ├─ AdapterActor ×workers per adapter        (arbiter pool, actix Supervisor, watched)
//!  ├─ FederationBrokerActor ×clusters         (request and reply paths, pooled workers)
//!  ├─ EmulatedNodeActor ×[emulator] instances  (own connection each, one arbiter per core)
//!  ├─ WatchdogActor                            (re-creates actors whose mailbox closed)
//!  └─ monitor                                  (actix-web: /metrics, /healthz, /debug/vars)
//! ```

pub mod adapters;
pub mod brokers;
pub mod embedded;
pub mod emulator;
pub mod replicators;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use choir_actors::adapter::AdapterActor;
use choir_actors::connection::{NetworkActor, NetworkHealth, NetworkMetrics};
use choir_actors::emulator::Fleet;
use choir_actors::error_chain::Chain;
use choir_actors::federation::FederationBrokerActor;
use choir_actors::metrics::MetricsRegistry;
use choir_actors::replicator::TopicReplicatorActor;
use choir_actors::supervision::{shutdown_all, ActorSlot, Watch, WatchdogActor, WatchedActor};
use tracing::{info, warn};

use crate::config::Config;
use crate::monitor::{self, Components, MonitorState};
use crate::signal::wait_for_signal;
use embedded::{EmbeddedError, EmbeddedServerActor, EmbeddedServerSpec};

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// An embedded server cannot be set up.
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    /// The monitor cannot bind its address.
    #[error("node.monitor = {addr:?}: cannot listen")]
    Monitor {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The state directory cannot be created.
    #[error("node.state_dir = {path:?}: cannot create")]
    StateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running node: handles to everything it started.
pub struct Node {
    /// The node's registry (`/metrics`).
    pub metrics: MetricsRegistry,
    /// Connection state of every network (`/healthz`).
    pub health: NetworkHealth,
    /// The network actors by name.
    pub networks: BTreeMap<String, ActorSlot<NetworkActor>>,
    /// The resolved URL of every network (an embedded one's server URL included).
    pub urls: BTreeMap<String, Vec<String>>,
    embedded: Vec<(String, Addr<EmbeddedServerActor>)>,
    fleet: Option<Fleet>,
    adapters: Vec<ActorSlot<AdapterActor>>,
    replicators: Vec<ActorSlot<TopicReplicatorActor>>,
    brokers: Vec<ActorSlot<FederationBrokerActor>>,
    arbiters: Vec<Arbiter>,
    monitor: Option<actix_web::dev::ServerHandle>,
    watchdog: Addr<WatchdogActor>,
}

impl Node {
    /// Starts everything `config` describes on the current actix System.
    pub fn start(config: &Config) -> Result<Self, NodeError> {
        let started = Instant::now();
        let metrics = MetricsRegistry::new();
        let health = NetworkHealth::default();
        let node = &config.node;
        std::fs::create_dir_all(&node.state_dir).map_err(|source| NodeError::StateDir {
            path: node.state_dir.display().to_string(),
            source,
        })?;

        let mut embedded = Vec::new();
        let mut embedded_vars = serde_json::Map::new();
        // The newest installed nats-server, looked up once for every embedded network that
        // does not name its own.
        let mut newest = None;
        let mut urls = BTreeMap::new();
        for (name, network) in &config.networks {
            if network.embedded {
                let binary = match &network.nats_server {
                    Some(path) => {
                        let version = crate::nats_binary::server_version(path);
                        if let Err(e) = &version {
                            warn!(
                                network = %name,
                                error = %Chain(e),
                                "The configured nats-server gives no version; starting it anyway."
                            );
                        }
                        crate::nats_binary::NatsBinary {
                            path: path.clone(),
                            version: version.ok(),
                        }
                    }
                    None => newest
                        .get_or_insert_with(crate::nats_binary::newest_nats_server)
                        .clone()
                        .ok_or_else(|| EmbeddedError::NotFound(name.clone()))?,
                };
                let port = match network.port {
                    Some(port) => port,
                    None => embedded::free_port()?,
                };
                let spec = EmbeddedServerSpec {
                    network: name.clone(),
                    binary: binary.path,
                    version: binary.version,
                    port,
                    store_dir: node.state_dir.join("nats").join(name),
                    server_name: format!("choir-{}-{name}", node.name),
                };
                urls.insert(name.clone(), vec![spec.url()]);
                embedded_vars.insert(name.clone(), spec.vars());
                embedded.push((
                    format!("embedded/{name}"),
                    EmbeddedServerActor::new(spec).start(),
                ));
            } else {
                urls.insert(name.clone(), network.urls.clone());
            }
        }

        let watchdog = WatchdogActor::new(node.watchdog_interval, &metrics).start();
        let network_metrics = NetworkMetrics::register(&metrics);
        let mut networks = BTreeMap::new();
        let mut arbiters = Vec::new();
        for (name, network) in &config.networks {
            let settings = network.settings(
                &node.name,
                name,
                urls.get(name).cloned().unwrap_or_default(),
            );
            let status = health.status(name);
            let arbiter = Arbiter::new();
            let handle = arbiter.handle();
            let m = network_metrics.clone();
            let (watched, slot) = WatchedActor::start(format!("network/{name}"), move || {
                let (settings, m, status) = (settings.clone(), m.clone(), status.clone());
                Supervisor::start_in_arbiter(&handle, move |_| {
                    NetworkActor::new(settings, m, status)
                })
            });
            watchdog.do_send(Watch(Box::new(watched)));
            networks.insert(name.clone(), slot);
            arbiters.push(arbiter);
        }
        let (adapter_arbiters, adapters) = adapters::start(config, &networks, &metrics, &watchdog);
        arbiters.extend(adapter_arbiters);
        let replicators =
            replicators::start(config, &networks, &urls, &metrics, &watchdog, &health);
        let (broker_arbiters, brokers) =
            brokers::start(config, &urls, &metrics, &watchdog, &health);
        arbiters.extend(broker_arbiters);
        let components = Components::default();
        for name in config.replicators.keys() {
            components.add(monitor::components::replicator(
                name.clone(),
                metrics.clone(),
            ));
        }
        for (name, adapter) in &config.adapters {
            components.add(monitor::components::adapter(
                name.clone(),
                adapter.workers.get(),
                metrics.clone(),
            ));
        }
        for cluster in config.federation.keys() {
            components.add(monitor::components::broker(
                cluster.clone(),
                metrics.clone(),
                health.clone(),
            ));
        }
        let fleet = emulator::start(config, &urls, &metrics, &components);

        let monitor = match node.monitor_addr() {
            Some(addr) => {
                let state = MonitorState {
                    metrics: metrics.clone(),
                    health: health.clone(),
                    name: node.name.clone(),
                    config: config.summary_json(),
                    started,
                    components,
                    security: fleet.security,
                    embedded: embedded_vars,
                };
                let handle = monitor::start_with_watchdog(addr, state, watchdog.clone()).map_err(
                    |source| NodeError::Monitor {
                        addr: node.monitor.clone(),
                        source,
                    },
                )?;
                info!(%addr, "Monitor listening.");
                Some(handle)
            }
            None => None,
        };
        info!(
            node = %node.name,
            networks = config.networks.len(),
            embedded = embedded.len(),
            "Node started."
        );
        Ok(Self {
            metrics,
            health,
            networks,
            urls,
            embedded,
            fleet: fleet.fleet,
            adapters,
            replicators,
            brokers,
            arbiters,
            monitor,
            watchdog,
        })
    }

    /// Stops everything within `timeout`, each group with one [`Shutdown`] (answered once the
    /// group finished what it accepted) before the next: the watchdog (nothing is re-created
    /// from now on), then sources first: the emulated daemons
    /// (the fleet sends [`Shutdown`] to each), the adapter workers (subscriptions drained, what
    /// they took published), the replicators (workers stopped, trackers persisted), the
    /// federation brokers and the networks (connections drained), the monitor, the embedded
    /// servers.
    ///
    /// [`Shutdown`]: choir_actors::supervision::Shutdown
    pub async fn shutdown(mut self, timeout: Duration) {
        let fleet = self.fleet.take();
        let work = async {
            shutdown_all([("watchdog".to_owned(), self.watchdog.clone())]).await;
            if let Some(fleet) = fleet {
                fleet.shutdown().await;
            }
            shutdown_all(self.adapters.iter().map(ActorSlot::named)).await;
            shutdown_all(self.replicators.iter().map(ActorSlot::named)).await;
            shutdown_all(self.brokers.iter().map(ActorSlot::named)).await;
            shutdown_all(self.networks.values().map(ActorSlot::named)).await;
            if let Some(monitor) = &self.monitor {
                monitor.stop(true).await;
            }
            shutdown_all(self.embedded.iter().cloned()).await;
        };
        if actix_rt::time::timeout(timeout, work).await.is_err() {
            warn!(?timeout, "Shutdown took too long; exiting anyway.");
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        info!("Node stopped.");
    }
}

/// Runs `config` until SIGINT or SIGTERM, then shuts down gracefully; a second signal exits at
/// once with status 130.
pub fn run(config: Config) -> Result<(), NodeError> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let node = Node::start(&config)?;
        wait_for_signal().await;
        info!("Shutting down; a second Ctrl-C exits at once.");
        actix_rt::spawn(async {
            wait_for_signal().await;
            warn!("Second signal; exiting now.");
            std::process::exit(130);
        });
        node.shutdown(config.node.shutdown_timeout).await;
        Ok(())
    })
}
