//! The protocol adapter: a NATS subject (queue group, N workers) into a JetStream stream.
//!
//! This is how data published on plain NATS (Choria registration, say) enters a stream that a
//! replicator can then sample and copy. Each [`AdapterActor`] is one worker of one
//! `[adapters.<name>]` section:
//!
//! ```text
//! NATS subject ──queue group──► AdapterActor ×workers (spread over arbiters)
//!                                 │ Transformer: raw copy, or Choria request →
//!                                 │   {"protocol":"choria:adapters:jetstream:output:1",…}
//!                                 ▼
//!                               JetStream publish, a bounded window of acks in flight
//!                                 ▼
//!                               stream (created when missing), Nats-Msg-Id = request id
//! ```
//!
//! # Why one subscription per worker
//!
//! Every worker subscribes the subject with the same queue group, and the NATS server
//! load-balances the messages between them. The alternative, one subscription feeding N
//! workers through bounded mailboxes, adds a hop and a single reader that every message
//! crosses. With one queue subscription each there is no shared reader, a stuck or restarting
//! worker only holds its own buffered messages, and adapters on several choir nodes can join
//! the same queue group for high availability without any change.
//!
//! # Plain-Rust cores
//!
//! - [`subject`]: subject validation, the `%s` sender template, the loop check;
//! - [`output`]: the `choria:adapters:jetstream:output:1` document;
//! - [`transform`]: `Transformer`, one incoming message to one stream message or a counted
//!   rejection;
//! - [`publish`]: one publish with its ack awaited and bounded retries;
//! - [`pump`]: the worker loop with its window of publishes in flight;
//! - [`settings`] and [`metrics`].
//!
//! # Guarantees
//!
//! Core NATS delivers at most once, so the adapter cannot promise more: a message that arrives
//! while no worker is subscribed, or that is buffered in a worker when it stops, is lost. Once
//! received, a message is acked by the stream or retried `publish_retries` times with backoff,
//! then counted as dropped (`reason="publish"`) with an ERROR log. A message the decoder
//! rejects is counted by reason and dropped; a worker never stops because of its input. In
//! `choria` mode the `Nats-Msg-Id` is the request id, so the stream's duplicate window stores a
//! request published twice only once.

pub mod metrics;
pub mod output;
pub mod publish;
pub mod pump;
pub mod settings;
pub mod subject;
pub mod transform;
#[cfg(test)]
mod transform_fuzz_tests;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream::context::{
    Context as JetStream, ContextBuilder, CreateStreamError, GetStreamError,
};
use async_nats::jetstream::stream::Config as StreamConfig;
use async_nats::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::connection::{GetClient, NetworkActor};
use crate::error_chain::Chain;
use crate::supervision::{ActorSlot, Backoff, Restarts, Shutdown};

pub use metrics::{AdapterMetrics, AdapterWorkerMetrics};
pub use output::{AdapterOutput, OUTPUT_PROTOCOL};
pub use publish::{Delivery, RetryPolicy};
pub use settings::{default_queue_group, AdapterProtocol, AdapterSettings};
pub use subject::SubjectTemplate;
pub use transform::{Outgoing, Rejection, Transformer};

/// How long one wait for a network's client lasts before it is logged and retried.
const CLIENT_WAIT: Duration = Duration::from_secs(10);
/// The pause before a worker whose subscription ended subscribes again (its connection closed
/// or drained under it: retrying at once would spin).
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// Errors setting up an adapter worker (each ends in a restart with backoff).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The stream is missing and `create_stream = false`, or cannot be looked up.
    #[error("stream {stream}")]
    Stream {
        /// The stream.
        stream: String,
        /// Why.
        source: GetStreamError,
    },
    /// The stream could not be created.
    #[error("cannot create stream {stream}")]
    CreateStream {
        /// The stream.
        stream: String,
        /// Why.
        source: CreateStreamError,
    },
    /// The subscription failed.
    #[error("cannot subscribe {subject}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        source: async_nats::SubscribeError,
    },
    /// The subscription could not be confirmed by a flush.
    #[error("cannot flush the subscription")]
    Flush(#[from] async_nats::client::FlushError),
}

/// One worker of one adapter: subscribes with the adapter's queue group and publishes into its
/// stream. On any setup error or when the subscription ends it stops itself and its actix
/// `Supervisor` restarts it, after a backoff that grows with consecutive setup failures. After
/// [`Shutdown`] it drains its subscription, publishes what it took, and stays stopped.
pub struct AdapterActor {
    settings: Arc<AdapterSettings>,
    worker: usize,
    source: ActorSlot<NetworkActor>,
    target: ActorSlot<NetworkActor>,
    metrics: AdapterWorkerMetrics,
    restarts: Restarts,
    /// Set for good by [`Shutdown`]; the run watches it.
    stop: watch::Sender<bool>,
    /// True while a run (setup or pump) is under way; [`Shutdown`] waits for it to fall.
    running: watch::Sender<bool>,
}

