//! The HTTP endpoint (`http.listen`, loopback by default): `/metrics` in the Prometheus text
//! format, `/healthz` (the process is alive), `/readyz` (partitions assigned, broker
//! reachable; 503 with the reason otherwise), and the inventory: `/principals` (filtered,
//! paginated) and `/principals/{id}` as JSON. The inventory asks for a bearer token when one
//! is set, and one must be set off loopback; the connections are bounded (`connection`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use nhid_engine::Engine;
use nhid_engine::metrics::{Health, Metrics};
mod connection;
pub mod principals;

/// Where the token comes from when `http.token_file` is not set: a variable of its own, outside
/// the `NHID__` configuration, so that it is never part of the configuration nhid shows.
pub const TOKEN_ENV: &str = "NHID_HTTP_TOKEN";

/// A shorter token is refused: it could be guessed.
const MIN_TOKEN_LEN: usize = 16;

/// The longest timeout accepted: a client given more than an hour is a client never closed.
const MAX_TIMEOUT_SECS: u64 = 3_600;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Where the endpoint listens; loopback by default. Any other address needs a token.
    pub listen: SocketAddr,
    /// A file holding the bearer token `/principals` then requires (else [`TOKEN_ENV`]).
    pub token_file: Option<PathBuf>,
    /// `/principals` shows credential ids whole, rather than their first and last 4 characters.
    pub show_full_credential_ids: bool,
    /// Open connections at most; more are refused at once (a 503, then closed).
    pub max_connections: usize,
    /// A connection that has not sent a whole request head this long after it opened, or
    /// after its previous response, is closed: idle keep-alives and slowloris alike.
    pub header_timeout_secs: u64,
    /// A response not ready this long is a 503; a client that reads none of its response
    /// for this long is disconnected.
    pub request_timeout_secs: u64,
    /// `/principals` listings computed at once; more get a 503 with `Retry-After`.
    pub max_principals_requests: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9898)),
            token_file: None,
            show_full_credential_ids: false,
            // Well below the usual limit of 1,024 open files, which the Kafka clients share.
            max_connections: 256,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_principals_requests: 2,
        }
    }
}

impl HttpConfig {
    /// Every problem of the section, without reading the token file (see [`HttpConfig::token`]).
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let token_env = std::env::var_os(TOKEN_ENV).is_some();
        if !is_loopback(self.listen.ip()) && self.token_file.is_none() && !token_env {
            errors.push(format!(
                "http.listen: {} is not a loopback address, and /principals shows identities, owners and \
                 credentials: set http.token_file (or {TOKEN_ENV}) to require a bearer token",
                self.listen
            ));
        }
        if self.token_file.is_some() && token_env {
            errors.push(format!("http.token_file: {TOKEN_ENV} is set too; set one of them"));
        }
        if self.max_connections == 0 {
            errors.push("http.max_connections: must be positive".into());
        }
        if self.max_principals_requests == 0 {
            errors.push("http.max_principals_requests: must be positive".into());
        }
        for (name, secs) in
            [("header_timeout_secs", self.header_timeout_secs), ("request_timeout_secs", self.request_timeout_secs)]
        {
            if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
                errors.push(format!("http.{name}: must be between 1 and {MAX_TIMEOUT_SECS} (an hour)"));
            }
        }
        errors
    }

    /// The token from `token_file` or [`TOKEN_ENV`], if either is set. Errors name where it
    /// came from, never what it holds.
    pub fn token(&self) -> Result<Option<Token>, String> {
        let (text, from) = match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("http.token_file: {}: {}", path.display(), e.kind()))?;
                (text, format!("http.token_file: {}", path.display()))
            }
            None => match std::env::var_os(TOKEN_ENV) {
                None => return Ok(None),
                Some(v) => (v.into_string().map_err(|_| format!("{TOKEN_ENV}: not valid UTF-8"))?, TOKEN_ENV.into()),
            },
        };
        // A file written by `echo` ends with a newline, which no client sends.
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{from}: the token must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces"
            ));
        }
        Ok(Some(Token(token.as_bytes().into())))
    }
}

