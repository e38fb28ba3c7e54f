//! Who made a CloudTrail call: the principal, its credential and the triad (delegating user,
//! session) from `userIdentity` and the signals of the record around it.

use std::borrow::Cow;

use super::record::{SessionIssuer, UserIdentity};
use crate::aws::{is_email, is_instance_id};
use crate::lenient::nonempty;
use crate::record::project;
use nhid_model::event::{Actor, Credential, CredentialKind, Principal, PrincipalType};
use nhid_model::time::parse_rfc3339;

/// What the record says about how the call was made, beyond `userIdentity`.
pub(super) struct Signals {
    /// A console sign-in or a call made with console session credentials.
    pub console_event: bool,
    /// The sign-in itself, which authenticates with a password (or SSO, for roles).
    pub console_login: bool,
    /// A browser or console user agent: with temporary keys, a person at the console.
    pub browser: bool,
}

pub(super) struct Identity<'a> {
    pub principal: Principal<'a>,
    pub credential: Credential<'a>,
    pub actor: Actor<'a>,
    /// The AWS service that made the call for the principal, if one did.
    pub invoked_by: Option<Cow<'a, str>>,
}

pub(super) fn classify<'a>(
    ui: Option<UserIdentity<'a>>,
    recipient: Option<Cow<'a, str>>,
    signals: &Signals,
) -> Identity<'a> {
    let Some(ui) = ui else {
        return unattributed(recipient);
    };
    let key = nonempty(ui.access_key_id);
    let (attributes, issuer, ec2_delivery, source_identity) = match ui.session_context {
        Some(c) => (c.attributes, c.session_issuer, c.ec2_role_delivery.is_some(), nonempty(c.source_identity)),
        None => (None, None, false, None),
    };
    let mfa = attributes.as_ref().is_some_and(|a| a.mfa_authenticated);
    let issued_at = attributes.and_then(|a| a.creation_date).and_then(|d| parse_rfc3339(&d));
    let temporary_key = key.as_deref().is_some_and(|k| k.starts_with("ASIA"));
    let caller = Caller {
        account: nonempty(ui.account_id),
        recipient,
        arn: nonempty(ui.arn),
        principal_id: nonempty(ui.principal_id),
        user_name: nonempty(ui.user_name),
        issuer,
        ec2_delivery,
        // What AWS states: a console sign-in or console session credentials, or MFA.
        console: signals.console_event || mfa,
        // What the caller chose: a browser user agent on temporary keys. A person at the
        // console, or anyone holding the session (see `AuditEvent::principal.inferred`).
        browser: temporary_key && signals.browser,
    };
    let (console, caller_browser) = (caller.console, caller.browser);
    let invoked_by = nonempty(ui.invoked_by);
    let (named, tenant) = caller.name(ui.kind.as_deref().unwrap_or(""), &invoked_by);

    // A call an AWS service made on the principal's behalf is not a person at a keyboard,
    // unless the service is the sign-in page or the console the person is using.
    let by_machine = invoked_by.as_deref().is_some_and(|by| by != "signin.amazonaws.com" && !is_console_agent(by));
    let (kind, inferred) = if by_machine && named.kind == PrincipalType::Human {
        (PrincipalType::Workload, false)
    } else {
        (named.kind, named.inferred)
    };
    // A browser's temporary keys are described as a console session either way; the
    // type is what must not rest on the user agent.
    let credential_kind =
        credential_kind(key.as_deref(), console || caller_browser, signals.console_login && named.password_login);
    Identity {
        principal: Principal { id: named.id, kind, name: named.name, owner: None, tenant, inferred },
        credential: Credential { id: key, kind: credential_kind, issued_at, expires_at: None },
        actor: Actor {
            delegating_user: source_identity,
            agent_id: None,
            session_id: named.session_id,
            impersonator: None,
        },
        invoked_by,
    }
}

