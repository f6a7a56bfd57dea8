//! One JetStream publish, its ack awaited, retried with backoff a bounded number of times.

use std::time::Duration;

use async_nats::jetstream::context::{Context, PublishError, PublishErrorKind};

use super::transform::Outgoing;
use crate::supervision::Backoff;

/// How failed publishes are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; doubles per retry.
    pub initial: Duration,
    /// Longest delay between retries.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay before retry `retry` (0-based): the configured backoff, exact.
    pub fn delay(&self, retry: u32) -> Duration {
        Backoff::new(self.initial, self.max).exact(retry)
    }
}

/// What became of one message.
#[derive(Debug)]
pub enum Delivery {
    /// The stream acked it.
    Stored {
        /// The stream already held its `Nats-Msg-Id` (not stored again).
        duplicate: bool,
        /// Payload bytes.
        bytes: usize,
        /// Failed attempts before the ack.
        failures: u32,
    },
    /// Every attempt failed (or the failure cannot be retried).
    Dropped {
        /// The last error.
        error: PublishError,
        /// Failed attempts.
        failures: u32,
        /// The subject.
        subject: String,
        /// Its `Nats-Msg-Id`, if any.
        msg_id: Option<String>,
    },
}

/// Whether retrying `error` cannot help (the message is too large for the server).
pub fn is_permanent(error: &PublishError) -> bool {
    matches!(error.kind(), PublishErrorKind::MaxPayloadExceeded)
}

/// Publishes `out` through `js` and awaits the ack, retrying per `policy`.
pub async fn publish_with_retry(js: Context, out: Outgoing, policy: RetryPolicy) -> Delivery {
    let mut failures = 0u32;
    loop {
        let result = match js.send_publish(out.subject.clone(), out.publish()).await {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        match result {
            Ok(ack) => {
                return Delivery::Stored {
                    duplicate: ack.duplicate,
                    bytes: out.payload.len(),
                    failures,
                }
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                if is_permanent(&error) || failures > policy.retries {
                    return Delivery::Dropped {
                        error,
                        failures,
                        subject: out.subject.clone(),
                        msg_id: out.msg_id().map(str::to_owned),
                    };
                }
                tokio::time::sleep(policy.delay(failures - 1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_and_cap() {
        let policy = RetryPolicy {
            retries: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        assert_eq!(policy.delay(0), Duration::from_millis(100));
        assert_eq!(policy.delay(1), Duration::from_millis(200));
        assert_eq!(policy.delay(2), Duration::from_millis(300));
    }

    #[test]
    fn only_oversized_messages_are_permanent() {
        assert!(is_permanent(&PublishError::new(
            PublishErrorKind::MaxPayloadExceeded
        )));
        assert!(!is_permanent(&PublishError::new(
            PublishErrorKind::TimedOut
        )));
        assert!(!is_permanent(&PublishError::new(
            PublishErrorKind::StreamNotFound
        )));
    }
}
