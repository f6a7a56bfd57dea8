//! The run report: outcome, inputs, nodes, locks, every task try, metrics. JSON as this
//! struct serializes; YAML ([`yaml`]) in the structure of Choria's Ruby report (the private `choria` module).

mod choria;
pub mod yaml;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use super::lock::LockRecord;
use super::template::strftime_utc;

/// Report format version.
pub const REPORT_VERSION: u32 = 1;

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Format version.
    pub version: u32,
    /// This run's id.
    pub run_id: String,
    /// Name and version of the playbook.
    pub playbook: PlaybookInfo,
    /// Whether the playbook succeeded.
    pub success: bool,
    /// Why it failed (prepare error, failed task, lost lock, interrupt).
    pub error: Option<String>,
    /// Inputs: static values and the names of dynamic ones.
    pub inputs: ReportInputs,
    /// Resolved node sets.
    pub nodes: BTreeMap<String, Vec<String>>,
    /// Locks taken (store, key, fencing token, when asked for, taken and given back).
    pub locks: Vec<LockRecord>,
    /// Every try of every task, in order.
    pub tasks: Vec<TaskTry>,
    /// Times and counts.
    pub metrics: RunMetrics,
}

/// `playbook` in the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlaybookInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// `inputs` in the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReportInputs {
    /// Values fixed for the run.
    #[serde(rename = "static")]
    pub fixed: BTreeMap<String, Value>,
    /// Inputs re-read from their store on every reference (values not recorded).
    pub dynamic: Vec<String>,
}

/// One try of one task.
#[derive(Clone, Debug, Serialize)]
pub struct TaskTry {
    /// `tasks`, `pre_book`, `pre_task`, …
    pub set: String,
    /// Position in its list.
    pub index: usize,
    /// Task type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Rendered description.
    pub description: String,
    /// 1-based try number.
    #[serde(rename = "try")]
    pub attempt: u32,
    /// RFC 3339 UTC.
    pub start_time: String,
    /// RFC 3339 UTC.
    pub end_time: String,
    /// Seconds.
    pub run_time: f64,
    /// Whether this try succeeded.
    pub success: bool,
    /// What happened.
    pub message: String,
    /// What it produced.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

/// Counts and times for one task type.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TypeMetrics {
    /// Tries.
    pub count: usize,
    /// Seconds.
    pub total_time: f64,
    /// Successful tries.
    pub pass: usize,
    /// Failed tries.
    pub fail: usize,
}

/// `metrics` in the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunMetrics {
    /// RFC 3339 UTC.
    pub start_time: String,
    /// RFC 3339 UTC.
    pub end_time: String,
    /// Seconds.
    pub run_time: f64,
    /// Task tries.
    pub task_count: usize,
    /// Per type.
    pub task_types: BTreeMap<String, TypeMetrics>,
}

/// `at` as RFC 3339 UTC (seconds).
pub fn timestamp(at: SystemTime) -> String {
    strftime_utc("%Y-%m-%dT%H:%M:%SZ", at)
}

/// `at` as RFC 3339 UTC with microseconds (fixed width, so these sort as text).
pub fn precise_timestamp(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    format!(
        "{}.{:06}Z",
        strftime_utc("%Y-%m-%dT%H:%M:%S", at.into()),
        at.microsecond()
    )
}

impl Report {
    /// An empty, unsuccessful report.
    pub fn new(run_id: String, name: &str, version: &str) -> Self {
        Self {
            version: REPORT_VERSION,
            run_id,
            playbook: PlaybookInfo {
                name: name.to_string(),
                version: version.to_string(),
            },
            success: false,
            error: None,
            inputs: ReportInputs::default(),
            nodes: BTreeMap::new(),
            locks: Vec::new(),
            tasks: Vec::new(),
            metrics: RunMetrics {
                start_time: timestamp(SystemTime::now()),
                ..Default::default()
            },
        }
    }

    /// Appends a try and counts it.
    pub fn record(&mut self, entry: TaskTry) {
        let metrics = self
            .metrics
            .task_types
            .entry(entry.kind.clone())
            .or_default();
        metrics.count += 1;
        metrics.total_time += entry.run_time;
        if entry.success {
            metrics.pass += 1;
        } else {
            metrics.fail += 1;
        }
        self.metrics.task_count += 1;
        self.tasks.push(entry);
    }

    /// A short human summary.
    pub fn summary(&self) -> String {
        let failed = self.tasks.iter().filter(|t| !t.success).count();
        let mut out = format!(
            "playbook {} {}: {} ({} task tries, {failed} failed, {:.1}s)",
            self.playbook.name,
            self.playbook.version,
            if self.success { "success" } else { "FAILED" },
            self.tasks.len(),
            self.metrics.run_time
        );
        if let Some(error) = &self.error {
            out.push_str(&format!("\nerror: {error}"));
        }
        out
    }
}
