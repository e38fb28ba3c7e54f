use super::*;
use crate::Format;
use crate::testing::Case;
use nhid_model::event::{CredentialKind, PrincipalType};
use nhid_model::time::parse_rfc3339;
use proptest::prelude::*;

crate::testing::decoder_helpers!();

/// API Activity as Amazon Security Lake writes CloudTrail (OCSF 1.1 mapping of `userIdentity`).
fn api(actor: &str, extra: &str) -> String {
    let status = if extra.contains(r#""status"#) { "" } else { r#","status":"Success","status_id":1"# };
    format!(
        r#"{{"metadata":{{"product":{{"version":"1.09","name":"CloudTrail","vendor_name":"AWS"}},"uid":"e2d1a3f0-0000-4000-8000-000000000001","profiles":["cloud","datetime"],"version":"1.1.0"}},"time":1714564800000,"time_dt":"2024-05-01T12:00:00.000Z","cloud":{{"region":"us-east-1","provider":"AWS","account":{{"uid":"123456789012"}}}},"api":{{"response":{{"error":null}},"operation":"GetObject","service":{{"name":"s3.amazonaws.com"}},"request":{{"uid":"8H5MAV3XZ3F2Q7TE"}}}},"actor":{actor},"http_request":{{"user_agent":"aws-cli/2.15.0"}},"src_endpoint":{{"ip":"203.0.113.7"}},"resources":[{{"uid":"arn:aws:s3:::billing-exports","type":"AWS::S3::Bucket"}}],"class_name":"API Activity","class_uid":6003,"category_name":"Application Activity","category_uid":6,"severity_id":1,"activity_id":2,"type_uid":600302{status}{extra}}}"#
    )
}

/// Authentication (3002) as an identity provider writes it: `user` signs in to `service`.
fn auth(user: &str, extra: &str) -> String {
    format!(
        r#"{{"metadata":{{"product":{{"name":"Okta","vendor_name":"Okta"}},"uid":"auth-1","version":"1.1.0"}},"time":1714564800000,"class_uid":3002,"category_uid":3,"type_uid":300201,"activity_id":1,"activity_name":"Logon","user":{user},"service":{{"name":"salesforce"}},"src_endpoint":{{"ip":"198.51.100.9"}},"auth_protocol":"SAML","is_mfa":true,"logon_type":"Network"{extra}}}"#
    )
}

fn cases() -> Vec<Case> {
    let base = Case::default();
    let role_session = |session: &str| {
        format!(
            r#"{{"user":{{"type":"AssumedRole","name":"billing-etl","uid":"arn:aws:sts::123456789012:assumed-role/billing-etl/{session}","uid_alt":"AROAEXAMPLE:{session}","account":{{"uid":"123456789012","type":"AWS Account"}},"credential_uid":"ASIAEXAMPLEEXAMPLE01"}},"session":{{"created_time":1714561200000,"issuer":"arn:aws:iam::123456789012:role/billing-etl","is_mfa":false}}}}"#
        )
    };
    vec![
        Case {
            name: "security lake: assumed-role session of a role",
            text: api(&role_session("etl-run-42"), ""),
            principal: "arn:aws:iam::123456789012:role/billing-etl",
            credential: CredentialKind::ShortLivedToken,
            session_id: Some("etl-run-42"),
            ..base
        },
        Case {
            name: "security lake: instance-profile session is a workload",
            text: api(&role_session("i-0123456789abcdef0"), ""),
            kind: PrincipalType::Workload,
            principal: "arn:aws:iam::123456789012:role/billing-etl",
            credential: CredentialKind::ShortLivedToken,
            session_id: Some("i-0123456789abcdef0"),
            ..base
        },
        Case {
            name: "security lake: SSO session named by email is a person",
            text: api(&role_session("jane.doe@example.com"), ""),
            kind: PrincipalType::Human,
            principal: "arn:aws:iam::123456789012:role/billing-etl",
            credential: CredentialKind::ShortLivedToken,
            session_id: Some("jane.doe@example.com"),
            ..base
        },
        Case {
            name: "security lake: IAM user with a static access key",
            text: api(
                r#"{"user":{"type":"IAMUser","name":"ci","uid":"arn:aws:iam::123456789012:user/ci","credential_uid":"AKIAEXAMPLEEXAMPLE01"}}"#,
                "",
            ),
            principal: "arn:aws:iam::123456789012:user/ci",
            credential: CredentialKind::StaticKey,
            ..base
        },
        Case {
            name: "security lake: IAM user without a key (console) is a person",
            text: api(r#"{"user":{"type":"IAMUser","name":"jane","uid":"arn:aws:iam::123456789012:user/jane"}}"#, ""),
            kind: PrincipalType::Human,
            principal: "arn:aws:iam::123456789012:user/jane",
            ..base
        },
        Case {
            name: "security lake: root",
            text: api(r#"{"user":{"type":"Root","uid":"arn:aws:iam::123456789012:root"}}"#, ""),
            kind: PrincipalType::Human,
            principal: "arn:aws:iam::123456789012:root",
            ..base
        },
        Case {
            name: "security lake: AWS service acting is a workload; invoked_by names the service, not a person",
            text: api(
                r#"{"user":{"type":"AWSService","uid":"cloudtrail.amazonaws.com"},"invoked_by":"cloudtrail.amazonaws.com"}"#,
                "",
            ),
            kind: PrincipalType::Workload,
            principal: "cloudtrail.amazonaws.com",
            ..base
        },
        Case {
            name: "security lake: access denied",
            text: api(
                r#"{"user":{"type":"IAMUser","uid":"arn:aws:iam::123456789012:user/ci","credential_uid":"AKIAEXAMPLEEXAMPLE01"}}"#,
                r#","status":"Failure","status_id":2,"status_code":"AccessDenied""#,
            ),
            principal: "arn:aws:iam::123456789012:user/ci",
            credential: CredentialKind::StaticKey,
            outcome: Outcome::Denied,
            ..base
        },
        Case {
            name: "api activity: a failure that is not a denial",
            text: api(
                r#"{"user":{"type_id":3,"type":"System","uid":"svc-backup","name":"backup"}}"#,
                r#","status_id":2,"status_detail":"NoSuchBucket""#,
            ),
            principal: "svc-backup",
            outcome: Outcome::Failure,
            ..base
        },
        Case {
            name: "api activity: user type_id 1 (User) with a session",
            text: api(
                r#"{"user":{"type_id":1,"uid":"00u1abcd","email_addr":"jane.doe@example.com"},"session":{"uid":"sess-9","created_time_dt":"2024-05-01T11:00:00Z","expiration_time_dt":"2024-05-01T13:00:00Z"}}"#,
                "",
            ),
            kind: PrincipalType::Human,
            principal: "00u1abcd",
            credential: CredentialKind::Session,
            session_id: Some("sess-9"),
            ..base
        },
        Case {
            name: "api activity: admin (type_id 2) is a person",
            text: api(r#"{"user":{"type_id":2,"type":"Admin","uid":"admin-1"}}"#, ""),
            kind: PrincipalType::Human,
            principal: "admin-1",
            ..base
        },
        Case {
            name: "api activity: a service account named by its type caption",
            text: api(r#"{"user":{"type_id":99,"type":"Service Account","uid":"sa-deployer"}}"#, ""),
            principal: "sa-deployer",
            ..base
        },
        Case {
            name: "api activity: an AI agent acting for a user (invoked_by)",
            text: api(
                r#"{"user":{"type_id":99,"type":"AI Agent","uid":"agent-7"},"app_name":"support-copilot","invoked_by":"jane.doe@example.com","session":{"uid":"conv-1"}}"#,
                "",
            ),
            kind: PrincipalType::AiAgent,
            principal: "agent-7",
            credential: CredentialKind::Session,
            delegating_user: Some("jane.doe@example.com"),
            agent_id: Some("support-copilot"),
            session_id: Some("conv-1"),
            ..base
        },
        Case {
            name: "api activity: no type at all is unknown, not a guess",
            text: api(r#"{"user":{"uid":"u-1"}}"#, ""),
            kind: PrincipalType::Unknown,
            principal: "u-1",
            ..base
        },
        Case {
            name: "authentication: a user signs in (the subject is `user`)",
            text: auth(r#"{"type_id":1,"uid":"00u1abcd","name":"jane.doe@example.com"}"#, r#","status_id":1"#),
            kind: PrincipalType::Human,
            principal: "00u1abcd",
            ..base
        },
        Case {
            name: "authentication: failed sign-in",
            text: auth(r#"{"type_id":1,"uid":"00u1abcd"}"#, r#","status_id":2,"status_detail":"INVALID_CREDENTIALS""#),
            kind: PrincipalType::Human,
            principal: "00u1abcd",
            outcome: Outcome::Failure,
            ..base
        },
        Case {
            name: "authentication: a system account signs in",
            text: auth(r#"{"type_id":3,"uid":"svc-sync"}"#, r#","status":"Success""#),
            principal: "svc-sync",
            ..base
        },
        Case {
            name: "authentication: denied by policy",
            text: auth(
                r#"{"type":"User","uid":"00u2"}"#,
                r#","status":"Failure","status_detail":"Access denied by sign-on policy""#,
            ),
            kind: PrincipalType::Human,
            principal: "00u2",
            outcome: Outcome::Denied,
            ..base
        },
    ]
}

#[test]
fn classification_table() {
    let cases = cases();
    for (c, e) in crate::testing::check_table(&cases, detect, decode) {
        assert_eq!(crate::detect(c.text.as_bytes()), Some(Format::Ocsf), "{}", c.name);
        assert_eq!(e.source_format, SourceFormat::Ocsf);
    }
}

#[test]
fn fields_map() {
    let all = cases();
    let e = one(&all[0].text).unwrap();
    assert_eq!(e.id, "e2d1a3f0-0000-4000-8000-000000000001");
    assert_eq!(e.time, 1_714_564_800_000);
    assert_eq!((e.service.as_ref(), e.action.as_ref()), ("s3", "s3:GetObject"));
    assert_eq!(e.resource.as_deref(), Some("arn:aws:s3:::billing-exports"));
    assert_eq!(e.credential.id.as_deref(), Some("ASIAEXAMPLEEXAMPLE01"));
    assert_eq!(e.credential.issued_at, Some(1_714_561_200_000));
    assert_eq!(e.principal.tenant.as_deref(), Some("123456789012"));
    assert_eq!(e.source.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(e.source.user_agent.as_deref(), Some("aws-cli/2.15.0"));

    let session = one(&all[9].text).unwrap();
    assert_eq!(session.credential.expires_at, parse_rfc3339("2024-05-01T13:00:00Z"));
    let service = one(&all[6].text).unwrap();
    assert_eq!(service.source.user_agent.as_deref(), Some("aws-cli/2.15.0"));
    let auth = one(&all[14].text).unwrap();
    assert_eq!((auth.service.as_ref(), auth.action.as_ref()), ("salesforce", "authentication:Logon"));
    assert_eq!(auth.principal.name.as_deref(), Some("jane.doe@example.com"));
}

#[test]
fn sessions_of_one_role_are_one_identity() {
    let ids: Vec<_> = [0, 1, 2].iter().map(|&i| one(&cases()[i].text).unwrap().principal.id.into_owned()).collect();
    assert!(ids.iter().all(|id| id == "arn:aws:iam::123456789012:role/billing-etl"), "{ids:?}");
}

#[test]
fn other_classes_are_dead_lettered_with_their_class() {
    let dns =
        r#"{"class_uid":4003,"category_uid":4,"type_uid":400302,"metadata":{"version":"1.1.0"},"time":1714564800000}"#;
    assert!(detect(dns.as_bytes()));
    let err = one(dns).unwrap_err();
    assert_eq!(err.reason, DeadLetterReason::UnknownFormat);
    assert!(err.detail.contains("4003") && err.detail.contains("network activity"), "{}", err.detail);
    let classless = r#"{"class_uid":"x","metadata":{},"type_uid":1}"#;
    assert_eq!(one(classless).unwrap_err().reason, DeadLetterReason::UnknownFormat);
    // A string class id is still the class.
    let text = cases()[0].text.replace(r#""class_uid":6003"#, r#""class_uid":"6003""#);
    assert!(one(&text).is_ok());
}

#[test]
fn essential_fields_fail_the_event() {
    let no_user = api(r#"{"app_name":"x"}"#, "");
    assert_eq!(one(&no_user).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
    let nameless = api(r#"{"user":{"type_id":1}}"#, "");
    assert_eq!(one(&nameless).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
    let bad_time = cases()[0].text.replace("1714564800000", r#""not a time""#);
    assert_eq!(one(&bad_time).unwrap_err().reason, DeadLetterReason::InvalidTime);
    // Microseconds read as milliseconds: the year 56,000, which no output could state.
    let micros = cases()[0].text.replace("1714564800000", "1714564800000000");
    assert_eq!(one(&micros).unwrap_err().reason, DeadLetterReason::InvalidTime);
    let untimed = cases()[0].text.replace(r#""time":1714564800000,"time_dt":"2024-05-01T12:00:00.000Z","#, "");
    assert_eq!(one(&untimed).unwrap_err().reason, DeadLetterReason::MissingTime);
    let ctx = DecodeContext { fallback_time: Some(42), ..Default::default() };
    assert_eq!(decode_all(&untimed, &ctx)[0].as_ref().unwrap().time, 42);
    let dt_only = cases()[0].text.replace(r#""time":1714564800000,"#, "");
    assert_eq!(one(&dt_only).unwrap().time, 1_714_564_800_000);
    assert_eq!(one("[1]").unwrap_err().reason, DeadLetterReason::WrongType);
    let err = one(r#"{"class_uid":6003,"secret":"SECRET-VALUE" oops}"#).unwrap_err();
    assert_eq!(err.reason, DeadLetterReason::InvalidJson);
    assert!(!err.detail.contains("SECRET"), "{}", err.detail);
}

#[test]
fn odd_optional_shapes_read_as_absent() {
    let text = api(r#"{"user":{"type_id":"3","uid":"svc","account":"123"},"session":[1],"invoked_by":7}"#, "")
        .replace(r#"[{"uid":"arn:aws:s3:::billing-exports","type":"AWS::S3::Bucket"}]"#, r#""x""#)
        .replace(r#"{"user_agent":"aws-cli/2.15.0"}"#, "null")
        .replace(r#""203.0.113.7""#, r#""not an ip""#)
        .replace(r#"{"region":"us-east-1","provider":"AWS","account":{"uid":"123456789012"}}"#, "[]");
    let e = one(&text).unwrap();
    assert_eq!((e.principal.kind, e.resource, e.source.ip), (PrincipalType::ServiceAccount, None, None));
}

#[test]
fn other_formats_are_not_ocsf() {
    let canonical = r#"{"id":"e1","time":"2024-05-01T12:00:00Z","principal":{"id":"svc","type":"service_account"},"action":"s3:GetObject","service":"s3","outcome":"success","source_format":"ocsf"}"#;
    assert!(!detect(canonical.as_bytes()));
    let cloudtrail = r#"{"eventVersion":"1.09","eventTime":"2024-05-01T12:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"type":"IAMUser"}}"#;
    assert!(!detect(cloudtrail.as_bytes()));
}

proptest! {
    #[test]
    fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-zA-Z0-9 .\-/@_\\]{0,200}"#) {
        let _ = decode_all(&s, &DecodeContext::default());
        let _ = detect(s.as_bytes());
        crate::decode(s.as_bytes(), Format::Ocsf, &DecodeContext::default(), &mut |_| {});
    }

    #[test]
    fn keys_with_arbitrary_values_never_panic(
        key in prop::sample::select(vec!["class_uid", "time", "time_dt", "actor", "user", "api", "status_id",
            "status", "resources", "metadata", "session", "uid", "type_id", "credential_uid", "created_time"]),
        value in r#"(null|true|-?[0-9]{1,20}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"uid":1\}|"arn:aws:sts::1:assumed-role/r/s")"#,
    ) {
        let text = format!(
            r#"{{"{key}":{value},"class_uid":6003,"actor":{{"{key}":{value},"user":{{"{key}":{value},"uid":"u"}},"session":{{"{key}":{value}}}}}}}"#
        );
        let ctx = DecodeContext { fallback_time: Some(0), ..Default::default() };
        let _ = decode_all(&text, &ctx);
        crate::decode(text.as_bytes(), Format::Ocsf, &ctx, &mut |_| {});
    }
}
