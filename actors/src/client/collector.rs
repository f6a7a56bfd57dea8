//! [`ReplyCollector`]: the plain-Rust core of a request: who answered when, with what status.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde::Serialize;

use super::{Expectation, Stats};
use crate::protocol::SeenByHop;

/// One reply from an expected (or, without a node list, any) node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplyRecord {
    /// `envelope.senderid`.
    pub sender: String,
    /// Arrival time relative to the start of the publish.
    #[serde(serialize_with = "as_nanos")]
    pub elapsed: Duration,
    /// The mcorpc statuscode; `None` for non-mcorpc replies (discovery `pong`) and for bodies
    /// that are not mcorpc JSON.
    pub statuscode: Option<u8>,
    /// The mcorpc statusmsg, or the raw body of a non-mcorpc reply (when bodies are kept).
    pub statusmsg: Option<String>,
    /// The mcorpc `data` (when bodies are kept).
    pub data: Option<serde_json::Value>,
    /// The `seen-by` path of the reply (when bodies are kept).
    pub seen_by: Vec<SeenByHop>,
}

impl ReplyRecord {
    /// A record with only sender, time and status.
    pub fn new(sender: impl Into<String>, elapsed: Duration, statuscode: Option<u8>) -> Self {
        Self {
            sender: sender.into(),
            elapsed,
            statuscode,
            statusmsg: None,
            data: None,
            seen_by: Vec::new(),
        }
    }

    /// Whether the reply counts as OK: statuscode 0, or no statuscode (a `pong`).
    pub fn is_ok(&self) -> bool {
        matches!(self.statuscode, None | Some(0))
    }
}

fn as_nanos<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(super::stats::duration_ns(*d))
}

/// What [`ReplyCollector::record`] made of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// A first reply from an expected node.
    Accepted,
    /// A second reply from the same node (counted, not recorded).
    Duplicate,
    /// A reply from a node outside the expected list (counted, not recorded).
    Unexpected,
}

/// Collects the replies of one request.
#[derive(Debug)]
pub struct ReplyCollector {
    expectation: Expectation,
    replies: Vec<ReplyRecord>,
    /// Expected nodes that have not answered yet (with a node list).
    pending: HashSet<String>,
    /// Nodes that answered (without a node list).
    seen: HashSet<String>,
    unexpected: BTreeSet<String>,
    unexpected_replies: usize,
    duplicates: usize,
    undecodable: usize,
}

impl ReplyCollector {
    /// A collector for replies expected from `expectation`.
    pub fn new(expectation: Expectation) -> Self {
        let capacity = expectation.count().unwrap_or(0).min(1 << 20);
        let (pending, seen) = match &expectation {
            Expectation::Nodes(nodes) => (nodes.iter().cloned().collect(), HashSet::new()),
            _ => (HashSet::new(), HashSet::with_capacity(capacity)),
        };
        Self {
            expectation,
            replies: Vec::with_capacity(capacity),
            pending,
            seen,
            unexpected: BTreeSet::new(),
            unexpected_replies: 0,
            duplicates: 0,
            undecodable: 0,
        }
    }

    /// Records a decoded reply.
    pub fn record(&mut self, record: ReplyRecord) -> RecordOutcome {
        if let Expectation::Nodes(nodes) = &self.expectation {
            if self.pending.remove(record.sender.as_str()) {
                self.replies.push(record);
                return RecordOutcome::Accepted;
            }
            if nodes.contains(&record.sender) {
                self.duplicates += 1;
                return RecordOutcome::Duplicate;
            }
            self.unexpected_replies += 1;
            self.unexpected.insert(record.sender);
            return RecordOutcome::Unexpected;
        }
        if !self.seen.insert(record.sender.clone()) {
            self.duplicates += 1;
            return RecordOutcome::Duplicate;
        }
        self.replies.push(record);
        RecordOutcome::Accepted
    }

    /// Counts a message on the reply subject that could not be decoded.
    pub fn record_undecodable(&mut self) {
        self.undecodable += 1;
    }

    /// Distinct expected nodes that answered so far.
    pub fn responded(&self) -> usize {
        self.replies.len()
    }

    /// Whether every expected node answered (never true without an expectation).
    pub fn is_complete(&self) -> bool {
        self.expectation
            .count()
            .is_some_and(|n| self.replies.len() >= n)
    }

