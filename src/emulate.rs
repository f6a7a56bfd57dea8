//! `choir emulate` and the `[emulator]` section of `choir run`: thousands of Choria daemons
//! in one process (see `choir_actors::emulator`).
//!
//! Before anything starts, the soft open-file limit is raised to the hard limit and the fleet
//! is checked against it: a dedicated daemon holds one socket, so a fleet that cannot fit fails
//! at once with a message suggesting the multi-process layout. Daemons then connect at a
//! bounded rate behind a progress bar (stderr, hidden when it is not a terminal) and an INFO
//! summary reports the start-up time and memory per daemon.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use choir_actors::connection::TlsSettings;
use choir_actors::emulator::{budget, ConnectionMode, Fleet, FleetSpec, RegistrationSpec};
use choir_actors::emulator::{EmulatorError, EmulatorMetrics};
use choir_actors::metrics::MetricsRegistry;
use choir_actors::protocol::security::{
    read_certificates, read_pem_file, NamePatterns, SecurityError, SecurityPolicy, Verifier,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::{info, warn};

use crate::monitor::{self, rss_bytes, Components, MonitorState};
use crate::security_args::SecurityArgs;
use choir_actors::error_chain::Chain;

/// Errors of `choir emulate` and of starting the `[emulator]` fleet.
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    /// The fleet cannot start.
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    /// A command-line value is wrong.
    #[error("{flag} {value:?}: {message}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// The monitor cannot listen (most often: another emulator on this machine holds the
    /// default port).
    #[error(
        "--http-port {port}: cannot listen on 127.0.0.1:{port} (another emulator on this machine \
         may hold it): pass a free port, e.g. --http-port {}, or --http-port 0 to run without \
         the monitor",
        port.wrapping_add(1).max(1)
    )]
    Monitor {
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
}

/// `choir emulate` flags (the original Choria emulator's, plus choir's own).
// The field docs are clap help text: `<name>` is a placeholder there, not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, clap::Args)]
pub struct EmulateArgs {
    /// Number of daemons to emulate.
    #[arg(short, long)]
    pub instances: usize,
    /// Emulated agents per daemon (emulated0..N-1), besides discovery and rpcutil.
    #[arg(short, long, default_value_t = 1)]
    pub agents: usize,
    /// Collectives per daemon: mcollective, collective1, ...
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    pub collectives: NonZeroUsize,
    /// Identity prefix: daemon i is <name>-<i> (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// NATS server, host:port or URL; repeat (or comma-separate) to spread daemons
    /// round-robin over several servers.
    #[arg(
        long = "server",
        short = 's',
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    pub servers: Vec<String>,
    /// Verify the servers' certificates (always done with --tls; kept for compatibility).
    #[arg(long)]
    pub verify: bool,
    /// TLS and NATS credentials: the client commands' flags, with one difference kept from
    /// the original emulator: only --tls turns TLS on (--ca alone does not).
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Verify every request as a Choria server does (certificate chains to --security-ca,
    /// valid now, callerid matches it, certname allowed, signature valid) and answer only
    /// trusted ones; insecure requests are refused.
    #[arg(long)]
    pub secure: bool,
    /// CA (PEM) client certificates must chain to with --secure (default: --ca).
    #[arg(long, requires = "secure")]
    pub security_ca: Option<PathBuf>,
    /// Certnames allowed to make requests with --secure: comma-separated regular
    /// expressions, optionally /between slashes/ (plugin.choria.security.certname_whitelist;
    /// default \.mcollective$,\.choria$).
    #[arg(long, requires = "secure")]
    pub certname_allowlist: Option<String>,
    /// Certnames that may act as any caller with --secure
    /// (plugin.choria.security.privileged_users; default \.privileged.mcollective$).
    #[arg(long, requires = "secure")]
    pub privileged_users: Option<String>,
    /// Serve /debug/vars and /metrics on 127.0.0.1:<port>; 0 turns it off.
    #[arg(short = 'p', long, default_value_t = 8080)]
    pub http_port: u16,
    /// Publish registration this often per daemon (e.g. 60s); off by default.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub registration_interval: Option<Duration>,
    /// Registration subject (default <collective>.broadcast.agent.registration).
    #[arg(long, requires = "registration_interval")]
    pub registration_subject: Option<String>,
    /// Publish the first registration at once instead of after a random splay.
    #[arg(long)]
    pub no_registration_splay: bool,
    /// dedicated: one connection per daemon (realistic); shared: few connections
    /// (fits more daemons than open files, but the broker sees fewer connections).
    #[arg(long, value_enum, default_value_t = Connections::Dedicated)]
    pub connections: Connections,
    /// Connections used by --connections shared.
    #[arg(long, default_value = "4")]
    pub shared_connections: NonZeroUsize,
    /// Connects in flight at once while starting.
    #[arg(long, default_value = "64")]
    pub connect_concurrency: NonZeroUsize,
    /// Threads the daemons are spread over (default: one per core).
    #[arg(long)]
    pub arbiters: Option<NonZeroUsize>,
    /// A fact of every daemon, key=value (repeatable; {instance} and {identity} expand).
    #[arg(long = "fact", value_parser = parse_fact_setting)]
    pub facts: Vec<(String, String)>,
    /// A configuration class of every daemon (repeatable).
    #[arg(long = "class")]
    pub classes: Vec<String>,
    /// Send every fact as a string (numbers and booleans as their text), as MCollective
    /// 2.12's Ruby client expects; by default facts keep their JSON types, as go-choria's.
    #[arg(long)]
    pub string_facts: bool,
    /// Append a Choria audit log line per RPC request to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Time between two keep-alive PINGs of a daemon; after 2 unanswered it reconnects.
    #[arg(long, value_parser = parse_ping_interval, default_value = "2m")]
    pub ping_interval: Duration,
}

fn parse_ping_interval(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d >= Duration::from_millis(10) => Ok(d),
        Ok(_) => Err("must be at least 10ms".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// `--connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Connections {
    /// One NATS connection per daemon.
    Dedicated,
    /// Daemons multiplexed over --shared-connections connections.
    Shared,
}

/// Reads `--fact key=value`: a fact the emulated daemons report (a setting, not a filter:
/// filters use [`FactFilter::parse_expression`](choir_actors::protocol::FactFilter::parse_expression)).
fn parse_fact_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err("expected key=value".to_owned()),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "choir".to_owned())
}

