//! Property tests of the broker's transform over mutated federated transports (several edits,
//! truncations, random bytes and JSON tokens spliced in), on top of the single-byte
//! mangling `transform.rs` checks against its owned-type oracle: no panic, and whatever the
//! broker forwards is a transport serde decoders read (lone surrogate escapes aside, which it
//! passes through as Go's decoder does), with the received `data`
//! untouched, one more `seen-by` hop and subjects it may publish to.

use super::transform::{transform_reply, transform_request, HopJson};
use crate::fuzzing::{cases, mutate, mutations};
use crate::protocol::subject::MAX_SUBJECT_LEN;
use crate::protocol::{
    classify_subject, encode_request, FederationHeader, NewRequest, Scanner, SeenByHop, Transport,
    TransportHeaders,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const COLLECTIVE: &str = "choria.federation.fuzz.collective";
const REPLY: &str =
    "mcollective.reply.37bdf08389145a56c13096c178802d3b.a3f1c0d2e4b54c6f8a9b0c1d2e3f4a5b";

fn federated(targets: &[&str], reply_to: Option<&str>, fed_reply_to: &str) -> Vec<u8> {
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
        "client \"x\"",
        "nats://fed:4222",
    ));
    headers.federation = Some(FederationHeader {
        req: request.envelope.requestid.clone(),
        reply_to: fed_reply_to.to_owned(),
        target: targets.iter().map(|t| t.to_string()).collect(),
    });
    encode_request(&request, headers).unwrap()
}

fn documents() -> Vec<Vec<u8>> {
    vec![
        // A request on its way in.
        federated(&["mcollective.node.n1", "mcollective.broadcast.agent.rpcutil"], Some(REPLY), ""),
        // A reply on its way back (the server copied the federation header).
        federated(&[], None, REPLY),
        br#"{"protocol":"choria:transport:1","data":"e30=\n","headers":{"reply-to":"c.reply.x","mc_sender":"s\u00e9","seen-by":[["a","b","c"]],"federation":{"req":"r","reply-to":"c.reply.y","target":["c.node.a"]},"x":[1,{"y":null}]}}"#.to_vec(),
    ]
}

/// What the broker forwarded must be what the protocol says it forwards.
fn check(payload: &[u8]) -> Result<(), TestCaseError> {
    let hop = SeenByHop::new("nats://in:4222", "fb \"1\"", "nats://out:4222");
    let hop_json = HopJson::new(&hop);
    for request in [true, false] {
        let out = if request {
            transform_request(payload, COLLECTIVE)
        } else {
            transform_reply(payload)
        };
        let Ok(out) = out else { continue };
        let bytes = out.encode(&hop_json);
        let input: Transport = match serde_json::from_slice(payload) {
            Ok(input) => input,
            // Like Go's decoder (and unlike serde_json) the broker lets a lone surrogate
            // escape through where it does not decode the string: an unknown key, `data`.
            // What it writes is still valid JSON.
            Err(e)
                if e.to_string().contains("surrogate") || e.to_string().contains("hex escape") =>
            {
                let mut scan = Scanner::new(&bytes);
                prop_assert!(scan.value().is_ok() && scan.end().is_ok());
                continue;
            }
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "forwarded what serde refuses ({e}): {}",
                    String::from_utf8_lossy(payload)
                )))
            }
        };
        let forwarded: Transport = serde_json::from_slice(&bytes).map_err(|e| {
            TestCaseError::fail(format!(
                "wrote a broken transport ({e}): {}",
                String::from_utf8_lossy(&bytes)
            ))
        })?;
        prop_assert_eq!(&forwarded.data, &input.data);
        prop_assert_eq!(forwarded.headers.seen_by.last(), Some(&hop));
        prop_assert_eq!(
            forwarded.headers.seen_by.len(),
            input.headers.seen_by.len() + 1
        );
        let targets: Vec<String> = out.targets().map(|t| t.into_owned()).collect();
        prop_assert!(!targets.is_empty());
        for target in &targets {
            let kind = classify_subject(target);
            if request {
                prop_assert!(kind.is_request_target(), "target {:?}", target);
            } else {
                prop_assert!(kind.is_reply(), "reply target {:?}", target);
            }
        }
        if request {
            prop_assert_eq!(forwarded.headers.reply_to.as_deref(), Some(COLLECTIVE));
            let fed = forwarded.headers.federation.as_ref();
            prop_assert_eq!(
                fed.map(|f| f.reply_to.as_str()),
                input.headers.reply_to.as_deref()
            );
            prop_assert!(fed.is_some_and(|f| f.target.is_empty()));
        } else {
            prop_assert!(forwarded.headers.federation.is_none());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_transports_are_forwarded_only_when_sound(
        doc in proptest::sample::select(documents()),
        muts in mutations(8),
    ) {
        check(&doc)?;
        check(&mutate(doc, &muts))?;
    }

    #[test]
    fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(transform_request(&bytes, COLLECTIVE).is_err());
        prop_assert!(transform_reply(&bytes).is_err());
    }

    #[test]
    fn arbitrary_subjects_never_escape_the_rules(
        targets in proptest::collection::vec("\\PC{0,20}|[a-z.*> ]{0,12}", 1..4),
        reply_to in "\\PC{0,20}|[a-z.*> ]{0,12}",
    ) {
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        check(&federated(&targets, Some(&reply_to), ""))?;
        check(&federated(&[], None, &reply_to))?;
    }
}

#[test]
fn subjects_too_long_to_publish_are_refused() {
    // Found by the soak: a federated request naming a 5 000-byte target was published, and
    // nats-server closed the broker's collective connection ("maximum control line exceeded").
    let long_target = format!("mcollective.node.{}", "n".repeat(5000));
    let long_reply = format!("mcollective.reply.{}", "r".repeat(5000));
    let reason = |r: Result<_, super::transform::Rejection>| r.map(drop).unwrap_err().reason();
    let request = federated(&[&long_target], Some(REPLY), "");
    assert_eq!(
        reason(transform_request(&request, COLLECTIVE)),
        "bad_target"
    );
    let request = federated(&["mcollective.node.a"], Some(&long_reply), "");
    assert_eq!(
        reason(transform_request(&request, COLLECTIVE)),
        "bad_reply_to"
    );
    let reply = federated(&[], None, &long_reply);
    assert_eq!(reason(transform_reply(&reply)), "bad_reply_to");
    for subject in [&long_target, &long_reply] {
        assert!(
            !classify_subject(subject).is_request_target() && !classify_subject(subject).is_reply()
        );
    }
    let at_limit = format!(
        "mcollective.node.{}",
        "n".repeat(MAX_SUBJECT_LEN - "mcollective.node.".len())
    );
    assert!(transform_request(&federated(&[&at_limit], Some(REPLY), ""), COLLECTIVE).is_ok());
}
