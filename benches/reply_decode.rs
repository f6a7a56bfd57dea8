//! Reply decoding micro-benchmark: transport → secure reply (hash verified) → reply → mcorpc,
//! as the measuring client does for every reply. Goal: at least 200 000 replies/s on one core.
//!
//!     cargo bench --bench reply_decode
//!     REPLY_DECODE_LOOPS=2000 valgrind --tool=callgrind target/release/deps/reply_decode-* \
//!         --bench generate_100_client --profile-time 1   # instruction counts per reply
//!
//! Two decoders: `protocol` (`protocol::decode_reply` + a full `RpcReply`, every field
//! materialised) and `client` (`client::ReplyDecoder` + `client::statuscode`, what the
//! measuring client's `RequestActor` runs per reply: same layers and checks, hash verified,
//! buffers reused from one reply to the next). Each runs on plain replies and on federated ones
//! (with a federation header). Prints criterion's figures, then replies/s and µs/reply of each
//! decoder on each kind of reply from a plain timed loop over 200 000 replies (single thread),
//! and writes `target/reply_decode.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use choir::actors::client::{statuscode, ReplyDecoder};
use choir::actors::protocol::{
    decode_reply, encode_reply, FederationHeader, NewRequest, Reply, RpcReply, SeenByHop,
    TransportHeaders,
};
use criterion::{Criterion, Throughput};
use serde_json::json;

const GOAL: f64 = 200_000.0;

/// Encoded `emulated0#generate(100)` replies from `n` different nodes, as the emulator sends.
fn replies(n: usize, federated: bool) -> Vec<Vec<u8>> {
    let request = NewRequest {
        message: r#"{"agent":"emulated0","action":"generate","data":{"size":100}}"#.into(),
        senderid: "client.example.net".into(),
        callerid: "choria=bench.mcollective".into(),
        collective: "mcollective".into(),
        agent: "emulated0".into(),
        ..NewRequest::default()
    }
    .build()
    .unwrap();
    let message: String = (0..100)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    (0..n)
        .map(|i| {
            let identity = format!("emu-{i}");
            let body = RpcReply::ok("generate", json!({ "message": message }))
                .to_json()
                .unwrap();
            let reply = Reply::for_request(&request, identity.clone(), body);
            let mut headers = TransportHeaders {
                mc_sender: Some(identity.clone()),
                ..TransportHeaders::default()
            };
            headers.push_seen_by(SeenByHop::new(
                "nats://127.0.0.1:4222",
                "client",
                "nats://127.0.0.1:4222",
            ));
            headers.push_seen_by(SeenByHop::new(
                "nats://127.0.0.1:4222",
                &identity,
                "nats://127.0.0.1:4222",
            ));
            if federated {
                headers.federation = Some(FederationHeader {
                    req: request.envelope.requestid.clone(),
                    reply_to: "mcollective.reply.x.y".into(),
                    target: Vec::new(),
                });
            }
            encode_reply(&reply, headers).unwrap()
        })
        .collect()
}

/// The client's per-reply work: every layer decoded, the hash verified, mcorpc parsed.
fn decode(bytes: &[u8]) -> u8 {
    let decoded = decode_reply(bytes).unwrap();
    let rpc = RpcReply::from_slice(decoded.body()).unwrap();
    black_box(&decoded.reply.envelope.senderid);
    rpc.statuscode
}

/// The measuring client's per-reply work (see `RequestActor`: one decoder per request).
fn decode_client(decoder: &mut ReplyDecoder, bytes: &[u8]) -> u8 {
    let view = decoder.decode(bytes, false).unwrap();
    let sender = view.sender.into_owned();
    let status = statuscode(view.body).unwrap();
    black_box(sender);
    status
}

/// Median replies/s of 3 timed runs of `n` decodes with `f`.
fn rate(replies: &[Vec<u8>], n: usize, mut f: impl FnMut(&[u8]) -> u8) -> (f64, Vec<f64>) {
    let mut rates = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut ok = 0usize;
        for k in 0..n {
            ok += usize::from(f(&replies[k % replies.len()]) == 0);
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(ok, n);
        rates.push(n as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    (rates[1], rates)
}

fn main() {
    let plain = replies(1_000, false);
    let federated = replies(1_000, true);
    println!(
        "reply size: {} bytes (plain), {} bytes (federated)",
        plain[0].len(),
        federated[0].len()
    );

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("reply_decode");
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        group.bench_function("generate_100", |b| {
            b.iter(|| {
                i = (i + 1) % plain.len();
                decode(&plain[i])
            })
        });
        let mut k = 0;
        let mut decoder = ReplyDecoder::new();
        group.bench_function("generate_100_client", |b| {
            b.iter(|| {
                k = (k + 1) % plain.len();
                decode_client(&mut decoder, &plain[k])
            })
        });
        let mut j = 0;
        group.bench_function("generate_100_federated", |b| {
            b.iter(|| {
                j = (j + 1) % federated.len();
                decode(&federated[j])
            })
        });
        let mut m = 0;
        let mut federated_decoder = ReplyDecoder::new();
        group.bench_function("generate_100_federated_client", |b| {
            b.iter(|| {
                m = (m + 1) % federated.len();
                decode_client(&mut federated_decoder, &federated[m])
            })
        });
        group.finish();
    }
    c.final_summary();

    // A plain timed loop on this thread: replies per second on one core.
    // REPLY_DECODE_LOOPS shortens the loop (e.g. under valgrind --tool=callgrind).
    let n = std::env::var("REPLY_DECODE_LOOPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let (protocol, protocol_runs) = rate(&plain, n, decode);
    let mut decoder = ReplyDecoder::new();
    let (client, client_runs) = rate(&plain, n, |b| decode_client(&mut decoder, b));
    let (protocol_federated, _) = rate(&federated, n, decode);
    let (client_federated, _) = rate(&federated, n, |b| decode_client(&mut decoder, b));
    for (name, r) in [("protocol", protocol), ("client", client)] {
        println!(
            "reply_decode {name:>8}: {r:.0} replies/s on one core (median of 3 runs of {n}; goal {GOAL:.0}: {})",
            if r >= GOAL { "met" } else { "NOT met" }
        );
    }
    for (name, r) in [
        ("protocol", protocol_federated),
        ("client", client_federated),
    ] {
        println!(
            "reply_decode {name:>8}, federated reply: {r:.0} replies/s, {:.2} µs/reply",
            1e6 / r
        );
    }
    let json = json!({
        "bench": "reply_decode",
        "replies_per_second": {"protocol": protocol, "client": client},
        "federated_replies_per_second": {"protocol": protocol_federated, "client": client_federated},
        "runs": {"protocol": protocol_runs, "client": client_runs},
        "reply_bytes": plain[0].len(),
        "goal": GOAL,
        "met": client >= GOAL,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("reply_decode.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    );
}
