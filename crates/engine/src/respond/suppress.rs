//! Suppressions from configuration (`[[suppressions]]`): a behaviour the SOC has accepted
//! stops raising alerts, and so actions, for what the rule names (principals by glob, a
//! principal type, a detector, a source network, a client). Each rule names its owner, its
//! reason and its expiry, is counted when it suppresses (`nhid_suppressions_matched_total`),
//! and is reported when it has expired or never matched (`nhid check`, replay's summary).
//!
//! A rule holds for alerts about events before its expiry: event time, so that a replay of
//! last month's logs suppresses what was suppressed then. A rule that names nothing to match
//! would silence every alert and is refused.

use std::net::IpAddr;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use nhid_model::event::PrincipalType;
use nhid_model::time::{Millis, parse_rfc3339};

use super::alert::Alert;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SuppressionConfig {
    /// Unique; the `suppression` label of its metrics.
    pub name: String,
    /// Who answers for it (a team, a person).
    pub owner: String,
    /// Why the behaviour is accepted.
    pub reason: String,
    /// RFC 3339: alerts about events from this time on are no longer suppressed.
    pub expires: String,
    /// Principal ids, a glob (`gh-runner-*`, `arn:aws:iam::*:role/ci-*`).
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default, rename = "type")]
    pub principal_type: Option<PrincipalType>,
    /// A detector instance id (`new_source`) or kind.
    #[serde(default)]
    pub detector: Option<String>,
    /// The source address of the triggering call, as a prefix (`140.82.112.0/20`) or an address.
    #[serde(default)]
    pub network: Option<String>,
    /// The user agent of the triggering call, a glob (`GitHubActions/*`). The caller writes
    /// its user agent: with a stolen key, an attacker can send the one named here. Narrow a
    /// rule by client with a principal or a network too.
    #[serde(default)]
    pub client: Option<String>,
}

/// The configured rules, compiled.
#[derive(Debug, Default)]
pub struct Suppressions {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    name: String,
    owner: String,
    expires: Millis,
    principal: Option<GlobMatcher>,
    principal_type: Option<PrincipalType>,
    detector: Option<String>,
    network: Option<(IpAddr, u8)>,
    client: Option<GlobMatcher>,
}

