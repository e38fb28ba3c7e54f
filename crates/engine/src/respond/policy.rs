//! The response policy. Guardrails are the product, not an option: an attacker who can
//! forge audit events must not be able to turn nhid into a mass-revocation weapon.
//!
//! In order: a credential first presented by another principal is never cut off (its owner
//! is told); nothing for humans or principals not provably machines; nothing for
//! protected principals; below `min_severity` only the alert; inventory `auto_revoke =
//! false` turns revocations into owner notices, and so does a model's finding whose score
//! does not clear `act_max_probability`; the narrowest action the event allows;
//! one action per identity per cooldown; a global rate limit on containment whose breach
//! trips a circuit breaker, announced by one `action_storm` alert, that blocks every action
//! for a while.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::alert::{Action, ActionTarget, Alert, AlertActor, AlertPrincipal, Mode};
use crate::inventory::Entry;
use nhid_model::event::{AuditEvent, CredentialKind, Impersonator, PrincipalType};
use nhid_model::string_enum;
use nhid_model::time::{MINUTE, Millis, SECOND, format_rfc3339};
use nhid_model::vocab::Response;
use nhid_model::vocab::{ActionKind, Severity};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// `dry_run` (default) emits actions marked as such; the revocation service only logs them.
    #[serde(default)]
    pub mode: Mode,
    /// Alerts below this severity never cause an action.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// At most one automatic action per identity per this many seconds of event time.
    #[serde(default = "default_identity_cooldown_secs")]
    pub identity_cooldown_secs: u64,
    /// Global ceiling on automatic actions per minute of event time (and, under `nhid run`,
    /// of processing time too).
    #[serde(default = "default_max_actions_per_minute")]
    pub max_actions_per_minute: u32,
    /// How long the circuit breaker blocks every action once the ceiling is breached.
    #[serde(default = "default_breaker_cooldown_secs")]
    pub breaker_cooldown_secs: u64,
    /// A finding judged by a model (see the alert's `score`) revokes, ends a session or
    /// disables only when its probability is at most this; above it, the owner is notified.
    /// Facts (no probability) act as their detector asks.
    #[serde(default = "default_act_max_probability")]
    pub act_max_probability: f64,
    /// Alerts about one identity this close (in event time) to its previous alert are one
    /// incident; this long without one closes it.
    #[serde(default = "default_incident_gap_secs")]
    pub incident_gap_secs: u64,
    /// While an analyst's true-positive verdict on an identity holds, its actions are
    /// enforced even when `mode` is `dry_run`: the attack is confirmed, and the dry run was
    /// the doubt. The guardrails still apply (never a human or a protected principal).
    #[serde(default)]
    pub true_positive_enforces: bool,
}

/// An hour: an attack on a leaked key runs minutes to hours; a false alert repeating daily
/// is an incident a day.
fn default_incident_gap_secs() -> u64 {
    3_600
}

fn default_act_max_probability() -> f64 {
    1e-3
}

fn default_min_severity() -> Severity {
    Severity::Medium
}
fn default_identity_cooldown_secs() -> u64 {
    3_600
}
fn default_max_actions_per_minute() -> u32 {
    20
}
fn default_breaker_cooldown_secs() -> u64 {
    900
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            mode: Mode::default(),
            min_severity: default_min_severity(),
            identity_cooldown_secs: default_identity_cooldown_secs(),
            max_actions_per_minute: default_max_actions_per_minute(),
            breaker_cooldown_secs: default_breaker_cooldown_secs(),
            act_max_probability: default_act_max_probability(),
            incident_gap_secs: default_incident_gap_secs(),
            true_positive_enforces: false,
        }
    }
}

/// Kind and severity of the alert for a tripped circuit breaker (a metric series from the start).
pub const ACTION_STORM: (&str, Severity) = ("action_storm", Severity::Critical);

/// Where `action_storm` alerts say they come from: the policy, as there is no detector file.
pub const RESPONSE_POLICY: &str = "response_policy";

string_enum! {
    /// Why an action was not taken. Bounded: it is a metric label.
    Block {
        Human => "human",
        NotMachine => "not_machine",
        Protected => "protected",
        BelowMinSeverity => "below_min_severity",
        AutoRevokeDisabled => "auto_revoke_disabled",
        NotSurprising => "not_surprising",
        IdentityCooldown => "identity_cooldown",
        RateLimited => "rate_limited",
        CircuitOpen => "circuit_open",
        ForeignCredential => "foreign_credential",
    }
}

