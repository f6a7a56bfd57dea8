//! Shared sampling state between the replicas of one HA replicator: the leader publishes each
//! sampled copy on core NATS, `choria.stream-replicator.sync.<stream>.<name>` (the subject the
//! Choria Stream Replicator gossips on), and every standby merges it into its own tracker, so
//! a new leader knows which senders were copied just before it took over.
//!
//! The body is choir's own JSON ([`Seen`]); the Choria Stream Replicator's peers would not
//! read it, nor choir theirs.

use serde::{Deserialize, Serialize};

/// One copy of a sampled sender, as gossiped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The identity of the node that copied it.
    pub node: String,
    /// The sender (value of the inspected field).
    pub sender: String,
    /// When the copied message was stored in the source, Unix milliseconds (the stream's
    /// clock, which sampling runs on).
    pub copied_ms: u64,
    /// The copied message's source stream sequence.
    pub seq: u64,
    /// Its payload size.
    pub size: u64,
}

/// The subject replicas gossip on.
pub fn subject(stream: &str, name: &str) -> String {
    format!("choria.stream-replicator.sync.{stream}.{name}")
}

impl Seen {
    /// The wire form.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Reads the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seen_record_survives_the_wire() {
        let seen = Seen {
            node: "a".into(),
            sender: "host-1".into(),
            copied_ms: 1_700_000_000_000,
            seq: 42,
            size: 300,
        };
        assert_eq!(
            Seen::decode(&seen.encode().expect("encodes")).ok(),
            Some(seen)
        );
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(Seen::decode(b"{\"node\":1}").is_err());
        assert!(Seen::decode(b"\xff").is_err());
    }

    #[test]
    fn the_subject_names_stream_then_replicator() {
        assert_eq!(
            subject("ORDERS", "orders"),
            "choria.stream-replicator.sync.ORDERS.orders"
        );
    }
}
