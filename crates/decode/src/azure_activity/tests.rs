use super::*;
use crate::Format;
use nhid_model::time::parse_rfc3339;
use proptest::prelude::*;

crate::testing::decoder_helpers!();

const SP: &str = "4b6986ec-c49c-40c0-89ce-b2ac51213e39";
const APP: &str = "de8bc8b5-d9f9-48b1-a8ad-b748da725064";
const USER: &str = "3b4e2783-2b5d-4f1f-a3d9-ddc0ed1c623f";
const MI: &str = "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourcegroups/ci/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deployer";

/// An activity log record as diagnostic settings export it (Microsoft's activity log
/// schema, "Schema from storage account and event hubs"), with the given identity and
/// result fields.
fn record(identity: &str, result: &str) -> String {
    format!(
        r#"{{"time":"2024-05-01T12:00:00.1234567Z","resourceId":"/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/data/providers/Microsoft.Storage/storageAccounts/billingexports","operationName":"MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION","category":"Administrative",{result},"durationMs":"212","callerIpAddress":"203.0.113.5","correlationId":"c776f9f4-36e5-4e0e-809b-c9b3c3fb62a8","identity":{identity},"level":"Information","location":"global","properties":{{"statusCode":"OK","serviceRequestId":"50d5cddb-8ca0-47ad-9b80-6cde2207f97c"}}}}"#
    )
}

const OK: &str = r#""resultType":"Success","resultSignature":"Succeeded.OK""#;

fn claims(fields: &str) -> String {
    format!(
        r#"{{"authorization":{{"scope":"/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333","action":"Microsoft.Storage/storageAccounts/listKeys/action","evidence":{{"role":"Contributor","principalType":"ServicePrincipal","principalId":"{SP}"}}}},"claims":{{"aud":"https://management.core.windows.net/","iss":"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/","http://schemas.microsoft.com/identity/claims/tenantid":"72f988bf-86f1-41af-91ab-2d7cd011db47","uti":"Zx3kQ2B1X0Wl7d3lYyYAAA","ver":"1.0",{fields}}}}}"#
    )
}

