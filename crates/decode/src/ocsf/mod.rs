//! OCSF (Open Cybersecurity Schema Framework, 1.x) events of the two classes that say who
//! called what: API Activity (`class_uid` 6003) and Authentication (3002). Other classes are
//! OCSF too (network, DNS, findings) but name no principal acting on a service; they are
//! dead-lettered as `unknown_format` with their class in the detail.
//!
//! Amazon Security Lake writes CloudTrail as OCSF: `actor.user.uid` is the caller's ARN and
//! `actor.user.type` CloudTrail's `userIdentity.type`, so the ARN tells machines from people
//! the way the CloudTrail decoder does. Elsewhere `actor.user.type_id` (OCSF 1.x: 0 Unknown,
//! 1 User, 2 Admin, 3 System, 99 Other) and the `type` caption decide.

use std::borrow::Cow;
use std::net::IpAddr;

use memchr::memmem;
use serde::Deserialize;

use super::cloudtrail::lenient;
use super::cloudtrail::lenient::nonempty;
use super::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, Source, SourceFormat,
};
use nhid_model::time::{Millis, parse_rfc3339};
use nhid_model::vocab::DeadLetterReason;

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
    // serde would read an array positionally into the struct's fields.
    if text.trim_start().starts_with('[') {
        return emit(Err(DecodeError::new(
            DeadLetterReason::WrongType,
            "an ocsf event is a json object, not an array",
        )));
    }
    let event: Event<'a> = match sonic_rs::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            let mut err = DecodeError::from_json(&e);
            if let Some(cut) = err.detail.find('\n') {
                err.detail.truncate(cut);
            }
            return emit(Err(err));
        }
    };
    emit(to_event(event, text, ctx))
}

type Str<'a> = Option<Cow<'a, str>>;

#[derive(Default, Deserialize)]
#[serde(default)]
struct Event<'a> {
    #[serde(deserialize_with = "number")]
    class_uid: Option<u64>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    class_name: Str<'a>,
    /// Epoch milliseconds (OCSF `timestamp_t`); some producers write a date string.
    #[serde(borrow, deserialize_with = "timestamp")]
    time: Option<Time<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    time_dt: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    actor: Option<ActorObject<'a>>,
    /// Authentication: the account signing in (the actor may be a process acting for it).
    #[serde(borrow, deserialize_with = "lenient::map")]
    user: Option<User<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    api: Option<Api<'a>>,
    /// Authentication: the service signed in to.
    #[serde(borrow, deserialize_with = "lenient::map")]
    service: Option<Named<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    dst_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    src_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    http_request: Option<HttpRequest<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    status: Str<'a>,
    #[serde(deserialize_with = "number")]
    status_id: Option<u64>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    status_code: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    status_detail: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    activity_name: Str<'a>,
    #[serde(borrow, deserialize_with = "first_resource")]
    resources: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    cloud: Option<Cloud<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    auth_protocol: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Metadata<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    uid: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    product: Option<Product<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Product<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    name: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ActorObject<'a> {
    #[serde(borrow, deserialize_with = "lenient::map")]
    user: Option<User<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    session: Option<Session<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    invoked_by: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    app_name: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    app_uid: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct User<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    uid: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    name: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    email_addr: Str<'a>,
    #[serde(borrow, rename = "type", deserialize_with = "lenient::string")]
    kind: Str<'a>,
    #[serde(deserialize_with = "number")]
    type_id: Option<u64>,
    /// OCSF 1.1 puts the access key here; 1.0 had it on the session only.
    #[serde(borrow, deserialize_with = "lenient::string")]
    credential_uid: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    account: Option<Account<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Account<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    uid: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Session<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    uid: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    issuer: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    credential_uid: Str<'a>,
    #[serde(borrow, deserialize_with = "timestamp")]
    created_time: Option<Time<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    created_time_dt: Str<'a>,
    #[serde(borrow, deserialize_with = "timestamp")]
    expiration_time: Option<Time<'a>>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    expiration_time_dt: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Api<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    operation: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    service: Option<Named<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    response: Option<Response<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Response<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    error: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Named<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    name: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Endpoint<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    ip: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    svc_name: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct HttpRequest<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    user_agent: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Cloud<'a> {
    #[serde(borrow, deserialize_with = "lenient::map")]
    account: Option<Account<'a>>,
}

/// A timestamp as OCSF writes it (epoch milliseconds) or as some producers do (a date string).
enum Time<'a> {
    Millis(Millis),
    Text(Cow<'a, str>),
}

impl Time<'_> {
    fn millis(&self) -> Option<Millis> {
        match self {
            Time::Millis(m) => Some(*m),
            Time::Text(t) => parse_rfc3339(t),
        }
    }
}

fn timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Time<'de>>, D::Error> {
    struct TimeVisitor;
    impl<'de> serde::de::Visitor<'de> for TimeVisitor {
        type Value = Option<Time<'de>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a timestamp")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Time::Millis(v)))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok().map(Time::Millis))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok((v.is_finite() && v.abs() < 9e15).then_some(Time::Millis(v as i64)))
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Time::Text(Cow::Borrowed(v))))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Time::Text(Cow::Owned(v.to_owned()))))
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            lenient::skip_map(map).map(|_| None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            lenient::skip_seq(seq).map(|_| None)
        }
    }
    d.deserialize_any(TimeVisitor)
}

