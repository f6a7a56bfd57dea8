//! [`EmulatedNode`]: the plain-Rust core of one emulated daemon.
//!
//! A message becomes at most one reply in two steps, so that a request reaching thousands of
//! daemons of one process is decoded once and answered by each:
//!
//! 1. [`Prepared::decode`] (once per distinct payload, see
//!    [`RequestCache`](super::RequestCache)): transport → secure request → request, the agent
//!    payload parsed, the reply headers rendered; [`Incoming::new`] (per message): TTL window,
//!    `reply-to`, subject collective = envelope collective;
//! 2. [`EmulatedNode::respond`]: collective membership → filter → agent → reply encoded
//!    through the onion ([`ReplyEncoder`]), addressed to the request's `reply-to`, federation
//!    header copied and a `seen-by` hop added.
//!
//! [`EmulatedNode::handle`] chains both. Every refusal is a [`DropReason`]; nothing panics.

use std::sync::Arc;
use std::time::SystemTime;

use async_nats::Subject;

use super::agents::{answer, AgentInput, NodeInfo};
use super::audit::AuditRecord;
use super::daemon_stats::DaemonStats;
use super::DropReason;
use crate::protocol::{
    classify_subject, decode_request_unchecked_ttl, unix_now, CompiledCompound, CompoundError,
    DecodedRequest, Facts, FilterOutcome, NodeView, ProtocolError, ReplyEncoder, ReplyFields,
    ReplyHeadersTemplate, SubjectKind,
};

/// What every daemon of a fleet shares: agents, classes, collectives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProfile {
    /// Agent names (`discovery`, `rpcutil`, `emulated0..`).
    pub agents: Vec<String>,
    /// Configuration management classes.
    pub classes: Vec<String>,
    /// Collectives, the main one first.
    pub collectives: Vec<String>,
    /// Verification of secure requests (a secure emulator); `None` answers any request.
    pub security: Option<super::security::FleetSecurity>,
}

/// Where a request was addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `<collective>.broadcast.agent.<agent>`.
    Broadcast,
    /// `<collective>.node.<identity>`.
    Node(String),
    /// Any other subject (a custom registration or test subject): treated as broadcast.
    Other,
}

/// A request payload decoded once, with everything its replies share: the parsed agent
/// payload, the reply subject and the reply headers. Independent of the subject it arrived
/// on and of the time.
#[derive(Debug)]
pub struct Prepared {
    /// Every layer of the request.
    pub decoded: DecodedRequest,
    /// The agent payload, parsed.
    pub input: AgentInput,
    /// The `reply-to` subject, if any.
    pub reply_subject: Option<Subject>,
    /// The reply transport headers taken from the request.
    pub headers: ReplyHeadersTemplate,
    /// The filter's compound part, compiled once for every daemon.
    pub compound: Result<CompiledCompound, CompoundError>,
    /// SHA-256 of the secure request (message, signature, pubcert): the key of its
    /// verification verdict (see [`RequestSecurity`](super::security::RequestSecurity)).
    pub secure_digest: [u8; 32],
}

impl Prepared {
    /// Decodes request `payload` (structure only: no TTL window, no `reply-to` check).
    pub fn decode(payload: &[u8]) -> Result<Self, DropReason> {
        let decoded = decode_request_unchecked_ttl(payload).map_err(|e| match e {
            ProtocolError::Json { .. } => DropReason::Json,
            ProtocolError::Base64(_) => DropReason::Base64,
            ProtocolError::Expired { .. } => DropReason::Expired,
            _ => DropReason::Invalid,
        })?;
        let input = AgentInput::new(&decoded.request.message, &decoded.payload());
        let reply_subject = decoded
            .reply_to()
            .filter(|s| !s.is_empty())
            .map(Subject::from);
        let headers =
            ReplyHeadersTemplate::for_request_payload(payload, &decoded.transport.headers)
                .map_err(|_| DropReason::Encode)?;
        let compound = decoded.request.envelope.filter.compile_compound();
        let secure_digest = secure_digest(&decoded);
        Ok(Self {
            decoded,
            input,
            reply_subject,
            headers,
            compound,
            secure_digest,
        })
    }
}

