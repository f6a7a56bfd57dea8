//! Property tests: no decoder panics on random bytes or on random mutations of valid
//! messages at any layer of the onion, and the hand-written readers (the JSON [`Scanner`],
//! the string unescaper) give the same verdict and the same values as `serde_json` and the
//! serde-based onion decoders on every input. The client's reply decoder is checked against
//! [`decode_reply`] in choir-actors (`client::decode_fuzz_tests`).
//!
//! Case counts: 256 per property unless `PROPTEST_CASES` says otherwise
//! ([`cases`](crate::fuzzing::cases)).

use super::{
    check_ttl_window, classify_subject, decode_agent_payload, decode_base64, decode_reply,
    decode_request, decode_request_unchecked_ttl, encode_base64, encode_reply, encode_request,
    unix_now, FactFilter, Facts, Filter, NewRequest, NodeView, Reply, Request, RpcReply,
    RpcRequest, SecureReply, SecureRequest, Transport, TransportHeaders,
};
use crate::fuzzing::{cases, mutate, mutations};
use proptest::prelude::*;

fn sample_request() -> Request {
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

/// Feeds `bytes` to every decoder; results are ignored, only panics matter.
fn decode_everything(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let now = unix_now();
    let _ = Transport::from_slice(bytes).map(|t| t.payload());
    let _ = decode_request(bytes, now);
    let _ = decode_request_unchecked_ttl(bytes).map(|d| d.payload().len());
    let _ = decode_reply(bytes).map(|d| d.body().len());
    let _ = SecureRequest::from_slice(bytes);
    let _ = SecureReply::from_slice(bytes).map(|s| s.verify_hash());
    let _ = Request::from_str_validated(&text).map(|r| r.check_ttl(now));
    let _ = Reply::from_str_validated(&text);
    let _ = decode_base64(&text);
    let _ = decode_agent_payload(&text);
    let _ = RpcRequest::from_slice(bytes);
    let _ = RpcReply::from_slice(bytes);
    let _ = classify_subject(&text);
    let _ = serde_json::from_slice::<Filter>(bytes);
}

/// Wraps arbitrary secure-layer bytes in a valid transport.
fn wrap_secure(secure: &[u8]) -> Vec<u8> {
    Transport::new(secure, TransportHeaders::default())
        .to_vec()
        .unwrap()
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
        decode_everything(&wrap_secure(&bytes));
        let as_data = format!(
            r#"{{"protocol":"choria:transport:1","data":"{}","headers":{{}}}}"#,
            encode_base64(&bytes)
        );
        decode_everything(as_data.as_bytes());
    }

    #[test]
    fn mutated_request_never_panics(muts in mutations(8)) {
        let request = sample_request();
        let headers = TransportHeaders::for_request("mcollective.reply.x.y", "c");
        // Outer layer.
        let bytes = encode_request(&request, headers).unwrap();
        decode_everything(&mutate(bytes, &muts));
        // Secure layer.
        let secure = SecureRequest::insecure(request.to_json().unwrap()).to_vec().unwrap();
        decode_everything(&wrap_secure(&mutate(secure, &muts)));
        // Request layer.
        let inner = mutate(request.to_json().unwrap().into_bytes(), &muts);
        let secure = SecureRequest::insecure(String::from_utf8_lossy(&inner).into_owned());
        decode_everything(&wrap_secure(&secure.to_vec().unwrap()));
    }

    #[test]
    fn mutated_reply_never_panics(muts in mutations(8)) {
        let reply = Reply::for_request(&sample_request(), "n1", "pong".into());
        let bytes = encode_reply(&reply, TransportHeaders::default()).unwrap();
        decode_everything(&mutate(bytes, &muts));
        let secure = SecureReply::new(reply.to_json().unwrap()).to_vec().unwrap();
        decode_everything(&wrap_secure(&mutate(secure, &muts)));
        let inner = mutate(reply.to_json().unwrap().into_bytes(), &muts);
        let secure = SecureReply::new(String::from_utf8_lossy(&inner).into_owned());
        decode_everything(&wrap_secure(&secure.to_vec().unwrap()));
    }

    #[test]
    fn filters_never_panic(
        needle in ".{0,24}",
        op in prop_oneof![Just("==".to_owned()), Just("=~".to_owned()), Just("<=".to_owned()), ".{0,3}"],
        value in ".{0,24}",
        fact in "[a-z.0-9]{0,12}",
    ) {
        let facts = Facts::from_value(serde_json::json!({
            "a": "x", "n": 3, "b": true, "o": {"p": [1, "q"]}, "z": null
        }));
        let agents = vec!["rpcutil".to_owned()];
        let classes = vec!["apache".to_owned()];
        let filter = Filter {
            fact: vec![FactFilter::new(fact, op, value)],
            cf_class: vec![needle.clone()],
            agent: vec![needle.clone()],
            identity: vec![needle.clone(), format!("/{needle}/")],
            compound: vec![],
        };
        let _ = filter.matches(&NodeView {
            identity: &needle,
            agents: &agents,
            classes: &classes,
            facts: &facts,
        });
    }

    #[test]
    fn ttl_window_never_panics(time in any::<i64>(), ttl in any::<i64>(), now in any::<i64>()) {
        let _ = check_ttl_window("r", time, ttl, now);
    }
}

