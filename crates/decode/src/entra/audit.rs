//! Entra ID directory audits: who changed the directory (added a credential to an
//! application, granted a permission, created a service principal, changed a policy). The
//! three export shapes of sign-ins apply here too:
//! - a Microsoft Graph `directoryAudit` (`GET /auditLogs/directoryAudits`), camelCase;
//! - a diagnostic-settings record (`category: "AuditLogs"`) with the Graph fields in `properties`;
//! - a Log Analytics `AuditLogs` row, PascalCase (`InitiatedBy`, `TargetResources`, ...).
//!
//! The actor is `initiatedBy`: an application (its service principal) or a user, never
//! both. The audit names no credential; what it names is the change, and the content rules
//! read it there (`targetResources[].modifiedProperties`).

use std::borrow::Cow;
use std::net::IpAddr;

use memchr::memmem;
use serde::Deserialize;

use crate::lenient::{self, nonempty};
use crate::record::{content_id, event_time, parse_object, top_level_string, top_level_value};
use crate::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, Source, SourceFormat,
};
use nhid_model::vocab::DeadLetterReason;

type Str<'a> = Option<Cow<'a, str>>;

/// Whether a message is a directory audit: it has the key only audits have, who initiated
/// it, and is an audit at its top level: the category or Log Analytics table `AuditLogs`, an
/// Entra diagnostic record (`resourceId` of `Microsoft.aadiam`, how Panther's samples filed
/// under their Graph category, `Policy` or `ApplicationManagement`, are told), or the
/// activity's name (Graph, Log Analytics). The category alone is not the marker: Intune's
/// diagnostic records use it too (with an `Actor`, not `initiatedBy`). Nor are keys nested in
/// another format's record, which its caller may choose (a CloudTrail request's parameters).
pub(super) fn detect(bytes: &[u8]) -> bool {
    use std::sync::LazyLock;
    static INITIATED: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"nitiatedBy\""));
    // `initiatedBy` or `InitiatedBy`, as a key (followed by its colon).
    let initiated = INITIATED.find_iter(bytes).any(|at| {
        at > 0 && matches!(bytes[at - 1], b'i' | b'I') && bytes[at + 11..].trim_ascii_start().starts_with(b":")
    });
    if !initiated {
        return false;
    }
    let audit_logs = |key: &[u8]| top_level_string(bytes, key).is_some_and(|c| c.eq_ignore_ascii_case("AuditLogs"));
    let aadiam = || {
        top_level_string(bytes, b"resourceId")
            .is_some_and(|r| r.to_ascii_lowercase().ends_with("/providers/microsoft.aadiam"))
    };
    let activity = |key: &[u8]| top_level_value(bytes, key).is_some();
    audit_logs(b"category")
        || audit_logs(b"Type")
        || aadiam()
        || activity(b"activityDisplayName")
        || activity(b"ActivityDisplayName")
}

pub(super) fn decode<'a>(text: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let mut top: Record<'a> = parse_object(text, "a directory audit is a json object, not an array")?;
    let inner = top.properties.take().map(|b| *b).unwrap_or_default();
    let mut audit = Audit { inner, top };
    let own = audit.text(|r| &mut r.activity_time).or(audit.text(|r| &mut r.time));
    let own = own.or(audit.text(|r| &mut r.time_generated));
    let panther = audit.text(|r| &mut r.p_event_time);
    let time = event_time(own, "activityDateTime is not a timestamp", [panther], ctx, "no activityDateTime or time")?;
    let initiated_by = audit.inner.initiated_by.take().or(audit.top.initiated_by.take()).unwrap_or_default();
    let (principal, user_ip) = match (initiated_by.app, initiated_by.user) {
        (Some(app), _) if app.sp_id.is_some() || app.app_id.is_some() => {
            // The service principal's object id names the identity in this tenant, as in its sign-ins.
            let id = app.sp_id.or(app.app_id).expect("checked");
            let name = app.sp_name.or(app.name);
            (
                Principal { id, kind: PrincipalType::ServiceAccount, name, owner: None, tenant: None, inferred: false },
                None,
            )
        }
        (_, Some(user)) if user.id.is_some() || user.upn.is_some() => {
            // Object id first: a user principal name can be renamed, the id cannot.
            let id = user.id.or(user.upn.clone()).expect("checked");
            let name = user.upn;
            (Principal { id, kind: PrincipalType::Human, name, owner: None, tenant: None, inferred: false }, user.ip)
        }
        _ => return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "initiatedBy names no app or user")),
    };
    let tenant = audit.text(|r| &mut r.tenant_id);
    let caller_ip = audit.text(|r| &mut r.caller_ip);
    let ip = [user_ip, caller_ip].into_iter().flatten().find(|ip| ip.parse::<IpAddr>().is_ok());
    let activity = audit.text(|r| &mut r.activity).or(audit.text(|r| &mut r.operation_name));
    let outcome = match audit.text(|r| &mut r.result).map(|r| r.to_ascii_lowercase()).as_deref() {
        None | Some("success") => Outcome::Success,
        Some(_) => Outcome::Failure,
    };
    Ok(AuditEvent {
        id: audit.text(|r| &mut r.id).unwrap_or_else(|| content_id(text)),
        time,
        principal: Principal { tenant, ..principal },
        credential: Credential { id: None, kind: CredentialKind::Unknown, issued_at: None, expires_at: None },
        actor: Actor::default(),
        action: Cow::Owned(format!("entra:{}", activity.as_deref().unwrap_or("unknown"))),
        service: audit.text(|r| &mut r.logged_by_service).unwrap_or(Cow::Borrowed("entra")),
        resource: audit.text(|r| &mut r.target),
        outcome,
        source: Source { ip, user_agent: audit.text(|r| &mut r.user_agent), asn: None, country: None },
        bytes_out: None,
        source_format: SourceFormat::Entra,
        rules: Vec::new(),
        raw: text,
        raw_fields: Default::default(),
    })
}

