//! Okta System Log: one `LogEvent` per message (the `/api/v1/logs` and event hook shape, and
//! Panther's `Okta.SystemLog`, whose top-level keys may be lowercase).
//!
//! Okta names the actor's kind itself (`actor.type`). Two signals override it because they say
//! a program acts, whatever account it acts as: an API token (`transaction.detail.
//! requestApiTokenId`), and the OAuth `client_credentials` grant. An API token acts with the
//! rights of the admin who created it, but it is a static secret used by scripts and
//! integrations, and revoking it does not touch the person: so the token is the principal
//! (`api_key`), and its creator is its owner and the delegating user.
//!
//! Only `actor` is essential; every other field of the wrong type reads as absent.

use std::borrow::Cow;
use std::net::IpAddr;

use memchr::memmem;
use serde::Deserialize;

use crate::lenient;
use crate::lenient::nonempty;
use crate::record::{self, content_id, event_time};
use crate::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, RawFields, Source, SourceFormat,
};
use nhid_model::vocab::DeadLetterReason;

/// `eventType` with one of the keys only Okta's events have at top level (`displayMessage`,
/// `legacyEventType`) or in its actor and targets (`alternateId`). CloudTrail has an
/// `eventType` too, but none of the others.
pub fn detect(bytes: &[u8]) -> bool {
    use std::sync::LazyLock;
    static EVENT_TYPE: LazyLock<[memmem::Finder<'static>; 2]> =
        LazyLock::new(|| [b"\"eventType\"" as &[u8], b"\"eventtype\""].map(memmem::Finder::new));
    static MARKERS: LazyLock<[memmem::Finder<'static>; 6]> = LazyLock::new(|| {
        [
            b"\"displayMessage\"" as &[u8],
            b"\"displaymessage\"",
            b"\"legacyEventType\"",
            b"\"legacyeventtype\"",
            b"\"alternateId\"",
            b"\"alternateid\"",
        ]
        .map(memmem::Finder::new)
    });
    EVENT_TYPE.iter().any(|f| f.find(bytes).is_some()) && MARKERS.iter().any(|f| f.find(bytes).is_some())
}

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    emit(record::parse_event_object(text).and_then(|rec| to_event(rec, text, ctx)))
}

#[derive(Deserialize)]
struct LogEvent<'a> {
    /// Essential: `null` reads as absent, another non-object is a wrong type.
    #[serde(borrow, default, deserialize_with = "lenient::strict_map")]
    actor: Option<OktaActor<'a>>,
    #[serde(rename = "eventType", alias = "eventtype", borrow, default, deserialize_with = "lenient::string")]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    published: Option<Cow<'a, str>>,
    /// Panther's normalized time; some samples carry only this.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    p_event_time: Option<Cow<'a, str>>,
    /// A shipper's time (Filebeat, Logstash, Fluent Bit write `@timestamp`): exported files
    /// sometimes carry only this.
    #[serde(rename = "@timestamp", borrow, default, deserialize_with = "lenient::string")]
    shipped_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    uuid: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::map")]
    outcome: Option<OktaOutcome<'a>>,
    #[serde(borrow, default, deserialize_with = "lenient::map")]
    client: Option<Client<'a>>,
    #[serde(borrow, default, deserialize_with = "lenient::map")]
    transaction: Option<Transaction<'a>>,
    #[serde(rename = "debugContext", alias = "debugcontext", borrow, default, deserialize_with = "lenient::map")]
    debug_context: Option<DebugContext<'a>>,
    #[serde(
        rename = "authenticationContext",
        alias = "authenticationcontext",
        borrow,
        default,
        deserialize_with = "lenient::map"
    )]
    authentication_context: Option<AuthenticationContext<'a>>,
    #[serde(rename = "securityContext", alias = "securitycontext", default, deserialize_with = "lenient::map")]
    security_context: Option<SecurityContext>,
    #[serde(borrow, default, deserialize_with = "first_target")]
    target: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OktaActor<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default, deserialize_with = "lenient::string")]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "alternateId", alias = "alternateid", borrow, default, deserialize_with = "lenient::string")]
    alternate_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OktaOutcome<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    result: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Client<'a> {
    #[serde(rename = "ipAddress", alias = "ipaddress", borrow, default, deserialize_with = "lenient::string")]
    ip_address: Option<Cow<'a, str>>,
    #[serde(rename = "userAgent", alias = "useragent", borrow, default, deserialize_with = "lenient::map")]
    user_agent: Option<UserAgent<'a>>,
}

