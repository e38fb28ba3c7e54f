//! The six attack scenarios, on distinct benign principals, emitted minute by minute
//! alongside (never instead of) the victim's benign traffic.
//!
//! The batch run plans every instance up front ([`plan`]): each lands at least [`EARLIEST`]
//! after the start, when every detector has finished learning its victim, and ends at least
//! [`MARGIN_BEFORE_END`] before the end. Live mode plans them one after another as event
//! time advances ([`Schedule`]), at the compressed [`LIVE`] pace.

use rand::RngExt;
use rand::seq::IndexedRandom;

use super::population::{Identity, poisson};
use super::{Draft, Label, Rng, Tag};
use crate::event::{Outcome, PrincipalType};
use crate::time::{HOUR, MINUTE, Millis, SECOND};

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

/// How fast the scenarios unfold. The batch run spreads them over minutes and hours as real
/// attacks are; live mode compresses them so that a viewer sees each one alerted seconds
/// after it starts.
pub(crate) struct Pace {
    /// The leaked key's calls are spread over this long.
    leaked_key: Millis,
    probe: Millis,
    /// The replayed token's calls are spread over 2–5 of these.
    replay_unit: Millis,
    exfiltration: Millis,
    ramp: Millis,
    spike_after_ramp: Millis,
    /// Spike rates as a multiple of [`spike_rate`].
    spike_factor: f64,
    /// `None`: the agent drifts in the first session it opens at or after the attack's
    /// start, across all of it. `Some(span)`: in the session open at the attack's start,
    /// for at most `span` from there.
    drift_in_open_session: Option<Millis>,
}

pub(crate) const BATCH: Pace = Pace {
    leaked_key: 10 * MINUTE,
    probe: 2 * MINUTE,
    replay_unit: MINUTE,
    exfiltration: 10 * MINUTE,
    ramp: 3 * HOUR,
    spike_after_ramp: 5 * MINUTE,
    spike_factor: 1.0,
    drift_in_open_session: None,
};

/// Live mode: every scenario's first malicious calls fire an alert within seconds.
/// - The denied probe crowds its 40–100 calls into 10 s: denied_burst's 15 denials a minute
///   come within about 4 s, and under 10 s even when a minute boundary splits the probe.
/// - Spikes run at four times the batch rate, 600 calls a minute at least: rate_spike's
///   threshold (30 calls in the minute at least, and 4× the baseline) is crossed within
///   about 3 s, so within about 6 s even when the spike starts in the last seconds of a
///   minute and the count starts again in the next.
/// - The slow ramp takes 2 min instead of 3 h: live, it only shows the shape (a rise, then the
///   spike). That a slow ramp cannot teach the baseline to accept the spike is for the batch
///   run to show; live mode cannot wait hours.
/// - The agent drifts in the session open at the attack's start ([`Schedule`] makes its user
///   open one) instead of waiting up to an hour for the next.
pub(crate) const LIVE: Pace = Pace {
    leaked_key: MINUTE,
    probe: 10 * SECOND,
    replay_unit: 10 * SECOND,
    exfiltration: MINUTE,
    ramp: 2 * MINUTE,
    spike_after_ramp: 30 * SECOND,
    spike_factor: 4.0,
    drift_in_open_session: Some(30 * SECOND),
};

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

    /// Live order: the clearest first (a leaked key, alerted on its first call), the slow ramp
    /// last (its spike comes two minutes after it starts).
    const LIVE_ORDER: [Scenario; 6] = [
        Scenario::LeakedKeyNewNetwork,
        Scenario::DeniedProbeBurst,
        Scenario::ExfiltrationSpike,
        Scenario::ExpiredTokenReplay,
        Scenario::AgentScopeDrift,
        Scenario::SlowRampThenSpike,
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

    /// How long the attack runs once it starts (for an agent waiting for its next session:
    /// the latest that session can end, a 60 min gap plus a 10 min session and a minute of
    /// slack).
    fn duration(self, pace: &Pace) -> Millis {
        match self {
            Scenario::LeakedKeyNewNetwork => pace.leaked_key,
            Scenario::ExfiltrationSpike => pace.exfiltration,
            Scenario::AgentScopeDrift => pace.drift_in_open_session.unwrap_or(71 * MINUTE),
            Scenario::ExpiredTokenReplay => 5 * pace.replay_unit,
            Scenario::DeniedProbeBurst => pace.probe,
            Scenario::SlowRampThenSpike => pace.ramp + pace.spike_after_ramp,
        }
    }
}

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
    /// Drifts in an agent session from `armed_at`, as [`Pace::drift_in_open_session`] says.
    Drift { armed_at: Millis, tools: Vec<&'static str>, in_open_session: Option<Millis> },
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
            let latest = sim_end - MARGIN_BEFORE_END - scenario.duration(&BATCH);
            let earliest = sim_start + EARLIEST;
            if latest < earliest {
                break;
            }
            let Some(who) = choose_victim(scenario, pop, &mut taken, rng) else {
                break;
            };
            let start = earliest + rng.random_range(0..=(latest - earliest) / MINUTE) * MINUTE;
            let (plan, label) = plan_one(scenario, &pop[who], who as u32, start, &BATCH, rng);
            attacks.push(Attack { label: labels.len(), who: who as u32, plan });
            labels.push(label);
        }
    }
    (attacks, labels)
}

