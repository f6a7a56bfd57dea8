//! The federation broker: joins a federation NATS network to one collective's NATS network,
//! wire-compatible with Choria's Federation Broker.
//!
//! ```text
//! federation NATS                                                  collective NATS
//!  choria.federation.<c>.federation ─[<c>_federation]─► request path ─► each target subject
//!  client reply-to ◄─ reply path ◄─[<c>_collective]─ choria.federation.<c>.collective
//! ```
//!
//! One [`FederationBrokerActor`] per `[federation.<cluster>]` runs both paths, each a pool of
//! workers that ingest, transform and egest a message in one loop ([`pipeline`]):
//!
//! - **request path**: a federated request (`headers.federation = {req, target: […]}`) has its
//!   `reply-to` moved into `federation.reply-to`, `reply-to` set to
//!   `choria.federation.<cluster>.collective`, a `seen-by` hop appended, and the same bytes
//!   published to every target on the collective network;
//! - **reply path**: a reply carrying the federation header loses it, gains a `seen-by` hop
//!   and goes to the saved reply-to on the federation network.
//!
//! Only headers change: the transport's `data` (the signed message) is kept as the exact
//! text received, never copied into a string nor re-escaped ([`transform`]). Targets must be
//! `*.broadcast.agent.*` or `*.node.*`, reply-to must be `*.reply.*`: the broker refuses to
//! bridge into any other subject. Every refused or failed message is counted
//! (`choria_federation_errors`, `choir_federation_dropped_total{reason}`) and dropped; no
//! input stops a worker.
//!
//! # Scaling
//!
//! Any number of brokers (in one process or many) with the same cluster name share the work:
//! every worker joins the `<cluster>_federation` / `<cluster>_collective` queue group and the
//! NATS server hands each message to one member.
//!
//! # Failures
//!
//! The actor connects to both networks itself, from its own arbiter (so socket I/O and the
//! workers share a thread, see [`crate::connection::dedicated`]), subscribes, and runs the paths. If any worker's
//! subscription ends (the connection closed for good) or subscribing fails, it stops and its
//! actix `Supervisor` restarts it after a backoff, with every worker subscribed again. Connection blips are handled by async-nats, which keeps the
//! subscriptions across reconnects; messages in flight at that moment are lost, as in core
//! NATS, and the client's request times out.

pub mod metrics;
pub mod pipeline;
pub mod settings;
pub mod transform;
#[cfg(test)]
mod transform_fuzz_tests;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use async_nats::Client;
use parking_lot::Mutex;
use tracing::{info, warn};

use crate::connection::dedicated::{connect_with_retry, Owner};

use crate::connection::{drain_and_close, NetworkSettings};
use crate::error_chain::Chain;
use crate::supervision::{Backoff, Restarts, Shutdown};

pub use metrics::{ChoriaCounter, ChoriaLabels, FederationMetrics, StageMetrics};
pub use pipeline::{Direction, PathSpec};
pub use settings::BrokerSettings;
pub use transform::{transform_reply, transform_request, HopJson, Rejection, Rewritten};

/// Errors setting up a broker (each ends in a restart with backoff).
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A subscription failed.
    #[error("cannot subscribe {subject}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        source: async_nats::SubscribeError,
    },
    /// The subscriptions could not be confirmed by a flush.
    #[error("cannot flush the subscriptions")]
    Flush(#[from] async_nats::client::FlushError),
}

/// The broker of one cluster: a request path and a reply path.
pub struct FederationBrokerActor {
    settings: Arc<BrokerSettings>,
    federation: Arc<NetworkSettings>,
    collective: Arc<NetworkSettings>,
    metrics: FederationMetrics,
    restarts: Restarts,
    /// What [`Shutdown`] shares with the broker's task.
    running: Arc<Mutex<Running>>,
}

/// The running broker's connections, and whether it was stopped for good.
#[derive(Default)]
struct Running {
    /// The connections of the running broker (empty while it connects).
    clients: Vec<Client>,
    /// Stopped for good (node shutdown): not restarted.
    stopped: bool,
}

/// How long [`Shutdown`] waits for each connection to finish draining.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// The pause before a broker whose subscriptions ended subscribes again.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// At node shutdown, before the servers go away, the broker drains its connections (what it
/// forwarded is flushed), answers once they are closed, and is not restarted.
impl Handler<Shutdown> for FederationBrokerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let clients = {
            let mut running = self.running.lock();
            running.stopped = true;
            std::mem::take(&mut running.clients)
        };
        let cluster = self.settings.cluster.clone();
        Box::pin(async move {
            for client in clients {
                if !drain_and_close(&client, DRAIN_WAIT).await {
                    warn!(cluster, wait = ?DRAIN_WAIT, "A federation broker connection did not finish draining in time.");
                }
            }
        })
    }
}

