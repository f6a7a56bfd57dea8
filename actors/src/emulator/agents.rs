//! The agents of an emulated daemon: `discovery`, `rpcutil` and `emulated0..N-1`.
//!
//! - `discovery`: a payload containing `ping` gets `pong` (anything else is dropped).
//! - `rpcutil` (mcorpc), with the outputs of go-choria's rpcutil DDL: `ping` →
//!   `{"pong"}`; `inventory` → `{"agents","classes","collectives","data_plugins","facts",
//!   "machines","main_collective","version","upgradable"}`; `agent_inventory` →
//!   `{"agents": [{"agent","name","version","author","license","timeout","url",
//!   "description"}]}`; `collective_info` → `{"main_collective","collectives"}`;
//!   `daemon_stats` → the daemon's own counters ([`DaemonStats`]) with `agents`, `pid`,
//!   `threads`, `times`, `starttime`, `configfile`, `version`, `events`; `get_fact(fact)` →
//!   `{"fact","value"}` (`null` for a missing fact); `get_facts(facts)` (comma-separated) →
//!   `{"values": {fact: value}}`; `get_config_item(item)` → `{"item","value"}` for
//!   `identity`, `main_collective`, `collectives`, `classes` and
//!   `plugin.choria.middleware_hosts`, statuscode 1 `Unknown key` otherwise;
//!   `get_data(source)` → statuscode 1 `Unknown data plugin` (no data plugins are emulated).
//!   A missing input gets statuscode 3, an input that is not a string statuscode 4.
//! - `emulatedN` (mcorpc): `generate(size)` → `{"message": <size random alphanumeric chars>}`;
//!   `size` missing → 20 (the agent's DDL default), not an integer in `0..=MAX_GENERATE` →
//!   statuscode 4.
//!
//! Any other action gets statuscode 2; an mcorpc payload that is not a request object gets
//! statuscode 4.

use rand::Rng as _;
use serde_json::{json, Value};

use super::daemon_stats::DaemonStats;
use super::DropReason;
use crate::protocol::{
    unix_now, Facts, RpcReply, RpcRequest, STATUS_ABORTED, STATUS_INVALID_DATA, STATUS_MISSING_DATA,
};

/// Largest `generate` size accepted (stays well below NATS's 1 MiB default payload limit
/// once base64 and JSON wrapping are added).
pub const MAX_GENERATE: u64 = 256 * 1024;

/// `generate`'s `size` when the request has none (the emulated agent's DDL default).
pub const DEFAULT_GENERATE: u64 = 20;

/// Version of the emulated `emulatedN` agents (the choria-emulator agent's DDL version).
pub const EMULATED_AGENT_VERSION: &str = "0.0.1";

/// What a daemon knows about itself, as the agents see it.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo<'a> {
    /// The identity.
    pub identity: &'a str,
    /// The agents it runs.
    pub agents: &'a [String],
    /// Its classes.
    pub classes: &'a [String],
    /// Its collectives, the main one first.
    pub collectives: &'a [String],
    /// Its facts.
    pub facts: &'a Facts,
    /// What it saw so far.
    pub stats: &'a DaemonStats,
    /// The server it is connected to.
    pub server: &'a str,
}

/// What an agent made of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentOutcome {
    /// Answer with this reply `message`; `rpc` is the mcorpc request that was handled (what
    /// the audit log records), `None` for non-mcorpc agents such as `discovery`.
    Reply {
        /// The reply body (mcorpc reply JSON text, or `pong`).
        body: String,
        /// The mcorpc request handled.
        rpc: Option<RpcRequest>,
    },
    /// Do not answer.
    NoReply(DropReason),
}

/// A request's agent payload, parsed once and shared by every daemon that answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInput {
    /// The request `message` as received.
    raw: String,
    /// The agent payload (see [`decode_agent_payload`](crate::protocol::decode_agent_payload)).
    payload: Vec<u8>,
    /// The payload as an mcorpc request, or why it is not one.
    rpc: Result<RpcRequest, String>,
}

impl AgentInput {
    /// Parses `payload`, the agent payload of a request whose `message` was `raw`.
    pub fn new(raw: &str, payload: &[u8]) -> Self {
        Self {
            raw: raw.to_owned(),
            payload: payload.to_vec(),
            rpc: RpcRequest::from_slice(payload).map_err(|e| e.to_string()),
        }
    }

    /// The mcorpc request, if the payload is one.
    pub fn rpc(&self) -> Option<&RpcRequest> {
        self.rpc.as_ref().ok()
    }
}

