//! The fields of an Entra sign-in, with every spelling of the three shapes as aliases.

use std::borrow::Cow;

use serde::Deserialize;

use super::Kind;
use crate::lenient::{self, Read};

pub(super) type Str<'a> = Option<Cow<'a, str>>;

/// A sign-in in any of the three shapes; `properties` holds the Graph fields of a
/// diagnostic record. Unknown fields are skipped unread.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct Record<'a> {
    #[serde(borrow, alias = "Id", deserialize_with = "lenient::string")]
    pub(super) id: Str<'a>,
    #[serde(
        rename = "createdDateTime",
        alias = "CreatedDateTime",
        alias = "createddatetime",
        borrow,
        deserialize_with = "nhid_model::event::borrowed_opt"
    )]
    pub(super) created: Str<'a>,
    /// When the diagnostic record was written; a fallback for `createdDateTime`.
    #[serde(borrow, deserialize_with = "nhid_model::event::borrowed_opt")]
    pub(super) time: Str<'a>,
    #[serde(rename = "TimeGenerated", borrow, deserialize_with = "nhid_model::event::borrowed_opt")]
    pub(super) time_generated: Str<'a>,
    /// Panther's normalized time; some samples carry only this.
    #[serde(borrow, deserialize_with = "lenient::string")]
    pub(super) p_event_time: Str<'a>,
    /// The diagnostic category, or (`Type`) the Log Analytics table.
    #[serde(borrow, alias = "Type", deserialize_with = "lenient::string")]
    pub(super) category: Str<'a>,
    #[serde(rename = "resultType", alias = "resulttype", alias = "ResultType", deserialize_with = "result_code")]
    pub(super) result_type: Option<Code>,
    #[serde(deserialize_with = "lenient::map")]
    pub(super) status: Option<Status>,
    #[serde(rename = "callerIpAddress", alias = "calleripaddress", borrow, deserialize_with = "lenient::string")]
    pub(super) caller_ip: Str<'a>,
    #[serde(
        rename = "ipAddress",
        alias = "IPAddress",
        alias = "ipaddress",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) ip: Str<'a>,
    #[serde(rename = "userAgent", alias = "UserAgent", borrow, deserialize_with = "lenient::string")]
    pub(super) user_agent: Str<'a>,
    #[serde(rename = "userPrincipalName", alias = "UserPrincipalName", borrow, deserialize_with = "lenient::string")]
    pub(super) upn: Str<'a>,
    #[serde(rename = "userId", alias = "UserId", borrow, deserialize_with = "lenient::string")]
    pub(super) user_id: Str<'a>,
    #[serde(rename = "appId", alias = "AppId", borrow, deserialize_with = "lenient::string")]
    pub(super) app_id: Str<'a>,
    #[serde(rename = "appDisplayName", alias = "AppDisplayName", borrow, deserialize_with = "lenient::string")]
    pub(super) app_name: Str<'a>,
    #[serde(rename = "servicePrincipalId", alias = "ServicePrincipalId", borrow, deserialize_with = "lenient::string")]
    pub(super) sp_id: Str<'a>,
    #[serde(
        rename = "servicePrincipalName",
        alias = "ServicePrincipalName",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) sp_name: Str<'a>,
    #[serde(
        rename = "servicePrincipalCredentialKeyId",
        alias = "ServicePrincipalCredentialKeyId",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) key_id: Str<'a>,
    /// A certificate's thumbprint: a hash that names the certificate, not a secret.
    #[serde(
        rename = "servicePrincipalCredentialThumbprint",
        alias = "ServicePrincipalCredentialThumbprint",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) thumbprint: Str<'a>,
    #[serde(
        rename = "federatedCredentialId",
        alias = "FederatedCredentialId",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) federated_credential_id: Str<'a>,
    #[serde(
        rename = "clientCredentialType",
        alias = "ClientCredentialType",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) client_credential_type: Str<'a>,
    #[serde(rename = "signInEventTypes", alias = "SignInEventTypes", deserialize_with = "event_types")]
    pub(super) event_types: Option<Kind>,
    /// Diagnostic records: `none`, `systemAssigned`, `userAssigned`.
    #[serde(
        rename = "managedIdentityType",
        alias = "ManagedIdentityType",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) managed_identity_type: Str<'a>,
    /// Graph beta: `{msiType, associatedResourceId, …}`.
    #[serde(rename = "managedServiceIdentity", alias = "managedIdentity", borrow, deserialize_with = "lenient::map")]
    pub(super) managed_service_identity: Option<ManagedServiceIdentity<'a>>,
    /// Graph beta, Entra Agent ID: whether the identity signing in is an AI agent.
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) agent: Option<Agent<'a>>,
    #[serde(rename = "isInteractive", alias = "IsInteractive", deserialize_with = "lenient::flag")]
    pub(super) is_interactive: bool,
    #[serde(rename = "incomingTokenType", alias = "IncomingTokenType", borrow, deserialize_with = "lenient::string")]
    pub(super) incoming_token_type: Str<'a>,
    #[serde(
        rename = "authenticationProtocol",
        alias = "AuthenticationProtocol",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) authentication_protocol: Str<'a>,
    #[serde(rename = "sessionId", alias = "SessionId", borrow, deserialize_with = "lenient::string")]
    pub(super) session_id: Str<'a>,
    #[serde(rename = "tenantId", alias = "tenantid", alias = "TenantId", borrow, deserialize_with = "lenient::string")]
    pub(super) tenant_id: Str<'a>,
    #[serde(rename = "homeTenantId", alias = "HomeTenantId", borrow, deserialize_with = "lenient::string")]
    pub(super) home_tenant_id: Str<'a>,
    #[serde(
        rename = "resourceDisplayName",
        alias = "ResourceDisplayName",
        borrow,
        deserialize_with = "lenient::string"
    )]
    pub(super) resource_name: Str<'a>,
    /// The resource application's id in Graph; Log Analytics names it `ResourceIdentity`
    /// (its `ResourceId` column is the tenant's ARM path, like a diagnostic record's `resourceId`).
    #[serde(rename = "resourceId", alias = "ResourceIdentity", borrow, deserialize_with = "lenient::string")]
    pub(super) resource_id: Str<'a>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) location: Option<Location<'a>>,
    #[serde(borrow, deserialize_with = "lenient::map")]
    pub(super) properties: Option<Box<Record<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct Status {
    #[serde(rename = "errorCode", default, deserialize_with = "result_code")]
    pub(super) error_code: Option<Code>,
}

