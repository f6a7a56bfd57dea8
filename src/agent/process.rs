//! Starting and stopping one child process of an agent: no shell, stdout and stderr to
//! `<state_dir>/<name>.log`, a pid file, a readiness probe, SIGTERM then SIGKILL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use super::request::Refusal;

/// What tells that a started process is up.
#[derive(Clone, Debug)]
pub enum Ready {
    /// It accepts TCP connections here.
    Listening(SocketAddr),
    /// Its `/debug/vars` on 127.0.0.1:`port` shows a fleet whose daemons are all connected
    /// (a `choir emulate`).
    FleetUp(u16),
}

/// A process to start.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Its name (log and pid file names).
    pub name: &'static str,
    /// The binary.
    pub binary: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where its log and pid file go.
    pub state_dir: PathBuf,
    /// Its readiness probe.
    pub ready: Ready,
    /// How long it may take.
    pub timeout: Duration,
}

impl Launch {
    fn log(&self) -> PathBuf {
        self.state_dir.join(format!("{}.log", self.name))
    }
}

/// The pid file of process `name` in `state_dir`.
pub fn pid_file(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("{name}.pid"))
}

/// Starts `launch` and waits until it is ready; on any failure nothing is left running.
pub async fn start(launch: &Launch) -> Result<(Child, u32), Refusal> {
    let log = std::fs::File::create(launch.log())
        .map_err(|e| Refusal::aborted(format!("cannot create {}: {e}", launch.log().display())))?;
    let err = log
        .try_clone()
        .map_err(|e| Refusal::aborted(format!("cannot open {}: {e}", launch.log().display())))?;
    let mut child = Command::new(&launch.binary)
        .args(&launch.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Refusal::aborted(format!(
                "cannot run {} {}: {e}",
                launch.name,
                launch.binary.display()
            ))
        })?;
    let pid = child.id().unwrap_or(0);
    let deadline = Instant::now() + launch.timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Refusal::aborted(format!(
                "{} exited at start ({status}): {}",
                launch.name,
                log_tail(&launch.log())
            )));
        }
        if probe(&launch.ready).await {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill().await;
            return Err(Refusal::aborted(format!(
                "{} did not become ready within {} (agent.start_timeout): {}",
                launch.name,
                humantime::format_duration(launch.timeout),
                log_tail(&launch.log())
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::write(pid_file(&launch.state_dir, launch.name), pid.to_string());
    Ok((child, pid))
}

/// Stops `child` (SIGTERM to it, SIGKILL after `timeout`) and removes its pid file; the exit
/// status as text.
pub async fn stop(
    child: &mut Child,
    pid: u32,
    timeout: Duration,
    state_dir: &Path,
    name: &str,
) -> String {
    if let Ok(Some(status)) = child.try_wait() {
        let _ = std::fs::remove_file(pid_file(state_dir, name));
        return status.to_string();
    }
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
    }
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        _ => {
            tracing::warn!(
                process = name,
                pid,
                "Process did not stop after SIGTERM; killing it."
            );
            let _ = child.kill().await;
            "killed".to_owned()
        }
    };
    let _ = std::fs::remove_file(pid_file(state_dir, name));
    status
}

/// Kills a process left behind by an agent that was itself killed: the pid in
/// `<state_dir>/<name>.pid`, when that process still runs `binary_name`.
pub fn kill_stale(state_dir: &Path, name: &str, binary_name: &str) {
    let file = pid_file(state_dir, name);
    let Some(pid) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if String::from_utf8_lossy(&cmdline).contains(binary_name) {
        tracing::warn!(
            process = name,
            pid,
            "Killing a process left by a previous agent."
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(file);
}

/// Whether `ready` holds now.
async fn probe(ready: &Ready) -> bool {
    match ready {
        Ready::Listening(addr) => {
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                .await
                .is_ok_and(|r| r.is_ok())
        }
        Ready::FleetUp(port) => http_get_json(*port, "/debug/vars")
            .await
            .is_some_and(|vars| fleet_up(&vars)),
    }
}

/// Whether an emulator's `/debug/vars` shows its fleet running: every daemon connected.
pub fn fleet_up(vars: &serde_json::Value) -> bool {
    vars["components"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["kind"] == "emulator" && c["state"] == "running")
    })
}

/// `GET <path>` on 127.0.0.1:`port` (HTTP/1.0, at most 1 MiB, 2 s): the JSON body of a 200.
pub async fn http_get_json(port: u16, path: &str) -> Option<serde_json::Value> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut body = Vec::new();
        stream.take(1 << 20).read_to_end(&mut body).await.ok()?;
        let text = String::from_utf8_lossy(&body);
        let (head, json) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        serde_json::from_str(json).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .ok()
        .flatten()
}

/// Whether `addr` is free to listen on (`Err` names what holds it).
pub fn port_free(addr: SocketAddr) -> Result<(), std::io::Error> {
    std::net::TcpListener::bind(addr).map(drop)
}

/// The last lines of a log, on one line, for a refusal's message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        format!("nothing in {}", path.display())
    } else {
        let cut: String = tail.chars().take(600).collect();
        format!("{cut} (see {})", path.display())
    }
}
