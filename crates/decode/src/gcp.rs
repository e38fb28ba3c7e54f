//! GCP Cloud Audit Logs: one `LogEntry` whose `protoPayload` is an `AuditLog`, per message
//! (Admin Activity, Data Access, System Event and Policy Denied logs alike; GKE's
//! Kubernetes audit arrives in this shape too, with Kubernetes usernames as principals).
//!
//! As in the CloudTrail decoder, optional fields of the wrong type read as absent; only a
//! wrong-typed `protoPayload`, `methodName` or `timestamp` dead-letters the entry, and so
//! does a payload that names neither a caller nor a method (no audited call to attribute).

use std::borrow::Cow;

use memchr::memmem;
use serde::Deserialize;
use serde::de::Deserializer;

use crate::lenient;
use crate::lenient::{nonempty, strict_map};
use crate::record::{self, content_id, event_time};
use crate::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, Source, SourceFormat,
    borrowed_opt,
};
use nhid_model::vocab::DeadLetterReason;

/// Whether the message is an audit `LogEntry`: a `protoPayload` key (Panther writes it in
/// lowercase too) with the `AuditLog` type or an audit field. Other GCP logs (load
/// balancer, VPC flow) carry `jsonPayload` or `httpRequest` instead.
pub fn detect(bytes: &[u8]) -> bool {
    use std::sync::LazyLock;
    static PAYLOAD: LazyLock<[memmem::Finder<'static>; 2]> =
        LazyLock::new(|| [b"\"protoPayload\"" as &[u8], b"\"protopayload\""].map(memmem::Finder::new));
    static AUDIT: LazyLock<[memmem::Finder<'static>; 3]> = LazyLock::new(|| {
        [b"google.cloud.audit.AuditLog\"" as &[u8], b"\"methodName\"", b"\"authenticationInfo\""]
            .map(memmem::Finder::new)
    });
    PAYLOAD.iter().any(|f| f.find(bytes).is_some()) && AUDIT.iter().any(|f| f.find(bytes).is_some())
}

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    emit(record::parse_object(text, "a log entry is a json object").and_then(|entry| to_event(entry, text, ctx)))
}

/// The fields of a `LogEntry` nhid uses. Aliases are Panther's lowercase spellings.
#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "insertId", borrow, default, deserialize_with = "lenient::string")]
    insert_id: Option<Cow<'a, str>>,
    /// Panther's samples may carry both spellings of a key, so each is a field of its own.
    #[serde(rename = "insertid", borrow, default, deserialize_with = "lenient::string")]
    insert_id_lowercase: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "receiveTimestamp", borrow, default, deserialize_with = "lenient::string")]
    receive_timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "receivetimestamp", borrow, default, deserialize_with = "lenient::string")]
    receive_timestamp_lowercase: Option<Cow<'a, str>>,
    /// Panther's normalized time.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    p_event_time: Option<Cow<'a, str>>,
    /// A shipper's time (Filebeat, Logstash, Fluent Bit write `@timestamp`): exported files
    /// sometimes carry only this.
    #[serde(rename = "@timestamp", borrow, default, deserialize_with = "lenient::string")]
    shipped_at: Option<Cow<'a, str>>,
    #[serde(rename = "protoPayload", borrow, default, deserialize_with = "strict_map")]
    payload: Option<Payload<'a>>,
    #[serde(rename = "protopayload", borrow, default, deserialize_with = "strict_map")]
    payload_lowercase: Option<Payload<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(rename = "authenticationInfo", borrow, default, deserialize_with = "lenient::map")]
    authentication: Option<AuthenticationInfo<'a>>,
    #[serde(rename = "requestMetadata", borrow, default, deserialize_with = "lenient::map")]
    request_metadata: Option<RequestMetadata<'a>>,
    #[serde(rename = "methodName", borrow, default, deserialize_with = "borrowed_opt")]
    method_name: Option<Cow<'a, str>>,
    #[serde(rename = "serviceName", borrow, default, deserialize_with = "lenient::string")]
    service_name: Option<Cow<'a, str>>,
    #[serde(rename = "resourceName", borrow, default, deserialize_with = "lenient::string")]
    resource_name: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::map")]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct AuthenticationInfo<'a> {
    #[serde(rename = "principalEmail", borrow, default, deserialize_with = "lenient::string")]
    principal_email: Option<Cow<'a, str>>,
    /// `user:…`, `serviceAccount:…`, or `principal://…` for workload identity federation.
    #[serde(rename = "principalSubject", borrow, default, deserialize_with = "lenient::string")]
    principal_subject: Option<Cow<'a, str>>,
    /// GKE writes `system:anonymous` here for unauthenticated calls.
    #[serde(rename = "authoritySelector", borrow, default, deserialize_with = "lenient::string")]
    authority_selector: Option<Cow<'a, str>>,
    /// Set only when a user-managed key signed the call.
    #[serde(rename = "serviceAccountKeyName", borrow, default, deserialize_with = "lenient::string")]
    key_name: Option<Cow<'a, str>>,
    #[serde(rename = "serviceAccountDelegationInfo", borrow, default, deserialize_with = "first_delegate")]
    delegate: Option<Cow<'a, str>>,
    #[serde(rename = "oauthInfo", borrow, default, deserialize_with = "lenient::map")]
    oauth: Option<OauthInfo<'a>>,
}

