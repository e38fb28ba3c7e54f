//! The Kubernetes audit decoder against every Kubernetes audit event we have: the
//! `Amazon.EKS.Audit` samples of Panther's rule tests and Falco's k8s audit test traces
//! (both read in place; see `tests/common/panther.rs`). Panther's samples are often cut down
//! by hand (no user, no time), Falco's span `audit.k8s.io/v1beta1` and `v1`.

mod common;

use std::collections::BTreeMap;

use common::panther::{falco_traces, rule_tests};
use nhid_decode::{DecodeContext, DecodeError, Format, decode, detect, k8s};
use nhid_model::event::AuditEvent;
use nhid_model::vocab::DeadLetterReason;

/// What the Kafka runtime passes for events without a time of their own: the message timestamp.
const MESSAGE_TIME: i64 = 1_700_000_000_000;

const LOG_TYPE: &str = "Amazon.EKS.Audit";

/// Falco's deliberately malformed trace: `kind` is a number, so it is no audit event.
const MALFORMED_TRACE: &str = "fal_01_003.json";

fn decode_with(bytes: &[u8], format: Format) -> Vec<Result<AuditEvent<'_>, DecodeError>> {
    let ctx = DecodeContext { fallback_time: Some(MESSAGE_TIME), ..Default::default() };
    let mut out = Vec::new();
    decode(bytes, format, &ctx, &mut |r| out.push(r));
    out
}

/// Every event of the Falco traces, one per non-empty line, named `file:line`.
fn falco_events() -> Vec<(String, Vec<u8>)> {
    let mut events = Vec::new();
    for (name, bytes) in falco_traces() {
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if !line.iter().all(u8::is_ascii_whitespace) {
                events.push((format!("{name}:{}", i + 1), line.to_vec()));
            }
        }
    }
    events
}

#[test]
fn every_eks_sample_decodes_and_is_detected() {
    let samples: Vec<_> = rule_tests().into_iter().filter(|t| t.log_type() == Some(LOG_TYPE)).collect();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut decoded = 0;
    for t in &samples {
        let bytes = t.bytes();
        assert_eq!(detect(&bytes), Some(Format::K8sAudit), "{} / {}", t.rule_id, t.test_name);
        let out = decode_with(&bytes, Format::Auto);
        match out.as_slice() {
            [Ok(e)] => {
                decoded += 1;
                *by_type.entry(e.principal.kind.as_str()).or_default() += 1;
                assert!(!e.principal.id.is_empty() && !e.id.is_empty() && !e.action.is_empty());
            }
            other => failures.push(format!("{} / {}: {other:?}", t.rule_id, t.test_name)),
        }
    }
    println!("{LOG_TYPE}: {decoded} / {} decoded; by principal type: {by_type:?}", samples.len());
    assert!(failures.is_empty(), "{} samples failed:\n{}", failures.len(), failures.join("\n"));
    assert!(samples.len() > 150, "only {} {LOG_TYPE} samples", samples.len());
}

#[test]
fn every_falco_trace_decodes_but_the_malformed_one() {
    let events = falco_events();
    let (mut decoded, mut by_type) = (0, BTreeMap::<&str, usize>::new());
    let mut failures = Vec::new();
    for (name, bytes) in &events {
        if name.starts_with(MALFORMED_TRACE) {
            let forced = decode_with(bytes, Format::K8sAudit);
            assert!(matches!(forced.as_slice(), [Err(e)] if e.reason == DeadLetterReason::WrongType), "{forced:?}");
            let auto = decode_with(bytes, Format::Auto);
            assert!(matches!(auto.as_slice(), [Err(e)] if e.reason == DeadLetterReason::UnknownFormat), "{auto:?}");
            continue;
        }
        assert_eq!(detect(bytes), Some(Format::K8sAudit), "{name}");
        match decode_with(bytes, Format::Auto).as_slice() {
            [Ok(e)] => {
                decoded += 1;
                *by_type.entry(e.principal.kind.as_str()).or_default() += 1;
            }
            other => failures.push(format!("{name}: {other:?}")),
        }
    }
    println!("falco traces: {decoded} / {} events decoded, 1 malformed; by principal type: {by_type:?}", events.len());
    assert!(failures.is_empty(), "{} events failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(decoded + 1, events.len());
}

#[test]
fn no_other_corpus_event_is_taken_for_kubernetes_audit() {
    let mut checked = 0;
    for t in rule_tests() {
        if t.log_type() == Some(LOG_TYPE) {
            continue;
        }
        assert!(!k8s::detect(&t.bytes()), "{} / {} ({:?})", t.rule_id, t.test_name, t.log_type());
        checked += 1;
    }
    for fixture in ["cloudtrail_leaked_access_key", "garbage_lines"] {
        let path = format!("{}/tests/fixtures/{fixture}/input.jsonl", env!("CARGO_MANIFEST_DIR"));
        for line in std::fs::read(path).unwrap().split(|&b| b == b'\n') {
            assert!(!k8s::detect(line), "{fixture}: {}", String::from_utf8_lossy(line));
            checked += 1;
        }
    }
    assert!(checked > 2900, "{checked}");
}

#[test]
fn decoded_events_written_back_as_canonical_are_read_as_canonical() {
    for (name, bytes) in falco_events() {
        for e in decode_with(&bytes, Format::K8sAudit).into_iter().flatten() {
            let canonical = serde_json::to_vec(&e).unwrap();
            assert_eq!(detect(&canonical), Some(Format::Native), "{name}");
        }
    }
}

#[test]
fn real_samples_are_classified_as_their_rules_describe() {
    let events = falco_events();
    let mut kinds = BTreeMap::new();
    for (_, bytes) in &events {
        for e in decode_with(bytes, Format::K8sAudit).into_iter().flatten() {
            kinds.insert(e.principal.id.to_string(), e.principal.kind.as_str());
        }
    }
    assert_eq!(kinds.get("minikube-user"), Some(&"human"));
    assert_eq!(kinds.get("system:anonymous"), Some(&"unknown"));
    assert!(
        kinds.iter().filter(|(id, _)| id.starts_with("system:serviceaccount:")).all(|(_, k)| *k == "service_account")
    );
}
