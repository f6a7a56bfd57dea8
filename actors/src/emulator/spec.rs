//! [`FleetSpec`]: what a fleet of emulated daemons is made of.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::connection::NetworkSettings;

/// How daemons reach NATS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnectionMode {
    /// One NATS connection per daemon, as real Choria servers have (the default).
    #[default]
    Dedicated,
    /// Many daemons multiplexed over a few connections: fits fleets larger than the open-file
    /// limit, but the broker sees fewer connections and subscriptions than a real fleet makes.
    Shared,
}

impl ConnectionMode {
    /// `dedicated` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dedicated => "dedicated",
            Self::Shared => "shared",
        }
    }
}

/// Periodic registration publishing.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistrationSpec {
    /// Time between two registrations of one daemon.
    pub interval: Duration,
    /// Wait a random time up to `interval` before the first one (spreads the fleet).
    pub splay: bool,
    /// Subject to publish to; `None` = `<first collective>.broadcast.agent.registration`.
    pub subject: Option<String>,
}

/// Everything a fleet is made of.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    /// Identity prefix: daemon `i` is `<name>-<i>`.
    pub name: String,
    /// Number of daemons.
    pub instances: usize,
    /// Number of emulated agents (`emulated0..N-1`), on top of `discovery` and `rpcutil`.
    pub agents: usize,
    /// Number of collectives: `mcollective`, `collective1`, … `collective{N-1}`.
    pub collectives: NonZeroUsize,
    /// Servers (`urls`, round-robin over daemons), credentials, TLS, timeouts and
    /// subscription capacity.
    pub network: NetworkSettings,
    /// Dedicated or shared connections.
    pub mode: ConnectionMode,
    /// Connections in shared mode.
    pub shared_connections: NonZeroUsize,
    /// Connects in flight at once while the fleet starts.
    pub connect_concurrency: NonZeroUsize,
    /// Arbiters (threads) the daemons are spread over; `None` = one per core.
    pub arbiters: Option<NonZeroUsize>,
    /// Facts every daemon has; string values may contain `{instance}` and `{identity}`.
    /// `instance`, `identity` and `fqdn` are always added.
    pub facts: Map<String, Value>,
    /// Configuration management classes every daemon reports.
    pub classes: Vec<String>,
    /// Every fact as a string (numbers and booleans as their text, `null` as `""`, inside
    /// lists and objects too), for MCollective 2.12 Ruby clients, which expect strings.
    pub string_facts: bool,
    /// Registration publishing, if any.
    pub registration: Option<RegistrationSpec>,
    /// Audit log file, if any.
    pub audit: Option<PathBuf>,
    /// Time between two keep-alive `PING`s of a wire daemon; after
    /// [`MAX_PINGS_OUT`](super::keepalive::MAX_PINGS_OUT) unanswered ones it reconnects.
    pub ping_interval: Duration,
    /// Verify every request against this policy and answer only trusted ones (a secure
    /// emulator); `None` answers insecure and signed requests alike.
    pub secure: Option<crate::protocol::security::SecurityPolicy>,
}

impl FleetSpec {
    /// A spec for `instances` daemons named `<name>-<i>` on `urls`, 1 agent, 1 collective,
    /// dedicated connections, everything else at its default.
    pub fn new(name: impl Into<String>, instances: usize, urls: Vec<String>) -> Self {
        let one = NonZeroUsize::MIN;
        let mut network = NetworkSettings::new("emulator", urls);
        network.subscription_capacity = NonZeroUsize::new(1024).unwrap_or(one);
        Self {
            name: name.into(),
            instances,
            agents: 1,
            collectives: one,
            network,
            mode: ConnectionMode::Dedicated,
            shared_connections: NonZeroUsize::new(4).unwrap_or(one),
            connect_concurrency: NonZeroUsize::new(64).unwrap_or(one),
            arbiters: None,
            facts: Map::new(),
            classes: Vec::new(),
            string_facts: false,
            registration: None,
            audit: None,
            ping_interval: super::keepalive::DEFAULT_PING_INTERVAL,
            secure: None,
        }
    }

