//! The soak's steady load: Choria registration requests from senders unique per message, a
//! federated discovery ping now and then, and playbook runs looping on a nats_kv lock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use choir::actors::protocol::{
    encode_request, subject, FederationHeader, NewRequest, TransportHeaders,
};
use futures::StreamExt as _;
use parking_lot::Mutex;

/// The subject the adapter ingests and the emulated fleet registers on.
pub const REGISTRATION: &str = "mcollective.broadcast.agent.registration";
/// The federation cluster the node brokers.
pub const CLUSTER: &str = "soak";
/// Prefix of the senders the publisher makes up (one per message).
pub const SENDER_PREFIX: &str = "soak-";

/// A Choria registration request from `sender`.
pub fn registration(sender: &str) -> (String, Vec<u8>) {
    let request = NewRequest {
        message: format!(r#"{{"identity":"{sender}","facts":{{"soak":true}}}}"#),
        senderid: sender.into(),
        callerid: format!("choria={sender}"),
        collective: "mcollective".into(),
        agent: "registration".into(),
        ..NewRequest::default()
    }
    .build()
    .unwrap();
    let id = request.envelope.requestid.clone();
    (
        id,
        encode_request(&request, TransportHeaders::default()).unwrap(),
    )
}

/// Publishes registration requests at `rate` per second until `stop`; returns the request ids
/// it published (a publish the client refused is not counted).
pub async fn publish_registrations(url: String, rate: u64, stop: Arc<AtomicBool>) -> Vec<String> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .unwrap();
    let mut ids = Vec::new();
    let period = Duration::from_micros(1_000_000 / rate.max(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (id, payload) = registration(&format!("{SENDER_PREFIX}{n}"));
        n += 1;
        if client.publish(REGISTRATION, payload.into()).await.is_ok() {
            ids.push(id);
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    ids
}

/// Federated discovery pings through the broker: rounds sent and replies received.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct PingStats {
    pub rounds: u64,
    pub replies: u64,
    pub full_rounds: u64,
}

/// Every `every`, a federated discovery ping on the federation network; counts the replies
/// that come back within 2 s. Core NATS is at most once: rounds during a fault lose replies.
pub async fn federated_pings(
    url: String,
    expected: u64,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> PingStats {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .unwrap();
    let mut stats = PingStats::default();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        let callerid = "choria=soak.client";
        let request = NewRequest {
            message: "ping".into(),
            senderid: "soak.client".into(),
            callerid: callerid.into(),
            collective: "mcollective".into(),
            agent: "discovery".into(),
            ..NewRequest::default()
        }
        .build()
        .unwrap();
        let reply_to = subject::reply("mcollective", callerid, &request.envelope.requestid);
        let mut headers = TransportHeaders::for_request(reply_to.clone(), "soak.client");
        headers.federation = Some(FederationHeader {
            req: request.envelope.requestid.clone(),
            reply_to: String::new(),
            target: vec![subject::broadcast_agent("mcollective", "discovery")],
        });
        let Ok(mut sub) = client.subscribe(reply_to).await else {
            continue;
        };
        let payload = encode_request(&request, headers).unwrap();
        if client
            .publish(subject::federation_requests(CLUSTER), payload.into())
            .await
            .is_err()
        {
            continue;
        }
        stats.rounds += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut got = 0;
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, sub.next()).await {
            got += 1;
        }
        stats.replies += got;
        if got >= expected {
            stats.full_rounds += 1;
        }
    }
    stats
}

/// The lock playbook: one nats_kv lock on the central server, one shell task that writes
/// when its critical section starts and ends (nanoseconds) under the run's tag.
pub fn lock_playbook(dir: &Path, servers: &str) -> (PathBuf, PathBuf) {
    let sections = dir.join("critical-sections.log");
    let text = format!(
        r#"locks = ["soak"]

[metadata]
name = "soak_lock"
version = "1.0.0"
author = "soak"
description = "Takes the soak lock and records its critical section"

[inputs.tag]
description = "Which run this is"
type = "string"
required = true

[data_stores.soak]
type = "nats_kv"
servers = ["{servers}"]
bucket = "SOAK"
timeout = "60s"
ttl = "3s"

[[tasks]]
type = "shell"
description = "Critical section"
timeout = "20s"
command = ["/bin/sh", "-c", "echo \"$0 start $(date +%s%N)\" >> {log}; sleep 0.2; echo \"$0 end $(date +%s%N)\" >> {log}", "{{{{ inputs.tag }}}}"]
"#,
        log = sections.display()
    );
    let path = dir.join("soak_lock.toml");
    std::fs::write(&path, text).unwrap();
    (path, sections)
}

/// One playbook run of a loop.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub tag: String,
    pub report: PathBuf,
    pub success: bool,
}

/// Runs the lock playbook again and again until `stop`, as `choir playbook run`; every run
/// writes its report next to the playbook and appends its output to `playbook.log`.
pub fn playbook_loop(
    name: &'static str,
    playbook: PathBuf,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    runs: Arc<Mutex<Vec<RunRecord>>>,
    counter: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{name}-{n}");
        let report = dir.join(format!("report-{tag}.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("playbook.log"))
            .unwrap();
        let started = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_choir"))
            .args(["playbook", "run"])
            .arg(&playbook)
            .args(["--tag", &tag, "--report"])
            .arg(&report)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status();
        let success = status.map(|s| s.success()).unwrap_or(false);
        runs.lock().push(RunRecord {
            tag,
            report,
            success,
        });
        if !success && started.elapsed() < Duration::from_millis(500) {
            // Failing at once (the lock server is down): do not spin.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