/// What the policy decided for one alert.
#[derive(Debug, Default)]
pub struct Decision {
    pub action: Option<Action>,
    /// Guardrails that stopped or narrowed the requested action.
    pub blocks: Vec<Block>,
    /// Set when this decision tripped the circuit breaker.
    pub storm: Option<Alert>,
}

impl Decision {
    /// What nhid did about the alert, in one sentence for the person reading it.
    pub fn sentence(&self) -> String {
        let why = |b: &Block| match b {
            Block::Human => "a person is never acted on automatically",
            Block::NotMachine => "the principal is not known to be a machine",
            Block::Protected => "the principal is protected",
            Block::BelowMinSeverity => "below the response policy's minimum severity",
            Block::AutoRevokeDisabled => "automatic revocation is off for this principal",
            Block::NotSurprising => "not surprising enough to cut access",
            Block::IdentityCooldown => "this identity was acted on within its cooldown",
            Block::RateLimited => "the global rate of automatic actions is reached",
            Block::CircuitOpen => "the circuit breaker is open",
            Block::ForeignCredential => "the credential was first presented by another principal",
        };
        let reasons = self.blocks.iter().map(why).collect::<Vec<_>>().join("; ");
        match &self.action {
            None if reasons.is_empty() => "nhid took no action: the detector asks for none.".into(),
            None => format!("nhid took no action: {reasons}."),
            Some(a) => {
                let target = match (a.action, &a.target) {
                    (ActionKind::RevokeCredential | ActionKind::RotateSecret, t) if t.credential_id.is_some() => {
                        format!("credential {}", t.credential_id.as_deref().unwrap_or_default())
                    }
                    (ActionKind::RevokeSession, t) if t.session_id.is_some() => {
                        format!("session {}", t.session_id.as_deref().unwrap_or_default())
                    }
                    (_, t) => t.principal_id.clone(),
                };
                let mode = match a.mode {
                    Mode::DryRun => " (dry run: recorded, not carried out)",
                    Mode::Enforce => "",
                };
                let narrowed = if reasons.is_empty() { String::new() } else { format!(", not more: {reasons}") };
                format!("nhid requested {} for {target}{mode}{narrowed}.", a.action.as_str())
            }
        }
    }
}

pub struct Policy {
    config: ResponseConfig,
    /// The processing-time clock that paces actions beside event time, when set.
    pace: Option<fn() -> Millis>,
    limiter: Mutex<Limiter>,
}

/// The rate limit and circuit breaker, shared by all workers: one bucket in event time,
/// and under `nhid run` one in processing time too. Event time is what a replay judges
/// by; but whoever writes the events writes their times, and findings forged three
/// seconds apart in event time can arrive a thousand a second.
#[derive(Debug)]
struct Limiter {
    event: Bucket,
    processing: Bucket,
}

/// A token bucket refilled at `max_actions_per_minute`, and the breaker it trips.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Millis,
    open_until: Option<Millis>,
}

impl Bucket {
    fn full(max: f64) -> Self {
        Bucket { tokens: max, last: Millis::MIN, open_until: None }
    }

    /// Refills for the time since the last call (none when `t` is earlier), and says
    /// whether the breaker is still open at `t`.
    fn refill(&mut self, t: Millis, max: f64) -> bool {
        if t > self.last {
            if self.last != Millis::MIN {
                self.tokens = (self.tokens + (t - self.last) as f64 * max / MINUTE as f64).min(max);
            }
            self.last = t;
        }
        match self.open_until {
            Some(until) if t < until => true,
            Some(_) => {
                self.open_until = None;
                false
            }
            None => false,
        }
    }
}

impl Policy {
    pub fn new(config: ResponseConfig) -> Self {
        let max = f64::from(config.max_actions_per_minute);
        Policy {
            config,
            pace: None,
            limiter: Mutex::new(Limiter { event: Bucket::full(max), processing: Bucket::full(max) }),
        }
    }

