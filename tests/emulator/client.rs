//! A small Choria test client written against the protocol module: publishes a request and
//! collects the decoded replies. (A reusable client is a later task; this one only serves the
//! emulator tests.)
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use choir::actors::protocol::{
    decode_reply, encode_request, subject, DecodedReply, Filter, NewRequest, Request,
    TransportHeaders,
};
use futures::StreamExt as _;

/// The caller id of the test client.
pub const CALLER: &str = "choria=tester.mcollective";

/// A connected test client.
pub struct TestClient {
    pub nats: async_nats::Client,
}

impl TestClient {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Self {
        let nats = async_nats::ConnectOptions::new()
            .subscription_capacity(100_000)
            .connect(url)
            .await
            .unwrap();
        Self { nats }
    }

    /// A request to `agent` with `message` and `filter` in `mcollective`.
    pub fn request(agent: &str, message: &str, filter: Filter) -> Request {
        NewRequest {
            message: message.into(),
            senderid: "tester.example.net".into(),
            callerid: CALLER.into(),
            collective: "mcollective".into(),
            agent: agent.into(),
            filter,
            ..NewRequest::default()
        }
        .build()
        .unwrap()
    }

    /// The reply subject of `request`.
    pub fn reply_subject(request: &Request) -> String {
        subject::reply(
            &request.envelope.collective,
            CALLER,
            &request.envelope.requestid,
        )
    }

    /// Publishes `request` to `target` and collects replies until `expected` arrived (then
    /// `linger` more to catch extras) or `timeout` passed.
    pub async fn call(
        &self,
        target: &str,
        request: &Request,
        expected: usize,
        timeout: Duration,
        linger: Duration,
    ) -> Vec<(Vec<u8>, DecodedReply)> {
        let reply_to = Self::reply_subject(request);
        let payload = encode_request(
            request,
            TransportHeaders::for_request(reply_to.clone(), "tester.example.net"),
        )
        .unwrap();
        self.call_raw(target, &reply_to, payload, expected, timeout, linger)
            .await
    }

    /// Publishes raw `payload` to `target` and collects replies on `reply_to`.
    pub async fn call_raw(
        &self,
        target: &str,
        reply_to: &str,
        payload: Vec<u8>,
        expected: usize,
        timeout: Duration,
        linger: Duration,
    ) -> Vec<(Vec<u8>, DecodedReply)> {
        let mut sub = self.nats.subscribe(reply_to.to_owned()).await.unwrap();
        self.nats.flush().await.unwrap();
        self.nats
            .publish(target.to_owned(), payload.into())
            .await
            .unwrap();
        self.nats.flush().await.unwrap();
        let mut replies = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while replies.len() < expected {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(msg)) => {
                    let decoded = decode_reply(&msg.payload).unwrap();
                    replies.push((msg.payload.to_vec(), decoded));
                }
                _ => break,
            }
        }
        // Absence check: nothing more arrives in `linger` (bounded, not a synchronisation).
        while let Ok(Some(msg)) = tokio::time::timeout(linger, sub.next()).await {
            replies.push((msg.payload.to_vec(), decode_reply(&msg.payload).unwrap()));
        }
        replies
    }
}
