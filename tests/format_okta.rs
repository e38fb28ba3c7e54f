//! The Okta System Log decoder against the `Okta.SystemLog` samples of Panther's rule tests
//! (panther-labs/panther-analysis, Apache-2.0; see the dataset's README.txt), and its
//! detection against every other event of the corpus.

mod common;

use std::collections::BTreeMap;

use common::panther::{RuleTest, assert_claims_no_other_event, rule_tests};
use nhid_decode::{DecodeContext, DecodeError, Format, decode, detect, okta};
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::vocab::DeadLetterReason;

/// What the Kafka runtime passes for events without a time of their own: the message timestamp.
const MESSAGE_TIME: i64 = 1_700_000_000_000;

const LOG_TYPE: &str = "Okta.SystemLog";

fn decode_one(bytes: &[u8], format: Format) -> Result<AuditEvent<'_>, DecodeError> {
    let ctx = DecodeContext { fallback_time: Some(MESSAGE_TIME), ..Default::default() };
    let mut out = Vec::new();
    decode(bytes, format, &ctx, &mut |r| out.push(r));
    assert_eq!(out.len(), 1, "one event, one result");
    out.remove(0)
}

/// Samples written for rules that read only enrichment or the event type: they carry no
/// `actor`, so they name no principal (`missing_principal`).
fn is_actorless(t: &RuleTest) -> bool {
    t.log.get("actor").is_none()
}

/// Anonymised samples whose `published` was replaced by `redacted`: not a time (`invalid_time`).
fn has_redacted_time(t: &RuleTest) -> bool {
    t.log.get("published").and_then(|v| v.as_str()) == Some("redacted")
}

#[test]
fn every_okta_sample_decodes() {
    let tests: Vec<RuleTest> = rule_tests().into_iter().filter(|t| t.log_type() == Some(LOG_TYPE)).collect();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_credential: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut decoded, mut actorless, mut redacted) = (0, 0, 0);
    let mut failures = Vec::new();
    for t in &tests {
        let bytes = t.bytes();
        match decode_one(&bytes, Format::Okta) {
            Ok(e) if !is_actorless(t) && !has_redacted_time(t) => {
                decoded += 1;
                *by_type.entry(e.principal.kind.as_str()).or_default() += 1;
                *by_credential.entry(e.credential.kind.as_str()).or_default() += 1;
                assert!(e.principal.id.starts_with("okta:") && !e.id.is_empty() && !e.action.is_empty());
                assert_eq!(decode_one(&bytes, Format::Auto).ok(), Some(e), "{} / {}", t.rule_id, t.test_name);
            }
            Err(e) if is_actorless(t) && e.reason == DeadLetterReason::MissingPrincipal => actorless += 1,
            Err(e) if has_redacted_time(t) && e.reason == DeadLetterReason::InvalidTime => redacted += 1,
            result => failures.push(format!("{} / {}: {:?}", t.rule_id, t.test_name, result.err())),
        }
    }
    println!(
        "{LOG_TYPE}: {decoded} / {} decoded; dead-lettered: {actorless} without an actor (missing_principal), {redacted} with a redacted published time (invalid_time)",
        tests.len()
    );
    println!("by principal type: {by_type:?}");
    println!("by credential kind: {by_credential:?}");
    assert!(failures.is_empty(), "{} samples failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!((actorless, redacted), (5, 4));
    assert_eq!(decoded + actorless + redacted, tests.len());
    for kind in [PrincipalType::Human, PrincipalType::ApiKey, PrincipalType::OauthClient] {
        assert!(by_type.contains_key(kind.as_str()), "no {kind} among the samples");
    }
}

#[test]
fn every_okta_sample_with_okta_keys_is_detected_as_okta() {
    let mut undetected = Vec::new();
    for t in rule_tests().iter().filter(|t| t.log_type() == Some(LOG_TYPE)) {
        if detect(&t.bytes()) != Some(Format::Okta) {
            undetected.push(t.log.clone());
        }
    }
    // Only samples that hold nothing of Okta's: enrichment alone, or a bare `eventType`.
    assert_eq!(undetected.len(), 3, "{undetected:?}");
    for log in undetected {
        assert!(log.get("actor").is_none() && log.get("displayMessage").is_none(), "{log}");
    }
}

#[test]
fn no_event_of_another_log_type_is_detected_as_okta() {
    assert_claims_no_other_event(LOG_TYPE, Format::Okta, okta::detect);
}
