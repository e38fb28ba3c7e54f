//! Entra ID (Azure AD) logs: sign-ins here, directory audits (who changed an application,
//! a credential, a permission) in `audit`. Sign-ins come in three shapes:
//! - a Microsoft Graph `signIn` object (`GET /auditLogs/signIns`), camelCase at top level;
//! - a diagnostic-settings record (Event Hubs, storage): `{time, category: "SignInLogs" | …,
//!   resultType, callerIpAddress, properties: {…the Graph fields…}}`;
//! - a Log Analytics row (`AADServicePrincipalSignInLogs`, …) with PascalCase columns.
//!
//! One borrowed struct reads all three: its fields carry every spelling as aliases, and the
//! diagnostic record's `properties` is the same struct one level down, preferred when present.
//! As in the CloudTrail decoder, a wrong-typed optional field reads as absent; only a
//! wrong-typed time dead-letters the record.
//!
//! `record` holds the fields read; this module decides what kind of sign-in they describe
//! and who signed in. A message is an audit when `audit::detect` says so, else a sign-in.

mod audit;
mod record;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::IpAddr;

use memchr::memmem;

use crate::lenient::nonempty;
use crate::record::{content_id, event_time, parse_object, top_level_string, top_level_value};
use crate::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, Source, SourceFormat,
};
use nhid_model::vocab::DeadLetterReason;
use record::{Code, Record, Str};

/// Whether the message is an Entra directory audit (`audit::detect`) or sign-in.
pub fn detect(bytes: &[u8]) -> bool {
    audit::detect(bytes) || is_sign_in(bytes)
}

/// The log category or table name (`…SignInLogs`, `SigninLogs`) is the platform's own
/// marker, but a diagnostic-settings change can list the same names in a nested array, so
/// the name must be the value of a top-level key. A Graph `signIn` has no category: it is
/// told by keys only sign-ins combine, its time at the top (keys nested in another format's
/// record, a CloudTrail request's parameters, are its caller's to choose).
fn is_sign_in(bytes: &[u8]) -> bool {
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
    GRAPH.iter().all(|f| f.find(bytes).is_some())
        && GRAPH_ANY.iter().any(|f| f.find(bytes).is_some())
        && top_level_value(bytes, b"createdDateTime").is_some()
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
    if audit::detect(text.as_bytes()) {
        return emit(audit::decode(text, ctx));
    }
    emit(parse_object(text, "a sign-in is a json object, not an array").and_then(|record| to_event(record, text, ctx)))
}

/// Error codes of sign-ins refused by policy rather than failed credentials: conditional
/// access (53000–53004, 530032), consent (65001, 65004), role or assignment required
/// (50105), disabled user or application (50057, 7000112), device state (50131).
fn is_denial(code: i64) -> bool {
    matches!(code, 50057 | 50105 | 50131 | 53000..=53004 | 530032 | 65001 | 65004 | 7000112)
}

fn to_event<'a>(mut top: Record<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let inner = top.properties.take().map(|b| *b).unwrap_or_default();
    let mut sign_in = SignIn { inner, top };
    let time = sign_in.time(ctx)?;
    let ids = sign_in.identity_fields();
    let kind = sign_in.kind(&ids)?;
    let (principal, credential, actor) = match kind {
        Kind::User { interactive } => sign_in.user(ids, interactive)?,
        Kind::ServicePrincipal | Kind::ManagedIdentity => sign_in.service_principal(ids, kind)?,
    };
    let tenant = sign_in.text(|r| &mut r.home_tenant_id).or_else(|| sign_in.text(|r| &mut r.tenant_id));
    let principal = Principal { tenant, ..principal };
    let outcome = sign_in.outcome();
    let ip = [sign_in.text(|r| &mut r.ip), nonempty(sign_in.top.caller_ip.take())]
        .into_iter()
        .flatten()
        .find(|ip| ip.parse::<IpAddr>().is_ok());
    let country = sign_in.first(|r| nonempty(r.location.take().and_then(|l| l.country)));
    // The diagnostic record's own `resourceId` is the tenant's ARM path, not the resource signed in to.
    let resource = sign_in.text(|r| &mut r.resource_id).filter(|r| !r.starts_with('/'));

    Ok(AuditEvent {
        id: sign_in.text(|r| &mut r.id).unwrap_or_else(|| content_id(raw)),
        time,
        principal,
        credential,
        actor,
        action: Cow::Borrowed(kind.action()),
        service: sign_in.text(|r| &mut r.resource_name).unwrap_or(Cow::Borrowed("entra")),
        resource,
        outcome,
        source: Source { ip, user_agent: sign_in.text(|r| &mut r.user_agent), asn: None, country },
        bytes_out: None,
        source_format: SourceFormat::Entra,
        rules: Vec::new(),
        raw,
        raw_fields: Default::default(),
    })
}

