//! `orphaned_principal`: a principal still active after its owner was offboarded. Nobody
//! answers for it any more: nobody rotates its secrets, reviews its scope, or notices when
//! someone else uses it, and keys minted by people who left are the most common first
//! finding of a non-human identity inventory (OWASP NHI1, improper offboarding).
//!
//! The owner is the one alerts name: the inventory's, else the one the principal's events
//! report; the offboarding comes from the lifecycle topic.

use serde::Deserialize;

use super::{Check, Finding, PerType, span};
use crate::event::{AuditEvent, PrincipalType};
use crate::state::Observation;
use crate::time::{HOUR, SECOND, format_rfc3339};

/// No parameters: which lanes run, and their severity and response, are the whole instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

pub struct OrphanedPrincipal(pub PerType<Params>);

impl Check for OrphanedPrincipal {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        self.0.get(lane)?;
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
        })
    }
}
