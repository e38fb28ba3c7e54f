//! `scope_drift`: a learned identity performs an action or reaches a service it never
//! used, where its own history says that is a surprise: an agent talked into new tools, a
//! stolen key probing what else it can do. A low-volume key still discovering its usual
//! long tail of actions has a high chance of showing a new one and is not flagged for it;
//! a key that repeated the same few actions thousands of times is. A discovery made where
//! and how the identity always works is judged over an hour of its activity, not a minute:
//! the false alarms a SOC budgets are per identity and day, not per call.

use serde::Deserialize;

use super::{Finding, Kind, new_source::describe, round_probability};
use crate::state::sets::fingerprint;
use crate::state::{Novel, Observation};
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeDrift {
    #[serde(default = "super::yes")]
    pub actions: bool,
    #[serde(default = "super::yes")]
    pub services: bool,
    /// Fire when the chance of a new action (service) from this identity is at most this.
    pub max_probability: f64,
    /// A discovery with the identity's [usual provenance](Observation::usual_provenance)
    /// (its network, its client, its credential where it always is: its own code reaching
    /// something new) is judged by the chance of one within this many of its active
    /// minutes. A key that finds a new value every few hundred active minutes (a weekly
    /// report's service, the tail of a long mix) finds one about every day, and a
    /// per-minute bar flagged each of them. A discovery from anywhere else is judged by the
    /// minute. 1 judges every discovery by the minute, as agents' are: a tool outside
    /// their set is what they are watched for.
    #[serde(default = "one")]
    pub usual_minutes: u16,
}

fn one() -> u16 {
    1
}

impl Kind for ScopeDrift {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let minutes = if obs.usual_provenance() { i32::from(self.usual_minutes) } else { 1 };
        // The chance of at least one discovery within those minutes.
        let chance = |n: &Novel| 1.0 - (1.0 - f64::from(n.probability)).powi(minutes);
        let within = |n: &&Novel| chance(n) <= self.max_probability;
        let new_service = obs.new_service.as_ref().filter(|_| self.services).filter(within);
        let new_action = obs.new_action.as_ref().filter(|_| self.actions).filter(within);
        // A new service is the stronger finding: judged by it when both are new.
        let novel = new_service.or(new_action)?;
        let what = if new_service.is_some() {
            format!("reached service {} for the first time ({})", ev.service, ev.action)
        } else {
            format!("performed {} for the first time", ev.action)
        };
        let p = chance(novel);
        Some(Finding {
            severity: None,
            response: None,
            evidence: crate::evidence! {
                "action" => ev.action,
                "service" => ev.service,
                "new_action" => obs.new_action.is_some(),
                "new_service" => new_service.is_some(),
                "known" => novel.known,
                "observations" => novel.observed,
                "probability" => round_probability(p),
                "within_active_minutes" => minutes,
            },
            summary: format!("{} {what} (chance {p:.1e} within {minutes} active minutes).", ev.principal.id),
            unit: ev.time.div_euclid(MINUTE),
            probability: Some(p),
            baseline: Some(describe(novel)),
            // Another service reached is new evidence; another action in a service already
            // alerted in the window is a repeat (a probe's burst of list calls is one alert
            // per service, not one per call).
            key: fingerprint(&ev.service),
            references: Vec::new(),
        })
    }
}
