//! The six attack scenarios: planned up front on distinct benign principals, emitted minute
//! by minute alongside (never instead of) the victim's benign traffic.
//!
//! Each instance lands at least [`EARLIEST`] after the start, when every detector has
//! finished learning its victim, and ends at least [`MARGIN_BEFORE_END`] before the end.

use rand::RngExt;
use rand::seq::IndexedRandom;

use super::population::{Identity, poisson};
use super::{Draft, Label, Rng, Tag};
use crate::event::{Outcome, PrincipalType};
use crate::time::{HOUR, MINUTE, Millis};

pub(crate) const EARLIEST: Millis = 30 * HOUR;
pub(crate) const MARGIN_BEFORE_END: Millis = HOUR;

/// A Tor exit network no benign identity ever uses.
const ATTACKER_NET: [u8; 3] = [185, 220, 101];
const ATTACKER_AGENT: &str = "python-requests/2.31.0";

/// What a caller holding a stolen key enumerates; none of it is granted.
const ENUMERATION: &[&str] = &[
    "iam:ListUsers",
    "iam:ListRoles",
    "iam:ListAccessKeys",
    "iam:GetAccountAuthorizationDetails",
    "ec2:DescribeInstances",
    "ec2:DescribeSecurityGroups",
    "s3:ListBuckets",
    "secretsmanager:ListSecrets",
    "kms:ListKeys",
    "lambda:ListFunctions",
    "rds:DescribeDBInstances",
    "organizations:ListAccounts",
    "sts:GetCallerIdentity",
    "ssm:DescribeParameters",
];

/// Tools and services outside every agent's benign tool set.
const DRIFT_TOOLS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "iam:ListUsers",
    "mcp-shell:exec",
    "mcp-shell:read_env",
    "mcp-filesystem:read_file",
    "mcp-postgres:query",
    "ssm:GetParameter",
    "iam:ListRoles",
    "s3:ListBuckets",
    "kms:Decrypt",
    "mcp-browser:navigate",
    "mcp-email:send_message",
    "ec2:DescribeInstances",
    "lambda:ListFunctions",
    "sts:AssumeRole",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    LeakedKeyNewNetwork,
    ExfiltrationSpike,
    AgentScopeDrift,
    ExpiredTokenReplay,
    DeniedProbeBurst,
    SlowRampThenSpike,
}

impl Scenario {
    /// Planning order: the scenarios with the fewest eligible victims choose first.
    const PLANNING_ORDER: [Scenario; 6] = [
        Scenario::SlowRampThenSpike,
        Scenario::ExfiltrationSpike,
        Scenario::LeakedKeyNewNetwork,
        Scenario::ExpiredTokenReplay,
        Scenario::AgentScopeDrift,
        Scenario::DeniedProbeBurst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::LeakedKeyNewNetwork => "leaked_key_new_network",
            Scenario::ExfiltrationSpike => "exfiltration_spike",
            Scenario::AgentScopeDrift => "agent_scope_drift",
            Scenario::ExpiredTokenReplay => "expired_token_replay",
            Scenario::DeniedProbeBurst => "denied_probe_burst",
            Scenario::SlowRampThenSpike => "slow_ramp_then_spike",
        }
    }

    fn expected_kind(self) -> &'static str {
        match self {
            Scenario::LeakedKeyNewNetwork => "new_source",
            Scenario::ExfiltrationSpike | Scenario::SlowRampThenSpike => "rate_spike",
            Scenario::AgentScopeDrift => "scope_drift",
            Scenario::ExpiredTokenReplay => "expired_credential",
            Scenario::DeniedProbeBurst => "denied_burst",
        }
    }

    fn eligible(self, who: &Identity) -> bool {
        use PrincipalType::*;
        match self {
            Scenario::LeakedKeyNewNetwork => who.kind == ApiKey || (who.kind == ServiceAccount && who.has_static_key()),
            Scenario::ExfiltrationSpike => matches!(who.kind, ServiceAccount | ApiKey) && who.is_steady(),
            Scenario::AgentScopeDrift => who.kind == AiAgent,
            Scenario::ExpiredTokenReplay => matches!(who.kind, Workload | OauthClient),
            Scenario::DeniedProbeBurst => matches!(who.kind, ServiceAccount | ApiKey),
            Scenario::SlowRampThenSpike => who.kind == ServiceAccount && who.is_steady(),
        }
    }

    /// How long the attack runs once it starts (for the agent: the latest its session can end
    /// after it is armed, a 60 min gap plus a 10 min session and a minute of slack).
    fn duration(self) -> Millis {
        match self {
            Scenario::LeakedKeyNewNetwork | Scenario::ExfiltrationSpike => 10 * MINUTE,
            Scenario::AgentScopeDrift => 71 * MINUTE,
            Scenario::ExpiredTokenReplay => 5 * MINUTE,
            Scenario::DeniedProbeBurst => 2 * MINUTE,
            Scenario::SlowRampThenSpike => RAMP + SPIKE_AFTER_RAMP,
        }
    }
}

