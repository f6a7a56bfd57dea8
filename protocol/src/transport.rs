//! The outer layer: `choria:transport:1`.

use super::{
    decode_base64, encode_base64, FederationHeader, ProtocolError, SeenByHop, TRANSPORT_PROTOCOL,
};
use serde::{Deserialize, Serialize};

/// A `choria:transport:1` message: the NATS payload.
///
/// `data` holds the standard padded base64 of a secure request or secure reply; it is kept as
/// received so a broker can republish it untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transport {
    /// Always `choria:transport:1`.
    pub protocol: String,
    /// Base64 of the secure request/reply JSON.
    pub data: String,
    /// Routing and tracing headers (always serialised, possibly as `{}`).
    #[serde(default)]
    pub headers: TransportHeaders,
}

/// The `headers` object of a transport.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportHeaders {
    /// Subject replies should be published to (requests only).
    #[serde(rename = "reply-to", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The configured identity of the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mc_sender: Option<String>,
    /// The hops this message travelled through, in order.
    #[serde(rename = "seen-by", default, skip_serializing_if = "Vec::is_empty")]
    pub seen_by: Vec<SeenByHop>,
    /// Federation data; present iff the message is federated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationHeader>,
}

impl TransportHeaders {
    /// Headers for a request: `reply-to`, `mc_sender` and no trace.
    pub fn for_request(reply_to: impl Into<String>, sender: impl Into<String>) -> Self {
        Self {
            reply_to: Some(reply_to.into()),
            mc_sender: Some(sender.into()),
            ..Self::default()
        }
    }

    /// Headers for a reply to a request that arrived with `request` headers, as Go's
    /// `NewReplyTransportForMessage` does: no `reply-to`, `mc_sender` = the replying identity,
    /// the `seen-by` trace and the federation `req`/`reply-to` copied (without `target`).
    pub fn for_reply_to(request: &TransportHeaders, sender: impl Into<String>) -> Self {
        Self {
            reply_to: None,
            mc_sender: Some(sender.into()),
            seen_by: request.seen_by.clone(),
            federation: request.federation.as_ref().map(|f| FederationHeader {
                req: f.req.clone(),
                reply_to: f.reply_to.clone(),
                target: Vec::new(),
            }),
        }
    }

    /// Appends a `seen-by` hop.
    pub fn push_seen_by(&mut self, hop: SeenByHop) {
        self.seen_by.push(hop);
    }

    /// Whether the transport is federated (`headers.federation` present).
    pub fn is_federated(&self) -> bool {
        self.federation.is_some()
    }
}

impl Transport {
    /// Wraps already serialised secure request/reply bytes.
    pub fn new(secure_json: &[u8], headers: TransportHeaders) -> Self {
        Self {
            protocol: TRANSPORT_PROTOCOL.to_owned(),
            data: encode_base64(secure_json),
            headers,
        }
    }

    /// Parses a NATS payload and checks the protocol string. `data` is not decoded.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let transport: Self =
            serde_json::from_slice(bytes).map_err(ProtocolError::json("transport"))?;
        ProtocolError::check_protocol(TRANSPORT_PROTOCOL, &transport.protocol)?;
        Ok(transport)
    }

    /// Serialises the transport as a NATS payload.
    pub fn to_vec(&self) -> Result<Vec<u8>, ProtocolError> {
        serde_json::to_vec(self).map_err(ProtocolError::json("transport"))
    }

    /// Decodes `data` (line breaks tolerated) into the secure layer's JSON bytes.
    pub fn payload(&self) -> Result<Vec<u8>, ProtocolError> {
        Ok(decode_base64(&self.data)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_omit_empty_fields() {
        let t = Transport::new(b"{}", TransportHeaders::default());
        let json = String::from_utf8(t.to_vec().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"protocol":"choria:transport:1","data":"e30=","headers":{}}"#
        );
    }

    #[test]
    fn parses_research_example_headers() {
        let json = r#"{"protocol":"choria:transport:1","data":"e30=",
          "headers":{"reply-to":"mcollective.reply.37bdf08389145a56c13096c178802d3b.a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b",
            "mc_sender":"client.example.net",
            "seen-by":[["nats://nats1:4222","client.example.net","nats://nats1:4222"]],
            "unknown":"ignored"}}"#;
        let t = Transport::from_slice(json.as_bytes()).unwrap();
        assert_eq!(t.headers.mc_sender.as_deref(), Some("client.example.net"));
        assert_eq!(t.headers.seen_by.len(), 1);
        assert!(!t.headers.is_federated());
        assert_eq!(t.payload().unwrap(), b"{}");
    }

    #[test]
    fn wrong_protocol() {
        let json = r#"{"protocol":"choria:request:1","data":"","headers":{}}"#;
        assert!(matches!(
            Transport::from_slice(json.as_bytes()),
            Err(ProtocolError::WrongProtocol { .. })
        ));
    }

    #[test]
    fn reply_headers_copy_federation_without_targets() {
        let mut req = TransportHeaders::for_request("choria.federation.london.collective", "c");
        req.push_seen_by(SeenByHop::new("a", "c", "a"));
        req.federation = Some(FederationHeader {
            req: "a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b".into(),
            reply_to: "mcollective.reply.x.y".into(),
            target: vec!["mcollective.node.n1".into()],
        });
        let reply = TransportHeaders::for_reply_to(&req, "n1");
        assert_eq!(reply.reply_to, None);
        assert_eq!(reply.mc_sender.as_deref(), Some("n1"));
        assert_eq!(reply.seen_by, req.seen_by);
        let fed = reply.federation.unwrap();
        assert_eq!(fed.reply_to, "mcollective.reply.x.y");
        assert!(fed.target.is_empty());
    }
}
