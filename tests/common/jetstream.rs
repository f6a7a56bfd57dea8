//! JetStream helpers for tests: preload a stream, read a stream back, wait for counts.

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;

use super::poll::eventually;

/// One message read back from a stream.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Stream sequence.
    pub seq: u64,
    /// Subject.
    pub subject: String,
    /// Headers.
    pub headers: Option<HeaderMap>,
    /// Payload.
    pub payload: Bytes,
}

impl Stored {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .as_ref()?
            .get(name)
            .map(|v| v.as_str().to_owned())
    }
}

/// Connects to `url`.
pub async fn connect(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.unwrap()
}

/// Creates a file-store stream `name` capturing `subjects`.
pub async fn create_stream(client: &async_nats::Client, name: &str, subjects: &[&str]) {
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Publishes `count` messages (subject and payload from `make(i)`) with a header
/// `X-Index: i`, 256 acks in flight.
pub async fn publish_many(
    client: &async_nats::Client,
    count: usize,
    make: impl Fn(usize) -> (String, Vec<u8>),
) {
    let js = jetstream::new(client.clone());
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in 0..count {
        let (subject, payload) = make(i);
        let mut headers = HeaderMap::new();
        headers.insert("X-Index", i.to_string().as_str());
        acks.push(
            js.publish_with_headers(subject, headers, payload.into())
                .await
                .unwrap()
                .into_future(),
        );
        if acks.len() >= 256 {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(ack) = acks.next().await {
        ack.unwrap();
    }
}

/// Number of messages in `stream`, 0 when it does not exist.
pub async fn count(client: &async_nats::Client, name: &str) -> u64 {
    let js = jetstream::new(client.clone());
    match js.get_stream(name).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits until `stream` holds at least `n` messages.
pub async fn wait_for_count(
    client: &async_nats::Client,
    name: &str,
    n: u64,
    timeout: Duration,
) -> bool {
    eventually(timeout, || async { count(client, name).await >= n }).await
}

/// Every message of `stream`, in stream order.
pub async fn read_all(client: &async_nats::Client, name: &str) -> Vec<Stored> {
    let js = jetstream::new(client.clone());
    let s = js.get_stream(name).await.unwrap();
    let total = count(client, name).await;
    let consumer: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(1000)
        .messages()
        .await
        .unwrap();
    let mut out = Vec::with_capacity(total as usize);
    while (out.len() as u64) < total {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("reading the stream timed out")
            .unwrap()
            .unwrap();
        let seq = m.info().unwrap().stream_sequence;
        out.push(Stored {
            seq,
            subject: m.subject.to_string(),
            headers: m.headers.clone(),
            payload: m.payload.clone(),
        });
    }
    out
}
