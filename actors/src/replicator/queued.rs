//! The queued copy loop: one of a pool of workers sharing one durable consumer with explicit
//! acks. No order promise; each message is acked on the source after the target acked it.
//! Exactly once in the target comes from the deterministic `Nats-Msg-Id` and the target's
//! duplicate window: a message redelivered by the source (after a crash, or after `ack_wait`)
//! is dropped by the target as a duplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream;
use futures::StreamExt;
use tracing::{debug, error, info, warn};

use super::acks::{AckInbox, AckOutcome};
use super::envelope::{from_unix_nanos, target_headers};
use super::failure::{classify_send, dead_letter, Failure};
use super::gate::Verdict;
use super::settings::ReplicatorSettings;
use super::worker::WorkerContext;
use crate::connection::backoff;

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
        target_headers(
            self.message.headers.as_ref(),
            &s.name,
            &s.source_stream,
            self.seq,
            self.published,
            None,
            true,
        )
    }
}

/// The copies of one worker in flight, keyed by the token of their current attempt.
struct InFlight {
    entries: HashMap<u64, Entry>,
    next_token: u64,
}

impl InFlight {
    fn new(window: usize) -> Self {
        Self {
            entries: HashMap::with_capacity(window),
            next_token: 0,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }
}

/// Publishes `entry` under a fresh token; a publish the client cannot send settles at once.
async fn send(
    w: &WorkerContext,
    inbox: &AckInbox,
    inflight: &mut InFlight,
    mut entry: Entry,
) -> Option<(Entry, Failure)> {
    let s = &w.settings;
    let raw = &entry.message.message;
    let headers = entry.headers(s);
    let subject = s.subject_map.map(raw.subject.as_str());
    let token = inflight.token();
    let result = w
        .target
        .publish_with_reply_and_headers(subject, inbox.reply(token), headers, raw.payload.clone())
        .await;
    entry.sent = Instant::now();
    entry.waiting = false;
    match result {
        Ok(()) => {
            inflight.entries.insert(token, entry);
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
    inflight: &mut InFlight,
    troubled: &mut bool,
    mut entry: Entry,
    failure: Failure,
) {
    let s = &w.settings;
    let delay = backoff(
        entry.attempt,
        Duration::from_millis(100),
        Duration::from_secs(2),
    );
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
    inflight.entries.insert(token, entry);
}

/// Runs worker `index` of a queued pool forever.
pub async fn run(w: Arc<WorkerContext>, index: usize) {
    let s = w.settings.clone();
    let window = s.window.get();
    let source_js = jetstream::new(w.source.clone());
    let mut streak: u32 = 0;
    let mut troubled = false;
    loop {
        if streak > 0 {
            actix_rt::time::sleep(backoff(
                streak - 1,
                Duration::from_millis(50),
                Duration::from_secs(2),
            ))
            .await;
        }
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
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
                .map_err(|e| e.to_string())
        };
        let mut messages = match messages.await {
            Ok(m) => m,
            Err(reason) => {
                if streak == 0 {
                    warn!(replicator = %s.name, worker = index, %reason, "Cannot consume the source yet; retrying.");
                }
                streak = streak.saturating_add(1);
                continue;
            }
        };
        let mut inbox = match AckInbox::open(&w.target).await {
            Ok(inbox) => inbox,
            Err(e) => {
                if streak == 0 {
                    warn!(replicator = %s.name, worker = index, error = %e, "Cannot listen for target acks yet; retrying.");
                }
                streak = streak.saturating_add(1);
                continue;
            }
        };
        let mut inflight = InFlight::new(window);
        let mut tick = actix_rt::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            tokio::select! {
                biased;
                ack = inbox.next() => {
                    let Some((token, outcome)) = ack else {
                        break "the target ack inbox closed".to_owned();
                    };
                    w.stats.target_acks.inc();
                    // Only an attempt still waiting for its ack is settled by it.
                    if inflight.entries.get(&token).is_none_or(|e| e.waiting) {
                        continue;
                    }
                    let Some(entry) = inflight.entries.remove(&token) else {
                        continue;
                    };
                    match outcome {
                        AckOutcome::Stored { .. } => {
                            w.copied(entry.message.payload.len(), entry.sent, entry.published);
                            if troubled {
                                troubled = false;
                                info!(replicator = %s.name, worker = index, "Target publishes succeed again.");
                            }
                            if let Err(e) = entry.message.ack().await {
                                debug!(error = %e, "Source ack failed; the source will redeliver and the target drop the duplicate.");
                            }
                        }
                        AckOutcome::Failed(failure) => {
                            settle_failure(&w, index, &mut inflight, &mut troubled, entry, failure).await;
                        }
                    }
                }
                next = messages.next(), if inflight.len() < window => {
                    let message = match next {
                        None => break "source consumer stream ended".to_owned(),
                        Some(Err(e)) => break format!("source consumer: {e}"),
                        Some(Ok(m)) => m,
                    };
                    let (seq, published) = match message.info() {
                        Ok(info) => (info.stream_sequence, from_unix_nanos(info.published.unix_timestamp_nanos())),
                        Err(e) => break format!("source message without JetStream info: {e}"),
                    };
                    w.stats.received.inc();
                    let raw = &message.message;
                    match w.gate.decide(raw.subject.as_str(), raw.headers.as_ref(), &raw.payload, seq, published) {
                        Verdict::Copy => {
                            let entry = Entry { seq, message, published, sent: Instant::now(), attempt: 0, waiting: false };
                            if let Some((entry, failure)) = send(&w, &inbox, &mut inflight, entry).await {
                                settle_failure(&w, index, &mut inflight, &mut troubled, entry, failure).await;
                            }
                        }
                        Verdict::Sampled | Verdict::TooOld => {
                            let _ = message.ack().await;
                        }
                    }
                }
                _ = tick.tick() => {
                    // Send retries whose backoff passed, and again what the target did not
                    // answer in time.
                    let now = Instant::now();
                    let due: Vec<u64> = inflight
                        .entries
                        .iter()
                        .filter(|(_, e)| if e.waiting { e.sent <= now } else { now.duration_since(e.sent) > ACK_TIMEOUT })
                        .map(|(token, _)| *token)
                        .collect();
                    for token in due {
                        let Some(entry) = inflight.entries.remove(&token) else {
                            continue;
                        };
                        if !entry.waiting {
                            w.stats.failed_transient.inc();
                        }
                        if let Some((entry, failure)) = send(&w, &inbox, &mut inflight, entry).await {
                            settle_failure(&w, index, &mut inflight, &mut troubled, entry, failure).await;
                        }
                    }
                }
            }
        };
        debug!(replicator = %s.name, worker = index, %reason, "Queued worker re-subscribes.");
        // Unfinished copies are dropped with their source messages unacked: the source
        // redelivers them after ack_wait and the target drops any duplicate.
        drop(inflight);
        streak = 1;
    }
}
