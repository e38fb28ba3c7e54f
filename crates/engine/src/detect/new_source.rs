//! `new_source`: a learned identity used from a network or user agent it has never used.
//! The classic sign of a leaked credential: same key, attacker's infrastructure.

use serde::Deserialize;

use super::{Finding, Kind};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    #[serde(default = "super::yes")]
    pub network: bool,
    #[serde(default = "super::yes")]
    pub user_agent: bool,
}

impl Kind for NewSource {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let network = obs.new_network.filter(|_| self.network);
        let agent = (self.user_agent && obs.new_user_agent).then_some(ev.source.user_agent.as_deref()).flatten();
        if network.is_none() && agent.is_none() {
            return None;
        }
        let mut evidence = crate::evidence! { "known_networks" => obs.known_networks };
        if let Some(net) = network {
            evidence.insert("new_network".into(), net.to_string().into());
            evidence.insert("source_ip".into(), ev.source.ip.as_deref().unwrap_or_default().into());
        }
        if let Some(ua) = agent {
            evidence.insert("new_user_agent".into(), ua.into());
        }
        let credential = ev.credential.id.as_deref().map(|c| format!(" with credential {c}")).unwrap_or_default();
        let what = match (network, agent) {
            (Some(net), Some(ua)) => {
                format!("from never-seen network {net} with never-seen user agent {ua:?}")
            }
            (Some(net), None) => format!("from never-seen network {net}"),
            (None, Some(ua)) => format!("with never-seen user agent {ua:?}"),
            (None, None) => unreachable!("checked above"),
        };
        Some(Finding {
            evidence,
            summary: format!("{} was used{credential} {what}.", ev.principal.id),
            unit: ev.time.div_euclid(MINUTE),
        })
    }
}
