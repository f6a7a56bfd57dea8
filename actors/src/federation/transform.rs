//! The plain-Rust core of the broker: one transport in, headers rewritten, or a counted
//! rejection.
//!
//! The transport is not decoded into values: the protocol's JSON [`Scanner`] validates all
//! of it and locates its parts, and the rewritten transport is spliced together from the
//! received bytes. `data` (the base64 of the signed secure request or reply) and every header
//! string are copied byte for byte, so signatures and hashes stay valid and nothing is
//! decoded nor re-escaped; only the subjects the broker checks and publishes to are read as
//! text. The headers are written in Choria's order (`reply-to`, `mc_sender`, `seen-by`,
//! `federation`); unknown header keys are dropped, as Go's struct decoding does, and a known
//! key given twice makes the transport malformed.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

use crate::protocol::subject::MAX_SUBJECT_LEN;
use crate::protocol::{
    classify_subject, write_json_string, ScanError, Scanner, SeenByHop, Str, SubjectKind,
    TRANSPORT_PROTOCOL,
};

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
        }
    }

    /// Every reason, for pre-creating the counters.
    pub const REASONS: [&'static str; 8] = [
        "malformed",
        "protocol",
        "unfederated",
        "no_req",
        "no_targets",
        "no_reply_to",
        "bad_target",
        "bad_reply_to",
    ];
}

impl From<ScanError> for Rejection {
    fn from(error: ScanError) -> Self {
        Self::Malformed(error.to_string())
    }
}

/// How much a worker's encode buffer grows at a time (about fifty 1 KiB transports).
const ENCODE_BUFFER: usize = 64 * 1024;

/// A `seen-by` hop as JSON text (`["in","processor","out"]`), encoded once per worker and
/// appended to every message it forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopJson(Vec<u8>);

impl HopJson {
    /// The JSON text of `hop`.
    pub fn new(hop: &SeenByHop) -> Self {
        let parts = hop.parts();
        let mut out = Vec::with_capacity(parts.iter().map(String::len).sum::<usize>() + 16);
        out.push(b'[');
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, part);
        }
        out.push(b']');
        Self(out)
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What the broker may do with a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `*.broadcast.agent.*` or `*.node.*`: a request target.
    Target,
    /// `*.reply.*`.
    Reply,
    /// Anything else.
    Other,
}

/// [`classify_subject`] reduced to what the broker needs, byte-wise for ASCII subjects (the
/// usual case) with the same answers; other subjects go to `classify_subject` itself.
fn kind(subject: &str) -> Kind {
    let bytes = subject.as_bytes();
    if bytes.len() > MAX_SUBJECT_LEN {
        return Kind::Other;
    }
    if !bytes.is_ascii() {
        return match classify_subject(subject) {
            SubjectKind::Broadcast { .. } | SubjectKind::Node { .. } => Kind::Target,
            SubjectKind::Reply { .. } => Kind::Reply,
            SubjectKind::Other => Kind::Other,
        };
    }
    // No wildcard, no whitespace, no empty token; branch-free over the bytes.
    let (mut bad, mut after_dot) = (false, true);
    for &b in bytes {
        bad |= matches!(b, b'*' | b'>' | b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
        let dot = b == b'.';
        bad |= dot & after_dot;
        after_dot = dot;
    }
    if bad || after_dot {
        return Kind::Other;
    }
    let Some(dot) = bytes.iter().position(|&b| b == b'.') else {
        return Kind::Other;
    };
    let rest = &bytes[dot + 1..];
    if let Some(agent) = rest.strip_prefix(b"broadcast.agent.") {
        if !agent.contains(&b'.') {
            return Kind::Target;
        }
    } else if rest.starts_with(b"node.") {
        return Kind::Target;
    } else if rest.starts_with(b"reply.") {
        return Kind::Reply;
    }
    Kind::Other
}

/// `headers.federation` as received.
#[derive(Debug, Default)]
struct Federation<'a> {
    req: Option<Str<'a>>,
    reply_to: Option<Str<'a>>,
    /// The raw `target` array (strings only) and its length.
    target: Option<(&'a [u8], usize)>,
}

/// `headers` as received (known keys only).
#[derive(Debug, Default)]
struct Headers<'a> {
    reply_to: Option<Str<'a>>,
    mc_sender: Option<Str<'a>>,
    /// The raw `seen-by` array (hops of one to three strings only) and its length.
    seen_by: Option<(&'a [u8], usize)>,
    federation: Option<Federation<'a>>,
}

/// Marks `bit` in `seen`, refusing a key given twice.
fn once(s: &Scanner<'_>, seen: &mut u8, bit: u8) -> Result<(), ScanError> {
    if *seen & bit != 0 {
        return Err(s.duplicate_key());
    }
    *seen |= bit;
    Ok(())
}

/// A string, or `null` (`None`).
fn optional_string<'a>(s: &mut Scanner<'a>) -> Result<Option<Str<'a>>, ScanError> {
    if s.null()? {
        Ok(None)
    } else {
        s.string().map(Some)
    }
}