/// An eligible victim no attack has `taken` yet, now taken; `None` when none is left.
fn choose_victim(scenario: Scenario, pop: &[Identity], taken: &mut [bool], rng: &mut Rng) -> Option<usize> {
    let mut candidates: Vec<usize> = (0..pop.len()).filter(|&i| !taken[i] && scenario.eligible(&pop[i])).collect();
    // Exfiltration reads S3 objects: prefer victims that read them anyway.
    if scenario == Scenario::ExfiltrationSpike && candidates.iter().any(|&i| reads_s3(&pop[i])) {
        candidates.retain(|&i| reads_s3(&pop[i]));
    }
    let &who = candidates.choose(rng)?;
    taken[who] = true;
    Some(who)
}

/// Live mode's attacks: one every `every` from `first`, cycling through every scenario in
/// [`Scenario::LIVE_ORDER`], each on a principal no attack has touched. Reusing a victim
/// would not show much: its state has learned the attacker's network and tools, and its
/// alerts and actions are deduplicated and cooled down for an hour. Once a
/// scenario has no fresh eligible victim left its slots stay empty: with 100 principals,
/// exfiltration and the slow ramp run out after 7–9 cycles (about a quarter of an hour at
/// one attack every 20 s), every scenario within about 40 minutes.
pub(crate) struct Schedule {
    first: Millis,
    /// Zero or less: no attacks.
    every: Millis,
    /// Slots planned so far, empty ones included.
    planned: u64,
    /// The current cycle's victims, indexed like [`Scenario::LIVE_ORDER`].
    victims: [Option<usize>; 6],
    taken: Vec<bool>,
}

impl Schedule {
    pub fn new(first: Millis, every: Millis, population: usize) -> Self {
        Schedule { first, every, planned: 0, victims: [None; 6], taken: vec![false; population] }
    }

    /// Plans every attack that starts before `until`. Called before drafting the minute that
    /// ends at `until`, so an attack is drawn when its first minute comes, and an agent's
    /// session can still be opened for it.
    pub fn plan_until(
        &mut self,
        until: Millis,
        pop: &mut [Identity],
        attacks: &mut Vec<Attack>,
        labels: &mut Vec<Label>,
        rng: &mut Rng,
    ) {
        while self.every > 0 {
            let start = self.first + self.planned as Millis * self.every;
            if start >= until {
                return;
            }
            let slot = (self.planned % 6) as usize;
            self.planned += 1;
            if slot == 0 {
                // The whole cycle chooses together, scarcest scenario first as in the batch
                // plan, so an early slot does not take the only victim a later one could use.
                for scenario in Scenario::PLANNING_ORDER {
                    let i = Scenario::LIVE_ORDER.iter().position(|&s| s == scenario).unwrap_or(0);
                    self.victims[i] = choose_victim(scenario, pop, &mut self.taken, rng);
                }
            }
            let scenario = Scenario::LIVE_ORDER[slot];
            let Some(who) = self.victims[slot] else {
                continue;
            };
            if scenario == Scenario::AgentScopeDrift {
                pop[who].open_session_by(start - start.rem_euclid(MINUTE));
            }
            let (plan, label) = plan_one(scenario, &pop[who], who as u32, start, &LIVE, rng);
            attacks.push(Attack { label: labels.len(), who: who as u32, plan });
            labels.push(label);
        }
    }
}

fn reads_s3(who: &Identity) -> bool {
    who.ops.iter().any(|o| o.action == "s3:GetObject")
}

