//! Encoding a reply through the onion and decoding it back.

use super::json_string::escape_into;
use super::{
    encode_base64, write_json_string, ProtocolError, Reply, Scanner, SecureReply, Transport,
    TransportHeaders,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// The secure reply hash: standard padded base64 of the SHA-256 of exactly `message`'s bytes.
pub fn reply_hash(message: &str) -> String {
    encode_base64(&Sha256::digest(message.as_bytes()))
}

/// A reply transport decoded down to the reply, keeping every layer.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedReply {
    /// The outer transport.
    pub transport: Transport,
    /// The secure reply, with the exact reply JSON text in `message`.
    pub secure: SecureReply,
    /// The parsed and validated reply.
    pub reply: Reply,
}

impl DecodedReply {
    /// The reply body bytes (the agent's reply payload, e.g. mcorpc reply JSON or `pong`).
    pub fn body(&self) -> &[u8] {
        self.reply.message.as_bytes()
    }
}

impl Transport {
    /// Wraps `reply` in a secure reply (with its hash) and a transport with `headers`.
    pub fn for_reply(reply: &Reply, headers: TransportHeaders) -> Result<Transport, ProtocolError> {
        let secure = SecureReply::new(reply.to_json()?);
        Ok(Transport::new(&secure.to_vec()?, headers))
    }
}

/// Encodes `reply` as a NATS payload with transport `headers` (see
/// [`TransportHeaders::for_reply_to`]).
pub fn encode_reply(reply: &Reply, headers: TransportHeaders) -> Result<Vec<u8>, ProtocolError> {
    Transport::for_reply(reply, headers)?.to_vec()
}

/// The parts of a reply's transport headers that come from the request (its `seen-by` trace
/// and federation data), rendered once per request and reused for every reply to it by
/// [`ReplyEncoder::encode`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyHeadersTemplate {
    /// The request's `seen-by` hops as comma-separated JSON arrays (empty when none).
    seen_by: Vec<u8>,
    /// The reply's `federation` object: the request's `req` and `reply-to`, no `target`.
    federation: Option<Vec<u8>>,
}

impl ReplyHeadersTemplate {
    /// The template for replies to a request that arrived with `request` headers (what
    /// [`TransportHeaders::for_reply_to`] copies).
    pub fn for_request(request: &TransportHeaders) -> Result<Self, ProtocolError> {
        let reply = TransportHeaders::for_reply_to(request, String::new());
        let json = |e| ProtocolError::json("transport")(e);
        let mut seen_by = serde_json::to_vec(&reply.seen_by).map_err(json)?;
        // `[[…],[…]]` → `[…],[…]`.
        seen_by.pop();
        seen_by.remove(0);
        let federation = reply
            .federation
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(json)?;
        Ok(Self {
            seen_by,
            federation,
        })
    }

    /// [`for_request`](Self::for_request) with the `seen-by` hops copied byte for byte from
    /// `payload`, the request transport those `request` headers were decoded from (a hop
    /// keeps its length, its escapes and its spacing). Falls back to re-serialising the
    /// decoded hops if `payload` has no `headers."seen-by"` array.
    pub fn for_request_payload(
        payload: &[u8],
        request: &TransportHeaders,
    ) -> Result<Self, ProtocolError> {
        let mut template = Self::for_request(request)?;
        if let Some(raw) = raw_seen_by(payload) {
            let inner = raw
                .strip_prefix(b"[")
                .and_then(|r| r.strip_suffix(b"]"))
                .unwrap_or_default()
                .trim_ascii();
            template.seen_by = inner.to_vec();
        }
        Ok(template)
    }
}

/// The raw text of a transport's `headers."seen-by"` array, if it has one.
fn raw_seen_by(payload: &[u8]) -> Option<&[u8]> {
    let mut s = Scanner::new(payload);
    let mut fields = s.begin_object().ok()?;
    while let Some(key) = s.next_key(&mut fields).ok()? {
        if !key.is("headers") {
            s.value().ok()?;
            continue;
        }
        let mut headers = s.begin_object().ok()?;
        while let Some(key) = s.next_key(&mut headers).ok()? {
            let value = s.value().ok()?;
            if key.is("seen-by") {
                return (value.first() == Some(&b'[')).then_some(value);
            }
        }
        return None;
    }
    None
}

