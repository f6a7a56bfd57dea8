//! The mcorpc (SimpleRPC) request payload carried in a request `message`.

use serde::{Deserialize, Serialize};

/// An mcorpc request body: `{"agent","action","caller","data"}`.
///
/// Go clients send `{"agent","action","data"}`; Ruby clients add `caller` (and
/// `process_results` inside `data`). `caller` is omitted when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcRequest {
    /// The agent name.
    pub agent: String,
    /// The action name.
    pub action: String,
    /// The caller id (`choria=…`), sent by Ruby clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The action inputs (a JSON object; `null` when missing).
    #[serde(default)]
    pub data: serde_json::Value,
}

impl RpcRequest {
    /// Parses an mcorpc request from an agent payload.
    pub fn from_slice(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }

    /// Serialises the request to the text that goes into a request `message`.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_and_ruby_shapes() {
        let go: RpcRequest = RpcRequest::from_slice(
            br#"{"agent":"emulated0","action":"generate","data":{"size":100}}"#,
        )
        .unwrap();
        assert_eq!(go.caller, None);
        assert_eq!(go.data, json!({"size": 100}));
        assert_eq!(
            go.to_json().unwrap(),
            r#"{"agent":"emulated0","action":"generate","data":{"size":100}}"#
        );
        let ruby = RpcRequest::from_slice(
            br#"{"agent":"rpcutil","action":"ping","caller":"choria=rip.mcollective","data":{"process_results":true}}"#,
        )
        .unwrap();
        assert_eq!(ruby.caller.as_deref(), Some("choria=rip.mcollective"));
    }
}
