//! The client's reply decoder: the same onion and checks as
//! [`decode_reply`](crate::protocol::decode_reply) (transport → secure reply with its hash
//! verified → reply → mcorpc), but borrowing from the payload wherever JSON allows and reading
//! only the fields the client uses, so that one core keeps up with tens of thousands of
//! replies per second.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::protocol::{
    decode_base64, is_valid_request_id, reply_hash, SeenByHop, REPLY_PROTOCOL,
    SECURE_REPLY_PROTOCOL, TRANSPORT_PROTOCOL,
};

#[derive(Deserialize)]
struct TransportRef<'a, H> {
    #[serde(borrow)]
    protocol: Cow<'a, str>,
    #[serde(borrow)]
    data: Cow<'a, str>,
    headers: Option<H>,
}

#[derive(Deserialize)]
struct SeenByOnly {
    #[serde(rename = "seen-by", default)]
    seen_by: Vec<SeenByHop>,
}

#[derive(Deserialize)]
struct SecureReplyRef<'a> {
    #[serde(borrow)]
    protocol: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ReplyRef<'a> {
    #[serde(borrow)]
    protocol: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(borrow)]
    envelope: EnvelopeRef<'a>,
}

#[derive(Deserialize)]
struct EnvelopeRef<'a> {
    #[serde(borrow)]
    requestid: Cow<'a, str>,
    #[serde(borrow)]
    senderid: Cow<'a, str>,
}

/// What the client keeps of a reply.
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

/// Decodes a reply transport, verifying the secure reply's hash; `None` when any layer is
/// malformed, has the wrong protocol, or the hash does not match. The `seen-by` hops are
/// read only when `with_seen_by`.
pub fn decode_reply_view(payload: &[u8], with_seen_by: bool) -> Option<ReplyView> {
    let (data, seen_by) = if with_seen_by {
        let t: TransportRef<'_, SeenByOnly> = serde_json::from_slice(payload).ok()?;
        (t.protocol == TRANSPORT_PROTOCOL).then_some(())?;
        (
            decode_base64(&t.data).ok()?,
            t.headers.map(|h| h.seen_by).unwrap_or_default(),
        )
    } else {
        let t: TransportRef<'_, IgnoredAny> = serde_json::from_slice(payload).ok()?;
        (t.protocol == TRANSPORT_PROTOCOL).then_some(())?;
        (decode_base64(&t.data).ok()?, Vec::new())
    };
    let secure: SecureReplyRef<'_> = serde_json::from_slice(&data).ok()?;
    (secure.protocol == SECURE_REPLY_PROTOCOL).then_some(())?;
    (reply_hash(&secure.message) == secure.hash).then_some(())?;
    let reply: ReplyRef<'_> = serde_json::from_str(&secure.message).ok()?;
    (reply.protocol == REPLY_PROTOCOL).then_some(())?;
    is_valid_request_id(&reply.envelope.requestid).then_some(())?;
    Some(ReplyView {
        requestid: reply.envelope.requestid.into_owned(),
        sender: reply.envelope.senderid.into_owned(),
        body: reply.message.into_owned(),
        seen_by,
    })
}

/// Only the statuscode of an mcorpc reply body.
#[derive(Deserialize)]
pub struct StatusOnly {
    /// The mcorpc statuscode.
    pub statuscode: u8,
}

/// The statuscode of mcorpc reply `body`, without building its `data`.
pub fn statuscode(body: &str) -> Option<u8> {
    serde_json::from_str::<StatusOnly>(body)
        .ok()
        .map(|s| s.statuscode)
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
}
