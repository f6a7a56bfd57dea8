//! Encoding a reply through the onion and decoding it back.

use super::{encode_base64, ProtocolError, Reply, SecureReply, Transport, TransportHeaders};
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
    use super::super::{NewRequest, SECURE_REPLY_PROTOCOL};
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
