//! AWS CloudTrail: one record, a `{"Records":[...]}` document, or one record per message.
//!
//! Records are parsed straight into borrowed structs: strings point into the message, and
//! everything the detector does not need is skipped by the parser without being built.
//! Real exports and the samples detection teams write by hand disagree on shapes (Panther
//! spells keys in lowercase, `responseElements` is an object, `null` or a string), so optional
//! fields that have the wrong type read as absent; only a wrong-typed essential field
//! (`eventTime`, `eventName`, `eventSource`, `userIdentity`) dead-letters the record.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;
use serde::de::IgnoredAny;
use sonic_rs::JsonValueTrait;

use super::{DecodeContext, DecodeError};
use lenient::{nonempty, strict_map};
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, Source, SourceFormat,
};
use nhid_model::time::parse_rfc3339;
use nhid_model::vocab::DeadLetterReason;

pub fn decode<'a>(text: &'a str, ctx: &DecodeContext, emit: &mut dyn FnMut(Result<AuditEvent<'a>, DecodeError>)) {
    if let Some(split) = split_delivery_document(text) {
        return match split {
            Ok(records) => {
                for (i, raw) in records.into_iter().enumerate() {
                    emit(decode_record(raw, ctx).map_err(|e| e.in_record(i)));
                }
            }
            Err(e) => emit(Err(e)),
        };
    }
    // Any other layout: one pass reads a single record or, in a `Records` document, only
    // notes the array, whose records are then decoded one by one so that one bad record
    // loses only itself.
    let top = match parse_record(text) {
        Ok(r) => r,
        Err(e) => return emit(Err(e)),
    };
    if top.records.is_none() {
        return emit(to_event(top, text, ctx));
    }
    let array = match sonic_rs::get(text, ["Records"]) {
        Ok(v) => v,
        Err(e) => return emit(Err(json_error(&e))),
    };
    if !array.is_array() {
        return emit(Err(DecodeError::new(DeadLetterReason::WrongType, "records is not an array")));
    }
    // A `&str` input yields slices of itself; an owned copy would mean sonic-rs changed that.
    let Cow::Borrowed(array) = array.as_raw_cow() else {
        return emit(Err(DecodeError::new(DeadLetterReason::WrongType, "records array not borrowable")));
    };
    for (i, item) in sonic_rs::to_array_iter(array).enumerate() {
        let item = match item {
            Ok(v) => v,
            // The array is validated above, so this is unreachable in practice; stop, the rest is unreadable.
            Err(e) => return emit(Err(json_error(&e).in_record(i))),
        };
        let Cow::Borrowed(raw) = item.as_raw_cow() else {
            emit(Err(DecodeError::new(DeadLetterReason::WrongType, "record not borrowable").in_record(i)));
            continue;
        };
        emit(decode_record(raw, ctx).map_err(|e| e.in_record(i)));
    }
}

fn decode_record<'a>(raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    parse_record(raw).and_then(|r| to_event(r, raw, ctx))
}

/// CloudTrail delivers `{"Records":[...]}` and nothing else. That layout is split into its
/// records in one validating pass (the general path needs three), so a document costs
/// about what its records cost one per message. `None`: another layout, for the general path;
/// `Some(Err)`: the array is not valid JSON, so no record can be trusted.
fn split_delivery_document(text: &str) -> Option<Result<Vec<&str>, DecodeError>> {
    fn ws(s: &str) -> &str {
        s.trim_start_matches([' ', '\t', '\n', '\r'])
    }
    let array = ws(ws(ws(ws(text).strip_prefix('{')?).strip_prefix("\"Records\"")?).strip_prefix(':')?);
    if !array.starts_with('[') {
        return None;
    }
    let mut records = Vec::new();
    let mut end = text.len() - array.len() + 1;
    for item in sonic_rs::to_array_iter(array) {
        let item = match item {
            Ok(v) => v,
            Err(e) => return Some(Err(json_error(&e))),
        };
        let Cow::Borrowed(raw) = item.as_raw_cow() else {
            return None;
        };
        end = (raw.as_ptr() as usize).checked_sub(text.as_ptr() as usize)? + raw.len();
        records.push(raw);
    }
    let rest = ws(ws(text.get(end..)?).strip_prefix(']')?).strip_prefix('}')?;
    ws(rest).is_empty().then_some(Ok(records))
}

fn parse_record(raw: &str) -> Result<Record<'_>, DecodeError> {
    // serde would read an array positionally into the struct's fields.
    if raw.trim_start().starts_with('[') {
        return Err(DecodeError::new(DeadLetterReason::WrongType, "a record is a json object, not an array"));
    }
    sonic_rs::from_str(raw).map_err(|e| json_error(&e))
}

/// Parser errors may quote a fragment of the input after a newline; the input can hold
/// secrets (request parameters), so only the first line is kept.
fn json_error(e: &sonic_rs::Error) -> DecodeError {
    let mut err = DecodeError::from_json(e);
    if let Some(cut) = err.detail.find('\n') {
        err.detail.truncate(cut);
    }
    err
}

/// The fields of a CloudTrail record nhid uses. Aliases are the lowercase spellings of
/// Panther's samples; unknown fields are skipped unread.
#[derive(Deserialize)]
struct Record<'a> {
    /// Present only on a `{"Records":[...]}` document; its content is read separately.
    #[serde(rename = "Records", default)]
    records: Option<IgnoredAny>,
    #[serde(rename = "eventID", alias = "eventid", borrow, default, deserialize_with = "lenient::string")]
    event_id: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventTime",
        alias = "eventtime",
        borrow,
        default,
        deserialize_with = "nhid_model::event::borrowed_opt"
    )]
    event_time: Option<Cow<'a, str>>,
    /// Panther's normalized time; its samples sometimes carry only this.
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    p_event_time: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventSource",
        alias = "eventsource",
        borrow,
        default,
        deserialize_with = "nhid_model::event::borrowed_opt"
    )]
    event_source: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventName",
        alias = "eventname",
        borrow,
        default,
        deserialize_with = "nhid_model::event::borrowed_opt"
    )]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventType", alias = "eventtype", borrow, default, deserialize_with = "lenient::string")]
    event_type: Option<Cow<'a, str>>,
    #[serde(rename = "userIdentity", alias = "useridentity", borrow, default, deserialize_with = "strict_map")]
    user_identity: Option<UserIdentity<'a>>,
    #[serde(
        rename = "recipientAccountId",
        alias = "recipientaccountid",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    recipient_account_id: Option<Cow<'a, str>>,
    #[serde(
        rename = "sourceIPAddress",
        alias = "sourceipaddress",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    source_ip_address: Option<Cow<'a, str>>,
    #[serde(rename = "userAgent", alias = "useragent", borrow, default, deserialize_with = "lenient::string")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(rename = "errorCode", alias = "errorcode", borrow, default, deserialize_with = "lenient::string")]
    error_code: Option<Cow<'a, str>>,
    #[serde(
        rename = "responseElements",
        alias = "responseelements",
        borrow,
        default,
        deserialize_with = "lenient::map"
    )]
    response_elements: Option<ResponseElements<'a>>,
    #[serde(rename = "additionalEventData", alias = "additionaleventdata", default, deserialize_with = "lenient::map")]
    additional_event_data: Option<AdditionalEventData>,
    #[serde(borrow, default, deserialize_with = "first_resource_arn")]
    resources: Option<Cow<'a, str>>,
    /// Set by CloudTrail when the session's credentials were issued to the console.
    #[serde(
        rename = "sessionCredentialFromConsole",
        alias = "sessioncredentialfromconsole",
        default,
        deserialize_with = "lenient::flag"
    )]
    session_credential_from_console: bool,
}