/// An audit's fields: those of a diagnostic record's `properties` (`inner`) when it has
/// them, else the record's own (`top`), which hold the whole audit in the other shapes.
struct Audit<'a> {
    inner: Record<'a>,
    top: Record<'a>,
}

impl<'a> Audit<'a> {
    /// A string field; an empty one is absent.
    fn text(&mut self, field: for<'r> fn(&'r mut Record<'a>) -> &'r mut Str<'a>) -> Str<'a> {
        nonempty(field(&mut self.inner).take()).or_else(|| nonempty(field(&mut self.top).take()))
    }
}

/// A directory audit in any of the three shapes. Unknown fields are skipped unread.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Record<'a> {
    #[serde(borrow, alias = "Id", deserialize_with = "lenient::string")]
    id: Str<'a>,
    #[serde(rename = "activityDateTime", alias = "ActivityDateTime", borrow, deserialize_with = "lenient::string")]
    activity_time: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    time: Str<'a>,
    #[serde(rename = "TimeGenerated", borrow, deserialize_with = "lenient::string")]
    time_generated: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    p_event_time: Str<'a>,
    #[serde(
        rename = "activityDisplayName",
        alias = "ActivityDisplayName",
        borrow,
        deserialize_with = "lenient::string"
    )]
    activity: Str<'a>,
    #[serde(rename = "operationName", alias = "OperationName", borrow, deserialize_with = "lenient::string")]
    operation_name: Str<'a>,
    #[serde(rename = "loggedByService", alias = "LoggedByService", borrow, deserialize_with = "lenient::string")]
    logged_by_service: Str<'a>,
    #[serde(alias = "Result", borrow, deserialize_with = "lenient::string")]
    result: Str<'a>,
    #[serde(rename = "callerIpAddress", alias = "CallerIpAddress", borrow, deserialize_with = "lenient::string")]
    caller_ip: Str<'a>,
    #[serde(
        rename = "tenantId",
        alias = "TenantId",
        alias = "AADTenantId",
        borrow,
        deserialize_with = "lenient::string"
    )]
    tenant_id: Str<'a>,
    #[serde(rename = "initiatedBy", alias = "InitiatedBy", borrow, deserialize_with = "lenient::map")]
    initiated_by: Option<InitiatedBy<'a>>,
    /// The first target's id, else its name.
    #[serde(rename = "targetResources", alias = "TargetResources", borrow, deserialize_with = "first_target")]
    target: Str<'a>,
    /// `additionalDetails[]`: the `User-Agent` of the call, when the service records it.
    #[serde(rename = "additionalDetails", alias = "AdditionalDetails", borrow, deserialize_with = "user_agent")]
    user_agent: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    properties: Option<Box<Record<'a>>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct InitiatedBy<'a> {
    #[serde(borrow, deserialize_with = "lenient::map")]
    app: Option<App<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    user: Option<User<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct App<'a> {
    #[serde(rename = "servicePrincipalId", borrow, deserialize_with = "lenient::nonempty_string")]
    sp_id: Str<'a>,
    #[serde(rename = "appId", borrow, deserialize_with = "lenient::nonempty_string")]
    app_id: Str<'a>,
    #[serde(rename = "servicePrincipalName", borrow, deserialize_with = "lenient::nonempty_string")]
    sp_name: Str<'a>,
    #[serde(rename = "displayName", borrow, deserialize_with = "lenient::nonempty_string")]
    name: Str<'a>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct User<'a> {
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    id: Str<'a>,
    #[serde(rename = "userPrincipalName", borrow, deserialize_with = "lenient::nonempty_string")]
    upn: Str<'a>,
    #[serde(rename = "ipAddress", borrow, deserialize_with = "lenient::nonempty_string")]
    ip: Str<'a>,
}

fn first_target<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Str<'de>, D::Error> {
    #[derive(Deserialize)]
    struct Target<'a> {
        #[serde(default, borrow, deserialize_with = "lenient::nonempty_string")]
        id: Str<'a>,
        #[serde(rename = "displayName", default, borrow, deserialize_with = "lenient::nonempty_string")]
        name: Str<'a>,
        #[serde(rename = "userPrincipalName", default, borrow, deserialize_with = "lenient::nonempty_string")]
        upn: Str<'a>,
    }
    lenient::first_object(d, "a list of targets", |t: Target<'de>| t.id.or(t.upn).or(t.name))
}

fn user_agent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Str<'de>, D::Error> {
    #[derive(Deserialize)]
    struct Detail<'a> {
        #[serde(default, borrow, deserialize_with = "lenient::string")]
        key: Str<'a>,
        #[serde(default, borrow, deserialize_with = "lenient::nonempty_string")]
        value: Str<'a>,
    }
    lenient::first_object(d, "a list of details", |d: Detail<'de>| {
        d.key.is_some_and(|k| k.eq_ignore_ascii_case("User-Agent")).then_some(d.value).flatten()
    })
}
