//! End-to-end benchmark of the federation broker, in one run:
//!
//! 1. **latency**: the same RPC (`rpcutil#ping`) to 1 000 emulated daemons, sent directly on
//!    the collective server and through a `choir run` node brokering the cluster (federation
//!    server → broker → collective server → daemons → broker → federation server); time to
//!    the last reply for both (median of 11 rounds, alternating) and the ratio federated/direct
//!    (goal ≤ 1.3);
//! 2. **throughput**: pre-built federated requests with one target each pushed through the
//!    broker as fast as it forwards them (at most a window in flight), counted where they
//!    arrive on the collective server; forwarded messages/s (goal ≥ 100 000). Publisher and
//!    sink are bare NATS clients on their own threads ([`raw`]): on two shared cores every
//!    µs the apparatus spends per message is taken from the broker.
//!
//! Prints a table and writes `target/federation_bench.json`. Every wait has a deadline.
//!
//!     cargo bench --bench federation
//!     FEDERATION_BENCH_DAEMONS=500 FEDERATION_BENCH_MESSAGES=100000 cargo bench --bench federation
//!     FEDERATION_BENCH_WORKERS=2 cargo bench --bench federation   # broker `workers` (default: config default)
//!     FEDERATION_BENCH_ROUNDS=50 FEDERATION_BENCH_MESSAGES=0 cargo bench --bench federation  # profile the RPC path
//!
//! Besides the times it prints the CPU time (user + system, from `/proc/<pid>/stat`) each
//! process used per message: per message of the federated RPC rounds (request and replies)
//! and per forwarded message of the throughput phase. These depend little on what else the
//! machine runs, unlike the times; the throughput phase also reports how many cores the
//! machine had busy and how much of that was processes outside the benchmark (`/proc/stat`),
//! so a run on a loaded machine shows as such.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "federation/raw.rs"]
mod raw;
#[path = "../tests/federation/support.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use choir::actors::protocol::{encode_request, subject, Request, TransportHeaders};
use common::{ChoirNode, NatsServer};
use futures::StreamExt as _;
use support::{metric_sum, FedClient, SENDER};

