//! `shared_credential`: one credential used at the same time from more workloads (distinct
//! networks) than it ever was. A token copied off a host, a key pasted into a second
//! service: attribution collapses, and one of the holders is likely not the owner. Judged
//! against the identity's own usual peak (`state::sources`), so fleets are not flagged and
//! a copy does not teach the next one in. And a workload's short-lived token (a CI job's
//! role session, a function's, an instance's) used from another kind of place than its
//! first, at any time in its life: the session carried off its workload, the case
//! GuardDuty's InstanceCredentialExfiltration findings exist for. And an EC2 instance's
//! session used from outside AWS at all, from its first call, history or not.

use serde::Deserialize;

use super::{Finding, Kind};
use crate::context::network::{Category, Described};
use crate::state::Observation;
use crate::state::sources::{CONCURRENT, SLOTS};
use nhid_model::event::{AuditEvent, CredentialKind, PrincipalType, SourceFormat};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedCredential {
    /// Never fire below this many concurrent sources.
    pub min_sources: u8,
    /// A place joining the credential counts as new when the chance of a new network or
    /// client from this identity is at most this (see `new_source`).
    pub max_probability: f64,
}

impl Kind for SharedCredential {
    fn check(&self, _lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        let n = obs.concurrent_sources;
        // More places than usual (a saturated count has nothing above it to compare), or a
        // place the identity never used joining a credential in use elsewhere: the copy's
        // first call, however many places the owner's own fleet spans.
        let more = n > obs.source_peak && usize::from(obs.source_peak) < SLOTS;
        let newcomer = [obs.new_network, obs.new_client]
            .iter()
            .flatten()
            .map(|n| f64::from(n.probability))
            .reduce(|a, b| a * b)
            .filter(|&p| p <= self.max_probability);
        if obs.foreign_credential && obs.new_credential {
            return Some(foreign(ev));
        }
        if let Some(place) = obs.place.filter(|p| instance_session(ev) && !in_aws(p)) {
            return Some(outside_aws(ev, place));
        }
        // Or a workload's token (a job's, a function's session) used from another place than
        // its workload, at any time in its life: the copy need not overlap the owner's use.
        // A hosted runner's session carried off it is judged from its first call, learning
        // or not: the runner exists for one job, and an identity's first day is when a
        // thief would least like to be judged.
        let moved = (obs.moved && obs.source_peak < 2) || obs.off_runner;
        if !(obs.learned || obs.off_runner) || !(moved || n >= self.min_sources && (more || newcomer.is_some())) {
            return None;
        }
        let credential = ev.credential.id.as_deref().unwrap_or("?");
        Some(Finding {
            severity: None,
            response: None,
            evidence: crate::evidence! {
                "credential_id" => credential,
                "concurrent_sources" => n,
                "usual_peak" => obs.source_peak,
                "new_place" => newcomer.is_some(),
                "moved_from_first_place" => moved,
                "probability" => newcomer.map(super::round_probability),
                "window_secs" => CONCURRENT / 1_000,
                "source_ip" => ev.source.ip,
                "user_agent" => ev.source.user_agent,
            },
            summary: if moved && n < 2 {
                format!(
                    "{}'s short-lived credential {credential} was used from {} ({}), another kind of place than the one it was first used from: a workload's session carried off it.",
                    ev.principal.id,
                    ev.source.ip.as_deref().unwrap_or("-"),
                    obs.place.map(|p| p.to_string()).unwrap_or_default()
                )
            } else {
                format!(
                    "{}'s credential {credential} was used from {n} networks within {} minutes; it usually has at most {} at once. The latest: {} with {:?}.",
                    ev.principal.id,
                    CONCURRENT / MINUTE,
                    obs.source_peak,
                    ev.source.ip.as_deref().unwrap_or("-"),
                    ev.source.user_agent.as_deref().unwrap_or("-")
                )
            },
            unit: ev.time.div_euclid(MINUTE),
            // A count above the usual peak is a fact judged against that peak, not a model
            // (a newcomer that is also one place too many is no less a copy); a newcomer
            // alone is judged by its place's novelty.
            probability: newcomer.filter(|_| !more && !moved),
            baseline: Some(format!("at most {} places at once usually", obs.source_peak)),
            key: crate::state::sets::fingerprint(credential),
            references: Vec::new(),
        })
    }
}

