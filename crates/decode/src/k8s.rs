//! Kubernetes audit: one `audit.k8s.io/v1` Event per message (EKS writes the same Event).
//!
//! Stages: an API request is logged at up to four stages with the same `auditID`.
//! `RequestReceived` is skipped (it emits nothing): it has no response yet, and the same
//! request is logged again when it is answered. `ResponseStarted` (long-running requests:
//! exec, attach, port-forward, watch) is kept, because that is when a shell into a pod
//! begins and a detector must see it, not hours later when it ends; its id gets a
//! `/started` suffix so it does not collide with the request's `ResponseComplete`.
//! `ResponseComplete` and `Panic` are the request's answer.
//!
//! Like the CloudTrail decoder, optional fields of the wrong type read as absent; only a
//! wrong-typed `kind`, `verb`, `user` or timestamp dead-letters the event.

use std::borrow::Cow;

use memchr::memmem;
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess};

use crate::aws::is_instance_id;
use crate::lenient::{self, Read};
use crate::lenient::{nonempty, strict_map};
use crate::record::{self, content_id, event_time};
use crate::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Impersonator, Outcome, Principal, PrincipalType, RawFields, Source,
    SourceFormat, borrowed_opt,
};
use nhid_model::vocab::DeadLetterReason;

/// Whether the message is a Kubernetes audit Event. The API version names it (outside a
/// string: AKS wraps events as escaped JSON text in its own records); EKS samples that lost
/// it still have a `verb` with one of the Event's other keys, a pair no other format has at
/// top level (GKE's audit logs are GCP `LogEntry`s with a `methodName`).
pub fn detect(bytes: &[u8]) -> bool {
    use std::sync::LazyLock;
    static API_VERSION: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"audit.k8s.io/"));
    static VERB: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"verb\""));
    static EVENT_KEYS: LazyLock<[memmem::Finder<'static>; 5]> = LazyLock::new(|| {
        [b"\"objectRef\"" as &[u8], b"\"requestURI\"", b"\"sourceIPs\"", b"\"responseStatus\"", b"\"auditID\""]
            .map(memmem::Finder::new)
    });
    static PROTO_PAYLOAD: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"protoPayload\""));
    if PROTO_PAYLOAD.find(bytes).is_some() {
        return false;
    }
    API_VERSION.find_iter(bytes).any(|at| at == 0 || bytes[at - 1] != b'\\')
        || (VERB.find(bytes).is_some() && EVENT_KEYS.iter().any(|f| f.find(bytes).is_some()))
}

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    let event: Event<'a> = match record::parse_object(text, "an audit event is a json object") {
        Ok(e) => e,
        Err(e) => return emit(Err(e)),
    };
    if event.stage.as_deref() == Some("RequestReceived") {
        return;
    }
    emit(to_event(event, text, ctx))
}

/// The fields of an audit Event nhid uses; everything else is skipped unread.
#[derive(Deserialize)]
struct Event<'a> {
    /// Always `"Event"`; a non-string means this is not an audit event at all.
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    #[allow(dead_code)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "auditID", borrow, default, deserialize_with = "lenient::string")]
    audit_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    stage: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt")]
    verb: Option<Cow<'a, str>>,
    #[serde(rename = "requestURI", borrow, default, deserialize_with = "lenient::string")]
    request_uri: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "strict_map")]
    user: Option<User<'a>>,
    #[serde(rename = "impersonatedUser", borrow, default, deserialize_with = "lenient::map")]
    impersonated_user: Option<User<'a>>,
    #[serde(rename = "sourceIPs", borrow, default, deserialize_with = "first_string")]
    source_ip: Option<Cow<'a, str>>,
    #[serde(rename = "userAgent", borrow, default, deserialize_with = "lenient::string")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(rename = "objectRef", borrow, default, deserialize_with = "lenient::map")]
    object_ref: Option<ObjectRef<'a>>,
    #[serde(rename = "responseStatus", default, deserialize_with = "lenient::map")]
    response_status: Option<ResponseStatus>,
    #[serde(borrow, default, deserialize_with = "lenient::map")]
    annotations: Option<Annotations<'a>>,
    #[serde(rename = "stageTimestamp", borrow, default, deserialize_with = "borrowed_opt")]
    stage_timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "requestReceivedTimestamp", borrow, default, deserialize_with = "borrowed_opt")]
    request_received_timestamp: Option<Cow<'a, str>>,
    /// `audit.k8s.io/v1beta1` events (Falco's older traces) carry this instead.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    timestamp: Option<Cow<'a, str>>,
    /// Panther's normalized time; its samples sometimes carry only this.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    p_event_time: Option<Cow<'a, str>>,
    /// A shipper's time (Filebeat, Logstash, Fluent Bit write `@timestamp`): exported files
    /// sometimes carry only this.
    #[serde(rename = "@timestamp", borrow, default, deserialize_with = "lenient::string")]
    shipped_at: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    username: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "groups")]
    groups: Groups,
    #[serde(borrow, default, deserialize_with = "lenient::map")]
    extra: Option<Extra<'a>>,
}

