//! What a failed target publish means, and the dead-letter path for messages the target
//! rejects for good.

use async_nats::{Client, HeaderMap};
use bytes::Bytes;

use super::envelope::DEAD_LETTER_REASON;

/// How to react to a failed publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The target is down, slow or unreachable: retry forever, never skip.
    Transient(String),
    /// Ordered mode: the target's last sequence was not what this publish expected (an
    /// earlier publish failed or was a duplicate): resume from what the target holds.
    OutOfOrder,
    /// The target answered with an error for this message (too large, say): retried a few
    /// times, then dead-lettered.
    Rejected(String),
}

/// Classifies a publish the client could not send at all: a message larger than the
/// server's `max_payload` or an invalid subject is rejected; a closed connection is
/// transient.
pub fn classify_send(error: &async_nats::PublishError) -> Failure {
    match error.kind() {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded
        | async_nats::client::PublishErrorKind::InvalidSubject => {
            Failure::Rejected(error.to_string())
        }
        async_nats::client::PublishErrorKind::Send => Failure::Transient(error.to_string()),
    }
}

/// Publishes a message the target rejected for good to `subject` on the target network with
/// the reason in a header; when the payload itself is too large for NATS, the headers alone
/// are sent. Returns whether the dead letter went out.
pub async fn dead_letter(
    client: &Client,
    subject: &str,
    mut headers: HeaderMap,
    payload: Bytes,
    reason: &str,
) -> bool {
    headers.insert(DEAD_LETTER_REASON, reason);
    let max = client.server_info().max_payload;
    let payload = if payload.len() + 1024 > max {
        headers.insert(
            "Choir-Dead-Letter-Truncated",
            "payload larger than the server's max_payload",
        );
        Bytes::new()
    } else {
        payload
    };
    client
        .publish_with_headers(subject.to_owned(), headers, payload)
        .await
        .is_ok()
}
