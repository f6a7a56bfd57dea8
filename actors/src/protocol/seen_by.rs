//! One `seen-by` hop of the transport trace.

use serde::{Deserialize, Serialize};

/// A `seen-by` triple: (incoming NATS server, processing identity, outgoing NATS server).
///
/// Serialised as a JSON array of exactly three strings, e.g.
/// `["nats://nats1:4222","client.example.net","nats://nats1:4222"]`. Either server may be an
/// empty string where a message starts or ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenByHop(
    /// The incoming end point, typically a NATS server URL.
    pub String,
    /// The processing node: the identity of a server, client or broker.
    pub String,
    /// The outgoing end point, typically a NATS server URL.
    pub String,
);

impl SeenByHop {
    /// Builds a hop from its three parts.
    pub fn new(
        incoming: impl Into<String>,
        processor: impl Into<String>,
        outgoing: impl Into<String>,
    ) -> Self {
        Self(incoming.into(), processor.into(), outgoing.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_triple() {
        let hop = SeenByHop::new("nats://a:4222", "me", "nats://b:4222");
        let json = serde_json::to_string(&hop).unwrap();
        assert_eq!(json, r#"["nats://a:4222","me","nats://b:4222"]"#);
        assert_eq!(serde_json::from_str::<SeenByHop>(&json).unwrap(), hop);
        assert!(serde_json::from_str::<SeenByHop>(r#"["a","b"]"#).is_err());
        assert!(serde_json::from_str::<SeenByHop>(r#"["a","b","c","d"]"#).is_err());
    }
}
