//! The GCP Cloud Audit Logs decoder against the `GCP.AuditLog` samples of Panther's rule
//! tests (read in place; see `tests/common/panther.rs`): anonymised real entries and
//! hand-cut ones, in both Logging's and Panther's key spellings.

mod common;

use std::collections::BTreeMap;

use common::panther::{RuleTest, rule_tests};
use nhid_decode::{DecodeContext, DecodeError, Format, decode, detect, gcp};
use nhid_model::event::{AuditEvent, CredentialKind, PrincipalType};
use nhid_model::vocab::DeadLetterReason;

/// What the Kafka runtime passes for entries without a time of their own: the message timestamp.
const MESSAGE_TIME: i64 = 1_700_000_000_000;

const LOG_TYPE: &str = "GCP.AuditLog";

/// Samples cut down so far by hand that no audited call is left in them: no `protoPayload`
/// at all (only a top-level `methodName`, or only `operation` and enrichment), or a payload with neither a caller nor a method (only `authorizationInfo`).
/// They are dead-lettered as `missing_principal`; with no payload, detection cannot name
/// them either.
const CUT_DOWN: &[(&str, usize)] = &[
    ("GCP.Firewall.Rule.Created", 2),
    ("GCP.Firewall.Rule.Deleted", 2),
    ("GCP.Firewall.Rule.Modified", 2),
    ("GCP.K8s.IOC.Activity", 2),
    ("GCP.iam.roles.update.Privilege.Escalation", 2),
];

fn samples() -> Vec<RuleTest> {
    rule_tests().into_iter().filter(|t| t.log_type() == Some(LOG_TYPE)).collect()
}

fn decode_with(bytes: &[u8], format: Format) -> Vec<Result<AuditEvent<'_>, DecodeError>> {
    let ctx = DecodeContext { fallback_time: Some(MESSAGE_TIME), ..Default::default() };
    let mut out = Vec::new();
    decode(bytes, format, &ctx, &mut |r| out.push(r));
    out
}

fn has_payload(t: &RuleTest) -> bool {
    t.log.get("protoPayload").or_else(|| t.log.get("protopayload")).is_some_and(|p| p.is_object())
}

#[test]
fn every_gcp_audit_sample_decodes_but_the_cut_down_ones() {
    let samples = samples();
    let (mut decoded, mut by_type, mut by_credential) =
        (0, BTreeMap::<&str, usize>::new(), BTreeMap::<&str, usize>::new());
    let mut cut_down: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for t in &samples {
        let bytes = t.bytes();
        match decode_with(&bytes, Format::GcpAudit).as_slice() {
            [Ok(e)] => {
                decoded += 1;
                *by_type.entry(e.principal.kind.as_str()).or_default() += 1;
                *by_credential.entry(e.credential.kind.as_str()).or_default() += 1;
                assert!(!e.principal.id.is_empty() && !e.id.is_empty() && !e.action.is_empty());
                assert_eq!(detect(&bytes), Some(Format::GcpAudit), "{} / {}", t.rule_id, t.test_name);
                let auto = decode_with(&bytes, Format::Auto);
                assert_eq!(auto.len(), 1);
                assert_eq!(auto[0].as_ref().ok(), Some(e));
            }
            [Err(e)] if e.reason == DeadLetterReason::MissingPrincipal => {
                *cut_down
                    .entry(CUT_DOWN.iter().find(|(r, _)| *r == t.rule_id).map_or("other", |(r, _)| r))
                    .or_default() += 1;
                if !has_payload(t) {
                    assert_eq!(detect(&bytes), None, "{} / {}", t.rule_id, t.test_name);
                }
            }
            other => failures.push(format!("{} / {}: {other:?}", t.rule_id, t.test_name)),
        }
    }
    println!(
        "{LOG_TYPE}: {decoded} / {} decoded, {} cut-down samples dead-lettered {cut_down:?}",
        samples.len(),
        samples.len() - decoded
    );
    println!("by principal type: {by_type:?}; by credential kind: {by_credential:?}");
    assert!(failures.is_empty(), "{} samples failed:\n{}", failures.len(), failures.join("\n"));
    let expected: BTreeMap<&str, usize> = CUT_DOWN.iter().copied().collect();
    assert_eq!(cut_down, expected);
    assert!(decoded > 180, "{decoded}");
}

#[test]
fn no_other_corpus_event_is_taken_for_gcp_audit() {
    let mut checked = 0;
    for t in rule_tests() {
        if t.log_type() == Some(LOG_TYPE) {
            continue;
        }
        assert!(!gcp::detect(&t.bytes()), "{} / {} ({:?})", t.rule_id, t.test_name, t.log_type());
        checked += 1;
    }
    for (name, bytes) in common::panther::falco_traces() {
        assert!(!gcp::detect(&bytes), "{name}");
    }
    for fixture in ["cloudtrail_leaked_access_key", "garbage_lines"] {
        let path = format!("{}/tests/fixtures/{fixture}/input.jsonl", env!("CARGO_MANIFEST_DIR"));
        for line in std::fs::read(path).unwrap().split(|&b| b == b'\n') {
            assert!(!gcp::detect(line), "{fixture}: {}", String::from_utf8_lossy(line));
            checked += 1;
        }
    }
    assert!(checked > 2900, "{checked}");
}

#[test]
fn decoded_events_written_back_as_canonical_are_read_as_canonical() {
    for t in samples() {
        let bytes = t.bytes();
        for e in decode_with(&bytes, Format::GcpAudit).into_iter().flatten() {
            assert_eq!(detect(&serde_json::to_vec(&e).unwrap()), Some(Format::Native), "{}", t.test_name);
        }
    }
}

#[test]
fn real_samples_are_classified_as_their_rules_describe() {
    let samples = samples();
    let mut keyed = 0;
    for t in &samples {
        let bytes = t.bytes();
        let Some(Ok(e)) = decode_with(&bytes, Format::GcpAudit).pop() else { continue };
        let email = e.principal.id.as_ref();
        if email.ends_with(".iam.gserviceaccount.com") {
            let managed = email.contains("@gcp-sa-") || email.contains("gs-project-accounts");
            let kind = if managed { PrincipalType::Workload } else { PrincipalType::ServiceAccount };
            assert_eq!(e.principal.kind, kind, "{}", t.test_name);
        }
        if e.credential.kind == CredentialKind::StaticKey {
            keyed += 1;
            let key = e.credential.id.as_deref().unwrap();
            assert!(!key.contains('/'), "the key id alone: {key}");
        }
    }
    assert!(keyed >= 10, "samples signed with a user-managed key: {keyed}");
}
