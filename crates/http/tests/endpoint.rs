//! The endpoint under clients that misbehave, over real TCP connections on loopback: idle and
//! slow connections are closed, connections past the cap are refused at once, a flood of
//! inventory listings neither queues nor holds the probes off, and `/principals` asks for the
//! token when one is set. Timeouts are configured small so that nothing waits long.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nhid_engine::detect;
use nhid_engine::inventory::Inventory;
use nhid_engine::metrics::{Health, Metrics};
use nhid_engine::{Engine, EngineConfig, Origin, Outputs};
use nhid_http::HttpConfig;

/// An engine that saw one event of each of `n` service accounts, each with its own key.
fn engine(n: usize) -> Arc<Engine> {
    let engine = Engine::new(detect::load(None).unwrap(), Inventory::default(), EngineConfig::default());
    let mut out = Outputs::default();
    for i in 0..n {
        let event = format!(
            r#"{{"id":"e{i}","time":"2026-11-20T00:00:00Z","principal":{{"id":"svc-{i:07}","type":"service_account","owner":"team"}},"credential":{{"id":"AKIAEXAMPLE{i:09}","kind":"static_key"}},"action":"s3:GetObject","service":"s3","outcome":"success"}}"#
        );
        engine.process(event.as_bytes(), Origin { source: "audit", partition: 0, offset: i as i64 }, None, &mut out);
        out.alerts.clear();
    }
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    Arc::new(engine)
}

fn loopback() -> HttpConfig {
    HttpConfig { listen: "127.0.0.1:0".parse().unwrap(), ..HttpConfig::default() }
}

fn serve(config: &HttpConfig, engine: Arc<Engine>) -> SocketAddr {
    nhid_http::serve(config, engine, Arc::new(Metrics::new()), Arc::new(Health::default())).unwrap()
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// `GET path` over HTTP/1.0 with `headers` (`Name: value` lines). A connection the server
/// closes without a response reads as status 0.
fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    // The server may have closed a refused connection already: a failed write reads as 0 too.
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n");
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("GET {path}: {e} (no answer, and the connection is still open)"),
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply { status, head: head.to_ascii_lowercase(), body: body.to_string() }
}

/// Polls `path` until it answers 200, for at most `within`.
fn eventually_ok(addr: SocketAddr, path: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if get(addr, path, &[]).status == 200 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Reads until the server closes the connection; panics if it is still open after `within`.
fn closed_by_server(mut stream: TcpStream, within: Duration, what: &str) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: still open after {within:?} ({e})"),
    }
}

