//! The plain-Rust core of the broker: one transport in, headers rewritten, or a counted
//! rejection.
//!
//! The transport is parsed without copying: strings are borrowed from the payload (unless they
//! contain escapes) and `data` (the base64 of the signed secure request or reply) is kept as
//! the raw JSON text received and written back byte for byte, so signatures and hashes stay
//! valid and the large string is neither copied into a `String` nor re-escaped. Only the
//! small `headers` object is serialised again; unknown header keys are dropped, as Go's struct
//! decoding does.

use std::borrow::Cow;

use bytes::Bytes;
use serde::ser::SerializeSeq as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::protocol::{classify_subject, SeenByHop, TRANSPORT_PROTOCOL};

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

/// A JSON string, borrowed from the payload when it holds no escapes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl Text<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A `seen-by` triple as received.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
struct Hop<'a>(
    #[serde(borrow)] Text<'a>,
    #[serde(borrow)] Text<'a>,
    #[serde(borrow)] Text<'a>,
);

/// `headers.federation`, as [`crate::protocol::FederationHeader`] but borrowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
struct Federation<'a> {
    #[serde(default, borrow, skip_serializing_if = "Text::is_empty")]
    req: Text<'a>,
    #[serde(
        rename = "reply-to",
        default,
        borrow,
        skip_serializing_if = "Text::is_empty"
    )]
    reply_to: Text<'a>,
    #[serde(default, borrow, skip_serializing_if = "Vec::is_empty")]
    target: Vec<Text<'a>>,
}

/// `headers`, as [`crate::protocol::TransportHeaders`] but borrowed (same keys, same order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct Headers<'a> {
    #[serde(rename = "reply-to", default, borrow)]
    reply_to: Option<Text<'a>>,
    #[serde(default, borrow)]
    mc_sender: Option<Text<'a>>,
    #[serde(rename = "seen-by", default, borrow)]
    seen_by: Vec<Hop<'a>>,
    #[serde(default, borrow)]
    federation: Option<Federation<'a>>,
}

/// The transport as received: `data` stays raw JSON text.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    protocol: Text<'a>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default, borrow)]
    headers: Headers<'a>,
}

/// The `headers` written out: the received ones plus one `seen-by` hop.
#[derive(Serialize)]
struct Outgoing<'h, 'a> {
    #[serde(rename = "reply-to", skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'h Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mc_sender: Option<&'h Text<'a>>,
    #[serde(rename = "seen-by")]
    seen_by: SeenBy<'h, 'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    federation: Option<&'h Federation<'a>>,
}

/// The received hops followed by the broker's own.
struct SeenBy<'h, 'a> {
    hops: &'h [Hop<'a>],
    extra: &'h SeenByHop,
}

impl Serialize for SeenBy<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.hops.len() + 1))?;
        for hop in self.hops {
            seq.serialize_element(hop)?;
        }
        seq.serialize_element(self.extra)?;
        seq.end()
    }
}

/// A transport with rewritten headers and the subjects it goes to, borrowing the received
/// payload, waiting for the egest worker's `seen-by` hop.
#[derive(Debug, Clone)]
pub struct Rewritten<'a> {
    data: &'a RawValue,
    headers: Headers<'a>,
    targets: Vec<Text<'a>>,
    size_hint: usize,
}

impl Rewritten<'_> {
    /// Where to publish it: the targets of a request, the saved reply-to of a reply.
    pub fn targets(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.targets.iter().map(|t| t.0.as_ref())
    }

    /// The transport with `hop` appended to `seen-by`, serialised once (the same bytes go to
    /// every target). `data` is copied verbatim from the received payload.
    pub fn encode(&self, hop: &SeenByHop) -> Result<Bytes, Rejection> {
        let capacity = self.size_hint + hop.0.len() + hop.1.len() + hop.2.len() + 64;
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(b"{\"protocol\":\"");
        out.extend_from_slice(TRANSPORT_PROTOCOL.as_bytes());
        out.extend_from_slice(b"\",\"data\":");
        out.extend_from_slice(self.data.get().as_bytes());
        out.extend_from_slice(b",\"headers\":");
        let headers = Outgoing {
            reply_to: self.headers.reply_to.as_ref(),
            mc_sender: self.headers.mc_sender.as_ref(),
            seen_by: SeenBy {
                hops: &self.headers.seen_by,
                extra: hop,
            },
            federation: self.headers.federation.as_ref(),
        };
        serde_json::to_writer(&mut out, &headers).map_err(|e| Rejection::Encode(e.to_string()))?;
        out.push(b'}');
        Ok(Bytes::from(out))
    }
}

fn parse(payload: &[u8]) -> Result<Incoming<'_>, Rejection> {
    let incoming: Incoming<'_> =
        serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    if !incoming.data.get().starts_with('"') {
        return Err(Rejection::Malformed("data is not a string".to_owned()));
    }
    if incoming.protocol.0 != TRANSPORT_PROTOCOL {
        return Err(Rejection::Protocol(incoming.protocol.0.into_owned()));
    }
    Ok(incoming)
}

