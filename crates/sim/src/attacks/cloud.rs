//! The cloud estate's attacks. Real attack techniques are a handful of calls, and the stolen
//! credentials they use are session keys as often as static ones: these stay small, or hide in
//! the victim's own network and client.

use rand::RngExt;
use rand::seq::IndexedRandom;

use super::spread;
use crate::clients::{Client, Platform, UserAgent};
use crate::population::{CredentialPlan, Episode, Identity};
use crate::ranges::Provider;
use crate::{Archetype, Draft, Resource, Rng};
use nhid_model::event::Outcome;
use nhid_model::time::{MINUTE, Millis};

use super::Calendar;

pub(super) const RECON_SPAN: Millis = 5 * MINUTE;
pub(super) const SLOW_EXFILTRATION_SPAN: Millis = 15 * MINUTE;
pub(super) const SERVERLESS_SPAN: Millis = 10 * MINUTE;

/// What a caller holding a stolen key asks first: who am I, what may I do, what is there.
const RECON: &[&str] = &["sts:GetCallerIdentity", "iam:ListAttachedUserPolicies", "s3:ListBuckets"];
/// And then, for a few more calls.
const RECON_MORE: &[&str] = &[
    "iam:GetUser",
    "iam:ListUserPolicies",
    "iam:ListGroupsForUser",
    "ec2:DescribeRegions",
    "secretsmanager:ListSecrets",
];
/// What a stolen role session is used for: a look around, then what the role can read.
const SESSION_RECON: &[&str] = &[
    "s3:ListBuckets",
    "secretsmanager:ListSecrets",
    "dynamodb:ListTables",
    "lambda:ListFunctions",
    "iam:ListRoles",
    "ecr:DescribeRepositories",
];
/// Bare HTTP clients signing requests themselves.
const BARE_CLIENTS: &[&str] = &["curl/8.5.0", "python-requests/2.32.3"];

/// A trickle key that reads objects: a slow exfiltration's victim.
pub(super) fn trickles(who: &Identity) -> bool {
    who.archetype == Archetype::LowVolumeKey
        && who.base_rate() >= 0.1
        && who.ops.iter().any(|o| o.action == "s3:GetObject")
}

/// A CI runner's jobs that start within the calendar's bounds.
pub(super) fn jobs_within<'a>(who: &'a Identity, cal: &Calendar) -> Vec<&'a Episode> {
    who.cloud()
        .map(|plan| plan.episodes.iter().filter(|e| (cal.earliest..=cal.latest).contains(&e.start)).collect())
        .unwrap_or_default()
}

/// An attacker's own AWS client on a rented VM: the CLI or boto3.
fn attacker_client(rng: &mut Rng) -> UserAgent {
    let client = if rng.random_bool(0.5) { Client::Cli } else { Client::Boto3 };
    UserAgent::sdk(client, Platform::Vps).at(rng.random_range(0..Platform::Vps.hosts()), false)
}

/// 3–8 calls over up to 5 minutes with the key, from a hosting provider's address with the
/// attacker's own client: who am I, which policies, which buckets, and a few more listings,
/// the IAM ones mostly denied to a key that was never meant to read IAM.
pub(super) fn recon(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(3..=8);
    let provider = if rng.random_bool(0.5) { Provider::DigitalOcean } else { Provider::Vultr };
    let ip = provider.address(rng);
    let agent = attacker_client(rng);
    let span = rng.random_range(1..=5) * MINUTE;
    spread(start, span, n, rng)
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut d = victim.own_call(who, t, rng);
            d.action =
                RECON.get(i).copied().unwrap_or_else(|| RECON_MORE.choose(rng).copied().unwrap_or("iam:GetUser"));
            d.outcome =
                if d.action.starts_with("iam:") && rng.random_bool(0.6) { Outcome::Denied } else { Outcome::Success };
            d.resource = None;
            d.bytes_out = None;
            d.ip = ip;
            d.user_agent = agent;
            d
        })
        .collect()
}