const CLUSTER: &str = "bench";
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

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat` (whole
/// thread group; 10 ms resolution: `USER_HZ` is 100 on Linux).
fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The pid of the nats-server listening on `port` (found by its command line).
fn nats_pid(port: u16) -> Option<u32> {
    let port = port.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let is_nats = args.first()?.ends_with(b"nats-server");
            let on_port = args
                .windows(2)
                .any(|w| w[0] == b"-p" && w[1] == port.as_bytes());
            (is_nats && on_port).then_some(pid)
        })
}

/// CPU time the whole machine spent busy and in all, summed over its cores (`/proc/stat`).
fn machine_time() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let all: u64 = ticks.iter().take(8).sum();
    // idle and iowait are the 4th and 5th fields.
    let idle: u64 = ticks.iter().skip(3).take(2).sum();
    let ms = |t: u64| Duration::from_millis(t * 10);
    (ms(all - idle), ms(all))
}

/// CPU time of the processes taking part in the benchmark.
struct Cpu {
    processes: Vec<(&'static str, u32)>,
}

impl Cpu {
    fn sample(&self) -> Vec<Duration> {
        self.processes
            .iter()
            .map(|&(_, pid)| cpu_time(pid))
            .collect()
    }

    /// µs of CPU per `per` since `before`, by process.
    fn per_message(&self, before: &[Duration], per: u64) -> Vec<(&'static str, f64)> {
        self.processes
            .iter()
            .zip(self.sample())
            .zip(before)
            .map(|((&(name, _), now), before)| {
                let used = now.saturating_sub(*before).as_secs_f64() * 1e6;
                (name, used / per.max(1) as f64)
            })
            .collect()
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let daemons = env_or("FEDERATION_BENCH_DAEMONS", 1_000);
    let messages = env_or("FEDERATION_BENCH_MESSAGES", 300_000) as u64;
    let rounds = env_or("FEDERATION_BENCH_ROUNDS", 11).max(1);
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
        let cpu = Cpu {
            processes: vec![
                ("broker (choir run)", node.pid()),
                ("bench (client, daemons, sink)", std::process::id()),
                ("federation nats-server", nats_pid(fed.port).unwrap_or(0)),
                (
                    "collective nats-server",
                    nats_pid(collective.port).unwrap_or(0),
                ),
            ],
        };
        let broadcast = subject::broadcast_agent("mcollective", "rpcutil");
        let federation_subject = subject::federation_requests(CLUSTER);

        // Latency: alternate direct and federated rounds (first pair is a warm-up).
        let mut direct_times = Vec::new();
        let mut federated_times = Vec::new();
        let mut federated_cpu = vec![Duration::ZERO; cpu.processes.len()];
        for round in 0..=rounds {
            let request = rpc();
            let reply_to = FedClient::reply_subject(&request);
            let payload =
                encode_request(&request, TransportHeaders::for_request(&reply_to, SENDER)).unwrap();
            let (d, got_d) =
                time_to_last_reply(&direct.nats, &broadcast, &reply_to, payload, daemons).await;
            let request = rpc();
            let reply_to = FedClient::reply_subject(&request);
            let payload = FedClient::federated(&request, vec![broadcast.clone()], &fed.url());
            let before = cpu.sample();
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
                for ((sum, now), before) in federated_cpu.iter_mut().zip(cpu.sample()).zip(before) {
                    *sum += now.saturating_sub(before);
                }
            }
        }
        let direct_ms = median(direct_times).as_secs_f64() * 1e3;
        let federated_ms = median(federated_times).as_secs_f64() * 1e3;
        let ratio = federated_ms / direct_ms;

        // Throughput: one-target federated requests through the broker, counted at the sink.
        // Publisher and sink are bare NATS clients on their own threads (see `raw`).
        let arrived = Arc::new(AtomicU64::new(0));
        let sink = raw::Sink::start(collective.addr(), SINK, arrived.clone());
        let request = rpc();
        let payload = FedClient::federated(&request, vec![SINK.to_owned()], &fed.url());
        let payload_bytes = payload.len();
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let cpu_before = cpu.sample();
        let machine_before = machine_time();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(90);
        let publisher = {
            let (addr, subject, arrived) =
                (fed.addr(), federation_subject.clone(), arrived.clone());
            std::thread::spawn(move || {
                raw::publish(
                    addr, &subject, &payload, messages, WINDOW, &arrived, deadline,
                )
            })
        };
        while !publisher.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (sent, _publisher_connection) = publisher.join().unwrap();
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
        let throughput_cpu = cpu.per_message(&cpu_before, got);
        let machine_after = machine_time();
        // Cores busy during the throughput phase, and the share of processes outside the
        // benchmark (other work on the machine).
        let wall = machine_after
            .1
            .saturating_sub(machine_before.1)
            .as_secs_f64();
        let busy = machine_after
            .0
            .saturating_sub(machine_before.0)
            .as_secs_f64();
        let ours: f64 = throughput_cpu
            .iter()
            .map(|(_, us)| us * got as f64 / 1e6)
            .sum();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let (busy_cores, other_cores) = if wall > 0.0 {
            (busy / wall * cores, (busy - ours).max(0.0) / wall * cores)
        } else {
            (0.0, 0.0)
        };
        drop(sink);
        let published = metric_sum(
            &node,
            "choria_federation_published_msgs",
            &[("name", "nats_egest"), ("connected_to", "collective")],
        );
        let errors = metric_sum(&node, "choria_federation_errors", &[]);

        println!();
        println!(
            "federation broker benchmark ({daemons} emulated daemons, median of {rounds} rounds)"
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
        // One federated round: 1 request and `daemons` replies through the broker.
        let per_reply = (rounds * (daemons + 1)) as f64;
        for ((name, _), used) in cpu.processes.iter().zip(&federated_cpu) {
            println!(
                "{:<44} {:>9.1} µs",
                format!("CPU per federated RPC message: {name}"),
                used.as_secs_f64() * 1e6 / per_reply
            );
        }
        println!(
            "{:<44} {:>12.2}   (of {cores}; other processes {other_cores:.2})",
            "throughput: machine cores busy", busy_cores
        );
        for (name, us) in &throughput_cpu {
            println!(
                "{:<44} {:>9.1} µs",
                format!("CPU per forwarded message: {name}"),
                us
            );
        }

        let json = serde_json::json!({
            "daemons": daemons,
            "rounds": rounds,
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
            "throughput_cores_busy": busy_cores,
            "throughput_cores_other_processes": other_cores,
            "cpu_us_per_forwarded_message": throughput_cpu
                .iter()
                .map(|(name, us)| (name.to_string(), serde_json::json!(us)))
                .collect::<serde_json::Map<_, _>>(),
            "cpu_us_per_federated_rpc_message": cpu
                .processes
                .iter()
                .zip(&federated_cpu)
                .map(|((name, _), used)| {
                    let us = used.as_secs_f64() * 1e6 / per_reply;
                    (name.to_string(), serde_json::json!(us))
                })
                .collect::<serde_json::Map<_, _>>(),
        });
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("federation_bench.json");
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        println!("wrote {}", path.display());
        drop(node);
    });
}
