//! The embedded default: `choir run` starts its own nats-server, serves the monitor, restarts
//! the server when it dies and stops everything cleanly on SIGINT.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::http::metric_value;
use common::{poll_until, ChoirNode};
use nix::sys::signal::Signal;

const EMBEDDED: &str = "[networks.local]\nembedded = true\n";

fn embedded_pid(node: &ChoirNode) -> Option<u32> {
    let file = node.state_dir().join("nats/local/nats-server.pid");
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The process group of `pid` (field 5 of `/proc/<pid>/stat`).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    after_name.split(' ').nth(2)?.parse().ok()
}

/// Waits (bounded) until the node's `/healthz` answers 200 with a body naming `expect`.
fn wait_healthy(node: &ChoirNode, expect: &str) {
    assert!(
        poll_until(Duration::from_secs(30), || node
            .get("/healthz")
            .is_some_and(|(s, body)| s == 200 && body.contains(expect))),
        "never healthy; log:\n{}",
        node.log()
    );
}

/// Sends SIGINT to choir (or to its whole process group, as a terminal's Ctrl-C does) and
/// waits (bounded) for it to exit.
fn stop_with_sigint(node: &mut ChoirNode, group: bool) -> std::process::ExitStatus {
    if group {
        node.signal_group(Signal::SIGINT);
    } else {
        node.signal(Signal::SIGINT);
    }
    node.wait(Duration::from_secs(20))
        .expect("choir did not exit after SIGINT")
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn embedded_node_serves_health_metrics_and_vars_then_stops_cleanly_on_sigint() {
    let mut node = ChoirNode::start(EMBEDDED);
    wait_healthy(&node, "local");
    let (status, metrics) = node.get("/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(&metrics, "choir_network_connected", &[("network", "local")]),
        Some(1.0),
        "{metrics}"
    );
    let (_, vars) = node.get("/debug/vars").unwrap();
    let vars: serde_json::Value = serde_json::from_str(&vars).unwrap();
    assert_eq!(vars["name"], "test");
    assert_eq!(vars["pid"], node.pid());
    assert!(vars["rss_bytes"].as_u64().unwrap() > 0);
    assert!(vars["uptime_seconds"].as_f64().is_some());
    assert_eq!(vars["config"]["networks"]["local"]["embedded"], true);

    let server = embedded_pid(&node).expect("embedded nats-server pid file");
    assert!(alive(server));
    let status = stop_with_sigint(&mut node, false);
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        node.log()
    );
    assert!(
        poll_until(Duration::from_secs(5), || !alive(server)),
        "embedded server left running"
    );
    let log = node.log();
    assert!(log.contains("Draining the NATS connection"), "{log}");
    assert!(log.contains("Node stopped"), "{log}");
}

/// A terminal's Ctrl-C goes to the whole foreground process group. It must reach choir only:
/// choir drains its connections while the embedded server still runs, then stops the server
/// itself, without mistaking the shutdown for a crash to recover from.
#[test]
fn ctrl_c_in_a_terminal_drains_before_the_embedded_server_stops() {
    let mut node = ChoirNode::start(EMBEDDED);
    wait_healthy(&node, "local");
    let server = embedded_pid(&node).expect("embedded nats-server pid file");
    let (server_group, choir_group) = (process_group(server), process_group(node.pid()));
    assert!(server_group.is_some() && choir_group.is_some());
    assert_ne!(
        server_group, choir_group,
        "the embedded server shares choir's process group: Ctrl-C would stop it mid-drain"
    );
    let status = stop_with_sigint(&mut node, true);
    let log = node.log();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(
        poll_until(Duration::from_secs(5), || !alive(server)),
        "embedded server left running"
    );
    assert!(log.contains("Stopped embedded nats-server"), "{log}");
    assert!(
        !log.contains("Embedded nats-server exited"),
        "the server died before choir stopped it:\n{log}"
    );
    assert!(!log.contains("NATS client error"), "{log}");
}

