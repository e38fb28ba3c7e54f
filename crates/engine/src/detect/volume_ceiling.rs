//! `volume_ceiling`: absolute per-type ceilings on calls and bytes out per UTC hour,
//! independent of any learned rate (a new identity exfiltrating on day one still trips it).
//! The one thing of its own history it heeds: an identity whose own hours lately came
//! near the ceiling (a busy function's surges) is held to a multiple of its busiest hour.

use serde::Deserialize;

use super::{Finding, Kind};
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
}

impl Kind for VolumeCeiling {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let busiest_hour = obs.window_peaks[WINDOWS.len() - 1];
        let own_size = self.own_peak_margin.map_or(0.0, |m| m * busiest_hour);
        let calls = self.max_calls_per_hour.filter(|&max| obs.hour_count > max && obs.hour_count as f32 > own_size);
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
    use nhid_model::time::{DAY, HOUR};

    /// Hours of `per_hour(h)` calls each, evenly spread; returns the hours whose calls
    /// raised a finding.
    fn hours(id: &mut Identity, range: std::ops::Range<i64>, per_hour: impl Fn(i64) -> i64) -> Vec<i64> {
        let d = shipped("volume_ceiling");
        let mut ev = event(0, PrincipalType::ServiceAccount);
        let mut fired = Vec::new();
        for h in range {
            let n = per_hour(h);
            for k in 0..n {
                ev.time = h * HOUR + k * HOUR / n;
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
}
