//! OCSF (Open Cybersecurity Schema Framework, 1.x) events of the two classes that say who
//! called what: API Activity (`class_uid` 6003) and Authentication (3002). Other classes are
//! OCSF too (network, DNS, findings) but name no principal acting on a service; they are
//! dead-lettered as `unknown_format` with their class in the detail.
//!
//! Amazon Security Lake writes CloudTrail as OCSF: `actor.user.uid` is the caller's ARN and
//! `actor.user.type` CloudTrail's `userIdentity.type`, so the ARN tells machines from people
//! the way the CloudTrail decoder does. Elsewhere `actor.user.type_id` (OCSF 1.x: 0 Unknown,
//! 1 User, 2 Admin, 3 System, 99 Other) and the `type` caption decide.
//!
//! `record` holds the fields read; this module decides who called what, and how it went.

mod record;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::IpAddr;

use memchr::memmem;

use crate::aws::is_email;
use crate::lenient::nonempty;
use crate::record::{content_id, event_time, parse_object, project};
use crate::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, Source, SourceFormat,
};
use nhid_model::time::{Millis, parse_rfc3339};
use nhid_model::vocab::DeadLetterReason;
use record::{ActorObject, Api, Endpoint, Event, Metadata, Named, Str, Time, User};

const API_ACTIVITY: u64 = 6003;
const AUTHENTICATION: u64 = 3002;

/// Whether the message is an OCSF event: every class carries `class_uid` with `metadata`
/// (required by the base event) and `type_uid` or `category_uid` (both required since 1.0).
pub fn detect(bytes: &[u8]) -> bool {
    use std::sync::LazyLock;
    static ALL: LazyLock<[memmem::Finder<'static>; 2]> =
        LazyLock::new(|| [&b"\"class_uid\""[..], b"\"metadata\""].map(memmem::Finder::new));
    static ANY: LazyLock<[memmem::Finder<'static>; 2]> =
        LazyLock::new(|| [&b"\"type_uid\""[..], b"\"category_uid\""].map(memmem::Finder::new));
    ALL.iter().all(|f| f.find(bytes).is_some()) && ANY.iter().any(|f| f.find(bytes).is_some())
}

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    emit(
        parse_object(text, "an ocsf event is a json object, not an array").and_then(|event| to_event(event, text, ctx)),
    )
}

fn class_label(class: u64) -> &'static str {
    match class {
        1001..=1999 => "system activity",
        2001..=2999 => "finding",
        3001 | 3003..=3999 => "identity and access management",
        4001..=4999 => "network activity",
        5001..=5999 => "discovery",
        6001 | 6002 | 6004..=6999 => "application activity",
        _ => "other",
    }
}

fn to_event<'a>(ev: Event<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let class = read_class(ev.class_uid)?;
    let time = time(ev.time, nonempty(ev.time_dt), ctx)?;
    let mut actor = ev.actor.unwrap_or_default();
    // Authentication names the account in `user`; API activity in `actor.user`.
    let user = match class {
        AUTHENTICATION => ev.user.or(actor.user.take()),
        _ => actor.user.take(),
    }
    .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "no actor.user or user"))?;
    let cloud_account = nonempty(ev.cloud.and_then(|c| c.account).and_then(|a| a.uid));
    let caller = identify(user, actor, cloud_account)?;

    let mut api = ev.api.unwrap_or_default();
    let error = nonempty(api.response.take().and_then(|r| r.error));
    let product = product_name(ev.metadata.as_ref());
    let (service, action) = match class {
        API_ACTIVITY => api_call(api, product),
        _ => sign_in(ev.service, ev.dst_endpoint, product, nonempty(ev.activity_name).or(nonempty(ev.auth_protocol))),
    };
    let failed = match (ev.status_id, nonempty(ev.status).as_deref()) {
        (Some(1), _) => false,
        (Some(2), _) => true,
        (_, Some(s)) => s.eq_ignore_ascii_case("failure"),
        _ => error.is_some(),
    };
    let denied =
        [error.as_deref(), ev.status_code.as_deref(), ev.status_detail.as_deref()].into_iter().flatten().any(is_denial);
    let outcome = match (failed, denied) {
        (false, _) => Outcome::Success,
        (true, true) => Outcome::Denied,
        (true, false) => Outcome::Failure,
    };

    let src = ev.src_endpoint.unwrap_or_default();
    let user_agent = nonempty(ev.http_request.and_then(|h| h.user_agent)).or(caller.invoking_service);
    Ok(AuditEvent {
        id: nonempty(ev.metadata.and_then(|m| m.uid)).unwrap_or_else(|| content_id(raw)),
        time,
        principal: caller.principal,
        credential: caller.credential,
        actor: caller.actor,
        action,
        service,
        resource: nonempty(ev.resources),
        outcome,
        source: Source {
            ip: nonempty(src.ip).filter(|ip| ip.parse::<IpAddr>().is_ok()),
            user_agent,
            asn: None,
            country: None,
        },
        bytes_out: None,
        source_format: SourceFormat::Ocsf,
        rules: Vec::new(),
        raw,
        raw_fields: Default::default(),
    })
}