// === The JSON scanner and the string unescaper against serde_json ===

use super::{unescape_json_string, Scanner};
use crate::fuzzing::mutate_text;
use serde::de::IgnoredAny;

/// The scanner's verdict on `bytes` as one JSON text.
fn scanner_accepts(bytes: &[u8]) -> bool {
    let mut scan = Scanner::new(bytes);
    scan.value().is_ok() && scan.end().is_ok()
}

/// `serde_json`'s verdict on the same text. `from_slice` does not check the UTF-8 of strings it
/// skips, and the scanner does (every span it returns must be text), so the reference reads
/// the bytes as `&str` first.
fn serde_accepts(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|t| serde_json::from_str::<IgnoredAny>(t).is_ok())
}

/// An object read the way the decoders read one: keys in order, string values decoded
/// (`None` for a lone surrogate), other values as their raw text.
type ScannedObject = Vec<(Option<String>, Result<Option<String>, Vec<u8>>)>;

fn scan_object(bytes: &[u8]) -> Option<ScannedObject> {
    let mut scan = Scanner::new(bytes);
    let mut fields = scan.begin_object().ok()?;
    let mut out = Vec::new();
    while let Some(key) = scan.next_key(&mut fields).ok()? {
        let key = key.text().map(|k| k.into_owned());
        let mut peek = scan.clone();
        let value = match peek.string() {
            Ok(s) => {
                scan = peek;
                Ok(s.text().map(|t| t.into_owned()))
            }
            Err(_) => Err(scan.value().ok()?.to_vec()),
        };
        out.push((key, value));
    }
    scan.end().ok()?;
    Some(out)
}

/// Checks the scanner against serde_json on `bytes`: the same verdict on the whole text, and
/// for an object the same keys and string values (the last of a repeated key wins, as in a
/// `serde_json::Map`; raw values of other types re-parse to what serde_json read).
fn check_scanner(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ours = scanner_accepts(bytes);
    prop_assert_eq!(
        ours,
        serde_accepts(bytes),
        "verdict on {:?}",
        String::from_utf8_lossy(bytes)
    );
    let object = scan_object(bytes);
    let is_object = ours
        && bytes
            .iter()
            .find(|b| !b" \t\r\n".contains(b))
            .is_some_and(|b| *b == b'{');
    prop_assert_eq!(object.is_some(), is_object);
    if let (Some(object), Ok(map)) = (
        object,
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes),
    ) {
        let mut last = std::collections::BTreeMap::new();
        for (key, value) in object {
            let key = key.ok_or_else(|| TestCaseError::fail("serde_json read a lone surrogate"))?;
            last.insert(key, value);
        }
        prop_assert_eq!(last.len(), map.len());
        for (key, value) in last {
            let theirs = &map[&key];
            match value {
                Ok(text) => {
                    prop_assert_eq!(Some(theirs.clone()), text.map(serde_json::Value::from))
                }
                Err(raw) => {
                    let raw: serde_json::Value = serde_json::from_slice(&raw)
                        .map_err(|e| TestCaseError::fail(format!("raw span is not JSON: {e}")))?;
                    prop_assert_eq!(theirs, &raw);
                }
            }
        }
    }
    Ok(())
}

