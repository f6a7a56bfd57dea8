//! Property test: the client's reply decoder ([`decode_reply_view`]) reads what the protocol's
//! [`decode_reply`] reads, on random mutations of replies at every layer of the onion.
//!
//! Case counts: 256 per property unless `PROPTEST_CASES` says otherwise
//! ([`cases`](crate::fuzzing::cases)).

use super::decode::decode_reply_view;
use crate::fuzzing::{cases, mutate, mutate_text, mutations};
use crate::protocol::{
    decode_base64, decode_reply, encode_reply, Filter, NewRequest, Reply, SecureReply, SeenByHop,
    Transport, TransportHeaders, REPLY_PROTOCOL, TRANSPORT_PROTOCOL,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn sample_request() -> crate::protocol::Request {
    NewRequest {
        message: r#"{"agent":"emulated0","action":"generate","data":{"size":20}}"#.into(),
        senderid: "client.example.net".into(),
        callerid: "choria=rip.mcollective".into(),
        collective: "mcollective".into(),
        agent: "emulated0".into(),
        filter: Filter::with_agent("emulated0"),
        ..NewRequest::default()
    }
    .build()
    .unwrap()
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn client_reply_decoder_agrees_with_the_protocol_decoder(
        layer in 0usize..3,
        muts in mutations(6),
        body in "\\PC{0,24}",
    ) {
        let reply = Reply::for_request(&sample_request(), "n1", body);
        let mut headers = TransportHeaders::for_reply_to(&TransportHeaders::default(), "n1");
        headers.push_seen_by(SeenByHop::new("a", "b", "c"));
        let bytes = match layer {
            0 => mutate(encode_reply(&reply, headers).unwrap(), &muts),
            1 => {
                let secure = mutate(SecureReply::new(reply.to_json().unwrap()).to_vec().unwrap(), &muts);
                Transport::new(&secure, headers).to_vec().unwrap()
            }
            _ => {
                // The hash is taken over the mutated text, so the reply layer is reached.
                let inner = mutate_text(&reply.to_json().unwrap(), &muts);
                let secure = SecureReply::new(inner).to_vec().unwrap();
                Transport::new(&secure, headers).to_vec().unwrap()
            }
        };
        check_reply_decoders(&bytes)?;
    }
}

/// The client's reply decoder against [`decode_reply`]: whatever the protocol decoder accepts,
/// the client reads the same; whatever the client accepts has a valid secure layer (hash
/// included) and a reply layer serde reads with the same values. The client does not read the
/// envelope's `agent` and `time` nor any header but `seen-by`, so it may accept a reply whose
/// other fields the protocol decoder refuses; like Go's decoder it lets a lone surrogate escape
/// through in what it skips (serde_json refuses one in any key).
fn check_reply_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    let client = decode_reply_view(bytes, true);
    if let Ok(full) = decode_reply(bytes) {
        let view = client.clone().ok_or_else(|| {
            TestCaseError::fail(format!("client refused {}", String::from_utf8_lossy(bytes)))
        })?;
        prop_assert_eq!(&view.requestid, &full.reply.envelope.requestid);
        prop_assert_eq!(&view.sender, &full.reply.envelope.senderid);
        prop_assert_eq!(view.body.as_bytes(), full.body());
        prop_assert_eq!(&view.seen_by, &full.transport.headers.seen_by);
    }
    if let Some(view) = client {
        #[derive(serde::Deserialize)]
        struct Loose {
            protocol: String,
            data: String,
        }
        #[derive(serde::Deserialize)]
        struct LooseEnvelope {
            requestid: String,
            senderid: String,
        }
        #[derive(serde::Deserialize)]
        struct LooseReply {
            protocol: String,
            message: String,
            envelope: LooseEnvelope,
        }
        let outer: Loose = serde_json::from_slice(bytes)
            .map_err(|e| TestCaseError::fail(format!("client accepted a bad transport: {e}")))?;
        prop_assert_eq!(outer.protocol, TRANSPORT_PROTOCOL);
        let secure = SecureReply::from_slice(&decode_base64(&outer.data).unwrap())
            .map_err(|e| TestCaseError::fail(format!("client accepted a bad secure reply: {e}")))?;
        prop_assert!(secure.verify_hash().is_ok());
        let reply: LooseReply = match serde_json::from_str(&secure.message) {
            Ok(reply) => reply,
            // A lone surrogate escape in a key or value the client skips: refused by serde
            // (keys are decoded), accepted as Go's decoder accepts it.
            Err(e)
                if e.to_string().contains("surrogate") || e.to_string().contains("hex escape") =>
            {
                return Ok(())
            }
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "client accepted a bad reply: {e}"
                )))
            }
        };
        prop_assert_eq!(reply.protocol, REPLY_PROTOCOL);
        prop_assert_eq!(reply.message, view.body);
        prop_assert_eq!(reply.envelope.requestid, view.requestid);
        prop_assert_eq!(reply.envelope.senderid, view.sender);
    }
    Ok(())
}