/// Only API Activity and Authentication name a caller; other classes are dead-lettered with
/// their class, so an operator sees what the topic carries.
fn read_class(class_uid: Option<u64>) -> Result<u64, DecodeError> {
    match class_uid {
        Some(c @ (API_ACTIVITY | AUTHENTICATION)) => Ok(c),
        Some(c) => Err(DecodeError::new(
            DeadLetterReason::UnknownFormat,
            format!(
                "ocsf class {c} ({}) is not read: only api activity (6003) and authentication (3002) name a caller",
                class_label(c)
            ),
        )),
        None => Err(DecodeError::new(DeadLetterReason::UnknownFormat, "ocsf event without a numeric class_uid")),
    }
}

/// `time` (epoch milliseconds) or `time_dt`; a present but unreadable one dead-letters the event.
fn time(time: Option<Time<'_>>, time_dt: Str<'_>, ctx: &DecodeContext) -> Result<Millis, DecodeError> {
    if let Some(t) = time {
        return t.millis().ok_or_else(|| DecodeError::new(DeadLetterReason::InvalidTime, "time is not a timestamp"));
    }
    event_time(time_dt, "time_dt is not a timestamp", [], ctx, "no time")
}

fn product_name<'a>(metadata: Option<&Metadata<'a>>) -> Str<'a> {
    nonempty(metadata.and_then(|m| m.product.as_ref()).and_then(|p| p.name.clone()))
}

/// API Activity: `s3:GetObject`, named by the API's service (or the product that logged it).
fn api_call<'a>(api: Api<'a>, product: Str<'a>) -> (Cow<'a, str>, Cow<'a, str>) {
    let service = nonempty(api.service.and_then(|s| s.name))
        .and_then(|s| crate::aws::service_name(&s))
        .or(product)
        .unwrap_or(Cow::Borrowed("ocsf"));
    let action = Cow::Owned(format!("{service}:{}", nonempty(api.operation).as_deref().unwrap_or("unknown")));
    (service, action)
}

/// Authentication: `authentication:Logon` at the service signed in to.
fn sign_in<'a>(
    service: Option<Named<'a>>,
    destination: Option<Endpoint<'a>>,
    product: Str<'a>,
    activity: Str<'a>,
) -> (Cow<'a, str>, Cow<'a, str>) {
    let service = nonempty(service.and_then(|s| s.name))
        .or_else(|| nonempty(destination.and_then(|d| d.svc_name)))
        .or(product)
        .unwrap_or(Cow::Borrowed("ocsf"));
    let action = Cow::Owned(format!("authentication:{}", activity.as_deref().unwrap_or("Logon")));
    (service, action)
}

/// Who called: the principal, its credential and the triad.
struct Caller<'a> {
    principal: Principal<'a>,
    credential: Credential<'a>,
    actor: Actor<'a>,
    /// An AWS service acting for the caller: a client, not a delegating person.
    invoking_service: Str<'a>,
}

fn identify<'a>(user: User<'a>, mut actor: ActorObject<'a>, cloud_account: Str<'a>) -> Result<Caller<'a>, DecodeError> {
    let session = actor.session.take().unwrap_or_default();
    let (delegating_user, invoking_service) = match nonempty(actor.invoked_by.take()) {
        Some(s) if s.ends_with(".amazonaws.com") || s.contains("AWS Internal") => (None, Some(s)),
        other => (other, None),
    };
    let uid = nonempty(user.uid);
    let name = nonempty(user.name);
    let email = nonempty(user.email_addr);
    let credential_id = nonempty(user.credential_uid).or(nonempty(session.credential_uid));
    let identity = classify(uid.as_ref(), nonempty(user.kind).as_deref(), user.type_id, credential_id.as_deref());
    let id = identity
        .id
        .or(uid)
        .or_else(|| email.clone())
        .or_else(|| name.clone())
        .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "user has no uid, email or name"))?;

    let session_id = nonempty(session.uid).or(identity.session_name);
    let issued_at = session
        .created_time
        .and_then(|t| t.millis())
        .or_else(|| nonempty(session.created_time_dt).and_then(|t| parse_rfc3339(&t)));
    let expires_at = session
        .expiration_time
        .and_then(|t| t.millis())
        .or_else(|| nonempty(session.expiration_time_dt).and_then(|t| parse_rfc3339(&t)));
    let credential_kind = match credential_id.as_deref() {
        Some(k) if k.starts_with("AKIA") => CredentialKind::StaticKey,
        Some(k) if k.starts_with("ASIA") => CredentialKind::ShortLivedToken,
        _ if session_id.is_some() || nonempty(session.issuer).is_some() => CredentialKind::Session,
        _ => CredentialKind::Unknown,
    };
    let agent_id = (identity.kind == PrincipalType::AiAgent)
        .then(|| nonempty(actor.app_uid.take()).or(nonempty(actor.app_name.take())).or(Some(id.clone())))
        .flatten();
    let tenant = cloud_account.or_else(|| nonempty(user.account.and_then(|a| a.uid))).or(identity.account);
    Ok(Caller {
        principal: Principal {
            id,
            kind: identity.kind,
            name: name.or(email),
            owner: None,
            tenant,
            inferred: identity.inferred,
        },
        credential: Credential { id: credential_id, kind: credential_kind, issued_at, expires_at },
        actor: Actor { delegating_user, agent_id, session_id, impersonator: None },
        invoking_service,
    })
}

