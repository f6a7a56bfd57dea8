//! Playbook locks against real servers: two runs of the same lock take turns (the second one
//! asked while the first held it, got it only after the first let go, with a higher fencing
//! token); a shorter timeout fails with a clear error; a run killed with SIGKILL frees its lock
//! after the TTL; Ctrl-C releases at once; a lock on a file store is refused with the
//! capability error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::consul::ConsulApi;
use common::etcd::Etcd;
use common::node::choir_bin;
use common::{poll_until, NatsServer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long a run stays inside its critical section: `GATE` waits (bounded) until the test
/// creates `go` in the run's work dir; anything else is a `sleep` duration.
const GATE: &str = "gate";

/// A playbook whose critical section proves exclusion: `mkdir held` fails if another run is
/// inside, and the log shows start/end pairs.
fn locked_playbook(
    dir: &Path,
    name: &str,
    store: &str,
    timeout: &str,
    ttl: &str,
    hold: &str,
) -> PathBuf {
    let hold = if hold == GATE {
        "type = \"shell\"\ntimeout = \"60s\"\n\
         command = [\"sh\", \"-c\", \"while [ ! -e $1/go ]; do sleep 0.02; done\", \"_\", \"{{ inputs.dir }}\"]"
            .to_string()
    } else {
        format!("type = \"sleep\"\nduration = \"{hold}\"")
    };
    let body = format!(
        r#"locks = ["pb"]

[metadata]
name = "locked"
version = "1"
author = "test"
description = "holds the playbook lock for a while"

[data_stores.pb]
{store}
timeout = "{timeout}"
ttl = "{ttl}"

[inputs.id]
description = "run id"
type = "string"
required = true

[inputs.dir]
description = "work dir"
type = "string"
required = true

[[tasks]]
type = "shell"
command = ["mkdir", "{{{{ inputs.dir }}}}/held"]

[[tasks]]
type = "shell"
command = ["sh", "-c", "echo start $1 >> $2/log", "_", "{{{{ inputs.id }}}}", "{{{{ inputs.dir }}}}"]

[[tasks]]
{hold}

[[tasks]]
type = "shell"
command = ["sh", "-c", "echo end $1 >> $2/log", "_", "{{{{ inputs.id }}}}", "{{{{ inputs.dir }}}}"]

[[tasks]]
type = "shell"
command = ["rmdir", "{{{{ inputs.dir }}}}/held"]
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

fn nats_store(server: &NatsServer) -> String {
    format!("type = \"nats_kv\"\nservers = [\"{}\"]", server.url())
}

struct Run {
    child: Child,
    out: PathBuf,
    report: PathBuf,
}

impl Run {
    fn start(file: &Path, id: &str, dir: &Path) -> Self {
        let out = dir.join(format!("{id}.out"));
        let report = dir.join(format!("{id}.report.json"));
        let log = std::fs::File::create(&out).unwrap();
        let child = Command::new(choir_bin())
            .args(["playbook", "run"])
            .arg(file)
            .args(["--id", id, "--dir"])
            .arg(dir)
            .arg("--report")
            .arg(&report)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child, out, report }
    }

    /// Waits (bounded) for the exit code.
    fn wait(&mut self, timeout: Duration) -> i32 {
        let mut code = None;
        poll_until(timeout, || {
            code = self
                .child
                .try_wait()
                .unwrap()
                .map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
        code.unwrap_or_else(|| {
            panic!(
                "run did not finish in {timeout:?}; output:\n{}",
                self.output()
            )
        })
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn report(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.report).unwrap()).unwrap()
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `locks[0]` of a report: (requested_at, acquired_at, released_at, fence).
fn lock_record(report: &Value) -> (String, String, String, u64) {
    let lock = &report["locks"][0];
    let text = |k: &str| {
        lock[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k}: {lock}"))
            .to_string()
    };
    (
        text("requested_at"),
        text("acquired_at"),
        text("released_at"),
        lock["fence"].as_u64().unwrap(),
    )
}

/// Asserts that `second` asked for the lock while `first` held it, got it only once `first`
/// let go, and with a higher fencing token. Times are RFC 3339 UTC with microseconds, fixed
/// width: they compare as text.
fn assert_took_turns(first: &Value, second: &Value) {
    let (_, a_acquired, a_released, a_fence) = lock_record(first);
    let (b_requested, b_acquired, b_released, b_fence) = lock_record(second);
    assert!(a_acquired <= a_released && b_acquired <= b_released);
    assert!(
        b_requested < a_released,
        "the second run did not wait: it asked at {b_requested}, the first released at {a_released}"
    );
    assert!(
        a_released <= b_acquired,
        "held twice: the first released at {a_released}, the second acquired at {b_acquired}"
    );
    assert!(
        a_fence < b_fence,
        "fencing tokens not increasing: {a_fence} then {b_fence}"
    );
}

fn take_turns(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = locked_playbook(dir.path(), "turns", store, "60s", "5s", GATE);
    let mut a = Run::start(&file, "a", dir.path());
    assert!(
        poll_until(Duration::from_secs(20), || dir.path().join("held").exists()),
        "{}",
        a.output()
    );
    let mut b = Run::start(&file, "b", dir.path());
    // b is waiting for the lock a holds; only then may a leave its critical section.
    assert!(
        poll_until(Duration::from_secs(20), || b
            .output()
            .contains("Waiting for lock.")),
        "{}",
        b.output()
    );
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(a.wait(Duration::from_secs(60)), 0, "a:\n{}", a.output());
    assert_eq!(b.wait(Duration::from_secs(60)), 0, "b:\n{}", b.output());
    let log = log_lines(dir.path());
    assert_eq!(log, ["start a", "end a", "start b", "end b"]);
    assert_took_turns(&a.report(), &b.report());
}

#[test]
fn two_runs_of_the_same_nats_kv_lock_take_turns() {
    let server = NatsServer::start();
    take_turns(&nats_store(&server));
}

#[test]
fn two_runs_of_the_same_etcd_lock_take_turns() {
    let etcd = Etcd::start();
    take_turns(&format!("type = \"etcd\"\nurl = \"{}\"", etcd.url()));
}

#[test]
fn two_runs_of_the_same_consul_lock_take_turns() {
    let consul = ConsulApi::start();
    take_turns(&format!("type = \"consul\"\nurl = \"{}\"", consul.url()));
    // Both runs destroyed their sessions at the end.
    assert_eq!(consul.live_sessions(), 0);
}

#[test]
fn two_runs_of_the_same_memory_lock_in_one_process_take_turns() {
    use choir_actors::playbook::{self, Runner};
    let dir = tempfile::tempdir().unwrap();
    let file = locked_playbook(dir.path(), "memory", "type = \"memory\"", "60s", "5s", GATE);
    let pb = playbook::load(&file).unwrap();
    let inputs = |id: &str| {
        [
            ("id".to_string(), Value::from(id)),
            ("dir".to_string(), Value::from(dir.path().to_str().unwrap())),
        ]
        .into_iter()
        .collect()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = runtime.block_on(async {
        // One thread: each run reaches its lock request on its first poll, so whichever
        // waits has asked before the holder's `held` dir exists; only then is `go` created.
        let a = Runner::new(pb.clone(), inputs("a")).run(std::future::pending());
        let b = Runner::new(pb.clone(), inputs("b")).run(std::future::pending());
        let gate = async {
            assert!(
                common::eventually(Duration::from_secs(20), || async {
                    dir.path().join("held").exists()
                })
                .await
            );
            std::fs::write(dir.path().join("go"), "").unwrap();
        };
        let (a, b, ()) =
            tokio::time::timeout(Duration::from_secs(30), futures::future::join3(a, b, gate))
                .await
                .unwrap();
        (a, b)
    });
    assert!(a.success && b.success, "{a:?}\n{b:?}");
    let log = log_lines(dir.path());
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[0].replace("start", "end"), log[1], "{log:?}");
    assert_eq!(log[2].replace("start", "end"), log[3], "{log:?}");
    let (a, b) = (
        serde_json::to_value(&a).unwrap(),
        serde_json::to_value(&b).unwrap(),
    );
    if log[0] == "start a" {
        assert_took_turns(&a, &b);
    } else {
        assert_took_turns(&b, &a);
    }
}

#[test]
fn a_shorter_lock_timeout_fails_with_a_clear_error() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let holder = locked_playbook(
        dir.path(),
        "holder",
        &nats_store(&server),
        "60s",
        "5s",
        GATE,
    );
    let waiter = locked_playbook(
        dir.path(),
        "waiter",
        &nats_store(&server),
        "500ms",
        "5s",
        "1s",
    );
    let mut a = Run::start(&holder, "a", dir.path());
    assert!(
        poll_until(Duration::from_secs(20), || dir.path().join("held").exists()),
        "{}",
        a.output()
    );
    let mut b = Run::start(&waiter, "b", dir.path());
    assert_eq!(b.wait(Duration::from_secs(30)), 1, "{}", b.output());
    let error = b.report()["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("timed out after 500ms waiting for lock \"choria/locks/playbook/locked\" in store \"pb\"; held by {"),
        "{error}"
    );
    assert!(b.output().contains(&error), "{}", b.output());
    assert_eq!(b.report()["tasks"], serde_json::json!([]), "nothing ran");
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(a.wait(Duration::from_secs(30)), 0, "{}", a.output());
}

fn killed_holder_frees_the_lock(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    // ttl 2s; the waiter's timeout is ttl + 3s of renewal and expiry slack: it succeeding
    // proves the lock came free within that bound.
    let holder = locked_playbook(dir.path(), "holder", store, "10s", "2s", "60s");
    let waiter = locked_playbook(dir.path(), "waiter", store, "5s", "2s", "10ms");
    let mut a = Run::start(&holder, "a", dir.path());
    assert!(
        poll_until(Duration::from_secs(20), || dir.path().join("held").exists()),
        "{}",
        a.output()
    );
    a.signal(Signal::SIGKILL);
    a.wait(Duration::from_secs(10));
    let mut b = Run::start(&waiter, "b", other.path());
    assert_eq!(b.wait(Duration::from_secs(30)), 0, "{}", b.output());
    assert_eq!(b.report()["success"], true);
}

#[test]
fn a_nats_kv_lock_held_by_a_killed_run_frees_itself_after_its_ttl() {
    let server = NatsServer::start();
    killed_holder_frees_the_lock(&nats_store(&server));
}

#[test]
fn an_etcd_lock_held_by_a_killed_run_frees_itself_after_its_ttl() {
    let etcd = Etcd::start();
    killed_holder_frees_the_lock(&format!("type = \"etcd\"\nurl = \"{}\"", etcd.url()));
}

#[test]
fn a_consul_lock_held_by_a_killed_run_frees_itself_after_its_ttl() {
    let consul = ConsulApi::start();
    killed_holder_frees_the_lock(&format!("type = \"consul\"\nurl = \"{}\"", consul.url()));
}

#[test]
fn an_interrupted_run_releases_its_lock_at_once() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    // A 60s ttl and a 2s waiter timeout: only an explicit release lets the waiter in.
    let holder = locked_playbook(
        dir.path(),
        "holder",
        &nats_store(&server),
        "10s",
        "60s",
        "60s",
    );
    let waiter = locked_playbook(
        dir.path(),
        "waiter",
        &nats_store(&server),
        "2s",
        "60s",
        "10ms",
    );
    let mut a = Run::start(&holder, "a", dir.path());
    assert!(
        poll_until(Duration::from_secs(20), || dir.path().join("held").exists()),
        "{}",
        a.output()
    );
    a.signal(Signal::SIGINT);
    assert_eq!(a.wait(Duration::from_secs(20)), 1, "{}", a.output());
    assert_eq!(a.report()["error"], "interrupted");
    let mut b = Run::start(&waiter, "b", other.path());
    assert_eq!(b.wait(Duration::from_secs(30)), 0, "{}", b.output());
}

#[test]
fn a_lock_on_a_file_store_fails_with_the_capability_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file_lock.toml");
    std::fs::write(
        &file,
        format!(
            "locks = [\"files\"]\n[metadata]\nname = \"f\"\nversion = \"1\"\nauthor = \"t\"\ndescription = \"d\"\n\
             [data_stores.files]\ntype = \"file\"\nfile = \"{}\"\ncreate = true\n",
            dir.path().join("data.json").display()
        ),
    )
    .unwrap();
    for command in ["check", "run"] {
        let out = Command::new(choir_bin())
            .args(["playbook", command])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(
            stderr.contains("locks[0] = \"files\": locks are not supported by the file store"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn the_lock_keeper_refuses_stores_that_cannot_lock() {
    use choir_actors::playbook::lock::LockKeeper;
    use choir_actors::playbook::store::{environment::EnvironmentStore, file::FileStore};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let mut keeper = LockKeeper::new();
    let file = Arc::new(FileStore::open("f", &dir.path().join("d.json"), true).unwrap());
    let error = keeper
        .acquire(file, "k", Duration::from_secs(1), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "locks are not supported by the file store"
    );
    let env = Arc::new(EnvironmentStore::new("PB_"));
    let error = keeper
        .acquire(env, "k", Duration::from_secs(1), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "locks are not supported by the environment store"
    );
}

#[test]
fn a_lock_held_longer_than_its_ttl_is_renewed() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    // A 3s ttl renewed every 2.25s (0.75s of slack), held until the waiter gave up: the
    // waiter tries for 8s, more than two ttls, so only renewal keeps it out.
    let holder = locked_playbook(
        dir.path(),
        "holder",
        &nats_store(&server),
        "10s",
        "3s",
        GATE,
    );
    let waiter = locked_playbook(
        dir.path(),
        "waiter",
        &nats_store(&server),
        "8s",
        "3s",
        "10ms",
    );
    let mut a = Run::start(&holder, "a", dir.path());
    assert!(
        poll_until(Duration::from_secs(20), || dir.path().join("held").exists()),
        "{}",
        a.output()
    );
    let mut b = Run::start(&waiter, "b", other.path());
    assert_eq!(b.wait(Duration::from_secs(30)), 1, "{}", b.output());
    assert!(
        b.report()["error"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 8s"),
        "{}",
        b.output()
    );
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(a.wait(Duration::from_secs(30)), 0, "{}", a.output());
    assert_eq!(a.report()["success"], true);
}

#[test]
fn a_lost_lock_fails_the_run_and_nothing_more_runs() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let holder = locked_playbook(
        dir.path(),
        "holder",
        &nats_store(&server),
        "10s",
        "2s",
        "30s",
    );
    let mut a = Run::start(&holder, "a", dir.path());
    assert!(
        poll_until(Duration::from_secs(20), || dir.path().join("held").exists()),
        "{}",
        a.output()
    );
    // Someone removes the lock behind the holder's back: its next renewal fails.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let kv = js.get_key_value("CHOIR_PLAYBOOK_LOCKS").await.unwrap();
        kv.purge("choria/locks/playbook/locked").await.unwrap();
    });
    assert_eq!(a.wait(Duration::from_secs(20)), 1, "{}", a.output());
    let error = a.report()["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("lock \"choria/locks/playbook/locked\" in store \"pb\" was lost"),
        "{error}"
    );
    assert_eq!(
        log_lines(dir.path()),
        ["start a"],
        "the rest of the tasks never ran"
    );
}