    /// Paces automatic actions in processing time as well as in event time (`nhid run`):
    /// an action needs a token in both buckets, and a tripped breaker stays open until
    /// both clocks have let its cooldown pass.
    pub fn pace_with(&mut self, clock: fn() -> Millis) {
        self.pace = Some(clock);
    }

    /// Decides the action for `alert`, which asked for `requested`; `act_max_probability`
    /// is the detector lane's own bar, if it has one. `last_action` is the identity's
    /// cooldown mark, updated when an action is taken.
    pub fn decide(
        &self,
        alert: &Alert,
        requested: Response,
        act_max_probability: Option<f64>,
        acting: &Acting<'_>,
        last_action: &mut Option<Millis>,
    ) -> Decision {
        let mut d = Decision::default();
        if requested == Response::None {
            return d;
        }
        // Whoever named another's credential here (a copy, or a forged event) must not get
        // nhid to cut it off.
        let requested = if acting.foreign && requested != Response::NotifyOwner {
            d.blocks.push(Block::ForeignCredential);
            Response::NotifyOwner
        } else {
            requested
        };
        let (kind, entry) = (acting.kind, acting.entry);
        let block = if kind == PrincipalType::Human {
            Some(Block::Human)
        } else if !kind.is_machine() {
            Some(Block::NotMachine)
        } else if entry.is_some_and(|e| e.protected) {
            Some(Block::Protected)
        } else if alert.severity < self.config.min_severity {
            Some(Block::BelowMinSeverity)
        } else {
            None
        };
        if let Some(b) = block {
            d.blocks.push(b);
            return d;
        }
        let (mut action, target) = narrowest(requested, acting);
        if action != ActionKind::NotifyOwner && entry.is_some_and(|e| e.auto_revoke == Some(false)) {
            d.blocks.push(Block::AutoRevokeDisabled);
            action = ActionKind::NotifyOwner;
        }
        if action != ActionKind::NotifyOwner
            && alert
                .score
                .probability
                .is_some_and(|p| p > act_max_probability.unwrap_or(self.config.act_max_probability))
        {
            d.blocks.push(Block::NotSurprising);
            action = ActionKind::NotifyOwner;
        }
        let t = alert.time;
        let cooldown = self.config.identity_cooldown_secs as Millis * SECOND;
        // The cooldown guards against repeated containment; an owner notice neither waits for it
        // nor starts it, so a notice from a mild finding never delays the revocation a later,
        // severe finding on the same identity asks for.
        let contains = action != ActionKind::NotifyOwner;
        // Either side of the last action: events arrive out of order (a shuffled batch, a
        // partition behind another), and an earlier finding delivered later is the same episode.
        if contains && last_action.is_some_and(|last| (t - last).abs() < cooldown) {
            d.blocks.push(Block::IdentityCooldown);
            return d;
        }
        match self.admit(t, contains) {
            Admit::Yes => {}
            Admit::Open => {
                d.blocks.push(Block::CircuitOpen);
                return d;
            }
            Admit::Tripped { open_until } => {
                d.blocks.push(Block::RateLimited);
                d.storm = Some(self.storm_alert(alert, open_until));
                return d;
            }
        }
        if contains {
            *last_action = Some(last_action.map_or(t, |last| last.max(t)));
        }
        let mode = match acting.confirmed && self.config.true_positive_enforces {
            true => Mode::Enforce,
            false => self.config.mode,
        };
        let (summary, action_name) = (&alert.summary, action.as_str());
        let mode_name = match (mode, self.config.mode) {
            (Mode::Enforce, Mode::DryRun) => "enforce: a true-positive verdict holds",
            (mode, _) => mode.as_str(),
        };
        let reason = if target.principal_id == alert.principal.id {
            format!("{summary} Policy: {action_name} ({mode_name}).")
        } else {
            format!(
                "{summary} Policy: {action_name} of {}, which made the request as it ({mode_name}).",
                target.principal_id
            )
        };
        d.action = Some(Action {
            action_id: super::action_id(&alert.alert_id, action, &target),
            alert_id: alert.alert_id.clone(),
            action,
            target,
            mode,
            reason,
            time: t,
        });
        d
    }

