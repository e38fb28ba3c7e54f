//! Azure Resource Manager activity log, as diagnostic settings export it (Event Hubs,
//! storage; several records come in one `{"records": [...]}` message, split before this):
//! `{time, resourceId, operationName, category, resultType, resultSignature, callerIpAddress,
//! identity: {authorization: {evidence}, claims: {...the caller's token...}}, properties}`.
//! Every control-plane call made with an Azure token is here: what service principals,
//! managed identities and people do to subscriptions (list a storage account's keys, run a
//! command on a VM, assign a role).
//!
//! The caller is read from the token's claims, the platform's own statement: `idtyp`
//! (`app` or `user`), the object id (`oid`, the same id the Entra logs give the identity),
//! `appid`, `xms_mirid` (a managed identity's resource). Without claims, the role
//! assignment's evidence names a user or a service principal. The REST API's shape
//! (`operationName: {value}`) and Log Analytics' `AzureActivity` rows are not read.

use std::borrow::Cow;
use std::net::IpAddr;

use memchr::memmem;
use serde::Deserialize;

use crate::lenient::{self, nonempty};
use crate::record::{content_id, event_time, parse_object, top_level_string};
use crate::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, RawFields, Source, SourceFormat,
};
use nhid_model::vocab::DeadLetterReason;

type Str<'a> = Option<Cow<'a, str>>;

/// Whether a message is an activity log record: its top-level `operationName` is a resource
/// provider's operation (`Microsoft.Storage/storageAccounts/listKeys/action`) and its
/// `resourceId` an ARM path. Entra's records (activities by name), resource logs of a
/// service (`GetBlob`, `SecretGet`) and other formats are not.
pub fn detect(bytes: &[u8]) -> bool {
    use std::sync::LazyLock;
    static KEYS: LazyLock<[memmem::Finder<'static>; 2]> =
        LazyLock::new(|| [&b"\"operationName\""[..], b"\"resourceId\""].map(memmem::Finder::new));
    if !KEYS.iter().all(|k| k.find(bytes).is_some()) {
        return false;
    }
    let operation = top_level_string(bytes, b"operationName").is_some_and(is_provider_operation);
    operation && top_level_string(bytes, b"resourceId").is_some_and(|r| r.starts_with('/'))
}

/// `Microsoft.<Provider>/<type>/.../<verb>`, any case.
fn is_provider_operation(op: &str) -> bool {
    op.get(..10).is_some_and(|p| p.eq_ignore_ascii_case("microsoft.")) && op.contains('/')
}

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    emit(
        parse_object(text, "an activity log record is a json object, not an array")
            .and_then(|r| to_event(r, text, ctx)),
    )
}

fn to_event<'a>(rec: Record<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let raw_fields = RawFields::new([rec.operation_name.clone(), None, None, None, None]);
    let own = nonempty(rec.time).or(nonempty(rec.time_generated));
    let time = event_time(own, "time is not a timestamp", [nonempty(rec.p_event_time)], ctx, "no time")?;
    let identity = rec.identity.unwrap_or_default();
    let claims = identity.claims.unwrap_or_default();
    let evidence = identity.authorization.and_then(|a| a.evidence).unwrap_or_default();
    let tenant = claims.tid.clone().or(nonempty(rec.tenant_id));
    let session_id = claims.uti.clone();
    let ip =
        [nonempty(rec.caller_ip), claims.ipaddr.clone()].into_iter().flatten().find(|ip| ip.parse::<IpAddr>().is_ok());
    let principal = principal(claims, evidence, nonempty(rec.caller))?;
    let operation = nonempty(rec.operation_name)
        .ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "no operationname"))?;
    // Exports write the same operation in either case; the baselines must see one name.
    let action = lower(operation);
    let service = match action.split_once('/') {
        Some((provider, _)) => Cow::Owned(provider.to_string()),
        None => Cow::Borrowed("azure"),
    };
    Ok(AuditEvent {
        id: nonempty(rec.event_data_id).unwrap_or_else(|| content_id(raw)),
        time,
        principal: Principal { tenant, ..principal },
        // Resource Manager is called with an access token; the log names none of the
        // credentials it was minted from.
        credential: Credential { id: None, kind: CredentialKind::ShortLivedToken, issued_at: None, expires_at: None },
        actor: Actor { session_id, ..Actor::default() },
        action,
        service,
        resource: nonempty(rec.resource_id),
        outcome: outcome(nonempty(rec.result_type).as_deref(), nonempty(rec.result_signature).as_deref()),
        source: Source { ip, user_agent: None, asn: None, country: None },
        bytes_out: None,
        source_format: SourceFormat::AzureActivity,
        rules: Vec::new(),
        raw,
        raw_fields,
    })
}

