//! End-to-end scale harness for `choir emulate`: starts 1 000, 5 000 and 10 000 emulated
//! daemons (1 agent, 1 collective, one NATS connection each) against a fresh loopback
//! nats-server, and reports start-up time, emulator RSS per daemon and nats-server RSS per
//! daemon. Writes `target/emulator_scale.json`.
//!
//!     cargo bench --bench emulator_scale            # all sizes
//!     EMULATOR_SCALE_SIZES=1000,2000 cargo bench --bench emulator_scale
//!
//! Every process it starts is stopped by its own pid; every wait has a timeout.

#[path = "../tests/common/mod.rs"]
mod common;

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

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
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
    let json = serde_json::json!({
        "bench": "emulator_scale",
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