/// How one run of a worker ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The subscription ended under the worker (its connection closed or drained): restart.
    SubscriptionEnded,
    /// [`Shutdown`] stopped it: what it took is published; it is not restarted.
    Stopped,
}

/// What a worker does after a run: the plain decision behind the actor's restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterRun {
    /// Stop and let the `Supervisor` start it again (after the [`Restarts`] delay).
    Restart,
    /// Stay stopped: the node is shutting down.
    StayStopped,
}

/// Decides restart vs stop after a run that ended with `result`, `stopping` being whether
/// [`Shutdown`] arrived: after a shutdown nothing restarts, whatever the run reported (a
/// subscription ending or a setup failing under a draining connection is expected then).
pub fn after_run(stopping: bool, result: &Result<RunEnd, AdapterError>) -> AfterRun {
    match result {
        _ if stopping => AfterRun::StayStopped,
        Ok(RunEnd::Stopped) => AfterRun::StayStopped,
        Ok(RunEnd::SubscriptionEnded) | Err(_) => AfterRun::Restart,
    }
}

impl AdapterActor {
    /// Worker `worker` of the adapter `settings`, subscribing through `source` and publishing
    /// through `target` (the same slot when both are one network).
    pub fn new(
        settings: Arc<AdapterSettings>,
        worker: usize,
        source: ActorSlot<NetworkActor>,
        target: ActorSlot<NetworkActor>,
        metrics: &AdapterMetrics,
    ) -> Self {
        let metrics = metrics.worker(&settings.name, worker);
        let restarts = Restarts::new(Backoff::new(settings.retry_backoff, settings.max_backoff))
            .after_end(RESUBSCRIBE_DELAY);
        Self {
            settings,
            worker,
            source,
            target,
            metrics,
            restarts,
            stop: watch::Sender::new(false),
            running: watch::Sender::new(false),
        }
    }
}

