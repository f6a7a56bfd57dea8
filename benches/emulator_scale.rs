//! End-to-end scale harness for `choir emulate`: starts 1 000, 5 000 and 10 000 emulated
//! daemons (1 agent, 1 collective, one NATS connection each) against a fresh loopback
//! nats-server, and reports start-up time, emulator RSS per daemon and nats-server RSS per
//! daemon. Writes `target/emulator_scale.json`.
//!
//!     cargo bench --bench emulator_scale            # all sizes
//!     EMULATOR_SCALE_SIZES=1000,2000 cargo bench --bench emulator_scale
//!
//! Then, in the same run, a broadcast RPC round (`rpcutil#ping` to every daemon) in secure
//! mode (signed requests, every daemon verifying) against insecure mode, with the daemons in
//! this process, at each size of `EMULATOR_SCALE_SECURE` (default 2000,10000). For each size
//! it prints the median round time of each mode and their ratio (goal <= 1.15), the
//! verifications per secure round and the CPU time spent in them (thread CPU time of the
//! verify calls, `choir_emulator_security_verify_cpu_nanoseconds_total`: flat as the daemons
//! grow, since a request is verified once per process), this process's whole CPU time per
//! round in each mode (getrusage: daemons and client), and the size of the request payload
//! every daemon connection receives in each mode (a signed request carries its certificate
//! and signature). Also written to `target/emulator_scale.json` under `secure`.
//!
//!     EMULATOR_SCALE_SIZES= EMULATOR_SCALE_SECURE=2000,10000 EMULATOR_SCALE_ROUNDS=10 \
//!         cargo bench --bench emulator_scale              # only the secure comparison
//!     EMULATOR_SCALE_SECURE=0 ...                         # skip it
//!
//! Every process it starts is stopped by its own pid; every wait has a timeout.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../protocol/src/security/test_pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use choir::monitor::rss_of;
use common::http::metric_value;
use common::nats::free_port;
use common::{http_get, poll_until, NatsServer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const MIB: f64 = 1024.0 * 1024.0;

struct Emulator {
    child: Child,
    monitor: SocketAddr,
}

impl Emulator {
    fn start(instances: usize, server: &str) -> anyhow::Result<Self> {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_choir"))
            .args([
                "emulate",
                "--instances",
                &instances.to_string(),
                "--name",
                "bench",
            ])
            .args(["--server", server, "--http-port", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start choir emulate")?;
        Ok(Self {
            child,
            monitor: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    fn started(&self) -> Option<f64> {
        let (_, body) = http_get(self.monitor, "/metrics")?;
        metric_value(&body, "choir_emulator_daemons", &[])
    }

    fn rss(&self) -> u64 {
        rss_of(&self.child.id().to_string())
    }

    fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
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
    instances: usize,
    startup_s: f64,
    emulator_rss_mib: f64,
    emulator_kib_per_daemon: f64,
    server_rss_mib: f64,
    server_kib_per_daemon: f64,
}

fn server_pid(server: &NatsServer) -> Option<String> {
    // The harness does not expose the child pid: find the nats-server listening on our port.
    let port = server.port.to_string();
    let out = Command::new("pgrep")
        .args(["-f", &format!("nats-server.*-p {port}")])
        .output()
        .ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(str::to_owned)
}

fn measure(instances: usize, baseline: u64) -> anyhow::Result<Row> {
    let server = NatsServer::start();
    let pid = server_pid(&server).context("nats-server pid not found")?;
    let server_idle = rss_of(&pid);
    let began = Instant::now();
    let emulator = Emulator::start(instances, &server.url())?;
    let ok = poll_until(Duration::from_secs(180), || {
        emulator.started() == Some(instances as f64)
    });
    let startup = began.elapsed().as_secs_f64();
    anyhow::ensure!(ok, "{instances} daemons did not start within 180 s");
    // Let allocations settle (bounded, measurement only).
    std::thread::sleep(Duration::from_secs(2));
    let emu_rss = emulator.rss();
    let server_rss = rss_of(&pid);
    emulator.stop();
    drop(server);
    let n = instances as f64;
    Ok(Row {
        instances,
        startup_s: startup,
        emulator_rss_mib: emu_rss as f64 / MIB,
        emulator_kib_per_daemon: emu_rss.saturating_sub(baseline) as f64 / 1024.0 / n,
        server_rss_mib: server_rss as f64 / MIB,
        server_kib_per_daemon: server_rss.saturating_sub(server_idle) as f64 / 1024.0 / n,
    })
}

/// Median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// What one mode of the secure comparison measured.
struct Rounds {
    /// Median round time, ms.
    median_ms: f64,
    /// Verifications per round (distinct requests verified).
    verifications: f64,
    /// Thread CPU time spent in the verify calls per round, µs.
    verify_cpu_us: f64,
    /// CPU time of this whole process (daemons and client) per round, ms (getrusage).
    process_cpu_ms: f64,
    /// Bytes of one broadcast request payload as a daemon receives it.
    payload_bytes: usize,
}

/// User + system CPU time of this process, in µs.
fn process_cpu_us() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| {
        let us = |t: nix::sys::time::TimeVal| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000
                + u64::try_from(t.tv_usec()).unwrap_or(0)
        };
        us(u.user_time()) + us(u.system_time())
    })
}

/// One mode of the secure comparison: `rounds` broadcast `rpcutil#ping` rounds to a fresh
/// fleet of `instances` daemons in this process.
async fn rpc_rounds(
    server: &NatsServer,
    instances: usize,
    rounds: usize,
    policy: Option<choir::actors::protocol::security::SecurityPolicy>,
    signer: Option<choir::actors::protocol::security::SigningIdentity>,
) -> anyhow::Result<Rounds> {
    use choir::actors::client::{Addressing, ChoriaClient, ClientOptions, Expectation, RpcCall};
    use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};
    use futures::StreamExt as _;
    let mut spec = FleetSpec::new("bench", instances, vec![server.url()]);
    spec.secure = policy;
    let metrics = EmulatorMetrics::unregistered();
    let fleet = Fleet::start(spec, metrics.clone())?;
    anyhow::ensure!(
        fleet.wait_started(Duration::from_secs(180), |_| {}).await,
        "{instances} daemons did not start within 180 s"
    );
    let mut options = ClientOptions::new("mcollective", server.url());
    if let Some(signer) = signer {
        options = options.signed_by(signer);
    }
    let client = ChoriaClient::connect(&[server.url()], options, 1 << 18).await?;
    let call = RpcCall {
        agent: "rpcutil".into(),
        action: "ping".into(),
        data: serde_json::json!({}),
        filter: Default::default(),
        addressing: Addressing::Broadcast,
        expectation: Expectation::Count(instances),
        timeout: Duration::from_secs(60),
        keep_bodies: false,
    };
    // One warm-up round, watched by a plain subscriber for the size of the request payload
    // every daemon connection receives; then the measured rounds.
    let watcher = async_nats::connect(server.url()).await?;
    let mut requests = watcher
        .subscribe("mcollective.broadcast.agent.rpcutil")
        .await?;
    watcher.flush().await?;
    client.rpc(&call).await?;
    let payload_bytes = tokio::time::timeout(Duration::from_secs(10), requests.next())
        .await
        .ok()
        .flatten()
        .map_or(0, |m| m.payload.len());
    drop(requests);
    drop(watcher);
    let verified_before = metrics.security.verified.get();
    let cpu_before = metrics.security.verify_cpu_nanos.get();
    let process_before = process_cpu_us();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let began = Instant::now();
        let result = client.rpc(&call).await?;
        times.push(began.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            result.replies.len() == instances,
            "a round got {} of {instances} replies",
            result.replies.len()
        );
    }
    let n = rounds as f64;
    let process_cpu_ms = process_cpu_us().saturating_sub(process_before) as f64 / 1e3 / n;
    let verifications = (metrics.security.verified.get() - verified_before) as f64 / n;
    let verify_cpu_us = (metrics.security.verify_cpu_nanos.get() - cpu_before) as f64 / 1e3 / n;
    fleet.shutdown().await;
    Ok(Rounds {
        median_ms: median(&mut times),
        verifications,
        verify_cpu_us,
        process_cpu_ms,
        payload_bytes,
    })
}

/// Secure against insecure broadcast RPC rounds to `instances` daemons, in one run.
fn secure_comparison(
    server: &NatsServer,
    ca: &pki::TestCa,
    client: &pki::Issued,
    instances: usize,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    use choir::actors::protocol::security::{SecurityPolicy, SigningIdentity};
    let signer = SigningIdentity::load(&client.cert, &client.key)?;
    let (insecure, secure) = actix_rt::System::new().block_on(async {
        let insecure = rpc_rounds(server, instances, rounds, None, None).await?;
        let secure = rpc_rounds(
            server,
            instances,
            rounds,
            Some(SecurityPolicy::with_defaults(&ca.cert)),
            Some(signer),
        )
        .await?;
        anyhow::Ok((insecure, secure))
    })?;
    let ratio = secure.median_ms / insecure.median_ms.max(1e-9);
    println!(
        "{instances:>9} {:>13.1} {:>11.1} {:>7.2}x {:>8.1} {:>15.1} {:>12.1} {:>12.1} {:>9} {:>9}",
        insecure.median_ms,
        secure.median_ms,
        ratio,
        secure.verifications,
        secure.verify_cpu_us,
        insecure.process_cpu_ms,
        secure.process_cpu_ms,
        insecure.payload_bytes,
        secure.payload_bytes,
    );
    Ok(serde_json::json!({
        "instances": instances,
        "rounds": rounds,
        "insecure_median_ms": insecure.median_ms,
        "secure_median_ms": secure.median_ms,
        "ratio": ratio,
        "verifications_per_round": secure.verifications,
        "verify_cpu_us_per_round": secure.verify_cpu_us,
        "insecure_process_cpu_ms_per_round": insecure.process_cpu_ms,
        "secure_process_cpu_ms_per_round": secure.process_cpu_ms,
        "insecure_request_bytes": insecure.payload_bytes,
        "secure_request_bytes": secure.payload_bytes,
    }))
}

/// The secure comparison at every size of `sizes`, on one nats-server with one CA.
fn secure_comparisons(sizes: &[usize], rounds: usize) -> anyhow::Result<Vec<serde_json::Value>> {
    let dir = tempfile::tempdir()?;
    let ca = pki::TestCa::new(dir.path(), "ca");
    let client = ca.issue(&pki::CertSpec::client("bench.mcollective"));
    let server = NatsServer::start();
    println!(
        "broadcast rpcutil#ping, median of {rounds} rounds per mode (goal: secure/insecure <= 1.15x; \
         verify CPU per round flat as daemons grow)"
    );
    println!(
        "{:>9} {:>13} {:>11} {:>8} {:>8} {:>15} {:>12} {:>12} {:>9} {:>9}",
        "daemons",
        "insecure ms",
        "secure ms",
        "ratio",
        "verifs",
        "verify CPU us",
        "insec CPU ms",
        "secure CPU ms",
        "insec B",
        "secure B"
    );
    sizes
        .iter()
        .map(|&n| secure_comparison(&server, &ca, &client, n, rounds))
        .collect()
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let env_number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let secure_sizes: Vec<usize> = std::env::var("EMULATOR_SCALE_SECURE")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![2_000, 10_000])
        .into_iter()
        .filter(|&n| n > 0)
        .collect();
    let secure_rounds = env_number("EMULATOR_SCALE_ROUNDS", 10).max(1);
    let sizes: Vec<usize> = std::env::var("EMULATOR_SCALE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 5_000, 10_000]);

    // Baseline: the emulator process with no daemon.
    let server = NatsServer::start();
    let idle = Emulator::start(0, &server.url())?;
    assert!(poll_until(Duration::from_secs(30), || idle.started() == Some(0.0)));
    std::thread::sleep(Duration::from_secs(1));
    let baseline = idle.rss();
    idle.stop();
    drop(server);

    println!(
        "emulator baseline RSS (0 daemons): {:.1} MiB",
        baseline as f64 / MIB
    );
    println!(
        "{:>9} {:>10} {:>14} {:>16} {:>12} {:>16}",
        "daemons", "startup s", "emulator MiB", "KiB/daemon", "server MiB", "server KiB/d"
    );
    let mut rows = Vec::new();
    for n in sizes {
        let r = measure(n, baseline)?;
        println!(
            "{:>9} {:>10.2} {:>14.1} {:>16.1} {:>12.1} {:>16.1}",
            r.instances,
            r.startup_s,
            r.emulator_rss_mib,
            r.emulator_kib_per_daemon,
            r.server_rss_mib,
            r.server_kib_per_daemon
        );
        rows.push(r);
    }
    let go_emulator_kib = 2.0 * 1024.0;
    if let Some(last) = rows.last() {
        println!(
            "Go emulator ~2 MB/daemon: choir uses {:.0}x less per daemon at {} daemons",
            go_emulator_kib / last.emulator_kib_per_daemon.max(0.001),
            last.instances
        );
    }
    let secure = if secure_sizes.is_empty() {
        Vec::new()
    } else {
        secure_comparisons(&secure_sizes, secure_rounds)?
    };
    let json = serde_json::json!({
        "bench": "emulator_scale",
        "secure": secure,
        "agents": 1,
        "collectives": 1,
        "baseline_rss_mib": baseline as f64 / MIB,
        "rows": rows.iter().map(|r| serde_json::json!({
            "instances": r.instances,
            "startup_s": r.startup_s,
            "emulator_rss_mib": r.emulator_rss_mib,
            "emulator_kib_per_daemon": r.emulator_kib_per_daemon,
            "server_rss_mib": r.server_rss_mib,
            "server_kib_per_daemon": r.server_kib_per_daemon,
        })).collect::<Vec<_>>(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("emulator_scale.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