/// SHA-256 over the secure request's message, signature and pubcert, each length-prefixed.
fn secure_digest(decoded: &DecodedRequest) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let secure = &decoded.secure;
    let mut hasher = Sha256::new();
    for part in [&secure.message, &secure.signature, &secure.pubcert] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// A request checked for one message, ready for any number of daemons to answer.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The decoded request.
    pub prepared: Arc<Prepared>,
    /// Where it was addressed.
    pub target: Target,
}

impl Incoming {
    /// Decodes `payload` received on `subject` and checks it at `now` (see [`Incoming::new`]).
    pub fn decode(subject: &str, payload: &[u8], now: i64) -> Result<Self, DropReason> {
        Self::new(subject, Arc::new(Prepared::decode(payload)?), now)
    }

    /// Checks what does not depend on the daemon for a `prepared` request received on
    /// `subject`: TTL window against `now`, a `reply-to`, and that the envelope's collective
    /// is the subject's.
    pub fn new(subject: &str, prepared: Arc<Prepared>, now: i64) -> Result<Self, DropReason> {
        let request = &prepared.decoded.request;
        request.check_ttl(now).map_err(|_| DropReason::Expired)?;
        if prepared.reply_subject.is_none() {
            return Err(DropReason::NoReplyTo);
        }
        let collective = request.envelope.collective.as_str();
        let target = match classify_subject(subject) {
            SubjectKind::Broadcast { collective: c, .. } if c != collective => {
                return Err(DropReason::WrongCollective)
            }
            SubjectKind::Node { collective: c, .. } if c != collective => {
                return Err(DropReason::WrongCollective)
            }
            SubjectKind::Broadcast { .. } => Target::Broadcast,
            SubjectKind::Node { identity, .. } => Target::Node(identity.to_owned()),
            _ => Target::Other,
        };
        Ok(Self { prepared, target })
    }

    /// Every layer of the request.
    pub fn decoded(&self) -> &DecodedRequest {
        &self.prepared.decoded
    }
}

/// A reply ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The request's `reply-to`.
    pub subject: Subject,
    /// The encoded reply transport.
    pub payload: Vec<u8>,
    /// The audit line, for mcorpc requests when auditing is on.
    pub audit: Option<AuditRecord>,
}

/// The result of handling one message.
pub type Handled = Result<Outgoing, DropReason>;

/// One emulated daemon: identity, facts, and the fleet's shared profile.
#[derive(Debug, Clone)]
pub struct EmulatedNode {
    identity: String,
    facts: Facts,
    profile: Arc<NodeProfile>,
    server: Arc<str>,
    stats: Arc<DaemonStats>,
}

impl EmulatedNode {
    /// A daemon `identity` with `facts`, connected to `server` (used in its `seen-by` hops).
    pub fn new(
        identity: String,
        facts: Facts,
        profile: Arc<NodeProfile>,
        server: Arc<str>,
    ) -> Self {
        Self {
            identity,
            facts,
            profile,
            server,
            stats: Arc::default(),
        }
    }

    /// What the daemon saw so far (`rpcutil#daemon_stats`).
    pub fn stats(&self) -> &DaemonStats {
        &self.stats
    }

    /// Counts one message this daemon handled, with its outcome (callers call it once per
    /// message and daemon, after [`EmulatedNode::respond`] or a refusal before it).
    pub fn record(&self, handled: &Handled) {
        self.stats.record(handled);
    }

    /// The identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The facts.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// The shared profile.
    pub fn profile(&self) -> &NodeProfile {
        &self.profile
    }

    /// The subjects a real daemon subscribes: `<c>.broadcast.agent.<a>` for every collective
    /// × agent, and `<c>.node.<identity>` for every collective.
    pub fn subjects(&self) -> Vec<String> {
        let p = &self.profile;
        let mut out = Vec::with_capacity(p.collectives.len() * (p.agents.len() + 1));
        for c in &p.collectives {
            for a in &p.agents {
                out.push(crate::protocol::subject::broadcast_agent(c, a));
            }
            out.push(crate::protocol::subject::node(c, &self.identity));
        }
        out
    }

