//! Flags shared by `ping`, `rpc` and `measure`: connection and node filters.

use std::path::PathBuf;

use choir_actors::client::choria_config::ChoriaConfig;
use choir_actors::client::ClientOptions;
use choir_actors::connection::{Auth, NetworkSettings, TlsSettings};
use choir_actors::protocol::security::SigningIdentity;
use choir_actors::protocol::{parse_select, CompiledCompound, FactFilter, Filter};

use crate::security_args::SecurityArgs;

use super::ClientCliError;

/// Where and as whom to connect.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// NATS server URL; repeat (or comma-separate) for a pool (default: the --config's
    /// plugin.choria.middleware_hosts, else nats://127.0.0.1:4222).
    #[arg(long = "server", short = 's', value_delimiter = ',')]
    pub servers: Vec<String>,
    /// The collective requests go to (default: the --config's main_collective, else
    /// mcollective).
    #[arg(long)]
    pub collective: Option<String>,
    /// Publish through the federation brokers of these clusters
    /// (`choria.federation.<cluster>.federation`); comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub federation: Vec<String>,
    /// The caller id (default `choria=<certname>` when signing, else
    /// `choria=<user>.mcollective`).
    #[arg(long)]
    pub callerid: Option<String>,
    /// A Choria client config (client.cfg) to take servers, identity, collective,
    /// certificates and NATS credentials from; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Send unsigned (insecure) requests even with a certificate and key.
    #[arg(long)]
    pub insecure: bool,
    /// TLS and NATS credentials.
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// The server used when neither --server nor --config names one.
const DEFAULT_SERVER: &str = "nats://127.0.0.1:4222";

impl ConnectArgs {
    /// The client options these flags describe, without a config file or signing (tests and
    /// tools; [`ConnectArgs::resolve`] is what the commands use).
    pub fn options(&self) -> ClientOptions {
        let server = self
            .servers
            .first()
            .cloned()
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let collective = self
            .collective
            .clone()
            .unwrap_or_else(|| "mcollective".to_owned());
        let mut options = ClientOptions::new(collective, server);
        options.federation = self
            .federation
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.trim().to_owned())
            .collect();
        if let Some(callerid) = &self.callerid {
            options.callerid = callerid.clone();
        }
        options
    }

    /// The connection settings and client options of these flags and the --config file
    /// they name (flags win): servers, TLS and credentials, collective, identity, and the
    /// signing identity (secure mode) unless --insecure.
    pub fn resolve(&self) -> Result<(NetworkSettings, ClientOptions), ClientCliError> {
        let config = self.config.as_deref().map(ChoriaConfig::load).transpose()?;
        let mut urls: Vec<String> = self
            .servers
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if urls.is_empty() {
            urls = config
                .as_ref()
                .map(ChoriaConfig::middleware_urls)
                .unwrap_or_default();
        }
        if urls.is_empty() {
            urls.push(DEFAULT_SERVER.to_owned());
        }
        let mut settings = NetworkSettings::new("client", urls.clone());
        settings.connection_name = "choir-client".to_owned();
        let mut signer = None;
        if let Some(config) = &config {
            if let Some(path) = config.nats_credentials() {
                settings.auth = Auth::CredentialsFile(path);
            } else if let Some((user, password)) = config.nats_user() {
                settings.auth = Auth::UserPassword { user, password };
            }
            if let Some(files) = config.security_files()? {
                settings.tls = Some(TlsSettings {
                    ca: files.ca,
                    cert: Some(files.certificate),
                    key: Some(files.key),
                });
                if !self.insecure && self.security.cert.is_none() {
                    signer = config.signing_identity()?;
                }
            }
        }
        self.security.apply(&mut settings)?;
        if let (Some(cert), Some(key), false) =
            (&self.security.cert, &self.security.key, self.insecure)
        {
            signer = Some(SigningIdentity::load(cert, key).map_err(|source| {
                ClientCliError::Security {
                    flag: "--cert/--key",
                    source,
                }
            })?);
        }
        let mut options = ClientOptions::new(
            self.collective
                .clone()
                .or_else(|| config.as_ref().and_then(ChoriaConfig::main_collective))
                .unwrap_or_else(|| "mcollective".to_owned()),
            urls[0].clone(),
        );
        if let Some(identity) = config.as_ref().and_then(ChoriaConfig::identity) {
            options.senderid = identity.to_owned();
        }
        options.federation = self
            .federation
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.trim().to_owned())
            .collect();
        if let Some(signer) = signer {
            options = options.signed_by(signer);
        }
        if let Some(callerid) = &self.callerid {
            options.callerid = callerid.clone();
        }
        Ok((settings, options))
    }
}

