//! Stratus Red Team's AWS attack techniques, each on a cold start (no history, no
//! inventory), as a stolen credential's first calls: is the attack alerted, and at which of
//! its calls?
//!
//! The CloudTrail records (`tests/data/stratus/aws/`, README there) were written from each
//! technique's documentation and implementation, by other hands than nhid's rules and
//! without reading them; `MANIFEST.jsonl` names, per technique, the attack's own calls in
//! order and whether one call, read with its request, shows the attack (`by_content`) or
//! only volume, timing or network do. The measure the issue set: a technique is caught when
//! its first malicious call raises an alert.
//!
//! `cargo test --test stratus -- --nocapture` prints the table.

use std::collections::BTreeSet;
use std::path::PathBuf;

use nhid::config::Config;
use nhid_engine::{Origin, Outputs};
use serde::Deserialize;

#[derive(Deserialize)]
struct Technique {
    technique: String,
    file: String,
    malicious: Vec<String>,
    by_content: bool,
}

/// What one technique raised.
struct Outcome {
    technique: String,
    by_content: bool,
    /// Alerted at its first malicious call.
    at_first: bool,
    /// The first malicious call (1-based) an alert names, if any.
    first_alerted: Option<usize>,
    detectors: BTreeSet<String>,
    /// Severity and principal type of every alert.
    alerts: Vec<(String, String)>,
    actions_on_people: usize,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/stratus/aws")
}

fn manifest() -> Vec<Technique> {
    let text = std::fs::read_to_string(dir().join("MANIFEST.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn detonate(t: &Technique) -> Outcome {
    let engine = Config::default().engine().unwrap();
    let mut out = Outputs::default();
    let text = std::fs::read_to_string(dir().join(&t.file)).unwrap();
    for (offset, line) in text.lines().enumerate() {
        engine.process(
            line.as_bytes(),
            Origin { source: "audit", partition: 0, offset: offset as i64 },
            None,
            &mut out,
        );
    }
    let alerted: BTreeSet<&str> = out.alerts.iter().flat_map(|a| a.event_ids.iter().map(String::as_str)).collect();
    let first_alerted = t.malicious.iter().position(|id| alerted.contains(id.as_str())).map(|i| i + 1);
    let people: BTreeSet<&str> =
        out.alerts.iter().filter(|a| !a.principal.kind.is_machine()).map(|a| a.principal.id.as_str()).collect();
    Outcome {
        technique: t.technique.clone(),
        by_content: t.by_content,
        at_first: first_alerted == Some(1),
        first_alerted,
        detectors: out.alerts.iter().map(|a| a.detector.clone()).collect(),
        alerts: out
            .alerts
            .iter()
            .map(|a| (a.severity.as_str().to_string(), a.principal.kind.as_str().to_string()))
            .collect(),
        actions_on_people: out.actions.iter().filter(|a| people.contains(a.target.principal_id.as_str())).count(),
    }
}

#[test]
fn stratus_techniques_are_alerted_at_their_first_malicious_call_on_a_cold_start() {
    let techniques = manifest();
    assert_eq!(techniques.len(), 43, "every AWS technique of the documentation");
    let outcomes: Vec<Outcome> = techniques.iter().map(detonate).collect();
    eprintln!("{:<62} {:>7} {:>6} {:>6}  detectors / alerts", "technique", "content", "first", "call");
    for o in &outcomes {
        eprintln!(
            "{:<62} {:>7} {:>6} {:>6}  {:?} {:?}",
            o.technique,
            o.by_content,
            o.at_first,
            o.first_alerted.map_or("-".into(), |n| n.to_string()),
            o.detectors,
            o.alerts
        );
    }
    let at_first = outcomes.iter().filter(|o| o.at_first).count();
    let at_all = outcomes.iter().filter(|o| o.first_alerted.is_some()).count();
    let content: Vec<&Outcome> = outcomes.iter().filter(|o| o.by_content).collect();
    let content_caught = content.iter().filter(|o| o.first_alerted.is_some()).count();
    eprintln!(
        "alerted at the first malicious call: {at_first} of {}; at any: {at_all}; by-content techniques alerted: {content_caught} of {}",
        outcomes.len(),
        content.len()
    );
    // Every technique a single call shows is alerted at that call at the latest.
    let missed: Vec<&str> =
        content.iter().filter(|o| o.first_alerted.is_none()).map(|o| o.technique.as_str()).collect();
    assert!(missed.is_empty(), "by-content techniques not alerted: {missed:?}");
    // Measured 34 of 43 (2026-12-05). The bar is 30 of the 36 techniques Stratus
    // documented then (83%); of the 9 missed here, 7 are volume on a cold start (reading 20
    // secrets or 42 parameters, deleting 51 objects, describing the estate, sessions on three
    // instances, a function's code replaced as CI does) and 2 start with a call that is
    // harmless alone (ListObjects before encrypting, StopInstances before replacing user
    // data): see docs/detectors.md.
    assert!(at_first >= 34, "{at_first} of {} at the first malicious call", outcomes.len());
    // The volume techniques (many secrets, parameters or objects) by nhid's correlation rules,
    // at the call that crosses their threshold.
    assert!(at_all >= 39, "{at_all} of {} at some call", outcomes.len());
    // Nothing acts on a person or on an identity not provably a machine.
    for o in &outcomes {
        assert_eq!(o.actions_on_people, 0, "{}: acted on a person", o.technique);
    }
}