fn federation<'a>(s: &mut Scanner<'a>) -> Result<Federation<'a>, ScanError> {
    let mut out = Federation::default();
    let mut seen = 0;
    let mut fields = s.begin_object()?;
    while let Some(key) = s.next_key(&mut fields)? {
        if key.is("req") {
            once(s, &mut seen, 1)?;
            out.req = Some(s.string()?);
        } else if key.is("reply-to") {
            once(s, &mut seen, 2)?;
            out.reply_to = Some(s.string()?);
        } else if key.is("target") {
            once(s, &mut seen, 4)?;
            out.target = Some(s.array_raw(|s| s.string().map(drop))?);
        } else {
            s.value()?;
        }
    }
    Ok(out)
}

/// A hop of one to three strings: go-choria writes three, the Ruby `mco` connector two
/// (`["<client identity>","nats://host:port"]`). It is passed on byte for byte.
fn hop(s: &mut Scanner<'_>) -> Result<(), ScanError> {
    let n = s.array(|s| s.string().map(drop))?;
    if (1..=3).contains(&n) {
        Ok(())
    } else {
        Err(s.expected("a seen-by hop of one to three strings"))
    }
}

fn headers<'a>(s: &mut Scanner<'a>) -> Result<Headers<'a>, ScanError> {
    let mut out = Headers::default();
    let mut seen = 0;
    let mut fields = s.begin_object()?;
    while let Some(key) = s.next_key(&mut fields)? {
        if key.is("reply-to") {
            once(s, &mut seen, 1)?;
            out.reply_to = optional_string(s)?;
        } else if key.is("mc_sender") {
            once(s, &mut seen, 2)?;
            out.mc_sender = optional_string(s)?;
        } else if key.is("seen-by") {
            once(s, &mut seen, 4)?;
            out.seen_by = Some(s.array_raw(hop)?);
        } else if key.is("federation") {
            once(s, &mut seen, 8)?;
            out.federation = if s.null()? {
                None
            } else {
                Some(federation(s)?)
            };
        } else {
            s.value()?;
        }
    }
    Ok(out)
}

/// Validates the whole transport and returns its raw `data` and its headers.
fn parse(payload: &[u8]) -> Result<(&[u8], Headers<'_>), Rejection> {
    let mut s = Scanner::new(payload);
    let (mut protocol, mut data, mut found) = (None, None, Headers::default());
    let mut seen = 0;
    let mut fields = s.begin_object()?;
    while let Some(key) = s.next_key(&mut fields)? {
        if key.is("protocol") {
            once(&s, &mut seen, 1)?;
            protocol = Some(s.string()?);
        } else if key.is("data") {
            once(&s, &mut seen, 2)?;
            data = Some(s.value()?);
        } else if key.is("headers") {
            once(&s, &mut seen, 4)?;
            found = headers(&mut s)?;
        } else {
            s.value()?;
        }
    }
    s.end()?;
    let protocol = protocol.ok_or_else(|| Rejection::Malformed("missing protocol".to_owned()))?;
    let data = data.ok_or_else(|| Rejection::Malformed("missing data".to_owned()))?;
    if data.first() != Some(&b'"') {
        return Err(Rejection::Malformed("data is not a string".to_owned()));
    }
    if !protocol.is(TRANSPORT_PROTOCOL) {
        let protocol = protocol.text().unwrap_or_default().into_owned();
        return Err(Rejection::Protocol(protocol));
    }
    Ok((data, found))
}

