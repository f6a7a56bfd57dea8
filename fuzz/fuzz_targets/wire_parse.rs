//! The emulator's NATS wire parser (a private module, compiled in here from its file): no
//! panic, never more bytes claimed than given, and the same operations and verdict whether
//! the input arrives in one read or byte by byte.
#![no_main]

#[allow(dead_code)]
#[path = "../../actors/src/emulator/wire.rs"]
mod wire;

use libfuzzer_sys::fuzz_target;

fn ops(mut buf: &[u8]) -> (Vec<String>, Result<Vec<u8>, String>) {
    let mut out = Vec::new();
    loop {
        match wire::parse(buf) {
            Ok(Some((op, used))) => {
                assert!(used > 0 && used <= buf.len());
                out.push(format!("{op:?}"));
                buf = &buf[used..];
            }
            Ok(None) => return (out, Ok(buf.to_vec())),
            Err(e) => return (out, Err(e.to_string())),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = ops(data);
    let mut buffer = Vec::new();
    let mut seen = Vec::new();
    let mut verdict = None;
    for byte in data {
        buffer.push(*byte);
        loop {
            match wire::parse(&buffer) {
                Ok(Some((op, used))) => {
                    seen.push(format!("{op:?}"));
                    buffer.drain(..used);
                }
                Ok(None) => break,
                Err(e) => {
                    verdict = Some(Err(e.to_string()));
                    break;
                }
            }
        }
        if verdict.is_some() {
            break;
        }
    }
    let verdict = verdict.unwrap_or(Ok(buffer));
    assert_eq!((seen, verdict), whole);
});