/// Runs `agent` on `payload`, the agent payload of a request as
/// [`decode_agent_payload`](crate::protocol::decode_agent_payload) gives it; `raw` is the
/// request `message` as received (`ping` is itself valid base64, so `discovery` looks at both).
pub fn dispatch(agent: &str, raw: &str, payload: &[u8], node: &NodeInfo<'_>) -> AgentOutcome {
    let input = AgentInput::new(raw, payload);
    match answer(agent, &input, node) {
        Ok(body) => AgentOutcome::Reply {
            body,
            rpc: if agent == "discovery" {
                None
            } else {
                input.rpc.ok()
            },
        },
        Err(reason) => AgentOutcome::NoReply(reason),
    }
}

/// The reply body of `agent` to `input` on `node`, or why there is none (what [`dispatch`]
/// does, with the payload parsed once for all daemons).
pub fn answer(agent: &str, input: &AgentInput, node: &NodeInfo<'_>) -> Result<String, DropReason> {
    if !node.agents.iter().any(|a| a == agent) {
        return Err(DropReason::UnknownAgent);
    }
    if agent == "discovery" {
        return if contains(&input.payload, b"ping") || input.raw.contains("ping") {
            Ok("pong".to_owned())
        } else {
            Err(DropReason::BadPayload)
        };
    }
    let request = match &input.rpc {
        Ok(request) => request,
        Err(e) => {
            let reply = RpcReply {
                action: None,
                statuscode: STATUS_INVALID_DATA,
                statusmsg: format!("Invalid request: {e}"),
                data: json!({}),
            };
            return reply.to_json().map_err(|_| DropReason::Encode);
        }
    };
    if agent != "rpcutil" && request.action == "generate" {
        if let Some(size) = generate_size(&request.data) {
            if size <= MAX_GENERATE {
                return Ok(generated(usize::try_from(size).unwrap_or(0)));
            }
        }
    }
    let reply = match agent {
        "rpcutil" => rpcutil(request, node),
        _ => emulated(agent, request),
    };
    reply.to_json().map_err(|_| DropReason::Encode)
}

/// The reply body of a valid `generate(size)`, written directly: exactly
/// `RpcReply::ok("generate", json!({"message": <size random alphanumerics>})).to_json()`.
fn generated(size: usize) -> String {
    const PREFIX: &str =
        r#"{"action":"generate","statuscode":0,"statusmsg":"OK","data":{"message":""#;
    const SUFFIX: &str = r#""}}"#;
    let mut body = String::with_capacity(PREFIX.len() + size + SUFFIX.len());
    body.push_str(PREFIX);
    push_alphanumerics(&mut body, size);
    body.push_str(SUFFIX);
    body
}

/// Appends `n` random ASCII letters and digits (from random bytes, 64 at a time).
fn push_alphanumerics(out: &mut String, n: usize) {
    const CHARSET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut bytes = [0u8; 64];
    let mut left = n;
    while left > 0 {
        let take = left.min(bytes.len());
        rng.fill(&mut bytes[..take]);
        out.extend(
            bytes[..take]
                .iter()
                .map(|b| char::from(CHARSET[usize::from(*b) % CHARSET.len()])),
        );
        left -= take;
    }
}