#[derive(Deserialize)]
struct OauthInfo<'a> {
    #[serde(rename = "oauthClientId", borrow, default, deserialize_with = "lenient::string")]
    client_id: Option<Cow<'a, str>>,
}

/// One element of `serviceAccountDelegationInfo`.
#[derive(Deserialize)]
struct Delegation<'a> {
    #[serde(rename = "firstPartyPrincipal", borrow, default, deserialize_with = "lenient::map")]
    first_party: Option<FirstParty<'a>>,
    #[serde(rename = "principalSubject", borrow, default, deserialize_with = "lenient::string")]
    principal_subject: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FirstParty<'a> {
    #[serde(rename = "principalEmail", borrow, default, deserialize_with = "lenient::string")]
    principal_email: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RequestMetadata<'a> {
    #[serde(rename = "callerIp", borrow, default, deserialize_with = "lenient::string")]
    caller_ip: Option<Cow<'a, str>>,
    /// Panther's spelling.
    #[serde(rename = "callerIP", borrow, default, deserialize_with = "lenient::string")]
    caller_ip_uppercase: Option<Cow<'a, str>>,
    #[serde(rename = "callerSuppliedUserAgent", borrow, default, deserialize_with = "lenient::string")]
    user_agent: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default, deserialize_with = "lenient::unsigned")]
    code: Option<u64>,
}

fn to_event<'a>(entry: Entry<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let Some(payload) = entry.payload.or(entry.payload_lowercase) else {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "no protopayload"));
    };
    let method = nonempty(payload.method_name);
    if payload.authentication.is_none() && method.is_none() {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "no authenticationinfo and no methodname"));
    }
    let time = event_time(
        nonempty(entry.timestamp),
        "timestamp is not a timestamp",
        [entry.receive_timestamp, entry.receive_timestamp_lowercase, entry.shipped_at, entry.p_event_time],
        ctx,
        "no timestamp",
    )?;
    let outcome = match payload.status.and_then(|s| s.code) {
        Some(7 | 16) => Outcome::Denied,
        Some(0) | None => Outcome::Success,
        Some(_) => Outcome::Failure,
    };
    let (ip, user_agent) = match payload.request_metadata {
        Some(m) => (nonempty(m.caller_ip).or(nonempty(m.caller_ip_uppercase)), nonempty(m.user_agent)),
        None => (None, None),
    };
    let (principal, credential, actor) = classify(payload.authentication);
    Ok(AuditEvent {
        // Named by its bytes when Logging's id is missing.
        id: nonempty(entry.insert_id).or(nonempty(entry.insert_id_lowercase)).unwrap_or_else(|| content_id(raw)),
        time,
        principal,
        credential,
        actor,
        action: method.unwrap_or(Cow::Borrowed("unknown")),
        service: nonempty(payload.service_name).unwrap_or(Cow::Borrowed("gcp")),
        resource: nonempty(payload.resource_name),
        outcome,
        source: Source { ip, user_agent, asn: None, country: None },
        bytes_out: None,
        source_format: SourceFormat::GcpAudit,
        rules: Vec::new(),
        raw,
        raw_fields: Default::default(),
    })
}