/// A record without `userIdentity` is counted against the account it was delivered to.
fn unattributed(recipient: Option<Cow<'_, str>>) -> Identity<'_> {
    let id = format!("aws:unattributed:{}", recipient.as_deref().unwrap_or("-"));
    Identity {
        principal: Principal {
            id: Cow::Owned(id),
            kind: PrincipalType::Unknown,
            name: None,
            owner: None,
            tenant: recipient,
            inferred: false,
        },
        credential: Credential::default(),
        actor: Actor::default(),
        invoked_by: None,
    }
}

/// The key says how long the credential lives; a console sign-in without one used a password.
fn credential_kind(key: Option<&str>, console: bool, password_sign_in: bool) -> CredentialKind {
    match key {
        Some(k) if k.starts_with("AKIA") => CredentialKind::StaticKey,
        Some(k) if k.starts_with("ASIA") && console => CredentialKind::Session,
        Some(k) if k.starts_with("ASIA") => CredentialKind::ShortLivedToken,
        None if password_sign_in => CredentialKind::Password,
        _ => CredentialKind::Unknown,
    }
}

/// The fields of `userIdentity` that name the caller.
struct Caller<'a> {
    account: Option<Cow<'a, str>>,
    /// The account the record was delivered to: the tenant when `userIdentity` names none.
    recipient: Option<Cow<'a, str>>,
    arn: Option<Cow<'a, str>>,
    principal_id: Option<Cow<'a, str>>,
    user_name: Option<Cow<'a, str>>,
    /// The role a session was issued for.
    issuer: Option<SessionIssuer<'a>>,
    /// Only instance-profile credentials delivered by IMDS carry `ec2RoleDelivery`.
    ec2_delivery: bool,
    /// A person at the console, as AWS states it: a console sign-in or session, or MFA.
    console: bool,
    /// Temporary keys used with a browser user agent, which the caller chooses.
    browser: bool,
}

/// The principal a `userIdentity` type names, before a calling service can re-type it.
struct Named<'a> {
    id: Cow<'a, str>,
    name: Option<Cow<'a, str>>,
    kind: PrincipalType,
    session_id: Option<Cow<'a, str>>,
    /// IAM users and root sign in to the console with a password (roles with SSO).
    password_login: bool,
    /// The type rests on fields the caller chooses (`Principal::inferred`).
    inferred: bool,
}

impl<'a> Caller<'a> {
    /// The principal by `userIdentity.type`, and the tenant it belongs to.
    fn name(self, user_type: &str, invoked_by: &Option<Cow<'a, str>>) -> (Named<'a>, Option<Cow<'a, str>>) {
        let person =
            |id, name, kind| Named { id, name, kind, session_id: None, password_login: false, inferred: false };
        let (arn, principal_id, user_name) = (self.arn.clone(), self.principal_id.clone(), self.user_name.clone());
        let by_account = || self.account.as_deref().map(|a| Cow::Owned(format!("aws:account:{a}")));
        let named = match user_type {
            "IAMUser" => self.iam_user(),
            "AssumedRole" => self.assumed_role(),
            "Root" => {
                let id = arn.or_else(|| self.account.as_ref().map(|a| Cow::Owned(format!("arn:aws:iam::{a}:root"))));
                let id = id.or(principal_id).unwrap_or_else(|| self.unattributed_id());
                Named { password_login: true, ..person(id, user_name, PrincipalType::Human) }
            }
            "FederatedUser" | "SAMLUser" | "IdentityCenterUser" => {
                let id = arn.or(principal_id).or_else(|| user_name.clone()).unwrap_or_else(|| self.unattributed_id());
                person(id, user_name, PrincipalType::Human)
            }
            "WebIdentityUser" => {
                let id = arn.or(principal_id).or_else(|| user_name.clone()).unwrap_or_else(|| self.unattributed_id());
                person(id, user_name, PrincipalType::Workload)
            }
            "AWSService" => {
                let id = invoked_by.clone().or(principal_id).unwrap_or_else(|| self.unattributed_id());
                person(id, None, PrincipalType::Workload)
            }
            "AWSAccount" | "Unknown" => {
                let id = principal_id.or_else(by_account).or(arn).unwrap_or_else(|| self.unattributed_id());
                person(id, user_name, PrincipalType::Unknown)
            }
            // No or an unrecognized type: hand-made samples, or a type AWS added later.
            _ => {
                let id = arn.or(principal_id).or_else(by_account).unwrap_or_else(|| self.unattributed_id());
                person(id, user_name, PrincipalType::Unknown)
            }
        };
        (named, self.account.or(self.recipient))
    }

