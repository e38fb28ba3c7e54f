//! OCSF output as a SIEM ingests it. `nhid replay --alerts-format ocsf` on a labelled
//! simulated estate and on CloudTrail records of Stratus Red Team's techniques; every finding
//! is validated against the OCSF schema source (tests/data/ocsf-schema, 1.9.0-dev) by the OCSF
//! project's own compiler and a JSON Schema built from it (tests/ocsf/check.py), and read
//! back by attribute path to the same facts as nhid's own alerts of the same replay.
//!
//! The Python tools live in a virtual environment made by `scripts/ocsf.sh install`
//! (scripts/test.sh runs it); `NHID_OCSF_PYTHON` points at another interpreter that has them,
//! `NHID_SKIP_OCSF_TESTS=1` skips these tests explicitly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use nhid_engine::respond::alert::Alert;
use nhid_engine::respond::incident::IncidentRecord;
use nhid_engine::respond::ocsf::OCSF_VERSION;
use serde_json::Value;

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ocsf-schema");
const CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocsf/check.py");

/// The interpreter with the OCSF tools, or `None` when these tests are explicitly skipped.
fn python() -> Option<PathBuf> {
    if std::env::var("NHID_SKIP_OCSF_TESTS").as_deref() == Ok("1") {
        eprintln!("NHID_SKIP_OCSF_TESTS=1: skipping a test that needs the OCSF tools");
        return None;
    }
    let python = std::env::var_os("NHID_OCSF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/nhid-ocsf-venv/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run scripts/ocsf.sh install (or set NHID_OCSF_PYTHON, or skip with NHID_SKIP_OCSF_TESTS=1)",
        python.display()
    );
    Some(python)
}

/// Runs the checker on `files`: `Ok(report)` when every finding is valid, else its errors.
fn check(python: &Path, files: &[&Path]) -> Result<Value, String> {
    let out = Command::new(python).arg(CHECK).arg(SCHEMA).args(files).output().unwrap();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_slice(&out.stdout).unwrap()),
        Some(1) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        _ => panic!("check.py failed to run: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

fn nhid(args: &[&str]) {
    common::nhid_ok(env!("CARGO_BIN_EXE_nhid"), args);
}

/// Replays `inputs` twice, in nhid's schema and in OCSF; the alerts and the findings.
fn replay_both(dir: &Path, name: &str, inputs: &[&str]) -> (Vec<Alert>, PathBuf) {
    let nhid_alerts = dir.join(format!("{name}.alerts.jsonl"));
    let ocsf = dir.join(format!("{name}.ocsf.jsonl"));
    for (format, path) in [("nhid", &nhid_alerts), ("ocsf", &ocsf)] {
        let mut args = vec!["replay"];
        args.extend_from_slice(inputs);
        args.extend_from_slice(&["--alerts-format", format, "--alerts", path.to_str().unwrap()]);
        nhid(&args);
    }
    (common::schema_lines(&nhid_alerts, "alert"), ocsf)
}

/// What a SIEM read from each finding is what nhid's own alert says, in the same order.
fn assert_read_back(alerts: &[Alert], report: &Value) {
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), alerts.len(), "one finding per alert");
    assert_eq!(report["validated"].as_u64(), Some(alerts.len() as u64));
    for (a, f) in alerts.iter().zip(findings) {
        let severity = 1 + nhid_model::vocab::Severity::ALL.iter().position(|s| *s == a.severity).unwrap();
        let event = a.event.as_ref();
        let expected = serde_json::json!({
            "uid": a.alert_id,
            "time": a.time,
            "severity": severity,
            "analytic": a.detector,
            "user": a.principal.id,
            "credential": a.credential_id,
            "session": a.actor.session_id,
            "operation": event.map(|e| &e.action),
            "ip": event.and_then(|e| e.source_ip.as_ref()),
        });
        assert_eq!(f, &expected, "{}", a.summary);
    }
}

