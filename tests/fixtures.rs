//! Behaviour fixtures: `tests/fixtures/<case>/input.jsonl` (+ optional `config.toml`) must
//! produce exactly `expected.jsonl`: one line per alert, action and dead letter, in output
//! order, reduced to the fields a consumer acts on (ids and times are checked elsewhere).
//! A case's config may name an inventory file of its own (`inventory = "inventory.toml"`):
//! a relative path is read from the case's directory, not from where the test runs.
//! `UPDATE_FIXTURES=1 cargo test --test fixtures` rewrites the expectations; review the diff.

mod common;

use std::path::Path;

use nhid::config::Config;
use nhid_engine::{Origin, Outputs};
use serde_json::{Value, json};

fn run_case(dir: &Path) -> Vec<Value> {
    let config_path = dir.join("config.toml");
    let mut config = Config::load(config_path.exists().then_some(config_path.as_path())).unwrap();
    if let Some(inventory) = config.inventory.as_mut().filter(|p| p.is_relative()) {
        *inventory = dir.join(&*inventory);
    }
    let engine = config.engine().unwrap();
    let input = std::fs::read(dir.join("input.jsonl")).unwrap();
    let mut out = Outputs::default();
    let mut lines = Vec::new();
    for (n, line) in input.split(|&b| b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
        engine.process(line, Origin { source: "input.jsonl", partition: 0, offset: n as i64 + 1 }, None, &mut out);
        for a in out.alerts.drain(..) {
            let v = serde_json::to_value(&a).unwrap();
            common::assert_valid("alert", &v);
            lines.push(json!({"alert": {"detector": a.detector, "severity": a.severity, "principal": v["principal"],
                "credential_id": a.credential_id, "actor": v["actor"], "event_ids": a.event_ids}}));
        }
        for a in out.actions.drain(..) {
            let v = serde_json::to_value(&a).unwrap();
            common::assert_valid("action", &v);
            lines.push(json!({"action": {"action": a.action, "target": v["target"], "mode": a.mode}}));
        }
        for d in out.dead_letters.drain(..) {
            lines.push(json!({"dead_letter": {"reason": d.reason.as_str(), "line": d.offset, "record": d.record}}));
        }
    }
    lines
}

#[test]
fn every_fixture_produces_its_expected_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut cases: Vec<_> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 2, "fixtures missing under {}", root.display());
    for dir in cases {
        let got = run_case(&dir);
        let expected_path = dir.join("expected.jsonl");
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            let text: String = got.iter().map(|v| format!("{v}\n")).collect();
            std::fs::write(&expected_path, text).unwrap();
            continue;
        }
        let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got, expected, "fixture {}", dir.display());
    }
}