#[derive(Deserialize)]
struct UserIdentity<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "lenient::string")]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "principalId", alias = "principalid", borrow, default, deserialize_with = "lenient::string")]
    principal_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "accountId", alias = "accountid", borrow, default, deserialize_with = "lenient::string")]
    account_id: Option<Cow<'a, str>>,
    #[serde(rename = "accessKeyId", alias = "accesskeyid", borrow, default, deserialize_with = "lenient::string")]
    access_key_id: Option<Cow<'a, str>>,
    #[serde(rename = "userName", alias = "username", borrow, default, deserialize_with = "lenient::string")]
    user_name: Option<Cow<'a, str>>,
    #[serde(rename = "invokedBy", alias = "invokedby", borrow, default, deserialize_with = "lenient::string")]
    invoked_by: Option<Cow<'a, str>>,
    #[serde(rename = "sessionContext", alias = "sessioncontext", borrow, default, deserialize_with = "lenient::map")]
    session_context: Option<SessionContext<'a>>,
}

#[derive(Deserialize)]
struct SessionContext<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::map")]
    attributes: Option<SessionAttributes<'a>>,
    #[serde(rename = "sessionIssuer", alias = "sessionissuer", borrow, default, deserialize_with = "lenient::map")]
    session_issuer: Option<SessionIssuer<'a>>,
    /// Only instance-profile credentials delivered by IMDS carry it; its content does not matter.
    #[serde(rename = "ec2RoleDelivery", alias = "ec2roledelivery", default)]
    ec2_role_delivery: Option<IgnoredAny>,
    #[serde(
        rename = "sourceIdentity",
        alias = "sourceidentity",
        borrow,
        default,
        deserialize_with = "lenient::string"
    )]
    source_identity: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct SessionAttributes<'a> {
    #[serde(rename = "creationDate", alias = "creationdate", borrow, default, deserialize_with = "lenient::string")]
    creation_date: Option<Cow<'a, str>>,
    #[serde(rename = "mfaAuthenticated", alias = "mfaauthenticated", default, deserialize_with = "lenient::flag")]
    mfa_authenticated: bool,
}

#[derive(Deserialize)]
struct SessionIssuer<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::string")]
    arn: Option<Cow<'a, str>>,
    #[serde(rename = "userName", alias = "username", borrow, default, deserialize_with = "lenient::string")]
    user_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponseElements<'a> {
    #[serde(rename = "ConsoleLogin", alias = "consolelogin", borrow, default, deserialize_with = "lenient::string")]
    console_login: Option<Cow<'a, str>>,
    /// IAM `CreateAccessKey`: the key it created (its id only; CloudTrail omits the secret).
    #[serde(rename = "accessKey", alias = "accesskey", borrow, default, deserialize_with = "lenient::map")]
    access_key: Option<AccessKey<'a>>,
}

#[derive(Deserialize)]
struct AccessKey<'a> {
    #[serde(rename = "accessKeyId", alias = "accesskeyid", borrow, default, deserialize_with = "lenient::string")]
    access_key_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AdditionalEventData {
    #[serde(
        rename = "bytesTransferredOut",
        alias = "bytestransferredout",
        default,
        deserialize_with = "lenient::unsigned"
    )]
    bytes_transferred_out: Option<u64>,
}

fn to_event<'a>(rec: Record<'a>, raw: &'a str, ctx: &DecodeContext) -> Result<AuditEvent<'a>, DecodeError> {
    let event_name = nonempty(rec.event_name);
    if rec.user_identity.is_none() && event_name.is_none() {
        return Err(DecodeError::new(DeadLetterReason::MissingPrincipal, "no useridentity and no eventname"));
    }
    let time = match (rec.event_time, nonempty(rec.p_event_time).and_then(|t| parse_rfc3339(&t))) {
        (Some(t), _) => parse_rfc3339(&t)
            .ok_or_else(|| DecodeError::new(DeadLetterReason::InvalidTime, "eventtime is not a timestamp"))?,
        (None, Some(t)) => t,
        (None, None) => {
            ctx.fallback_time.ok_or_else(|| DecodeError::new(DeadLetterReason::MissingTime, "no eventtime"))?
        }
    };
    // Without an eventID the record is named by its bytes, so a redelivered copy keeps its id.
    let id = nonempty(rec.event_id)
        .unwrap_or_else(|| Cow::Owned(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(raw.as_bytes()))));

    let service = nonempty(rec.event_source)
        .and_then(|s| project(&s, |s| Some(s.strip_suffix(".amazonaws.com").unwrap_or(s))))
        .filter(|s| !s.is_empty())
        .unwrap_or(Cow::Borrowed("aws"));
    let action = Cow::Owned(format!("{service}:{}", event_name.as_deref().unwrap_or("unknown")));

    let error_code = nonempty(rec.error_code);
    let (console_login, created_key) = match rec.response_elements {
        Some(r) => (r.console_login, r.access_key.and_then(|k| nonempty(k.access_key_id))),
        None => (None, None),
    };
    let console_failed = console_login.is_some_and(|c| c == "Failure");
    let outcome = match error_code.as_deref() {
        Some(code) if is_denial(code) => Outcome::Denied,
        Some(_) => Outcome::Failure,
        None if console_failed => Outcome::Failure,
        None => Outcome::Success,
    };

    let ip = nonempty(rec.source_ip_address).filter(|s| s.parse::<IpAddr>().is_ok());
    let mut user_agent = nonempty(rec.user_agent);
    let signals = Signals {
        console_event: rec.event_type.as_deref() == Some("AwsConsoleSignIn")
            || event_name.as_deref() == Some("ConsoleLogin")
            || rec.session_credential_from_console,
        console_login: event_name.as_deref() == Some("ConsoleLogin"),
        browser: user_agent.as_deref().is_some_and(is_console_agent),
    };
    let identity = classify(rec.user_identity, nonempty(rec.recipient_account_id), &signals);
    if user_agent.is_none() {
        // The AWS service that acted is the closest thing to a client this call has.
        user_agent = identity.invoked_by.clone();
    }

    Ok(AuditEvent {
        id,
        time,
        principal: identity.principal,
        credential: identity.credential,
        actor: identity.actor,
        action,
        service,
        // CloudTrail lists no resource for a new access key, yet the key is what the call
        // acted on, and what a responder revokes.
        resource: nonempty(rec.resources).or(created_key),
        outcome,
        source: Source { ip, user_agent, asn: None, country: None },
        bytes_out: rec.additional_event_data.and_then(|d| d.bytes_transferred_out),
        source_format: SourceFormat::Cloudtrail,
    })
}

