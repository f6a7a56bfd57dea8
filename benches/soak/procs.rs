//! The soak's processes: nats-servers and the `choir run` node, started, killed, stopped and
//! restarted by pid; RSS sampled from `/proc`; a tiny HTTP GET for the monitor.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, signal: Signal) {
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
}

/// One nats-server with JetStream, its store and log in the soak directory.
pub struct Server {
    /// A short name for the table (`region`, `central`, `federation`).
    pub name: &'static str,
    /// Client port.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts a server named `name` on a free port, its files under `root`.
    pub fn start(root: &Path, name: &'static str) -> Self {
        let mut server = Self {
            name,
            port: free_port(),
            dir: root.join(name),
            child: None,
        };
        std::fs::create_dir_all(&server.dir).unwrap();
        server.spawn();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        // CHOIR_NATS_SERVER picks the server, as in the tests (CI soaks on each release).
        let binary = std::env::var_os("CHOIR_NATS_SERVER")
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
            .or_else(choir::nats_binary::find_nats_server)
            .expect("nats-server is not installed");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js"])
            .args(["--server_name", self.name])
            .arg("-sd")
            .arg(self.dir.join("store"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        assert!(
            wait_for(Duration::from_secs(30), || TcpStream::connect(addr).is_ok()),
            "nats-server {} did not start on {addr}",
            self.name
        );
    }

    /// SIGKILL, and wait for the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&self, stop: bool) {
        if let Some(child) = &self.child {
            signal(
                child,
                if stop {
                    Signal::SIGSTOP
                } else {
                    Signal::SIGCONT
                },
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `choir run` node: its config, its log (JSON lines, appended across restarts) and the
/// byte offset in the log where each incarnation started.
pub struct Node {
    config: PathBuf,
    log: PathBuf,
    /// The monitor address.
    pub monitor: SocketAddr,
    child: Option<Child>,
    /// `(pid, log offset at start)` of every incarnation, in order.
    pub incarnations: Vec<(u32, u64)>,
}

impl Node {
    /// Writes `config` and starts `choir run` on it.
    pub fn start(dir: &Path, config: &str, monitor: SocketAddr) -> Self {
        let path = dir.join("node.toml");
        std::fs::write(&path, config).unwrap();
        let mut node = Self {
            config: path,
            log: dir.join("choir.log"),
            monitor,
            child: None,
            incarnations: Vec::new(),
        };
        node.spawn();
        node
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = Command::new(env!("CARGO_BIN_EXE_choir"))
            .arg("run")
            .arg(&self.config)
            .env("RUST_LOG", "info,async_nats=warn,actix_server=warn")
            .env("CHOIR_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.incarnations.push((child.id(), offset));
        self.child = Some(child);
        let monitor = self.monitor;
        assert!(
            wait_for(Duration::from_secs(30), || http_get(monitor, "/healthz")
                .is_some()),
            "choir's monitor did not come up; see {}",
            self.log.display()
        );
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process still runs (an exit on its own is a finding).
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same config and state.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGTERM, and wait up to `timeout` for a clean exit; the exit status when it exited.
    pub fn stop(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(&child, Signal::SIGTERM);
        let mut status = None;
        wait_for(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `VmRSS` of `pid` in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `GET path` on `addr` (HTTP/1.0): the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.split_whitespace()
        .nth(1)
        .is_some_and(|s| s == "200")
        .then(|| body.to_owned())
}

/// The sum of every sample of counter `metric` (all label sets) in a Prometheus text page.
pub fn metric_sum(text: &str, metric: &str, label: Option<(&str, &str)>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (name_labels, value) = line.rsplit_once(' ')?;
            let (name, labels) = name_labels.split_once('{').unwrap_or((name_labels, ""));
            if name != metric {
                return None;
            }
            if let Some((k, v)) = label {
                if !labels.contains(&format!("{k}=\"{v}\"")) {
                    return None;
                }
            }
            value.parse::<f64>().ok()
        })
        .sum()
}
