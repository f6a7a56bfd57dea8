//! `cargo bench --bench replicate`: choir's replicator against the physical ceiling and the
//! alternatives, all in one run on two loopback nats-servers.
//!
//! A source stream is preloaded with N messages of 256 bytes (N = 1 000 000, or
//! `CHOIR_BENCH_MESSAGES`). Then, each into its own target stream:
//! (a) raw acked publish from one client, 256 acks in flight: the ceiling for any client-side
//!     replicator here;
//! (b) nats-server's own mirror of the source (across a leafnode, JetStream domains);
//! (c) a one-message-at-a-time replicator (publish, wait for the ack, ack the source);
//! (d) choir, ordered;
//! (e) choir, queued with 4 workers.
//! It prints msg/s and the ratios d/a, e/a, d/b, d/c, and writes
//! `target/bench-replicate.json`, with the CPU each process used per copied message.
//!
//! Case (f) repeats (a) with a unique `Nats-Msg-Id` on every publish: the difference in the
//! target server's CPU per message between (a) and (f) is what the duplicate check costs, the
//! reason ordered mode sends no `Nats-Msg-Id` by default. Case (g) repeats (a) as one
//! fast-ingest batch (nats-server 2.14+; skipped elsewhere): what the target server spends per
//! message when it acks once per flow window. Case (i) repeats (e) into a target stream made
//! without `allow_batched` (2.14+ only): queued mode's per-message path on the same server,
//! the comparison for its fast path.
//!
//! Case (h) is HA failover: the time from SIGKILL of the leader of three choir nodes to the
//! first new copy, with TTL 5 s (see [`failover`]); it writes `target/bench-replicate-failover.json`.
//!
//! `CHOIR_BENCH_MESSAGES=N` changes the message count, `CHOIR_BENCH_CASES=ade` runs only some
//! cases (ratios of cases not run print as NaN), `CHOIR_BENCH_WINDOW` sets the ordered window.
//!
//! The whole run repeats on each installed nats-server (every `nats-server` on `PATH` and
//! `/usr/sbin/nats-server`, one per version), or only on the one `CHOIR_NATS_SERVER` names,
//! with one table per server, that server's own mirror as case (b) each time. The JSON holds
//! one entry per server version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::IntoFuture;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    port: u16,
}

