//! Property tests of the NATS wire parser over what a server (or anything pretending to be
//! one) may send: random bytes, streams of valid operations cut into arbitrary reads, and
//! those streams mutated. The parser must never panic, never claim more bytes than it was
//! given, and give the same operations and the same verdict however the bytes were split
//! into reads.

use super::wire::{parse, ServerInfo, ServerOp, MAX_CONTROL_LINE};
use crate::fuzzing::{cases, mutate, mutations};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// A server operation, owned, as generated and as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Info(Vec<u8>),
    Msg { subject: String, payload: Vec<u8> },
    Ping,
    Pong,
    Ok,
    Err(String),
}

impl Op {
    fn of(op: &ServerOp<'_>) -> Self {
        match op {
            ServerOp::Info(json) => Self::Info(json.to_vec()),
            ServerOp::Msg { subject, payload } => Self::Msg {
                subject: (*subject).to_owned(),
                payload: payload.to_vec(),
            },
            ServerOp::Ping => Self::Ping,
            ServerOp::Pong => Self::Pong,
            ServerOp::Ok => Self::Ok,
            ServerOp::Err(text) => Self::Err((*text).to_owned()),
        }
    }
}

/// How a valid operation is written on the wire (with the variations servers use: reply
/// subjects, headers, lower-case verbs).
#[derive(Debug, Clone)]
enum Wire {
    Info(String),
    Msg {
        subject: String,
        sid: u64,
        reply: Option<String>,
        headers: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Ping,
    Pong,
    Ok,
    Err(String),
}

impl Wire {
    fn write(&self, out: &mut Vec<u8>, lower: bool) {
        let verb = |v: &str| {
            if lower {
                v.to_lowercase()
            } else {
                v.to_owned()
            }
        };
        match self {
            Self::Info(json) => {
                out.extend_from_slice(format!("{} {json}\r\n", verb("INFO")).as_bytes())
            }
            Self::Msg {
                subject,
                sid,
                reply,
                headers,
                payload,
            } => {
                let reply = reply.as_ref().map(|r| format!(" {r}")).unwrap_or_default();
                match headers {
                    None => out.extend_from_slice(
                        format!(
                            "{} {subject} {sid}{reply} {}\r\n",
                            verb("MSG"),
                            payload.len()
                        )
                        .as_bytes(),
                    ),
                    Some(h) => out.extend_from_slice(
                        format!(
                            "{} {subject} {sid}{reply} {} {}\r\n",
                            verb("HMSG"),
                            h.len(),
                            h.len() + payload.len()
                        )
                        .as_bytes(),
                    ),
                }
                if let Some(h) = headers {
                    out.extend_from_slice(h);
                }
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
            Self::Ping => out.extend_from_slice(format!("{}\r\n", verb("PING")).as_bytes()),
            Self::Pong => out.extend_from_slice(format!("{}\r\n", verb("PONG")).as_bytes()),
            Self::Ok => out.extend_from_slice(b"+OK\r\n"),
            Self::Err(text) => out.extend_from_slice(format!("-ERR '{text}'\r\n").as_bytes()),
        }
    }

    fn expected(&self) -> Op {
        match self {
            Self::Info(json) => Op::Info(json.as_bytes().to_vec()),
            Self::Msg {
                subject, payload, ..
            } => Op::Msg {
                subject: subject.clone(),
                payload: payload.clone(),
            },
            Self::Ping => Op::Ping,
            Self::Pong => Op::Pong,
            Self::Ok => Op::Ok,
            Self::Err(text) => Op::Err(text.clone()),
        }
    }
}

fn subject() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_]{1,8}(\\.[a-z0-9_*>-]{1,8}){0,4}",
        "mcollective\\.reply\\.[0-9a-f]{8}\\.[0-9a-f]{32}",
        "\\PC{1,6}".prop_filter("no blanks", |s| !s.chars().any(|c| c.is_whitespace())),
    ]
}

fn wire_op() -> impl Strategy<Value = Wire> {
    prop_oneof![
        2 => (any::<u32>(), any::<bool>(), proptest::collection::vec("[a-z0-9.:]{1,12}", 0..4))
            .prop_map(|(max, ldm, urls)| Wire::Info(
                serde_json::json!({"server_id": "X", "max_payload": max, "ldm": ldm, "connect_urls": urls}).to_string()
            )),
        6 => (
            subject(),
            any::<u64>(),
            proptest::option::of(subject()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..24)
                .prop_map(|mut h| { h.splice(0..0, b"NATS/1.0\r\n".iter().copied()); h.extend_from_slice(b"\r\n\r\n"); h })),
            proptest::collection::vec(any::<u8>(), 0..96),
        )
            .prop_map(|(subject, sid, reply, headers, payload)| Wire::Msg { subject, sid, reply, headers, payload }),
        2 => Just(Wire::Ping),
        1 => Just(Wire::Pong),
        1 => Just(Wire::Ok),
        1 => "[a-zA-Z ]{0,24}".prop_map(|t| Wire::Err(t.trim().to_owned())),
    ]
}

/// The operations parsed, then the error or the bytes left unparsed.
type Parsed = (Vec<Op>, Result<Vec<u8>, String>);