/// Checks the string readers against `serde_json::from_str::<String>` on `text`.
fn check_string(text: &str) -> Result<(), TestCaseError> {
    let theirs = serde_json::from_str::<String>(text).ok();
    // The unescaper takes exactly one literal; serde_json also allows whitespace around it.
    let bare = text.trim_matches([' ', '\t', '\r', '\n']).len() == text.len();
    let mut out = String::from("kept");
    let ours = unescape_json_string(text, &mut out).then(|| out.split_off(4));
    if bare {
        prop_assert_eq!(&ours, &theirs, "unescape_json_string({:?})", text);
    } else {
        prop_assert_eq!(ours, None);
    }
    let mut scan = Scanner::new(text.as_bytes());
    let scanned = scan.string().ok().filter(|_| scan.end().is_ok());
    // A lone surrogate scans (it stays as sent when copied) but does not decode.
    prop_assert_eq!(
        scanned.and_then(|s| s.text()).map(|t| t.into_owned()),
        theirs.clone()
    );
    let mut into = String::new();
    let mut scan = Scanner::new(text.as_bytes());
    let read = scan.string_into(&mut into).is_ok() && scan.end().is_ok();
    prop_assert_eq!(read.then_some(into), theirs);
    Ok(())
}

/// Valid JSON documents of every shape: scalars, escapes, nesting.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        "[\\x00-\\x7f]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-z\"\\\\é]{0,4}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Valid documents the decoders meet: every layer of a request and a reply.
fn onion_documents() -> Vec<Vec<u8>> {
    let request = sample_request();
    let reply = Reply::for_request(
        &request,
        "n\u{e9}1",
        r#"{"statuscode":0,"data":{"a":[1,2.5e3,null]}}"#.into(),
    );
    let mut headers = TransportHeaders::for_request("mcollective.reply.x.y", "c\"1");
    headers.push_seen_by(super::SeenByHop::new("a", "b\u{1}", "c"));
    vec![
        encode_request(&request, headers.clone()).unwrap(),
        encode_reply(&reply, headers).unwrap(),
        SecureRequest::insecure(request.to_json().unwrap())
            .to_vec()
            .unwrap(),
        SecureReply::new(reply.to_json().unwrap()).to_vec().unwrap(),
        request.to_json().unwrap().into_bytes(),
        reply.to_json().unwrap().into_bytes(),
        br#"{"a":"\ud83d\ude00\u00e9\n\/","b":[{"c":-0.5E-3},[],{}],"d":"\ud800"}"#.to_vec(),
    ]
}