/// The nats-servers to run on: `CHOIR_NATS_SERVER`, else every one installed, one per version
/// (oldest first), each with its version.
fn servers() -> Vec<(PathBuf, String)> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("CHOIR_NATS_SERVER") {
        candidates.push(PathBuf::from(path));
    } else {
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                candidates.push(dir.join("nats-server"));
            }
        }
        candidates.push(PathBuf::from("/usr/sbin/nats-server"));
    }
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    for path in candidates {
        let Ok(out) = Command::new(&path).arg("--version").output() else {
            continue;
        };
        // "nats-server: v2.15.1"
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let version = text.trim().rsplit('v').next().unwrap_or("").to_owned();
        if version.is_empty() || found.iter().any(|(_, v)| *v == version) {
            continue;
        }
        found.push((path, version));
    }
    found.sort_by_key(|(_, v)| {
        v.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    assert!(!found.is_empty(), "no nats-server found");
    found
}

impl Server {
    fn start(binary: &Path, conf: &Path, port: u16) -> Self {
        let child = Command::new(binary)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(js: &jetstream::Context, name: &str) -> u64 {
    match js.get_stream(name).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits until `name` holds `n` messages; returns msg/s between the first and the last.
async fn rate_of_fill(js: &jetstream::Context, name: &str, n: u64, limit: Duration) -> f64 {
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    loop {
        let c = count(js, name).await;
        if c > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if c >= n {
            let from = first.unwrap_or(start);
            let secs = from.elapsed().as_secs_f64().max(1e-3);
            return (n.saturating_sub(1)) as f64 / secs;
        }
        assert!(
            start.elapsed() < limit,
            "{name}: only {c} of {n} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publish_window(
    js: &jetstream::Context,
    prefix: &str,
    n: u64,
    payload: &bytes::Bytes,
) -> f64 {
    let start = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        acks.push(
            js.publish(format!("{prefix}.{}", i % 16), payload.clone())
                .await
                .unwrap()
                .into_future(),
        );
        if acks.len() >= 256 {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(a) = acks.next().await {
        a.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// (f): as [`publish_window`], each message with its own `Nats-Msg-Id`.
async fn publish_window_with_msg_id(
    js: &jetstream::Context,
    prefix: &str,
    n: u64,
    payload: &bytes::Bytes,
) -> f64 {
    let start = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("bench:{prefix}:{i}").as_str());
        acks.push(
            js.publish_with_headers(format!("{prefix}.{}", i % 16), headers, payload.clone())
                .await
                .unwrap()
                .into_future(),
        );
        if acks.len() >= 256 {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(a) = acks.next().await {
        a.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// (g): as [`publish_window`], in one fast-ingest batch (nats-server 2.14+, `allow_batched`):
/// the server acks every `flow` messages, two flow windows in flight. `None` when the server
/// refuses the batch (no fast ingest there).
async fn publish_fast_batch(
    client: &async_nats::Client,
    prefix: &str,
    n: u64,
    payload: &bytes::Bytes,
) -> Option<f64> {
    const FLOW: u64 = 128;
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(format!("{inbox}.>")).await.unwrap();
    let start = Instant::now();
    let mut acked = 0u64;
    for seq in 1..=n {
        while seq > acked + 2 * FLOW {
            let answer = tokio::time::timeout(Duration::from_secs(10), answers.next())
                .await
                .ok()??;
            let v: serde_json::Value = serde_json::from_slice(&answer.payload).ok()?;
            if v.get("error").is_some() || v["type"] == "err" || v["type"] == "gap" {
                eprintln!("(g) fast batch refused: {v}");
                return None;
            }
            acked = acked.max(v["seq"].as_u64().unwrap_or(0));
        }
        let op = if seq == 1 { 0 } else { 1 };
        let reply = format!("{inbox}.b.{FLOW}.fail.{seq}.{op}.$FI");
        client
            .publish_with_reply(format!("{prefix}.{}", seq % 16), reply, payload.clone())
            .await
            .unwrap();
    }
    // End the batch (nothing stored) and wait for its final ack.
    let reply = format!("{inbox}.b.{FLOW}.fail.{}.3.$FI", n + 1);
    client
        .publish_with_reply(format!("{prefix}.0"), reply, bytes::Bytes::new())
        .await
        .unwrap();
    loop {
        let answer = tokio::time::timeout(Duration::from_secs(10), answers.next())
            .await
            .ok()??;
        let v: serde_json::Value = serde_json::from_slice(&answer.payload).ok()?;
        if v.get("count").is_some() {
            break;
        }
        if v.get("error").is_some() {
            eprintln!("(g) fast batch refused: {v}");
            return None;
        }
    }
    Some(n as f64 / start.elapsed().as_secs_f64())
}

/// (c): one message at a time, bounded by count and time.
async fn one_at_a_time(source: &jetstream::Context, target: &jetstream::Context, n: u64) -> f64 {
    let stream = source.get_stream("ORDERS").await.unwrap();
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("one_at_a_time".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let limit = n.min(100_000);
    let start = Instant::now();
    let mut done = 0u64;
    while done < limit && start.elapsed() < Duration::from_secs(10) {
        let m = messages.next().await.unwrap().unwrap();
        let subject = format!("one.{}", m.subject);
        target
            .publish(subject, m.payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        m.ack().await.unwrap();
        done += 1;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// CPU seconds (user + system) a process has used so far; 0 when it cannot be read.
fn cpu_secs(pid: u32) -> f64 {
    // Fields 14 and 15 of /proc/<pid>/stat, counted after the command name's closing
    // parenthesis, in USER_HZ ticks (100 per second on Linux).
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// CPU used by the source server, the target server and choir during one case.
struct CpuUse {
    pids: [u32; 3],
    start: [f64; 3],
}

impl CpuUse {
    fn start(source: &Server, target: &Server, choir: u32) -> Self {
        let pids = [source.child.id(), target.child.id(), choir];
        Self {
            pids,
            start: pids.map(cpu_secs),
        }
    }

    /// Microseconds of CPU per message for source, target and choir.
    fn per_message(&self, n: u64) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (i, pid) in self.pids.iter().enumerate() {
            out[i] = (cpu_secs(*pid) - self.start[i]) * 1e6 / n as f64;
        }
        out
    }
}

fn run_choir(dir: &Path, source: &Server, target: &Server, name: &str, extra: &str) -> Child {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"bench\"\nstate_dir = {:?}\nmonitor = \"off\"\n\n\
             [networks.source]\nurls = [\"{}\"]\n[networks.target]\nurls = [\"{}\"]\n\n\
             [replicators.{name}]\nsource = \"source\"\ntarget = \"target\"\nstream = \"ORDERS\"\n{extra}\n",
            dir.join(format!("state-{name}")).display().to_string(),
            source.url(),
            target.url()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_choir"))
        .arg("run")
        .arg(&config)
        // INFO from the queued loop only: which publish path each worker took.
        .env("RUST_LOG", "warn,choir_actors::replicator::queued=info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = std::env::var("CHOIR_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut all = Vec::new();
    for (binary, version) in servers() {
        eprintln!("== nats-server {version} ({})", binary.display());
        all.push(bench_server(&binary, &version, n));
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-replicate.json");
    std::fs::write(&out, serde_json::to_string_pretty(&all).unwrap()).unwrap();
    println!("\nwrote {}", out.display());
}

/// Cases (a)-(f) on two fresh servers of `binary`; prints the table and returns the JSON.
fn bench_server(binary: &Path, version: &str, n: u64) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let (sp, tp, lp) = (free_port(), free_port(), free_port());
    let hub = dir.path().join("hub.conf");
    std::fs::write(
        &hub,
        format!(
            "listen: 127.0.0.1:{sp}\njetstream {{ store_dir: {:?}, domain: hub }}\nleafnodes {{ listen: 127.0.0.1:{lp} }}\n",
            dir.path().join("hub").display().to_string()
        ),
    )
    .unwrap();
    let leaf = dir.path().join("leaf.conf");
    std::fs::write(
        &leaf,
        format!(
            "listen: 127.0.0.1:{tp}\njetstream {{ store_dir: {:?}, domain: leaf }}\nleafnodes {{ remotes [ {{ url: \"nats-leaf://127.0.0.1:{lp}\" }} ] }}\n",
            dir.path().join("leaf").display().to_string()
        ),
    )
    .unwrap();
    let source = Server::start(binary, &hub, sp);
    let target = Server::start(binary, &leaf, tp);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let sc = async_nats::connect(source.url()).await.unwrap();
        let tc = async_nats::connect(target.url()).await.unwrap();
        let sjs = jetstream::new(sc.clone());
        let tjs = jetstream::new(tc.clone());
        sjs.create_stream(stream::Config { name: "ORDERS".into(), subjects: vec!["orders.>".into()], ..Default::default() })
            .await
            .unwrap();
        let payload = bytes::Bytes::from(vec![b'x'; 256]);
        eprintln!("preloading {n} messages of 256 bytes ...");
        let preload = publish_window(&sjs, "orders", n, &payload).await;
        eprintln!("preloaded at {preload:.0} msg/s");

        let cases = std::env::var("CHOIR_BENCH_CASES").unwrap_or_else(|_| "abcdefghi".into());
        let on = |case: char| cases.contains(case);
        let mut a = f64::NAN;
        let mut cpu_a = [f64::NAN; 3];
        if on('a') {
            tjs.create_stream(stream::Config { name: "RAW".into(), subjects: vec!["raw.>".into()], ..Default::default() })
                .await
                .unwrap();
            let cpu = CpuUse::start(&source, &target, std::process::id());
            a = publish_window(&tjs, "raw", n, &payload).await;
            cpu_a = cpu.per_message(n);
            eprintln!("(a) raw acked publish: {a:.0} msg/s");
        }

        let mut b = f64::NAN;
        if on('b') {
        tjs.create_stream(stream::Config {
            name: "MIRROR".into(),
            // The hub's JetStream API by its domain prefix: `domain` itself is a client-side
            // field that nats-server 2.11+ refuses as unknown in a stream config.
            mirror: Some(stream::Source {
                name: "ORDERS".into(),
                external: Some(stream::External { api_prefix: "$JS.hub.API".into(), delivery_prefix: None }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        b = rate_of_fill(&tjs, "MIRROR", n, Duration::from_secs(600)).await;
        eprintln!("(b) nats-server mirror: {b:.0} msg/s");
        }
        let mut c = f64::NAN;
        if on('c') {

        tjs.create_stream(stream::Config { name: "ONE".into(), subjects: vec!["one.>".into()], ..Default::default() })
            .await
            .unwrap();
        c = one_at_a_time(&sjs, &tjs, n).await;
        eprintln!("(c) one at a time: {c:.0} msg/s");
        }
        let mut d = f64::NAN;
        let (mut cpu_d, mut cpu_e) = ([f64::NAN; 3], [f64::NAN; 3]);
        if on('d') {

        // The configured default window unless CHOIR_BENCH_WINDOW says otherwise.
        let window = std::env::var("CHOIR_BENCH_WINDOW").map(|w| format!("\nwindow = {w}")).unwrap_or_default();
        let child = run_choir(dir.path(), &source, &target, "ordered", &format!("target_stream = \"COPY_O\"\ntarget_subject_prefix = \"o\"\nmode = \"ordered\"{window}"));
        let cpu = CpuUse::start(&source, &target, child.id());
        d = rate_of_fill(&tjs, "COPY_O", n, Duration::from_secs(900)).await;
        cpu_d = cpu.per_message(n);
        stop(child);
        eprintln!("(d) choir ordered: {d:.0} msg/s");
        }
        let mut e = f64::NAN;
        if on('e') {

        let child = run_choir(dir.path(), &source, &target, "queued", "target_stream = \"COPY_Q\"\ntarget_subject_prefix = \"q\"\nmode = \"queued\"\nworkers = 4");
        let cpu = CpuUse::start(&source, &target, child.id());
        e = rate_of_fill(&tjs, "COPY_Q", n, Duration::from_secs(900)).await;
        cpu_e = cpu.per_message(n);
        stop(child);
        eprintln!("(e) choir queued x4: {e:.0} msg/s");
        }
        let mut f = f64::NAN;
        let mut cpu_f = [f64::NAN; 3];
        if on('f') {
            tjs.create_stream(stream::Config { name: "RAWID".into(), subjects: vec!["rawid.>".into()], ..Default::default() })
                .await
                .unwrap();
            let cpu = CpuUse::start(&source, &target, std::process::id());
            f = publish_window_with_msg_id(&tjs, "rawid", n, &payload).await;
            cpu_f = cpu.per_message(n);
            eprintln!("(f) raw acked publish with Nats-Msg-Id: {f:.0} msg/s");
        }
        let mut g = f64::NAN;
        let mut cpu_g = [f64::NAN; 3];
        if on('g') {
            let mut config = serde_json::json!({"name": "RAWFAST", "subjects": ["rawfast.>"], "allow_batched": true});
            config["storage"] = serde_json::json!("file");
            let created: serde_json::Value = tjs.request("STREAM.CREATE.RAWFAST", &config).await.unwrap();
            if created["config"]["allow_batched"] == true {
                let cpu = CpuUse::start(&source, &target, std::process::id());
                if let Some(rate) = publish_fast_batch(&tc, "rawfast", n, &payload).await {
                    g = rate;
                    cpu_g = cpu.per_message(n);
                    eprintln!("(g) raw fast-ingest batch publish: {g:.0} msg/s");
                }
            } else {
                eprintln!("(g) skipped: this nats-server has no fast-ingest batches");
            }
        }
        let mut i = f64::NAN;
        let mut cpu_i = [f64::NAN; 3];
        if on('i') && !g.is_nan() {
            // (e) on the per-message path of the same server: a target stream made without
            // allow_batched, which choir leaves as it is.
            tjs.create_stream(stream::Config { name: "COPY_QP".into(), subjects: vec!["qp.>".into()], duplicate_window: Duration::from_secs(120), ..Default::default() })
                .await
                .unwrap();
            let child = run_choir(dir.path(), &source, &target, "queued_per_message", "target_stream = \"COPY_QP\"\ntarget_subject_prefix = \"qp\"\nmode = \"queued\"\nworkers = 4");
            let cpu = CpuUse::start(&source, &target, child.id());
            i = rate_of_fill(&tjs, "COPY_QP", n, Duration::from_secs(900)).await;
            cpu_i = cpu.per_message(n);
            stop(child);
            eprintln!("(i) choir queued x4, per-message path: {i:.0} msg/s");
        }
        (a, b, c, d, e, f, g, i, cpu_a, cpu_d, cpu_e, cpu_f, cpu_g, cpu_i)
    });
    let (a, b, c, d, e, f, g, i, cpu_a, cpu_d, cpu_e, cpu_f, cpu_g, cpu_i) = results;
    println!();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split(' ').take(3).collect::<Vec<_>>().join(" ");
    println!("replicate on nats-server {version}: {n} messages of 256 bytes, two loopback servers (load average after the run: {load})");
    println!("{:<44} {:>12}", "case", "msg/s");
    for (name, v) in [
        ("(a) raw acked publish, window 256", a),
        ("(b) nats-server mirror (leafnode)", b),
        ("(c) one-at-a-time replicator", c),
        ("(d) choir ordered", d),
        ("(e) choir queued, 4 workers", e),
        ("(f) as (a), with Nats-Msg-Id", f),
        ("(g) as (a), one fast-ingest batch (2.14+)", g),
        ("(i) as (e), per-message path (2.14+)", i),
    ] {
        println!("{name:<44} {v:>12.0}");
    }
    println!();
    println!("CPU per message (µs)           source server  target server  choir/client");
    for (name, cpu) in [
        ("(a) raw publish (client)", cpu_a),
        ("(d) choir ordered", cpu_d),
        ("(e) choir queued, 4 workers", cpu_e),
        ("(f) raw publish + Nats-Msg-Id", cpu_f),
        ("(g) raw fast-ingest batch", cpu_g),
        ("(i) queued, per-message path", cpu_i),
    ] {
        println!(
            "{name:<30} {:>13.1} {:>14.1} {:>6.1}",
            cpu[0], cpu[1], cpu[2]
        );
    }
    // What the target's duplicate check costs per message: (f) - (a) on the target server.
    let msg_id_us = cpu_f[1] - cpu_a[1];
    println!(
        "Nats-Msg-Id cost on the target server: {msg_id_us:+.1} µs per message ({:+.0} %)",
        msg_id_us / cpu_a[1] * 100.0
    );
    println!();
    println!("{:<12} {:>8} {:>8}", "ratio", "value", "goal");
    for (name, v, goal) in [
        ("d/a", d / a, ">= 0.70"),
        ("e/a", e / a, ">= 0.85"),
        ("e/i", e / i, "-"),
        ("d/b", d / b, ">= 1.0"),
        ("d/c", d / c, ">= 10"),
    ] {
        println!("{name:<12} {v:>8.2} {goal:>8}");
    }
    let json = serde_json::json!({
        "nats_server": version, "load_average": load,
        "messages": n, "payload_bytes": 256,
        "msgs_per_sec": {"raw_publish": a, "mirror": b, "one_at_a_time": c, "choir_ordered": d, "choir_queued_4": e, "raw_publish_msg_id": f, "raw_fast_batch": g, "choir_queued_4_per_message": i},
        "cpu_us_per_message": {
            "raw_publish": {"source_server": cpu_a[0], "target_server": cpu_a[1], "client": cpu_a[2]},
            "choir_ordered": {"source_server": cpu_d[0], "target_server": cpu_d[1], "choir": cpu_d[2]},
            "choir_queued_4": {"source_server": cpu_e[0], "target_server": cpu_e[1], "choir": cpu_e[2]},
            "raw_publish_msg_id": {"source_server": cpu_f[0], "target_server": cpu_f[1], "client": cpu_f[2]},
            "raw_fast_batch": {"source_server": cpu_g[0], "target_server": cpu_g[1], "client": cpu_g[2]},
            "choir_queued_4_per_message": {"source_server": cpu_i[0], "target_server": cpu_i[1], "choir": cpu_i[2]},
        },
        "msg_id_cost_us_target_server": msg_id_us,
        "ratios": {"d_over_a": d / a, "e_over_a": e / a, "e_over_i": e / i, "d_over_b": d / b, "d_over_c": d / c},
    });
    if std::env::var("CHOIR_BENCH_CASES")
        .map(|c| c.contains('h'))
        .unwrap_or(true)
    {
        failover(dir.path(), &source, &target);
    }
    json
}

/// Case (h), HA failover: three choir nodes run one ordered replicator with
/// `[replicators.failover.ha] ttl = "5s"` (the election bucket on the source server). Each
/// round waits until the target caught up, SIGKILLs the leader (found from the election key),
/// publishes one message at once and times how long until it is in the target: only a new
/// leader can copy it. The killed node is started again as a standby before the next round.
/// `CHOIR_BENCH_FAILOVERS` sets the rounds (default 3).
fn failover(dir: &Path, source: &Server, target: &Server) {
    const TTL: Duration = Duration::from_secs(5);
    let rounds: usize = std::env::var("CHOIR_BENCH_FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let start = |i: usize| {
        let config = dir.join(format!("failover-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[node]\nname = \"bench-{i}\"\nstate_dir = {:?}\nmonitor = \"off\"\n\n\
                 [networks.source]\nurls = [\"{}\"]\n[networks.target]\nurls = [\"{}\"]\n\n\
                 [replicators.failover]\nsource = \"source\"\ntarget = \"target\"\nstream = \"FAIL\"\n\
                 target_stream = \"COPY_F\"\ntarget_subject_prefix = \"f\"\n\n\
                 [replicators.failover.ha]\nttl = \"{}\"\nidentity = \"bench-{i}\"\n",
                dir.join(format!("state-failover-{i}")).display().to_string(),
                source.url(),
                target.url(),
                humantime::format_duration(TTL),
            ),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_choir"))
            .arg("run")
            .arg(&config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let times = rt.block_on(async {
        let sjs = jetstream::new(async_nats::connect(source.url()).await.unwrap());
        let tjs = jetstream::new(async_nats::connect(target.url()).await.unwrap());
        sjs.create_stream(stream::Config {
            name: "FAIL".into(),
            subjects: vec!["fail.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        let mut nodes: Vec<Option<Child>> = (0..3).map(|i| Some(start(i))).collect();
        let mut published = 0u64;
        let publish = |sjs: jetstream::Context| async move {
            sjs.publish("fail.x", bytes::Bytes::from_static(b"x"))
                .await
                .unwrap()
                .await
                .unwrap();
        };
        // Who holds the key, once some node does and its copy works.
        let leader = |published: u64| {
            let (sjs, tjs) = (sjs.clone(), tjs.clone());
            async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "no leader copies");
                    let holder = match sjs.get_key_value("CHORIA_LEADER_ELECTION").await {
                        Ok(kv) => kv.get("SR_failover_FAIL").await.ok().flatten(),
                        Err(_) => None,
                    };
                    if let Some(holder) = holder {
                        if count(&tjs, "COPY_F").await >= published {
                            let name = String::from_utf8_lossy(&holder).into_owned();
                            return name.trim_start_matches("bench-").parse::<usize>().unwrap();
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let mut times = Vec::new();
        for round in 0..rounds {
            publish(sjs.clone()).await;
            published += 1;
            let first = leader(published).await;
            // Let the leader renew a few times, so the kill lands at a random point of its
            // renewal cycle.
            tokio::time::sleep(TTL + Duration::from_millis(700 * round as u64)).await;
            let mut child = nodes[first].take().unwrap();
            let killed = Instant::now();
            child.kill().unwrap();
            child.wait().unwrap();
            publish(sjs.clone()).await;
            published += 1;
            while count(&tjs, "COPY_F").await < published {
                assert!(killed.elapsed() < Duration::from_secs(120), "no failover");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let took = killed.elapsed();
            eprintln!(
                "(h) round {round}: leader bench-{first} killed; first new copy after {:.2} s",
                took.as_secs_f64()
            );
            times.push(took.as_secs_f64());
            nodes[first] = Some(start(first));
        }
        for child in nodes.into_iter().flatten() {
            stop(child);
        }
        times
    });
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let worst = sorted.last().copied().unwrap_or(f64::NAN);
    let ttl = TTL.as_secs_f64();
    println!();
    println!(
        "(h) HA failover, TTL {ttl:.0} s, {} rounds: SIGKILL of the leader to the first new copy",
        times.len()
    );
    println!("{:<12} {:>8} {:>10} {:>8}", "", "seconds", "x TTL", "goal");
    println!(
        "{:<12} {median:>8.2} {:>10.2} {:>8}",
        "median",
        median / ttl,
        "< 2"
    );
    println!(
        "{:<12} {worst:>8.2} {:>10.2} {:>8}",
        "worst",
        worst / ttl,
        "< 2"
    );
    let json = serde_json::json!({"ttl_secs": ttl, "seconds": times, "median_secs": median, "worst_secs": worst, "median_over_ttl": median / ttl});
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-replicate-failover.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("wrote {}", out.display());
}