/// `user.extra` values are lists of strings; Panther spells the dotted keys with `_slash_`.
#[derive(Deserialize)]
struct Extra<'a> {
    #[serde(
        rename = "authentication.kubernetes.io/pod-name",
        alias = "authentication_kubernetes_io_slash_pod-name",
        borrow,
        default,
        deserialize_with = "first_string"
    )]
    pod_name: Option<Cow<'a, str>>,
    #[serde(
        rename = "authentication.kubernetes.io/credential-id",
        alias = "authentication_kubernetes_io_slash_credential-id",
        borrow,
        default,
        deserialize_with = "first_string"
    )]
    credential_id: Option<Cow<'a, str>>,
    /// EKS: the IAM identity that authenticated (an assumed-role session ARN or a user ARN).
    #[serde(borrow, default, deserialize_with = "first_string")]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "sessionName", borrow, default, deserialize_with = "first_string")]
    session_name: Option<Cow<'a, str>>,
    #[serde(rename = "accessKeyId", borrow, default, deserialize_with = "first_string")]
    access_key_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ObjectRef<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    resource: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    subresource: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "apiGroup", borrow, default, deserialize_with = "lenient::string")]
    api_group: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponseStatus {
    #[serde(default, deserialize_with = "lenient::unsigned")]
    code: Option<u64>,
}

#[derive(Deserialize)]
struct Annotations<'a> {
    /// Set by the API server when a service account's legacy (secret-based, non-expiring) token is used.
    #[serde(rename = "authentication.k8s.io/legacy-token", borrow, default, deserialize_with = "lenient::string")]
    legacy_token: Option<Cow<'a, str>>,
}

/// The groups that decide a principal's type.
#[derive(Default)]
struct Groups {
    service_accounts: bool,
    nodes: bool,
    unauthenticated: bool,
}

fn to_event<'a>(ev: Event<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    // As the record has them, for content rules (`AuditEvent::raw_fields`).
    let object = ev.object_ref.as_ref();
    let raw_fields = RawFields::new([
        ev.verb.clone(),
        object.and_then(|o| o.resource.clone()),
        object.and_then(|o| o.subresource.clone()),
        None,
        None,
    ]);
    let verb = nonempty(ev.verb);
    let user = ev.user.filter(|u| nonempty(u.username.clone()).is_some());
    if user.is_none() && ev.impersonated_user.is_none() && verb.is_none() {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "no user and no verb"));
    }
    let time = event_time(
        nonempty(ev.stage_timestamp).or(nonempty(ev.request_received_timestamp)),
        "timestamp is not a timestamp",
        [ev.timestamp, ev.shipped_at, ev.p_event_time],
        ctx,
        "no stagetimestamp",
    )?;
    let started = ev.stage.as_deref() == Some("ResponseStarted");
    let id = match nonempty(ev.audit_id) {
        Some(id) if started => Cow::Owned(format!("{id}/started")),
        Some(id) => id,
        // Named by its bytes, so a redelivered copy keeps its id.
        None => content_id(raw),
    };
    let verb = verb.unwrap_or(Cow::Borrowed("unknown"));
    let (action, service, resource) = match ev.object_ref {
        Some(o) => resource_request(&verb, o),
        None => non_resource_request(&verb, ev.request_uri),
    };
    let outcome = match ev.response_status.and_then(|s| s.code) {
        Some(401 | 403) => Outcome::Denied,
        Some(code) if code >= 400 => Outcome::Failure,
        _ => Outcome::Success,
    };
    let legacy_token = ev.annotations.is_some_and(|a| nonempty(a.legacy_token).is_some());
    let (principal, credential, actor) = acting_user(ev.impersonated_user, user, legacy_token);

    Ok(AuditEvent {
        id,
        time,
        principal,
        credential,
        actor,
        action,
        service: service.unwrap_or(Cow::Borrowed("k8s")),
        resource,
        outcome,
        source: Source { ip: nonempty(ev.source_ip), user_agent: nonempty(ev.user_agent), asn: None, country: None },
        bytes_out: None,
        source_format: SourceFormat::K8sAudit,
        rules: Vec::new(),
        raw,
        raw_fields,
    })
}

