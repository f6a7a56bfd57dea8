//! The mcorpc (SimpleRPC) reply payload carried in a reply `message`.

use serde::{Deserialize, Serialize};

/// Status code: the action succeeded.
pub const STATUS_OK: u8 = 0;
/// Status code: the action was aborted.
pub const STATUS_ABORTED: u8 = 1;
/// Status code: the agent has no such action.
pub const STATUS_UNKNOWN_ACTION: u8 = 2;
/// Status code: required input is missing.
pub const STATUS_MISSING_DATA: u8 = 3;
/// Status code: input failed validation.
pub const STATUS_INVALID_DATA: u8 = 4;
/// Status code: any other failure.
pub const STATUS_UNKNOWN_ERROR: u8 = 5;

/// An mcorpc reply body: `{"statuscode","statusmsg","data"}`, plus the `action` Go adds
/// (omitted when `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcReply {
    /// The action that ran (Go includes it, Ruby does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// One of the `STATUS_*` constants.
    pub statuscode: u8,
    /// Human readable status, `OK` on success.
    pub statusmsg: String,
    /// The action outputs.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl RpcReply {
    /// A successful reply with `data`.
    pub fn ok(action: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            action: Some(action.into()),
            statuscode: STATUS_OK,
            statusmsg: "OK".to_owned(),
            data,
        }
    }

    /// The reply for an unknown action: status 2, `Unknown action X for agent Y`.
    pub fn unknown_action(agent: &str, action: &str) -> Self {
        Self {
            action: Some(action.to_owned()),
            statuscode: STATUS_UNKNOWN_ACTION,
            statusmsg: format!("Unknown action {action} for agent {agent}"),
            data: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Parses an mcorpc reply from a reply body.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Serialises the reply to the text that goes into a reply `message`.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        let ok = RpcReply::ok("generate", json!({"message": "01234567890123456789"}));
        assert_eq!(
            ok.to_json().unwrap(),
            r#"{"action":"generate","statuscode":0,"statusmsg":"OK","data":{"message":"01234567890123456789"}}"#
        );
        let unknown = RpcReply::unknown_action("emulated0", "nope");
        assert_eq!(unknown.statuscode, 2);
        assert_eq!(unknown.statusmsg, "Unknown action nope for agent emulated0");
        let ruby =
            RpcReply::from_slice(br#"{"statuscode":5,"statusmsg":"boom","data":{}}"#).unwrap();
        assert_eq!(ruby.statuscode, STATUS_UNKNOWN_ERROR);
        assert_eq!(ruby.action, None);
        assert_eq!(
            [
                STATUS_OK,
                STATUS_ABORTED,
                STATUS_UNKNOWN_ACTION,
                STATUS_MISSING_DATA,
                STATUS_INVALID_DATA,
                STATUS_UNKNOWN_ERROR
            ],
            [0, 1, 2, 3, 4, 5]
        );
    }
}
