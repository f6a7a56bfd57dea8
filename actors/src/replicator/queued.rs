//! The queued copy loop: one of a pool of workers sharing one durable consumer with explicit
//! acks. No order promise; each message is acked on the source after the target acked it.
//! Exactly once in the target comes from the deterministic `Nats-Msg-Id` and the target's
//! duplicate window: a message redelivered by the source (after a crash, or after `ack_wait`)
//! is dropped by the target as a duplicate.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream;
use futures::StreamExt;
use tracing::{debug, error, info, warn};

use super::acks::{AckInbox, AckOutcome};
use super::choria::source_header;
use super::context::WorkerContext;
use super::envelope::{from_unix_nanos, target_headers};
use super::failure::{classify_send, dead_letter, Failure};
use super::gate::GateVerdict;
use super::publish_path;
use super::settings::ReplicatorSettings;
use super::setup;
use crate::server_features::PublishPath;
use crate::supervision::Backoff;

mod fast_batch;
mod in_flight;

use fast_batch::FastBatch;
use in_flight::{Attempt, InFlight};

/// A fast batch whose tail is not acked yet is ended after this long without a new copy (the
/// target acks only per full flow window; the end of the batch brings the final count).
const END_QUIET: Duration = Duration::from_millis(50);

/// How a session publishes its copies and hears back from the target.
enum Acks {
    /// One JetStream ack per copy, on the session's ack inbox.
    PerMessage(AckInbox),
    /// Fast-ingest batches: one ack per flow window.
    Fast {
        batch: FastBatch,
        answers: async_nats::Subscriber,
    },
}

impl Acks {
    /// Opens the session's inbox for `path`.
    async fn open(w: &WorkerContext, path: &PublishPath) -> Result<Self, String> {
        match path {
            PublishPath::PerMessage { .. } => AckInbox::open(&w.target)
                .await
                .map(Acks::PerMessage)
                .map_err(|e| format!("cannot listen for target acks: {e}")),
            PublishPath::FastBatch => {
                // Ask for an ack every half window (two flow windows fill the worker's
                // window), at most every 500 copies (nats-server 2.15 acks at least that often).
                let flow =
                    u16::try_from((w.settings.window.get() / 2).clamp(1, 500)).unwrap_or(500);
                let batch = FastBatch::new(w.target.new_inbox(), flow);
                let answers = w
                    .target
                    .subscribe(batch.subscription())
                    .await
                    .map_err(|e| format!("cannot listen for target acks: {e}"))?;
                Ok(Acks::Fast { batch, answers })
            }
        }
    }

    fn has_room(&self) -> bool {
        match self {
            Acks::PerMessage(_) => true,
            Acks::Fast { batch, .. } => batch.has_room(),
        }
    }

    /// Fast path: ends the current batch when its unsettled copies sat `quiet` (zero: now), so
    /// that the target's final count settles them.
    async fn end(&mut self, w: &WorkerContext, quiet: Duration) {
        if let Acks::Fast { batch, .. } = self {
            if let Some((subject, reply)) = batch.end(Instant::now(), quiet) {
                // A lost end of batch is made good by the batch's expiry.
                let _ = w
                    .target
                    .publish_with_reply(subject, reply, bytes::Bytes::new())
                    .await;
            }
        }
    }

    /// The reply subject of the copy with `token` published to `subject`.
    fn reply(&mut self, token: u64, subject: &str) -> String {
        match self {
            Acks::PerMessage(inbox) => inbox.reply(token),
            Acks::Fast { batch, .. } => batch.reply(token, subject, Instant::now()),
        }
    }

    /// The next answer of the target: the copies it settles, and whether the target stream
    /// refused batches. `None` when the subscription ended.
    async fn next(&mut self) -> Option<(Vec<(u64, AckOutcome)>, bool)> {
        match self {
            Acks::PerMessage(inbox) => inbox.next().await.map(|one| (vec![one], false)),
            Acks::Fast { batch, answers } => {
                let message = answers.next().await?;
                let no_responders = message.status == Some(async_nats::StatusCode::NO_RESPONDERS);
                let answer = batch.on_answer(
                    message.subject.as_str(),
                    no_responders,
                    &message.payload,
                    Instant::now(),
                );
                Some((answer.settled, answer.not_enabled))
            }
        }
    }
}

