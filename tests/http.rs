//! The HTTP endpoint as the binary serves it: a listener off loopback needs a token (a
//! configuration error otherwise, with the others, exit 64), and a flood of idle connections
//! past the file limit no longer keeps `/metrics` from answering. The endpoint's bounds one by
//! one are tested in crates/http/tests/endpoint.rs.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Killed, try_http_get};

const NHID: &str = env!("CARGO_BIN_EXE_nhid");
const TOKEN: &str = "a-token-for-tests-0123456789";

fn nhid(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(NHID);
    command.args(args).env_remove("NHID_HTTP_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_listener_off_loopback_without_a_token_is_a_configuration_error() {
    let off_loopback = [("NHID__HTTP__LISTEN", "0.0.0.0:9898"), ("NHID__STATE__MAX_IDENTITIES", "0")];
    let out = nhid(&["check"], &off_loopback);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("http.listen: 0.0.0.0:9898 is not a loopback address"), "{said}");
    assert!(said.contains("state.max_identities"), "reported with the other errors: {said}");

    // With the token from the environment, or from a file, it is a valid configuration; the
    // token is nowhere in what nhid says.
    let with_env = nhid(&["check"], &[off_loopback[0], ("NHID_HTTP_TOKEN", TOKEN)]);
    assert!(with_env.status.success(), "{}", text(&with_env));
    assert!(!text(&with_env).contains(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let file = file.to_str().unwrap();
    let with_file = nhid(&["check"], &[off_loopback[0], ("NHID__HTTP__TOKEN_FILE", file)]);
    assert!(with_file.status.success(), "{}", text(&with_file));
    assert!(!text(&with_file).contains(TOKEN));

    // A token file that cannot be read, or holds a guessable token, is named; its content is not shown.
    let missing = nhid(&["check"], &[("NHID__HTTP__TOKEN_FILE", "/no/such/token")]);
    assert_eq!(missing.status.code(), Some(64));
    assert!(text(&missing).contains("http.token_file: /no/such/token: "), "{}", text(&missing));
    std::fs::write(dir.path().join("short"), "hunter2").unwrap();
    let short = dir.path().join("short");
    let weak = nhid(&["check"], &[("NHID__HTTP__TOKEN_FILE", short.to_str().unwrap())]);
    assert_eq!(weak.status.code(), Some(64));
    assert!(text(&weak).contains("at least 16"), "{}", text(&weak));
    assert!(!text(&weak).contains("hunter2"));

    // `replay --http` and `run --http-listen` are `http.listen`: refused the same way, before
    // anything is bound or read.
    let replay = nhid(&["replay", "/dev/null", "--http", "0.0.0.0:0"], &[]);
    assert_eq!(replay.status.code(), Some(64), "{}", text(&replay));
    assert!(text(&replay).contains("http.listen"));
    let run = nhid(&["run", "--brokers", "127.0.0.1:1", "--http-listen", "[::]:0"], &[]);
    assert_eq!(run.status.code(), Some(64), "{}", text(&run));
    assert!(text(&run).contains("http.listen: [::]:0 is not a loopback address"), "{}", text(&run));
}

/// The finding as reported: with the usual limit of 1,024 open files, 1,100 connections that
/// send nothing kept `/metrics` from answering for as long as they stayed open. With the
/// default configuration, connections past the cap (256) are refused at once and the idle ones
/// are closed after the header timeout (10 s), so `/metrics` answers again, while the flood's
/// sockets are all still open on the client's side.
#[test]
fn idle_connections_past_the_file_limit_do_not_keep_metrics_from_answering() {
    let mut child = Killed(
        Command::new("sh")
            .args(["-c", "ulimit -n 1024 && exec \"$0\" replay /dev/null --http 127.0.0.1:0 --alerts /dev/null"])
            .arg(NHID)
            .env_remove("NHID_HTTP_TOKEN")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let addr = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("serving http://").and_then(|r| r.split('/').next()?.parse::<SocketAddr>().ok()))
        .expect("nhid replay --http never said where it serves");
    assert_eq!(try_http_get(addr, "/metrics").unwrap().0, 200);

    let flood: Vec<TcpStream> = (0..1_100).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answered = loop {
        match try_http_get(addr, "/metrics") {
            Ok((200, body)) => break Some(body),
            _ if Instant::now() > deadline => break None,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert!(answered.is_some_and(|b| b.contains("nhid_events_total")), "/metrics did not answer within 30 s");
    drop(flood);
}