const RAMP: Millis = 3 * HOUR;
const SPIKE_AFTER_RAMP: Millis = 5 * MINUTE;
const EXFIL: Millis = 10 * MINUTE;

/// One planned attack instance.
pub(crate) struct Attack {
    /// Index into the run's labels.
    pub label: usize,
    who: u32,
    plan: Plan,
}

enum Plan {
    /// Few calls, all drawn up front and released as their minute comes.
    Scripted { calls: Vec<Draft>, next: usize },
    /// Rate-based traffic drawn per minute: an optional ramp from 1× to 3× the identity's
    /// rate, then a spike at `spike_per_min`.
    Flood { ramp_start: Millis, spike_start: Millis, end: Millis, spike_per_min: f64, exfiltrate: bool },
    /// Waits for the agent's first session starting at or after `armed_at`.
    Drift { armed_at: Millis, tools: Vec<&'static str> },
}

/// Chooses victims and times for about one instance of each scenario per 100 principals.
/// Scenarios that do not fit the run (too short, no eligible principal left) are skipped.
pub(crate) fn plan(pop: &[Identity], sim_start: Millis, sim_end: Millis, rng: &mut Rng) -> (Vec<Attack>, Vec<Label>) {
    let per_scenario = ((pop.len() + 50) / 100).max(1);
    let mut taken = vec![false; pop.len()];
    let mut attacks = Vec::new();
    let mut labels = Vec::new();
    for scenario in Scenario::PLANNING_ORDER {
        for _ in 0..per_scenario {
            let latest = sim_end - MARGIN_BEFORE_END - scenario.duration();
            let earliest = sim_start + EARLIEST;
            if latest < earliest {
                break;
            }
            let mut candidates: Vec<usize> =
                (0..pop.len()).filter(|&i| !taken[i] && scenario.eligible(&pop[i])).collect();
            // Exfiltration reads S3 objects: prefer victims that read them anyway.
            if scenario == Scenario::ExfiltrationSpike && candidates.iter().any(|&i| reads_s3(&pop[i])) {
                candidates.retain(|&i| reads_s3(&pop[i]));
            }
            let Some(&who) = candidates.choose(rng) else {
                break;
            };
            taken[who] = true;
            let start = earliest + rng.random_range(0..=(latest - earliest) / MINUTE) * MINUTE;
            let (plan, label) = plan_one(scenario, &pop[who], who as u32, start, rng);
            attacks.push(Attack { label: labels.len(), who: who as u32, plan });
            labels.push(label);
        }
    }
    (attacks, labels)
}

fn reads_s3(who: &Identity) -> bool {
    who.ops.iter().any(|o| o.action == "s3:GetObject")
}

fn plan_one(scenario: Scenario, victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> (Plan, Label) {
    let mut end = start + scenario.duration();
    let plan = match scenario {
        Scenario::LeakedKeyNewNetwork => Plan::Scripted { calls: leaked_key(victim, who, start, rng), next: 0 },
        Scenario::DeniedProbeBurst => Plan::Scripted { calls: denied_probe(victim, who, start, rng), next: 0 },
        Scenario::ExpiredTokenReplay => {
            let calls = expired_replay(victim, who, start, rng);
            end = calls.last().map_or(end, |c| c.time + 1);
            Plan::Scripted { calls, next: 0 }
        }
        Scenario::ExfiltrationSpike => Plan::Flood {
            ramp_start: start,
            spike_start: start,
            end: start + EXFIL,
            spike_per_min: spike_rate(victim, rng),
            exfiltrate: true,
        },
        Scenario::SlowRampThenSpike => Plan::Flood {
            ramp_start: start,
            spike_start: start + RAMP,
            end,
            spike_per_min: spike_rate(victim, rng),
            exfiltrate: false,
        },
        Scenario::AgentScopeDrift => {
            let n = rng.random_range(5..=15);
            Plan::Drift { armed_at: start, tools: DRIFT_TOOLS.sample(rng, n).copied().collect() }
        }
    };
    let label = Label {
        scenario: scenario.name().to_owned(),
        principal_id: victim.id.clone(),
        principal_type: victim.kind,
        start,
        end,
        first_malicious_event_id: String::new(),
        first_malicious_time: 0,
        expected_kinds: vec![scenario.expected_kind().to_owned()],
    };
    (plan, label)
}

/// At least 30× the identity's busiest day and never below 150 calls a minute.
fn spike_rate(victim: &Identity, rng: &mut Rng) -> f64 {
    (30.0 * 1.2 * victim.base_rate()).max(150.0) * rng.random_range(1.0..1.15)
}

fn malicious(label: usize) -> Tag {
    Tag::Attack { label: label as u32, malicious: true }
}

/// Times spread over `span` from `start`, sorted.
fn spread(start: Millis, span: Millis, n: usize, rng: &mut Rng) -> Vec<Millis> {
    let mut times: Vec<Millis> = (0..n).map(|_| start + rng.random_range(0..span)).collect();
    times.sort_unstable();
    times
}

/// The same static key, from a network and client it has never used: whoami, look around,
/// read, and mint a key of its own.
fn leaked_key(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(20..=60);
    let ip = [ATTACKER_NET[0], ATTACKER_NET[1], ATTACKER_NET[2], rng.random_range(2..250)];
    let mint_at = rng.random_range(n / 3..n - 1);
    spread(start, 10 * MINUTE, n, rng)
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut d = victim.own_call(who, t, rng);
            (d.action, d.object, d.bytes_out) = match i {
                0 => ("sts:GetCallerIdentity", None, None),
                1 => ("s3:ListBuckets", None, None),
                _ if i == mint_at => ("iam:CreateAccessKey", None, None),
                _ if i % 3 == 0 => ("s3:ListObjectsV2", None, None),
                _ => ("s3:GetObject", Some(rng.random_range(0..5_000)), Some(rng.random_range(10_000..5_000_000))),
            };
            d.ip = ip;
            d.user_agent = ATTACKER_AGENT;
            d
        })
        .collect()
}

