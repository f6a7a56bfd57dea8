//! The loop of one worker: read the subscription, transform, publish with a bounded window of
//! acks in flight.

use std::num::NonZeroUsize;

use async_nats::jetstream::context::Context;
use async_nats::Subscriber;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::watch;
use tracing::{debug, error, warn};

use super::metrics::AdapterWorkerMetrics;
use super::publish::{publish_with_retry, Delivery, RetryPolicy};
use super::transform::Transformer;
use super::RunEnd;
use crate::error_chain::Chain;
use crate::protocol::unix_now;

/// Who the pump works for (for logs), and the stop it watches.
#[derive(Debug, Clone)]
pub struct PumpContext {
    /// The adapter's name.
    pub adapter: String,
    /// The worker's index.
    pub worker: usize,
    /// Turns true when the worker is shut down.
    pub stop: watch::Receiver<bool>,
}

/// Runs until the subscription ends (connection closed, drained or unsubscribed), then waits
/// for the publishes still in flight. At most `window` publishes wait for their ack at once;
/// while the window is full the subscription is not read (its buffer fills, then the client
/// drops messages and reports a slow consumer).
///
/// When `who.stop` turns true the pump drains the subscription: the server stops sending,
/// the messages already received are still read and published, and the subscription then
/// ends; the answer is [`RunEnd::Stopped`], otherwise [`RunEnd::SubscriptionEnded`].
pub async fn pump(
    mut subscriber: Subscriber,
    js: Context,
    transformer: Transformer,
    policy: RetryPolicy,
    window: NonZeroUsize,
    metrics: AdapterWorkerMetrics,
    who: PumpContext,
) -> RunEnd {
    let mut in_flight = FuturesUnordered::new();
    let mut stop = who.stop.clone();
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            Some(delivery) = in_flight.next(), if !in_flight.is_empty() => {
                settle(delivery, &metrics, &who);
                metrics.in_flight.set(in_flight.len() as i64);
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                if let Err(error) = subscriber.drain().await {
                    // The connection is gone: the subscription ends with it.
                    debug!(
                        adapter = %who.adapter, worker = who.worker, %error,
                        "Cannot drain the adapter subscription."
                    );
                }
            }
            message = subscriber.next(), if in_flight.len() < window.get() => {
                let Some(message) = message else { break };
                metrics.received.inc();
                metrics.received_bytes.inc_by(message.payload.len() as u64);
                match transformer.transform(
                    message.subject.as_str(),
                    message.headers.as_ref(),
                    &message.payload,
                    unix_now(),
                ) {
                    Ok(out) => {
                        in_flight.push(publish_with_retry(js.clone(), out, policy));
                        metrics.in_flight.set(in_flight.len() as i64);
                    }
                    Err(rejection) => {
                        metrics.dropped(rejection.reason());
                        debug!(
                            adapter = %who.adapter, worker = who.worker,
                            subject = %message.subject, reason = rejection.reason(),
                            error = %Chain(&rejection), "Dropped a message the adapter cannot decode."
                        );
                    }
                }
            }
        }
    }
    while let Some(delivery) = in_flight.next().await {
        settle(delivery, &metrics, &who);
    }
    metrics.in_flight.set(0);
    let stopped = stopping || *stop.borrow();
    if stopped {
        RunEnd::Stopped
    } else {
        RunEnd::SubscriptionEnded
    }
}

fn settle(delivery: Delivery, metrics: &AdapterWorkerMetrics, who: &PumpContext) {
    match delivery {
        Delivery::Stored {
            duplicate,
            bytes,
            failures,
        } => {
            metrics.failed.inc_by(u64::from(failures));
            if duplicate {
                metrics.duplicates.inc();
            } else {
                metrics.published.inc();
                metrics.published_bytes.inc_by(bytes as u64);
            }
            if failures > 0 {
                warn!(
                    adapter = %who.adapter, worker = who.worker, failures,
                    "Publish succeeded after retries."
                );
            }
        }
        Delivery::Dropped {
            error,
            failures,
            subject,
            msg_id,
        } => {
            metrics.failed.inc_by(u64::from(failures));
            metrics.dropped("publish");
            error!(
                adapter = %who.adapter, worker = who.worker, %subject,
                msg_id = msg_id.as_deref().unwrap_or(""), failures, %error,
                "Publish failed for good; message dropped."
            );
        }
    }
}