#[test]
fn findings_of_a_simulated_estate_validate_and_read_back_as_its_alerts() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (events, inventory) = common::simulate_seed_7(env!("CARGO_BIN_EXE_nhid-sim"), dir.path());
    let (alerts, ocsf) = replay_both(dir.path(), "sim", &[&events, "--inventory", &inventory]);
    assert!(alerts.len() >= 10, "{} alerts: too few to say anything", alerts.len());
    // Sessions, credentials, several detectors: the mapping's branches are exercised.
    assert!(alerts.iter().any(|a| a.actor.session_id.is_some()));
    assert!(alerts.iter().any(|a| a.score.baseline.is_some()));
    let report = check(&python, &[&ocsf]).unwrap_or_else(|e| panic!("invalid OCSF findings:\n{e}"));
    assert_read_back(&alerts, &report);
}

#[test]
fn findings_of_cloudtrail_attack_records_validate_and_read_back_as_their_alerts() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stratus/aws"))
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.contains("/aws.") && p.ends_with(".jsonl"))
        .collect();
    files.sort();
    let inputs: Vec<&str> = files.iter().map(String::as_str).collect();
    let (alerts, ocsf) = replay_both(dir.path(), "stratus", &inputs);
    assert!(alerts.iter().any(|a| a.kind == "content") && alerts.iter().any(|a| a.kind == "privilege_change"));
    // The Sigma rules' ATT&CK tags reach content alerts, and so the findings' attacks.
    assert!(alerts.iter().any(|a| a.kind == "content" && a.references.iter().any(|r| r.starts_with('T'))));
    let report = check(&python, &[&ocsf]).unwrap_or_else(|e| panic!("invalid OCSF findings:\n{e}"));
    assert_read_back(&alerts, &report);
    // Real CloudTrail names what was acted on for some calls: the finding's resources carry it.
    let text = std::fs::read_to_string(&ocsf).unwrap();
    let findings: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(findings.iter().any(|f| f["resources"][0]["uid"].is_string()));
    for (a, f) in alerts.iter().zip(&findings) {
        // A content finding is titled by the rule it matched, each rule an analytic of it.
        if let Some(rules) = a.evidence.get("rules").and_then(Value::as_array) {
            assert_eq!(f["finding_info"]["title"], rules[0], "{}", a.summary);
            let names: Vec<&Value> =
                f["finding_info"]["related_analytics"].as_array().unwrap().iter().map(|r| &r["name"]).collect();
            assert_eq!(names, rules.iter().collect::<Vec<_>>());
        }
        let techniques: Vec<&str> = a.references.iter().filter(|r| r.starts_with('T')).map(|r| &r[..5]).collect();
        let attacks: Vec<&str> = f["finding_info"]["attacks"]
            .as_array()
            .map_or(vec![], |list| list.iter().map(|t| t["technique"]["uid"].as_str().unwrap()).collect());
        assert_eq!(attacks, techniques, "{}", a.summary);
    }
}

/// Incidents as OCSF Incident Findings: each record validates against class 2005 with its
/// `incident` profile and reads back as the incident record nhid writes in its own schema;
/// each alert's Detection Finding names its incident in `metadata.correlation_uid`.
#[test]
fn incidents_are_incident_findings_that_list_their_alerts_findings() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (events, inventory) = common::simulate_seed_7(env!("CARGO_BIN_EXE_nhid-sim"), dir.path());
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    for format in ["nhid", "ocsf"] {
        let (alerts, incidents) = (p(&format!("{format}.alerts")), p(&format!("{format}.incidents")));
        let args = ["--alerts-format", format, "--alerts", &alerts, "--incidents", &incidents];
        nhid(&[&["replay", &events, "--inventory", &inventory][..], &args[..]].concat());
    }
    let alerts: Vec<Alert> = common::schema_lines(Path::new(&p("nhid.alerts")), "alert");
    let records: Vec<IncidentRecord> = common::schema_lines(Path::new(&p("nhid.incidents")), "incident");
    assert!(records.len() > alerts.len() / 2, "{} incident records", records.len());
    let report = check(&python, &[Path::new(&p("ocsf.incidents")), Path::new(&p("ocsf.alerts"))])
        .unwrap_or_else(|e| panic!("invalid OCSF findings:\n{e}"));
    assert_eq!(report["validated"].as_u64(), Some((records.len() + alerts.len()) as u64));
    let read = report["incidents"].as_array().unwrap();
    assert_eq!(read.len(), records.len(), "one Incident Finding per record");
    for (r, f) in records.iter().zip(read) {
        let i = &r.incident;
        let severity = 1 + nhid_model::vocab::Severity::ALL.iter().position(|s| *s == i.severity).unwrap();
        let expected = serde_json::json!({
            "uid": i.incident_id,
            "activity": 1 + r.activity.index(),
            "severity": severity,
            "start": i.first_seen,
            "end": i.last_seen,
            "findings": i.alerts.iter().map(|a| &a.alert_id).collect::<Vec<_>>(),
            "assignee_group": i.principal.owner.as_deref().unwrap_or("unassigned"),
        });
        assert_eq!(f, &expected, "{}", r.summary);
    }
    let findings = std::fs::read_to_string(p("ocsf.alerts")).unwrap();
    for (a, line) in alerts.iter().zip(findings.lines()) {
        let f: Value = serde_json::from_str(line).unwrap();
        assert_eq!(f["metadata"]["correlation_uid"].as_str(), a.incident_id.as_deref(), "{}", a.summary);
    }
}

