//! `choir emulate` wire daemons on a 3-node nats-server cluster: they learn the cluster's other
//! servers from `connect_urls`, leave a server drained into lame-duck mode at once for the rest
//! of the cluster, and give up a half-open connection (a frozen server) after unanswered pings.
//! Daemons that cannot connect are logged (rate-limited) and counted; registrations above the
//! server's `max_payload` are counted and never sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::http::metric_value;
use common::nats::{free_port, NatsCluster};
use common::node::choir_bin;
use common::{http_get, poll_until};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const DAEMONS: u64 = 30;

struct Emulate {
    child: Child,
    monitor: SocketAddr,
}

impl Emulate {
    fn start(servers: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(choir_bin())
            .args([
                "emulate",
                "--instances",
                &DAEMONS.to_string(),
                "--name",
                "wire",
            ])
            .args(["--server", servers])
            .args(["--http-port", &port.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            monitor: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.monitor, "/metrics")?;
        metric_value(&body, name, &[])
    }
}

impl Drop for Emulate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connections per member, `None` for a member that does not answer.
fn spread(cluster: &NatsCluster) -> Vec<Option<u64>> {
    (0..cluster.servers.len())
        .map(|i| cluster.connections(i))
        .collect()
}

#[test]
fn daemons_leave_a_lame_duck_server_for_the_servers_they_learnt() {
    let cluster = NatsCluster::start(3);
    // The daemons are told about server 0 only: the other two come from its connect_urls.
    let emu = Emulate::start(&cluster.servers[0].url(), &[]);
    assert!(
        poll_until(Duration::from_secs(60), || {
            emu.metric("choir_emulator_daemons") == Some(DAEMONS as f64)
                && cluster.connections(0) == Some(DAEMONS)
        }),
        "daemons did not start on server 0: {:?}",
        spread(&cluster)
    );

    cluster.lame_duck(0);
    // The server closes its clients only after a 30 s grace period: daemons that moved
    // before then left because of the lame-duck INFO.
    let moved = poll_until(Duration::from_secs(20), || {
        let s = spread(&cluster);
        s[1].unwrap_or(0) + s[2].unwrap_or(0) == DAEMONS
            && emu.metric("choir_emulator_connected") == Some(DAEMONS as f64)
    });
    let s = spread(&cluster);
    assert!(moved, "connections per server after lame duck: {s:?}");
    assert!(
        s[1].unwrap_or(0) > 0 && s[2].unwrap_or(0) > 0,
        "all daemons went to one server: {s:?}"
    );
    assert_eq!(
        emu.metric("choir_emulator_lame_duck_moves_total"),
        Some(DAEMONS as f64)
    );
}

#[test]
fn daemons_give_up_a_frozen_server_after_unanswered_pings() {
    let cluster = NatsCluster::start(3);
    let emu = Emulate::start(&cluster.servers[0].url(), &["--ping-interval", "200ms"]);
    assert!(
        poll_until(Duration::from_secs(60), || {
            emu.metric("choir_emulator_daemons") == Some(DAEMONS as f64)
                && cluster.connections(0) == Some(DAEMONS)
        }),
        "daemons did not start on server 0: {:?}",
        spread(&cluster)
    );
    // Frozen: its sockets stay open, so only the pings can tell.
    let pid = Pid::from_raw(i32::try_from(cluster.servers[0].pid().unwrap()).unwrap());
    kill(pid, Signal::SIGSTOP).unwrap();
    let moved = poll_until(Duration::from_secs(45), || {
        cluster.connections(1).unwrap_or(0) + cluster.connections(2).unwrap_or(0) == DAEMONS
    });
    let stale = emu.metric("choir_emulator_stale_connections_total");
    let others = (cluster.connections(1), cluster.connections(2));
    kill(pid, Signal::SIGCONT).unwrap();
    assert!(moved, "connections on servers 1 and 2: {others:?}");
    assert_eq!(stale, Some(DAEMONS as f64));
}

#[test]
fn daemons_that_cannot_connect_are_logged_and_counted() {
    let cluster = NatsCluster::start(1);
    let (down1, down2) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let servers = format!("{},{down1},{down2}", cluster.servers[0].url());
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("emulate.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let child = Command::new(choir_bin())
        .args([
            "emulate",
            "--instances",
            "9",
            "--name",
            "down",
            "--server",
            &servers,
        ])
        .args(["--http-port", &port.to_string(), "--log-format", "json"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let emu = Emulate {
        child,
        monitor: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let emulator_vars = || -> Option<serde_json::Value> {
        let (_, body) = http_get(emu.monitor, "/debug/vars")?;
        let vars: serde_json::Value = serde_json::from_str(&body).ok()?;
        vars["components"]
            .as_array()?
            .iter()
            .find(|c| c["kind"] == "emulator")
            .cloned()
    };
    // 3 of 9 daemons connect; 6 keep failing, several times each.
    assert!(
        poll_until(Duration::from_secs(30), || {
            emu.metric("choir_emulator_connect_failures_total")
                .is_some_and(|n| n >= 18.0)
        }),
        "failures: {:?}",
        emu.metric("choir_emulator_connect_failures_total")
    );
    assert_eq!(emu.metric("choir_emulator_daemons"), Some(3.0));
    assert_eq!(emu.metric("choir_emulator_connect_waiting"), Some(6.0));
    let vars = emulator_vars().expect("the emulator in /debug/vars");
    assert_eq!(vars["name"], "down");
    assert_eq!(vars["state"], "degraded");
    assert_eq!(vars["counters"]["expected"], 9);
    assert_eq!(vars["counters"]["started"], 3);
    assert_eq!(vars["counters"]["connect_waiting"], 6);
    assert!(
        vars["counters"]["connect_failures"].as_u64().unwrap() >= 18,
        "{vars}"
    );

    let warnings = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["fields"]["message"] == "Emulated daemons cannot connect; retrying.")
            .collect()
    };
    // The first line comes one log period (10 s) after the fleet started.
    assert!(
        poll_until(Duration::from_secs(40), || !warnings().is_empty()),
        "no warning in:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let failures = emu.metric("choir_emulator_connect_failures_total").unwrap() as u64;
    let warnings = warnings();
    let first = &warnings[0];
    assert_eq!(first["level"], "WARN");
    let server = first["fields"]["server"].as_str().unwrap();
    assert!(server == down1 || server == down2, "{first}");
    assert!(
        first["fields"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{first}"
    );
    // Rate-limited: one line stands for many failures.
    assert!(
        (warnings.len() as u64) < failures,
        "{} warnings for {failures} failures",
        warnings.len()
    );
}

#[test]
fn registrations_above_the_server_max_payload_are_counted_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("small.conf");
    std::fs::write(&conf, "max_payload: 1024\n").unwrap();
    let server = common::NatsServer::start_with(free_port(), &["-c", conf.to_str().unwrap()]);
    // Every daemon's registration carries a 2 KiB fact: more than the server takes.
    let big = format!("big={}", "x".repeat(2048));
    let emu = Emulate::start(
        &server.url(),
        &[
            "--registration-interval",
            "100ms",
            "--no-registration-splay",
            "--fact",
            &big,
        ],
    );
    assert!(
        poll_until(Duration::from_secs(60), || {
            emu.metric("choir_emulator_oversize_total")
                .is_some_and(|n| n >= 3.0 * DAEMONS as f64)
        }),
        "oversize: {:?}",
        emu.metric("choir_emulator_oversize_total")
    );
    assert_eq!(emu.metric("choir_emulator_registrations_total"), Some(0.0));
    // Nothing oversize went out, so the server closed no connection.
    assert_eq!(emu.metric("choir_emulator_reconnects_total"), Some(0.0));
    assert_eq!(emu.metric("choir_emulator_connected"), Some(DAEMONS as f64));
}