/// At shutdown a federation broker drains its own connections before the embedded servers
/// stop, so nothing it forwarded is cut off and no connection is reported lost.
#[test]
fn shutdown_drains_a_federation_broker_before_its_servers_stop() {
    let mut node = ChoirNode::start(
        "[networks.fed]\nembedded = true\n\n[networks.coll]\nembedded = true\n\n\
         [federation.c1]\nfederation = \"fed\"\ncollective = \"coll\"\n",
    );
    wait_healthy(&node, "federation broker c1");
    let status = stop_with_sigint(&mut node, true);
    let log = node.log();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("Federation broker stopped"), "{log}");
    let shutdown = &log[log.find("Shutting down").unwrap_or(0)..];
    assert!(
        !shutdown.contains("WARN"),
        "warnings during shutdown:\n{shutdown}"
    );
}

/// At shutdown the adapter workers get the node's `Shutdown` before their network drains: they
/// stop reading, publish what they took and stop for good. None of them sees its subscription
/// end under it and restarts (logging "subscription ended; restarting").
#[test]
fn shutdown_stops_adapter_workers_for_good_without_restarting_them() {
    let mut node = ChoirNode::start(
        "[networks.local]\nembedded = true\n\n\
         [adapters.reg]\nnetwork = \"local\"\nsubject = \"reg.in\"\n\
         stream = \"REG\"\nstream_subject = \"reg.out\"\nworkers = 2\n",
    );
    assert!(
        poll_until(Duration::from_secs(30), || node
            .log()
            .matches("Adapter worker subscribed")
            .count()
            == 2),
        "the adapter workers never subscribed; log:\n{}",
        node.log()
    );
    let status = stop_with_sigint(&mut node, true);
    let log = node.log();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    let shutdown = &log[log.find("Shutting down").unwrap_or(0)..];
    assert_eq!(
        shutdown.matches("Adapter worker stopped").count(),
        2,
        "{shutdown}"
    );
    assert!(
        !shutdown.contains("subscription ended") && !shutdown.contains("restarting"),
        "an adapter worker restarted during shutdown:\n{shutdown}"
    );
    assert!(
        !shutdown.contains("WARN"),
        "warnings during shutdown:\n{shutdown}"
    );
}

#[test]
fn a_dead_embedded_server_is_restarted_and_the_node_reconnects() {
    let node = ChoirNode::start(EMBEDDED);
    assert!(poll_until(Duration::from_secs(20), || node
        .get("/healthz")
        .is_some_and(|(s, _)| s == 200)));
    let first = embedded_pid(&node).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();

    let reconnected = poll_until(Duration::from_secs(30), || {
        let Some((_, metrics)) = node.get("/metrics") else {
            return false;
        };
        let up = node.get("/healthz").is_some_and(|(s, _)| s == 200);
        let reconnects = metric_value(
            &metrics,
            "choir_network_events_total",
            &[("network", "local"), ("event", "reconnected")],
        );
        up && reconnects.unwrap_or(0.0) >= 1.0
    });
    assert!(reconnected, "no reconnect; log:\n{}", node.log());
    let second = embedded_pid(&node).unwrap();
    assert_ne!(first, second, "the server was not restarted");
    assert!(node
        .log()
        .contains("Embedded nats-server exited; restarting it"));
}

/// Whether `pid` runs and is not a zombie (an orphan killed here waits for init to reap it).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.get(stat.rfind(')')? + 2..)?.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// A node killed with SIGKILL cannot stop its embedded nats-server, which lives on holding
/// the JetStream store. The next start finds it through its pid file, kills it, and starts a
/// fresh server on the same store.
#[test]
fn a_stale_embedded_server_left_by_a_killed_node_is_killed_at_the_next_start() {
    let mut node = ChoirNode::start(EMBEDDED);
    wait_healthy(&node, "local");
    let stale = embedded_pid(&node).expect("embedded nats-server pid file");
    node.kill();
    assert!(
        running(stale),
        "the embedded server died with the node: nothing stale to test"
    );
    node.spawn();
    assert!(
        poll_until(Duration::from_secs(30), || !running(stale)),
        "the stale server {stale} still runs; log:\n{}",
        node.log()
    );
    wait_healthy(&node, "local");
    let fresh = embedded_pid(&node).expect("a new pid file");
    assert_ne!(fresh, stale);
    assert!(running(fresh));
    let log = node.log();
    assert!(
        log.contains("Killing a stale embedded nats-server left by an earlier run"),
        "{log}"
    );
}

