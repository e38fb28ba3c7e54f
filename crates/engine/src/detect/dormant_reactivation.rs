//! `dormant_reactivation`: an identity idle for days acts again. Keys and accounts nobody
//! uses any more are the ones nobody watches or rotates, and the ones attackers find in old
//! repositories and backups; when one wakes up, its owner should say whether it was them.
//! The sleep is measured from the identity's previous event, through eviction (tombstones).

use serde::Deserialize;

use super::{Finding, Kind, span};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::{DAY, HOUR, SECOND, format_rfc3339};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DormantReactivation {
    /// Idle at least this long (days, fractions allowed).
    pub min_idle_days: f64,
}

impl Kind for DormantReactivation {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        if (obs.idle_for as f64) < self.min_idle_days * DAY as f64 {
            return None;
        }
        let last = ev.time - obs.idle_for;
        Some(Finding {
            evidence: crate::evidence! {
                "idle_secs" => obs.idle_for / SECOND,
                "last_seen" => format_rfc3339(last),
                "credential_id" => ev.credential.id,
                "source_ip" => ev.source.ip,
            },
            summary: format!(
                "{} acted again after {} idle (last seen {}): {}.",
                ev.principal.id,
                span(obs.idle_for),
                format_rfc3339(last),
                ev.action
            ),
            unit: ev.time.div_euclid(HOUR),
            key: ev.credential.id.as_deref().map_or(0, crate::state::sets::fingerprint),
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
    fn fires_after_eight_idle_days_for_machines_only() {
        let d = shipped("dormant_reactivation");
        let ev = event(1_000 * DAY, PrincipalType::ApiKey);
        let mut obs = observe(&ev);
        obs.idle_for = 7 * DAY;
        assert!(d.check(PrincipalType::ApiKey, &ev, &obs).is_none(), "a weekly job");
        obs.idle_for = 9 * DAY + 3 * HOUR;
        let (s, f) = d.check(PrincipalType::ApiKey, &ev, &obs).unwrap();
        assert_eq!(s.response, Response::NotifyOwner);
        assert_eq!(f.evidence["idle_secs"], (9 * DAY + 3 * HOUR) / SECOND);
        assert!(f.summary.starts_with("svc-a acted again after 9 days idle"), "{}", f.summary);
        assert!(d.check(PrincipalType::Human, &ev, &obs).is_none(), "people take holidays");
    }
}
