//! [`Fleet`]: starts every daemon of a [`FleetSpec`] and reports how far it got.
//!
//! Daemons are spread round-robin over one arbiter per core and over every server URL; at
//! most `connect_concurrency` connect at once. A dedicated daemon is a `WireDaemon` task
//! speaking NATS itself when its server needs no TLS, credentials file or nkey, and an
//! [`EmulatedNodeActor`] on async-nats otherwise. [`Fleet::progress`] tells how many are
//! subscribed and connected, so a caller can draw a progress bar and log a summary.
//!
//! [`Fleet::shutdown`] stops it: each daemon actor gets [`Shutdown`](crate::supervision::Shutdown) (it flushes what it
//! published and stops), each `WireDaemon` task is aborted between two polls (it writes its
//! replies in the poll that read the request), and the arbiters stop once all have ended.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::{AbortHandle, Abortable};
use tokio::sync::{mpsc, Semaphore};
use tracing::info;

use super::failure_log::{FailureLog, FAILURE_LOG_PERIOD};
use super::fleet_shared::{FleetShared, RegistrationPlan};
use super::registration::default_subject;
use super::servers::ServerPool;
use super::wire_daemon::{plain_address, WireDaemon};
use super::{
    AuditLog, ConnectionMode, EmulatedNode, EmulatedNodeActor, EmulatorError, EmulatorMetrics,
    FleetSecurity, FleetSpec, NodeProfile, RequestSecurity, SharedLinkActor,
};
use crate::protocol::security::Verifier;
use crate::protocol::Facts;
use crate::supervision::shutdown_all;

/// How far a fleet got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetProgress {
    /// Daemons in the spec.
    pub expected: usize,
    /// Daemons whose subscriptions are in place.
    pub started: usize,
    /// Connections up right now (one per daemon in dedicated mode).
    pub connected: usize,
}

impl FleetProgress {
    /// Whether every daemon is started.
    pub fn complete(&self) -> bool {
        self.started >= self.expected
    }
}

/// What `/debug/vars` shows of a fleet: its state and counters, read from the shared
/// counters (cheap to clone, usable after the fleet was handed to its owner).
#[derive(Debug, Clone)]
pub struct FleetStatus {
    name: String,
    expected: usize,
    metrics: EmulatorMetrics,
}

impl FleetStatus {
    /// `{name, kind: "emulator", state, counters}`. The state is `running` when every daemon
    /// is connected, `degraded` while some daemons cannot connect, else `starting`.
    pub fn json(&self) -> serde_json::Value {
        let m = &self.metrics;
        let gauge = |g: &prometheus_client::metrics::gauge::Gauge| g.get().max(0);
        let (started, connected, waiting) = (
            gauge(&m.started),
            gauge(&m.connected),
            gauge(&m.connect_waiting),
        );
        let expected = i64::try_from(self.expected).unwrap_or(i64::MAX);
        let state = if connected >= expected {
            "running"
        } else if waiting > 0 || started > connected {
            "degraded"
        } else {
            "starting"
        };
        serde_json::json!({
            "name": self.name,
            "kind": "emulator",
            "state": state,
            "counters": {
                "expected": self.expected,
                "started": started,
                "connected": connected,
                "connect_waiting": waiting,
                "connect_failures": m.connect_failures.get(),
                "reconnects": m.reconnects.get(),
                "lame_duck_moves": m.lame_duck_moves.get(),
                "stale_connections": m.stale_connections.get(),
                "messages": m.messages.get(),
                "replies": m.replies.get(),
                "registrations": m.registrations.get(),
                "oversize": m.oversize.get(),
                "dropped": m.dropped_total(),
            },
        })
    }
}

/// A running fleet of emulated daemons.
pub struct Fleet {
    spec: Arc<FleetSpec>,
    metrics: EmulatorMetrics,
    arbiters: Vec<Arbiter>,
    started_at: Instant,
    daemons: Vec<Addr<EmulatedNodeActor>>,
    links: Vec<Addr<SharedLinkActor>>,
    wire: WireTasks,
}

/// The `WireDaemon` tasks: how to abort each, and a channel that closes once all have ended
/// (each task holds a sender).
struct WireTasks {
    aborts: Vec<AbortHandle>,
    alive: mpsc::Sender<()>,
    ended: mpsc::Receiver<()>,
}