#[derive(Deserialize)]
struct UserAgent<'a> {
    #[serde(rename = "rawUserAgent", alias = "rawuseragent", borrow, default, deserialize_with = "lenient::string")]
    raw: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Transaction<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::map")]
    detail: Option<TransactionDetail<'a>>,
}

#[derive(Deserialize)]
struct TransactionDetail<'a> {
    #[serde(
        rename = "requestApiTokenId",
        alias = "requestapitokenid",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    request_api_token_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DebugContext<'a> {
    #[serde(rename = "debugData", alias = "debugdata", borrow, default, deserialize_with = "lenient::map")]
    debug_data: Option<DebugData<'a>>,
}

#[derive(Deserialize)]
struct DebugData<'a> {
    #[serde(rename = "grantType", alias = "granttype", borrow, default, deserialize_with = "lenient::string")]
    grant_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AuthenticationContext<'a> {
    #[serde(
        rename = "externalSessionId",
        alias = "externalsessionid",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    external_session_id: Option<Cow<'a, str>>,
    #[serde(
        rename = "credentialType",
        alias = "credentialtype",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    credential_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct SecurityContext {
    #[serde(rename = "asNumber", alias = "asnumber", default, deserialize_with = "lenient::unsigned")]
    as_number: Option<u64>,
}

fn to_event<'a>(rec: LogEvent<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let (actor_id, actor_type, alternate_id) = match rec.actor {
        Some(a) => (known(a.id), known(a.kind), known(a.alternate_id)),
        None => (None, None, None),
    };
    // Okta writes `unknown` as the id of an actor it could not resolve (a failed sign-in
    // with a mistyped name); the name typed is then the only stable handle.
    let Some(handle) = actor_id.or(alternate_id.clone()) else {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "no actor id"));
    };
    let time = event_time(
        nonempty(rec.published),
        "published is not a timestamp",
        [nonempty(rec.shipped_at), nonempty(rec.p_event_time)],
        ctx,
        "no published time",
    )?;
    let outcome = match rec.outcome.and_then(|o| o.result).as_deref() {
        Some("DENY") => Outcome::Denied,
        Some("FAILURE" | "ABANDONED") => Outcome::Failure,
        // SUCCESS, ALLOW, SKIPPED, CHALLENGE (a step of a sign-in), UNKNOWN, none.
        _ => Outcome::Success,
    };
    let caller = Caller {
        handle,
        actor_type,
        alternate_id,
        api_token: rec.transaction.and_then(|t| t.detail).and_then(|d| nonempty(d.request_api_token_id)),
        client_credentials: rec
            .debug_context
            .and_then(|d| d.debug_data)
            .and_then(|d| d.grant_type)
            .is_some_and(|g| g == "client_credentials"),
        authentication: rec.authentication_context,
    };
    let (principal, credential, actor) = caller.identify();
    let (ip, user_agent) = match rec.client {
        Some(c) => (nonempty(c.ip_address), c.user_agent.and_then(|u| known(u.raw))),
        None => (None, None),
    };
    Ok(AuditEvent {
        // Without a uuid the event is named by its bytes.
        id: nonempty(rec.uuid).unwrap_or_else(|| content_id(raw)),
        time,
        principal,
        credential,
        actor,
        raw_fields: RawFields::new([rec.event_type.clone(), None, None, None, None]),
        action: nonempty(rec.event_type).unwrap_or(Cow::Borrowed("unknown")),
        service: Cow::Borrowed("okta"),
        resource: rec.target,
        outcome,
        source: Source {
            ip: ip.filter(|s| s.parse::<IpAddr>().is_ok()),
            user_agent,
            asn: rec.security_context.and_then(|s| s.as_number).and_then(|n| u32::try_from(n).ok()),
            country: None,
        },
        bytes_out: None,
        source_format: SourceFormat::Okta,
        rules: Vec::new(),
        raw,
    })
}