/// `Client.`/`Server.` prefixes are EC2's; `VpceAccessDenied` is a VPC endpoint policy denial.
fn is_denial(code: &str) -> bool {
    let code = code.strip_prefix("Client.").or_else(|| code.strip_prefix("Server.")).unwrap_or(code);
    code.contains("AccessDenied")
        || code.starts_with("Unauthorized")
        || code.contains("NotAuthorized")
        || code.contains("Forbidden")
}

/// What the record says about how the call was made, beyond `userIdentity`.
struct Signals {
    /// A console sign-in or a call made with console session credentials.
    console_event: bool,
    /// The sign-in itself, which authenticates with a password (or SSO, for roles).
    console_login: bool,
    /// A browser or console user agent: with temporary keys, a person at the console.
    browser: bool,
}

struct Identity<'a> {
    principal: Principal<'a>,
    credential: Credential<'a>,
    actor: Actor<'a>,
    invoked_by: Option<Cow<'a, str>>,
}

fn classify<'a>(ui: Option<UserIdentity<'a>>, recipient: Option<Cow<'a, str>>, signals: &Signals) -> Identity<'a> {
    let Some(ui) = ui else {
        let id = format!("aws:unattributed:{}", recipient.as_deref().unwrap_or("-"));
        return Identity {
            principal: Principal {
                id: Cow::Owned(id),
                kind: PrincipalType::Unknown,
                name: None,
                owner: None,
                tenant: recipient,
            },
            credential: Credential::default(),
            actor: Actor::default(),
            invoked_by: None,
        };
    };
    let account = nonempty(ui.account_id);
    let arn = nonempty(ui.arn);
    let principal_id = nonempty(ui.principal_id);
    let user_name = nonempty(ui.user_name);
    let invoked_by = nonempty(ui.invoked_by);
    let key = nonempty(ui.access_key_id);
    let (attributes, issuer, ec2_delivery, source_identity) = match ui.session_context {
        Some(c) => (c.attributes, c.session_issuer, c.ec2_role_delivery.is_some(), nonempty(c.source_identity)),
        None => (None, None, false, None),
    };
    let mfa = attributes.as_ref().is_some_and(|a| a.mfa_authenticated);
    let issued_at = attributes.and_then(|a| a.creation_date).and_then(|d| parse_rfc3339(&d));
    let temporary_key = key.as_deref().is_some_and(|k| k.starts_with("ASIA"));
    let console = signals.console_event || mfa || (temporary_key && signals.browser);
    let unattributed =
        || Cow::Owned(format!("aws:unattributed:{}", account.as_deref().or(recipient.as_deref()).unwrap_or("-")));
    let by_account = |a: &Option<Cow<'a, str>>| a.as_deref().map(|a| Cow::Owned(format!("aws:account:{a}")));

    let mut session_id = None;
    let (id, name, kind, password_login) = match ui.kind.as_deref().unwrap_or("") {
        "IAMUser" => {
            let derived = || match (&account, &user_name) {
                (Some(a), Some(u)) => Some(Cow::Owned(format!("arn:aws:iam::{a}:user/{u}"))),
                _ => None,
            };
            let id = arn.or_else(derived).or(principal_id).unwrap_or_else(unattributed);
            // Programmatic IAM users with static keys are the classic non-human identity.
            let kind = if console { PrincipalType::Human } else { PrincipalType::ServiceAccount };
            (id, user_name, kind, true)
        }
        "AssumedRole" => {
            let parsed = arn.as_ref().and_then(AssumedRoleArn::parse);
            session_id = parsed
                .as_ref()
                .map(|p| p.session.clone())
                .or_else(|| principal_id.as_ref().and_then(|p| project(p, |p| p.split_once(':').map(|(_, s)| s))));
            let (issuer_arn, issuer_name) = match issuer {
                Some(i) => (nonempty(i.arn), nonempty(i.user_name)),
                None => (None, None),
            };
            let role = issuer_name.or_else(|| parsed.as_ref().map(|p| p.role.clone()));
            // The identity is the role: its sessions come and go, its baseline should not.
            let id = issuer_arn
                .or_else(|| parsed.as_ref().map(AssumedRoleArn::role_arn))
                .or(arn)
                .or(principal_id)
                .unwrap_or_else(unattributed);
            let session = session_id.as_deref().unwrap_or("");
            let kind = if ec2_delivery || is_instance_id(session) {
                PrincipalType::Workload
            } else if console || role.as_deref().is_some_and(|r| r.starts_with("AWSReservedSSO_")) || is_email(session)
            {
                // A person at the console (role switching, MFA) or behind SSO. The role stays
                // human for nhid from then on, so automation sharing it is never auto-revoked.
                PrincipalType::Human
            } else {
                PrincipalType::ServiceAccount
            };
            (id, role, kind, false)
        }
        "Root" => {
            let id = arn.or_else(|| account.as_ref().map(|a| Cow::Owned(format!("arn:aws:iam::{a}:root"))));
            (id.or(principal_id).unwrap_or_else(unattributed), user_name, PrincipalType::Human, true)
        }
        "FederatedUser" | "SAMLUser" | "IdentityCenterUser" => {
            let id = arn.or(principal_id).or_else(|| user_name.clone()).unwrap_or_else(unattributed);
            (id, user_name, PrincipalType::Human, false)
        }
        "WebIdentityUser" => {
            let id = arn.or(principal_id).or_else(|| user_name.clone()).unwrap_or_else(unattributed);
            (id, user_name, PrincipalType::Workload, false)
        }
        "AWSService" => {
            let id = invoked_by.clone().or(principal_id).unwrap_or_else(unattributed);
            (id, None, PrincipalType::Workload, false)
        }
        "AWSAccount" | "Unknown" => {
            let id = principal_id.or_else(|| by_account(&account)).or(arn).unwrap_or_else(unattributed);
            (id, user_name, PrincipalType::Unknown, false)
        }
        // No or an unrecognized type: hand-made samples, or a type AWS added later.
        _ => {
            let id = arn.or(principal_id).or_else(|| by_account(&account)).unwrap_or_else(unattributed);
            (id, user_name, PrincipalType::Unknown, false)
        }
    };
    // A call an AWS service made on the principal's behalf is not a person at a keyboard,
    // unless the service is the sign-in page or the console the person is using.
    let by_machine = invoked_by.as_deref().is_some_and(|by| by != "signin.amazonaws.com" && !is_console_agent(by));
    let kind = if by_machine && kind == PrincipalType::Human { PrincipalType::Workload } else { kind };

    let credential_kind = match key.as_deref() {
        Some(k) if k.starts_with("AKIA") => CredentialKind::StaticKey,
        Some(k) if k.starts_with("ASIA") && console => CredentialKind::Session,
        Some(k) if k.starts_with("ASIA") => CredentialKind::ShortLivedToken,
        None if signals.console_login && password_login => CredentialKind::Password,
        _ => CredentialKind::Unknown,
    };
    Identity {
        principal: Principal { id, kind, name, owner: None, tenant: account.or(recipient) },
        credential: Credential { id: key, kind: credential_kind, issued_at, expires_at: None },
        actor: Actor { delegating_user: source_identity, agent_id: None, session_id },
        invoked_by,
    }
}

