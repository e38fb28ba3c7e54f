//! The GitHub audit log decoder against the `GitHub.Audit` samples of Panther's rule tests
//! (panther-labs/panther-analysis, Apache-2.0; see the dataset's README.txt), and its
//! detection against every other event of the corpus.

mod common;

use std::collections::BTreeMap;

use common::panther::{RuleTest, assert_claims_no_other_event, rule_tests};
use nhid_decode::{DecodeContext, DecodeError, Format, decode, detect, github};
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::vocab::DeadLetterReason;

/// What the Kafka runtime passes for events without a time of their own: the message timestamp.
const MESSAGE_TIME: i64 = 1_700_000_000_000;

const LOG_TYPE: &str = "GitHub.Audit";

fn decode_one(bytes: &[u8], format: Format) -> Result<AuditEvent<'_>, DecodeError> {
    let ctx = DecodeContext { fallback_time: Some(MESSAGE_TIME), ..Default::default() };
    let mut out = Vec::new();
    decode(bytes, format, &ctx, &mut |r| out.push(r));
    assert_eq!(out.len(), 1, "one event, one result");
    out.remove(0)
}

/// A sample made for a negative rule test that holds nothing but an `action`: it names no
/// principal, and without an actor it carries no GitHub marker either.
fn is_actorless(t: &RuleTest) -> bool {
    t.log.get("actor").is_none() && t.log.get("actor_id").is_none()
}

/// `"2024-12-17 00:00:00000000"`: the fraction has no dot, so this is not a timestamp, and
/// dead-lettering those events as `invalid_time` is correct.
fn has_malformed_time(t: &RuleTest) -> bool {
    t.log.get("created_at").and_then(|v| v.as_str()) == Some("2024-12-17 00:00:00000000")
}

#[test]
fn every_github_audit_sample_decodes() {
    let tests: Vec<RuleTest> = rule_tests().into_iter().filter(|t| t.log_type() == Some(LOG_TYPE)).collect();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut decoded, mut actorless, mut malformed) = (0, 0, 0);
    let mut failures = Vec::new();
    for t in &tests {
        let bytes = t.bytes();
        match (decode_one(&bytes, Format::Github), is_actorless(t) || has_malformed_time(t)) {
            (Ok(e), false) => {
                decoded += 1;
                *by_type.entry(e.principal.kind.as_str()).or_default() += 1;
                assert!(e.principal.id.starts_with("github:") && !e.id.is_empty() && !e.action.is_empty());
                assert_eq!(decode_one(&bytes, Format::Auto).ok(), Some(e), "{} / {}", t.rule_id, t.test_name);
            }
            (Err(e), true) if has_malformed_time(t) && e.reason == DeadLetterReason::InvalidTime => {
                malformed += 1;
                assert_eq!(detect(&bytes), Some(Format::Github));
            }
            (Err(e), true) if e.reason == DeadLetterReason::MissingPrincipal => {
                actorless += 1;
                assert_ne!(detect(&bytes), Some(Format::Github));
            }
            (result, _) => failures.push(format!("{} / {}: {:?}", t.rule_id, t.test_name, result.err())),
        }
    }
    println!(
        "{LOG_TYPE}: {decoded} / {} decoded; dead-lettered: {actorless} without an actor (missing_principal), {malformed} with a malformed created_at (invalid_time)",
        tests.len()
    );
    println!("by principal type: {by_type:?}");
    assert!(failures.is_empty(), "{} samples failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(actorless, 1, "the one action-only sample is dead-lettered as missing_principal");
    assert_eq!(malformed, 4, "the four ruleset samples with a dot-less fraction are dead-lettered as invalid_time");
    assert_eq!(decoded + actorless + malformed, tests.len());
    assert!(decoded >= 100, "only {decoded} samples decoded");
    for kind in [PrincipalType::Human, PrincipalType::Bot] {
        assert!(by_type.contains_key(kind.as_str()), "no {kind} among the samples");
    }
}

#[test]
fn every_github_audit_sample_is_detected_as_github() {
    for t in rule_tests().iter().filter(|t| t.log_type() == Some(LOG_TYPE) && !is_actorless(t)) {
        assert_eq!(detect(&t.bytes()), Some(Format::Github), "{} / {}", t.rule_id, t.test_name);
    }
}

#[test]
fn no_event_of_another_log_type_is_detected_as_github() {
    assert_claims_no_other_event(LOG_TYPE, Format::Github, github::detect);
}
