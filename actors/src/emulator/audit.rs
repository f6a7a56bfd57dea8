//! The Choria RPC audit log: one JSON object per line per mcorpc request handled.
//!
//! ```json
//! {"timestamp":"2018-03-03T14:49:17.000000+0000","request_id":"a3f1…","request_time":1520088557,
//!  "caller":"choria=rip.mcollective","sender":"client.example.net","agent":"emulated0",
//!  "action":"generate","data":{"size":20}}
//! ```
//!
//! The file is opened in append mode and every line is written with a single `write` call,
//! so the daemons of a fleet (on several threads) share it without a lock and lines never
//! interleave.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::EmulatorError;
use crate::protocol::{Request, RpcRequest};

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// When the request was handled, Go layout `2006-01-02T15:04:05.000000-0700` in UTC.
    pub timestamp: String,
    /// The request id.
    pub request_id: String,
    /// The request's creation time (Unix seconds).
    pub request_time: i64,
    /// The caller id.
    pub caller: String,
    /// The sending machine.
    pub sender: String,
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The action inputs.
    pub data: serde_json::Value,
}

impl AuditRecord {
    /// The record of `rpc` carried by `request`, handled at `now`.
    pub fn new(request: &Request, rpc: &RpcRequest, now: SystemTime) -> Self {
        let env = &request.envelope;
        Self {
            timestamp: go_timestamp(now),
            request_id: env.requestid.clone(),
            request_time: env.time,
            caller: env.callerid.clone(),
            sender: env.senderid.clone(),
            agent: env.agent.clone(),
            action: rpc.action.clone(),
            data: rpc.data.clone(),
        }
    }
}

/// `2018-03-03T14:49:17.000000+0000`.
fn go_timestamp(now: SystemTime) -> String {
    let text = humantime::format_rfc3339_micros(now).to_string();
    match text.strip_suffix('Z') {
        Some(base) => format!("{base}+0000"),
        None => text,
    }
}

/// An append-only audit file shared by a fleet; cloning shares the file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    file: Arc<File>,
}

impl AuditLog {
    /// Opens (creating, appending) `path`.
    pub fn open(path: &Path) -> Result<Self, EmulatorError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| EmulatorError::Audit {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            file: Arc::new(file),
        })
    }

    /// Appends one record as a line.
    pub fn write(&self, record: &AuditRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        (&*self.file).write_all(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NewRequest;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lines_in_choria_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let request = NewRequest {
            message: "x".into(),
            senderid: "client.example.net".into(),
            callerid: "choria=rip.mcollective".into(),
            collective: "mcollective".into(),
            agent: "emulated0".into(),
            time: Some(1_520_088_557),
            ..NewRequest::default()
        }
        .build()
        .unwrap();
        let rpc = RpcRequest::from_slice(
            br#"{"agent":"emulated0","action":"generate","data":{"size":20}}"#,
        )
        .unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_520_088_557);
        let record = AuditRecord::new(&request, &rpc, at);
        assert_eq!(record.timestamp, "2018-03-03T14:49:17.000000+0000");
        log.write(&record).unwrap();
        log.clone().write(&record).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["request_time"], 1_520_088_557);
        assert_eq!(v["caller"], "choria=rip.mcollective");
        assert_eq!(v["action"], "generate");
        assert_eq!(v["data"]["size"], 20);
        assert_eq!(v["request_id"].as_str().unwrap().len(), 32);
    }
}
