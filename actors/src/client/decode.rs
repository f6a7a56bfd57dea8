//! The client's reply decoder: the same onion and checks as
//! [`decode_reply`](crate::protocol::decode_reply) (transport → secure reply with its hash
//! verified → reply → mcorpc), but reading only the fields the client uses, borrowing from the
//! payload wherever JSON allows and unescaping the nested layers into buffers a
//! [`ReplyDecoder`] reuses from one reply to the next: no allocation per reply.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::protocol::{
    decode_base64_into, is_valid_request_id, Scanner, SeenByHop, REPLY_PROTOCOL,
    SECURE_REPLY_PROTOCOL, TRANSPORT_PROTOCOL,
};

#[derive(Deserialize)]
struct SeenByOnly {
    #[serde(rename = "seen-by", default)]
    seen_by: Vec<SeenByHop>,
}

/// What the client keeps of a reply (owned; see [`ReplyDecoder::decode`] for the borrowing
/// form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyView {
    /// `envelope.requestid`.
    pub requestid: String,
    /// `envelope.senderid`.
    pub sender: String,
    /// The reply `message` (the agent's reply body).
    pub body: String,
    /// The transport's `seen-by` hops (only when asked for).
    pub seen_by: Vec<SeenByHop>,
}

/// A reply decoded by a [`ReplyDecoder`], borrowing from it and from the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedView<'d> {
    /// `envelope.requestid`.
    pub requestid: Cow<'d, str>,
    /// `envelope.senderid`.
    pub sender: Cow<'d, str>,
    /// The reply `message` (the agent's reply body).
    pub body: &'d str,
    /// The transport's `seen-by` hops (only when asked for).
    pub seen_by: Vec<SeenByHop>,
}

impl DecodedView<'_> {
    /// The owned form.
    pub fn into_owned(self) -> ReplyView {
        ReplyView {
            requestid: self.requestid.into_owned(),
            sender: self.sender.into_owned(),
            body: self.body.to_owned(),
            seen_by: self.seen_by,
        }
    }
}

/// Decodes reply transports into buffers it keeps between replies (one per request actor).
#[derive(Debug, Default)]
pub struct ReplyDecoder {
    /// The base64-decoded secure reply JSON.
    secure: Vec<u8>,
    /// The secure reply's `message`: the reply JSON text, unescaped.
    reply: String,
    /// The reply's `message`: the agent's reply body, unescaped.
    body: String,
}

impl ReplyDecoder {
    /// A decoder with empty buffers (they grow to the largest reply seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a reply transport, verifying the secure reply's hash; `None` when any layer is
    /// malformed, has the wrong protocol, or the hash does not match. The `seen-by` hops are
    /// read only when `with_seen_by`.
    ///
    /// Each layer is read with the protocol's strict JSON scanner: fields in any order,
    /// unknown fields skipped, a repeated known field refused (as `serde_json`'s derived
    /// structs do). Unlike those, a layer written as a JSON array instead of an object is
    /// refused.
    pub fn decode(&mut self, payload: &[u8], with_seen_by: bool) -> Option<DecodedView<'_>> {
        let Self {
            secure,
            reply,
            body,
        } = self;
        secure.clear();
        reply.clear();
        body.clear();

        // Transport: protocol, data, headers.
        let mut scan = Scanner::new(payload);
        let mut fields = scan.begin_object().ok()?;
        let (mut protocol, mut data, mut headers) = (None, None, None);
        while let Some(key) = scan.next_key(&mut fields).ok()? {
            if key.is("protocol") {
                once(&mut protocol, scan.string().ok()?)?;
            } else if key.is("data") {
                once(&mut data, scan.string().ok()?)?;
            } else if key.is("headers") {
                once(&mut headers, scan.value().ok()?)?;
            } else {
                scan.value().ok()?;
            }
        }
        scan.end().ok()?;
        protocol?.is(TRANSPORT_PROTOCOL).then_some(())?;
        decode_base64_into(&data?.bytes()?, secure).ok()?;
        let seen_by = match headers {
            Some(raw) if with_seen_by => serde_json::from_slice::<Option<SeenByOnly>>(raw)
                .ok()?
                .map(|h| h.seen_by)
                .unwrap_or_default(),
            _ => Vec::new(),
        };

