//! The report in the structure of Choria's Ruby report (`report`, `playbook`, `inputs`,
//! `nodes`, `tasks`, `metrics`, `logs`), for `--report out.yaml`. choir's own additions (the
//! run id, the locks, each try's number and data) are kept under their JSON names.

use serde_json::{json, Value};

use super::Report;

impl Report {
    /// This report as Choria's Ruby engine shaped it, its sections in Choria's order. `logs` holds one line per task try
    /// (INFO when it succeeded, ERROR when it failed) and the run's outcome, the lines choir
    /// logs for them.
    pub fn to_choria(&self) -> Vec<(&'static str, Value)> {
        let tasks: Vec<Value> = self
            .tasks
            .iter()
            .map(|t| {
                json!({
                    "type": t.kind,
                    "set": t.set,
                    "index": t.index,
                    "try": t.attempt,
                    "description": t.description,
                    "start_time": t.start_time,
                    "end_time": t.end_time,
                    "run_time": t.run_time,
                    "ran": true,
                    "msg": t.message,
                    "success": t.success,
                    "data": t.data,
                })
            })
            .collect();
        let mut logs: Vec<Value> = self
            .tasks
            .iter()
            .map(|t| {
                json!({
                    "time": t.end_time,
                    "level": if t.success { "info" } else { "error" },
                    "from": format!("{}[{}]", t.set, t.index),
                    "msg": format!(
                        "{}: {}",
                        t.description,
                        t.message.lines().next().unwrap_or_default()
                    ),
                })
            })
            .collect();
        logs.push(json!({
            "time": self.metrics.end_time,
            "level": if self.success { "info" } else { "error" },
            "from": "playbook",
            "msg": match &self.error {
                None => format!("playbook {} succeeded", self.playbook.name),
                Some(error) => format!("playbook {} failed: {error}", self.playbook.name),
            },
        }));
        vec![
            (
                "report",
                json!({
                    "version": self.version,
                    "timestamp": self.metrics.start_time,
                    "success": self.success,
                    "playbook_error": self.error,
                    "run_id": self.run_id,
                }),
            ),
            (
                "playbook",
                json!({ "name": self.playbook.name, "version": self.playbook.version }),
            ),
            (
                "inputs",
                json!({ "static": self.inputs.fixed, "dynamic": self.inputs.dynamic }),
            ),
            ("nodes", json!(self.nodes)),
            ("tasks", Value::Array(tasks)),
            ("metrics", json!(self.metrics)),
            ("logs", Value::Array(logs)),
            ("locks", json!(self.locks)),
        ]
    }
}
