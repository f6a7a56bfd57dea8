//! `choir emulate --secure`: a signed `choir ping` is answered; insecure pings are refused,
//! counted by reason in `/metrics` and `/debug/vars`, and reported at WARN once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
mod common;
#[path = "../protocol/src/security/test_pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::http::metric_value;
use common::nats::free_port;
use common::node::choir_bin;
use common::{http_get, poll_until, NatsServer};
use pki::{CertSpec, TestCa};

struct Emulate(Child);

impl Drop for Emulate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn refused(monitor: SocketAddr) -> Option<f64> {
    let (_, body) = http_get(monitor, "/metrics")?;
    metric_value(
        &body,
        "choir_emulator_security_refused_total",
        &[("reason", "insecure")],
    )
}

#[test]
fn secure_emulator_answers_signed_pings_and_refuses_insecure_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let rip = ca.issue(&CertSpec::client("rip.mcollective"));
    let server = NatsServer::start();
    let port = free_port();
    let log = dir.path().join("emulate.log");
    let child = Command::new(choir_bin())
        .args(["emulate", "-i", "3", "--name", "sc", "--secure"])
        .args(["--ca", ca.cert.to_str().unwrap()])
        .args(["--server", &server.url(), "--http-port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _emulate = Emulate(child);
    let monitor = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(poll_until(Duration::from_secs(30), || {
        http_get(monitor, "/metrics")
            .and_then(|(_, body)| metric_value(&body, "choir_emulator_daemons", &[]))
            == Some(3.0)
    }));

    let url = server.url();
    let signed = cli::choir(
        &[
            "ping",
            "-s",
            &url,
            "--cert",
            rip.cert.to_str().unwrap(),
            "--key",
            rip.key.to_str().unwrap(),
            "--expect",
            "3",
            "-t",
            "20s",
        ],
        Duration::from_secs(60),
    );
    assert!(signed.status.success(), "{}", signed.stderr);
    for i in 0..3 {
        assert!(
            signed.stdout.contains(&format!("sc-{i}")),
            "{}",
            signed.stdout
        );
    }

    for _ in 0..2 {
        let insecure = cli::choir(&["ping", "-s", &url, "-t", "1s"], Duration::from_secs(60));
        assert!(!insecure.status.success(), "{}", insecure.stdout);
    }
    assert!(
        poll_until(Duration::from_secs(10), || refused(monitor) == Some(2.0)),
        "refusals: {:?}",
        refused(monitor)
    );
    let (_, body) = http_get(monitor, "/debug/vars").unwrap();
    let vars: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(vars["config"]["secure"], 1);
    assert_eq!(vars["security"]["refused"]["insecure"], 2);
    assert_eq!(vars["security"]["verified"], 3);
    let warned = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("Refusing insecure requests")
            .count()
    };
    assert!(poll_until(Duration::from_secs(10), || warned() >= 1));
    assert_eq!(warned(), 1, "{}", std::fs::read_to_string(&log).unwrap());
}

#[test]
fn secure_node_emulator_shows_refused_requests_in_debug_vars_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let rip = ca.issue(&CertSpec::client("rip.mcollective"));
    let server = NatsServer::start();
    let url = server.url();
    let node = common::ChoirNode::start(&format!(
        "[networks.region]\nurls = [\"{url}\"]\n\n[emulator]\nnetwork = \"region\"\nname = \"sn\"\ninstances = 2\nsecure = true\nsecurity_ca = {:?}\n",
        ca.cert.display().to_string()
    ));
    let monitor = node.monitor;
    assert!(
        poll_until(Duration::from_secs(30), || {
            http_get(monitor, "/metrics")
                .and_then(|(_, body)| metric_value(&body, "choir_emulator_daemons", &[]))
                == Some(2.0)
        }),
        "{}",
        node.log()
    );

    let signed = cli::choir(
        &[
            "ping",
            "-s",
            &url,
            "--cert",
            rip.cert.to_str().unwrap(),
            "--key",
            rip.key.to_str().unwrap(),
            "--expect",
            "2",
            "-t",
            "20s",
        ],
        Duration::from_secs(60),
    );
    assert!(signed.status.success(), "{}", signed.stderr);
    for _ in 0..2 {
        let insecure = cli::choir(&["ping", "-s", &url, "-t", "1s"], Duration::from_secs(60));
        assert!(!insecure.status.success(), "{}", insecure.stdout);
    }
    assert!(
        poll_until(Duration::from_secs(10), || refused(monitor) == Some(2.0)),
        "refusals in /metrics: {:?}",
        refused(monitor)
    );
    let (_, body) = http_get(monitor, "/debug/vars").unwrap();
    let vars: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(vars["security"]["refused"]["insecure"], 2, "{vars}");
    assert_eq!(vars["security"]["verified"], 3, "{vars}");
    assert_eq!(
        vars["security"]["refused"]["invalid_signature"], 0,
        "{vars}"
    );
    let warned = || node.log().matches("Refusing insecure requests").count();
    assert!(poll_until(Duration::from_secs(10), || warned() >= 1));
    assert_eq!(warned(), 1, "{}", node.log());
}