impl WireTasks {
    fn new() -> Self {
        let (alive, ended) = mpsc::channel(1);
        Self {
            aborts: Vec::new(),
            alive,
            ended,
        }
    }

    /// Spawns `daemon` on `arbiter`, abortable.
    fn spawn(&mut self, arbiter: &Arbiter, daemon: WireDaemon) {
        let (abort, registration) = AbortHandle::new_pair();
        let alive = self.alive.clone();
        arbiter.spawn(async move {
            let _alive = alive;
            let _ = Abortable::new(daemon.run(), registration).await;
        });
        self.aborts.push(abort);
    }

    /// Aborts every task and waits until all have ended.
    async fn stop(self) {
        let Self {
            aborts,
            alive,
            mut ended,
        } = self;
        for abort in &aborts {
            abort.abort();
        }
        drop(alive);
        // Never receives a value: it ends when the last task dropped its sender.
        while ended.recv().await.is_some() {}
    }
}

impl Fleet {
    /// Starts every daemon of `spec` on new arbiters of the current actix System, counting into
    /// `metrics`. Returns at once; daemons connect in the background (see [`Fleet::progress`]).
    pub fn start(spec: FleetSpec, metrics: EmulatorMetrics) -> Result<Self, EmulatorError> {
        let urls = spec.network.urls.clone();
        if urls.is_empty() {
            return Err(EmulatorError::NoServers);
        }
        let audit = spec.audit.as_deref().map(AuditLog::open).transpose()?;
        let collectives = spec.collective_names();
        let registration = spec.registration.as_ref().map(|r| {
            Arc::new(RegistrationPlan {
                interval: r.interval.max(Duration::from_millis(10)),
                splay: r.splay,
                subject: r
                    .subject
                    .clone()
                    .unwrap_or_else(|| default_subject(&collectives[0])),
            })
        });
        let security = spec
            .secure
            .as_ref()
            .map(|policy| {
                let verifier = Verifier::new(policy)?;
                Ok::<_, EmulatorError>(FleetSecurity(Arc::new(RequestSecurity::new(
                    verifier,
                    metrics.security.clone(),
                ))))
            })
            .transpose()?;
        let profile = Arc::new(NodeProfile {
            agents: spec.agent_names(),
            classes: spec.classes.clone(),
            collectives,
            security,
        });
        let shared = Arc::new(FleetShared {
            settings: spec.network.clone(),
            metrics: metrics.clone(),
            connect_slots: Semaphore::new(spec.connect_concurrency.get()),
            audit,
            registration,
            servers: ServerPool::new(
                urls.iter()
                    .filter_map(|url| plain_address(&spec.network, url)),
            ),
            failures: FailureLog::new(FAILURE_LOG_PERIOD, Instant::now()),
            ping_interval: spec.ping_interval.max(Duration::from_millis(10)),
        });
        let threads = spec
            .arbiters
            .or_else(|| std::thread::available_parallelism().ok())
            .unwrap_or(NonZeroUsize::MIN)
            .get();
        let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
        let mut daemons = Vec::new();
        let mut shared_links = Vec::new();
        let mut wire = WireTasks::new();
        let urls: Vec<Arc<str>> = urls.iter().map(|u| Arc::from(u.as_str())).collect();
        let tls = spec.network.uses_tls();
        let node = |i: usize, url: &Arc<str>| {
            EmulatedNode::new(
                spec.identity(i),
                Facts::new(spec.facts_of(i)),
                profile.clone(),
                hop_url(url, tls),
            )
        };
        match spec.mode {
            ConnectionMode::Dedicated => {
                for i in 0..spec.instances {
                    let url = &urls[i % urls.len()];
                    let (node, shared) = (node(i, url), shared.clone());
                    let arbiter = &arbiters[i % arbiters.len()];
                    let server = plain_address(&spec.network, url)
                        .and_then(|address| shared.servers.index_of(&address));
                    if let Some(server) = server {
                        wire.spawn(arbiter, WireDaemon::new(node, server, shared));
                        continue;
                    }
                    let url = url.clone();
                    // Built on its arbiter: the actor holds thread-local state once connected.
                    daemons.push(EmulatedNodeActor::start_in_arbiter(
                        &arbiter.handle(),
                        move |_| EmulatedNodeActor::new(node, url, shared),
                    ));
                }
            }
            ConnectionMode::Shared => {
                let links = spec.shared_connections.get().min(spec.instances.max(1));
                for l in 0..links {
                    let url = &urls[l % urls.len()];
                    let nodes: Vec<EmulatedNode> = (l..spec.instances)
                        .step_by(links)
                        .map(|i| node(i, url))
                        .collect();
                    let (url, shared) = (url.clone(), shared.clone());
                    let arbiter = &arbiters[l % arbiters.len()];
                    shared_links.push(SharedLinkActor::start_in_arbiter(
                        &arbiter.handle(),
                        move |_| SharedLinkActor::new(l, nodes, url, shared),
                    ));
                }
            }
        }
        info!(
            instances = spec.instances,
            agents = spec.agents,
            collectives = spec.collectives.get(),
            servers = urls.len(),
            arbiters = arbiters.len(),
            mode = spec.mode.as_str(),
            "Starting emulated daemons."
        );
        Ok(Self {
            spec: Arc::new(spec),
            metrics,
            arbiters,
            started_at: Instant::now(),
            daemons,
            links: shared_links,
            wire,
        })
    }

