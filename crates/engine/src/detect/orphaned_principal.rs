//! `orphaned_principal`: a principal still active after its owner was offboarded. Nobody
//! answers for it any more: nobody rotates its secrets, reviews its scope, or notices when
//! someone else uses it, and keys minted by people who left are the most common first
//! finding of a non-human identity inventory (OWASP NHI1, improper offboarding).
//!
//! The owner is the one alerts name: the inventory's, else the one the principal's events
//! report; the offboarding comes from the lifecycle topic.

use serde::Deserialize;

use super::{Finding, Kind, span};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::{HOUR, SECOND, format_rfc3339};

/// No parameters: which lanes run, and their severity and response, are the whole instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrphanedPrincipal {}

impl Kind for OrphanedPrincipal {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let (owner, at) = obs.offboarded_owner.as_ref()?;
        let since = ev.time - at;
        Some(Finding {
            evidence: crate::evidence! {
                "owner" => owner,
                "owner_offboarded_at" => format_rfc3339(*at),
                "offboarded_seconds_ago" => since / SECOND,
            },
            summary: format!(
                "{} is still active {} after its owner {owner} was offboarded ({}); nobody answers for it.",
                ev.principal.id,
                span(since),
                format_rfc3339(*at)
            ),
            // A standing condition: the hours it stays active are what the repeat count tells.
            unit: ev.time.div_euclid(HOUR),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, observe, shipped};
    use super::*;
    use nhid_model::vocab::Response;
    use nhid_model::vocab::Severity;

    const T: i64 = 1_000 * HOUR;

    #[test]
    fn fires_for_machines_whose_owner_was_offboarded() {
        let d = shipped("orphaned_principal");
        let ev = event(T + 30 * 60 * SECOND, PrincipalType::ServiceAccount);
        let mut obs = observe(&ev);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "an owner in good standing");
        obs.offboarded_owner = Some(("bob".into(), T - 3 * HOUR));
        let (settings, f) = d.check(PrincipalType::ServiceAccount, &ev, &obs).unwrap();
        assert_eq!((settings.severity, settings.response), (Severity::High, Response::NotifyOwner));
        assert_eq!(f.evidence["owner"], "bob");
        assert_eq!(f.evidence["offboarded_seconds_ago"], 3 * 3_600 + 30 * 60);
        assert_eq!(f.unit, T / HOUR, "findings in the same hour are one finding");
        assert!(
            f.summary.starts_with("svc-a is still active 3 hours after its owner bob was offboarded"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn humans_and_unknown_principals_are_not_evaluated() {
        let d = shipped("orphaned_principal");
        for lane in [PrincipalType::Human, PrincipalType::Unknown] {
            let ev = event(T, lane);
            let mut obs = observe(&ev);
            obs.offboarded_owner = Some(("bob".into(), T - HOUR));
            assert!(d.check(lane, &ev, &obs).is_none(), "{lane}");
        }
    }
}
