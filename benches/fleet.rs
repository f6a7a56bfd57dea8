//! End-to-end fleet harness for the measuring client: a loopback nats-server, `choir emulate`
//! with 1 000 and 10 000 daemons (a separate process: one connection each), then broadcast
//! discovery and 10 RPCs of `emulated0#generate(100)` to all of them from an in-process
//! client. Prints a table (nodes, discovery time, RPC p50/p99 time to the last reply,
//! replies/s) and writes `target/fleet.json`.
//!
//!     cargo bench --bench fleet
//!     FLEET_SIZES=1000,2000 FLEET_RPCS=5 cargo bench --bench fleet
//!
//! Goal (issue 5): all 10 000 replies back in under 1 s. Every process it starts is stopped
//! by its own pid; every wait has a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use choir::actors::client::{
    Addressing, ChoriaClient, ClientOptions, Discovery, Expectation, RpcCall, Stats,
};
use choir::actors::protocol::Filter;
use common::http::metric_value;
use common::nats::free_port;
use common::{http_get, poll_until, NatsServer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

struct Emulator {
    child: Child,
    monitor: SocketAddr,
}

impl Emulator {
    fn start(instances: usize, server: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_choir"))
            .args([
                "emulate",
                "--instances",
                &instances.to_string(),
                "--name",
                "fleet",
            ])
            .args(["--server", server, "--http-port", &port.to_string()])
            .args(["--connect-concurrency", "256"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start choir emulate");
        Self {
            child,
            monitor: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn started(&self) -> Option<f64> {
        let (_, body) = http_get(self.monitor, "/metrics")?;
        metric_value(&body, "choir_emulator_daemons", &[])
    }

    fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Row {
    nodes: usize,
    startup_s: f64,
    discovered: usize,
    discovery: Duration,
    rpc: Stats,
    replies: usize,
    missing: usize,
    replies_per_s: f64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

async fn measure(
    nodes: usize,
    rpcs: usize,
    url: &str,
) -> (usize, Duration, Stats, usize, usize, f64) {
    let client = ChoriaClient::connect(
        &[url.to_owned()],
        ClientOptions::new("mcollective", url),
        1 << 18,
    )
    .await
    .unwrap();
    let found = client
        .discover(&Discovery {
            filter: Filter::with_agent("emulated0"),
            timeout: Duration::from_secs(30),
            expect: Some(nodes),
            keep_bodies: false,
        })
        .await
        .unwrap();
    let discovered: std::collections::BTreeSet<String> =
        found.replies.iter().map(|r| r.sender.clone()).collect();
    let call = RpcCall {
        agent: "emulated0".into(),
        action: "generate".into(),
        data: json!({"size": 100}),
        filter: Filter::default(),
        addressing: Addressing::Broadcast,
        expectation: Expectation::Nodes(discovered.clone()),
        timeout: Duration::from_secs(30),
        keep_bodies: false,
    };
    let mut durations = Vec::new();
    let (mut replies, mut missing) = (0, 0);
    for _ in 0..rpcs {
        let r = client.rpc(&call).await.unwrap();
        replies += r.replies.len();
        missing += r.missing_count;
        durations.push(u64::try_from(r.last_reply().as_nanos()).unwrap_or(u64::MAX));
    }
    let total_s = durations.iter().sum::<u64>() as f64 / 1e9;
    let rate = if total_s > 0.0 {
        replies as f64 / total_s
    } else {
        0.0
    };
    (
        discovered.len(),
        found.request_duration,
        Stats::of_ns(&mut durations),
        replies,
        missing,
        rate,
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("FLEET_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let rpcs: usize = std::env::var("FLEET_RPCS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut rows = Vec::new();
    for &nodes in &sizes {
        let server = NatsServer::start();
        let began = Instant::now();
        let emulator = Emulator::start(nodes, &server.url());
        let ok = poll_until(Duration::from_secs(180), || {
            emulator.started() == Some(nodes as f64)
        });
        assert!(ok, "{nodes} daemons did not start within 180 s");
        let startup_s = began.elapsed().as_secs_f64();
        let url = server.url();
        let (discovered, discovery, rpc, replies, missing, replies_per_s) =
            actix_rt::System::new().block_on(measure(nodes, rpcs, &url));
        emulator.stop();
        drop(server);
        rows.push(Row {
            nodes,
            startup_s,
            discovered,
            discovery,
            rpc,
            replies,
            missing,
            replies_per_s,
        });
    }

    println!(
        "\n{:>7}  {:>10}  {:>10}  {:>13}  {:>13}  {:>13}  {:>9}  {:>8}  {:>11}",
        "nodes",
        "startup s",
        "discovered",
        "discovery ms",
        "rpc p50 ms",
        "rpc p99 ms",
        "replies",
        "missing",
        "replies/s"
    );
    for r in &rows {
        println!(
            "{:>7}  {:>10.1}  {:>10}  {:>13.1}  {:>13.1}  {:>13.1}  {:>9}  {:>8}  {:>11.0}",
            r.nodes,
            r.startup_s,
            r.discovered,
            r.discovery.as_secs_f64() * 1e3,
            ms(r.rpc.p50_ns),
            ms(r.rpc.p99_ns),
            r.replies,
            r.missing,
            r.replies_per_s
        );
    }
    println!("(rpc times: publish to last reply of {rpcs} broadcast RPCs of emulated0#generate(100) each)");
    let json = json!({
        "bench": "fleet",
        "rpcs": rpcs,
        "rows": rows.iter().map(|r| json!({
            "nodes": r.nodes,
            "startup_s": r.startup_s,
            "discovered": r.discovered,
            "discovery_ms": r.discovery.as_secs_f64() * 1e3,
            "rpc_p50_ms": ms(r.rpc.p50_ns),
            "rpc_p99_ms": ms(r.rpc.p99_ns),
            "rpc_min_ms": ms(r.rpc.min_ns),
            "rpc_max_ms": ms(r.rpc.max_ns),
            "replies": r.replies,
            "missing": r.missing,
            "replies_per_second": r.replies_per_s,
        })).collect::<Vec<_>>(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("fleet.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    );
}
