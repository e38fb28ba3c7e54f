//! `new_source`: a learned identity used from a network or with a client it has never
//! used, where its own history says that is a surprise. The classic sign of a leaked
//! credential: same key, attacker's infrastructure and tools.
//!
//! "Never used" is judged with context (`state`, `context`): a network at the finest level
//! whose set still holds a baseline (the /24, else the provider's place: a runner on a new
//! GitHub-hosted address is not new, the same key from a hosting provider or an anonymiser
//! is), a client by family and major version (an SDK naming each call is one client). And
//! it is calibrated: the chance that this identity shows a new value, from how fast it
//! still discovers them. A network and a client both new multiply, and so does an action
//! never made before in the same call.

use serde::Deserialize;

use super::{Finding, Kind, round_probability};
use crate::context::network::Category;
use crate::state::sets::{Dim, fingerprint};
use crate::state::{Novel, Observation};
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    #[serde(default = "super::yes")]
    pub network: bool,
    #[serde(default = "super::yes")]
    pub user_agent: bool,
    /// Fire when the chance of a new value from this identity is at most this.
    pub max_probability: f64,
}

/// How much less a new network inside a known place weighs (see `check`).
const WITHIN_PLACE: f32 = 10.0;
/// How much more a new kind of place weighs when it is a hosting provider's or an
/// anonymiser's: where rented attack infrastructure sits, and where few machine
/// identities move to on their own.
const RENTED_PLACE: f32 = 4.0;

/// A novelty in words, and the baseline it was judged against.
pub(crate) fn describe(n: &Novel) -> String {
    let what = match n.level {
        Dim::Action => "actions",
        Dim::Service => "services",
        Dim::Network => "networks (/24, /48)",
        Dim::Place => "kinds of network (provider, private, public or its autonomous system)",
        Dim::Client => "clients (family and major version)",
        Dim::ClientFamily => "client families",
    };
    format!("{} {what} over {} observations", n.known, n.observed)
}

impl Kind for NewSource {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        // A new address block inside a provider's space (or a private range) the identity
        // already uses is weak evidence: providers hand out addresses all over their space,
        // subnets come and go. Its chance counts ten times; a new kind of place counts as is.
        let network = obs.new_network.filter(|_| self.network).map(|mut n| {
            let within = obs.place.is_some_and(|p| !matches!(p.category, Category::Public | Category::Anonymizer));
            if n.level == Dim::Network && within {
                n.probability = (n.probability * WITHIN_PLACE).min(1.0);
            }
            let rented = obs.place.is_some_and(|p| matches!(p.category, Category::Hosting | Category::Anonymizer));
            if n.level == Dim::Place && rented {
                n.probability /= RENTED_PLACE;
            }
            n
        });
        let client = obs.new_client.filter(|_| self.user_agent);
        if network.is_none() && client.is_none() {
            return None;
        }
        // Someone else brings their own purpose too: an action the identity never made, in
        // the same call as a new network or client, multiplies in (never fires alone: that
        // is scope_drift's).
        let action = obs.new_action;
        let p: f64 = [network, client, action].iter().flatten().map(|n| f64::from(n.probability)).product();
        if p > self.max_probability {
            return None;
        }
        let mut evidence = crate::evidence! { "probability" => round_probability(p) };
        let mut what = Vec::new();
        let place = obs.place.map(|p| p.to_string());
        if let Some(n) = network {
            let prefix = obs.network.map(|p| p.to_string());
            evidence.extend(crate::evidence! {
                "new_network" => prefix,
                "network_place" => place,
                "network_level" => level(n.level),
                "known_networks" => n.known,
                "source_ip" => ev.source.ip,
            });
            what.push(match (n.level, prefix) {
                (Dim::Place, _) => {
                    format!("from a kind of network it never used ({})", place.as_deref().unwrap_or("-"))
                }
                (_, Some(prefix)) => format!("from never-seen network {prefix}"),
                (_, None) => "from a never-seen network".to_string(),
            });
        }
        if let Some(n) = client {
            let c = obs.client.map(|c| c.to_string()).unwrap_or_default();
            evidence.extend(crate::evidence! {
                "new_client" => c,
                "client_level" => level(n.level),
                "new_user_agent" => ev.source.user_agent,
            });
            what.push(format!("with never-seen client {c}"));
        }
        if let Some(n) = action {
            evidence.extend(crate::evidence! { "new_action" => ev.action, "action_probability" => round_probability(f64::from(n.probability)) });
            what.push(format!("performing {} for the first time", ev.action));
        }
        let credential = ev.credential.id.as_deref().map(|c| format!(" with credential {c}")).unwrap_or_default();
        let baseline = [network, client, action].iter().flatten().map(describe).collect::<Vec<_>>().join("; ");
        Some(Finding {
            severity: None,
            response: None,
            evidence,
            summary: format!("{} was used{credential} {} (chance {p:.1e}).", ev.principal.id, what.join(" ")),
            unit: ev.time.div_euclid(MINUTE),
            probability: Some(p),
            baseline: Some(baseline),
            // Another network or client later in the window is another finding.
            key: fingerprint(obs.place.map_or("", |p| p.category.as_str()))
                ^ obs.network.map_or(0, |n| fingerprint(&n.to_string())).rotate_left(5)
                ^ obs.client.map_or(0, |c| c.fingerprints().0).rotate_left(11),
            references: Vec::new(),
        })
    }
}

