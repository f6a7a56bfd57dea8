//! Every kind of message the emulator emits (replies of every agent, a federated reply, a
//! registration request) validates against the go-choria v1 JSON Schemas (a missing schema
//! directory fails the test), and the key wire facts are asserted directly as well.
//! The audit log gets one Choria-format line per RPC request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "emulator/client.rs"]
mod client;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec, RegistrationSpec};
use choir::actors::protocol::{
    decode_request, encode_request, reply_hash, subject, unix_now, FederationHeader, Filter,
    SecureReply, SecureRequest, SeenByHop, Transport, TransportHeaders,
};
use client::TestClient;
use common::NatsServer;
use futures::StreamExt as _;
use serde_json::Value;

const SCHEMA_SUBDIR: &str =
    "shared/protocol-schemas/go-choria/internal/fs/schemas/choria/protocol/v1";

/// The schema directory (`$CHOIR_PROTOCOL_SCHEMAS`, else found above the checkout); a missing
/// one fails the test, since CI always has `shared/` beside the checkout.
fn schema_dir() -> PathBuf {
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

fn validate(schema: &str, instance: &Value, what: &str) {
    let dir = schema_dir();
    let text = std::fs::read_to_string(dir.join(schema)).unwrap();
    let schema_value: Value = serde_json::from_str(&text).unwrap();
    // The schemas declare draft-04 (some without the trailing `#`): force draft 4.
    let validator = jsonschema::draft4::new(&schema_value).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{what} fails {schema}: {errors:?}\n{instance}"
    );
}

/// Validates every layer of a reply NATS payload and checks its wire facts.
fn check_reply(payload: &[u8], what: &str) -> Value {
    let transport: Value = serde_json::from_slice(payload).unwrap();
    validate("transport.json", &transport, what);
    assert_eq!(transport["protocol"], "choria:transport:1");
    assert!(transport["headers"].get("reply-to").is_none(), "{what}");
    assert!(transport["headers"]["mc_sender"].is_string(), "{what}");
    let t = Transport::from_slice(payload).unwrap();
    let secure_bytes = t.payload().unwrap();
    let secure: Value = serde_json::from_slice(&secure_bytes).unwrap();
    validate("secure_reply.json", &secure, what);
    let s = SecureReply::from_slice(&secure_bytes).unwrap();
    assert_eq!(
        s.hash,
        reply_hash(&s.message),
        "{what}: hash over the exact string"
    );
    let reply: Value = serde_json::from_str(&s.message).unwrap();
    validate("reply.json", &reply, what);
    assert_eq!(reply["protocol"], "choria:reply:1");
    assert_eq!(reply["envelope"]["requestid"].as_str().unwrap().len(), 32);
    transport
}

