//! The Entra ID decoder against Panther's rule tests (panther-labs/panther-analysis,
//! Apache-2.0; see the dataset's README.txt). Entra sign-ins are filed there under the
//! `Azure.Audit` log type next to directory audits (`AuditLogs`, `ApplicationManagement`, …),
//! and both are this format; `Azure.MonitorActivity` holds Azure Resource Manager activity
//! and resource logs, which must be neither detected nor decoded as Entra.

mod common;

use std::collections::BTreeMap;

use common::panther::{RuleTest, rule_tests};
use nhid_decode::{DecodeContext, DecodeError, Format, decode, detect, entra};
use nhid_model::event::{AuditEvent, PrincipalType, SourceFormat};
use nhid_model::vocab::DeadLetterReason;

const MESSAGE_TIME: i64 = 1_700_000_000_000;
const SIGN_IN_CATEGORIES: &[&str] =
    &["SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs", "ManagedIdentitySignInLogs"];

fn is_sign_in(t: &RuleTest) -> bool {
    t.log_type() == Some("Azure.Audit")
        && t.log.get("category").and_then(|c| c.as_str()).is_some_and(|c| SIGN_IN_CATEGORIES.contains(&c))
}

fn decode_one(bytes: &[u8], format: Format) -> Result<AuditEvent<'_>, DecodeError> {
    let ctx = DecodeContext { fallback_time: Some(MESSAGE_TIME), ..Default::default() };
    let mut out = Vec::new();
    decode(bytes, format, &ctx, &mut |r| out.push(r));
    assert_eq!(out.len(), 1, "one message, one result");
    out.remove(0)
}

#[test]
fn every_sign_in_decodes_and_is_detected() {
    let tests = rule_tests();
    let mut by_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for t in tests.iter().filter(|t| is_sign_in(t)) {
        let bytes = t.bytes();
        let category = t.log["category"].as_str().unwrap().to_string();
        let entry = by_category.entry(category).or_default();
        entry.1 += 1;
        assert!(entra::detect(&bytes), "{} / {}: detected", t.rule_id, t.test_name);
        assert_eq!(detect(&bytes), Some(Format::Entra), "{} / {}", t.rule_id, t.test_name);
        match decode_one(&bytes, Format::Auto) {
            Ok(e) => {
                entry.0 += 1;
                assert_eq!(e.source_format, SourceFormat::Entra);
                assert!(!e.principal.id.is_empty() && !e.id.is_empty());
                *by_type.entry(e.principal.kind.as_str()).or_default() += 1;
                // The category is the platform's statement of who signed in.
                let expected = match t.log["category"].as_str().unwrap() {
                    "ServicePrincipalSignInLogs" => PrincipalType::ServiceAccount,
                    "ManagedIdentitySignInLogs" => PrincipalType::Workload,
                    _ => PrincipalType::Human,
                };
                assert_eq!(e.principal.kind, expected, "{} / {}", t.rule_id, t.test_name);
            }
            Err(e) => failures.push(format!("{} / {}: {e}", t.rule_id, t.test_name)),
        }
    }
    println!("Azure.Audit sign-ins by category (decoded, total): {by_category:?}");
    println!("by principal type: {by_type:?}");
    assert!(failures.is_empty(), "{} sign-ins failed:\n{}", failures.len(), failures.join("\n"));
    let total: usize = by_category.values().map(|c| c.1).sum();
    assert_eq!(total, 27, "the corpus's Entra sign-ins");
}

