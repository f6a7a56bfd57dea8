//! The plain-Rust core of the broker: one transport in, headers rewritten, or a counted
//! rejection.
//!
//! Only the transport is parsed. Its `data` (the base64 of the signed secure request or reply)
//! is kept as the exact string received and written back unchanged, so signatures and hashes
//! stay valid; unknown header keys are dropped, as Go's struct decoding does.

use bytes::Bytes;

use crate::protocol::{classify_subject, FederationHeader, ProtocolError, SeenByHop, Transport};

/// Why a message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not a JSON transport.
    #[error("not a transport: {0}")]
    Malformed(String),
    /// A transport with another protocol string.
    #[error("unknown protocol {0:?}")]
    Protocol(String),
    /// No `headers.federation`.
    #[error("not federated")]
    Unfederated,
    /// `federation.req` is missing.
    #[error("federation header without req")]
    NoRequestId,
    /// A request without `federation.target`.
    #[error("federated request without targets")]
    NoTargets,
    /// A request without `reply-to`, or a reply without `federation.reply-to`.
    #[error("no reply-to")]
    NoReplyTo,
    /// A target that is neither `<c>.broadcast.agent.<agent>` nor `<c>.node.<identity>`.
    #[error("target {0:?} is not a broadcast or node subject")]
    BadTarget(String),
    /// A reply-to that is not `<c>.reply.<…>`.
    #[error("reply-to {0:?} is not a reply subject")]
    BadReplyTo(String),
    /// The rewritten transport cannot be serialised.
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl Rejection {
    /// The `reason` label of the drop counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Protocol(_) => "protocol",
            Self::Unfederated => "unfederated",
            Self::NoRequestId => "no_req",
            Self::NoTargets => "no_targets",
            Self::NoReplyTo => "no_reply_to",
            Self::BadTarget(_) => "bad_target",
            Self::BadReplyTo(_) => "bad_reply_to",
            Self::Encode(_) => "encode",
        }
    }

    /// Every reason, for pre-creating the counters.
    pub const REASONS: [&'static str; 9] = [
        "malformed",
        "protocol",
        "unfederated",
        "no_req",
        "no_targets",
        "no_reply_to",
        "bad_target",
        "bad_reply_to",
        "encode",
    ];
}

/// A transport with rewritten headers and the subjects it goes to, waiting for the egest
/// worker's `seen-by` hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The transport to publish (`data` untouched).
    pub transport: Transport,
    /// Where to publish it: the targets of a request, the saved reply-to of a reply.
    pub targets: Vec<String>,
}

impl Rewritten {
    /// Appends `hop` and serialises once: the same bytes go to every target.
    pub fn finish(mut self, hop: SeenByHop) -> Result<(Vec<String>, Bytes), Rejection> {
        self.transport.headers.push_seen_by(hop);
        let bytes = self
            .transport
            .to_vec()
            .map_err(|e| Rejection::Encode(e.to_string()))?;
        Ok((self.targets, Bytes::from(bytes)))
    }
}

fn parse(payload: &[u8]) -> Result<Transport, Rejection> {
    Transport::from_slice(payload).map_err(|e| match e {
        ProtocolError::WrongProtocol { found, .. } => Rejection::Protocol(found),
        other => Rejection::Malformed(other.to_string()),
    })
}