/// Action (`create pods/exec`), API group and `namespace/name` of a request on an object.
fn resource_request<'a>(verb: &str, o: ObjectRef<'a>) -> (Cow<'a, str>, Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
    let target = match (nonempty(o.resource), nonempty(o.subresource)) {
        (Some(r), Some(s)) => Cow::Owned(format!("{r}/{s}")),
        (Some(r), None) => r,
        (None, _) => Cow::Borrowed("-"),
    };
    let resource = match (nonempty(o.namespace), nonempty(o.name)) {
        (Some(ns), Some(name)) => Some(Cow::Owned(format!("{ns}/{name}"))),
        (None, Some(name)) => Some(name),
        (Some(ns), None) => Some(ns),
        (None, None) => None,
    };
    (Cow::Owned(format!("{verb} {target}")), nonempty(o.api_group), resource)
}

/// A non-resource URL (`/healthz`, `/version`): the path is the target, without its query.
fn non_resource_request<'a>(
    verb: &str,
    uri: Option<Cow<'a, str>>,
) -> (Cow<'a, str>, Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
    let path = nonempty(uri).map(|u| match u {
        Cow::Borrowed(u) => Cow::Borrowed(u.split('?').next().unwrap_or(u)),
        Cow::Owned(u) => Cow::Owned(u.split('?').next().unwrap_or(&u).to_owned()),
    });
    let action = Cow::Owned(format!("{verb} {}", path.as_deref().unwrap_or("-")));
    (action, None, path)
}

/// The user the request acts as. The impersonated user is who the request acts as (its
/// permissions apply); the impersonator is who chose to, the delegating user, and
/// `actor.impersonator` with the token the API server authenticated (its credential id and
/// pod), which containment targets. `impersonatedUser.extra` (a pod, a credential id) is
/// whatever the impersonator sent in `Impersonate-Extra-*` headers: the impersonated user's
/// credential and session are unknown, never taken from there, so no containment targets
/// the victim's pod or a credential id the impersonator chose.
fn acting_user<'a>(
    impersonated: Option<User<'a>>,
    user: Option<User<'a>>,
    legacy_token: bool,
) -> (Principal<'a>, Credential<'a>, Actor<'a>) {
    match (impersonated, user) {
        (Some(target), impersonator) if nonempty(target.username.clone()).is_some() => {
            let (principal, _chosen_by_the_impersonator, _) = classify(target, false);
            let impersonator = impersonator.filter(|u| nonempty(u.username.clone()).is_some()).map(|u| {
                let (principal, credential, actor) = classify(u, legacy_token);
                Box::new(Impersonator { principal, credential, session_id: actor.session_id })
            });
            let actor = Actor {
                delegating_user: impersonator.as_ref().map(|i| i.principal.id.clone()),
                impersonator,
                ..Actor::default()
            };
            (principal, Credential::default(), actor)
        }
        (_, Some(u)) => classify(u, legacy_token),
        (_, None) => (
            Principal {
                id: Cow::Borrowed("k8s:unattributed"),
                kind: PrincipalType::Unknown,
                name: None,
                owner: None,
                tenant: None,
                inferred: false,
            },
            Credential::default(),
            Actor::default(),
        ),
    }
}