/// 127.0.0.0/8 and ::1, and IPv4 loopback written as IPv6 (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The bearer token `/principals` requires. Its `Debug` shows no value, and nothing logs it.
#[derive(Clone)]
pub struct Token(Box<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Compares in time that depends on the length only, not on how many leading bytes of a
    /// guess are right.
    fn admits(&self, presented: &[u8]) -> bool {
        if presented.len() != self.0.len() {
            return false;
        }
        let difference = self.0.iter().zip(presented).fold(0u8, |d, (a, b)| d | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    token: Option<Arc<Token>>,
    full_credential_ids: bool,
    /// Places for `/principals` listings (try, else 503) and for `/metrics` renders (one,
    /// waited for): each walks the identity state, on a blocking thread, so that the thread
    /// that accepts connections and answers the probes never waits for one.
    listings: Arc<Semaphore>,
    renders: Arc<Semaphore>,
}

/// Which step of starting the endpoint failed; the message is the system's own.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{}", .0.join("; "))]
    Config(Vec<String>),
    #[error(transparent)]
    Runtime(std::io::Error),
    #[error(transparent)]
    Bind(std::io::Error),
    #[error(transparent)]
    Thread(std::io::Error),
}

/// Binds `config.listen` and serves on a thread of its own until the process exits. The
/// configuration is checked again here (the commands have reported its errors already).
pub fn serve(
    config: &HttpConfig,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<SocketAddr, ServeError> {
    let mut errors = config.validate();
    let token = config.token().map_err(|e| errors.push(e)).ok().flatten();
    if !errors.is_empty() {
        return Err(ServeError::Config(errors));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ServeError::Runtime)?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(config.listen)).map_err(ServeError::Bind)?;
    let bound = listener.local_addr().map_err(ServeError::Bind)?;
    let request_timeout = Duration::from_secs(config.request_timeout_secs);
    let state = AppState {
        engine,
        metrics,
        health,
        token: token.map(Arc::new),
        full_credential_ids: config.show_full_credential_ids,
        listings: Arc::new(Semaphore::new(config.max_principals_requests)),
        renders: Arc::new(Semaphore::new(1)),
    };
    let inventory = Router::new()
        .route("/principals", get(principals_page))
        // `{*id}`: principal ids hold slashes (`arn:aws:iam::1:role/x`) and colons.
        .route("/principals/{*id}", get(principal))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorized));
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(inventory)
        .layer(middleware::from_fn_with_state(request_timeout, deadline))
        .with_state(state);
    let limits = connection::Limits {
        max_connections: config.max_connections,
        header_timeout: Duration::from_secs(config.header_timeout_secs),
        write_stall: request_timeout,
    };
    std::thread::Builder::new()
        .name("nhid-http".into())
        .spawn(move || rt.block_on(connection::accept(listener, app, limits)))
        .map_err(ServeError::Thread)?;
    tracing::info!(listen = %bound, "HTTP endpoint: /metrics /healthz /readyz /principals");
    Ok(bound)
}

/// A response not ready in time is a 503: a client never waits on the endpoint forever.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the response took too long".into()),
    }
}

/// The inventory's routes require the bearer token when one is set.
async fn authorized(State(s): State<AppState>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let Some(token) = &s.token else { return next.run(request).await };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().as_bytes());
    if presented.is_some_and(|p| token.admits(p)) {
        return next.run(request).await;
    }
    let mut denied = error(StatusCode::UNAUTHORIZED, "a bearer token is required".into());
    denied.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    denied
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    let permit = s.renders.clone().acquire_owned().await.expect("the semaphore is never closed");
    let rendered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        s.metrics.render(&s.engine)
    })
    .await;
    match rendered {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the metrics failed: {e}")),
    }
}

/// Runs a `/principals` listing on a blocking thread if a place is free, else answers 503 at
/// once: a queue of listings would only grow behind a client that keeps asking.
async fn listing(s: AppState, list: impl FnOnce(&Engine, bool) -> Response + Send + 'static) -> Response {
    let Ok(permit) = s.listings.clone().try_acquire_owned() else {
        let mut busy = error(StatusCode::SERVICE_UNAVAILABLE, "busy with other listings; retry".into());
        busy.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return busy;
    };
    let listed = tokio::task::spawn_blocking(move || {
        // Held until the listing ends, even if the request has timed out meanwhile.
        let _permit = permit;
        list(&s.engine, s.full_credential_ids)
    })
    .await;
    listed.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("the listing failed: {e}")))
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.brokers_down.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: no broker reachable\n")
    } else if s.health.restoring.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: restoring state from the changelog\n")
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
    listing(s, move |engine, full_ids| match principals::list(engine, &query, full_ids) {
        // Serialized here, on the blocking thread: a page of 1,000 is large.
        Ok(page) => Json(page).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    })
    .await
}

/// One identity: a lookup, cheap enough for the thread that serves the probes.
async fn principal(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match principals::view(&s.engine, &id, true, s.full_credential_ids) {
        Some(p) => Json(p).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no tracked principal {id:?}")),
    }
}