/// A publish the target has not answered for this long is sent again (the target's
/// duplicate window drops it if the first one landed after all).
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// One source message this worker is copying.
struct Entry {
    seq: u64,
    message: jetstream::Message,
    published: SystemTime,
    /// When the current attempt was sent, or is due to be sent (a retry after backoff).
    sent: Instant,
    /// Failed attempts so far.
    attempt: u32,
    /// Waiting for its backoff to pass before it is sent again.
    waiting: bool,
}

impl Entry {
    /// The target headers of its copy (queued copies always carry `Nats-Msg-Id`).
    fn headers(&self, s: &ReplicatorSettings) -> async_nats::HeaderMap {
        let mut headers = target_headers(
            self.message.headers.as_ref(),
            &s.name,
            &s.source_stream,
            self.seq,
            self.published,
            None,
            true,
        );
        source_header::add(
            &mut headers,
            s.choria.as_ref(),
            &s.name,
            &s.source_stream,
            self.seq,
            self.published,
        );
        headers
    }
}

impl Attempt for Entry {
    fn bytes(&self) -> usize {
        self.message.payload.len()
    }

    fn sent(&self) -> Instant {
        self.sent
    }

    fn waiting(&self) -> bool {
        self.waiting
    }
}

/// Publishes `entry` under a fresh token; a publish the client cannot send settles at once.
async fn send(
    w: &WorkerContext,
    acks: &mut Acks,
    inflight: &mut InFlight<Entry>,
    mut entry: Entry,
) -> Option<(Entry, Failure)> {
    let s = &w.settings;
    let raw = &entry.message.message;
    let headers = entry.headers(s);
    let subject = s.subject_map.map(raw.subject.as_str());
    let token = inflight.token();
    let reply = acks.reply(token, &subject);
    let result = w
        .target
        .publish_with_reply_and_headers(subject, reply, headers, raw.payload.clone())
        .await;
    entry.sent = Instant::now();
    entry.waiting = false;
    match result {
        Ok(()) => {
            inflight.insert(token, entry);
            None
        }
        Err(e) => Some((entry, classify_send(&e))),
    }
}

/// What to do with a failed attempt: schedule a retry (kept under a fresh token, waiting),
/// or dead-letter and ack it when the target rejected it `max_rejections` times.
async fn settle_failure(
    w: &WorkerContext,
    index: usize,
    inflight: &mut InFlight<Entry>,
    troubled: &mut bool,
    mut entry: Entry,
    failure: Failure,
) {
    let s = &w.settings;
    let delay = Backoff::RETRY.delay(entry.attempt);
    entry.attempt = entry.attempt.saturating_add(1);
    match failure {
        Failure::Transient(reason) => {
            w.stats.failed_transient.inc();
            if !*troubled {
                *troubled = true;
                warn!(replicator = %s.name, worker = index, %reason, "Target publish failed; retrying until it works.");
            }
        }
        Failure::OutOfOrder => {
            w.stats.failed_out_of_order.inc();
        }
        Failure::Rejected(reason) => {
            w.stats.failed_rejected.inc();
            if usize::try_from(entry.attempt).unwrap_or(usize::MAX) >= s.max_rejections.get() {
                let headers = entry.headers(s);
                let sent = dead_letter(
                    &w.target,
                    &s.dead_letter,
                    headers,
                    entry.message.payload.clone(),
                    &reason,
                )
                .await;
                w.stats.dead_lettered.inc();
                error!(
                    replicator = %s.name, seq = entry.seq, %reason, subject = %s.dead_letter, dead_letter_sent = sent,
                    "Target rejected a message for good; it was not copied and went to the dead-letter subject."
                );
                let _ = entry.message.ack().await;
                return;
            }
        }
    }
    entry.sent = Instant::now() + delay;
    entry.waiting = true;
    let token = inflight.token();
    inflight.insert(token, entry);
}

/// Where a queued copy loop stops.
#[derive(Clone, Copy, Debug)]
enum Until {
    /// Never: a pool worker.
    Forever,
    /// When the consumer's ack floor reaches this stream sequence; later messages are left
    /// unacknowledged (the handover to an ordered worker).
    Floor(u64),
}

/// Why a queued session ended.
enum SessionEnd {
    /// `Until::Floor` reached.
    Done,
    /// The consumer or the ack inbox could not be opened.
    Setup(String),
    /// The session was interrupted after it started.
    Interrupted(String),
}

