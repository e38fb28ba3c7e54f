//! Entra ID (Azure AD) sign-ins in the three shapes they are exported in:
//! - a Microsoft Graph `signIn` object (`GET /auditLogs/signIns`), camelCase at top level;
//! - a diagnostic-settings record (Event Hubs, storage): `{time, category: "SignInLogs" | …,
//!   resultType, callerIpAddress, properties: {…the Graph fields…}}`;
//! - a Log Analytics row (`AADServicePrincipalSignInLogs`, …) with PascalCase columns.
//!
//! One borrowed struct reads all three: its fields carry every spelling as aliases, and the
//! diagnostic record's `properties` is the same struct one level down, preferred when present.
//! As in the CloudTrail decoder, a wrong-typed optional field reads as absent; only a
//! wrong-typed time dead-letters the record.

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
use nhid_model::time::parse_rfc3339;
use nhid_model::vocab::DeadLetterReason;

/// Whether the message is an Entra sign-in. The log category or table name (`…SignInLogs`,
/// `SigninLogs`) is the platform's own marker, but a diagnostic-settings change can list the
/// same names in a nested array, so the name must be the value of a top-level key. A Graph
/// `signIn` has no category: it is told by keys only sign-ins combine.
pub fn detect(bytes: &[u8]) -> bool {
    use std::sync::LazyLock;
    static CATEGORY_NAME: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"nLogs\""));
    static GRAPH: LazyLock<[memmem::Finder<'static>; 4]> = LazyLock::new(|| {
        [&b"\"createdDateTime\""[..], b"\"appId\"", b"\"status\"", b"\"ipAddress\""].map(memmem::Finder::new)
    });
    static GRAPH_ANY: LazyLock<[memmem::Finder<'static>; 3]> = LazyLock::new(|| {
        [&b"\"clientAppUsed\""[..], b"\"conditionalAccessStatus\"", b"\"signInEventTypes\""].map(memmem::Finder::new)
    });
    if CATEGORY_NAME.find(bytes).is_some() {
        let named = |key: &[u8]| top_level_string(bytes, key).and_then(category_kind).is_some();
        if named(b"category") || named(b"Type") {
            return true;
        }
    }
    GRAPH.iter().all(|f| f.find(bytes).is_some()) && GRAPH_ANY.iter().any(|f| f.find(bytes).is_some())
}

/// The raw string value of `key` in the outermost object, if it is a string without escapes.
/// A string-aware scan that tracks depth; it runs only on messages that passed the cheap test.
fn top_level_string<'a>(bytes: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i + 1;
                let end = string_end(bytes, start)?;
                i = end + 1;
                if depth == 1 && &bytes[start..end] == key {
                    let rest = &bytes[i..];
                    let rest = rest.trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
                    let value = rest.strip_prefix(b"\"")?;
                    let len = memchr::memchr2(b'"', b'\\', value)?;
                    return (value[len] == b'"').then(|| std::str::from_utf8(&value[..len]).ok()).flatten();
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the closing quote of a string whose content starts at `start`.
fn string_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The kind of sign-in a diagnostic category (`SignInLogs`) or Log Analytics table
/// (`SigninLogs`, `AADServicePrincipalSignInLogs`) stands for.
fn category_kind(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    let name = lower.strip_prefix("aad").unwrap_or(&lower);
    match name {
        "signinlogs" => Some(Kind::User { interactive: true }),
        "noninteractiveusersigninlogs" => Some(Kind::User { interactive: false }),
        "serviceprincipalsigninlogs" => Some(Kind::ServicePrincipal),
        "managedidentitysigninlogs" => Some(Kind::ManagedIdentity),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    User { interactive: bool },
    ServicePrincipal,
    ManagedIdentity,
}

impl Kind {
    fn action(self) -> &'static str {
        match self {
            Kind::User { interactive: true } => "entra:InteractiveUserSignIn",
            Kind::User { interactive: false } => "entra:NonInteractiveUserSignIn",
            Kind::ServicePrincipal => "entra:ServicePrincipalSignIn",
            Kind::ManagedIdentity => "entra:ManagedIdentitySignIn",
        }
    }
}

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    // serde would read an array positionally into the struct's fields.
    if text.trim_start().starts_with('[') {
        return emit(Err(DecodeError::new(DeadLetterReason::WrongType, "a sign-in is a json object, not an array")));
    }
    let record: Record<'a> = match sonic_rs::from_str(text) {
        Ok(r) => r,
        Err(e) => return emit(Err(json_error(&e))),
    };
    emit(to_event(record, text, ctx))
}