/// The fields of one reply for [`ReplyEncoder::encode`] (see [`Reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyFields<'a> {
    /// The agent's reply body (mcorpc reply JSON text, `pong`, …).
    pub message: &'a str,
    /// The id of the request being answered.
    pub requestid: &'a str,
    /// The replying identity: envelope `senderid` and transport `mc_sender`.
    pub senderid: &'a str,
    /// The agent that replied.
    pub agent: &'a str,
    /// Reply time, Unix seconds.
    pub time: i64,
}

/// Encodes replies through the onion into buffers it reuses: byte for byte what
/// [`encode_reply`] produces for `Reply { message, envelope: {requestid, senderid, agent,
/// time} }` with `TransportHeaders::for_reply_to(request, senderid)` plus one `seen-by` hop,
/// without building the intermediate strings and structs. The emulator answers tens of
/// thousands of requests per second with it.
#[derive(Debug, Default)]
pub struct ReplyEncoder {
    reply: Vec<u8>,
    secure: Vec<u8>,
}

impl ReplyEncoder {
    /// An encoder with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The NATS payload of reply `fields` with the request's `headers` and the replying hop
    /// `(incoming server, identity, outgoing server)` appended to `seen-by`.
    pub fn encode(
        &mut self,
        fields: &ReplyFields<'_>,
        headers: &ReplyHeadersTemplate,
        hop: (&str, &str, &str),
    ) -> Vec<u8> {
        let reply = &mut self.reply;
        reply.clear();
        reply.extend_from_slice(b"{\"protocol\":\"choria:reply:1\",\"message\":");
        write_json_string(reply, fields.message);
        reply.extend_from_slice(b",\"envelope\":{\"requestid\":");
        write_json_string(reply, fields.requestid);
        reply.extend_from_slice(b",\"senderid\":");
        write_json_string(reply, fields.senderid);
        reply.extend_from_slice(b",\"agent\":");
        write_json_string(reply, fields.agent);
        reply.extend_from_slice(b",\"time\":");
        reply.extend_from_slice(itoa::Buffer::new().format(fields.time).as_bytes());
        reply.extend_from_slice(b"}}");

        let secure = &mut self.secure;
        secure.clear();
        secure.extend_from_slice(b"{\"protocol\":\"choria:secure:reply:1\",\"message\":\"");
        // The reply JSON is valid UTF-8: it was written from `&str`s and ASCII.
        escape_into(secure, reply);
        secure.extend_from_slice(b"\",\"hash\":\"");
        push_base64(secure, &Sha256::digest(reply.as_slice()));
        secure.extend_from_slice(b"\"}");

        let mut out = Vec::with_capacity(
            128 + secure.len() * 4 / 3 + headers.seen_by.len() + fields.senderid.len() * 2,
        );
        out.extend_from_slice(b"{\"protocol\":\"choria:transport:1\",\"data\":\"");
        push_base64(&mut out, secure);
        out.extend_from_slice(b"\",\"headers\":{\"mc_sender\":");
        write_json_string(&mut out, fields.senderid);
        out.extend_from_slice(b",\"seen-by\":[");
        if !headers.seen_by.is_empty() {
            out.extend_from_slice(&headers.seen_by);
            out.push(b',');
        }
        out.push(b'[');
        write_json_string(&mut out, hop.0);
        out.push(b',');
        write_json_string(&mut out, hop.1);
        out.push(b',');
        write_json_string(&mut out, hop.2);
        out.extend_from_slice(b"]]");
        if let Some(federation) = &headers.federation {
            out.extend_from_slice(b",\"federation\":");
            out.extend_from_slice(federation);
        }
        out.extend_from_slice(b"}}");
        out
    }
}

/// Appends the standard padded base64 of `bytes` to `out`.
fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = out
        .get_mut(start..)
        .map_or(0, |tail| STANDARD.encode_slice(bytes, tail).unwrap_or(0));
    out.truncate(start + written);
}