impl FederationBrokerActor {
    /// The broker `settings` between the `federation` and `collective` networks. The actor
    /// makes its own connections to both, from its own arbiter.
    pub fn new(
        settings: BrokerSettings,
        federation: NetworkSettings,
        collective: NetworkSettings,
        metrics: FederationMetrics,
    ) -> Self {
        let settings = BrokerSettings {
            federation_tls: settings.federation_tls || federation.uses_tls(),
            collective_tls: settings.collective_tls || collective.uses_tls(),
            ..settings
        };
        Self {
            settings: Arc::new(settings),
            federation: Arc::new(federation),
            collective: Arc::new(collective),
            metrics,
            restarts: Restarts::new(Backoff::RESTART).after_end(RESUBSCRIBE_DELAY),
            running: Arc::default(),
        }
    }
}

/// Subscribes both paths of a broker between `federation` and `collective` and runs them
/// until a subscription ends. Usable without an actor (benches, tools).
pub async fn run_broker(
    settings: Arc<BrokerSettings>,
    federation: Client,
    collective: Client,
    metrics: FederationMetrics,
) -> Result<(), FederationError> {
    let request = PathSpec {
        direction: Direction::Request,
        settings: settings.clone(),
        ingest: federation.clone(),
        egest: collective.clone(),
        metrics: metrics.clone(),
    };
    let reply = PathSpec {
        direction: Direction::Reply,
        settings: settings.clone(),
        ingest: collective.clone(),
        egest: federation.clone(),
        metrics,
    };
    let mut subscriptions = Vec::new();
    for path in [&request, &reply] {
        let subscribers = path
            .subscribe()
            .await
            .map_err(|source| FederationError::Subscribe {
                subject: path.subscription().0,
                source,
            })?;
        subscriptions.push(subscribers);
    }
    federation.flush().await?;
    collective.flush().await?;
    info!(
        cluster = %settings.cluster, identity = %settings.identity,
        federation = %settings.federation_network, collective = %settings.collective_network,
        workers = settings.workers.get(), "Federation broker subscribed."
    );
    let reply_subscribers = subscriptions.pop().unwrap_or_default();
    let request_subscribers = subscriptions.pop().unwrap_or_default();
    futures::future::select(
        Box::pin(pipeline::run(request, request_subscribers)),
        Box::pin(pipeline::run(reply, reply_subscribers)),
    )
    .await;
    Ok(())
}

impl Actor for FederationBrokerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.running.lock().stopped {
            return;
        }
        let delay = self.restarts.delay();
        let (settings, federation, collective, metrics, running) = (
            self.settings.clone(),
            self.federation.clone(),
            self.collective.clone(),
            self.metrics.clone(),
            self.running.clone(),
        );
        let work = async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let owner = Owner {
                kind: "federation broker",
                name: settings.cluster.clone(),
                suffix: format!("federation-{}", settings.cluster),
            };
            let fed = connect_with_retry(&federation, &owner).await;
            let coll = connect_with_retry(&collective, &owner).await;
            let stopped = {
                let mut running = running.lock();
                if !running.stopped {
                    running.clients = vec![fed.clone(), coll.clone()];
                }
                running.stopped
            };
            if stopped {
                // Stopped while connecting.
                for client in [&fed, &coll] {
                    drain_and_close(client, DRAIN_WAIT).await;
                }
                return Ok(());
            }
            run_broker(settings.clone(), fed, coll, metrics).await
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            if act.running.lock().stopped {
                // Stays stopped and idle: stopping the actor would have its Supervisor
                // restart it (and log that) during the shutdown.
                info!(cluster = %act.settings.cluster, "Federation broker stopped.");
                return;
            }
            match result {
                Ok(()) => {
                    act.restarts.ended();
                    info!(
                        cluster = %act.settings.cluster,
                        "Federation broker subscriptions ended; restarting."
                    );
                }
                Err(error) => {
                    act.restarts.failed();
                    warn!(
                        cluster = %act.settings.cluster, failures = act.restarts.failures(), error = %Chain(&error),
                        "Federation broker setup failed; retrying."
                    );
                }
            }
            ctx.stop();
        }));
    }
}

impl Supervised for FederationBrokerActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        info!(cluster = %self.settings.cluster, "Restarting the federation broker.");
    }
}