fn plan_one(
    scenario: Scenario,
    victim: &Identity,
    who: u32,
    start: Millis,
    pace: &Pace,
    rng: &mut Rng,
) -> (Plan, Label) {
    let mut end = start + scenario.duration(pace);
    let plan = match scenario {
        Scenario::LeakedKeyNewNetwork => {
            Plan::Scripted { calls: leaked_key(victim, who, start, pace.leaked_key, rng), next: 0 }
        }
        Scenario::DeniedProbeBurst => {
            Plan::Scripted { calls: denied_probe(victim, who, start, pace.probe, rng), next: 0 }
        }
        Scenario::ExpiredTokenReplay => {
            let calls = expired_replay(victim, who, start, pace.replay_unit, rng);
            end = calls.last().map_or(end, |c| c.time + 1);
            Plan::Scripted { calls, next: 0 }
        }
        Scenario::ExfiltrationSpike => Plan::Flood {
            ramp_start: start,
            spike_start: start,
            end,
            spike_per_min: spike_rate(victim, rng) * pace.spike_factor,
            exfiltrate: true,
        },
        Scenario::SlowRampThenSpike => Plan::Flood {
            ramp_start: start,
            spike_start: start + pace.ramp,
            end,
            spike_per_min: spike_rate(victim, rng) * pace.spike_factor,
            exfiltrate: false,
        },
        Scenario::AgentScopeDrift => {
            let n = rng.random_range(5..=15);
            Plan::Drift {
                armed_at: start,
                tools: DRIFT_TOOLS.sample(rng, n).copied().collect(),
                in_open_session: pace.drift_in_open_session,
            }
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
        quiet_from: None,
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
fn leaked_key(victim: &Identity, who: u32, start: Millis, span: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(20..=60);
    let ip = [ATTACKER_NET[0], ATTACKER_NET[1], ATTACKER_NET[2], rng.random_range(2..250)];
    let mint_at = rng.random_range(n / 3..n - 1);
    spread(start, span, n, rng)
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

/// 40–100 calls across many actions, at least 90 % denied.
fn denied_probe(victim: &Identity, who: u32, start: Millis, span: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(40..=100);
    let granted = n / 20;
    spread(start, span, n, rng)
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
fn expired_replay(victim: &Identity, who: u32, start: Millis, unit: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(5..=20);
    let mut calls = spread(start, rng.random_range(2..=5) * unit, n, rng);
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
                // The part of this minute in the ramp, then the part in the spike. Batch
                // attacks start on a minute, so a minute is all one or the other; live ones
                // start anywhere in it.
                let minute_end = (t0 + MINUTE).min(*end);
                let phases = [(t0.max(*ramp_start), minute_end.min(*spike_start)), (t0.max(*spike_start), minute_end)];
                for (i, (lo, hi)) in phases.into_iter().enumerate() {
                    if lo >= hi {
                        continue;
                    }
                    let share = (hi - lo) as f64 / MINUTE as f64;
                    let (n, tag) = if i == 0 {
                        // The ramp adds (f - 1)× the benign rate on top of the benign traffic.
                        let f = 1.0 + 2.0 * (lo - *ramp_start) as f64 / (*spike_start - *ramp_start) as f64;
                        (
                            poisson(victim.rate(sim_start, t0) * (f - 1.0) * share, rng),
                            Tag::Attack { label: label as u32, malicious: false },
                        )
                    } else {
                        ((*spike_per_min * rng.random_range(1.0..1.05) * share).round() as u32, malicious(label))
                    };
                    for _ in 0..n {
                        let mut d = victim.own_call(self.who, lo + rng.random_range(0..hi - lo), rng);
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
            }
            Plan::Drift { armed_at, tools, in_open_session } => {
                let Some(session) = victim.session() else {
                    return;
                };
                let (from, to) = match *in_open_session {
                    None if session.start == t0 && session.start >= *armed_at => (session.start, session.end),
                    // Sessions end on a minute boundary after this one, so the span is not empty.
                    Some(span) if (t0..t0 + MINUTE).contains(&*armed_at) => {
                        (*armed_at, session.end.min(*armed_at + span))
                    }
                    _ => return,
                };
                // Script the drift calls across their span, then release them as a scripted
                // attack would.
                let mut calls = Vec::new();
                for &tool in tools.iter() {
                    for _ in 0..rng.random_range(1..=3) {
                        let t = from + rng.random_range(0..to - from);
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
                l.start = from;
                l.end = to;
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
            assert!(EARLIEST + s.duration(&BATCH) + MARGIN_BEFORE_END <= 48 * HOUR, "{}", s.name());
        }
    }
}