use proptest::test_runner::TestCaseError;

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn scanner_agrees_with_serde_json_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_scanner(&bytes)?;
    }

    #[test]
    fn scanner_agrees_with_serde_json_on_mutated_documents(
        doc in proptest::sample::select(onion_documents()),
        muts in mutations(6),
    ) {
        check_scanner(&doc)?;
        check_scanner(&mutate(doc, &muts))?;
    }

    #[test]
    fn scanner_agrees_with_serde_json_on_mutated_values(
        value in json_value(),
        pretty in any::<bool>(),
        muts in mutations(4),
    ) {
        let text = if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        };
        check_scanner(&text)?;
        check_scanner(&mutate(text, &muts))?;
    }

    #[test]
    fn string_readers_agree_with_serde_json(
        s in "\\PC{0,16}|[\\x00-\\x7f]{0,16}",
        muts in mutations(4),
    ) {
        let literal = serde_json::to_string(&s).unwrap();
        check_string(&literal)?;
        let escaped = literal.replace('a', "\\u0061").replace('e', "\\ud83d\\ude00");
        check_string(&escaped)?;
        check_string(&mutate_text(&literal, &muts))?;
        check_string(&mutate_text(&escaped, &muts))?;
    }

    #[test]
    fn nesting_depth_limit_matches_serde_json_values(depth in 100usize..160, object in any::<bool>()) {
        // serde_json skips an ignored value without a depth limit but builds a `Value` only up
        // to its recursion limit; the scanner bounds every value at MAX_DEPTH, at least as
        // deep as a `Value` may be.
        let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
        let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let value = serde_json::from_str::<serde_json::Value>(&text).is_ok();
        let ours = scanner_accepts(text.as_bytes());
        prop_assert_eq!(ours, depth <= super::MAX_DEPTH);
        prop_assert!(ours || !value, "serde_json reads {} levels as a Value", depth);
        prop_assert!(serde_accepts(text.as_bytes()));
    }

    #[test]
    fn decoded_output_is_never_larger_than_the_input(
        doc in proptest::sample::select(onion_documents()),
        muts in mutations(4),
    ) {
        let bytes = mutate(doc, &muts);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(decoded) = decode_base64(&text) {
            prop_assert!(decoded.len() <= text.len());
        }
        prop_assert!(decode_agent_payload(&text).len() <= text.len());
        if let Ok(t) = Transport::from_slice(&bytes) {
            if let Ok(payload) = t.payload() {
                prop_assert!(payload.len() <= bytes.len());
            }
        }
        if let Ok(reply) = decode_reply(&bytes) {
            prop_assert!(reply.body().len() <= bytes.len());
        }
        if let Ok(request) = decode_request_unchecked_ttl(&bytes) {
            prop_assert!(request.payload().len() <= bytes.len());
        }
    }

    #[test]
    fn requests_with_arbitrary_fields_round_trip(
        message in "\\PC{1,40}",
        senderid in "\\PC{0,12}",
        callerid in "\\PC{1,12}",
        agent in "[\\x01-\\x7f]{1,8}|\\PC{1,8}",
        ttl in 30i64..100_000,
        time in any::<i64>(),
    ) {
        let request = NewRequest {
            message,
            senderid,
            callerid,
            collective: "mcollective".into(),
            agent,
            ttl: Some(ttl),
            time: Some(time),
            ..NewRequest::default()
        }
        .build()
        .unwrap();
        let bytes = encode_request(&request, TransportHeaders::for_request("c.reply.x", "s")).unwrap();
        let decoded = decode_request_unchecked_ttl(&bytes).unwrap();
        prop_assert_eq!(&decoded.request, &request);
        prop_assert_eq!(decoded.secure.message, request.to_json().unwrap());
        // The TTL window never panics on extreme times.
        let _ = decode_request(&bytes, time.wrapping_add(ttl));
    }

    #[test]
    fn a_decoded_mutated_request_re_encodes_to_itself(muts in mutations(8), layer in 0usize..2) {
        let request = sample_request();
        let headers = TransportHeaders::for_request("mcollective.reply.x.y", "c");
        let bytes = if layer == 0 {
            mutate(encode_request(&request, headers.clone()).unwrap(), &muts)
        } else {
            let inner = mutate_text(&request.to_json().unwrap(), &muts);
            Transport::new(&SecureRequest::insecure(inner).to_vec().unwrap(), headers.clone())
                .to_vec()
                .unwrap()
        };
        if let Ok(decoded) = decode_request_unchecked_ttl(&bytes) {
            let again = encode_request(&decoded.request, decoded.transport.headers.clone()).unwrap();
            prop_assert_eq!(decode_request_unchecked_ttl(&again).unwrap().request, decoded.request);
        }
    }
}
