//! A real etcd (v3) on free loopback client and peer ports, data in a temp dir, killed on drop.
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
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let peer = free_port();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(binary())
            .arg("--name")
            .arg("test")
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
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let etcd = Self {
            port,
            dir,
            child: Some(child),
        };
        let addr = etcd.addr();
        assert!(
            poll_until(Duration::from_secs(20), || {
                matches!(http_get(addr, "/health"), Some((200, body)) if body.contains("true"))
            }),
            "etcd did not become healthy on {addr}"
        );
        etcd
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
