//! Issue 5's acceptance: `nhid replay` over one file mixing every format nhid reads, as a
//! shared topic would carry them (auto-detection per message), reports events by format and
//! principal type, and dead-letters only the corpus samples that are not well formed.
//!
//! The events are the real public samples in `tests/data` (Panther rule tests and
//! Falco's Kubernetes traces, read in place) and the documented OCSF examples.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use common::ocsf_examples;
use common::panther::rule_tests;

/// Panther log types of the formats nhid reads, and the format each must be read as.
const LOG_TYPES: &[(&str, &str)] = &[
    ("AWS.CloudTrail", "cloudtrail"),
    ("Amazon.EKS.Audit", "k8s_audit"),
    ("GCP.AuditLog", "gcp_audit"),
    ("GitHub.Audit", "github"),
    ("Okta.SystemLog", "okta"),
    // Entra ID sign-ins and directory audits.
    ("Azure.Audit", "entra"),
];

/// The samples that are not well formed, each established by its format's own dataset test
/// (`tests/format_*.rs`, `tests/cloudtrail_dataset.rs`). Time placeholders (`"redacted"`,
/// `"..."`, a GitHub time without its fraction dot) are `invalid_time`; two Okta events
/// without an actor are `missing_principal`. Samples cut down to one or two fields that no
/// platform would send alone (`{"methodName": ...}`, `{"eventType": "logout"}`, enrichment
/// only, a GCP payload with only `authorizationInfo`) carry no marker of their platform, so
/// auto-detection names them `unknown_format` (forced to their format, their own tests show
/// them as `missing_principal`), as it does Falco's deliberately malformed `{"kind": 0}`.
const MALFORMED: &[(&str, usize)] = &[("invalid_time", 10), ("missing_principal", 2), ("unknown_format", 18)];

#[test]
fn replay_of_every_format_mixed_reports_each_and_dead_letters_only_the_malformed() {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for t in rule_tests() {
        let ours = t.log_type().is_some_and(|lt| LOG_TYPES.iter().any(|(l, _)| *l == lt));
        if ours {
            lines.push(t.bytes());
        }
    }
    for (_, trace) in common::panther::falco_traces() {
        lines.extend(trace.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()).map(<[u8]>::to_vec));
    }
    lines.extend(ocsf_examples::DOCUMENTED.iter().map(|(text, ..)| text.as_bytes().to_vec()));

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    for l in &lines {
        f.write_all(l).unwrap();
        f.write_all(b"\n").unwrap();
    }
    drop(f);
    let dead = dir.path().join("dead.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_nhid"))
        .arg("replay")
        .arg(&input)
        .arg("--dead-letter")
        .arg(&dead)
        .args(["--alerts", "/dev/null"])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}");

    // Events by source format (summed over principal types) from the summary table.
    let section = summary
        .split("events by source format and principal type\n")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap_or_else(|| panic!("no format table in:\n{summary}"));
    let mut by_format: BTreeMap<&str, u64> = BTreeMap::new();
    for row in section.lines() {
        let cells: Vec<&str> = row.split_whitespace().collect();
        *by_format.entry(cells[0]).or_default() += cells[2].parse::<u64>().unwrap();
    }
    for format in ["cloudtrail", "k8s_audit", "gcp_audit", "github", "okta", "entra", "ocsf"] {
        assert!(by_format.get(format).is_some_and(|&n| n > 0), "no {format} events in:\n{summary}");
    }
    // Every message an event, except the malformed: the formats account for all the others.
    let events: u64 = by_format.values().sum();
    let malformed: usize = MALFORMED.iter().map(|(_, n)| n).sum();
    assert_eq!(events as usize, lines.len() - malformed, "{summary}");

    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for l in std::fs::read_to_string(&dead).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *reasons.entry(v["reason"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = MALFORMED.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    assert_eq!(reasons, expected, "{summary}");
    println!("{section}");
}
