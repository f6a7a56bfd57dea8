//! `choir measure <count> <expect>`: discovery, then `count` RPCs of `generate(size)`; a
//! progress bar while it runs, a summary table at the end, report files in `--out`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use choir_actors::client::report::write_reports;
use choir_actors::client::{run_suite, MeasurePlan, SuiteEvent, SuiteReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::table::{ms, ms_f, render};
use super::{connect, ClientCliError, ConnectArgs};

/// `choir measure` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MeasureArgs {
    /// Number of RPCs (tests) to run.
    pub count: usize,
    /// Nodes discovery must find (fewer aborts).
    pub expect: usize,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Size of the message `generate` returns.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// One request per discovered node instead of a broadcast.
    #[arg(long)]
    pub direct: bool,
    /// Reply timeout of each test.
    #[arg(long, short = 't', value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Discovery timeout (discovery ends as soon as `expect` nodes answered).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub discovery_timeout: Duration,
    /// Tests in flight at once.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Free text written to every row of the report.
    #[arg(long, default_value = "")]
    pub description: String,
    /// The agent called.
    #[arg(long, default_value = "emulated0")]
    pub agent: String,
    /// Write requests.csv, times.csv, time_buckets.csv, suite.json and chart.svg here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print suite.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl MeasureArgs {
    /// The suite these flags describe.
    pub fn plan(&self) -> MeasurePlan {
        let mut plan = MeasurePlan::new(self.count, self.expect);
        plan.size = self.size;
        plan.direct = self.direct;
        plan.timeout = self.timeout;
        plan.discovery_timeout = self.discovery_timeout;
        plan.workers = self.workers.max(1);
        plan.description = self.description.clone();
        plan.agent = self.agent.clone();
        plan
    }
}

/// Runs `choir measure`.
pub(super) async fn run(args: MeasureArgs) -> Result<ExitCode, ClientCliError> {
    let client = connect(&args.connect).await?;
    let plan = args.plan();
    let bar = ProgressBar::with_draw_target(
        Some(u64::try_from(plan.count).unwrap_or(u64::MAX)),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tests {msg}",
    ) {
        bar.set_style(style);
    }
    let quiet = args.json;
    let report = run_suite(&client, &plan, |event| match event {
        SuiteEvent::Discovered { found, duration } => {
            let line = format!(
                "discovered {found} nodes in {} ms",
                ms(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
            );
            if !quiet {
                bar.println(line);
            }
        }
        SuiteEvent::TestFinished(t) => {
            bar.inc(1);
            bar.set_message(format!(
                "last: {}/{} in {} ms",
                t.responded,
                t.expected,
                ms(t.request_duration)
            ));
            if !quiet {
                bar.println(format!(
                    "test {}: ok {} failed {} no response {} unexpected {} last reply {} ms",
                    t.test,
                    t.ok,
                    t.failed,
                    t.noresponses,
                    t.unexpected,
                    ms(t.stats.max_ns)
                ));
            }
        }
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )?;
    } else {
        write!(out, "\n{}", summary_table(&report))?;
    }
    if let Some(dir) = &args.out {
        let paths = write_reports(dir, &report)?;
        if !args.json {
            writeln!(out, "\nreports written to {}:", dir.display())?;
            for p in paths {
                writeln!(out, "  {}", p.display())?;
            }
        }
    }
    out.flush()?;
    let s = &report.summary;
    Ok(if s.failed == 0 && s.noresponses == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The summary table: one row per test and a total row (arrival times in ms).
pub(super) fn summary_table(report: &SuiteReport) -> String {
    let header = [
        "test",
        "ok",
        "failed",
        "no response",
        "min",
        "p50",
        "p90",
        "p99",
        "max",
        "mean",
        "stddev",
        "last reply",
    ];
    let mut rows: Vec<Vec<String>> = report
        .tests
        .iter()
        .map(|t| {
            let s = &t.stats;
            vec![
                t.test.to_string(),
                t.ok.to_string(),
                t.failed.to_string(),
                t.noresponses.to_string(),
                ms(s.min_ns),
                ms(s.p50_ns),
                ms(s.p90_ns),
                ms(s.p99_ns),
                ms(s.max_ns),
                ms_f(s.mean_ns),
                ms_f(s.stddev_ns),
                ms(t.request_duration),
            ]
        })
        .collect();
    let s = &report.summary;
    let r = &s.reply_times;
    rows.push(vec![
        "all".to_owned(),
        s.ok.to_string(),
        s.failed.to_string(),
        s.noresponses.to_string(),
        ms(r.min_ns),
        ms(r.p50_ns),
        ms(r.p90_ns),
        ms(r.p99_ns),
        ms(r.max_ns),
        ms_f(r.mean_ns),
        ms_f(r.stddev_ns),
        ms(s.request_durations.p50_ns),
    ]);
    format!(
        "{}\ntimes in ms after the publish; {} nodes discovered; {:.0} replies/s; request duration p50 {} ms p99 {} ms\n",
        render(&header, &rows),
        report.discovered,
        s.replies_per_second,
        ms(s.request_durations.p50_ns),
        ms(s.request_durations.p99_ns)
    )
}
