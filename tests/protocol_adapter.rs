//! The protocol adapter (`[adapters.<name>]`) end to end: the `choir` binary against real
//! nats-servers. Choria registration requests become `choria:adapters:jetstream:output:1`
//! stream messages, raw mode copies payload and headers, garbage is counted and dropped while
//! good messages flow, and a request published twice is stored once.

// Harness helpers outside #[test] fns panic on setup failure on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, message::StreamMessage};
use async_nats::HeaderMap;
use choir::actors::protocol::{
    encode_base64, encode_request, unix_now, NewRequest, Request, SecureRequest, Transport,
    TransportHeaders,
};
use common::{eventually, http_get, ChoirNode, NatsServer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const REG_SUBJECT: &str = "mcollective.broadcast.agent.registration";
const SCHEMA: &str =
    "shared/protocol-schemas/choria-io-schemas/choria/adapters/jetstream/v1/output.json";

/// Sum of every sample of `metric` whose labels contain all of `labels`.
fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (name_labels, value) = line.rsplit_once(' ')?;
            let (name, rest) = name_labels.split_once('{').unwrap_or((name_labels, ""));
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (name == metric && all)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

fn metrics(node: &ChoirNode) -> String {
    http_get(node.monitor, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Waits until every worker of `adapter` is subscribed (core NATS drops what nobody hears).
async fn wait_subscribed(node: &ChoirNode, adapter: &str, workers: usize) {
    let ok = eventually(WAIT, || async {
        metric_sum(
            &metrics(node),
            "choir_adapter_subscribed",
            &[("adapter", adapter)],
        ) == workers as f64
    })
    .await;
    assert!(
        ok,
        "adapter {adapter} did not subscribe; log:\n{}",
        node.log()
    );
}

/// Waits until `metric` summed over `adapter`'s workers (and `labels`) reaches `want`.
async fn wait_metric(node: &ChoirNode, metric: &str, labels: &[(&str, &str)], want: f64) {
    let mut last = 0.0;
    let ok = eventually(WAIT, || {
        last = metric_sum(&metrics(node), metric, labels);
        async move { last >= want }
    })
    .await;
    assert!(
        ok,
        "{metric}{labels:?} = {last}, want {want}; metrics:\n{}\nlog:\n{}",
        metrics(node),
        node.log()
    );
}

/// Waits until `stream` on `client` holds `n` messages and returns them in order.
async fn stream_messages(client: &async_nats::Client, stream: &str, n: u64) -> Vec<StreamMessage> {
    let js = jetstream::new(client.clone());
    let count = std::cell::Cell::new(0);
    let ok = eventually(WAIT, || {
        let (js, count) = (js.clone(), &count);
        async move {
            count.set(match js.get_stream(stream).await {
                Ok(s) => s.get_info().await.map(|i| i.state.messages).unwrap_or(0),
                Err(_) => 0,
            });
            count.get() >= n
        }
    })
    .await;
    assert!(
        ok,
        "stream {stream} holds {} messages, want {n}",
        count.get()
    );
    let s = js.get_stream(stream).await.unwrap();
    let info = s.get_info().await.unwrap();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        out.push(s.get_raw_message(seq).await.unwrap());
    }
    out
}

/// A registration request from `sender`: agent `registration`, a JSON body with identity,
/// fqdn and facts.
fn registration(sender: &str, time: i64) -> (Request, Vec<u8>) {
    let body = json!({
        "identity": sender,
        "fqdn": format!("{sender}.example.net"),
        "facts": {"os": "linux", "country": "mt", "index": sender},
    });
    let request = NewRequest {
        message: body.to_string(),
        senderid: sender.into(),
        callerid: format!("choria={sender}"),
        collective: "mcollective".into(),
        agent: "registration".into(),
        time: Some(time),
        ..NewRequest::default()
    }
    .build()
    .unwrap();
    // As Choria registration publishes it: replies go nowhere.
    let headers = TransportHeaders::for_request("dev.null", sender);
    let bytes = encode_request(&request, headers).unwrap();
    (request, bytes)
}

fn choria_adapter(url: &str, workers: usize) -> String {
    format!(
        r#"
[networks.region]
urls = ["{url}"]

[adapters.registration]
network = "region"
subject = "{REG_SUBJECT}"
stream = "REGISTRATION"
stream_subject = "registration.%s"
protocol = "choria"
workers = {workers}
"#
    )
}

/// The output schema with `time` relaxed to a string (Choria writes RFC 3339, the schema says
/// integer). A missing schema fails the test: CI always has `shared/` beside the checkout.
fn output_validator() -> jsonschema::Validator {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = manifest
        .ancestors()
        .map(|a| a.join(SCHEMA))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{SCHEMA} not found above {}: check out shared/ beside the repository",
                manifest.display()
            )
        });
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    schema["properties"]["time"] = json!({"type": "string"});
    jsonschema::draft4::new(&schema).unwrap()
}