    /// Decodes and answers one message (see the module docs).
    pub fn handle(&self, subject: &str, payload: &[u8], now: i64, audit: bool) -> Handled {
        let handled = Incoming::decode(subject, payload, now)
            .and_then(|incoming| self.respond(&incoming, audit, &mut ReplyEncoder::new()));
        self.record(&handled);
        handled
    }

    /// Answers an already decoded request: collective, filter, agent, reply (encoded with
    /// `encoder`, whose buffers are reused from one reply to the next).
    pub fn respond(&self, incoming: &Incoming, audit: bool, encoder: &mut ReplyEncoder) -> Handled {
        self.admit(incoming)?;
        let prepared = &*incoming.prepared;
        let info = NodeInfo {
            identity: &self.identity,
            agents: &self.profile.agents,
            classes: &self.profile.classes,
            collectives: &self.profile.collectives,
            facts: &self.facts,
            stats: &self.stats,
            server: &self.server,
        };
        let agent = &prepared.decoded.request.envelope.agent;
        let body = answer(agent, &prepared.input, &info)?;
        self.reply_with(incoming, &body, audit, encoder)
    }

    /// Whether this daemon answers `incoming` at all: the request's security, identity,
    /// collective and filter (what [`EmulatedNode::respond`] checks before the agent runs).
    pub fn admit(&self, incoming: &Incoming) -> Result<(), DropReason> {
        let prepared = &*incoming.prepared;
        let env = &prepared.decoded.request.envelope;
        if let Some(security) = &self.profile.security {
            security.0.check(prepared)?;
        }
        if let Target::Node(identity) = &incoming.target {
            if *identity != self.identity {
                return Err(DropReason::UnknownIdentity);
            }
        }
        if !self.profile.collectives.contains(&env.collective) {
            return Err(DropReason::WrongCollective);
        }
        let view = NodeView {
            identity: &self.identity,
            agents: &self.profile.agents,
            classes: &self.profile.classes,
            facts: &self.facts,
        };
        match env.filter.matches_compiled(&prepared.compound, &view) {
            FilterOutcome::Match => Ok(()),
            FilterOutcome::NoMatch => Err(DropReason::Filtered),
            FilterOutcome::Unsupported => Err(DropReason::UnsupportedFilter),
            FilterOutcome::DataPlugin => Err(DropReason::DataPlugin),
        }
    }

