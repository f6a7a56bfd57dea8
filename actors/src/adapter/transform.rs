//! The plain-Rust core of a worker: one incoming NATS message in, one stream message out (or a
//! counted rejection).

use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

use super::output::{rfc3339, AdapterOutput, OUTPUT_PROTOCOL};
use super::settings::{AdapterProtocol, AdapterSettings};
use super::subject::SubjectTemplate;
use crate::protocol::subject::MAX_SUBJECT_LEN;
use crate::protocol::{decode_request, decode_request_unchecked_ttl, ProtocolError};

/// Why an incoming message was dropped before publishing.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Not a valid Choria v1 request.
    #[error("not a choria request")]
    Decode(#[from] ProtocolError),
    /// The output could not be serialised.
    #[error("cannot encode the output")]
    Encode(#[from] serde_json::Error),
    /// The stream subject rendered from the sender is longer than
    /// [`MAX_SUBJECT_LEN`]: publishing it would make the server close the connection.
    #[error("stream subject of {0} bytes is too long")]
    SubjectTooLong(usize),
}

impl Rejection {
    /// The `reason` label it is counted under: `json`, `base64`, `protocol`, `invalid`,
    /// `expired`, `encode` or `subject`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Decode(ProtocolError::Json { .. }) => "json",
            Self::Decode(ProtocolError::Base64(_)) => "base64",
            Self::Decode(ProtocolError::WrongProtocol { .. }) => "protocol",
            Self::Decode(ProtocolError::Expired { .. }) => "expired",
            Self::Decode(_) => "invalid",
            Self::Encode(_) => "encode",
            Self::SubjectTooLong(_) => "subject",
        }
    }
}

/// A message ready for the stream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The subject to publish to.
    pub subject: String,
    /// Headers (raw: the incoming ones; choria: `Nats-Msg-Id`).
    pub headers: Option<HeaderMap>,
    /// The payload.
    pub payload: Bytes,
}

impl Outgoing {
    /// The JetStream publish of this message.
    pub fn publish(&self) -> PublishMessage {
        let publish = PublishMessage::build().payload(self.payload.clone());
        match &self.headers {
            Some(headers) => publish.headers(headers.clone()),
            None => publish,
        }
    }

    /// The `Nats-Msg-Id` header, if any.
    pub fn msg_id(&self) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.get(NATS_MESSAGE_ID))
            .map(|v| v.as_str())
    }
}

/// Turns incoming messages into stream messages for one adapter.
#[derive(Debug, Clone)]
pub struct Transformer {
    protocol: AdapterProtocol,
    stream_subject: Option<SubjectTemplate>,
    check_ttl: bool,
}

impl Transformer {
    /// The transformer of `settings`.
    pub fn new(settings: &AdapterSettings) -> Self {
        Self {
            protocol: settings.protocol,
            stream_subject: settings.stream_subject.clone(),
            check_ttl: settings.check_ttl,
        }
    }

    fn target(&self, subject: &str, sender: &str) -> String {
        match &self.stream_subject {
            Some(template) => template.render(sender),
            None => subject.to_owned(),
        }
    }