/// Type, credential and triad from the username, groups and `extra` the authenticator set.
fn classify<'a>(user: User<'a>, legacy_token: bool) -> (Principal<'a>, Credential<'a>, Actor<'a>) {
    let username = nonempty(user.username).unwrap_or(Cow::Borrowed("k8s:unattributed"));
    let groups = user.groups;
    let extra = user.extra;
    let (pod, credential_id, arn, session_name, key) = match extra {
        Some(x) => (
            nonempty(x.pod_name),
            nonempty(x.credential_id),
            nonempty(x.arn),
            nonempty(x.session_name),
            nonempty(x.access_key_id),
        ),
        None => (None, None, None, None, None),
    };
    let service_account = username.strip_prefix("system:serviceaccount:").and_then(|rest| rest.split_once(':'));
    let name = service_account.map(|(_, name)| Cow::Owned(name.to_owned()));
    let is_sa = service_account.is_some() || groups.service_accounts;
    // An EKS node authenticates with its instance role; the session is named after the instance.
    let eks_node_session = arn
        .as_deref()
        .is_some_and(|a| a.contains(":assumed-role/") && a.rsplit('/').next().is_some_and(is_instance_id));
    let kind = if is_sa {
        PrincipalType::ServiceAccount
    } else if username == "system:anonymous" || groups.unauthenticated {
        PrincipalType::Unknown
    } else if username.starts_with("system:") || username.starts_with("eks:") || groups.nodes || eks_node_session {
        // Nodes, control-plane components and EKS's own managed components.
        PrincipalType::Workload
    } else {
        PrincipalType::Human
    };

    let credential_kind = match (credential_id.as_deref(), key.as_deref()) {
        (Some(c), _) if c.starts_with("JTI=") => CredentialKind::ShortLivedToken,
        (Some(c), _) if c.starts_with("X509SHA256=") => CredentialKind::Certificate,
        (_, Some(k)) if k.starts_with("ASIA") => CredentialKind::ShortLivedToken,
        (_, Some(k)) if k.starts_with("AKIA") => CredentialKind::StaticKey,
        _ if is_sa && legacy_token => CredentialKind::StaticKey,
        // Only projected (bound) tokens carry the pod they were issued to.
        _ if is_sa && pod.is_some() => CredentialKind::ShortLivedToken,
        _ => CredentialKind::Unknown,
    };
    // The pod is the running instance of the service account, as an EC2 instance is of its
    // role in CloudTrail: the session. On EKS the STS session name is.
    let session_id = pod.or(session_name);
    (
        Principal { id: username, kind, name, owner: None, tenant: None, inferred: false },
        Credential { id: credential_id.or(key), kind: credential_kind, issued_at: None, expires_at: None },
        Actor { session_id, ..Actor::default() },
    )
}

/// The first string of a list (`sourceIPs`, `user.extra` values), or a lone string.
fn first_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct First;
    impl<'de> Read<'de> for First {
        type Value = Option<Cow<'de, str>>;
        fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut first = None;
            while let Some(lenient::Str(s)) = seq.next_element()? {
                first = first.or(s);
            }
            Ok(first)
        }
        fn borrowed_str(self, v: &'de str) -> Self::Value {
            Some(Cow::Borrowed(v))
        }
        fn str(self, v: &str) -> Self::Value {
            Some(Cow::Owned(v.to_owned()))
        }
    }
    lenient::read(d, "a list of strings", First)
}

