//! GitHub audit log: organization and enterprise audit log events, streamed or exported
//! (one JSON object per event; Panther's `GitHub.Audit` shape included).
//!
//! GitHub has no service-account type: a machine acts as a GitHub App (`name[bot]`, or a
//! server-to-server token), as the Copilot coding agent (`actor_is_agent`), or as a plain user
//! account holding a token. So a user stays `human` whatever token it uses, unless GitHub
//! itself marks the actor as a machine; the token is still recorded as the credential, and the
//! inventory can re-type a machine user. nhid never acts on humans by itself, so this errs safe.
//!
//! Only `actor` (or `actor_id`) is essential; every other field of the wrong type reads as absent.

use std::borrow::Cow;
use std::net::IpAddr;

use memchr::memmem;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess};

use crate::lenient::nonempty;
use crate::lenient::{self, Read};
use crate::record::{self, content_id};
use crate::{DecodeContext, DecodeError};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, RawFields, Source, SourceFormat,
};
use nhid_model::time::{Millis, RFC3339_RANGE, parse_rfc3339};
use nhid_model::vocab::DeadLetterReason;

/// An audit event has a string `actor` (the login) and an `action` at top level. Other
/// formats' `actor` is an object (OCSF, canonical) or absent; the webhook shape has `sender`.
pub fn detect(bytes: &[u8]) -> bool {
    use std::sync::LazyLock;
    static ACTOR: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"actor\""));
    static ACTION: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"action\""));
    let string_actor = ACTOR.find_iter(bytes).any(|at| {
        let rest = bytes[at + 7..].trim_ascii_start();
        rest.strip_prefix(b":").is_some_and(|v| v.trim_ascii_start().starts_with(b"\""))
    });
    string_actor && ACTION.find(bytes).is_some()
}

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    emit(record::parse_event_object(text).and_then(|rec| to_event(rec, text, ctx)))
}

/// The fields nhid uses. `at_sign_timestamp` is Panther's name for `@timestamp`.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default, deserialize_with = "nhid_model::event::borrowed_opt")]
    actor: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    actor_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    action: Option<Cow<'a, str>>,
    #[serde(rename = "@timestamp", alias = "at_sign_timestamp", default, deserialize_with = "time_field")]
    timestamp: Option<Stamp>,
    #[serde(default, deserialize_with = "time_field")]
    created_at: Option<Stamp>,
    #[serde(default, deserialize_with = "time_field")]
    p_event_time: Option<Stamp>,
    #[serde(rename = "_document_id", borrow, default, deserialize_with = "lenient::string")]
    document_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    org: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    business: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    repo: Option<Cow<'a, str>>,
    /// Panther's samples name the repository here.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    repository: Option<Cow<'a, str>>,
    /// The user the action was about; for agent events, the person who started the session.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    actor_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    programmatic_access_type: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::flag")]
    actor_is_bot: bool,
    #[serde(default, deserialize_with = "lenient::flag")]
    actor_is_agent: bool,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    agent_session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    hashed_token: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    token_id: Option<Cow<'a, str>>,
    /// The GitHub App or OAuth app a user-to-server or OAuth token belongs to.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    integration: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    oauth_application: Option<Cow<'a, str>>,
}

