//! The files of a measure suite: `requests.csv`, `times.csv`, `time_buckets.csv`,
//! `suite.json` and `chart.svg`.
//!
//! - `requests.csv`: one row per test: `test,description,payload_bytes,expected,discovered,
//!   publish_duration,request_duration,failed,ok,noresponses,unexpected,responded`
//!   (durations in ns).
//! - `times.csv`: `test,reply,ns`: each reply's arrival time after the start of the publish.
//! - `time_buckets.csv`: `test,bucket_ms,replies`: replies per 10 ms bucket, every bucket
//!   from 0 to the last reply.
//! - `suite.json`: the plan, every test (with statistics and who did not answer), totals.
//! - `chart.svg`: replies over time per test and the arrival-time distribution.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{chart, SuiteReport};

/// Width of a `time_buckets.csv` bucket, ms.
pub const BUCKET_MS: u64 = 10;

/// The header of `requests.csv`.
pub const REQUESTS_HEADER: &str = "test,description,payload_bytes,expected,discovered,publish_duration,request_duration,failed,ok,noresponses,unexpected,responded";

/// A report file that cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct ReportError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// The file names written into the report directory.
pub const FILES: [&str; 5] = [
    "requests.csv",
    "times.csv",
    "time_buckets.csv",
    "suite.json",
    "chart.svg",
];

/// Writes every report file of `report` into `dir` (created if missing); returns their paths.
pub fn write_reports(dir: &Path, report: &SuiteReport) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError {
        path: dir.to_path_buf(),
        source,
    })?;
    let suite = serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".to_owned());
    let contents = [
        requests_csv(report),
        times_csv(report),
        time_buckets_csv(report),
        suite,
        chart::svg(report),
    ];
    let mut paths = Vec::new();
    for (name, body) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|source| ReportError {
            path: path.clone(),
            source,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

/// Quotes a CSV field when it needs it.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// `requests.csv`.
pub fn requests_csv(report: &SuiteReport) -> String {
    let mut out = String::with_capacity(128 * (report.tests.len() + 1));
    out.push_str(REQUESTS_HEADER);
    out.push('\n');
    for t in &report.tests {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            t.test,
            csv_field(&t.description),
            t.payload_bytes,
            t.expected,
            t.discovered,
            t.publish_duration,
            t.request_duration,
            t.failed,
            t.ok,
            t.noresponses,
            t.unexpected,
            t.responded
        );
    }
    out
}

/// `times.csv`.
pub fn times_csv(report: &SuiteReport) -> String {
    let replies: usize = report.tests.iter().map(|t| t.times_ns.len()).sum();
    let mut out = String::with_capacity(24 * (replies + 1));
    out.push_str("test,reply,ns\n");
    for t in &report.tests {
        for (i, ns) in t.times_ns.iter().enumerate() {
            let _ = writeln!(out, "{},{},{ns}", t.test, i + 1);
        }
    }
    out
}

/// Replies per [`BUCKET_MS`] bucket of `times_ns`, from 0 to the last reply.
pub fn buckets(times_ns: &[u64]) -> Vec<usize> {
    let width = BUCKET_MS * 1_000_000;
    let Some(max) = times_ns.iter().max() else {
        return Vec::new();
    };
    let n = usize::try_from(max / width).unwrap_or(0) + 1;
    let mut counts = vec![0usize; n];
    for ns in times_ns {
        if let Some(c) = counts.get_mut(usize::try_from(ns / width).unwrap_or(0)) {
            *c += 1;
        }
    }
    counts
}

/// `time_buckets.csv`.
pub fn time_buckets_csv(report: &SuiteReport) -> String {
    let mut out = String::from("test,bucket_ms,replies\n");
    for t in &report.tests {
        for (i, count) in buckets(&t.times_ns).iter().enumerate() {
            let _ = writeln!(out, "{},{},{count}", t.test, i as u64 * BUCKET_MS);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::measure::{MeasurePlan, SuiteReport, TestResult};
    use super::super::Stats;
    use super::*;
    use std::time::Duration;

    fn report() -> SuiteReport {
        let test = |n: usize, times: Vec<u64>| TestResult {
            test: n,
            description: "a, \"b\"".into(),
            payload_bytes: 100,
            expected: 3,
            discovered: 3,
            publish_duration: 10,
            request_duration: 25_000_000,
            failed: 0,
            ok: times.len(),
            noresponses: 3 - times.len(),
            unexpected: 0,
            responded: times.len(),
            timed_out: false,
            no_response_nodes: vec![],
            stats: Stats::of_ns(&mut times.clone()),
            times_ns: times,
        };
        SuiteReport::new(
            MeasurePlan::new(2, 3),
            1,
            3,
            Duration::from_millis(3),
            vec![
                test(1, vec![1_000_000, 12_000_000, 25_000_000]),
                test(2, vec![5_000_000, 6_000_000]),
            ],
        )
    }

    #[test]
    fn requests_rows() {
        let csv = requests_csv(&report());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], REQUESTS_HEADER);
        assert_eq!(lines[1], "1,\"a, \"\"b\"\"\",100,3,3,10,25000000,0,3,0,0,3");
        assert_eq!(lines[2], "2,\"a, \"\"b\"\"\",100,3,3,10,25000000,0,2,1,0,2");
    }

    #[test]
    fn times_and_buckets() {
        let r = report();
        assert_eq!(times_csv(&r).lines().count(), 1 + 5);
        assert_eq!(buckets(&[1_000_000, 12_000_000, 25_000_000]), [1, 1, 1]);
        assert_eq!(
            buckets(&[0, 9_999_999, 10_000_000, 35_000_000]),
            [2, 1, 0, 1]
        );
        assert!(buckets(&[]).is_empty());
        let csv = time_buckets_csv(&r);
        assert!(csv.starts_with("test,bucket_ms,replies\n1,0,1\n1,10,1\n1,20,1\n2,0,2\n"));
    }

    #[test]
    fn writes_five_files() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_reports(&dir.path().join("out"), &report()).unwrap();
        assert_eq!(paths.len(), 5);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&paths[3]).unwrap()).unwrap();
        assert_eq!(json["tests"].as_array().unwrap().len(), 2);
        assert!(std::fs::read_to_string(&paths[4])
            .unwrap()
            .starts_with("<svg"));
    }
}
