//! One path of a broker as pooled stages joined by bounded queues:
//!
//! ```text
//! NATS ──queue group──► ingest ×W ──(queue_size)──► transformer ×W ──(queue_size)──► egest ×W ──► NATS
//! ```
//!
//! Each ingest worker has its own queue subscription (the NATS server spreads messages over
//! them and over other broker processes of the same cluster). Each transformer and egest
//! worker owns a bounded input queue; the stage before it hands messages round-robin with
//! `send().await`, so a full queue makes the previous stage wait, back up to the NATS
//! subscription. A broken message is counted and dropped; nothing in here panics or stops a
//! worker because of its input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::client::PublishErrorKind;
use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tracing::debug;

use super::metrics::{ChoriaLabels, FederationMetrics, WorkerMetrics};
use super::settings::BrokerSettings;
use super::transform::{transform_reply, transform_request, Rewritten};
use crate::protocol::SeenByHop;

/// How often a worker re-reads the URL of the server its connection is on.
const SERVER_REFRESH: Duration = Duration::from_secs(1);

/// Which way a path carries messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Federation network → collective network.
    Request,
    /// Collective network → federation network.
    Reply,
}

impl Direction {
    /// `request` or `reply` (the `path` label of the drop counter).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Reply => "reply",
        }
    }

    fn transformer(self) -> &'static str {
        match self {
            Self::Request => "choria_request_transformer",
            Self::Reply => "choria_reply_transformer",
        }
    }

    fn ingest_side(self) -> &'static str {
        match self {
            Self::Request => "federation",
            Self::Reply => "collective",
        }
    }

    fn egest_side(self) -> &'static str {
        match self {
            Self::Request => "collective",
            Self::Reply => "federation",
        }
    }
}

/// Everything one path needs.
#[derive(Clone)]
pub struct PathSpec {
    /// Which way.
    pub direction: Direction,
    /// The broker's settings.
    pub settings: Arc<BrokerSettings>,
    /// The connection messages arrive on.
    pub ingest: Client,
    /// The connection messages leave on.
    pub egest: Client,
    /// The metric families.
    pub metrics: FederationMetrics,
}

impl PathSpec {
    fn labels(&self, name: &str, worker: usize, connected_to: &str) -> ChoriaLabels {
        ChoriaLabels {
            name: name.to_owned(),
            worker: worker.to_string(),
            connected_to: connected_to.to_owned(),
            cluster: self.settings.cluster.clone(),
            identity: self.settings.identity.clone(),
        }
    }

    fn drops(&self, reason: &str) -> Counter {
        self.metrics
            .drop_counter(&self.settings.cluster, self.direction.as_str(), reason)
    }

    /// The subject and queue group this path subscribes.
    pub fn subscription(&self) -> (String, String) {
        match self.direction {
            Direction::Request => (
                self.settings.request_subject(),
                self.settings.request_queue_group(),
            ),
            Direction::Reply => (
                self.settings.reply_subject(),
                self.settings.reply_queue_group(),
            ),
        }
    }

    /// Makes the ingest workers' queue subscriptions.
    pub async fn subscribe(&self) -> Result<Vec<Subscriber>, async_nats::SubscribeError> {
        let (subject, group) = self.subscription();
        let mut subscribers = Vec::with_capacity(self.settings.workers.get());
        for _ in 0..self.settings.workers.get() {
            subscribers.push(
                self.ingest
                    .queue_subscribe(subject.clone(), group.clone())
                    .await?,
            );
        }
        Ok(subscribers)
    }
}

/// The URL of the server a client is connected to, re-read now and then.
struct ServerUrl {
    client: Client,
    url: Arc<str>,
    read_at: Instant,
}

impl ServerUrl {
    fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
            url: Self::read(client),
            read_at: Instant::now(),
        }
    }

    fn read(client: &Client) -> Arc<str> {
        let info = client.server_info();
        Arc::from(format!("nats://{}:{}", info.host, info.port))
    }

    fn get(&mut self) -> Arc<str> {
        if self.read_at.elapsed() >= SERVER_REFRESH {
            self.url = Self::read(&self.client);
            self.read_at = Instant::now();
        }
        self.url.clone()
    }
}

/// A message as the ingest stage hands it on.
struct Ingested {
    payload: Bytes,
    ingest: usize,
    server: Arc<str>,
}

/// A rewritten message as the transformer stage hands it on.
struct Transformed {
    rewritten: Rewritten,
    ingest: usize,
    transformer: usize,
    server: Arc<str>,
}

/// Hands `item` to the next queue round-robin; false when every receiver is gone.
async fn hand_on<T>(queues: &[mpsc::Sender<T>], next: &mut usize, item: T) -> bool {
    let Some(queue) = queues.get(*next % queues.len().max(1)) else {
        return false;
    };
    *next = next.wrapping_add(1);
    queue.send(item).await.is_ok()
}

async fn ingest(
    mut subscriber: Subscriber,
    index: usize,
    client: Client,
    queues: Vec<mpsc::Sender<Ingested>>,
    metrics: WorkerMetrics,
) {
    let mut server = ServerUrl::new(&client);
    let mut next = index;
    while let Some(message) = subscriber.next().await {
        metrics.received.inc();
        let started = Instant::now();
        let item = Ingested {
            payload: message.payload,
            ingest: index,
            server: server.get(),
        };
        if !hand_on(&queues, &mut next, item).await {
            break;
        }
        metrics.published.inc();
        metrics.time.observe(started.elapsed().as_secs_f64());
    }
}