/// Which nodes answer.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only this identity (exact or /regex/); repeat for any of several.
    #[arg(long, short = 'I')]
    pub identity: Vec<String>,
    /// Only nodes running this agent; repeat for all of several.
    #[arg(long, short = 'A')]
    pub agent: Vec<String>,
    /// Only nodes whose fact matches, e.g. `country=mt`, `cores>=4`, `os=~/linux/`.
    #[arg(long, short = 'F')]
    pub fact: Vec<String>,
    /// Only nodes with this configuration class.
    #[arg(long, short = 'C')]
    pub class: Vec<String>,
    /// Combined filter: `key<op>value` is a fact, `identity:x`, `agent:x`, `class:x`, and a
    /// bare word is a class (as `mco -W`).
    #[arg(long, short = 'W')]
    pub filter: Vec<String>,
    /// Compound filter, sent in MCollective 2.12's classic form, e.g.
    /// `"country=mt and not (instance=3 or /^role::db/)"`: `fact<op>value`, a class or agent
    /// name or `/regex/`, `and`, `or`, `not`, parentheses; repeat for all of several.
    #[arg(long = "select", short = 'S')]
    pub select: Vec<String>,
    /// Compound filter in go-choria's expr form, e.g.
    /// `"with('apache') and fact('cores') >= 4"` (the subset the README lists).
    #[arg(long)]
    pub expr: Vec<String>,
}

/// Parses `key<op>value` into a fact filter (`=` means `==`).
pub(super) fn parse_fact(text: &str) -> Result<FactFilter, ClientCliError> {
    FactFilter::parse_expression(text).map_err(|message| ClientCliError::Flag {
        flag: "--fact",
        value: text.to_owned(),
        message: message.to_owned(),
    })
}

impl FilterArgs {
    /// The wire filter.
    pub fn filter(&self) -> Result<Filter, ClientCliError> {
        let mut f = Filter {
            identity: self.identity.clone(),
            agent: self.agent.clone(),
            cf_class: self.class.clone(),
            ..Filter::default()
        };
        for fact in &self.fact {
            f.fact.push(parse_fact(fact)?);
        }
        for item in &self.filter {
            if let Some(v) = item.strip_prefix("identity:") {
                f.identity.push(v.to_owned());
            } else if let Some(v) = item.strip_prefix("agent:") {
                f.agent.push(v.to_owned());
            } else if let Some(v) = item.strip_prefix("class:") {
                f.cf_class.push(v.to_owned());
            } else if item.contains(['=', '<', '>']) {
                f.fact.push(parse_fact(item)?);
            } else {
                f.cf_class.push(item.clone());
            }
        }
        for select in &self.select {
            let stack = parse_select(select).map_err(|message| ClientCliError::Flag {
                flag: "--select",
                value: select.clone(),
                message,
            })?;
            f.compound.push(stack);
        }
        for expr in &self.expr {
            let list = vec![serde_json::json!({ "expr": expr })];
            // The evaluator the daemons use refuses what it cannot evaluate: say so here.
            CompiledCompound::compile(std::slice::from_ref(&list)).map_err(|e| {
                ClientCliError::Flag {
                    flag: "--expr",
                    value: expr.clone(),
                    message: e.to_string(),
                }
            })?;
            f.compound.push(list);
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts() {
        assert_eq!(
            parse_fact("country=mt").unwrap(),
            FactFilter::new("country", "==", "mt")
        );
        assert_eq!(
            parse_fact("cores>=4").unwrap(),
            FactFilter::new("cores", ">=", "4")
        );
        assert_eq!(
            parse_fact("os=~/lin/").unwrap(),
            FactFilter::new("os", "=~", "/lin/")
        );
        assert_eq!(parse_fact("a!=b").unwrap(), FactFilter::new("a", "!=", "b"));
        assert_eq!(parse_fact("a<3").unwrap(), FactFilter::new("a", "<", "3"));
        assert!(parse_fact("nothing").is_err());
        assert!(parse_fact("=x").is_err());
    }

    #[test]
    fn combined_filter() {
        let args = FilterArgs {
            filter: vec![
                "identity:emu-1".into(),
                "agent:emulated0".into(),
                "country=mt".into(),
                "apache".into(),
            ],
            ..FilterArgs::default()
        };
        let f = args.filter().unwrap();
        assert_eq!(f.identity, ["emu-1"]);
        assert_eq!(f.agent, ["emulated0"]);
        assert_eq!(f.cf_class, ["apache"]);
        assert_eq!(f.fact.len(), 1);
    }

    #[test]
    fn compound_filters() {
        let args = FilterArgs {
            select: vec!["instance=7 or instance=9".into()],
            expr: vec!["with('apache')".into()],
            ..FilterArgs::default()
        };
        let f = args.filter().unwrap();
        assert_eq!(
            serde_json::to_value(&f.compound).unwrap(),
            serde_json::json!([
                [{"statement": "instance=7"}, {"or": "or"}, {"statement": "instance=9"}],
                [{"expr": "with('apache')"}]
            ])
        );
        let bad = FilterArgs {
            select: vec!["a and".into()],
            ..FilterArgs::default()
        };
        assert!(bad.filter().unwrap_err().to_string().contains("--select"));
        let refused = FilterArgs {
            expr: vec!["semver('1', '2')".into()],
            ..FilterArgs::default()
        };
        assert!(refused.filter().is_err());
    }
}