/// A `reply-to` header value to write.
#[derive(Debug, Clone, Copy)]
enum ReplyTo<'a> {
    /// Copied as received.
    Raw(Str<'a>),
    /// The broker's own subject, escaped on writing.
    Subject(&'a str),
}

/// Where a rewritten transport goes.
#[derive(Debug, Clone, Copy)]
enum Targets<'a> {
    /// A request's `federation.target` array (validated).
    Array(&'a [u8]),
    /// A reply's saved reply-to.
    One(Str<'a>),
}

/// A transport with rewritten headers and the subjects it goes to, borrowing the received
/// payload, waiting for the egest worker's `seen-by` hop.
#[derive(Debug, Clone)]
pub struct Rewritten<'a> {
    data: &'a [u8],
    reply_to: Option<ReplyTo<'a>>,
    mc_sender: Option<Str<'a>>,
    seen_by: Option<(&'a [u8], usize)>,
    /// A request's new federation header: `req` and the client's reply-to.
    federation: Option<(Str<'a>, Str<'a>)>,
    targets: Targets<'a>,
    size_hint: usize,
}

impl<'a> Rewritten<'a> {
    /// Where to publish it: the targets of a request, the saved reply-to of a reply.
    pub fn targets(&self) -> impl Iterator<Item = Cow<'a, str>> + '_ {
        let (array, one) = match self.targets {
            Targets::Array(raw) => (Some(Scanner::new(raw).strings()), None),
            Targets::One(target) => (None, Some(target)),
        };
        array
            .into_iter()
            .flatten()
            .chain(one)
            .map(|s| s.text().unwrap_or_default())
    }

    /// The transport with `hop` appended to `seen-by`, written once (the same bytes go to
    /// every target). `data` and the header strings are copied verbatim from the received
    /// payload.
    pub fn encode(&self, hop: &HopJson) -> Bytes {
        self.encode_into(hop, &mut BytesMut::new())
    }

    /// [`encode`](Self::encode) into the free space of `buffer`, split off as the result: a
    /// worker keeps one buffer, whose memory is reused once the connection wrote and dropped
    /// the earlier messages, instead of allocating a buffer per message.
    pub fn encode_into(&self, hop: &HopJson, buffer: &mut BytesMut) -> Bytes {
        let needed = self.size_hint + hop.0.len() + 96;
        if buffer.capacity() < needed {
            buffer.reserve(needed.max(ENCODE_BUFFER));
        }
        let out = buffer;
        out.extend_from_slice(b"{\"protocol\":\"");
        out.extend_from_slice(TRANSPORT_PROTOCOL.as_bytes());
        out.extend_from_slice(b"\",\"data\":");
        out.extend_from_slice(self.data);
        out.extend_from_slice(b",\"headers\":{");
        match self.reply_to {
            Some(ReplyTo::Raw(raw)) => {
                out.extend_from_slice(b"\"reply-to\":");
                out.extend_from_slice(raw.raw());
                out.extend_from_slice(b",");
            }
            Some(ReplyTo::Subject(subject)) => {
                out.extend_from_slice(b"\"reply-to\":");
                let plain = subject
                    .bytes()
                    .all(|b| b >= 0x20 && b != b'"' && b != b'\\');
                if plain {
                    out.extend_from_slice(b"\"");
                    out.extend_from_slice(subject.as_bytes());
                    out.extend_from_slice(b"\"");
                } else {
                    let mut escaped = Vec::with_capacity(subject.len() + 8);
                    write_json_string(&mut escaped, subject);
                    out.extend_from_slice(&escaped);
                }
                out.extend_from_slice(b",");
            }
            None => {}
        }
        if let Some(sender) = self.mc_sender {
            out.extend_from_slice(b"\"mc_sender\":");
            out.extend_from_slice(sender.raw());
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(b"\"seen-by\":");
        match self.seen_by {
            Some((raw, count)) => {
                // Everything before the closing bracket, then one more element.
                let open = raw.strip_suffix(b"]").unwrap_or(raw).trim_ascii_end();
                out.extend_from_slice(open);
                if count > 0 {
                    out.extend_from_slice(b",");
                }
            }
            None => out.extend_from_slice(b"["),
        }
        out.extend_from_slice(&hop.0);
        out.extend_from_slice(b"]");
        if let Some((req, reply_to)) = self.federation {
            out.extend_from_slice(b",\"federation\":{\"req\":");
            out.extend_from_slice(req.raw());
            out.extend_from_slice(b",\"reply-to\":");
            out.extend_from_slice(reply_to.raw());
            out.extend_from_slice(b"}");
        }
        out.extend_from_slice(b"}}");
        out.split().freeze()
    }
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
    let (data, headers) = parse(payload)?;
    let federation = headers.federation.ok_or(Rejection::Unfederated)?;
    let req = federation
        .req
        .filter(|r| !r.is_empty())
        .ok_or(Rejection::NoRequestId)?;
    let targets = match federation.target {
        Some((raw, count)) if count > 0 => raw,
        _ => return Err(Rejection::NoTargets),
    };
    for target in Scanner::new(targets).strings() {
        let text = target.text().unwrap_or_default();
        if kind(&text) != Kind::Target {
            return Err(Rejection::BadTarget(text.into_owned()));
        }
    }
    let reply_to = checked_reply_to(headers.reply_to)?;
    Ok(Rewritten {
        data,
        reply_to: Some(ReplyTo::Subject(collective_subject)),
        mc_sender: headers.mc_sender,
        seen_by: headers.seen_by,
        federation: Some((req, reply_to)),
        targets: Targets::Array(targets),
        size_hint: payload.len() + collective_subject.len(),
    })
}

/// A reply-to that is present, not empty, and a reply subject (`*.reply.*`): no bridging
/// into arbitrary subjects, on either path.
fn checked_reply_to(reply_to: Option<Str<'_>>) -> Result<Str<'_>, Rejection> {
    let reply_to = reply_to
        .filter(|r| !r.is_empty())
        .ok_or(Rejection::NoReplyTo)?;
    let text = reply_to.text().unwrap_or_default();
    if kind(&text) != Kind::Reply {
        return Err(Rejection::BadReplyTo(text.into_owned()));
    }
    Ok(reply_to)
}

/// A reply from the collective, rewritten for the federation network: the federation header
/// is dropped and the reply goes to the saved `federation.reply-to` (which must be
/// `*.reply.*`).
pub fn transform_reply(payload: &[u8]) -> Result<Rewritten<'_>, Rejection> {
    let (data, headers) = parse(payload)?;
    let federation = headers.federation.ok_or(Rejection::Unfederated)?;
    if federation.req.is_none_or(|r| r.is_empty()) {
        return Err(Rejection::NoRequestId);
    }
    let reply_to = checked_reply_to(federation.reply_to)?;
    Ok(Rewritten {
        data,
        reply_to: headers.reply_to.map(ReplyTo::Raw),
        mc_sender: headers.mc_sender,
        seen_by: headers.seen_by,
        federation: None,
        targets: Targets::One(reply_to),
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
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

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
        let payload = out.encode(&HopJson::new(&hop));
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
            .encode(&HopJson::new(&SeenByHop::new("a", "b", "c")));
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
        let payload = out.encode(&HopJson::new(&SeenByHop::new("c", "fb1", "a")));
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
            .encode(&HopJson::new(&hop));
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
        let bytes = out.encode(&HopJson::new(&SeenByHop::new("i", "p", "o")));
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
    fn short_hops_pass_byte_for_byte_and_long_ones_are_refused() {
        let payload = |hops: &str| {
            format!(
                r#"{{"protocol":"choria:transport:1","data":"e30=","headers":{{"reply-to":"c.reply.x","seen-by":{hops},"federation":{{"req":"r","target":["c.node.a"]}}}}}}"#
            )
        };
        let hops = r#"[ ["client.example.net" , "nats://f:4222"],["x"],["a","b\u0063",""]]"#;
        let bytes = transform_request(payload(hops).as_bytes(), COLLECTIVE)
            .unwrap()
            .encode(&HopJson::new(&SeenByHop::new("i", "p", "o")));
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.contains(r#""seen-by":[ ["client.example.net" , "nats://f:4222"],["x"],["a","b\u0063",""],["i","p","o"]]"#),
            "{text}"
        );
        for bad in [r#"[["a","b","c","d"]]"#, "[[]]", r#"[["a",1]]"#, r#"["a"]"#] {
            let got = transform_request(payload(bad).as_bytes(), COLLECTIVE).unwrap_err();
            assert_eq!(got.reason(), "malformed", "{bad}");
        }
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

    #[test]
    fn an_odd_collective_subject_is_escaped() {
        let (bytes, _) = request(&["mcollective.node.n1"], Some(REPLY));
        let odd = "choria.federation.a\"b\\c\u{1}.collective";
        let out = transform_request(&bytes, odd).unwrap();
        let payload = out.encode(&HopJson::new(&SeenByHop::new("i", "p", "o")));
        let t = Transport::from_slice(&payload).unwrap();
        assert_eq!(t.headers.reply_to.as_deref(), Some(odd));
    }

    #[test]
    fn subject_kinds_match_the_protocol_classifier() {
        let subjects = [
            "",
            ".",
            "a",
            "a.",
            ".a.node.b",
            "c.node.n1",
            "c.node.n1.example.net",
            "c.node.",
            "c.node..x",
            "c.broadcast.agent.discovery",
            "c.broadcast.agent.a.b",
            "c.broadcast.agent.",
            "c.broadcast.agentx",
            "c.reply.x",
            "c.reply.x.y",
            "c.reply.",
            "c.reply",
            "c.reply.*",
            "c.reply.>",
            "c.node.a b",
            "c.node.a\tb",
            "c.node.a\u{b}b",
            "c.node.a\u{c}b",
            "c.node.a\rb",
            "c.node.a\u{1c}b",
            "c.node.\u{e9}t\u{e9}",
            "c.node.a\u{a0}b",
            "c.node.a\u{2003}b",
            "c.reply.\u{2028}",
            "secret.subject",
            "foo.bar",
            "c.node.a..b",
        ];
        for subject in subjects {
            let expected = match classify_subject(subject) {
                SubjectKind::Broadcast { .. } | SubjectKind::Node { .. } => Kind::Target,
                SubjectKind::Reply { .. } => Kind::Reply,
                SubjectKind::Other => Kind::Other,
            };
            assert_eq!(kind(subject), expected, "{subject:?}");
        }
    }

    #[test]
    fn keys_in_any_order_whitespace_and_duplicates() {
        let payload = br#" { "headers" : { "federation" : { "target" : [ "c.node.a" ] , "x" : [1,{"y":null}] , "req" : "r" } , "seen-by" : [ ] , "unknown" : "u" , "reply-to" : "c.reply.x" } , "data" : "e30=" , "protocol" : "choria:transport:1" } "#;
        let out = transform_request(payload, COLLECTIVE).unwrap();
        let bytes = out.encode(&HopJson::new(&SeenByHop::new("i", "p", "o")));
        let t = Transport::from_slice(&bytes).unwrap();
        assert_eq!(t.data, "e30=");
        assert_eq!(t.headers.seen_by, [SeenByHop::new("i", "p", "o")]);
        assert_eq!(t.headers.federation.unwrap().reply_to, "c.reply.x");
        assert!(!String::from_utf8_lossy(&bytes).contains("unknown"));
        for duplicated in [
            r#"{"protocol":"choria:transport:1","protocol":"choria:transport:1","data":"e30=","headers":{}}"#,
            r#"{"protocol":"choria:transport:1","data":"e30=","headers":{"reply-to":"c.reply.x","reply-to":"c.reply.y"}}"#,
            r#"{"protocol":"choria:transport:1","data":"e30=","headers":{"federation":{"req":"r","req":"s"}}}"#,
        ] {
            assert_eq!(
                transform_reply(duplicated.as_bytes()).unwrap_err().reason(),
                "malformed",
                "{duplicated}"
            );
        }
        let escaped_key = br#"{"protocol":"choria:transport:1","data":"e30=","headers":{"feder\u0061tion":{"req":"r","reply-to":"c.reply.x"}}}"#;
        assert_eq!(
            transform_reply(escaped_key)
                .unwrap()
                .targets()
                .collect::<Vec<_>>(),
            ["c.reply.x"]
        );
    }

    /// What the broker must do, written against the owned protocol types: the oracle for the
    /// spliced rewrite.
    fn oracle(payload: &[u8], request: bool) -> Result<(Transport, Vec<String>), &'static str> {
        let mut t: Transport = serde_json::from_slice(payload).map_err(|_| "malformed")?;
        if t.protocol != TRANSPORT_PROTOCOL {
            return Err("protocol");
        }
        let hop = SeenByHop::new("nats://in:4222", "fb1 (\"x\")", "nats://out:4222");
        let mut fed = t.headers.federation.take().ok_or("unfederated")?;
        if fed.req.is_empty() {
            return Err("no_req");
        }
        let targets = if request {
            if fed.target.is_empty() {
                return Err("no_targets");
            }
            if fed
                .target
                .iter()
                .any(|t| !classify_subject(t).is_request_target())
            {
                return Err("bad_target");
            }
            let reply_to = t.headers.reply_to.take().filter(|r| !r.is_empty());
            let reply_to = reply_to.ok_or("no_reply_to")?;
            if !classify_subject(&reply_to).is_reply() {
                return Err("bad_reply_to");
            }
            let targets = std::mem::take(&mut fed.target);
            fed.reply_to = reply_to;
            t.headers.reply_to = Some(COLLECTIVE.to_owned());
            t.headers.federation = Some(fed);
            targets
        } else {
            if fed.reply_to.is_empty() {
                return Err("no_reply_to");
            }
            if !classify_subject(&fed.reply_to).is_reply() {
                return Err("bad_reply_to");
            }
            vec![fed.reply_to]
        };
        t.headers.push_seen_by(hop);
        Ok((t, targets))
    }

    fn check_against_oracle(payload: &[u8]) -> Result<(), TestCaseError> {
        let hop = HopJson::new(&SeenByHop::new(
            "nats://in:4222",
            "fb1 (\"x\")",
            "nats://out:4222",
        ));
        for request in [true, false] {
            let ours = if request {
                transform_request(payload, COLLECTIVE)
            } else {
                transform_reply(payload)
            };
            match (ours, oracle(payload, request)) {
                (Ok(out), Ok((expected, targets))) => {
                    let bytes = out.encode(&hop);
                    let got: Transport = serde_json::from_slice(&bytes).map_err(|e| {
                        TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes)))
                    })?;
                    prop_assert_eq!(got, expected);
                    prop_assert_eq!(out.targets().collect::<Vec<_>>(), targets);
                }
                (Err(got), Err(expected)) => prop_assert_eq!(got.reason(), expected),
                (got, expected) => {
                    return Err(TestCaseError::fail(format!(
                        "request {request}: ours {got:?}, oracle {:?}, payload {}",
                        expected.map(|_| ()),
                        String::from_utf8_lossy(payload)
                    )))
                }
            }
        }
        Ok(())
    }

    fn subject() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("c.node.n1".to_owned()),
            Just("c.broadcast.agent.rpcutil".to_owned()),
            Just("c.reply.abc.def".to_owned()),
            Just(REPLY.to_owned()),
            Just(String::new()),
            Just("foo.bar".to_owned()),
            Just("c.node.*".to_owned()),
            "[a-c.*> ]{0,12}",
            "c\\.(node|reply|broadcast\\.agent)\\.\\PC{0,6}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9:/. ]{0,16}", "\\PC{0,8}", "[\\x00-\\x7f]{0,8}"]
    }

    fn transport() -> impl Strategy<Value = Transport> {
        let hop = proptest::collection::vec(text(), 1..=3)
            .prop_map(|parts| SeenByHop::from_parts(parts).unwrap());
        let federation = (
            prop_oneof![Just(String::new()), "[0-9a-f]{32}"],
            prop_oneof![Just(String::new()), subject()],
            proptest::collection::vec(subject(), 0..4),
        )
            .prop_map(|(req, reply_to, target)| FederationHeader {
                req,
                reply_to,
                target,
            });
        (
            prop_oneof![
                9 => Just(TRANSPORT_PROTOCOL.to_owned()),
                1 => Just("choria:transport:2".to_owned())
            ],
            "[A-Za-z0-9+/=]{0,64}|\\PC{0,16}",
            proptest::option::of(subject()),
            proptest::option::of(text()),
            proptest::collection::vec(hop, 0..3),
            proptest::option::weighted(0.8, federation),
        )
            .prop_map(
                |(protocol, data, reply_to, mc_sender, seen_by, federation)| Transport {
                    protocol,
                    data,
                    headers: TransportHeaders {
                        reply_to,
                        mc_sender,
                        seen_by,
                        federation,
                    },
                },
            )
    }

    proptest! {
        #[test]
        fn spliced_rewrite_matches_the_owned_rewrite(t in transport()) {
            check_against_oracle(&t.to_vec().unwrap())?;
        }

        #[test]
        fn reformatted_input_matches_the_owned_rewrite(t in transport(), pretty in any::<bool>()) {
            // Other key orders, whitespace, unknown keys and escapes than serde_json's own.
            let mut value = serde_json::to_value(&t).unwrap();
            value["extra"] = serde_json::json!({"a": [1, "b\u{1}", null]});
            value["headers"]["x-unknown"] = serde_json::json!([true]);
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap().replace(':', " : ").replace("c.node", "c\\u002enode")
            };
            check_against_oracle(text.as_bytes())?;
        }

        #[test]
        fn mangled_bytes_never_panic_and_agree(
            t in transport(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = t.to_vec().unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            check_against_oracle(&bytes)?;
        }
    }
}