fn to_event<'a>(rec: Record<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let actor = nonempty(rec.actor);
    let actor_id = nonempty(rec.actor_id);
    let tenant = nonempty(rec.business).or(nonempty(rec.org.clone()));
    let resource = nonempty(rec.repo).or(nonempty(rec.repository)).or(nonempty(rec.org));
    let id = principal_id(actor.as_deref(), actor_id.as_deref(), resource.as_ref().or(tenant.as_ref()))?;
    let time = time([rec.timestamp, rec.created_at], rec.p_event_time, ctx)?;
    let raw_fields = RawFields::new([rec.action.clone(), None, None, None, None]);
    let action = nonempty(rec.action).unwrap_or(Cow::Borrowed("unknown"));
    let outcome = outcome(&action);

    let access = nonempty(rec.programmatic_access_type);
    let access = access.as_deref().map(AccessType::parse);
    let credential_id = nonempty(rec.hashed_token).or(nonempty(rec.token_id));
    let flags = ActorFlags {
        identified: actor.is_some() || actor_id.is_some(),
        bot: rec.actor_is_bot,
        agent: rec.actor_is_agent,
    };
    let (kind, triad) = if flags.agent && flags.identified {
        // The Copilot coding agent: the person who assigned the task is `user`.
        let triad = Actor {
            delegating_user: nonempty(rec.user),
            agent_id: actor.clone(),
            session_id: nonempty(rec.agent_session_id),
            impersonator: None,
        };
        (PrincipalType::AiAgent, triad)
    } else {
        let app = nonempty(rec.integration).or(nonempty(rec.oauth_application));
        principal_type(&flags, actor.as_ref(), access, app)
    };
    let credential_kind = match access {
        Some(AccessType::ClassicPat | AccessType::FineGrainedPat | AccessType::DeployKey) => CredentialKind::StaticKey,
        Some(AccessType::OAuth | AccessType::AppUser) => CredentialKind::OauthAccessToken,
        // Installation tokens live one hour.
        Some(AccessType::AppServer) => CredentialKind::ShortLivedToken,
        Some(AccessType::Other) | None => CredentialKind::Unknown,
    };

    Ok(AuditEvent {
        // Without a document id the event is named by its bytes.
        id: nonempty(rec.document_id).unwrap_or_else(|| content_id(raw)),
        time,
        principal: Principal { id, kind, name: actor, owner: None, tenant, inferred: false },
        credential: Credential { id: credential_id, kind: credential_kind, issued_at: None, expires_at: None },
        actor: triad,
        action,
        service: Cow::Borrowed("github"),
        resource,
        outcome,
        source: Source {
            ip: nonempty(rec.actor_ip).filter(|s| s.parse::<IpAddr>().is_ok()),
            user_agent: nonempty(rec.user_agent),
            asn: None,
            country: None,
        },
        bytes_out: None,
        source_format: SourceFormat::Github,
        rules: Vec::new(),
        raw,
        raw_fields,
    })
}

/// The login is the identity: GitHub shows it everywhere and every export carries it,
/// while `actor_id` is missing from many. A numeric id serves when the login is absent.
fn principal_id<'a>(
    login: Option<&str>,
    numeric: Option<&str>,
    place: Option<&Cow<'a, str>>,
) -> Result<Cow<'a, str>, DecodeError> {
    Ok(match (login, numeric, place) {
        (Some(login), _, _) => Cow::Owned(format!("github:{login}")),
        (None, Some(numeric), _) => Cow::Owned(format!("github:id:{numeric}")),
        // Git events over SSH with a deploy key, or anonymous clones of a public repository,
        // name no actor; they are counted against the repository.
        (None, None, Some(place)) => Cow::Owned(format!("github:unattributed:{place}")),
        (None, None, None) => return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "no actor")),
    })
}

/// `@timestamp` or `created_at`; a present but unreadable one dead-letters the event, since
/// Panther's `p_event_time` and the transport's time only stand in for a missing one.
fn time(own: [Option<Stamp>; 2], panther: Option<Stamp>, ctx: &DecodeContext) -> Result<Millis, DecodeError> {
    if let Some(t) = own.iter().find_map(|s| if let Some(Stamp::At(t)) = s { Some(*t) } else { None }) {
        return Ok(t);
    }
    if own.iter().any(Option::is_some) {
        return Err(DecodeError::new(DeadLetterReason::InvalidTime, "@timestamp is not a timestamp"));
    }
    match panther {
        Some(Stamp::At(t)) => Ok(t),
        _ => ctx.fallback_time.ok_or_else(|| DecodeError::new(DeadLetterReason::MissingTime, "no @timestamp")),
    }
}

/// What GitHub itself says the actor is.
struct ActorFlags {
    /// The event names an actor, by login or by id.
    identified: bool,
    bot: bool,
    agent: bool,
}

