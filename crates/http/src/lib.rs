//! The HTTP endpoint (`http.listen`, loopback by default): `/metrics` in the Prometheus text
//! format, `/healthz` (the process is alive), `/readyz` (partitions assigned, broker
//! reachable; 503 with the reason otherwise), and the inventory: `/principals` (filtered,
//! paginated) and `/principals/{id}` as JSON.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use nhid_engine::Engine;
use nhid_engine::metrics::{Health, Metrics};
pub mod principals;

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

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Which step of starting the endpoint failed; the message is the system's own.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Runtime(std::io::Error),
    #[error(transparent)]
    Bind(std::io::Error),
    #[error(transparent)]
    Thread(std::io::Error),
}

/// Binds `listen` and serves on a thread of its own until the process exits.
pub fn serve(
    listen: SocketAddr,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<SocketAddr, ServeError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ServeError::Runtime)?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(listen)).map_err(ServeError::Bind)?;
    let bound = listener.local_addr().map_err(ServeError::Bind)?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/principals", get(principals_page))
        // `{*id}`: principal ids hold slashes (`arn:aws:iam::1:role/x`) and colons.
        .route("/principals/{*id}", get(principal))
        .with_state(AppState { engine, metrics, health });
    std::thread::Builder::new()
        .name("nhid-http".into())
        .spawn(move || {
            if let Err(e) = rt.block_on(async { axum::serve(listener, app).await }) {
                tracing::error!(error = %e, "the HTTP endpoint stopped");
            }
        })
        .map_err(ServeError::Thread)?;
    tracing::info!(listen = %bound, "HTTP endpoint: /metrics /healthz /readyz /principals");
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

/// A JSON error body: `{"error": "..."}`.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn principals_page(
    State(s): State<AppState>,
    query: Result<Query<principals::Query>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    // Walks the identity state, like `/metrics`: fine on this thread of its own.
    match principals::list(&s.engine, &query) {
        Ok(page) => Json(page).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn principal(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match principals::view(&s.engine, &id, true) {
        Some(p) => Json(p).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no tracked principal {id:?}")),
    }
}
