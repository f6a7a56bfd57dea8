//! The `measure` suite: discover the fleet, then run `count` RPCs of `emulated0#generate(size)`
//! to every discovered node, recording each reply's arrival time (as Choria's emulator
//! `measure` tool does).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use super::stats::duration_ns;
use super::{
    Addressing, ChoriaClient, ClientError, Collected, Discovery, Expectation, RpcCall, Stats,
};
use crate::protocol::Filter;

/// What a suite runs.
#[derive(Debug, Clone, Serialize)]
pub struct MeasurePlan {
    /// Number of tests (RPCs).
    pub count: usize,
    /// Nodes discovery must find; fewer aborts the suite.
    pub expect: usize,
    /// `generate` size (bytes of the generated message).
    pub size: usize,
    /// One publish per discovered node instead of a broadcast.
    pub direct: bool,
    /// Reply timeout of each test.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Discovery timeout (discovery ends earlier once `expect` nodes answered).
    #[serde(with = "humantime_serde")]
    pub discovery_timeout: Duration,
    /// Tests in flight at once.
    pub workers: usize,
    /// Free text written to every report row.
    pub description: String,
    /// The agent called (`emulated0`).
    pub agent: String,
}

impl MeasurePlan {
    /// `count` tests against `expect` nodes with the emulator tool's defaults (size 100,
    /// timeout 10 s, discovery timeout 2 s, 1 worker, broadcast).
    pub fn new(count: usize, expect: usize) -> Self {
        Self {
            count,
            expect,
            size: 100,
            direct: false,
            timeout: Duration::from_secs(10),
            discovery_timeout: Duration::from_secs(2),
            workers: 1,
            description: String::new(),
            agent: "emulated0".to_owned(),
        }
    }
}

/// One test of a suite (one row of `requests.csv`).
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// 1-based test number.
    pub test: usize,
    /// The suite description.
    pub description: String,
    /// `generate` size.
    pub payload_bytes: usize,
    /// Nodes expected to answer.
    pub expected: usize,
    /// Nodes discovered.
    pub discovered: usize,
    /// Time spent publishing (ns).
    pub publish_duration: u64,
    /// Time from the start of the publish to the last expected reply or the timeout (ns).
    pub request_duration: u64,
    /// Replies with a non-zero statuscode.
    pub failed: usize,
    /// Replies with statuscode 0.
    pub ok: usize,
    /// Expected nodes that did not answer.
    pub noresponses: usize,
    /// Replies from nodes that were not discovered.
    pub unexpected: usize,
    /// Expected nodes that answered.
    pub responded: usize,
    /// Whether it ended at its timeout.
    pub timed_out: bool,
    /// The nodes that did not answer.
    pub no_response_nodes: Vec<String>,
    /// Statistics of the arrival times.
    pub stats: Stats,
    /// Arrival time of each reply (ns after the start of the publish), in arrival order.
    #[serde(skip)]
    pub times_ns: Vec<u64>,
}

impl TestResult {
    fn new(test: usize, plan: &MeasurePlan, discovered: usize, c: &Collected) -> Self {
        Self {
            test,
            description: plan.description.clone(),
            payload_bytes: plan.size,
            expected: c.expected.unwrap_or(discovered),
            discovered,
            publish_duration: duration_ns(c.publish_duration),
            request_duration: duration_ns(c.request_duration),
            failed: c.failed(),
            ok: c.ok(),
            noresponses: c.missing_count,
            unexpected: c.unexpected_replies,
            responded: c.replies.len(),
            timed_out: c.timed_out,
            no_response_nodes: c.no_responses.clone(),
            stats: c.stats(),
            times_ns: c.replies.iter().map(|r| duration_ns(r.elapsed)).collect(),
        }
    }
}

/// Totals over every test of a suite.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteSummary {
    /// Tests run.
    pub tests: usize,
    /// OK replies.
    pub ok: usize,
    /// Failed replies.
    pub failed: usize,
    /// Missing replies.
    pub noresponses: usize,
    /// Unexpected replies.
    pub unexpected: usize,
    /// Statistics of every reply's arrival time.
    pub reply_times: Stats,
    /// Statistics of the tests' request durations (time to the last reply).
    pub request_durations: Stats,
    /// Replies per second over the tests' request durations.
    pub replies_per_second: f64,
}

/// A finished suite (`suite.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// What ran.
    pub plan: MeasurePlan,
    /// Unix time (s) the suite started.
    pub started: u64,
    /// Nodes discovered.
    pub discovered: usize,
    /// How long discovery took (ns).
    pub discovery_duration: u64,
    /// Every test.
    pub tests: Vec<TestResult>,
    /// Totals.
    pub summary: SuiteSummary,
}

