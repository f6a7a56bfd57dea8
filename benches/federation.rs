//! End-to-end benchmark of the federation broker, in one run:
//!
//! 1. **latency**: the same RPC (`rpcutil#ping`) to 1 000 emulated daemons, sent directly on
//!    the collective server and through a `choir run` node brokering the cluster (federation
//!    server → broker → collective server → daemons → broker → federation server); time to
//!    the last reply for both (median of several rounds) and the ratio federated/direct
//!    (goal ≤ 1.3);
//! 2. **throughput**: pre-built federated requests with one target each pushed through the
//!    broker as fast as it forwards them (at most a window in flight), counted where they
//!    arrive on the collective server; forwarded messages/s (goal ≥ 100 000).
//!
//! Prints a table and writes `target/federation_bench.json`. Every wait has a deadline.
//!
//!     cargo bench --bench federation
//!     FEDERATION_BENCH_DAEMONS=500 FEDERATION_BENCH_MESSAGES=100000 cargo bench --bench federation
//!     FEDERATION_BENCH_WORKERS=2 cargo bench --bench federation   # broker `workers` (default: config default)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/federation/support.rs"]
mod support;

use std::time::{Duration, Instant};

use choir::actors::protocol::{encode_request, subject, Request, TransportHeaders};
use common::{ChoirNode, NatsServer};
use futures::StreamExt as _;
use support::{metric_sum, FedClient, SENDER};

const CLUSTER: &str = "bench";
const ROUNDS: usize = 5;
const WINDOW: u64 = 20_000;
const SINK: &str = "mcollective.node.bench-sink";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Publishes `payload` to `target` on `nats` and waits for `expected` replies on `reply_to`:
/// the time from the publish to the last reply, and how many arrived.
async fn time_to_last_reply(
    nats: &async_nats::Client,
    target: &str,
    reply_to: &str,
    payload: Vec<u8>,
    expected: usize,
) -> (Duration, usize) {
    let mut sub = nats.subscribe(reply_to.to_owned()).await.unwrap();
    nats.flush().await.unwrap();
    let started = Instant::now();
    nats.publish(target.to_owned(), payload.into())
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let mut got = 0;
    let mut last = started.elapsed();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got < expected {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(_)) => {
                got += 1;
                last = started.elapsed();
            }
            _ => break,
        }
    }
    (last, got)
}

