//! One path of a broker: a pool of workers, each a queue subscription that ingests,
//! transforms and egests every message in one loop:
//!
//! ```text
//! NATS ──queue group──► worker ×W (ingest → transform → egest) ──► NATS
//! ```
//!
//! Each worker has its own queue subscription (the NATS server spreads messages over them and
//! over other broker processes of the same cluster), so a message crosses no internal queue:
//! it is parsed borrowing the received payload, rewritten, serialised once and handed to the
//! egest connection, all in one poll of one task. Memory stays bounded: a worker holds one
//! message at a time, the subscription buffer is the network's `subscription_capacity`, and
//! a publish waits when the egest connection's outgoing queue is full, so a slow collective
//! backs up to the NATS subscription. Metrics keep Choria's three stages: worker `i` counts
//! as `nats_ingest` `i`, the path's transformer `i` and `nats_egest` `i`. A broken message is
//! counted and dropped; nothing in here panics or stops a worker because of its input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::client::PublishErrorKind;
use async_nats::{Client, Subject, Subscriber};
use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use prometheus_client::metrics::counter::Counter;
use tracing::debug;

use super::metrics::{ChoriaLabels, FederationMetrics, StageMetrics};
use super::settings::BrokerSettings;
use super::transform::{transform_reply, transform_request, HopJson, Rejection, Rewritten};
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

/// The URL of the server a client is connected to, with the scheme of the connection:
/// `tls://` when the network is configured for TLS or the server requires it, else `nats://`.
fn server_url(client: &Client, tls: bool) -> String {
    let info = client.server_info();
    let scheme = if tls || info.tls_required {
        "tls"
    } else {
        "nats"
    };
    format!("{scheme}://{}:{}", info.host, info.port)
}

/// A worker's `seen-by` hop, its server URLs re-read now and then (a reconnect may move a
/// connection to another server of the cluster), kept as JSON text.
struct HopSource {
    ingest: Client,
    egest: Client,
    /// Whether the ingest and the egest networks are configured for TLS.
    tls: (bool, bool),
    hop: SeenByHop,
    json: HopJson,
    read_at: Instant,
}

impl HopSource {
    fn new(spec: &PathSpec, index: usize) -> Self {
        let processor = format!(
            "{} (choria_nats_ingest:{index}, {}:{index}, choria_nats_egest:{index})",
            spec.settings.identity,
            spec.direction.transformer()
        );
        let tls = match spec.direction {
            Direction::Request => (spec.settings.federation_tls, spec.settings.collective_tls),
            Direction::Reply => (spec.settings.collective_tls, spec.settings.federation_tls),
        };
        let hop = SeenByHop::new(
            server_url(&spec.ingest, tls.0),
            processor,
            server_url(&spec.egest, tls.1),
        );
        Self {
            json: HopJson::new(&hop),
            hop,
            tls,
            ingest: spec.ingest.clone(),
            egest: spec.egest.clone(),
            read_at: Instant::now(),
        }
    }

    fn get(&mut self, now: Instant) -> &HopJson {
        if now.saturating_duration_since(self.read_at) >= SERVER_REFRESH {
            self.read_at = now;
            let ingest = server_url(&self.ingest, self.tls.0);
            let egest = server_url(&self.egest, self.tls.1);
            if self.hop.incoming() != ingest || self.hop.outgoing() != egest {
                self.hop.set_servers(&ingest, &egest);
                self.json = HopJson::new(&self.hop);
            }
        }
        &self.json
    }
}

