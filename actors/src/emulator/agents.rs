//! The agents of an emulated daemon: `discovery`, `rpcutil` and `emulated0..N-1`.
//!
//! - `discovery`: a payload containing `ping` gets `pong` (anything else is dropped).
//! - `rpcutil` (mcorpc): `ping` → `{"pong": <unix secs>}`; `inventory` → agents, classes,
//!   collectives, facts; `get_fact(fact)` → `{"fact","value"}`.
//! - `emulatedN` (mcorpc): `generate(size)` → `{"message": <size random alphanumeric chars>}`;
//!   `size` missing → statuscode 3, not an integer in `0..=MAX_GENERATE` → statuscode 4.
//!
//! Any other action gets statuscode 2; an mcorpc payload that is not a request object gets
//! statuscode 4.

use rand::Rng as _;
use serde_json::{json, Value};

use super::DropReason;
use crate::protocol::{
    unix_now, Facts, RpcReply, RpcRequest, STATUS_INVALID_DATA, STATUS_MISSING_DATA,
};

/// Largest `generate` size accepted (stays well below NATS's 1 MiB default payload limit
/// once base64 and JSON wrapping are added).
pub const MAX_GENERATE: u64 = 256 * 1024;

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
        if let Some(size) = request.data.get("size").and_then(Value::as_u64) {
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn rpcutil(request: &RpcRequest, node: &NodeInfo<'_>) -> RpcReply {
    match request.action.as_str() {
        "ping" => RpcReply::ok("ping", json!({ "pong": unix_now() })),
        "inventory" => RpcReply::ok(
            "inventory",
            json!({
                "agents": node.agents,
                "classes": node.classes,
                "collectives": node.collectives,
                "main_collective": node.collectives.first(),
                "facts": node.facts.as_map(),
                "data_plugins": [],
                "version": env!("CARGO_PKG_VERSION"),
            }),
        ),
        "get_fact" => match request.data.get("fact").and_then(Value::as_str) {
            Some(fact) => RpcReply::ok(
                "get_fact",
                json!({"fact": fact, "value": node.facts.get(fact)}),
            ),
            None => missing("get_fact", "fact"),
        },
        action => RpcReply::unknown_action("rpcutil", action),
    }
}

fn emulated(agent: &str, request: &RpcRequest) -> RpcReply {
    if request.action != "generate" {
        return RpcReply::unknown_action(agent, &request.action);
    }
    let Some(size) = request.data.get("size") else {
        return missing("generate", "size");
    };
    match size.as_u64().filter(|s| *s <= MAX_GENERATE) {
        Some(size) => {
            let mut message = String::new();
            push_alphanumerics(&mut message, usize::try_from(size).unwrap_or(0));
            RpcReply::ok("generate", json!({ "message": message }))
        }
        None => RpcReply {
            action: Some("generate".to_owned()),
            statuscode: STATUS_INVALID_DATA,
            statusmsg: format!("Invalid size {size}: expected an integer from 0 to {MAX_GENERATE}"),
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
        let facts = Facts::from_value(json!({"country": "mt"}));
        let collectives = vec!["mcollective".to_owned()];
        f(&NodeInfo {
            identity: "emu-1",
            agents: &agents,
            classes: &[],
            collectives: &collectives,
            facts: &facts,
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
        let missing = rpc(
            "emulated0",
            r#"{"agent":"emulated0","action":"generate","data":{}}"#,
        );
        assert_eq!(missing.statuscode, STATUS_MISSING_DATA);
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
