//! `choir replicator state` and `choir replicator advisories`: operator tools for replicators.
//!
//! - `state <state_dir> [--sender RE] [--json]` prints the sampling trackers saved under
//!   `<state_dir>/replicators/*.tracker` (MessagePack) readably, or as JSON;
//! - `advisories <servers> <subject> [--follow]` prints sender advisories (choir's or the
//!   Choria SR's shape): those a JetStream stream stored on `<subject>` first, then, with
//!   `--follow`, new ones as they come.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer};
use choir_actors::replicator::sampling::{read_state_file, SamplingError, SenderState};
use clap::{Args, Subcommand};
use futures::StreamExt;

/// `choir replicator ...`.
#[derive(Debug, Subcommand)]
pub enum ReplicatorCommand {
    /// Print the sampling trackers saved in a node's state directory.
    State(StateArgs),
    /// Print sender advisories stored on a subject, and with --follow new ones.
    Advisories(AdvisoriesArgs),
}

/// `choir replicator state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The node's state_dir (or its replicators/ directory, or one .tracker file).
    pub state_dir: PathBuf,
    /// Only senders matching this regular expression.
    #[arg(long)]
    pub sender: Option<String>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `choir replicator advisories`.
#[derive(Debug, Args)]
pub struct AdvisoriesArgs {
    /// Server URLs of the network the advisories are published on, comma separated.
    pub network: String,
    /// The advisory subject (wildcards allowed, e.g. `choria.advisories.>`).
    pub subject: String,
    /// Keep printing new advisories until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Print each advisory's JSON as it is instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// A .creds file to connect with.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
}

