//! `nhid-sim eval` through the binary, as a user runs it:
//! `nhid-sim simulate --seed 7 --principals 60 --days 12 --out ev.jsonl --labels l.json --inventory inv.toml &&
//!  nhid-sim eval --labels l.json --inventory inv.toml ev.jsonl --json`
//! Twelve days hold every scenario (the dormant key needs ten, the new nightly batch five).
//! The targets hold: every injected attack detected, median delays within 5 s (60 s
//! for rate-based kinds), at most one false alert per 1,000 principal-days after learning, no
//! automatic action against a benign identity or a human, and the new nightly batch quiet
//! from its third night. Bad labels are a clear error, and the text report shows the same
//! numbers. (Seed 7 is the one the detectors were tuned on; README reports unseen seeds.)
//!
//! The cloud estate, simulated in process (`nhid-sim eval --estate cloud --seed 3 ...`): every
//! attack scored with its expected narrow response, false alerts and containment reported per
//! archetype. Its detection numbers are not asserted: they are what the detectors are being
//! rewritten to improve (docs/evaluation.md has the figures).

use std::process::Command;

use serde_json::Value;

fn nhid_sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nhid-sim")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> std::process::Output {
    let out = nhid_sim(args);
    assert!(out.status.success(), "nhid-sim {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn eval_of_a_simulated_run_detects_every_attack_and_acts_on_no_innocent() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    ok(&[
        "simulate",
        "--seed",
        "7",
        "--principals",
        "60",
        "--days",
        "12",
        "--out",
        &p("ev.jsonl"),
        "--labels",
        &p("l.json"),
        "--inventory",
        &p("inv.toml"),
    ]);
    let out = ok(&["eval", "--labels", &p("l.json"), "--inventory", &p("inv.toml"), &p("ev.jsonl"), "--json"]);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON object");

    let labels: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(p("l.json")).unwrap()).unwrap();
    let attacks = report["attacks"].as_array().unwrap();
    assert_eq!(report["totals"]["labels"], labels.len());
    let scenarios: std::collections::BTreeSet<&str> = labels.iter().map(|l| l["scenario"].as_str().unwrap()).collect();
    assert_eq!(scenarios.len(), nhid_sim::SCENARIOS, "every scenario: {scenarios:?}");
    assert_eq!(report["benign_changes"][0]["quiet"], true, "{:#}", report["benign_changes"]);
    for a in attacks {
        assert_eq!(a["detected"], true, "{a:#}");
        assert!(a["delay_ms"].as_i64().unwrap() >= 0, "{a:#}");
        let by = a["detected_by"].as_str().unwrap();
        assert!(a["expected_kinds"].as_array().unwrap().iter().any(|k| k == by), "{a:#}");
        assert!(a["kinds"].as_array().unwrap().iter().any(|k| k == by), "{a:#}");
    }
    assert_eq!(report["recall"]["value"], 1.0, "{:#}", report["recall"]);
    assert_eq!(report["recall"]["detected"], attacks.len());
    assert_eq!(report["delay"]["overall"]["detected"], attacks.len());

    for against in ["against_benign", "against_humans"] {
        let c = &report["automatic_actions"][against];
        assert_eq!(c["count"], 0, "{against}: {:#}", c["offenders"]);
        assert_eq!(c["met"], true);
    }
    // Every principal was kept: the simulated population, all of it.
    assert_eq!(report["replay"]["principals"], 60);
    assert_eq!(report["replay"]["evictions"], 0);
    assert!(report["false_alerts"]["principal_days_after_learning"].as_f64().unwrap() > 100.0);
    let missed = report["targets_missed"].as_array().unwrap();
    assert!(missed.is_empty(), "{missed:?}: {:#}", report["false_alerts"]);

    // The text form reports the same run in tables.
    let text = ok(&["eval", "--labels", &p("l.json"), "--inventory", &p("inv.toml"), &p("ev.jsonl")]);
    let text = String::from_utf8(text.stdout).unwrap();
    for a in attacks {
        let row = text.lines().find(|l| l.contains(a["principal_id"].as_str().unwrap())).unwrap();
        assert!(row.contains(a["scenario"].as_str().unwrap()) && row.contains("yes"), "{row}");
    }
    assert!(text.contains("containment of benign identities"), "{text}");

    // Bad labels: a clear error naming the file, and no report.
    std::fs::write(p("bad.json"), "{\"not\": \"labels\"}").unwrap();
    let bad = nhid_sim(&["eval", "--labels", &p("bad.json"), &p("ev.jsonl")]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("bad.json") && err.contains("not a labels file"), "{err}");
    assert!(bad.stdout.is_empty());

    // Bad configuration: the configuration exit code, as every command.
    let cfg = nhid_sim(&["eval", "--labels", &p("l.json"), &p("ev.jsonl"), "--detectors", &p("nowhere")]);
    assert_eq!(cfg.status.code(), Some(64), "{}", String::from_utf8_lossy(&cfg.stderr));
}

#[test]
fn eval_simulates_the_cloud_estate_in_process_and_reports_each_archetype() {
    let args = ["eval", "--estate", "cloud", "--seed", "3", "--principals", "40", "--days", "3"];
    let out = ok(&[&args[..], &["--json"]].concat());
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON object");

    let attacks = report["attacks"].as_array().unwrap();
    let scenarios: std::collections::BTreeSet<&str> = attacks.iter().map(|a| a["scenario"].as_str().unwrap()).collect();
    for cloud in ["stolen_key_recon", "slow_exfiltration", "stolen_serverless_session", "ci_session_off_github"] {
        assert!(scenarios.contains(cloud), "{cloud}: {scenarios:?}");
    }
    for a in attacks {
        assert!(a["expected_response"].is_string(), "{a:#}");
        assert!(a["narrow_response"].is_boolean(), "{a:#}");
    }
    for a in attacks.iter().filter(|a| a["scenario"].as_str().unwrap().contains("session")) {
        assert!(a["credential_id"].is_string() && a["session_id"].is_string(), "{a:#}");
    }
    assert_eq!(report["narrow_response"]["judged"], attacks.len());
    assert_eq!(report["totals"]["attack_labels"], attacks.len());

    // One row per archetype, adding up to the totals.
    let rows = report["by_archetype"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["archetype"].as_str().unwrap()).collect();
    for archetype in ["classic", "ci_runner", "serverless", "autoscaled_fleet", "low_volume_key"] {
        assert!(names.contains(&archetype), "{archetype}: {names:?}");
    }
    let sum = |key: &str| rows.iter().map(|r| r[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("principals"), report["replay"]["principals"].as_u64().unwrap());
    assert_eq!(sum("false_alerts"), report["false_alerts"]["count"].as_u64().unwrap());
    assert_eq!(sum("containment_of_benign"), report["automatic_actions"]["against_benign"]["count"].as_u64().unwrap());
    for r in rows {
        let by_kind: u64 = r["false_alerts_by_kind"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(by_kind, r["false_alerts"].as_u64().unwrap(), "{r:#}");
        assert!(r["per_1000_principal_days"].is_number() || r["principal_days_after_learning"] == 0.0, "{r:#}");
    }

    // The text form has the same rows; the in-process run needs no files, and takes none.
    let text = String::from_utf8(ok(&args).stdout).unwrap();
    assert!(text.contains("by archetype"), "{text}");
    for name in names {
        assert!(text.lines().any(|l| l.trim_start().starts_with(name)), "{name}: {text}");
    }
    let both = nhid_sim(&["eval", "--estate", "cloud", "ev.jsonl"]);
    assert_eq!(both.status.code(), Some(2), "{}", String::from_utf8_lossy(&both.stderr));
}
