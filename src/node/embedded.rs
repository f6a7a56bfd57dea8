//! The embedded default: a loopback nats-server that choir starts, watches and stops.
//!
//! `[networks.X] embedded = true` makes the node start `nats-server` as a child process on
//! 127.0.0.1 with JetStream on and its store under `<state_dir>/nats/<network>`. The
//! [`EmbeddedServerActor`] restarts it when it dies (with backoff), terminates it on
//! shutdown, and kills a stale server left behind by a node that was itself killed (found
//! through the server's pid file).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use actix::prelude::*;
use choir_actors::supervision::{Backoff, Restarts, Shutdown};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

use crate::nats_binary::ServerVersion;

/// Errors of the embedded server.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No nats-server binary was found.
    #[error("no nats-server binary on PATH or in /usr/sbin; install it (apt-get install nats-server) or set networks.{0}.nats_server")]
    NotFound(String),
    /// No free port on loopback.
    #[error("cannot find a free loopback port: {0}")]
    NoPort(std::io::Error),
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16, EmbeddedError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(EmbeddedError::NoPort)?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(EmbeddedError::NoPort)
}

/// How to run one embedded server.
#[derive(Clone, Debug)]
pub struct EmbeddedServerSpec {
    /// The network it serves.
    pub network: String,
    /// The nats-server binary.
    pub binary: PathBuf,
    /// The version the binary reported (`--version`), `None` when it did not say.
    pub version: Option<ServerVersion>,
    /// Client port on 127.0.0.1.
    pub port: u16,
    /// JetStream store, log and pid file live here.
    pub store_dir: PathBuf,
    /// The server's name.
    pub server_name: String,
}

impl EmbeddedServerSpec {
    /// The URL clients use.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// What `/debug/vars` shows of it (`embedded_servers.<network>`).
    pub fn vars(&self) -> serde_json::Value {
        serde_json::json!({
            "binary": self.binary.display().to_string(),
            "version": self.version.as_ref().map(ToString::to_string),
            "url": self.url(),
        })
    }

    /// The version as logged: the number, or `unknown`.
    fn version_shown(&self) -> String {
        self.version
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string)
    }

    fn pid_file(&self) -> PathBuf {
        self.store_dir.join("nats-server.pid")
    }
}

/// Kills a nats-server left running by a previous node that was killed itself.
fn kill_stale(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if String::from_utf8_lossy(&cmdline).contains("nats-server") {
        warn!(
            pid,
            "Killing a stale embedded nats-server left by an earlier run."
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_file(pid_file);
}

/// A server run that lasted this long was healthy: its exit restarts with the shortest delay.
const STABLE_RUN: Duration = Duration::from_secs(30);

/// Supervises one embedded nats-server child process.
pub struct EmbeddedServerActor {
    spec: EmbeddedServerSpec,
    stop: Option<oneshot::Sender<()>>,
    running: watch::Sender<bool>,
    stopping: bool,
    restarts: Restarts,
    starts: u64,
}

enum Exit {
    Died(String),
    Stopped,
    SpawnFailed(String),
}

impl EmbeddedServerActor {
    /// An actor that will run `spec` once started.
    pub fn new(spec: EmbeddedServerSpec) -> Self {
        let (running, _) = watch::channel(false);
        Self {
            spec,
            stop: None,
            running,
            stopping: false,
            restarts: Restarts::new(Backoff::PROCESS_RESTART).stable_after(STABLE_RUN),
            starts: 0,
        }
    }

    fn spawn_server(&mut self, ctx: &mut Context<Self>) {
        let spec = self.spec.clone();
        if let Err(e) = std::fs::create_dir_all(&spec.store_dir) {
            error!(network = %spec.network, dir = %spec.store_dir.display(), error = %e, "Cannot create the embedded nats-server's store directory.");
        }
        kill_stale(&spec.pid_file());
        let mut command = Command::new(&spec.binary);
        command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &spec.port.to_string(),
                "-js",
                "-n",
                &spec.server_name,
            ])
            .arg("-sd")
            .arg(&spec.store_dir)
            .arg("-P")
            .arg(spec.pid_file())
            .arg("-l")
            .arg(spec.store_dir.join("nats-server.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a terminal's Ctrl-C goes to the foreground group, and
            // must reach choir only, which drains its connections first and then stops the
            // server itself (before, the server died mid-drain and was "restarted").
            .process_group(0)
            .kill_on_drop(true);
        let (stop_tx, stop_rx) = oneshot::channel();
        self.stop = Some(stop_tx);
        self.starts += 1;
        let started_at = Instant::now();
        let running = self.running.clone();
        let fut = async move {
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) => return Exit::SpawnFailed(e.to_string()),
            };
            running.send_replace(true);
            let pid = child.id();
            info!(
                network = %spec.network,
                pid,
                url = %spec.url(),
                binary = %spec.binary.display(),
                version = %spec.version_shown(),
                "Started embedded nats-server."
            );
            let addr = SocketAddr::from(([127, 0, 0, 1], spec.port));
            let ready = async {
                while tokio::net::TcpStream::connect(addr).await.is_err() {
                    actix_rt::time::sleep(Duration::from_millis(50)).await;
                }
            };
            if actix_rt::time::timeout(Duration::from_secs(10), ready)
                .await
                .is_ok()
            {
                info!(network = %spec.network, url = %spec.url(), "Embedded nats-server is ready.");
            }
            let exit = tokio::select! {
                status = child.wait() => Exit::Died(match status {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                }),
                _ = stop_rx => {
                    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                    }
                    if actix_rt::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                        warn!(network = %spec.network, "Embedded nats-server did not stop in 5s; killing it.");
                        let _ = child.kill().await;
                    }
                    Exit::Stopped
                }
            };
            running.send_replace(false);
            exit
        };
        ctx.spawn(fut.into_actor(self).map(move |exit, act, ctx| {
            let network = act.spec.network.clone();
            let reason = match exit {
                Exit::Stopped => {
                    info!(network, "Stopped embedded nats-server.");
                    return;
                }
                Exit::Died(status) => status,
                Exit::SpawnFailed(e) => format!("cannot start {}: {e}", act.spec.binary.display()),
            };
            if act.stopping {
                return;
            }
            act.restarts.exited(started_at.elapsed());
            let delay = act.restarts.delay();
            warn!(network, %reason, restart_in = ?delay, "Embedded nats-server exited; restarting it.");
            ctx.run_later(delay, |act, ctx| {
                if !act.stopping {
                    act.spawn_server(ctx);
                }
            });
        }));
    }
}

impl Actor for EmbeddedServerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.spawn_server(ctx);
    }
}

/// At node shutdown the server is stopped for good; the answer comes once it exited.
impl Handler<Shutdown> for EmbeddedServerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut running = self.running.subscribe();
        Box::pin(async move {
            let _ = running.wait_for(|r| !*r).await;
        })
    }
}

/// Query: how many times the server was started (1 + restarts).
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct GetStarts;

impl Handler<GetStarts> for EmbeddedServerActor {
    type Result = u64;

    fn handle(&mut self, _: GetStarts, _: &mut Self::Context) -> u64 {
        self.starts
    }
}
