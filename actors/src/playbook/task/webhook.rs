//! The `webhook` task: an HTTP request (POST with a JSON body by default, or GET with the
//! body as query parameters) with an `X-Choria-Request-ID` header; success is an expected
//! status (default 200 or 201). Choria's `uri` and `data` are `url` and `body`;
//! `verify_ssl: false` accepts any server certificate.

use std::time::Duration;

use serde_json::Value;

use super::TaskOutcome;
use crate::playbook::input::toml_to_json;
use crate::playbook::spec::TaskSpec;
use crate::playbook::template::{self, Context};

/// Default request time limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one try.
pub async fn run(spec: &TaskSpec, ctx: &Context) -> TaskOutcome {
    let rendered = (|| -> Result<_, String> {
        let url = ctx
            .render_text(spec.url.as_deref().unwrap_or_default())
            .map_err(|e| format!("url: {e}"))?;
        let headers = spec
            .headers
            .iter()
            .map(|(k, v)| {
                ctx.render_text(v)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| format!("headers.{k}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let body = match &spec.body {
            Some(body) => ctx
                .render_value(&toml_to_json(body))
                .map_err(|e| format!("body: {e}"))?,
            None => Value::Object(Default::default()),
        };
        Ok((url, headers, body))
    })();
    let (url, headers, body) = match rendered {
        Ok(parts) => parts,
        Err(error) => return TaskOutcome::fail(error),
    };
    let method = spec
        .method
        .as_deref()
        .unwrap_or("POST")
        .to_ascii_uppercase();
    let expect = if spec.expect_status.is_empty() {
        vec![200, 201]
    } else {
        spec.expect_status.clone()
    };
    send(Request {
        url,
        method,
        headers,
        body,
        timeout: spec.timeout.unwrap_or(DEFAULT_TIMEOUT),
        verify: spec.verify_ssl.unwrap_or(true),
        expect,
    })
    .await
}

/// One rendered HTTP request of a webhook (or a task built on it, such as `graphite_event`).
pub(crate) struct Request {
    /// Where to.
    pub url: String,
    /// GET, POST, PUT or DELETE (upper case).
    pub method: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// JSON body (POST, PUT) or query parameters (GET, DELETE).
    pub body: Value,
    /// Time limit of the whole request.
    pub timeout: Duration,
    /// Verify the server's TLS certificate.
    pub verify: bool,
    /// Statuses that mean success.
    pub expect: Vec<u16>,
}

/// Sends `request` with an `X-Choria-Request-ID` header; success is an expected status.
pub(crate) async fn send(request: Request) -> TaskOutcome {
    let Request {
        url,
        method,
        headers,
        body,
        timeout,
        verify,
        expect,
    } = request;
    let request_id = template::uuid_v4();
    let target = url.clone();
    let sent = tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(!verify)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let mut response = if method == "GET" || method == "DELETE" {
            let mut request = if method == "GET" {
                agent.get(&url)
            } else {
                agent.delete(&url)
            };
            if let Value::Object(params) = &body {
                for (k, v) in params {
                    request = request.query(k, template::to_text(v));
                }
            }
            request = request.header("X-Choria-Request-ID", &request_id);
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            request.call()
        } else {
            let mut request = if method == "PUT" {
                agent.put(&url)
            } else {
                agent.post(&url)
            };
            request = request
                .header("X-Choria-Request-ID", &request_id)
                .header("Content-Type", "application/json");
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            request.send(body.to_string())
        }
        .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Ok((status, text))
    })
    .await;
    match sent {
        Ok(Ok((status, text))) => {
            let data = serde_json::from_str(&text).unwrap_or(Value::from(text));
            if expect.contains(&status) {
                TaskOutcome::ok(format!("{target}: HTTP {status}"), data)
            } else {
                TaskOutcome {
                    success: false,
                    message: format!("{target}: HTTP {status}, expected one of {expect:?}"),
                    data,
                }
            }
        }
        Ok(Err(error)) => TaskOutcome::fail(format!("{target}: {error}")),
        Err(error) => TaskOutcome::fail(format!("{target}: {error}")),
    }
}
