//! The checks at the end of a soak: every message of the source stream that must be copied is
//! in the central stream exactly once; no lock was held twice; no panic; no ERROR line
//! without a metric that counts it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;

use super::load::{RunRecord, SENDER_PREFIX};

/// One message of a stream, as the checks need it.
pub struct Stored {
    pub seq: u64,
    /// The adapter output's `sender` and `requestid` (source), when it is one.
    pub sender: Option<String>,
    pub requestid: Option<String>,
    /// The source sequence in `Choir-Provenance` (target).
    pub provenance: Option<u64>,
}

/// Reads the whole stream `name` in order (bounded by `limit`).
pub async fn read_stream(
    client: &async_nats::Client,
    name: &str,
    limit: Duration,
) -> Option<Vec<Stored>> {
    let js = jetstream::new(client.clone());
    let read = async {
        let mut stream = js.get_stream(name).await.ok()?;
        let expected = stream.info().await.ok()?.state.messages;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await
            .ok()?;
        let mut messages = consumer.messages().await.ok()?;
        let mut out = Vec::new();
        while (out.len() as u64) < expected {
            let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
                .await
                .ok()??
                .ok()?;
            let seq = message.info().ok()?.stream_sequence;
            let provenance = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Choir-Provenance"))
                .and_then(|v| {
                    v.as_str()
                        .split_whitespace()
                        .find_map(|kv| kv.strip_prefix("seq="))
                        .and_then(|n| n.parse().ok())
                });
            let doc: Option<serde_json::Value> = serde_json::from_slice(&message.payload).ok();
            let field = |k: &str| {
                doc.as_ref()
                    .and_then(|d| d.get(k))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            out.push(Stored {
                seq,
                sender: field("sender"),
                requestid: field("requestid"),
                provenance,
            });
        }
        Some(out)
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}

/// What the replication check found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Replication {
    /// Registration requests the publisher sent.
    pub published: u64,
    /// Of those, how many the adapter stored in the source stream (core NATS is at most once:
    /// requests sent while a server or choir was down are lost before the stream).
    pub ingested: u64,
    /// Requests stored twice in the source stream (the adapter's `Nats-Msg-Id` should stop it).
    pub source_duplicates: u64,
    /// Source messages that must be copied (a soak sender, or no sender: garbage).
    pub checked: u64,
    /// Of those, not in the target.
    pub lost: u64,
    /// Source sequences copied more than once.
    pub duplicated: u64,
    /// Emulated daemons' registrations sampled away (the tracker's rule: once per `age`).
    pub sampled_away: u64,
    /// Target messages whose provenance names no source message.
    pub phantom: u64,
    /// A few lost source sequences, for the report.
    pub lost_examples: Vec<u64>,
}

/// Compares the source and the target stream.
pub fn replication(published: &[String], source: &[Stored], target: &[Stored]) -> Replication {
    let mut r = Replication {
        published: published.len() as u64,
        ..Replication::default()
    };
    let mut ids: HashMap<&str, u64> = HashMap::new();
    for m in source {
        if let Some(id) = m.requestid.as_deref() {
            *ids.entry(id).or_default() += 1;
        }
    }
    r.ingested = published
        .iter()
        .filter(|id| ids.contains_key(id.as_str()))
        .count() as u64;
    r.source_duplicates = ids.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    let mut copies: HashMap<u64, u64> = HashMap::new();
    for m in target {
        match m.provenance {
            Some(seq) => *copies.entry(seq).or_default() += 1,
            None => r.phantom += 1,
        }
    }
    let seqs: HashSet<u64> = source.iter().map(|m| m.seq).collect();
    r.phantom += copies.keys().filter(|s| !seqs.contains(s)).count() as u64;
    r.duplicated = copies.values().filter(|n| **n > 1).count() as u64;
    for m in source {
        let must = m
            .sender
            .as_deref()
            .is_none_or(|s| s.starts_with(SENDER_PREFIX));
        let copied = copies.get(&m.seq).copied().unwrap_or(0);
        if must {
            r.checked += 1;
            if copied == 0 {
                r.lost += 1;
                if r.lost_examples.len() < 10 {
                    r.lost_examples.push(m.seq);
                }
            }
        } else if copied == 0 {
            r.sampled_away += 1;
        }
    }
    r
}

/// What the lock check found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Locks {
    pub runs: u64,
    pub succeeded: u64,
    /// Runs that held the lock (a report with a fencing token and a critical section).
    pub held: u64,
    /// Consecutive holders (by the start of their critical section) whose tokens did not
    /// increase.
    pub token_not_increasing: u64,
    /// Critical sections that overlapped the next holder's.
    pub overlapping: u64,
    /// Overlaps where the earlier holder's run did not fail (it did not lose its lock).
    pub overlapping_unexplained: u64,
    pub examples: Vec<String>,
}

