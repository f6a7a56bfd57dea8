//! Flags shared by `ping`, `rpc` and `measure`: connection and node filters.

use choir_actors::client::ClientOptions;
use choir_actors::protocol::{parse_select, CompiledCompound, FactFilter, Filter};

use super::ClientCliError;

/// Where and as whom to connect.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// NATS server URL; repeat (or comma-separate) for a pool.
    #[arg(
        long = "server",
        short = 's',
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    pub servers: Vec<String>,
    /// The collective requests go to.
    #[arg(long, default_value = "mcollective")]
    pub collective: String,
    /// Publish through the federation brokers of these clusters
    /// (`choria.federation.<cluster>.federation`); comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub federation: Vec<String>,
    /// The caller id (default `choria=<user>.mcollective`).
    #[arg(long)]
    pub callerid: Option<String>,
}

impl ConnectArgs {
    /// The client options these flags describe.
    pub fn options(&self) -> ClientOptions {
        let server = self.servers.first().cloned().unwrap_or_default();
        let mut options = ClientOptions::new(self.collective.clone(), server);
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
pub fn parse_fact(text: &str) -> Result<FactFilter, ClientCliError> {
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