/// A request from the federation network, rewritten for the collective: the client's
/// `reply-to` moves into `federation.reply-to`, `reply-to` becomes `collective_subject`
/// (`choria.federation.<cluster>.collective`), the targets leave the header.
///
/// Refuses (no bridging): a missing federation header, `req`, targets or reply-to; a target
/// that is not `*.broadcast.agent.*` or `*.node.*`; a reply-to that is not `*.reply.*`.
pub fn transform_request<'a>(
    payload: &'a [u8],
    collective_subject: &'a str,
) -> Result<Rewritten<'a>, Rejection> {
    let Incoming {
        data, mut headers, ..
    } = parse(payload)?;
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
        .find(|t| !classify_subject(&t.0).is_request_target())
    {
        return Err(Rejection::BadTarget(bad.0.clone().into_owned()));
    }
    let reply_to = headers
        .reply_to
        .take()
        .filter(|r| !r.is_empty())
        .ok_or(Rejection::NoReplyTo)?;
    if !classify_subject(&reply_to.0).is_reply() {
        return Err(Rejection::BadReplyTo(reply_to.0.into_owned()));
    }
    let targets = std::mem::take(&mut federation.target);
    federation.reply_to = reply_to;
    headers.reply_to = Some(Text(Cow::Borrowed(collective_subject)));
    Ok(Rewritten {
        data,
        headers,
        targets,
        size_hint: payload.len() + collective_subject.len(),
    })
}

/// A reply from the collective, rewritten for the federation network: the federation header
/// is dropped and the reply goes to the saved `federation.reply-to` (which must be
/// `*.reply.*`).
pub fn transform_reply(payload: &[u8]) -> Result<Rewritten<'_>, Rejection> {
    let Incoming {
        data, mut headers, ..
    } = parse(payload)?;
    let Federation { req, reply_to, .. } =
        headers.federation.take().ok_or(Rejection::Unfederated)?;
    if req.is_empty() {
        return Err(Rejection::NoRequestId);
    }
    if reply_to.is_empty() {
        return Err(Rejection::NoReplyTo);
    }
    if !classify_subject(&reply_to.0).is_reply() {
        return Err(Rejection::BadReplyTo(reply_to.0.into_owned()));
    }
    Ok(Rewritten {
        data,
        headers,
        targets: vec![reply_to],
        size_hint: payload.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        decode_request_unchecked_ttl, encode_request, FederationHeader, NewRequest, Transport,
        TransportHeaders,
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
            out.targets().collect::<Vec<_>>(),
            [
                "mcollective.node.n1",
                "mcollective.broadcast.agent.discovery"
            ]
        );
        let hop = SeenByHop::new("nats://fed:4222", "fb1 (…)", "nats://ldn:4222");
        let payload = out.encode(&hop).unwrap();
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
        let forwarded = transform_request(&bytes, COLLECTIVE)
            .unwrap()
            .encode(&SeenByHop::new("a", "b", "c"))
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
        assert_eq!(out.targets().collect::<Vec<_>>(), [REPLY]);
        let payload = out.encode(&SeenByHop::new("c", "fb1", "a")).unwrap();
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
    fn output_matches_the_owned_encoding() {
        // The borrowed rewrite writes exactly what re-serialising the owned transport would.
        let (bytes, _) = request(&["mcollective.node.n1"], Some(REPLY));
        let hop = SeenByHop::new("nats://fed:4222", "fb1", "nats://ldn:4222");
        let payload = transform_request(&bytes, COLLECTIVE)
            .unwrap()
            .encode(&hop)
            .unwrap();
        let mut expected = Transport::from_slice(&bytes).unwrap();
        let fed = expected.headers.federation.as_mut().unwrap();
        fed.target.clear();
        fed.reply_to = REPLY.to_owned();
        expected.headers.reply_to = Some(COLLECTIVE.to_owned());
        expected.headers.push_seen_by(hop);
        assert_eq!(payload.as_ref(), expected.to_vec().unwrap().as_slice());
    }

    #[test]
    fn data_bytes_and_escaped_headers_survive() {
        // Escapes in `data` (line breaks, `\/`) are kept byte for byte; escaped header strings
        // are decoded and re-encoded.
        let data = r#""e30=\n\/""#;
        let payload = format!(
            r#"{{"protocol":"choria:transport:1","data":{data},"extra":1,"headers":{{"reply-to":"c.reply.x","mc_sender":"a\u00e9\"b","seen-by":[["x","y\u003c","z"]],"federation":{{"req":"r","target":["c.node.a\u0062"]}}}}}}"#
        );
        let out = transform_request(payload.as_bytes(), COLLECTIVE).unwrap();
        assert_eq!(out.targets().collect::<Vec<_>>(), ["c.node.ab"]);
        let bytes = out.encode(&SeenByHop::new("i", "p", "o")).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains(&format!(r#""data":{data},"#)), "{text}");
        let t = Transport::from_slice(&bytes).unwrap();
        assert_eq!(t.headers.mc_sender.as_deref(), Some("a\u{e9}\"b"));
        assert_eq!(t.headers.seen_by[0], SeenByHop::new("x", "y<", "z"));
        assert_eq!(t.headers.seen_by[1], SeenByHop::new("i", "p", "o"));
        let not_a_string = r#"{"protocol":"choria:transport:1","data":{"a":1},"headers":{}}"#;
        assert_eq!(
            transform_reply(not_a_string.as_bytes())
                .unwrap_err()
                .reason(),
            "malformed"
        );
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
