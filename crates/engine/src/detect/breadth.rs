//! `breadth`: far more distinct targets (resources, services, trust zones) in a window than
//! the identity touches. Lateral movement and blast radius: a stolen key walking through
//! buckets, instances and secrets it never touched, often at an unremarkable call rate.
//! Rate-like: it fires when the window's count crosses the threshold, not on one event.

use serde::Deserialize;

use super::{Finding, Kind, carries_excess, round2};
use crate::state::Observation;
use crate::state::breadth::WINDOW;
use crate::state::seasonal::MARGIN;
use nhid_model::event::{AuditEvent, PrincipalType};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breadth {
    /// Never fire below this many distinct targets in a window.
    pub min_distinct: u32,
    /// Distinct targets must be at least this many times the usual per window...
    pub ratio: f32,
    /// ...and this many standard deviations above it.
    pub z: f32,
    /// ...and above this many times the identity's busiest window of the last days (its
    /// own surges, which reach more objects as they make more calls).
    pub peak_margin: f32,
    /// ...and this event's credential made at least this share of the identity's recent
    /// calls ([`Observation::credential_share`]) at the bar, proportionally more further above
    /// it ([`super::carries_excess`]): a function's burst reaching many objects
    /// spreads over its execution environments' credentials, a walk by a stolen one does
    /// not. What this gives up: a walk with one of a scaled-out workload's credentials, from
    /// its own host, slower than the rest of the workload's calls together (carried off the
    /// host, `new_source` and `shared_credential` see it).
    pub min_share: f32,
    /// Raise nothing for a job's session calling from where its jobs run
    /// ([`Observation::usual_job`]): a deploy of 400 files reaches 400 objects. As for
    /// `rate_spike`, the reach of a thief inside the job itself is given up.
    #[serde(default)]
    pub quiet_for_jobs: bool,
}

impl Kind for Breadth {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let r = obs.reach;
        if !obs.learned
            || r.distinct < self.min_distinct as f32
            || obs.credential_share < self.min_share
            || (self.quiet_for_jobs && obs.usual_job())
        {
            return None;
        }
        let threshold =
            (r.mean + self.z * r.sd).max(self.ratio * r.mean).max(MARGIN * r.recurring).max(self.peak_margin * r.burst);
        if r.distinct < threshold
            || !carries_excess(obs.credential_share_bound(), self.min_share, self.ratio, r.distinct, r.mean)
        {
            return None;
        }
        Some(Finding {
            evidence: crate::evidence! {
                "distinct_targets" => r.distinct.round() as u64,
                "window_secs" => WINDOW / 1_000,
                "baseline_per_window" => round2(r.mean),
                "baseline_sd" => round2(r.sd),
                "recurring_peak" => (r.recurring > 0.0).then(|| round2(r.recurring)),
                "usual_peak" => (r.burst > 0.0).then(|| round2(r.burst)),
                "threshold" => round2(threshold.max(self.min_distinct as f32)),
                "credential_share" => round2(obs.credential_share),
                "target" => ev.resource.as_deref().unwrap_or(&ev.action),
            },
            summary: format!(
                "{} touched about {:.0} distinct targets in {} minutes against a usual {:.1}; the latest: {}.",
                ev.principal.id,
                r.distinct,
                WINDOW / 60_000,
                r.mean,
                ev.resource.as_deref().unwrap_or(&ev.action)
            ),
            unit: ev.time.div_euclid(WINDOW),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, observe, shipped};
    use super::*;
    use crate::state::breadth::Reach;
    use nhid_model::vocab::Response;
    use nhid_model::vocab::Severity;

    #[test]
    fn fires_far_above_the_usual_reach_and_not_near_it() {
        let d = shipped("breadth");
        let ev = event(1_000 * WINDOW, PrincipalType::ServiceAccount);
        let mut obs = observe(&ev);
        obs.learned = true;
        obs.reach = Reach { distinct: 24.0, mean: 3.0, sd: 1.7, recurring: 0.0, burst: 0.0 };
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "below the floor");
        obs.reach.distinct = 40.0;
        let (s, f) = d.check(PrincipalType::ServiceAccount, &ev, &obs).unwrap();
        assert_eq!((s.severity, s.response), (Severity::High, Response::RevokeCredential));
        assert_eq!(f.evidence["distinct_targets"], 40);
        assert_eq!(f.unit, 1_000, "one finding per window");
        // Busy identities need four times their usual reach.
        obs.reach = Reach { distinct: 150.0, mean: 60.0, sd: 8.0, recurring: 0.0, burst: 0.0 };
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none());
        // A nightly batch's reach, recurring at this hour, is the identity's own.
        obs.reach = Reach { distinct: 300.0, mean: 10.0, sd: 5.0, recurring: 280.0, burst: 0.0 };
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none());
        // Far beyond its usual reach, with this credential behind a fifth of the calls: a
        // workload scaled out; behind nine tenths, a credential walking.
        obs.reach = Reach { distinct: 200.0, mean: 10.0, sd: 5.0, recurring: 0.0, burst: 0.0 };
        obs.credential_share = 0.2;
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "spread over its credentials");
        obs.credential_share = 0.9;
        obs.credential_recent = Some(45.0);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_some(), "carried by one");
        // Just past the bar (39 targets against 4.9 usually: 58 % needed), a share of 65 %
        // of 150 recent calls carries the excess; of 15 calls it may be an even split's
        // chance (a function's burst over two environments).
        obs.reach = Reach { distinct: 39.0, mean: 4.9, sd: 2.8, recurring: 0.0, burst: 0.0 };
        obs.credential_share = 0.65;
        obs.credential_recent = Some(97.5);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_some(), "carried");
        obs.credential_recent = Some(9.75);
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "too few calls to say");
        obs.learned = false;
        obs.reach = Reach { distinct: 400.0, mean: 3.0, sd: 1.7, recurring: 0.0, burst: 0.0 };
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "still learning");
    }

    #[test]
    fn agents_lose_their_session_and_humans_are_not_evaluated() {
        let d = shipped("breadth");
        let ev = event(1_000 * WINDOW, PrincipalType::AiAgent);
        let mut obs = observe(&ev);
        obs.learned = true;
        obs.reach = Reach { distinct: 80.0, mean: 5.0, sd: 2.0, recurring: 0.0, burst: 0.0 };
        assert_eq!(d.check(PrincipalType::AiAgent, &ev, &obs).unwrap().0.response, Response::RevokeSession);
        assert!(d.check(PrincipalType::Human, &ev, &obs).is_none());
    }
}
