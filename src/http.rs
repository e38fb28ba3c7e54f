//! The HTTP endpoint (`http.listen`, loopback by default): `/metrics` in the Prometheus text
//! format, `/healthz` (the process is alive) and `/readyz` (partitions assigned, broker
//! reachable; 503 with the reason otherwise).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::pipeline::Engine;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Where the endpoint listens; loopback unless told otherwise (it is unauthenticated).
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9898)) }
    }
}

/// What `/readyz` reports, kept up to date by the runtime.
#[derive(Debug, Default)]
pub struct Health {
    pub assigned_partitions: AtomicUsize,
    /// Set when librdkafka reports every broker down, cleared by the next message.
    pub brokers_down: AtomicBool,
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Binds `listen` and serves on a thread of its own until the process exits.
pub fn serve(
    listen: SocketAddr,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> anyhow::Result<SocketAddr> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(listen))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AppState { engine, metrics, health });
    std::thread::Builder::new().name("nhid-http".into()).spawn(move || {
        if let Err(e) = rt.block_on(async { axum::serve(listener, app).await }) {
            tracing::error!(error = %e, "the HTTP endpoint stopped");
        }
    })?;
    tracing::info!(listen = %bound, "HTTP endpoint: /metrics /healthz /readyz");
    Ok(bound)
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    // Walks the identity state for its gauges: this thread serves nothing else.
    let body = s.metrics.render(&s.engine);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.brokers_down.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: no broker reachable\n")
    } else if s.health.assigned_partitions.load(Ordering::Relaxed) == 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: no partitions assigned\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}