/// What parsing `buf` in one go yields: the operations, then an error or the unparsed rest.
fn parse_whole(mut buf: &[u8]) -> Result<Parsed, TestCaseError> {
    let mut ops = Vec::new();
    loop {
        match parse(buf) {
            Ok(Some((op, used))) => {
                prop_assert!(
                    used > 0 && used <= buf.len(),
                    "used {} of {}",
                    used,
                    buf.len()
                );
                if let ServerOp::Msg { payload, .. } = &op {
                    prop_assert!(payload.len() < used);
                }
                ops.push(Op::of(&op));
                buf = &buf[used..];
            }
            Ok(None) => return Ok((ops, Ok(buf.to_vec()))),
            Err(e) => return Ok((ops, Err(e.to_string()))),
        }
    }
}

/// What a daemon's read loop makes of the same bytes arriving in reads of the given sizes:
/// append each read to the buffer, parse every complete operation, keep the rest.
fn parse_in_reads(bytes: &[u8], reads: &[usize]) -> Result<Parsed, TestCaseError> {
    let mut buffer = Vec::new();
    let mut ops = Vec::new();
    let mut rest = bytes;
    let mut sizes = reads.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        buffer.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match parse(&buffer) {
                Ok(Some((op, used))) => {
                    prop_assert!(used > 0 && used <= buffer.len());
                    ops.push(Op::of(&op));
                    buffer.drain(..used);
                }
                Ok(None) => break,
                Err(e) => return Ok((ops, Err(e.to_string()))),
            }
        }
    }
    Ok((ops, Ok(buffer)))
}

fn stream(ops: &[Wire], lower: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        op.write(&mut out, lower);
    }
    out
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn random_bytes_never_panic_and_never_overrun(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_whole(&bytes)?;
        if let Ok(Some((ServerOp::Info(json), _))) = parse(&bytes) {
            let _ = ServerInfo::parse(json);
        }
    }

    #[test]
    fn valid_streams_parse_to_their_operations_in_any_reads(
        ops in proptest::collection::vec(wire_op(), 1..12),
        lower in any::<bool>(),
        reads in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let bytes = stream(&ops, lower);
        let expected: Vec<Op> = ops.iter().map(Wire::expected).collect();
        let whole = parse_whole(&bytes)?;
        prop_assert_eq!(&whole, &(expected, Ok(Vec::new())));
        prop_assert_eq!(parse_in_reads(&bytes, &reads)?, whole);
        for op in &ops {
            if let Wire::Info(json) = op {
                prop_assert!(ServerInfo::parse(json.as_bytes()).is_ok());
            }
        }
    }

    #[test]
    fn every_strict_prefix_of_an_operation_waits_for_more(op in wire_op(), lower in any::<bool>()) {
        let bytes = stream(std::slice::from_ref(&op), lower);
        for cut in 0..bytes.len() {
            let got = parse(&bytes[..cut]).map_err(|e| TestCaseError::fail(format!("cut {cut}: {e}")))?;
            prop_assert!(got.is_none(), "cut {} of {:?}", cut, String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn mutated_streams_give_the_same_verdict_in_any_reads(
        ops in proptest::collection::vec(wire_op(), 1..8),
        muts in mutations(6),
        reads in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let bytes = mutate(stream(&ops, false), &muts);
        let whole = parse_whole(&bytes)?;
        prop_assert_eq!(parse_in_reads(&bytes, &reads)?, whole);
    }

    #[test]
    fn mutated_info_never_panics(
        max in any::<u64>(),
        urls in proptest::collection::vec("[a-z0-9.:]{1,12}", 0..4),
        muts in mutations(6),
    ) {
        let json = serde_json::json!({"server_id": "X", "max_payload": max, "tls_required": false, "connect_urls": urls, "ldm": true}).to_string();
        let bytes = mutate(json.into_bytes(), &muts);
        let _ = ServerInfo::parse(&bytes);
        let mut line = b"INFO ".to_vec();
        line.extend_from_slice(&bytes);
        line.extend_from_slice(b"\r\n");
        if let Ok(Some((ServerOp::Info(json), _))) = parse(&line) {
            let _ = ServerInfo::parse(json);
        }
    }

    #[test]
    fn announced_sizes_are_never_trusted(
        subject in subject(),
        size in prop_oneof![Just(usize::MAX), Just(u64::MAX as usize - 1), any::<usize>(), 0usize..(1 << 27)],
        header in any::<usize>(),
        have in 0usize..64,
    ) {
        // The parser waits for (or refuses) what a header announces; it never allocates it,
        // never adds it up past usize, and never reads past what it was given.
        let mut bytes = format!("MSG {subject} 1 {size}\r\n").into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', have));
        let _ = parse_whole(&bytes)?;
        let mut bytes = format!("HMSG {subject} 1 {header} {size}\r\n").into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', have));
        let _ = parse_whole(&bytes)?;
    }
}

#[test]
fn control_lines_up_to_the_cap_parse_the_same_in_any_reads() {
    // Near the control-line cap: a MSG line whose length (without CRLF) is just below it.
    for len in MAX_CONTROL_LINE - 40..MAX_CONTROL_LINE - 1 {
        let subject = "a".repeat(len - "MSG  1 0".len());
        let bytes = format!("MSG {subject} 1 0\r\n\r\n").into_bytes();
        let whole = parse_whole(&bytes).unwrap();
        assert_eq!(whole.0.len(), 1, "line of {len}");
        for read in [1, 7, 1024, 4096] {
            assert_eq!(
                parse_in_reads(&bytes, &[read]).unwrap(),
                whole,
                "line of {len}, reads of {read}"
            );
        }
    }
}
