//! The canonical audit event every decoder produces (`schemas/audit-event.schema.json`).
//!
//! Strings borrow from the input buffer where the JSON allows it (`Cow`), so the hot
//! path allocates only for strings that carry escapes.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::string_enum;
use crate::time::{Millis, serde_rfc3339};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    #[serde(borrow, deserialize_with = "object")]
    pub principal: Principal<'a>,
    #[serde(borrow, default, deserialize_with = "object")]
    pub credential: Credential<'a>,
    #[serde(borrow, default, deserialize_with = "object")]
    pub actor: Actor<'a>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    /// Downstream system or trust zone the call went to (`s3`, `github`, a tool server).
    #[serde(borrow)]
    pub service: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub resource: Option<Cow<'a, str>>,
    pub outcome: Outcome,
    #[serde(borrow, default, deserialize_with = "object")]
    pub source: Source<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(default)]
    pub source_format: SourceFormat,
    /// Content rules (Sigma, `rules/`) the record matched, found where its raw record was
    /// read: by the detection stage, or by the re-keying stage, which carries them here.
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleMatch<'a>>,
    /// The record as its source wrote it (its JSON text, borrowed from the message, so no
    /// copy), for content rules; empty for canonical events. Never serialized.
    #[serde(skip)]
    pub raw: &'a str,
    /// Fields of `raw` the decoder already read, for content rules not to look for them
    /// again. Never serialized.
    #[serde(skip)]
    pub raw_fields: RawFields<'a>,
}

/// Values of a record's fields as its decoder read them, under the record's own field names
/// ([`SourceFormat::raw_fields`]: the call's name, who called, with which client), so that
/// content rules find them without scanning the record again: their index reads the call's
/// name from every record, and the few rules that name no call read the caller or the
/// client. Borrowed like the record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawFields<'a> {
    /// Whether the decoder filled them; when it did, a name with no value is absent from
    /// the record (or null).
    pub known: bool,
    pub values: [Option<Cow<'a, str>>; RAW_FIELDS],
}

/// The most fields a format lists in [`SourceFormat::raw_fields`].
pub const RAW_FIELDS: usize = 5;

impl<'a> RawFields<'a> {
    /// The values of `format`'s listed fields, in its order.
    pub fn new(values: [Option<Cow<'a, str>>; RAW_FIELDS]) -> Self {
        RawFields { known: true, values }
    }

    /// The value of field `name` of a record of `format`: `None` when the decoder did not
    /// read it, `Some(None)` when the record has none.
    pub fn get(&self, format: SourceFormat, name: &str) -> Option<Option<&str>> {
        if !self.known {
            return None;
        }
        let at = format.raw_fields().iter().position(|&n| n == name)?;
        Some(self.values[at].as_deref())
    }
}

/// A content rule an event matched: its id, title, level and the MITRE ATT&CK techniques
/// its tags name (`attack.t1552.005` → `T1552.005`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleMatch<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub title: Cow<'a, str>,
    pub level: crate::vocab::Severity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub techniques: Vec<String>,
}

/// The longest string field an event may carry: ARNs run to 2,048 bytes, object keys to
/// 1,024, user agents to a few hundred. Every field reaches alerts, actions or state, and one
/// of a megabyte would make an output larger than a broker takes.
pub const MAX_FIELD_BYTES: usize = 4_096;

impl AuditEvent<'_> {
    /// The first string field longer than [`MAX_FIELD_BYTES`], by its path, with its length.
    pub fn oversized_field(&self) -> Option<(&'static str, usize)> {
        let (p, c, a, s) = (&self.principal, &self.credential, &self.actor, &self.source);
        let i = a.impersonator.as_deref();
        [
            ("id", Some(&self.id)),
            ("principal.id", Some(&p.id)),
            ("principal.name", p.name.as_ref()),
            ("principal.owner", p.owner.as_ref()),
            ("principal.tenant", p.tenant.as_ref()),
            ("credential.id", c.id.as_ref()),
            ("actor.delegating_user", a.delegating_user.as_ref()),
            ("actor.agent_id", a.agent_id.as_ref()),
            ("actor.session_id", a.session_id.as_ref()),
            ("actor.impersonator.principal.id", i.map(|i| &i.principal.id)),
            ("actor.impersonator.principal.name", i.and_then(|i| i.principal.name.as_ref())),
            ("actor.impersonator.principal.owner", i.and_then(|i| i.principal.owner.as_ref())),
            ("actor.impersonator.principal.tenant", i.and_then(|i| i.principal.tenant.as_ref())),
            ("actor.impersonator.credential.id", i.and_then(|i| i.credential.id.as_ref())),
            ("actor.impersonator.session_id", i.and_then(|i| i.session_id.as_ref())),
            ("action", Some(&self.action)),
            ("service", Some(&self.service)),
            ("resource", self.resource.as_ref()),
            ("source.ip", s.ip.as_ref()),
            ("source.user_agent", s.user_agent.as_ref()),
            ("source.country", s.country.as_ref()),
        ]
        .into_iter()
        .find_map(|(path, v)| v.filter(|v| v.len() > MAX_FIELD_BYTES).map(|v| (path, v.len())))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Principal<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub kind: PrincipalType,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub owner: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Cow<'a, str>>,
    /// The type was read from fields the caller chooses (a browser user agent, a session
    /// name shaped like an email address), not stated by the platform. Anyone holding the
    /// credential chooses those, so such a type decides only a new identity's type: the
    /// engine never moves a known identity's lane on it (a claim it makes is a finding).
    #[serde(rename = "type_inferred", default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

/// Never a secret value: only the credential's identifier (an access key id, a token id, a hash).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Credential<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub kind: CredentialKind,
    #[serde(default, with = "serde_rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Millis>,
    #[serde(default, with = "serde_rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
}