/// What the event says about who acted and how.
struct Caller<'a> {
    /// The actor's id, or the name typed when Okta could not resolve it.
    handle: Cow<'a, str>,
    actor_type: Option<Cow<'a, str>>,
    alternate_id: Option<Cow<'a, str>>,
    api_token: Option<Cow<'a, str>>,
    /// The OAuth `client_credentials` grant: a program signing in as itself.
    client_credentials: bool,
    authentication: Option<AuthenticationContext<'a>>,
}

impl<'a> Caller<'a> {
    fn identify(self) -> (Principal<'a>, Credential<'a>, Actor<'a>) {
        let (session_id, credential_type) = match self.authentication {
            Some(a) => (known(a.external_session_id), nonempty(a.credential_type)),
            None => (None, None),
        };
        if let Some(token) = self.api_token {
            // The token is the principal; the admin who created it owns it and delegates to it.
            let creator = self.alternate_id.clone().unwrap_or(self.handle);
            let principal = Principal {
                id: Cow::Owned(format!("okta:api_token:{token}")),
                kind: PrincipalType::ApiKey,
                name: self.alternate_id,
                owner: Some(creator.clone()),
                tenant: None,
                inferred: false,
            };
            let credential = Credential { id: Some(token), kind: CredentialKind::StaticKey, ..Default::default() };
            return (principal, credential, Actor { delegating_user: Some(creator), session_id, ..Actor::default() });
        }
        let kind = if self.client_credentials {
            PrincipalType::OauthClient
        } else {
            match self.actor_type.as_deref() {
                Some("User") => PrincipalType::Human,
                Some("PublicClientApp" | "AppInstance" | "Application" | "Client") => PrincipalType::OauthClient,
                Some("SystemPrincipal") => PrincipalType::Workload,
                _ => PrincipalType::Unknown,
            }
        };
        let credential_kind = match credential_type.as_deref() {
            _ if kind == PrincipalType::OauthClient => CredentialKind::OauthAccessToken,
            Some("PASSWORD") => CredentialKind::Password,
            Some("CERTIFICATE") => CredentialKind::Certificate,
            Some("OAUTH2" | "JWT") => CredentialKind::OauthAccessToken,
            Some("PRE_SHARED_SYMMETRIC_KEY") => CredentialKind::StaticKey,
            _ if session_id.is_some() => CredentialKind::Session,
            _ => CredentialKind::Unknown,
        };
        let id = Cow::Owned(format!("okta:{}", self.handle));
        (
            Principal { id, kind, name: self.alternate_id, owner: None, tenant: None, inferred: false },
            Credential { kind: credential_kind, ..Default::default() },
            Actor { session_id, ..Actor::default() },
        )
    }
}

/// Okta writes `unknown` where it could not resolve a value; that is not an identifier.
fn known<'a>(s: Option<Cow<'a, str>>) -> Option<Cow<'a, str>> {
    s.filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
}

