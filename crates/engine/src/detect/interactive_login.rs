//! `interactive_login`: a machine identity signs in interactively (a console, a browser
//! SSO flow). Machines call APIs; a service account at a console is a person holding its
//! password or keys, which defeats every control built on knowing who acted.
//!
//! Judged against the identity's established type: a console sign-in is typed human by
//! its own event (that event runs in the human lane, never auto-acted on), and the alert
//! fires at the identity's first, with the machine type's settings. An IAM user a person
//! signs in with, at the console daily, is reported once, not daily.
//!
//! Also a machine identity used as a person would be, by fields the caller chooses alone:
//! a browser's user agent or an email-like session name on a role session that machines
//! use ([`Observation::first_as`]). Whoever holds the session chooses those, and they never
//! move the identity to the human lane; the claim itself is the finding, once.

use serde::Deserialize;

use super::{Finding, Kind, Operations};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteractiveLogin {
    /// Interactive sign-in operations of the supported formats.
    pub operations: Operations,
}

impl Kind for InteractiveLogin {
    fn lane(lane: PrincipalType, obs: &Observation<'_>) -> PrincipalType {
        if obs.prior_kind.is_machine() { obs.prior_kind } else { lane }
    }

    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let from = ev.source.ip.as_deref().unwrap_or("an unknown address");
        // Built only for a finding: this runs on every event.
        let evidence = || {
            crate::evidence! {
                "action" => ev.action,
                "outcome" => ev.outcome.as_str(),
                "credential_kind" => ev.credential.kind.as_str(),
                "source_ip" => ev.source.ip,
                "user_agent" => ev.source.user_agent,
            }
        };
        let first_as_person = obs.first_as.is_some_and(|k| !k.is_machine());
        let (evidence, summary) = if self.operations.matches(&ev.action)
            && (ev.principal.kind.is_machine() || first_as_person)
        {
            let summary = format!(
                "Machine identity {} ({lane}) signed in interactively: {} ({}) from {from}.",
                ev.principal.id, ev.action, ev.outcome
            );
            (evidence(), summary)
        } else if let Some(claimed) = obs.first_as.filter(|_| first_as_person && ev.principal.inferred && obs.learned) {
            let mut evidence = evidence();
            evidence.insert("claimed_type".into(), claimed.as_str().into());
            if let Some(session) = ev.actor.session_id.as_deref() {
                evidence.insert("session_id".into(), session.into());
            }
            let summary = format!(
                "Machine identity {} ({lane}) was used as a {claimed} would be, by fields the caller chooses \
                 (user agent {:?}, session {:?}): {} from {from}. It stays in the {lane} lane.",
                ev.principal.id,
                ev.source.user_agent.as_deref().unwrap_or("-"),
                ev.actor.session_id.as_deref().unwrap_or("-"),
                ev.action,
            );
            (evidence, summary)
        } else {
            return None;
        };
        Some(Finding { evidence, summary, unit: ev.time.div_euclid(MINUTE), ..Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, observe, shipped};
    use super::*;
    use nhid_model::time::HOUR;
    use nhid_model::vocab::Response;

    #[test]
    fn a_service_account_at_the_console_fires_even_once_it_looks_human() {
        let d = shipped("interactive_login");
        let mut ev = event(1_000 * HOUR, PrincipalType::ServiceAccount);
        let obs = observe(&ev);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "an API call");
        ev.action = "signin:ConsoleLogin".into();
        let (s, f) = d.check(PrincipalType::ServiceAccount, &ev, &observe(&ev)).unwrap();
        assert_eq!(s.response, Response::RevokeSession);
        assert!(f.summary.starts_with("Machine identity svc-a (service_account) signed in"), "{}", f.summary);
        // The sign-in made it human in nhid's eyes: still judged as the machine it was.
        let mut obs = observe(&ev);
        obs.prior_kind = PrincipalType::ServiceAccount;
        assert!(d.check(PrincipalType::Human, &ev, &obs).is_some());
        // A person signing in is not a finding.
        obs.prior_kind = PrincipalType::Human;
        assert!(d.check(PrincipalType::Human, &ev, &obs).is_none());
        ev.action = "okta:user.session.start".into();
        assert!(d.check(PrincipalType::Workload, &ev, &observe(&ev)).is_some());
    }
}
