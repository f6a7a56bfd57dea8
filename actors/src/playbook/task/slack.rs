//! The `slack` task: posts `text` to `channel` through Slack's `chat.postMessage` (or the API
//! URL in `url`), as a JSON body with the token as `Authorization: Bearer`; the message is one
//! attachment of `color` (default `#ffa449`) posted as `username` (default `Choria`), as
//! Choria's Ruby task did. Success is HTTP 200 with `"ok": true` in the reply.

use std::time::Duration;

use serde_json::{json, Value};

use super::TaskOutcome;
use crate::playbook::spec::TaskSpec;
use crate::playbook::template::Context;

/// Slack's API URL for posting a message.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/chat.postMessage";
/// Default attachment colour, Choria's.
pub const DEFAULT_COLOR: &str = "#ffa449";
/// Default user name, Choria's.
pub const DEFAULT_USERNAME: &str = "Choria";
/// Default request time limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The JSON body posted for `channel`, `text`, `color` and `username`.
pub fn message(channel: &str, text: &str, color: &str, username: &str) -> Value {
    json!({
        "channel": channel,
        "username": username,
        "text": "",
        "attachments": [{
            "fallback": text,
            "color": color,
            "text": text,
            "mrkdwn_in": ["text"],
        }],
    })
}

/// Runs one try.
pub async fn run(spec: &TaskSpec, ctx: &Context) -> TaskOutcome {
    let render = |name: &str, value: &Option<String>, default: &str| {
        ctx.render_text(value.as_deref().unwrap_or(default))
            .map_err(|e| format!("{name}: {e}"))
    };
    let rendered = (|| -> Result<_, String> {
        Ok((
            render("url", &spec.url, DEFAULT_API_URL)?,
            render("token", &spec.token, "")?,
            message(
                &render("channel", &spec.channel, "")?,
                &render("text", &spec.text, "")?,
                &render("color", &spec.color, DEFAULT_COLOR)?,
                &render("username", &spec.username, DEFAULT_USERNAME)?,
            ),
        ))
    })();
    let (url, token, body) = match rendered {
        Ok(parts) => parts,
        Err(error) => return TaskOutcome::fail(error),
    };
    let timeout = spec.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let target = url.clone();
    let sent = tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let mut response = agent
            .post(&url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Authorization", &format!("Bearer {token}"))
            .send(body.to_string())
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Ok((status, text))
    })
    .await;
    match sent {
        Ok(Ok((status, text))) => {
            let data = serde_json::from_str(&text).unwrap_or(Value::from(text));
            if status == 200 && data.get("ok") == Some(&Value::Bool(true)) {
                TaskOutcome::ok(format!("{target}: message posted"), data)
            } else {
                let error = data
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no \"ok\": true in the reply");
                TaskOutcome {
                    success: false,
                    message: format!("{target}: HTTP {status}: {error}"),
                    data,
                }
            }
        }
        Ok(Err(error)) => TaskOutcome::fail(format!("{target}: {error}")),
        Err(error) => TaskOutcome::fail(format!("{target}: {error}")),
    }
}
