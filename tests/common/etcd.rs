//! A real etcd (v3) on free loopback client and peer ports, data in a temp dir, killed on drop;
//! one member or a cluster of several.
//! Needs the `etcd` binary (Debian: `apt-get install etcd-server`; .ci/run installs it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::http::http_get;
use super::nats::free_port;
use super::poll::poll_until;

fn binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
    {
        let path = PathBuf::from(dir).join("etcd");
        if path.is_file() {
            return path;
        }
    }
    panic!("etcd not found: install it (apt-get install etcd-server); .ci/run does");
}

/// One single-member etcd.
pub struct Etcd {
    /// Client port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd and waits until `/health` says it is healthy.
    pub fn start() -> Self {
        Self::cluster(1).pop().unwrap()
    }

    /// Starts a cluster of `members` members (each its own client port and data dir) and
    /// waits until every member says it is healthy.
    pub fn cluster(members: usize) -> Vec<Self> {
        let ports: Vec<(u16, u16)> = (0..members).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let cluster: Vec<Self> = ports
            .iter()
            .enumerate()
            .map(|(i, &(port, peer))| Self::spawn(&format!("m{i}"), port, peer, &initial))
            .collect();
        for etcd in &cluster {
            let addr = etcd.addr();
            assert!(
                poll_until(Duration::from_secs(30), || {
                    matches!(http_get(addr, "/health"), Some((200, body)) if body.contains("true"))
                }),
                "etcd did not become healthy on {addr}"
            );
        }
        cluster
    }

    fn spawn(name: &str, port: u16, peer: u16, initial_cluster: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(binary())
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", initial_cluster])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            port,
            dir,
            child: Some(child),
        }
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The temp dir holding the data.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