fn server_url(server: &str, tls: bool) -> Result<String, EmulateError> {
    let server = server.trim();
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("{}://{server}", if tls { "tls" } else { "nats" })
    };
    match url::Url::parse(&url) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        _ => Err(EmulateError::Flag {
            flag: "--server",
            value: server.to_owned(),
            message: "expected host:port or nats://host:port".to_owned(),
        }),
    }
}

impl EmulateArgs {
    /// The fleet these flags describe.
    pub fn spec(&self) -> Result<FleetSpec, EmulateError> {
        let urls = self
            .servers
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| server_url(s, self.security.tls))
            .collect::<Result<Vec<_>, _>>()?;
        let name = self.name.clone().unwrap_or_else(hostname);
        let mut spec = FleetSpec::new(name, self.instances, urls);
        spec.network.connection_name = "choir-emulator".to_owned();
        spec.network.auth = self.security.auth().map_err(|e| EmulateError::Flag {
            flag: e.flag,
            value: e.value,
            message: e.message,
        })?;
        spec.secure = self.security_policy()?;
        self.check_tls_files()?;
        if self.security.tls {
            if !self.verify {
                warn!("--tls without --verify: choir always verifies server certificates.");
            }
            spec.network.tls = Some(TlsSettings {
                ca: self.security.ca.clone(),
                cert: self.security.cert.clone(),
                key: self.security.key.clone(),
            });
        }
        spec.agents = self.agents;
        spec.collectives = self.collectives;
        spec.mode = match self.connections {
            Connections::Dedicated => ConnectionMode::Dedicated,
            Connections::Shared => ConnectionMode::Shared,
        };
        spec.shared_connections = self.shared_connections;
        spec.connect_concurrency = self.connect_concurrency;
        spec.arbiters = self.arbiters;
        spec.facts = self
            .facts
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
            .collect();
        spec.classes = self.classes.clone();
        spec.string_facts = self.string_facts;
        spec.registration = self.registration_interval.map(|interval| RegistrationSpec {
            interval,
            splay: !self.no_registration_splay,
            subject: self.registration_subject.clone(),
        });
        spec.audit = self.audit.clone();
        spec.ping_interval = self.ping_interval;
        Ok(spec)
    }
}