impl SuiteReport {
    /// Builds the report (and its summary) from finished tests.
    pub fn new(
        plan: MeasurePlan,
        started: u64,
        discovered: usize,
        discovery_duration: Duration,
        tests: Vec<TestResult>,
    ) -> Self {
        let mut all: Vec<u64> = tests
            .iter()
            .flat_map(|t| t.times_ns.iter().copied())
            .collect();
        let mut durations: Vec<u64> = tests.iter().map(|t| t.request_duration).collect();
        let total_ns: u64 = durations.iter().sum();
        let replies: usize = tests.iter().map(|t| t.responded).sum();
        let summary = SuiteSummary {
            tests: tests.len(),
            ok: tests.iter().map(|t| t.ok).sum(),
            failed: tests.iter().map(|t| t.failed).sum(),
            noresponses: tests.iter().map(|t| t.noresponses).sum(),
            unexpected: tests.iter().map(|t| t.unexpected).sum(),
            reply_times: Stats::of_ns(&mut all),
            request_durations: Stats::of_ns(&mut durations),
            replies_per_second: if total_ns == 0 {
                0.0
            } else {
                replies as f64 / (total_ns as f64 / 1e9)
            },
        };
        Self {
            plan,
            started,
            discovered,
            discovery_duration: duration_ns(discovery_duration),
            tests,
            summary,
        }
    }
}

/// Progress of a running suite.
#[derive(Debug)]
pub enum SuiteEvent<'a> {
    /// Discovery finished with `found` nodes in `duration`.
    Discovered {
        /// Nodes found.
        found: usize,
        /// How long it took.
        duration: Duration,
    },
    /// A test finished.
    TestFinished(&'a TestResult),
}

/// Runs `plan` with `client`, calling `on_event` after discovery and after each test.
/// Fails with [`ClientError::TooFewNodes`] when discovery finds fewer than `plan.expect`.
pub async fn run_suite(
    client: &ChoriaClient,
    plan: &MeasurePlan,
    mut on_event: impl FnMut(SuiteEvent<'_>),
) -> Result<SuiteReport, ClientError> {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let discovery = client
        .discover(&Discovery {
            filter: Filter::with_agent(plan.agent.clone()),
            timeout: plan.discovery_timeout,
            expect: Some(plan.expect),
            keep_bodies: false,
        })
        .await?;
    let nodes: BTreeSet<String> = discovery.replies.iter().map(|r| r.sender.clone()).collect();
    on_event(SuiteEvent::Discovered {
        found: nodes.len(),
        duration: discovery.request_duration,
    });
    if nodes.len() < plan.expect {
        return Err(ClientError::TooFewNodes {
            found: nodes.len(),
            expected: plan.expect,
        });
    }
    let discovered = nodes.len();
    let call = RpcCall {
        agent: plan.agent.clone(),
        action: "generate".to_owned(),
        data: json!({ "size": plan.size }),
        filter: Filter::default(),
        addressing: if plan.direct {
            Addressing::Direct(nodes.iter().cloned().collect())
        } else {
            Addressing::Broadcast
        },
        expectation: Expectation::Nodes(nodes),
        timeout: plan.timeout,
        keep_bodies: false,
    };
    let mut tests = Vec::with_capacity(plan.count);
    let workers = plan.workers.max(1);
    let mut next = 1;
    while next <= plan.count {
        let batch: Vec<usize> = (next..=plan.count).take(workers).collect();
        next += batch.len();
        let results = futures::future::join_all(batch.iter().map(|_| client.rpc(&call))).await;
        for (test, result) in batch.into_iter().zip(results) {
            let result = TestResult::new(test, plan, discovered, &result?);
            on_event(SuiteEvent::TestFinished(&result));
            tests.push(result);
        }
    }
    Ok(SuiteReport::new(
        plan.clone(),
        started,
        discovered,
        discovery.request_duration,
        tests,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn result(test: usize, times: &[u64], missing: usize) -> TestResult {
        let mut sorted = times.to_vec();
        TestResult {
            test,
            description: "d".into(),
            payload_bytes: 100,
            expected: times.len() + missing,
            discovered: times.len() + missing,
            publish_duration: 1_000,
            request_duration: times.iter().copied().max().unwrap_or(0),
            failed: 0,
            ok: times.len(),
            noresponses: missing,
            unexpected: 0,
            responded: times.len(),
            timed_out: missing > 0,
            no_response_nodes: Vec::new(),
            stats: Stats::of_ns(&mut sorted),
            times_ns: times.to_vec(),
        }
    }

    #[test]
    fn summary_totals() {
        let report = SuiteReport::new(
            MeasurePlan::new(2, 3),
            0,
            3,
            Duration::from_millis(5),
            vec![
                result(1, &[1_000_000, 2_000_000, 500_000_000], 0),
                result(2, &[3_000_000, 4_000_000], 1),
            ],
        );
        let s = &report.summary;
        assert_eq!((s.tests, s.ok, s.noresponses), (2, 5, 1));
        assert_eq!(s.reply_times.count, 5);
        assert_eq!(s.reply_times.max_ns, 500_000_000);
        assert_eq!(s.request_durations.min_ns, 4_000_000);
        assert!((s.replies_per_second - 5.0 / 0.504).abs() < 1e-6);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["plan"]["timeout"], "10s");
        assert!(json["tests"][0].get("times_ns").is_none());
    }
}