#[actix_rt::test]
async fn everything_emitted_validates_against_go_choria_schemas() {
    // Fail at once, before any server starts, when the schemas are missing.
    schema_dir();
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let mut spec = FleetSpec::new("schema", 3, vec![server.url()]);
    spec.agents = 2;
    spec.facts.insert("country".into(), "mt".into());
    spec.audit = Some(audit.clone());
    spec.registration = Some(RegistrationSpec {
        interval: Duration::from_secs(3600),
        splay: false,
        subject: Some("choria.registration".into()),
    });
    let client = TestClient::connect(&server.url()).await;
    let mut registrations = client.nats.subscribe("choria.registration").await.unwrap();
    client.nats.flush().await.unwrap();
    let metrics = EmulatorMetrics::unregistered();
    let fleet = Fleet::start(spec, metrics.clone()).unwrap();
    assert!(fleet.wait_started(Duration::from_secs(30), |_| {}).await);

    // Registration: a request to agent `registration` with the identity, fqdn, facts, sequence.
    let msg = tokio::time::timeout(Duration::from_secs(10), registrations.next())
        .await
        .unwrap()
        .unwrap();
    let transport: Value = serde_json::from_slice(&msg.payload).unwrap();
    validate("transport.json", &transport, "registration transport");
    let decoded = decode_request(&msg.payload, unix_now()).unwrap();
    let secure: Value = serde_json::from_slice(&decoded.transport.payload().unwrap()).unwrap();
    validate(
        "secure_request.json",
        &secure,
        "registration secure request",
    );
    assert_eq!(secure["signature"], "insecure");
    let request: Value = serde_json::from_str(&decoded.secure.message).unwrap();
    validate("request.json", &request, "registration request");
    assert_eq!(request["envelope"]["agent"], "registration");
    let body: Value = serde_json::from_str(&decoded.request.message).unwrap();
    assert!(body["identity"].as_str().unwrap().starts_with("schema-"));
    assert_eq!(body["fqdn"], body["identity"]);
    assert_eq!(body["sequence"], 1);
    assert_eq!(body["content"]["facts"]["country"], "mt");
    assert_eq!(
        SecureRequest::from_slice(&decoded.transport.payload().unwrap())
            .unwrap()
            .pubcert,
        "insecure"
    );

    // Replies of every agent and action kind, one daemon each (directed).
    let cases = [
        ("discovery", "ping"),
        (
            "rpcutil",
            r#"{"agent":"rpcutil","action":"ping","data":{}}"#,
        ),
        (
            "rpcutil",
            r#"{"agent":"rpcutil","action":"inventory","data":{}}"#,
        ),
        (
            "emulated1",
            r#"{"agent":"emulated1","action":"generate","data":{"size":20}}"#,
        ),
        (
            "emulated0",
            r#"{"agent":"emulated0","action":"nope","data":{}}"#,
        ),
        (
            "emulated0",
            r#"{"agent":"emulated0","action":"generate","data":{}}"#,
        ),
    ];
    for (agent, message) in cases {
        let request = TestClient::request(agent, message, Filter::default());
        let replies = client
            .call(
                &subject::node("mcollective", "schema-1"),
                &request,
                1,
                Duration::from_secs(10),
                Duration::ZERO,
            )
            .await;
        assert_eq!(replies.len(), 1, "{agent} {message}");
        check_reply(&replies[0].0, &format!("{agent} reply"));
    }

    // A federated request: the reply keeps the federation req/reply-to and gains a seen-by hop.
    let request = TestClient::request("discovery", "ping", Filter::default());
    let mut headers =
        TransportHeaders::for_request("choria.federation.c1.collective", "tester.example.net");
    headers.push_seen_by(SeenByHop::new("nats://fed", "broker", server.url()));
    headers.federation = Some(FederationHeader {
        req: request.envelope.requestid.clone(),
        reply_to: TestClient::reply_subject(&request),
        target: vec![subject::node("mcollective", "schema-2")],
    });
    let mut fed_replies = client
        .nats
        .subscribe("choria.federation.c1.collective")
        .await
        .unwrap();
    client.nats.flush().await.unwrap();
    let payload = encode_request(&request, headers).unwrap();
    client
        .nats
        .publish(subject::node("mcollective", "schema-2"), payload.into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), fed_replies.next())
        .await
        .unwrap()
        .unwrap();
    let transport = check_reply(&msg.payload, "federated reply");
    let h = &transport["headers"];
    assert_eq!(h["federation"]["req"], request.envelope.requestid.as_str());
    assert_eq!(
        h["federation"]["reply-to"],
        TestClient::reply_subject(&request).as_str()
    );
    assert!(h["federation"].get("target").is_none());
    assert_eq!(h["seen-by"].as_array().unwrap().len(), 2);
    assert_eq!(h["seen-by"][1][1], "schema-2");

    // Audit: the five mcorpc requests, Choria format.
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for key in [
        "timestamp",
        "request_id",
        "request_time",
        "caller",
        "sender",
        "agent",
        "action",
        "data",
    ] {
        assert!(lines[0].get(key).is_some(), "audit line lacks {key}");
    }
    assert!(lines[0]["timestamp"].as_str().unwrap().ends_with("+0000"));
    assert_eq!(lines[2]["action"], "generate");
    assert_eq!(lines[2]["data"]["size"], 20);
    fleet.stop();
}
