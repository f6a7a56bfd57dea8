//! `choir ping` and `choir measure` take a server list (`-s a,b,c` or repeated `-s`, with or
//! without `nats://`) and connect through any listed server that is up, on a 3-node cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cli::choir;
use common::http::metric_value;
use common::nats::{free_port, NatsCluster};
use common::node::choir_bin;
use common::{http_get, poll_until};

struct Emulate(Child);

impl Drop for Emulate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn client_commands_take_a_server_list_and_skip_a_server_that_is_down() {
    let cluster = NatsCluster::start(3);
    let monitor = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _emu = Emulate(
        Command::new(choir_bin())
            .args([
                "emulate",
                "-i",
                "20",
                "--name",
                "list",
                "-s",
                &cluster.urls(),
            ])
            .args(["--http-port", &monitor.port().to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(poll_until(Duration::from_secs(60), || {
        http_get(monitor, "/metrics")
            .and_then(|(_, body)| metric_value(&body, "choir_emulator_daemons", &[]))
            == Some(20.0)
    }));
    let port = |i: usize| cluster.servers[i].port;
    let down = format!("127.0.0.1:{}", free_port());
    // Comma-separated, the first one down, with and without a scheme.
    let list = format!("{down},127.0.0.1:{},nats://127.0.0.1:{}", port(1), port(2));
    let out = choir(
        &["ping", "-s", &list, "--expect", "20", "--timeout", "20s"],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("\n20 replies "), "{}", out.stdout);

    // Repeated -s, all three servers.
    let (a, b, c) = (
        cluster.servers[0].url(),
        cluster.servers[1].url(),
        cluster.servers[2].url(),
    );
    let out = choir(
        &[
            "ping",
            "-s",
            &a,
            "-s",
            &b,
            "-s",
            &c,
            "--expect",
            "20",
            "--timeout",
            "20s",
        ],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("\n20 replies "), "{}", out.stdout);

    let out = choir(
        &[
            "measure",
            "2",
            "20",
            "-s",
            &list,
            "--size",
            "10",
            "--timeout",
            "20s",
        ],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
}
