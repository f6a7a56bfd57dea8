//! The measuring client against 2 000 emulated daemons behind a real nats-server:
//! `choir ping` counts 2 000; `choir measure 5 2000 --size 100 --out DIR` writes the five
//! report files with 5 × 2 000 replies and 0 failed, and the SVG is well-formed XML; with 100
//! daemons stopped after the first test, the suite reports them as no-response and every test
//! ends within its timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "client/cli.rs"]
mod cli;
mod common;

use std::time::Duration;

use choir::actors::client::{run_suite, ChoriaClient, ClientOptions, MeasurePlan, SuiteEvent};
use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};
use common::NatsServer;

const STAYING: usize = 1_900;
const LEAVING: usize = 100;
const N: usize = STAYING + LEAVING;

async fn start_fleet(name: &str, instances: usize, url: &str) -> Fleet {
    let mut spec = FleetSpec::new(name, instances, vec![url.to_owned()]);
    spec.connect_concurrency = std::num::NonZeroUsize::new(128).unwrap();
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(
        fleet.wait_started(Duration::from_secs(240), |_| {}).await,
        "{name}: daemons did not start: {:?}",
        fleet.progress()
    );
    fleet
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[actix_rt::test]
async fn ping_measure_reports_and_stopped_daemons() {
    let server = NatsServer::start();
    let url = server.url();
    let staying = start_fleet("emu", STAYING, &url).await;
    let leaving = start_fleet("leaving", LEAVING, &url).await;

    // choir ping: all 2 000 answer (it stops as soon as 2 000 did).
    let out = cli::choir(
        &[
            "ping",
            "--server",
            &url,
            "--expect",
            "2000",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("\n2000 replies max:"),
        "{}",
        &out.stdout[out.stdout.len().saturating_sub(400)..]
    );
    assert_eq!(
        out.stdout.lines().filter(|l| l.contains("time=")).count(),
        N
    );

    // --json and --trace: every node with its seen-by path (client hop + node hop).
    let out = cli::choir(
        &[
            "ping",
            "--server",
            &url,
            "--expect",
            "2000",
            "--timeout",
            "30s",
            "--json",
            "--trace",
        ],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["count"], N);
    let first = &json["nodes"][0];
    assert_eq!(first["seen_by"].as_array().unwrap().len(), 2);
    assert_eq!(first["seen_by"][1][1], first["identity"]);

    // choir measure 5 2000 --size 100 --out DIR: five files, 5 × 2 000 replies, 0 failed.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let out = cli::choir(
        &[
            "measure",
            "5",
            "2000",
            "--size",
            "100",
            "--server",
            &url,
            "--discovery-timeout",
            "30s",
            "--timeout",
            "30s",
            "--description",
            "two thousand",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(240),
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    let all_row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("all "))
        .expect("summary row");
    let cells: Vec<&str> = all_row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["10000", "0", "0"], "{all_row}");

    let requests = lines(&out_dir.join("requests.csv"));
    assert_eq!(
        requests[0],
        "test,description,payload_bytes,expected,discovered,publish_duration,request_duration,failed,ok,noresponses,unexpected,responded"
    );
    assert_eq!(requests.len(), 6);
    for (i, row) in requests[1..].iter().enumerate() {
        let c: Vec<&str> = row.split(',').collect();
        assert_eq!(c[0], (i + 1).to_string());
        assert_eq!(c[1], "two thousand");
        assert_eq!(&c[2..5], ["100", "2000", "2000"], "{row}");
        assert_eq!(&c[7..], ["0", "2000", "0", "0", "2000"], "{row}");
    }
    let times = lines(&out_dir.join("times.csv"));
    assert_eq!(times[0], "test,reply,ns");
    assert_eq!(times.len(), 1 + 5 * N);
    let buckets = lines(&out_dir.join("time_buckets.csv"));
    assert_eq!(buckets[0], "test,bucket_ms,replies");
    let bucketed: usize = buckets[1..]
        .iter()
        .map(|l| l.rsplit(',').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(bucketed, 5 * N);
    let suite: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("suite.json")).unwrap())
            .unwrap();
    assert_eq!(suite["tests"].as_array().unwrap().len(), 5);
    assert_eq!(suite["summary"]["ok"], 5 * N);
    assert_eq!(suite["summary"]["failed"], 0);
    let svg = std::fs::read_to_string(out_dir.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    let doc = roxmltree::Document::parse(&svg).expect("chart.svg is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let polylines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert_eq!(polylines, 5, "one replies-over-time line per test");

    // Stop 100 daemons after the first test: they are reported as no-response, and every
    // test still ends within its timeout.
    let client = ChoriaClient::connect(
        std::slice::from_ref(&url),
        ClientOptions::new("mcollective", url.clone()),
        1 << 18,
    )
    .await
    .unwrap();
    let mut plan = MeasurePlan::new(4, N);
    plan.timeout = Duration::from_secs(3);
    plan.discovery_timeout = Duration::from_secs(30);
    let mut leaving = Some(leaving);
    // The outer timeout only turns a hang into a failure; how each test ends is asserted below.
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        run_suite(&client, &plan, |event| {
            if let SuiteEvent::TestFinished(t) = event {
                if t.test == 1 {
                    if let Some(fleet) = leaving.take() {
                        fleet.stop();
                    }
                }
            }
        }),
    )
    .await
    .expect("suite hung")
    .unwrap();
    assert_eq!(report.tests[0].noresponses, 0);
    assert!(
        !report.tests[0].timed_out,
        "test 1 got every reply: it ends without waiting"
    );
    assert_eq!(report.tests[0].responded, N);
    for t in &report.tests[1..] {
        // Test 2 starts right after the stop was requested: an arbiter still winding down
        // may answer it; from test 3 on, exactly the stopped daemons are missing.
        assert!(t.responded >= STAYING, "test {}: {}", t.test, t.responded);
        assert_eq!(t.noresponses, N - t.responded, "test {}", t.test);
        if t.test >= 3 {
            assert_eq!(t.noresponses, LEAVING, "test {}", t.test);
            assert!(t.timed_out);
        }
        assert_eq!(t.failed, 0);
        assert!(
            t.no_response_nodes
                .iter()
                .all(|n| n.starts_with("leaving-")),
            "{:?}",
            &t.no_response_nodes[..3]
        );
        // A test missing replies is ended by its timeout, never left waiting; one that got
        // every reply ends without waiting for it.
        assert_eq!(
            t.timed_out,
            t.responded < N,
            "test {}: {} replies, timed out {}",
            t.test,
            t.responded,
            t.timed_out
        );
    }
    assert!(report.summary.noresponses >= 2 * LEAVING);
    staying.stop();
}
