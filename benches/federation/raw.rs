//! The throughput phase's load generator and sink: bare NATS protocol over blocking sockets
//! on their own threads.
//!
//! Everything in the benchmark shares two cores, so whatever the measuring apparatus spends
//! per message is taken from the broker. An async-nats publisher and subscriber cost about
//! 3 µs of CPU per message together (a `Message` and two channel hops each way); these write
//! pre-built `PUB` frames in large batches and count `MSG` frames by their headers without
//! looking at payloads, for a small fraction of that. They speak just enough of the protocol
//! for a short run against a local server (`CONNECT`, `SUB`, `PUB`, `PING`/`PONG`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,\"lang\":\"rust-bench\"}\r\n";

/// Position of the first `\r\n` in `bytes`.
fn line_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// Counts the messages of one subject arriving on a server, on its own thread.
pub struct Sink {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// Subscribes `subject` on the server at `addr` (returns once the server confirmed the
    /// subscription) and adds every message that arrives to `arrived`.
    pub fn start(addr: SocketAddr, subject: &str, arrived: Arc<AtomicU64>) -> Self {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut hello = CONNECT.to_vec();
        hello.extend_from_slice(format!("SUB {subject} 1\r\nPING\r\n").as_bytes());
        stream.write_all(&hello).unwrap();
        let mut reader = Reader::new(stream);
        // INFO first, then our PONG: the subscription is in place.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reader.next_op(&arrived).is_some_and(|op| op == Op::Pong) {
            assert!(Instant::now() < deadline, "sink: no PONG from {addr}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                reader.next_op(&arrived);
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Op {
    Msg,
    Pong,
    Other,
}

/// Reads server operations from a blocking socket, skipping payloads by their length.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0; 1 << 20],
            start: 0,
            end: 0,
        }
    }

    /// Reads more bytes (or times out); false if nothing came.
    fn fill(&mut self) -> bool {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        match self.stream.read(&mut self.buf[self.end..]) {
            Ok(0) => panic!("sink: the server closed the connection"),
            Ok(n) => {
                self.end += n;
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(e) => panic!("sink: read failed: {e}"),
        }
    }

    /// The next complete operation, counting messages into `arrived`; `None` when the
    /// socket had nothing for a while.
    fn next_op(&mut self, arrived: &AtomicU64) -> Option<Op> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(eol) = line_end(pending) {
                let line = &pending[..eol];
                if line.starts_with(b"MSG ") {
                    let len: usize = std::str::from_utf8(line)
                        .ok()
                        .and_then(|l| l.rsplit(' ').next())
                        .and_then(|n| n.parse().ok())
                        .expect("sink: MSG without a length");
                    let total = eol + 2 + len + 2;
                    if pending.len() >= total {
                        self.start += total;
                        arrived.fetch_add(1, Ordering::Relaxed);
                        return Some(Op::Msg);
                    }
                    if total > self.buf.len() {
                        self.buf.resize(total * 2, 0);
                    }
                } else {
                    self.start += eol + 2;
                    if line.starts_with(b"PING") {
                        self.stream.write_all(b"PONG\r\n").unwrap();
                    } else if line.starts_with(b"-ERR") {
                        panic!("sink: {}", String::from_utf8_lossy(line));
                    }
                    return Some(if line.starts_with(b"PONG") {
                        Op::Pong
                    } else {
                        Op::Other
                    });
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }
}

/// Publishes `messages` copies of `payload` to `subject` on the server at `addr`, keeping
/// at most `window` of them ahead of `arrived`, until done or `deadline`; returns how many
/// it sent and the connection (close it once they arrived).
pub fn publish(
    addr: SocketAddr,
    subject: &str,
    payload: &[u8],
    messages: u64,
    window: u64,
    arrived: &AtomicU64,
    deadline: Instant,
) -> (u64, TcpStream) {
    const BATCH: u64 = 64;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(CONNECT).unwrap();
    let mut frame = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
    frame.extend_from_slice(payload);
    frame.extend_from_slice(b"\r\n");
    let batch = frame.repeat(BATCH as usize);
    let mut sent = 0u64;
    while sent < messages && Instant::now() < deadline {
        let in_flight = sent - arrived.load(Ordering::Relaxed).min(sent);
        if in_flight + BATCH > window {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        let n = BATCH.min(messages - sent);
        stream
            .write_all(&batch[..frame.len() * n as usize])
            .unwrap();
        sent += n;
    }
    stream.flush().unwrap();
    (sent, stream)
}