    /// Whether an action at `t` may go: containment takes a token (and trips the breaker
    /// when none is left); an owner notice takes none, since it cuts nothing off, but waits
    /// while the breaker is open like every action.
    fn admit(&self, t: Millis, contains: bool) -> Admit {
        // A poisoned lock only means another worker panicked mid-update of a few numbers;
        // the buckets are still usable.
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let l = &mut *l;
        let max = f64::from(self.config.max_actions_per_minute);
        let now = self.pace.map(|clock| clock());
        let open_in_event_time = l.event.refill(t, max);
        let open_in_processing_time = now.is_some_and(|now| l.processing.refill(now, max));
        if open_in_event_time || open_in_processing_time {
            return Admit::Open;
        }
        if !contains {
            return Admit::Yes;
        }
        let buckets = [Some(&mut l.event), now.map(|_| &mut l.processing)];
        if buckets.iter().flatten().all(|b| b.tokens >= 1.0) {
            buckets.into_iter().flatten().for_each(|b| b.tokens -= 1.0);
            Admit::Yes
        } else {
            let cooldown = self.config.breaker_cooldown_secs as Millis * SECOND;
            l.event.open_until = Some(t + cooldown);
            if let Some(now) = now {
                l.processing.open_until = Some(now + cooldown);
            }
            // The alert names the later of the two: until then, nothing goes.
            Admit::Tripped { open_until: (t + cooldown).max(now.map_or(Millis::MIN, |n| n + cooldown)) }
        }
    }

    fn storm_alert(&self, trigger: &Alert, open_until: Millis) -> Alert {
        let window = trigger.time.div_euclid(MINUTE);
        let max = self.config.max_actions_per_minute;
        Alert {
            alert_id: super::alert_id(RESPONSE_POLICY, "*", window, 0),
            time: trigger.time,
            detector: RESPONSE_POLICY.into(),
            kind: ACTION_STORM.0.into(),
            severity: ACTION_STORM.1,
            principal: trigger.principal.clone(),
            credential_id: trigger.credential_id.clone(),
            actor: AlertActor::default(),
            event: trigger.event.clone(),
            event_ids: trigger.event_ids.clone(),
            evidence: crate::evidence! {
                "max_actions_per_minute" => max,
                "blocked_until" => format_rfc3339(open_until),
                "triggering_alert_id" => trigger.alert_id,
            },
            summary: format!(
                "More than {max} automatic actions per minute were requested; the circuit breaker blocks all automatic actions until {}.",
                format_rfc3339(open_until)
            ),
            suppressed_repeats: 0,
            references: vec!["T1531".into(), "OWASP-NHI5".into()],
            score: Default::default(),
            incident_id: None,
        }
    }
}

enum Admit {
    Yes,
    Open,
    Tripped { open_until: Millis },
}

/// Who containment would cut off: the principal that made the request, with the credential
/// and session it presented and its inventory entry, which the guardrails judge. That is the
/// event's principal, or its impersonator when another made the request as it: the
/// impersonator's credential was used, and the principal impersonated is never the target.
#[derive(Clone, Copy, Debug)]
pub struct Acting<'e> {
    pub principal_id: &'e str,
    /// The type its lane is judged as.
    pub kind: PrincipalType,
    pub credential_id: Option<&'e str>,
    pub credential_kind: CredentialKind,
    pub session_id: Option<&'e str>,
    pub entry: Option<&'e Entry>,
    /// The credential was first presented by another principal (`state::bindings`).
    pub foreign: bool,
    /// An analyst confirmed an attack on it: a true-positive verdict holds.
    pub confirmed: bool,
}

impl<'e> Acting<'e> {
    /// The event's principal, judged as `kind` (the lane of its event).
    pub fn principal(ev: &'e AuditEvent<'_>, kind: PrincipalType, entry: Option<&'e Entry>) -> Self {
        Acting {
            principal_id: &ev.principal.id,
            kind,
            credential_id: ev.credential.id.as_deref(),
            credential_kind: ev.credential.kind,
            session_id: ev.actor.session_id.as_deref(),
            entry,
            foreign: false,
            confirmed: false,
        }
    }

    /// The impersonator of a request, typed as the inventory says, else as the platform does.
    pub fn impersonator(i: &'e Impersonator<'_>, entry: Option<&'e Entry>) -> Self {
        Acting {
            principal_id: &i.principal.id,
            kind: entry.and_then(|e| e.kind).unwrap_or(i.principal.kind),
            credential_id: i.credential.id.as_deref(),
            credential_kind: i.credential.kind,
            session_id: i.session_id.as_deref(),
            entry,
            foreign: false,
            confirmed: false,
        }
    }
}