/// Decodes a reply NATS payload, verifying the secure reply hash
/// ([`ProtocolError::HashMismatch`]) and validating the reply.
pub fn decode_reply(bytes: &[u8]) -> Result<DecodedReply, ProtocolError> {
    let transport = Transport::from_slice(bytes)?;
    let secure = SecureReply::from_slice(&transport.payload()?)?;
    secure.verify_hash()?;
    let reply = Reply::from_str_validated(&secure.message)?;
    Ok(DecodedReply {
        transport,
        secure,
        reply,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{FederationHeader, NewRequest, SeenByHop, SECURE_REPLY_PROTOCOL};
    use super::*;

    fn request() -> super::super::Request {
        NewRequest {
            message: "ping".into(),
            senderid: "client.example.net".into(),
            callerid: "choria=rip.mcollective".into(),
            collective: "mcollective".into(),
            agent: "discovery".into(),
            ..NewRequest::default()
        }
        .build()
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let req = request();
        let reply = Reply::for_request(&req, "node1", "pong".into());
        assert_eq!(reply.envelope.requestid, req.envelope.requestid);
        assert_eq!(reply.envelope.agent, "discovery");
        let headers = TransportHeaders::for_reply_to(&TransportHeaders::default(), "node1");
        let bytes = encode_reply(&reply, headers.clone()).unwrap();
        let decoded = decode_reply(&bytes).unwrap();
        assert_eq!(decoded.reply, reply);
        assert_eq!(decoded.body(), b"pong");
        assert_eq!(decoded.transport.headers, headers);
        assert_eq!(decoded.transport.headers.reply_to, None);
        assert_eq!(decoded.secure.protocol, SECURE_REPLY_PROTOCOL);
    }

    #[test]
    fn hash_is_sha256_of_exact_message() {
        let reply = Reply::for_request_at(&request(), "node1", "pong".into(), 1_700_000_001);
        let bytes = encode_reply(&reply, TransportHeaders::default()).unwrap();
        let decoded = decode_reply(&bytes).unwrap();
        let expected = encode_base64(&Sha256::digest(decoded.secure.message.as_bytes()));
        assert_eq!(decoded.secure.hash, expected);
        assert_eq!(decoded.secure.message, reply.to_json().unwrap());
    }

    #[test]
    fn tampered_message_rejected() {
        let reply = Reply::for_request(&request(), "node1", "pong".into());
        let mut secure = SecureReply::new(reply.to_json().unwrap());
        secure.message = secure.message.replace("pong", "gnop");
        let bytes = Transport::new(&secure.to_vec().unwrap(), TransportHeaders::default())
            .to_vec()
            .unwrap();
        assert!(matches!(
            decode_reply(&bytes),
            Err(ProtocolError::HashMismatch { .. })
        ));
    }

    #[test]
    fn encoder_writes_what_encode_reply_writes() {
        let req = request();
        let mut encoder = ReplyEncoder::new();
        let federation = FederationHeader {
            req: req.envelope.requestid.clone(),
            reply_to: "mcollective.reply.x.y".into(),
            target: vec!["mcollective.node.a".into()],
        };
        let mut traced = TransportHeaders::for_request("r", "client");
        traced.push_seen_by(SeenByHop::new("nats://a:4222", "client \"q\"", ""));
        traced.push_seen_by(SeenByHop::new("b", "broker", "c"));
        let mut federated = traced.clone();
        federated.federation = Some(federation.clone());
        let bare_federation = TransportHeaders {
            federation: Some(FederationHeader::default()),
            ..TransportHeaders::default()
        };
        let bodies = [
            "pong",
            "",
            r#"{"action":"generate","statuscode":0,"statusmsg":"OK","data":{"message":"abc"}}"#,
            "ünï \u{1f389} \"\\\n\t\u{1}",
        ];
        for request_headers in [
            TransportHeaders::default(),
            traced,
            federated,
            bare_federation,
        ] {
            let template = ReplyHeadersTemplate::for_request(&request_headers).unwrap();
            for (i, body) in bodies.iter().enumerate() {
                let sender = format!("emu-{i} \"x\"");
                let reply = Reply::for_request_at(
                    &req,
                    sender.clone(),
                    body.to_string(),
                    1_700_000_000 + i as i64,
                );
                let mut headers = TransportHeaders::for_reply_to(&request_headers, &sender);
                headers.push_seen_by(SeenByHop::new("nats://s:4222", &sender, "nats://s:4222"));
                let expected = encode_reply(&reply, headers).unwrap();
                let fields = ReplyFields {
                    message: body,
                    requestid: &req.envelope.requestid,
                    senderid: &sender,
                    agent: &req.envelope.agent,
                    time: 1_700_000_000 + i as i64,
                };
                let got = encoder.encode(
                    &fields,
                    &template,
                    ("nats://s:4222", &sender, "nats://s:4222"),
                );
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
            }
        }
    }

    #[test]
    fn payload_template_copies_hops_byte_for_byte() {
        let req = request();
        let payload = r#"{"protocol":"choria:transport:1","data":"e30=","headers":{"reply-to":"r","seen-by":[ ["client.example.net", "nats://n1:4222"],["a\u0062","c",""] ]}}"#;
        let transport = Transport::from_slice(payload.as_bytes()).unwrap();
        assert_eq!(transport.headers.seen_by[0].parts().len(), 2);
        let template =
            ReplyHeadersTemplate::for_request_payload(payload.as_bytes(), &transport.headers)
                .unwrap();
        let fields = ReplyFields {
            message: "pong",
            requestid: &req.envelope.requestid,
            senderid: "n1",
            agent: "discovery",
            time: 1,
        };
        let out = ReplyEncoder::new().encode(&fields, &template, ("s", "n1", "s"));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#""seen-by":[["client.example.net", "nats://n1:4222"],["a\u0062","c",""],["s","n1","s"]]"#),
            "{text}"
        );
        let back = Transport::from_slice(text.as_bytes()).unwrap();
        assert_eq!(back.headers.seen_by.len(), 3);
        // Without hops in the payload the decoded headers are used.
        let none = ReplyHeadersTemplate::for_request_payload(b"{}", &transport.headers).unwrap();
        assert_eq!(
            none,
            ReplyHeadersTemplate::for_request(&transport.headers).unwrap()
        );
    }

    /// The worked example of research notes section 4, byte for byte.
    #[test]
    fn research_worked_example() {
        let reply_json = r#"{"protocol":"choria:reply:1","message":"{\"action\":\"generate\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{\"message\":\"01234567890123456789\"}}","envelope":{"requestid":"a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b","senderid":"1-emu1-3f9c2.choria.local","agent":"emulated0","time":1700000001}}"#;
        assert_eq!(
            reply_hash(reply_json),
            "U8M5GDzJb4eTB0SJ45IY1tFPx6KBSkPCokF4KXklDoM="
        );
        // Our serialisation of the same reply produces exactly those bytes.
        let reply = Reply::from_str_validated(reply_json).unwrap();
        assert_eq!(reply.to_json().unwrap(), reply_json);

        let request_json = r#"{"protocol":"choria:request:1","message":"{\"agent\":\"emulated0\",\"action\":\"generate\",\"data\":{\"size\":20}}","envelope":{"requestid":"a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b","senderid":"client.example.net","callerid":"choria=rip.mcollective","collective":"mcollective","agent":"emulated0","ttl":60,"time":1700000000,"filter":{"fact":[],"cf_class":[],"agent":["emulated0"],"identity":[],"compound":[]}}}"#;
        let request = super::super::Request::from_str_validated(request_json).unwrap();
        assert_eq!(request.to_json().unwrap(), request_json);
        let built = NewRequest {
            message: r#"{"agent":"emulated0","action":"generate","data":{"size":20}}"#.into(),
            senderid: "client.example.net".into(),
            callerid: "choria=rip.mcollective".into(),
            collective: "mcollective".into(),
            agent: "emulated0".into(),
            filter: super::super::Filter::with_agent("emulated0"),
            ttl: None,
            requestid: Some("a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b".into()),
            time: Some(1_700_000_000),
        }
        .build()
        .unwrap();
        assert_eq!(built, request);

        let transport = Transport::for_request(&request, TransportHeaders::default()).unwrap();
        // The research notes show the start of the base64 of the secure request.
        assert!(transport
            .data
            .starts_with("eyJwcm90b2NvbCI6ImNob3JpYTpzZWN1cmU6cmVxdWVzdDoxIiwi"));
        let back = Reply::for_request_at(
            &request,
            "1-emu1-3f9c2.choria.local",
            r#"{"action":"generate","statuscode":0,"statusmsg":"OK","data":{"message":"01234567890123456789"}}"#.into(),
            1_700_000_001,
        );
        assert_eq!(back, reply);
        assert_eq!(
            SecureReply::new(back.to_json().unwrap()).hash,
            "U8M5GDzJb4eTB0SJ45IY1tFPx6KBSkPCokF4KXklDoM="
        );
    }
}
