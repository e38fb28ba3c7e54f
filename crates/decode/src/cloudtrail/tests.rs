use super::*;
use nhid_model::event::{CredentialKind, PrincipalType};
use nhid_model::time::parse_rfc3339;
use proptest::prelude::*;

const ACCT: &str = "123456789012";
const T0: &str = "2024-05-01T12:00:00Z";

crate::testing::decoder_helpers!();

/// A record around a `userIdentity` snippet (empty: no `userIdentity` at all) and extra
/// top-level fields, which replace the defaults of the same name.
fn record(ui: &str, extra: &str) -> String {
    let time = format!(r#""{T0}""#);
    let account = format!(r#""{ACCT}""#);
    let defaults = [
        ("eventTime", time.as_str()),
        ("eventSource", r#""s3.amazonaws.com""#),
        ("eventName", r#""GetObject""#),
        ("recipientAccountId", account.as_str()),
        ("sourceIPAddress", r#""203.0.113.7""#),
        ("userAgent", r#""aws-cli/2.15.0 Python/3.11""#),
    ];
    let user_identity = if ui.is_empty() { String::new() } else { format!(r#""userIdentity":{ui}"#) };
    crate::testing::object_with(&defaults, &[&user_identity, extra])
}

const MOZILLA: &str = r#""userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)""#;

/// The cases whose type rests on what the caller chose (a user agent, a session name):
/// anyone holding the keys can send those, so the type is marked inferred.
const INFERRED: &[&str] = &[
    "iam user, temporary key from a browser",
    "assumed role, switched to in the console",
    "assumed role, ec2 instance profile by session name",
    "assumed role, session named after an email",
];

/// (case, userIdentity, extra fields, expected principal type, expected credential kind)
const CLASSIFICATION: &[(&str, &str, &str, PrincipalType, CredentialKind)] = &[
    (
        "iam user, programmatic, static key",
        r#"{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/ci-deployer","accountId":"123456789012","accessKeyId":"AKIAIOSFODNN7EXAMPLE","userName":"ci-deployer"}"#,
        "",
        PrincipalType::ServiceAccount,
        CredentialKind::StaticKey,
    ),
    (
        "iam user, console sign-in",
        r#"{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","userName":"alice"}"#,
        r#""eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn","eventSource":"signin.amazonaws.com""#,
        PrincipalType::Human,
        CredentialKind::Password,
    ),
    (
        "iam user, console session with mfa",
        r#"{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE01","userName":"alice","sessionContext":{"attributes":{"creationDate":"2024-05-01T11:00:00Z","mfaAuthenticated":"true"}}}"#,
        "",
        PrincipalType::Human,
        CredentialKind::Session,
    ),
    (
        "iam user, temporary key from a browser",
        r#"{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE01","userName":"alice"}"#,
        MOZILLA,
        PrincipalType::Human,
        CredentialKind::Session,
    ),
    (
        "assumed role, service session",
        r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:etl-run-42","arn":"arn:aws:sts::123456789012:assumed-role/billing-etl/etl-run-42","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE02","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLE","arn":"arn:aws:iam::123456789012:role/billing-etl","accountId":"123456789012","userName":"billing-etl"},"attributes":{"creationDate":"2024-05-01T11:59:00Z","mfaAuthenticated":"false"}}}"#,
        "",
        PrincipalType::ServiceAccount,
        CredentialKind::ShortLivedToken,
    ),
    (
        "assumed role, switched to in the console",
        r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:carol","arn":"arn:aws:sts::123456789012:assumed-role/DevAdmin/carol","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE11"}"#,
        r#""userAgent":"console.amazonaws.com""#,
        PrincipalType::Human,
        CredentialKind::Session,
    ),
    (
        "assumed role, ec2 instance profile by session name",
        r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:i-0abc123def4567890","arn":"arn:aws:sts::123456789012:assumed-role/web-tier/i-0abc123def4567890","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE03"}"#,
        "",
        PrincipalType::Workload,
        CredentialKind::ShortLivedToken,
    ),
    (
        "assumed role, ec2 instance profile by ec2RoleDelivery",
        r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:worker","arn":"arn:aws:sts::123456789012:assumed-role/web-tier/worker","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE04","sessionContext":{"ec2RoleDelivery":"2.0","attributes":{"mfaAuthenticated":"false"}}}"#,
        "",
        PrincipalType::Workload,
        CredentialKind::ShortLivedToken,
    ),
    (
        "assumed role, identity center (sso) permission set",
        r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:alice","arn":"arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE05"}"#,
        MOZILLA,
        PrincipalType::Human,
        CredentialKind::Session,
    ),
    (
        "assumed role, session named after an email",
        r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:bob@example.com","arn":"arn:aws:sts::123456789012:assumed-role/ops/bob@example.com","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE06"}"#,
        "",
        PrincipalType::Human,
        CredentialKind::ShortLivedToken,
    ),
    (
        "aws service",
        r#"{"type":"AWSService","invokedBy":"cloudtrail.amazonaws.com"}"#,
        r#""sourceIPAddress":"cloudtrail.amazonaws.com""#,
        PrincipalType::Workload,
        CredentialKind::Unknown,
    ),
    (
        "root, console session",
        r#"{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE07"}"#,
        MOZILLA,
        PrincipalType::Human,
        CredentialKind::Session,
    ),
    (
        "root, console sign-in",
        r#"{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","accessKeyId":""}"#,
        r#""eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn","eventSource":"signin.amazonaws.com""#,
        PrincipalType::Human,
        CredentialKind::Password,
    ),
    (
        "federated user",
        r#"{"type":"FederatedUser","principalId":"123456789012:carol","arn":"arn:aws:sts::123456789012:federated-user/carol","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE08"}"#,
        "",
        PrincipalType::Human,
        CredentialKind::ShortLivedToken,
    ),
    (
        "saml user",
        r#"{"type":"SAMLUser","principalId":"SAMPLE:dave","userName":"dave","identityProvider":"arn:aws:iam::123456789012:saml-provider/idp"}"#,
        "",
        PrincipalType::Human,
        CredentialKind::Unknown,
    ),
    (
        "identity center user",
        r#"{"type":"IdentityCenterUser","accountId":"123456789012","onBehalfOf":{"userId":"u-1"},"credentialId":"c-1"}"#,
        "",
        PrincipalType::Human,
        CredentialKind::Unknown,
    ),
    (
        "web identity user",
        r#"{"type":"WebIdentityUser","principalId":"accounts.google.com:app-1:sub-1","userName":"sub-1","identityProvider":"accounts.google.com"}"#,
        "",
        PrincipalType::Workload,
        CredentialKind::Unknown,
    ),
    (
        "aws account",
        r#"{"type":"AWSAccount","principalId":"AIDAEXAMPLEOTHER","accountId":"111122223333"}"#,
        "",
        PrincipalType::Unknown,
        CredentialKind::Unknown,
    ),
    (
        "unknown",
        r#"{"type":"Unknown","principalId":"someone","accountId":"111122223333"}"#,
        "",
        PrincipalType::Unknown,
        CredentialKind::Unknown,
    ),
    (
        "invokedBy turns a human table row into a workload",
        r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:alice","arn":"arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ReadOnly_0123456789abcdef/alice","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE09","invokedBy":"cloudformation.amazonaws.com"}"#,
        r#""sourceIPAddress":"cloudformation.amazonaws.com""#,
        PrincipalType::Workload,
        CredentialKind::ShortLivedToken,
    ),
    (
        "invokedBy the sign-in page keeps a person a person",
        r#"{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","invokedBy":"signin.amazonaws.com","sessionContext":{"attributes":{"mfaAuthenticated":"true"}}}"#,
        r#""userAgent":"signin.amazonaws.com""#,
        PrincipalType::Human,
        CredentialKind::Unknown,
    ),
    ("missing userIdentity", "", "", PrincipalType::Unknown, CredentialKind::Unknown),
    ("userIdentity without a type", r#"{}"#, "", PrincipalType::Unknown, CredentialKind::Unknown),
];

#[test]
fn classifies_principals_from_the_platforms_own_fields() {
    for (case, ui, extra, kind, credential) in CLASSIFICATION {
        let text = record(ui, extra);
        let e = one(&text).unwrap_or_else(|err| panic!("{case}: {err}"));
        assert_eq!(e.principal.kind, *kind, "{case}");
        assert_eq!(e.principal.inferred, INFERRED.contains(case), "{case}: inferred");
        assert_eq!(e.credential.kind, *credential, "{case}");
        assert!(!e.principal.id.is_empty(), "{case}");
        assert_eq!(e.source_format, SourceFormat::Cloudtrail);
    }
}

#[test]
fn a_role_session_is_attributed_to_its_role() {
    let ui = r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:deploy-7","arn":"arn:aws:sts::123456789012:assumed-role/deployer/deploy-7","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE02","sessionContext":{"sourceIdentity":"alice@example.com","attributes":{"creationDate":"2024-05-01T11:59:00Z","mfaAuthenticated":"false"}}}"#;
    let text = record(ui, "");
    let e = one(&text).unwrap();
    // No sessionIssuer: the role ARN is derived from the session ARN.
    assert_eq!(e.principal.id, "arn:aws:iam::123456789012:role/deployer");
    assert_eq!(e.principal.name.as_deref(), Some("deployer"));
    assert_eq!(e.principal.tenant.as_deref(), Some(ACCT));
    assert_eq!(e.actor.session_id.as_deref(), Some("deploy-7"));
    assert_eq!(e.actor.delegating_user.as_deref(), Some("alice@example.com"));
    assert_eq!(e.credential.id.as_deref(), Some("ASIAEXAMPLEEXAMPLE02"));
    assert_eq!(e.credential.issued_at, parse_rfc3339("2024-05-01T11:59:00Z"));
    // A sessionIssuer, when present, names the role (with its path).
    let with_issuer = ui.replace(
        r#""sessionContext":{"#,
        r#""sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::123456789012:role/ci/deployer","userName":"deployer"},"#,
    );
    let text = record(&with_issuer, "");
    assert_eq!(one(&text).unwrap().principal.id, "arn:aws:iam::123456789012:role/ci/deployer");
}

#[test]
fn derives_ids_when_the_arn_is_missing() {
    let text =
        record(r#"{"type":"IAMUser","accountId":"123456789012","userName":"ci","accessKeyId":"AKIAEXAMPLE"}"#, "");
    assert_eq!(one(&text).unwrap().principal.id, "arn:aws:iam::123456789012:user/ci");
    let text = record(r#"{"type":"Root","accountId":"123456789012"}"#, "");
    assert_eq!(one(&text).unwrap().principal.id, "arn:aws:iam::123456789012:root");
    let text = record(r#"{"type":"AWSAccount","accountId":"111122223333"}"#, "");
    let e = one(&text).unwrap();
    assert_eq!(e.principal.id, "aws:account:111122223333");
    assert_eq!(e.principal.tenant.as_deref(), Some("111122223333"));
    let text = record("", "");
    let e = one(&text).unwrap();
    assert_eq!(e.principal.id, "aws:unattributed:123456789012");
    assert_eq!(e.principal.tenant.as_deref(), Some(ACCT));
    let text = record("", "").replace(r#""recipientAccountId":"123456789012","#, "");
    assert_eq!(one(&text).unwrap().principal.id, "aws:unattributed:-");
}

#[test]
fn an_aws_service_acts_under_its_own_name() {
    let text = record(r#"{"type":"AWSService","invokedBy":"cloudtrail.amazonaws.com"}"#, "")
        .replace(r#""userAgent":"aws-cli/2.15.0 Python/3.11","#, "")
        .replace("203.0.113.7", "cloudtrail.amazonaws.com");
    let e = one(&text).unwrap();
    assert_eq!(e.principal.id, "cloudtrail.amazonaws.com");
    assert_eq!(e.source.user_agent.as_deref(), Some("cloudtrail.amazonaws.com"));
    // A service name is not an address.
    assert_eq!(e.source.ip, None);
}

#[test]
fn maps_the_call_and_borrows_from_the_input() {
    let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accountId":"123456789012","accessKeyId":"AKIAEXAMPLE","userName":"ci"}"#;
    let extra = r#""eventID":"ev-1","resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::bucket/key"},{"ARN":"arn:aws:s3:::bucket"}],"additionalEventData":{"bytesTransferredIn":0,"bytesTransferredOut":5120}"#;
    let text = record(ui, extra);
    let e = one(&text).unwrap();
    assert_eq!(e.id, "ev-1");
    assert_eq!(e.time, parse_rfc3339(T0).unwrap());
    assert_eq!(e.action, "s3:GetObject");
    assert_eq!(e.service, "s3");
    assert_eq!(e.resource.as_deref(), Some("arn:aws:s3:::bucket/key"));
    assert_eq!(e.bytes_out, Some(5120));
    assert_eq!(e.source.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(e.source.user_agent.as_deref(), Some("aws-cli/2.15.0 Python/3.11"));
    for s in
        [&e.id, &e.principal.id, &e.service, e.source.user_agent.as_ref().unwrap(), e.credential.id.as_ref().unwrap()]
    {
        assert!(matches!(s, Cow::Borrowed(_)), "{s} was copied");
    }
    let no_source = text.replace(r#""eventSource":"s3.amazonaws.com","#, "");
    let e = one(&no_source).unwrap();
    assert_eq!((e.service.as_ref(), e.action.as_ref()), ("aws", "aws:GetObject"));
}

#[test]
fn outcome_follows_the_error_code() {
    let cases = [
        (r#""errorCode":"AccessDenied""#, Outcome::Denied),
        (r#""errorCode":"AccessDeniedException""#, Outcome::Denied),
        (r#""errorCode":"UnauthorizedOperation""#, Outcome::Denied),
        (r#""errorCode":"Client.UnauthorizedOperation""#, Outcome::Denied),
        (r#""errorCode":"VpceAccessDenied""#, Outcome::Denied),
        (r#""errorCode":"Forbidden""#, Outcome::Denied),
        (r#""errorCode":"NotAuthorizedException""#, Outcome::Denied),
        (r#""errorCode":"NoSuchBucket""#, Outcome::Failure),
        (r#""errorCode":"Client.DryRunOperation""#, Outcome::Failure),
        (r#""errorCode":"""#, Outcome::Success),
        (r#""eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Failure"}"#, Outcome::Failure),
        (r#""eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Success"}"#, Outcome::Success),
        (r#""responseElements":null"#, Outcome::Success),
    ];
    let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE"}"#;
    for (extra, outcome) in cases {
        assert_eq!(one(&record(ui, extra)).unwrap().outcome, outcome, "{extra}");
    }
}

#[test]
fn a_records_document_loses_only_its_bad_record() {
    let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE"}"#;
    let good = record(ui, r#""requestParameters":{"policy":"{\"Version\":\"2012-10-17\"}"}"#);
    let bad = record(ui, "").replace(T0, "not a time");
    let text = format!(r#"{{"Records":[{good},{bad},{good}]}}"#);
    let out = decode_all(&text, &DecodeContext::default());
    assert_eq!(out.len(), 3);
    assert!(out[0].is_ok() && out[2].is_ok());
    let err = out[1].clone().unwrap_err();
    assert_eq!((err.reason, err.record), (DeadLetterReason::InvalidTime, Some(1)));
    // A record with escapes still borrows from the message.
    assert!(matches!(out[0].as_ref().unwrap().principal.id, Cow::Borrowed(_)));
    // Records without eventID get distinct, stable ids from their own bytes.
    let (a, b) = (out[0].as_ref().unwrap(), out[2].as_ref().unwrap());
    assert_eq!(a.id, b.id);
    assert_eq!(a.id.len(), 32);
    assert!(decode_all(r#"{"Records":[]}"#, &DecodeContext::default()).is_empty());
    let not_array = one(r#"{"Records":{"a":1}}"#).unwrap_err();
    assert_eq!(not_array.reason, DeadLetterReason::WrongType);
}

#[test]
fn every_layout_of_a_records_document_gives_the_same_events() {
    let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE"}"#;
    let (a, b) = (record(ui, r#""eventID":"a""#), record(ui, r#""eventID":"b","errorCode":"AccessDenied""#));
    let ctx = DecodeContext::default();
    let delivered = format!("{{\"Records\":[{a},{b}]}}");
    let expected: Vec<_> = decode_all(&delivered, &ctx).into_iter().map(Result::unwrap).collect();
    assert_eq!(expected.len(), 2);
    assert!(crate::record::split_document(&delivered, "\"Records\"").is_some());
    for layout in [
        format!(" \n{{ \"Records\" :\r\n [ {a} ,\n {b} ] \n}}\n"),
        format!(r#"{{"Records":[{a},{b}],"digest":{{"x":1}}}}"#),
        format!(r#"{{"version":1,"Records":[{a},{b}]}}"#),
    ] {
        let got: Vec<_> = decode_all(&layout, &ctx).into_iter().map(Result::unwrap).collect();
        assert_eq!(got, expected, "{layout}");
    }
    for broken in [format!(r#"{{"Records":[{a},{b}]"#), format!(r#"{{"Records":[{a},{b}]}} x"#)] {
        let out = decode_all(&broken, &ctx);
        assert_eq!(out.len(), 1, "{broken}");
        assert_eq!(out[0].as_ref().unwrap_err().reason, DeadLetterReason::InvalidJson);
    }
    let bad_inside = format!(r#"{{"Records":[{a},{{"eventName":}}]}}"#);
    let out = decode_all(&bad_inside, &ctx);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].as_ref().unwrap_err().reason, out[0].as_ref().unwrap_err().record),
        (DeadLetterReason::InvalidJson, None)
    );
}

#[test]
fn accepts_panthers_lowercase_keys() {
    let text = r#"{"awsregion":"us-east-1","eventid":"e-lower","eventname":"GetAccountPasswordPolicy","eventsource":"iam.amazonaws.com","eventtime":"2022-09-15 13:45:24","eventtype":"AwsApiCall","sourceipaddress":"198.51.100.1","useragent":"aws-cli/2","errorcode":"AccessDenied","useridentity":{"accesskeyid":"ASIAEXAMPLEEXAMPLE10","accountid":"123456789012","arn":"arn:aws:sts::123456789012:assumed-role/auditor/i-0123456789abcdef0","principalid":"AROAEXAMPLE:i-0123456789abcdef0","sessioncontext":{"attributes":{"creationdate":"2022-09-15T13:00:00Z","mfaauthenticated":"false"},"sessionissuer":{"accountid":"123456789012","arn":"arn:aws:iam::123456789012:role/auditor","principalid":"AROAEXAMPLE","type":"Role","username":"auditor"}},"type":"AssumedRole"}}"#;
    let e = one(text).unwrap();
    assert_eq!(e.id, "e-lower");
    assert_eq!(e.time, parse_rfc3339("2022-09-15T13:45:24Z").unwrap());
    assert_eq!(e.action, "iam:GetAccountPasswordPolicy");
    assert_eq!(e.outcome, Outcome::Denied);
    assert_eq!(e.principal.id, "arn:aws:iam::123456789012:role/auditor");
    assert_eq!(e.principal.kind, PrincipalType::Workload);
    assert_eq!(e.credential.id.as_deref(), Some("ASIAEXAMPLEEXAMPLE10"));
    assert!(e.credential.issued_at.is_some());
    assert_eq!(e.source.ip.as_deref(), Some("198.51.100.1"));
}

/// Panther's compromised-root-creds scenario: one lowercase key among camelCase ones.
#[test]
fn reads_a_lowercase_key_beside_camel_case_ones() {
    let ui = r#"{"accountId":"123456789012","accesskeyid":"AKIAEXAMPLEMINTED01","arn":"arn:aws:iam::123456789012:user/mallory","principalId":"123456789012","type":"IAMUser","userName":"mallory"}"#;
    let text = record(ui, r#""userAgent":"console.ec2.amazonaws.com""#);
    let e = one(&text).unwrap();
    assert_eq!(e.principal.id, "arn:aws:iam::123456789012:user/mallory");
    assert_eq!(e.principal.kind, PrincipalType::ServiceAccount);
    assert_eq!(e.credential.id.as_deref(), Some("AKIAEXAMPLEMINTED01"));
    assert_eq!(e.credential.kind, CredentialKind::StaticKey);
}

#[test]
fn a_created_access_key_is_what_create_access_key_acted_on() {
    let ui = r#"{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","userName":"root"}"#;
    let created = r#""eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","requestParameters":{"userName":"mallory"},"responseElements":{"accessKey":{"accessKeyId":"AKIAEXAMPLEMINTED01","userName":"mallory","status":"Active","createDate":"Nov 01, 2020 8:37:03 PM"}}"#;
    let text = record(ui, created);
    let e = one(&text).unwrap();
    assert_eq!(e.action, "iam:CreateAccessKey");
    assert_eq!(e.resource.as_deref(), Some("AKIAEXAMPLEMINTED01"));
    // The caller's own credential is still the caller's (root at the console has none).
    assert_eq!(e.credential.id, None);
    assert!(matches!(e.resource, Some(Cow::Borrowed(_))));
    // A listed resource stays first; a response without a key names nothing.
    let listed = format!(r#"{created},"resources":[{{"ARN":"arn:aws:iam::123456789012:user/mallory"}}]"#);
    assert_eq!(one(&record(ui, &listed)).unwrap().resource.as_deref(), Some("arn:aws:iam::123456789012:user/mallory"));
    for response in [r#"{"accessKey":{"accessKeyId":""}}"#, r#"{"accessKey":"AKIA"}"#, r#"{"user":{"userName":"x"}}"#] {
        let text = record(ui, &created.replace(r#"{"accessKey":{"accessKeyId":"AKIAEXAMPLEMINTED01","userName":"mallory","status":"Active","createDate":"Nov 01, 2020 8:37:03 PM"}}"#, response));
        assert_eq!(one(&text).unwrap().resource, None, "{response}");
    }
}

#[test]
fn odd_optional_shapes_read_as_absent() {
    let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE","invokedBy":null,"sessionContext":"weird"}"#;
    for extra in [
        r#""requestParameters":"a string","responseElements":"also a string""#,
        r#""additionalEventData":{"bytesTransferredOut":"12"},"resources":null"#,
        r#""additionalEventData":[1,2],"resources":["{'arn': 'x'}"],"errorCode":null"#,
        r#""additionalEventData":{"bytesTransferredOut":-3},"sessionCredentialFromConsole":"false","readOnly":"true""#,
        r#""eventID":7,"userAgent":{"x":1},"sourceIPAddress":["203.0.113.7"],"recipientAccountId":false"#,
    ] {
        let text = record(ui, extra);
        let e = one(&text).unwrap_or_else(|err| panic!("{extra}: {err}"));
        assert_eq!(e.bytes_out, None, "{extra}");
        assert_eq!(e.principal.kind, PrincipalType::ServiceAccount, "{extra}");
    }
}

#[test]
fn essential_fields_fail_the_record() {
    let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci"}"#;
    let reason = |text: String| one(&text).unwrap_err().reason;
    let base = record(ui, "");
    assert_eq!(reason(base.replace(&format!(r#""{T0}""#), "1714564800")), DeadLetterReason::WrongType);
    assert_eq!(reason(base.replace(T0, "yesterday")), DeadLetterReason::InvalidTime);
    assert_eq!(reason(base.replace(r#""GetObject""#, "[1]")), DeadLetterReason::WrongType);
    assert_eq!(reason(base.replace(ui, r#""IAMUser""#)), DeadLetterReason::WrongType);
    assert_eq!(reason(base.replace(ui, "[1]")), DeadLetterReason::WrongType);
    let anonymous = record("", "").replace(r#","eventName":"GetObject""#, "");
    assert_eq!(reason(anonymous), DeadLetterReason::MissingPrincipal);
    assert_eq!(reason(format!("[{base}]")), DeadLetterReason::WrongType);
    assert_eq!(reason("{\"eventName\":".to_string()), DeadLetterReason::InvalidJson);
}

#[test]
fn time_falls_back_to_panther_then_to_the_transport() {
    let untimed = record("", "").replace(&format!(r#""eventTime":"{T0}","#), "");
    assert_eq!(one(&untimed).unwrap_err().reason, DeadLetterReason::MissingTime);
    let ctx = DecodeContext { fallback_time: Some(42), ..Default::default() };
    assert_eq!(decode_all(&untimed, &ctx)[0].as_ref().unwrap().time, 42);
    let panther = untimed.replacen('{', r#"{"p_event_time":"2021-08-31 15:46:02.000000000","#, 1);
    assert_eq!(one(&panther).unwrap().time, parse_rfc3339("2021-08-31T15:46:02Z").unwrap());
    assert_eq!(decode_all(&panther, &ctx)[0].as_ref().unwrap().time, parse_rfc3339("2021-08-31T15:46:02Z").unwrap());
}

#[test]
fn errors_do_not_quote_the_input() {
    let err = one(r#"{"eventName":"x","secret":"AKIA-SECRET-VALUE" oops}"#).unwrap_err();
    assert_eq!(err.reason, DeadLetterReason::InvalidJson);
    assert!(!err.detail.contains("SECRET"), "{}", err.detail);
}

/// A realistic record: an assumed-role session with escaped JSON in its request, TLS
/// details and a response, about 1.5 KB like the records of a busy account.
fn realistic(i: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLEROLEID:etl-{i}","arn":"arn:aws:sts::123456789012:assumed-role/billing-etl/etl-{i}","accountId":"123456789012","accessKeyId":"ASIAEXAMPLE{i:08}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROAEXAMPLEROLEID","arn":"arn:aws:iam::123456789012:role/billing-etl","accountId":"123456789012","userName":"billing-etl"}},"webIdFederationData":{{}},"attributes":{{"creationDate":"2024-05-01T11:59:00Z","mfaAuthenticated":"false"}}}}}},"eventTime":"2024-05-01T12:00:{:02}Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","awsRegion":"us-east-1","sourceIPAddress":"10.1.{}.{}","userAgent":"[aws-sdk-java/1.12.600 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.9+9-LTS java/17.0.9]","requestParameters":{{"bucketName":"billing-exports","policy":"{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"arn:aws:iam::123456789012:role/reader\"}},\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::billing-exports/*\"}}]}}","Host":"billing-exports.s3.amazonaws.com"}},"responseElements":null,"additionalEventData":{{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"abcdefghijklmnopqrstuvwxyz0123456789=","bytesTransferredOut":{}}},"requestID":"REQ{i:016}","eventID":"00000000-0000-4000-8000-{i:012}","readOnly":false,"resources":[{{"accountId":"123456789012","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::billing-exports"}}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"billing-exports.s3.amazonaws.com"}}}}"#,
        i % 60,
        i % 250,
        i % 200,
        i * 7
    )
}

/// `cargo test --release --lib cloudtrail::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore = "timing; run in release"]
fn throughput() {
    let messages: Vec<String> = (0..20_000).map(realistic).collect();
    let document = format!(r#"{{"Records":[{}]}}"#, messages.join(","));
    let ctx = DecodeContext::default();
    for (label, inputs) in [("one record per message", messages.clone()), ("records document", vec![document])] {
        let records: usize = 20_000;
        let started = std::time::Instant::now();
        let mut ok = 0usize;
        for _ in 0..5 {
            for text in &inputs {
                decode(text, &ctx, &mut |r| ok += usize::from(r.is_ok()));
            }
        }
        let rate = (5 * records) as f64 / started.elapsed().as_secs_f64();
        let bytes = messages.iter().map(String::len).sum::<usize>() / records;
        println!("{label}: {rate:.0} records/s ({bytes} bytes each)");
        assert_eq!(ok, 5 * records);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = decode_all(text, &DecodeContext::default());
        }
    }

    #[test]
    fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-zA-Z0-9 .\-/@\\]{0,200}"#) {
        let _ = decode_all(&s, &DecodeContext::default());
    }

    #[test]
    fn mutated_records_never_panic(cut in 0usize..2000, insert in r#"[\{\}\[\]":,0-9a-z]{0,6}"#) {
        let ui = CLASSIFICATION[4].1;
        let text = format!(r#"{{"Records":[{},{}]}}"#, record(ui, ""), record(CLASSIFICATION[0].1, ""));
        let at = cut.min(text.len());
        let mut mutated = text[..at].to_string();
        mutated.push_str(&insert);
        mutated.push_str(&text[at..]);
        let _ = decode_all(&mutated, &DecodeContext::default());
    }

    #[test]
    fn keys_with_arbitrary_values_never_panic(
        key in prop::sample::select(vec!["eventTime", "eventName", "eventSource", "userIdentity", "errorCode",
            "responseElements", "additionalEventData", "resources", "sourceIPAddress", "Records"]),
        value in r#"(null|true|-?[0-9]{1,20}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"ARN":1\})"#,
    ) {
        let text = format!(r#"{{"{key}":{value},"eventID":"x"}}"#);
        let _ = decode_all(&text, &DecodeContext { fallback_time: Some(0), ..Default::default() });
    }
}
