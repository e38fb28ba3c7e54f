//! `volume_ceiling`: absolute per-type ceilings on calls and bytes out per UTC hour,
//! independent of any learned rate (a new identity exfiltrating on day one still trips it).
//! The one thing of its own history it heeds: an identity whose own hours lately came
//! near the ceiling (a busy function's surges) is held to a multiple of its busiest hour.
//! And the hour's excess must be one credential's: a workload scaling out past the ceiling
//! spreads its calls over its environments' credentials, a thief's stolen key carries them.

use serde::Deserialize;

use super::{Finding, Kind, carries_excess};
use crate::state::Observation;
use crate::state::baseline::WINDOWS;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::HOUR;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCeiling {
    pub max_calls_per_hour: Option<u32>,
    pub max_bytes_out_per_hour: Option<u64>,
    /// Calls above the ceiling still within this many times the identity's own busiest
    /// hour lately (unclamped, halving over two days) are its size, not an exfiltration:
    /// a function whose surges reach 15,000 calls an hour makes 20,001 in a bigger one,
    /// which a per-type ceiling cannot tell from a theft. An identity that never came near
    /// (new, or always quieter) is held to the ceiling alone; so is every identity without
    /// this. Excess inside an identity's own size is `rate_spike`'s.
    pub own_peak_margin: Option<f32>,
    /// And, for an identity with hours of its own, the event's credential made at least
    /// this share of the identity's recent calls times the hour's excess over its own size
    /// ([`super::carries_excess`] with no effect size, the ceiling being the bar). A
    /// function's 20-fold surge over two cold starts' sessions holds half in each; a stolen
    /// session or a static key carries it all. And it must be making calls at half the pace
    /// that would have made the excess within the hour: an hour still holding a burst that
    /// ended is no theft in progress. A new identity is held to the ceiling
    /// alone: a thief's fresh user would split its calls over two keys. What this gives
    /// up: a volume made over many credentials at once, which is the workload's own code
    /// (a poisoned dependency in every environment) or several stolen sessions.
    pub min_share: Option<f32>,
}