async fn connect(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(server.url()).await.unwrap()
}

#[tokio::test]
async fn choria_registration_requests_become_schema_valid_stream_messages() {
    const N: usize = 200;
    let server = NatsServer::start();
    let node = ChoirNode::start(&choria_adapter(&server.url(), 4));
    wait_subscribed(&node, "registration", 4).await;
    let client = connect(&server).await;

    let now = unix_now();
    let mut sent = BTreeMap::new();
    for i in 0..N {
        let sender = format!("node{i:04}");
        let (request, bytes) = registration(&sender, now);
        client.publish(REG_SUBJECT, bytes.into()).await.unwrap();
        sent.insert(sender, request);
    }
    client.flush().await.unwrap();

    let messages = stream_messages(&client, "REGISTRATION", N as u64).await;
    assert_eq!(messages.len(), N);
    let validator = output_validator();
    let mut seen = BTreeSet::new();
    for message in &messages {
        let out: Value = serde_json::from_slice(&message.payload).unwrap();
        let errors: Vec<String> = validator.iter_errors(&out).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{out} does not validate: {errors:?}");
        // The same facts, asserted directly.
        assert_eq!(out["protocol"], "choria:adapters:jetstream:output:1");
        let sender = out["sender"].as_str().unwrap();
        let request = &sent[sender];
        assert_eq!(out["requestid"], request.envelope.requestid.as_str());
        assert_eq!(
            message.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            Some(request.envelope.requestid.as_str())
        );
        let time = humantime::parse_rfc3339(out["time"].as_str().unwrap()).unwrap();
        let secs = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs as i64, request.envelope.time);
        let data = out["data"]
            .as_str()
            .expect("data is the request message as a string");
        assert_eq!(
            data, request.message,
            "data is the unmodified request message"
        );
        let body: Value = serde_json::from_str(data).unwrap();
        assert_eq!(body["identity"], sender);
        assert_eq!(body["fqdn"], format!("{sender}.example.net"));
        assert_eq!(body["facts"]["os"], "linux");
        assert_eq!(message.subject.as_str(), format!("registration.{sender}"));
        assert!(seen.insert(sender.to_owned()), "{sender} stored twice");
    }
    assert_eq!(seen.len(), N);
    let text = metrics(&node);
    let labels = [("adapter", "registration")];
    assert_eq!(
        metric_sum(&text, "choir_adapter_received_total", &labels),
        N as f64
    );
    assert_eq!(
        metric_sum(&text, "choir_adapter_published_total", &labels),
        N as f64
    );
    assert_eq!(
        metric_sum(&text, "choir_adapter_dropped_total", &labels),
        0.0
    );
    let workers_used = (0..4)
        .filter(|w| {
            metric_sum(
                &text,
                "choir_adapter_received_total",
                &[("adapter", "registration"), ("worker", &w.to_string())],
            ) > 0.0
        })
        .count();
    assert!(workers_used >= 2, "the queue group spread nothing: {text}");
}