/// An EC2 instance's role session: credentials its metadata service delivered, which
/// CloudTrail states (`ec2RoleDelivery`; the decoder makes the principal a workload, not
/// inferred), not a session name a caller chose.
fn instance_session(ev: &AuditEvent<'_>) -> bool {
    ev.source_format == SourceFormat::Cloudtrail
        && ev.principal.kind == PrincipalType::Workload
        && !ev.principal.inferred
        && ev.credential.kind == CredentialKind::ShortLivedToken
}

/// Inside AWS: its published ranges (an instance's address, a NAT gateway's), a private
/// address (a VPC endpoint), or AWS naming itself ("AWS Internal", a service).
fn in_aws(place: &Described<'_>) -> bool {
    matches!(place.category, Category::Private | Category::Service) || place.provider == Some("amazon")
}

/// An instance's session used from outside AWS, at any call, the first included: what
/// GuardDuty's InstanceCredentialExfiltration.OutsideAWS exists for. The session lives on
/// its instance; nothing outside AWS holds it but a copy.
fn outside_aws(ev: &AuditEvent<'_>, place: Described<'_>) -> Finding {
    let credential = ev.credential.id.as_deref().unwrap_or("?");
    Finding {
        evidence: crate::evidence! {
            "credential_id" => credential,
            "instance_session_outside_aws" => true,
            "place" => place.to_string(),
            "source_ip" => ev.source.ip,
            "user_agent" => ev.source.user_agent,
        },
        summary: format!(
            "{}'s instance session {credential}, delivered by its instance's metadata service, was used from {} ({place}), outside AWS: the session was copied off its instance.",
            ev.principal.id,
            ev.source.ip.as_deref().unwrap_or("-"),
        ),
        unit: ev.time.div_euclid(MINUTE),
        baseline: Some("where an instance's session can be: its instance, inside AWS".into()),
        key: crate::state::sets::fingerprint(credential),
        ..Default::default()
    }
}

