use super::*;
use crate::Format;
use crate::testing::Case;
use nhid_model::event::{CredentialKind, PrincipalType};
use nhid_model::time::parse_rfc3339;
use proptest::prelude::*;

crate::testing::decoder_helpers!();

/// A Graph `signIn` (`GET /auditLogs/signIns`) with the given identity fields.
fn graph(fields: &str) -> String {
    format!(
        r#"{{"id":"66ea54eb-6301-4ee5-be62-ff5a759b0100","createdDateTime":"2024-05-01T12:00:00Z","appId":"de8bc8b5-d9f9-48b1-a8ad-b748da725064","appDisplayName":"billing-etl","ipAddress":"203.0.113.5","clientAppUsed":"","correlationId":"d79f5bee-5860-4832-928f-3133e22ae912","conditionalAccessStatus":"notApplied","resourceDisplayName":"Microsoft Graph","resourceId":"00000003-0000-0000-c000-000000000000",{fields}}}"#
    )
}

/// A diagnostic-settings record (Event Hubs / storage export) of `category`.
fn diagnostic(category: &str, result: &str, properties: &str) -> String {
    format!(
        r#"{{"time":"2024-05-01T12:00:05.1234567Z","resourceId":"/tenants/72f988bf-86f1-41af-91ab-2d7cd011db47/providers/Microsoft.aadiam","operationName":"Sign-in activity","category":"{category}","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47","resultType":{result},"callerIpAddress":"198.51.100.7","correlationId":"c0ffee00-0000-4000-8000-000000000001","identity":"someone","properties":{{"id":"9a0c1d2e-0000-4000-8000-000000000002","createdDateTime":"2024-05-01T12:00:00Z","ipAddress":"198.51.100.7","resourceDisplayName":"Azure Storage",{properties}}}}}"#
    )
}

const SP: &str = "4b6986ec-c49c-40c0-89ce-b2ac51213e39";
const APP: &str = "de8bc8b5-d9f9-48b1-a8ad-b748da725064";
const KEY: &str = "2afc776a-4e79-4588-b2ad-f62c94d6bea8";
const USER: &str = "3b4e2783-2b5d-4f1f-a3d9-ddc0ed1c623f";