/// Runs worker `index` of a queued pool forever.
pub async fn run(w: Arc<WorkerContext>, index: usize) {
    let source_js = jetstream::new(w.source.clone());
    let mut streak: u32 = 0;
    let mut troubled = false;
    let mut path_seen = None;
    loop {
        if streak > 0 {
            actix_rt::time::sleep(Backoff::RESUME.delay(streak - 1)).await;
        }
        match session(
            &w,
            index,
            &source_js,
            Until::Forever,
            &mut troubled,
            &mut path_seen,
        )
        .await
        {
            SessionEnd::Done => streak = 0,
            SessionEnd::Setup(reason) => {
                if streak == 0 {
                    warn!(replicator = %w.settings.name, worker = index, %reason, "Cannot consume the source yet; retrying.");
                }
                streak = streak.saturating_add(1);
            }
            SessionEnd::Interrupted(reason) => {
                debug!(replicator = %w.settings.name, worker = index, %reason, "Queued worker re-subscribes.");
                streak = 1;
            }
        }
    }
}

/// Finishes what a queued pool left unacknowledged on the durable consumer, up to stream
/// sequence `bound`, the way the pool would have (the source redelivers those messages after
/// `ack_wait`; the target's duplicate window drops any copy that landed before), and leaves
/// later messages alone. Returns once every message up to `bound` is acknowledged.
pub async fn drain(w: &WorkerContext, bound: u64) -> Result<(), String> {
    let source_js = jetstream::new(w.source.clone());
    let mut troubled = false;
    let mut path_seen = None;
    match session(
        w,
        0,
        &source_js,
        Until::Floor(bound),
        &mut troubled,
        &mut path_seen,
    )
    .await
    {
        SessionEnd::Done => Ok(()),
        SessionEnd::Setup(reason) | SessionEnd::Interrupted(reason) => Err(reason),
    }
}

