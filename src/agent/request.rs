//! Reading the inputs of `emulator#start` and `nats#start` (plain Rust, no I/O): each value
//! may come as JSON of its type or as a string (playbook templates and `choir rpc key=value`
//! send strings), and a refusal carries the Choria status code and a message naming the
//! input: 3 (missing data) when a required input is absent, 4 (invalid data) when it is out of
//! range or of the wrong kind.

use choir_actors::protocol::{STATUS_ABORTED, STATUS_INVALID_DATA, STATUS_MISSING_DATA};
use serde_json::Value;

/// Why an action is refused: a Choria status code and a message naming the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// One of the `STATUS_*` codes.
    pub code: u8,
    /// What is wrong.
    pub message: String,
}

impl Refusal {
    /// Status 1: the action could not be done (port in use, already running, …).
    pub fn aborted(message: impl Into<String>) -> Self {
        Self {
            code: STATUS_ABORTED,
            message: message.into(),
        }
    }

    fn missing(input: &str) -> Self {
        Self {
            code: STATUS_MISSING_DATA,
            message: format!("Missing data: {input} is required"),
        }
    }

    fn invalid(input: &str, value: &Value, expected: &str) -> Self {
        Self {
            code: STATUS_INVALID_DATA,
            message: format!("Invalid {input} {value}: expected {expected}"),
        }
    }
}

/// Limits an agent puts on what it starts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most daemons in one emulator.
    pub max_instances: u64,
}

/// Most emulated agents per daemon.
pub const MAX_AGENTS: u64 = 200;
/// Most collectives per daemon.
pub const MAX_COLLECTIVES: u64 = 100;

/// `emulator#start`, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmulatorStart {
    /// Daemons.
    pub instances: u64,
    /// Emulated agents per daemon.
    pub agents: u64,
    /// Collectives per daemon.
    pub collectives: u64,
    /// Identity prefix (default: the agent's identity).
    pub name: Option<String>,
    /// NATS servers (host:port or URLs).
    pub servers: Vec<String>,
    /// The emulator's `/debug/vars` port on 127.0.0.1.
    pub monitor: u16,
    /// Connect with TLS.
    pub tls: bool,
    /// CA, certificate and key files on the agent's host.
    pub ca: Option<String>,
    /// Client certificate.
    pub cert: Option<String>,
    /// Client key.
    pub key: Option<String>,
}

/// `nats#start`, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsStart {
    /// Client port.
    pub port: u16,
    /// Monitor port.
    pub monitor: u16,
    /// Cluster name (with `cluster_port`).
    pub cluster: Option<String>,
    /// Cluster (route) port.
    pub cluster_port: Option<u16>,
    /// Routes to the other servers (`nats://host:port`).
    pub routes: Vec<String>,
    /// JetStream on.
    pub jetstream: bool,
}

impl EmulatorStart {
    /// Reads `emulator#start`'s `data`.
    pub fn read(data: &Value, limits: Limits) -> Result<Self, Refusal> {
        let instances = required(data, "instances")
            .and_then(|v| int(v, "instances", 1, limits.max_instances))?;
        let agents = optional(data, "agents").map_or(Ok(1), |v| int(v, "agents", 0, MAX_AGENTS))?;
        let collectives = optional(data, "collectives")
            .map_or(Ok(1), |v| int(v, "collectives", 1, MAX_COLLECTIVES))?;
        let name = optional(data, "name")
            .map(|v| name(v, "name"))
            .transpose()?;
        let servers = required(data, "servers").and_then(|v| list(v, "servers"))?;
        if servers.is_empty() {
            return Err(Refusal::missing("servers"));
        }
        for server in &servers {
            server_address(server, "servers")?;
        }
        let monitor = required(data, "monitor").and_then(|v| port_input(v, "monitor"))?;
        let tls = optional(data, "tls").map_or(Ok(false), |v| boolean(v, "tls"))?;
        let file = |key: &str| optional(data, key).map(|v| path(v, key)).transpose();
        let (ca, cert, key) = (file("ca")?, file("cert")?, file("key")?);
        if cert.is_some() != key.is_some() {
            let (input, value) = if cert.is_some() {
                ("key", Value::Null)
            } else {
                ("cert", Value::Null)
            };
            return Err(Refusal::invalid(input, &value, "cert and key together"));
        }
        Ok(Self {
            instances,
            agents,
            collectives,
            name,
            servers,
            monitor,
            tls: tls || ca.is_some(),
            ca,
            cert,
            key,
        })
    }