/// Reads every run's report and the critical-section log.
pub fn locks(runs: &[RunRecord], sections: &Path) -> Locks {
    let mut out = Locks {
        runs: runs.len() as u64,
        succeeded: runs.iter().filter(|r| r.success).count() as u64,
        ..Locks::default()
    };
    let text = std::fs::read_to_string(sections).unwrap_or_default();
    let mut times: HashMap<&str, (Option<u128>, Option<u128>)> = HashMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(tag), Some(what), Some(ns)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(ns) = ns.parse::<u128>() else { continue };
        let entry = times.entry(tag).or_default();
        match what {
            "start" => entry.0 = Some(ns),
            "end" => entry.1 = Some(ns),
            _ => {}
        }
    }
    // (start, end, token, tag, success)
    let mut held = Vec::new();
    for run in runs {
        let Some((Some(start), end)) = times.get(run.tag.as_str()).copied() else {
            continue;
        };
        let report: Option<serde_json::Value> = std::fs::read(&run.report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let token = report
            .as_ref()
            .and_then(|r| r["locks"].get(0))
            .and_then(|l| l["fence"].as_u64());
        let Some(token) = token else {
            if out.examples.len() < 10 {
                out.examples.push(format!(
                    "{}: critical section without a fencing token in its report",
                    run.tag
                ));
            }
            out.token_not_increasing += 1;
            continue;
        };
        held.push((
            start,
            end.unwrap_or(u128::MAX),
            token,
            run.tag.clone(),
            run.success,
        ));
    }
    held.sort();
    out.held = held.len() as u64;
    for pair in held.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.2 <= a.2 {
            out.token_not_increasing += 1;
            if out.examples.len() < 10 {
                out.examples.push(format!(
                    "{} (token {}) then {} (token {})",
                    a.3, a.2, b.3, b.2
                ));
            }
        }
        if a.1 > b.0 {
            out.overlapping += 1;
            if a.4 {
                out.overlapping_unexplained += 1;
                if out.examples.len() < 10 {
                    out.examples.push(format!(
                        "{} overlaps {} and did not lose its lock",
                        a.3, b.3
                    ));
                }
            }
        }
    }
    out
}

/// An ERROR message (its start), the counter that counts it, and the label it must carry.
type ErrorMetric = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

/// The ERROR lines choir may log and the counter that must count each.
const ERROR_METRICS: &[ErrorMetric] = &[
    (
        "Publish failed for good; message dropped.",
        "choir_adapter_dropped_total",
        Some(("reason", "publish")),
    ),
    (
        "Target rejected a message for good",
        "choir_replicator_dead_lettered_total",
        None,
    ),
    (
        "Actor mailbox closed (it panicked)",
        "choir_actor_respawns_total",
        None,
    ),
];

/// What the log check found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Logs {
    pub lines: u64,
    pub warn: u64,
    pub error: u64,
    pub panics: u64,
    /// ERROR lines (by message) that no metric counts, or more than the metric counted.
    pub error_without_metric: BTreeMap<String, u64>,
    /// WARN and ERROR messages by count (the most frequent first in the table).
    pub by_message: BTreeMap<String, u64>,
    pub panic_examples: Vec<String>,
}

/// Reads choir's JSON log, incarnation by incarnation, against the last metrics page each
/// incarnation served (`metrics[i]`: the page and the log offset at which it was taken).
pub fn logs(
    log: &Path,
    incarnations: &[(u32, u64)],
    metrics: &[Vec<(u64, String)>],
    extra: &[&Path],
) -> Logs {
    let mut out = Logs::default();
    let bytes = std::fs::read(log).unwrap_or_default();
    for (i, &(_, start)) in incarnations.iter().enumerate() {
        let end = incarnations
            .get(i + 1)
            .map_or(bytes.len() as u64, |(_, o)| *o) as usize;
        let segment = String::from_utf8_lossy(
            &bytes[(start as usize).min(bytes.len())..end.min(bytes.len())],
        )
        .into_owned();
        // Errors counted before the last page this incarnation served, by message.
        let last = metrics.get(i).and_then(|pages| pages.last());
        let mut counted_errors: HashMap<String, u64> = HashMap::new();
        let mut offset = start;
        for line in segment.lines() {
            offset += line.len() as u64 + 1;
            out.lines += 1;
            if line.contains("panicked") {
                out.panics += 1;
                if out.panic_examples.len() < 5 {
                    out.panic_examples.push(line.chars().take(300).collect());
                }
            }
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let level = entry["level"].as_str().unwrap_or("");
            let message = entry["fields"]["message"].as_str().unwrap_or("").to_owned();
            match level {
                "WARN" => out.warn += 1,
                "ERROR" => {
                    out.error += 1;
                    // Lines after the last page this incarnation served may not be
                    // counted in it yet; an incarnation that served no page is held to all.
                    if last.is_none_or(|(at, _)| offset <= *at) {
                        *counted_errors.entry(message.clone()).or_default() += 1;
                    }
                }
                _ => continue,
            }
            *out.by_message
                .entry(format!("{level} {message}"))
                .or_default() += 1;
        }
        for (message, n) in counted_errors {
            let metric = ERROR_METRICS
                .iter()
                .find(|(m, _, _)| message.starts_with(m))
                .map(|(_, metric, label)| {
                    last.map_or(0.0, |(_, page)| {
                        super::procs::metric_sum(page, metric, *label)
                    })
                });
            match metric {
                Some(value) if value >= n as f64 => {}
                _ => *out.error_without_metric.entry(message).or_default() += n,
            }
        }
    }
    for path in extra {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("panicked")) {
            out.panics += 1;
            if out.panic_examples.len() < 5 {
                out.panic_examples.push(line.chars().take(300).collect());
            }
        }
    }
    out
}

/// Lines where a nats-server closed one of choir's connections for breaking the protocol
/// (an overlong control line, a parser error, a payload over the maximum): one bad message
/// must never cut a connection other messages share.
pub fn protocol_violations(server_logs: &[&Path]) -> Vec<String> {
    let mut out = Vec::new();
    for path in server_logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let violation = [
                "maximum control line exceeded",
                "Parser ERROR",
                "Maximum Payload",
            ]
            .iter()
            .any(|v| line.contains(v));
            if violation && line.contains("choir") {
                out.push(line.chars().take(200).collect());
            }
        }
    }
    out
}
