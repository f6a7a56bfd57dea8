//! Encoding a request through the onion and decoding it back.

use super::{
    decode_agent_payload, ProtocolError, Request, SecureRequest, Transport, TransportHeaders,
};
use std::borrow::Cow;

/// A request transport decoded down to the request, keeping every layer.
///
/// `secure.message` is the request JSON text exactly as received (what a signature covers).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The outer transport (headers, original `data`).
    pub transport: Transport,
    /// The secure request, with the exact inner JSON text in `message`.
    pub secure: SecureRequest,
    /// The parsed and validated request.
    pub request: Request,
}

impl DecodedRequest {
    /// The agent payload bytes (strict base64 decode if possible, else the raw message).
    pub fn payload(&self) -> Cow<'_, [u8]> {
        decode_agent_payload(&self.request.message)
    }

    /// The subject replies should be published to, if any.
    pub fn reply_to(&self) -> Option<&str> {
        self.transport.headers.reply_to.as_deref()
    }
}

impl Transport {
    /// Wraps `request` in an insecure secure request and a transport with `headers`.
    pub fn for_request(
        request: &Request,
        headers: TransportHeaders,
    ) -> Result<Transport, ProtocolError> {
        let secure = SecureRequest::insecure(request.to_json()?);
        Ok(Transport::new(&secure.to_vec()?, headers))
    }
}

/// Encodes `request` (insecure mode) as a NATS payload with transport `headers`.
pub fn encode_request(
    request: &Request,
    headers: TransportHeaders,
) -> Result<Vec<u8>, ProtocolError> {
    Transport::for_request(request, headers)?.to_vec()
}

/// Decodes and validates a request NATS payload, including the TTL window against `now`
/// (Unix seconds). Signatures are not verified.
///
/// Errors: [`ProtocolError::Json`], [`ProtocolError::Base64`], [`ProtocolError::WrongProtocol`],
/// validation errors, and [`ProtocolError::Expired`] outside `now ± ttl`.
pub fn decode_request(bytes: &[u8], now: i64) -> Result<DecodedRequest, ProtocolError> {
    let decoded = decode_request_unchecked_ttl(bytes)?;
    decoded.request.check_ttl(now)?;
    Ok(decoded)
}

/// Like [`decode_request`] without the TTL window check (adapters, tracing, tests).
pub fn decode_request_unchecked_ttl(bytes: &[u8]) -> Result<DecodedRequest, ProtocolError> {
    let transport = Transport::from_slice(bytes)?;
    let secure = SecureRequest::from_slice(&transport.payload()?)?;
    let request = Request::from_str_validated(&secure.message)?;
    Ok(DecodedRequest {
        transport,
        secure,
        request,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{
        subject, unix_now, FactFilter, Filter, NewRequest, SeenByHop, INSECURE,
        SECURE_REQUEST_PROTOCOL,
    };
    use super::*;

    pub(crate) fn sample(time: Option<i64>) -> Request {
        NewRequest {
            message: r#"{"agent":"emulated0","action":"generate","data":{"size":20}}"#.into(),
            senderid: "client.example.net".into(),
            callerid: "choria=rip.mcollective".into(),
            collective: "mcollective".into(),
            agent: "emulated0".into(),
            filter: Filter {
                fact: vec![FactFilter::new("country", "==", "mt")],
                ..Filter::with_agent("emulated0")
            },
            time,
            ..NewRequest::default()
        }
        .build()
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let request = sample(None);
        let reply_to = subject::reply(
            "mcollective",
            "choria=rip.mcollective",
            &request.envelope.requestid,
        );
        let mut headers = TransportHeaders::for_request(reply_to.clone(), "client.example.net");
        headers.push_seen_by(SeenByHop::new(
            "nats://n:4222",
            "client.example.net",
            "nats://n:4222",
        ));
        let bytes = encode_request(&request, headers.clone()).unwrap();

        let decoded = decode_request(&bytes, unix_now()).unwrap();
        assert_eq!(decoded.request, request);
        assert_eq!(decoded.transport.headers, headers);
        assert_eq!(decoded.reply_to(), Some(reply_to.as_str()));
        assert_eq!(decoded.secure.protocol, SECURE_REQUEST_PROTOCOL);
        assert_eq!(decoded.secure.signature, INSECURE);
        assert_eq!(decoded.secure.pubcert, INSECURE);
        assert!(decoded.secure.is_insecure());
        assert_eq!(decoded.secure.message, request.to_json().unwrap());
        assert_eq!(&*decoded.payload(), request.message.as_bytes());
    }

    #[test]
    fn inner_message_kept_exactly() {
        // Non-canonical spacing, key order and escapes must survive decoding untouched.
        let inner = "{ \"envelope\": {\"time\": TIME, \"ttl\": 60, \"agent\": \"x\", \"collective\": \"c\", \"callerid\": \"choria=a\", \"senderid\": \"s\", \"requestid\": \"A3F1C0D2E4B54C6F8A9B0C1D2E3F4A5B\", \"filter\": {}, \"extra\": 1}, \"message\": \"\\u0070ing\",  \"protocol\": \"choria:request:1\" }"
            .replace("TIME", &unix_now().to_string());
        let secure = SecureRequest::insecure(inner.clone());
        let bytes = Transport::new(&secure.to_vec().unwrap(), TransportHeaders::default())
            .to_vec()
            .unwrap();
        let decoded = decode_request(&bytes, unix_now()).unwrap();
        assert_eq!(decoded.secure.message, inner);
        assert_eq!(decoded.request.message, "ping");
    }

    #[test]
    fn expired_is_distinct() {
        let request = sample(Some(1_700_000_000));
        let bytes = encode_request(&request, TransportHeaders::default()).unwrap();
        assert!(matches!(
            decode_request(&bytes, 1_700_000_000 + 3600),
            Err(ProtocolError::Expired { .. })
        ));
        assert!(decode_request_unchecked_ttl(&bytes).is_ok());
    }

    #[test]
    fn line_wrapped_data_decodes() {
        let request = sample(None);
        let mut transport = Transport::for_request(&request, TransportHeaders::default()).unwrap();
        transport.data = transport
            .data
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let decoded = decode_request(&transport.to_vec().unwrap(), unix_now()).unwrap();
        assert_eq!(decoded.request, request);
    }

    #[test]
    fn wrong_inner_protocols() {
        let request = sample(None);
        let mut secure = SecureRequest::insecure(request.to_json().unwrap());
        secure.protocol = "choria:secure:reply:1".into();
        let bytes = Transport::new(&secure.to_vec().unwrap(), TransportHeaders::default())
            .to_vec()
            .unwrap();
        assert!(matches!(
            decode_request(&bytes, unix_now()),
            Err(ProtocolError::WrongProtocol { .. })
        ));
    }
}