async fn transformer(
    spec: PathSpec,
    index: usize,
    mut input: mpsc::Receiver<Ingested>,
    queues: Vec<mpsc::Sender<Transformed>>,
    metrics: WorkerMetrics,
) {
    let collective_subject = spec.settings.reply_subject();
    let mut next = index;
    while let Some(item) = input.recv().await {
        metrics.received.inc();
        let started = Instant::now();
        let result = match spec.direction {
            Direction::Request => transform_request(&item.payload, &collective_subject),
            Direction::Reply => transform_reply(&item.payload),
        };
        match result {
            Ok(rewritten) => {
                let out = Transformed {
                    rewritten,
                    ingest: item.ingest,
                    transformer: index,
                    server: item.server,
                };
                if !hand_on(&queues, &mut next, out).await {
                    break;
                }
                metrics.published.inc();
            }
            Err(rejection) => {
                metrics.errors.inc();
                spec.drops(rejection.reason()).inc();
                debug!(
                    cluster = %spec.settings.cluster, path = spec.direction.as_str(),
                    worker = index, reason = rejection.reason(), error = %rejection,
                    "Dropped a message the broker refuses."
                );
            }
        }
        metrics.time.observe(started.elapsed().as_secs_f64());
    }
}

async fn egest(
    spec: PathSpec,
    index: usize,
    mut input: mpsc::Receiver<Transformed>,
    metrics: WorkerMetrics,
) {
    let mut server = ServerUrl::new(&spec.egest);
    let transformer_name = spec.direction.transformer();
    while let Some(item) = input.recv().await {
        metrics.received.inc();
        let started = Instant::now();
        let hop = SeenByHop::new(
            item.server.as_ref(),
            format!(
                "{} (choria_nats_ingest:{}, {transformer_name}:{}, choria_nats_egest:{index})",
                spec.settings.identity, item.ingest, item.transformer
            ),
            server.get().as_ref(),
        );
        match item.rewritten.finish(hop) {
            Ok((targets, payload)) => publish_all(&spec, index, targets, payload, &metrics).await,
            Err(rejection) => {
                metrics.errors.inc();
                spec.drops(rejection.reason()).inc();
            }
        }
        metrics.time.observe(started.elapsed().as_secs_f64());
    }
}

/// Publishes the same bytes to every target. A payload over the server's max payload is
/// counted once and dropped (no retry: it would never fit); any other failure is counted per
/// target (core NATS is at most once; the client's request times out).
async fn publish_all(
    spec: &PathSpec,
    index: usize,
    targets: Vec<String>,
    payload: Bytes,
    metrics: &WorkerMetrics,
) {
    for target in targets {
        match spec.egest.publish(target, payload.clone()).await {
            Ok(()) => metrics.published.inc(),
            Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                metrics.errors.inc();
                spec.drops("max_payload").inc();
                debug!(
                    cluster = %spec.settings.cluster, path = spec.direction.as_str(),
                    worker = index, bytes = payload.len(), %error,
                    "Dropped a message larger than the server's max payload."
                );
                return;
            }
            Err(error) => {
                metrics.errors.inc();
                spec.drops("publish").inc();
                debug!(
                    cluster = %spec.settings.cluster, path = spec.direction.as_str(),
                    worker = index, %error, "Publish failed; message dropped."
                );
            }
        }
    }
}

/// Runs one path over `subscribers` (one per ingest worker) until every subscription ended.
pub async fn run(spec: PathSpec, subscribers: Vec<Subscriber>) {
    let workers = spec.settings.workers.get();
    let capacity = spec.settings.queue_size.get();
    let direction = spec.direction;
    let (transform_in, transform_out): (Vec<_>, Vec<_>) =
        (0..workers).map(|_| mpsc::channel(capacity)).unzip();
    let (egest_in, egest_out): (Vec<_>, Vec<_>) =
        (0..workers).map(|_| mpsc::channel(capacity)).unzip();
    let tasks = FuturesUnordered::new();
    for (i, subscriber) in subscribers.into_iter().enumerate() {
        let labels = spec.labels("nats_ingest", i, direction.ingest_side());
        let metrics = spec.metrics.worker(labels);
        tasks.push(
            ingest(
                subscriber,
                i,
                spec.ingest.clone(),
                transform_in.clone(),
                metrics,
            )
            .boxed(),
        );
    }
    drop(transform_in);
    for (j, input) in transform_out.into_iter().enumerate() {
        let labels = spec.labels(direction.transformer(), j, "unconnected");
        let metrics = spec.metrics.worker(labels);
        tasks.push(transformer(spec.clone(), j, input, egest_in.clone(), metrics).boxed());
    }
    drop(egest_in);
    for (k, input) in egest_out.into_iter().enumerate() {
        let labels = spec.labels("nats_egest", k, direction.egest_side());
        let metrics = spec.metrics.worker(labels);
        tasks.push(egest(spec.clone(), k, input, metrics).boxed());
    }
    tasks.collect::<Vec<()>>().await;
}