fn rpc() -> Request {
    FedClient::request(
        "rpcutil",
        r#"{"agent":"rpcutil","action":"ping","data":{}}"#,
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let daemons = env_or("FEDERATION_BENCH_DAEMONS", 1_000);
    let messages = env_or("FEDERATION_BENCH_MESSAGES", 300_000) as u64;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let fed = NatsServer::start();
        let collective = NatsServer::start();
        let extra = std::env::var("FEDERATION_BENCH_WORKERS")
            .map(|w| format!("workers = {w}"))
            .unwrap_or_default();
        let config = support::broker_config(&fed, &[(CLUSTER, &collective)], &extra);
        let node = ChoirNode::start(&config);
        let _fleet = support::start_fleet("bench", daemons, &collective).await;
        support::wait_subscribed(&node, 1);
        let direct = FedClient::connect(&collective.url()).await;
        let client = FedClient::connect(&fed.url()).await;
        let broadcast = subject::broadcast_agent("mcollective", "rpcutil");
        let federation_subject = subject::federation_requests(CLUSTER);

        // Latency: alternate direct and federated rounds (first pair is a warm-up).
        let mut direct_times = Vec::new();
        let mut federated_times = Vec::new();
        for round in 0..=ROUNDS {
            let request = rpc();
            let reply_to = FedClient::reply_subject(&request);
            let payload =
                encode_request(&request, TransportHeaders::for_request(&reply_to, SENDER)).unwrap();
            let (d, got_d) =
                time_to_last_reply(&direct.nats, &broadcast, &reply_to, payload, daemons).await;
            let request = rpc();
            let reply_to = FedClient::reply_subject(&request);
            let payload = FedClient::federated(&request, vec![broadcast.clone()], &fed.url());
            let (f, got_f) = time_to_last_reply(
                &client.nats,
                &federation_subject,
                &reply_to,
                payload,
                daemons,
            )
            .await;
            assert_eq!(got_d, daemons, "direct replies in round {round}");
            assert_eq!(got_f, daemons, "federated replies in round {round}");
            if round > 0 {
                direct_times.push(d);
                federated_times.push(f);
            }
        }
        let direct_ms = median(direct_times).as_secs_f64() * 1e3;
        let federated_ms = median(federated_times).as_secs_f64() * 1e3;
        let ratio = federated_ms / direct_ms;

        // Throughput: one-target federated requests through the broker, counted at the sink.
        let sink_client = async_nats::ConnectOptions::new()
            .subscription_capacity(1 << 20)
            .connect(collective.url())
            .await
            .unwrap();
        let mut sink = sink_client.subscribe(SINK).await.unwrap();
        sink_client.flush().await.unwrap();
        let arrived = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = arrived.clone();
        let counting = actix_rt::spawn(async move {
            while sink.next().await.is_some() {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let request = rpc();
        let payload: bytes::Bytes =
            FedClient::federated(&request, vec![SINK.to_owned()], &fed.url()).into();
        let payload_bytes = payload.len();
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(90);
        let mut sent = 0u64;
        while sent < messages && Instant::now() < deadline {
            while sent < messages && sent - load(&arrived).min(sent) < WINDOW {
                client
                    .nats
                    .publish(federation_subject.clone(), payload.clone())
                    .await
                    .unwrap();
                sent += 1;
            }
            client.nats.flush().await.unwrap();
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // Drain: until everything arrived or nothing moved for 2 s.
        let mut last = (load(&arrived), Instant::now());
        while load(&arrived) < sent && last.1.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = load(&arrived);
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        let got = load(&arrived);
        let elapsed = if got == sent {
            started.elapsed()
        } else {
            last.1 - started
        };
        let rate = got as f64 / elapsed.as_secs_f64();
        counting.abort();
        let published = metric_sum(
            &node,
            "choria_federation_published_msgs",
            &[("name", "nats_egest"), ("connected_to", "collective")],
        );
        let errors = metric_sum(&node, "choria_federation_errors", &[]);

        println!();
        println!(
            "federation broker benchmark ({daemons} emulated daemons, median of {ROUNDS} rounds)"
        );
        println!("{:<44} {:>12}", "measure", "value");
        println!(
            "{:<44} {:>9.1} ms",
            "direct RPC, time to last reply", direct_ms
        );
        println!(
            "{:<44} {:>9.1} ms",
            "federated RPC, time to last reply", federated_ms
        );
        println!(
            "{:<44} {:>12.2}   (goal <= 1.30)",
            "ratio federated / direct", ratio
        );
        println!("{:<44} {:>12}", "throughput: requests sent", sent);
        println!(
            "{:<44} {:>12}",
            "throughput: arrived at the collective", got
        );
        println!("{:<44} {:>12} B", "throughput: request size", payload_bytes);
        println!(
            "{:<44} {:>12.0}   (goal >= 100000)",
            "broker forwarded msg/s", rate
        );
        println!(
            "{:<44} {:>12}",
            "broker egest published (all phases)", published
        );
        println!("{:<44} {:>12}", "broker errors", errors);

        let json = serde_json::json!({
            "daemons": daemons,
            "rounds": ROUNDS,
            "direct_ms": direct_ms,
            "federated_ms": federated_ms,
            "ratio": ratio,
            "ratio_goal": 1.3,
            "throughput": {
                "sent": sent,
                "arrived": got,
                "seconds": elapsed.as_secs_f64(),
                "msgs_per_sec": rate,
                "goal": 100_000,
                "request_bytes": payload_bytes,
                "window": WINDOW,
            },
            "broker_errors": errors,
        });
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("federation_bench.json");
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        println!("wrote {}", path.display());
        drop(node);
    });
}
