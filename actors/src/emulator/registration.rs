//! Registration: the request each daemon publishes on a timer, like a Choria server with
//! `registration = inventory_content`.
//!
//! A normal `choria:request:1` to agent `registration` in the main collective, `reply-to`
//! `dev.null`, published to the configured subject (default
//! `<collective>.broadcast.agent.registration`). Its `message` is:
//!
//! ```json
//! {"protocol":"choria:registration:inventorycontent:1","identity":"emu-1","fqdn":"emu-1",
//!  "sequence":3,"time":1700000000,
//!  "content":{"agents":[…],"classes":[…],"collectives":[…],"facts":{…}}}
//! ```
//!
//! `content` is the raw inventory object (what Go sends uncompressed); `identity`, `fqdn`,
//! `sequence` and `time` sit at the top level so a replicator can sample on `fqdn` and an
//! observer can spot gaps in `sequence`.

use serde_json::json;

use super::EmulatedNode;
use crate::protocol::{
    encode_request, subject, unix_now, Filter, NewRequest, ProtocolError, TransportHeaders,
};

/// Protocol string of the registration payload.
pub const REGISTRATION_PROTOCOL: &str = "choria:registration:inventorycontent:1";

/// The reply-to of registration requests (nobody answers them).
pub const REGISTRATION_REPLY_TO: &str = "dev.null";

/// The default registration subject of `collective`.
pub fn default_subject(collective: &str) -> String {
    subject::broadcast_agent(collective, "registration")
}

/// The registration payload (the request `message`) of `node`, number `sequence`.
pub fn payload(node: &EmulatedNode, sequence: u64, time: i64) -> serde_json::Value {
    let p = node.profile();
    json!({
        "protocol": REGISTRATION_PROTOCOL,
        "identity": node.identity(),
        "fqdn": node.facts().get("fqdn").cloned().unwrap_or_else(|| node.identity().into()),
        "sequence": sequence,
        "time": time,
        "content": {
            "agents": p.agents,
            "classes": p.classes,
            "collectives": p.collectives,
            "facts": node.facts().as_map(),
        },
    })
}

/// The encoded registration message of `node`, number `sequence`, as a NATS payload.
pub fn encode(node: &EmulatedNode, sequence: u64) -> Result<Vec<u8>, ProtocolError> {
    let now = unix_now();
    let collective = node
        .profile()
        .collectives
        .first()
        .cloned()
        .unwrap_or_else(|| "mcollective".to_owned());
    let message = payload(node, sequence, now).to_string();
    let request = NewRequest {
        message,
        senderid: node.identity().to_owned(),
        callerid: format!("choria={}", node.identity()),
        collective,
        agent: "registration".to_owned(),
        filter: Filter::default(),
        time: Some(now),
        ..NewRequest::default()
    }
    .build()?;
    encode_request(
        &request,
        TransportHeaders::for_request(REGISTRATION_REPLY_TO, node.identity()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::NodeProfile;
    use crate::protocol::{decode_request, Facts};
    use std::sync::Arc;

    #[test]
    fn registration_is_a_request_to_the_registration_agent() {
        let node = EmulatedNode::new(
            "emu-3".into(),
            Facts::from_value(json!({"fqdn": "emu-3", "country": "mt"})),
            Arc::new(NodeProfile {
                agents: vec!["discovery".into()],
                classes: vec![],
                collectives: vec!["mcollective".into()],
                security: None,
            }),
            Arc::from("nats://x"),
        );
        let bytes = encode(&node, 5).unwrap();
        let decoded = decode_request(&bytes, unix_now()).unwrap();
        assert_eq!(decoded.request.envelope.agent, "registration");
        assert_eq!(decoded.reply_to(), Some("dev.null"));
        let body: serde_json::Value = serde_json::from_str(&decoded.request.message).unwrap();
        assert_eq!(body["protocol"], REGISTRATION_PROTOCOL);
        assert_eq!(body["fqdn"], "emu-3");
        assert_eq!(body["sequence"], 5);
        assert_eq!(body["content"]["facts"]["country"], "mt");
        assert_eq!(
            default_subject("mcollective"),
            "mcollective.broadcast.agent.registration"
        );
    }
}
