//! The NATS client protocol as an emulated daemon speaks it on its own connection: server
//! operations parsed in place from a byte buffer, client operations appended to one.
//!
//! Only what a Choria daemon needs: `INFO`, `MSG`/`HMSG`, `PING`/`PONG`, `+OK` and `-ERR`
//! from the server; `CONNECT`, `SUB`, `PUB`, `PING`/`PONG` to it. Nothing here does I/O, so
//! a daemon answers a request in the same poll that read it (see
//! [`WireDaemon`](super::wire_daemon)).

use serde::{Deserialize, Serialize};

/// The longest control line accepted from a server (nats-server's own limit is 4 KiB).
pub(super) const MAX_CONTROL_LINE: usize = 4096;

/// The longest `INFO` line accepted: a server of a large cluster lists every `connect_urls`
/// entry in it, which can take more than [`MAX_CONTROL_LINE`].
pub(super) const MAX_INFO_LINE: usize = 64 * 1024;

/// Largest message a server may announce (nats-server's `max_payload` tops out at 64 MiB);
/// anything larger is a broken or hostile server, refused before any arithmetic on it.
pub(super) const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// `PING\r\n`.
pub(super) const PING: &[u8] = b"PING\r\n";

/// `PONG\r\n`.
pub(super) const PONG: &[u8] = b"PONG\r\n";

