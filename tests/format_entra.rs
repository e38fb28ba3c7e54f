//! The Entra ID sign-in decoder against Panther's rule tests (panther-labs/panther-analysis,
//! Apache-2.0; see the dataset's README.txt). Entra sign-ins there are filed under the
//! `Azure.Audit` log type next to directory audits (`AuditLogs`, `ApplicationManagement`, …);
//! `Azure.MonitorActivity` holds Azure Resource Manager activity and resource logs. Only the
//! sign-ins are this format; the rest must be neither detected nor decoded as Entra.

mod common;

use std::collections::BTreeMap;

use common::panther::{RuleTest, rule_tests};
use nhid_decode::{DecodeContext, DecodeError, Format, decode, detect, entra};
use nhid_model::event::{AuditEvent, PrincipalType, SourceFormat};

const MESSAGE_TIME: i64 = 1_700_000_000_000;
const AZURE_TYPES: &[&str] = &["Azure.Audit", "Azure.MonitorActivity"];
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
fn directory_audits_and_activity_logs_are_not_entra() {
    let tests = rule_tests();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut auto: BTreeMap<String, usize> = BTreeMap::new();
    for t in tests.iter().filter(|t| t.log_type().is_some_and(|lt| AZURE_TYPES.contains(&lt)) && !is_sign_in(t)) {
        let bytes = t.bytes();
        *count.entry(t.log_type().unwrap()).or_default() += 1;
        assert!(!entra::detect(&bytes), "{} / {}", t.rule_id, t.test_name);
        let outcome = match decode_one(&bytes, Format::Auto) {
            Ok(e) => e.source_format.as_str().to_string(),
            Err(e) => e.reason.as_str().to_string(),
        };
        assert_ne!(outcome, "entra", "{} / {}", t.rule_id, t.test_name);
        *auto.entry(outcome).or_default() += 1;
    }
    println!("non-sign-in Azure events: {count:?}; auto-decoded as {auto:?}");
    assert_eq!(count.get("Azure.Audit"), Some(&21), "directory audits in Azure.Audit");
    assert_eq!(count.get("Azure.MonitorActivity"), Some(&249), "activity and resource logs");
    // No format nhid reads claims them (Azure activity logs are not a format nhid reads yet),
    // so every one is dead-lettered as unknown_format.
    assert_eq!(auto.get("unknown_format"), Some(&270), "{auto:?}");
}

#[test]
fn no_other_log_type_is_detected_as_entra() {
    let mut checked = 0;
    for t in rule_tests().iter().filter(|t| !is_sign_in(t)) {
        assert!(!entra::detect(&t.bytes()), "{} / {} ({:?})", t.rule_id, t.test_name, t.log_type());
        checked += 1;
    }
    assert!(checked > 2500, "{checked}");
}