fn level(d: Dim) -> &'static str {
    match d {
        Dim::Network => "network",
        Dim::Place => "place",
        Dim::Client => "client",
        Dim::ClientFamily => "client_family",
        Dim::Action => "action",
        Dim::Service => "service",
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, shipped};
    use super::*;
    use crate::context::network::Ranges;
    use crate::state::Identity;
    use nhid_model::time::{DAY, HOUR};

    /// A low-volume key: `calls` calls, an hour apart, from one office address.
    fn quiet_key(calls: i64) -> (Identity, AuditEvent<'static>) {
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let mut ev = event(0, PrincipalType::ServiceAccount);
        ev.source.ip = Some("198.51.100.190".into());
        ev.source.user_agent = Some("Boto3/1.34.144 md/Botocore#1.34.144 ua/2.0".into());
        for k in 0..calls {
            ev.time = k * HOUR;
            id.observe(&ev, DAY, Ranges::builtin());
        }
        (id, ev)
    }

    #[test]
    fn a_quiet_key_from_a_hosting_provider_is_a_surprise_from_another_cloud_not_yet() {
        let d = shipped("new_source");
        // Fifty calls from one address: a new kind of place is about a one-in-fifty event.
        let (mut id, mut ev) = quiet_key(50);
        ev.time += HOUR;
        ev.source.ip = Some("104.236.140.72".into()); // DigitalOcean
        let obs = id.observe(&ev, DAY, Ranges::builtin());
        let (_, f) = d.check(PrincipalType::ServiceAccount, &ev, &obs).expect("rented infrastructure");
        assert!(f.probability.unwrap() <= 0.01, "{f:?}");
        let (mut id, mut ev) = quiet_key(50);
        ev.time += HOUR;
        ev.source.ip = Some("3.5.140.2".into()); // AWS
        let obs = id.observe(&ev, DAY, Ranges::builtin());
        assert!(obs.new_network.is_some(), "{obs:?}");
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "one in fifty is no 1 % surprise");
    }

    #[test]
    fn a_new_action_in_the_same_call_multiplies_in() {
        let d = shipped("new_source");
        let (mut id, mut ev) = quiet_key(50);
        ev.time += HOUR;
        ev.source.ip = Some("3.5.140.2".into());
        ev.action = "iam:ListAttachedUserPolicies".into();
        ev.service = "iam".into();
        let obs = id.observe(&ev, DAY, Ranges::builtin());
        let (_, f) = d.check(PrincipalType::ServiceAccount, &ev, &obs).expect("someone else's purpose");
        assert_eq!(f.evidence["new_action"], "iam:ListAttachedUserPolicies");
    }
}
