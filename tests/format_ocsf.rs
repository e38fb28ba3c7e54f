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

use common::panther::rule_tests;
use nhid::decode::{DecodeContext, DecodeError, Format, decode, detect, ocsf};
use nhid::event::{AuditEvent, CredentialKind, Outcome, PrincipalType, SourceFormat};

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

/// Events shaped after the documented mappings (see the module comment), one per line.
const DOCUMENTED: &[(&str, PrincipalType, CredentialKind, Outcome)] = &[
    (
        r#"{"metadata":{"product":{"version":"1.08","name":"CloudTrail","vendor_name":"AWS","feature":{"name":"Management"}},"uid":"0fe5e4a5-3d6b-4b5a-9c1f-000000000001","profiles":["cloud","datetime"],"version":"1.1.0"},"time":1700000000000,"time_dt":"2023-11-14T22:13:20.000Z","cloud":{"region":"us-east-1","provider":"AWS"},"api":{"response":{"error":null,"message":null},"operation":"CreateUser","version":null,"service":{"name":"iam.amazonaws.com"},"request":{"uid":"REQ1"}},"actor":{"user":{"type":"AssumedRole","name":"terraform","uid":"arn:aws:sts::111122223333:assumed-role/terraform/tf-run-9","uid_alt":"AROAEXAMPLE:tf-run-9","account":{"uid":"111122223333"},"credential_uid":"ASIAEXAMPLEEXAMPLE02"},"session":{"created_time":1699999000000,"mfa":false,"issuer":"arn:aws:iam::111122223333:role/terraform"}},"http_request":{"user_agent":"APN/1.0 HashiCorp/1.0 Terraform/1.6.0"},"src_endpoint":{"ip":"10.0.0.12"},"resources":[{"uid":"arn:aws:iam::111122223333:user/new-user"}],"class_name":"API Activity","class_uid":6003,"category_name":"Application Activity","category_uid":6,"severity_id":1,"severity":"Informational","activity_name":"Create","activity_id":1,"type_uid":600301,"type_name":"API Activity: Create","status":"Success","status_id":1,"unmapped":{"requestParameters.userName":"new-user"}}"#,
        PrincipalType::ServiceAccount,
        CredentialKind::ShortLivedToken,
        Outcome::Success,
    ),
    (
        r#"{"metadata":{"product":{"name":"CloudTrail","vendor_name":"AWS"},"uid":"0fe5e4a5-3d6b-4b5a-9c1f-000000000002","version":"1.1.0"},"time":1700000060000,"cloud":{"region":"eu-west-1","provider":"AWS","account":{"uid":"111122223333"}},"api":{"response":{"error":"AccessDenied","message":"User is not authorized to perform: s3:ListBucket"},"operation":"ListObjects","service":{"name":"s3.amazonaws.com"}},"actor":{"user":{"type":"IAMUser","name":"legacy-backup","uid":"arn:aws:iam::111122223333:user/legacy-backup","credential_uid":"AKIAEXAMPLEEXAMPLE03"}},"http_request":{"user_agent":"aws-sdk-go/1.44.0"},"src_endpoint":{"ip":"198.51.100.44"},"class_uid":6003,"category_uid":6,"activity_id":2,"type_uid":600302,"status":"Failure","status_id":2}"#,
        PrincipalType::ServiceAccount,
        CredentialKind::StaticKey,
        Outcome::Denied,
    ),
    (
        r#"{"metadata":{"product":{"name":"CloudTrail","vendor_name":"AWS"},"uid":"0fe5e4a5-3d6b-4b5a-9c1f-000000000003","version":"1.1.0"},"time":1700000120000,"cloud":{"provider":"AWS","account":{"uid":"111122223333"}},"api":{"operation":"Decrypt","service":{"name":"kms.amazonaws.com"}},"actor":{"user":{"type":"AWSService","uid":"cloudtrail.amazonaws.com"},"invoked_by":"cloudtrail.amazonaws.com"},"src_endpoint":{"domain":"cloudtrail.amazonaws.com"},"class_uid":6003,"category_uid":6,"type_uid":600302,"status_id":1}"#,
        PrincipalType::Workload,
        CredentialKind::Unknown,
        Outcome::Success,
    ),
    (
        r#"{"metadata":{"product":{"name":"CloudTrail","vendor_name":"AWS"},"uid":"0fe5e4a5-3d6b-4b5a-9c1f-000000000004","version":"1.1.0"},"time":1700000180000,"cloud":{"provider":"AWS","account":{"uid":"111122223333"}},"user":{"type":"Root","uid":"arn:aws:iam::111122223333:root","account":{"uid":"111122223333"}},"actor":{"user":{"type":"Root","uid":"arn:aws:iam::111122223333:root"}},"src_endpoint":{"ip":"203.0.113.30"},"http_request":{"user_agent":"Mozilla/5.0"},"class_name":"Authentication","class_uid":3002,"category_uid":3,"activity_id":1,"activity_name":"Logon","type_uid":300201,"is_mfa":false,"status":"Success","status_id":1,"dst_endpoint":{"svc_name":"https://console.aws.amazon.com/console/home"}}"#,
        PrincipalType::Human,
        CredentialKind::Unknown,
        Outcome::Success,
    ),
    (
        r#"{"metadata":{"product":{"name":"Okta","vendor_name":"Okta"},"uid":"okta-evt-1","version":"1.1.0"},"time":1700000240000,"user":{"type_id":1,"type":"User","uid":"00ub0oNGTSWTBKOLGLNR","name":"isaac.brock@example.com","email_addr":"isaac.brock@example.com"},"actor":{"session":{"uid":"102nZHxBsSzSRWmDcTzVG8tQw","created_time_dt":"2023-11-14T22:00:00Z"}},"service":{"name":"Salesforce.com"},"src_endpoint":{"ip":"192.0.2.55"},"auth_protocol":"SAML","auth_protocol_id":5,"logon_type":"Network","is_mfa":true,"class_uid":3002,"category_uid":3,"activity_id":1,"activity_name":"Logon","type_uid":300201,"status":"Failure","status_id":2,"status_detail":"VERIFICATION_ERROR"}"#,
        PrincipalType::Human,
        CredentialKind::Session,
        Outcome::Failure,
    ),
];

