//! The federation transport header.

use serde::{Deserialize, Serialize};

/// `headers.federation`: `{"req", "reply-to", "target": [subjects]}`.
///
/// The key is `target` (singular) as in Go and Ruby, whatever `transport.json` says. All fields
/// are omitted when empty, as Go's `omitempty` does. A transport is federated iff this header
/// is present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationHeader {
    /// The request id of the contained message (32 hex characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub req: String,
    /// The original client reply subject, saved by the broker on the way in.
    #[serde(rename = "reply-to", default, skip_serializing_if = "String::is_empty")]
    pub reply_to: String,
    /// The NATS subjects a broker should publish the request to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_omission() {
        let h = FederationHeader {
            req: "a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b".into(),
            reply_to: String::new(),
            target: vec!["mcollective.node.n1".into()],
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"req":"a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b","target":["mcollective.node.n1"]}"#
        );
        let empty = serde_json::to_string(&FederationHeader::default()).unwrap();
        assert_eq!(empty, "{}");
        let back: FederationHeader =
            serde_json::from_str(r#"{"req":"x","reply-to":"r","targets":["ignored"]}"#).unwrap();
        assert_eq!(back.reply_to, "r");
        assert!(back.target.is_empty());
    }
}
