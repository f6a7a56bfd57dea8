//! What the federation tests share: a federation-aware test client written against the
//! protocol module, emulated fleets on collective servers, and broker configs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use choir::actors::emulator::{EmulatorMetrics, Fleet, FleetSpec};
use choir::actors::protocol::{
    decode_reply, encode_request, subject, DecodedReply, FederationHeader, Filter, NewRequest,
    Request, SeenByHop, TransportHeaders,
};
use futures::StreamExt as _;

use crate::common::{http::metric_value, ChoirNode, NatsServer};

/// The caller id of the test client.
pub const CALLER: &str = "choria=fedtester.mcollective";
/// The client's identity.
pub const SENDER: &str = "fedtester.example.net";
/// Targets per federated direct request, as Choria clients chunk them.
pub const CHUNK: usize = 200;

/// A client on the federation network.
pub struct FedClient {
    pub nats: async_nats::Client,
    pub url: String,
}

impl FedClient {
    pub async fn connect(url: &str) -> Self {
        let nats = async_nats::ConnectOptions::new()
            .subscription_capacity(100_000)
            .connect(url)
            .await
            .unwrap();
        Self {
            nats,
            url: url.to_owned(),
        }
    }

    /// A request to `agent` with `message` in `mcollective`.
    pub fn request(agent: &str, message: &str) -> Request {
        NewRequest {
            message: message.into(),
            senderid: SENDER.into(),
            callerid: CALLER.into(),
            collective: "mcollective".into(),
            agent: agent.into(),
            filter: Filter::default(),
            ..NewRequest::default()
        }
        .build()
        .unwrap()
    }

    /// The reply subject of `request`.
    pub fn reply_subject(request: &Request) -> String {
        subject::reply("mcollective", CALLER, &request.envelope.requestid)
    }

    /// The federated transport of `request` for `targets`, as a Go client builds it.
    pub fn federated(request: &Request, targets: Vec<String>, url: &str) -> Vec<u8> {
        let mut headers = TransportHeaders::for_request(Self::reply_subject(request), SENDER);
        headers.push_seen_by(SeenByHop::new(url, SENDER, url));
        headers.federation = Some(FederationHeader {
            req: request.envelope.requestid.clone(),
            reply_to: String::new(),
            target: targets,
        });
        encode_request(request, headers).unwrap()
    }

    /// Publishes `payload` to every cluster's federation subject.
    pub async fn publish_to_clusters(&self, clusters: &[&str], payload: &[u8]) {
        for cluster in clusters {
            self.nats
                .publish(
                    subject::federation_requests(cluster),
                    payload.to_vec().into(),
                )
                .await
                .unwrap();
        }
    }

    /// Sends `request` to `targets` (chunks of 200) through every cluster and collects replies
    /// until `expected` arrived (then `linger` more to catch extras) or `timeout` passed.
    pub async fn call(
        &self,
        clusters: &[&str],
        request: &Request,
        targets: &[String],
        expected: usize,
        timeout: Duration,
        linger: Duration,
    ) -> Vec<DecodedReply> {
        let mut sub = self
            .nats
            .subscribe(Self::reply_subject(request))
            .await
            .unwrap();
        self.nats.flush().await.unwrap();
        for chunk in targets.chunks(CHUNK) {
            let payload = Self::federated(request, chunk.to_vec(), &self.url);
            self.publish_to_clusters(clusters, &payload).await;
        }
        self.nats.flush().await.unwrap();
        let mut replies = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while replies.len() < expected {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(msg)) => replies.push(decode_reply(&msg.payload).unwrap()),
                _ => break,
            }
        }
        while let Ok(Some(msg)) = tokio::time::timeout(linger, sub.next()).await {
            replies.push(decode_reply(&msg.payload).unwrap());
        }
        replies
    }

    /// `call` with a broadcast to `agent` in `mcollective`.
    pub async fn broadcast(
        &self,
        clusters: &[&str],
        request: &Request,
        expected: usize,
        timeout: Duration,
    ) -> Vec<DecodedReply> {
        let target = subject::broadcast_agent("mcollective", &request.envelope.agent);
        self.call(
            clusters,
            request,
            &[target],
            expected,
            timeout,
            Duration::from_millis(300),
        )
        .await
    }
}

/// The senders of `replies`, each counted.
pub fn senders(replies: &[DecodedReply]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in replies {
        *out.entry(r.reply.envelope.senderid.clone()).or_insert(0) += 1;
    }
    out
}

/// Identities `<prefix>-0..n`.
pub fn identities(prefix: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Starts `n` dedicated-connection daemons named `<prefix>-<i>` on `server` and waits until
/// they are subscribed.
pub async fn start_fleet(prefix: &str, n: usize, server: &NatsServer) -> Fleet {
    let mut spec = FleetSpec::new(prefix, n, vec![server.url()]);
    spec.arbiters = std::num::NonZeroUsize::new(1);
    let fleet = Fleet::start(spec, EmulatorMetrics::unregistered()).unwrap();
    assert!(
        fleet.wait_started(Duration::from_secs(60), |_| {}).await,
        "daemons did not start: {:?}",
        fleet.progress()
    );
    fleet
}

/// A node body brokering `clusters` (name, collective server) to the federation server.
pub fn broker_config(fed: &NatsServer, clusters: &[(&str, &NatsServer)], extra: &str) -> String {
    let mut body = format!("[networks.fed]\nurls = [\"{}\"]\n\n", fed.url());
    for (name, server) in clusters {
        body.push_str(&format!(
            "[networks.{name}]\nurls = [\"{}\"]\nmax_backoff = \"500ms\"\n\n[federation.{name}]\nfederation = \"fed\"\ncollective = \"{name}\"\n{extra}\n\n",
            server.url()
        ));
    }
    body
}

/// Waits until `node` logged that `n` brokers subscribed (since its last start: counts in the
/// whole log, so pass the running total).
pub fn wait_subscribed(node: &ChoirNode, n: usize) {
    let ok = crate::common::poll_until(Duration::from_secs(30), || {
        node.log().matches("Federation broker subscribed.").count() >= n
    });
    assert!(ok, "brokers did not subscribe; log:\n{}", node.log());
}

/// The sum of `metric` over every sample whose labels contain every `labels` pair.
pub fn metric_sum(node: &ChoirNode, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let Some((_, text)) = node.get("/metrics") else {
        return 0.0;
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (name_labels, value) = line.rsplit_once(' ')?;
            let (name, rest) = name_labels.split_once('{').unwrap_or((name_labels, ""));
            if name != metric {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// One sample, for assertions that name it exactly.
pub fn metric(node: &ChoirNode, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (_, text) = node.get("/metrics")?;
    metric_value(&text, metric, labels)
}
