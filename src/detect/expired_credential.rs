//! `expired_credential`: a credential used after its `expires_at`: a replayed token, or a
//! platform that fails to enforce expiry. Either way the holder should not have it.

use serde::Deserialize;

use super::{Check, Finding, PerType};
use crate::event::{AuditEvent, PrincipalType};
use crate::state::Observation;
use crate::time::{MINUTE, SECOND, format_rfc3339};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Tolerated clock skew between the issuer and the audit source.
    pub grace_secs: u32,
}

pub struct ExpiredCredential(pub PerType<Params>);

impl Check for ExpiredCredential {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let p = self.0.get(lane)?;
        let late = obs.expired_for?;
        if late <= i64::from(p.grace_secs) * SECOND {
            return None;
        }
        let id = ev.credential.id.as_deref().unwrap_or_default();
        let expired = ev.credential.expires_at.map(format_rfc3339).unwrap_or_default();
        Some(Finding {
            evidence: crate::evidence! { "expired_seconds_ago" => late / SECOND, "expires_at" => expired },
            summary: format!("{} used credential {id} {} minutes after it expired.", ev.principal.id, late / MINUTE),
            unit: ev.time.div_euclid(MINUTE),
        })
    }
}