        // Secure reply: protocol, message (unescaped into `reply`), hash.
        let hash = read_layer(secure, SECURE_REPLY_PROTOCOL, reply, "hash", |scan| {
            scan.string().ok()
        })?;
        (!reply.is_empty()).then_some(())?;
        hash_matches(reply, &hash.bytes()?).then_some(())?;

        // Reply: protocol, message (unescaped into `body`), envelope.
        let reply: &String = reply;
        let (requestid, sender) = read_layer(
            reply.as_bytes(),
            REPLY_PROTOCOL,
            body,
            "envelope",
            read_envelope,
        )?;
        is_valid_request_id(&requestid).then_some(())?;
        Some(DecodedView {
            requestid,
            sender,
            body: body.as_str(),
            seen_by,
        })
    }
}

/// Stores `value` in an empty `slot`; `None` when the field was already there.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.is_none().then(|| *slot = Some(value))
}

/// Reads one inner layer of the onion, `{"protocol":…,"message":…,<field>:…}`: fields in any
/// order, unknown ones skipped, a known one given twice refused. Checks `protocol`,
/// unescapes `message` into `message` and returns what `read` made of `field`.
fn read_layer<'a, T>(
    text: &'a [u8],
    protocol: &str,
    message: &mut String,
    field: &str,
    mut read: impl FnMut(&mut Scanner<'a>) -> Option<T>,
) -> Option<T> {
    let mut scan = Scanner::new(text);
    let mut fields = scan.begin_object().ok()?;
    let (mut found_protocol, mut found_message, mut value) = (None, None, None);
    while let Some(key) = scan.next_key(&mut fields).ok()? {
        if key.is("protocol") {
            once(&mut found_protocol, scan.string().ok()?)?;
        } else if key.is("message") {
            once(&mut found_message, ())?;
            scan.string_into(message).ok()?;
        } else if key.is(field) {
            once(&mut value, read(&mut scan)?)?;
        } else {
            scan.value().ok()?;
        }
    }
    scan.end().ok()?;
    found_protocol?.is(protocol).then_some(())?;
    found_message?;
    value
}

/// The `requestid` and `senderid` of a reply envelope (its other fields skipped).
fn read_envelope<'a>(scan: &mut Scanner<'a>) -> Option<(Cow<'a, str>, Cow<'a, str>)> {
    let mut fields = scan.begin_object().ok()?;
    let (mut requestid, mut senderid) = (None, None);
    while let Some(key) = scan.next_key(&mut fields).ok()? {
        if key.is("requestid") {
            once(&mut requestid, scan.string().ok()?.text()?)?;
        } else if key.is("senderid") {
            once(&mut senderid, scan.string().ok()?.text()?)?;
        } else {
            scan.value().ok()?;
        }
    }
    Some((requestid?, senderid?))
}

/// Whether `hash` is the standard base64 of the SHA-256 of `message`, without allocating.
fn hash_matches(message: &str, hash: &[u8]) -> bool {
    let digest = Sha256::digest(message.as_bytes());
    let mut encoded = [0u8; 44];
    match base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut encoded) {
        Ok(n) => encoded.get(..n) == Some(hash),
        Err(_) => false,
    }
}

/// Decodes a reply transport like [`ReplyDecoder::decode`], into owned strings (a decoder
/// per call: for tests and one-off use).
pub fn decode_reply_view(payload: &[u8], with_seen_by: bool) -> Option<ReplyView> {
    ReplyDecoder::new()
        .decode(payload, with_seen_by)
        .map(DecodedView::into_owned)
}

