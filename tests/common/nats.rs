//! Real nats-server processes on free loopback ports, JetStream on, killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::poll::poll_until;

/// A free port on 127.0.0.1.
///
/// Never the same port twice in one test process: the kernel may hand a just-released port out
/// again, and a cluster's client, route and monitor ports are all taken before any server binds.
pub fn free_port() -> u16 {
    static HANDED_OUT: parking_lot::Mutex<Vec<u16>> = parking_lot::const_mutex(Vec::new());
    let mut handed_out = HANDED_OUT.lock();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// The nats-server binary the tests run: `CHOIR_NATS_SERVER` when set (CI runs the suite once
/// per server version this way), else the first `nats-server` on `PATH` or in the usual places.
pub fn binary() -> PathBuf {
    match std::env::var_os("CHOIR_NATS_SERVER").filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "CHOIR_NATS_SERVER={} is not a file",
                path.display()
            );
            path
        }
        None => choir::nats_binary::find_nats_server().expect(
            "nats-server not found: install it (apt-get install nats-server) or set CHOIR_NATS_SERVER; .ci/run does",
        ),
    }
}

/// The binary in `CHOIR_NATS_SERVER`, when that is set: a `choir run` node under test gives
/// it to its embedded networks (`nats_server`), so the whole suite runs on one server version.
pub fn chosen_binary() -> Option<PathBuf> {
    std::env::var_os("CHOIR_NATS_SERVER")
        .filter(|p| !p.is_empty())
        .map(|_| binary())
}

/// One nats-server with JetStream, its store in a temp dir.
pub struct NatsServer {
    /// Client port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port.
    pub fn start() -> Self {
        Self::start_with(free_port(), &[])
    }

    /// Starts a server on `port` with extra command-line arguments.
    pub fn start_with(port: u16, extra: &[&str]) -> Self {
        let mut server = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js"])
            .arg("-sd")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = self.addr();
        assert!(
            poll_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
            "nats-server did not start on {addr}"
        );
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of nats-servers on loopback: routes between all of them, an HTTP monitoring port
/// each (`/connz`, `/routez`), JetStream on. Lame-duck mode is slow on purpose (30 s grace,
/// 2 min duration), so a client that leaves a draining server at once is told apart from one
/// the server closes.
pub struct NatsCluster {
    /// The members.
    pub servers: Vec<NatsServer>,
    /// The HTTP monitoring port of each member.
    pub monitor_ports: Vec<u16>,
    _conf: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `n` servers routed to each other and waits until every one has its routes.
    pub fn start(n: usize) -> Self {
        let conf = tempfile::tempdir().unwrap();
        let conf_file = conf.path().join("cluster.conf");
        std::fs::write(
            &conf_file,
            "lame_duck_grace_period: \"30s\"\nlame_duck_duration: \"2m\"\n",
        )
        .unwrap();
        let conf_path = conf_file.display().to_string();
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let monitor_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers: Vec<NatsServer> = (0..n)
            .map(|i| {
                let name = format!("s{i}");
                let cluster = format!("nats://127.0.0.1:{}", route_ports[i]);
                let monitor = monitor_ports[i].to_string();
                NatsServer::start_with(
                    free_port(),
                    &[
                        "-c",
                        &conf_path,
                        "-n",
                        &name,
                        "--cluster_name",
                        "choir-test",
                        "--cluster",
                        &cluster,
                        "--routes",
                        &routes,
                        "-m",
                        &monitor,
                    ],
                )
            })
            .collect();
        let cluster = Self {
            servers,
            monitor_ports,
            _conf: conf,
        };
        assert!(
            poll_until(Duration::from_secs(30), || {
                (0..n).all(|i| cluster.route_peers(i) == Some(n - 1))
            }),
            "the cluster did not form"
        );
        cluster
    }

    /// A number field of member `i`'s monitoring endpoint `path` (e.g. `/connz`,
    /// `num_connections`), `None` when it does not answer.
    pub fn monitor_number(&self, i: usize, path: &str, field: &str) -> Option<u64> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.monitor_ports[i]));
        let (status, body) = super::http::http_get(addr, path)?;
        if status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        json[field].as_u64()
    }

    /// How many other members member `i` has routes to (distinct `remote_id`s in its
    /// `/routez`), `None` when it does not answer. Not `num_routes`: since 2.10 a server keeps
    /// a pool of routes per peer (3 by default, plus one for the system account), so
    /// `num_routes` counts connections, not peers.
    pub fn route_peers(&self, i: usize) -> Option<usize> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.monitor_ports[i]));
        let (status, body) = super::http::http_get(addr, "/routez")?;
        if status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let peers: std::collections::BTreeSet<&str> = json["routes"]
            .as_array()
            .map(|routes| {
                routes
                    .iter()
                    .filter_map(|r| r["remote_id"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        Some(peers.len())
    }

    /// Client connections member `i` holds (its `/connz`), `None` when it does not answer.
    pub fn connections(&self, i: usize) -> Option<u64> {
        self.monitor_number(i, "/connz", "num_connections")
    }

    /// Every member's client URL, comma-separated.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Puts member `i` into lame-duck mode (`nats-server --signal ldm=<pid>`).
    pub fn lame_duck(&self, i: usize) {
        let pid = self.servers[i].pid().expect("server running");
        let status = Command::new(binary())
            .arg("--signal")
            .arg(format!("ldm={pid}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "nats-server --signal ldm failed");
    }
}