#[tokio::test]
async fn raw_mode_copies_payload_and_headers_to_another_network() {
    const N: usize = 30;
    let region = NatsServer::start();
    let central = NatsServer::start();
    let node = ChoirNode::start(&format!(
        r#"
[networks.region]
urls = ["{}"]

[networks.central]
urls = ["{}"]

[adapters.metrics]
network = "region"
subject = "metrics.>"
stream_network = "central"
stream = "METRICS"
workers = 2
"#,
        region.url(),
        central.url()
    ));
    wait_subscribed(&node, "metrics", 2).await;
    let publisher = connect(&region).await;
    let mut sent = BTreeMap::new();
    for i in 0..N {
        let subject = format!("metrics.node{}.cpu", i % 3);
        let payload: Vec<u8> = vec![0xff, 0x00, i as u8, b'x'];
        let mut headers = HeaderMap::new();
        headers.insert("X-Seq", i.to_string().as_str());
        headers.insert("X-Origin", "region");
        publisher
            .publish_with_headers(subject.clone(), headers, payload.clone().into())
            .await
            .unwrap();
        sent.insert(i.to_string(), (subject, payload));
    }
    publisher.flush().await.unwrap();

    let messages = stream_messages(&connect(&central).await, "METRICS", N as u64).await;
    assert_eq!(messages.len(), N);
    let mut seen = BTreeSet::new();
    for message in &messages {
        let seq = message.headers.get("X-Seq").unwrap().as_str().to_owned();
        let (subject, payload) = &sent[&seq];
        assert_eq!(message.subject.as_str(), subject, "original subject kept");
        assert_eq!(
            message.payload.as_ref(),
            payload.as_slice(),
            "payload copied"
        );
        assert_eq!(
            message.headers.get("X-Origin").map(|v| v.as_str()),
            Some("region")
        );
        assert!(seen.insert(seq));
    }
    assert_eq!(seen.len(), N);
}

