//! Property tests of the adapter's decoder and transform over what arrives on its subject:
//! mutated Choria requests, arbitrary senders and random bytes. No panic; the same verdict
//! as the protocol's request decoder (the reference); an accepted message becomes an output
//! document with the request's own values, published to a valid subject whatever the sender
//! identity holds.

use async_nats::HeaderMap;
use bytes::Bytes;

use super::output::{AdapterOutput, OUTPUT_PROTOCOL};
use super::settings::{AdapterProtocol, AdapterSettings};
use super::subject::{validate_subscribe_subject, SubjectTemplate};
use super::transform::Transformer;
use crate::fuzzing::{cases, mutate, mutate_text, mutations};
use crate::protocol::subject::MAX_SUBJECT_LEN;
use crate::protocol::{
    decode_request_unchecked_ttl, encode_request, NewRequest, SecureRequest, Transport,
    TransportHeaders,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn transformer(template: Option<&str>) -> Transformer {
    let mut settings = AdapterSettings::new("reg", "region", "mcollective.>", "REG");
    settings.protocol = AdapterProtocol::Choria;
    settings.check_ttl = false;
    settings.stream_subject = template.map(|t| SubjectTemplate::parse(t).unwrap());
    Transformer::new(&settings)
}

fn registration(sender: &str, time: i64) -> NewRequest {
    NewRequest {
        message: format!(
            r#"{{"identity":{},"facts":{{"os":"linux"}}}}"#,
            serde_json::json!(sender)
        ),
        senderid: sender.into(),
        callerid: format!("choria={sender}"),
        collective: "mcollective".into(),
        agent: "registration".into(),
        time: Some(time),
        ..NewRequest::default()
    }
}

fn check(payload: &[u8]) -> Result<(), TestCaseError> {
    let reference = decode_request_unchecked_ttl(payload);
    for template in [None, Some("registration.%s"), Some("reg.%s.in")] {
        let got = transformer(template).transform(
            "mcollective.broadcast.agent.registration",
            None,
            &Bytes::copy_from_slice(payload),
            0,
        );
        if let (Err(e), Ok(decoded)) = (&got, &reference) {
            // Refused only for a stream subject too long to publish.
            prop_assert_eq!(e.reason(), "subject");
            prop_assert!(decoded.request.envelope.senderid.len() > MAX_SUBJECT_LEN / 2);
            continue;
        }
        prop_assert_eq!(got.is_ok(), reference.is_ok(), "template {:?}", template);
        let (Ok(out), Ok(decoded)) = (got, reference.as_ref()) else {
            continue;
        };
        let request = &decoded.request;
        let doc: AdapterOutput = serde_json::from_slice(&out.payload)
            .map_err(|e| TestCaseError::fail(format!("output is not the output document: {e}")))?;
        prop_assert_eq!(doc.protocol, OUTPUT_PROTOCOL);
        prop_assert_eq!(&doc.data, &request.message);
        prop_assert_eq!(&doc.sender, &request.envelope.senderid);
        prop_assert_eq!(&doc.requestid, &request.envelope.requestid);
        prop_assert_eq!(out.msg_id(), Some(request.envelope.requestid.as_str()));
        prop_assert!(
            validate_subscribe_subject(&out.subject).is_ok(),
            "subject {:?}",
            out.subject
        );
        prop_assert!(
            !out.subject.split('.').any(|t| t == "*" || t == ">"),
            "wildcard in {:?}",
            out.subject
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_requests_get_the_reference_verdict(
        sender in "[a-z0-9.-]{1,24}",
        time in any::<i64>(),
        layer in 0usize..3,
        muts in mutations(8),
    ) {
        let request = registration(&sender, time).build().unwrap();
        let headers = TransportHeaders::for_request("mcollective.reply.x.y", &sender);
        let payload = match layer {
            0 => mutate(encode_request(&request, headers).unwrap(), &muts),
            1 => {
                let secure = SecureRequest::insecure(request.to_json().unwrap()).to_vec().unwrap();
                Transport::new(&mutate(secure, &muts), headers).to_vec().unwrap()
            }
            _ => {
                let inner = mutate_text(&request.to_json().unwrap(), &muts);
                Transport::new(&SecureRequest::insecure(inner).to_vec().unwrap(), headers)
                    .to_vec()
                    .unwrap()
            }
        };
        check(&payload)?;
    }

    #[test]
    fn any_sender_identity_makes_a_valid_subject(
        sender in "\\PC{0,32}|[\\x00-\\x7f]{0,32}|[.*> \\t]{0,8}|x{1000,1100}",
        time in any::<i64>(),
    ) {
        if let Ok(request) = registration(&sender, time).build() {
            check(&encode_request(&request, TransportHeaders::default()).unwrap())?;
        }
    }

    #[test]
    fn random_bytes_are_refused_and_raw_mode_copies_them(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        subject in "[a-z]{1,8}(\\.[a-z]{1,8}){0,3}",
    ) {
        check(&bytes)?;
        let mut settings = AdapterSettings::new("raw", "region", "in.>", "RAW");
        settings.protocol = AdapterProtocol::Raw;
        let payload = Bytes::from(bytes);
        let mut headers = HeaderMap::new();
        headers.insert("X-Fuzz", "1");
        let out = Transformer::new(&settings).transform(&subject, Some(&headers), &payload, 0).unwrap();
        prop_assert_eq!(out.payload, payload);
        prop_assert_eq!(out.subject, subject);
    }
}

#[test]
fn a_request_from_after_the_year_9999_is_transformed() {
    // Found by this pass (sender "", time 253402300800): the output's RFC 3339 time could not
    // be written and the worker panicked, with `check_ttl = false`.
    for time in [253_402_300_800, i64::MAX] {
        let request = registration("n1", time).build().unwrap();
        let payload = Bytes::from(encode_request(&request, TransportHeaders::default()).unwrap());
        let out = transformer(Some("registration.%s"))
            .transform(
                "mcollective.broadcast.agent.registration",
                None,
                &payload,
                0,
            )
            .unwrap();
        let doc: AdapterOutput = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(doc.time, "9999-12-31T23:59:59Z");
    }
}

#[test]
fn a_sender_too_long_for_a_subject_is_dropped_not_published() {
    // Found by the soak: a registration whose sender made a 5 000-byte stream subject was
    // published, nats-server closed the region connection ("maximum control line exceeded"),
    // and every retry closed it again, losing what the other workers had in flight.
    let request = registration(&"x".repeat(5000), 1_700_000_000)
        .build()
        .unwrap();
    let payload = Bytes::from(encode_request(&request, TransportHeaders::default()).unwrap());
    let subject = "mcollective.broadcast.agent.registration";
    let err = transformer(Some("registration.%s"))
        .transform(subject, None, &payload, 0)
        .unwrap_err();
    assert_eq!(err.reason(), "subject");
    // Without `%s` the subject does not depend on the sender.
    assert!(transformer(None)
        .transform(subject, None, &payload, 0)
        .is_ok());
    let fits = registration(&"x".repeat(MAX_SUBJECT_LEN - "registration.".len()), 0)
        .build()
        .unwrap();
    let payload = Bytes::from(encode_request(&fits, TransportHeaders::default()).unwrap());
    assert!(transformer(Some("registration.%s"))
        .transform(subject, None, &payload, 0)
        .is_ok());
}
