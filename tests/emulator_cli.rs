//! `choir emulate`: /debug/vars shows name, config and RSS; daemons reconnect by themselves
//! after a server restart; a fleet beyond the open-file limit is refused with a clear message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "emulator/client.rs"]
mod client;
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use choir::actors::protocol::{subject, Filter};
use client::TestClient;
use common::http::metric_value;
use common::nats::free_port;
use common::node::choir_bin;
use common::{http_get, poll_until, NatsServer};

struct Emulate {
    child: Child,
    monitor: SocketAddr,
}

impl Drop for Emulate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric(monitor: SocketAddr, name: &str) -> Option<f64> {
    let (_, body) = http_get(monitor, "/metrics")?;
    metric_value(&body, name, &[])
}

#[test]
fn debug_vars_and_reconnect_after_server_restart() {
    let mut server = NatsServer::start();
    let port = free_port();
    let child = Command::new(choir_bin())
        .args([
            "emulate",
            "--instances",
            "30",
            "--agents",
            "2",
            "--name",
            "cli",
        ])
        .args(["--server", &format!("127.0.0.1:{}", server.port)])
        .args(["--http-port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let emu = Emulate {
        child,
        monitor: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    assert!(poll_until(Duration::from_secs(30), || {
        metric(emu.monitor, "choir_emulator_daemons") == Some(30.0)
    }));
    let (status, body) = http_get(emu.monitor, "/debug/vars").unwrap();
    assert_eq!(status, 200);
    let vars: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(vars["name"], "cli");
    assert_eq!(vars["config"]["instances"], 30);
    assert_eq!(vars["config"]["agents"], 2);
    assert_eq!(vars["config"]["collectives"], 1);
    assert_eq!(vars["config"]["pid"], emu.child.id());
    assert!(vars["rss_bytes"].as_u64().unwrap() > 0);

    server.restart();
    assert!(
        poll_until(Duration::from_secs(60), || {
            metric(emu.monitor, "choir_emulator_reconnects_total") == Some(30.0)
                && metric(emu.monitor, "choir_emulator_connected") == Some(30.0)
        }),
        "daemons did not all reconnect"
    );
    // And they answer again (subscriptions restored by the client).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let replies = rt.block_on(async {
        let client = TestClient::connect(&server.url()).await;
        let ping = TestClient::request("discovery", "ping", Filter::default());
        client
            .call(
                &subject::broadcast_agent("mcollective", "discovery"),
                &ping,
                30,
                Duration::from_secs(20),
                Duration::ZERO,
            )
            .await
    });
    assert_eq!(replies.len(), 30);
}

#[test]
fn a_fleet_beyond_the_fd_limit_is_refused() {
    let out = Command::new(choir_bin())
        .args(["emulate", "--instances", "5000000", "--http-port", "0"])
        .args(["--server", "127.0.0.1:1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("open files"), "{stderr}");
    assert!(stderr.contains("RLIMIT_NOFILE"), "{stderr}");
    assert!(stderr.contains("3-node nats-server cluster"), "{stderr}");
}

#[test]
fn a_second_emulator_on_a_taken_http_port_says_which_flag_to_pass() {
    // The port another emulator's monitor holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(choir_bin())
        .args(["emulate", "--instances", "1", "--server", "127.0.0.1:1"])
        .args(["--http-port", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("--http-port {port}: cannot listen")),
        "{stderr}"
    );
    assert!(
        stderr.contains("pass a free port, e.g. --http-port"),
        "{stderr}"
    );
    assert!(stderr.contains("--http-port 0"), "{stderr}");
    // The cause is printed once.
    assert_eq!(stderr.matches("in use").count(), 1, "{stderr}");
}
