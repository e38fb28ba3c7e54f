//! The OCSF decoder against the corpus and against documentation-shaped events.
//!
//! Panther's rule tests (panther-labs/panther-analysis, Apache-2.0) hold no OCSF API Activity
//! (6003) or Authentication (3002) event: their OCSF samples are `OCSF.DnsActivity` (class
//! 4003) and `OCSF.NetworkActivity` (4001, mostly fragments). Those are checked for how they
//! are dead-lettered; the classes nhid reads are checked on events written after the mappings
//! Amazon Security Lake documents for CloudTrail (OCSF 1.1: `actor.user.uid` = ARN,
//! `actor.user.type` = `userIdentity.type`, `actor.user.credential_uid` = access key id,
//! `actor.session.issuer`, `actor.invoked_by`, `api.operation` / `api.service.name`,
//! `metadata.uid` = event id) and on an identity provider's Authentication event.

mod common;

use std::collections::BTreeMap;

use common::ocsf_examples;
use common::panther::rule_tests;
use nhid_decode::{DecodeContext, DecodeError, Format, decode, detect, ocsf};
use nhid_model::event::{AuditEvent, SourceFormat};

fn decode_one(bytes: &[u8], format: Format) -> Result<AuditEvent<'_>, DecodeError> {
    let ctx = DecodeContext { fallback_time: Some(1_700_000_000_000), ..Default::default() };
    let mut out = Vec::new();
    decode(bytes, format, &ctx, &mut |r| out.push(r));
    assert_eq!(out.len(), 1, "one message, one result");
    out.remove(0)
}

#[test]
fn corpus_ocsf_samples_are_other_classes() {
    let mut by_type: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for t in rule_tests().iter().filter(|t| t.log_type().is_some_and(|lt| lt.starts_with("OCSF."))) {
        let bytes = t.bytes();
        let class = t.log.get("class_uid").and_then(|c| c.as_u64());
        let result = match decode_one(&bytes, Format::Auto) {
            Ok(e) => format!("decoded as {}", e.source_format.as_str()),
            Err(e) => {
                // A full event of another class is OCSF and says which class it is; a fragment
                // without `class_uid` and `metadata` is not recognisable as OCSF at all.
                if let Some(class) = class {
                    assert!(ocsf::detect(&bytes), "{} / {}", t.rule_id, t.test_name);
                    assert!(e.detail.contains(&class.to_string()), "{}", e.detail);
                } else {
                    assert!(!ocsf::detect(&bytes), "{} / {}", t.rule_id, t.test_name);
                }
                e.reason.as_str().to_string()
            }
        };
        *by_type.entry(t.log_type().unwrap().to_string()).or_default().entry(result).or_default() += 1;
    }
    println!("corpus OCSF samples: {by_type:?}");
    let dns = &by_type["OCSF.DnsActivity"];
    assert_eq!(dns.get("unknown_format"), Some(&2), "{dns:?}");
    let network = &by_type["OCSF.NetworkActivity"];
    assert_eq!(network.get("unknown_format"), Some(&8), "{network:?}");
    assert_eq!(by_type.len(), 2);
}

#[test]
fn no_other_log_type_is_detected_as_ocsf() {
    let mut checked = 0;
    for t in rule_tests().iter().filter(|t| !t.log_type().is_some_and(|lt| lt.starts_with("OCSF."))) {
        assert!(!ocsf::detect(&t.bytes()), "{} / {} ({:?})", t.rule_id, t.test_name, t.log_type());
        checked += 1;
    }
    assert!(checked > 2500, "{checked}");
}

#[test]
fn documented_events_decode() {
    for (i, (text, kind, credential, outcome)) in ocsf_examples::DOCUMENTED.iter().enumerate() {
        assert_eq!(detect(text.as_bytes()), Some(Format::Ocsf), "event {i}");
        let e = decode_one(text.as_bytes(), Format::Auto).unwrap_or_else(|e| panic!("event {i}: {e}"));
        assert_eq!((e.principal.kind, e.credential.kind, e.outcome), (*kind, *credential, *outcome), "event {i}");
        assert_eq!(e.source_format, SourceFormat::Ocsf);
        assert!(e.id.starts_with("0fe5e4a5") || e.id == "okta-evt-1", "event {i}: {}", e.id);
    }
    let terraform = decode_one(ocsf_examples::DOCUMENTED[0].0.as_bytes(), Format::Ocsf).unwrap();
    assert_eq!(terraform.principal.id, "arn:aws:iam::111122223333:role/terraform");
    assert_eq!(terraform.action, "iam:CreateUser");
    assert_eq!(terraform.actor.session_id.as_deref(), Some("tf-run-9"));
    let kms = decode_one(ocsf_examples::DOCUMENTED[2].0.as_bytes(), Format::Ocsf).unwrap();
    assert_eq!((kms.actor.delegating_user, kms.source.user_agent.as_deref()), (None, Some("cloudtrail.amazonaws.com")));
    let okta = decode_one(ocsf_examples::DOCUMENTED[4].0.as_bytes(), Format::Ocsf).unwrap();
    assert_eq!(okta.actor.session_id.as_deref(), Some("102nZHxBsSzSRWmDcTzVG8tQw"));
    assert_eq!(okta.credential.issued_at, Some(1_699_999_200_000));
}