/// The checker is not a formality: findings the schema does not allow fail it.
#[test]
fn the_checker_refuses_findings_the_schema_does_not_allow() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ev.jsonl");
    let sim = ["simulate", "--seed", "3", "--principals", "30", "--days", "2", "--out", input.to_str().unwrap()];
    common::nhid_ok(env!("CARGO_BIN_EXE_nhid-sim"), &sim);
    let (_, ocsf) = replay_both(dir.path(), "base", &[input.to_str().unwrap()]);
    let first = std::fs::read_to_string(&ocsf).unwrap().lines().next().expect("at least one finding").to_owned();
    let breaks: [(&str, Break); 5] = [
        ("finding_info.uid is required", |f| drop(f["finding_info"].as_object_mut().unwrap().remove("uid"))),
        ("severity_id is an enum", |f| f["severity_id"] = 42.into()),
        ("no attribute outside the class", |f| f["principal"] = "svc".into()),
        ("src_endpoint.ip is an IP address", |f| {
            f["evidences"][0]["src_endpoint"] = serde_json::json!({"ip": "not an address"})
        }),
        ("time is a timestamp (long)", |f| f["time"] = "2026-11-03T07:08:00Z".into()),
    ];
    assert_each_refused(&python, dir.path(), &first, &breaks);

    // Incident Findings, against their own class.
    let incidents = dir.path().join("incidents.jsonl");
    let args = ["--alerts-format", "ocsf", "--alerts", "/dev/null", "--incidents", incidents.to_str().unwrap()];
    nhid(&[&["replay", input.to_str().unwrap()][..], &args[..]].concat());
    let first = std::fs::read_to_string(&incidents).unwrap().lines().next().expect("an incident").to_owned();
    let breaks: [(&str, Break); 4] = [
        ("an incident has an assignee or a group", |f| drop(f.as_object_mut().unwrap().remove("assignee_group"))),
        ("each listed finding has a uid", |f| f["finding_info_list"] = serde_json::json!([{ "title": "x" }])),
        ("status_id is an enum", |f| f["status_id"] = 7.into()),
        ("a class nhid does not write", |f| f["class_uid"] = 2003.into()),
    ];
    assert_each_refused(&python, dir.path(), &first, &breaks);
}

type Break = fn(&mut Value);

/// Each break of the valid finding `first`, after it in one file, is refused on its line
/// only.
fn assert_each_refused(python: &Path, dir: &Path, first: &str, breaks: &[(&str, Break)]) {
    let valid: Value = serde_json::from_str(first).unwrap();
    for (why, break_it) in breaks {
        let mut finding = valid.clone();
        break_it(&mut finding);
        let path = dir.join("broken.jsonl");
        std::fs::write(&path, format!("{first}\n{finding}\n")).unwrap();
        let refused = check(python, &[&path]).expect_err(why);
        assert!(refused.contains("broken.jsonl:2:") && !refused.contains("broken.jsonl:1:"), "{why}: {refused}");
    }
}

#[test]
fn findings_say_the_ocsf_version_they_are_validated_against() {
    let version: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{SCHEMA}/version.json")).unwrap()).unwrap();
    assert_eq!(version["version"].as_str(), Some(OCSF_VERSION));
}