    /// The reply of this daemon to an admitted `incoming` whose agent answered `body` (a
    /// server with agents of its own, such as `choir agent`, answers them itself and encodes
    /// the reply here).
    pub fn reply_with(
        &self,
        incoming: &Incoming,
        body: &str,
        audit: bool,
        encoder: &mut ReplyEncoder,
    ) -> Handled {
        let prepared = &*incoming.prepared;
        let request = &prepared.decoded.request;
        let env = &request.envelope;
        let subject = prepared
            .reply_subject
            .clone()
            .ok_or(DropReason::NoReplyTo)?;
        let fields = ReplyFields {
            message: body,
            requestid: &env.requestid,
            senderid: &self.identity,
            agent: &env.agent,
            time: unix_now(),
        };
        let server = &*self.server;
        let payload = encoder.encode(&fields, &prepared.headers, (server, &self.identity, server));
        let audit = match (audit, prepared.input.rpc()) {
            (true, Some(rpc)) if env.agent != "discovery" => {
                Some(AuditRecord::new(request, rpc, SystemTime::now()))
            }
            _ => None,
        };
        Ok(Outgoing {
            subject,
            payload,
            audit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        decode_reply, encode_base64, encode_request, subject, unix_now, FactFilter,
        FederationHeader, Filter, NewRequest, RpcReply, SeenByHop, Transport, TransportHeaders,
    };
    use serde_json::json;

    fn node() -> EmulatedNode {
        let profile = Arc::new(NodeProfile {
            agents: ["discovery", "rpcutil", "emulated0"]
                .map(String::from)
                .to_vec(),
            classes: vec!["emulated".into()],
            collectives: vec!["mcollective".into(), "collective1".into()],
            security: None,
        });
        EmulatedNode::new(
            "emu-7".into(),
            Facts::from_value(json!({"country": "mt", "instance": 7})),
            profile,
            Arc::from("nats://127.0.0.1:4222"),
        )
    }

    fn request(agent: &str, message: &str, filter: Filter, time: Option<i64>) -> NewRequest {
        NewRequest {
            message: message.into(),
            senderid: "client".into(),
            callerid: "choria=test".into(),
            collective: "mcollective".into(),
            agent: agent.into(),
            filter,
            time,
            ..NewRequest::default()
        }
    }

    fn encode(new: NewRequest, federated: bool) -> Vec<u8> {
        let r = new.build().unwrap();
        let mut headers = TransportHeaders::for_request(
            subject::reply(&r.envelope.collective, "choria=test", &r.envelope.requestid),
            "client",
        );
        headers.push_seen_by(SeenByHop::new("nats://a", "client", "nats://a"));
        if federated {
            headers.federation = Some(FederationHeader {
                req: r.envelope.requestid.clone(),
                reply_to: "mcollective.reply.x.y".into(),
                target: vec!["mcollective.node.emu-7".into()],
            });
        }
        encode_request(&r, headers).unwrap()
    }

    const BCAST: &str = "mcollective.broadcast.agent.emulated0";

    #[test]
    fn generate_reply_through_the_onion() {
        let payload = encode(
            request(
                "emulated0",
                r#"{"agent":"emulated0","action":"generate","data":{"size":100}}"#,
                Filter::with_agent("emulated0"),
                None,
            ),
            true,
        );
        let out = node().handle(BCAST, &payload, unix_now(), true).unwrap();
        assert!(out.subject.starts_with("mcollective.reply."));
        let reply = decode_reply(&out.payload).unwrap();
        assert_eq!(reply.reply.envelope.senderid, "emu-7");
        let rpc = RpcReply::from_slice(reply.body()).unwrap();
        assert_eq!(rpc.data["message"].as_str().unwrap().len(), 100);
        let h = &reply.transport.headers;
        assert_eq!(h.reply_to, None);
        assert_eq!(h.mc_sender.as_deref(), Some("emu-7"));
        assert_eq!(h.seen_by.len(), 2);
        assert_eq!(h.seen_by[1].processor(), "emu-7");
        let fed = h.federation.as_ref().unwrap();
        assert_eq!(fed.reply_to, "mcollective.reply.x.y");
        assert!(fed.target.is_empty());
        assert_eq!(out.audit.unwrap().action, "generate");
    }

    #[test]
    fn discovery_pong_and_directed() {
        let n = node();
        let payload = encode(request("discovery", "ping", Filter::default(), None), false);
        let out = n
            .handle("mcollective.node.emu-7", &payload, unix_now(), true)
            .unwrap();
        assert_eq!(decode_reply(&out.payload).unwrap().body(), b"pong");
        assert!(out.audit.is_none());
        assert_eq!(
            n.handle("mcollective.node.emu-8", &payload, unix_now(), false)
                .unwrap_err(),
            DropReason::UnknownIdentity
        );
    }

    #[test]
    fn refusals_are_reasons() {
        let n = node();
        let now = unix_now();
        let check = |payload: &[u8], subject: &str, reason| {
            assert_eq!(n.handle(subject, payload, now, false).unwrap_err(), reason);
        };
        let ping = || request("discovery", "ping", Filter::default(), None);
        let sub = "mcollective.broadcast.agent.discovery";
        // Expired and future-dated.
        check(
            &encode(
                request("discovery", "ping", Filter::default(), Some(now - 600)),
                false,
            ),
            sub,
            DropReason::Expired,
        );
        check(
            &encode(
                request("discovery", "ping", Filter::default(), Some(now + 600)),
                false,
            ),
            sub,
            DropReason::Expired,
        );
        // Envelope collective differs from the subject's, or is not the daemon's.
        let mut other = ping();
        other.collective = "other".into();
        check(
            &encode(other.clone(), false),
            sub,
            DropReason::WrongCollective,
        );
        check(
            &encode(other, false),
            "other.broadcast.agent.discovery",
            DropReason::WrongCollective,
        );
        // Filters.
        let mut f = ping();
        f.filter.fact = vec![FactFilter::new("country", "==", "uk")];
        check(&encode(f, false), sub, DropReason::Filtered);
        let mut f = ping();
        f.filter.compound = vec![vec![json!({"expr": "semver('1.0.0', '>= 1')"})]];
        check(&encode(f, false), sub, DropReason::UnsupportedFilter);
        let mut f = ping();
        f.filter.compound = vec![vec![json!({"fstatement": {"name": "sysctl"}})]];
        check(&encode(f, false), sub, DropReason::DataPlugin);
        let mut f = ping();
        f.filter.compound = vec![vec![
            json!({"statement": "instance=6"}),
            json!({"or": "or"}),
            json!({"statement": "instance=8"}),
        ]];
        check(&encode(f, false), sub, DropReason::Filtered);
        let mut f = ping();
        f.filter.compound = vec![vec![
            json!({"not": "not"}),
            json!({"statement": "instance=6"}),
        ]];
        assert!(n.handle(sub, &encode(f, false), now, false).is_ok());
        let mut f = ping();
        f.filter.identity = vec!["/^emu-7$/".into()];
        assert!(n.handle(sub, &encode(f, false), now, false).is_ok());
        // Garbage at every layer.
        let good = encode(ping(), false);
        check(&good[..good.len() / 2], sub, DropReason::Json);
        check(b"", sub, DropReason::Json);
        let bad_b64 =
            br#"{"protocol":"choria:transport:1","data":"!!!not base64!!!","headers":{}}"#;
        check(bad_b64, sub, DropReason::Base64);
        let inner_garbage = Transport::new(b"{\"protocol\":", TransportHeaders::default());
        check(&inner_garbage.to_vec().unwrap(), sub, DropReason::Json);
        let wrong = format!(
            r#"{{"protocol":"choria:transport:1","data":"{}","headers":{{"reply-to":"x"}}}}"#,
            encode_base64(br#"{"protocol":"choria:secure:reply:1","message":"m","signature":"insecure","pubcert":"insecure"}"#)
        );
        check(wrong.as_bytes(), sub, DropReason::Invalid);
        // No reply-to.
        let r = ping().build().unwrap();
        let no_reply = encode_request(&r, TransportHeaders::default()).unwrap();
        check(&no_reply, sub, DropReason::NoReplyTo);
        // Agent the daemon does not run.
        check(
            &encode(request("puppet", "{}", Filter::default(), None), false),
            "mcollective.broadcast.agent.puppet",
            DropReason::UnknownAgent,
        );
    }

    #[test]
    fn a_request_with_a_two_string_hop_is_answered_and_the_hop_kept() {
        // The Ruby mco connector's hop: identity and server, no third string.
        let r = request("discovery", "ping", Filter::default(), None)
            .build()
            .unwrap();
        let mut headers = TransportHeaders::for_request(
            subject::reply("mcollective", "choria=test", &r.envelope.requestid),
            "client",
        );
        headers.push_seen_by(
            SeenByHop::from_parts(vec!["client".into(), "nats://127.0.0.1:4222".into()]).unwrap(),
        );
        let payload = encode_request(&r, headers).unwrap();
        let text = String::from_utf8(payload.clone()).unwrap();
        assert!(text.contains(r#""seen-by":[["client","nats://127.0.0.1:4222"]]"#));
        let n = node();
        let out = n
            .handle(
                "mcollective.broadcast.agent.discovery",
                &payload,
                unix_now(),
                false,
            )
            .unwrap();
        let reply = String::from_utf8(out.payload).unwrap();
        assert!(
            reply.contains(r#""seen-by":[["client","nats://127.0.0.1:4222"],["nats://127.0.0.1:4222","emu-7","nats://127.0.0.1:4222"]]"#),
            "{reply}"
        );
        assert_eq!(n.stats().snapshot().replies, 1);
    }

    #[test]
    fn subjects_per_collective_and_agent() {
        let s = node().subjects();
        assert_eq!(s.len(), 2 * 4);
        assert!(s.contains(&"collective1.node.emu-7".to_owned()));
        assert!(s.contains(&"mcollective.broadcast.agent.rpcutil".to_owned()));
    }
}