fn groups<'de, D: Deserializer<'de>>(d: D) -> Result<Groups, D::Error> {
    struct GroupList;
    impl<'de> Read<'de> for GroupList {
        type Value = Groups;
        fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Groups, A::Error> {
            let mut g = Groups::default();
            while let Some(lenient::Str(s)) = seq.next_element()? {
                match s.as_deref() {
                    Some("system:serviceaccounts") => g.service_accounts = true,
                    Some("system:nodes") => g.nodes = true,
                    Some("system:unauthenticated") => g.unauthenticated = true,
                    _ => {}
                }
            }
            Ok(g)
        }
    }
    lenient::read(d, "a list of groups", GroupList)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::time::parse_rfc3339;
    use proptest::prelude::*;

    crate::testing::decoder_helpers!();

    /// An event around a `user` object and extra top-level fields, which replace the
    /// defaults of the same name.
    fn event(user: &str, extra: &str) -> String {
        let defaults = [
            ("kind", r#""Event""#),
            ("apiVersion", r#""audit.k8s.io/v1""#),
            ("auditID", r#""a-1""#),
            ("stage", r#""ResponseComplete""#),
            ("requestURI", r#""/api/v1/namespaces/default/pods""#),
            ("verb", r#""list""#),
            ("sourceIPs", r#"["10.0.0.5","10.0.0.6"]"#),
            ("userAgent", r#""kubectl/v1.29.0""#),
            ("objectRef", r#"{"resource":"pods","namespace":"default","apiVersion":"v1"}"#),
            ("responseStatus", r#"{"metadata":{},"code":200}"#),
            ("requestReceivedTimestamp", r#""2024-05-01T12:00:00.000000Z""#),
            ("stageTimestamp", r#""2024-05-01T12:00:00.010000Z""#),
        ];
        crate::testing::object_with(&defaults, &[&format!(r#""user":{user}"#), extra])
    }

    /// (case, user, extra fields, principal id, type, credential kind, credential id, delegating user, session)
    type Case = crate::testing::ClassificationRow;

    const CLASSIFICATION: &[Case] = &[
        (
            "service account, bound token of a pod (kubernetes docs)",
            r#"{"username":"system:serviceaccount:kube-system:coredns","uid":"u1","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=0d0b9ea4-3b8a-4ed8-8b6a-3c2f3a8e6b21"],"authentication.kubernetes.io/node-name":["node-1"],"authentication.kubernetes.io/pod-name":["coredns-57ff979f67-bl27n"],"authentication.kubernetes.io/pod-uid":["5b9488ae"]}}"#,
            "",
            "system:serviceaccount:kube-system:coredns",
            PrincipalType::ServiceAccount,
            CredentialKind::ShortLivedToken,
            Some("JTI=0d0b9ea4-3b8a-4ed8-8b6a-3c2f3a8e6b21"),
            None,
            Some("coredns-57ff979f67-bl27n"),
        ),
        (
            "service account, panther's spelling of extra keys, no jti",
            r#"{"username":"system:serviceaccount:kube-system:coredns","groups":["system:serviceaccounts"],"extra":{"authentication_kubernetes_io_slash_pod-name":["coredns-57ff979f67-bl27n"],"authentication_kubernetes_io_slash_pod-uid":["5b9488ae"]}}"#,
            "",
            "system:serviceaccount:kube-system:coredns",
            PrincipalType::ServiceAccount,
            CredentialKind::ShortLivedToken,
            None,
            None,
            Some("coredns-57ff979f67-bl27n"),
        ),
        (
            "service account, legacy secret token",
            r#"{"username":"system:serviceaccount:ci:deployer","groups":["system:serviceaccounts","system:serviceaccounts:ci","system:authenticated"]}"#,
            r#""annotations":{"authentication.k8s.io/legacy-token":"system:serviceaccount:ci:deployer"}"#,
            "system:serviceaccount:ci:deployer",
            PrincipalType::ServiceAccount,
            CredentialKind::StaticKey,
            None,
            None,
            None,
        ),
        (
            "service account, token of unknown kind",
            r#"{"username":"system:serviceaccount:default:app-sa","groups":["system:serviceaccounts"]}"#,
            "",
            "system:serviceaccount:default:app-sa",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "kubelet with its client certificate",
            r#"{"username":"system:node:ip-192-168-3-178.us-west-2.compute.internal","groups":["system:nodes","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["X509SHA256=8a4c1f"]}}"#,
            "",
            "system:node:ip-192-168-3-178.us-west-2.compute.internal",
            PrincipalType::Workload,
            CredentialKind::Certificate,
            Some("X509SHA256=8a4c1f"),
            None,
            None,
        ),
        (
            "controller manager",
            r#"{"username":"system:kube-controller-manager","groups":["system:authenticated"]}"#,
            "",
            "system:kube-controller-manager",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "scheduler",
            r#"{"username":"system:kube-scheduler"}"#,
            "",
            "system:kube-scheduler",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "kube-proxy",
            r#"{"username":"system:kube-proxy","groups":["system:authenticated"]}"#,
            "",
            "system:kube-proxy",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "anonymous",
            r#"{"username":"system:anonymous","groups":["system:unauthenticated"]}"#,
            "",
            "system:anonymous",
            PrincipalType::Unknown,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "minikube user (falco traces)",
            r#"{"username":"minikube-user","groups":["system:masters","system:authenticated"]}"#,
            "",
            "minikube-user",
            PrincipalType::Human,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "kubernetes-admin",
            r#"{"username":"kubernetes-admin","groups":["system:masters","system:authenticated"]}"#,
            "",
            "kubernetes-admin",
            PrincipalType::Human,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "eks, iam role mapped to a person (panther sample)",
            r#"{"username":"kubernetes-admin","uid":"aws-iam-authenticator:123412341234:AROARLIVEKVNN","groups":["system:masters","system:authenticated"],"extra":{"accessKeyId":["ASIARLIVEKVNN6Y6J5UW"],"arn":["arn:aws:sts::123412341234:assumed-role/DevAdministrator/1669660343296132000"],"canonicalArn":["arn:aws:iam::123412341234:role/DevAdministrator"],"sessionName":["1669660343296132000"]}}"#,
            "",
            "kubernetes-admin",
            PrincipalType::Human,
            CredentialKind::ShortLivedToken,
            Some("ASIARLIVEKVNN6Y6J5UW"),
            None,
            Some("1669660343296132000"),
        ),
        (
            "eks, node instance role",
            r#"{"username":"ip-10-0-1-5.ec2.internal","groups":["system:bootstrappers"],"extra":{"accessKeyId":["ASIAEXAMPLEEXAMPLE01"],"arn":["arn:aws:sts::123412341234:assumed-role/eks-node-role/i-0abc123def4567890"],"sessionName":["i-0abc123def4567890"]}}"#,
            "",
            "ip-10-0-1-5.ec2.internal",
            PrincipalType::Workload,
            CredentialKind::ShortLivedToken,
            Some("ASIAEXAMPLEEXAMPLE01"),
            None,
            Some("i-0abc123def4567890"),
        ),
        (
            "eks, managed component",
            r#"{"username":"eks:addon-manager","groups":["system:authenticated"]}"#,
            "",
            "eks:addon-manager",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "eks, iam user with a static key",
            r#"{"username":"ci-bot","extra":{"accessKeyId":["AKIAIOSFODNN7EXAMPLE"],"arn":["arn:aws:iam::123412341234:user/ci-bot"]}}"#,
            "",
            "ci-bot",
            PrincipalType::Human,
            CredentialKind::StaticKey,
            Some("AKIAIOSFODNN7EXAMPLE"),
            None,
            None,
        ),
        (
            "impersonation of a service account by an admin",
            r#"{"username":"admin@example.com","groups":["system:authenticated"]}"#,
            r#""impersonatedUser":{"username":"system:serviceaccount:prod:payments","groups":["system:serviceaccounts"]}"#,
            "system:serviceaccount:prod:payments",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            Some("admin@example.com"),
            None,
        ),
        (
            "impersonation naming a pod and a credential in its extra headers",
            r#"{"username":"system:serviceaccount:tools:intruder","groups":["system:serviceaccounts"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=intruder-token"]}}"#,
            r#""impersonatedUser":{"username":"system:serviceaccount:prod:payments","groups":["system:serviceaccounts"],"extra":{"authentication.kubernetes.io/pod-name":["payments-7d9f-abcde"],"authentication.kubernetes.io/credential-id":["JTI=chosen-by-intruder"]}}"#,
            "system:serviceaccount:prod:payments",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            Some("system:serviceaccount:tools:intruder"),
            None,
        ),
        (
            "impersonation of a person",
            r#"{"username":"system:serviceaccount:tools:impersonator","groups":["system:serviceaccounts"]}"#,
            r#""impersonatedUser":{"username":"alice@example.com"}"#,
            "alice@example.com",
            PrincipalType::Human,
            CredentialKind::Unknown,
            None,
            Some("system:serviceaccount:tools:impersonator"),
            None,
        ),
        (
            "service account by group alone",
            r#"{"username":"oidc:robot","groups":["system:serviceaccounts"]}"#,
            "",
            "oidc:robot",
            PrincipalType::ServiceAccount,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        (
            "node by group alone",
            r#"{"username":"custom-node-7","groups":["system:nodes"]}"#,
            "",
            "custom-node-7",
            PrincipalType::Workload,
            CredentialKind::Unknown,
            None,
            None,
            None,
        ),
        ("no user", "null", "", "k8s:unattributed", PrincipalType::Unknown, CredentialKind::Unknown, None, None, None),
    ];

    #[test]
    fn classifies_principals_from_the_platforms_own_fields() {
        assert!(CLASSIFICATION.len() >= 15);
        for (case, user, extra, id, kind, credential, credential_id, delegating, session) in CLASSIFICATION {
            let text = event(user, extra);
            let e = one(&text).unwrap_or_else(|err| panic!("{case}: {err}"));
            let (principal, credential) = ((*id, *kind), (*credential, *credential_id));
            let attribution = [*delegating, None, *session];
            crate::testing::assert_classified(case, &e, principal, credential, attribution, SourceFormat::K8sAudit);
        }
    }

    /// The impersonator is named with what the API server authenticated: its own token
    /// and pod, which containment targets; nothing from the headers it sent.
    #[test]
    fn an_impersonator_is_named_with_the_token_that_authenticated_it() {
        let text = event(
            r#"{"username":"system:serviceaccount:tools:intruder","groups":["system:serviceaccounts"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=intruder-token"],"authentication.kubernetes.io/pod-name":["intruder-5c4d"]}}"#,
            r#""impersonatedUser":{"username":"system:serviceaccount:prod:payments","extra":{"authentication.kubernetes.io/credential-id":["JTI=chosen-by-intruder"]}}"#,
        );
        let e = one(&text).unwrap();
        let i = e.actor.impersonator.as_deref().expect("the impersonator is named");
        assert_eq!(
            (i.principal.id.as_ref(), i.principal.kind),
            ("system:serviceaccount:tools:intruder", PrincipalType::ServiceAccount)
        );
        assert_eq!(
            (i.credential.id.as_deref(), i.credential.kind),
            (Some("JTI=intruder-token"), CredentialKind::ShortLivedToken)
        );
        assert_eq!(i.session_id.as_deref(), Some("intruder-5c4d"));
        assert_eq!(e.principal.id, "system:serviceaccount:prod:payments");
        assert_eq!((e.credential.id.as_deref(), e.actor.session_id.as_deref()), (None, None));

        let own = event(r#"{"username":"system:serviceaccount:prod:payments"}"#, "");
        let own = one(&own).unwrap();
        assert!(own.actor.impersonator.is_none(), "a request made as oneself has no impersonator");
    }

    #[test]
    fn maps_the_request_and_borrows_from_the_input() {
        let text = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"7c0d","stage":"ResponseComplete","verb":"create","user":{"username":"system:serviceaccount:ci:deployer"},"sourceIPs":["192.168.99.1"],"userAgent":"kubectl/v1.29.0","objectRef":{"resource":"rolebindings","namespace":"prod","name":"admin-binding","apiGroup":"rbac.authorization.k8s.io"},"responseStatus":{"code":201},"stageTimestamp":"2024-05-01T12:00:00.5Z"}"#;
        let e = one(text).unwrap();
        assert_eq!(e.id, "7c0d");
        assert!(matches!(e.id, Cow::Borrowed(_)) && matches!(e.principal.id, Cow::Borrowed(_)));
        assert_eq!(e.time, parse_rfc3339("2024-05-01T12:00:00.5Z").unwrap());
        assert_eq!(e.action, "create rolebindings");
        assert_eq!(e.service, "rbac.authorization.k8s.io");
        assert_eq!(e.resource.as_deref(), Some("prod/admin-binding"));
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.source.ip.as_deref(), Some("192.168.99.1"));
        assert_eq!(e.source.user_agent.as_deref(), Some("kubectl/v1.29.0"));
        assert_eq!(e.principal.name.as_deref(), Some("deployer"));

        let exec = event(
            r#"{"username":"attacker@example.com"}"#,
            r#""verb":"create","objectRef":{"resource":"pods","subresource":"exec","namespace":"default","name":"web-0"},"stage":"ResponseStarted","responseStatus":{"code":101}"#,
        );
        let e = one(&exec).unwrap();
        assert_eq!((e.action.as_ref(), e.service.as_ref()), ("create pods/exec", "k8s"));
        assert_eq!(e.id, "a-1/started", "a long-running request's start does not reuse the request's id");

        let health = r#"{"kind":"Event","verb":"get","requestURI":"/healthz?verbose=1","user":{"username":"system:anonymous"},"stageTimestamp":"2024-05-01T12:00:00Z"}"#;
        let e = one(health).unwrap();
        assert_eq!((e.action.as_ref(), e.resource.as_deref()), ("get /healthz", Some("/healthz")));
    }

    #[test]
    fn outcome_follows_the_response_code() {
        for (code, outcome) in [
            ("200", Outcome::Success),
            ("101", Outcome::Success),
            ("401", Outcome::Denied),
            ("403", Outcome::Denied),
            ("404", Outcome::Failure),
            ("409", Outcome::Failure),
            ("500", Outcome::Failure),
        ] {
            let text = event(r#"{"username":"bob"}"#, &format!(r#""responseStatus":{{"code":{code}}}"#));
            assert_eq!(one(&text).unwrap().outcome, outcome, "{code}");
        }
    }

    #[test]
    fn request_received_is_skipped_and_other_stages_kept() {
        let received = event(r#"{"username":"bob"}"#, r#""stage":"RequestReceived""#);
        assert!(decode_all(&received, &DecodeContext::default()).is_empty());
        for stage in ["ResponseComplete", "Panic", "ResponseStarted"] {
            let text = event(r#"{"username":"bob"}"#, &format!(r#""stage":"{stage}""#));
            assert!(one(&text).is_ok(), "{stage}");
        }
    }

    #[test]
    fn time_falls_back_from_stage_to_a_shippers_to_panther_to_the_transport() {
        let bare =
            r#"{"kind":"Event","verb":"update","objectRef":{"resource":"daemonsets"},"responseStatus":{"code":200}}"#;
        assert_eq!(one(bare).unwrap_err().reason, DeadLetterReason::MissingTime);
        let ctx = DecodeContext { fallback_time: Some(42), ..Default::default() };
        let out = decode_all(bare, &ctx);
        assert_eq!(out[0].as_ref().unwrap().time, 42);
        let panther = r#"{"kind":"Event","verb":"get","requestURI":"/x","p_event_time":"2022-11-29 00:09:04.38"}"#;
        assert_eq!(one(panther).unwrap().time, parse_rfc3339("2022-11-29T00:09:04.380Z").unwrap());
        let shipped = r#"{"kind":"Event","verb":"get","requestURI":"/x","@timestamp":"2022-11-29T00:09:05Z"}"#;
        assert_eq!(one(shipped).unwrap().time, parse_rfc3339("2022-11-29T00:09:05Z").unwrap());
        let bad = event(r#"{"username":"bob"}"#, "").replace("2024-05-01T12:00:00.010000Z", "yesterday");
        assert_eq!(one(&bad).unwrap_err().reason, DeadLetterReason::InvalidTime);
    }

    #[test]
    fn essential_fields_dead_letter_and_optional_ones_read_as_absent() {
        assert_eq!(one(r#"{"kind": 0}"#).unwrap_err().reason, DeadLetterReason::WrongType);
        assert_eq!(one(r#"{"kind":"Event"}"#).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
        assert_eq!(one(r#"{"kind":"Event","verb":1}"#).unwrap_err().reason, DeadLetterReason::WrongType);
        assert_eq!(one(&event("\"bob\"", "")).unwrap_err().reason, DeadLetterReason::WrongType);
        assert_eq!(one("[1,2]").unwrap_err().reason, DeadLetterReason::WrongType);
        let odd = event(
            r#"{"username":"bob","groups":"x","extra":[1]}"#,
            r#""sourceIPs":"10.1.1.1","objectRef":[],"responseStatus":{"code":"403"},"annotations":null"#,
        );
        let e = one(&odd).unwrap();
        assert_eq!(e.source.ip.as_deref(), Some("10.1.1.1"));
        assert_eq!((e.action.as_ref(), e.outcome), ("list /api/v1/namespaces/default/pods", Outcome::Success));
    }

    #[test]
    fn errors_do_not_quote_the_input() {
        let err = one(r#"{"kind":"Event","verb":"get","user":{"username":"SECRETSECRET"#).unwrap_err();
        assert!(!err.detail.contains("SECRET"), "{}", err.detail);
    }

    #[test]
    fn detection_needs_the_audit_markers() {
        assert!(detect(event(r#"{"username":"bob"}"#, "").as_bytes()));
        assert!(detect(br#"{"kind":"Event","verb":"update","objectRef":{"resource":"daemonsets"}}"#));
        assert!(!detect(br#"{"verb":"list","actor":"x"}"#));
        let gke = br#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","methodName":"io.k8s.core.v1.pods.create","request":{"apiVersion":"audit.k8s.io/v1","verb":"x","objectRef":{}}}}"#;
        assert!(!detect(gke));
        let aks = br#"{"category":"kube-audit","properties":{"log":"{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\"}"}}"#;
        assert!(!detect(aks), "an event inside a string is not this message's format");
    }

    proptest! {
        #[test]
        fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-zA-Z0-9 .\-/@\\]{0,200}"#) {
            let _ = decode_all(&s, &DecodeContext::default());
            let mut n = 0;
            let ctx = DecodeContext { fallback_time: Some(0), ..Default::default() };
            super::super::decode(s.as_bytes(), super::super::Format::K8sAudit, &ctx, &mut |_| n += 1);
        }

        #[test]
        fn keys_with_arbitrary_values_never_panic(
            key in prop::sample::select(vec!["kind", "verb", "user", "impersonatedUser", "sourceIPs", "objectRef",
                "responseStatus", "stageTimestamp", "stage", "annotations", "requestURI", "auditID"]),
            value in r#"(null|true|-?[0-9]{1,20}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"username":1,"groups":\[1\],"extra":\{"arn":\[2\]\}\})"#,
        ) {
            let text = format!(r#"{{"{key}":{value},"verb":"get","requestURI":"/x"}}"#);
            let _ = decode_all(&text, &DecodeContext { fallback_time: Some(0), ..Default::default() });
        }
    }
}
