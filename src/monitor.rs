//! The HTTP monitor: `/metrics`, `/healthz` and `/debug/vars` (and, only in a test build with
//! the `fault-injection` feature, `POST /debug/fault/panic/<actor>`).

use std::net::SocketAddr;
use std::time::Instant;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use choir_actors::connection::NetworkHealth;
use choir_actors::metrics::MetricsRegistry;
use choir_actors::supervision::{PanicWatched, WatchdogActor, FAULT_INJECTION};
use serde_json::json;

pub mod components;

pub use components::{Components, StatusView};

/// What the monitor reads.
#[derive(Clone)]
pub struct MonitorState {
    /// Every counter of every actor.
    pub metrics: MetricsRegistry,
    /// Connection state of every network.
    pub health: NetworkHealth,
    /// The node's name.
    pub name: String,
    /// The config summary shown in `/debug/vars`.
    pub config: serde_json::Value,
    /// When the node started.
    pub started: Instant,
    /// The replicators, adapters, brokers and emulator that run.
    pub components: Components,
    /// Request verification counters of a secure emulator (`security` in `/debug/vars`).
    pub security: Option<choir_actors::emulator::SecurityMetrics>,
    /// Each embedded nats-server by network: binary, version and URL (`embedded_servers` in
    /// `/debug/vars`, left out when there is none).
    pub embedded: serde_json::Map<String, serde_json::Value>,
}

/// Resident set size of this process in bytes (Linux), 0 when unknown.
pub fn rss_bytes() -> u64 {
    rss_of("self")
}

/// Resident set size of process `pid` (`"self"` for this one) in bytes, 0 when unknown.
pub fn rss_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

async fn metrics(state: web::Data<MonitorState>) -> HttpResponse {
    match state.metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(_) => HttpResponse::InternalServerError().body("cannot encode metrics"),
    }
}

async fn healthz(state: web::Data<MonitorState>) -> HttpResponse {
    let networks: serde_json::Map<String, serde_json::Value> = state
        .health
        .snapshot()
        .into_iter()
        .map(|(name, up)| (name, json!(if up { "connected" } else { "disconnected" })))
        .collect();
    let connections: serde_json::Map<String, serde_json::Value> = state
        .health
        .dedicated_snapshot()
        .into_iter()
        .map(|(key, up)| (key, json!(if up { "connected" } else { "disconnected" })))
        .collect();
    let body = json!({
        "healthy": state.health.all_connected(),
        "networks": networks,
        "connections": connections,
    });
    if state.health.all_connected() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn debug_vars(state: web::Data<MonitorState>) -> HttpResponse {
    let mut vars = json!({
        "name": state.name,
        "pid": std::process::id(),
        "rss_bytes": rss_bytes(),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "config": state.config,
        "networks": state.health.snapshot().into_iter().map(|(n, up)| (n, json!(up))).collect::<serde_json::Map<_, _>>(),
        "components": state.components.snapshot(),
    });
    if let (Some(security), Some(object)) = (&state.security, vars.as_object_mut()) {
        object.insert("security".to_owned(), security.vars());
    }
    if let (false, Some(object)) = (state.embedded.is_empty(), vars.as_object_mut()) {
        object.insert(
            "embedded_servers".to_owned(),
            serde_json::Value::Object(state.embedded.clone()),
        );
    }
    HttpResponse::Ok().json(vars)
}

/// Test builds only: makes the watched actor named by the path (e.g.
/// `adapter/registration/0`) panic; 404 when no such actor accepts it.
async fn fault_panic(
    watchdog: web::Data<Addr<WatchdogActor>>,
    actor: web::Path<String>,
) -> HttpResponse {
    match watchdog.send(PanicWatched(actor.into_inner())).await {
        Ok(true) => HttpResponse::Ok().body("panic injected"),
        Ok(false) => HttpResponse::NotFound().body("no such actor accepts fault injection"),
        Err(_) => HttpResponse::ServiceUnavailable().body("watchdog gone"),
    }
}

/// Binds the monitor to `addr` and starts serving on the current actix System; returns the
/// handle that stops it.
pub fn start(addr: SocketAddr, state: MonitorState) -> std::io::Result<ServerHandle> {
    serve(addr, state, None)
}

/// [`start`] for a node, whose `watchdog` the test-only fault injection route talks to.
pub fn start_with_watchdog(
    addr: SocketAddr,
    state: MonitorState,
    watchdog: Addr<WatchdogActor>,
) -> std::io::Result<ServerHandle> {
    serve(addr, state, Some(watchdog))
}

fn serve(
    addr: SocketAddr,
    state: MonitorState,
    watchdog: Option<Addr<WatchdogActor>>,
) -> std::io::Result<ServerHandle> {
    let data = web::Data::new(state);
    // Only a test build (feature `fault-injection`) serves the fault route at all.
    let faults = watchdog.filter(|_| FAULT_INJECTION).map(web::Data::new);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/debug/vars", web::get().to(debug_vars))
            .configure(|routes| {
                if let Some(watchdog) = &faults {
                    routes
                        .app_data(watchdog.clone())
                        .route("/debug/fault/panic/{actor:.*}", web::post().to(fault_panic));
                }
            })
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}