/// The attribution triad: who delegated, which agent acted, in which session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub delegating_user: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Cow<'a, str>>,
    /// Who made the request as the principal, when another did (Kubernetes impersonation).
    /// Boxed: rare, and every event carries the field.
    #[serde(borrow, default, deserialize_with = "optional_object", skip_serializing_if = "Option::is_none")]
    pub impersonator: Option<Box<Impersonator<'a>>>,
}

/// Who made a request as another principal: the principal the platform authenticated, with
/// the credential and session that authenticated it. The request has the impersonated
/// principal's permissions, so it is judged against that principal's baseline; but it was
/// the impersonator's credential that was used, so containment targets the impersonator,
/// never the principal impersonated (whose credential the request did not carry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Impersonator<'a> {
    #[serde(borrow, deserialize_with = "object")]
    pub principal: Principal<'a>,
    #[serde(borrow, default, deserialize_with = "object")]
    pub credential: Credential<'a>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Cow<'a, str>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Source<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(borrow, default, deserialize_with = "borrowed_opt", skip_serializing_if = "Option::is_none")]
    pub country: Option<Cow<'a, str>>,
}

/// `Option<Cow<str>>` that borrows from the input when it can. serde's own `Option<Cow>`
/// always copies, which would cost an allocation per optional string per event. Any
/// other type is an error (decoders dead-letter it as `wrong_type`).
pub fn borrowed_opt<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(V)
        }
    }
    d.deserialize_option(V)
}

/// A struct that deserializes from a JSON object only. serde's derived struct also reads an
/// array positionally into its fields, so `"principal": ["svc-x", "service_account"]` would
/// pass for a principal; every object an event is read from goes through this instead, and an
/// array is a wrong type.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Object)
    }
}

/// A field read through [`Object`].
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Object::deserialize(d).map(|Object(t)| t)
}

/// An optional field read through [`Object`]: `null` reads as absent.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<Object<T>>::deserialize(d).map(|o| o.map(|Object(t)| t))
}

string_enum! {
    /// Who acts. Classification comes from the platform's own fields; the inventory can override it.
    PrincipalType {
        Human => "human",
        ServiceAccount => "service_account",
        ApiKey => "api_key",
        OauthClient => "oauth_client",
        AiAgent => "ai_agent",
        McpServer => "mcp_server",
        Workload => "workload",
        Bot => "bot",
        Unknown => "unknown",
    }
}

impl PrincipalType {
    /// The lane an identity runs in. Humans have their own thresholds and are never acted on;
    /// `unknown` is not provably a machine, so it is alerted on but never acted on either.
    pub fn is_machine(self) -> bool {
        !matches!(self, PrincipalType::Human | PrincipalType::Unknown)
    }
}

string_enum! {
    #[derive(Default)]
    CredentialKind {
        StaticKey => "static_key",
        ShortLivedToken => "short_lived_token",
        OauthAccessToken => "oauth_access_token",
        RefreshToken => "refresh_token",
        Session => "session",
        Certificate => "certificate",
        Password => "password",
        #[default]
        Unknown => "unknown",
    }
}

string_enum! {
    Outcome {
        Success => "success",
        Failure => "failure",
        Denied => "denied",
    }
}

string_enum! {
    /// The wire format an event arrived in.
    #[derive(Default)]
    SourceFormat {
        #[default]
        Native => "native",
        Cloudtrail => "cloudtrail",
        K8sAudit => "k8s_audit",
        Github => "github",
        Okta => "okta",
        GcpAudit => "gcp_audit",
        Entra => "entra",
        AzureActivity => "azure_activity",
        Ocsf => "ocsf",
    }
}

impl SourceFormat {
    /// The record fields its decoder hands to content rules ([`RawFields`]), by their names
    /// in the record: the call and its service, who called, with which client.
    pub fn raw_fields(self) -> &'static [&'static str] {
        match self {
            SourceFormat::Cloudtrail => {
                &["eventName", "eventSource", "userIdentity.type", "userIdentity.arn", "userAgent"]
            }
            SourceFormat::K8sAudit => &["verb", "objectRef.resource", "objectRef.subresource"],
            SourceFormat::Okta => &["eventType"],
            SourceFormat::Github => &["action"],
            SourceFormat::AzureActivity => &["operationName"],
            _ => &[],
        }
    }
}