    /// The `choir emulate` arguments for this start, daemons named `<name>-<i>`.
    pub fn args(&self, default_name: &str) -> Vec<String> {
        let mut args = vec![
            "emulate".to_owned(),
            "--instances".to_owned(),
            self.instances.to_string(),
            "--agents".to_owned(),
            self.agents.to_string(),
            "--collectives".to_owned(),
            self.collectives.to_string(),
            "--name".to_owned(),
            self.name.clone().unwrap_or_else(|| default_name.to_owned()),
            "--server".to_owned(),
            self.servers.join(","),
            "--http-port".to_owned(),
            self.monitor.to_string(),
        ];
        if self.tls {
            args.extend(["--tls".to_owned(), "--verify".to_owned()]);
        }
        for (flag, file) in [
            ("--ca", &self.ca),
            ("--cert", &self.cert),
            ("--key", &self.key),
        ] {
            if let Some(file) = file {
                args.extend([flag.to_owned(), file.clone()]);
            }
        }
        args
    }
}

impl NatsStart {
    /// Reads `nats#start`'s `data`.
    pub fn read(data: &Value) -> Result<Self, Refusal> {
        let port = required(data, "port").and_then(|v| port_input(v, "port"))?;
        let monitor = required(data, "monitor").and_then(|v| port_input(v, "monitor"))?;
        let cluster = optional(data, "cluster")
            .map(|v| name(v, "cluster"))
            .transpose()?;
        // 0 (a playbook's default) means no cluster.
        let cluster_port = optional(data, "cluster_port")
            .filter(|v| v.as_u64() != Some(0) && v.as_str().map(str::trim) != Some("0"))
            .map(|v| port_input(v, "cluster_port"))
            .transpose()?;
        let routes = optional(data, "routes").map_or(Ok(Vec::new()), |v| list(v, "routes"))?;
        for route in &routes {
            let url = url::Url::parse(route).ok();
            if !url.as_ref().is_some_and(|u| {
                matches!(u.scheme(), "nats" | "nats-route" | "tls") && u.port().is_some()
            }) {
                return Err(Refusal::invalid(
                    "routes",
                    &Value::from(route.as_str()),
                    "nats://host:port URLs",
                ));
            }
        }
        if cluster_port.is_none() && (cluster.is_some() || !routes.is_empty()) {
            return Err(Refusal::missing("cluster_port"));
        }
        let mut seen = vec![port];
        for (input, p) in [("monitor", Some(monitor)), ("cluster_port", cluster_port)] {
            if let Some(p) = p {
                if seen.contains(&p) {
                    return Err(Refusal::invalid(
                        input,
                        &Value::from(p),
                        "a port different from the other ports",
                    ));
                }
                seen.push(p);
            }
        }
        let jetstream =
            optional(data, "jetstream").map_or(Ok(false), |v| boolean(v, "jetstream"))?;
        Ok(Self {
            port,
            monitor,
            cluster,
            cluster_port,
            routes,
            jetstream,
        })
    }

    /// The ports this server listens on, each with its input's name.
    pub fn ports(&self) -> Vec<(&'static str, u16)> {
        let mut ports = vec![("port", self.port), ("monitor", self.monitor)];
        if let Some(p) = self.cluster_port {
            ports.push(("cluster_port", p));
        }
        ports
    }

    /// The nats-server arguments: listening on `bind`, named `server_name` (2.10+ needs a
    /// name in a cluster), JetStream data under `store`.
    pub fn args(&self, bind: &str, server_name: &str, store: &str) -> Vec<String> {
        let mut args = vec![
            "-a".to_owned(),
            bind.to_owned(),
            "-p".to_owned(),
            self.port.to_string(),
            "-m".to_owned(),
            self.monitor.to_string(),
            "--server_name".to_owned(),
            server_name.to_owned(),
        ];
        if let Some(cluster_port) = self.cluster_port {
            let name = self.cluster.clone().unwrap_or_else(|| "choir".to_owned());
            args.extend([
                "--cluster_name".to_owned(),
                name,
                "--cluster".to_owned(),
                format!("nats://{bind}:{cluster_port}"),
            ]);
            if !self.routes.is_empty() {
                args.extend(["--routes".to_owned(), self.routes.join(",")]);
            }
        }
        if self.jetstream {
            args.extend(["-js".to_owned(), "-sd".to_owned(), store.to_owned()]);
        }
        args
    }
}

