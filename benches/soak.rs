//! `cargo bench --bench soak`: a fault soak of a whole node.
//!
//! Runs a `config/demo.toml`-like topology as real processes on loopback: three nats-servers
//! (region, central, federation) and one `choir run` node with the registration adapter
//! (region subject → `REGISTRATION` stream), an ordered, sampled replicator of that stream
//! into the central network, an emulated fleet on the region network and a federation broker
//! between the federation and the region network. Around it: a publisher of Choria
//! registration requests (one made-up sender per message, so the sampling tracker copies
//! every one of them), federated discovery pings, and two loops of `choir playbook run` that
//! contend for one nats_kv lock on the central server.
//!
//! At random moments (every 4–10 s) it injects, in shuffled rounds so every kind recurs:
//! SIGKILL of choir (restarted), SIGKILL and restart of each nats-server, SIGSTOP/SIGCONT of
//! each nats-server for 2–5 s, a full target stream (`max_msgs` = what it holds, discard new)
//! for 3–8 s, and garbage on every subject choir listens to (and into the source stream).
//!
//! Then it lets the node catch up and checks: every source message that must be copied (a
//! soak sender's, or garbage without a sender) is in the central stream exactly once, by the
//! `Choir-Provenance` source sequence, and no source message is copied twice; the source
//! stream holds each request once; no lock was held twice (fencing tokens strictly increasing
//! from one critical section to the next, no overlap unless the earlier holder lost its lock);
//! choir's RSS stayed under a bound; no panic in any log; every ERROR line is counted by its
//! metric. It prints a table, writes `target/soak.json`, and exits non-zero when a check
//! fails.
//!
//! ```text
//! cargo bench --bench soak                      # 10 minutes
//! SOAK_DURATION=2m cargo bench --bench soak     # the CI version
//! ```
//!
//! `SOAK_DURATION` (humantime, default 10m), `SOAK_RATE` (registrations per second, default
//! 50), `SOAK_INSTANCES` (emulated daemons, default 20), `SOAK_MAX_RSS_MB` (bound on choir's
//! RSS, default 256), `SOAK_SEED` (fault schedule), `SOAK_KEEP=1` keeps the work directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "soak/faults.rs"]
mod faults;
#[path = "soak/load.rs"]
mod load;
#[path = "soak/procs.rs"]
mod procs;
#[path = "soak/verify.rs"]
mod verify;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use parking_lot::Mutex;

use faults::{Kind, Rng};
use procs::{free_port, http_get, rss_kib, Node, Server};

const SERVERS: [&str; 3] = ["region", "central", "federation"];
const STREAM: &str = "REGISTRATION";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn node_config(dir: &Path, monitor: SocketAddr, servers: &[Server], instances: usize) -> String {
    format!(
        r#"[node]
name = "soak"
state_dir = {state:?}
monitor = "{monitor}"
shutdown_timeout = "5s"

[networks.region]
urls = ["{region}"]

[networks.central]
urls = ["{central}"]

[networks.federation]
urls = ["{federation}"]

[adapters.registration]
network = "region"
subject = "{subject}"
workers = 2
stream = "{STREAM}"
stream_subject = "registration.%s"
protocol = "choria"

[emulator]
network = "region"
name = "emu"
instances = {instances}
agents = 1
collectives = 1
registration_interval = "15s"
registration_subject = "{subject}"

[replicators.registration]
source = "region"
target = "central"
stream = "{STREAM}"
mode = "ordered"
inspect = "sender"
age = "1m"

[replicators.registration.advisories]
subject = "choir.registration.%s.%v"

[federation.{cluster}]
federation = "federation"
collective = "region"
identity = "soak-broker"
workers = 2
"#,
        state = dir.join("state").display().to_string(),
        region = servers[0].url(),
        central = servers[1].url(),
        federation = servers[2].url(),
        subject = load::REGISTRATION,
        cluster = load::CLUSTER,
    )
}