/// Waits for the client of the network in `slot`, logging and retrying every [`CLIENT_WAIT`];
/// it asks the slot anew each time, so a re-created network actor is found.
async fn client_of(slot: &ActorSlot<NetworkActor>, network: &str, adapter: &str) -> Client {
    let mut backoff = Backoff::RETRY;
    loop {
        match tokio::time::timeout(CLIENT_WAIT, slot.get().send(GetClient)).await {
            Ok(Ok(Ok(client))) => return client,
            Ok(Ok(Err(error))) => {
                warn!(adapter, network, error = %Chain(&error), "Network not available yet; retrying.")
            }
            Ok(Err(error)) => {
                warn!(adapter, network, %error, "Network actor unreachable; retrying.")
            }
            Err(_) => warn!(
                adapter, network, waited = ?CLIENT_WAIT,
                "Still waiting for the network to connect."
            ),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Makes sure the stream exists, creating it (capturing the adapter's subjects) when allowed.
async fn ensure_stream(js: &JetStream, settings: &AdapterSettings) -> Result<(), AdapterError> {
    if settings.create_stream {
        let config = StreamConfig {
            name: settings.stream.clone(),
            subjects: vec![settings.capture_subject()],
            ..StreamConfig::default()
        };
        js.get_or_create_stream(config)
            .await
            .map_err(|source| AdapterError::CreateStream {
                stream: settings.stream.clone(),
                source,
            })?;
    } else {
        js.get_stream(&settings.stream)
            .await
            .map_err(|source| AdapterError::Stream {
                stream: settings.stream.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Sets the `subscribed` gauge back to 0 however the worker's future ends.
struct Subscribed(prometheus_client::metrics::gauge::Gauge);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.set(0);
    }
}

async fn run(
    settings: Arc<AdapterSettings>,
    worker: usize,
    source: ActorSlot<NetworkActor>,
    target: ActorSlot<NetworkActor>,
    metrics: AdapterWorkerMetrics,
    delay: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<RunEnd, AdapterError> {
    let setup = async {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let name = settings.name.as_str();
        let client = client_of(&source, &settings.network, name).await;
        let stream_client = client_of(&target, &settings.stream_network, name).await;
        let js = ContextBuilder::new()
            .timeout(settings.ack_timeout)
            .build(stream_client);
        ensure_stream(&js, &settings).await?;
        let subscriber = client
            .queue_subscribe(settings.subject.clone(), settings.queue_group.clone())
            .await
            .map_err(|source| AdapterError::Subscribe {
                subject: settings.subject.clone(),
                source,
            })?;
        client.flush().await?;
        Ok::<_, AdapterError>((subscriber, js))
    };
    // Nothing is taken from NATS before the subscription: a shutdown may cut the setup short.
    let (subscriber, js) = tokio::select! {
        biased;
        _ = stop.wait_for(|stop| *stop) => return Ok(RunEnd::Stopped),
        ready = setup => ready?,
    };
    let name = settings.name.as_str();
    let guard = Subscribed(metrics.subscribed.clone());
    guard.0.set(1);
    info!(
        adapter = name, worker, subject = %settings.subject, queue_group = %settings.queue_group,
        stream = %settings.stream, protocol = settings.protocol.as_str(),
        "Adapter worker subscribed."
    );
    let policy = RetryPolicy {
        retries: settings.publish_retries,
        initial: settings.retry_backoff,
        max: settings.max_backoff,
    };
    let end = pump::pump(
        subscriber,
        js,
        Transformer::new(&settings),
        policy,
        settings.max_pending,
        metrics,
        pump::PumpContext {
            adapter: settings.name.clone(),
            worker,
            stop,
        },
    )
    .await;
    drop(guard);
    Ok(end)
}

impl Actor for AdapterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if *self.stop.borrow() {
            // Shut down: the Supervisor's restart finds it stopped for good.
            return;
        }
        self.metrics.starts.inc();
        self.running.send_replace(true);
        let delay = self.restarts.delay();
        let work = run(
            self.settings.clone(),
            self.worker,
            self.source.clone(),
            self.target.clone(),
            self.metrics.clone(),
            delay,
            self.stop.subscribe(),
        );
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.running.send_replace(false);
            if after_run(*act.stop.borrow(), &result) == AfterRun::StayStopped {
                info!(adapter = %act.settings.name, worker = act.worker, "Adapter worker stopped.");
                return;
            }
            match result {
                Ok(RunEnd::Stopped) => {}
                Ok(RunEnd::SubscriptionEnded) => {
                    act.restarts.ended();
                    info!(
                        adapter = %act.settings.name, worker = act.worker,
                        "Adapter subscription ended; restarting the worker."
                    );
                }
                Err(error) => {
                    act.restarts.failed();
                    warn!(
                        adapter = %act.settings.name, worker = act.worker,
                        failures = act.restarts.failures(), error = %Chain(&error),
                        "Adapter worker setup failed; retrying."
                    );
                }
            }
            ctx.stop();
        }));
    }
}

/// At node shutdown, before the networks drain: the worker drains its subscription (no new
/// messages), publishes what it already took and waits for those acks, answers once that is
/// done, and is not restarted.
impl Handler<Shutdown> for AdapterActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.stop.send_replace(true);
        let mut running = self.running.subscribe();
        Box::pin(async move {
            // An error means the actor is gone, and its run with it.
            let _ = running.wait_for(|running| !*running).await;
        })
    }
}

impl Handler<crate::supervision::InjectPanic> for AdapterActor {
    type Result = ();

    fn handle(&mut self, _: crate::supervision::InjectPanic, _: &mut Self::Context) {
        if crate::supervision::FAULT_INJECTION {
            panic!(
                "fault injection: adapter {} worker {} panics on request",
                self.settings.name, self.worker
            );
        }
    }
}

impl Supervised for AdapterActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.metrics.subscribed.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup_error() -> AdapterError {
        AdapterError::Subscribe {
            subject: "reg.in".into(),
            source: async_nats::SubscribeError::new(async_nats::SubscribeErrorKind::Other),
        }
    }

    #[test]
    fn a_subscription_that_ends_while_running_restarts_the_worker() {
        assert_eq!(
            after_run(false, &Ok(RunEnd::SubscriptionEnded)),
            AfterRun::Restart
        );
        assert_eq!(after_run(false, &Err(setup_error())), AfterRun::Restart);
    }

    #[test]
    fn after_shutdown_nothing_restarts_the_worker() {
        assert_eq!(after_run(true, &Ok(RunEnd::Stopped)), AfterRun::StayStopped);
        // The network drained under a worker that had not seen the stop yet.
        assert_eq!(
            after_run(true, &Ok(RunEnd::SubscriptionEnded)),
            AfterRun::StayStopped
        );
        assert_eq!(after_run(true, &Err(setup_error())), AfterRun::StayStopped);
        assert_eq!(
            after_run(false, &Ok(RunEnd::Stopped)),
            AfterRun::StayStopped
        );
    }
}