fn optional<'a>(data: &'a Value, key: &str) -> Option<&'a Value> {
    data.get(key)
        .filter(|v| !v.is_null() && *v != &Value::String(String::new()))
}

fn required<'a>(data: &'a Value, key: &str) -> Result<&'a Value, Refusal> {
    optional(data, key).ok_or_else(|| Refusal::missing(key))
}

fn int(v: &Value, input: &str, min: u64, max: u64) -> Result<u64, Refusal> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.filter(|n| (min..=max).contains(n))
        .ok_or_else(|| Refusal::invalid(input, v, &format!("an integer from {min} to {max}")))
}

fn port_input(v: &Value, input: &str) -> Result<u16, Refusal> {
    int(v, input, 1, u64::from(u16::MAX)).map(|p| u16::try_from(p).unwrap_or(u16::MAX))
}

fn boolean(v: &Value, input: &str) -> Result<bool, Refusal> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            _ => Err(Refusal::invalid(input, v, "true or false")),
        },
        _ => Err(Refusal::invalid(input, v, "true or false")),
    }
}

fn name(v: &Value, input: &str) -> Result<String, Refusal> {
    match v.as_str() {
        Some(s)
            if !s.is_empty()
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            Ok(s.to_owned())
        }
        _ => Err(Refusal::invalid(
            input,
            v,
            "a name of letters, digits, '-', '_' and '.'",
        )),
    }
}

fn path(v: &Value, input: &str) -> Result<String, Refusal> {
    match v.as_str() {
        Some(s) if std::path::Path::new(s).is_absolute() => Ok(s.to_owned()),
        _ => Err(Refusal::invalid(input, v, "an absolute path")),
    }
}

