//! `choir ping`: broadcast discovery; lists every node that answered with its reply time.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use choir_actors::client::{Collected, Discovery};
use serde_json::json;

use super::table::{ms, ms_f};
use super::{connect, ClientCliError, ConnectArgs, FilterArgs};

/// `choir ping` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// How long to wait for replies.
    #[arg(long, short = 't', value_parser = humantime::parse_duration, default_value = "2s")]
    pub timeout: Duration,
    /// Same as --timeout (the discovery timeout; the larger of both is used).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub discovery_timeout: Option<Duration>,
    /// Stop as soon as this many nodes answered.
    #[arg(long)]
    pub expect: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show the seen-by path (NATS servers and brokers) of each reply.
    #[arg(long)]
    pub trace: bool,
}

/// Runs `choir ping`.
pub(super) async fn run(args: PingArgs) -> Result<ExitCode, ClientCliError> {
    let client = connect(&args.connect).await?;
    let timeout = args
        .discovery_timeout
        .map_or(args.timeout, |d| d.max(args.timeout));
    let result = client
        .discover(&Discovery {
            filter: args.filter.filter()?,
            timeout,
            expect: args.expect,
            keep_bodies: args.trace || args.json,
        })
        .await?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    if args.json {
        writeln!(out, "{}", to_json(&result, args.trace))?;
    } else {
        write!(out, "{}", to_text(&result, args.trace))?;
    }
    out.flush()?;
    Ok(if result.replies.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn sorted(result: &Collected) -> Vec<&choir_actors::client::ReplyRecord> {
    let mut replies: Vec<_> = result.replies.iter().collect();
    replies.sort_by(|a, b| a.sender.cmp(&b.sender));
    replies
}

fn to_json(result: &Collected, trace: bool) -> serde_json::Value {
    let stats = result.stats();
    let nodes: Vec<serde_json::Value> = sorted(result)
        .into_iter()
        .map(|r| {
            let mut node = json!({
                "identity": r.sender,
                "time_ms": r.elapsed.as_secs_f64() * 1e3,
            });
            if trace {
                node["seen_by"] = json!(r.seen_by);
            }
            node
        })
        .collect();
    json!({
        "count": result.replies.len(),
        "nodes": nodes,
        "last_reply_ms": result.last_reply().as_secs_f64() * 1e3,
        "min_ms": stats.min_ns as f64 / 1e6,
        "p50_ms": stats.p50_ns as f64 / 1e6,
        "max_ms": stats.max_ns as f64 / 1e6,
        "duplicates": result.duplicates,
        "undecodable": result.undecodable,
    })
}

fn to_text(result: &Collected, trace: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(48 * (result.replies.len() + 4));
    let width = result
        .replies
        .iter()
        .map(|r| r.sender.len())
        .max()
        .unwrap_or(0)
        .max(20);
    for r in sorted(result) {
        let _ = writeln!(
            out,
            "{:<width$}  time={} ms",
            r.sender,
            ms(super::duration_ns(r.elapsed))
        );
        if trace {
            for (i, hop) in r.seen_by.iter().enumerate() {
                let _ = writeln!(out, "    {:>2}. {hop}", i + 1);
            }
        }
    }
    let s = result.stats();
    let _ = writeln!(out, "\n---- ping statistics ----");
    let _ = writeln!(
        out,
        "{} replies max: {} ms min: {} ms avg: {} ms p50: {} ms; time to last reply: {} ms",
        result.replies.len(),
        ms(s.max_ns),
        ms(s.min_ns),
        ms_f(s.mean_ns),
        ms(s.p50_ns),
        ms(super::duration_ns(result.last_reply()))
    );
    if result.duplicates > 0 || result.undecodable > 0 {
        let _ = writeln!(
            out,
            "{} duplicate and {} undecodable replies ignored",
            result.duplicates, result.undecodable
        );
    }
    out
}