/// The statuscode of mcorpc reply `body`, without building its `data` (what a `serde_json`
/// struct with only a `u8` field `statuscode` would read, read with the protocol's scanner).
pub fn statuscode(body: &str) -> Option<u8> {
    let mut scan = Scanner::new(body.as_bytes());
    let mut fields = scan.begin_object().ok()?;
    let mut status = None;
    while let Some(key) = scan.next_key(&mut fields).ok()? {
        if key.is("statuscode") {
            once(&mut status, scan.u8_value().ok()?)?;
        } else {
            scan.value().ok()?;
        }
    }
    scan.end().ok()?;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        decode_reply, encode_reply, NewRequest, Reply, RpcReply, SecureReply, Transport,
        TransportHeaders,
    };
    use serde_json::json;

    fn encoded(body: &str) -> Vec<u8> {
        let request = NewRequest {
            message: "x".into(),
            senderid: "me".into(),
            callerid: "choria=me".into(),
            collective: "mcollective".into(),
            agent: "emulated0".into(),
            ..NewRequest::default()
        }
        .build()
        .unwrap();
        let reply = Reply::for_request(&request, "node \"1\"", body.to_owned());
        let mut headers = TransportHeaders::for_reply_to(&TransportHeaders::default(), "n");
        headers.push_seen_by(SeenByHop::new("a", "b", "c"));
        encode_reply(&reply, headers).unwrap()
    }

    #[test]
    fn agrees_with_the_protocol_decoder() {
        let body = RpcReply::ok("generate", json!({"message": "a\"b\\c\n"}))
            .to_json()
            .unwrap();
        let bytes = encoded(&body);
        let full = decode_reply(&bytes).unwrap();
        let view = decode_reply_view(&bytes, true).unwrap();
        assert_eq!(view.requestid, full.reply.envelope.requestid);
        assert_eq!(view.sender, "node \"1\"");
        assert_eq!(view.body, full.reply.message);
        assert_eq!(view.seen_by, full.transport.headers.seen_by);
        assert!(decode_reply_view(&bytes, false).unwrap().seen_by.is_empty());
        assert_eq!(statuscode(&view.body), Some(0));
        assert_eq!(statuscode("pong"), None);
    }

    #[test]
    fn rejects_what_the_protocol_decoder_rejects() {
        let body = "pong";
        let bytes = encoded(body);
        let mut t = Transport::from_slice(&bytes).unwrap();
        let mut secure: SecureReply = serde_json::from_slice(&t.payload().unwrap()).unwrap();
        secure.message = secure.message.replace("pong", "gnop");
        t.data = crate::protocol::encode_base64(&secure.to_vec().unwrap());
        let tampered = t.to_vec().unwrap();
        assert!(decode_reply(&tampered).is_err());
        assert!(decode_reply_view(&tampered, false).is_none());
        for bad in [
            &b"garbage"[..],
            b"{}",
            br#"{"protocol":"choria:transport:1","data":"!!"}"#,
        ] {
            assert!(decode_reply_view(bad, false).is_none());
        }
        let wrong = String::from_utf8(bytes)
            .unwrap()
            .replace("choria:transport:1", "x");
        assert!(decode_reply_view(wrong.as_bytes(), true).is_none());
    }

    #[test]
    fn statuscode_like_serde() {
        #[derive(Deserialize)]
        struct StatusOnly {
            statuscode: u8,
        }
        for body in [
            r#"{"statuscode":0,"statusmsg":"OK","data":{"statuscode":7}}"#,
            r#"{"data":[1,{"a":null}],"statuscode":4}"#,
            r#"{"statuscode":255}"#,
            r#"{"statuscode":256}"#,
            r#"{"statuscode":-1}"#,
            r#"{"statuscode":1.0}"#,
            r#"{"statuscode":"0"}"#,
            r#"{"statuscode":1,"statuscode":2}"#,
            r#"{"statusmsg":"no code"}"#,
            r#"{"statuscode":3} trailing"#,
            "pong",
            "",
        ] {
            let serde = serde_json::from_str::<StatusOnly>(body)
                .ok()
                .map(|s| s.statuscode);
            assert_eq!(statuscode(body), serde, "{body}");
        }
    }

    #[test]
    fn one_decoder_many_replies() {
        let mut decoder = ReplyDecoder::new();
        let bodies = [
            "pong",
            "",
            "{\"statuscode\":0}",
            "ünï\u{1f389}\"\\\n",
            "pong",
        ];
        for (i, body) in bodies.iter().enumerate() {
            let bytes = encoded(body);
            let full = decode_reply(&bytes).unwrap();
            assert!(decoder.decode(b"{\"protocol\":", i % 2 == 0).is_none());
            let view = decoder.decode(&bytes, i % 2 == 0).unwrap();
            assert_eq!(view.body, *body);
            assert_eq!(view.requestid, full.reply.envelope.requestid);
            assert_eq!(view.sender, "node \"1\"");
            assert_eq!(view.seen_by.len(), if i % 2 == 0 { 1 } else { 0 });
        }
    }

    #[test]
    fn line_wrapped_base64_is_accepted() {
        let bytes = encoded("pong");
        let mut t = Transport::from_slice(&bytes).unwrap();
        t.data = t
            .data
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let view = decode_reply_view(&t.to_vec().unwrap(), false).unwrap();
        assert_eq!(view.body, "pong");
    }
}
