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

use super::fleet_shared::{write_audit, FleetShared, RegistrationPlan};
use super::keepalive::{PingCount, Tick};
use super::request_cache::{with_scratch, ThreadScratch};
use super::wire::{self, ConnectInfo, ServerInfo, ServerOp, WireError};
use super::{registration, EmulatedNode, EmulatorMetrics, Incoming};
use crate::connection::{Auth, NetworkSettings};
use crate::error_chain::Chain;
use crate::protocol::unix_now;
use crate::supervision::Backoff;

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
    server: usize,
    fleet: Arc<FleetShared>,
}

impl WireDaemon {
    /// A daemon `node` that will connect to server `server` of the fleet's
    /// [`ServerPool`](super::servers::ServerPool) first.
    pub(super) fn new(node: EmulatedNode, server: usize, fleet: Arc<FleetShared>) -> Self {
        Self {
            node,
            server,
            fleet,
        }
    }

    /// Connects (holding a slot of the fleet's connect semaphore per attempt, retrying with
    /// backoff, on its own server unless that one is in lame-duck mode), then answers requests
    /// until the task is dropped, reconnecting whenever the connection is lost: to another
    /// server of the pool when its server entered lame-duck mode, else to the same one first and
    /// then round the pool.
    pub(super) async fn run(self) {
        let Self {
            node,
            mut server,
            fleet,
        } = self;
        let name = format!("choir-emulator-{}", node.identity());
        let subjects = node.subjects();
        let metrics = &fleet.metrics;
        let mut backoff = Backoff::SETUP;
        let mut waiting = Waiting::new(metrics);
        let mut session = loop {
            let Some(address) = fleet.servers.get(server) else {
                return;
            };
            let permit = fleet.connect_slots.acquire().await;
            let opened = Session::open(&address, &fleet, &name, &subjects).await;
            drop(permit);
            match opened {
                Ok(session) => break session,
                Err(error) => {
                    connect_failed(&fleet, &address, &error, &mut waiting);
                    // A first connect stays on its own server (the spread over the servers
                    // is deliberate), unless that server is being drained.
                    if matches!(error, WireError::LameDuck) {
                        server = fleet.servers.other(server, rand::random::<u32>() as usize);
                    }
                    let delay = backoff.next_delay();
                    debug!(%address, error = %Chain(&error), retry_in = ?delay, "Emulator cannot connect yet.");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        waiting.done();
        let mut presence = Presence::new(metrics.clone());
        let mut registration = fleet.registration.clone().map(Registration::new);
        loop {
            let error =
                poll_fn(|cx| session.poll_serve(cx, &node, &fleet, &mut registration)).await;
            presence.lost();
            match error {
                WireError::LameDuck => {
                    metrics.lame_duck_moves.inc();
                    server = fleet.servers.other(server, rand::random::<u32>() as usize);
                }
                WireError::Stale(_) => {
                    metrics.stale_connections.inc();
                }
                _ => {}
            }
            debug!(identity = node.identity(), error = %Chain(&error), "Emulated daemon lost its connection.");
            let mut reconnect = Backoff::FLEET_RECONNECT;
            session = loop {
                tokio::time::sleep(reconnect.next_delay()).await;
                let Some(address) = fleet.servers.get(server) else {
                    return;
                };
                match Session::open(&address, &fleet, &name, &subjects).await {
                    Ok(session) => break session,
                    Err(error) => {
                        connect_failed(&fleet, &address, &error, &mut waiting);
                        debug!(%address, error = %Chain(&error), "Emulated daemon cannot reconnect yet.");
                        server = fleet.servers.next(server);
                    }
                }
            };
            waiting.done();
            presence.back();
        }
    }
}

/// Counts a failed connect attempt and logs it (rate-limited for the whole fleet).
fn connect_failed(fleet: &FleetShared, address: &str, error: &WireError, waiting: &mut Waiting) {
    fleet.metrics.connect_failures.inc();
    waiting.start();
    if let Some(failures) = fleet.failures.note(std::time::Instant::now()) {
        let waiting = fleet.metrics.connect_waiting.get();
        warn!(
            server = %address,
            %error,
            failures,
            waiting,
            "Emulated daemons cannot connect; retrying."
        );
    }
}

/// Keeps the fleet's `connect_waiting` gauge right for one daemon: up from its first failed
/// attempt until it connects, also when its task is dropped.
struct Waiting {
    gauge: prometheus_client::metrics::gauge::Gauge,
    counted: bool,
}

impl Waiting {
    fn new(metrics: &EmulatorMetrics) -> Self {
        Self {
            gauge: metrics.connect_waiting.clone(),
            counted: false,
        }
    }

    fn start(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            self.gauge.inc();
        }
    }

    fn done(&mut self) {
        if std::mem::replace(&mut self.counted, false) {
            self.gauge.dec();
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.done();
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
        Self {
            timer: Box::pin(tokio::time::sleep(plan.first_delay())),
            plan,
            sequence: 0,
        }
    }

    /// Appends the next registration to `out` when the timer is due (unless it is larger
    /// than the server's `max_payload`).
    fn poll_due(
        &mut self,
        cx: &mut Context<'_>,
        node: &EmulatedNode,
        fleet: &FleetShared,
        max_payload: usize,
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
        put_registration(
            node,
            self.sequence,
            &self.plan.subject,
            max_payload,
            fleet,
            out,
        );
    }
}

/// Appends registration `sequence` of `node` to `out` as a `PUB` to `subject`, or counts it
/// as oversize when it is larger than `max_payload` (the server would close the connection).
fn put_registration(
    node: &EmulatedNode,
    sequence: u64,
    subject: &str,
    max_payload: usize,
    fleet: &FleetShared,
    out: &mut Vec<u8>,
) {
    let metrics = &fleet.metrics;
    match registration::encode(node, sequence) {
        Ok(payload) if payload.len() > max_payload => {
            metrics.oversize.inc();
        }
        Ok(payload) => match wire::put_pub(out, subject, &payload) {
            Ok(()) => {
                metrics.registrations.inc();
            }
            Err(_) => {
                metrics.publish_errors.inc();
            }
        },
        Err(error) => warn!(identity = node.identity(), %error, "Cannot encode registration."),
    }
}

/// One connection of a daemon: the socket, a partial operation left over from the last read,
/// bytes the socket did not take yet, and the keep-alive pings.
struct Session {
    stream: TcpStream,
    partial: Vec<u8>,
    backlog: Vec<u8>,
    max_payload: usize,
    /// `partial` may hold complete operations (read during the handshake).
    unparsed: bool,
    pings: PingCount,
    ping_timer: Pin<Box<Sleep>>,
    ping_interval: Duration,
}

impl Session {
    /// Connects to `address`, reads the server's `INFO` (learning its cluster's other servers),
    /// sends `CONNECT`, one `SUB` per subject and a `PING`, and waits for the `PONG` (the
    /// subscriptions are then in place), all within the settings' connect timeout.
    async fn open(
        address: &str,
        fleet: &FleetShared,
        name: &str,
        subjects: &[String],
    ) -> Result<Self, WireError> {
        tokio::time::timeout(
            fleet.settings.connect_timeout,
            Self::handshake(address, fleet, name, subjects),
        )
        .await
        .map_err(|_| WireError::Timeout)?
    }

    async fn handshake(
        address: &str,
        fleet: &FleetShared,
        name: &str,
        subjects: &[String],
    ) -> Result<Self, WireError> {
        let settings = &fleet.settings;
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
        if info.ldm {
            return Err(WireError::LameDuck);
        }
        learn_servers(fleet, &info);
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
        let ping_interval = fleet.ping_interval;
        loop {
            let mut pongs = Vec::new();
            let mut at = 0;
            while let Some((op, used)) = wire::parse(&input[at..])? {
                match op {
                    ServerOp::Pong => {
                        input.drain(..at + used);
                        stream.write_all(&pongs).await?;
                        return Ok(Self::new(stream, input, info.max_payload, ping_interval));
                    }
                    ServerOp::Ping => pongs.extend_from_slice(wire::PONG),
                    ServerOp::Err(text) => return Err(WireError::Server(text.to_owned())),
                    // A request already: the subscriptions are in place; the session
                    // answers it (and takes the PONG later).
                    ServerOp::Msg { .. } => {
                        input.drain(..at);
                        stream.write_all(&pongs).await?;
                        return Ok(Self::new(stream, input, info.max_payload, ping_interval));
                    }
                    ServerOp::Info(json) => {
                        let update = ServerInfo::parse(json)?;
                        if update.ldm {
                            return Err(WireError::LameDuck);
                        }
                        learn_servers(fleet, &update);
                    }
                    ServerOp::Ok => {}
                }
                at += used;
            }
            input.drain(..at);
            stream.write_all(&pongs).await?;
            read_more(&mut stream, &mut input).await?;
        }
    }

    fn new(
        stream: TcpStream,
        partial: Vec<u8>,
        max_payload: usize,
        ping_interval: Duration,
    ) -> Self {
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
            pings: PingCount::default(),
            ping_timer: Box::pin(tokio::time::sleep(ping_interval)),
            ping_interval,
        }
    }

    /// Sends a `PING` when the ping timer is due; ready with an error when too many went
    /// unanswered (a half-open connection).
    fn poll_ping(&mut self, cx: &mut Context<'_>) -> Poll<WireError> {
        while self.ping_timer.as_mut().poll(cx).is_ready() {
            match self.pings.tick() {
                Tick::Ping => self.backlog.extend_from_slice(wire::PING),
                Tick::Stale(unanswered) => return Poll::Ready(WireError::Stale(unanswered)),
            }
            self.ping_timer
                .as_mut()
                .reset(Instant::now() + self.ping_interval);
        }
        Poll::Pending
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
        if let Poll::Ready(error) = self.poll_ping(cx) {
            return Poll::Ready(error);
        }
        if let Some(registration) = registration {
            registration.poll_due(cx, node, fleet, self.max_payload, &mut self.backlog);
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
            pings: &mut self.pings,
            leave: None,
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
        let leave = responder.leave.take();
        let out = &responder.out[..];
        if !out.is_empty() {
            if !self.backlog.is_empty() {
                self.backlog.extend_from_slice(out);
            } else {
                match Pin::new(&mut self.stream).poll_write(cx, out) {
                    Poll::Ready(Ok(n)) => self.backlog.extend_from_slice(&out[n..]),
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                    Poll::Pending => self.backlog.extend_from_slice(out),
                }
            }
        }
        match leave {
            Some(error) => Poll::Ready(Err(error)),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Adds the servers `info` names in `connect_urls` to the fleet's pool.
fn learn_servers(fleet: &FleetShared, info: &ServerInfo) {
    if info.connect_urls.is_empty() {
        return;
    }
    let added = fleet.servers.learn(
        info.connect_urls
            .iter()
            .filter_map(|url| plain_address(&fleet.settings, url)),
    );
    if added > 0 {
        debug!(
            added,
            servers = fleet.servers.len(),
            "Learnt servers from connect_urls."
        );
    }
}

/// Reads whatever the socket has onto the end of `input` (handshake only).
async fn read_more(stream: &mut TcpStream, input: &mut Vec<u8>) -> Result<(), WireError> {
    if input.len() > wire::MAX_INFO_LINE + wire::MAX_CONTROL_LINE * 16 {
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
    pings: &'a mut PingCount,
    /// Why the daemon leaves this connection once the answers are written (lame duck).
    leave: Option<WireError>,
}

impl Responder<'_> {
    /// Handles every complete operation at the start of `data`; returns how many bytes they
    /// took. Stops at an `INFO` saying the server entered lame-duck mode.
    fn answer_all(&mut self, data: &[u8]) -> Result<usize, WireError> {
        let mut at = 0;
        while let Some((op, used)) = wire::parse(&data[at..])? {
            at += used;
            match op {
                ServerOp::Msg { subject, payload } => self.answer(subject, payload),
                ServerOp::Ping => self.out.extend_from_slice(wire::PONG),
                ServerOp::Pong => self.pings.pong(),
                ServerOp::Err(text) => {
                    debug!(
                        identity = self.node.identity(),
                        error = text,
                        "Server sent an error."
                    );
                }
                ServerOp::Info(json) => {
                    let info = ServerInfo::parse(json)?;
                    learn_servers(self.fleet, &info);
                    if info.ldm {
                        self.leave = Some(WireError::LameDuck);
                        break;
                    }
                }
                ServerOp::Ok => {}
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
        self.node.record(&handled);
        let out = match handled {
            Ok(out) => out,
            Err(reason) => return metrics.drop_for(reason),
        };
        write_audit(self.fleet, &out);
        if out.payload.len() > self.max_payload {
            metrics.oversize.inc();
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

    fn fleet() -> FleetShared {
        FleetShared {
            settings: NetworkSettings::new("e", vec![]),
            metrics: EmulatorMetrics::unregistered(),
            connect_slots: tokio::sync::Semaphore::new(1),
            audit: None,
            registration: None,
            servers: super::super::servers::ServerPool::default(),
            failures: super::super::failure_log::FailureLog::new(
                Duration::from_secs(10),
                std::time::Instant::now(),
            ),
            ping_interval: Duration::from_secs(120),
        }
    }

    #[test]
    fn a_registration_above_max_payload_is_counted_not_sent() {
        let node = EmulatedNode::new(
            "emu-1".into(),
            crate::protocol::Facts::from_value(serde_json::json!({"fqdn": "emu-1"})),
            Arc::new(super::super::NodeProfile {
                agents: vec!["discovery".into()],
                classes: vec![],
                collectives: vec!["mcollective".into()],
                security: None,
            }),
            Arc::from("nats://x"),
        );
        let fleet = fleet();
        let size = registration::encode(&node, 1).unwrap().len();
        let mut out = Vec::new();
        put_registration(&node, 1, "reg", size - 1, &fleet, &mut out);
        assert!(out.is_empty(), "sent {} bytes", out.len());
        assert_eq!(fleet.metrics.oversize.get(), 1);
        assert_eq!(fleet.metrics.registrations.get(), 0);
        put_registration(&node, 2, "reg", size, &fleet, &mut out);
        assert!(out.starts_with(b"PUB reg "));
        assert_eq!(fleet.metrics.registrations.get(), 1);
    }

    #[test]
    fn connect_urls_are_learnt_into_the_pool() {
        let fleet = fleet();
        fleet.servers.learn(["127.0.0.1:4222".to_owned()]);
        let info = ServerInfo::parse(
            br#"{"connect_urls":["127.0.0.1:4223","127.0.0.1:4222","[::1]:4224"]}"#,
        )
        .unwrap();
        learn_servers(&fleet, &info);
        assert_eq!(fleet.servers.len(), 3);
        assert_eq!(fleet.servers.index_of("[::1]:4224"), Some(2));
    }

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