impl EmulateArgs {
    /// --ca, --cert and --key are readable PEM files of the right kind: checked at start, so
    /// a bad file is refused naming its flag instead of failing every daemon's connect.
    fn check_tls_files(&self) -> Result<(), EmulateError> {
        let flag_error =
            |flag: &'static str, path: &std::path::Path, e: SecurityError| EmulateError::Flag {
                flag,
                value: path.display().to_string(),
                message: Chain(&e).to_string(),
            };
        for (flag, what, path) in [
            ("--ca", "CA", &self.security.ca),
            ("--cert", "certificate", &self.security.cert),
        ] {
            if let Some(path) = path {
                read_certificates(what, path).map_err(|e| flag_error(flag, path, e))?;
            }
        }
        if let Some(path) = &self.security.key {
            let bytes =
                read_pem_file("private key", path).map_err(|e| flag_error("--key", path, e))?;
            if !String::from_utf8_lossy(&bytes).contains("PRIVATE KEY-----") {
                return Err(flag_error(
                    "--key",
                    path,
                    SecurityError::NotPem {
                        what: "private key",
                        path: path.clone(),
                        reason: "no PRIVATE KEY section found".to_owned(),
                    },
                ));
            }
        }
        Ok(())
    }

    /// The verification policy of --secure: --security-ca (or --ca) and the name patterns.
    fn security_policy(&self) -> Result<Option<SecurityPolicy>, EmulateError> {
        if !self.secure {
            return Ok(None);
        }
        let ca = self
            .security_ca
            .clone()
            .or_else(|| self.security.ca.clone())
            .ok_or_else(|| EmulateError::Flag {
                flag: "--secure",
                value: String::new(),
                message: "needs --security-ca or --ca: the CA client certificates chain to"
                    .to_owned(),
            })?;
        let patterns = |flag: &'static str, list: &Option<String>, default: NamePatterns| {
            list.as_deref().map_or(Ok(default), |list| {
                NamePatterns::parse(flag, list).map_err(|e| EmulateError::Flag {
                    flag,
                    value: list.to_owned(),
                    // The flag is already named: say only what is wrong, with the cause.
                    message: match e {
                        SecurityError::Pattern {
                            pattern, source, ..
                        } => format!("invalid pattern {pattern:?}: {source}"),
                        other => Chain(&other).to_string(),
                    },
                })
            })
        };
        let policy = SecurityPolicy {
            ca,
            allowlist: patterns(
                "--certname-allowlist",
                &self.certname_allowlist,
                NamePatterns::default_allowlist(),
            )?,
            privileged: patterns(
                "--privileged-users",
                &self.privileged_users,
                NamePatterns::default_privileged(),
            )?,
        };
        // Load the CA now, so a bad file is reported against the flag that named it.
        Verifier::new(&policy).map_err(|e| EmulateError::Flag {
            flag: if self.security_ca.is_some() {
                "--security-ca"
            } else {
                "--ca"
            },
            value: policy.ca.display().to_string(),
            message: Chain(&e).to_string(),
        })?;
        Ok(Some(policy))
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                info!(from = soft, to = hard, "Raised the open-file limit.");
                hard
            }
            Err(error) => {
                warn!(%error, soft, hard, "Cannot raise the open-file limit.");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u64>().ok());
            match (it.next().flatten(), it.next().flatten()) {
                (Some(lo), Some(hi)) if hi >= lo => Some(hi - lo + 1),
                _ => None,
            }
        })
        .unwrap_or(budget::DEFAULT_EPHEMERAL_PORTS)
}

/// Raises the fd limit and checks that `spec` fits it and the ephemeral port range.
pub fn preflight(spec: &FleetSpec) -> Result<(), EmulateError> {
    let limit = raise_fd_limit();
    budget::check_fd_budget(
        spec.instances,
        spec.mode,
        spec.shared_connections.get(),
        limit,
    )
    .map_err(EmulatorError::FdBudget)?;
    if spec.mode == ConnectionMode::Dedicated {
        if let Some(message) = budget::ephemeral_port_warning(
            spec.instances,
            spec.network.urls.len(),
            ephemeral_ports(),
        ) {
            warn!("{message}");
        }
    }
    Ok(())
}

/// The `config` object of `/debug/vars`, as the original emulator's expvar.
pub fn debug_config(spec: &FleetSpec) -> serde_json::Value {
    serde_json::json!({
        "instances": spec.instances,
        "agents": spec.agents,
        "collectives": spec.collectives.get(),
        "pid": std::process::id(),
        "TLS": u8::from(spec.network.tls.is_some()),
        "tlsVerify": u8::from(spec.network.tls.is_some()),
        "connections": spec.mode.as_str(),
        "servers": spec.network.urls,
        "secure": u8::from(spec.secure.is_some()),
    })
}