/// A request from the federation network, rewritten for the collective: the client's
/// `reply-to` moves into `federation.reply-to`, `reply-to` becomes `collective_subject`
/// (`choria.federation.<cluster>.collective`), the targets leave the header.
///
/// Refuses (no bridging): a missing federation header, `req`, targets or reply-to; a target
/// that is not `*.broadcast.agent.*` or `*.node.*`; a reply-to that is not `*.reply.*`.
pub fn transform_request(payload: &[u8], collective_subject: &str) -> Result<Rewritten, Rejection> {
    let mut transport = parse(payload)?;
    let headers = &mut transport.headers;
    let federation = headers.federation.as_mut().ok_or(Rejection::Unfederated)?;
    if federation.req.is_empty() {
        return Err(Rejection::NoRequestId);
    }
    if federation.target.is_empty() {
        return Err(Rejection::NoTargets);
    }
    if let Some(bad) = federation
        .target
        .iter()
        .find(|t| !classify_subject(t).is_request_target())
    {
        return Err(Rejection::BadTarget(bad.clone()));
    }
    let reply_to = headers
        .reply_to
        .take()
        .filter(|r| !r.is_empty())
        .ok_or(Rejection::NoReplyTo)?;
    if !classify_subject(&reply_to).is_reply() {
        return Err(Rejection::BadReplyTo(reply_to));
    }
    let targets = std::mem::take(&mut federation.target);
    federation.reply_to = reply_to;
    headers.reply_to = Some(collective_subject.to_owned());
    Ok(Rewritten { transport, targets })
}

