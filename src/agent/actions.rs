//! The `emulator` and `nats` agents: [`Manager`] turns one request into the processes it
//! starts or stops and the mcorpc reply.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use choir_actors::protocol::{RpcReply, RpcRequest, STATUS_OK};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::process::Child;
use tracing::{info, warn};

use super::config::AgentConfig;
use super::process::{self, Launch, Ready};
use super::request::{EmulatorStart, Limits, NatsStart, Refusal};
use super::table::{Kind, ProcessTable, Running};

/// The management agents this server answers besides `discovery` and `rpcutil`.
pub const AGENTS: [&str; 2] = ["emulator", "nats"];

/// Runs the management actions of one agent.
pub struct Manager {
    config: AgentConfig,
    choir: Option<PathBuf>,
    nats_server: Option<PathBuf>,
    table: Mutex<ProcessTable<Child>>,
}

impl Manager {
    /// A manager for `config`; the binaries are looked up now (a missing one refuses its
    /// starts, naming it).
    pub fn new(config: AgentConfig) -> Self {
        let choir = config
            .choir
            .clone()
            .or_else(|| std::env::current_exe().ok());
        let nats_server = config
            .nats_server
            .clone()
            .or_else(crate::nats_binary::find_nats_server);
        for kind in [Kind::Emulator, Kind::Nats] {
            let binary = match kind {
                Kind::Emulator => "emulate",
                Kind::Nats => "nats-server",
            };
            process::kill_stale(&config.state_dir, kind.name(), binary);
        }
        Self {
            config,
            choir,
            nats_server,
            table: Mutex::new(ProcessTable::default()),
        }
    }

    /// Answers `agent#action`.
    pub async fn call(&self, agent: &str, request: &RpcRequest) -> RpcReply {
        let action = request.action.as_str();
        let result = match (agent, action) {
            ("emulator", "start") => self.start_emulator(&request.data).await,
            ("nats", "start") => self.start_nats(&request.data).await,
            ("emulator", "stop") => self.stop(Kind::Emulator).await,
            ("nats", "stop") => self.stop(Kind::Nats).await,
            ("emulator", "status") => Ok(self.status(Kind::Emulator).await),
            ("nats", "status") => Ok(self.status(Kind::Nats).await),
            _ => return RpcReply::unknown_action(agent, action),
        };
        match result {
            Ok(data) => RpcReply {
                action: Some(action.to_owned()),
                statuscode: STATUS_OK,
                statusmsg: "OK".to_owned(),
                data,
            },
            Err(refusal) => {
                info!(agent, action, code = refusal.code, message = %refusal.message, "Refused a request.");
                RpcReply {
                    action: Some(action.to_owned()),
                    statuscode: refusal.code,
                    statusmsg: refusal.message,
                    data: json!({}),
                }
            }
        }
    }

    fn bind(&self) -> IpAddr {
        self.config
            .bind
            .parse()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    async fn start_nats(&self, data: &Value) -> Result<Value, Refusal> {
        let start = NatsStart::read(data)?;
        let binary = self.nats_server.clone().ok_or_else(|| {
            Refusal::aborted("nats-server not found: put it on PATH or set agent.nats_server")
        })?;
        let bind = self.bind();
        let store = self.config.state_dir.join("jetstream");
        let args = start.args(
            &bind.to_string(),
            &self.config.identity,
            &store.display().to_string(),
        );
        let probe_ip = if bind.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            bind
        };
        let launch = Launch {
            name: Kind::Nats.name(),
            binary,
            args,
            state_dir: self.config.state_dir.clone(),
            ready: Ready::Listening(SocketAddr::new(probe_ip, start.port)),
            timeout: self.config.start_timeout,
        };
        let ports: Vec<(&str, SocketAddr)> = start
            .ports()
            .into_iter()
            .map(|(input, port)| (input, SocketAddr::new(bind, port)))
            .collect();
        let details = json!({
            "port": start.port,
            "monitor": start.monitor,
            "cluster": start.cluster,
            "cluster_port": start.cluster_port,
            "routes": start.routes,
            "jetstream": start.jetstream,
        });
        self.launch(Kind::Nats, launch, &ports, details).await
    }

    async fn start_emulator(&self, data: &Value) -> Result<Value, Refusal> {
        let limits = Limits {
            max_instances: self.config.max_instances,
        };
        let start = EmulatorStart::read(data, limits)?;
        let binary = self
            .choir
            .clone()
            .ok_or_else(|| Refusal::aborted("choir binary not found: set agent.choir"))?;
        let launch = Launch {
            name: Kind::Emulator.name(),
            binary,
            args: start.args(&self.config.identity),
            state_dir: self.config.state_dir.clone(),
            ready: Ready::FleetUp(start.monitor),
            timeout: self.config.start_timeout,
        };
        let monitor = SocketAddr::from(([127, 0, 0, 1], start.monitor));
        let details = json!({
            "instances": start.instances,
            "agents": start.agents,
            "collectives": start.collectives,
            "name": start.name.clone().unwrap_or_else(|| self.config.identity.clone()),
            "servers": start.servers,
            "monitor": start.monitor,
            "tls": start.tls,
        });
        self.launch(Kind::Emulator, launch, &[("monitor", monitor)], details)
            .await
    }

