//! Shell tasks leave nothing behind when they are stopped: a task that times out, and a run
//! interrupted with Ctrl-C (SIGINT to choir only), kill the task's whole process group, so a
//! grandchild the command started in the background is gone too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::node::choir_bin;
use common::poll_until;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A playbook whose one shell task starts `sleep 300` in the background, writes its pid to
/// `pidfile` and waits for it.
fn playbook(dir: &Path, timeout: Option<&str>) -> PathBuf {
    let timeout = timeout
        .map(|t| format!("timeout = \"{t}\"\n"))
        .unwrap_or_default();
    let body = format!(
        r#"[metadata]
name = "grandchild"
version = "1"
author = "test"
description = "a task that starts a grandchild"

[[tasks]]
type = "shell"
command = ["sh", "-c", "sleep 300 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait"]
{timeout}"#,
        pidfile = dir.join("pidfile").display()
    );
    let path = dir.join("grandchild.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// Kills the child (if still there) on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills the grandchild on drop, so a failing test leaves nothing running.
struct Grandchild(i32);

impl Drop for Grandchild {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

fn start(file: &Path, dir: &Path) -> Guard {
    let log = std::fs::File::create(dir.join("out")).unwrap();
    Guard(
        Command::new(choir_bin())
            .args(["playbook", "run"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn output(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("out")).unwrap_or_default()
}

fn grandchild(dir: &Path) -> Grandchild {
    let pidfile = dir.join("pidfile");
    assert!(
        poll_until(Duration::from_secs(20), || pidfile.exists()),
        "the task never started its grandchild:\n{}",
        output(dir)
    );
    Grandchild(
        std::fs::read_to_string(pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    )
}

/// Whether `pid` is a live process (a zombie waiting for its reaper counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
    }
}

fn wait_exit(run: &mut Guard, dir: &Path) -> i32 {
    let mut code = None;
    poll_until(Duration::from_secs(30), || {
        code = run.0.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
        code.is_some()
    });
    code.unwrap_or_else(|| panic!("the run did not end:\n{}", output(dir)))
}

#[test]
fn a_shell_task_that_times_out_leaves_no_grandchild_alive() {
    let dir = tempfile::tempdir().unwrap();
    let file = playbook(dir.path(), Some("1s"));
    let mut run = start(&file, dir.path());
    let grandchild = grandchild(dir.path());
    assert_eq!(wait_exit(&mut run, dir.path()), 1, "{}", output(dir.path()));
    assert!(
        output(dir.path()).contains("timed out after 1s"),
        "{}",
        output(dir.path())
    );
    assert!(
        poll_until(Duration::from_secs(10), || !alive(grandchild.0)),
        "grandchild {} still runs after the task timed out",
        grandchild.0
    );
}

#[test]
fn an_interrupted_run_leaves_no_grandchild_of_its_shell_task_alive() {
    let dir = tempfile::tempdir().unwrap();
    let file = playbook(dir.path(), None);
    let mut run = start(&file, dir.path());
    let grandchild = grandchild(dir.path());
    // Only choir gets the signal (a terminal would signal its whole foreground group).
    kill(Pid::from_raw(run.0.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(wait_exit(&mut run, dir.path()), 1, "{}", output(dir.path()));
    assert!(
        poll_until(Duration::from_secs(10), || !alive(grandchild.0)),
        "grandchild {} still runs after the run was interrupted",
        grandchild.0
    );
}