impl Suppressions {
    /// Compiles `configs`, or every error of them (each named by its rule's place and name).
    pub fn compile(configs: &[SuppressionConfig]) -> Result<Suppressions, Vec<String>> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let at = format!("suppressions[{i}] ({:?})", c.name);
            let mut error = |what: String| errors.push(format!("{at}: {what}"));
            for (field, value) in [("name", &c.name), ("owner", &c.owner), ("reason", &c.reason)] {
                if value.trim().is_empty() {
                    error(format!("{field} is required"));
                }
            }
            if configs[..i].iter().any(|earlier| earlier.name == c.name) {
                error("another suppression has this name".into());
            }
            let expires = parse_rfc3339(&c.expires);
            if expires.is_none() {
                error(format!("expires: {:?} is not an RFC 3339 time (2027-01-31T00:00:00Z)", c.expires));
            }
            let mut glob = |field: &str, pattern: &Option<String>| {
                pattern.as_deref().and_then(|p| {
                    Glob::new(p).map(|g| g.compile_matcher()).map_err(|e| error(format!("{field}: {e}"))).ok()
                })
            };
            let principal = glob("principal", &c.principal);
            let client = glob("client", &c.client);
            let network = c.network.as_deref().and_then(|n| {
                prefix(n).map_err(|()| error(format!("network: {n:?} is not an address or a prefix"))).ok()
            });
            let names_something = c.principal.is_some()
                || c.principal_type.is_some()
                || c.detector.is_some()
                || c.network.is_some()
                || c.client.is_some();
            if !names_something {
                error("names nothing to match (principal, type, detector, network or client): it would silence every alert".into());
            }
            if let Some(expires) = expires {
                rules.push(Rule {
                    name: c.name.clone(),
                    owner: c.owner.clone(),
                    expires,
                    principal,
                    principal_type: c.principal_type,
                    detector: c.detector.clone(),
                    network,
                    client,
                });
            }
        }
        if errors.is_empty() { Ok(Suppressions { rules }) } else { Err(errors) }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules' names, in configuration order (the index [`Suppressions::matching`] returns).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// The rules' expiries, in configuration order.
    pub fn expiries(&self) -> impl Iterator<Item = Millis> + '_ {
        self.rules.iter().map(|r| r.expires)
    }

    /// One line per rule for a person: name, owner, expiry, and with `matched` (alerts
    /// dropped, by index) how many it dropped or that it was unused; `EXPIRED` once `now` is
    /// past its expiry, for its owner to renew or remove it.
    pub fn report(&self, matched: Option<&[u64]>, now: Millis) -> Vec<String> {
        self.rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut line = format!("{} (owner {}): ", r.name, r.owner);
                match matched.map(|m| m.get(i).copied().unwrap_or(0)) {
                    Some(0) => line.push_str("unused, "),
                    Some(n) => line.push_str(&format!("{n} alerts dropped, ")),
                    None => {}
                }
                let expiry = nhid_model::time::format_rfc3339(r.expires);
                if r.expires <= now {
                    line.push_str(&format!("EXPIRED at {expiry}"));
                } else {
                    line.push_str(&format!("expires {expiry}"));
                }
                line
            })
            .collect()
    }

    /// The first rule that suppresses `alert`, by index.
    pub fn matching(&self, alert: &Alert) -> Option<usize> {
        let event = alert.event.as_ref();
        self.rules.iter().position(|r| {
            alert.time < r.expires
                && r.principal.as_ref().is_none_or(|g| g.is_match(&alert.principal.id))
                && r.principal_type.is_none_or(|t| t == alert.principal.kind)
                && r.detector.as_deref().is_none_or(|d| d == alert.detector || d == alert.kind)
                && r.network.is_none_or(|(net, len)| {
                    event.and_then(|e| e.source_ip.as_deref()?.parse().ok()).is_some_and(|ip| within(ip, net, len))
                })
                && r.client
                    .as_ref()
                    .is_none_or(|g| event.and_then(|e| e.user_agent.as_deref()).is_some_and(|ua| g.is_match(ua)))
        })
    }
}

/// `a.b.c.d/len`, `v6::/len`, or an address alone (its full length).
fn prefix(text: &str) -> Result<(IpAddr, u8), ()> {
    let (addr, len) = text.split_once('/').map_or((text, None), |(a, l)| (a, Some(l)));
    let addr: IpAddr = addr.trim().parse().map_err(|_| ())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l.trim().parse::<u8>().ok().filter(|&l| l <= max).ok_or(())?,
    };
    Ok((addr, len))
}

