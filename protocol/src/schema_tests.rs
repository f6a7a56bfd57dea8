//! Validates what we emit against the go-choria v1 JSON Schemas (what a Go server validates
//! against), and asserts the key wire facts directly as well.
//!
//! The schema directory is `$CHOIR_PROTOCOL_SCHEMAS` if set, else the first
//! `shared/protocol-schemas/go-choria/internal/fs/schemas/choria/protocol/v1` found above the
//! crate directory. If none exists the schema test fails: CI always has the schemas beside the
//! checkout, and a skipped check would prove nothing.

use super::{
    subject, FactFilter, FederationHeader, Filter, NewRequest, Reply, SecureReply, SecureRequest,
    SeenByHop, Transport, TransportHeaders,
};
use serde_json::Value;
use std::path::PathBuf;

const SCHEMA_SUBDIR: &str =
    "shared/protocol-schemas/go-choria/internal/fs/schemas/choria/protocol/v1";

/// The schema directory; panics (fails the test) when it is missing.
pub(crate) fn schema_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHOIR_PROTOCOL_SCHEMAS") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "CHOIR_PROTOCOL_SCHEMAS={} is not a directory",
            dir.display()
        );
        return dir;
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|a| a.join(SCHEMA_SUBDIR))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "{SCHEMA_SUBDIR} not found above {}: check out shared/ beside the repository \
                 or set CHOIR_PROTOCOL_SCHEMAS",
                manifest.display()
            )
        })
}

/// Every layer of one federated request and its reply, as JSON values.
struct Layers {
    transport: Value,
    secure_request: Value,
    request: Value,
    reply_transport: Value,
    secure_reply: Value,
    reply: Value,
}

fn layers() -> Layers {
    let request = NewRequest {
        message: r#"{"agent":"emulated0","action":"generate","data":{"size":20}}"#.into(),
        senderid: "client.example.net".into(),
        callerid: "choria=rip.mcollective".into(),
        collective: "mcollective".into(),
        agent: "emulated0".into(),
        filter: Filter {
            fact: vec![FactFilter::new("country", "==", "mt")],
            cf_class: vec!["apache".into()],
            identity: vec!["/^emu/".into()],
            compound: vec![vec![serde_json::json!({"expr": "with('apache')"})]],
            ..Filter::with_agent("emulated0")
        },
        ..NewRequest::default()
    }
    .build()
    .unwrap();
    let id = request.envelope.requestid.clone();
    let mut headers = TransportHeaders::for_request(
        subject::reply("mcollective", "choria=rip.mcollective", &id),
        "client.example.net",
    );
    headers.push_seen_by(SeenByHop::new(
        "nats://n:4222",
        "client.example.net",
        "nats://n:4222",
    ));
    headers.federation = Some(FederationHeader {
        req: id.clone(),
        reply_to: String::new(),
        target: vec![subject::node("mcollective", "n1")],
    });
    let transport = Transport::for_request(&request, headers.clone()).unwrap();
    let secure_request = SecureRequest::from_slice(&transport.payload().unwrap()).unwrap();

    let reply = Reply::for_request(&request, "n1", "pong".into());
    let reply_transport =
        Transport::for_reply(&reply, TransportHeaders::for_reply_to(&headers, "n1")).unwrap();
    let secure_reply = SecureReply::from_slice(&reply_transport.payload().unwrap()).unwrap();

    let to_value = |bytes: Vec<u8>| serde_json::from_slice::<Value>(&bytes).unwrap();
    Layers {
        transport: to_value(transport.to_vec().unwrap()),
        request: serde_json::from_str(&secure_request.message).unwrap(),
        secure_request: to_value(secure_request.to_vec().unwrap()),
        reply_transport: to_value(reply_transport.to_vec().unwrap()),
        reply: serde_json::from_str(&secure_reply.message).unwrap(),
        secure_reply: to_value(secure_reply.to_vec().unwrap()),
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn key_wire_facts() {
    let l = layers();

    assert_eq!(l.transport["protocol"], "choria:transport:1");
    assert!(l.transport["data"].is_string());
    let h = &l.transport["headers"];
    assert!(h["reply-to"]
        .as_str()
        .unwrap()
        .starts_with("mcollective.reply."));
    assert_eq!(h["seen-by"][0].as_array().unwrap().len(), 3);
    assert!(h["federation"]["target"].is_array());
    assert!(h["federation"].get("targets").is_none());

    assert_eq!(
        keys(&l.secure_request),
        ["message", "protocol", "pubcert", "signature"]
    );
    assert_eq!(l.secure_request["protocol"], "choria:secure:request:1");
    assert_eq!(l.secure_request["signature"], "insecure");
    assert_eq!(l.secure_request["pubcert"], "insecure");
    assert!(l.secure_request["message"].is_string());

    assert_eq!(keys(&l.request), ["envelope", "message", "protocol"]);
    assert_eq!(l.request["protocol"], "choria:request:1");
    let env = &l.request["envelope"];
    assert_eq!(
        keys(env),
        [
            "agent",
            "callerid",
            "collective",
            "filter",
            "requestid",
            "senderid",
            "time",
            "ttl"
        ]
    );
    assert_eq!(env["requestid"].as_str().unwrap().len(), 32);
    assert_eq!(env["ttl"], 60);
    assert!(env["time"].is_i64());
    assert_eq!(
        keys(&env["filter"]),
        ["agent", "cf_class", "compound", "fact", "identity"]
    );
    assert!(env["filter"]["compound"][0][0].is_object());

    let rh = &l.reply_transport["headers"];
    assert!(rh.get("reply-to").is_none());
    assert_eq!(rh["mc_sender"], "n1");
    assert!(rh["federation"].get("target").is_none());

    assert_eq!(keys(&l.secure_reply), ["hash", "message", "protocol"]);
    assert_eq!(l.secure_reply["protocol"], "choria:secure:reply:1");
    assert_eq!(keys(&l.reply), ["envelope", "message", "protocol"]);
    assert_eq!(
        keys(&l.reply["envelope"]),
        ["agent", "requestid", "senderid", "time"]
    );
}

#[test]
fn go_choria_schemas_accept_our_messages() {
    let dir = schema_dir();
    let load = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap();
        // The schemas declare draft-04 (some without the trailing `#`): force draft 4.
        jsonschema::draft4::new(&schema).unwrap()
    };
    let l = layers();
    for (schema, instance, what) in [
        ("transport.json", &l.transport, "request transport"),
        ("transport.json", &l.reply_transport, "reply transport"),
        ("secure_request.json", &l.secure_request, "secure request"),
        ("request.json", &l.request, "request"),
        ("secure_reply.json", &l.secure_reply, "secure reply"),
        ("reply.json", &l.reply, "reply"),
    ] {
        let validator = load(schema);
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{what} fails {schema}: {errors:?}");
    }

    // The validator is not vacuous: a request without a compound filter key is rejected,
    // as is a ttl below 30.
    let request_schema = load("request.json");
    let mut broken = l.request.clone();
    broken["envelope"]["filter"]
        .as_object_mut()
        .unwrap()
        .remove("compound");
    assert!(!request_schema.is_valid(&broken));
    let mut short = l.request.clone();
    short["envelope"]["ttl"] = 10.into();
    assert!(!request_schema.is_valid(&short));
}
