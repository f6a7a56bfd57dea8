//! The queued copy loop: one of a pool of workers sharing one durable consumer with explicit
//! acks. No order promise; each message is acked on the source after the target acked it.
//! Exactly once in the target comes from the deterministic `Nats-Msg-Id` and the target's
//! duplicate window: a message redelivered by the source (after a crash, or after `ack_wait`)
//! is dropped by the target as a duplicate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, Context as JetStream, ContextBuilder};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tracing::{debug, error, info, warn};

use super::envelope::{from_unix_nanos, target_headers};
use super::failure::{classify, dead_letter, Failure};
use super::gate::Verdict;
use super::worker::WorkerContext;
use crate::connection::backoff;

enum Done {
    Copied {
        message: jetstream::Message,
        sent: Instant,
        published: SystemTime,
        _ack: PublishAck,
    },
    Failed {
        seq: u64,
        message: jetstream::Message,
        published: SystemTime,
        attempt: u32,
        error: PublishError,
    },
}

type Entry = Pin<Box<dyn Future<Output = Done>>>;

fn copy(
    w: Arc<WorkerContext>,
    js: JetStream,
    message: jetstream::Message,
    seq: u64,
    published: SystemTime,
    attempt: u32,
    delay: Duration,
) -> Entry {
    Box::pin(async move {
        if !delay.is_zero() {
            actix_rt::time::sleep(delay).await;
        }
        let sent = Instant::now();
        let result = match w
            .publish_copy(&js, &message.message, seq, published, None)
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match result {
            Ok(ack) => Done::Copied {
                message,
                sent,
                published,
                _ack: ack,
            },
            Err(error) => Done::Failed {
                seq,
                message,
                published,
                attempt,
                error,
            },
        }
    })
}

/// Runs worker `index` of a queued pool forever.
pub async fn run(w: Arc<WorkerContext>, index: usize) {
    let s = w.settings.clone();
    let window = s.window.get();
    let source_js = jetstream::new(w.source.clone());
    let target_js = ContextBuilder::new()
        .max_ack_inflight(window.saturating_mul(2))
        .build(w.target.clone());
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
        let mut inflight: FuturesUnordered<Entry> = FuturesUnordered::new();
        let reason = loop {
            tokio::select! {
                biased;
                Some(done) = inflight.next(), if !inflight.is_empty() => match done {
                    Done::Copied { message, sent, published, .. } => {
                        w.copied(message.payload.len(), sent, published);
                        if troubled {
                            troubled = false;
                            info!(replicator = %s.name, worker = index, "Target publishes succeed again.");
                        }
                        if let Err(e) = message.ack().await {
                            debug!(error = %e, "Source ack failed; the source will redeliver and the target drop the duplicate.");
                        }
                    }
                    Done::Failed { seq, message, published, attempt, error } => {
                        let next = attempt.saturating_add(1);
                        let delay = backoff(attempt, Duration::from_millis(100), Duration::from_secs(2));
                        match classify(&error) {
                            Failure::Transient(reason) => {
                                w.stats.failed_transient.inc();
                                if !troubled {
                                    troubled = true;
                                    warn!(replicator = %s.name, worker = index, %reason, "Target publish failed; retrying until it works.");
                                }
                                inflight.push(copy(w.clone(), target_js.clone(), message, seq, published, next, delay));
                            }
                            Failure::OutOfOrder => {
                                w.stats.failed_out_of_order.inc();
                                inflight.push(copy(w.clone(), target_js.clone(), message, seq, published, next, delay));
                            }
                            Failure::Rejected(reason) => {
                                w.stats.failed_rejected.inc();
                                if usize::try_from(next).unwrap_or(usize::MAX) < s.max_rejections.get() {
                                    inflight.push(copy(w.clone(), target_js.clone(), message, seq, published, next, delay));
                                } else {
                                    let headers = target_headers(message.headers.as_ref(), &s.name, &s.source_stream, seq, published, None);
                                    let sent = dead_letter(&w.target, &s.dead_letter, headers, message.payload.clone(), &reason).await;
                                    w.stats.dead_lettered.inc();
                                    error!(
                                        replicator = %s.name, seq, %reason, subject = %s.dead_letter, dead_letter_sent = sent,
                                        "Target rejected a message for good; it was not copied and went to the dead-letter subject."
                                    );
                                    let _ = message.ack().await;
                                }
                            }
                        }
                    }
                },
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
                        Verdict::Copy => inflight.push(copy(w.clone(), target_js.clone(), message, seq, published, 0, Duration::ZERO)),
                        Verdict::Sampled | Verdict::TooOld => {
                            let _ = message.ack().await;
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