/// Parser errors may quote the input after a newline; only the first line is kept.
fn json_error(e: &sonic_rs::Error) -> DecodeError {
    let mut err = DecodeError::from_json(e);
    if let Some(cut) = err.detail.find('\n') {
        err.detail.truncate(cut);
    }
    err
}

type Str<'a> = Option<Cow<'a, str>>;

/// A sign-in in any of the three shapes; `properties` holds the Graph fields of a
/// diagnostic record. Unknown fields are skipped unread.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Record<'a> {
    #[serde(borrow, alias = "Id", deserialize_with = "lenient::string")]
    id: Str<'a>,
    #[serde(
        rename = "createdDateTime",
        alias = "CreatedDateTime",
        alias = "createddatetime",
        borrow,
        deserialize_with = "nhid_model::event::borrowed_opt"
    )]
    created: Str<'a>,
    /// When the diagnostic record was written; a fallback for `createdDateTime`.
    #[serde(borrow, deserialize_with = "nhid_model::event::borrowed_opt")]
    time: Str<'a>,
    #[serde(rename = "TimeGenerated", borrow, deserialize_with = "nhid_model::event::borrowed_opt")]
    time_generated: Str<'a>,
    /// Panther's normalized time; some samples carry only this.
    #[serde(borrow, deserialize_with = "lenient::string")]
    p_event_time: Str<'a>,
    /// The diagnostic category, or (`Type`) the Log Analytics table.
    #[serde(borrow, alias = "Type", deserialize_with = "lenient::string")]
    category: Str<'a>,
    #[serde(rename = "resultType", alias = "resulttype", alias = "ResultType", deserialize_with = "result_code")]
    result_type: Option<Code>,
    #[serde(deserialize_with = "lenient::map")]
    status: Option<Status>,
    #[serde(rename = "callerIpAddress", alias = "calleripaddress", borrow, deserialize_with = "lenient::string")]
    caller_ip: Str<'a>,
    #[serde(
        rename = "ipAddress",
        alias = "IPAddress",
        alias = "ipaddress",
        borrow,
        deserialize_with = "lenient::string"
    )]
    ip: Str<'a>,
    #[serde(rename = "userAgent", alias = "UserAgent", borrow, deserialize_with = "lenient::string")]
    user_agent: Str<'a>,
    #[serde(rename = "userPrincipalName", alias = "UserPrincipalName", borrow, deserialize_with = "lenient::string")]
    upn: Str<'a>,
    #[serde(rename = "userId", alias = "UserId", borrow, deserialize_with = "lenient::string")]
    user_id: Str<'a>,
    #[serde(rename = "appId", alias = "AppId", borrow, deserialize_with = "lenient::string")]
    app_id: Str<'a>,
    #[serde(rename = "appDisplayName", alias = "AppDisplayName", borrow, deserialize_with = "lenient::string")]
    app_name: Str<'a>,
    #[serde(rename = "servicePrincipalId", alias = "ServicePrincipalId", borrow, deserialize_with = "lenient::string")]
    sp_id: Str<'a>,
    #[serde(
        rename = "servicePrincipalName",
        alias = "ServicePrincipalName",
        borrow,
        deserialize_with = "lenient::string"
    )]
    sp_name: Str<'a>,
    #[serde(
        rename = "servicePrincipalCredentialKeyId",
        alias = "ServicePrincipalCredentialKeyId",
        borrow,
        deserialize_with = "lenient::string"
    )]
    key_id: Str<'a>,
    /// A certificate's thumbprint: a hash that names the certificate, not a secret.
    #[serde(
        rename = "servicePrincipalCredentialThumbprint",
        alias = "ServicePrincipalCredentialThumbprint",
        borrow,
        deserialize_with = "lenient::string"
    )]
    thumbprint: Str<'a>,
    #[serde(
        rename = "federatedCredentialId",
        alias = "FederatedCredentialId",
        borrow,
        deserialize_with = "lenient::string"
    )]
    federated_credential_id: Str<'a>,
    #[serde(
        rename = "clientCredentialType",
        alias = "ClientCredentialType",
        borrow,
        deserialize_with = "lenient::string"
    )]
    client_credential_type: Str<'a>,
    #[serde(rename = "signInEventTypes", alias = "SignInEventTypes", deserialize_with = "event_types")]
    event_types: Option<Kind>,
    /// Diagnostic records: `none`, `systemAssigned`, `userAssigned`.
    #[serde(
        rename = "managedIdentityType",
        alias = "ManagedIdentityType",
        borrow,
        deserialize_with = "lenient::string"
    )]
    managed_identity_type: Str<'a>,
    /// Graph beta: `{msiType, associatedResourceId, …}`.
    #[serde(rename = "managedServiceIdentity", alias = "managedIdentity", borrow, deserialize_with = "lenient::map")]
    managed_service_identity: Option<ManagedServiceIdentity<'a>>,
    /// Graph beta, Entra Agent ID: whether the identity signing in is an AI agent.
    #[serde(borrow, deserialize_with = "lenient::map")]
    agent: Option<Agent<'a>>,
    #[serde(rename = "isInteractive", alias = "IsInteractive", deserialize_with = "lenient::flag")]
    is_interactive: bool,
    #[serde(rename = "incomingTokenType", alias = "IncomingTokenType", borrow, deserialize_with = "lenient::string")]
    incoming_token_type: Str<'a>,
    #[serde(
        rename = "authenticationProtocol",
        alias = "AuthenticationProtocol",
        borrow,
        deserialize_with = "lenient::string"
    )]
    authentication_protocol: Str<'a>,
    #[serde(rename = "sessionId", alias = "SessionId", borrow, deserialize_with = "lenient::string")]
    session_id: Str<'a>,
    #[serde(rename = "tenantId", alias = "tenantid", alias = "TenantId", borrow, deserialize_with = "lenient::string")]
    tenant_id: Str<'a>,
    #[serde(rename = "homeTenantId", alias = "HomeTenantId", borrow, deserialize_with = "lenient::string")]
    home_tenant_id: Str<'a>,
    #[serde(
        rename = "resourceDisplayName",
        alias = "ResourceDisplayName",
        borrow,
        deserialize_with = "lenient::string"
    )]
    resource_name: Str<'a>,
    /// The resource application's id in Graph; Log Analytics names it `ResourceIdentity`
    /// (its `ResourceId` column is the tenant's ARM path, like a diagnostic record's `resourceId`).
    #[serde(rename = "resourceId", alias = "ResourceIdentity", borrow, deserialize_with = "lenient::string")]
    resource_id: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    location: Option<Location<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    properties: Option<Box<Record<'a>>>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(rename = "errorCode", default, deserialize_with = "result_code")]
    error_code: Option<Code>,
}

