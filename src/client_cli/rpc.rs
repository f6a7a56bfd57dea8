//! `choir rpc <agent> <action> [key=value ...]`: discover the nodes, call the action on them
//! (broadcast, or `--direct` one request per node), print each reply and a summary.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use choir_actors::client::{Addressing, Collected, Discovery, Expectation, RpcCall};
use serde_json::{json, Map, Value};

use super::table::ms;
use super::{connect, duration_ns, ClientCliError, ConnectArgs, FilterArgs};

/// `choir rpc` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcArgs {
    /// The agent, e.g. `rpcutil` or `emulated0`.
    #[arg(id = "rpc_agent", value_name = "AGENT")]
    pub agent: String,
    /// The action, e.g. `ping` or `generate`.
    #[arg(id = "rpc_action", value_name = "ACTION")]
    pub action: String,
    /// Action inputs as key=value (values that parse as JSON are sent as JSON: size=100).
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Send one request per discovered node instead of a broadcast.
    #[arg(long)]
    pub direct: bool,
    /// How long to wait for replies.
    #[arg(long, short = 't', value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// How long discovery waits for nodes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub discovery_timeout: Duration,
    /// Stop discovery as soon as this many nodes answered.
    #[arg(long)]
    pub expect: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show the seen-by path of each reply.
    #[arg(long)]
    pub trace: bool,
}

/// Parses `key=value` inputs into a JSON object.
pub(super) fn parse_inputs(inputs: &[String]) -> Result<Value, ClientCliError> {
    let mut data = Map::new();
    for input in inputs {
        let Some((k, v)) = input.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(ClientCliError::Flag {
                flag: "input",
                value: input.clone(),
                message: "expected key=value".to_owned(),
            });
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        data.insert(k.to_owned(), value);
    }
    Ok(Value::Object(data))
}

/// Runs `choir rpc`.
pub(super) async fn run(args: RpcArgs) -> Result<ExitCode, ClientCliError> {
    let data = parse_inputs(&args.inputs)?;
    let mut filter = args.filter.filter()?;
    let client = connect(&args.connect).await?;
    let mut discovery_filter = filter.clone();
    if !discovery_filter.agent.contains(&args.agent) {
        discovery_filter.agent.push(args.agent.clone());
    }
    let discovered = client
        .discover(&Discovery {
            filter: discovery_filter,
            timeout: args.discovery_timeout,
            expect: args.expect,
            keep_bodies: false,
        })
        .await?;
    let nodes: BTreeSet<String> = discovered
        .replies
        .iter()
        .map(|r| r.sender.clone())
        .collect();
    if nodes.is_empty() {
        return Err(ClientCliError::NoNodes);
    }
    if !filter.agent.contains(&args.agent) {
        filter.agent.push(args.agent.clone());
    }
    let call = RpcCall {
        agent: args.agent.clone(),
        action: args.action.clone(),
        data,
        filter,
        addressing: if args.direct {
            Addressing::Direct(nodes.iter().cloned().collect())
        } else {
            Addressing::Broadcast
        },
        expectation: Expectation::Nodes(nodes),
        timeout: args.timeout,
        keep_bodies: true,
    };
    let result = client.rpc(&call).await?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    if args.json {
        writeln!(out, "{}", to_json(&result, args.trace))?;
    } else {
        write!(out, "{}", to_text(&result, args.trace))?;
    }
    out.flush()?;
    Ok(if result.failed() == 0 && result.missing_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn to_json(result: &Collected, trace: bool) -> Value {
    let mut replies: Vec<_> = result.replies.iter().collect();
    replies.sort_by(|a, b| a.sender.cmp(&b.sender));
    let replies: Vec<Value> = replies
        .into_iter()
        .map(|r| {
            let mut v = json!({
                "sender": r.sender,
                "statuscode": r.statuscode,
                "statusmsg": r.statusmsg,
                "data": r.data,
                "time_ms": r.elapsed.as_secs_f64() * 1e3,
            });
            if trace {
                v["seen_by"] = json!(r.seen_by);
            }
            v
        })
        .collect();
    json!({
        "replies": replies,
        "summary": {
            "expected": result.expected,
            "responded": result.replies.len(),
            "ok": result.ok(),
            "failed": result.failed(),
            "noresponses": result.no_responses,
            "unexpected": result.unexpected,
            "request_ms": result.request_duration.as_secs_f64() * 1e3,
        }
    })
}

fn to_text(result: &Collected, trace: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut replies: Vec<_> = result.replies.iter().collect();
    replies.sort_by(|a, b| a.sender.cmp(&b.sender));
    for r in replies {
        let status = match r.statuscode {
            Some(0) | None => "OK".to_owned(),
            Some(code) => format!(
                "FAILED ({code}: {})",
                r.statusmsg.as_deref().unwrap_or_default()
            ),
        };
        let _ = writeln!(
            out,
            "{:<30} {status}  {} ms",
            r.sender,
            ms(duration_ns(r.elapsed))
        );
        if let Some(Value::Object(data)) = &r.data {
            for (k, v) in data {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                let _ = writeln!(out, "    {k}: {v}");
            }
        }
        if trace {
            for (i, hop) in r.seen_by.iter().enumerate() {
                let _ = writeln!(out, "    {:>2}. {hop}", i + 1);
            }
        }
    }
    let _ = writeln!(
        out,
        "\nFinished processing {} / {} hosts in {} ms: OK {} failed {} no response {} unexpected {}",
        result.replies.len(),
        result.expected.unwrap_or(result.replies.len()),
        ms(duration_ns(result.request_duration)),
        result.ok(),
        result.failed(),
        result.missing_count,
        result.unexpected_replies
    );
    if !result.no_responses.is_empty() {
        let _ = writeln!(out, "No response from: {}", result.no_responses.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_consistent() {
        use clap::{CommandFactory as _, Parser};
        #[derive(Parser)]
        enum Cli {
            Ping(super::super::PingArgs),
            Rpc(RpcArgs),
            Measure(super::super::MeasureArgs),
        }
        Cli::command().debug_assert();
        let Cli::Rpc(args) = Cli::parse_from([
            "x",
            "rpc",
            "emulated0",
            "generate",
            "size=5",
            "--agent",
            "a2",
            "--direct",
        ]) else {
            panic!("not rpc");
        };
        assert_eq!(
            (args.agent.as_str(), args.action.as_str()),
            ("emulated0", "generate")
        );
        assert_eq!(args.filter.agent, ["a2"]);
        assert!(args.direct);
    }

    #[test]
    fn inputs() {
        let v = parse_inputs(&["size=100".into(), "name=web 1".into(), "on=true".into()]).unwrap();
        assert_eq!(v, json!({"size": 100, "name": "web 1", "on": true}));
        assert!(parse_inputs(&["novalue".into()]).is_err());
        assert!(parse_inputs(&["=x".into()]).is_err());
    }
}
