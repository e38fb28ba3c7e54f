//! Analysts' verdicts through the binary: `nhid replay --verdicts FILE` on the cloud estate
//! (CI runners, serverless, Terraform roles as their platforms behave), whose false alerts
//! nhid's simulator did not plant: Terraform roles change IAM in bursts, and each change is a
//! `privilege_change` alert.
//!
//! An analyst marks each false alert of a day false positive a minute after it was raised.
//! Its repeats after that are gone (the rest of the burst, and the next day's), each attack
//! is alerted exactly as before, and what each verdict did is reported with who gave it.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use nhid_engine::respond::alert::Alert;
use nhid_model::time::{DAY, HOUR, MINUTE, format_rfc3339};
use nhid_sim::Label;

struct Replayed {
    alerts: Vec<Alert>,
    stderr: String,
}

fn replay(dir: &Path, name: &str, verdicts: Option<&str>) -> Replayed {
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let alerts = p(&format!("{name}.alerts.jsonl"));
    let mut args = vec!["replay".to_string(), p("ev.jsonl"), "--inventory".into(), p("inv.toml"), "--alerts".into()];
    args.push(alerts.clone());
    if let Some(v) = verdicts {
        args.extend(["--verdicts".to_string(), v.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::nhid_ok(env!("CARGO_BIN_EXE_nhid"), &args);
    Replayed {
        alerts: common::schema_lines(Path::new(&alerts), "alert"),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// False-positive verdicts, a minute after each, on the first false alert of each identity
/// and detector on day `day` (0: the first) of the cloud estate of `seed`: their repeats after
/// the verdicts go, and nothing else changes. Returns how many repeats went, and how many of
/// those were on a later day than the alert judged.
fn judge_false_alerts_of_day(seed: &str, day: i64) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let sim = ["simulate", "--estate", "cloud", "--seed", seed, "--principals", "100", "--days", "4", "--out"];
    let more = [&p("ev.jsonl"), "--labels", &p("l.json"), "--inventory", &p("inv.toml")];
    common::nhid_ok(env!("CARGO_BIN_EXE_nhid-sim"), &[&sim[..], &more[..]].concat());
    let labels: Vec<Label> = serde_json::from_str(&std::fs::read_to_string(p("l.json")).unwrap()).unwrap();
    let attacks: Vec<&Label> = labels.iter().filter(|l| !l.expected_kinds.is_empty()).collect();
    let explained = |a: &Alert| {
        attacks.iter().any(|l| l.principal_id == a.principal.id && a.time >= l.start && a.time <= l.end + HOUR)
    };

    let before = replay(dir.path(), "before", None);
    let start = before.alerts.iter().map(|a| a.time).min().unwrap().div_euclid(DAY) * DAY;
    let judged_day = start + day * DAY..start + (day + 1) * DAY;
    // The first false alert of each identity and detector on that day: judged a minute
    // after it was raised (its repeats in that minute are the same finding).
    let mut judged: Vec<&Alert> = Vec::new();
    for a in before.alerts.iter().filter(|a| judged_day.contains(&a.time) && !explained(a)) {
        if !judged.iter().any(|j| j.principal.id == a.principal.id && j.detector == a.detector) {
            judged.push(a);
        }
    }
    assert!(!judged.is_empty(), "seed {seed}: the estate has false alerts on day {day}");
    let verdicts: String = judged
        .iter()
        .map(|a| {
            let v = serde_json::json!({
                "time": format_rfc3339(a.time + MINUTE),
                "principal_id": a.principal.id,
                "alert_id": a.alert_id,
                "verdict": "false_positive",
                "by": "ana@soc.example.com",
                "note": "terraform apply",
            });
            common::assert_valid("verdict", &v);
            format!("{v}\n")
        })
        .collect();
    std::fs::write(p("verdicts.jsonl"), verdicts).unwrap();
    let repeats = |alerts: &[Alert]| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| {
                judged
                    .iter()
                    .any(|j| j.principal.id == a.principal.id && j.detector == a.detector && a.time > j.time + MINUTE)
            })
            .map(|a| a.alert_id.clone())
            .collect()
    };
    let repeated = repeats(&before.alerts);
    let later_days =
        before.alerts.iter().filter(|a| repeated.contains(&a.alert_id) && a.time >= judged_day.end).count();

    let after = replay(dir.path(), "after", Some(&p("verdicts.jsonl")));
    assert_eq!(repeats(&after.alerts), Vec::<String>::new(), "no repeat of a judged false alert after its verdict");
    // Nothing else changed: every attack's alerts, and the other alerts, are as before.
    let ids = |alerts: &[Alert]| alerts.iter().map(|a| a.alert_id.clone()).collect::<BTreeSet<_>>();
    let removed: BTreeSet<String> = ids(&before.alerts).difference(&ids(&after.alerts)).cloned().collect();
    assert_eq!(removed, repeated.iter().cloned().collect(), "exactly the repeats went");
    assert!(ids(&after.alerts).is_subset(&ids(&before.alerts)), "nothing new");
    for l in &attacks {
        let caught =
            |alerts: &[Alert]| alerts.iter().filter(|a| a.principal.id == l.principal_id && explained(a)).count();
        assert_eq!(caught(&after.alerts), caught(&before.alerts), "{} on {}", l.scenario, l.principal_id);
    }
    // Each verdict is reported: who, on which identity and alert, and what it accepts until when.
    for j in &judged {
        let until = format_rfc3339(j.time + MINUTE + 7 * DAY);
        let line = format!(
            "verdict false_positive by ana@soc.example.com on {} ({}): accepts findings of {} about this identity until {until}",
            j.principal.id, j.alert_id, j.detector
        );
        assert!(after.stderr.contains(&line), "no {line:?} in:\n{}", after.stderr);
    }
    assert!(after.stderr.contains(&format!("false positive {:>27}", judged.len())), "{}", after.stderr);
    (repeated.len(), later_days)
}

/// Seed 4: Terraform roles' bursts of IAM changes on the second day; a verdict on the first
/// alert of each burst removes the rest of it. Seed 5: a Terraform role alerting on the first
/// day and again on the second; the first day's verdict removes the second day's alert. (On
/// these estates no false alert of the second day recurs on the third.)
#[test]
fn false_positive_verdicts_remove_their_repeats_and_hide_no_attack() {
    let (removed, _) = judge_false_alerts_of_day("4", 1);
    assert!(removed >= 1, "seed 4: {removed} repeats removed");
    let (removed, next_days) = judge_false_alerts_of_day("5", 0);
    assert!(removed >= 1 && next_days >= 1, "seed 5: {removed} repeats removed, {next_days} on a later day");
}

/// In the engine: a verdict read before its alert waits and is applied when the alert is
/// raised; read twice, it is applied once; and it survives a restart from the changelog, with
/// what it accepts.
#[test]
fn a_verdict_waits_for_its_alert_applies_once_and_survives_a_restart() {
    use nhid_engine::detect;
    use nhid_engine::inventory::Inventory;
    use nhid_engine::{ControlKind, Engine, EngineConfig, Origin, Outputs};

    let mut bytes = Vec::new();
    let config = nhid_sim::SimConfig { seed: 7, principals: 20, days: 3, ..nhid_sim::SimConfig::default() };
    nhid_sim::run(&config, &mut bytes).unwrap();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let engine = || {
        let e = Engine::new(detect::load(None).unwrap(), Inventory::default(), EngineConfig::default());
        e.track_changes();
        e
    };
    let origin = |i: usize| Origin { source: "audit", partition: 0, offset: i as i64 };

    // The first alert of an undisturbed run.
    let (first, at) = {
        let e = engine();
        let mut out = Outputs::default();
        let at = lines.iter().enumerate().position(|(i, l)| {
            e.process(l, origin(i), None, &mut out);
            !out.alerts.is_empty()
        });
        (out.alerts.remove(0), at.unwrap())
    };
    let verdict = serde_json::json!({
        "time": format_rfc3339(first.time),
        "principal_id": first.principal.id,
        "alert_id": first.alert_id,
        "verdict": "benign_change",
        "by": "ana@soc.example.com",
    })
    .to_string();

    let e = engine();
    let mut out = Outputs::default();
    e.control(ControlKind::Verdict, verdict.as_bytes(), origin(0), &mut out);
    assert!(out.verdicts.is_empty() && out.dead_letters.is_empty(), "waits: the alert is not raised yet");
    for (i, l) in lines.iter().enumerate().take(at + 1) {
        e.process(l, origin(i), None, &mut out);
    }
    assert_eq!(out.alerts.first().map(|a| &a.alert_id), Some(&first.alert_id), "the alert itself is raised");
    let applied: Vec<&(String, _)> = out.verdicts.iter().collect();
    assert_eq!(applied.len(), 1, "applied when its alert was raised");
    assert_eq!(applied[0].1.accepts, std::slice::from_ref(&first.detector));
    // Given again (a redelivery, the topic read again at a start): applied once.
    out.verdicts.clear();
    e.control(ControlKind::Verdict, verdict.as_bytes(), origin(1), &mut out);
    assert!(out.verdicts.is_empty());
    assert_eq!(e.store().get(&first.principal.id).unwrap().verdicts().len(), 1);

    // Restored from the changelog, the identity has the verdict and what it accepts.
    let home = origin(0).home();
    let mut changes = Vec::new();
    e.changes(home, &mut changes);
    let restored = engine();
    for c in changes.iter().filter_map(|c| c.value.as_deref()) {
        restored.restore(c, home).unwrap();
    }
    let identity = restored.store().get(&first.principal.id).unwrap();
    assert_eq!(identity.verdicts(), e.store().get(&first.principal.id).unwrap().verdicts());
    assert!(identity.accepted(&first.detector, first.time + HOUR));
    assert!(!identity.accepted(&first.detector, first.time + 8 * DAY), "expired after the default week");
}