/// 16–20 reads a minute for 15 minutes (below 30 a minute) of the key's own bucket's objects,
/// from its own network with its own client: about 60 times its rate.
pub(super) fn slow_exfiltration(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let mut calls = Vec::new();
    let mut object = rng.random_range(1_000..50_000);
    for minute in 0..SLOW_EXFILTRATION_SPAN / MINUTE {
        let n = rng.random_range(16..=20);
        for t in spread(start + minute * MINUTE, MINUTE, n, rng) {
            let mut d = victim.own_call(who, t, rng);
            object += 1;
            d.action = "s3:GetObject";
            d.resource = Some(Resource::Object(object));
            d.bytes_out = Some(rng.random_range(200_000..=8_000_000));
            d.outcome = Outcome::Success;
            calls.push(d);
        }
    }
    calls
}

/// The episode's credential at `t`, as the victim presents it: its issue time.
fn issued_at(victim: &Identity, e: &Episode, t: Millis) -> Millis {
    let rotate = match victim.credential {
        CredentialPlan::RoleSession { rotate, .. } => rotate,
        _ => Millis::MAX,
    };
    e.issued_at(t, rotate)
}

/// 5–20 calls over 2–10 minutes with the session key of the environment (or task) running at
/// `start`, as read from its environment variables, from a ProtonVPN exit with a bare HTTP
/// client: a look around, then the function's own reads.
pub(super) fn stolen_session(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let Some(env) = victim.episode_at(start).cloned() else {
        return Vec::new();
    };
    let issued = issued_at(victim, &env, start);
    let ip = Provider::ProtonVpn.address(rng);
    let agent = UserAgent::Fixed(BARE_CLIENTS.choose(rng).copied().unwrap_or("curl/8.5.0"));
    let n = rng.random_range(5..=20);
    let span = rng.random_range(2..=10) * MINUTE;
    hijack(victim, who, &env, issued, ip, agent, spread(start, span, n, rng), rng)
}

/// The calls of a stolen role session: `times` of the victim's own calls, the first a
/// `sts:GetCallerIdentity` and a third of the rest a look around, all presenting the session
/// `e` issued at `issued`, from `ip` with `agent`.
#[allow(clippy::too_many_arguments)]
fn hijack(
    victim: &Identity,
    who: u32,
    e: &Episode,
    issued: Millis,
    ip: [u8; 4],
    agent: UserAgent,
    times: Vec<Millis>,
    rng: &mut Rng,
) -> Vec<Draft> {
    times
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut d = victim.own_call(who, t, rng);
            if i == 0 || rng.random_bool(0.33) {
                d.action = if i == 0 {
                    "sts:GetCallerIdentity"
                } else {
                    SESSION_RECON.choose(rng).copied().unwrap_or("s3:ListBuckets")
                };
                d.resource = None;
                d.bytes_out = None;
            }
            d.outcome = Outcome::Success;
            d.credential_issued_at = issued;
            d.session = e.number;
            d.ip = ip;
            d.user_agent = agent;
            d
        })
        .collect()
}

/// 5–25 calls over 5–20 minutes with a job's role session (from a leaked log or artifact),
/// 3–30 minutes after the job started and within the hour the session is valid, from a
/// hosting provider's address with the CLI on the attacker's own machine. The job is the
/// first that starts at or after `start` within the calendar, or the last one before.
pub(super) fn ci_session_elsewhere(
    victim: &Identity,
    who: u32,
    cal: &Calendar,
    start: Millis,
    rng: &mut Rng,
) -> Vec<Draft> {
    let jobs = jobs_within(victim, cal);
    let Some(job) = jobs.iter().find(|e| e.start >= start).or(jobs.last()).map(|&e| e.clone()) else {
        return Vec::new();
    };
    let provider =
        *[Provider::DigitalOcean, Provider::Vultr, Provider::Linode].choose(rng).unwrap_or(&Provider::Linode);
    let ip = provider.address(rng);
    let agent = UserAgent::sdk(Client::Cli, Platform::Vps);
    let from = job.start + rng.random_range(3..=30) * MINUTE;
    let n = rng.random_range(5..=25);
    let span = rng.random_range(5..=20) * MINUTE;
    hijack(victim, who, &job, job.start, ip, agent, spread(from, span, n, rng), rng)
}