fn classify(auth: Option<AuthenticationInfo<'_>>) -> (Principal<'_>, Credential<'_>, Actor<'_>) {
    let unattributed = || Principal {
        id: Cow::Borrowed("gcp:unattributed"),
        kind: PrincipalType::Unknown,
        name: None,
        owner: None,
        tenant: None,
        inferred: false,
    };
    let Some(auth) = auth else {
        return (unattributed(), Credential::default(), Actor::default());
    };
    // A bare `user:` or `serviceAccount:` names no one.
    let subject = nonempty(auth.principal_subject).filter(|s| !matches!(s.as_ref(), "user:" | "serviceAccount:"));
    let (id, kind) = match (nonempty(auth.principal_email), subject) {
        (Some(email), _) => {
            let kind = email_type(&email);
            (email, kind)
        }
        // Without an email the subject names the caller: a federated workload, or the
        // `user:`/`serviceAccount:` forms of an email.
        (None, Some(subject)) => match (subject.strip_prefix("user:"), subject.strip_prefix("serviceAccount:")) {
            (Some(user), _) => {
                let kind = email_type(user);
                (Cow::Owned(user.to_owned()), kind)
            }
            (_, Some(sa)) => {
                let kind = email_type(sa);
                (Cow::Owned(sa.to_owned()), kind)
            }
            _ => (subject, PrincipalType::Workload),
        },
        (None, None) => match nonempty(auth.authority_selector) {
            Some(selector) => {
                let kind = email_type(&selector);
                (selector, kind)
            }
            None => (unattributed().id, PrincipalType::Unknown),
        },
    };
    // `//iam.googleapis.com/projects/<p>/serviceAccounts/<sa>/keys/<key id>`: the id, not a secret.
    let key = nonempty(auth.key_name).map(|k| match k.rsplit_once("/keys/") {
        Some((_, id)) => Cow::Owned(id.to_owned()),
        None => k,
    });
    let oauth_client = auth.oauth.and_then(|o| nonempty(o.client_id));
    let credential_kind = if key.is_some() {
        CredentialKind::StaticKey
    } else if oauth_client.is_some() {
        CredentialKind::OauthAccessToken
    } else {
        CredentialKind::Unknown
    };
    (
        Principal { id, kind, name: None, owner: None, tenant: None, inferred: false },
        Credential { id: key, kind: credential_kind, issued_at: None, expires_at: None },
        // An OAuth client acting for a person is the agent of the triad.
        Actor {
            delegating_user: nonempty(auth.delegate),
            agent_id: oauth_client,
            session_id: None,
            impersonator: None,
        },
    )
}

/// The type a GCP caller's email (or GKE username) says it is.
fn email_type(email: &str) -> PrincipalType {
    if email.ends_with("gserviceaccount.com") {
        // A hand-made sample may lose the `@`; the domain still says what the account is.
        let (local, domain) = email.rsplit_once('@').unwrap_or(("", email));
        return if is_google_managed(local, domain) { PrincipalType::Workload } else { PrincipalType::ServiceAccount };
    }
    // GKE's Kubernetes audit names its callers as Kubernetes does.
    if email.starts_with("system:serviceaccount:") {
        PrincipalType::ServiceAccount
    } else if email == "system:anonymous" || email == "system:unauthenticated" {
        PrincipalType::Unknown
    } else if email.starts_with("system:") {
        PrincipalType::Workload
    } else {
        PrincipalType::Human
    }
}