/// An enum id: a non-negative integer, also accepted as a numeric string.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match timestamp(d)? {
        Some(Time::Millis(n)) => u64::try_from(n).ok(),
        Some(Time::Text(t)) => t.trim().parse().ok(),
        None => None,
    })
}

/// `resources[]`: the first one's `uid`, else its `name`; elements that are not objects are skipped.
fn first_resource<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Str<'de>, D::Error> {
    #[derive(Default, Deserialize)]
    #[serde(default)]
    struct Resource<'a> {
        #[serde(borrow, deserialize_with = "lenient::string")]
        uid: Str<'a>,
        #[serde(borrow, deserialize_with = "lenient::string")]
        name: Str<'a>,
    }
    struct Element<'a>(Option<Resource<'a>>);
    impl<'de> Deserialize<'de> for Element<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            lenient::map(d).map(Element)
        }
    }
    struct ResourcesVisitor;
    impl<'de> serde::de::Visitor<'de> for ResourcesVisitor {
        type Value = Str<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of resources")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut first = None;
            while let Some(Element(r)) = seq.next_element::<Element<'de>>()? {
                if first.is_none() {
                    first = r.and_then(|r| nonempty(r.uid).or(nonempty(r.name)));
                }
            }
            Ok(first)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            lenient::skip_map(map).map(|_| None)
        }
        lenient::absent_scalars!();
    }
    d.deserialize_any(ResourcesVisitor)
}