/// Waits for `fleet` to start with a progress bar, then logs the summary.
pub async fn report_start(fleet: &Fleet) {
    let expected = fleet.spec().instances;
    let bar = ProgressBar::with_draw_target(
        Some(u64::try_from(expected).unwrap_or(u64::MAX)),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} daemons started ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    let started = Instant::now();
    let mut last_log = Instant::now();
    fleet
        .wait_started(Duration::MAX / 4, |p| {
            bar.set_position(u64::try_from(p.started).unwrap_or(0));
            if bar.is_hidden() && last_log.elapsed() >= Duration::from_secs(10) {
                last_log = Instant::now();
                let m = fleet.metrics();
                info!(
                    started = p.started,
                    expected,
                    connected = p.connected,
                    waiting = m.connect_waiting.get(),
                    connect_failures = m.connect_failures.get(),
                    "Emulated daemons starting."
                );
            }
        })
        .await;
    bar.finish_and_clear();
    let rss = rss_bytes();
    let per_daemon = rss / u64::try_from(expected.max(1)).unwrap_or(1);
    info!(
        instances = expected,
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        rss_mib = rss / (1024 * 1024),
        rss_per_daemon_kib = per_daemon / 1024,
        connect_failures = fleet.metrics().connect_failures.get(),
        "Emulated daemons started."
    );
}