/// Service agents and other accounts Google creates and runs for its own services (no
/// user can hold their keys): `service-<n>@gcp-sa-<svc>.iam.gserviceaccount.com`,
/// `<n>@cloudservices.gserviceaccount.com`, `…@system.gserviceaccount.com`, Cloud Build's
/// `<n>@cloudbuild.gserviceaccount.com`, Cloud Storage's `service-<n>@gs-project-accounts…`
/// and the `*-robot`/`compute-system` agents.
fn is_google_managed(local: &str, domain: &str) -> bool {
    let project = domain.strip_suffix(".iam.gserviceaccount.com");
    (local.starts_with("service-") && domain.starts_with("gcp-sa-"))
        || matches!(
            domain,
            "cloudservices.gserviceaccount.com" | "system.gserviceaccount.com" | "cloudbuild.gserviceaccount.com"
        )
        || project.is_some_and(|p| {
            p.ends_with("-robot")
                || p.ends_with("gs-project-accounts")
                || p == "compute-system"
                || p == "containerregistry"
        })
}

/// The original caller of a delegation chain: the first element (Google keeps them in
/// delegation order) that names one, by email or by subject.
fn first_delegate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    lenient::first_object(d, "a delegation chain", |link: Delegation<'de>| {
        nonempty(link.first_party.and_then(|p| p.principal_email)).or(nonempty(link.principal_subject))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::time::parse_rfc3339;
    use proptest::prelude::*;

    crate::testing::decoder_helpers!();

    /// A log entry around an `authenticationInfo` snippet and extra `protoPayload` fields.
    fn entry(auth: &str, extra: &str) -> String {
        let extra = if extra.is_empty() { String::new() } else { format!(",{extra}") };
        format!(
            r#"{{"insertId":"i-1","logName":"projects/p1/logs/cloudaudit.googleapis.com%2Factivity","protoPayload":{{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{auth},"requestMetadata":{{"callerIp":"203.0.113.9","callerSuppliedUserAgent":"google-cloud-sdk gcloud/470.0.0"}},"serviceName":"storage.googleapis.com","methodName":"storage.objects.get","resourceName":"projects/_/buckets/b1/objects/o1"{extra}}},"resource":{{"type":"gcs_bucket","labels":{{"project_id":"p1"}}}},"severity":"INFO","timestamp":"2024-05-01T12:00:00.123456Z","receiveTimestamp":"2024-05-01T12:00:01Z"}}"#
        )
    }

    /// (case, authenticationInfo, extra payload fields, principal id, type, credential kind,
    /// credential id, delegating user, agent)
    type Case = crate::testing::ClassificationRow;

    const CLASSIFICATION: &[Case] = &[
        (
            "person",
            r#"{"principalEmail":"user1@company.io","principalSubject":"user:user1@company.io"}"#,
            "",
            "user1@company.io",
            PrincipalType::Human,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "service account with a user-managed key (panther sample)",
            r#"{"principalEmail":"terraform@platform.iam.gserviceaccount.com","principalSubject":"serviceAccount:terraform@platform.iam.gserviceaccount.com","serviceAccountKeyName":"//iam.googleapis.com/projects/platform/serviceAccounts/terraform@platform.iam.gserviceaccount.com/keys/a378358365ff3d22e9c1a72fecf4605ddff76b47"}"#,
            "",
            "terraform@platform.iam.gserviceaccount.com",
            PrincipalType::ServiceAccount,
            CredentialKind::StaticKey,
            Some("a378358365ff3d22e9c1a72fecf4605ddff76b47"),
            None,
            None,
        ),
        (
            "service account without a key (attached, metadata server token)",
            r#"{"principalEmail":"app@p1.iam.gserviceaccount.com"}"#,
            "",
            "app@p1.iam.gserviceaccount.com",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "compute engine default service account",
            r#"{"principalEmail":"123456789012-compute@developer.gserviceaccount.com"}"#,
            "",
            "123456789012-compute@developer.gserviceaccount.com",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "service account impersonated by a person",
            r#"{"principalEmail":"deployer@p1.iam.gserviceaccount.com","serviceAccountDelegationInfo":[{"firstPartyPrincipal":{"principalEmail":"alice@example.com"}},{"firstPartyPrincipal":{"principalEmail":"hop@p1.iam.gserviceaccount.com"}}],"principalSubject":"serviceAccount:deployer@p1.iam.gserviceaccount.com"}"#,
            "",
            "deployer@p1.iam.gserviceaccount.com",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            Some("alice@example.com"),
            None,
        ),
        (
            "service agent (gcp-sa)",
            r#"{"principalEmail":"service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"}"#,
            "",
            "service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "google apis service agent",
            r#"{"principalEmail":"123456789012@cloudservices.gserviceaccount.com"}"#,
            "",
            "123456789012@cloudservices.gserviceaccount.com",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "cloud build (panther sample)",
            r#"{"principalEmail":"123456789012@cloudbuild.gserviceaccount.com"}"#,
            "",
            "123456789012@cloudbuild.gserviceaccount.com",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "cloud storage service agent",
            r#"{"principalEmail":"service-111111111111@gs-project-accounts.iam.gserviceaccount.com"}"#,
            "",
            "service-111111111111@gs-project-accounts.iam.gserviceaccount.com",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "gke robot",
            r#"{"principalEmail":"service-123456789012@container-engine-robot.iam.gserviceaccount.com"}"#,
            "",
            "service-123456789012@container-engine-robot.iam.gserviceaccount.com",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "workload identity federation",
            r#"{"principalSubject":"principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/github/subject/repo:org/app:ref:refs/heads/main"}"#,
            "",
            "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/github/subject/repo:org/app:ref:refs/heads/main",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "federated workload impersonating a service account",
            r#"{"principalEmail":"ci@p1.iam.gserviceaccount.com","serviceAccountDelegationInfo":[{"principalSubject":"principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/github/subject/repo:org/app"}]}"#,
            "",
            "ci@p1.iam.gserviceaccount.com",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            Some(
                "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/github/subject/repo:org/app",
            ),
            None,
        ),
        (
            "person through an oauth client (panther sample)",
            r#"{"oauthInfo":{"oauthClientId":"111111111111-abc.apps.googleusercontent.com"},"principalEmail":"denethor@lotr.com","principalSubject":"user:denethor@lotr.com"}"#,
            "",
            "denethor@lotr.com",
            PrincipalType::Human,
            CredentialKind::OauthAccessToken,
            None,
            None,
            Some("111111111111-abc.apps.googleusercontent.com"),
        ),
        (
            "subject only, service account form",
            r#"{"principalSubject":"serviceAccount:etl@p1.iam.gserviceaccount.com"}"#,
            "",
            "etl@p1.iam.gserviceaccount.com",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "gke anonymous (panther sample)",
            r#"{"authoritySelector":"system:anonymous"}"#,
            r#""status":{"code":16}"#,
            "system:anonymous",
            PrincipalType::Unknown,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "gke service account",
            r#"{"principalEmail":"system:serviceaccount:kube-system:replicaset-controller"}"#,
            "",
            "system:serviceaccount:kube-system:replicaset-controller",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "gke node",
            r#"{"principalEmail":"system:node:gke-pool-1-abcd"}"#,
            "",
            "system:node:gke-pool-1-abcd",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            // Found by the fuzzer: the bare prefix once made an event with an empty principal.
            "a subject that is only its prefix names no one",
            r#"{"principalSubject":"serviceAccount:"}"#,
            "",
            "gcp:unattributed",
            PrincipalType::Unknown,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "no caller at all",
            r#"{}"#,
            "",
            "gcp:unattributed",
            PrincipalType::Unknown,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
    ];

    #[test]
    fn classifies_principals_from_the_platforms_own_fields() {
        assert!(CLASSIFICATION.len() >= 15);
        for (case, auth, extra, id, kind, credential, credential_id, delegating, agent) in CLASSIFICATION {
            let text = entry(auth, extra);
            let e = one(&text).unwrap_or_else(|err| panic!("{case}: {err}"));
            let (principal, credential) = ((*id, *kind), (*credential, *credential_id));
            let attribution = [*delegating, *agent, None];
            crate::testing::assert_classified(case, &e, principal, credential, attribution, SourceFormat::GcpAudit);
        }
    }

    #[test]
    fn maps_the_call_and_borrows_from_the_input() {
        let text = entry(r#"{"principalEmail":"app@p1.iam.gserviceaccount.com"}"#, "");
        let e = one(&text).unwrap();
        assert_eq!(e.id, "i-1");
        assert!(matches!(e.principal.id, Cow::Borrowed(_)) && matches!(e.action, Cow::Borrowed(_)));
        assert_eq!(e.time, parse_rfc3339("2024-05-01T12:00:00.123Z").unwrap());
        assert_eq!(e.action, "storage.objects.get");
        assert_eq!(e.service, "storage.googleapis.com");
        assert_eq!(e.resource.as_deref(), Some("projects/_/buckets/b1/objects/o1"));
        assert_eq!(e.source.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(e.source.user_agent.as_deref(), Some("google-cloud-sdk gcloud/470.0.0"));
        assert_eq!(e.outcome, Outcome::Success);
    }

    #[test]
    fn outcome_follows_the_status_code() {
        for (status, outcome) in [
            (r#"{}"#, Outcome::Success),
            (r#"{"code":0}"#, Outcome::Success),
            (r#"{"code":7,"message":"PERMISSION_DENIED"}"#, Outcome::Denied),
            (r#"{"code":16}"#, Outcome::Denied),
            (r#"{"code":5,"message":"not found"}"#, Outcome::Failure),
            (r#"{"code":9}"#, Outcome::Failure),
            ("null", Outcome::Success),
        ] {
            let text = entry(r#"{"principalEmail":"a@b.com"}"#, &format!(r#""status":{status}"#));
            assert_eq!(one(&text).unwrap().outcome, outcome, "{status}");
        }
    }

    #[test]
    fn accepts_panthers_spellings() {
        let text = r#"{"insertid":"x1","protopayload":{"at_sign_type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{"principalEmail":"user@domain.com"},"methodName":"google.logging.v2.ConfigServiceV2.GetSink","requestMetadata":{"callerIP":"12.12.12.12"}},"receivetimestamp":"2023-05-23 19:39:15.565"}"#;
        assert!(detect(text.as_bytes()));
        let e = one(text).unwrap();
        assert_eq!((e.id.as_ref(), e.source.ip.as_deref()), ("x1", Some("12.12.12.12")));
        assert_eq!(e.time, parse_rfc3339("2023-05-23T19:39:15.565Z").unwrap());
    }

    #[test]
    fn time_falls_back_to_receive_time_then_a_shippers_then_to_the_transport() {
        let text = r#"{"protoPayload":{"methodName":"v1.compute.instances.insert"}}"#;
        assert_eq!(one(text).unwrap_err().reason, DeadLetterReason::MissingTime);
        let out = decode_all(text, &DecodeContext { fallback_time: Some(42), ..Default::default() });
        assert_eq!(out[0].as_ref().unwrap().time, 42);
        let shipped =
            r#"{"protoPayload":{"methodName":"v1.compute.instances.insert"},"@timestamp":"2024-05-01T12:00:01Z"}"#;
        assert_eq!(one(shipped).unwrap().time, parse_rfc3339("2024-05-01T12:00:01Z").unwrap());
        let bad = entry(r#"{"principalEmail":"a@b.com"}"#, "").replace("2024-05-01T12:00:00.123456Z", "soon");
        assert_eq!(one(&bad).unwrap_err().reason, DeadLetterReason::InvalidTime);
    }

    #[test]
    fn essential_fields_dead_letter_and_optional_ones_read_as_absent() {
        let ctx = DecodeContext { fallback_time: Some(0), ..Default::default() };
        let reason = |text: &str| decode_all(text, &ctx)[0].as_ref().unwrap_err().reason;
        assert_eq!(reason(r#"{"methodName":"v1.compute.firewalls.patch"}"#), DeadLetterReason::MissingPrincipal);
        assert_eq!(reason(r#"{"protoPayload":{"authorizationInfo":[]}}"#), DeadLetterReason::MissingPrincipal);
        assert_eq!(reason(r#"{"protoPayload":"x"}"#), DeadLetterReason::WrongType);
        assert_eq!(reason(r#"{"protoPayload":{"methodName":7}}"#), DeadLetterReason::WrongType);
        assert_eq!(reason(r#"{"protoPayload":{"methodName":"m"},"timestamp":1}"#), DeadLetterReason::WrongType);
        assert_eq!(reason("[]"), DeadLetterReason::WrongType);
        let odd = r#"{"protoPayload":{"methodName":"m","authenticationInfo":{"principalEmail":5,"serviceAccountKeyName":[],"serviceAccountDelegationInfo":"x","oauthInfo":1},"requestMetadata":[],"status":{"code":"7"},"resourceName":{}}}"#;
        let e = decode_all(odd, &ctx).remove(0).unwrap();
        assert_eq!((e.principal.kind, e.outcome, e.resource), (PrincipalType::Unknown, Outcome::Success, None));
    }

    #[test]
    fn errors_do_not_quote_the_input() {
        let err = one(r#"{"protoPayload":{"authenticationInfo":{"principalEmail":"SECRETSECRET"#).unwrap_err();
        assert!(!err.detail.contains("SECRET"), "{}", err.detail);
    }

    #[test]
    fn detection_needs_an_audit_payload() {
        assert!(detect(entry(r#"{}"#, "").as_bytes()));
        assert!(!detect(br#"{"jsonPayload":{"methodName":"x"},"httpRequest":{}}"#));
        assert!(!detect(br#"{"protoPayload":{"@type":"type.googleapis.com/google.appengine.logging.v1.RequestLog"}}"#));
    }

    proptest! {
        #[test]
        fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-zA-Z0-9 .\-/@\\]{0,200}"#) {
            let _ = decode_all(&s, &DecodeContext::default());
            let ctx = DecodeContext { fallback_time: Some(0), ..Default::default() };
            super::super::decode(s.as_bytes(), super::super::Format::GcpAudit, &ctx, &mut |_| {});
        }

        #[test]
        fn payload_keys_with_arbitrary_values_never_panic(
            key in prop::sample::select(vec!["authenticationInfo", "requestMetadata", "methodName", "serviceName",
                "resourceName", "status"]),
            value in r#"(null|true|-?[0-9]{1,20}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. @]{0,30}"|\[\]|\{\}|\["x",1\]|\{"principalEmail":1,"serviceAccountDelegationInfo":\[1,\{"firstPartyPrincipal":2\}\]\})"#,
        ) {
            let text = format!(r#"{{"protoPayload":{{"{key}":{value},"methodName":"m"}},"timestamp":"2024-01-01T00:00:00Z"}}"#);
            let _ = decode_all(&text, &DecodeContext::default());
        }
    }
}
