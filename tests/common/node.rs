//! The `choir` binary as a child process with a config written to a temp dir.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::http::http_get;
use super::nats::free_port;
use super::poll::poll_until;

/// Path of the built `choir` binary.
pub fn choir_bin() -> &'static str {
    env!("CARGO_BIN_EXE_choir")
}

/// `body` with `nats_server = <binary>` after every `embedded = true` line.
fn with_nats_server(body: &str, binary: &Path) -> String {
    let setting = format!("nats_server = {:?}", binary.display().to_string());
    body.lines()
        .flat_map(|line| {
            let embedded = line.split_whitespace().collect::<Vec<_>>() == ["embedded", "=", "true"];
            std::iter::once(line.to_owned()).chain(embedded.then(|| setting.clone()))
        })
        .map(|line| line + "\n")
        .collect()
}

/// A running `choir run` process.
pub struct ChoirNode {
    /// The monitor's address.
    pub monitor: SocketAddr,
    /// The temp dir holding config, state and log.
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl ChoirNode {
    /// Writes `body` after a generated `[node]` section (temp state dir, free monitor port)
    /// and starts `choir run` on it. With `CHOIR_NATS_SERVER` set, every `embedded = true`
    /// network also gets `nats_server` = that binary, so the node runs the suite's server
    /// version rather than the newest one installed.
    pub fn start(body: &str) -> Self {
        match super::nats::chosen_binary() {
            Some(binary) => Self::start_exact(&with_nats_server(body, &binary)),
            None => Self::start_exact(body),
        }
    }

    /// [`ChoirNode::start`] with `body` exactly as given: embedded networks use choir's own
    /// default nats-server whatever `CHOIR_NATS_SERVER` says.
    pub fn start_exact(body: &str) -> Self {
        Self::start_exact_with_env(body, &[])
    }

    /// [`ChoirNode::start_exact`] with extra environment variables for `choir run`.
    pub fn start_exact_with_env(body: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let monitor = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "[node]\nname = \"test\"\nstate_dir = {:?}\nmonitor = \"{monitor}\"\nshutdown_timeout = \"5s\"\n\n{body}",
            dir.path().join("state").display().to_string()
        );
        std::fs::write(dir.path().join("node.toml"), config).unwrap();
        let mut node = Self {
            monitor,
            dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        node.spawn();
        node
    }

    /// Starts the process again with the same config and state (after a kill).
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("choir.log"))
            .unwrap();
        let child = Command::new(choir_bin())
            .arg("run")
            .arg(self.dir.path().join("node.toml"))
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // A process group of its own, as a shell gives a foreground job, so a test can
            // signal the whole group the way a terminal's Ctrl-C does.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let monitor = self.monitor;
        assert!(
            poll_until(Duration::from_secs(20), || http_get(monitor, "/healthz")
                .is_some()),
            "choir monitor did not come up; log:\n{}",
            self.log()
        );
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("choir.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Sends `signal` to the process's whole process group, as a terminal's Ctrl-C does.
    pub fn signal_group(&self, signal: Signal) {
        nix::sys::signal::killpg(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let mut status = None;
        poll_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET path` on the monitor.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.monitor, path)
    }
}

impl Drop for ChoirNode {
    fn drop(&mut self) {
        if self.running() {
            let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM);
            if self.wait(Duration::from_secs(5)).is_none() {
                self.kill();
            }
        }
    }
}

/// Runs `choir check <path>`: (exit code, stdout, stderr).
pub fn check(path: &Path) -> (i32, String, String) {
    let out = Command::new(choir_bin())
        .arg("check")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
