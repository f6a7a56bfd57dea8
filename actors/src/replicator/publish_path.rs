//! Which path a worker publishes its copies by, asked of the target: its server's features
//! ([`crate::server_features`]: `INFO` and the JetStream account info) and the target
//! stream's own config (`allow_batched`). Nothing here changes the stream.

use async_nats::jetstream::Context;
use async_nats::Client;
use serde_json::{json, Value};

use crate::server_features::{PublishPath, ServerFeatures, StreamBatching};

/// The target server's features: `INFO` as async-nats keeps it, and the API level from the
/// account info (a failed request leaves the level at 0: the per-message path).
pub async fn server_features(client: &Client) -> ServerFeatures {
    let features = ServerFeatures::from_server_info(&client.server_info());
    let js = async_nats::jetstream::new(client.clone());
    match js.request::<_, _, Value>("INFO", &json!({})).await {
        Ok(account) => features.with_account_info(&account),
        Err(_) => features,
    }
}

/// The path for copies into `stream` on the target `client`, with the server's features.
pub async fn detect(client: &Client, stream: &str) -> (ServerFeatures, PublishPath) {
    let features = server_features(client).await;
    if !features.fast_batch() {
        let path = PublishPath::choose(&features, StreamBatching::default());
        return (features, path);
    }
    let js = async_nats::jetstream::new(client.clone());
    let path = match js
        .request::<_, _, Value>(format!("STREAM.INFO.{stream}"), &json!({}))
        .await
    {
        Ok(info) if info.get("error").is_none() => {
            PublishPath::choose(&features, StreamBatching::from_stream(&info))
        }
        Ok(info) => PublishPath::PerMessage {
            reason: format!(
                "cannot read the target stream's config: {}",
                info.get("error").cloned().unwrap_or_default()
            ),
        },
        Err(e) => PublishPath::PerMessage {
            reason: format!("cannot read the target stream's config: {e}"),
        },
    };
    (features, path)
}

/// Creates a stream from `config` with `allow_batched` set, which the typed config of
/// async-nats (built without its `server_2_14` feature) cannot say. Only for a stream choir
/// creates itself (`create_target`), on a server that has fast-ingest batches.
pub async fn create_batched_stream(
    js: &Context,
    config: &async_nats::jetstream::stream::Config,
) -> Result<(), String> {
    let mut body = serde_json::to_value(config).map_err(|e| e.to_string())?;
    if let Value::Object(map) = &mut body {
        map.insert("allow_batched".to_owned(), Value::Bool(true));
    }
    let answer: Value = js
        .request(format!("STREAM.CREATE.{}", config.name), &body)
        .await
        .map_err(|e| e.to_string())?;
    match answer.get("error") {
        None => Ok(()),
        Some(error) => Err(error
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("the server refused the stream")
            .to_owned()),
    }
}