    /// Transforms a message that arrived on `subject`; `now` is Unix seconds (TTL check).
    pub fn transform(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &Bytes,
        now: i64,
    ) -> Result<Outgoing, Rejection> {
        match self.protocol {
            AdapterProtocol::Raw => Ok(Outgoing {
                subject: self.target(subject, ""),
                headers: headers.cloned(),
                payload: payload.clone(),
            }),
            AdapterProtocol::Choria => {
                let decoded = if self.check_ttl {
                    decode_request(payload, now)?
                } else {
                    decode_request_unchecked_ttl(payload)?
                };
                let request = decoded.request;
                let envelope = request.envelope;
                let out = AdapterOutput {
                    protocol: OUTPUT_PROTOCOL.to_owned(),
                    data: request.message,
                    time: rfc3339(envelope.time),
                    sender: envelope.senderid,
                    requestid: envelope.requestid,
                };
                let target = self.target(subject, &out.sender);
                if target.len() > MAX_SUBJECT_LEN {
                    return Err(Rejection::SubjectTooLong(target.len()));
                }
                let mut headers = HeaderMap::new();
                headers.insert(NATS_MESSAGE_ID, out.requestid.as_str());
                Ok(Outgoing {
                    subject: target,
                    payload: Bytes::from(out.to_vec()?),
                    headers: Some(headers),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        encode_base64, encode_request, unix_now, NewRequest, Transport, TransportHeaders,
    };

    fn registration(sender: &str, time: Option<i64>) -> (String, Bytes) {
        let request = NewRequest {
            message: format!(r#"{{"identity":"{sender}","facts":{{"os":"linux"}}}}"#),
            senderid: sender.into(),
            callerid: format!("choria={sender}"),
            collective: "mcollective".into(),
            agent: "registration".into(),
            time,
            ..NewRequest::default()
        }
        .build()
        .unwrap();
        let bytes = encode_request(&request, TransportHeaders::default()).unwrap();
        (request.envelope.requestid, Bytes::from(bytes))
    }

    fn choria(template: Option<&str>) -> Transformer {
        let mut settings = AdapterSettings::new("reg", "region", "mcollective.>", "REG");
        settings.protocol = AdapterProtocol::Choria;
        settings.stream_subject = template.map(|t| SubjectTemplate::parse(t).unwrap());
        Transformer::new(&settings)
    }

    #[test]
    fn choria_request_becomes_adapter_output() {
        let now = unix_now();
        let (id, payload) = registration("n1.example.net", Some(now));
        let out = choria(Some("registration.%s"))
            .transform(
                "mcollective.broadcast.agent.registration",
                None,
                &payload,
                now,
            )
            .unwrap();
        assert_eq!(out.subject, "registration.n1.example.net");
        assert_eq!(out.msg_id(), Some(id.as_str()));
        let parsed: AdapterOutput = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(parsed.protocol, OUTPUT_PROTOCOL);
        assert_eq!(parsed.sender, "n1.example.net");
        assert_eq!(parsed.requestid, id);
        assert_eq!(parsed.time, rfc3339(now));
        let data: serde_json::Value = serde_json::from_str(&parsed.data).unwrap();
        assert_eq!(data["facts"]["os"], "linux");
    }

    #[test]
    fn original_subject_is_kept_without_template() {
        let now = unix_now();
        let (_, payload) = registration("n1", Some(now));
        let out = choria(None).transform("a.b", None, &payload, now).unwrap();
        assert_eq!(out.subject, "a.b");
    }

    #[test]
    fn rejections_are_classified() {
        let t = choria(None);
        let now = unix_now();
        let reason = |payload: &[u8]| {
            t.transform("s", None, &Bytes::copy_from_slice(payload), now)
                .unwrap_err()
                .reason()
        };
        assert_eq!(reason(b"garbage"), "json");
        assert_eq!(
            reason(br#"{"protocol":"choria:transport:1","data":"!!!","headers":{}}"#),
            "base64"
        );
        let wrong = Transport::new(b"{\"protocol\":\"x\"}", TransportHeaders::default());
        let wrong = wrong.to_vec().unwrap();
        assert!(["json", "protocol"].contains(&reason(&wrong)));
        let secure = r#"{"protocol":"choria:secure:request:1","message":"{}","signature":"insecure","pubcert":"insecure"}"#;
        let bad_inner = format!(
            r#"{{"protocol":"choria:transport:1","data":"{}","headers":{{}}}}"#,
            encode_base64(secure.as_bytes())
        );
        assert_eq!(reason(bad_inner.as_bytes()), "json");
        let (_, old) = registration("n1", Some(now - 3600));
        assert_eq!(reason(&old), "expired");
    }

    #[test]
    fn expired_requests_pass_without_ttl_check() {
        let mut settings = AdapterSettings::new("reg", "region", "x", "REG");
        settings.protocol = AdapterProtocol::Choria;
        settings.check_ttl = false;
        let (_, old) = registration("n1", Some(unix_now() - 3600));
        assert!(Transformer::new(&settings)
            .transform("x", None, &old, unix_now())
            .is_ok());
    }

    #[test]
    fn raw_copies_payload_and_headers() {
        let mut settings = AdapterSettings::new("raw", "region", "in.>", "RAW");
        settings.stream_subject = Some(SubjectTemplate::parse("out.all").unwrap());
        let mut headers = HeaderMap::new();
        headers.insert("X-Test", "yes");
        let payload = Bytes::from_static(b"not json at all");
        let out = Transformer::new(&settings)
            .transform("in.x", Some(&headers), &payload, 0)
            .unwrap();
        assert_eq!(out.subject, "out.all");
        assert_eq!(out.payload, payload);
        assert_eq!(
            out.headers.unwrap().get("X-Test").map(|v| v.as_str()),
            Some("yes")
        );
    }
}
