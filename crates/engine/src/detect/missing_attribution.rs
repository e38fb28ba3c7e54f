//! `missing_attribution`: an agent acting with no delegating user or no session. Agent
//! activity must say on whose behalf and in which session it happened, or nobody can tell
//! a user's request from an injected instruction, or cut one session without the rest.

use serde::Deserialize;

use super::{Finding, Kind};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingAttribution {
    /// Require `actor.delegating_user`.
    #[serde(default = "super::yes")]
    pub delegating_user: bool,
    /// Require `actor.session_id`.
    #[serde(default = "super::yes")]
    pub session: bool,
}

impl Kind for MissingAttribution {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, _obs: &Observation<'_>) -> Option<Finding> {
        let no_user = self.delegating_user && ev.actor.delegating_user.is_none();
        let no_session = self.session && ev.actor.session_id.is_none();
        let missing = match (no_user, no_session) {
            (true, true) => "no delegating user and no session",
            (true, false) => "no delegating user",
            (false, true) => "no session",
            (false, false) => return None,
        };
        Some(Finding {
            evidence: crate::evidence! {
                "missing_delegating_user" => no_user,
                "missing_session_id" => no_session,
                "agent_id" => ev.actor.agent_id,
                "credential_id" => ev.credential.id,
                "action" => ev.action,
            },
            summary: format!("Agent {} acted with {missing}: {}.", ev.principal.id, ev.action),
            unit: ev.time.div_euclid(MINUTE),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, observe, shipped};
    use super::*;

    #[test]
    fn agents_must_name_their_user_and_session_other_machines_need_not() {
        let d = shipped("missing_attribution");
        let mut ev = event(0, PrincipalType::AiAgent);
        ev.actor.delegating_user = Some("alice@example.com".into());
        ev.actor.session_id = Some("sess-1".into());
        assert!(d.check(PrincipalType::AiAgent, &ev, &observe(&ev)).is_none());
        ev.actor.session_id = None;
        let f = d.check(PrincipalType::AiAgent, &ev, &observe(&ev)).unwrap().1;
        assert_eq!(f.evidence["missing_session_id"], true);
        assert!(f.summary.contains("with no session"), "{}", f.summary);
        ev.actor = Default::default();
        assert!(d.check(PrincipalType::McpServer, &ev, &observe(&ev)).is_some());
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &observe(&ev)).is_none());
        assert!(d.check(PrincipalType::Human, &ev, &observe(&ev)).is_none());
    }
}
