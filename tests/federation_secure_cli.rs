//! `choir ping --federation <cluster>` in secure mode, the binary used as a user would: a signed
//! ping goes through a choir federation broker (`choir run`) to a secure emulator
//! (`choir emulate --secure`) on the collective and every daemon answers; an unsigned ping sent
//! the same way is refused at the far end and counted there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
mod common;
#[path = "../protocol/src/security/test_pki.rs"]
mod pki;
#[path = "federation/support.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::http::metric_value;
use common::nats::free_port;
use common::node::choir_bin;
use common::{http_get, poll_until, ChoirNode, NatsServer};
use pki::{CertSpec, TestCa};

const N: usize = 4;

struct Emulate(Child);

impl Drop for Emulate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metric(monitor: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (_, body) = http_get(monitor, "/metrics")?;
    metric_value(&body, name, labels)
}

#[test]
fn signed_ping_through_a_federation_broker_is_answered_by_a_secure_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let rip = ca.issue(&CertSpec::client("rip.mcollective"));
    let fed = NatsServer::start();
    let c0 = NatsServer::start();
    let node = ChoirNode::start(&support::broker_config(&fed, &[("c0", &c0)], ""));
    support::wait_subscribed(&node, 1);

    let port = free_port();
    let child = Command::new(choir_bin())
        .args(["emulate", "-i", &N.to_string(), "--name", "far", "--secure"])
        .args(["--security-ca", ca.cert.to_str().unwrap()])
        .args(["--server", &c0.url(), "--http-port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _emulate = Emulate(child);
    let monitor = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(poll_until(Duration::from_secs(30), || {
        metric(monitor, "choir_emulator_daemons", &[]) == Some(N as f64)
    }));

    let url = fed.url();
    let signed = cli::choir(
        &[
            "ping",
            "-s",
            &url,
            "--federation",
            "c0",
            "--cert",
            rip.cert.to_str().unwrap(),
            "--key",
            rip.key.to_str().unwrap(),
            "--expect",
            &N.to_string(),
            "-t",
            "20s",
        ],
        Duration::from_secs(60),
    );
    assert!(
        signed.status.success(),
        "{}\n{}",
        signed.stdout,
        signed.stderr
    );
    for i in 0..N {
        assert!(
            signed.stdout.contains(&format!("far-{i}")),
            "{}",
            signed.stdout
        );
    }
    let verified = metric(monitor, "choir_emulator_security_verified_total", &[]);
    assert_eq!(verified, Some(1.0), "one verification for {N} daemons");
    assert_eq!(
        metric(
            monitor,
            "choir_emulator_security_refused_total",
            &[("reason", "invalid_signature")]
        ),
        Some(0.0)
    );

    // The same path without a certificate: the far end refuses it.
    let insecure = cli::choir(
        &["ping", "-s", &url, "--federation", "c0", "-t", "1500ms"],
        Duration::from_secs(60),
    );
    assert!(!insecure.status.success(), "{}", insecure.stdout);
    assert!(!insecure.stdout.contains("far-0"), "{}", insecure.stdout);
    assert!(poll_until(Duration::from_secs(10), || {
        metric(
            monitor,
            "choir_emulator_security_refused_total",
            &[("reason", "insecure")],
        ) == Some(1.0)
    }));
}
