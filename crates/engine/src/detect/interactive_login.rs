//! `interactive_login`: a machine identity signs in interactively (a console, a browser
//! SSO flow). Machines call APIs; a service account at a console is a person holding its
//! password or keys, which defeats every control built on knowing who acted.
//!
//! Judged against what the identity was before the sign-in: a console sign-in makes a
//! CloudTrail IAM user look human, and nhid then keeps it in the human lane for safety
//! (never auto-acted on). The alert still fires, with the machine type's settings; the
//! policy sees the identity as it is now.

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

    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, _obs: &Observation<'_>) -> Option<Finding> {
        if !self.operations.matches(&ev.action) {
            return None;
        }
        Some(Finding {
            evidence: crate::evidence! {
                "action" => ev.action,
                "outcome" => ev.outcome.as_str(),
                "credential_kind" => ev.credential.kind.as_str(),
                "source_ip" => ev.source.ip,
                "user_agent" => ev.source.user_agent,
            },
            summary: format!(
                "Machine identity {} ({lane}) signed in interactively: {} ({}) from {}.",
                ev.principal.id,
                ev.action,
                ev.outcome,
                ev.source.ip.as_deref().unwrap_or("an unknown address")
            ),
            unit: ev.time.div_euclid(MINUTE),
            ..Default::default()
        })
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
