//! End-to-end fleet harness for the measuring client: a loopback nats-server, `choir emulate`
//! with 1 000 and 10 000 daemons (a separate process: one connection each), then broadcast
//! discovery and 10 RPCs of `emulated0#generate(100)` to all of them from an in-process
//! client. Prints a table (nodes, discovery time, RPC p50/p99 time to the last reply,
//! replies/s) and writes `target/fleet.json`.
//!
//!     cargo bench --bench fleet
//!     FLEET_SIZES=1000,2000 FLEET_RPCS=5 cargo bench --bench fleet
//!     FLEET_EMULATOR_ARGS="--arbiters 1" cargo bench --bench fleet   # extra emulator flags
//!     FLEET_CHOIR_BIN=/other/build/choir cargo bench --bench fleet    # another emulator build
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
        // FLEET_CHOIR_BIN runs another build's emulator (to compare emulator versions).
        let binary =
            std::env::var("FLEET_CHOIR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_choir").into());
        let child = Command::new(binary)
            .args([
                "emulate",
                "--instances",
                &instances.to_string(),
                "--name",
                "fleet",
            ])
            .args(["--server", server, "--http-port", &port.to_string()])
            .args(["--connect-concurrency", "256"])
            .args(
                std::env::var("FLEET_EMULATOR_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
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

/// CPU time (user + system) a process used so far, from `/proc/<pid>/stat` (`self` for
/// this process), in milliseconds; `None` where that is not readable.
fn cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ (sysconf(_SC_CLK_TCK)) is 100 on Linux.
    Some(ticks * 10.0)
}

/// The pid of the nats-server listening on `port` (found by its command line).
fn nats_pid(port: u16) -> Option<String> {
    let wanted = port.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_nats = args.first()?.ends_with(b"nats-server");
            let on_port = args
                .windows(2)
                .any(|w| w[0] == b"-p" && w[1] == wanted.as_bytes());
            (is_nats && on_port).then_some(pid)
        })
}

/// CPU milliseconds of the emulator, the nats-server and this client process.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    emulator: f64,
    server: f64,
    client: f64,
}

impl Cpu {
    fn now(pids: &[String; 2]) -> Self {
        Self {
            emulator: cpu_ms(&pids[0]).unwrap_or(f64::NAN),
            server: cpu_ms(&pids[1]).unwrap_or(f64::NAN),
            client: cpu_ms("self").unwrap_or(f64::NAN),
        }
    }

    /// Per RPC since `earlier`.
    fn per_rpc_since(self, earlier: Cpu, rpcs: usize) -> Cpu {
        let n = rpcs.max(1) as f64;
        Cpu {
            emulator: (self.emulator - earlier.emulator) / n,
            server: (self.server - earlier.server) / n,
            client: (self.client - earlier.client) / n,
        }
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
    cpu: Cpu,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

async fn measure(
    nodes: usize,
    rpcs: usize,
    url: &str,
    pids: &[String; 2],
) -> (usize, Duration, Stats, usize, usize, f64, Cpu) {
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
    let cpu_before = Cpu::now(pids);
    for _ in 0..rpcs {
        let r = client.rpc(&call).await.unwrap();
        replies += r.replies.len();
        missing += r.missing_count;
        durations.push(u64::try_from(r.last_reply().as_nanos()).unwrap_or(u64::MAX));
    }
    let cpu = Cpu::now(pids).per_rpc_since(cpu_before, rpcs);
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
        cpu,
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
        let pids = [
            emulator.child.id().to_string(),
            nats_pid(server.addr().port()).unwrap_or_default(),
        ];
        let (discovered, discovery, rpc, replies, missing, replies_per_s, cpu) =
            actix_rt::System::new().block_on(measure(nodes, rpcs, &url, &pids));
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
            cpu,
        });
    }

    println!(
        "\n{:>7}  {:>10}  {:>10}  {:>13}  {:>13}  {:>13}  {:>9}  {:>8}  {:>11}  {:>22}",
        "nodes",
        "startup s",
        "discovered",
        "discovery ms",
        "rpc p50 ms",
        "rpc p99 ms",
        "replies",
        "missing",
        "replies/s",
        "cpu/rpc ms emu/srv/cli"
    );
    for r in &rows {
        println!(
            "{:>7}  {:>10.1}  {:>10}  {:>13.1}  {:>13.1}  {:>13.1}  {:>9}  {:>8}  {:>11.0}  {:>8.0}/{:>6.0}/{:>6.0}",
            r.nodes,
            r.startup_s,
            r.discovered,
            r.discovery.as_secs_f64() * 1e3,
            ms(r.rpc.p50_ns),
            ms(r.rpc.p99_ns),
            r.replies,
            r.missing,
            r.replies_per_s,
            r.cpu.emulator,
            r.cpu.server,
            r.cpu.client
        );
    }
    println!("(rpc times: publish to last reply of {rpcs} broadcast RPCs of emulated0#generate(100) each;");
    println!(
        " cpu/rpc: CPU time per RPC of the emulator, the nats-server and this client process)"
    );
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
            "cpu_ms_per_rpc": {
                "emulator": r.cpu.emulator,
                "nats_server": r.cpu.server,
                "client": r.cpu.client,
            },
        })).collect::<Vec<_>>(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("fleet.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    );
}