/// `generate`'s size: the `size` input, or the default when it is absent or `null`; `None`
/// when it is not a non-negative integer.
fn generate_size(data: &Value) -> Option<u64> {
    match data.get("size") {
        None | Some(Value::Null) => Some(DEFAULT_GENERATE),
        Some(size) => size.as_u64(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn rpcutil(request: &RpcRequest, node: &NodeInfo<'_>) -> RpcReply {
    let action = request.action.as_str();
    match action {
        "ping" => RpcReply::ok("ping", json!({ "pong": unix_now() })),
        "inventory" => RpcReply::ok(
            "inventory",
            json!({
                "agents": node.agents,
                "classes": node.classes,
                "collectives": node.collectives,
                "data_plugins": [],
                "facts": node.facts.as_map(),
                // The DDL's type (go-choria's server sends a list, which its own generated
                // client cannot read as the hash the DDL declares).
                "machines": {},
                "main_collective": main_collective(node),
                "version": env!("CARGO_PKG_VERSION"),
                "upgradable": false,
            }),
        ),
        "agent_inventory" => RpcReply::ok(
            "agent_inventory",
            json!({ "agents": node.agents.iter().map(|a| agent_metadata(a)).collect::<Vec<_>>() }),
        ),
        "collective_info" => RpcReply::ok(
            "collective_info",
            json!({
                "main_collective": main_collective(node),
                "collectives": node.collectives,
            }),
        ),
        "daemon_stats" => RpcReply::ok("daemon_stats", daemon_stats(node)),
        "get_fact" => match string_input(request, "fact") {
            Ok(fact) => RpcReply::ok(
                "get_fact",
                json!({"fact": fact, "value": node.facts.get(fact)}),
            ),
            Err(reply) => reply,
        },
        "get_facts" => match string_input(request, "facts") {
            Ok(facts) => {
                let values: serde_json::Map<String, Value> = facts
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(|f| {
                        (
                            f.to_owned(),
                            node.facts.get(f).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                RpcReply::ok("get_facts", json!({ "values": values }))
            }
            Err(reply) => reply,
        },
        "get_config_item" => match string_input(request, "item") {
            Ok(item) => match config_item(item, node) {
                Some(value) => {
                    RpcReply::ok("get_config_item", json!({"item": item, "value": value}))
                }
                None => aborted("get_config_item", "Unknown key"),
            },
            Err(reply) => reply,
        },
        "get_data" => match string_input(request, "source") {
            Ok(_) => aborted("get_data", "Unknown data plugin"),
            Err(reply) => reply,
        },
        action => RpcReply::unknown_action("rpcutil", action),
    }
}

fn main_collective<'a>(node: &NodeInfo<'a>) -> &'a str {
    node.collectives.first().map_or("", String::as_str)
}

/// `daemon_stats`: the DDL's outputs, with the daemon's own counters.
fn daemon_stats(node: &NodeInfo<'_>) -> Value {
    let s = node.stats.snapshot();
    json!({
        "agents": node.agents,
        "configfile": "",
        "filtered": s.filtered,
        "passed": s.passed,
        "pid": std::process::id(),
        "replies": s.replies,
        "starttime": s.start_time,
        "threads": [format!("choir {} emulated daemon {}", env!("CARGO_PKG_VERSION"), node.identity)],
        "times": {"cstime": 0, "cutime": 0, "stime": 0, "utime": 0},
        "total": s.total,
        "ttlexpired": s.ttl_expired,
        "unvalidated": s.unvalidated,
        "validated": s.validated,
        "version": env!("CARGO_PKG_VERSION"),
        "events": 0,
    })
}

/// One `agent_inventory` entry: the agent's name and its metadata.
fn agent_metadata(agent: &str) -> Value {
    let (version, description, timeout) = match agent {
        "rpcutil" => (
            env!("CARGO_PKG_VERSION"),
            "Choria RPC Utilities (emulated by choir)",
            2,
        ),
        "discovery" => (
            env!("CARGO_PKG_VERSION"),
            "Discovery Agent (emulated by choir)",
            2,
        ),
        _ => (
            EMULATED_AGENT_VERSION,
            "Choria Agent emulated by choir",
            120,
        ),
    };
    json!({
        "agent": agent,
        "name": agent,
        "version": version,
        "author": "choir",
        "license": "Apache-2.0",
        "timeout": timeout,
        "url": "https://choria.io",
        "description": description,
    })
}

/// The configuration items `get_config_item` knows.
fn config_item(item: &str, node: &NodeInfo<'_>) -> Option<Value> {
    Some(match item {
        "identity" => Value::from(node.identity),
        "main_collective" => Value::from(main_collective(node)),
        "collectives" => Value::from(node.collectives.join(",")),
        "classes" => Value::from(node.classes.join(",")),
        "plugin.choria.middleware_hosts" => Value::from(node.server),
        _ => return None,
    })
}

/// A required string input, or the reply that refuses the request (statuscode 3 when it is
/// missing, 4 when it is not a string).
fn string_input<'a>(request: &'a RpcRequest, input: &str) -> Result<&'a str, RpcReply> {
    match request.data.get(input) {
        None | Some(Value::Null) => Err(missing(&request.action, input)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(RpcReply {
            action: Some(request.action.clone()),
            statuscode: STATUS_INVALID_DATA,
            statusmsg: format!("Invalid {input} {other}: expected a string"),
            data: json!({}),
        }),
    }
}

fn aborted(action: &str, message: &str) -> RpcReply {
    RpcReply {
        action: Some(action.to_owned()),
        statuscode: STATUS_ABORTED,
        statusmsg: message.to_owned(),
        data: json!({}),
    }
}

fn emulated(agent: &str, request: &RpcRequest) -> RpcReply {
    if request.action != "generate" {
        return RpcReply::unknown_action(agent, &request.action);
    }
    match generate_size(&request.data).filter(|s| *s <= MAX_GENERATE) {
        Some(size) => {
            let mut message = String::new();
            push_alphanumerics(&mut message, usize::try_from(size).unwrap_or(0));
            RpcReply::ok("generate", json!({ "message": message }))
        }
        None => RpcReply {
            action: Some("generate".to_owned()),
            statuscode: STATUS_INVALID_DATA,
            statusmsg: format!(
                "Invalid size {}: expected an integer from 0 to {MAX_GENERATE}",
                request.data.get("size").unwrap_or(&Value::Null)
            ),
            data: json!({}),
        },
    }
}

fn missing(action: &str, input: &str) -> RpcReply {
    RpcReply {
        action: Some(action.to_owned()),
        statuscode: STATUS_MISSING_DATA,
        statusmsg: format!("Missing data: {input} is required"),
        data: json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{STATUS_OK, STATUS_UNKNOWN_ACTION};

    fn with_node<T>(f: impl FnOnce(&NodeInfo<'_>) -> T) -> T {
        let agents: Vec<String> = ["discovery", "rpcutil", "emulated0"]
            .map(String::from)
            .to_vec();
        let facts = Facts::from_value(json!({"country": "mt", "cores": 4}));
        let collectives = vec!["mcollective".to_owned(), "collective1".to_owned()];
        let stats = DaemonStats::default();
        f(&NodeInfo {
            identity: "emu-1",
            agents: &agents,
            classes: &[],
            collectives: &collectives,
            facts: &facts,
            stats: &stats,
            server: "nats://127.0.0.1:4222",
        })
    }

    fn rpc(agent: &str, payload: &str) -> RpcReply {
        with_node(|n| match dispatch(agent, payload, payload.as_bytes(), n) {
            AgentOutcome::Reply { body, .. } => RpcReply::from_slice(body.as_bytes()).unwrap(),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn discovery() {
        with_node(|n| {
            assert!(matches!(
                dispatch("discovery", "ping", b"\xa6\x29\xe0", n),
                AgentOutcome::Reply { body, rpc: None } if body == "pong"
            ));
            assert_eq!(
                dispatch("discovery", "hello", b"hello", n),
                AgentOutcome::NoReply(DropReason::BadPayload)
            );
            assert_eq!(
                dispatch("puppet", "ping", b"ping", n),
                AgentOutcome::NoReply(DropReason::UnknownAgent)
            );
        });
    }

    #[test]
    fn generate() {
        let r = rpc(
            "emulated0",
            r#"{"agent":"emulated0","action":"generate","data":{"size":100}}"#,
        );
        assert_eq!(r.statuscode, STATUS_OK);
        let message = r.data["message"].as_str().unwrap();
        assert_eq!(message.len(), 100);
        assert!(message.chars().all(|c| c.is_ascii_alphanumeric()));
        for no_size in [r#"{}"#, r#"{"size":null}"#, r#"{"process_results":true}"#] {
            let payload =
                format!(r#"{{"agent":"emulated0","action":"generate","data":{no_size}}}"#);
            let r = rpc("emulated0", &payload);
            assert_eq!(r.statuscode, STATUS_OK, "{no_size}");
            assert_eq!(r.data["message"].as_str().unwrap().len(), 20, "{no_size}");
        }
        for bad in [r#""x""#, "-1", "1.5", "100000000"] {
            let payload =
                format!(r#"{{"agent":"emulated0","action":"generate","data":{{"size":{bad}}}}}"#);
            assert_eq!(rpc("emulated0", &payload).statuscode, STATUS_INVALID_DATA);
        }
        let unknown = rpc(
            "emulated0",
            r#"{"agent":"emulated0","action":"nope","data":{}}"#,
        );
        assert_eq!(unknown.statuscode, STATUS_UNKNOWN_ACTION);
        assert_eq!(
            rpc("emulated0", "{not json").statuscode,
            STATUS_INVALID_DATA
        );
    }

    #[test]
    fn generated_body_is_what_serde_writes() {
        for size in [0, 1, 63, 64, 65, 100, 1000] {
            let body = generated(size);
            let rpc = RpcReply::from_slice(body.as_bytes()).unwrap();
            assert_eq!(rpc.to_json().unwrap(), body);
            let message = rpc.data["message"].as_str().unwrap();
            assert_eq!(message.len(), size);
            assert!(message.chars().all(|c| c.is_ascii_alphanumeric()));
        }
        assert_ne!(generated(32), generated(32));
    }

    #[test]
    fn rpcutil_actions() {
        let ping = rpc(
            "rpcutil",
            r#"{"agent":"rpcutil","action":"ping","data":{}}"#,
        );
        assert!(ping.data["pong"].as_i64().unwrap() > 1_600_000_000);
        let inv = rpc(
            "rpcutil",
            r#"{"agent":"rpcutil","action":"inventory","data":{}}"#,
        );
        assert_eq!(inv.data["facts"]["country"], "mt");
        assert_eq!(inv.data["main_collective"], "mcollective");
        assert_eq!(inv.data["agents"][2], "emulated0");
        let fact = rpc(
            "rpcutil",
            r#"{"agent":"rpcutil","action":"get_fact","data":{"fact":"country"}}"#,
        );
        assert_eq!(fact.data["value"], "mt");
        let none = rpc(
            "rpcutil",
            r#"{"agent":"rpcutil","action":"get_fact","data":{}}"#,
        );
        assert_eq!(none.statuscode, STATUS_MISSING_DATA);
    }
}