/// A part of a string that keeps borrowing from the input when the string does.
fn project<'a>(s: &Cow<'a, str>, part: impl FnOnce(&str) -> Option<&str>) -> Str<'a> {
    match s {
        Cow::Borrowed(s) => part(s).map(Cow::Borrowed),
        Cow::Owned(s) => part(s).map(|p| Cow::Owned(p.to_owned())),
    }
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
    let class = match ev.class_uid {
        Some(c @ (API_ACTIVITY | AUTHENTICATION)) => c,
        Some(c) => {
            return Err(DecodeError::new(
                DeadLetterReason::UnknownFormat,
                format!(
                    "ocsf class {c} ({}) is not read: only api activity (6003) and authentication (3002) name a caller",
                    class_label(c)
                ),
            ));
        }
        None => {
            return Err(DecodeError::new(DeadLetterReason::UnknownFormat, "ocsf event without a numeric class_uid"));
        }
    };

    let time = match (ev.time, nonempty(ev.time_dt)) {
        (Some(t), _) => {
            t.millis().ok_or_else(|| DecodeError::new(DeadLetterReason::InvalidTime, "time is not a timestamp"))?
        }
        (None, Some(t)) => parse_rfc3339(&t)
            .ok_or_else(|| DecodeError::new(DeadLetterReason::InvalidTime, "time_dt is not a timestamp"))?,
        (None, None) => ctx.fallback_time.ok_or_else(|| DecodeError::new(DeadLetterReason::MissingTime, "no time"))?,
    };

    let mut actor = ev.actor.unwrap_or_default();
    // Authentication names the account in `user`; API activity in `actor.user`.
    let user = match class {
        AUTHENTICATION => ev.user.or(actor.user.take()),
        _ => actor.user.take(),
    }
    .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "no actor.user or user"))?;
    let session = actor.session.take().unwrap_or_default();
    let invoked_by = nonempty(actor.invoked_by.take());
    // An AWS service acting for the caller is a client, not a delegating person.
    let (delegating_user, invoking_service) = match invoked_by {
        Some(s) if s.ends_with(".amazonaws.com") || s.contains("AWS Internal") => (None, Some(s)),
        other => (other, None),
    };

    let uid = nonempty(user.uid);
    let name = nonempty(user.name);
    let email = nonempty(user.email_addr);
    let type_name = nonempty(user.kind);
    let credential_id = nonempty(user.credential_uid).or(nonempty(session.credential_uid));
    let identity = classify(uid.as_ref(), type_name.as_deref(), user.type_id, credential_id.as_deref());
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

    let mut api = ev.api.unwrap_or_default();
    let error = nonempty(api.response.take().and_then(|r| r.error));
    let (service, action) = match class {
        API_ACTIVITY => {
            let service = nonempty(api.service.take().and_then(|s| s.name))
                .and_then(|s| project(&s, |s| Some(s.strip_suffix(".amazonaws.com").unwrap_or(s))))
                .filter(|s| !s.is_empty())
                .or_else(|| {
                    nonempty(ev.metadata.as_ref().and_then(|m| m.product.as_ref()).and_then(|p| p.name.clone()))
                })
                .unwrap_or(Cow::Borrowed("ocsf"));
            let action = Cow::Owned(format!("{service}:{}", nonempty(api.operation).as_deref().unwrap_or("unknown")));
            (service, action)
        }
        _ => {
            let service = nonempty(ev.service.and_then(|s| s.name))
                .or_else(|| nonempty(ev.dst_endpoint.and_then(|d| d.svc_name)))
                .or_else(|| {
                    nonempty(ev.metadata.as_ref().and_then(|m| m.product.as_ref()).and_then(|p| p.name.clone()))
                })
                .unwrap_or(Cow::Borrowed("ocsf"));
            let activity = nonempty(ev.activity_name).or(nonempty(ev.auth_protocol));
            let action = Cow::Owned(format!("authentication:{}", activity.as_deref().unwrap_or("Logon")));
            (service, action)
        }
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
    let ip = nonempty(src.ip).filter(|ip| ip.parse::<IpAddr>().is_ok());
    let user_agent = nonempty(ev.http_request.and_then(|h| h.user_agent)).or(invoking_service);
    let tenant = nonempty(ev.cloud.and_then(|c| c.account).and_then(|a| a.uid))
        .or_else(|| nonempty(user.account.and_then(|a| a.uid)))
        .or(identity.account);
    let event_id = nonempty(ev.metadata.and_then(|m| m.uid))
        .unwrap_or_else(|| Cow::Owned(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(raw.as_bytes()))));
    let _ = ev.class_name;

    Ok(AuditEvent {
        id: event_id,
        time,
        principal: Principal { id, kind: identity.kind, name: name.or(email), owner: None, tenant },
        credential: Credential { id: credential_id, kind: credential_kind, issued_at, expires_at },
        actor: Actor { delegating_user, agent_id, session_id },
        action,
        service,
        resource: nonempty(ev.resources),
        outcome,
        source: Source { ip, user_agent, asn: None, country: None },
        bytes_out: None,
        source_format: SourceFormat::Ocsf,
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
}

/// Machine or human, from the ARN when the producer is AWS (Security Lake), else from the
/// OCSF user type.
fn classify<'a>(
    uid: Option<&Cow<'a, str>>,
    type_name: Option<&str>,
    type_id: Option<u64>,
    key: Option<&str>,
) -> Identity<'a> {
    let mut identity = Identity { kind: PrincipalType::Unknown, id: None, session_name: None, account: None };
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
            identity.kind = if is_email(session) {
                PrincipalType::Human
            } else if session.starts_with("i-") {
                PrincipalType::Workload
            } else {
                PrincipalType::ServiceAccount
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

fn is_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !s.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;
    use proptest::prelude::*;

    fn decode_all<'a>(text: &'a str, ctx: &DecodeContext) -> Vec<Result<AuditEvent<'a>, DecodeError>> {
        let mut out = Vec::new();
        decode(text, ctx, &mut |r| out.push(r));
        out
    }

    fn one(text: &str) -> Result<AuditEvent<'_>, DecodeError> {
        let mut out = decode_all(text, &DecodeContext::default());
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

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

    struct Case {
        name: &'static str,
        text: String,
        kind: PrincipalType,
        principal: &'static str,
        credential: CredentialKind,
        delegating_user: Option<&'static str>,
        agent_id: Option<&'static str>,
        session_id: Option<&'static str>,
        outcome: Outcome,
    }

    fn cases() -> Vec<Case> {
        let base = Case {
            name: "",
            text: String::new(),
            kind: PrincipalType::ServiceAccount,
            principal: "",
            credential: CredentialKind::Unknown,
            delegating_user: None,
            agent_id: None,
            session_id: None,
            outcome: Outcome::Success,
        };
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
                text: api(
                    r#"{"user":{"type":"IAMUser","name":"jane","uid":"arn:aws:iam::123456789012:user/jane"}}"#,
                    "",
                ),
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
                text: auth(
                    r#"{"type_id":1,"uid":"00u1abcd"}"#,
                    r#","status_id":2,"status_detail":"INVALID_CREDENTIALS""#,
                ),
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
        assert!(cases.len() >= 15);
        for c in &cases {
            assert!(detect(c.text.as_bytes()), "{}: detected", c.name);
            assert_eq!(crate::detect(c.text.as_bytes()), Some(Format::Ocsf), "{}", c.name);
            let e = one(&c.text).unwrap_or_else(|err| panic!("{}: {err}", c.name));
            assert_eq!(e.principal.kind, c.kind, "{}", c.name);
            assert_eq!(e.principal.id, c.principal, "{}", c.name);
            assert_eq!(e.credential.kind, c.credential, "{}", c.name);
            assert_eq!(e.actor.delegating_user.as_deref(), c.delegating_user, "{}", c.name);
            assert_eq!(e.actor.agent_id.as_deref(), c.agent_id, "{}", c.name);
            assert_eq!(e.actor.session_id.as_deref(), c.session_id, "{}", c.name);
            assert_eq!(e.outcome, c.outcome, "{}", c.name);
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
        let dns = r#"{"class_uid":4003,"category_uid":4,"type_uid":400302,"metadata":{"version":"1.1.0"},"time":1714564800000}"#;
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
}
