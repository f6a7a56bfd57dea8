//! A small Consul-API test server, written from Consul's HTTP API documentation (no Consul
//! server can be installed here): a loopback HTTP/1.1 server on std::net and threads serving
//! the session and KV endpoints a playbook store uses.
//!
//! - `PUT /v1/session/create` (`TTL`, `Behavior`) → `{"ID": …}`; `PUT /v1/session/renew/<id>`
//!   → 200 with the session, 404 once it is gone; `PUT /v1/session/destroy/<id>` → `true`.
//! - A session whose TTL passes without a renewal is invalidated: with `Behavior: delete` the
//!   keys it holds are deleted, with `release` (the default) they are released.
//! - `GET /v1/kv/<key>` → 404 or `[{Key, Value (base64), Session, LockIndex, CreateIndex,
//!   ModifyIndex, Flags}]`; `PUT /v1/kv/<key>` (body = value) → `true`;
//!   `?acquire=<s>` → `false` when another session holds the key; `?release=<s>` → `false`
//!   when `s` is not the holder; `DELETE /v1/kv/<key>` → `true`.
//! - One index counter for every write, as Consul's Raft index.
//!
//! Consul itself refuses a session TTL under 10s and may take up to twice the TTL to
//! invalidate a session; this server accepts any TTL and invalidates at the TTL.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Entry {
    value: Vec<u8>,
    create: u64,
    modify: u64,
    lock_index: u64,
    session: Option<String>,
}

struct Session {
    ttl: Duration,
    delete: bool,
    deadline: Instant,
}

#[derive(Default)]
struct State {
    index: u64,
    next_session: u64,
    kv: BTreeMap<String, Entry>,
    sessions: HashMap<String, Session>,
    /// Every `X-Consul-Token` header received.
    tokens: Vec<String>,
}

impl State {
    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    fn invalidate(&mut self, id: &str) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        let held: Vec<String> = self
            .kv
            .iter()
            .filter(|(_, e)| e.session.as_deref() == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        for key in held {
            if session.delete {
                self.kv.remove(&key);
                self.bump();
            } else {
                let index = self.bump();
                if let Some(entry) = self.kv.get_mut(&key) {
                    entry.session = None;
                    entry.modify = index;
                }
            }
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.invalidate(&id);
        }
    }
}

/// A running test server; stops accepting on drop.
pub struct ConsulApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl ConsulApi {
    /// Starts on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        Self { addr, state, stop }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `X-Consul-Token` headers received so far.
    pub fn tokens(&self) -> Vec<String> {
        self.state.lock().tokens.clone()
    }

    /// How many sessions are alive.
    pub fn live_sessions(&self) -> usize {
        let mut state = self.state.lock();
        state.expire();
        state.sessions.len()
    }
}

impl Drop for ConsulApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Standard base64 with padding, as Consul renders `Value`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    let mut token = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-consul-token" => token = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap_or_default();
    let (status, reply) = {
        let mut state = state.lock();
        if let Some(token) = token {
            state.tokens.push(token);
        }
        state.expire();
        handle(&mut state, &method, &target, body)
    };
    let reason = if status == 200 { "OK" } else { "Error" };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn handle(state: &mut State, method: &str, target: &str, body: Vec<u8>) -> (u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(percent_decode)
    };
    if method == "PUT" && path == "/v1/session/create" {
        let spec: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
        let ttl = spec["TTL"]
            .as_str()
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(Duration::from_secs(86_400));
        state.next_session += 1;
        let id = format!("00000000-0000-0000-0000-{:012}", state.next_session);
        state.sessions.insert(
            id.clone(),
            Session {
                ttl,
                delete: spec["Behavior"] == "delete",
                deadline: Instant::now() + ttl,
            },
        );
        state.bump();
        return (200, json!({ "ID": id }).to_string());
    }
    if let Some(id) = path.strip_prefix("/v1/session/renew/") {
        return match state.sessions.get_mut(id) {
            Some(session) => {
                session.deadline = Instant::now() + session.ttl;
                let ttl = format!("{}s", session.ttl.as_secs());
                (200, json!([{ "ID": id, "TTL": ttl }]).to_string())
            }
            None => (404, format!("Session id '{id}' not found")),
        };
    }
    if let Some(id) = path.strip_prefix("/v1/session/destroy/") {
        state.invalidate(id);
        return (200, "true".into());
    }
    let Some(key) = path.strip_prefix("/v1/kv/") else {
        return (404, "not found".into());
    };
    let key = percent_decode(key);
    match method {
        "GET" => match state.kv.get(&key) {
            None => (404, String::new()),
            Some(e) => (
                200,
                json!([{
                    "Key": key,
                    "Value": base64(&e.value),
                    "Session": e.session,
                    "LockIndex": e.lock_index,
                    "CreateIndex": e.create,
                    "ModifyIndex": e.modify,
                    "Flags": 0,
                }])
                .to_string(),
            ),
        },
        "DELETE" => {
            state.kv.remove(&key);
            state.bump();
            (200, "true".into())
        }
        "PUT" => {
            if let Some(session) = param("acquire") {
                if !state.sessions.contains_key(&session) {
                    return (500, format!("invalid session \"{session}\""));
                }
                let holder = state.kv.get(&key).and_then(|e| e.session.clone());
                if holder.as_ref().is_some_and(|h| *h != session) {
                    return (200, "false".into());
                }
                let index = state.bump();
                let entry = state.kv.entry(key).or_insert(Entry {
                    value: Vec::new(),
                    create: index,
                    modify: index,
                    lock_index: 0,
                    session: None,
                });
                if holder.is_none() {
                    entry.lock_index += 1;
                }
                entry.session = Some(session);
                entry.value = body;
                entry.modify = index;
                return (200, "true".into());
            }
            if let Some(session) = param("release") {
                let index = state.bump();
                return match state.kv.get_mut(&key) {
                    Some(entry) if entry.session.as_deref() == Some(session.as_str()) => {
                        entry.session = None;
                        entry.value = body;
                        entry.modify = index;
                        (200, "true".into())
                    }
                    _ => (200, "false".into()),
                };
            }
            let index = state.bump();
            let entry = state.kv.entry(key).or_insert(Entry {
                value: Vec::new(),
                create: index,
                modify: index,
                lock_index: 0,
                session: None,
            });
            entry.value = body;
            entry.modify = index;
            (200, "true".into())
        }
        _ => (405, String::new()),
    }
}