impl Kind for VolumeCeiling {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let busiest_hour = obs.window_peaks[WINDOWS.len() - 1];
        let own_size = self.own_peak_margin.map_or(0.0, |m| m * busiest_hour);
        let hour = obs.hour_count as f32;
        // And making it now: a thief whose calls took the hour past its size ran at least
        // `(hour - own_size) / 60` a minute on average; at half that pace or less (the hour
        // still holding a burst that ended, the function's last environment at its usual
        // pace) the hour's excess is not this credential's doing.
        let making_it_now = || obs.credential_recent.is_none_or(|r| r >= 0.5 * (hour - own_size) / 60.0);
        let carried = |min_share| {
            busiest_hour == 0.0
                || (carries_excess(obs.credential_share_bound(), min_share, f32::INFINITY, hour, own_size)
                    && making_it_now())
        };
        let calls = self
            .max_calls_per_hour
            .filter(|&max| obs.hour_count > max && hour > own_size && self.min_share.is_none_or(carried));
        let bytes = self.max_bytes_out_per_hour.filter(|&max| obs.hour_bytes_out > max);
        if calls.is_none() && bytes.is_none() {
            return None;
        }
        let what = match (calls, bytes) {
            (Some(max), _) => format!("{} calls this hour, above the ceiling of {max}", obs.hour_count),
            (None, Some(max)) => format!("{} bytes out this hour, above the ceiling of {max}", obs.hour_bytes_out),
            (None, None) => unreachable!("checked above"),
        };
        Some(Finding {
            evidence: crate::evidence! {
                "calls_this_hour" => obs.hour_count,
                "bytes_out_this_hour" => obs.hour_bytes_out,
                "max_calls_per_hour" => self.max_calls_per_hour,
                "max_bytes_out_per_hour" => self.max_bytes_out_per_hour,
                "busiest_hour_lately" => busiest_hour.round() as u32,
                "credential_share" => super::round2(obs.credential_share),
            },
            summary: format!("{} made {what}.", ev.principal.id),
            unit: ev.time.div_euclid(HOUR),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, shipped};
    use crate::context::network::Ranges;
    use crate::state::Identity;
    use nhid_model::event::PrincipalType;
    use nhid_model::time::{DAY, HOUR, MINUTE};

    /// Hours of `per_hour(h)` calls each, evenly spread, with one key; returns the hours
    /// whose calls raised a finding.
    fn hours(id: &mut Identity, range: std::ops::Range<i64>, per_hour: impl Fn(i64) -> i64) -> Vec<i64> {
        hours_over(id, range, per_hour, |_, _| 0)
    }

    const SESSIONS: [&str; 4] = ["ASIA0", "ASIA1", "ASIA2", "ASIA3"];

    /// The same, the `k`th call of hour `h` made with `SESSIONS[session(h, k)]`.
    fn hours_over(
        id: &mut Identity,
        range: std::ops::Range<i64>,
        per_hour: impl Fn(i64) -> i64,
        session: impl Fn(i64, i64) -> usize,
    ) -> Vec<i64> {
        let d = shipped("volume_ceiling");
        let mut ev = event(0, PrincipalType::ServiceAccount);
        let mut fired = Vec::new();
        for h in range {
            let n = per_hour(h);
            for k in 0..n {
                ev.time = h * HOUR + k * HOUR / n;
                ev.credential.id = Some(SESSIONS[session(h, k)].into());
                let obs = id.observe(&ev, DAY, Ranges::builtin());
                if d.check(PrincipalType::ServiceAccount, &ev, &obs).is_some() && fired.last() != Some(&h) {
                    fired.push(h);
                }
            }
        }
        fired
    }

    #[test]
    fn a_busy_identity_crossing_the_ceiling_in_its_own_surge_is_quiet_a_quiet_one_is_not() {
        // Surges of 15,000 calls an hour each afternoon, 2,000 otherwise; a bigger surge at
        // 20,001 stays within twice its own busiest hour.
        let busy = |h: i64| if h % 24 == 14 { 15_000 } else { 2_000 };
        let mut function = Identity::new(PrincipalType::ServiceAccount, None, 0);
        assert_eq!(hours(&mut function, 0..72, busy), Vec::<i64>::new());
        assert_eq!(hours(&mut function, 72..87, |h| if h == 86 { 20_001 } else { busy(h) }), Vec::<i64>::new());
        // Three times its surges is above its size.
        assert_eq!(hours(&mut function, 87..111, |h| if h == 110 { 45_001 } else { busy(h) }), [110]);
        // An identity whose hours never came near, and a new one, are held to the ceiling.
        let mut quiet = Identity::new(PrincipalType::ServiceAccount, None, 0);
        assert_eq!(hours(&mut quiet, 0..86, |h| if h == 85 { 20_001 } else { 2_000 }), [85]);
        let mut new = Identity::new(PrincipalType::ServiceAccount, None, 0);
        assert_eq!(hours(&mut new, 0..1, |_| 20_001), [0]);
    }

    #[test]
    fn a_surge_spread_over_a_workloads_sessions_is_its_scaling_out_one_session_carrying_it_is_not() {
        // A function at 600 calls an hour on two environments' sessions, then a 33-fold
        // hour spread over the two: scaling out, not a theft.
        let spread = |_: i64, k: i64| (k % 2) as usize;
        let mut function = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let quiet = |h: i64| if h == 80 { 20_001 } else { 600 };
        assert_eq!(hours_over(&mut function, 0..81, quiet, spread), Vec::<i64>::new());
        // Such an hour with the excess on one session (a stolen one beside the warm three)
        // alerts at its first call past the ceiling.
        let mut stolen = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let thief = |h: i64, k: i64| if h == 80 && k % 40 != 0 { 3 } else { (k % 3) as usize };
        let theft = |h: i64| if h == 80 { 21_000 } else { 600 };
        assert_eq!(hours_over(&mut stolen, 0..81, theft, thief), [80]);
        // An hour whose first quarter held a 30,000-call burst over the two sessions and
        // whose rest is one session at the usual pace: past the ceiling, not being made now.
        let mut ended = Identity::new(PrincipalType::ServiceAccount, None, 0);
        assert_eq!(hours_over(&mut ended, 0..80, |_| 600, spread), Vec::<i64>::new());
        let d = shipped("volume_ceiling");
        let mut ev = event(0, PrincipalType::ServiceAccount);
        let calls = (0..30_000).map(|k| (80 * HOUR + k * 15 * MINUTE / 30_000, k % 2));
        let tail = (0..450).map(|k| (80 * HOUR + 15 * MINUTE + k * 45 * MINUTE / 450, 0));
        for (t, session) in calls.chain(tail) {
            ev.time = t;
            ev.credential.id = Some(SESSIONS[session as usize].into());
            let obs = ended.observe(&ev, DAY, Ranges::builtin());
            // The calls of the burst's last minute are still the session's recent ones
            // (a count decaying over a minute); two minutes on, they are gone.
            let after_burst = t >= 80 * HOUR + 17 * MINUTE;
            let fired = d.check(PrincipalType::ServiceAccount, &ev, &obs).is_some();
            assert!(!after_burst || !fired, "at {t}: {} {:?}", obs.credential_share, obs.credential_recent);
        }
        // A new identity has no size of its own: however it spreads its calls, the ceiling.
        let mut fresh = Identity::new(PrincipalType::ServiceAccount, None, 0);
        assert_eq!(hours_over(&mut fresh, 0..1, |_| 20_001, spread), [0]);
    }
}