#[test]
fn documented_events_decode() {
    for (i, (text, kind, credential, outcome)) in DOCUMENTED.iter().enumerate() {
        assert_eq!(detect(text.as_bytes()), Some(Format::Ocsf), "event {i}");
        let e = decode_one(text.as_bytes(), Format::Auto).unwrap_or_else(|e| panic!("event {i}: {e}"));
        assert_eq!((e.principal.kind, e.credential.kind, e.outcome), (*kind, *credential, *outcome), "event {i}");
        assert_eq!(e.source_format, SourceFormat::Ocsf);
        assert!(e.id.starts_with("0fe5e4a5") || e.id == "okta-evt-1", "event {i}: {}", e.id);
    }
    let terraform = decode_one(DOCUMENTED[0].0.as_bytes(), Format::Ocsf).unwrap();
    assert_eq!(terraform.principal.id, "arn:aws:iam::111122223333:role/terraform");
    assert_eq!(terraform.action, "iam:CreateUser");
    assert_eq!(terraform.actor.session_id.as_deref(), Some("tf-run-9"));
    let kms = decode_one(DOCUMENTED[2].0.as_bytes(), Format::Ocsf).unwrap();
    assert_eq!((kms.actor.delegating_user, kms.source.user_agent.as_deref()), (None, Some("cloudtrail.amazonaws.com")));
    let okta = decode_one(DOCUMENTED[4].0.as_bytes(), Format::Ocsf).unwrap();
    assert_eq!(okta.actor.session_id.as_deref(), Some("102nZHxBsSzSRWmDcTzVG8tQw"));
    assert_eq!(okta.credential.issued_at, Some(1_699_999_200_000));
}