    /// The spec it runs.
    pub fn spec(&self) -> &FleetSpec {
        &self.spec
    }

    /// Its state and counters for `/debug/vars`.
    pub fn status(&self) -> FleetStatus {
        FleetStatus {
            name: self.spec.name.clone(),
            expected: self.spec.instances,
            metrics: self.metrics.clone(),
        }
    }

    /// Its counters.
    pub fn metrics(&self) -> &EmulatorMetrics {
        &self.metrics
    }

    /// When it was started.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// How far it got.
    pub fn progress(&self) -> FleetProgress {
        FleetProgress {
            expected: self.spec.instances,
            started: usize::try_from(self.metrics.started.get().max(0)).unwrap_or(0),
            connected: usize::try_from(self.metrics.connected.get().max(0)).unwrap_or(0),
        }
    }

    /// Waits until every daemon is started or `timeout` passes, calling `on_progress` every
    /// 100 ms; returns whether all started.
    pub async fn wait_started(
        &self,
        timeout: Duration,
        mut on_progress: impl FnMut(FleetProgress),
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.progress();
            on_progress(p);
            if p.complete() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every daemon and answers once all have stopped: `Shutdown` to each daemon actor
    /// and shared link (what they published is flushed), an abort to each `WireDaemon` task
    /// (between two polls, its replies written); then the arbiters stop. Daemons still
    /// connecting stop at once.
    pub async fn shutdown(self) {
        let Self {
            spec,
            arbiters,
            daemons,
            links,
            wire,
            ..
        } = self;
        let name = spec.name.as_str();
        let daemons = daemons
            .into_iter()
            .enumerate()
            .map(|(i, addr)| (format!("emulator/{name}/{i}"), addr));
        let links = links
            .into_iter()
            .enumerate()
            .map(|(i, addr)| (format!("emulator/{name}/link/{i}"), addr));
        futures::join!(shutdown_all(daemons), shutdown_all(links), wire.stop());
        for arbiter in &arbiters {
            arbiter.stop();
        }
        info!(instances = spec.instances, "Emulated daemons stopped.");
    }

    /// Stops every daemon without waiting, for synchronous callers (tests, tools): the same
    /// `Shutdown` to each daemon actor and abort to each task as [`Fleet::shutdown`], but the
    /// arbiters stop at once, as the messages go out.
    pub fn stop(self) {
        for abort in &self.wire.aborts {
            abort.abort();
        }
        for daemon in &self.daemons {
            daemon.do_send(crate::supervision::Shutdown);
        }
        for link in &self.links {
            link.do_send(crate::supervision::Shutdown);
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        info!(instances = self.spec.instances, "Emulated daemons stopped.");
    }
}

/// The server URL a daemon names in its `seen-by` hops: `tls://` when it connects with TLS.
fn hop_url(url: &Arc<str>, tls: bool) -> Arc<str> {
    match url.strip_prefix("nats://") {
        Some(rest) if tls => Arc::from(format!("tls://{rest}")),
        _ => url.clone(),
    }
}