/// The source stream on the region server and the target stream on the central server,
/// created before choir starts: the target discards new messages when full, so the "full
/// target" fault refuses copies instead of deleting old ones.
async fn create_streams(region: &async_nats::Client, central: &async_nats::Client) {
    let config = stream::Config {
        name: STREAM.into(),
        subjects: vec!["registration.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    jetstream::new(region.clone())
        .create_stream(config.clone())
        .await
        .unwrap();
    jetstream::new(central.clone())
        .create_stream(stream::Config {
            discard: stream::DiscardPolicy::New,
            ..config
        })
        .await
        .unwrap();
}

async fn connect(url: String) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .unwrap()
}

/// Samples choir's RSS and scrapes its metrics every second, until `stop`.
struct Watch {
    peak_rss_kib: u64,
    rss_samples: Vec<(f64, u64)>,
    /// Per incarnation: `(log length before the scrape, page)`.
    pages: Vec<Vec<(u64, String)>>,
}

fn watch_once(watch: &Mutex<Watch>, node: &Mutex<Node>, started: Instant) {
    let (pid, incarnation, monitor, log) = {
        let n = node.lock();
        (
            n.pid(),
            n.incarnations.len(),
            n.monitor,
            n.log_path().to_owned(),
        )
    };
    let Some(pid) = pid else { return };
    if let Some(kib) = rss_kib(pid) {
        let mut w = watch.lock();
        w.peak_rss_kib = w.peak_rss_kib.max(kib);
        w.rss_samples.push((started.elapsed().as_secs_f64(), kib));
    }
    let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    if let Some(page) = http_get(monitor, "/metrics") {
        let mut w = watch.lock();
        while w.pages.len() < incarnation {
            w.pages.push(Vec::new());
        }
        // Keep only the latest page per incarnation (and the one before, for the table).
        let pages = &mut w.pages[incarnation - 1];
        if pages.len() >= 2 {
            pages.remove(0);
        }
        pages.push((offset, page));
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let duration = std::env::var("SOAK_DURATION")
        .ok()
        .map(|d| humantime::parse_duration(&d).expect("SOAK_DURATION: a duration such as 2m"))
        .unwrap_or(Duration::from_secs(600));
    let rate: u64 = env_or("SOAK_RATE", 50);
    let instances: usize = env_or("SOAK_INSTANCES", 20);
    let max_rss_mb: u64 = env_or("SOAK_MAX_RSS_MB", 256);
    let seed: u64 = env_or(
        "SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    let workdir = tempfile::Builder::new()
        .prefix("choir-soak-")
        .tempdir()
        .unwrap();
    let dir = workdir.path().to_owned();
    eprintln!(
        "soak: {} with faults, {rate} registrations/s, {instances} emulated daemons, seed {seed}, in {}",
        humantime::format_duration(duration),
        dir.display()
    );

    let servers: Vec<Server> = SERVERS.iter().map(|n| Server::start(&dir, n)).collect();
    let urls: Vec<String> = servers.iter().map(Server::url).collect();
    // The main thread's runtime: setup, faults and checks (the load has its own thread).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (region, central, federation) = rt.block_on(async {
        let region = connect(urls[0].clone()).await;
        let central = connect(urls[1].clone()).await;
        let federation = connect(urls[2].clone()).await;
        create_streams(&region, &central).await;
        (region, central, federation)
    });

    let monitor = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let node = Arc::new(Mutex::new(Node::start(
        &dir,
        &node_config(&dir, monitor, &servers, instances),
        monitor,
    )));
    let servers = Arc::new(Mutex::new(servers));
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let watch = Arc::new(Mutex::new(Watch {
        peak_rss_kib: 0,
        rss_samples: Vec::new(),
        pages: Vec::new(),
    }));
    let watcher = {
        let (watch, node, stop) = (watch.clone(), node.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                watch_once(&watch, &node, started);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    // The load, on a thread and runtime of its own so that it runs while the main thread
    // sleeps between faults.
    let load = {
        let (region_url, federation_url, stop) = (urls[0].clone(), urls[2].clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let publisher =
                    tokio::spawn(load::publish_registrations(region_url, rate, stop.clone()));
                let pinger = tokio::spawn(load::federated_pings(
                    federation_url,
                    instances as u64,
                    Duration::from_secs(3),
                    stop,
                ));
                (publisher.await.unwrap(), pinger.await.unwrap())
            })
        })
    };
    let (playbook, sections) = load::lock_playbook(&dir, &urls[1]);
    let runs = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let (playbook, dir, stop, runs, counter) = (
                playbook.clone(),
                dir.clone(),
                stop.clone(),
                runs.clone(),
                counter.clone(),
            );
            std::thread::spawn(move || {
                load::playbook_loop(name, playbook, dir, stop, runs, counter)
            })
        })
        .collect();

    // The faults.
    let mut rng = Rng::new(seed);
    let mut injected: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut garbage_sent = 0u64;
    let mut choir_exits = Vec::new();
    let mut plan = Vec::new();
    while started.elapsed() + Duration::from_secs(10) < duration {
        std::thread::sleep(rng.millis(4_000, 10_000));
        if started.elapsed() + Duration::from_secs(10) >= duration {
            break;
        }
        if !node.lock().running() {
            choir_exits.push(format!(
                "choir exited on its own at {:.0}s",
                started.elapsed().as_secs_f64()
            ));
            node.lock().restart();
        }
        if plan.is_empty() {
            plan = faults::cycle(&mut rng, SERVERS.len());
        }
        let kind = plan.pop().unwrap();
        eprintln!(
            "[{:>4.0}s] {}",
            started.elapsed().as_secs_f64(),
            kind.name(&SERVERS)
        );
        match kind {
            Kind::KillChoir => {
                node.lock().kill();
                std::thread::sleep(rng.millis(500, 3_000));
                node.lock().restart();
            }
            Kind::KillServer(i) => {
                servers.lock()[i].kill();
                std::thread::sleep(rng.millis(500, 3_000));
                servers.lock()[i].restart();
            }
            Kind::StopServer(i) => {
                servers.lock()[i].pause(true);
                std::thread::sleep(rng.millis(2_000, 5_000));
                servers.lock()[i].pause(false);
            }
            Kind::FullTarget => {
                let pause = rng.millis(3_000, 8_000);
                rt.block_on(async {
                    if faults::set_target_full(&central, STREAM, true).await {
                        tokio::time::sleep(pause).await;
                    }
                    assert!(
                        faults::set_target_full(&central, STREAM, false).await,
                        "cannot lift the target stream's limit again"
                    );
                });
            }
            Kind::Garbage => {
                garbage_sent += rt.block_on(faults::send_garbage(&region, &federation, &mut rng));
            }
        }
        *injected.entry(kind).or_default() += 1;
    }
    let load_time = started.elapsed();

    // Stop the load, let the node catch up, then check.
    stop.store(true, Ordering::Relaxed);
    let (published, pings) = load.join().unwrap();
    for l in loops {
        let _ = l.join();
    }
    let _ = watcher.join();
    if !node.lock().running() {
        choir_exits.push("choir exited on its own during the load".into());
        node.lock().restart();
    }
    eprintln!(
        "load stopped after {:.0}s; waiting for the node to catch up ...",
        load_time.as_secs_f64()
    );
    let catch_up = Instant::now();
    let mut replication = verify::Replication::default();
    let mut source_len = 0;
    let mut target_len = 0;
    while catch_up.elapsed() < Duration::from_secs(120) {
        watch_once(&watch, &node, started);
        let (source, target) = rt.block_on(async {
            (
                verify::read_stream(&region, STREAM, Duration::from_secs(30)).await,
                verify::read_stream(&central, STREAM, Duration::from_secs(30)).await,
            )
        });
        if let (Some(source), Some(target)) = (source, target) {
            replication = verify::replication(&published, &source, &target);
            source_len = source.len();
            target_len = target.len();
            if replication.lost == 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    let caught_up_in = catch_up.elapsed();
    // Let the watcher take a last page, then stop choir cleanly.
    watch_once(&watch, &node, started);
    let exit = node.lock().stop(Duration::from_secs(15));
    let clean_exit = exit.is_some_and(|s| s.success());

    let node = node.lock();
    let watch = watch.lock();
    let locks = verify::locks(&runs.lock(), &sections);
    let playbook_log = dir.join("playbook.log");
    let server_logs: Vec<_> = SERVERS
        .iter()
        .map(|n| dir.join(n).join("server.log"))
        .collect();
    let mut extra: Vec<&Path> = vec![&playbook_log];
    extra.extend(server_logs.iter().map(|p| p.as_path()));
    let logs = verify::logs(node.log_path(), &node.incarnations, &watch.pages, &extra);
    let server_log_paths: Vec<&Path> = server_logs.iter().map(|p| p.as_path()).collect();
    let violations = verify::protocol_violations(&server_log_paths);
    let peak_rss_mb = watch.peak_rss_kib as f64 / 1024.0;

    let mut failures = Vec::new();
    if replication.lost > 0 {
        failures.push(format!(
            "{} source messages never reached the target (e.g. seqs {:?})",
            replication.lost, replication.lost_examples
        ));
    }
    if replication.duplicated > 0 {
        failures.push(format!(
            "{} source messages copied more than once",
            replication.duplicated
        ));
    }
    if replication.phantom > 0 {
        failures.push(format!(
            "{} target messages without a source message",
            replication.phantom
        ));
    }
    if replication.source_duplicates > 0 {
        failures.push(format!(
            "{} requests stored twice in the source stream",
            replication.source_duplicates
        ));
    }
    if replication.checked == 0 {
        failures.push("no message was checked".into());
    }
    if locks.token_not_increasing > 0 || locks.overlapping_unexplained > 0 {
        failures.push(format!("locks: {:?}", locks.examples));
    }
    if locks.held == 0 {
        failures.push("no playbook run ever held the lock".into());
    }
    if peak_rss_mb > max_rss_mb as f64 {
        failures.push(format!(
            "choir's RSS peaked at {peak_rss_mb:.0} MiB (bound {max_rss_mb} MiB)"
        ));
    }
    if logs.panics > 0 {
        failures.push(format!("{} panics: {:?}", logs.panics, logs.panic_examples));
    }
    if !logs.error_without_metric.is_empty() {
        failures.push(format!(
            "ERROR lines without a matching metric: {:?}",
            logs.error_without_metric
        ));
    }
    if !violations.is_empty() {
        failures.push(format!(
            "{} connections of choir closed by a server for a protocol violation, e.g. {:?}",
            violations.len(),
            violations.first()
        ));
    }
    failures.extend(choir_exits.iter().cloned());
    if !clean_exit {
        failures.push(format!(
            "choir did not exit cleanly on SIGTERM at the end: {exit:?}"
        ));
    }

    // The table.
    let names: Vec<&str> = SERVERS.to_vec();
    println!();
    println!(
        "soak: {:.0}s of load with faults (seed {seed}), then {:.0}s to catch up",
        load_time.as_secs_f64(),
        caught_up_in.as_secs_f64()
    );
    println!("{:<36} {:>10}", "fault", "injected");
    for (kind, n) in &injected {
        println!("{:<36} {:>10}", kind.name(&names), n);
    }
    println!("{:<36} {:>10}", "(garbage messages sent)", garbage_sent);
    println!();
    println!("{:<36} {:>10}", "check", "value");
    for (name, value) in [
        ("registrations published", replication.published.to_string()),
        (
            "  stored in the source stream",
            replication.ingested.to_string(),
        ),
        ("source stream messages", source_len.to_string()),
        ("target stream messages", target_len.to_string()),
        (
            "messages checked (must be copied)",
            replication.checked.to_string(),
        ),
        ("  lost", replication.lost.to_string()),
        ("  duplicated", replication.duplicated.to_string()),
        ("  phantom", replication.phantom.to_string()),
        (
            "sampled away (emulated senders)",
            replication.sampled_away.to_string(),
        ),
        (
            "source duplicates",
            replication.source_duplicates.to_string(),
        ),
        (
            "playbook runs (succeeded)",
            format!("{} ({})", locks.runs, locks.succeeded),
        ),
        ("  lock holders checked", locks.held.to_string()),
        (
            "  tokens not increasing",
            locks.token_not_increasing.to_string(),
        ),
        (
            "  overlapping sections",
            format!(
                "{} ({} unexplained)",
                locks.overlapping, locks.overlapping_unexplained
            ),
        ),
        (
            "federated pings (full rounds)",
            format!("{} ({})", pings.rounds, pings.full_rounds),
        ),
        ("choir incarnations", node.incarnations.len().to_string()),
        ("peak RSS of choir (MiB)", format!("{peak_rss_mb:.1}")),
        (
            "log lines / WARN / ERROR",
            format!("{} / {} / {}", logs.lines, logs.warn, logs.error),
        ),
        ("panics", logs.panics.to_string()),
        (
            "connections closed for violations",
            violations.len().to_string(),
        ),
        (
            "ERROR lines without metric",
            logs.error_without_metric.values().sum::<u64>().to_string(),
        ),
    ] {
        println!("{name:<36} {value:>10}");
    }
    let mut frequent: Vec<(&String, &u64)> = logs.by_message.iter().collect();
    frequent.sort_by(|a, b| b.1.cmp(a.1));
    println!();
    println!("most frequent WARN/ERROR messages:");
    for (message, n) in frequent.iter().take(8) {
        println!("{n:>7}  {}", message.chars().take(110).collect::<String>());
    }
    let json = serde_json::json!({
        "seed": seed,
        "duration_s": load_time.as_secs_f64(),
        "catch_up_s": caught_up_in.as_secs_f64(),
        "rate": rate,
        "instances": instances,
        "faults": injected.iter().map(|(k, n)| (k.name(&names), *n)).collect::<BTreeMap<_, _>>(),
        "garbage_messages": garbage_sent,
        "replication": replication,
        "source_messages": source_len,
        "target_messages": target_len,
        "locks": locks,
        "federated_pings": pings,
        "choir_incarnations": node.incarnations.len(),
        "peak_rss_mib": peak_rss_mb,
        "rss_samples": watch.rss_samples,
        "logs": logs,
        "protocol_violations": violations,
        "failures": failures,
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("soak.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nwrote {}", out.display());
    let workdir = if std::env::var("SOAK_KEEP").is_ok_and(|v| v == "1") {
        println!("kept {}", workdir.keep().display());
        None
    } else {
        Some(workdir)
    };
    if failures.is_empty() {
        println!("soak: all checks passed");
    } else {
        println!("soak: {} checks FAILED:", failures.len());
        for f in &failures {
            println!("  - {f}");
        }
        // `exit` runs no destructors: stop the servers (choir is already stopped) and remove
        // the work directory first, unless it is to be kept.
        drop(node);
        servers.lock().clear();
        drop(workdir);
        std::process::exit(1);
    }
}
