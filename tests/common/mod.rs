//! Helpers shared by integration tests. Each test binary compiles this module on its own
//! and uses only part of it.
#![allow(dead_code)]

pub mod aws_account;
pub mod broker;
pub mod dashboard;
pub mod kafka;
pub mod ocsf_examples;
pub mod panther;

use std::path::PathBuf;
use std::process::Child;

use serde_json::Value;

/// Path of `schemas/<name>.schema.json` in this crate.
pub fn schema_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas").join(format!("{name}.schema.json"))
}

/// The schema document itself, as JSON (for its `examples`, its enums, ...).
pub fn schema_json(name: &str) -> Value {
    let path = schema_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid json: {e}", path.display()))
}

/// A draft 2020-12 validator for `schemas/<name>.schema.json`. Format assertions are on, so
/// `date-time` and `uuid` are checked rather than treated as annotations (the 2020-12 default).
pub fn schema(name: &str) -> jsonschema::Validator {
    let doc = schema_json(name);
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&doc)
        .unwrap_or_else(|e| panic!("schemas/{name}.schema.json does not compile: {e}"))
}

/// Every validation error of `instance` against `schema`, one line each (`path: message`).
pub fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|e| format!("{}: {e}", display_path(&e.instance_path().to_string()))).collect()
}

/// Panics listing every validation error of `instance` against `schemas/<name>.schema.json`.
pub fn assert_valid(name: &str, instance: &Value) {
    let errors = errors(&schema(name), instance);
    if !errors.is_empty() {
        panic!(
            "instance does not match schemas/{name}.schema.json:\n  {}\ninstance: {}",
            errors.join("\n  "),
            serde_json::to_string_pretty(instance).unwrap_or_default()
        );
    }
}

/// Panics unless `instance` fails `schemas/<name>.schema.json`; returns the errors so a
/// test can check it failed for the intended reason.
pub fn assert_invalid(name: &str, instance: &Value) -> Vec<String> {
    let errors = errors(&schema(name), instance);
    assert!(
        !errors.is_empty(),
        "instance unexpectedly matches schemas/{name}.schema.json: {}",
        serde_json::to_string_pretty(instance).unwrap_or_default()
    );
    errors
}

fn display_path(pointer: &str) -> &str {
    if pointer.is_empty() { "(root)" } else { pointer }
}

/// `GET path` over HTTP/1.0 (the server closes the connection after the body, so no
/// chunked encoding or keep-alive to handle): the status and the body.
pub fn try_http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// [`try_http_get`] where failing to connect fails the test.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Runs the `nhid` binary of the test build and requires it to succeed (its standard error
/// is shown when it does not). `bin` is `env!("CARGO_BIN_EXE_nhid")` of the calling test.
pub fn nhid_ok(bin: &str, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(bin).args(args).output().unwrap();
    assert!(out.status.success(), "nhid {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `nhid-sim simulate --seed 7` of 60 principals over 3 days into `dir` (`sim` is the
/// binary: `env!("CARGO_BIN_EXE_nhid-sim")`): its events' and its inventory's paths.
pub fn simulate_seed_7(sim: &str, dir: &std::path::Path) -> (String, String) {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (events, inventory) = (p("ev.jsonl"), p("inv.toml"));
    let args =
        ["simulate", "--seed", "7", "--principals", "60", "--days", "3", "--out", &events, "--inventory", &inventory];
    nhid_ok(sim, &args);
    (events, inventory)
}

/// The JSON lines of a file nhid wrote, each validated against `schemas/<schema>.schema.json`.
pub fn schema_lines<T: serde::de::DeserializeOwned>(path: &std::path::Path, schema: &str) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_valid(schema, &v);
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

/// Kills the child when the test ends, passing or not.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