#[derive(Deserialize)]
struct ManagedServiceIdentity<'a> {
    #[serde(rename = "msiType", borrow, default, deserialize_with = "lenient::string")]
    msi_type: Str<'a>,
}

#[derive(Deserialize)]
struct Agent<'a> {
    #[serde(rename = "agentType", borrow, default, deserialize_with = "lenient::string")]
    agent_type: Str<'a>,
}

#[derive(Deserialize)]
struct Location<'a> {
    #[serde(rename = "countryOrRegion", borrow, default, deserialize_with = "lenient::string")]
    country: Str<'a>,
}

/// A sign-in result: `0` succeeded, any other Entra error code did not. Diagnostic records
/// write it as a number, a numeric string, or (hand-made samples) `Success` / `Failure`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Code {
    Number(i64),
    Failed,
}

fn result_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Code>, D::Error> {
    struct CodeVisitor;
    impl<'de> serde::de::Visitor<'de> for CodeVisitor {
        type Value = Option<Code>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an error code")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Code::Number(v)))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok().map(Code::Number))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok((v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15).then_some(Code::Number(v as i64)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            Ok(match v.parse::<i64>() {
                Ok(n) => Some(Code::Number(n)),
                Err(_) if v.eq_ignore_ascii_case("success") => Some(Code::Number(0)),
                Err(_) if v.eq_ignore_ascii_case("failure") => Some(Code::Failed),
                Err(_) => None,
            })
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
    d.deserialize_any(CodeVisitor)
}