/// Error codes and details that mean "not allowed" rather than "went wrong".
fn is_denial(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.contains("accessdenied")
        || lower.contains("access denied")
        || lower.starts_with("unauthorized")
        || lower.contains("notauthorized")
        || lower.contains("forbidden")
        || lower.contains("permission denied")
}

struct Identity<'a> {
    kind: PrincipalType,
    /// A stabler id than `uid` when `uid` names one session of an identity (an assumed-role ARN).
    id: Str<'a>,
    session_name: Str<'a>,
    account: Str<'a>,
    /// The type rests on the session name, which the caller chose (`Principal::inferred`).
    inferred: bool,
}

/// Machine or human, from the ARN when the producer is AWS (Security Lake), else from the
/// OCSF user type.
fn classify<'a>(
    uid: Option<&Cow<'a, str>>,
    type_name: Option<&str>,
    type_id: Option<u64>,
    key: Option<&str>,
) -> Identity<'a> {
    let mut identity =
        Identity { kind: PrincipalType::Unknown, id: None, session_name: None, account: None, inferred: false };
    if let Some(uid) = uid
        && let Some(arn) = uid.strip_prefix("arn:")
    {
        // arn:partition:service::account:resource
        let mut parts = arn.splitn(5, ':');
        let (partition, service, account, resource) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.nth(1).unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        identity.account = project(uid, |u| u.split(':').nth(4)).filter(|a| !a.is_empty());
        if service == "sts"
            && let Some(rest) = resource.strip_prefix("assumed-role/")
            && let Some((role, session)) = rest.split_once('/')
        {
            // Every session of a role is the role: its id must not change per session.
            identity.id = Some(Cow::Owned(format!("arn:{partition}:iam::{account}:role/{role}")));
            identity.session_name = project(uid, |u| u.rsplit('/').next());
            // `RoleSessionName` is the caller's choice: a type read from it is an inference.
            (identity.kind, identity.inferred) = if is_email(session) {
                (PrincipalType::Human, true)
            } else if session.starts_with("i-") {
                (PrincipalType::Workload, true)
            } else {
                (PrincipalType::ServiceAccount, false)
            };
            return identity;
        }
        if resource == "root" {
            identity.kind = PrincipalType::Human;
            return identity;
        }
        if service == "iam" && resource.starts_with("user/") {
            // A programmatic IAM user signs with a static key; a person has a console password.
            identity.kind = if key.is_some_and(|k| k.starts_with("AKIA")) {
                PrincipalType::ServiceAccount
            } else {
                PrincipalType::Human
            };
            return identity;
        }
    }
    let caption = type_name.map(|t| t.to_ascii_lowercase().replace([' ', '_', '-'], ""));
    identity.kind = match (caption.as_deref(), type_id) {
        (Some(t), _) if t.contains("agent") => PrincipalType::AiAgent,
        (Some("bot"), _) => PrincipalType::Bot,
        (Some("awsservice" | "workload" | "machine" | "managedidentity"), _) => PrincipalType::Workload,
        (
            Some("service" | "serviceaccount" | "serviceprincipal" | "application" | "app" | "system" | "assumedrole"),
            _,
        ) => PrincipalType::ServiceAccount,
        (Some("iamuser"), _) if key.is_some_and(|k| k.starts_with("AKIA")) => PrincipalType::ServiceAccount,
        (Some("user" | "admin" | "iamuser" | "root" | "human"), _) => PrincipalType::Human,
        (_, Some(3)) => PrincipalType::ServiceAccount,
        (_, Some(1 | 2)) => PrincipalType::Human,
        _ => PrincipalType::Unknown,
    };
    identity
}