/// 40–100 calls in two minutes across many actions, at least 90 % denied.
fn denied_probe(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(40..=100);
    let granted = n / 20;
    spread(start, 2 * MINUTE, n, rng)
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut d = victim.own_call(who, t, rng);
            // The few granted calls are the key's own; they are spread evenly through the probe.
            if granted == 0 || i % (n / granted) != n / granted / 2 {
                d.action = ENUMERATION.choose(rng).copied().unwrap_or("iam:ListUsers");
                d.outcome = Outcome::Denied;
                d.object = None;
                d.bytes_out = None;
            }
            d
        })
        .collect()
}

/// A token that expired at least an hour ago, replayed with its original id and times.
fn expired_replay(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(5..=20);
    let mut calls = spread(start, rng.random_range(2..=5) * MINUTE, n, rng);
    // Benign calls at `stale` presented a token that expired within the hour after it; two
    // hours before the replay (plus up to two more) puts that expiry at least an hour back.
    let stale = start - 2 * HOUR - rng.random_range(0..=2) * HOUR;
    let issued_at = victim.own_call(who, stale, rng).credential_issued_at;
    calls
        .drain(..)
        .map(|t| {
            let mut d = victim.own_call(who, t, rng);
            d.credential_issued_at = issued_at;
            d
        })
        .collect()
}

