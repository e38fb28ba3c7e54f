//! The acceptance run, through the binary as a user runs it:
//! `nhid-sim simulate --seed 7 --days 3 --out ev.jsonl --labels l.json --inventory inv.toml &&
//!  nhid replay ev.jsonl --inventory inv.toml --alerts a.jsonl --actions x.jsonl`
//! Every injected attack is alerted within a minute of its first malicious event and
//! contained as narrowly as its detector asks and its events allow, no automatic action
//! targets a human, false alerts stay under 2 per 1,000 principal-days after
//! learning, and garbage lines are dead-lettered without changing anything else.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use nhid_engine::respond::alert::{Action, Alert, Mode};
use nhid_model::time::{DAY, HOUR, SECOND};
use nhid_model::vocab::ActionKind;
use nhid_sim::Label;

const PRINCIPALS: usize = 100;
const DAYS: i64 = 3;

fn nhid(args: &[&str]) -> std::process::Output {
    common::nhid_ok(env!("CARGO_BIN_EXE_nhid"), args)
}

fn nhid_sim(args: &[&str]) -> std::process::Output {
    common::nhid_ok(env!("CARGO_BIN_EXE_nhid-sim"), args)
}

fn lines<T: serde::de::DeserializeOwned>(path: &Path, schema: &str) -> Vec<T> {
    common::schema_lines(path, schema)
}

