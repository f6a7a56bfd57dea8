//! `choir emulate` wire daemons on a 3-node nats-server cluster: they learn the cluster's other
//! servers from `connect_urls`, leave a server drained into lame-duck mode at once for the rest
//! of the cluster, and give up a half-open connection (a frozen server) after unanswered pings.

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
