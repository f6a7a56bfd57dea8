//! Property tests: no decoder panics on random bytes or on random mutations of valid
//! messages at any layer of the onion.

use super::{
    check_ttl_window, classify_subject, decode_agent_payload, decode_base64, decode_reply,
    decode_request, decode_request_unchecked_ttl, encode_base64, encode_reply, encode_request,
    unix_now, FactFilter, Facts, Filter, NewRequest, NodeView, Reply, Request, RpcReply,
    RpcRequest, SecureReply, SecureRequest, Transport, TransportHeaders,
};
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

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Flip(i, b) if len > 0 => bytes[i % len] ^= b.max(1),
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
    bytes
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
    fn mutated_request_never_panics(muts in proptest::collection::vec(mutation(), 1..8)) {
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
    fn mutated_reply_never_panics(muts in proptest::collection::vec(mutation(), 1..8)) {
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