/// A reply from the collective, rewritten for the federation network: the federation header
/// is dropped and the reply goes to the saved `federation.reply-to` (which must be
/// `*.reply.*`).
pub fn transform_reply(payload: &[u8]) -> Result<Rewritten, Rejection> {
    let mut transport = parse(payload)?;
    let FederationHeader { req, reply_to, .. } = transport
        .headers
        .federation
        .take()
        .ok_or(Rejection::Unfederated)?;
    if req.is_empty() {
        return Err(Rejection::NoRequestId);
    }
    if reply_to.is_empty() {
        return Err(Rejection::NoReplyTo);
    }
    if !classify_subject(&reply_to).is_reply() {
        return Err(Rejection::BadReplyTo(reply_to));
    }
    Ok(Rewritten {
        transport,
        targets: vec![reply_to],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        decode_request_unchecked_ttl, encode_request, NewRequest, TransportHeaders,
    };

    const COLLECTIVE: &str = "choria.federation.london.collective";
    const REPLY: &str =
        "mcollective.reply.37bdf08389145a56c13096c178802d3b.a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b";

    fn request(targets: &[&str], reply_to: Option<&str>) -> (Vec<u8>, String) {
        let request = NewRequest {
            message: "ping".into(),
            senderid: "client.example.net".into(),
            callerid: "choria=client.mcollective".into(),
            collective: "mcollective".into(),
            agent: "discovery".into(),
            ..NewRequest::default()
        }
        .build()
        .unwrap();
        let mut headers = TransportHeaders::for_request(REPLY, "client.example.net");
        headers.reply_to = reply_to.map(str::to_owned);
        headers.push_seen_by(SeenByHop::new(
            "nats://fed:4222",
            "client",
            "nats://fed:4222",
        ));
        headers.federation = Some(FederationHeader {
            req: request.envelope.requestid.clone(),
            reply_to: String::new(),
            target: targets.iter().map(|t| t.to_string()).collect(),
        });
        let bytes = encode_request(&request, headers).unwrap();
        let data = Transport::from_slice(&bytes).unwrap().data;
        (bytes, data)
    }

    #[test]
    fn request_headers_move_and_data_stays() {
        let (bytes, data) = request(
            &[
                "mcollective.node.n1",
                "mcollective.broadcast.agent.discovery",
            ],
            Some(REPLY),
        );
        let out = transform_request(&bytes, COLLECTIVE).unwrap();
        assert_eq!(
            out.targets,
            [
                "mcollective.node.n1",
                "mcollective.broadcast.agent.discovery"
            ]
        );
        let hop = SeenByHop::new("nats://fed:4222", "fb1 (…)", "nats://ldn:4222");
        let (_, payload) = out.finish(hop.clone()).unwrap();
        let t = Transport::from_slice(&payload).unwrap();
        assert_eq!(t.data, data, "the signed data is untouched");
        assert_eq!(t.headers.reply_to.as_deref(), Some(COLLECTIVE));
        let fed = t.headers.federation.as_ref().unwrap();
        assert_eq!(fed.reply_to, REPLY);
        assert!(fed.target.is_empty());
        assert_eq!(t.headers.seen_by.len(), 2);
        assert_eq!(t.headers.seen_by[1], hop);
        let text = String::from_utf8(payload.to_vec()).unwrap();
        assert!(!text.contains("\"target\""), "{text}");
        // The request inside still decodes (signature/hash material unchanged).
        decode_request_unchecked_ttl(&payload).unwrap();
    }

    #[test]
    fn reply_drops_federation_and_goes_to_saved_reply_to() {
        let (bytes, data) = request(&["mcollective.node.n1"], Some(REPLY));
        let (_, forwarded) = transform_request(&bytes, COLLECTIVE)
            .unwrap()
            .finish(SeenByHop::new("a", "b", "c"))
            .unwrap();
        // A server copies the federation header into its reply (here: the same transport).
        let t = Transport::from_slice(&forwarded).unwrap();
        let mut reply_headers = TransportHeaders::for_reply_to(&t.headers, "n1");
        reply_headers.push_seen_by(SeenByHop::new("c", "n1", "c"));
        let reply = Transport {
            headers: reply_headers,
            ..t
        }
        .to_vec()
        .unwrap();
        let out = transform_reply(&reply).unwrap();
        assert_eq!(out.targets, [REPLY]);
        let (_, payload) = out.finish(SeenByHop::new("c", "fb1", "a")).unwrap();
        let back = Transport::from_slice(&payload).unwrap();
        assert_eq!(back.data, data);
        assert!(back.headers.federation.is_none());
        assert_eq!(back.headers.seen_by.len(), 4);
    }

    #[test]
    fn bridging_and_broken_input_are_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "malformed"),
            (b"{}".to_vec(), "malformed"),
            (
                br#"{"protocol":"choria:transport:2","data":"e30=","headers":{}}"#.to_vec(),
                "protocol",
            ),
            (
                br#"{"protocol":"choria:transport:1","data":"e30=","headers":{"reply-to":"c.reply.x"}}"#
                    .to_vec(),
                "unfederated",
            ),
            (
                br#"{"protocol":"choria:transport:1","data":"e30=","headers":{"reply-to":"c.reply.x","federation":{"target":["c.node.a"]}}}"#
                    .to_vec(),
                "no_req",
            ),
            (request(&[], Some(REPLY)).0, "no_targets"),
            (request(&["foo.bar"], Some(REPLY)).0, "bad_target"),
            (
                request(&["mcollective.node.a", "mcollective.>"], Some(REPLY)).0,
                "bad_target",
            ),
            (request(&["mcollective.node.a"], None).0, "no_reply_to"),
            (
                request(&["mcollective.node.a"], Some("secret.subject")).0,
                "bad_reply_to",
            ),
        ];
        for (payload, reason) in cases {
            let got = transform_request(&payload, COLLECTIVE).unwrap_err();
            assert_eq!(got.reason(), reason, "{got}");
        }
        let reply = br#"{"protocol":"choria:transport:1","data":"e30=","headers":{"federation":{"req":"r","reply-to":"secret.subject"}}}"#;
        assert_eq!(transform_reply(reply).unwrap_err().reason(), "bad_reply_to");
        let reply = br#"{"protocol":"choria:transport:1","data":"e30=","headers":{"federation":{"req":"r"}}}"#;
        assert_eq!(transform_reply(reply).unwrap_err().reason(), "no_reply_to");
        let reply = br#"{"protocol":"choria:transport:1","data":"e30=","headers":{}}"#;
        assert_eq!(transform_reply(reply).unwrap_err().reason(), "unfederated");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed & 0xff) as u8
                })
                .collect();
            assert!(transform_request(&bytes, COLLECTIVE).is_err());
            assert!(transform_reply(&bytes).is_err());
        }
    }
}