/// Who called. The token's claims decide: a managed identity (`xms_mirid`) is a workload,
/// an application token (`idtyp: app`, or an app id with no user in it) a service account,
/// a user's token a person. Without claims, the evidence's principal type does; a caller
/// named only by Azure itself (`Microsoft.Advisor`) is `unknown`, never acted on.
fn principal<'a>(claims: Claims<'a>, evidence: Evidence<'a>, caller: Str<'a>) -> Result<Principal<'a>, DecodeError> {
    let app_token = claims.idtyp.as_deref().map(|t| t.eq_ignore_ascii_case("app"));
    let user = claims.upn.clone().or(claims.unique_name.clone());
    let (kind, id, name) = if claims.mirid.is_some() {
        (PrincipalType::Workload, claims.oid.or(claims.appid), claims.mirid)
    } else if app_token == Some(true) || (app_token.is_none() && user.is_none() && claims.appid.is_some()) {
        let id = claims.oid.or(claims.appid.clone());
        (PrincipalType::ServiceAccount, id, claims.appid)
    } else if user.is_some() || app_token == Some(false) {
        (PrincipalType::Human, claims.oid.or(user.clone()), user.or(claims.name))
    } else {
        let typed = |t: &str| evidence.principal_type.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(t));
        match evidence.principal_id {
            Some(id) if typed("ServicePrincipal") => (PrincipalType::ServiceAccount, Some(id), None),
            Some(id) if typed("User") => (PrincipalType::Human, Some(id), None),
            _ => {
                let named = claims.name.or(claims.email).or(caller);
                let kind = match &named {
                    Some(n) if n.contains('@') => PrincipalType::Human,
                    _ => PrincipalType::Unknown,
                };
                (kind, claims.oid.or(named.clone()), named)
            }
        }
    };
    let id = id.ok_or_else(|| DecodeError::new(DeadLetterReason::MissingPrincipal, "no caller in the claims"))?;
    Ok(Principal { id, kind, name, owner: None, tenant: None, inferred: false })
}

/// `resultType` says how the operation ended (`Start`, `Accept` and `Success` are the
/// phases of one that went through); a failure signed `Forbidden` or `Unauthorized` (or
/// 401/403) was refused.
fn outcome(result: Option<&str>, signature: Option<&str>) -> Outcome {
    let failed = result
        .is_some_and(|r| r.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("fail")) || r.eq_ignore_ascii_case("error"));
    let refused = |s: &str| {
        let s = s.to_ascii_lowercase();
        ["forbidden", "unauthorized", "403", "401"].iter().any(|d| s.contains(d))
    };
    match (failed, signature) {
        (_, Some(s)) if refused(s) => Outcome::Denied,
        (true, _) => Outcome::Failure,
        _ => Outcome::Success,
    }
}

fn lower(s: Cow<'_, str>) -> Cow<'_, str> {
    match s.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(s.to_ascii_lowercase()),
        false => s,
    }
}

/// An activity log record. Unknown fields (`properties`, the request) are skipped unread;
/// content rules read them in the record.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Record<'a> {
    #[serde(borrow, deserialize_with = "lenient::string")]
    time: Str<'a>,
    #[serde(rename = "TimeGenerated", borrow, deserialize_with = "lenient::string")]
    time_generated: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    p_event_time: Str<'a>,
    #[serde(rename = "eventDataId", borrow, deserialize_with = "lenient::string")]
    event_data_id: Str<'a>,
    #[serde(rename = "resourceId", borrow, deserialize_with = "lenient::string")]
    resource_id: Str<'a>,
    #[serde(rename = "operationName", borrow, deserialize_with = "lenient::string")]
    operation_name: Str<'a>,
    #[serde(rename = "resultType", borrow, deserialize_with = "lenient::string")]
    result_type: Str<'a>,
    #[serde(rename = "resultSignature", borrow, deserialize_with = "lenient::string")]
    result_signature: Str<'a>,
    #[serde(rename = "callerIpAddress", borrow, deserialize_with = "lenient::string")]
    caller_ip: Str<'a>,
    #[serde(rename = "tenantId", borrow, deserialize_with = "lenient::string")]
    tenant_id: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::string")]
    caller: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    identity: Option<Identity<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Identity<'a> {
    #[serde(borrow, deserialize_with = "lenient::map")]
    authorization: Option<Authorization<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    claims: Option<Claims<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Authorization<'a> {
    #[serde(borrow, deserialize_with = "lenient::map")]
    evidence: Option<Evidence<'a>>,
}

/// The role assignment that let the call through; its principal is the caller unless it is
/// a group the caller belongs to.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Evidence<'a> {
    #[serde(rename = "principalId", borrow, deserialize_with = "lenient::nonempty_string")]
    principal_id: Str<'a>,
    #[serde(rename = "principalType", borrow, deserialize_with = "lenient::nonempty_string")]
    principal_type: Str<'a>,
}

/// The caller's token, by claim (long names as Entra writes them in v1 tokens).
#[derive(Default, Deserialize)]
#[serde(default)]
struct Claims<'a> {
    #[serde(rename = "http://schemas.microsoft.com/identity/claims/objectidentifier", alias = "oid")]
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    oid: Str<'a>,
    #[serde(rename = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", alias = "upn")]
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    upn: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    unique_name: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    name: Str<'a>,
    #[serde(rename = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress")]
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    email: Str<'a>,
    #[serde(alias = "azp", borrow, deserialize_with = "lenient::nonempty_string")]
    appid: Str<'a>,
    /// `app` or `user` (v2 tokens, and v1 ones since 2022).
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    idtyp: Str<'a>,
    /// A managed identity's own resource id.
    #[serde(rename = "xms_mirid", borrow, deserialize_with = "lenient::nonempty_string")]
    mirid: Str<'a>,
    #[serde(rename = "http://schemas.microsoft.com/identity/claims/tenantid", alias = "tid")]
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    tid: Str<'a>,
    /// The token's unique id; the sign-in that issued it logs the same (`uniqueTokenIdentifier`).
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    uti: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::nonempty_string")]
    ipaddr: Str<'a>,
}

#[cfg(test)]
mod tests;