#[derive(Deserialize)]
pub(super) struct ManagedServiceIdentity<'a> {
    #[serde(rename = "msiType", borrow, default, deserialize_with = "lenient::string")]
    pub(super) msi_type: Str<'a>,
}

#[derive(Deserialize)]
pub(super) struct Agent<'a> {
    #[serde(rename = "agentType", borrow, default, deserialize_with = "lenient::string")]
    pub(super) agent_type: Str<'a>,
}

#[derive(Deserialize)]
pub(super) struct Location<'a> {
    #[serde(rename = "countryOrRegion", borrow, default, deserialize_with = "lenient::string")]
    pub(super) country: Str<'a>,
}

/// A sign-in result: `0` succeeded, any other Entra error code did not. Diagnostic records
/// write it as a number, a numeric string, or (hand-made samples) `Success` / `Failure`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Code {
    Number(i64),
    Failed,
}

fn result_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Code>, D::Error> {
    struct ResultCode;
    impl Read<'_> for ResultCode {
        type Value = Option<Code>;
        fn i64(self, v: i64) -> Self::Value {
            Some(Code::Number(v))
        }
        fn u64(self, v: u64) -> Self::Value {
            i64::try_from(v).ok().map(Code::Number)
        }
        fn f64(self, v: f64) -> Self::Value {
            (v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15).then_some(Code::Number(v as i64))
        }
        fn str(self, v: &str) -> Self::Value {
            let v = v.trim();
            match v.parse::<i64>() {
                Ok(n) => Some(Code::Number(n)),
                Err(_) if v.eq_ignore_ascii_case("success") => Some(Code::Number(0)),
                Err(_) if v.eq_ignore_ascii_case("failure") => Some(Code::Failed),
                Err(_) => None,
            }
        }
    }
    lenient::read(d, "an error code", ResultCode)
}

/// `signInEventTypes`: a list; a machine kind in it wins over a user kind.
fn event_types<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Kind>, D::Error> {
    struct EventTypes;
    impl<'de> Read<'de> for EventTypes {
        type Value = Option<Kind>;
        fn seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut kind: Option<Kind> = None;
            while let Some(lenient::Str(t)) = seq.next_element()? {
                let this = match t.as_deref() {
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
    }
    lenient::read(d, "a list of sign-in event types", EventTypes)
}
