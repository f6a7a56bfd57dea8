//! `choir playbook run|show|check`: the command-line runner for playbooks.
//!
//! `run` accepts inputs as `--NAME value` (`--NAME` alone for a bool), `--input NAME=value`,
//! `--input '{"NAME": value}'`, `--input @file.json|yaml` and `--inputs file.json|yaml`,
//! writes the report with `--report out.json` (JSON) or `--report out.yaml` (YAML, in the
//! structure of Choria's report), and exits 0 on success, 1 on failure. Ctrl-C or SIGTERM interrupts the run, which still
//! releases its locks. `--server URL` (repeatable or comma-separated), `--collective NAME` and
//! `--federation CLUSTER[,...]` override the playbook's `[client]` table (defaults
//! `nats://127.0.0.1:4222` and `mcollective`) for discovery node sets and `rpc` tasks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use choir_actors::error_chain::Chain;
use choir_actors::playbook::client::ClientOverrides;
use choir_actors::playbook::spec::InputType;
use choir_actors::playbook::validate::TaskKind;
use choir_actors::playbook::{self, Playbook, PlaybookRunActor, RunPlaybook, Runner};
use clap::Subcommand;
use serde_json::Value;

/// `choir playbook …`.
#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// Run a playbook: `choir playbook run FILE [--NAME value | --input k=v | --inputs f.json]
    /// [--report out.json|out.yaml] [--server URL]... [--collective NAME] [--federation C1,C2]`;
    /// exits 0 on success, 1 on failure.
    Run {
        /// The playbook file: YAML (`.yaml`, `.yml`; Choria's layout) or TOML.
        file: PathBuf,
        /// Inputs, `--report FILE`, `--server URL`, `--collective NAME`, `--federation C,..`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Describe a playbook: metadata, inputs as command-line help, stores, locks and tasks.
    Show {
        /// The playbook file: YAML (`.yaml`, `.yml`; Choria's layout) or TOML.
        file: PathBuf,
    },
    /// Validate a playbook; exits 1 listing every problem.
    Check {
        /// The playbook file: YAML (`.yaml`, `.yml`; Choria's layout) or TOML.
        file: PathBuf,
    },
}

/// A bad `run` command line.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// Not an input nor a known option.
    #[error("unknown option {0:?} (inputs: {1})")]
    Unknown(String, String),
    /// An option without its value.
    #[error("{0} needs a value")]
    MissingValue(String),
    /// `--input` neither `NAME=value`, a JSON object nor `@FILE`.
    #[error("--input {0:?}: expected NAME=value, a JSON object or @file.json|yaml")]
    BadInput(String),
    /// `--inputs FILE` / `--input @FILE` unreadable or not a map.
    #[error("--inputs {0}: {1}")]
    InputsFile(String, String),
}

/// What `run` was asked for.
#[derive(Debug, Default)]
pub struct RunArgs {
    /// Input values (strings are parsed by the input's type).
    pub inputs: BTreeMap<String, Value>,
    /// Where to write the report.
    pub report: Option<PathBuf>,
    /// `--server`, `--collective`, `--federation`.
    pub client: ClientOverrides,
}

/// Options of `run` that are not inputs.
const OPTIONS: [&str; 6] = [
    "report",
    "input",
    "inputs",
    "server",
    "collective",
    "federation",
];

fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses `run`'s arguments against the playbook's inputs.
pub fn parse_run_args(pb: &Playbook, args: &[String]) -> Result<RunArgs, ArgsError> {
    let mut out = RunArgs::default();
    let names = || pb.inputs.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(ArgsError::Unknown(arg.clone(), names()));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (flag.to_string(), None),
        };
        if !OPTIONS.contains(&name.as_str()) && !pb.inputs.contains_key(&name) {
            return Err(ArgsError::Unknown(format!("--{name}"), names()));
        }
        let is_bool = pb
            .inputs
            .get(&name)
            .is_some_and(|input| input.spec.kind == InputType::Bool);
        let value = match inline {
            Some(value) => value,
            None if is_bool && args.get(i).is_none_or(|next| next.starts_with("--")) => {
                "true".into()
            }
            None => {
                let value = args
                    .get(i)
                    .ok_or_else(|| ArgsError::MissingValue(format!("--{name}")))?;
                i += 1;
                value.clone()
            }
        };
        match name.as_str() {
            "report" => out.report = Some(PathBuf::from(value)),
            "server" => out.client.servers.extend(comma_list(&value)),
            "collective" => out.client.collective = Some(value),
            "federation" => out.client.federation = Some(comma_list(&value)),
            "input" => {
                if let Some(file) = value.strip_prefix('@') {
                    let map = playbook::input::read_inputs_file(Path::new(file))
                        .map_err(|e| ArgsError::InputsFile(file.to_string(), e))?;
                    out.inputs.extend(map);
                } else if value.trim_start().starts_with('{') {
                    match serde_json::from_str::<Value>(&value) {
                        Ok(Value::Object(map)) => out.inputs.extend(map),
                        _ => return Err(ArgsError::BadInput(value)),
                    }
                } else {
                    let (k, v) = value
                        .split_once('=')
                        .ok_or_else(|| ArgsError::BadInput(value.clone()))?;
                    out.inputs.insert(k.to_string(), Value::from(v));
                }
            }
            "inputs" => {
                let map = playbook::input::read_inputs_file(Path::new(&value))
                    .map_err(|e| ArgsError::InputsFile(value.clone(), e))?;
                out.inputs.extend(map);
            }
            _ if pb.inputs.contains_key(&name) => {
                out.inputs.insert(name, Value::from(value));
            }
            _ => return Err(ArgsError::Unknown(format!("--{name}"), names())),
        }
    }
    Ok(out)
}