/// `target[]` lists what the event touched; the first one names the resource.
fn first_target<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Target<'a> {
        #[serde(rename = "alternateId", alias = "alternateid", borrow, default, deserialize_with = "lenient::string")]
        alternate_id: Option<Cow<'a, str>>,
        #[serde(borrow, default, deserialize_with = "lenient::string")]
        id: Option<Cow<'a, str>>,
    }
    lenient::first_object(d, "a list of targets", |t: Target<'de>| known(t.alternate_id).or(known(t.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;
    use nhid_model::time::parse_rfc3339;
    use proptest::prelude::*;

    crate::testing::decoder_helpers!();

    use CredentialKind as C;
    use Outcome as O;
    use PrincipalType as P;
    const NONE: [Option<&str>; 3] = [None, None, None];

    /// An event around an actor and extra top-level fields.
    fn event(actor: &str, extra: &str) -> String {
        format!(
            r#"{{"actor":{actor},"eventType":"user.session.start","displayMessage":"User login to Okta","published":"2024-05-02T10:00:00.000Z","uuid":"e-1","client":{{"ipAddress":"198.51.100.4","userAgent":{{"rawUserAgent":"okta-sdk-java/8.2.0"}}}}{extra}}}"#
        )
    }

    const ALICE: &str = r#"{"id":"00u1abcd","type":"User","alternateId":"alice@example.com","displayName":"Alice"}"#;
    const APP: &str = r#"{"id":"0oa1abcd","type":"PublicClientApp","alternateId":"Reporting Service","displayName":"Reporting Service"}"#;

    /// (case, actor, extra fields, type, credential, [delegating user, agent, session], outcome)
    type Case = (&'static str, &'static str, &'static str, P, C, [Option<&'static str>; 3], O);

    /// Shapes from Panther's `Okta.SystemLog` samples and Okta's System Log documentation.
    const CLASSIFICATION: &[Case] = &[
        (
            "user with a session",
            ALICE,
            r#","authenticationContext":{"externalSessionId":"102abc"},"outcome":{"result":"SUCCESS"}"#,
            P::Human,
            C::Session,
            [None, None, Some("102abc")],
            O::Success,
        ),
        (
            "user signing in with a password",
            ALICE,
            r#","authenticationContext":{"credentialType":"PASSWORD","externalSessionId":"102abc"},"outcome":{"result":"FAILURE","reason":"INVALID_CREDENTIALS"}"#,
            P::Human,
            C::Password,
            [None, None, Some("102abc")],
            O::Failure,
        ),
        ("user without a session", ALICE, r#","outcome":{"result":"SUCCESS"}"#, P::Human, C::Unknown, NONE, O::Success),
        (
            "unknown session id",
            ALICE,
            r#","authenticationContext":{"externalSessionId":"unknown"}"#,
            P::Human,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "api token",
            ALICE,
            r#","transaction":{"type":"WEB","id":"t1","detail":{"requestApiTokenId":"00T1bjatrp6Nl1dOc5d7"}}"#,
            P::ApiKey,
            C::StaticKey,
            [Some("alice@example.com"), None, None],
            O::Success,
        ),
        (
            "api token denied",
            ALICE,
            r#","transaction":{"detail":{"requestApiTokenId":"00T1"}},"outcome":{"result":"DENY"}"#,
            P::ApiKey,
            C::StaticKey,
            [Some("alice@example.com"), None, None],
            O::Denied,
        ),
        (
            "public client app",
            APP,
            r#","outcome":{"result":"SUCCESS"}"#,
            P::OauthClient,
            C::OauthAccessToken,
            NONE,
            O::Success,
        ),
        (
            "app instance",
            r#"{"id":"0oa2","type":"AppInstance","alternateId":"salesforce"}"#,
            "",
            P::OauthClient,
            C::OauthAccessToken,
            NONE,
            O::Success,
        ),
        (
            "client credentials grant",
            r#"{"id":"0oa3","type":"Application","alternateId":"etl"}"#,
            r#","debugContext":{"debugData":{"grantType":"client_credentials"}}"#,
            P::OauthClient,
            C::OauthAccessToken,
            NONE,
            O::Success,
        ),
        (
            "client credentials grant with an odd actor type",
            r#"{"id":"0oa4","type":"SomethingNew"}"#,
            r#","debugContext":{"debugData":{"grantType":"client_credentials"}}"#,
            P::OauthClient,
            C::OauthAccessToken,
            NONE,
            O::Success,
        ),
        (
            "authorization code grant is the user's",
            ALICE,
            r#","debugContext":{"debugData":{"grantType":"authorization_code"}},"authenticationContext":{"externalSessionId":"s9"}"#,
            P::Human,
            C::Session,
            [None, None, Some("s9")],
            O::Success,
        ),
        (
            "system principal",
            r#"{"id":"0oa5","type":"SystemPrincipal","alternateId":"system@okta.com"}"#,
            "",
            P::Workload,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "ip address actor",
            r#"{"id":"198.51.100.9","type":"IP address","alternateId":"unknown"}"#,
            "",
            P::Unknown,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "mfa challenge",
            ALICE,
            r#","outcome":{"result":"CHALLENGE"},"authenticationContext":{"credentialType":"OTP","externalSessionId":"s1"}"#,
            P::Human,
            C::Session,
            [None, None, Some("s1")],
            O::Success,
        ),
        ("allowed by policy", ALICE, r#","outcome":{"result":"ALLOW"}"#, P::Human, C::Unknown, NONE, O::Success),
        ("skipped", ALICE, r#","outcome":{"result":"SKIPPED"}"#, P::Human, C::Unknown, NONE, O::Success),
        ("abandoned mfa", ALICE, r#","outcome":{"result":"ABANDONED"}"#, P::Human, C::Unknown, NONE, O::Failure),
        (
            "certificate",
            r#"{"id":"00u9","type":"User","alternateId":"kiosk@example.com"}"#,
            r#","authenticationContext":{"credentialType":"CERTIFICATE"}"#,
            P::Human,
            C::Certificate,
            NONE,
            O::Success,
        ),
    ];

    #[test]
    fn classifies_principals_from_oktas_own_fields() {
        assert!(CLASSIFICATION.len() >= 15);
        for (case, actor, extra, kind, credential, triad, outcome) in CLASSIFICATION {
            let text = event(actor, extra);
            let e = one(&text).unwrap_or_else(|err| panic!("{case}: {err}"));
            assert_eq!(e.principal.kind, *kind, "{case}");
            assert_eq!(e.credential.kind, *credential, "{case}");
            assert_eq!(&crate::testing::triad(&e), triad, "{case}");
            assert_eq!(e.outcome, *outcome, "{case}");
            assert_eq!(e.source_format, SourceFormat::Okta);
            assert!(detect(text.as_bytes()), "{case}");
        }
    }

    #[test]
    fn an_api_token_is_its_own_principal_owned_by_its_creator() {
        let text = event(ALICE, r#","transaction":{"detail":{"requestApiTokenId":"00T1bjatrp6Nl1dOc5d7"}}"#);
        let e = one(&text).unwrap();
        assert_eq!(e.principal.id, "okta:api_token:00T1bjatrp6Nl1dOc5d7");
        assert_eq!(e.principal.owner.as_deref(), Some("alice@example.com"));
        assert_eq!(e.credential.id.as_deref(), Some("00T1bjatrp6Nl1dOc5d7"));
        // The same person without the token is another identity, a human one.
        let plain = event(ALICE, "");
        let by_hand = one(&plain).unwrap();
        assert_eq!((by_hand.principal.id.as_ref(), by_hand.principal.kind), ("okta:00u1abcd", P::Human));
    }

    #[test]
    fn maps_the_event() {
        let text = event(
            ALICE,
            r#","securityContext":{"asNumber":701,"isp":"verizon"},"target":[{"id":"0oa7","type":"AppInstance","alternateId":"Salesforce"},{"id":"x"}]"#,
        );
        let e = one(&text).unwrap();
        assert_eq!(e.id, "e-1");
        assert_eq!(e.time, parse_rfc3339("2024-05-02T10:00:00Z").unwrap());
        assert_eq!((e.action.as_ref(), e.service.as_ref()), ("user.session.start", "okta"));
        assert_eq!(e.resource.as_deref(), Some("Salesforce"));
        assert_eq!(e.source.ip.as_deref(), Some("198.51.100.4"));
        assert_eq!(e.source.user_agent.as_deref(), Some("okta-sdk-java/8.2.0"));
        assert_eq!(e.source.asn, Some(701));
        assert_eq!(e.principal.name.as_deref(), Some("alice@example.com"));
        assert!(matches!(e.action, Cow::Borrowed(_)), "strings borrow from the input");
    }

    #[test]
    fn panthers_lowercase_keys_are_read() {
        let text = r#"{"actor":{"alternateId":"h@x.com","id":"00abc123","type":"User"},"authenticationcontext":{"externalSessionId":"100-abc"},"eventtype":"user.session.start","displaymessage":"m","outcome":{"result":"FAILURE"},"published":"2022-06-22 18:18:29.015","securitycontext":{"asNumber":701}}"#;
        let e = one(text).unwrap();
        assert_eq!(e.action, "user.session.start");
        assert_eq!(e.actor.session_id.as_deref(), Some("100-abc"));
        assert_eq!((e.outcome, e.source.asn), (O::Failure, Some(701)));
        assert!(detect(text.as_bytes()));
    }

    #[test]
    fn time_comes_from_published_then_a_shippers_then_panther_then_the_transport() {
        let ctx = DecodeContext { fallback_time: Some(7), ..Default::default() };
        let panther =
            r#"{"actor":{"id":"00u1","type":"User"},"eventType":"x","p_event_time":"2021-06-04 09:59:53.650807"}"#;
        assert_eq!(one(panther).unwrap().time, parse_rfc3339("2021-06-04T09:59:53.650Z").unwrap());
        let shipped = r#"{"actor":{"id":"00u1","type":"User"},"eventType":"x","@timestamp":"2021-06-04T09:59:54Z"}"#;
        assert_eq!(one(shipped).unwrap().time, parse_rfc3339("2021-06-04T09:59:54Z").unwrap());
        let none = r#"{"actor":{"id":"00u1","type":"User"},"eventType":"x"}"#;
        assert_eq!(decode_all(none, &ctx)[0].as_ref().unwrap().time, 7);
        assert_eq!(one(none).unwrap_err().reason, DeadLetterReason::MissingTime);
        let redacted = r#"{"actor":{"id":"00u1","type":"User"},"eventType":"x","published":"redacted"}"#;
        assert_eq!(decode_all(redacted, &ctx)[0].as_ref().unwrap_err().reason, DeadLetterReason::InvalidTime);
    }

    #[test]
    fn only_the_actor_is_essential() {
        let odd = r#"{"actor":{"id":"00u1","type":5},"eventType":[],"published":"2024-05-02T10:00:00Z","client":"x","outcome":7,"target":{"id":"t"},"transaction":{"detail":[]}}"#;
        let e = one(odd).unwrap();
        assert_eq!((e.action.as_ref(), e.principal.kind, e.resource), ("unknown", P::Unknown, None));
        let no_actor = r#"{"eventType":"logout","published":"2024-05-02T10:00:00Z"}"#;
        assert_eq!(one(no_actor).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
        let unresolved =
            r#"{"actor":{"id":"unknown","type":"User"},"eventType":"x","published":"2024-05-02T10:00:00Z"}"#;
        assert_eq!(one(unresolved).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
        let wrong = r#"{"actor":"SECRETVALUE","eventType":"x","published":"2024-05-02T10:00:00Z"}"#;
        let err = one(wrong).unwrap_err();
        assert_eq!(err.reason, DeadLetterReason::WrongType);
        assert!(!err.detail.contains("SECRETVALUE"), "{}", err.detail);
        assert_eq!(one("[1]").unwrap_err().reason, DeadLetterReason::WrongType);
        // serde would read an array positionally into the actor's fields.
        let array = r#"{"actor":["00u1","SystemPrincipal"],"eventType":"x","published":"2024-05-02T10:00:00Z"}"#;
        assert_eq!(one(array).unwrap_err().reason, DeadLetterReason::WrongType);
    }

    #[test]
    fn detection_needs_an_event_type_and_an_okta_key() {
        assert!(!detect(br#"{"eventType":"AwsApiCall","eventName":"GetObject","userIdentity":{}}"#));
        assert!(!detect(br#"{"displayMessage":"x"}"#));
        assert!(detect(br#"{"eventType":"user.session.start","legacyEventType":"core.user_auth.login_success"}"#));
    }

    proptest! {
        #[test]
        fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-zA-Z0-9 .\-_@\\]{0,200}"#) {
            let _ = decode_all(&s, &DecodeContext::default());
            let mut sink = |_| {};
            crate::decode(s.as_bytes(), Format::Okta, &DecodeContext::default(), &mut sink);
        }

        #[test]
        fn keys_with_arbitrary_values_never_panic(
            key in prop::sample::select(vec!["actor", "eventType", "published", "p_event_time", "uuid", "outcome",
                "client", "transaction", "debugContext", "authenticationContext", "securityContext", "target"]),
            value in r#"(null|true|-?[0-9]{1,22}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"id":1\}|\[\{"id":"x"\}\])"#,
        ) {
            let text = format!(r#"{{"actor":{{"id":"00u1","type":"User"}},"eventType":"x","{key}":{value}}}"#);
            let _ = decode_all(&text, &DecodeContext { fallback_time: Some(0), ..Default::default() });
        }
    }
}