/// `arn:<partition>:sts::<account>:assumed-role/<role>/<session>`.
struct AssumedRoleArn<'a> {
    partition: Cow<'a, str>,
    account: Cow<'a, str>,
    role: Cow<'a, str>,
    session: Cow<'a, str>,
}

impl<'a> AssumedRoleArn<'a> {
    fn parse(arn: &Cow<'a, str>) -> Option<Self> {
        fn split(s: &str) -> Option<[&str; 4]> {
            let mut fields = s.splitn(6, ':');
            let (arn, partition, service) = (fields.next()?, fields.next()?, fields.next()?);
            let (_region, account, resource) = (fields.next()?, fields.next()?, fields.next()?);
            if arn != "arn" || service != "sts" {
                return None;
            }
            let (role, session) = resource.strip_prefix("assumed-role/")?.split_once('/')?;
            let parts = [partition, account, role, session];
            parts.iter().all(|p| !p.is_empty()).then_some(parts)
        }
        let [partition, account, role, session] = match arn {
            Cow::Borrowed(s) => split(s)?.map(Cow::Borrowed),
            Cow::Owned(s) => split(s)?.map(|p| Cow::Owned(p.to_owned())),
        };
        Some(AssumedRoleArn { partition, account, role, session })
    }

    /// Role paths are not part of a session ARN, so a role under a path gets its path-less ARN.
    fn role_arn(&self) -> Cow<'a, str> {
        Cow::Owned(format!("arn:{}:iam::{}:role/{}", self.partition, self.account, self.role))
    }
}

/// A browser, or the console acting for one (`console.amazonaws.com`, `console.ec2.amazonaws.com`).
fn is_console_agent(ua: &str) -> bool {
    ua.starts_with("Mozilla/") || (ua.starts_with("console.") && ua.ends_with(".amazonaws.com"))
}

/// EC2 instance ids: `i-` and 8 or 17 hex digits.
fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|h| h.len() >= 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Console and SSO sessions are named after the person's email.
fn is_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace))
}

/// A part of a string that keeps borrowing from the input when the string does.
fn project<'a>(s: &Cow<'a, str>, part: impl FnOnce(&str) -> Option<&str>) -> Option<Cow<'a, str>> {
    match s {
        Cow::Borrowed(s) => part(s).map(Cow::Borrowed),
        Cow::Owned(s) => part(s).map(|p| Cow::Owned(p.to_owned())),
    }
}

/// `resources[]` is a list of `{ARN, accountId, type}`; only the first ARN names the target.
fn first_resource_arn<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Resources;
    impl<'de> serde::de::Visitor<'de> for Resources {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of resources")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut first = None;
            while let Some(r) = seq.next_element::<Resource<'de>>()? {
                if first.is_none() {
                    first = nonempty(r.0.and_then(|r| r.arn));
                }
            }
            Ok(first)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            lenient::skip_map(map).map(|_| None)
        }
        lenient::absent_scalars!();
    }
    /// One element; anything but an object (a stringified dict in some samples) is skipped.
    struct Resource<'a>(Option<ResourceFields<'a>>);
    impl<'de> Deserialize<'de> for Resource<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            lenient::map(d).map(Resource)
        }
    }
    #[derive(Deserialize)]
    struct ResourceFields<'a> {
        #[serde(rename = "ARN", alias = "arn", borrow, default, deserialize_with = "lenient::string")]
        arn: Option<Cow<'a, str>>,
    }
    d.deserialize_any(Resources)
}