#[test]
fn idle_and_slow_connections_are_closed_after_the_header_timeout() {
    let config = HttpConfig { header_timeout_secs: 1, ..loopback() };
    let addr = serve(&config, engine(1));
    // One connects and says nothing; one (slowloris) sends its head a byte at a time, never done.
    let idle = TcpStream::connect(addr).unwrap();
    let slow = TcpStream::connect(addr).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
        for _ in 0..200 {
            if writer.write_all(b"X").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    closed_by_server(idle, Duration::from_secs(10), "an idle connection");
    closed_by_server(slow, Duration::from_secs(10), "a connection trickling its headers");
    trickle.join().unwrap();

    // A keep-alive connection left idle after a request is closed the same way.
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    closed_by_server(kept, Duration::from_secs(10), "an idle keep-alive connection");
}

#[test]
fn connections_past_the_cap_are_refused_at_once_and_served_once_one_closes() {
    let config = HttpConfig { max_connections: 4, header_timeout_secs: 60, ..loopback() };
    let addr = serve(&config, engine(1));
    let mut held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Accepted in order: the fifth is past the cap, and answered at once rather than queued
    // behind connections that may never finish (the read timeout is 20 s, the header one 60).
    let started = Instant::now();
    let refused = get(addr, "/healthz", &[]);
    assert!(refused.status == 503 || refused.status == 0, "{} {}", refused.status, refused.body);
    assert!(started.elapsed() < Duration::from_secs(10));
    held.pop();
    assert!(eventually_ok(addr, "/healthz", Duration::from_secs(10)), "a place freed by a closed connection");
}

#[test]
fn a_client_that_stops_reading_its_responses_is_disconnected() {
    let config = HttpConfig { max_connections: 1, request_timeout_secs: 1, ..loopback() };
    let addr = serve(&config, engine(2_000));
    // Pipelined listings, never read: far more than the socket buffers hold, so the server's
    // writes stall. The connection holds the only place until the server gives up on it.
    let mut reader = TcpStream::connect(addr).unwrap();
    let request = b"GET /principals?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    let mut writer = reader.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    assert!(eventually_ok(addr, "/healthz", Duration::from_secs(20)), "the stalled connection was never closed");
    // What reaches the client is what had fit in the buffers: fewer than it asked for.
    reader.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let _ = reader.read_to_end(&mut got);
    let answered = got.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    assert!(answered < 200, "all {answered} answered: the server waited for the reader");
}

#[test]
fn a_flood_of_listings_is_refused_past_the_limit_and_does_not_hold_the_probes_off() {
    let config = HttpConfig { max_principals_requests: 1, ..loopback() };
    let engine = engine(1_000);
    let addr = serve(&config, engine.clone());
    // A writer holds one identity, as a worker does while it applies an event: the listing
    // that gets the one place walks up to that identity's shard and waits there, so it is
    // provably still running while the rest of the flood and the probe arrive. No timing.
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            engine.store().with_identity(
                "svc-0000000",
                || unreachable!("the identity exists"),
                |_| {
                    held_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                },
            )
        })
    };
    held_rx.recv().unwrap();
    let flood = 12;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for _ in 0..flood {
        let done = done_tx.clone();
        std::thread::spawn(move || done.send(get(addr, "/principals?limit=1000", &[])).unwrap());
    }
    // Every listing but the one holding the place is refused at once, while that one runs.
    let answer = || done_rx.recv_timeout(Duration::from_secs(30)).expect("a listing was neither refused nor served");
    let busy: Vec<Reply> = (1..flood).map(|_| answer()).collect();
    assert!(busy.iter().all(|r| r.status == 503), "{:?}", busy.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(busy.iter().all(|r| r.head.contains("retry-after: 1")), "{}", busy[0].head);
    assert!(done_rx.try_recv().is_err(), "the listing ended while the identity was held");
    let probe = get(addr, "/healthz", &[]);
    assert_eq!((probe.status, probe.body.as_str()), (200, "ok\n"), "the probe waited for the listing");
    release_tx.send(()).unwrap();
    writer.join().unwrap();
    let served = answer();
    assert_eq!(served.status, 200, "{}", served.body);
    assert!(served.body.contains("svc-0000000"), "the listing resumed past the held identity");
    assert_eq!(get(addr, "/metrics", &[]).status, 200);
}

const TOKEN: &str = "test-token-0123456789-abcdef";

#[test]
fn principals_asks_for_the_token_and_metrics_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    let config = HttpConfig { token_file: Some(path), ..loopback() };
    let addr = serve(&config, engine(3));
    for path in ["/principals", "/principals/svc-0000001"] {
        let none = get(addr, path, &[]);
        assert_eq!(none.status, 401, "{path}: {}", none.body);
        assert!(none.head.contains("www-authenticate: bearer"), "{}", none.head);
        assert!(!none.body.contains(TOKEN));
        for wrong in [
            "Authorization: Bearer test-token-0123456789-abcdeF",
            "Authorization: Bearer test-token-0123456789-abcde",
            "Authorization: Basic dGVzdDp0ZXN0",
            "Authorization: bearer",
        ] {
            assert_eq!(get(addr, path, &[wrong]).status, 401, "{path} with {wrong}");
        }
        let with = get(addr, path, &[&format!("Authorization: Bearer {TOKEN}")]);
        assert_eq!(with.status, 200, "{path}: {}", with.body);
        assert_eq!(get(addr, path, &[&format!("authorization: bearer {TOKEN}")]).status, 200);
    }
    // Prometheus and the orchestrator's probes need no token.
    for path in ["/metrics", "/healthz"] {
        assert_eq!(get(addr, path, &[]).status, 200, "{path}");
    }
    assert_eq!(get(addr, "/readyz", &[]).status, 503, "not ready: no partitions, but not a 401");
}

#[test]
fn credential_ids_are_shown_truncated_unless_configured_otherwise() {
    let engine = engine(3);
    let key = |config: &HttpConfig| {
        let reply = get(serve(config, engine.clone()), "/principals/svc-0000002", &[]);
        let p: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        p["credentials"][0]["id"].as_str().unwrap().to_string()
    };
    assert_eq!(key(&loopback()), "AKIA…0002");
    assert_eq!(key(&HttpConfig { show_full_credential_ids: true, ..loopback() }), "AKIAEXAMPLE000000002");
}