impl Attack {
    /// Appends this attack's calls in the minute starting at `t0`; the victim's benign calls
    /// for that minute were already emitted.
    pub fn emit_minute(
        &mut self,
        pop: &[Identity],
        labels: &mut [Label],
        sim_start: Millis,
        t0: Millis,
        rng: &mut Rng,
        out: &mut Vec<Draft>,
    ) {
        let victim = &pop[self.who as usize];
        let label = self.label;
        match &mut self.plan {
            Plan::Scripted { calls, next } => {
                while let Some(call) = calls.get(*next).filter(|c| c.time < t0 + MINUTE) {
                    let mut d = call.clone();
                    d.tag = malicious(label);
                    out.push(d);
                    *next += 1;
                }
            }
            Plan::Flood { ramp_start, spike_start, end, spike_per_min, exfiltrate } => {
                if t0 < *ramp_start || t0 >= *end {
                    return;
                }
                let (n, tag) = if t0 < *spike_start {
                    // The ramp adds (f - 1)× the benign rate on top of the benign traffic.
                    let f = 1.0 + 2.0 * (t0 - *ramp_start) as f64 / (*spike_start - *ramp_start) as f64;
                    (
                        poisson(victim.rate(sim_start, t0) * (f - 1.0), rng),
                        Tag::Attack { label: label as u32, malicious: false },
                    )
                } else {
                    ((*spike_per_min * rng.random_range(1.0..1.05)).round() as u32, malicious(label))
                };
                for _ in 0..n {
                    let mut d = victim.own_call(self.who, t0 + rng.random_range(0..MINUTE), rng);
                    if *exfiltrate {
                        d.action = "s3:GetObject";
                        d.object = Some(rng.random_range(0..100_000));
                        d.bytes_out = Some(rng.random_range(5_000_000..=50_000_000));
                    }
                    d.outcome = Outcome::Success;
                    d.tag = tag;
                    out.push(d);
                }
            }
            Plan::Drift { armed_at, tools } => {
                let Some(session) = victim.session().filter(|s| s.start == t0 && s.start >= *armed_at) else {
                    return;
                };
                // The session has just begun: script the drift calls across it, then release
                // them as a scripted attack would.
                let session = *session;
                let mut calls = Vec::new();
                for &tool in tools.iter() {
                    for _ in 0..rng.random_range(1..=3) {
                        let t = session.start + rng.random_range(0..session.end - session.start);
                        let mut d = victim.own_call(self.who, t, rng);
                        d.action = tool;
                        d.object = None;
                        d.bytes_out = (tool.contains("Get") || tool.contains("read") || tool.contains("query"))
                            .then(|| rng.random_range(500..20_000));
                        calls.push(d);
                    }
                }
                calls.sort_by_key(|d| d.time);
                let l = &mut labels[label];
                l.start = session.start;
                l.end = session.end;
                self.plan = Plan::Scripted { calls, next: 0 };
                self.emit_minute(pop, labels, sim_start, t0, rng, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_is_planned_once_and_fits_a_two_day_run() {
        let names: std::collections::BTreeSet<_> = Scenario::PLANNING_ORDER.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), 6);
        for s in Scenario::PLANNING_ORDER {
            assert!(EARLIEST + s.duration() + MARGIN_BEFORE_END <= 48 * HOUR, "{}", s.name());
        }
    }
}
