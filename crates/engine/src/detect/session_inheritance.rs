//! `session_inheritance`: a person's principal acting through an agent or at machine speed.
//! An agent that borrows its user's own session inherits every permission the person has,
//! with none of the scoping a delegated agent identity would have, and its actions are
//! logged as the person's. Evaluated in the human lane only; alert, never act.

use serde::Deserialize;

use super::{Finding, Kind};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionInheritance {
    /// User agent fragments (any case) of agent runtimes and their HTTP clients.
    pub agent_user_agents: Vec<String>,
    /// Calls in one minute no person makes by hand.
    pub machine_speed_per_minute: u32,
}

/// Whether `haystack` contains `needle`, ignoring ASCII case, without allocating.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    !n.is_empty() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl Kind for SessionInheritance {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let agent = ev.actor.agent_id.as_deref();
        let runtime = ev
            .source
            .user_agent
            .as_deref()
            .filter(|ua| self.agent_user_agents.iter().any(|a| contains_ignore_case(ua, a)));
        let speed = obs.minute_count >= self.machine_speed_per_minute;
        let how = match (agent, runtime) {
            (Some(a), _) => format!("through agent {a}"),
            (None, Some(ua)) => format!("through an agent runtime ({ua})"),
            (None, None) if speed => format!("at machine speed ({} calls in one minute)", obs.minute_count),
            (None, None) => return None,
        };
        let session = ev.actor.session_id.as_deref().or(ev.credential.id.as_deref());
        Some(Finding {
            evidence: crate::evidence! {
                "agent_id" => agent,
                "user_agent" => ev.source.user_agent,
                "calls_this_minute" => obs.minute_count,
                "session" => session,
                "credential_kind" => ev.credential.kind.as_str(),
            },
            summary: format!(
                "Human {} is acting {how}{}: the agent holds everything the person may do.",
                ev.principal.id,
                session.map(|s| format!(" in session {s}")).unwrap_or_default()
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
    use nhid_model::vocab::Response;

    #[test]
    fn an_agent_on_a_human_session_fires_and_is_never_acted_on() {
        let d = shipped("session_inheritance");
        let mut ev = event(1_000 * MINUTE, PrincipalType::Human);
        ev.source.user_agent = Some("Mozilla/5.0 (Macintosh) Safari/605.1.15".into());
        let obs = observe(&ev);
        assert!(d.check(PrincipalType::Human, &ev, &obs).is_none(), "a person at a browser");
        ev.source.user_agent = Some("Agent-Runtime/2.3 (+tools)".into());
        let (s, f) = d.check(PrincipalType::Human, &ev, &observe(&ev)).unwrap();
        assert_eq!(s.response, Response::None);
        assert!(f.summary.contains("through an agent runtime"), "{}", f.summary);
        ev.source.user_agent = None;
        ev.actor.agent_id = Some("agent-desktop-3".into());
        let f = d.check(PrincipalType::Human, &ev, &observe(&ev)).unwrap().1;
        assert!(f.summary.contains("through agent agent-desktop-3"), "{}", f.summary);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &observe(&ev)).is_none(), "machines have their own kinds");
    }

    #[test]
    fn machine_speed_alone_is_enough() {
        let d = shipped("session_inheritance");
        let ev = event(1_000 * MINUTE, PrincipalType::Human);
        let mut obs = observe(&ev);
        obs.minute_count = 149;
        assert!(d.check(PrincipalType::Human, &ev, &obs).is_none());
        obs.minute_count = 150;
        assert!(d.check(PrincipalType::Human, &ev, &obs).unwrap().1.summary.contains("machine speed"));
    }

    #[test]
    fn case_insensitive_search() {
        assert!(contains_ignore_case("python-HTTPX/0.27", "httpx"));
        assert!(!contains_ignore_case("curl", "httpx"));
        assert!(!contains_ignore_case("x", ""));
    }
}
