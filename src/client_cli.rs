//! `choir ping`, `choir rpc` and `choir measure`: the measuring client on the command line
//! (the client itself is `choir_actors::client`).
//!
//! Shared flags: `--server` (repeatable, default `nats://127.0.0.1:4222`), `--collective`
//! (default `mcollective`), `--federation <cluster>[,...]` (publish through federation
//! brokers), `--identity`, `--agent`, `--fact`, `--class` and `--filter` (node filters), and
//! security: `--config client.cfg` (a Choria client config), `--tls`, `--ca`, `--cert`,
//! `--key` (which also sign requests), `--credentials`, `--nkey`, `--user`/`--password`,
//! `--token`, `--insecure`.

mod args;
mod measure;
mod ping;
mod rpc;
mod table;

use std::process::ExitCode;

pub use args::{ConnectArgs, FilterArgs};
pub use measure::MeasureArgs;
pub use ping::PingArgs;
pub use rpc::RpcArgs;

use choir_actors::client::{ChoriaClient, ClientError};

/// Errors of the client commands.
#[derive(Debug, thiserror::Error)]
pub enum ClientCliError {
    /// The client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A flag or argument is wrong.
    #[error("{flag} {value:?}: {message}")]
    Flag {
        /// The flag or argument.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A report file could not be written.
    #[error(transparent)]
    Report(#[from] choir_actors::client::report::ReportError),
    /// Output could not be written.
    #[error("cannot write output")]
    Output(#[from] std::io::Error),
    /// The --config file is wrong.
    #[error(transparent)]
    Config(#[from] choir_actors::client::choria_config::ChoriaConfigError),
    /// A security flag is wrong.
    #[error(transparent)]
    SecurityFlag(#[from] crate::security_args::SecurityFlagError),
    /// The certificate or key of a flag could not be loaded.
    #[error("{flag}")]
    Security {
        /// The flags.
        flag: &'static str,
        /// Why.
        #[source]
        source: choir_actors::protocol::security::SecurityError,
    },
    /// No node answered discovery.
    #[error("no nodes discovered")]
    NoNodes,
}

/// Reply subscriptions buffer this many messages (replies beyond it would be dropped).
const SUBSCRIPTION_CAPACITY: usize = 1 << 18;

/// Connects a client as `args` say.
async fn connect(args: &ConnectArgs) -> Result<ChoriaClient, ClientCliError> {
    let (settings, options) = args.resolve()?;
    Ok(ChoriaClient::connect_with(&settings, options, SUBSCRIPTION_CAPACITY).await?)
}

/// Runs `future` on a fresh actix System and returns its result.
fn block_on<F, T>(future: F) -> T
where
    F: std::future::Future<Output = T>,
{
    actix_rt::System::new().block_on(future)
}

/// `choir ping`.
pub fn ping(args: PingArgs) -> Result<ExitCode, ClientCliError> {
    block_on(ping::run(args))
}

/// `choir rpc`.
pub fn rpc(args: RpcArgs) -> Result<ExitCode, ClientCliError> {
    block_on(rpc::run(args))
}

/// `choir measure`.
pub fn measure(args: MeasureArgs) -> Result<ExitCode, ClientCliError> {
    block_on(measure::run(args))
}

/// `d` in nanoseconds, saturating.
fn duration_ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