/// One subscription of a queued worker to the shared consumer, until `until` or trouble.
async fn session(
    w: &WorkerContext,
    index: usize,
    source_js: &jetstream::Context,
    until: Until,
    troubled: &mut bool,
    path_seen: &mut Option<&'static str>,
) -> SessionEnd {
    let s = &w.settings;
    let window = s.window.get();
    let messages = async {
        let stream = source_js
            .get_stream(&s.source_stream)
            .await
            .map_err(|e| e.to_string())?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_consumer(&s.durable_name())
            .await
            .map_err(|e| e.to_string())?;
        consumer
            .stream()
            .max_messages_per_batch(window)
            .max_bytes_per_batch(w.pull_max_bytes())
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| e.to_string())
    };
    let mut messages = match messages.await {
        Ok(m) => m,
        Err(reason) => return SessionEnd::Setup(reason),
    };
    let (features, path) = publish_path::detect(&w.target, &s.target_stream).await;
    if *path_seen != Some(path.name()) {
        // Said once per worker and path (again only when the path changes).
        match &path {
            PublishPath::FastBatch => {
                info!(replicator = %s.name, worker = index, server = %features.summary(), "Queued worker publishes to the target in fast-ingest batches.")
            }
            PublishPath::PerMessage { reason } => {
                info!(replicator = %s.name, worker = index, server = %features.summary(), %reason, "Queued worker publishes to the target message by message.")
            }
        }
        *path_seen = Some(path.name());
    }
    let mut acks = match Acks::open(w, &path).await {
        Ok(acks) => acks,
        Err(reason) => return SessionEnd::Setup(reason),
    };
    let fast = matches!(acks, Acks::Fast { .. });
    if fast {
        w.stats.fast_batch_workers.inc();
    }
    let mut inflight: InFlight<Entry> = InFlight::new(window, s.window_bytes.get());
    let mut tick = actix_rt::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            biased;
            answer = acks.next() => {
                let Some((settled, not_enabled)) = answer else {
                    break SessionEnd::Interrupted("the target ack inbox closed".to_owned());
                };
                w.stats.target_acks.inc();
                settle(w, index, &mut inflight, troubled, settled).await;
                if not_enabled {
                    // The stream's config changed under us: the next session finds the
                    // per-message path.
                    warn!(replicator = %s.name, worker = index, "The target stream refused fast-ingest batches; publishing message by message from now on.");
                    break SessionEnd::Interrupted("the target stream refused fast-ingest batches".to_owned());
                }
            }
            next = messages.next(), if inflight.has_room() && acks.has_room() => {
                let message = match next {
                    None => break SessionEnd::Interrupted("source consumer stream ended".to_owned()),
                    Some(Err(e)) => break SessionEnd::Interrupted(format!("source consumer: {e}")),
                    Some(Ok(m)) => m,
                };
                let (seq, published) = match message.info() {
                    Ok(info) => (info.stream_sequence, from_unix_nanos(info.published.unix_timestamp_nanos())),
                    Err(e) => break SessionEnd::Interrupted(format!("source message without JetStream info: {e}")),
                };
                if let Until::Floor(bound) = until {
                    if seq > bound {
                        // Not ours: the ordered worker copies it later.
                        continue;
                    }
                }
                let raw = &message.message;
                w.stats.record_received(seq, raw.payload.len());
                match w.gate.decide(raw.subject.as_str(), raw.headers.as_ref(), &raw.payload, seq, published) {
                    GateVerdict::Copy => {
                        let entry = Entry { seq, message, published, sent: Instant::now(), attempt: 0, waiting: false };
                        if let Some((entry, failure)) = send(w, &mut acks, &mut inflight, entry).await {
                            settle_failure(w, index, &mut inflight, troubled, entry, failure).await;
                        }
                        if !inflight.has_room() {
                            // The worker's own window (count or bytes) is full before the
                            // target's flow window: no flow ack would come, so end the batch
                            // for its final count now.
                            acks.end(w, Duration::ZERO).await;
                        }
                    }
                    GateVerdict::Sampled | GateVerdict::TooOld => {
                        let _ = message.ack().await;
                    }
                }
            }
            _ = tick.tick() => {
                if let Until::Floor(bound) = until {
                    if inflight.len() == 0 {
                        match setup::ack_floor_reached(source_js, s, bound).await {
                            Ok(true) => break SessionEnd::Done,
                            Ok(false) => {}
                            Err(e) => break SessionEnd::Interrupted(e.to_string()),
                        }
                    }
                }
                let now = Instant::now();
                if let Acks::Fast { batch, .. } = &mut acks {
                    // A batch that ended without its final answer is given up; the quiet tail
                    // of a burst ends its batch for the final count.
                    let expired = batch.expire(now);
                    settle(w, index, &mut inflight, troubled, expired).await;
                    acks.end(w, END_QUIET).await;
                }
                // Send retries whose backoff passed, and again what the target did not
                // answer in time.
                for token in inflight.due(now, ACK_TIMEOUT) {
                    if let Acks::Fast { batch, .. } = &mut acks {
                        if inflight.awaits_answer(token) {
                            // Unanswered for ACK_TIMEOUT: the batch is lost; everything it
                            // holds goes again in a new one.
                            let lost = batch.abandon("the target did not answer the fast batch in time");
                            settle(w, index, &mut inflight, troubled, lost).await;
                            continue;
                        }
                    }
                    let Some(entry) = inflight.remove(token) else {
                        continue;
                    };
                    if !entry.waiting {
                        w.stats.failed_transient.inc();
                    }
                    if !acks.has_room() {
                        // Sent when the batch takes copies again.
                        inflight.insert(token, entry);
                        continue;
                    }
                    if let Some((entry, failure)) = send(w, &mut acks, &mut inflight, entry).await {
                        settle_failure(w, index, &mut inflight, troubled, entry, failure).await;
                    }
                }
            }
        }
    };
    if fast {
        w.stats.fast_batch_workers.dec();
    }
    // Unfinished copies are dropped with their source messages unacked: the source
    // redelivers them after ack_wait and the target drops any duplicate.
    drop(inflight);
    end
}

/// Settles copies the target answered: a stored copy is counted and acked on the source, a
/// failed one retried or dead-lettered. Only an attempt still waiting for its answer is
/// settled (a late answer of an attempt sent again is ignored).
async fn settle(
    w: &WorkerContext,
    index: usize,
    inflight: &mut InFlight<Entry>,
    troubled: &mut bool,
    settled: Vec<(u64, AckOutcome)>,
) {
    let s = &w.settings;
    for (token, outcome) in settled {
        if !inflight.awaits_answer(token) {
            continue;
        }
        let Some(entry) = inflight.remove(token) else {
            continue;
        };
        match outcome {
            AckOutcome::Stored { .. } => {
                w.copied(entry.message.payload.len(), entry.sent, entry.published);
                if *troubled {
                    *troubled = false;
                    info!(replicator = %s.name, worker = index, "Target publishes succeed again.");
                }
                if let Err(e) = entry.message.ack().await {
                    debug!(error = %e, "Source ack failed; the source will redeliver and the target drop the duplicate.");
                }
            }
            AckOutcome::Failed(failure) => {
                settle_failure(w, index, inflight, troubled, entry, failure).await;
            }
        }
    }
}
