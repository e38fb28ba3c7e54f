//! `content`: the record matched a content rule (Sigma, `rules/`): what the call does (a
//! trail stopped, a snapshot shared with another account, ingress opened to the world) is
//! dangerous by itself, from the first event, with no history.
//!
//! The rule's level is the starting severity; the identity's own history then weighs it:
//! the same call made before, from the identity's usual places with its usual client, is
//! one level lower (a routine its owner should still see); the call from a network or
//! client the identity never used, or its session carried elsewhere, one level higher, and
//! then the response is the file's `from_elsewhere` (for machines, cutting the credential
//! off: a dangerous call by someone else's hands). Otherwise a rule asks for no more than the
//! lane's response: people are alerted on, never acted on.

use serde::Deserialize;

use super::{Finding, Kind, key_with_source};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;
use nhid_model::vocab::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// The response when the call comes from a network or client the identity never used
    /// (or its session was carried elsewhere): a dangerous call by someone else's hands, what
    /// a stolen key does. The lane's own response otherwise.
    pub from_elsewhere: Response,
}

impl Kind for Content {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let top = ev.rules.iter().max_by_key(|r| r.level)?;
        let done_before = obs.learned && obs.new_action.is_none() && obs.usual_provenance();
        let from_elsewhere = obs.new_network.is_some() || obs.new_client.is_some() || obs.moved;
        let (severity, context, baseline) = match (done_before, from_elsewhere) {
            (_, true) => {
                (top.level.raised(), "from a network or client it never used", "the networks and clients it used")
            }
            (true, false) => {
                (top.level.lowered(), "as it did before, from its usual places", "the calls it made and where from")
            }
            (false, false) if obs.learned => (top.level, "for the first time", "the calls it made"),
            (false, false) => (top.level, "for the first time", "nothing: no history yet"),
        };
        let titles: Vec<&str> = ev.rules.iter().map(|r| r.title.as_ref()).collect();
        let ids: Vec<&str> = ev.rules.iter().map(|r| r.id.as_ref()).collect();
        Some(Finding {
            evidence: crate::evidence! {
                "rules" => titles,
                "rule_ids" => ids,
                "rule_level" => top.level.as_str(),
                "action" => ev.action,
                "resource" => ev.resource,
                "outcome" => ev.outcome.as_str(),
                "context" => context,
            },
            summary: format!(
                "{} ({lane}) performed {} {context}: content rule \"{}\" ({}).",
                ev.principal.id,
                ev.action,
                top.title,
                top.level.as_str()
            ),
            unit: ev.time.div_euclid(MINUTE),
            // Each rule is an alert of its own; the same rule from another source or
            // credential too.
            key: key_with_source(&top.id, ev),
            severity: Some(severity),
            response: from_elsewhere.then_some(self.from_elsewhere),
            baseline: Some(baseline.to_string()),
            references: ev.rules.iter().flat_map(|r| r.techniques.iter().cloned()).collect(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, shipped};
    use super::*;
    use crate::context::network::Ranges;
    use crate::state::Identity;
    use nhid_model::event::RuleMatch;
    use nhid_model::time::{DAY, HOUR};
    use nhid_model::vocab::Severity;

    #[test]
    fn a_rule_match_is_weighed_by_what_the_identity_did_before_and_from_where() {
        let d = shipped("content");
        let ranges = Ranges::builtin();
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let mut ev = event(0, PrincipalType::ServiceAccount);
        ev.source.ip = Some("198.51.100.7".into());
        ev.source.user_agent = Some("aws-cli/2.17.0".into());
        ev.action = "cloudtrail:UpdateTrail".into();
        let rule = RuleMatch {
            id: "t-1".into(),
            title: "Trail changed".into(),
            level: Severity::High,
            techniques: vec!["T1562.008".into()],
        };
        let mut check = |ev: &AuditEvent<'_>| {
            let obs = id.observe(ev, DAY, ranges);
            d.check(PrincipalType::ServiceAccount, ev, &obs).map(|(_, f)| f)
        };
        // No rule matched: nothing, whatever the call.
        assert!(check(&ev).is_none());
        // The first time, on a cold start: the rule's own level.
        ev.rules = vec![rule.clone()];
        let f = check(&ev).expect("a finding");
        assert_eq!(f.severity, Some(Severity::High));
        assert!(f.summary.contains("Trail changed") && f.summary.contains("for the first time"), "{}", f.summary);
        assert_eq!((f.response, f.baseline.as_deref()), (None, Some("nothing: no history yet")));
        assert_eq!(f.references, ["T1562.008"], "the rule's ATT&CK technique goes with the finding");
        // The same call every day from the same place: past learning, a routine, one lower.
        for day in 1..3 {
            ev.time = day * DAY + 10 * HOUR;
            check(&ev);
        }
        ev.time = 3 * DAY + 10 * HOUR;
        assert_eq!(check(&ev).and_then(|f| f.severity), Some(Severity::Medium));
        // From a network it never used: one higher.
        ev.time += 1_000;
        ev.source.ip = Some("203.0.113.50".into());
        let f = check(&ev).expect("a finding");
        assert_eq!(f.severity, Some(Severity::Critical));
        assert!(f.summary.contains("never used"), "{}", f.summary);
        // Then, and only then, the credential is cut off rather than its owner told.
        assert_eq!(f.response, Some(Response::RevokeCredential));
    }
}