/// `signInEventTypes`: a list; a machine kind in it wins over a user kind.
fn event_types<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Kind>, D::Error> {
    struct TypesVisitor;
    impl<'de> serde::de::Visitor<'de> for TypesVisitor {
        type Value = Option<Kind>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of sign-in event types")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut kind: Option<Kind> = None;
            while let Some(t) = seq.next_element::<Element>()? {
                let this = match t.0.as_deref() {
                    Some("managedIdentity") => Kind::ManagedIdentity,
                    Some("servicePrincipal") => Kind::ServicePrincipal,
                    Some("interactiveUser") => Kind::User { interactive: true },
                    Some("nonInteractiveUser") => Kind::User { interactive: false },
                    _ => continue,
                };
                let rank = |k: Kind| match k {
                    Kind::ManagedIdentity => 3,
                    Kind::ServicePrincipal => 2,
                    Kind::User { interactive: true } => 1,
                    Kind::User { interactive: false } => 0,
                };
                if kind.is_none_or(|k| rank(this) > rank(k)) {
                    kind = Some(this);
                }
            }
            Ok(kind)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            lenient::skip_map(map).map(|_| None)
        }
        lenient::absent_scalars!();
    }
    /// One element; anything but a string is skipped.
    struct Element(Option<String>);
    impl<'de> Deserialize<'de> for Element {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            lenient::string(d).map(|s| Element(s.map(Cow::into_owned)))
        }
    }
    d.deserialize_any(TypesVisitor)
}

/// Error codes of sign-ins refused by policy rather than failed credentials: conditional
/// access (53000–53004, 530032), consent (65001, 65004), role or assignment required
/// (50105), disabled user or application (50057, 7000112), device state (50131).
fn is_denial(code: i64) -> bool {
    matches!(code, 50057 | 50105 | 50131 | 53000..=53004 | 530032 | 65001 | 65004 | 7000112)
}