fn cases() -> Vec<Case> {
    let sp = |cred: &str, code: &str| {
        graph(&format!(
            r#""servicePrincipalId":"{SP}","servicePrincipalName":"billing-etl","signInEventTypes":["servicePrincipal"],"servicePrincipalCredentialKeyId":"{KEY}","clientCredentialType":"{cred}","status":{{"errorCode":{code}}}"#
        ))
    };
    let user = |extra: &str| {
        graph(&format!(r#""userId":"{USER}","userPrincipalName":"jane.doe@example.com","sessionId":"s-1",{extra}"#))
    };
    let base = Case { principal: SP, ..Case::default() };
    vec![
        Case {
            name: "graph: service principal with a client secret",
            text: sp("clientSecret", "0"),
            credential: CredentialKind::StaticKey,
            credential_id: Some(KEY),
            ..base
        },
        Case {
            name: "graph: service principal with a certificate",
            text: sp("certificate", "0"),
            credential: CredentialKind::Certificate,
            credential_id: Some(KEY),
            ..base
        },
        Case {
            name: "graph: service principal with a signed client assertion",
            text: sp("clientAssertion", "0"),
            credential: CredentialKind::Certificate,
            credential_id: Some(KEY),
            ..base
        },
        Case {
            name: "graph: invalid client secret (7000215) is a failure",
            text: sp("clientSecret", "7000215"),
            credential: CredentialKind::StaticKey,
            credential_id: Some(KEY),
            outcome: Outcome::Failure,
            ..base
        },
        Case {
            name: "graph: conditional access for workload identities (53003) is a denial",
            text: sp("clientSecret", "53003"),
            credential: CredentialKind::StaticKey,
            credential_id: Some(KEY),
            outcome: Outcome::Denied,
            ..base
        },
        Case {
            name: "graph: workload identity federation (GitHub Actions OIDC)",
            text: graph(&format!(
                r#""servicePrincipalId":"{SP}","signInEventTypes":["servicePrincipal"],"clientCredentialType":"federatedIdentityCredential","federatedCredentialId":"fic-7","status":{{"errorCode":0}}"#
            )),
            credential: CredentialKind::ShortLivedToken,
            credential_id: Some("fic-7"),
            ..base
        },
        Case {
            name: "graph: managed identity",
            text: graph(&format!(
                r#""servicePrincipalId":"{SP}","signInEventTypes":["managedIdentity"],"managedServiceIdentity":{{"msiType":"systemAssigned","associatedResourceId":"/subscriptions/x/vm"}},"status":{{"errorCode":0}}"#
            )),
            kind: PrincipalType::Workload,
            credential: CredentialKind::ShortLivedToken,
            ..base
        },
        Case {
            name: "graph: an Entra Agent ID agent acting for a user",
            text: graph(&format!(
                r#""servicePrincipalId":"{SP}","userPrincipalName":"jane.doe@example.com","signInEventTypes":["servicePrincipal"],"agent":{{"agentType":"agenticAppInstance"}},"clientCredentialType":"federatedIdentityCredential","status":{{"errorCode":0}}"#
            )),
            kind: PrincipalType::AiAgent,
            credential: CredentialKind::ShortLivedToken,
            delegating_user: Some("jane.doe@example.com"),
            agent_id: Some(APP),
            ..base
        },
        Case {
            name: "graph: interactive user",
            text: user(r#""signInEventTypes":["interactiveUser"],"isInteractive":true,"status":{"errorCode":0}"#),
            kind: PrincipalType::Human,
            principal: USER,
            session_id: Some("s-1"),
            ..base
        },
        Case {
            name: "graph: non-interactive user redeeming a refresh token",
            text: user(
                r#""signInEventTypes":["nonInteractiveUser"],"incomingTokenType":"refreshToken","status":{"errorCode":0}"#,
            ),
            kind: PrincipalType::Human,
            principal: USER,
            credential: CredentialKind::RefreshToken,
            session_id: Some("s-1"),
            ..base
        },
        Case {
            name: "graph: wrong password (50126) is a failure",
            text: user(
                r#""signInEventTypes":["interactiveUser"],"status":{"errorCode":50126,"failureReason":"Invalid username or password"}"#,
            ),
            kind: PrincipalType::Human,
            principal: USER,
            session_id: Some("s-1"),
            outcome: Outcome::Failure,
            ..base
        },
        Case {
            name: "graph: consent required (65001) is a denial",
            text: user(r#""signInEventTypes":["interactiveUser"],"status":{"errorCode":65001}"#),
            kind: PrincipalType::Human,
            principal: USER,
            session_id: Some("s-1"),
            outcome: Outcome::Denied,
            ..base
        },
        Case {
            name: "graph: an agent's user account is an agent, not a person",
            text: user(
                r#""signInEventTypes":["nonInteractiveUser"],"agent":{"agentType":"agentIDuser"},"status":{"errorCode":0}"#,
            ),
            kind: PrincipalType::AiAgent,
            principal: USER,
            credential: CredentialKind::RefreshToken,
            agent_id: Some(APP),
            session_id: Some("s-1"),
            ..base
        },
        Case {
            name: "diagnostic: service principal (Panther's lowercase sample), credential type none",
            text: format!(
                r#"{{"calleripaddress":"12.12.12.12","category":"ServicePrincipalSignInLogs","correlationid":"bf12205b","operationname":"Sign-in activity","properties":{{"appId":"{APP}","clientCredentialType":"none","createdDateTime":"2023-07-27 13:59:53.691680300","id":"55270060","ipAddress":"12.12.12.12","servicePrincipalCredentialKeyId":"{KEY}","servicePrincipalId":"{SP}","servicePrincipalName":"very-normal-service-principal","status":{{"errorCode":7000215}}}},"resulttype":7000215,"tenantid":"85e54ec3","time":"2023-07-27 14:00:41.848"}}"#
            ),
            credential_id: Some(KEY),
            outcome: Outcome::Failure,
            ..base
        },
        Case {
            name: "diagnostic: managed identity",
            text: diagnostic(
                "ManagedIdentitySignInLogs",
                "0",
                &format!(
                    r#""servicePrincipalId":"{SP}","servicePrincipalName":"vm-backup","managedIdentityType":"userAssigned""#
                ),
            ),
            kind: PrincipalType::Workload,
            credential: CredentialKind::ShortLivedToken,
            ..base
        },
        Case {
            name: "diagnostic: non-interactive user (the category says so)",
            text: diagnostic(
                "NonInteractiveUserSignInLogs",
                r#""0""#,
                &format!(
                    r#""userId":"{USER}","userPrincipalName":"jane.doe@example.com","appId":"{APP}","sessionId":"s-2""#
                ),
            ),
            kind: PrincipalType::Human,
            principal: USER,
            credential: CredentialKind::RefreshToken,
            session_id: Some("s-2"),
            ..base
        },
        Case {
            name: "diagnostic: locked account, resultType Failure",
            text: diagnostic(
                "SignInLogs",
                r#""Failure""#,
                &format!(r#""userId":"{USER}","status":{{"errorCode":50053}}"#),
            ),
            kind: PrincipalType::Human,
            principal: USER,
            outcome: Outcome::Failure,
            ..base
        },
        Case {
            name: "diagnostic: a user's ROPC sign-in authenticates with the password",
            text: diagnostic(
                "SignInLogs",
                r#""0""#,
                &format!(r#""userId":"{USER}","authenticationProtocol":"ropc","isInteractive":false"#),
            ),
            kind: PrincipalType::Human,
            principal: USER,
            credential: CredentialKind::Password,
            ..base
        },
        Case {
            name: "diagnostic: the category wins over a client credential type in a user sign-in",
            text: diagnostic(
                "SignInLogs",
                r#""50105""#,
                &format!(r#""userId":"{USER}","appId":"{APP}","clientCredentialType":"clientAssertion""#),
            ),
            kind: PrincipalType::Human,
            principal: USER,
            outcome: Outcome::Denied,
            ..base
        },
        Case {
            name: "log analytics: AADServicePrincipalSignInLogs row",
            text: format!(
                r#"{{"TenantId":"72f988bf","TimeGenerated":"2024-05-01T12:00:00.123Z","Id":"r-1","ResultType":"0","AppId":"{APP}","ServicePrincipalId":"{SP}","ServicePrincipalName":"billing-etl","ServicePrincipalCredentialKeyId":"{KEY}","ClientCredentialType":"clientSecret","IPAddress":"203.0.113.9","ResourceDisplayName":"Azure Key Vault","ResourceIdentity":"cfa8b339-82a2-471a-a3c9-0fc0be7a4093","ResourceId":"/tenants/72f988bf/providers/Microsoft.aadiam","Type":"AADServicePrincipalSignInLogs"}}"#
            ),
            credential: CredentialKind::StaticKey,
            credential_id: Some(KEY),
            ..base
        },
        Case {
            name: "log analytics: AADManagedIdentitySignInLogs row blocked by conditional access",
            text: format!(
                r#"{{"TimeGenerated":"2024-05-01T12:00:00Z","ResultType":"53003","AppId":"{APP}","ServicePrincipalId":"{SP}","ServicePrincipalName":"aks-agentpool","ResourceDisplayName":"Azure Storage","Type":"AADManagedIdentitySignInLogs"}}"#
            ),
            kind: PrincipalType::Workload,
            credential: CredentialKind::ShortLivedToken,
            outcome: Outcome::Denied,
            ..base
        },
        Case {
            name: "log analytics: SigninLogs row (interactive user)",
            text: format!(
                r#"{{"TimeGenerated":"2024-05-01T12:00:00Z","ResultType":"0","UserId":"{USER}","UserPrincipalName":"jane.doe@example.com","AppId":"{APP}","IPAddress":"203.0.113.9","UserAgent":"Mozilla/5.0","Type":"SigninLogs"}}"#
            ),
            kind: PrincipalType::Human,
            principal: USER,
            ..base
        },
    ]
}

#[test]
fn classification_table() {
    let cases: Vec<Case> = cases().into_iter().chain(audit_cases()).collect();
    for (c, e) in crate::testing::check_table(&cases, detect, decode) {
        assert_eq!(e.credential.id.as_deref(), c.credential_id, "{}", c.name);
        assert_eq!(e.source_format, SourceFormat::Entra);
        assert!(e.action.starts_with("entra:") && !e.id.is_empty(), "{}", c.name);
    }
}

#[test]
fn fields_map_from_every_shape() {
    let c = &cases()[0];
    let e = one(&c.text).unwrap();
    assert_eq!(e.id, "66ea54eb-6301-4ee5-be62-ff5a759b0100");
    assert_eq!(e.time, parse_rfc3339("2024-05-01T12:00:00Z").unwrap());
    assert_eq!(e.action, "entra:ServicePrincipalSignIn");
    assert_eq!(
        (e.service.as_ref(), e.resource.as_deref()),
        ("Microsoft Graph", Some("00000003-0000-0000-c000-000000000000"))
    );
    assert_eq!(e.source.ip.as_deref(), Some("203.0.113.5"));
    assert_eq!(e.principal.name.as_deref(), Some("billing-etl"));

    // A diagnostic record: the sign-in's own time, id and resource, not the record's.
    let d = diagnostic("SignInLogs", "0", &format!(r#""userId":"{USER}","location":{{"countryOrRegion":"IE"}}"#));
    let e = one(&d).unwrap();
    assert_eq!(e.time, parse_rfc3339("2024-05-01T12:00:00Z").unwrap());
    assert_eq!(e.id, "9a0c1d2e-0000-4000-8000-000000000002");
    assert_eq!(e.resource, None);
    assert_eq!(e.service, "Azure Storage");
    assert_eq!(e.principal.tenant.as_deref(), Some("72f988bf-86f1-41af-91ab-2d7cd011db47"));
    assert_eq!(e.source.country.as_deref(), Some("IE"));
    assert_eq!(e.action, "entra:InteractiveUserSignIn");

    let row = &cases()[19];
    let e = one(&row.text).unwrap();
    assert_eq!((e.id.as_ref(), e.resource.as_deref()), ("r-1", Some("cfa8b339-82a2-471a-a3c9-0fc0be7a4093")));
    assert_eq!(e.time, parse_rfc3339("2024-05-01T12:00:00.123Z").unwrap());
    assert_eq!(e.source.ip.as_deref(), Some("203.0.113.9"));
}

#[test]
fn the_same_identity_gets_the_same_id_in_every_shape() {
    let ids: Vec<_> = [0, 13, 19].iter().map(|&i| one(&cases()[i].text).unwrap().principal.id.into_owned()).collect();
    assert_eq!(ids, [SP, SP, SP]);
}

#[test]
fn time_falls_back_then_dead_letters() {
    let untimed = r#"{"category":"SignInLogs","properties":{"userId":"u"}}"#;
    assert_eq!(one(untimed).unwrap_err().reason, DeadLetterReason::MissingTime);
    let ctx = DecodeContext { fallback_time: Some(42), ..Default::default() };
    assert_eq!(decode_all(untimed, &ctx)[0].as_ref().unwrap().time, 42);
    let bad = r#"{"category":"SignInLogs","time":"yesterday","properties":{"userId":"u"}}"#;
    assert_eq!(one(bad).unwrap_err().reason, DeadLetterReason::InvalidTime);
    let wrong = r#"{"category":"SignInLogs","time":17,"properties":{"userId":"u"}}"#;
    assert_eq!(one(wrong).unwrap_err().reason, DeadLetterReason::WrongType);
}

#[test]
fn a_sign_in_without_an_identity_is_dead_lettered() {
    let nobody = r#"{"category":"ServicePrincipalSignInLogs","time":"2024-05-01T12:00:00Z","properties":{"ipAddress":"1.2.3.4"}}"#;
    assert_eq!(one(nobody).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
    let none = r#"{"createdDateTime":"2024-05-01T12:00:00Z"}"#;
    assert_eq!(one(none).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
    assert_eq!(one("[1]").unwrap_err().reason, DeadLetterReason::WrongType);
    let err = one(r#"{"appId":"x","secret":"SECRET-VALUE" oops}"#).unwrap_err();
    assert_eq!(err.reason, DeadLetterReason::InvalidJson);
    assert!(!err.detail.contains("SECRET"), "{}", err.detail);
}

#[test]
fn odd_optional_shapes_read_as_absent() {
    let text = graph(&format!(
        r#""servicePrincipalId":"{SP}","signInEventTypes":"servicePrincipal","status":"ok","agent":[1],"location":"IE","managedServiceIdentity":null,"servicePrincipalCredentialKeyId":7,"userAgent":{{"a":1}}"#
    ));
    let e = one(&text).unwrap();
    assert_eq!((e.principal.kind, e.outcome, e.credential.id), (PrincipalType::ServiceAccount, Outcome::Success, None));
}

#[test]
fn detection_needs_the_category_at_the_top_level() {
    // A diagnostic-settings change lists the categories it exports, nested.
    let settings = r#"{"category":"Administrative","operationName":"microsoft.aadiam/diagnosticSettings/write","properties":{"logs":[{"category":"SignInLogs","enabled":true},{"category":"ServicePrincipalSignInLogs","enabled":true}]}}"#;
    assert!(!detect(settings.as_bytes()));
    // Nor an audit's quoting one; Intune's audits share the category `AuditLogs` but are not Entra's.
    let audit = r#"{"category":"AuditLogs","operationName":"Add service principal","properties":{"note":"\"category\":\"SignInLogs\""}}"#;
    assert!(!detect(audit.as_bytes()));
    let intune = r#"{"category":"AuditLogs","operationName":"Create MobileApp","properties":{"Actor":{"UPN":"a@b.c"},"Targets":[]}}"#;
    assert!(!detect(intune.as_bytes()));
    assert!(detect(br#"{ "category" : "SigninLogs", "properties": {}}"#));
    let canonical = r#"{"id":"e1","time":"2024-05-01T12:00:00Z","principal":{"id":"sp-1","type":"service_account"},"credential":{"id":"k","kind":"static_key"},"action":"entra:ServicePrincipalSignIn","service":"Microsoft Graph","outcome":"success","source":{"ip":"203.0.113.5"},"source_format":"entra"}"#;
    assert!(!detect(canonical.as_bytes()));
    assert_eq!(crate::detect(cases()[0].text.as_bytes()), Some(Format::Entra));
    assert_eq!(crate::detect(cases()[14].text.as_bytes()), Some(Format::Entra));
}

/// A Graph `directoryAudit` (`GET /auditLogs/directoryAudits`, the shape of Microsoft
/// Graph's reference) initiated by `initiated_by`.
fn graph_audit(activity: &str, initiated_by: &str) -> String {
    format!(
        r#"{{"id":"Directory_8f1f6a1e-0000-4000-8000-000000000003","category":"ApplicationManagement","correlationId":"da159bfb-54fa-4092-8a38-6e1fa7870e30","result":"success","resultReason":"","activityDisplayName":"{activity}","activityDateTime":"2024-05-01T12:00:02.7215374Z","loggedByService":"Core Directory","operationType":"Update","initiatedBy":{initiated_by},"targetResources":[{{"id":"{SP}","displayName":"billing-etl","type":"ServicePrincipal","modifiedProperties":[{{"displayName":"KeyDescription","oldValue":"[]","newValue":"[\"[KeyIdentifier={KEY},KeyType=Password,KeyUsage=Verify,DisplayName=ci]\"]"}}]}}],"additionalDetails":[{{"key":"AppId","value":"{APP}"}},{{"key":"User-Agent","value":"python-requests/2.31.0"}}]}}"#
    )
}

const AUTOMATION_SP: &str = "a1b2c3d4-0000-4000-8000-00000000000a";

fn audit_cases() -> Vec<Case> {
    let by_app = format!(
        r#"{{"app":{{"appId":"0f0e0d0c-0000-4000-8000-00000000000b","displayName":"deploy-bot","servicePrincipalId":"{AUTOMATION_SP}","servicePrincipalName":null}},"user":null}}"#
    );
    let by_user = format!(
        r#"{{"user":{{"id":"{USER}","displayName":"Jane Doe","userPrincipalName":"jane.doe@example.com","ipAddress":"198.51.100.7"}},"app":null}}"#
    );
    let base = Case { principal: AUTOMATION_SP, ..Case::default() };
    vec![
        Case {
            name: "graph audit: an application adds a secret to another's service principal",
            text: graph_audit("Add service principal credentials", &by_app),
            ..base
        },
        Case {
            name: "graph audit: a user adds an owner",
            text: graph_audit("Add owner to application", &by_user),
            kind: PrincipalType::Human,
            principal: USER,
            ..base
        },
        Case {
            name: "diagnostic audit: the Graph fields in properties",
            text: format!(
                r#"{{"time":"2024-05-01T12:00:05Z","resourceId":"/tenants/t-1/providers/Microsoft.aadiam","operationName":"Add app role assignment to service principal","category":"AuditLogs","tenantId":"t-1","resultSignature":"None","callerIpAddress":"203.0.113.9","properties":{{"id":"Directory_1","result":"failure","activityDisplayName":"Add app role assignment to service principal","activityDateTime":"2024-05-01T12:00:00Z","loggedByService":"Core Directory","initiatedBy":{by_app},"targetResources":[{{"id":"{SP}","type":"ServicePrincipal"}}]}}}}"#
            ),
            outcome: Outcome::Failure,
            ..base
        },
        Case {
            name: "log analytics audit row: PascalCase columns",
            text: format!(
                r#"{{"TimeGenerated":"2024-05-01T12:00:00.123Z","Type":"AuditLogs","OperationName":"Update application – Certificates and secrets management ","Category":"ApplicationManagement","Result":"success","LoggedByService":"Core Directory","AADTenantId":"t-1","Id":"Directory_2","InitiatedBy":{by_user},"TargetResources":[{{"id":"{APP}","displayName":"billing-etl","type":"Application"}}]}}"#
            ),
            kind: PrincipalType::Human,
            principal: USER,
            ..base
        },
    ]
}

#[test]
fn audits_are_told_from_sign_ins() {
    for c in audit_cases() {
        assert!(audit::detect(c.text.as_bytes()), "{}", c.name);
        assert_eq!(crate::detect(c.text.as_bytes()), Some(Format::Entra), "{}", c.name);
    }
    assert!(cases().iter().all(|c| !audit::detect(c.text.as_bytes())));
}

#[test]
fn audit_fields_map_from_every_shape() {
    let cases = audit_cases();
    let e = one(&cases[0].text).unwrap();
    assert_eq!(e.action, "entra:Add service principal credentials");
    assert_eq!(e.id, "Directory_8f1f6a1e-0000-4000-8000-000000000003");
    assert_eq!(e.time, parse_rfc3339("2024-05-01T12:00:02.7215374Z").unwrap());
    assert_eq!((e.service.as_ref(), e.resource.as_deref()), ("Core Directory", Some(SP)));
    assert_eq!(e.principal.name.as_deref(), Some("deploy-bot"));
    // The client comes from the audit's details; an application's call names no address.
    assert_eq!((e.source.user_agent.as_deref(), e.source.ip.as_deref()), (Some("python-requests/2.31.0"), None));

    let e = one(&cases[1].text).unwrap();
    assert_eq!(e.source.ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(e.principal.name.as_deref(), Some("jane.doe@example.com"));

    // A diagnostic record: the audit's own time and id, the caller's address.
    let e = one(&cases[2].text).unwrap();
    assert_eq!((e.id.as_ref(), e.time), ("Directory_1", parse_rfc3339("2024-05-01T12:00:00Z").unwrap()));
    assert_eq!((e.source.ip.as_deref(), e.principal.tenant.as_deref()), (Some("203.0.113.9"), Some("t-1")));

    let e = one(&cases[3].text).unwrap();
    assert_eq!(e.action, "entra:Update application – Certificates and secrets management ");
    assert_eq!((e.resource.as_deref(), e.principal.tenant.as_deref()), (Some(APP), Some("t-1")));
}

#[test]
fn an_audit_nobody_initiated_is_dead_lettered() {
    for initiated_by in ["{}", r#"{"app":{"displayName":"x"}}"#, r#"{"user":{"id":""}}"#, "null", "[]"] {
        let text = graph_audit("Add service principal", initiated_by);
        assert_eq!(one(&text).unwrap_err().reason, DeadLetterReason::MissingPrincipal, "{initiated_by}");
    }
    let untimed = r#"{"category":"AuditLogs","properties":{"initiatedBy":{"user":{"id":"u"}}}}"#;
    assert_eq!(one(untimed).unwrap_err().reason, DeadLetterReason::MissingTime);
}

/// An attacker choosing a CloudTrail request's parameters can give them an audit's or a
/// Graph sign-in's keys; the record stays CloudTrail's, its caller named.
#[test]
fn keys_nested_in_a_cloudtrail_request_are_not_entra() {
    let request = r#"{"initiatedBy":{"user":{"id":"u"}},"targetResources":[],"activityDisplayName":"x","category":"AuditLogs","createdDateTime":"2024-05-01T12:00:00Z","appId":"a","status":{},"ipAddress":"1.2.3.4","clientAppUsed":"x"}"#;
    let text = format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/ci","accessKeyId":"AKIAEXAMPLE"}},"eventTime":"2024-05-01T12:00:00Z","eventSource":"events.amazonaws.com","eventName":"PutEvents","sourceIPAddress":"203.0.113.9","requestParameters":{request},"responseElements":null}}"#
    );
    assert!(!detect(text.as_bytes()));
    assert_eq!(crate::detect(text.as_bytes()), Some(Format::Cloudtrail));
}

#[test]
fn audit_detection_needs_the_keys_not_their_words() {
    // The words as values, or one key alone, are not an audit.
    let quoted = r#"{"createdDateTime":"2024-05-01T12:00:00Z","appId":"a","status":{},"ipAddress":"1.2.3.4","clientAppUsed":"initiatedBy","conditionalAccessStatus":"targetResources"}"#;
    assert!(!audit::detect(quoted.as_bytes()));
    assert_eq!(one(quoted).unwrap().action, "entra:ServicePrincipalSignIn");
    assert!(!audit::detect(br#"{"initiatedBy":{"user":{"id":"u"}}}"#));
}

proptest! {
    #[test]
    fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-zA-Z0-9 .\-/@\\]{0,200}"#) {
        let _ = decode_all(&s, &DecodeContext::default());
        let _ = detect(s.as_bytes());
        crate::decode(s.as_bytes(), Format::Entra, &DecodeContext::default(), &mut |_| {});
    }

    #[test]
    fn keys_with_arbitrary_values_never_panic(
        key in prop::sample::select(vec!["createdDateTime", "time", "TimeGenerated", "category", "resultType",
            "status", "properties", "signInEventTypes", "agent", "servicePrincipalId", "userId", "ipAddress",
            "initiatedBy", "targetResources", "additionalDetails", "activityDateTime", "result"]),
        category in prop::sample::select(vec!["SignInLogs", "AuditLogs"]),
        value in r#"(null|true|-?[0-9]{1,20}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"errorCode":"1"\})"#,
    ) {
        let text = format!(r#"{{"{key}":{value},"appId":"x","category":"{category}","properties":{{"{key}":{value},"userId":"u","initiatedBy":{{"user":{{"id":"u"}}}}}}}}"#);
        let ctx = DecodeContext { fallback_time: Some(0), ..Default::default() };
        let _ = decode_all(&text, &ctx);
        crate::decode(text.as_bytes(), Format::Entra, &ctx, &mut |_| {});
    }
}