/// Errors of the NATS wire protocol.
#[derive(Debug, thiserror::Error)]
pub(super) enum WireError {
    /// The server sent something that is not a NATS server operation.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server sent `-ERR`.
    #[error("server error: {0}")]
    Server(String),
    /// The server's `INFO` cannot be read.
    #[error("cannot read server info")]
    Info(#[from] serde_json::Error),
    /// A subject is empty or contains whitespace.
    #[error("invalid subject {0:?}")]
    Subject(String),
    /// The socket failed.
    #[error("i/o")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The server did not answer the handshake in time.
    #[error("handshake timed out")]
    Timeout,
    /// The server did not answer our `PING`s: the connection is half-open.
    #[error("stale connection: {0} pings without a pong")]
    Stale(u32),
    /// The server is going away (lame-duck mode).
    #[error("server entered lame-duck mode")]
    LameDuck,
    /// The server wants something this connection does not do (TLS).
    #[error("server requires {0}")]
    Unsupported(&'static str),
}

/// One operation sent by the server, borrowing from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ServerOp<'a> {
    /// `INFO {json}`.
    Info(&'a [u8]),
    /// `MSG` or `HMSG` (headers skipped: Choria carries everything in the payload).
    Msg {
        /// The subject it was published to.
        subject: &'a str,
        /// The payload.
        payload: &'a [u8],
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK`.
    Ok,
    /// `-ERR '<message>'`.
    Err(&'a str),
}

/// The parts of the server's `INFO` the daemon uses.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ServerInfo {
    /// The largest payload the server accepts.
    #[serde(default)]
    pub max_payload: usize,
    /// Whether the server insists on TLS.
    #[serde(default)]
    pub tls_required: bool,
    /// Client URLs (`host:port`) of the other servers of its cluster.
    #[serde(default)]
    pub connect_urls: Vec<String>,
    /// The server is in lame-duck mode: it is being drained and its clients should move.
    #[serde(default)]
    pub ldm: bool,
}

impl ServerInfo {
    /// Parses the JSON of an `INFO` operation.
    pub(super) fn parse(json: &[u8]) -> Result<Self, WireError> {
        Ok(serde_json::from_slice(json)?)
    }
}

/// The `CONNECT` options of an emulated daemon.
#[derive(Debug, Serialize)]
pub(super) struct ConnectInfo<'a> {
    /// Never `+OK` every operation.
    pub verbose: bool,
    /// No strict subject checks.
    pub pedantic: bool,
    /// Whether TLS is required (never, on this connection).
    pub tls_required: bool,
    /// The connection's name in the server's monitoring.
    pub name: &'a str,
    /// Client language.
    pub lang: &'static str,
    /// Client version.
    pub version: &'static str,
    /// Protocol level 1 (the server may send `INFO` updates).
    pub protocol: u8,
    /// Receive own messages.
    pub echo: bool,
    /// Understands `HMSG`.
    pub headers: bool,
    /// Wants no-responder status messages (as async-nats asks).
    pub no_responders: bool,
    /// User name, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    /// Password, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<&'a str>,
    /// Token, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<&'a str>,
}

impl<'a> ConnectInfo<'a> {
    /// The options of a plaintext connection named `name`, without credentials.
    pub(super) fn new(name: &'a str) -> Self {
        Self {
            verbose: false,
            pedantic: false,
            tls_required: false,
            name,
            lang: "rust",
            version: env!("CARGO_PKG_VERSION"),
            protocol: 1,
            echo: true,
            headers: true,
            no_responders: true,
            user: None,
            pass: None,
            auth_token: None,
        }
    }
}

/// Appends `CONNECT {json}\r\n`.
pub(super) fn put_connect(out: &mut Vec<u8>, info: &ConnectInfo<'_>) -> Result<(), WireError> {
    out.extend_from_slice(b"CONNECT ");
    serde_json::to_writer(&mut *out, info)?;
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends `SUB <subject> <sid>\r\n`.
pub(super) fn put_sub(out: &mut Vec<u8>, subject: &str, sid: u64) -> Result<(), WireError> {
    check_subject(subject)?;
    out.extend_from_slice(b"SUB ");
    out.extend_from_slice(subject.as_bytes());
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(sid).as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends `PUB <subject> <size>\r\n<payload>\r\n`.
pub(super) fn put_pub(out: &mut Vec<u8>, subject: &str, payload: &[u8]) -> Result<(), WireError> {
    check_subject(subject)?;
    out.reserve(subject.len() + payload.len() + 20);
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject.as_bytes());
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(payload.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// A subject must be non-empty and free of whitespace and control characters, or it would
/// break the operation it is written into.
fn check_subject(subject: &str) -> Result<(), WireError> {
    if subject.is_empty() || subject.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(WireError::Subject(subject.to_owned()));
    }
    Ok(())
}

/// Parses the operation at the start of `buf`: `Ok(None)` when it is not complete yet,
/// otherwise the operation and how many bytes it took.
pub(super) fn parse(buf: &[u8]) -> Result<Option<(ServerOp<'_>, usize)>, WireError> {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        // A partial line is judged only by the cap of what it can still become: an `INFO`
        // may grow up to its own cap, anything else up to the control-line cap. A `\r`
        // already read is the start of the line's end, not part of the line.
        let partial = buf.strip_suffix(b"\r").unwrap_or(buf);
        if partial.len() > line_cap(partial) {
            return Err(WireError::Protocol("control line too long".into()));
        }
        return Ok(None);
    };
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    if line.len() > line_cap(line) {
        return Err(WireError::Protocol("control line too long".into()));
    }
    let after = end + 1;
    let (verb, rest) = match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], trim(&line[i + 1..])),
        None => (line, &line[line.len()..]),
    };
    let op = if verb.eq_ignore_ascii_case(b"MSG") {
        return parse_msg(buf, rest, after, false);
    } else if verb.eq_ignore_ascii_case(b"HMSG") {
        return parse_msg(buf, rest, after, true);
    } else if verb.eq_ignore_ascii_case(b"PING") {
        ServerOp::Ping
    } else if verb.eq_ignore_ascii_case(b"PONG") {
        ServerOp::Pong
    } else if verb.eq_ignore_ascii_case(b"+OK") {
        ServerOp::Ok
    } else if verb.eq_ignore_ascii_case(b"INFO") {
        ServerOp::Info(rest)
    } else if verb.eq_ignore_ascii_case(b"-ERR") {
        let text = std::str::from_utf8(rest).unwrap_or("(not UTF-8)");
        ServerOp::Err(text.trim_matches('\''))
    } else {
        return Err(WireError::Protocol(format!(
            "unknown operation {:?}",
            String::from_utf8_lossy(verb)
        )));
    };
    Ok(Some((op, after)))
}

/// The longest line allowed for the (possibly partial) line at the start of `line`.
fn line_cap(line: &[u8]) -> usize {
    let prefix = &line[..line.len().min(5)];
    let info = b"INFO ";
    if prefix.eq_ignore_ascii_case(&info[..prefix.len()]) {
        MAX_INFO_LINE
    } else {
        MAX_CONTROL_LINE
    }
}

/// `MSG <subject> <sid> [reply-to] <size>` or
/// `HMSG <subject> <sid> [reply-to] <header size> <total size>`, then the payload and `\r\n`.
fn parse_msg<'a>(
    buf: &'a [u8],
    args: &'a [u8],
    start: usize,
    headers: bool,
) -> Result<Option<(ServerOp<'a>, usize)>, WireError> {
    let bad = || {
        WireError::Protocol(format!(
            "bad MSG arguments {:?}",
            String::from_utf8_lossy(args)
        ))
    };
    let mut parts = args
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|p| !p.is_empty());
    let mut fields = [&b""[..]; 5];
    let mut n = 0;
    for part in parts.by_ref() {
        if n == fields.len() {
            return Err(bad());
        }
        fields[n] = part;
        n += 1;
    }
    let (subject, sid, sizes) = match (headers, n) {
        (false, 3) | (false, 4) => (fields[0], fields[1], &fields[n - 1..n]),
        (true, 4) | (true, 5) => (fields[0], fields[1], &fields[n - 2..n]),
        _ => return Err(bad()),
    };
    let number = |b: &[u8]| -> Result<usize, WireError> {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    number(sid)?;
    let (header_len, total) = match sizes {
        [total] => (0, number(total)?),
        [header, total] => (number(header)?, number(total)?),
        _ => return Err(bad()),
    };
    if header_len > total || total > MAX_MESSAGE {
        return Err(bad());
    }
    let end = start.saturating_add(total);
    if buf.len() < end.saturating_add(2) {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(WireError::Protocol("payload not followed by CRLF".into()));
    }
    let subject = std::str::from_utf8(subject).map_err(|_| bad())?;
    Ok(Some((
        ServerOp::Msg {
            subject,
            payload: &buf[start + header_len..end],
        },
        end + 2,
    )))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut buf: &[u8]) -> Vec<ServerOp<'_>> {
        let mut ops = Vec::new();
        while let Some((op, used)) = parse(buf).unwrap() {
            ops.push(op);
            buf = &buf[used..];
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        ops
    }

    #[test]
    fn parses_every_server_operation() {
        let ops = all(b"INFO {\"max_payload\":1048576}\r\nPING\r\npong\r\n+OK\r\n-ERR 'Authorization Violation'\r\nMSG a.b 7 5\r\nhello\r\nMSG a.c 8 r.x 0\r\n\r\nHMSG a.d 9 12 17\r\nNATS/1.0\r\n\r\nhello\r\n");
        assert_eq!(
            ops,
            vec![
                ServerOp::Info(b"{\"max_payload\":1048576}"),
                ServerOp::Ping,
                ServerOp::Pong,
                ServerOp::Ok,
                ServerOp::Err("Authorization Violation"),
                ServerOp::Msg {
                    subject: "a.b",
                    payload: b"hello"
                },
                ServerOp::Msg {
                    subject: "a.c",
                    payload: b""
                },
                ServerOp::Msg {
                    subject: "a.d",
                    payload: b"hello"
                },
            ]
        );
        let info = ServerInfo::parse(b"{\"max_payload\":1048576,\"x\":[1]}").unwrap();
        assert_eq!(info.max_payload, 1_048_576);
        assert!(!info.tls_required);
    }

    #[test]
    fn incomplete_operations_wait_for_more() {
        let full = b"MSG a.b 7 r 5\r\nhello\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(full).unwrap().is_some());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for bad in [
            &b"HELLO\r\n"[..],
            b"MSG a.b\r\n",
            b"MSG a.b x 5\r\nhello\r\n",
            b"MSG a.b 1 5\r\nhelloXX",
            b"HMSG a.b 1 9 5\r\nhello\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&[b'x'; MAX_CONTROL_LINE + 1]).is_err());
        // An absurd announced size is refused, not added up.
        assert!(parse(b"MSG a 1 18446744073709551615\r\n").is_err());
        assert!(parse(b"HMSG a 1 2 99999999999\r\n").is_err());
    }

    #[test]
    fn a_line_of_exactly_the_cap_waits_for_its_newline_after_its_cr() {
        let line = format!("-ERR '{}'\r\n", "x".repeat(MAX_CONTROL_LINE - 7));
        let bytes = line.as_bytes();
        assert_eq!(bytes.len(), MAX_CONTROL_LINE + 2);
        // Read up to and including the `\r`: not too long, just not complete.
        assert!(matches!(parse(&bytes[..bytes.len() - 1]), Ok(None)));
        // The whole line is accepted, as it is when read in one piece.
        assert!(matches!(parse(bytes), Ok(Some((ServerOp::Err(_), n))) if n == bytes.len()));
        // One byte more is too long, however it is read.
        let longer = format!("-ERR '{}'\r\n", "x".repeat(MAX_CONTROL_LINE - 6));
        assert!(parse(&longer.as_bytes()[..longer.len() - 1]).is_err());
        assert!(parse(longer.as_bytes()).is_err());
    }

    #[test]
    fn a_long_info_line_read_in_parts_is_judged_only_when_complete() {
        let urls: Vec<String> = (0..400)
            .map(|i| format!("\"10.0.{}.{}:4222\"", i / 250, i % 250))
            .collect();
        let line = format!(
            "INFO {{\"max_payload\":1048576,\"ldm\":true,\"connect_urls\":[{}]}}\r\n",
            urls.join(",")
        );
        assert!(line.len() > MAX_CONTROL_LINE, "{}", line.len());
        let full = line.as_bytes();
        for cut in (0..full.len()).step_by(97) {
            assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (op, used) = parse(full).unwrap().unwrap();
        assert_eq!(used, full.len());
        let ServerOp::Info(json) = op else {
            panic!("not INFO: {op:?}")
        };
        let info = ServerInfo::parse(json).unwrap();
        assert!(info.ldm);
        assert_eq!(info.connect_urls.len(), 400);
        assert_eq!(info.connect_urls[0], "10.0.0.0:4222");
    }

    #[test]
    fn an_overlong_control_line_is_refused_whole_or_partial() {
        let long_msg = format!("MSG {} 1 0\r\n\r\n", "a".repeat(MAX_CONTROL_LINE));
        assert!(parse(long_msg.as_bytes()).is_err());
        assert!(parse(&long_msg.as_bytes()[..MAX_CONTROL_LINE + 2]).is_err());
        let long_info = format!("INFO {{\"x\":\"{}\"}}", "a".repeat(MAX_INFO_LINE));
        assert!(parse(long_info.as_bytes()).is_err());
        assert!(parse(format!("{long_info}\r\n").as_bytes()).is_err());
        // Short prefixes of INFO are still INFO-to-be.
        assert_eq!(parse(b"IN").unwrap(), None);
    }

    #[test]
    fn writes_client_operations() {
        let mut out = Vec::new();
        put_sub(&mut out, "mcollective.node.a", 3).unwrap();
        put_pub(&mut out, "r.x", b"hi").unwrap();
        assert_eq!(out, b"SUB mcollective.node.a 3\r\nPUB r.x 2\r\nhi\r\n");
        for bad in ["", "a b", "a\r\nPUB x 1", "a\tb"] {
            assert!(put_pub(&mut out, bad, b"x").is_err(), "{bad:?}");
        }
        let mut connect = Vec::new();
        let mut info = ConnectInfo::new("d-1");
        info.user = Some("u");
        put_connect(&mut connect, &info).unwrap();
        let text = String::from_utf8(connect).unwrap();
        assert!(text.starts_with("CONNECT {\"verbose\":false,"), "{text}");
        assert!(text.contains("\"user\":\"u\"") && !text.contains("auth_token"));
        assert!(text.ends_with("}\r\n"));
    }
}
