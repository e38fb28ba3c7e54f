//! `privilege_change`: a machine identity creates keys, users, bindings or policies:
//! persistence and escalation, the step after a stolen key works.
//!
//! Infrastructure as code does this for a living: a Terraform role attaches policies on
//! every other apply. Such a change, made again by an identity that made it or another of
//! its family before (managing roles, managing users and groups, managing policies: see
//! [`crate::context::actions`]), from its known places with its known client (its
//! credential in one place), is its routine (`quiet_when_routine`). So is the first change
//! of a family made by one of the identity's jobs ([`Observation::job`]) from there, when
//! the identity had read what that family manages (`iam:GetRole`, a role's policies): a
//! pipeline that plans for days and then applies, its plans refreshing the roles its apply
//! changes. The first of its family from an identity that never read it, one that hands
//! out access (a key, a password, a role's trust), or one from anywhere new, is not. Which
//! change is dangerous by its content (an administrator policy, a key for someone else) is
//! for content rules. What it gives up: a place is a provider, so a role's session stolen
//! and used, after its job ended, from the attacker's own job on the same shared runners
//! (GitHub's hosted ones) with the same client passes as routine for changes the role made
//! before; and an intruder inside a deploy job (a poisoned build step) changing roles the
//! pipeline manages passes as its apply.

use serde::Deserialize;

use super::{Finding, Kind, Operations, key_with_source};
use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::MINUTE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivilegeChange {
    pub operations: Operations,
    /// Raise nothing for a routine change (see the module's documentation).
    #[serde(default)]
    pub quiet_when_routine: bool,
}

impl Kind for PrivilegeChange {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        if !self.operations.matches(&ev.action) {
            return None;
        }
        let managed = obs.known_family || (obs.reads_family && obs.job);
        if self.quiet_when_routine && obs.learned && managed && obs.usual_provenance() {
            return None;
        }
        Some(Finding {
            evidence: crate::evidence! {
                "action" => ev.action,
                "resource" => ev.resource,
                "outcome" => ev.outcome.as_str(),
            },
            summary: format!("{} ({lane}) performed {} ({}).", ev.principal.id, ev.action, ev.outcome),
            unit: ev.time.div_euclid(MINUTE),
            key: key_with_source(&ev.action, ev),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, shipped};
    use super::*;
    use crate::context::network::Ranges;
    use crate::state::Identity;
    use nhid_model::event::CredentialKind;
    use nhid_model::time::{DAY, HOUR};

    #[test]
    fn a_change_the_identity_makes_from_its_own_places_is_routine_and_a_first_or_elsewhere_is_not() {
        let d = shipped("privilege_change");
        let ranges = Ranges::builtin();
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let mut ev = event(0, PrincipalType::ServiceAccount);
        ev.source.ip = Some("198.51.100.7".into());
        ev.source.user_agent = Some("Terraform/1.9.5 (+https://www.terraform.io) terraform-provider-aws/5.64.0".into());
        let mut check = |ev: &AuditEvent<'_>| {
            let obs = id.observe(ev, DAY, ranges);
            d.check(PrincipalType::ServiceAccount, ev, &obs).map(|(_, f)| f)
        };
        // An apply a day for three days: policies attached, roles read.
        for day in 0..3 {
            for (k, action) in ["iam:GetRole", "iam:AttachRolePolicy", "iam:GetRole"].into_iter().enumerate() {
                ev.time = day * DAY + 10 * HOUR + k as i64 * 1_000;
                ev.action = action.into();
                let f = check(&ev);
                assert_eq!(f.is_some(), action == "iam:AttachRolePolicy" && day == 0, "day {day}: {f:?}");
            }
        }
        // Learned: the same change from the same place and client is its routine, and so is
        // another change to roles, the first it makes...
        ev.time = 3 * DAY + 10 * HOUR;
        ev.action = "iam:AttachRolePolicy".into();
        assert!(check(&ev).is_none());
        ev.action = "iam:CreateRole".into();
        assert!(check(&ev).is_none());
        // ...a change of another kind, or one that hands out access, is not...
        ev.action = "iam:AttachUserPolicy".into();
        assert!(check(&ev).is_some());
        ev.action = "iam:UpdateAssumeRolePolicy".into();
        assert!(check(&ev).is_some());
        ev.action = "iam:CreateAccessKey".into();
        assert!(check(&ev).is_some());
        // ...nor its usual change from a network it never used.
        ev.time += 1_000;
        ev.action = "iam:AttachRolePolicy".into();
        ev.source.ip = Some("203.0.113.50".into());
        assert!(check(&ev).is_some());
    }

    /// A deploy role planning for three days, a job a day on its own session from a
    /// GitHub-hosted runner address, then a fourth job changing IAM.
    fn after_plans(reads: &[&str], job_session: bool, change: &str) -> Option<Finding> {
        let d = shipped("privilege_change");
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let mut ev = event(0, PrincipalType::ServiceAccount);
        ev.source.user_agent = Some("Terraform/1.9.5 (+https://www.terraform.io) terraform-provider-aws/5.64.0".into());
        let mut last = None;
        for day in 0..4 {
            // 4.148.0.0/14: GitHub Actions runners; a fresh address each run.
            ev.source.ip = Some(format!("4.148.{day}.10").into());
            ev.credential.id = Some(if job_session { format!("ASIATF{day}") } else { "AKIATF".into() }.into());
            ev.credential.kind = if job_session { CredentialKind::ShortLivedToken } else { CredentialKind::StaticKey };
            let mut actions: Vec<&str> =
                ["sts:GetCallerIdentity", "s3:GetObject"].into_iter().chain(reads.iter().copied()).collect();
            if day == 3 {
                actions.push(change);
            }
            for (k, action) in actions.into_iter().enumerate() {
                ev.time = day * DAY + 10 * HOUR + k as i64 * 1_000;
                ev.action = action.into();
                let obs = id.observe(&ev, DAY, Ranges::builtin());
                last = d.check(PrincipalType::ServiceAccount, &ev, &obs).map(|(_, f)| f);
            }
        }
        last
    }

    #[test]
    fn a_deploy_job_s_first_change_of_what_its_plans_read_is_its_apply_not_otherwise() {
        let plan = ["iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"];
        assert!(after_plans(&plan, true, "iam:PutRolePolicy").is_none(), "the apply after its plans");
        assert!(after_plans(&plan, true, "iam:CreateRole").is_none());
        // Another family than the one it reads, a change handing out access, a job that
        // never read roles, or the reads from a key no job mints: each alerts.
        assert!(after_plans(&plan, true, "iam:AttachUserPolicy").is_some());
        assert!(after_plans(&plan, true, "iam:UpdateAssumeRolePolicy").is_some());
        assert!(after_plans(&plan, true, "iam:CreateAccessKey").is_some());
        assert!(after_plans(&["s3:ListBucket"], true, "iam:PutRolePolicy").is_some());
        assert!(after_plans(&plan, false, "iam:PutRolePolicy").is_some());
        // An enumeration of the account is no refresh of what the job manages.
        assert!(after_plans(&["iam:ListRoles"], true, "iam:PutRolePolicy").is_some());
    }
}