fn to_event<'a>(mut top: Record<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let mut inner = top.properties.take().map(|b| *b).unwrap_or_default();
    // The sign-in's own fields, from `properties` when the record has them, else from the top level.
    macro_rules! take {
        ($field:ident) => {
            nonempty(inner.$field.take()).or_else(|| nonempty(top.$field.take()))
        };
    }

    let time = match [take!(created), nonempty(top.time.take()), nonempty(top.time_generated.take())]
        .into_iter()
        .flatten()
        .next()
    {
        Some(t) => parse_rfc3339(&t)
            .ok_or_else(|| DecodeError::new(DeadLetterReason::InvalidTime, "sign-in time is not a timestamp"))?,
        None => match take!(p_event_time).and_then(|t| parse_rfc3339(&t)).or(ctx.fallback_time) {
            Some(t) => t,
            None => return Err(DecodeError::new(DeadLetterReason::MissingTime, "no createddatetime or time")),
        },
    };

    let user_id = take!(user_id);
    let upn = take!(upn);
    let sp_id = take!(sp_id);
    let app_id = take!(app_id);
    let agentic = inner
        .agent
        .take()
        .or_else(|| top.agent.take())
        .and_then(|a| a.agent_type)
        .is_some_and(|t| !t.is_empty() && t != "notAgentic");
    let msi_type = take!(managed_identity_type)
        .or_else(|| inner.managed_service_identity.take().and_then(|m| m.msi_type))
        .or_else(|| top.managed_service_identity.take().and_then(|m| m.msi_type))
        .filter(|t| !t.is_empty() && t != "none");
    let credential_type = take!(client_credential_type);

    // The platform's own statement of the kind wins: the log category, then the event types;
    // only a record with neither is classified by which identity fields it has.
    let kind = nonempty(top.category.take())
        .and_then(|c| category_kind(&c))
        .or(inner.event_types.or(top.event_types))
        .or_else(|| {
            if msi_type.is_some() || credential_type.as_deref() == Some("managedIdentity") {
                Some(Kind::ManagedIdentity)
            } else if user_id.is_some() || upn.is_some() {
                Some(Kind::User { interactive: inner.is_interactive || top.is_interactive })
            } else if sp_id.is_some() || app_id.is_some() {
                Some(Kind::ServicePrincipal)
            } else {
                None
            }
        })
        .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "no user, service principal or app id"))?;

    let (principal, credential, actor) = match kind {
        Kind::User { interactive } => {
            // Object id first: a user principal name can be renamed, the id cannot.
            let id = user_id
                .clone()
                .or_else(|| upn.clone())
                .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "user sign-in without a user"))?;
            let token = take!(incoming_token_type);
            let kind = match token.as_deref() {
                Some("refreshToken" | "primaryRefreshToken") => CredentialKind::RefreshToken,
                _ if take!(authentication_protocol).as_deref() == Some("ropc") => CredentialKind::Password,
                // Non-interactive sign-ins are a client redeeming the user's refresh token.
                Some("none") | None if !interactive => CredentialKind::RefreshToken,
                _ => CredentialKind::Unknown,
            };
            // An Entra Agent ID user is an AI agent with a user account, not a person.
            let principal_kind = if agentic { PrincipalType::AiAgent } else { PrincipalType::Human };
            let agent_id = agentic.then(|| app_id.clone()).flatten();
            (
                Principal { id, kind: principal_kind, name: upn, owner: None, tenant: None },
                Credential { id: None, kind, issued_at: None, expires_at: None },
                Actor { delegating_user: None, agent_id, session_id: take!(session_id) },
            )
        }
        Kind::ServicePrincipal | Kind::ManagedIdentity => {
            // The service principal's object id names the identity in this tenant; the app id
            // is shared by every tenant a multi-tenant application is installed in.
            let id = sp_id.clone().or_else(|| app_id.clone()).ok_or_else(|| {
                DecodeError::new(DeadLetterReason::MissingPrincipal, "service principal sign-in without an id")
            })?;
            let key_id = take!(key_id);
            let thumbprint = take!(thumbprint);
            let federated = take!(federated_credential_id);
            let credential_kind = match (kind, credential_type.as_deref()) {
                (Kind::ManagedIdentity, _) => CredentialKind::ShortLivedToken,
                (_, Some("clientSecret")) => CredentialKind::StaticKey,
                (_, Some("certificate" | "clientAssertion")) => CredentialKind::Certificate,
                (_, Some("federatedIdentityCredential" | "managedIdentity")) => CredentialKind::ShortLivedToken,
                _ if thumbprint.is_some() => CredentialKind::Certificate,
                _ if federated.is_some() => CredentialKind::ShortLivedToken,
                _ => CredentialKind::Unknown,
            };
            let principal_kind = match kind {
                _ if agentic => PrincipalType::AiAgent,
                Kind::ManagedIdentity => PrincipalType::Workload,
                _ => PrincipalType::ServiceAccount,
            };
            // An agent acting for a signed-in user names that user.
            let delegating_user = agentic.then(|| upn.clone().or_else(|| user_id.clone())).flatten();
            let agent_id = agentic.then(|| app_id.clone().or_else(|| sp_id.clone())).flatten();
            (
                Principal {
                    id,
                    kind: principal_kind,
                    name: take!(sp_name).or_else(|| take!(app_name)),
                    owner: None,
                    tenant: None,
                },
                Credential {
                    id: key_id.or(federated).or(thumbprint),
                    kind: credential_kind,
                    issued_at: None,
                    expires_at: None,
                },
                Actor { delegating_user, agent_id, session_id: take!(session_id) },
            )
        }
    };
    let tenant = take!(home_tenant_id).or_else(|| take!(tenant_id));
    let principal = Principal { tenant, ..principal };

    let code = inner
        .status
        .take()
        .and_then(|s| s.error_code)
        .or_else(|| top.status.take().and_then(|s| s.error_code))
        .or(inner.result_type)
        .or(top.result_type);
    let outcome = match code {
        None | Some(Code::Number(0)) => Outcome::Success,
        Some(Code::Number(n)) if is_denial(n) => Outcome::Denied,
        Some(_) => Outcome::Failure,
    };

    let ip = [take!(ip), nonempty(top.caller_ip.take())].into_iter().flatten().find(|ip| ip.parse::<IpAddr>().is_ok());
    let country = nonempty(inner.location.take().and_then(|l| l.country))
        .or_else(|| nonempty(top.location.take().and_then(|l| l.country)));
    // The diagnostic record's own `resourceId` is the tenant's ARM path, not the resource signed in to.
    let resource = take!(resource_id).filter(|r| !r.starts_with('/'));
    let id = take!(id).unwrap_or_else(|| Cow::Owned(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(raw.as_bytes()))));

    Ok(AuditEvent {
        id,
        time,
        principal,
        credential,
        actor,
        action: Cow::Borrowed(kind.action()),
        service: take!(resource_name).unwrap_or(Cow::Borrowed("entra")),
        resource,
        outcome,
        source: Source { ip, user_agent: take!(user_agent), asn: None, country },
        bytes_out: None,
        source_format: SourceFormat::Entra,
    })
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

    struct Case {
        name: &'static str,
        text: String,
        kind: PrincipalType,
        principal: &'static str,
        credential: CredentialKind,
        credential_id: Option<&'static str>,
        delegating_user: Option<&'static str>,
        agent_id: Option<&'static str>,
        session_id: Option<&'static str>,
        outcome: Outcome,
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
        let base = Case {
            name: "",
            text: String::new(),
            kind: PrincipalType::ServiceAccount,
            principal: SP,
            credential: CredentialKind::Unknown,
            credential_id: None,
            delegating_user: None,
            agent_id: None,
            session_id: None,
            outcome: Outcome::Success,
        };
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
        let cases = cases();
        assert!(cases.len() >= 15);
        for c in &cases {
            assert!(detect(c.text.as_bytes()), "{}: detected", c.name);
            let e = one(&c.text).unwrap_or_else(|err| panic!("{}: {err}", c.name));
            assert_eq!(e.principal.kind, c.kind, "{}", c.name);
            assert_eq!(e.principal.id, c.principal, "{}", c.name);
            assert_eq!(e.credential.kind, c.credential, "{}", c.name);
            assert_eq!(e.credential.id.as_deref(), c.credential_id, "{}", c.name);
            assert_eq!(e.actor.delegating_user.as_deref(), c.delegating_user, "{}", c.name);
            assert_eq!(e.actor.agent_id.as_deref(), c.agent_id, "{}", c.name);
            assert_eq!(e.actor.session_id.as_deref(), c.session_id, "{}", c.name);
            assert_eq!(e.outcome, c.outcome, "{}", c.name);
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
        let ids: Vec<_> =
            [0, 13, 19].iter().map(|&i| one(&cases()[i].text).unwrap().principal.id.into_owned()).collect();
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
        assert_eq!(
            (e.principal.kind, e.outcome, e.credential.id),
            (PrincipalType::ServiceAccount, Outcome::Success, None)
        );
    }

    #[test]
    fn detection_needs_the_category_at_the_top_level() {
        // A diagnostic-settings change lists the categories it exports, nested.
        let settings = r#"{"category":"Administrative","operationName":"microsoft.aadiam/diagnosticSettings/write","properties":{"logs":[{"category":"SignInLogs","enabled":true},{"category":"ServicePrincipalSignInLogs","enabled":true}]}}"#;
        assert!(!detect(settings.as_bytes()));
        let audit = r#"{"category":"AuditLogs","operationName":"Add service principal","properties":{"note":"\"category\":\"SignInLogs\""}}"#;
        assert!(!detect(audit.as_bytes()));
        assert!(detect(br#"{ "category" : "SigninLogs", "properties": {}}"#));
        let canonical = r#"{"id":"e1","time":"2024-05-01T12:00:00Z","principal":{"id":"sp-1","type":"service_account"},"credential":{"id":"k","kind":"static_key"},"action":"entra:ServicePrincipalSignIn","service":"Microsoft Graph","outcome":"success","source":{"ip":"203.0.113.5"},"source_format":"entra"}"#;
        assert!(!detect(canonical.as_bytes()));
        assert_eq!(crate::detect(cases()[0].text.as_bytes()), Some(Format::Entra));
        assert_eq!(crate::detect(cases()[14].text.as_bytes()), Some(Format::Entra));
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
                "status", "properties", "signInEventTypes", "agent", "servicePrincipalId", "userId", "ipAddress"]),
            value in r#"(null|true|-?[0-9]{1,20}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"errorCode":"1"\})"#,
        ) {
            let text = format!(r#"{{"{key}":{value},"appId":"x","category":"SignInLogs","properties":{{"{key}":{value},"userId":"u"}}}}"#);
            let ctx = DecodeContext { fallback_time: Some(0), ..Default::default() };
            let _ = decode_all(&text, &ctx);
            crate::decode(text.as_bytes(), Format::Entra, &ctx, &mut |_| {});
        }
    }
}
