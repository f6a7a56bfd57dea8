//! The `graphite_event` task: an event posted to Graphite's events API (`graphite`, e.g.
//! `http://graphite.example.net/events/`) as the JSON `{"what", "tags", "when", "data"}`,
//! with `tags` joined by commas (default `choria`) and `when` the time of the try in Unix
//! seconds. Sent like a webhook POST (with `headers` and an `X-Choria-Request-ID`); success is
//! HTTP 200 or 201.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::webhook::{send, Request};
use super::TaskOutcome;
use crate::playbook::input::toml_to_json;
use crate::playbook::spec::TaskSpec;
use crate::playbook::template::{self, Context};

/// Default request time limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one try.
pub async fn run(spec: &TaskSpec, ctx: &Context) -> TaskOutcome {
    match render(spec, ctx) {
        Ok(request) => send(request).await,
        Err(error) => TaskOutcome::fail(error),
    }
}

fn render(spec: &TaskSpec, ctx: &Context) -> Result<Request, String> {
    let text = |name: &str, value: &Option<String>| {
        ctx.render_text(value.as_deref().unwrap_or_default())
            .map_err(|e| format!("{name}: {e}"))
    };
    let url = text("graphite", &spec.graphite)?;
    let what = text("what", &spec.what)?;
    let tags = match &spec.tags {
        Some(tags) => tags
            .iter()
            .map(|t| ctx.render_text(t).map_err(|e| format!("tags: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec!["choria".to_string()],
    };
    let data = match &spec.data {
        Some(data) => ctx
            .render_value(&toml_to_json(data))
            .map_err(|e| format!("data: {e}"))?,
        None => Value::Null,
    };
    let headers = spec
        .headers
        .iter()
        .map(|(k, v)| {
            ctx.render_text(v)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("headers.{k}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let when = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Ok(Request {
        url,
        method: "POST".into(),
        headers,
        body: event(&what, &tags, when, data),
        timeout: spec.timeout.unwrap_or(DEFAULT_TIMEOUT),
        verify: true,
        expect: vec![200, 201],
    })
}

/// The event as Graphite's events API takes it; `data` is sent as text.
fn event(what: &str, tags: &[String], when: u64, data: Value) -> Value {
    json!({
        "what": what,
        "tags": tags.join(","),
        "when": when,
        "data": template::to_text(&data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_joins_its_tags_and_sends_its_data_as_text() {
        let tags = ["choria".to_string(), "deploy".to_string()];
        let e = event("deployed", &tags, 7, json!("v2 on 3 nodes"));
        assert_eq!(e["what"], "deployed");
        assert_eq!(e["tags"], "choria,deploy");
        assert_eq!(e["when"], 7);
        assert_eq!(e["data"], "v2 on 3 nodes");
        assert_eq!(event("x", &[], 1, json!(3))["data"], "3");
    }
}
