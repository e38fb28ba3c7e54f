//! The Azure activity log decoder against Panther's rule tests (panther-labs/panther-analysis,
//! Apache-2.0; see the dataset's README.txt): `Azure.MonitorActivity` holds Resource Manager
//! activity records, most of them cut down to the operation (no `identity`), and other
//! Azure logs filed with them: storage resource logs (`GetBlob`), AKS's Kubernetes audit
//! diagnostic records (`kube-audit`, the Kubernetes event as a string in `properties.log`)
//! and one record in the REST API's shape (`operationName: {value}`), none of which nhid reads.

mod common;

use std::collections::BTreeMap;

use common::panther::rule_tests;
use nhid_decode::{DecodeContext, Format, azure_activity, decode};
use nhid_model::event::PrincipalType;

#[test]
fn activity_records_decode_with_their_caller_and_resource_logs_are_not_activity() {
    let ctx = DecodeContext { fallback_time: Some(1_700_000_000_000), ..Default::default() };
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for t in rule_tests().iter().filter(|t| t.log_type() == Some("Azure.MonitorActivity")) {
        let bytes = t.bytes();
        let operation = t.log["operationName"].as_str().unwrap_or_default();
        let provider_operation = operation.to_ascii_lowercase().starts_with("microsoft.") && operation.contains('/');
        let arm_path = t.log["resourceId"].as_str().is_some_and(|r| r.starts_with('/'));
        assert_eq!(azure_activity::detect(&bytes), provider_operation && arm_path, "{} / {}", t.rule_id, t.test_name);
        let mut out = Vec::new();
        decode(&bytes, Format::Auto, &ctx, &mut |r| out.push(r));
        assert_eq!(out.len(), 1);
        let outcome = match out.remove(0) {
            Ok(e) => {
                assert!(azure_activity::detect(&bytes));
                // Who the claims or the evidence name, as the record states it.
                let claims = &t.log["identity"]["claims"];
                let upn = claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"].as_str();
                let expected = match (upn, claims["appid"].as_str(), &t.log["identity"]["authorization"]["evidence"]) {
                    (Some(_), _, _) => PrincipalType::Human,
                    (None, Some(_), _) => PrincipalType::ServiceAccount,
                    (None, None, ev) if ev["principalType"] == "User" => PrincipalType::Human,
                    _ => e.principal.kind,
                };
                assert_eq!(e.principal.kind, expected, "{} / {}", t.rule_id, t.test_name);
                assert_eq!(e.action, operation.to_ascii_lowercase());
                format!("azure_activity {}", e.principal.kind.as_str())
            }
            Err(e) => e.reason.as_str().to_string(),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("{outcomes:#?}");
    // Samples cut down to the operation name no caller: dead-lettered, never guessed. The
    // service principals are Key Vault reads by an app id; the one unknown is Azure Advisor.
    let expected = [
        ("azure_activity human", 10),
        ("azure_activity service_account", 6),
        ("azure_activity unknown", 1),
        ("missing_principal", 180),
        // 32 AKS kube-audit records, 19 storage resource logs, 1 REST-shaped record.
        ("unknown_format", 52),
    ];
    let expected: BTreeMap<String, usize> = expected.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    assert_eq!(outcomes, expected);
}