    /// The collective names: `mcollective` then `collective1..`.
    pub fn collective_names(&self) -> Vec<String> {
        collective_names(self.collectives.get())
    }

    /// The agent names: `discovery`, `rpcutil`, `emulated0..`.
    pub fn agent_names(&self) -> Vec<String> {
        let mut agents = vec!["discovery".to_owned(), "rpcutil".to_owned()];
        agents.extend((0..self.agents).map(|i| format!("emulated{i}")));
        agents
    }

    /// The identity of daemon `i`.
    pub fn identity(&self, i: usize) -> String {
        format!("{}-{i}", self.name)
    }

    /// The facts of daemon `i`: the configured ones with `{instance}`/`{identity}` expanded,
    /// plus `instance`, `identity` and `fqdn`.
    pub fn facts_of(&self, i: usize) -> Map<String, Value> {
        let identity = self.identity(i);
        let mut facts: Map<String, Value> = self
            .facts
            .iter()
            .map(|(k, v)| (k.clone(), expand(v, i, &identity)))
            .collect();
        facts.insert("instance".to_owned(), Value::from(i));
        facts.insert("fqdn".to_owned(), Value::from(identity.clone()));
        facts.insert("identity".to_owned(), Value::from(identity));
        if self.string_facts {
            for value in facts.values_mut() {
                stringify(value);
            }
        }
        facts
    }

    /// Subscriptions one dedicated daemon makes: collectives × (agents + node subject).
    pub fn subscriptions_per_daemon(&self) -> usize {
        self.collectives.get() * (self.agent_names().len() + 1)
    }
}

/// `mcollective`, `collective1`, … (`n` names).
pub fn collective_names(n: usize) -> Vec<String> {
    (0..n.max(1))
        .map(|i| {
            if i == 0 {
                "mcollective".to_owned()
            } else {
                format!("collective{i}")
            }
        })
        .collect()
}

/// Turns every scalar in `value` into its text.
fn stringify(value: &mut Value) {
    match value {
        Value::String(_) => {}
        Value::Null => *value = Value::String(String::new()),
        Value::Bool(b) => *value = Value::String(b.to_string()),
        Value::Number(n) => *value = Value::String(n.to_string()),
        Value::Array(items) => items.iter_mut().for_each(stringify),
        Value::Object(map) => map.values_mut().for_each(stringify),
    }
}

fn expand(value: &Value, i: usize, identity: &str) -> Value {
    match value {
        Value::String(s) if s.contains('{') => Value::String(
            s.replace("{instance}", &i.to_string())
                .replace("{identity}", identity),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_facts() {
        let mut spec = FleetSpec::new("emu", 3, vec!["nats://127.0.0.1:4222".into()]);
        spec.agents = 2;
        spec.collectives = NonZeroUsize::new(3).unwrap();
        spec.facts
            .insert("rack".into(), json!("r{instance}-{identity}"));
        spec.facts.insert("cores".into(), json!(4));
        assert_eq!(
            spec.collective_names(),
            ["mcollective", "collective1", "collective2"]
        );
        assert_eq!(
            spec.agent_names(),
            ["discovery", "rpcutil", "emulated0", "emulated1"]
        );
        assert_eq!(spec.identity(2), "emu-2");
        let facts = spec.facts_of(2);
        assert_eq!(facts["rack"], "r2-emu-2");
        assert_eq!(facts["cores"], 4);
        assert_eq!(facts["instance"], 2);
        assert_eq!(facts["fqdn"], "emu-2");
        assert_eq!(spec.subscriptions_per_daemon(), 3 * 5);
    }

    #[test]
    fn string_facts_are_all_strings() {
        let mut spec = FleetSpec::new("emu", 3, vec![]);
        spec.facts.insert("cores".into(), json!(4));
        spec.facts.insert(
            "os".into(),
            json!({"virtual": true, "ips": [1, null], "name": "x"}),
        );
        spec.string_facts = true;
        let facts = spec.facts_of(2);
        assert_eq!(facts["cores"], "4");
        assert_eq!(facts["instance"], "2");
        assert_eq!(
            facts["os"],
            json!({"virtual": "true", "ips": ["1", ""], "name": "x"})
        );
    }
}