#[tokio::test]
async fn garbage_is_counted_by_reason_and_dropped_while_good_messages_flow() {
    let server = NatsServer::start();
    let node = ChoirNode::start(&choria_adapter(&server.url(), 2));
    wait_subscribed(&node, "registration", 2).await;
    let client = connect(&server).await;
    let now = unix_now();

    let bad_base64 = br#"{"protocol":"choria:transport:1","data":"!!not base64!!","headers":{}}"#;
    let (good, _) = registration("template", now);
    let mut wrong_secure = SecureRequest::insecure(good.to_json().unwrap());
    wrong_secure.protocol = "choria:secure:reply:1".into();
    let wrong_protocol =
        Transport::new(&wrong_secure.to_vec().unwrap(), TransportHeaders::default())
            .to_vec()
            .unwrap();
    let not_a_request = format!(
        r#"{{"protocol":"choria:transport:1","data":"{}","headers":{{}}}}"#,
        encode_base64(br#"{"protocol":"choria:secure:request:1","message":"{\"x\":1}","signature":"insecure","pubcert":"insecure"}"#)
    );

    let mut good_ids = BTreeSet::new();
    for i in 0..10 {
        let (request, bytes) = registration(&format!("good{i}"), now);
        good_ids.insert(request.envelope.requestid);
        client.publish(REG_SUBJECT, bytes.into()).await.unwrap();
        client
            .publish(REG_SUBJECT, b"not json at all".as_slice().into())
            .await
            .unwrap();
        if i < 3 {
            client
                .publish(REG_SUBJECT, bad_base64.as_slice().into())
                .await
                .unwrap();
        }
        if i < 2 {
            client
                .publish(REG_SUBJECT, wrong_protocol.clone().into())
                .await
                .unwrap();
            let (_, expired) = registration(&format!("old{i}"), now - 3600);
            client.publish(REG_SUBJECT, expired.into()).await.unwrap();
        }
        if i < 4 {
            client
                .publish(REG_SUBJECT, not_a_request.clone().into())
                .await
                .unwrap();
        }
    }
    client.flush().await.unwrap();

    let labels = |reason: &'static str| [("adapter", "registration"), ("reason", reason)];
    wait_metric(
        &node,
        "choir_adapter_published_total",
        &[("adapter", "registration")],
        10.0,
    )
    .await;
    // "not json" ×10 plus the 4 requests whose inner JSON is not a request.
    wait_metric(&node, "choir_adapter_dropped_total", &labels("json"), 14.0).await;
    wait_metric(&node, "choir_adapter_dropped_total", &labels("base64"), 3.0).await;
    wait_metric(
        &node,
        "choir_adapter_dropped_total",
        &labels("protocol"),
        2.0,
    )
    .await;
    wait_metric(
        &node,
        "choir_adapter_dropped_total",
        &labels("expired"),
        2.0,
    )
    .await;

    let messages = stream_messages(&client, "REGISTRATION", 10).await;
    let stored: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            let out: Value = serde_json::from_slice(&m.payload).unwrap();
            out["requestid"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(stored, good_ids);
    let text = metrics(&node);
    let labels = [("adapter", "registration")];
    assert_eq!(
        metric_sum(&text, "choir_adapter_received_total", &labels),
        31.0
    );
    assert_eq!(
        metric_sum(&text, "choir_adapter_dropped_total", &labels),
        21.0
    );
    assert_eq!(
        metric_sum(&text, "choir_adapter_worker_starts_total", &labels),
        2.0,
        "a worker restarted: {}",
        node.log()
    );
    assert_eq!(metric_sum(&text, "choir_actor_respawns_total", &[]), 0.0);
}

#[tokio::test]
async fn the_same_request_published_twice_is_stored_once() {
    let server = NatsServer::start();
    let node = ChoirNode::start(&choria_adapter(&server.url(), 2));
    wait_subscribed(&node, "registration", 2).await;
    let client = connect(&server).await;
    let now = unix_now();
    let (twice, bytes) = registration("twice", now);
    let (once, other) = registration("once", now);
    for payload in [&bytes, &bytes, &other] {
        client
            .publish(REG_SUBJECT, payload.clone().into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();

    let labels = [("adapter", "registration")];
    wait_metric(&node, "choir_adapter_published_total", &labels, 2.0).await;
    wait_metric(&node, "choir_adapter_duplicates_total", &labels, 1.0).await;
    let messages = stream_messages(&client, "REGISTRATION", 2).await;
    assert_eq!(messages.len(), 2);
    let ids: BTreeSet<String> = messages
        .iter()
        .map(|m| m.headers.get("Nats-Msg-Id").unwrap().as_str().to_owned())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([twice.envelope.requestid, once.envelope.requestid])
    );
}

/// A publish the stream keeps refusing (it is full and discards new messages) is tried
/// `1 + publish_retries` times, every attempt counted as failed, and then dropped: counted
/// once with `reason="publish"` and logged at ERROR. The worker goes on: once the stream has
/// room again, the next messages are stored.
#[tokio::test]
async fn a_message_the_stream_keeps_refusing_is_dropped_after_publish_retries() {
    use async_nats::jetstream::stream::{Config, DiscardPolicy};
    let server = NatsServer::start();
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    let full = Config {
        name: "OUT".into(),
        subjects: vec!["out".into()],
        max_messages: 5,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    js.create_stream(full.clone()).await.unwrap();
    let node = ChoirNode::start(&format!(
        r#"
[networks.region]
urls = ["{}"]

[adapters.raw]
network = "region"
subject = "in.>"
workers = 1
stream = "OUT"
stream_subject = "out"
publish_retries = 2
retry_backoff = "10ms"
"#,
        server.url()
    ));
    wait_subscribed(&node, "raw", 1).await;
    for i in 0..8 {
        client
            .publish("in.x", format!("{{\"n\":{i}}}").into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let dropped = [("adapter", "raw"), ("reason", "publish")];
    wait_metric(&node, "choir_adapter_dropped_total", &dropped, 3.0).await;
    let text = metrics(&node);
    assert_eq!(
        metric_sum(&text, "choir_adapter_dropped_total", &dropped),
        3.0
    );
    assert_eq!(
        metric_sum(&text, "choir_adapter_failed_total", &[("adapter", "raw")]),
        9.0,
        "three messages, each tried once and retried twice"
    );
    assert_eq!(
        metric_sum(
            &text,
            "choir_adapter_published_total",
            &[("adapter", "raw")]
        ),
        5.0
    );
    let log = node.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("ERROR") && l.contains("message dropped"))
            .count(),
        3,
        "one ERROR line per dropped message:\n{log}"
    );

    js.update_stream(Config {
        max_messages: 100,
        ..full
    })
    .await
    .unwrap();
    client.publish("in.x", "{\"n\":8}".into()).await.unwrap();
    client.flush().await.unwrap();
    let stored = stream_messages(&client, "OUT", 6).await;
    let ns: Vec<u64> = stored
        .iter()
        .map(|m| {
            serde_json::from_slice::<Value>(&m.payload).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ns,
        [0, 1, 2, 3, 4, 8],
        "the refused ones dropped, the worker still going"
    );
}