/// A credential first presented by another principal, now by this one: learned or not, as
/// the owner is whoever presented it first. The engine never contains on it.
fn foreign(ev: &AuditEvent<'_>) -> Finding {
    let credential = ev.credential.id.as_deref().unwrap_or("?");
    Finding {
        evidence: crate::evidence! {
            "credential_id" => credential,
            "first_presented_by_another_principal" => true,
            "source_ip" => ev.source.ip,
            "user_agent" => ev.source.user_agent,
        },
        summary: format!(
            "Credential {credential}, first presented by another principal, was presented by {} from {}: a credential copied between identities, or events naming another's credential. Not contained: it is not {}'s to lose.",
            ev.principal.id,
            ev.source.ip.as_deref().unwrap_or("-"),
            ev.principal.id
        ),
        unit: ev.time.div_euclid(MINUTE),
        key: crate::state::sets::fingerprint(credential),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, shipped};
    use super::*;
    use crate::context::network::Ranges;
    use crate::state::Identity;
    use nhid_model::event::{AuditEvent, CredentialKind};
    use nhid_model::time::{DAY, HOUR, Millis, SECOND};
    use nhid_model::vocab::Response;

    #[test]
    fn an_instance_session_outside_aws_fires_at_its_first_call() {
        let d = shipped("shared_credential");
        fn session(ip: &'static str, inferred: bool) -> AuditEvent<'static> {
            let mut ev = event(0, PrincipalType::Workload);
            ev.source_format = SourceFormat::Cloudtrail;
            ev.principal.inferred = inferred;
            ev.credential.kind = CredentialKind::ShortLivedToken;
            ev.credential.id = Some("ASIAINSTANCE".into());
            ev.source.ip = Some(ip.into());
            ev
        }
        let check = |ev: &AuditEvent<'_>| {
            let mut id = Identity::new(PrincipalType::Workload, None, 0);
            let obs = id.observe(ev, DAY, Ranges::builtin());
            d.check(PrincipalType::Workload, ev, &obs).map(|(s, f)| (s.response, f))
        };
        // From an address outside every AWS range, on a cold start.
        let (response, f) = check(&session("198.51.100.23", false)).expect("a finding");
        assert_eq!(response, Response::RevokeCredential);
        assert_eq!(f.evidence["instance_session_outside_aws"], true);
        assert!(f.summary.contains("outside AWS"), "{}", f.summary);
        // From its instance's AWS address, a NAT gateway's, a VPC endpoint's private address.
        for ip in ["44.213.87.120", "3.80.0.10", "10.0.12.7"] {
            assert!(check(&session(ip, false)).is_none(), "{ip}");
        }
        // An instance id as session name is the caller's choice, not a fact: not this finding.
        assert!(check(&session("198.51.100.23", true)).is_none());
    }

    #[test]
    fn a_token_used_from_a_second_place_at_once_fires_a_fleet_does_not() {
        let d = shipped("shared_credential");
        let mut id = Identity::new(PrincipalType::Workload, None, 0);
        let mut ev = event(0, PrincipalType::Workload);
        ev.source.ip = Some("10.40.1.5".into());
        ev.source.user_agent = Some("aws-sdk-go/1.44".into());
        // A day of one place at a time, learned.
        for m in 0..(DAY / MINUTE) {
            ev.time = m * MINUTE;
            id.observe(&ev, DAY, Ranges::builtin());
        }
        ev.time = DAY + HOUR;
        let obs = id.observe(&ev, DAY, Ranges::builtin());
        assert!(d.check(PrincipalType::Workload, &ev, &obs).is_none());
        let mut copy = ev.clone();
        copy.time += 1_000;
        copy.source.ip = Some("10.99.7.20".into());
        copy.source.user_agent = Some("curl/8.4.0".into());
        let obs = id.observe(&copy, DAY, Ranges::builtin());
        let (s, f) = d.check(PrincipalType::Workload, &copy, &obs).unwrap();
        assert_eq!(s.response, Response::RevokeCredential);
        assert_eq!((f.evidence["concurrent_sources"].as_u64(), f.evidence["usual_peak"].as_u64()), (Some(2), Some(1)));
        assert_eq!(f.evidence["new_place"], true);
        // A copy teaches nothing: the same pair again is still unusual (the engine folds it
        // into the alert already raised), and a day later the owner alone is fine again.
        copy.time += 1_000;
        let obs = id.observe(&copy, DAY, Ranges::builtin());
        assert!(d.check(PrincipalType::Workload, &copy, &obs).is_some());
        ev.time = 2 * DAY + HOUR;
        let obs = id.observe(&ev, DAY, Ranges::builtin());
        assert!(d.check(PrincipalType::Workload, &ev, &obs).is_none());
    }

    #[test]
    fn a_new_place_joining_a_fleet_s_credential_fires_at_once() {
        let d = shipped("shared_credential");
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let mut ev = event(0, PrincipalType::ServiceAccount);
        // Three hosts in two networks: two places at once is usual.
        let places =
            [("10.20.1.5", "aws-sdk-go/1.44"), ("10.20.7.9", "aws-cli/2.15"), ("10.20.7.10", "aws-sdk-go/1.44")];
        for m in 0..(DAY / MINUTE + 90) {
            // The last twenty minutes, only the first host is busy.
            let (ip, ua) = places[if m < DAY / MINUTE + 70 { (m % 3) as usize } else { 0 }];
            ev.time = m * MINUTE;
            ev.source.ip = Some(ip.into());
            ev.source.user_agent = Some(ua.into());
            let obs = id.observe(&ev, DAY, Ranges::builtin());
            assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "the fleet at minute {m}");
        }
        // The copy's first call makes two places in the window, under the usual three, but
        // the place is new: it fires on that call.
        ev.time += 1_000;
        ev.source.ip = Some("10.99.3.4".into());
        ev.source.user_agent = Some("curl/8.4.0".into());
        let obs = id.observe(&ev, DAY, Ranges::builtin());
        assert!(obs.concurrent_sources <= obs.source_peak, "{obs:?}");
        assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_some());
    }

    /// A CI job's role session: `n` calls from a GitHub-hosted runner's address.
    fn job(id: &mut Identity, ev: &mut AuditEvent<'static>, session: &str, start: Millis, runner: &str) {
        ev.credential.id = Some(session.to_owned().into());
        ev.source.ip = Some(runner.to_owned().into());
        for k in 0..20 {
            ev.time = start + k * 20 * SECOND;
            id.observe(ev, DAY, Ranges::builtin());
        }
    }

    #[test]
    fn a_job_s_session_used_from_elsewhere_after_the_job_fires_new_jobs_on_new_runners_do_not() {
        let d = shipped("shared_credential");
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let mut ev = event(0, PrincipalType::ServiceAccount);
        ev.credential.kind = CredentialKind::ShortLivedToken;
        ev.source.user_agent = Some("aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0".into());
        // A day and a half of jobs, each on a fresh runner address in GitHub's ranges.
        let runners = ["4.207.31.115", "20.172.220.232", "52.157.32.87", "4.242.102.152", "13.95.161.159"];
        for j in 0..9 {
            job(&mut id, &mut ev, &format!("ASIAJOB{j}"), j * 4 * HOUR, runners[j as usize % runners.len()]);
        }
        job(&mut id, &mut ev, "ASIAJOB9", 40 * HOUR, "20.229.64.188");
        let obs = id.observe(&ev, DAY, Ranges::builtin());
        assert!(obs.learned && d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "{obs:?}");
        // Twelve minutes after the job's last call (no overlap with it), the same session
        // from a hosting provider's address.
        ev.time += 12 * MINUTE;
        ev.source.ip = Some("172.235.194.62".into());
        let obs = id.observe(&ev, DAY, Ranges::builtin());
        assert_eq!(obs.concurrent_sources, 1, "not concurrent: only the move shows");
        let (s, f) = d.check(PrincipalType::ServiceAccount, &ev, &obs).expect("a session off its runner");
        assert_eq!(s.response, Response::RevokeCredential);
        assert_eq!(f.evidence["moved_from_first_place"], true);
        assert_eq!(f.probability, None, "a fact, acted on without a model's bar");
    }

    #[test]
    fn an_identity_whose_sessions_move_while_it_learns_is_not_flagged_for_it() {
        let d = shipped("shared_credential");
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let mut ev = event(0, PrincipalType::ServiceAccount);
        ev.credential.kind = CredentialKind::ShortLivedToken;
        // Every session starts in AWS and continues from a hosting provider's address.
        for j in 0..10 {
            job(&mut id, &mut ev, &format!("ASIAMOVE{j}"), j * 4 * HOUR, "52.95.110.1");
            ev.time += MINUTE;
            ev.source.ip = Some("172.235.194.62".into());
            let obs = id.observe(&ev, DAY, Ranges::builtin());
            if obs.learned {
                assert!(d.check(PrincipalType::ServiceAccount, &ev, &obs).is_none(), "session {j}");
            }
        }
    }

    #[test]
    fn a_runner_s_session_carried_off_it_fires_on_the_identity_s_first_day_other_moves_wait() {
        let d = shipped("shared_credential");
        let mut ev = event(0, PrincipalType::ServiceAccount);
        ev.credential.kind = CredentialKind::ShortLivedToken;
        ev.source.user_agent = Some("aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0".into());
        // Its second job, three hours after its first call: the identity is still learning.
        // The session goes on from a Vultr address (149.28.0.0/16) while the job still runs.
        let carried = |first: &str| {
            let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
            let mut ev = ev.clone();
            job(&mut id, &mut ev, "ASIAJOB1", 0, first);
            job(&mut id, &mut ev, "ASIAJOB2", 3 * HOUR, first);
            ev.time += SECOND;
            ev.source.ip = Some("149.28.14.46".into());
            let obs = id.observe(&ev, DAY, Ranges::builtin());
            assert!(!obs.learned);
            d.check(PrincipalType::ServiceAccount, &ev, &obs).map(|(_, f)| f)
        };
        // From a GitHub-hosted runner (4.148.0.0/14): the runner is the session's only holder.
        let f = carried("4.148.0.10").expect("carried off its runner");
        assert_eq!(f.evidence["moved_from_first_place"], true);
        // From an AWS address (a function's, a task's): whether this identity's sessions move
        // is what its learning is for.
        assert!(carried("52.95.110.1").is_none());
    }
}
