//! The request layer: `choria:request:1`.

use super::{
    check_ttl_window, is_valid_request_id, new_request_id, unix_now, Filter, ProtocolError,
    DEFAULT_TTL, MIN_TTL, REQUEST_PROTOCOL,
};
use serde::{Deserialize, Serialize};

/// A `choria:request:1` message.
///
/// Fields serialise in Go's order: `protocol, message, envelope`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Always `choria:request:1`.
    pub protocol: String,
    /// The agent payload: mcorpc JSON text, or `ping` style strings for discovery (see
    /// [`decode_agent_payload`](super::decode_agent_payload)).
    pub message: String,
    /// Routing and validity data.
    pub envelope: RequestEnvelope,
}

/// The `envelope` of a request; serialises exactly these eight keys (Ruby rejects extras).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// 32 hex characters.
    pub requestid: String,
    /// Identity of the sending machine.
    pub senderid: String,
    /// The caller, e.g. `choria=rip.mcollective`.
    pub callerid: String,
    /// The (sub-)collective, e.g. `mcollective`.
    pub collective: String,
    /// The target agent.
    pub agent: String,
    /// Validity in seconds, at least 30.
    pub ttl: i64,
    /// Creation time, Unix seconds.
    pub time: i64,
    /// Which nodes should act.
    pub filter: Filter,
}

/// Inputs to build a [`Request`]; unset optional fields get the protocol defaults.
#[derive(Debug, Clone, Default)]
pub struct NewRequest {
    /// The agent payload (mcorpc JSON text, …).
    pub message: String,
    /// Identity of the sending machine.
    pub senderid: String,
    /// The caller id, e.g. `choria=rip.mcollective`.
    pub callerid: String,
    /// The collective.
    pub collective: String,
    /// The target agent.
    pub agent: String,
    /// The filter (default: empty, matches everything).
    pub filter: Filter,
    /// TTL in seconds (default [`DEFAULT_TTL`], must be >= [`MIN_TTL`]).
    pub ttl: Option<i64>,
    /// Request id (default: a fresh [`new_request_id`]).
    pub requestid: Option<String>,
    /// Creation time in Unix seconds (default: [`unix_now`]).
    pub time: Option<i64>,
}

impl NewRequest {
    /// Builds and validates the request.
    pub fn build(self) -> Result<Request, ProtocolError> {
        let request = Request {
            protocol: REQUEST_PROTOCOL.to_owned(),
            message: self.message,
            envelope: RequestEnvelope {
                requestid: self.requestid.unwrap_or_else(new_request_id),
                senderid: self.senderid,
                callerid: self.callerid,
                collective: self.collective,
                agent: self.agent,
                ttl: self.ttl.unwrap_or(DEFAULT_TTL),
                time: self.time.unwrap_or_else(unix_now),
                filter: self.filter,
            },
        };
        request.validate()?;
        Ok(request)
    }
}

impl Request {
    /// Parses request JSON and validates it (see [`Request::validate`]; the TTL window is not
    /// checked).
    pub fn from_str_validated(json: &str) -> Result<Self, ProtocolError> {
        let request: Self = serde_json::from_str(json).map_err(ProtocolError::json("request"))?;
        request.validate()?;
        Ok(request)
    }

    /// Serialises the request to the JSON text that goes into the secure request.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(ProtocolError::json("request"))
    }

    /// Structural validation as the go-choria schema does: protocol string, 32 hex request
    /// id, TTL >= 30, non-empty message, caller id, collective and agent.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        ProtocolError::check_protocol(REQUEST_PROTOCOL, &self.protocol)?;
        let env = &self.envelope;
        if !is_valid_request_id(&env.requestid) {
            return Err(ProtocolError::InvalidRequestId(env.requestid.clone()));
        }
        if env.ttl < MIN_TTL {
            return Err(ProtocolError::TtlTooShort(env.ttl));
        }
        for (value, name) in [
            (&self.message, "request message"),
            (&env.callerid, "callerid"),
            (&env.collective, "collective"),
            (&env.agent, "agent"),
        ] {
            if value.is_empty() {
                return Err(ProtocolError::EmptyField(name));
            }
        }
        Ok(())
    }

    /// Checks that the request is inside its validity window `now ± ttl`
    /// ([`ProtocolError::Expired`] otherwise).
    pub fn check_ttl(&self, now: i64) -> Result<(), ProtocolError> {
        check_ttl_window(
            &self.envelope.requestid,
            self.envelope.time,
            self.envelope.ttl,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new() -> NewRequest {
        NewRequest {
            message: "ping".into(),
            senderid: "client.example.net".into(),
            callerid: "choria=rip.mcollective".into(),
            collective: "mcollective".into(),
            agent: "discovery".into(),
            ..NewRequest::default()
        }
    }

    #[test]
    fn defaults() {
        let before = unix_now();
        let r = new().build().unwrap();
        assert_eq!(r.protocol, REQUEST_PROTOCOL);
        assert_eq!(r.envelope.ttl, 60);
        assert!(r.envelope.time >= before && r.envelope.time <= unix_now());
        assert!(is_valid_request_id(&r.envelope.requestid));
        assert!(r.check_ttl(unix_now()).is_ok());
    }

    #[test]
    fn ttl_minimum() {
        let mut n = new();
        n.ttl = Some(29);
        assert!(matches!(n.build(), Err(ProtocolError::TtlTooShort(29))));
        let mut n = new();
        n.ttl = Some(30);
        assert!(n.build().is_ok());
    }

    #[test]
    fn bad_request_id_rejected() {
        let mut n = new();
        n.requestid = Some("short".into());
        assert!(matches!(n.build(), Err(ProtocolError::InvalidRequestId(_))));
    }

    #[test]
    fn empty_fields_rejected() {
        let mut n = new();
        n.agent = String::new();
        assert!(matches!(n.build(), Err(ProtocolError::EmptyField("agent"))));
        let mut n = new();
        n.message = String::new();
        assert!(matches!(n.build(), Err(ProtocolError::EmptyField(_))));
    }

    #[test]
    fn expired_and_future_rejected() {
        let mut n = new();
        n.time = Some(1_700_000_000);
        let r = n.build().unwrap();
        assert!(r.check_ttl(1_700_000_030).is_ok());
        assert!(matches!(
            r.check_ttl(1_700_000_060),
            Err(ProtocolError::Expired { .. })
        ));
        assert!(matches!(
            r.check_ttl(1_699_999_940),
            Err(ProtocolError::Expired { .. })
        ));
    }
}