/// Runs a `choir playbook` command.
pub fn main(command: PlaybookCommand) -> ExitCode {
    match command {
        PlaybookCommand::Check { file } => match playbook::load(&file) {
            Ok(pb) => {
                println!("{}: ok", file.display());
                print!("{}", describe(&pb));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{}", Chain(&error));
                ExitCode::FAILURE
            }
        },
        PlaybookCommand::Show { file } => match playbook::load(&file) {
            Ok(pb) => {
                print!("{}", describe(&pb));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{}", Chain(&error));
                ExitCode::FAILURE
            }
        },
        PlaybookCommand::Run { file, args } => run(&file, &args),
    }
}

fn run(file: &Path, args: &[String]) -> ExitCode {
    let pb = match playbook::load(file) {
        Ok(pb) => pb,
        Err(error) => {
            eprintln!("{}", Chain(&error));
            return ExitCode::FAILURE;
        }
    };
    let args = match parse_run_args(&pb, args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{}: {error}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let mut pb = pb;
    pb.client.apply(&args.client);
    let runner = Runner::new(pb, args.inputs);
    let system = actix::System::new();
    let report = system.block_on(async move {
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
        actix::spawn(async move {
            crate::signal::wait_for_signal().await;
            tracing::warn!("Interrupted: stopping the run and releasing its locks.");
            let _ = cancel_tx.send(());
        });
        let actor = actix::Actor::start(PlaybookRunActor::new(runner));
        actor.send(RunPlaybook { cancel: cancel_rx }).await
    });
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("{}: the run actor failed: {error}", file.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.report {
        let text = if choir_actors::playbook::yaml::is_yaml(path) {
            Ok(choir_actors::playbook::report::yaml::to_yaml_in_order(
                &report.to_choria(),
            ))
        } else {
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
        };
        let written = text.and_then(|text| std::fs::write(path, text).map_err(|e| e.to_string()));
        if let Err(error) = written {
            eprintln!("report {}: {error}", path.display());
        }
    }
    println!("{}", report.summary());
    if report.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Metadata, inputs as command-line help, stores, locks, node sets and task counts.
pub fn describe(pb: &Playbook) -> String {
    let meta = &pb.spec.metadata;
    let mut out = format!(
        "{} {} by {}\n  {}\n",
        meta.name, meta.version, meta.author, meta.description
    );
    if !pb.inputs.is_empty() {
        out.push_str("\ninputs:\n");
    }
    for (name, input) in &pb.inputs {
        let spec = &input.spec;
        let flag = if spec.kind == InputType::Bool {
            format!("--{name}")
        } else {
            format!("--{name} <{}>", spec.kind.as_str())
        };
        let mut notes = Vec::new();
        if spec.is_required() {
            notes.push("required".to_string());
        }
        if let Some(default) = &input.default {
            notes.push(format!("default {default}"));
        }
        if let Some(data) = &spec.data {
            notes.push(format!(
                "{} {data}",
                if spec.dynamic {
                    "always from"
                } else {
                    "else from"
                }
            ));
        }
        if spec.save {
            notes.push("saved to its store".into());
        }
        if let Some(rule) = &spec.validation {
            notes.push(format!("validation {rule:?}"));
        }
        let flag = if spec.dynamic {
            format!("({name})")
        } else {
            flag
        };
        out.push_str(&format!("  {flag:<28} {}", spec.description));
        if !notes.is_empty() {
            out.push_str(&format!(" [{}]", notes.join(", ")));
        }
        out.push('\n');
    }
    for (name, store) in &pb.stores {
        out.push_str(&format!(
            "store {name}: {:?} (lock timeout {}, ttl {})\n",
            store.kind,
            humantime::format_duration(store.timeout),
            humantime::format_duration(store.ttl)
        ));
    }
    for (store, key) in &pb.locks {
        out.push_str(&format!("lock {store}/{key}\n"));
    }
    for (name, set) in &pb.nodes {
        out.push_str(&format!("node set {name}: {}\n", set.spec.kind));
    }
    let uses_client = pb
        .nodes
        .values()
        .any(|set| set.spec.kind == "discovery" || set.spec.test || !set.spec.uses.is_empty())
        || pb
            .tasks
            .iter()
            .chain(pb.hooks.pre_book.iter())
            .chain(pb.hooks.pre_task.iter())
            .chain(pb.hooks.post_task.iter())
            .chain(pb.hooks.on_success.iter())
            .chain(pb.hooks.on_fail.iter())
            .chain(pb.hooks.post_book.iter())
            .any(|t| t.kind == TaskKind::Rpc);
    if uses_client {
        let client = &pb.client;
        out.push_str(&format!(
            "client: {} collective {}{} (discovery timeout {}; override with --server, --collective, --federation)\n",
            client.servers.join(","),
            client.collective,
            if client.federation.is_empty() {
                String::new()
            } else {
                format!(" via federation {}", client.federation.join(","))
            },
            humantime::format_duration(client.discovery_timeout)
        ));
    }
    let hooks = &pb.hooks;
    out.push_str(&format!(
        "tasks: {} (hooks: pre_book {}, pre_task {}, post_task {}, on_success {}, on_fail {}, post_book {})\n",
        pb.tasks.len(),
        hooks.pre_book.len(),
        hooks.pre_task.len(),
        hooks.post_task.len(),
        hooks.on_success.len(),
        hooks.on_fail.len(),
        hooks.post_book.len()
    ));
    out
}
