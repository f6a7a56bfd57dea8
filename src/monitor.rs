//! The HTTP monitor: `/metrics`, `/healthz` and `/debug/vars`.

use std::net::SocketAddr;
use std::time::Instant;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use choir_actors::connection::NetworkHealth;
use choir_actors::metrics::Metrics;
use serde_json::json;

/// What the monitor reads.
#[derive(Clone)]
pub struct MonitorState {
    /// Every counter of every actor.
    pub metrics: Metrics,
    /// Connection state of every network.
    pub health: NetworkHealth,
    /// The node's name.
    pub name: String,
    /// The config summary shown in `/debug/vars`.
    pub config: serde_json::Value,
    /// When the node started.
    pub started: Instant,
    /// Request verification counters of a secure emulator (`security` in `/debug/vars`).
    pub security: Option<choir_actors::emulator::SecurityMetrics>,
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
    });
    if let (Some(security), Some(object)) = (&state.security, vars.as_object_mut()) {
        object.insert("security".to_owned(), security.vars());
    }
    HttpResponse::Ok().json(vars)
}

/// Binds the monitor to `addr` and starts serving on the current actix System; returns the
/// handle that stops it.
pub fn start(addr: SocketAddr, state: MonitorState) -> std::io::Result<ServerHandle> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/debug/vars", web::get().to(debug_vars))
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
