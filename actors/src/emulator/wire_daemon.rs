//! `WireDaemon`: one emulated daemon on its own NATS connection, speaking the protocol itself.
//!
//! A real NATS connection per daemon, as [`EmulatedNodeActor`](super::EmulatedNodeActor) has,
//! without a client library in between: the daemon is one task that owns its socket. When the
//! socket becomes readable the task reads into its thread's buffer, parses the operations
//! ([`wire`](super::wire)), answers each request through [`EmulatedNode::respond`] and writes
//! the replies back in the same poll: one task wake-up, one read and one write per request,
//! and no per-daemon buffers while it is idle. (Through async-nats a reply takes three
//! wake-ups: connection task → subscription channel → daemon → publish channel → connection
//! task.)
//!
//! It answers the server's `PING`s, publishes registration on its timer and, when the
//! connection is lost, reconnects and resubscribes by itself (jittered backoff, counted like
//! async-nats' reconnects). Used for plaintext servers with no credentials, a user and
//! password, or a token ([`plain_address`]); TLS, credentials files and nkeys go through
//! async-nats.

use std::future::{poll_fn, Future as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

use super::connect::reconnect_backoff;
use super::fleet::{FleetShared, RegistrationPlan};
use super::request_cache::{with_scratch, ThreadScratch};
use super::wire::{self, ConnectInfo, ServerInfo, ServerOp, WireError};
use super::{registration, EmulatedNode, EmulatorMetrics, Incoming};
use crate::connection::{backoff, Auth, NetworkSettings};
use crate::error_chain::Chain;
use crate::protocol::unix_now;

/// Bytes read from the socket at once (into the thread's buffer).
const READ_CHUNK: usize = 64 * 1024;

/// Unsent bytes above which the daemon stops reading until the server takes some.
const MAX_BACKLOG: usize = 1024 * 1024;

/// The `host:port` a [`WireDaemon`] reaches `url` at, or `None` when `url` or `settings` need
/// something only async-nats does (TLS, a credentials file, an nkey, credentials in the URL).
pub(super) fn plain_address(settings: &NetworkSettings, url: &str) -> Option<String> {
    if settings.tls.is_some()
        || matches!(settings.auth, Auth::CredentialsFile(_) | Auth::NkeySeed(_))
    {
        return None;
    }
    let rest = url.strip_prefix("nats://").unwrap_or(url);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains("://") || rest.contains(['@', '/', '?']) {
        return None;
    }
    let has_port = match rest.rfind(']') {
        Some(bracket) => rest[bracket..].contains(':'),
        None => rest.contains(':'),
    };
    Some(if has_port {
        rest.to_owned()
    } else {
        format!("{rest}:4222")
    })
}

/// One emulated daemon speaking NATS on its own socket.
pub(super) struct WireDaemon {
    node: EmulatedNode,
    address: String,
    fleet: Arc<FleetShared>,
}

impl WireDaemon {
    /// A daemon `node` that will connect to `address` (see [`plain_address`]).
    pub(super) fn new(node: EmulatedNode, address: String, fleet: Arc<FleetShared>) -> Self {
        Self {
            node,
            address,
            fleet,
        }
    }

    /// Connects (holding a slot of the fleet's connect semaphore per attempt, retrying with
    /// backoff), then answers requests until the task is dropped, reconnecting whenever the
    /// connection is lost.
    pub(super) async fn run(self) {
        let Self {
            node,
            address,
            fleet,
        } = self;
        let name = format!("choir-emulator-{}", node.identity());
        let subjects = node.subjects();
        let metrics = &fleet.metrics;
        let mut attempt = 0u32;
        let mut session = loop {
            let permit = fleet.connect_slots.acquire().await;
            let opened = Session::open(&address, &fleet.settings, &name, &subjects).await;
            drop(permit);
            match opened {
                Ok(session) => break session,
                Err(error) => {
                    metrics.connect_failures.inc();
                    let delay =
                        backoff(attempt, Duration::from_millis(200), Duration::from_secs(5));
                    debug!(%address, error = %Chain(&error), retry_in = ?delay, "Emulator cannot connect yet.");
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        };
        let mut presence = Presence::new(metrics.clone());
        let mut registration = fleet.registration.clone().map(Registration::new);
        loop {
            let error =
                poll_fn(|cx| session.poll_serve(cx, &node, &fleet, &mut registration)).await;
            presence.lost();
            debug!(identity = node.identity(), error = %Chain(&error), "Emulated daemon lost its connection.");
            let mut attempts = 1usize;
            session = loop {
                tokio::time::sleep(reconnect_backoff(attempts)).await;
                match Session::open(&address, &fleet.settings, &name, &subjects).await {
                    Ok(session) => break session,
                    Err(error) => {
                        debug!(%address, error = %Chain(&error), "Emulated daemon cannot reconnect yet.");
                        attempts = attempts.saturating_add(1);
                    }
                }
            };
            presence.back();
        }
    }
}

/// Keeps the fleet's `started` and `connected` gauges right for one daemon, also when its task
/// is dropped (the fleet stopping).
struct Presence {
    metrics: EmulatorMetrics,
    connected: bool,
}

impl Presence {
    fn new(metrics: EmulatorMetrics) -> Self {
        metrics.started.inc();
        metrics.connected.inc();
        Self {
            metrics,
            connected: true,
        }
    }

    fn lost(&mut self) {
        if std::mem::replace(&mut self.connected, false) {
            self.metrics.connected.dec();
        }
    }

    fn back(&mut self) {
        if !std::mem::replace(&mut self.connected, true) {
            self.metrics.connected.inc();
            self.metrics.reconnects.inc();
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.lost();
        self.metrics.started.dec();
    }
}

/// A daemon's registration timer and sequence (kept across reconnects).
struct Registration {
    plan: Arc<RegistrationPlan>,
    timer: Pin<Box<Sleep>>,
    sequence: u64,
}

impl Registration {
    fn new(plan: Arc<RegistrationPlan>) -> Self {
        let splay = if plan.splay {
            Duration::from_millis(rand::random::<u64>() % duration_ms(plan.interval))
        } else {
            Duration::ZERO
        };
        Self {
            timer: Box::pin(tokio::time::sleep(splay)),
            plan,
            sequence: 0,
        }
    }

    /// Appends the next registration to `out` when the timer is due.
    fn poll_due(
        &mut self,
        cx: &mut Context<'_>,
        node: &EmulatedNode,
        fleet: &FleetShared,
        out: &mut Vec<u8>,
    ) {
        if self.timer.as_mut().poll(cx).is_pending() {
            return;
        }
        self.timer
            .as_mut()
            .reset(Instant::now() + self.plan.interval);
        // Register the waker for the next tick.
        let _ = self.timer.as_mut().poll(cx);
        self.sequence += 1;
        match registration::encode(node, self.sequence) {
            Ok(payload) => match wire::put_pub(out, &self.plan.subject, &payload) {
                Ok(()) => {
                    fleet.metrics.registrations.inc();
                }
                Err(_) => {
                    fleet.metrics.publish_errors.inc();
                }
            },
            Err(error) => warn!(identity = node.identity(), %error, "Cannot encode registration."),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// One connection of a daemon: the socket, a partial operation left over from the last read,
/// and bytes the socket did not take yet.
struct Session {
    stream: TcpStream,
    partial: Vec<u8>,
    backlog: Vec<u8>,
    max_payload: usize,
    /// `partial` may hold complete operations (read during the handshake).
    unparsed: bool,
}

impl Session {
    /// Connects to `address`, reads the server's `INFO`, sends `CONNECT`, one `SUB` per
    /// subject and a `PING`, and waits for the `PONG` (the subscriptions are then in place),
    /// all within the settings' connect timeout.
    async fn open(
        address: &str,
        settings: &NetworkSettings,
        name: &str,
        subjects: &[String],
    ) -> Result<Self, WireError> {
        tokio::time::timeout(
            settings.connect_timeout,
            Self::handshake(address, settings, name, subjects),
        )
        .await
        .map_err(|_| WireError::Timeout)?
    }

    async fn handshake(
        address: &str,
        settings: &NetworkSettings,
        name: &str,
        subjects: &[String],
    ) -> Result<Self, WireError> {
        let mut stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let mut input = Vec::with_capacity(1024);
        let info = loop {
            if let Some((op, used)) = wire::parse(&input)? {
                let ServerOp::Info(json) = op else {
                    return Err(WireError::Protocol("expected INFO first".into()));
                };
                let info = ServerInfo::parse(json)?;
                input.drain(..used);
                break info;
            }
            read_more(&mut stream, &mut input).await?;
        };
        if info.tls_required {
            return Err(WireError::Unsupported("TLS"));
        }
        let mut connect = ConnectInfo::new(name);
        match &settings.auth {
            Auth::UserPassword { user, password } => {
                connect.user = Some(user);
                connect.pass = Some(password);
            }
            Auth::Token(token) => connect.auth_token = Some(token),
            _ => {}
        }
        let mut out = Vec::with_capacity(256 + subjects.len() * 64);
        wire::put_connect(&mut out, &connect)?;
        for (sid, subject) in (1u64..).zip(subjects) {
            wire::put_sub(&mut out, subject, sid)?;
        }
        out.extend_from_slice(wire::PING);
        stream.write_all(&out).await?;
        loop {
            let mut pongs = Vec::new();
            let mut at = 0;
            while let Some((op, used)) = wire::parse(&input[at..])? {
                match op {
                    ServerOp::Pong => {
                        input.drain(..at + used);
                        stream.write_all(&pongs).await?;
                        return Ok(Self::new(stream, input, info.max_payload));
                    }
                    ServerOp::Ping => pongs.extend_from_slice(wire::PONG),
                    ServerOp::Err(text) => return Err(WireError::Server(text.to_owned())),
                    // A request already: the subscriptions are in place; the session
                    // answers it (and takes the PONG later).
                    ServerOp::Msg { .. } => {
                        input.drain(..at);
                        stream.write_all(&pongs).await?;
                        return Ok(Self::new(stream, input, info.max_payload));
                    }
                    ServerOp::Info(_) | ServerOp::Ok => {}
                }
                at += used;
            }
            input.drain(..at);
            stream.write_all(&pongs).await?;
            read_more(&mut stream, &mut input).await?;
        }
    }

    fn new(stream: TcpStream, partial: Vec<u8>, max_payload: usize) -> Self {
        Self {
            stream,
            unparsed: !partial.is_empty(),
            partial,
            backlog: Vec::new(),
            max_payload: if max_payload == 0 {
                usize::MAX
            } else {
                max_payload
            },
        }
    }

    /// Serves the connection: registration when due, the backlog written, then every read
    /// answered. Ready only when the connection is lost, with why.
    fn poll_serve(
        &mut self,
        cx: &mut Context<'_>,
        node: &EmulatedNode,
        fleet: &FleetShared,
        registration: &mut Option<Registration>,
    ) -> Poll<WireError> {
        if let Some(registration) = registration {
            registration.poll_due(cx, node, fleet, &mut self.backlog);
        }
        loop {
            if !self.backlog.is_empty() {
                if let Poll::Ready(Err(error)) = self.poll_backlog(cx) {
                    return Poll::Ready(error);
                }
                if self.backlog.len() > MAX_BACKLOG {
                    // Woken when the socket takes more.
                    return Poll::Pending;
                }
            }
            let step = with_scratch(|scratch| self.poll_read_and_answer(cx, scratch, node, fleet));
            match step {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(error),
                Poll::Ready(Ok(())) => {}
            }
        }
    }

    /// Writes the backlog until the socket would block.
    fn poll_backlog(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        while !self.backlog.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.backlog))?;
            if n == 0 {
                return Poll::Ready(Err(WireError::Closed));
            }
            self.backlog.drain(..n);
        }
        // Do not keep a large buffer per idle daemon.
        if self.backlog.capacity() > READ_CHUNK {
            self.backlog = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Reads once into the thread's buffer, answers every complete operation and writes the
    /// answers (what the socket does not take goes to the backlog).
    fn poll_read_and_answer(
        &mut self,
        cx: &mut Context<'_>,
        scratch: &mut ThreadScratch,
        node: &EmulatedNode,
        fleet: &FleetShared,
    ) -> Poll<Result<(), WireError>> {
        let ThreadScratch {
            requests,
            encoder,
            read_buf,
            write_buf,
        } = scratch;
        let mut responder = Responder {
            node,
            fleet,
            requests,
            encoder,
            max_payload: self.max_payload,
            out: write_buf,
        };
        responder.out.clear();
        if std::mem::take(&mut self.unparsed) {
            let used = responder.answer_all(&self.partial)?;
            self.partial.drain(..used);
        } else {
            if read_buf.len() < READ_CHUNK {
                read_buf.resize(READ_CHUNK, 0);
            }
            let mut buf = ReadBuf::new(read_buf);
            ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
            let data = buf.filled();
            if data.is_empty() {
                return Poll::Ready(Err(WireError::Closed));
            }
            if self.partial.is_empty() {
                let used = responder.answer_all(data)?;
                self.partial.extend_from_slice(&data[used..]);
            } else {
                self.partial.extend_from_slice(data);
                let used = responder.answer_all(&self.partial)?;
                self.partial.drain(..used);
                if self.partial.is_empty() {
                    self.partial = Vec::new();
                }
            }
        }
        let out = &responder.out[..];
        if out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if !self.backlog.is_empty() {
            self.backlog.extend_from_slice(out);
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.stream).poll_write(cx, out) {
            Poll::Ready(Ok(n)) => self.backlog.extend_from_slice(&out[n..]),
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
            Poll::Pending => self.backlog.extend_from_slice(out),
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads whatever the socket has onto the end of `input` (handshake only).
async fn read_more(stream: &mut TcpStream, input: &mut Vec<u8>) -> Result<(), WireError> {
    if input.len() > wire::MAX_CONTROL_LINE * 16 {
        return Err(WireError::Protocol("handshake too long".into()));
    }
    let n = stream.read_buf(input).await?;
    if n == 0 {
        return Err(WireError::Closed);
    }
    Ok(())
}

/// Answers the operations of one read on behalf of one daemon, with its thread's request
/// cache and encoder, appending to `out`.
struct Responder<'a> {
    node: &'a EmulatedNode,
    fleet: &'a FleetShared,
    requests: &'a mut super::RequestCache,
    encoder: &'a mut crate::protocol::ReplyEncoder,
    max_payload: usize,
    out: &'a mut Vec<u8>,
}

impl Responder<'_> {
    /// Handles every complete operation at the start of `data`; returns how many bytes they
    /// took.
    fn answer_all(&mut self, data: &[u8]) -> Result<usize, WireError> {
        let mut at = 0;
        while let Some((op, used)) = wire::parse(&data[at..])? {
            at += used;
            match op {
                ServerOp::Msg { subject, payload } => self.answer(subject, payload),
                ServerOp::Ping => self.out.extend_from_slice(wire::PONG),
                ServerOp::Err(text) => {
                    debug!(
                        identity = self.node.identity(),
                        error = text,
                        "Server sent an error."
                    );
                }
                ServerOp::Pong | ServerOp::Ok | ServerOp::Info(_) => {}
            }
        }
        Ok(at)
    }

    /// One request: the first daemon of this thread to see it decodes it, every daemon
    /// answers it (or counts why not).
    fn answer(&mut self, subject: &str, payload: &[u8]) {
        let metrics = &self.fleet.metrics;
        metrics.messages.inc();
        let audit = self.fleet.audit.is_some();
        let handled = self
            .requests
            .prepare(payload)
            .and_then(|prepared| Incoming::new(subject, prepared, unix_now()))
            .and_then(|incoming| self.node.respond(&incoming, audit, self.encoder));
        let out = match handled {
            Ok(out) => out,
            Err(reason) => return metrics.drop_for(reason),
        };
        super::daemon::write_audit(self.fleet, &out);
        if out.payload.len() > self.max_payload {
            metrics.publish_errors.inc();
            return;
        }
        match wire::put_pub(self.out, &out.subject, &out.payload) {
            Ok(()) => metrics.replies.inc(),
            Err(_) => metrics.publish_errors.inc(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::TlsSettings;

    #[test]
    fn plain_addresses() {
        let plain = NetworkSettings::new("e", vec![]);
        let addr = |url: &str| plain_address(&plain, url);
        assert_eq!(
            addr("nats://127.0.0.1:4222").as_deref(),
            Some("127.0.0.1:4222")
        );
        assert_eq!(addr("127.0.0.1:14220").as_deref(), Some("127.0.0.1:14220"));
        assert_eq!(addr("nats://localhost").as_deref(), Some("localhost:4222"));
        assert_eq!(addr("nats://[::1]:4223/").as_deref(), Some("[::1]:4223"));
        assert_eq!(addr("nats://[::1]").as_deref(), Some("[::1]:4222"));
        for other in ["tls://h:4222", "ws://h:80", "nats://u:p@h:4222", ""] {
            assert_eq!(addr(other), None, "{other}");
        }
        let mut tls = plain.clone();
        tls.tls = Some(TlsSettings::default());
        assert_eq!(plain_address(&tls, "nats://h:1"), None);
        let mut nkey = plain.clone();
        nkey.auth = Auth::NkeySeed("SU".into());
        assert_eq!(plain_address(&nkey, "nats://h:1"), None);
        let mut user = plain;
        user.auth = Auth::Token("t".into());
        assert!(plain_address(&user, "nats://h:1").is_some());
    }
}