/// A sign-in's fields: those of a diagnostic record's `properties` (`inner`) when it has
/// them, else the record's own (`top`), which hold the whole sign-in in the other shapes.
/// Each field is taken once, as it moves into the event.
struct SignIn<'a> {
    inner: Record<'a>,
    top: Record<'a>,
}

/// The identity fields of a sign-in, which decide its kind when the log does not say.
struct IdentityFields<'a> {
    user_id: Str<'a>,
    upn: Str<'a>,
    sp_id: Str<'a>,
    app_id: Str<'a>,
    /// Entra Agent ID: the identity signing in is an AI agent.
    agentic: bool,
    msi_type: Str<'a>,
    credential_type: Str<'a>,
}

impl<'a> SignIn<'a> {
    /// The first of `inner` and `top` that `read` finds a value in.
    fn first<T>(&mut self, mut read: impl FnMut(&mut Record<'a>) -> Option<T>) -> Option<T> {
        read(&mut self.inner).or_else(|| read(&mut self.top))
    }

    /// A string field; an empty one is absent.
    fn text(&mut self, field: for<'r> fn(&'r mut Record<'a>) -> &'r mut Str<'a>) -> Str<'a> {
        self.first(|r| nonempty(field(r).take()))
    }

    fn time(&mut self, ctx: &DecodeContext) -> Result<nhid_model::time::Millis, DecodeError> {
        let own =
            [self.text(|r| &mut r.created), nonempty(self.top.time.take()), nonempty(self.top.time_generated.take())]
                .into_iter()
                .flatten()
                .next();
        let panther = self.text(|r| &mut r.p_event_time);
        event_time(own, "sign-in time is not a timestamp", [panther], ctx, "no createddatetime or time")
    }

    fn identity_fields(&mut self) -> IdentityFields<'a> {
        IdentityFields {
            user_id: self.text(|r| &mut r.user_id),
            upn: self.text(|r| &mut r.upn),
            sp_id: self.text(|r| &mut r.sp_id),
            app_id: self.text(|r| &mut r.app_id),
            agentic: self
                .first(|r| r.agent.take())
                .and_then(|a| a.agent_type)
                .is_some_and(|t| !t.is_empty() && t != "notAgentic"),
            msi_type: self
                .text(|r| &mut r.managed_identity_type)
                .or_else(|| self.first(|r| r.managed_service_identity.take().and_then(|m| m.msi_type)))
                .filter(|t| !t.is_empty() && t != "none"),
            credential_type: self.text(|r| &mut r.client_credential_type),
        }
    }

    /// The platform's own statement of the kind wins: the log category, then the event types;
    /// only a record with neither is classified by which identity fields it has.
    fn kind(&mut self, ids: &IdentityFields<'a>) -> Result<Kind, DecodeError> {
        let interactive = self.inner.is_interactive || self.top.is_interactive;
        nonempty(self.top.category.take())
            .and_then(|c| category_kind(&c))
            .or(self.first(|r| r.event_types.take()))
            .or_else(|| {
                if ids.msi_type.is_some() || ids.credential_type.as_deref() == Some("managedIdentity") {
                    Some(Kind::ManagedIdentity)
                } else if ids.user_id.is_some() || ids.upn.is_some() {
                    Some(Kind::User { interactive })
                } else if ids.sp_id.is_some() || ids.app_id.is_some() {
                    Some(Kind::ServicePrincipal)
                } else {
                    None
                }
            })
            .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "no user, service principal or app id"))
    }

    fn user(
        &mut self,
        ids: IdentityFields<'a>,
        interactive: bool,
    ) -> Result<(Principal<'a>, Credential<'a>, Actor<'a>), DecodeError> {
        // Object id first: a user principal name can be renamed, the id cannot.
        let id = ids
            .user_id
            .or_else(|| ids.upn.clone())
            .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "user sign-in without a user"))?;
        let token = self.text(|r| &mut r.incoming_token_type);
        let kind = match token.as_deref() {
            Some("refreshToken" | "primaryRefreshToken") => CredentialKind::RefreshToken,
            _ if self.text(|r| &mut r.authentication_protocol).as_deref() == Some("ropc") => CredentialKind::Password,
            // Non-interactive sign-ins are a client redeeming the user's refresh token.
            Some("none") | None if !interactive => CredentialKind::RefreshToken,
            _ => CredentialKind::Unknown,
        };
        // An Entra Agent ID user is an AI agent with a user account, not a person.
        let principal_kind = if ids.agentic { PrincipalType::AiAgent } else { PrincipalType::Human };
        let agent_id = if ids.agentic { ids.app_id } else { None };
        Ok((
            Principal { id, kind: principal_kind, name: ids.upn, owner: None, tenant: None, inferred: false },
            Credential { id: None, kind, issued_at: None, expires_at: None },
            Actor { delegating_user: None, agent_id, session_id: self.text(|r| &mut r.session_id), impersonator: None },
        ))
    }

    fn service_principal(
        &mut self,
        ids: IdentityFields<'a>,
        kind: Kind,
    ) -> Result<(Principal<'a>, Credential<'a>, Actor<'a>), DecodeError> {
        // The service principal's object id names the identity in this tenant; the app id
        // is shared by every tenant a multi-tenant application is installed in.
        let id = ids.sp_id.clone().or_else(|| ids.app_id.clone()).ok_or_else(|| {
            DecodeError::new(DeadLetterReason::MissingPrincipal, "service principal sign-in without an id")
        })?;
        let key_id = self.text(|r| &mut r.key_id);
        let thumbprint = self.text(|r| &mut r.thumbprint);
        let federated = self.text(|r| &mut r.federated_credential_id);
        let credential_kind = match (kind, ids.credential_type.as_deref()) {
            (Kind::ManagedIdentity, _) => CredentialKind::ShortLivedToken,
            (_, Some("clientSecret")) => CredentialKind::StaticKey,
            (_, Some("certificate" | "clientAssertion")) => CredentialKind::Certificate,
            (_, Some("federatedIdentityCredential" | "managedIdentity")) => CredentialKind::ShortLivedToken,
            _ if thumbprint.is_some() => CredentialKind::Certificate,
            _ if federated.is_some() => CredentialKind::ShortLivedToken,
            _ => CredentialKind::Unknown,
        };
        let principal_kind = match kind {
            _ if ids.agentic => PrincipalType::AiAgent,
            Kind::ManagedIdentity => PrincipalType::Workload,
            _ => PrincipalType::ServiceAccount,
        };
        // An agent acting for a signed-in user names that user.
        let (delegating_user, agent_id) = match ids.agentic {
            true => (ids.upn.or(ids.user_id), ids.app_id.or(ids.sp_id)),
            false => (None, None),
        };
        let name = self.text(|r| &mut r.sp_name).or_else(|| self.text(|r| &mut r.app_name));
        Ok((
            Principal { id, kind: principal_kind, name, owner: None, tenant: None, inferred: false },
            Credential {
                id: key_id.or(federated).or(thumbprint),
                kind: credential_kind,
                issued_at: None,
                expires_at: None,
            },
            Actor { delegating_user, agent_id, session_id: self.text(|r| &mut r.session_id), impersonator: None },
        ))
    }

    fn outcome(&mut self) -> Outcome {
        let code = self.first(|r| r.status.take().and_then(|s| s.error_code)).or(self.first(|r| r.result_type.take()));
        match code {
            None | Some(Code::Number(0)) => Outcome::Success,
            Some(Code::Number(n)) if is_denial(n) => Outcome::Denied,
            Some(_) => Outcome::Failure,
        }
    }
}