    /// Counted against its account when the record names no principal.
    fn unattributed_id(&self) -> Cow<'a, str> {
        let account = self.account.as_deref().or(self.recipient.as_deref()).unwrap_or("-");
        Cow::Owned(format!("aws:unattributed:{account}"))
    }

    fn iam_user(&self) -> Named<'a> {
        let derived = || match (&self.account, &self.user_name) {
            (Some(a), Some(u)) => Some(Cow::Owned(format!("arn:aws:iam::{a}:user/{u}"))),
            _ => None,
        };
        let id = self.arn.clone().or_else(derived).or_else(|| self.principal_id.clone());
        // Programmatic IAM users with static keys are the classic non-human identity; the
        // console (as AWS states it) is a person, a browser user agent only seems one.
        let (kind, inferred) = match (self.console, self.browser) {
            (true, _) => (PrincipalType::Human, false),
            (false, true) => (PrincipalType::Human, true),
            (false, false) => (PrincipalType::ServiceAccount, false),
        };
        let id = id.unwrap_or_else(|| self.unattributed_id());
        Named { id, name: self.user_name.clone(), kind, session_id: None, password_login: true, inferred }
    }

    fn assumed_role(&self) -> Named<'a> {
        let parsed = self.arn.as_ref().and_then(AssumedRoleArn::parse);
        let session_id = parsed
            .as_ref()
            .map(|p| p.session.clone())
            .or_else(|| self.principal_id.as_ref().and_then(|p| project(p, |p| p.split_once(':').map(|(_, s)| s))));
        let (issuer_arn, issuer_name) = match &self.issuer {
            Some(i) => (nonempty(i.arn.clone()), nonempty(i.user_name.clone())),
            None => (None, None),
        };
        let role = issuer_name.or_else(|| parsed.as_ref().map(|p| p.role.clone()));
        // The identity is the role: its sessions come and go, its baseline should not.
        let id = issuer_arn
            .or_else(|| parsed.as_ref().map(AssumedRoleArn::role_arn))
            .or_else(|| self.arn.clone())
            .or_else(|| self.principal_id.clone())
            .unwrap_or_else(|| self.unattributed_id());
        let session = session_id.as_deref().unwrap_or("");
        // The session name is the caller's choice (`RoleSessionName`), and so is a user
        // agent: an email-like name (SAML and OIDC federation name sessions after the
        // person) or a browser is a person only as far as nhid can tell, and an instance id
        // (EC2 names instance-profile sessions so) a workload: inferences, where IMDS's own
        // `ec2RoleDelivery` is a fact.
        let (kind, inferred) = if self.ec2_delivery {
            (PrincipalType::Workload, false)
        } else if self.console || role.as_deref().is_some_and(|r| r.starts_with("AWSReservedSSO_")) {
            // A person at the console (role switching, MFA) or behind Identity Center.
            (PrincipalType::Human, false)
        } else if is_instance_id(session) {
            (PrincipalType::Workload, true)
        } else if self.browser || is_email(session) {
            (PrincipalType::Human, true)
        } else {
            (PrincipalType::ServiceAccount, false)
        };
        Named { id, name: role, kind, session_id, password_login: false, inferred }
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
        Cow::Owned(["arn:", &self.partition, ":iam::", &self.account, ":role/", &self.role].concat())
    }
}

/// A browser, or the console acting for one (`console.amazonaws.com`, `console.ec2.amazonaws.com`).
pub(super) fn is_console_agent(ua: &str) -> bool {
    ua.starts_with("Mozilla/") || (ua.starts_with("console.") && ua.ends_with(".amazonaws.com"))
}