    /// The result; `publish` is how long publishing took, `total` the time from the start of
    /// the publish to now.
    pub fn finish(self, publish: Duration, total: Duration, timed_out: bool) -> Collected {
        let no_responses = match &self.expectation {
            Expectation::Nodes(nodes) => nodes
                .iter()
                .filter(|n| self.pending.contains(*n))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let expected = self.expectation.count();
        let missing_count = match &self.expectation {
            Expectation::Nodes(_) => no_responses.len(),
            Expectation::Count(n) => n.saturating_sub(self.replies.len()),
            Expectation::Unknown => 0,
        };
        Collected {
            expected,
            replies: self.replies,
            no_responses,
            missing_count,
            unexpected: self.unexpected.into_iter().collect(),
            unexpected_replies: self.unexpected_replies,
            duplicates: self.duplicates,
            undecodable: self.undecodable,
            publish_duration: publish,
            request_duration: total,
            timed_out,
        }
    }
}

/// The outcome of one request.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    /// Expected replies, if known.
    pub expected: Option<usize>,
    /// The first reply of each expected node, in arrival order.
    pub replies: Vec<ReplyRecord>,
    /// Expected nodes that did not answer (sorted; only with a node list).
    pub no_responses: Vec<String>,
    /// How many expected replies are missing (with a node list or a count).
    pub missing_count: usize,
    /// Nodes outside the expected list that answered (sorted).
    pub unexpected: Vec<String>,
    /// Replies from those nodes.
    pub unexpected_replies: usize,
    /// Second and later replies from one node.
    pub duplicates: usize,
    /// Messages on the reply subject that were not valid replies.
    pub undecodable: usize,
    /// Time spent publishing.
    #[serde(serialize_with = "as_nanos")]
    pub publish_duration: Duration,
    /// Time from the start of the publish to completion or timeout.
    #[serde(serialize_with = "as_nanos")]
    pub request_duration: Duration,
    /// Whether it ended at its timeout rather than complete.
    pub timed_out: bool,
}

impl Collected {
    /// Replies with statuscode 0 (or a `pong`).
    pub fn ok(&self) -> usize {
        self.replies.iter().filter(|r| r.is_ok()).count()
    }

    /// Replies with a non-zero statuscode.
    pub fn failed(&self) -> usize {
        self.replies.len() - self.ok()
    }

    /// Arrival time of the last recorded reply.
    pub fn last_reply(&self) -> Duration {
        self.replies
            .iter()
            .map(|r| r.elapsed)
            .max()
            .unwrap_or_default()
    }

    /// Statistics of the arrival times.
    pub fn stats(&self) -> Stats {
        let mut ns: Vec<u64> = self
            .replies
            .iter()
            .map(|r| super::stats::duration_ns(r.elapsed))
            .collect();
        Stats::of_ns(&mut ns)
    }

    /// The senders that answered, sorted.
    pub fn senders(&self) -> Vec<String> {
        let mut v: Vec<String> = self.replies.iter().map(|r| r.sender.clone()).collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn nodes(names: &[&str]) -> Expectation {
        Expectation::Nodes(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn complete_with_node_list() {
        let mut c = ReplyCollector::new(nodes(&["a", "b", "c"]));
        assert_eq!(
            c.record(ReplyRecord::new("a", ms(3), Some(0))),
            RecordOutcome::Accepted
        );
        assert_eq!(
            c.record(ReplyRecord::new("x", ms(4), Some(0))),
            RecordOutcome::Unexpected
        );
        assert_eq!(
            c.record(ReplyRecord::new("a", ms(5), Some(0))),
            RecordOutcome::Duplicate
        );
        assert!(!c.is_complete());
        c.record(ReplyRecord::new("b", ms(6), Some(2)));
        c.record(ReplyRecord::new("c", ms(9), None));
        assert!(c.is_complete());
        let out = c.finish(ms(1), ms(9), false);
        assert_eq!(out.expected, Some(3));
        assert_eq!((out.ok(), out.failed()), (2, 1));
        assert_eq!(out.unexpected, ["x"]);
        assert_eq!((out.unexpected_replies, out.duplicates), (1, 1));
        assert!(out.no_responses.is_empty());
        assert_eq!(out.last_reply(), ms(9));
        assert_eq!(out.stats().min_ns, 3_000_000);
    }

    #[test]
    fn who_did_not_answer() {
        let mut c = ReplyCollector::new(nodes(&["a", "b", "c", "d"]));
        c.record(ReplyRecord::new("c", ms(1), Some(0)));
        c.record_undecodable();
        let out = c.finish(ms(1), ms(100), true);
        assert_eq!(out.no_responses, ["a", "b", "d"]);
        assert_eq!(out.missing_count, 3);
        assert_eq!(out.undecodable, 1);
        assert!(out.timed_out);
    }

    #[test]
    fn count_and_unknown() {
        let mut c = ReplyCollector::new(Expectation::Count(2));
        c.record(ReplyRecord::new("a", ms(1), None));
        assert!(!c.is_complete());
        c.record(ReplyRecord::new("z", ms(2), None));
        assert!(c.is_complete());
        let mut c = ReplyCollector::new(Expectation::Unknown);
        for i in 0..100 {
            c.record(ReplyRecord::new(format!("n{i}"), ms(i), None));
        }
        assert!(!c.is_complete());
        let out = c.finish(ms(0), ms(200), true);
        assert_eq!(out.replies.len(), 100);
        assert_eq!(out.missing_count, 0);
        assert_eq!(out.senders().len(), 100);
    }
}