#[test]
fn every_directory_audit_decodes_with_who_initiated_it() {
    let mut decoded = 0;
    for t in rule_tests().iter().filter(|t| t.log_type() == Some("Azure.Audit") && !is_sign_in(t)) {
        let bytes = t.bytes();
        assert_eq!(detect(&bytes), Some(Format::Entra), "{} / {}", t.rule_id, t.test_name);
        let e = decode_one(&bytes, Format::Auto).unwrap_or_else(|e| panic!("{} / {}: {e}", t.rule_id, t.test_name));
        let props = &t.log["properties"];
        // Every audit in the corpus was initiated by a person: the actor is that user, by object id.
        assert_eq!(e.principal.kind, PrincipalType::Human, "{} / {}", t.rule_id, t.test_name);
        assert_eq!(e.principal.id, props["initiatedBy"]["user"]["id"].as_str().unwrap());
        let activity = props["activityDisplayName"].as_str().or(t.log["operationName"].as_str()).unwrap();
        assert_eq!(e.action, format!("entra:{activity}"));
        decoded += 1;
    }
    assert_eq!(decoded, 21, "directory audits in Azure.Audit");
}

#[test]
fn activity_logs_are_not_entra() {
    for t in rule_tests().iter().filter(|t| t.log_type() == Some("Azure.MonitorActivity")) {
        let bytes = t.bytes();
        assert!(!entra::detect(&bytes), "{} / {}", t.rule_id, t.test_name);
        assert_ne!(detect(&bytes), Some(Format::Entra), "{} / {}", t.rule_id, t.test_name);
    }
}

#[test]
fn no_other_log_type_is_detected_as_entra() {
    let mut checked = 0;
    for t in rule_tests().iter().filter(|t| t.log_type() != Some("Azure.Audit")) {
        assert!(!entra::detect(&t.bytes()), "{} / {} ({:?})", t.rule_id, t.test_name, t.log_type());
        checked += 1;
    }
    assert!(checked > 2500, "{checked}");
}

/// Diagnostic settings export to Event Hubs (and storage) as `{"records": [...]}`, sign-ins
/// and audits together: every record decodes as it does alone, and one that is no Entra
/// record (here Intune's audit) is dead-lettered alone, named by its place.
#[test]
fn an_event_hubs_message_gives_each_of_its_records() {
    let tests = rule_tests();
    let entra: Vec<String> = tests
        .iter()
        .filter(|t| t.log_type() == Some("Azure.Audit"))
        .map(|t| String::from_utf8(t.bytes()).unwrap())
        .collect();
    let intune = tests.iter().find(|t| t.log_type() == Some("MicrosoftIntune.AuditLogs")).unwrap();
    let mut records = entra.clone();
    records.insert(3, String::from_utf8(intune.bytes()).unwrap());
    let message = format!("{{\"records\": [\n{}\n]}}", records.join(",\n"));
    for format in [Format::Auto, Format::Entra] {
        let ctx = DecodeContext { fallback_time: Some(MESSAGE_TIME), ..Default::default() };
        let mut out = Vec::new();
        decode(message.as_bytes(), format, &ctx, &mut |r| out.push(r.map(|e| e.id.into_owned())));
        assert_eq!(out.len(), entra.len() + 1, "{format:?}");
        let failed: Vec<_> = out.iter().enumerate().filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e))).collect();
        assert_eq!(failed.len(), 1, "{format:?}: {failed:?}");
        assert_eq!(failed[0].0, 3);
        assert_eq!(failed[0].1.record, Some(3));
        if format == Format::Auto {
            assert_eq!(failed[0].1.reason, DeadLetterReason::UnknownFormat);
        }
        let alone: Vec<String> =
            entra.iter().map(|r| decode_one(r.as_bytes(), Format::Auto).unwrap().id.into_owned()).collect();
        let ids: Vec<String> = out.into_iter().filter_map(Result::ok).collect();
        assert_eq!(ids, alone, "{format:?}");
    }
    // The envelope is no one format (its records are detected one by one); an empty one holds
    // nothing to account for.
    assert_eq!(detect(message.as_bytes()), None);
    let mut out = 0;
    decode(b" { \"records\" : [ ] } ", Format::Auto, &DecodeContext::default(), &mut |_| out += 1);
    assert_eq!(out, 0);
}