/// Errors of the replicator tools.
#[derive(Debug, thiserror::Error)]
pub enum ReplicatorCliError {
    /// `--sender` is not a regular expression.
    #[error("--sender {value:?}: not a regular expression")]
    Pattern {
        /// The flag's value.
        value: String,
        /// Why.
        #[source]
        source: regex::Error,
    },
    /// The state directory cannot be listed.
    #[error("{path}: cannot list tracker files")]
    List {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No tracker file was found.
    #[error("{0}: no .tracker files (sampling replicators keep them in <state_dir>/replicators/)")]
    NoTrackers(PathBuf),
    /// A tracker file cannot be read.
    #[error(transparent)]
    Tracker(#[from] SamplingError),
    /// Output could not be written.
    #[error("cannot write output")]
    Output(#[from] std::io::Error),
    /// Encoding JSON failed.
    #[error("cannot encode JSON")]
    Json(#[from] serde_json::Error),
    /// Connecting failed.
    #[error("cannot connect to {network}")]
    Connect {
        /// The servers.
        network: String,
        /// Why.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A NATS operation failed.
    #[error("{what}: {message}")]
    Nats {
        /// What was being done.
        what: &'static str,
        /// The client's message.
        message: String,
    },
    /// No stream stores the subject and --follow was not given.
    #[error("no JetStream stream stores {0}; give --follow to watch new advisories")]
    NoStream(String),
}

/// Runs a replicator tool.
pub fn main(command: ReplicatorCommand) -> Result<ExitCode, ReplicatorCliError> {
    match command {
        ReplicatorCommand::State(args) => state(&args),
        ReplicatorCommand::Advisories(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(advisories(&args))
        }
    }
}

fn tracker_files(path: &Path) -> Result<Vec<PathBuf>, ReplicatorCliError> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let dir = if path.join("replicators").is_dir() {
        path.join("replicators")
    } else {
        path.to_owned()
    };
    let entries = std::fs::read_dir(&dir).map_err(|source| ReplicatorCliError::List {
        path: dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tracker"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ReplicatorCliError::NoTrackers(dir));
    }
    Ok(files)
}

fn time_ms(ms: u64) -> String {
    if ms == 0 {
        return "never".to_owned();
    }
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    let ago = SystemTime::now()
        .duration_since(at)
        .map(|d| Duration::from_secs(d.as_secs()))
        .unwrap_or_default();
    format!(
        "{} ({} ago)",
        humantime::format_rfc3339_millis(at),
        humantime::format_duration(ago)
    )
}

fn state(args: &StateArgs) -> Result<ExitCode, ReplicatorCliError> {
    let pattern = args
        .sender
        .as_deref()
        .map(|re| {
            regex::Regex::new(re).map_err(|source| ReplicatorCliError::Pattern {
                value: re.to_owned(),
                source,
            })
        })
        .transpose()?;
    let mut out = std::io::stdout().lock();
    let mut json = serde_json::Map::new();
    for file in tracker_files(&args.state_dir)? {
        let senders: Vec<(String, SenderState)> = read_state_file(&file)?
            .into_iter()
            .rev()
            .filter(|(s, _)| pattern.as_ref().is_none_or(|p| p.is_match(s)))
            .collect();
        let replicator = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if args.json {
            let list: Vec<serde_json::Value> = senders
                .iter()
                .map(|(sender, s)| {
                    let mut v = serde_json::to_value(s).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("sender".into(), sender.clone().into());
                    }
                    v
                })
                .collect();
            json.insert(replicator, list.into());
            continue;
        }
        writeln!(
            out,
            "{} (replicator {replicator}, {} senders, most recently seen first):",
            file.display(),
            senders.len()
        )?;
        for (sender, s) in &senders {
            writeln!(out)?;
            writeln!(out, "          Sender: {sender}")?;
            writeln!(out, "      First seen: {}", time_ms(s.first_seen_ms))?;
            writeln!(out, "       Last seen: {}", time_ms(s.last_seen_ms))?;
            writeln!(out, "     Last copied: {}", time_ms(s.last_copied_ms))?;
            writeln!(out, "  Copied source#: {}", s.last_copied_seq)?;
            writeln!(out, "    Payload size: {}", s.last_copied_size)?;
            writeln!(out, "   Seen / copied: {} / {}", s.seen, s.copied)?;
            writeln!(out, "          Status: {:?}", s.status)?;
        }
        writeln!(out)?;
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One advisory as a line: `[time] event value seen <age> earlier on <replicator>`.
fn advisory_line(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return format!("(not an advisory) {}", String::from_utf8_lossy(body));
    };
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let timestamp = num("timestamp");
    let ago = Duration::from_secs(timestamp.saturating_sub(num("seen")));
    format!(
        "[{}] {:>7} {} seen {} earlier on {}",
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(timestamp)),
        text("event"),
        text("value"),
        humantime::format_duration(ago),
        text("replicator"),
    )
}

fn nats_error(what: &'static str) -> impl Fn(String) -> ReplicatorCliError {
    move |message| ReplicatorCliError::Nats { what, message }
}

async fn advisories(args: &AdvisoriesArgs) -> Result<ExitCode, ReplicatorCliError> {
    let mut options = async_nats::ConnectOptions::new().name("choir replicator advisories");
    if let Some(creds) = &args.credentials {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|e| nats_error("--credentials")(e.to_string()))?;
    }
    let urls: Vec<&str> = args.network.split(',').map(str::trim).collect();
    let client =
        options
            .connect(urls.as_slice())
            .await
            .map_err(|source| ReplicatorCliError::Connect {
                network: args.network.clone(),
                source,
            })?;
    let print = |body: &[u8]| -> Result<(), ReplicatorCliError> {
        let mut out = std::io::stdout().lock();
        if args.json {
            out.write_all(body)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", advisory_line(body))?;
        }
        out.flush()?;
        Ok(())
    };
    // Subscribe first, so nothing published while the stored ones print is missed.
    let mut live = if args.follow {
        Some(
            client
                .subscribe(args.subject.clone())
                .await
                .map_err(|e| nats_error("subscribe")(e.to_string()))?,
        )
    } else {
        None
    };
    let js = jetstream::new(client.clone());
    match js.stream_by_subject(args.subject.clone()).await {
        Ok(name) => {
            let stream = js
                .get_stream(&name)
                .await
                .map_err(|e| nats_error("get stream")(e.to_string()))?;
            let consumer = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: args.subject.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| nats_error("create consumer")(e.to_string()))?;
            let pending = consumer.cached_info().num_pending;
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| nats_error("consume")(e.to_string()))?;
            let mut left = pending;
            while left > 0 {
                let Some(message) = messages.next().await else {
                    break;
                };
                let message = message.map_err(|e| nats_error("consume")(e.to_string()))?;
                print(&message.payload)?;
                left = message.info().map(|i| i.pending).unwrap_or(0);
            }
        }
        Err(_) if args.follow => {}
        Err(_) => return Err(ReplicatorCliError::NoStream(args.subject.clone())),
    }
    if let Some(live) = live.as_mut() {
        while let Some(message) = live.next().await {
            print(&message.payload)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_lines_read_both_shapes() {
        let line = advisory_line(
            br#"{"protocol":"io.choria.sr.v2.age_advisory","event_id":"x","inspect_field":"sender","age":60,"seen":1700000000,"replicator":"US","timestamp":1700000060,"event":"timeout","value":"n1"}"#,
        );
        assert_eq!(
            line,
            "[2023-11-14T22:14:20Z] timeout n1 seen 1m earlier on US"
        );
        assert!(advisory_line(b"nope").starts_with("(not an advisory)"));
    }
}
