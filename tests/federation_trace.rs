//! `mco federation trace NODE` as the Ruby client sends it: a directed discovery `ping` whose
//! `seen-by` holds the client's hop as a **pair** (`["<identity>","nats://host:port"]`),
//! through a choir federation broker to an emulated daemon and back. The trace comes back with
//! every hop (client, broker, daemon, broker), the client's pair byte for byte; over a TLS
//! collective network the broker and the daemon name their servers `tls://…`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "federation/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use choir::actors::connection::TlsSettings;
use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::{
    decode_reply, encode_request, subject, DecodedReply, FederationHeader, SeenByHop,
    TransportHeaders,
};
use common::nats::free_port;
use common::{ChoirNode, NatsServer};
use futures::StreamExt as _;
use support::{metric_sum, wait_subscribed, FedClient, SENDER};

/// Sends the Ruby client's trace request for `identity` through cluster `c0` and returns the
/// raw reply and its decoding.
async fn trace(client: &FedClient, identity: &str) -> (String, DecodedReply, SeenByHop) {
    let ping = FedClient::request("discovery", "ping");
    let reply_to = FedClient::reply_subject(&ping);
    let mut headers = TransportHeaders::for_request(reply_to.clone(), SENDER);
    let pair = SeenByHop::from_parts(vec![SENDER.into(), client.url.clone()]).unwrap();
    headers.push_seen_by(pair.clone());
    headers.federation = Some(FederationHeader {
        req: ping.envelope.requestid.clone(),
        reply_to: String::new(),
        target: vec![subject::node("mcollective", identity)],
    });
    let payload = encode_request(&ping, headers).unwrap();
    let mut sub = client.nats.subscribe(reply_to).await.unwrap();
    client.nats.flush().await.unwrap();
    client.publish_to_clusters(&["c0"], &payload).await;
    client.nats.flush().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("a trace reply")
        .unwrap();
    let raw = String::from_utf8(msg.payload.to_vec()).unwrap();
    (raw, decode_reply(&msg.payload).unwrap(), pair)
}

/// The four hops of a traced reply, checked; `fed` and `collective` are the URLs the broker
/// and the daemon should name.
fn check_hops(reply: &DecodedReply, raw: &str, pair: &SeenByHop, fed: &str, collective: &str) {
    assert_eq!(reply.body(), b"pong");
    let hops = &reply.transport.headers.seen_by;
    assert_eq!(hops.len(), 4, "client, broker, daemon, broker: {hops:?}");
    assert_eq!(&hops[0], pair, "the client's pair comes back as sent");
    let sent = format!(r#""seen-by":[["{SENDER}","{fed}"],["#);
    assert!(raw.contains(&sent), "{raw}");
    assert!(
        hops[1].processor().contains("choria_request_transformer"),
        "{hops:?}"
    );
    assert_eq!((hops[1].incoming(), hops[1].outgoing()), (fed, collective));
    assert_eq!(hops[2].processor(), "c0-emu-1");
    assert_eq!(
        (hops[2].incoming(), hops[2].outgoing()),
        (collective, collective)
    );
    assert!(
        hops[3].processor().contains("choria_reply_transformer"),
        "{hops:?}"
    );
    assert_eq!((hops[3].incoming(), hops[3].outgoing()), (collective, fed));
    assert!(reply.transport.headers.federation.is_none());
}

#[actix_rt::test]
async fn a_trace_with_a_two_string_client_hop_comes_back_with_every_hop() {
    let fed = NatsServer::start();
    let collective = NatsServer::start();
    let node = ChoirNode::start(&support::broker_config(&fed, &[("c0", &collective)], ""));
    let _fleet = support::start_fleet("c0-emu", 2, &collective).await;
    wait_subscribed(&node, 1);
    let client = FedClient::connect(&fed.url()).await;

    let (raw, reply, pair) = trace(&client, "c0-emu-1").await;
    check_hops(&reply, &raw, &pair, &fed.url(), &collective.url());
    let malformed = metric_sum(
        &node,
        "choir_federation_dropped_total",
        &[("reason", "malformed")],
    );
    assert_eq!(malformed, 0.0);
}

/// A CA and a certificate for 127.0.0.1 (openssl, EC P-256) in `dir`: (ca, cert, key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let split = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let ca = split(&format!(
        "req -x509 -days 1 -subj /CN=choir-test-CA {ec} -keyout ca.key -out ca.pem"
    ));
    run(&ca.iter().map(String::as_str).collect::<Vec<_>>());
    let csr = split(&format!(
        "req -subj /CN=127.0.0.1 {ec} -keyout server.key -out server.csr"
    ));
    run(&csr.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let sign = split(
        "x509 -req -days 1 -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile san.cnf -out server.pem",
    );
    run(&sign.iter().map(String::as_str).collect::<Vec<_>>());
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[actix_rt::test]
async fn over_a_tls_collective_the_broker_and_the_daemon_name_tls_servers() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(dir.path());
    let fed = NatsServer::start();
    let collective = NatsServer::start_with(
        free_port(),
        &[
            "--tls",
            "--tlscert",
            cert.to_str().unwrap(),
            "--tlskey",
            key.to_str().unwrap(),
        ],
    );
    // The collective network is given as nats://…, with a [tls] section: the connection
    // is TLS all the same, and the hops must say so.
    let body = format!(
        "[networks.fed]\nurls = [\"{}\"]\n\n[networks.c0]\nurls = [\"{}\"]\nmax_backoff = \"500ms\"\n[networks.c0.tls]\nca = \"{}\"\n\n[federation.c0]\nfederation = \"fed\"\ncollective = \"c0\"\n",
        fed.url(),
        collective.url(),
        ca.display()
    );
    let node = ChoirNode::start(&body);
    let mut spec = FleetSpec::new("c0-emu", 2, vec![collective.url()]);
    spec.arbiters = std::num::NonZeroUsize::new(1);
    spec.network.tls = Some(TlsSettings {
        ca: Some(ca),
        ..TlsSettings::default()
    });
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(fleet.wait_started(Duration::from_secs(60), |_| {}).await);
    wait_subscribed(&node, 1);
    let client = FedClient::connect(&fed.url()).await;

    let (raw, reply, pair) = trace(&client, "c0-emu-1").await;
    let tls_url = collective.url().replacen("nats://", "tls://", 1);
    assert!(tls_url.starts_with("tls://127.0.0.1:"), "{tls_url}");
    check_hops(&reply, &raw, &pair, &fed.url(), &tls_url);
}
