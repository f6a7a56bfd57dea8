//! The faults the soak injects, and the garbage it sends to every subject choir listens to.

use std::time::Duration;

use async_nats::jetstream;
use choir::actors::protocol::{
    encode_base64, encode_request, subject, FederationHeader, NewRequest, TransportHeaders,
};

use super::load::{registration, CLUSTER, REGISTRATION};

/// A kind of fault, for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Kind {
    /// SIGKILL of choir, restarted after a moment.
    KillChoir,
    /// SIGKILL of a nats-server (by index), restarted after a moment.
    KillServer(usize),
    /// SIGSTOP of a nats-server for a few seconds, then SIGCONT.
    StopServer(usize),
    /// The target stream refuses new messages for a few seconds.
    FullTarget,
    /// Garbage on every subject choir listens to.
    Garbage,
}

impl Kind {
    /// Its name in the table and the JSON.
    pub fn name(self, servers: &[&str]) -> String {
        match self {
            Self::KillChoir => "SIGKILL choir".into(),
            Self::KillServer(i) => format!("SIGKILL nats-server {}", servers[i]),
            Self::StopServer(i) => format!("SIGSTOP nats-server {}", servers[i]),
            Self::FullTarget => "full target stream".into(),
            Self::Garbage => "garbage on every subject".into(),
        }
    }
}

/// A tiny xorshift generator: reproducible with `SOAK_SEED`, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `lo..hi` (ms).
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One round of the fault cycle: every kind once, in a random order (so a run of any length
/// injects every kind about equally often).
pub fn cycle(rng: &mut Rng, servers: usize) -> Vec<Kind> {
    let mut kinds = vec![Kind::KillChoir, Kind::FullTarget, Kind::Garbage];
    for i in 0..servers {
        kinds.push(Kind::KillServer(i));
        kinds.push(Kind::StopServer(i));
    }
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i + 1));
    }
    kinds
}

/// Payloads that are not what a subscriber expects, from random bytes to valid messages with
/// hostile values.
pub fn garbage_payloads(rng: &mut Rng) -> Vec<Vec<u8>> {
    let (_, valid) = registration("soak-garbage");
    let mut out = vec![
        Vec::new(),
        b"null".to_vec(),
        b"{}".to_vec(),
        b"[".repeat(10_000),
        br#"{"protocol":"choria:transport:1","data":"not base64!","headers":{}}"#.to_vec(),
        format!(
            r#"{{"protocol":"choria:transport:1","data":"{}","headers":{{}}}}"#,
            encode_base64(b"{\"protocol\":\"choria:secure:request:1\",\"message\":\"x\"}")
        )
        .into_bytes(),
        valid[..valid.len() / 2].to_vec(),
    ];
    for _ in 0..8 {
        let n = rng.below(300);
        out.push(rng.bytes(n));
        let mut flipped = valid.clone();
        let i = rng.below(flipped.len());
        flipped[i] ^= (rng.next() as u8).max(1);
        out.push(flipped);
    }
    // Valid requests with hostile values: a sender that makes a very long subject, one with
    // blanks and wildcards, and a time after the year 9999.
    for sender in ["x".repeat(5000), "a b.*.>\t".to_owned()] {
        let request = NewRequest {
            message: "{}".into(),
            senderid: sender.clone(),
            callerid: "choria=garbage".into(),
            collective: "mcollective".into(),
            agent: "registration".into(),
            ..NewRequest::default()
        }
        .build()
        .unwrap();
        out.push(encode_request(&request, TransportHeaders::default()).unwrap());
    }
    let request = NewRequest {
        message: "ping".into(),
        senderid: "garbage".into(),
        callerid: "choria=garbage".into(),
        collective: "mcollective".into(),
        agent: "discovery".into(),
        time: Some(253_402_300_800),
        ..NewRequest::default()
    }
    .build()
    .unwrap();
    out.push(encode_request(&request, TransportHeaders::default()).unwrap());
    // Federated requests that try to bridge, or to publish to an overlong subject.
    for target in [
        "secret.subject".to_owned(),
        format!("mcollective.node.{}", "n".repeat(5000)),
    ] {
        let mut headers = TransportHeaders::for_request("mcollective.reply.x.y", "garbage");
        headers.federation = Some(FederationHeader {
            req: request.envelope.requestid.clone(),
            reply_to: String::new(),
            target: vec![target],
        });
        out.push(encode_request(&request, headers).unwrap());
    }
    out
}

/// Sends every garbage payload to every subject choir listens to on `region` and
/// `federation`, and into the replicator's source stream; returns how many messages.
pub async fn send_garbage(
    region: &async_nats::Client,
    federation: &async_nats::Client,
    rng: &mut Rng,
) -> u64 {
    let payloads = garbage_payloads(rng);
    let region_subjects = [
        REGISTRATION.to_owned(),
        subject::federation_replies(CLUSTER),
        subject::broadcast_agent("mcollective", "discovery"),
        subject::broadcast_agent("mcollective", "rpcutil"),
        subject::broadcast_agent("mcollective", "emulated0"),
        subject::node("mcollective", "emu-0"),
    ];
    let mut sent = 0;
    for payload in &payloads {
        for s in &region_subjects {
            if region
                .publish(s.clone(), payload.clone().into())
                .await
                .is_ok()
            {
                sent += 1;
            }
        }
        let fed = subject::federation_requests(CLUSTER);
        if federation
            .publish(fed, payload.clone().into())
            .await
            .is_ok()
        {
            sent += 1;
        }
    }
    // Into the source stream itself: what the replicator reads (no sender: always copied),
    // and one document whose sender would make an overlong advisory subject.
    let js = jetstream::new(region.clone());
    let long_sender = serde_json::json!({"sender": "s".repeat(5000), "data": "{}"})
        .to_string()
        .into_bytes();
    let stream_payloads = payloads.iter().take(8).chain(std::iter::once(&long_sender));
    for (i, payload) in stream_payloads.enumerate() {
        let ack = js
            .publish(format!("registration.garbage.{i}"), payload.clone().into())
            .await;
        if let Ok(ack) = ack {
            if tokio::time::timeout(Duration::from_secs(2), ack)
                .await
                .is_ok_and(|a| a.is_ok())
            {
                sent += 1;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), region.flush()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), federation.flush()).await;
    sent
}

/// Makes the target stream refuse new messages (`max_msgs` = what it holds, discard new)
/// or, with `full = false`, takes the limit away again. Retries until it worked or
/// `deadline`.
pub async fn set_target_full(central: &async_nats::Client, stream: &str, full: bool) -> bool {
    let js = jetstream::new(central.clone());
    for _ in 0..40 {
        let attempt = async {
            let mut s = js.get_stream(stream).await.ok()?;
            let info = s.info().await.ok()?.clone();
            let mut config = info.config;
            config.max_messages = if full {
                i64::try_from(info.state.messages)
                    .unwrap_or(i64::MAX)
                    .max(1)
            } else {
                -1
            };
            js.update_stream(config).await.ok()
        };
        if tokio::time::timeout(Duration::from_secs(3), attempt)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}
