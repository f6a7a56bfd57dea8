//! Target acknowledgements over one wildcard inbox per copy session.
//!
//! A JetStream publish through `async_nats::jetstream::Context` is a request: a fresh inbox
//! subject, a oneshot channel, an entry in the client's request map and a timer, per message.
//! The copy loops instead subscribe once to `<inbox>.*` and publish each copy with the reply
//! subject `<inbox>.<token>`, where the token is the copy's place in the session's pipeline.
//! The target's JetStream answers there with its usual ack (`{"stream":..,"seq":..}` or
//! `{"error":{..}}`), and the loop matches the token to its in-flight entry. The session owns
//! the subscription; a new session gets a new inbox, so late acks of an abandoned session can
//! never be mistaken for current ones.

use std::borrow::Cow;

use async_nats::{Client, StatusCode, Subscriber};
use futures::StreamExt as _;
use serde::Deserialize;

use super::envelope::push_digits;
use super::failure::Failure;

/// JetStream's error code for "wrong last sequence" (`Nats-Expected-Last-Sequence` refused).
const WRONG_LAST_SEQUENCE: u64 = 10071;

/// Why the ack inbox could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AckInboxError {
    /// Subscribing to the inbox failed (the connection is closed, say).
    #[error("cannot subscribe to the target ack inbox: {0}")]
    Subscribe(String),
}

/// What the target said about one copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// Stored; `duplicate` when the target's duplicate window already held the message id.
    Stored {
        /// The target dropped it as a duplicate.
        duplicate: bool,
    },
    /// Not stored.
    Failed(Failure),
}

/// The ack inbox of one copy session.
pub struct AckInbox {
    prefix: String,
    subscriber: Subscriber,
}

impl AckInbox {
    /// Subscribes to a fresh `<inbox>.*` on the target connection. The subscription is sent
    /// on the same connection as the publishes that follow, so it is in place before them.
    pub async fn open(client: &Client) -> Result<Self, AckInboxError> {
        let prefix = client.new_inbox();
        let subscriber = client
            .subscribe(format!("{prefix}.*"))
            .await
            .map_err(|e| AckInboxError::Subscribe(e.to_string()))?;
        Ok(Self { prefix, subscriber })
    }

    /// The reply subject of the copy with `token`.
    pub fn reply(&self, token: u64) -> String {
        let mut subject = String::with_capacity(self.prefix.len() + 21);
        subject.push_str(&self.prefix);
        subject.push('.');
        push_digits(&mut subject, token, 1);
        subject
    }

    /// The next ack: the token it answers and what it says. `None` when the subscription
    /// ended (the client was dropped). Messages on the inbox that carry no token are skipped.
    pub async fn next(&mut self) -> Option<(u64, AckOutcome)> {
        loop {
            let message = self.subscriber.next().await?;
            let Some(token) = token_of(&self.prefix, message.subject.as_str()) else {
                continue;
            };
            return Some((token, outcome(message.status, &message.payload)));
        }
    }
}

/// The token of an ack that arrived on `subject`, when it is `<prefix>.<token>`.
pub fn token_of(prefix: &str, subject: &str) -> Option<u64> {
    subject
        .strip_prefix(prefix)?
        .strip_prefix('.')?
        .parse()
        .ok()
}

/// A JetStream publish ack, as much of it as the copy loops need.
#[derive(Deserialize)]
struct PubAck<'a> {
    #[serde(default)]
    duplicate: bool,
    #[serde(default, borrow)]
    error: Option<ApiError<'a>>,
}

#[derive(Deserialize)]
struct ApiError<'a> {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u64,
    #[serde(default, borrow)]
    description: Cow<'a, str>,
}

/// What an ack message (its status and payload) means.
///
/// No responders (503 status: no stream captures the subject, or the stream has no leader)
/// and JetStream answers with code 503 are transient: retried until the target is back.
/// A refused `Nats-Expected-Last-Sequence` means the copy is out of order. Any other error
/// answer rejects this message (too large for the stream, say). An answer that is not a
/// JetStream ack is treated as transient: the session resumes from the target's position.
pub fn outcome(status: Option<StatusCode>, payload: &[u8]) -> AckOutcome {
    if let Some(status) = status {
        if status == StatusCode::NO_RESPONDERS {
            return AckOutcome::Failed(Failure::Transient(
                "no stream on the target answers for this subject".to_owned(),
            ));
        }
        if status != StatusCode::OK {
            return AckOutcome::Failed(Failure::Transient(format!(
                "target answered with status {status}"
            )));
        }
    }
    match serde_json::from_slice::<PubAck<'_>>(payload) {
        Ok(PubAck {
            error: None,
            duplicate,
        }) => AckOutcome::Stored { duplicate },
        Ok(PubAck {
            error: Some(error), ..
        }) => AckOutcome::Failed(if error.err_code == WRONG_LAST_SEQUENCE {
            Failure::OutOfOrder
        } else if error.code == 503 {
            Failure::Transient(format!(
                "target JetStream unavailable: {}",
                error.description
            ))
        } else {
            Failure::Rejected(format!(
                "{} (code {}, err_code {})",
                error.description, error.code, error.err_code
            ))
        }),
        Err(e) => AckOutcome::Failed(Failure::Transient(format!(
            "target answered with something that is not a JetStream ack: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_reply_subjects() {
        let prefix = "_INBOX.abc";
        assert_eq!(token_of(prefix, "_INBOX.abc.42"), Some(42));
        assert_eq!(token_of(prefix, "_INBOX.abc.x"), None);
        assert_eq!(token_of(prefix, "_INBOX.abcd.1"), None);
        assert_eq!(token_of(prefix, "_INBOX.other.1"), None);
    }

    #[test]
    fn a_stored_ack_is_stored() {
        assert_eq!(
            outcome(None, br#"{"stream":"COPY","domain":"leaf","seq":7}"#),
            AckOutcome::Stored { duplicate: false }
        );
        assert_eq!(
            outcome(None, br#"{"stream":"COPY","seq":7,"duplicate":true}"#),
            AckOutcome::Stored { duplicate: true }
        );
    }

    #[test]
    fn a_wrong_last_sequence_is_out_of_order() {
        let ack =
            br#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"}}"#;
        assert_eq!(outcome(None, ack), AckOutcome::Failed(Failure::OutOfOrder));
    }

    #[test]
    fn a_refused_message_is_rejected_with_the_reason() {
        let ack = br#"{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}"#;
        match outcome(None, ack) {
            AckOutcome::Failed(Failure::Rejected(reason)) => {
                assert!(
                    reason.contains("message size exceeds maximum allowed"),
                    "{reason}"
                );
                assert!(reason.contains("10054"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unavailable_target_is_transient() {
        let ack =
            br#"{"error":{"code":503,"description":"JetStream system temporarily unavailable"}}"#;
        assert!(matches!(
            outcome(None, ack),
            AckOutcome::Failed(Failure::Transient(_))
        ));
        assert!(matches!(
            outcome(Some(StatusCode::NO_RESPONDERS), b""),
            AckOutcome::Failed(Failure::Transient(_))
        ));
        assert!(matches!(
            outcome(None, b"not json"),
            AckOutcome::Failed(Failure::Transient(_))
        ));
    }
}