/// The narrowest action that contains the finding, given what the request presented: a
/// session-scoped token is cut with its session, a key with itself, and the whole principal
/// only when nothing narrower is named. Never wider than requested: without a session or
/// credential to cut, the owner is told instead.
fn narrowest(requested: Response, acting: &Acting<'_>) -> (ActionKind, ActionTarget) {
    let (session, credential) = (acting.session_id, acting.credential_id);
    let session_scoped = matches!(
        acting.credential_kind,
        CredentialKind::ShortLivedToken | CredentialKind::Session | CredentialKind::OauthAccessToken
    );
    let kind = match requested {
        Response::None | Response::NotifyOwner => ActionKind::NotifyOwner,
        Response::RotateSecret if credential.is_some() => ActionKind::RotateSecret,
        Response::RotateSecret => ActionKind::NotifyOwner,
        Response::RevokeSession | Response::RevokeCredential | Response::DisablePrincipal => {
            if session.is_some() && (session_scoped || credential.is_none() || requested == Response::RevokeSession) {
                ActionKind::RevokeSession
            } else if credential.is_some() && requested != Response::RevokeSession {
                ActionKind::RevokeCredential
            } else if requested == Response::DisablePrincipal {
                ActionKind::DisablePrincipal
            } else {
                ActionKind::NotifyOwner
            }
        }
    };
    let target = ActionTarget {
        principal_id: acting.principal_id.to_owned(),
        principal_kind: acting.kind,
        credential_id: credential.map(str::to_owned),
        session_id: session.map(str::to_owned),
    };
    (kind, target)
}