#[test]
fn who_called_comes_from_the_token() {
    let oid = format!(r#""http://schemas.microsoft.com/identity/claims/objectidentifier":"{SP}""#);
    let cases = [
        (
            "v1 app token: an app id, no user",
            claims(&format!(r#""appid":"{APP}","appidacr":"1",{oid}"#)),
            PrincipalType::ServiceAccount,
            SP,
        ),
        ("idtyp app", claims(&format!(r#""appid":"{APP}","idtyp":"app",{oid}"#)), PrincipalType::ServiceAccount, SP),
        (
            "managed identity",
            claims(&format!(r#""appid":"{APP}","idtyp":"app","xms_mirid":"{MI}",{oid}"#)),
            PrincipalType::Workload,
            SP,
        ),
        (
            "a user's token, through the portal's app id",
            claims(&format!(
                r#""appid":"c44b4083-3bb0-49c1-b47d-974e53cbdf3c","http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":"jane.doe@example.com","name":"Jane Doe","http://schemas.microsoft.com/identity/claims/objectidentifier":"{USER}""#
            )),
            PrincipalType::Human,
            USER,
        ),
        (
            "idtyp user",
            claims(&format!(r#""appid":"{APP}","idtyp":"user","oid":"{USER}""#)),
            PrincipalType::Human,
            USER,
        ),
        (
            "no claims: the role assignment's service principal",
            format!(
                r#"{{"authorization":{{"evidence":{{"principalType":"ServicePrincipal","principalId":"{SP}"}}}}}}"#
            ),
            PrincipalType::ServiceAccount,
            SP,
        ),
        (
            "Azure's own service",
            r#"{"claims":{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress":"Microsoft.Advisor"}}"#
                .into(),
            PrincipalType::Unknown,
            "Microsoft.Advisor",
        ),
    ];
    for (name, identity, kind, id) in cases {
        let text = record(&identity, OK);
        assert!(detect(text.as_bytes()), "{name}");
        assert_eq!(crate::detect(text.as_bytes()), Some(Format::AzureActivity), "{name}");
        let e = one(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((e.principal.kind, e.principal.id.as_ref()), (kind, id), "{name}");
        assert_eq!(e.source_format, SourceFormat::AzureActivity);
    }
}

#[test]
fn fields_map_to_the_canonical_event() {
    let text = record(&claims(&format!(r#""appid":"{APP}","idtyp":"app","xms_mirid":"{MI}","oid":"{SP}""#)), OK);
    let e = one(&text).unwrap();
    assert_eq!(e.time, parse_rfc3339("2024-05-01T12:00:00.1234567Z").unwrap());
    // One name for the operation whatever case the export wrote it in.
    assert_eq!(e.action, "microsoft.storage/storageaccounts/listkeys/action");
    assert_eq!(e.service, "microsoft.storage");
    assert!(e.resource.as_deref().unwrap().ends_with("/storageAccounts/billingexports"));
    assert_eq!(e.source.ip.as_deref(), Some("203.0.113.5"));
    assert_eq!(e.principal.name.as_deref(), Some(MI));
    assert_eq!(e.principal.tenant.as_deref(), Some("72f988bf-86f1-41af-91ab-2d7cd011db47"));
    assert_eq!((e.credential.kind, e.credential.id), (CredentialKind::ShortLivedToken, None));
    assert_eq!(e.actor.session_id.as_deref(), Some("Zx3kQ2B1X0Wl7d3lYyYAAA"));
    assert_eq!(
        e.raw_fields.get(SourceFormat::AzureActivity, "operationName"),
        Some(Some("MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION"))
    );
    // No id of its own: the record's content names it, so the Start and Success records of
    // one operation are two events.
    let started = text.replace(OK, r#""resultType":"Start","resultSignature":"Started.""#);
    assert_ne!(one(&started).unwrap().id, e.id);
}

#[test]
fn outcomes() {
    let identity = claims(&format!(r#""appid":"{APP}","oid":"{SP}""#));
    let cases = [
        (OK, Outcome::Success),
        (r#""resultType":"Start","resultSignature":"Started.""#, Outcome::Success),
        (r#""resultType":"Failure","resultSignature":"Failed.Conflict""#, Outcome::Failure),
        (r#""resultType":"Failure","resultSignature":"Forbidden""#, Outcome::Denied),
        (r#""resultType":"Failed","resultSignature":"Failed.403""#, Outcome::Denied),
    ];
    for (result, outcome) in cases {
        assert_eq!(one(&record(&identity, result)).unwrap().outcome, outcome, "{result}");
    }
}

#[test]
fn a_record_naming_no_caller_is_dead_lettered() {
    for identity in ["{}", "null", r#"{"authorization":{"evidence":{"principalType":"Group","principalId":"g-1"}}}"#] {
        let err = one(&record(identity, OK)).unwrap_err();
        assert_eq!(err.reason, DeadLetterReason::MissingPrincipal, "{identity}");
    }
    let untimed = record(&claims(r#""appid":"a""#), OK).replace(r#""time":"2024-05-01T12:00:00.1234567Z","#, "");
    assert_eq!(one(&untimed).unwrap_err().reason, DeadLetterReason::MissingTime);
    assert_eq!(one("[1]").unwrap_err().reason, DeadLetterReason::WrongType);
}

#[test]
fn detection_needs_a_provider_operation_on_an_arm_path() {
    // Entra's diagnostic records name activities, a service's resource logs its own calls.
    let entra = r#"{"time":"2024-05-01T12:00:00Z","resourceId":"/tenants/t/providers/Microsoft.aadiam","operationName":"Add service principal","category":"AuditLogs"}"#;
    let blob = r#"{"time":"2024-05-01T12:00:00Z","resourceId":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a/blobServices/default","operationName":"GetBlob","category":"StorageRead"}"#;
    let nested = r#"{"time":"2024-05-01T12:00:00Z","properties":{"operationName":"Microsoft.Storage/x/write","resourceId":"/s"}}"#;
    for text in [entra, blob, nested] {
        assert!(!detect(text.as_bytes()), "{text}");
    }
    assert_eq!(crate::detect(entra.as_bytes()), None);
}

proptest! {
    #[test]
    fn keys_with_arbitrary_values_never_panic(
        key in prop::sample::select(vec!["time", "operationName", "resourceId", "resultType", "resultSignature",
            "callerIpAddress", "identity", "claims", "evidence", "idtyp", "xms_mirid", "appid", "caller"]),
        value in r#"(null|true|-?[0-9]{1,20}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"principalId":"p"\})"#,
    ) {
        let text = format!(
            r#"{{"{key}":{value},"time":"2024-05-01T12:00:00Z","operationName":"Microsoft.X/y/write","resourceId":"/s","identity":{{"{key}":{value},"claims":{{"{key}":{value},"appid":"a"}}}}}}"#
        );
        let _ = one(&text);
        crate::decode(text.as_bytes(), Format::Auto, &DecodeContext::default(), &mut |_| {});
    }
}