#[test]
fn simulate_then_replay_catches_every_attack_and_acts_on_no_human() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let principals = PRINCIPALS.to_string();
    let days = DAYS.to_string();
    nhid_sim(&[
        "simulate",
        "--seed",
        "7",
        "--principals",
        &principals,
        "--days",
        &days,
        "--out",
        &p("ev.jsonl"),
        "--labels",
        &p("l.json"),
        "--inventory",
        &p("inv.toml"),
    ]);
    let replay = nhid(&[
        "replay",
        &p("ev.jsonl"),
        "--inventory",
        &p("inv.toml"),
        "--alerts",
        &p("a.jsonl"),
        "--actions",
        &p("x.jsonl"),
    ]);
    eprintln!("{}", String::from_utf8_lossy(&replay.stderr));

    let labels: Vec<Label> = serde_json::from_str(&std::fs::read_to_string(p("l.json")).unwrap()).unwrap();
    let alerts: Vec<Alert> = lines(Path::new(&p("a.jsonl")), "alert");
    let actions: Vec<Action> = lines(Path::new(&p("x.jsonl")), "action");
    assert!(labels.len() >= 6, "one label per scenario at least: {}", labels.len());

    // Every injected attack: an alert of an expected kind on that principal, in its window,
    // within a minute of event time of its first malicious event.
    let mut latency = BTreeMap::new();
    for l in labels.iter().filter(|l| !l.expected_kinds.is_empty()) {
        let caught = alerts
            .iter()
            .filter(|a| a.principal.id == l.principal_id && l.expected_kinds.contains(&a.kind))
            .filter(|a| a.time >= l.start && a.time <= l.end + HOUR)
            .map(|a| a.time - l.first_malicious_time)
            .min();
        let Some(delay) = caught else {
            panic!(
                "attack not alerted: {l:?}\nalerts on that principal: {:?}",
                alerts
                    .iter()
                    .filter(|a| a.principal.id == l.principal_id)
                    .map(|a| (&a.kind, a.time))
                    .collect::<Vec<_>>()
            );
        };
        assert!(
            (0..=60 * SECOND).contains(&delay),
            "{} on {} alerted {delay} ms after its first malicious event",
            l.scenario,
            l.principal_id
        );
        latency.insert(format!("{} {}", l.scenario, l.principal_id), delay);
    }
    eprintln!("detection latency (ms after the first malicious event): {latency:#?}");

    // Every attack is contained as narrowly as its detector asks and its events allow: a
    // revocation (dry run by default) of that principal's credential or session, or where
    // nothing can be cut (a password sign-in names no session, a dormant key may be a job
    // resumed) the owner is told; a person, or a principal nobody registered, is only alerted.
    for l in labels.iter().filter(|l| !l.expected_kinds.is_empty()) {
        let expected = match l.scenario.as_str() {
            "agent_scope_drift" => Some(ActionKind::RevokeSession),
            "machine_console_login" | "dormant_key_reactivated" | "unattributed_agent" => Some(ActionKind::NotifyOwner),
            "agent_rides_human_session" | "shadow_key" => None,
            _ => Some(ActionKind::RevokeCredential),
        };
        let taken: Vec<&Action> = actions.iter().filter(|a| a.target.principal_id == l.principal_id).collect();
        match expected {
            None => assert!(taken.is_empty(), "{l:?}: {taken:#?}"),
            Some(kind) => {
                let Some(a) = taken.iter().find(|a| a.action == kind) else {
                    panic!("no {kind:?} for {l:?}: {taken:#?}")
                };
                assert_eq!(a.mode, Mode::DryRun);
                if kind != ActionKind::NotifyOwner {
                    assert!(a.target.credential_id.is_some() || a.target.session_id.is_some(), "{a:?}");
                }
            }
        }
    }

    // No automatic action against a human, ever.
    for a in &actions {
        assert_ne!(a.target.principal_kind, nhid_model::event::PrincipalType::Human, "{a:?}");
        assert!(!a.target.principal_id.starts_with("user-"), "{a:?}");
    }
    for a in alerts.iter().filter(|a| a.principal.kind == nhid_model::event::PrincipalType::Human) {
        assert!(actions.iter().all(|x| x.alert_id != a.alert_id));
    }

    // False alerts: not explained by an attack window, after the first day (learning).
    let start = labels.iter().map(|l| l.start).min().unwrap() - labels.iter().map(|l| l.start).min().unwrap() % DAY;
    let explained = |a: &Alert| {
        labels.iter().any(|l| l.principal_id == a.principal.id && a.time >= l.start && a.time <= l.end + HOUR)
    };
    let false_alerts: Vec<&Alert> = alerts.iter().filter(|a| a.time >= start + DAY && !explained(a)).collect();
    let principal_days = (PRINCIPALS as i64 * (DAYS - 1)) as f64;
    let rate = false_alerts.len() as f64 * 1_000.0 / principal_days;
    eprintln!(
        "false alerts after learning: {} over {principal_days} principal-days = {rate:.2} per 1,000",
        false_alerts.len()
    );
    assert!(
        rate < 2.0,
        "false alerts: {:#?}",
        false_alerts.iter().map(|a| (&a.kind, &a.principal.id, &a.summary)).collect::<Vec<_>>()
    );

    // Garbage lines are dead-lettered with their reason; every good line is still processed
    // and the alerts are the same.
    let clean = std::fs::read_to_string(p("ev.jsonl")).unwrap();
    let garbage = [
        "this is not json",
        "{\"principal\":",
        "{\"id\":\"x\",\"time\":\"yesterday\",\"principal\":{\"id\":\"a\",\"type\":\"bot\"},\"action\":\"a\",\"service\":\"s\",\"outcome\":\"success\"}",
        "[[[[[[",
        "{}",
    ];
    let mut dirty = String::with_capacity(clean.len() + 1_000);
    for (i, line) in clean.lines().enumerate() {
        dirty.push_str(line);
        dirty.push('\n');
        if i % 100_000 == 7 {
            dirty.push_str(garbage[(i / 100_000) % garbage.len()]);
            dirty.push('\n');
        }
    }
    let injected = dirty.lines().count() - clean.lines().count();
    std::fs::write(p("dirty.jsonl"), dirty).unwrap();
    nhid(&[
        "replay",
        &p("dirty.jsonl"),
        "--inventory",
        &p("inv.toml"),
        "--alerts",
        &p("a2.jsonl"),
        "--dead-letter",
        &p("dl.jsonl"),
    ]);
    let dead: Vec<serde_json::Value> =
        std::fs::read_to_string(p("dl.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), injected);
    assert!(dead.iter().all(|d| d["reason"].is_string() && d["raw"].is_string()));
    let ids = |alerts: &[Alert]| alerts.iter().map(|a| a.alert_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&lines(Path::new(&p("a2.jsonl")), "alert")), ids(&alerts));

    // The same events reordered within each minute (reversed) give the same alerts.
    let mut reordered = String::with_capacity(clean.len());
    let mut minute: Vec<&str> = Vec::new();
    let minute_of = |l: &str| l.find("\"time\":\"").map(|i| l[i + 8..i + 24].to_string());
    for line in clean.lines() {
        if minute.first().is_some_and(|m| minute_of(m) != minute_of(line)) {
            minute.drain(..).rev().for_each(|l| {
                reordered.push_str(l);
                reordered.push('\n');
            });
        }
        minute.push(line);
    }
    minute.drain(..).rev().for_each(|l| {
        reordered.push_str(l);
        reordered.push('\n');
    });
    assert_ne!(reordered, clean);
    std::fs::write(p("reordered.jsonl"), reordered).unwrap();
    nhid(&["replay", &p("reordered.jsonl"), "--inventory", &p("inv.toml"), "--alerts", &p("a3.jsonl")]);
    let sorted = |alerts: Vec<Alert>| {
        let mut v: Vec<(String, String)> = alerts.into_iter().map(|a| (a.alert_id, a.kind)).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(lines(Path::new(&p("a3.jsonl")), "alert")), sorted(alerts));
}