/// The principal part of an alert, for tests and the pipeline.
pub fn alert_principal(id: &str, kind: PrincipalType, owner: Option<&str>) -> AlertPrincipal {
    AlertPrincipal { id: id.to_string(), kind, owner: owner.map(str::to_string) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::event::{Credential, Principal};
    use std::borrow::Cow;

    fn event(kind: PrincipalType, credential: CredentialKind, session: Option<&'static str>) -> AuditEvent<'static> {
        let mut ev = crate::detect::testing::event(0, kind);
        ev.id = "e".into();
        ev.principal.id = "p".into();
        ev.credential = Credential { id: Some("cred-1".into()), kind: credential, issued_at: None, expires_at: None };
        ev.actor.session_id = session.map(Cow::Borrowed);
        ev
    }

    fn alert(kind: PrincipalType, time: Millis, severity: Severity) -> Alert {
        Alert {
            alert_id: super::super::alert_id("d", "p", time, 0),
            time,
            detector: "d".into(),
            kind: "rate_spike".into(),
            severity,
            principal: alert_principal("p", kind, None),
            credential_id: Some("cred-1".into()),
            actor: AlertActor::default(),
            event: None,
            event_ids: vec!["e".into()],
            evidence: Default::default(),
            summary: "s.".into(),
            suppressed_repeats: 0,
            references: vec![],
            score: Default::default(),
            incident_id: None,
        }
    }

    fn acting<'e>(ev: &'e AuditEvent<'_>) -> Acting<'e> {
        Acting::principal(ev, ev.principal.kind, None)
    }

    fn entry(protected: bool, auto_revoke: Option<bool>) -> Entry {
        Entry { pattern: "p".into(), kind: None, owner: None, criticality: None, protected, auto_revoke }
    }

    fn decide(p: &Policy, kind: PrincipalType, ev: &AuditEvent<'_>, entry: Option<&Entry>, t: Millis) -> Decision {
        p.decide(
            &alert(kind, t, Severity::High),
            Response::RevokeCredential,
            None,
            &Acting::principal(ev, kind, entry),
            &mut None,
        )
    }

    #[test]
    fn the_alert_says_what_nhid_did_and_why_not_more() {
        let p = Policy::new(ResponseConfig::default());
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        let said = |d: Decision| d.sentence();
        assert_eq!(
            said(decide(&p, PrincipalType::ServiceAccount, &ev, None, 0)),
            "nhid requested revoke_credential for credential cred-1 (dry run: recorded, not carried out)."
        );
        assert_eq!(
            said(decide(&p, PrincipalType::Human, &ev, None, 0)),
            "nhid took no action: a person is never acted on automatically."
        );
        assert_eq!(
            said(decide(&p, PrincipalType::ServiceAccount, &ev, Some(&entry(false, Some(false))), 0)),
            "nhid requested notify_owner for p (dry run: recorded, not carried out), not more: automatic revocation is off for this principal."
        );
        assert_eq!(said(Decision::default()), "nhid took no action: the detector asks for none.");
    }

    /// A true positive enforces that identity's actions when configured to, and never acts
    /// on a person or a protected principal for it.
    #[test]
    fn a_confirmed_attack_is_enforced_only_when_configured_and_within_the_guardrails() {
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        let decide = |enforces: bool, confirmed: bool, kind: PrincipalType, entry: Option<&Entry>| {
            let p = Policy::new(ResponseConfig { true_positive_enforces: enforces, ..ResponseConfig::default() });
            let acting = Acting { confirmed, ..Acting::principal(&ev, kind, entry) };
            p.decide(&alert(kind, 0, Severity::High), Response::RevokeCredential, None, &acting, &mut None)
        };
        let mode = |d: Decision| d.action.map(|a| a.mode);
        let service = PrincipalType::ServiceAccount;
        assert_eq!(mode(decide(true, true, service, None)), Some(Mode::Enforce));
        assert!(
            decide(true, true, service, None)
                .action
                .unwrap()
                .reason
                .contains("(enforce: a true-positive verdict holds)")
        );
        assert_eq!(mode(decide(false, true, service, None)), Some(Mode::DryRun), "off by default");
        assert_eq!(mode(decide(true, false, service, None)), Some(Mode::DryRun), "only while a verdict holds");
        assert_eq!(mode(decide(true, true, PrincipalType::Human, None)), None);
        assert_eq!(mode(decide(true, true, service, Some(&entry(true, None)))), None);
    }

    #[test]
    fn humans_and_unknown_principals_are_never_acted_on() {
        let p = Policy::new(ResponseConfig::default());
        let ev = event(PrincipalType::Human, CredentialKind::StaticKey, None);
        let d = decide(&p, PrincipalType::Human, &ev, None, 0);
        assert!(d.action.is_none());
        assert_eq!(d.blocks, vec![Block::Human]);
        let d = decide(&p, PrincipalType::Unknown, &ev, None, 0);
        assert_eq!(d.blocks, vec![Block::NotMachine]);
    }

    #[test]
    fn protected_principals_are_never_acted_on_and_auto_revoke_false_only_notifies() {
        let p = Policy::new(ResponseConfig::default());
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        let d = decide(&p, PrincipalType::ServiceAccount, &ev, Some(&entry(true, None)), 0);
        assert!(d.action.is_none() && d.blocks == vec![Block::Protected]);
        let d = decide(&p, PrincipalType::ServiceAccount, &ev, Some(&entry(false, Some(false))), 0);
        assert_eq!(d.action.unwrap().action, ActionKind::NotifyOwner);
        assert_eq!(d.blocks, vec![Block::AutoRevokeDisabled]);
    }

    #[test]
    fn the_narrowest_action_is_chosen_and_never_a_wider_one() {
        let agent = event(PrincipalType::AiAgent, CredentialKind::ShortLivedToken, Some("sess-9"));
        assert_eq!(narrowest(Response::RevokeCredential, &acting(&agent)).0, ActionKind::RevokeSession);
        assert_eq!(narrowest(Response::DisablePrincipal, &acting(&agent)).0, ActionKind::RevokeSession);
        let key = event(PrincipalType::ApiKey, CredentialKind::StaticKey, None);
        assert_eq!(narrowest(Response::RevokeCredential, &acting(&key)).0, ActionKind::RevokeCredential);
        assert_eq!(narrowest(Response::DisablePrincipal, &acting(&key)).0, ActionKind::RevokeCredential);
        // A session cut was asked for but the event names none: tell the owner, do not cut the key.
        assert_eq!(narrowest(Response::RevokeSession, &acting(&key)).0, ActionKind::NotifyOwner);
        let mut bare = key.clone();
        bare.credential.id = None;
        assert_eq!(narrowest(Response::RevokeCredential, &acting(&bare)).0, ActionKind::NotifyOwner);
        assert_eq!(narrowest(Response::DisablePrincipal, &acting(&bare)).0, ActionKind::DisablePrincipal);
        assert_eq!(narrowest(Response::RotateSecret, &acting(&key)).0, ActionKind::RotateSecret);
    }

    /// A request made as `prod:payments` by another principal: the guardrails judge the
    /// impersonator, and containment cuts the impersonator's token, never the victim.
    #[test]
    fn an_impersonated_request_targets_the_impersonator_never_the_principal_impersonated() {
        let p = Policy::new(ResponseConfig::default());
        let mut ev = event(PrincipalType::ServiceAccount, CredentialKind::Unknown, None);
        ev.principal.id = "system:serviceaccount:prod:payments".into();
        ev.credential = Credential::default();
        let impersonator = |id: &'static str, kind| Impersonator {
            principal: Principal { id: id.into(), kind, name: None, owner: None, tenant: None, inferred: false },
            credential: Credential {
                id: Some("JTI=intruder".into()),
                kind: CredentialKind::ShortLivedToken,
                issued_at: None,
                expires_at: None,
            },
            session_id: None,
        };
        let victim = alert_principal("system:serviceaccount:prod:payments", PrincipalType::ServiceAccount, None);
        let a = Alert { principal: victim.clone(), ..alert(PrincipalType::ServiceAccount, 0, Severity::High) };
        let decide = |i: &Impersonator<'_>, entry: Option<&Entry>, requested| {
            p.decide(&a, requested, None, &Acting::impersonator(i, entry), &mut None)
        };

        let intruder = impersonator("system:serviceaccount:tools:intruder", PrincipalType::ServiceAccount);
        for requested in [Response::RevokeCredential, Response::DisablePrincipal] {
            let action = decide(&intruder, None, requested).action.unwrap();
            assert_eq!(action.action, ActionKind::RevokeCredential, "{requested:?}");
            assert_eq!(action.target.principal_id, "system:serviceaccount:tools:intruder");
            assert_eq!(action.target.credential_id.as_deref(), Some("JTI=intruder"));
            assert!(action.reason.contains("of system:serviceaccount:tools:intruder, which made the request as it"));
        }
        // The impersonator's own standing decides: a person, a protected principal.
        let admin = impersonator("admin@example.com", PrincipalType::Human);
        assert_eq!(decide(&admin, None, Response::RevokeCredential).blocks, vec![Block::Human]);
        let d = decide(&intruder, Some(&entry(true, None)), Response::RevokeCredential);
        assert!(d.action.is_none() && d.blocks == vec![Block::Protected]);
    }

    #[test]
    fn one_action_per_identity_per_cooldown() {
        let p = Policy::new(ResponseConfig::default());
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        let mut last = None;
        let a = |t| alert(PrincipalType::ServiceAccount, t, Severity::High);
        assert!(p.decide(&a(0), Response::RevokeCredential, None, &acting(&ev), &mut last).action.is_some());
        let d = p.decide(&a(60_000), Response::RevokeCredential, None, &acting(&ev), &mut last);
        assert_eq!(d.blocks, vec![Block::IdentityCooldown]);
        assert!(p.decide(&a(3_600_000), Response::RevokeCredential, None, &acting(&ev), &mut last).action.is_some());
    }

    #[test]
    fn a_finding_delivered_out_of_order_is_within_the_cooldown_of_a_later_action() {
        let p = Policy::new(ResponseConfig::default());
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        let mut last = None;
        let a = |t| alert(PrincipalType::ServiceAccount, t, Severity::High);
        // Shuffled attack lines: the finding at 13 s arrives after the one at 26 s.
        assert!(p.decide(&a(26_000), Response::RevokeCredential, None, &acting(&ev), &mut last).action.is_some());
        let d = p.decide(&a(13_000), Response::RevokeCredential, None, &acting(&ev), &mut last);
        assert_eq!(d.blocks, vec![Block::IdentityCooldown]);
        assert_eq!(last, Some(26_000), "the mark stays at the latest action");
    }

    #[test]
    fn an_owner_notice_does_not_delay_a_later_revocation() {
        let p = Policy::new(ResponseConfig::default());
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        let mut last = None;
        let a = |t| alert(PrincipalType::ServiceAccount, t, Severity::High);
        let notice = p.decide(&a(0), Response::NotifyOwner, None, &acting(&ev), &mut last);
        assert_eq!(notice.action.unwrap().action, ActionKind::NotifyOwner);
        let cut = p.decide(&a(20_000), Response::RevokeCredential, None, &acting(&ev), &mut last);
        assert_eq!(cut.action.unwrap().action, ActionKind::RevokeCredential);
        assert!(p.decide(&a(40_000), Response::NotifyOwner, None, &acting(&ev), &mut last).action.is_some());
        assert_eq!(
            p.decide(&a(60_000), Response::RevokeCredential, None, &acting(&ev), &mut last).blocks,
            vec![Block::IdentityCooldown]
        );
    }

    #[test]
    fn a_flood_trips_the_breaker_once_and_blocks_until_it_closes() {
        let config = ResponseConfig { max_actions_per_minute: 5, breaker_cooldown_secs: 600, ..Default::default() };
        let p = Policy::new(config);
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        let (mut taken, mut storms, mut open) = (0, 0, 0);
        // 100 forged findings for 100 different identities within one second.
        for i in 0..100 {
            let d = p.decide(
                &alert(PrincipalType::ServiceAccount, i * 10, Severity::High),
                Response::RevokeCredential,
                None,
                &acting(&ev),
                &mut None,
            );
            taken += usize::from(d.action.is_some());
            storms += usize::from(d.storm.is_some());
            open += usize::from(d.blocks == vec![Block::CircuitOpen]);
        }
        assert_eq!((taken, storms, open), (5, 1, 94));
        // After the breaker's cooldown, actions flow again.
        let later = alert(PrincipalType::ServiceAccount, 601_000, Severity::High);
        assert!(p.decide(&later, Response::RevokeCredential, None, &acting(&ev), &mut None).action.is_some());
    }

    #[test]
    fn findings_spread_in_event_time_but_delivered_at_once_are_paced_by_the_wall_clock() {
        use std::sync::atomic::{AtomicI64, Ordering};
        // The processing clock, moved by the test.
        static NOW: AtomicI64 = AtomicI64::new(1_000_000);
        let config = ResponseConfig { max_actions_per_minute: 20, breaker_cooldown_secs: 600, ..Default::default() };
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        // 200 forged findings for 200 identities, 3 s apart in event time (20 a minute: the
        // ceiling's own rate), all delivered within the same millisecond.
        let taken = |p: &Policy| {
            (0..200)
                .filter(|&i| {
                    let a = alert(PrincipalType::ServiceAccount, i * 3_000, Severity::High);
                    p.decide(&a, Response::RevokeCredential, None, &acting(&ev), &mut None).action.is_some()
                })
                .count()
        };
        // In event time alone (a replay), every one passes.
        assert_eq!(taken(&Policy::new(config.clone())), 200);
        let mut paced = Policy::new(config);
        paced.pace_with(|| NOW.load(Ordering::Relaxed));
        assert_eq!(taken(&paced), 20, "a minute's worth, then the breaker");
        // The breaker stays open until the wall clock has let its cooldown pass, however far
        // event time moves.
        let late = alert(PrincipalType::ServiceAccount, 10 * 86_400_000, Severity::High);
        let d = paced.decide(&late, Response::RevokeCredential, None, &acting(&ev), &mut None);
        assert_eq!(d.blocks, vec![Block::CircuitOpen]);
        NOW.fetch_add(601_000, Ordering::Relaxed);
        assert!(paced.decide(&late, Response::RevokeCredential, None, &acting(&ev), &mut None).action.is_some());
    }

    #[test]
    fn below_min_severity_only_alerts() {
        let p = Policy::new(ResponseConfig::default());
        let ev = event(PrincipalType::ServiceAccount, CredentialKind::StaticKey, None);
        let d = p.decide(
            &alert(PrincipalType::ServiceAccount, 0, Severity::Low),
            Response::RotateSecret,
            None,
            &acting(&ev),
            &mut None,
        );
        assert_eq!(d.blocks, vec![Block::BelowMinSeverity]);
    }
}