/// The type of a non-agent actor, and the app acting for a user if one is.
fn principal_type<'a>(
    flags: &ActorFlags,
    login: Option<&Cow<'a, str>>,
    access: Option<AccessType>,
    app: Option<Cow<'a, str>>,
) -> (PrincipalType, Actor<'a>) {
    let mut triad = Actor::default();
    let kind = if !flags.identified {
        PrincipalType::Unknown
    } else if flags.bot || login.is_some_and(|l| l.ends_with("[bot]")) || access == Some(AccessType::AppServer) {
        // A GitHub App acting as itself (installation token), dependabot, github-actions.
        PrincipalType::Bot
    } else if access == Some(AccessType::DeployKey) {
        // A repository's SSH deploy key: a static machine credential that belongs to no person.
        PrincipalType::ApiKey
    } else {
        if access == Some(AccessType::AppUser) || access == Some(AccessType::OAuth) {
            // The app acts for the user and within the user's rights: the user is the
            // principal and delegates, the app is the agent.
            triad.delegating_user = login.cloned();
            triad.agent_id = app;
        }
        PrincipalType::Human
    };
    (kind, triad)
}

/// `programmatic_access_type`, in GitHub's words and in the snake-case names some exports use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AccessType {
    ClassicPat,
    FineGrainedPat,
    OAuth,
    AppServer,
    AppUser,
    DeployKey,
    Other,
}

impl AccessType {
    fn parse(s: &str) -> Self {
        let s = s.to_ascii_lowercase();
        match s.as_str() {
            "personal access token (classic)" | "personal_access_token" => AccessType::ClassicPat,
            "fine-grained personal access token" | "fine_grained_personal_access_token" => AccessType::FineGrainedPat,
            "oauth access token" | "oauth_token" | "oauth_access_token" => AccessType::OAuth,
            "github app server-to-server token" | "github_app" | "server_to_server" => AccessType::AppServer,
            "github app user-to-server token" | "user_to_server" => AccessType::AppUser,
            "deploy key" | "deploy_key" => AccessType::DeployKey,
            _ => AccessType::Other,
        }
    }
}

/// Audit events record what happened, so almost all are successes. GitHub logs refusals as
/// their own actions (`protected_branch.rejected_ref_update`, `..._denied`) and failed
/// sign-ins as `failed_*`; an actor's decision (`integration_installation_request.deny`)
/// is a success of that actor.
fn outcome(action: &str) -> Outcome {
    let operation = action.rsplit('.').next().unwrap_or(action);
    if operation.starts_with("rejected") || operation.ends_with("denied") {
        Outcome::Denied
    } else if operation.starts_with("failed") || operation.ends_with("_failed") || operation.ends_with("failure") {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

/// A time field: milliseconds since the epoch (GitHub) or a timestamp string (exports, Panther).
#[derive(Clone, Copy)]
enum Stamp {
    At(Millis),
    Invalid,
}

impl Stamp {
    /// Epoch milliseconds, outside the years RFC 3339 writes an invalid time.
    fn millis(v: Millis) -> Stamp {
        if RFC3339_RANGE.contains(&v) { Stamp::At(v) } else { Stamp::Invalid }
    }
}

fn time_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Stamp>, D::Error> {
    /// Anything present that is not a time is an invalid one, not an absent one.
    struct Time;
    impl<'de> Read<'de> for Time {
        type Value = Option<Stamp>;
        fn u64(self, v: u64) -> Self::Value {
            Some(i64::try_from(v).map_or(Stamp::Invalid, Stamp::millis))
        }
        fn i64(self, v: i64) -> Self::Value {
            Some(Stamp::millis(v))
        }
        fn f64(self, v: f64) -> Self::Value {
            let ok = v.is_finite() && v.abs() < i64::MAX as f64;
            Some(if ok { Stamp::millis(v as i64) } else { Stamp::Invalid })
        }
        fn str(self, v: &str) -> Self::Value {
            if v.is_empty() {
                return None;
            }
            let millis = || v.bytes().all(|b| b.is_ascii_digit()).then(|| v.parse().ok()).flatten();
            Some(parse_rfc3339(v).or_else(millis).map_or(Stamp::Invalid, Stamp::millis))
        }
        fn bool(self, _: bool) -> Self::Value {
            Some(Stamp::Invalid)
        }
        fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            lenient::skip_map(map).map(|()| Some(Stamp::Invalid))
        }
        fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            lenient::skip_seq(seq).map(|()| Some(Stamp::Invalid))
        }
    }
    lenient::read(d, "a timestamp", Time)
}