fn within(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let bits = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
        IpAddr::V6(v6) => (u128::from(v6), false),
    };
    // An IPv4 address in the top 32 bits: its prefix length counts from the top as IPv6's.
    let ((ip, ip4), (net, net4)) = (bits(ip), bits(net));
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    ip4 == net4 && ip & mask == net & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::respond::alert::{AlertActor, AlertEvent, AlertPrincipal, Score};
    use nhid_model::event::{Outcome, SourceFormat};
    use nhid_model::vocab::Severity;

    fn alert(principal: &str, kind: PrincipalType, detector: &str, ip: &str, ua: &str, time: &str) -> Alert {
        Alert {
            alert_id: "a".into(),
            time: parse_rfc3339(time).unwrap(),
            detector: detector.into(),
            kind: detector.into(),
            severity: Severity::High,
            principal: AlertPrincipal { id: principal.into(), kind, owner: None },
            credential_id: None,
            actor: AlertActor::default(),
            event: Some(AlertEvent {
                action: "s3:GetObject".into(),
                service: "s3".into(),
                resource: None,
                outcome: Outcome::Success,
                source_ip: Some(ip.into()),
                user_agent: Some(ua.into()),
                credential_kind: None,
                source_format: SourceFormat::Native,
            }),
            event_ids: vec![],
            evidence: Default::default(),
            summary: "s".into(),
            suppressed_repeats: 0,
            references: vec![],
            score: Score::default(),
            incident_id: None,
        }
    }

    fn rule(name: &str) -> SuppressionConfig {
        SuppressionConfig {
            name: name.into(),
            owner: "platform".into(),
            reason: "GitHub-hosted runners get a new address every run".into(),
            expires: "2027-01-01T00:00:00Z".into(),
            principal: None,
            principal_type: None,
            detector: None,
            network: None,
            client: None,
        }
    }

    #[test]
    fn a_rule_matches_only_what_it_names_and_only_before_it_expires() {
        let runners = SuppressionConfig {
            principal: Some("gh-runner-*".into()),
            detector: Some("new_source".into()),
            network: Some("140.82.112.0/20".into()),
            client: Some("GitHubActions/*".into()),
            ..rule("runners")
        };
        let s = Suppressions::compile(&[runners]).unwrap();
        let at = |p, d, ip, ua, t| s.matching(&alert(p, PrincipalType::Workload, d, ip, ua, t));
        let t = "2026-12-01T00:00:00Z";
        assert_eq!(at("gh-runner-7", "new_source", "140.82.127.9", "GitHubActions/2.3", t), Some(0));
        assert_eq!(at("svc-billing", "new_source", "140.82.127.9", "GitHubActions/2.3", t), None, "principal");
        assert_eq!(at("gh-runner-7", "scope_drift", "140.82.127.9", "GitHubActions/2.3", t), None, "detector");
        assert_eq!(at("gh-runner-7", "new_source", "140.82.128.1", "GitHubActions/2.3", t), None, "network");
        assert_eq!(at("gh-runner-7", "new_source", "140.82.127.9", "curl/8.5", t), None, "client");
        assert_eq!(
            at("gh-runner-7", "new_source", "140.82.127.9", "GitHubActions/2.3", "2027-01-01T00:00:00Z"),
            None,
            "expired"
        );
        let by_type =
            Suppressions::compile(&[SuppressionConfig { principal_type: Some(PrincipalType::Bot), ..rule("bots") }])
                .unwrap();
        assert_eq!(by_type.matching(&alert("x", PrincipalType::Bot, "d", "::1", "u", t)), Some(0));
        assert_eq!(by_type.matching(&alert("x", PrincipalType::Workload, "d", "::1", "u", t)), None);
    }

    #[test]
    fn every_error_of_every_rule_is_reported() {
        let bad = [
            SuppressionConfig { owner: " ".into(), expires: "next year".into(), ..rule("a") },
            SuppressionConfig { network: Some("10.0.0.0/33".into()), principal: Some("[".into()), ..rule("a") },
        ];
        let errors = Suppressions::compile(&bad).unwrap_err();
        let expect = [
            "suppressions[0] (\"a\"): owner is required",
            "suppressions[0] (\"a\"): expires",
            "suppressions[0] (\"a\"): names nothing",
            "suppressions[1] (\"a\"): another suppression has this name",
            "suppressions[1] (\"a\"): principal",
            "suppressions[1] (\"a\"): network",
        ];
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
        for (e, want) in errors.iter().zip(expect) {
            assert!(e.starts_with(want), "{e} / {want}");
        }
    }

    #[test]
    fn prefixes_hold_their_addresses_in_both_families() {
        let (net, len) = prefix("2001:db8::/32").unwrap();
        assert!(within("2001:db8:1::5".parse().unwrap(), net, len));
        assert!(!within("2001:db9::5".parse().unwrap(), net, len));
        let (net, len) = prefix("10.1.2.3").unwrap();
        assert!(within("10.1.2.3".parse().unwrap(), net, len) && !within("10.1.2.4".parse().unwrap(), net, len));
        let (net, len) = prefix("0.0.0.0/0").unwrap();
        assert!(within("203.0.113.7".parse().unwrap(), net, len) && !within("::1".parse().unwrap(), net, len));
    }
}