/// The pid in a leftover pid file may by now belong to an unrelated process: only a process
/// whose command line names nats-server is killed; anything else is left alone.
#[test]
fn a_pid_file_naming_an_unrelated_process_does_not_get_it_killed() {
    let mut node = ChoirNode::start(EMBEDDED);
    wait_healthy(&node, "local");
    let status = stop_with_sigint(&mut node, false);
    assert!(status.success(), "{status:?}");
    let mut bystander = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .unwrap();
    let pid_file = node.state_dir().join("nats/local/nats-server.pid");
    std::fs::write(&pid_file, bystander.id().to_string()).unwrap();
    node.spawn();
    wait_healthy(&node, "local");
    let alive_now = running(bystander.id());
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(
        alive_now,
        "an unrelated process was killed; log:\n{}",
        node.log()
    );
    assert!(
        !node.log().contains("Killing a stale embedded nats-server"),
        "{}",
        node.log()
    );
    assert_ne!(embedded_pid(&node), Some(bystander.id()));
}

/// A `nats-server` in `dir` that claims `version` to `--version` and otherwise runs the
/// suite's real server.
fn wrapper(dir: &Path, version: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("nats-server");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'nats-server: v{version}'; exit 0; fi\nexec {:?} \"$@\"\n",
            common::nats::binary().display().to_string()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `embedded_servers.local` of `/debug/vars`.
fn embedded_vars(node: &ChoirNode) -> serde_json::Value {
    let (_, vars) = node.get("/debug/vars").unwrap();
    let vars: serde_json::Value = serde_json::from_str(&vars).unwrap();
    vars["embedded_servers"]["local"].clone()
}

/// With no `nats_server` in the config, the embedded server is the newest `nats-server`
/// installed, not the first on `PATH`: of two on `PATH` (1.0.0 first, 99.1.0 second, both
/// newer or older than anything in the usual system places) choir runs 99.1.0, logs its
/// version and shows binary and version in `/debug/vars`.
#[test]
fn the_embedded_default_runs_the_newest_nats_server_it_finds_and_shows_its_version() {
    let bins = tempfile::tempdir().unwrap();
    let old = wrapper(&bins.path().join("old"), "1.0.0");
    let new = wrapper(&bins.path().join("new"), "99.1.0");
    let path = std::env::join_paths(
        [old.parent().unwrap(), new.parent().unwrap()]
            .into_iter()
            .map(Path::to_path_buf)
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let node = ChoirNode::start_exact_with_env(EMBEDDED, &[("PATH", path.to_str().unwrap())]);
    wait_healthy(&node, "local");
    let vars = embedded_vars(&node);
    assert_eq!(vars["binary"], new.display().to_string(), "{vars}");
    assert_eq!(vars["version"], "99.1.0", "{vars}");
    assert!(vars["url"]
        .as_str()
        .unwrap()
        .starts_with("nats://127.0.0.1:"));
    let log = node.log();
    assert!(
        log.lines()
            .any(|l| l.contains("Started embedded nats-server") && l.contains("version=99.1.0")),
        "{log}"
    );
}

/// `nats_server` in the config beats the newest installed server: the node runs the named
/// binary (an older one here) and `/debug/vars` shows it.
#[test]
fn nats_server_in_the_config_overrides_the_newest_installed_server() {
    let bins = tempfile::tempdir().unwrap();
    let named = wrapper(&bins.path().join("named"), "1.2.3");
    let newer = wrapper(&bins.path().join("newer"), "99.1.0");
    let path = std::env::join_paths(
        std::iter::once(newer.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let body = format!(
        "[networks.local]\nembedded = true\nnats_server = {:?}\n",
        named.display().to_string()
    );
    let node = ChoirNode::start_exact_with_env(&body, &[("PATH", path.to_str().unwrap())]);
    wait_healthy(&node, "local");
    let vars = embedded_vars(&node);
    assert_eq!(vars["binary"], named.display().to_string(), "{vars}");
    assert_eq!(vars["version"], "1.2.3", "{vars}");
}
