//! The load-test rig on loopback (`choir agent` and `config/playbooks/loadtest/`): three
//! agents stand for three hosts; the playbooks start a 3-node nats-server cluster across them
//! and an emulator of 1 000 daemons on each, `measure.yaml` gets every reply from all 3 000,
//! and the stop playbooks leave no process behind (checked by PID). Bad input is refused with
//! the right Choria status code and leaves nothing half-started; the processes stop with the
//! agent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../protocol/src/security/test_pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::nats::free_port;
use common::node::choir_bin;
use common::{http_get, poll_until, NatsServer};

const PLAYBOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/playbooks/loadtest");

/// A running `choir agent`, killed on drop.
struct Agent {
    identity: String,
    state: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl Agent {
    fn start(identity: &str, mgmt: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "[agent]\nidentity = \"{identity}\"\nservers = [\"{mgmt}\"]\n\
                 state_dir = \"{}\"\nstop_timeout = \"5s\"\n{extra}",
                state.display()
            ),
        )
        .unwrap();
        let child = spawn_agent(dir.path());
        Self {
            identity: identity.to_owned(),
            state,
            child,
            dir,
        }
    }

    /// SIGKILLs the agent: its processes get no chance to stop.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts the agent again on the same config and state directory.
    fn restart(&mut self) {
        self.child = spawn_agent(self.dir.path());
    }

    /// The pid in the agent's pid file of `name` (`nats-server`, `emulator`).
    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.state.join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.terminate();
        let child = &mut self.child;
        if !poll_until(Duration::from_secs(15), || {
            child.try_wait().ok().flatten().is_some()
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn spawn_agent(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .unwrap();
    Command::new(choir_bin())
        .arg("agent")
        .arg(dir.join("agent.toml"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Runs playbook `name` with `args`; its exit status and output.
fn playbook(name: &str, mgmt: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(choir_bin())
        .args(["playbook", "run"])
        .arg(Path::new(PLAYBOOKS).join(name))
        .args(["--server", mgmt])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `choir rpc agent action inputs…` to `identity`: its output (stdout, then stderr).
fn rpc(mgmt: &str, identity: &str, agent: &str, action: &str, inputs: &[&str]) -> String {
    let out = Command::new(choir_bin())
        .args(["rpc", agent, action])
        .args(inputs)
        .args(["--server", mgmt, "-I", identity])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn varz_number(monitor: u16, field: &str) -> Option<u64> {
    let (status, body) = http_get(SocketAddr::from(([127, 0, 0, 1], monitor)), "/varz")?;
    if status != 200 {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(&body).ok()?[field].as_u64()
}

#[test]
fn playbooks_build_a_three_host_network_measure_it_and_leave_nothing_behind() {
    let mgmt_server = NatsServer::start();
    let mgmt = mgmt_server.url();
    let agents: Vec<Agent> = (1..=3)
        .map(|i| Agent::start(&format!("host{i}"), &mgmt, ""))
        .collect();
    let nodes = "host1,host2,host3";
    let mut last = String::new();
    assert!(
        poll_until(Duration::from_secs(30), || {
            let (ok, text) = playbook("check-prereqs.yaml", &mgmt, &["--nodes", nodes]);
            last = text;
            ok
        }),
        "the agents never passed check-prereqs: {last}"
    );

    // One nats-server per host, clustered.
    let ports: Vec<(u16, u16, u16)> = (0..3)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    for (i, agent) in agents.iter().enumerate() {
        let routes: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (_, _, c))| format!("nats://127.0.0.1:{c}"))
            .collect();
        let (port, monitor, cluster) = ports[i];
        let (ok, text) = playbook(
            "start-nats.yaml",
            &mgmt,
            &[
                "--nodes",
                &agent.identity,
                "--port",
                &port.to_string(),
                "--monitor",
                &monitor.to_string(),
                "--cluster",
                "loadtest",
                "--cluster_port",
                &cluster.to_string(),
                "--routes",
                &routes.join(","),
            ],
        );
        assert!(ok, "start-nats on {}: {text}", agent.identity);
    }
    for (_, monitor, _) in &ports {
        assert!(
            poll_until(Duration::from_secs(30), || varz_number(*monitor, "routes")
                .is_some_and(|r| r >= 2)),
            "the server monitored on {monitor} never had its 2 routes"
        );
    }

    // An emulator of 1 000 daemons per host, each on its host's server.
    for (i, agent) in agents.iter().enumerate() {
        let emulator_monitor = free_port();
        let (ok, text) = playbook(
            "start-emulator.yaml",
            &mgmt,
            &[
                "--nodes",
                &agent.identity,
                "--instances",
                "1000",
                "--agents",
                "2",
                "--collectives",
                "2",
                "--monitor",
                &emulator_monitor.to_string(),
                "--servers",
                &format!("127.0.0.1:{}", ports[i].0),
            ],
        );
        assert!(ok, "start-emulator on {}: {text}", agent.identity);
    }

    // Every reply from all 3 000, through any one server of the cluster.
    let reports = tempfile::tempdir().unwrap();
    let (ok, text) = playbook(
        "measure.yaml",
        &mgmt,
        &[
            "--servers",
            &format!("nats://127.0.0.1:{}", ports[2].0),
            "--expect",
            "3000",
            "--count",
            "3",
            "--choir",
            choir_bin(),
            "--reports",
            reports.path().to_str().unwrap(),
        ],
    );
    assert!(ok, "measure: {text}");
    let suite: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.path().join("suite.json")).unwrap())
            .unwrap();
    assert_eq!(suite["discovered"], 3000, "{suite}");
    let tests = suite["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 3);
    for t in tests {
        assert_eq!(t["ok"], 3000, "{t}");
        assert_eq!(t["noresponses"], 0, "{t}");
    }

    // The stop playbooks leave no process behind.
    let pids: Vec<(String, u32)> = agents
        .iter()
        .flat_map(|a| {
            ["nats-server", "emulator"].map(|name| {
                let pid = a.pid(name);
                assert!(pid.is_some(), "{} has no {name} pid file", a.identity);
                (format!("{} {name}", a.identity), pid.unwrap())
            })
        })
        .collect();
    for (what, pid) in &pids {
        assert!(
            !gone(*pid),
            "{what} (pid {pid}) is not running before the stop"
        );
    }
    let (ok, text) = playbook("stop-emulator.yaml", &mgmt, &["--nodes", nodes]);
    assert!(ok, "stop-emulator: {text}");
    let (ok, text) = playbook("stop-nats.yaml", &mgmt, &["--nodes", nodes]);
    assert!(ok, "stop-nats: {text}");
    for (what, pid) in &pids {
        assert!(
            poll_until(Duration::from_secs(10), || gone(*pid)),
            "{what} (pid {pid}) still runs after the stop playbooks"
        );
    }
    for agent in &agents {
        assert_eq!(agent.pid("nats-server"), None);
        assert_eq!(agent.pid("emulator"), None);
    }
}

#[test]
fn bad_input_is_refused_with_its_status_code_and_nothing_is_half_started() {
    let mgmt_server = NatsServer::start();
    let mgmt = mgmt_server.url();
    let mut agent = Agent::start("solo", &mgmt, "");
    assert!(
        poll_until(Duration::from_secs(30), || rpc(
            &mgmt,
            "solo",
            "rpcutil",
            "ping",
            &[]
        )
        .contains("solo")),
        "the agent never answered"
    );
    let call = |agent_name: &str, action: &str, inputs: &[&str]| {
        rpc(&mgmt, "solo", agent_name, action, inputs)
    };

    // A port in use: refused (1), no server left.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let out = call(
        "nats",
        "start",
        &[
            &format!("port={held_port}"),
            &format!("monitor={}", free_port()),
        ],
    );
    assert!(
        out.contains(&format!("FAILED (1: port {held_port}: cannot listen on")),
        "{out}"
    );
    assert!(call("nats", "status", &[]).contains("running: false"));
    assert_eq!(agent.pid("nats-server"), None);

    // Counts out of range and missing inputs: 4 and 3, naming the input.
    let out = call(
        "emulator",
        "start",
        &["instances=0", "servers=127.0.0.1:4222", "monitor=8080"],
    );
    assert!(out.contains("FAILED (4: Invalid instances 0"), "{out}");
    let out = call("emulator", "start", &["instances=5", "monitor=8080"]);
    assert!(
        out.contains("FAILED (3: Missing data: servers is required)"),
        "{out}"
    );

    // Start twice: the second is refused (1) and the first keeps running.
    let (port, monitor) = (free_port(), free_port());
    let inputs = [format!("port={port}"), format!("monitor={monitor}")];
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let out = call("nats", "start", &inputs);
    assert!(out.contains("solo") && out.contains("OK"), "{out}");
    let pid = agent.pid("nats-server").expect("a pid file");
    let out = call("nats", "start", &inputs);
    assert!(
        out.contains(&format!(
            "FAILED (1: nats-server is already running (pid {pid}))"
        )),
        "{out}"
    );
    assert!(call("nats", "status", &[]).contains(&format!("pid: {pid}")));

    // Stop what is not running: refused (1).
    let out = call("emulator", "stop", &[]);
    assert!(out.contains("FAILED (1: no emulator is running)"), "{out}");

    // An unknown action: 2.
    let out = call("nats", "restart", &[]);
    assert!(out.contains("FAILED (2: Unknown action restart"), "{out}");

    // An emulator whose daemons cannot be named: refused before anything starts.
    let out = call(
        "emulator",
        "start",
        &[
            "instances=5",
            &format!("servers=127.0.0.1:{port}"),
            &format!("monitor={monitor}"),
        ],
    );
    assert!(
        out.contains(&format!("FAILED (1: monitor {monitor}: cannot listen on")),
        "{out}"
    );
    assert_eq!(agent.pid("emulator"), None);

    // The processes stop with the agent.
    let emulator_monitor = free_port();
    let out = call(
        "emulator",
        "start",
        &[
            "instances=5",
            &format!("servers=127.0.0.1:{port}"),
            &format!("monitor={emulator_monitor}"),
        ],
    );
    assert!(out.contains("OK"), "{out}");
    let emulator = agent.pid("emulator").expect("an emulator pid file");
    agent.terminate();
    for (what, pid) in [("nats-server", pid), ("emulator", emulator)] {
        assert!(
            poll_until(Duration::from_secs(15), || gone(pid)),
            "{what} (pid {pid}) outlived its agent"
        );
    }
}

#[test]
fn an_unusable_nats_server_binary_is_refused_and_nothing_runs() {
    let mgmt_server = NatsServer::start();
    let mgmt = mgmt_server.url();
    // A file that exists but is not a program.
    let not_a_binary = tempfile::NamedTempFile::new().unwrap();
    let agent = Agent::start(
        "nobin",
        &mgmt,
        &format!("nats_server = \"{}\"\n", not_a_binary.path().display()),
    );
    let mut out = String::new();
    assert!(
        poll_until(Duration::from_secs(30), || {
            out = rpc(
                &mgmt,
                "nobin",
                "nats",
                "start",
                &[
                    &format!("port={}", free_port()),
                    &format!("monitor={}", free_port()),
                ],
            );
            out.contains("nobin")
        }),
        "the agent never answered"
    );
    assert!(out.contains("FAILED (1: cannot run nats-server"), "{out}");
    assert!(rpc(&mgmt, "nobin", "nats", "status", &[]).contains("running: false"));
    assert_eq!(agent.pid("nats-server"), None);
}

#[test]
fn a_process_left_by_a_killed_agent_is_killed_by_the_next_agent_on_its_state_dir() {
    let mgmt_server = NatsServer::start();
    let mgmt = mgmt_server.url();
    let mut agent = Agent::start("crashy", &mgmt, "");
    let inputs = [
        format!("port={}", free_port()),
        format!("monitor={}", free_port()),
    ];
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut out = String::new();
    assert!(
        poll_until(Duration::from_secs(30), || {
            out = rpc(&mgmt, "crashy", "nats", "start", &inputs);
            out.contains("crashy")
        }),
        "the agent never answered"
    );
    assert!(out.contains("OK"), "{out}");
    let pid = agent.pid("nats-server").expect("a pid file");
    agent.kill();
    assert!(
        !gone(pid),
        "the server died with the SIGKILLed agent: nothing left to test"
    );
    agent.restart();
    let killed = poll_until(Duration::from_secs(30), || gone(pid));
    if !killed {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(
        killed,
        "the next agent left the orphaned nats-server (pid {pid}) running"
    );
    assert_eq!(agent.pid("nats-server"), None);
    let out = rpc(&mgmt, "crashy", "nats", "status", &[]);
    assert!(out.contains("running: false"), "{out}");
}

#[test]
fn a_secure_agent_answers_only_signed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::TestCa::new(dir.path(), "ca");
    let rip = ca.issue(&pki::CertSpec::client("rip.mcollective"));
    let mgmt_server = NatsServer::start();
    let mgmt = mgmt_server.url();
    let agent = Agent::start(
        "secure",
        &mgmt,
        &format!("[agent.security]\nca = \"{}\"\n", ca.cert.display()),
    );
    let signing = [
        "--cert",
        rip.cert.to_str().unwrap(),
        "--key",
        rip.key.to_str().unwrap(),
    ];
    let mut out = String::new();
    assert!(
        poll_until(Duration::from_secs(30), || {
            out = rpc(&mgmt, "secure", "nats", "status", &signing);
            out.contains("running: false")
        }),
        "the agent never answered a signed request: {out}"
    );
    let mut unsigned = vec![
        format!("port={}", free_port()),
        format!("monitor={}", free_port()),
    ];
    unsigned.push("--insecure".to_owned());
    let unsigned: Vec<&str> = unsigned.iter().map(String::as_str).collect();
    let out = rpc(&mgmt, "secure", "nats", "start", &unsigned);
    assert!(out.contains("no nodes discovered"), "{out}");
    let out = rpc(&mgmt, "secure", "nats", "status", &signing);
    assert!(out.contains("running: false"), "{out}");
    assert_eq!(agent.pid("nats-server"), None);
}