/// A list given as a JSON array of strings or as one comma-separated string.
fn list(v: &Value, input: &str) -> Result<Vec<String>, Refusal> {
    let items: Vec<String> = match v {
        Value::String(s) => s.split(',').map(|s| s.trim().to_owned()).collect(),
        Value::Array(a) => a
            .iter()
            .map(|i| i.as_str().map(|s| s.trim().to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| Refusal::invalid(input, v, "a list of strings"))?,
        _ => return Err(Refusal::invalid(input, v, "a list of strings")),
    };
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

fn server_address(server: &str, input: &str) -> Result<(), Refusal> {
    let url = if server.contains("://") {
        server.to_owned()
    } else {
        format!("nats://{server}")
    };
    match url::Url::parse(&url) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) && u.port().is_some() => Ok(()),
        _ => Err(Refusal::invalid(
            input,
            &Value::from(server),
            "host:port or nats://host:port",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits {
        max_instances: 5000,
    };

    #[test]
    fn an_emulator_start_reads_json_or_strings() {
        let s = EmulatorStart::read(
            &json!({"instances": "750", "agents": 10, "collectives": "10",
                     "servers": "127.0.0.1:4300, 127.0.0.1:4301", "monitor": 8080}),
            LIMITS,
        )
        .unwrap();
        assert_eq!((s.instances, s.agents, s.collectives), (750, 10, 10));
        assert_eq!(s.servers, ["127.0.0.1:4300", "127.0.0.1:4301"]);
        let args = s.args("host1");
        assert_eq!(args[0], "emulate");
        assert!(args.windows(2).any(|w| w == ["--name", "host1"]));
        assert!(args
            .windows(2)
            .any(|w| w == ["--server", "127.0.0.1:4300,127.0.0.1:4301"]));
        assert!(!args.contains(&"--tls".to_owned()));
    }

    #[test]
    fn bad_emulator_inputs_get_the_right_code_naming_the_input() {
        let cases = [
            (
                json!({"servers": "a:1", "monitor": 1}),
                STATUS_MISSING_DATA,
                "instances",
            ),
            (
                json!({"instances": 0, "servers": "a:1", "monitor": 1}),
                STATUS_INVALID_DATA,
                "Invalid instances 0: expected an integer from 1 to 5000",
            ),
            (
                json!({"instances": 5001, "servers": "a:1", "monitor": 1}),
                STATUS_INVALID_DATA,
                "instances 5001",
            ),
            (
                json!({"instances": 1, "agents": 201, "servers": "a:1", "monitor": 1}),
                STATUS_INVALID_DATA,
                "agents 201",
            ),
            (
                json!({"instances": 1, "collectives": 0, "servers": "a:1", "monitor": 1}),
                STATUS_INVALID_DATA,
                "collectives 0",
            ),
            (
                json!({"instances": 1, "monitor": 1}),
                STATUS_MISSING_DATA,
                "servers",
            ),
            (
                json!({"instances": 1, "servers": "nohost", "monitor": 1}),
                STATUS_INVALID_DATA,
                "servers \"nohost\"",
            ),
            (
                json!({"instances": 1, "servers": "a:1", "monitor": 70000}),
                STATUS_INVALID_DATA,
                "monitor 70000",
            ),
            (
                json!({"instances": 1, "servers": "a:1", "monitor": 1, "name": "a b"}),
                STATUS_INVALID_DATA,
                "name \"a b\"",
            ),
            (
                json!({"instances": 1, "servers": "a:1", "monitor": 1, "ca": "rel.pem"}),
                STATUS_INVALID_DATA,
                "ca \"rel.pem\"",
            ),
            (
                json!({"instances": "many", "servers": "a:1", "monitor": 1}),
                STATUS_INVALID_DATA,
                "instances \"many\"",
            ),
        ];
        for (data, code, text) in cases {
            let r = EmulatorStart::read(&data, LIMITS).unwrap_err();
            assert_eq!(r.code, code, "{data}: {r:?}");
            assert!(r.message.contains(text), "{data}: {r:?}");
        }
    }

    #[test]
    fn a_nats_start_builds_cluster_arguments() {
        let s = NatsStart::read(&json!({
            "port": 4300, "monitor": "8300", "cluster": "load", "cluster_port": 6300,
            "routes": ["nats://127.0.0.1:6301", "nats://127.0.0.1:6302"], "jetstream": "true"
        }))
        .unwrap();
        assert_eq!(
            s.ports(),
            [("port", 4300), ("monitor", 8300), ("cluster_port", 6300)]
        );
        let args = s.args("127.0.0.1", "host1", "/state/js");
        let joined = args.join(" ");
        assert!(
            joined.starts_with("-a 127.0.0.1 -p 4300 -m 8300 --server_name host1"),
            "{joined}"
        );
        assert!(joined.contains("--cluster_name load --cluster nats://127.0.0.1:6300"));
        assert!(joined.contains("--routes nats://127.0.0.1:6301,nats://127.0.0.1:6302"));
        assert!(joined.ends_with("-js -sd /state/js"));
        let single =
            NatsStart::read(&json!({"port": 4222, "monitor": 8222, "cluster_port": 0})).unwrap();
        assert_eq!(
            single.args("0.0.0.0", "h", "/s").join(" "),
            "-a 0.0.0.0 -p 4222 -m 8222 --server_name h"
        );
    }

    #[test]
    fn bad_nats_inputs_get_the_right_code_naming_the_input() {
        let cases = [
            (
                json!({"monitor": 8222}),
                STATUS_MISSING_DATA,
                "port is required",
            ),
            (
                json!({"port": 0, "monitor": 8222}),
                STATUS_INVALID_DATA,
                "port 0",
            ),
            (
                json!({"port": 4222, "monitor": 4222}),
                STATUS_INVALID_DATA,
                "monitor 4222",
            ),
            (
                json!({"port": 4222, "monitor": 8222, "routes": "nats://a:1"}),
                STATUS_MISSING_DATA,
                "cluster_port",
            ),
            (
                json!({"port": 4222, "monitor": 8222, "cluster_port": 6222, "routes": "a b"}),
                STATUS_INVALID_DATA,
                "routes \"a b\"",
            ),
            (
                json!({"port": 4222, "monitor": 8222, "jetstream": "perhaps"}),
                STATUS_INVALID_DATA,
                "jetstream \"perhaps\"",
            ),
        ];
        for (data, code, text) in cases {
            let r = NatsStart::read(&data).unwrap_err();
            assert_eq!(r.code, code, "{data}: {r:?}");
            assert!(r.message.contains(text), "{data}: {r:?}");
        }
    }
}