/// Runs `choir emulate` until SIGINT or SIGTERM.
pub fn run(args: EmulateArgs) -> Result<(), EmulateError> {
    let spec = args.spec()?;
    preflight(&spec)?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let metrics = MetricsRegistry::new();
        let counters = EmulatorMetrics::register(&metrics);
        let components = Components::default();
        let monitor = if args.http_port == 0 {
            None
        } else {
            let addr = SocketAddr::from(([127, 0, 0, 1], args.http_port));
            let state = MonitorState {
                metrics: metrics.clone(),
                health: Default::default(),
                name: spec.name.clone(),
                config: debug_config(&spec),
                started: Instant::now(),
                components: components.clone(),
                security: spec.secure.is_some().then(|| counters.security.clone()),
                embedded: Default::default(),
            };
            let handle = monitor::start(addr, state).map_err(|source| EmulateError::Monitor {
                port: args.http_port,
                source,
            })?;
            info!(%addr, "Monitor listening (/debug/vars, /metrics).");
            Some(handle)
        };
        let fleet = Fleet::start(spec, counters)?;
        let status = fleet.status();
        components.add(Arc::new(move || status.json()));
        tokio::select! {
            _ = report_start(&fleet) => crate::signal::wait_for_signal().await,
            _ = crate::signal::wait_for_signal() => {}
        }
        info!("Stopping the emulated daemons.");
        fleet.shutdown().await;
        if let Some(monitor) = monitor {
            monitor.stop(true).await;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulateArgs,
    }

    #[test]
    fn bad_secure_flags_are_refused_naming_the_flag_and_file_once() {
        let spec = |extra: &[&str]| {
            let mut argv = vec!["x", "--instances", "1", "--secure"];
            argv.extend_from_slice(extra);
            Cli::parse_from(argv).args.spec().map(|_| ())
        };
        let missing = spec(&["--security-ca", "/nonexistent/ca.pem"])
            .unwrap_err()
            .to_string();
        assert!(missing.starts_with("--security-ca "), "{missing}");
        assert!(
            missing.contains("cannot read CA /nonexistent/ca.pem"),
            "{missing}"
        );
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("me.key");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let not_ca = spec(&["--ca", key.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(not_ca.starts_with("--ca "), "{not_ca}");
        assert!(not_ca.contains("is not a PEM CA"), "{not_ca}");
        let pattern = spec(&["--ca", "/x", "--certname-allowlist", "("])
            .unwrap_err()
            .to_string();
        assert_eq!(
            pattern.matches("--certname-allowlist").count(),
            1,
            "{pattern}"
        );
        assert!(
            pattern.contains("invalid pattern \"(\": regex parse error"),
            "{pattern}"
        );
    }

    #[test]
    fn unreadable_or_wrong_tls_files_are_refused_naming_the_flag() {
        let spec = |extra: &[&str]| {
            let mut argv = vec!["x", "--instances", "1", "--tls"];
            argv.extend_from_slice(extra);
            Cli::parse_from(argv).args.spec().map(|_| ())
        };
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("me.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let c = cert.to_str().unwrap();
        let err = spec(&["--cert", c, "--key", "/nonexistent/me.key"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--key \"/nonexistent/me.key\""), "{err}");
        assert!(err.contains("cannot read private key"), "{err}");
        let err = spec(&["--cert", c, "--key", c]).unwrap_err().to_string();
        assert!(err.starts_with("--key "), "{err}");
        assert!(err.contains("no PRIVATE KEY section"), "{err}");
        let err = spec(&["--ca", "/nonexistent/ca.pem"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--ca "), "{err}");
        assert!(err.contains("cannot read CA /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn flags_make_a_spec() {
        let cli = Cli::parse_from([
            "x",
            "--instances",
            "10",
            "--agents",
            "3",
            "--collectives",
            "2",
            "--name",
            "emu",
            "--server",
            "127.0.0.1:4222",
            "--server",
            "nats://127.0.0.1:4223,127.0.0.1:4224",
            "--fact",
            "country=mt",
            "--registration-interval",
            "30s",
            "--connections",
            "shared",
        ]);
        let spec = cli.args.spec().unwrap();
        assert_eq!(spec.instances, 10);
        assert_eq!(spec.agents, 3);
        assert_eq!(spec.collectives.get(), 2);
        assert_eq!(
            spec.network.urls,
            [
                "nats://127.0.0.1:4222",
                "nats://127.0.0.1:4223",
                "nats://127.0.0.1:4224"
            ]
        );
        assert_eq!(spec.facts["country"], "mt");
        assert_eq!(spec.mode, ConnectionMode::Shared);
        assert_eq!(spec.registration.unwrap().interval, Duration::from_secs(30));
        let config = debug_config(&cli.args.spec().unwrap());
        assert_eq!(config["instances"], 10);
        assert!(config["pid"].as_u64().unwrap() > 0);
    }

    #[test]
    fn bad_server_is_named() {
        let cli = Cli::parse_from(["x", "-i", "1", "--server", "nats://"]);
        let err = cli.args.spec().unwrap_err().to_string();
        assert!(err.starts_with("--server"), "{err}");
    }

    #[test]
    fn secure_flags_make_a_policy() {
        let cli = Cli::parse_from(["x", "-i", "1", "--secure"]);
        let err = cli.args.spec().unwrap_err().to_string();
        assert!(err.starts_with("--secure"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=ca", "-keyout"])
            .arg(dir.path().join("ca.key"))
            .arg("-out")
            .arg(&ca)
            .output()
            .unwrap();
        assert!(out.status.success());
        let cli = Cli::parse_from([
            "x",
            "-i",
            "1",
            "--secure",
            "--ca",
            ca.to_str().unwrap(),
            "--certname-allowlist",
            "/^ops\\./,admin.choria",
            "--user",
            "u",
            "--password",
            "p",
        ]);
        let spec = cli.args.spec().unwrap();
        let policy = spec.secure.clone().unwrap();
        assert_eq!(policy.ca, ca);
        assert!(policy.allowlist.matches("ops.example"));
        assert!(!policy.allowlist.matches("rip.mcollective"));
        assert!(policy.privileged.matches("x.privileged.mcollective"));
        assert!(matches!(
            spec.network.auth,
            choir_actors::connection::Auth::UserPassword { .. }
        ));
        assert_eq!(debug_config(&spec)["secure"], 1);
        let cli = Cli::parse_from([
            "x",
            "-i",
            "1",
            "--secure",
            "--ca",
            "c",
            "--privileged-users",
            "/(/",
        ]);
        let err = cli.args.spec().unwrap_err().to_string();
        assert!(err.starts_with("--privileged-users"), "{err}");
    }

    #[test]
    fn ca_alone_does_not_turn_tls_on_for_the_emulator_but_tls_does() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=ca", "-keyout"])
            .arg(dir.path().join("ca.key"))
            .arg("-out")
            .arg(&ca)
            .output()
            .unwrap();
        assert!(out.status.success());
        let ca = ca.to_str().unwrap();
        let spec = Cli::parse_from(["x", "-i", "1", "-s", "127.0.0.1:4222", "--ca", ca])
            .args
            .spec()
            .unwrap();
        assert!(spec.network.tls.is_none(), "--ca alone turned TLS on");
        assert!(spec.network.urls[0].starts_with("nats://"));
        let spec = Cli::parse_from([
            "x",
            "-i",
            "1",
            "-s",
            "127.0.0.1:4222",
            "--tls",
            "--ca",
            ca,
            "--token",
            "t",
        ])
        .args
        .spec()
        .unwrap();
        assert_eq!(spec.network.tls.unwrap().ca.unwrap().to_str(), Some(ca));
        assert!(spec.network.urls[0].starts_with("tls://"));
        assert_eq!(
            spec.network.auth,
            choir_actors::connection::Auth::Token("t".into())
        );
    }
}
