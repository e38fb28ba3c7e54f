//! `volume_ceiling`: absolute per-type ceilings on calls and bytes out per UTC hour,
//! independent of any baseline (a new identity exfiltrating on day one still trips it).

use serde::Deserialize;

use super::{Finding, Kind};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::HOUR;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCeiling {
    pub max_calls_per_hour: Option<u32>,
    pub max_bytes_out_per_hour: Option<u64>,
}

impl Kind for VolumeCeiling {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let calls = self.max_calls_per_hour.filter(|&max| obs.hour_count > max);
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
            },
            summary: format!("{} made {what}.", ev.principal.id),
            unit: ev.time.div_euclid(HOUR),
            ..Default::default()
        })
    }
}
