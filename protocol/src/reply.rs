//! The reply layer: `choria:reply:1`.

use super::{is_valid_request_id, unix_now, ProtocolError, Request, REPLY_PROTOCOL};
use serde::{Deserialize, Serialize};

/// A `choria:reply:1` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Always `choria:reply:1`.
    pub protocol: String,
    /// The agent reply payload: mcorpc reply JSON text, or `pong` for discovery.
    pub message: String,
    /// Routing data.
    pub envelope: ReplyEnvelope,
}

/// The `envelope` of a reply; serialises exactly these four keys (Ruby rejects extras).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyEnvelope {
    /// The id of the request being answered.
    pub requestid: String,
    /// Identity of the replying node.
    pub senderid: String,
    /// The agent that replied.
    pub agent: String,
    /// Reply time, Unix seconds.
    pub time: i64,
}

impl Reply {
    /// Builds a reply from node `senderid` to `request`, stamped with the current time.
    pub fn for_request(request: &Request, senderid: impl Into<String>, message: String) -> Self {
        Self::for_request_at(request, senderid, message, unix_now())
    }

    /// Like [`Reply::for_request`] with an explicit time (Unix seconds).
    pub fn for_request_at(
        request: &Request,
        senderid: impl Into<String>,
        message: String,
        time: i64,
    ) -> Self {
        Self {
            protocol: REPLY_PROTOCOL.to_owned(),
            message,
            envelope: ReplyEnvelope {
                requestid: request.envelope.requestid.clone(),
                senderid: senderid.into(),
                agent: request.envelope.agent.clone(),
                time,
            },
        }
    }

    /// Parses reply JSON and validates it (see [`Reply::validate`]).
    pub fn from_str_validated(json: &str) -> Result<Self, ProtocolError> {
        let reply: Self = serde_json::from_str(json).map_err(ProtocolError::json("reply"))?;
        reply.validate()?;
        Ok(reply)
    }

    /// Serialises the reply to the JSON text that goes into the secure reply.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(ProtocolError::json("reply"))
    }

    /// Structural validation: protocol string and 32 hex request id.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        ProtocolError::check_protocol(REPLY_PROTOCOL, &self.protocol)?;
        if !is_valid_request_id(&self.envelope.requestid) {
            return Err(ProtocolError::InvalidRequestId(
                self.envelope.requestid.clone(),
            ));
        }
        Ok(())
    }
}