/// Optional fields whose type varies in the wild: a value of the wrong type reads as absent
/// (and is skipped by the parser) instead of failing the record.
pub(super) mod lenient {
    /// Empty strings in the data mean absent (`"accessKeyId": ""` on a root console event).
    pub fn nonempty<'a>(s: Option<Cow<'a, str>>) -> Option<Cow<'a, str>> {
        s.filter(|s| !s.is_empty())
    }

    /// An essential object: `null` reads as absent, any other non-object is a wrong type.
    pub fn strict_map<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
        struct MapVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for MapVisitor<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_map(self)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
            }
        }
        d.deserialize_option(MapVisitor(std::marker::PhantomData))
    }

    use std::borrow::Cow;
    use std::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// Scalars that are not what the visitor wants: absent.
    macro_rules! absent_scalars {
        () => {
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Default::default())
            }
        };
    }
    pub(crate) use absent_scalars;

    pub fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    pub fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    /// A string, borrowed where the input allows; any other type reads as absent.
    /// (Essential strings use `nhid_model::event::borrowed_opt`, which refuses other types.)
    pub struct StrVisitor;

    impl<'de> Visitor<'de> for StrVisitor {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|_| None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|_| None)
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
        d.deserialize_any(StrVisitor)
    }

    /// An object read as `T`; anything else is absent.
    pub fn map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
        struct MapVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for MapVisitor<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|_| None)
            }
            absent_scalars!();
        }
        d.deserialize_any(MapVisitor(PhantomData))
    }

    /// A non-negative number; a fraction is truncated.
    pub fn unsigned<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        struct NumberVisitor;
        impl<'de> Visitor<'de> for NumberVisitor {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(v).ok())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok((v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|_| None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|_| None)
            }
        }
        d.deserialize_any(NumberVisitor)
    }

    /// `true` or `"true"` (CloudTrail writes booleans as strings in `sessionContext`).
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct FlagVisitor;
        impl<'de> Visitor<'de> for FlagVisitor {
            type Value = bool;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
                Ok(v.eq_ignore_ascii_case("true"))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
                skip_map(map).map(|_| false)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
                skip_seq(seq).map(|_| false)
            }
        }
        d.deserialize_any(FlagVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ACCT: &str = "123456789012";
    const T0: &str = "2024-05-01T12:00:00Z";

    fn decode_all<'a>(text: &'a str, ctx: &DecodeContext) -> Vec<Result<AuditEvent<'a>, DecodeError>> {
        let mut out = Vec::new();
        decode(text, ctx, &mut |r| out.push(r));
        out
    }

    fn one(text: &str) -> Result<AuditEvent<'_>, DecodeError> {
        let mut out = decode_all(text, &DecodeContext::default());
        assert_eq!(out.len(), 1, "{text}");
        out.remove(0)
    }

    /// A record around a `userIdentity` snippet (empty: no `userIdentity` at all) and extra
    /// top-level fields, which replace the defaults of the same name.
    fn record(ui: &str, extra: &str) -> String {
        let time = format!(r#""{T0}""#);
        let account = format!(r#""{ACCT}""#);
        let defaults = [
            ("eventTime", time.as_str()),
            ("eventSource", r#""s3.amazonaws.com""#),
            ("eventName", r#""GetObject""#),
            ("recipientAccountId", account.as_str()),
            ("sourceIPAddress", r#""203.0.113.7""#),
            ("userAgent", r#""aws-cli/2.15.0 Python/3.11""#),
        ];
        let mut fields: Vec<String> = defaults
            .iter()
            .filter(|(k, _)| !extra.contains(&format!(r#""{k}""#)))
            .map(|(k, v)| format!(r#""{k}":{v}"#))
            .collect();
        if !ui.is_empty() {
            fields.push(format!(r#""userIdentity":{ui}"#));
        }
        if !extra.is_empty() {
            fields.push(extra.to_string());
        }
        format!("{{{}}}", fields.join(","))
    }

    const MOZILLA: &str = r#""userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)""#;

    /// (case, userIdentity, extra fields, expected principal type, expected credential kind)
    const CLASSIFICATION: &[(&str, &str, &str, PrincipalType, CredentialKind)] = &[
        (
            "iam user, programmatic, static key",
            r#"{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/ci-deployer","accountId":"123456789012","accessKeyId":"AKIAIOSFODNN7EXAMPLE","userName":"ci-deployer"}"#,
            "",
            PrincipalType::ServiceAccount,
            CredentialKind::StaticKey,
        ),
        (
            "iam user, console sign-in",
            r#"{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","userName":"alice"}"#,
            r#""eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn","eventSource":"signin.amazonaws.com""#,
            PrincipalType::Human,
            CredentialKind::Password,
        ),
        (
            "iam user, console session with mfa",
            r#"{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE01","userName":"alice","sessionContext":{"attributes":{"creationDate":"2024-05-01T11:00:00Z","mfaAuthenticated":"true"}}}"#,
            "",
            PrincipalType::Human,
            CredentialKind::Session,
        ),
        (
            "iam user, temporary key from a browser",
            r#"{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE01","userName":"alice"}"#,
            MOZILLA,
            PrincipalType::Human,
            CredentialKind::Session,
        ),
        (
            "assumed role, service session",
            r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:etl-run-42","arn":"arn:aws:sts::123456789012:assumed-role/billing-etl/etl-run-42","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE02","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLE","arn":"arn:aws:iam::123456789012:role/billing-etl","accountId":"123456789012","userName":"billing-etl"},"attributes":{"creationDate":"2024-05-01T11:59:00Z","mfaAuthenticated":"false"}}}"#,
            "",
            PrincipalType::ServiceAccount,
            CredentialKind::ShortLivedToken,
        ),
        (
            "assumed role, switched to in the console",
            r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:carol","arn":"arn:aws:sts::123456789012:assumed-role/DevAdmin/carol","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE11"}"#,
            r#""userAgent":"console.amazonaws.com""#,
            PrincipalType::Human,
            CredentialKind::Session,
        ),
        (
            "assumed role, ec2 instance profile by session name",
            r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:i-0abc123def4567890","arn":"arn:aws:sts::123456789012:assumed-role/web-tier/i-0abc123def4567890","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE03"}"#,
            "",
            PrincipalType::Workload,
            CredentialKind::ShortLivedToken,
        ),
        (
            "assumed role, ec2 instance profile by ec2RoleDelivery",
            r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:worker","arn":"arn:aws:sts::123456789012:assumed-role/web-tier/worker","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE04","sessionContext":{"ec2RoleDelivery":"2.0","attributes":{"mfaAuthenticated":"false"}}}"#,
            "",
            PrincipalType::Workload,
            CredentialKind::ShortLivedToken,
        ),
        (
            "assumed role, identity center (sso) permission set",
            r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:alice","arn":"arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE05"}"#,
            MOZILLA,
            PrincipalType::Human,
            CredentialKind::Session,
        ),
        (
            "assumed role, session named after an email",
            r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:bob@example.com","arn":"arn:aws:sts::123456789012:assumed-role/ops/bob@example.com","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE06"}"#,
            "",
            PrincipalType::Human,
            CredentialKind::ShortLivedToken,
        ),
        (
            "aws service",
            r#"{"type":"AWSService","invokedBy":"cloudtrail.amazonaws.com"}"#,
            r#""sourceIPAddress":"cloudtrail.amazonaws.com""#,
            PrincipalType::Workload,
            CredentialKind::Unknown,
        ),
        (
            "root, console session",
            r#"{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE07"}"#,
            MOZILLA,
            PrincipalType::Human,
            CredentialKind::Session,
        ),
        (
            "root, console sign-in",
            r#"{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","accessKeyId":""}"#,
            r#""eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn","eventSource":"signin.amazonaws.com""#,
            PrincipalType::Human,
            CredentialKind::Password,
        ),
        (
            "federated user",
            r#"{"type":"FederatedUser","principalId":"123456789012:carol","arn":"arn:aws:sts::123456789012:federated-user/carol","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE08"}"#,
            "",
            PrincipalType::Human,
            CredentialKind::ShortLivedToken,
        ),
        (
            "saml user",
            r#"{"type":"SAMLUser","principalId":"SAMPLE:dave","userName":"dave","identityProvider":"arn:aws:iam::123456789012:saml-provider/idp"}"#,
            "",
            PrincipalType::Human,
            CredentialKind::Unknown,
        ),
        (
            "identity center user",
            r#"{"type":"IdentityCenterUser","accountId":"123456789012","onBehalfOf":{"userId":"u-1"},"credentialId":"c-1"}"#,
            "",
            PrincipalType::Human,
            CredentialKind::Unknown,
        ),
        (
            "web identity user",
            r#"{"type":"WebIdentityUser","principalId":"accounts.google.com:app-1:sub-1","userName":"sub-1","identityProvider":"accounts.google.com"}"#,
            "",
            PrincipalType::Workload,
            CredentialKind::Unknown,
        ),
        (
            "aws account",
            r#"{"type":"AWSAccount","principalId":"AIDAEXAMPLEOTHER","accountId":"111122223333"}"#,
            "",
            PrincipalType::Unknown,
            CredentialKind::Unknown,
        ),
        (
            "unknown",
            r#"{"type":"Unknown","principalId":"someone","accountId":"111122223333"}"#,
            "",
            PrincipalType::Unknown,
            CredentialKind::Unknown,
        ),
        (
            "invokedBy turns a human table row into a workload",
            r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:alice","arn":"arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ReadOnly_0123456789abcdef/alice","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE09","invokedBy":"cloudformation.amazonaws.com"}"#,
            r#""sourceIPAddress":"cloudformation.amazonaws.com""#,
            PrincipalType::Workload,
            CredentialKind::ShortLivedToken,
        ),
        (
            "invokedBy the sign-in page keeps a person a person",
            r#"{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","invokedBy":"signin.amazonaws.com","sessionContext":{"attributes":{"mfaAuthenticated":"true"}}}"#,
            r#""userAgent":"signin.amazonaws.com""#,
            PrincipalType::Human,
            CredentialKind::Unknown,
        ),
        ("missing userIdentity", "", "", PrincipalType::Unknown, CredentialKind::Unknown),
        ("userIdentity without a type", r#"{}"#, "", PrincipalType::Unknown, CredentialKind::Unknown),
    ];

    #[test]
    fn classifies_principals_from_the_platforms_own_fields() {
        for (case, ui, extra, kind, credential) in CLASSIFICATION {
            let text = record(ui, extra);
            let e = one(&text).unwrap_or_else(|err| panic!("{case}: {err}"));
            assert_eq!(e.principal.kind, *kind, "{case}");
            assert_eq!(e.credential.kind, *credential, "{case}");
            assert!(!e.principal.id.is_empty(), "{case}");
            assert_eq!(e.source_format, SourceFormat::Cloudtrail);
        }
    }

    #[test]
    fn a_role_session_is_attributed_to_its_role() {
        let ui = r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:deploy-7","arn":"arn:aws:sts::123456789012:assumed-role/deployer/deploy-7","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEEXAMPLE02","sessionContext":{"sourceIdentity":"alice@example.com","attributes":{"creationDate":"2024-05-01T11:59:00Z","mfaAuthenticated":"false"}}}"#;
        let text = record(ui, "");
        let e = one(&text).unwrap();
        // No sessionIssuer: the role ARN is derived from the session ARN.
        assert_eq!(e.principal.id, "arn:aws:iam::123456789012:role/deployer");
        assert_eq!(e.principal.name.as_deref(), Some("deployer"));
        assert_eq!(e.principal.tenant.as_deref(), Some(ACCT));
        assert_eq!(e.actor.session_id.as_deref(), Some("deploy-7"));
        assert_eq!(e.actor.delegating_user.as_deref(), Some("alice@example.com"));
        assert_eq!(e.credential.id.as_deref(), Some("ASIAEXAMPLEEXAMPLE02"));
        assert_eq!(e.credential.issued_at, parse_rfc3339("2024-05-01T11:59:00Z"));
        // A sessionIssuer, when present, names the role (with its path).
        let with_issuer = ui.replace(
            r#""sessionContext":{"#,
            r#""sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::123456789012:role/ci/deployer","userName":"deployer"},"#,
        );
        let text = record(&with_issuer, "");
        assert_eq!(one(&text).unwrap().principal.id, "arn:aws:iam::123456789012:role/ci/deployer");
    }

    #[test]
    fn derives_ids_when_the_arn_is_missing() {
        let text =
            record(r#"{"type":"IAMUser","accountId":"123456789012","userName":"ci","accessKeyId":"AKIAEXAMPLE"}"#, "");
        assert_eq!(one(&text).unwrap().principal.id, "arn:aws:iam::123456789012:user/ci");
        let text = record(r#"{"type":"Root","accountId":"123456789012"}"#, "");
        assert_eq!(one(&text).unwrap().principal.id, "arn:aws:iam::123456789012:root");
        let text = record(r#"{"type":"AWSAccount","accountId":"111122223333"}"#, "");
        let e = one(&text).unwrap();
        assert_eq!(e.principal.id, "aws:account:111122223333");
        assert_eq!(e.principal.tenant.as_deref(), Some("111122223333"));
        let text = record("", "");
        let e = one(&text).unwrap();
        assert_eq!(e.principal.id, "aws:unattributed:123456789012");
        assert_eq!(e.principal.tenant.as_deref(), Some(ACCT));
        let text = record("", "").replace(r#""recipientAccountId":"123456789012","#, "");
        assert_eq!(one(&text).unwrap().principal.id, "aws:unattributed:-");
    }

    #[test]
    fn an_aws_service_acts_under_its_own_name() {
        let text = record(r#"{"type":"AWSService","invokedBy":"cloudtrail.amazonaws.com"}"#, "")
            .replace(r#""userAgent":"aws-cli/2.15.0 Python/3.11","#, "")
            .replace("203.0.113.7", "cloudtrail.amazonaws.com");
        let e = one(&text).unwrap();
        assert_eq!(e.principal.id, "cloudtrail.amazonaws.com");
        assert_eq!(e.source.user_agent.as_deref(), Some("cloudtrail.amazonaws.com"));
        // A service name is not an address.
        assert_eq!(e.source.ip, None);
    }

    #[test]
    fn maps_the_call_and_borrows_from_the_input() {
        let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accountId":"123456789012","accessKeyId":"AKIAEXAMPLE","userName":"ci"}"#;
        let extra = r#""eventID":"ev-1","resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::bucket/key"},{"ARN":"arn:aws:s3:::bucket"}],"additionalEventData":{"bytesTransferredIn":0,"bytesTransferredOut":5120}"#;
        let text = record(ui, extra);
        let e = one(&text).unwrap();
        assert_eq!(e.id, "ev-1");
        assert_eq!(e.time, parse_rfc3339(T0).unwrap());
        assert_eq!(e.action, "s3:GetObject");
        assert_eq!(e.service, "s3");
        assert_eq!(e.resource.as_deref(), Some("arn:aws:s3:::bucket/key"));
        assert_eq!(e.bytes_out, Some(5120));
        assert_eq!(e.source.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(e.source.user_agent.as_deref(), Some("aws-cli/2.15.0 Python/3.11"));
        for s in [
            &e.id,
            &e.principal.id,
            &e.service,
            e.source.user_agent.as_ref().unwrap(),
            e.credential.id.as_ref().unwrap(),
        ] {
            assert!(matches!(s, Cow::Borrowed(_)), "{s} was copied");
        }
        let no_source = text.replace(r#""eventSource":"s3.amazonaws.com","#, "");
        let e = one(&no_source).unwrap();
        assert_eq!((e.service.as_ref(), e.action.as_ref()), ("aws", "aws:GetObject"));
    }

    #[test]
    fn outcome_follows_the_error_code() {
        let cases = [
            (r#""errorCode":"AccessDenied""#, Outcome::Denied),
            (r#""errorCode":"AccessDeniedException""#, Outcome::Denied),
            (r#""errorCode":"UnauthorizedOperation""#, Outcome::Denied),
            (r#""errorCode":"Client.UnauthorizedOperation""#, Outcome::Denied),
            (r#""errorCode":"VpceAccessDenied""#, Outcome::Denied),
            (r#""errorCode":"Forbidden""#, Outcome::Denied),
            (r#""errorCode":"NotAuthorizedException""#, Outcome::Denied),
            (r#""errorCode":"NoSuchBucket""#, Outcome::Failure),
            (r#""errorCode":"Client.DryRunOperation""#, Outcome::Failure),
            (r#""errorCode":"""#, Outcome::Success),
            (r#""eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Failure"}"#, Outcome::Failure),
            (r#""eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Success"}"#, Outcome::Success),
            (r#""responseElements":null"#, Outcome::Success),
        ];
        let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE"}"#;
        for (extra, outcome) in cases {
            assert_eq!(one(&record(ui, extra)).unwrap().outcome, outcome, "{extra}");
        }
    }

    #[test]
    fn a_records_document_loses_only_its_bad_record() {
        let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE"}"#;
        let good = record(ui, r#""requestParameters":{"policy":"{\"Version\":\"2012-10-17\"}"}"#);
        let bad = record(ui, "").replace(T0, "not a time");
        let text = format!(r#"{{"Records":[{good},{bad},{good}]}}"#);
        let out = decode_all(&text, &DecodeContext::default());
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok() && out[2].is_ok());
        let err = out[1].clone().unwrap_err();
        assert_eq!((err.reason, err.record), (DeadLetterReason::InvalidTime, Some(1)));
        // A record with escapes still borrows from the message.
        assert!(matches!(out[0].as_ref().unwrap().principal.id, Cow::Borrowed(_)));
        // Records without eventID get distinct, stable ids from their own bytes.
        let (a, b) = (out[0].as_ref().unwrap(), out[2].as_ref().unwrap());
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 32);
        assert!(decode_all(r#"{"Records":[]}"#, &DecodeContext::default()).is_empty());
        let not_array = one(r#"{"Records":{"a":1}}"#).unwrap_err();
        assert_eq!(not_array.reason, DeadLetterReason::WrongType);
    }

    #[test]
    fn every_layout_of_a_records_document_gives_the_same_events() {
        let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE"}"#;
        let (a, b) = (record(ui, r#""eventID":"a""#), record(ui, r#""eventID":"b","errorCode":"AccessDenied""#));
        let ctx = DecodeContext::default();
        let delivered = format!("{{\"Records\":[{a},{b}]}}");
        let expected: Vec<_> = decode_all(&delivered, &ctx).into_iter().map(Result::unwrap).collect();
        assert_eq!(expected.len(), 2);
        assert!(split_delivery_document(&delivered).is_some());
        for layout in [
            format!(" \n{{ \"Records\" :\r\n [ {a} ,\n {b} ] \n}}\n"),
            format!(r#"{{"Records":[{a},{b}],"digest":{{"x":1}}}}"#),
            format!(r#"{{"version":1,"Records":[{a},{b}]}}"#),
        ] {
            let got: Vec<_> = decode_all(&layout, &ctx).into_iter().map(Result::unwrap).collect();
            assert_eq!(got, expected, "{layout}");
        }
        for broken in [format!(r#"{{"Records":[{a},{b}]"#), format!(r#"{{"Records":[{a},{b}]}} x"#)] {
            let out = decode_all(&broken, &ctx);
            assert_eq!(out.len(), 1, "{broken}");
            assert_eq!(out[0].as_ref().unwrap_err().reason, DeadLetterReason::InvalidJson);
        }
        let bad_inside = format!(r#"{{"Records":[{a},{{"eventName":}}]}}"#);
        let out = decode_all(&bad_inside, &ctx);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].as_ref().unwrap_err().reason, out[0].as_ref().unwrap_err().record),
            (DeadLetterReason::InvalidJson, None)
        );
    }

    #[test]
    fn accepts_panthers_lowercase_keys() {
        let text = r#"{"awsregion":"us-east-1","eventid":"e-lower","eventname":"GetAccountPasswordPolicy","eventsource":"iam.amazonaws.com","eventtime":"2022-09-15 13:45:24","eventtype":"AwsApiCall","sourceipaddress":"198.51.100.1","useragent":"aws-cli/2","errorcode":"AccessDenied","useridentity":{"accesskeyid":"ASIAEXAMPLEEXAMPLE10","accountid":"123456789012","arn":"arn:aws:sts::123456789012:assumed-role/auditor/i-0123456789abcdef0","principalid":"AROAEXAMPLE:i-0123456789abcdef0","sessioncontext":{"attributes":{"creationdate":"2022-09-15T13:00:00Z","mfaauthenticated":"false"},"sessionissuer":{"accountid":"123456789012","arn":"arn:aws:iam::123456789012:role/auditor","principalid":"AROAEXAMPLE","type":"Role","username":"auditor"}},"type":"AssumedRole"}}"#;
        let e = one(text).unwrap();
        assert_eq!(e.id, "e-lower");
        assert_eq!(e.time, parse_rfc3339("2022-09-15T13:45:24Z").unwrap());
        assert_eq!(e.action, "iam:GetAccountPasswordPolicy");
        assert_eq!(e.outcome, Outcome::Denied);
        assert_eq!(e.principal.id, "arn:aws:iam::123456789012:role/auditor");
        assert_eq!(e.principal.kind, PrincipalType::Workload);
        assert_eq!(e.credential.id.as_deref(), Some("ASIAEXAMPLEEXAMPLE10"));
        assert!(e.credential.issued_at.is_some());
        assert_eq!(e.source.ip.as_deref(), Some("198.51.100.1"));
    }

    /// Panther's compromised-root-creds scenario: one lowercase key among camelCase ones.
    #[test]
    fn reads_a_lowercase_key_beside_camel_case_ones() {
        let ui = r#"{"accountId":"123456789012","accesskeyid":"AKIAEXAMPLEMINTED01","arn":"arn:aws:iam::123456789012:user/mallory","principalId":"123456789012","type":"IAMUser","userName":"mallory"}"#;
        let text = record(ui, r#""userAgent":"console.ec2.amazonaws.com""#);
        let e = one(&text).unwrap();
        assert_eq!(e.principal.id, "arn:aws:iam::123456789012:user/mallory");
        assert_eq!(e.principal.kind, PrincipalType::ServiceAccount);
        assert_eq!(e.credential.id.as_deref(), Some("AKIAEXAMPLEMINTED01"));
        assert_eq!(e.credential.kind, CredentialKind::StaticKey);
    }

    #[test]
    fn a_created_access_key_is_what_create_access_key_acted_on() {
        let ui = r#"{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","userName":"root"}"#;
        let created = r#""eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","requestParameters":{"userName":"mallory"},"responseElements":{"accessKey":{"accessKeyId":"AKIAEXAMPLEMINTED01","userName":"mallory","status":"Active","createDate":"Nov 01, 2020 8:37:03 PM"}}"#;
        let text = record(ui, created);
        let e = one(&text).unwrap();
        assert_eq!(e.action, "iam:CreateAccessKey");
        assert_eq!(e.resource.as_deref(), Some("AKIAEXAMPLEMINTED01"));
        // The caller's own credential is still the caller's (root at the console has none).
        assert_eq!(e.credential.id, None);
        assert!(matches!(e.resource, Some(Cow::Borrowed(_))));
        // A listed resource stays first; a response without a key names nothing.
        let listed = format!(r#"{created},"resources":[{{"ARN":"arn:aws:iam::123456789012:user/mallory"}}]"#);
        assert_eq!(
            one(&record(ui, &listed)).unwrap().resource.as_deref(),
            Some("arn:aws:iam::123456789012:user/mallory")
        );
        for response in
            [r#"{"accessKey":{"accessKeyId":""}}"#, r#"{"accessKey":"AKIA"}"#, r#"{"user":{"userName":"x"}}"#]
        {
            let text = record(ui, &created.replace(r#"{"accessKey":{"accessKeyId":"AKIAEXAMPLEMINTED01","userName":"mallory","status":"Active","createDate":"Nov 01, 2020 8:37:03 PM"}}"#, response));
            assert_eq!(one(&text).unwrap().resource, None, "{response}");
        }
    }

    #[test]
    fn odd_optional_shapes_read_as_absent() {
        let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE","invokedBy":null,"sessionContext":"weird"}"#;
        for extra in [
            r#""requestParameters":"a string","responseElements":"also a string""#,
            r#""additionalEventData":{"bytesTransferredOut":"12"},"resources":null"#,
            r#""additionalEventData":[1,2],"resources":["{'arn': 'x'}"],"errorCode":null"#,
            r#""additionalEventData":{"bytesTransferredOut":-3},"sessionCredentialFromConsole":"false","readOnly":"true""#,
            r#""eventID":7,"userAgent":{"x":1},"sourceIPAddress":["203.0.113.7"],"recipientAccountId":false"#,
        ] {
            let text = record(ui, extra);
            let e = one(&text).unwrap_or_else(|err| panic!("{extra}: {err}"));
            assert_eq!(e.bytes_out, None, "{extra}");
            assert_eq!(e.principal.kind, PrincipalType::ServiceAccount, "{extra}");
        }
    }

    #[test]
    fn essential_fields_fail_the_record() {
        let ui = r#"{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci"}"#;
        let reason = |text: String| one(&text).unwrap_err().reason;
        let base = record(ui, "");
        assert_eq!(reason(base.replace(&format!(r#""{T0}""#), "1714564800")), DeadLetterReason::WrongType);
        assert_eq!(reason(base.replace(T0, "yesterday")), DeadLetterReason::InvalidTime);
        assert_eq!(reason(base.replace(r#""GetObject""#, "[1]")), DeadLetterReason::WrongType);
        assert_eq!(reason(base.replace(ui, r#""IAMUser""#)), DeadLetterReason::WrongType);
        assert_eq!(reason(base.replace(ui, "[1]")), DeadLetterReason::WrongType);
        let anonymous = record("", "").replace(r#","eventName":"GetObject""#, "");
        assert_eq!(reason(anonymous), DeadLetterReason::MissingPrincipal);
        assert_eq!(reason(format!("[{base}]")), DeadLetterReason::WrongType);
        assert_eq!(reason("{\"eventName\":".to_string()), DeadLetterReason::InvalidJson);
    }

    #[test]
    fn time_falls_back_to_panther_then_to_the_transport() {
        let untimed = record("", "").replace(&format!(r#""eventTime":"{T0}","#), "");
        assert_eq!(one(&untimed).unwrap_err().reason, DeadLetterReason::MissingTime);
        let ctx = DecodeContext { fallback_time: Some(42), ..Default::default() };
        assert_eq!(decode_all(&untimed, &ctx)[0].as_ref().unwrap().time, 42);
        let panther = untimed.replacen('{', r#"{"p_event_time":"2021-08-31 15:46:02.000000000","#, 1);
        assert_eq!(one(&panther).unwrap().time, parse_rfc3339("2021-08-31T15:46:02Z").unwrap());
        assert_eq!(
            decode_all(&panther, &ctx)[0].as_ref().unwrap().time,
            parse_rfc3339("2021-08-31T15:46:02Z").unwrap()
        );
    }

    #[test]
    fn errors_do_not_quote_the_input() {
        let err = one(r#"{"eventName":"x","secret":"AKIA-SECRET-VALUE" oops}"#).unwrap_err();
        assert_eq!(err.reason, DeadLetterReason::InvalidJson);
        assert!(!err.detail.contains("SECRET"), "{}", err.detail);
    }

    /// A realistic record: an assumed-role session with escaped JSON in its request, TLS
    /// details and a response, about 1.5 KB like the records of a busy account.
    fn realistic(i: usize) -> String {
        format!(
            r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLEROLEID:etl-{i}","arn":"arn:aws:sts::123456789012:assumed-role/billing-etl/etl-{i}","accountId":"123456789012","accessKeyId":"ASIAEXAMPLE{i:08}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROAEXAMPLEROLEID","arn":"arn:aws:iam::123456789012:role/billing-etl","accountId":"123456789012","userName":"billing-etl"}},"webIdFederationData":{{}},"attributes":{{"creationDate":"2024-05-01T11:59:00Z","mfaAuthenticated":"false"}}}}}},"eventTime":"2024-05-01T12:00:{:02}Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","awsRegion":"us-east-1","sourceIPAddress":"10.1.{}.{}","userAgent":"[aws-sdk-java/1.12.600 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.9+9-LTS java/17.0.9]","requestParameters":{{"bucketName":"billing-exports","policy":"{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"arn:aws:iam::123456789012:role/reader\"}},\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::billing-exports/*\"}}]}}","Host":"billing-exports.s3.amazonaws.com"}},"responseElements":null,"additionalEventData":{{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"abcdefghijklmnopqrstuvwxyz0123456789=","bytesTransferredOut":{}}},"requestID":"REQ{i:016}","eventID":"00000000-0000-4000-8000-{i:012}","readOnly":false,"resources":[{{"accountId":"123456789012","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::billing-exports"}}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"billing-exports.s3.amazonaws.com"}}}}"#,
            i % 60,
            i % 250,
            i % 200,
            i * 7
        )
    }

    /// `cargo test --release --lib cloudtrail::tests::throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run in release"]
    fn throughput() {
        let messages: Vec<String> = (0..20_000).map(realistic).collect();
        let document = format!(r#"{{"Records":[{}]}}"#, messages.join(","));
        let ctx = DecodeContext::default();
        for (label, inputs) in [("one record per message", messages.clone()), ("records document", vec![document])] {
            let records: usize = 20_000;
            let started = std::time::Instant::now();
            let mut ok = 0usize;
            for _ in 0..5 {
                for text in &inputs {
                    decode(text, &ctx, &mut |r| ok += usize::from(r.is_ok()));
                }
            }
            let rate = (5 * records) as f64 / started.elapsed().as_secs_f64();
            let bytes = messages.iter().map(String::len).sum::<usize>() / records;
            println!("{label}: {rate:.0} records/s ({bytes} bytes each)");
            assert_eq!(ok, 5 * records);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = decode_all(text, &DecodeContext::default());
            }
        }

        #[test]
        fn arbitrary_json_like_text_never_panics(s in r#"[\{\}\[\]":,a-zA-Z0-9 .\-/@\\]{0,200}"#) {
            let _ = decode_all(&s, &DecodeContext::default());
        }

        #[test]
        fn mutated_records_never_panic(cut in 0usize..2000, insert in r#"[\{\}\[\]":,0-9a-z]{0,6}"#) {
            let ui = CLASSIFICATION[4].1;
            let text = format!(r#"{{"Records":[{},{}]}}"#, record(ui, ""), record(CLASSIFICATION[0].1, ""));
            let at = cut.min(text.len());
            let mut mutated = text[..at].to_string();
            mutated.push_str(&insert);
            mutated.push_str(&text[at..]);
            let _ = decode_all(&mutated, &DecodeContext::default());
        }

        #[test]
        fn keys_with_arbitrary_values_never_panic(
            key in prop::sample::select(vec!["eventTime", "eventName", "eventSource", "userIdentity", "errorCode",
                "responseElements", "additionalEventData", "resources", "sourceIPAddress", "Records"]),
            value in r#"(null|true|-?[0-9]{1,20}(\.[0-9]+)?|"[a-zA-Z0-9:/\-. ]{0,30}"|\[\]|\{\}|\["x",1\]|\{"ARN":1\})"#,
        ) {
            let text = format!(r#"{{"{key}":{value},"eventID":"x"}}"#);
            let _ = decode_all(&text, &DecodeContext { fallback_time: Some(0), ..Default::default() });
        }
    }
}