/// An identifier GitHub writes as a number and exports sometimes as a string.
fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Id;
    impl<'de> Read<'de> for Id {
        type Value = Option<Cow<'de, str>>;
        fn borrowed_str(self, v: &'de str) -> Self::Value {
            Some(Cow::Borrowed(v))
        }
        fn str(self, v: &str) -> Self::Value {
            Some(Cow::Owned(v.to_owned()))
        }
        fn u64(self, v: u64) -> Self::Value {
            Some(Cow::Owned(v.to_string()))
        }
        fn i64(self, v: i64) -> Self::Value {
            Some(Cow::Owned(v.to_string()))
        }
    }
    lenient::read(d, "an id", Id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;
    use proptest::prelude::*;

    crate::testing::decoder_helpers!();

    use CredentialKind as C;
    use Outcome as O;
    use PrincipalType as P;
    const NONE: [Option<&str>; 3] = [None, None, None];

    /// (case, event, type, credential, [delegating user, agent, session], outcome)
    type Case = (&'static str, &'static str, P, C, [Option<&'static str>; 3], O);

    /// Shapes from Panther's `GitHub.Audit` samples and GitHub's audit log documentation.
    const CLASSIFICATION: &[Case] = &[
        (
            "web ui action, no token",
            r#"{"actor":"cat","action":"repo.create","org":"my-org","repo":"my-org/r","created_at":1621305118553}"#,
            P::Human,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "classic pat",
            r#"{"actor":"alice","action":"git.clone","@timestamp":1623971719091,"programmatic_access_type":"Personal access token (classic)","hashed_token":"0771cae4d170dc02a6ff393d9946cd684d6145c1=","token_scopes":"repo"}"#,
            P::Human,
            C::StaticKey,
            NONE,
            O::Success,
        ),
        (
            "fine-grained pat",
            r#"{"actor":"alice","action":"repo.download_zip","@timestamp":1623971719091,"programmatic_access_type":"Fine-grained personal access token","token_id":1111111111111}"#,
            P::Human,
            C::StaticKey,
            NONE,
            O::Success,
        ),
        (
            "panther's snake-case pat",
            r#"{"action":"repo.update","actor":"developer","repo":"organization/project","programmatic_access_type":"personal_access_token","created_at":1621305118553}"#,
            P::Human,
            C::StaticKey,
            NONE,
            O::Success,
        ),
        (
            "oauth app token",
            r#"{"actor":"bob","action":"repo.access","@timestamp":1623971719091,"programmatic_access_type":"OAuth access token","oauth_application":"ci-dashboard"}"#,
            P::Human,
            C::OauthAccessToken,
            [Some("bob"), Some("ci-dashboard"), None],
            O::Success,
        ),
        (
            "github app user-to-server token",
            r#"{"actor":"bob","action":"pull_request.create","@timestamp":1623971719091,"programmatic_access_type":"GitHub App user-to-server token","integration":"review-helper"}"#,
            P::Human,
            C::OauthAccessToken,
            [Some("bob"), Some("review-helper"), None],
            O::Success,
        ),
        (
            "github app server-to-server token",
            r#"{"actor":"deploy-app[bot]","action":"repo.update","@timestamp":1623971719091,"programmatic_access_type":"GitHub App server-to-server token"}"#,
            P::Bot,
            C::ShortLivedToken,
            NONE,
            O::Success,
        ),
        (
            "panther's github_app access type, no bot suffix",
            r#"{"action":"org.update_member","actor":"malicious-ci","repo":"organization/project","programmatic_access_type":"github_app","created_at":1621305118553}"#,
            P::Bot,
            C::ShortLivedToken,
            NONE,
            O::Success,
        ),
        (
            "dependabot",
            r#"{"actor":"dependabot[bot]","action":"pull_request.create","created_at":1621305118553,"repo":"o/r"}"#,
            P::Bot,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "actor_is_bot",
            r#"{"actor":"renovate","actor_is_bot":true,"action":"git.push","created_at":1621305118553}"#,
            P::Bot,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "actor_is_bot false is a person",
            r#"{"actor":"carol","actor_is_bot":false,"actor_is_agent":false,"action":"org.add_member","created_at":1621305118553}"#,
            P::Human,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "copilot coding agent",
            r#"{"actor":"Copilot","actor_is_agent":true,"agent_session_id":"012345a6-b7c8-9012-de3f-45gh678i9012","user":"octocat","action":"pull_request.create","@timestamp":1623971719091}"#,
            P::AiAgent,
            C::Unknown,
            [Some("octocat"), Some("Copilot"), Some("012345a6-b7c8-9012-de3f-45gh678i9012")],
            O::Success,
        ),
        (
            "agent without a session",
            r#"{"actor":"Copilot","actor_is_agent":"true","action":"git.push","@timestamp":1623971719091}"#,
            P::AiAgent,
            C::Unknown,
            [None, Some("Copilot"), None],
            O::Success,
        ),
        (
            "deploy key",
            r#"{"action":"git.push","actor":"gem-installer","repo":"organization/ruby-app","programmatic_access_type":"deploy_key","created_at":1621305118553}"#,
            P::ApiKey,
            C::StaticKey,
            NONE,
            O::Success,
        ),
        (
            "push rejected by branch protection",
            r#"{"actor":"alice","action":"protected_branch.rejected_ref_update","created_at":1621305118553}"#,
            P::Human,
            C::Unknown,
            NONE,
            O::Denied,
        ),
        (
            "failed sign-in",
            r#"{"actor":"alice","action":"user.failed_login","created_at":1621305118553}"#,
            P::Human,
            C::Unknown,
            NONE,
            O::Failure,
        ),
        (
            "a person denying a request succeeded",
            r#"{"actor":"owner","action":"integration_installation_request.deny","created_at":1621305118553}"#,
            P::Human,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "git push without an actor",
            r#"{"@timestamp":1623971719091,"business":"","org":"my-org","repo":"my-org/my-repo","action":"git.push","protocol_name":"ssh","actor":"","user":""}"#,
            P::Unknown,
            C::Unknown,
            NONE,
            O::Success,
        ),
        (
            "unknown access type",
            r#"{"actor":"svc-sync","action":"repo.access","created_at":1621305118553,"programmatic_access_type":"something new"}"#,
            P::Human,
            C::Unknown,
            NONE,
            O::Success,
        ),
    ];

    #[test]
    fn classifies_principals_from_githubs_own_fields() {
        assert!(CLASSIFICATION.len() >= 15);
        for (case, json, kind, credential, triad, outcome) in CLASSIFICATION {
            let e = one(json).unwrap_or_else(|err| panic!("{case}: {err}"));
            assert_eq!(e.principal.kind, *kind, "{case}");
            assert_eq!(e.credential.kind, *credential, "{case}");
            assert_eq!(&crate::testing::triad(&e), triad, "{case}");
            assert_eq!(e.outcome, *outcome, "{case}");
            assert_eq!(e.source_format, SourceFormat::Github);
            assert!(detect(json.as_bytes()), "{case}");
        }
    }

    #[test]
    fn maps_the_event_and_keeps_ids_stable() {
        let text = r#"{"@timestamp":1623971719091,"_document_id":"Z7JUOWzi2wKeWsZcOhbS9w","action":"git.clone","actor":"alice","actor_id":12345,"actor_ip":"203.0.113.7","user_agent":"git/2.39.3","org":"acme","business":"acme-ent","repo":"acme/api","programmatic_access_type":"Personal access token (classic)","hashed_token":"abc=","token_id":99}"#;
        let e = one(text).unwrap();
        assert_eq!(e.id, "Z7JUOWzi2wKeWsZcOhbS9w");
        assert_eq!(e.time, 1623971719091);
        assert_eq!(e.principal.id, "github:alice");
        assert_eq!(e.principal.tenant.as_deref(), Some("acme-ent"));
        assert_eq!(e.credential.id.as_deref(), Some("abc="), "the hashed token, not the token id");
        assert_eq!((e.action.as_ref(), e.service.as_ref()), ("git.clone", "github"));
        assert_eq!(e.resource.as_deref(), Some("acme/api"));
        assert_eq!(e.source.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(e.source.user_agent.as_deref(), Some("git/2.39.3"));
        assert!(matches!(e.action, Cow::Borrowed(_)), "strings borrow from the input");
        // The same identity in another export shape gets the same id.
        let panther = r#"{"actor":"alice","action":"repo.create","at_sign_timestamp":"2022-08-16 16:56:49.309"}"#;
        let p = one(panther).unwrap();
        assert_eq!(p.principal.id, e.principal.id);
        assert_eq!(p.time, parse_rfc3339("2022-08-16T16:56:49.309Z").unwrap());
        assert_eq!(one(panther).unwrap().id, p.id, "an event without _document_id is named by its bytes");
    }

    #[test]
    fn time_comes_from_the_event_then_the_transport() {
        let ctx = DecodeContext { fallback_time: Some(7), ..Default::default() };
        let no_time = r#"{"actor":"cat","action":"hook.create"}"#;
        assert_eq!(decode_all(no_time, &ctx)[0].as_ref().unwrap().time, 7);
        assert_eq!(one(no_time).unwrap_err().reason, DeadLetterReason::MissingTime);
        let float = r#"{"actor":"cat","action":"x.y","created_at":1621305118553.0}"#;
        assert_eq!(one(float).unwrap().time, 1621305118553);
        let bad = r#"{"actor":"cat","action":"x.y","created_at":"yesterday"}"#;
        assert_eq!(decode_all(bad, &ctx)[0].as_ref().unwrap_err().reason, DeadLetterReason::InvalidTime);
    }

    /// Found by fuzzing: microseconds read as milliseconds made an event of the year 53,660,
    /// whose canonical JSON (and alerts) carried a time no RFC 3339 reader takes.
    #[test]
    fn a_number_outside_the_years_rfc3339_writes_is_an_invalid_time() {
        for created_at in ["1631205105118553", "\"1631205105118553\"", "-99999999999999", "1.6e15"] {
            let text = format!(r#"{{"actor":"cat","action":"x.y","created_at":{created_at}}}"#);
            assert_eq!(one(&text).unwrap_err().reason, DeadLetterReason::InvalidTime, "{text}");
        }
    }

    #[test]
    fn only_the_actor_is_essential() {
        let odd = r#"{"actor":"cat","action":5,"org":[],"actor_ip":"not an ip","token_id":{},"actor_is_bot":null,"created_at":1}"#;
        let e = one(odd).unwrap();
        assert_eq!((e.action.as_ref(), e.resource, e.source.ip), ("unknown", None, None));
        let no_actor = r#"{"action":"not_repository_vulnerability_alert.dismiss","created_at":1}"#;
        assert_eq!(one(no_actor).unwrap_err().reason, DeadLetterReason::MissingPrincipal);
        let anonymous = r#"{"actor":"","action":"git.clone","repo":"o/r","created_at":1}"#;
        assert_eq!(one(anonymous).unwrap().principal.id, "github:unattributed:o/r");
        let numeric = r#"{"actor_id":42,"action":"repo.create","created_at":1}"#;
        assert_eq!(one(numeric).unwrap().principal.id, "github:id:42");
        let wrong = r#"{"actor":{"login":"SECRETVALUE"},"action":"repo.create","created_at":1}"#;
        let err = one(wrong).unwrap_err();
        assert_eq!(err.reason, DeadLetterReason::WrongType);
        assert!(!err.detail.contains("SECRETVALUE"), "{}", err.detail);
        assert_eq!(one("[1,2]").unwrap_err().reason, DeadLetterReason::WrongType);
    }

    #[test]
    fn detection_needs_a_string_actor_and_an_action() {
        assert!(detect(br#"{"actor" : "cat", "action": "repo.create"}"#));
        assert!(!detect(br#"{"actor":{"id":"x"},"action":"s3:GetObject","principal":{"id":"x"}}"#));
        assert!(!detect(br#"{"action":"opened","sender":{"login":"cat"}}"#));
        assert!(!detect(br#"{"actor":"cat"}"#));
    }

    proptest! {
        #[test]
        fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-zA-Z0-9 .\-_@\\]{0,200}"#) {
            let _ = decode_all(&s, &DecodeContext::default());
            let mut sink = |_| {};
            crate::decode(s.as_bytes(), Format::Github, &DecodeContext::default(), &mut sink);
        }

        #[test]
        fn keys_with_arbitrary_values_never_panic(
            key in prop::sample::select(vec!["actor", "actor_id", "action", "@timestamp", "created_at", "at_sign_timestamp",
                "programmatic_access_type", "actor_is_agent", "token_id", "actor_ip", "user"]),
            value in r#"(null|true|-?[0-9]{1,22}(\.[0-9]+)?(e[0-9]{1,3})?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"a":1\})"#,
        ) {
            let text = format!(r#"{{"actor":"cat","action":"repo.create","{key}":{value}}}"#);
            let _ = decode_all(&text, &DecodeContext { fallback_time: Some(0), ..Default::default() });
        }
    }
}
