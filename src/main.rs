//! The `choir` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use choir::config::{self, ConfigError};
use choir::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};

/// choir: a federation broker runtime for NATS and Choria networks.
#[derive(Debug, Parser)]
#[command(name = "choir", version, about, long_about = None)]
struct Cli {
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CHOIR_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node until SIGINT or SIGTERM (a second signal exits at once).
    Run {
        /// The node's TOML config file (or a Choria Stream Replicator YAML config).
        config: PathBuf,
    },
    /// Validate a config file and print what `run` would start; exits 1 listing every
    /// problem.
    Check {
        /// The node's TOML config file.
        config: PathBuf,
    },
    /// Playbooks: run, show or check a playbook file.
    #[command(subcommand)]
    Playbook(choir::playbook::PlaybookCommand),
    /// Run a load-test agent: a Choria server whose `emulator` and `nats` agents start and
    /// stop `choir emulate` and `nats-server` on this host, until SIGINT or SIGTERM.
    Agent {
        /// The agent's TOML config file (an `[agent]` table).
        config: PathBuf,
    },
    /// Emulate Choria daemons (each with its own NATS connection) until SIGINT or SIGTERM.
    Emulate(choir::emulate::EmulateArgs),
    /// Discover nodes (discovery agent ping) and list who answered, with reply times.
    Ping(choir::client_cli::PingArgs),
    /// Call an agent action on the discovered nodes: rpc <agent> <action> [key=value ...].
    Rpc(choir::client_cli::RpcArgs),
    /// Run <count> RPCs of emulated0#generate to <expect> nodes and report arrival times.
    Measure(choir::client_cli::MeasureArgs),
    /// Print another tool's config as choir TOML.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Replicator tools: print saved tracker state, watch advisories.
    #[command(subcommand)]
    Replicator(choir::replicator_cli::ReplicatorCommand),
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// A Choria Stream Replicator v2 YAML config; keys without an equivalent are named in
    /// comments and on stderr.
    StreamReplicator {
        /// The SR's YAML config file.
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A TOML config, or a Choria Stream Replicator YAML config imported on the fly.
fn load(path: &std::path::Path) -> anyhow::Result<config::Config> {
    if choir::import::is_yaml(path) {
        let imported = choir::import::stream_replicator::import(path)?;
        for line in &imported.unmapped {
            tracing::warn!(file = %path.display(), "Not imported: {line}.");
        }
        return Ok(config::parse(path, &imported.toml)?);
    }
    Ok(config::load(path)?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Playbook(command) => Ok(choir::playbook::main(command)),
        Command::Ping(args) => Ok(choir::client_cli::ping(args)?),
        Command::Rpc(args) => Ok(choir::client_cli::rpc(args)?),
        Command::Measure(args) => Ok(choir::client_cli::measure(args)?),
        Command::Agent { config } => {
            choir::agent::run(&config).context("agent failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Emulate(args) => {
            choir::emulate::run(args).context("emulator failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(ImportCommand::StreamReplicator { config }) => {
            let imported = choir::import::stream_replicator::import(&config)?;
            print!("{}", imported.toml);
            for line in &imported.unmapped {
                eprintln!("not imported: {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replicator(command) => Ok(choir::replicator_cli::main(command)?),
        Command::Check { config } => match load(&config) {
            Ok(config) => {
                println!("{}: ok", config.path.display());
                print!("{}", config.summary());
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => match error.downcast::<ConfigError>() {
                Ok(error @ ConfigError::Invalid { .. }) => {
                    eprintln!("{error}");
                    Ok(ExitCode::FAILURE)
                }
                Ok(error) => Err(error.into()),
                Err(error) => Err(error),
            },
        },
        Command::Run { config } => {
            let config = load(&config)?;
            choir::node::run(config).context("node failed")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