    /// Reserves `kind`, checks its ports, starts it and records it; on failure the slot is
    /// freed and nothing runs.
    async fn launch(
        &self,
        kind: Kind,
        launch: Launch,
        ports: &[(&str, SocketAddr)],
        details: Value,
    ) -> Result<Value, Refusal> {
        self.table.lock().reserve(kind)?;
        let started = self.try_launch(&launch, ports).await;
        let mut table = self.table.lock();
        match started {
            Ok((child, pid)) => {
                info!(process = kind.name(), pid, "Started.");
                let mut data = details.clone();
                if let Some(object) = data.as_object_mut() {
                    object.insert("pid".to_owned(), json!(pid));
                    object.insert(
                        "log".to_owned(),
                        json!(launch.state_dir.join(format!("{}.log", launch.name))),
                    );
                }
                table.started(
                    kind,
                    Running {
                        pid,
                        started: Instant::now(),
                        details,
                        child,
                    },
                );
                Ok(data)
            }
            Err(refusal) => {
                table.abandon(kind);
                Err(refusal)
            }
        }
    }

    async fn try_launch(
        &self,
        launch: &Launch,
        ports: &[(&str, SocketAddr)],
    ) -> Result<(Child, u32), Refusal> {
        for (input, addr) in ports {
            process::port_free(*addr).map_err(|e| {
                Refusal::aborted(format!(
                    "{input} {}: cannot listen on {addr}: {e}",
                    addr.port()
                ))
            })?;
        }
        std::fs::create_dir_all(&launch.state_dir).map_err(|e| {
            Refusal::aborted(format!(
                "cannot create state directory {}: {e}",
                launch.state_dir.display()
            ))
        })?;
        process::start(launch).await
    }

    async fn stop(&self, kind: Kind) -> Result<Value, Refusal> {
        let mut running = self.table.lock().take(kind)?;
        let exit = process::stop(
            &mut running.child,
            running.pid,
            self.config.stop_timeout,
            &self.config.state_dir,
            kind.name(),
        )
        .await;
        self.table.lock().stopped(kind);
        info!(process = kind.name(), pid = running.pid, %exit, "Stopped.");
        Ok(json!({"pid": running.pid, "exit": exit}))
    }

    async fn status(&self, kind: Kind) -> Value {
        let (pid, mut data, uptime) = {
            let mut table = self.table.lock();
            let Some(running) = table.get_mut(kind) else {
                return json!({"running": false, "binary": self.binary(kind)});
            };
            if let Ok(Some(status)) = running.child.try_wait() {
                let pid = running.pid;
                table.remove(kind);
                warn!(process = kind.name(), pid, %status, "Process exited by itself.");
                return json!({
                    "running": false,
                    "binary": self.binary(kind),
                    "pid": pid,
                    "exit": status.to_string(),
                });
            }
            (
                running.pid,
                running.details.clone(),
                running.started.elapsed().as_secs_f64(),
            )
        };
        let rss = crate::monitor::rss_of(&pid.to_string());
        let vars = match kind {
            Kind::Emulator => {
                let port = data["monitor"].as_u64().and_then(|p| u16::try_from(p).ok());
                match port {
                    Some(port) => process::http_get_json(port, "/debug/vars")
                        .await
                        .map(emulator_summary),
                    None => None,
                }
            }
            Kind::Nats => {
                let port = data["monitor"].as_u64().and_then(|p| u16::try_from(p).ok());
                match port {
                    Some(port) => process::http_get_json(port, "/varz")
                        .await
                        .map(nats_summary),
                    None => None,
                }
            }
        };
        if let Some(object) = data.as_object_mut() {
            object.insert("running".to_owned(), json!(true));
            object.insert("binary".to_owned(), json!(self.binary(kind)));
            object.insert("pid".to_owned(), json!(pid));
            object.insert("rss_bytes".to_owned(), json!(rss));
            object.insert("uptime_seconds".to_owned(), json!(uptime));
            object.insert("vars".to_owned(), vars.unwrap_or(Value::Null));
        }
        data
    }

    /// The binary `kind` runs, if it is there.
    fn binary(&self, kind: Kind) -> Option<String> {
        let binary = match kind {
            Kind::Emulator => &self.choir,
            Kind::Nats => &self.nats_server,
        };
        binary
            .as_ref()
            .filter(|b| b.is_file())
            .map(|b| b.display().to_string())
    }

    /// Stops every process (the agent is stopping).
    pub async fn shutdown(&self) {
        let all = self.table.lock().take_all();
        for (kind, mut running) in all {
            let exit = process::stop(
                &mut running.child,
                running.pid,
                self.config.stop_timeout,
                &self.config.state_dir,
                kind.name(),
            )
            .await;
            self.table.lock().stopped(kind);
            info!(process = kind.name(), pid = running.pid, %exit, "Stopped with the agent.");
        }
    }

    /// Logs and forgets processes that exited by themselves (called on a timer).
    pub fn reap(&self) {
        let mut table = self.table.lock();
        for kind in [Kind::Emulator, Kind::Nats] {
            let exited = table
                .get_mut(kind)
                .and_then(|r| r.child.try_wait().ok().flatten().map(|s| (r.pid, s)));
            if let Some((pid, status)) = exited {
                table.remove(kind);
                let _ =
                    std::fs::remove_file(process::pid_file(&self.config.state_dir, kind.name()));
                warn!(process = kind.name(), pid, %status, "Process exited by itself.");
            }
        }
    }
}

/// The emulator's `/debug/vars`, summed up: its pid, RSS, uptime and its fleet's counters.
fn emulator_summary(vars: Value) -> Value {
    let fleet = vars["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kind"] == "emulator"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "pid": vars["pid"],
        "rss_bytes": vars["rss_bytes"],
        "uptime_seconds": vars["uptime_seconds"],
        "state": fleet["state"],
        "counters": fleet["counters"],
    })
}

/// nats-server's `/varz`, summed up.
fn nats_summary(varz: Value) -> Value {
    json!({
        "server_name": varz["server_name"],
        "version": varz["version"],
        "connections": varz["connections"],
        "routes": varz["routes"],
        "in_msgs": varz["in_msgs"],
        "out_msgs": varz["out_msgs"],
    })
}