/// The drop counters of one path, resolved once (no label lookup per message).
struct Drops(Vec<(&'static str, Counter)>);

impl Drops {
    fn new(spec: &PathSpec) -> Self {
        let reasons = Rejection::REASONS
            .iter()
            .chain(&["max_payload", "publish"])
            .map(|&reason| (reason, spec.drops(reason)))
            .collect();
        Self(reasons)
    }

    fn inc(&self, reason: &str) {
        if let Some((_, counter)) = self.0.iter().find(|(r, _)| *r == reason) {
            counter.inc();
        }
    }
}

/// The metric handles of one worker under Choria's three stage names.
struct Stages {
    ingest: StageMetrics,
    transformer: StageMetrics,
    egest: StageMetrics,
}

impl Stages {
    fn new(spec: &PathSpec, index: usize) -> Self {
        let direction = spec.direction;
        let worker =
            |name, connected_to| spec.metrics.worker(spec.labels(name, index, connected_to));
        Self {
            ingest: worker("nats_ingest", direction.ingest_side()),
            transformer: worker(direction.transformer(), "unconnected"),
            egest: worker("nats_egest", direction.egest_side()),
        }
    }
}

/// The subject of the last target, reused while the target repeats (every reply to one
/// request goes to the same reply-to; a fleet's broadcasts to the same agent subject), so a
/// repeated target costs no allocation.
#[derive(Default)]
struct LastSubject(Option<Subject>);

impl LastSubject {
    fn get(&mut self, target: &str) -> Subject {
        match &self.0 {
            Some(subject) if subject.as_str() == target => subject.clone(),
            _ => self.0.insert(Subject::from(target)).clone(),
        }
    }
}

/// One worker: every message of `subscriber` ingested, transformed and published, until the
/// subscription ends.
async fn worker(spec: PathSpec, index: usize, mut subscriber: Subscriber) {
    let stages = Stages::new(&spec, index);
    let drops = Drops::new(&spec);
    let mut hops = HopSource::new(&spec, index);
    let mut subjects = LastSubject::default();
    let mut buffer = BytesMut::new();
    let collective_subject = spec.settings.reply_subject();
    while let Some(message) = subscriber.next().await {
        let received = Instant::now();
        stages.ingest.received.inc();
        stages.ingest.published.inc();
        stages.transformer.received.inc();
        let result = match spec.direction {
            Direction::Request => transform_request(&message.payload, &collective_subject),
            Direction::Reply => transform_reply(&message.payload),
        };
        let transformed = Instant::now();
        stages
            .transformer
            .time
            .observe(transformed.duration_since(received).as_secs_f64());
        match result {
            Ok(rewritten) => {
                stages.transformer.published.inc();
                stages.egest.received.inc();
                let payload = rewritten.encode_into(hops.get(transformed), &mut buffer);
                let egest = Egest {
                    spec: &spec,
                    index,
                    metrics: &stages.egest,
                    drops: &drops,
                };
                egest.publish_all(&rewritten, payload, &mut subjects).await;
                let done = Instant::now();
                stages
                    .egest
                    .time
                    .observe(done.duration_since(transformed).as_secs_f64());
                stages
                    .ingest
                    .time
                    .observe(done.duration_since(received).as_secs_f64());
            }
            Err(rejection) => {
                stages.transformer.errors.inc();
                drops.inc(rejection.reason());
                debug!(
                    cluster = %spec.settings.cluster, path = spec.direction.as_str(),
                    worker = index, reason = rejection.reason(), error = %rejection,
                    "Dropped a message the broker refuses."
                );
                stages
                    .ingest
                    .time
                    .observe(transformed.duration_since(received).as_secs_f64());
            }
        }
    }
}

/// What publishing needs of one worker.
struct Egest<'w> {
    spec: &'w PathSpec,
    index: usize,
    metrics: &'w StageMetrics,
    drops: &'w Drops,
}

impl Egest<'_> {
    /// Publishes the same bytes to every target. A payload over the server's max payload is
    /// counted once and dropped (no retry: it would never fit); any other failure is counted
    /// per target (core NATS is at most once; the client's request times out). Publishing
    /// queues the message on the connection (waiting only when its outgoing queue is full);
    /// the connection flushes by itself.
    async fn publish_all(
        &self,
        rewritten: &Rewritten<'_>,
        payload: Bytes,
        subjects: &mut LastSubject,
    ) {
        let (spec, index) = (self.spec, self.index);
        for target in rewritten.targets() {
            let subject = subjects.get(&target);
            match spec.egest.publish(subject, payload.clone()).await {
                Ok(()) => self.metrics.published.inc(),
                Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    self.metrics.errors.inc();
                    self.drops.inc("max_payload");
                    debug!(
                        cluster = %spec.settings.cluster, path = spec.direction.as_str(),
                        worker = index, bytes = payload.len(), %error,
                        "Dropped a message larger than the server's max payload."
                    );
                    return;
                }
                Err(error) => {
                    self.metrics.errors.inc();
                    self.drops.inc("publish");
                    debug!(
                        cluster = %spec.settings.cluster, path = spec.direction.as_str(),
                        worker = index, %error, "Publish failed; message dropped."
                    );
                }
            }
        }
    }
}

/// Runs one path over `subscribers` (one per worker) until a subscription ends: the broker
/// then restarts and subscribes every worker again.
pub async fn run(spec: PathSpec, subscribers: Vec<Subscriber>) {
    let mut tasks: FuturesUnordered<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(i, subscriber)| worker(spec.clone(), i, subscriber).boxed())
        .collect();
    tasks.next().await;
}
