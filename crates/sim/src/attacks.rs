//! The labeled scenarios, on distinct benign principals, emitted minute by minute
//! alongside (never instead of) the victim's benign traffic: thirteen attacks and one
//! benign change of behaviour (a new nightly batch, which the detectors must learn).
//! The only benign traffic a scenario removes is a silence its story needs: a dormant key
//! falls silent for good after its first day, a shadow key is silent until it appears.
//!
//! The batch run plans every instance up front ([`plan`]): each lands at least [`EARLIEST`]
//! after the start, when every detector has finished learning its victim, and ends at least
//! [`MARGIN_BEFORE_END`] before the end. Live mode plans the six original attacks one after
//! another as event time advances ([`Schedule`]), at the compressed [`LIVE`] pace.

use rand::RngExt;
use rand::seq::IndexedRandom;

mod cloud;

use super::clients::UserAgent;
use super::population::{BROWSERS, Identity, poisson};
use super::{Archetype, Attribution, CredentialUse, Draft, Estate, Label, Resource, Rng, Tag};
use nhid_model::event::{Outcome, PrincipalType};
use nhid_model::time::{DAY, HOUR, MINUTE, Millis, SECOND};
use nhid_model::vocab::Response;

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

/// Where a token shared with a second workload is used from: a network no benign
/// identity uses (they live in 10.20–10.60 and 100.64–203.0.113), and a bare HTTP client.
const SHARED_TOKEN_NET: [u8; 2] = [10, 99];
const SHARED_TOKEN_AGENT: &str = "curl/8.4.0";
/// The agent runtime a desktop agent riding a human's session announces.
const DESKTOP_AGENT: &str = "agent-runtime/2.3";

/// Resource-taking calls a lateral mover makes when the victim has none of its own, in
/// turn: other buckets' objects, instances, secrets.
const LATERAL_OBJECT_READ: &str = "s3:GetObject";
const LATERAL_INSTANCE_READ: &str = "ec2:DescribeInstanceAttribute";
const LATERAL_SECRET_READ: &str = "secretsmanager:GetSecretValue";

/// A lateral mover's victim: one whose benign 10-minute windows hold at most this many
/// distinct targets, so 60 new ones stand far above its breadth baseline (4× its mean).
const LATERAL_MAX_BENIGN_TARGETS: f64 = 10.0;

/// What a machine signed in at the console clicks through; nothing that changes privileges.
const CONSOLE_BROWSING: &[&str] = &[
    "ec2:DescribeInstances",
    "s3:ListBuckets",
    "iam:ListRoles",
    "iam:ListUsers",
    "cloudtrail:LookupEvents",
    "secretsmanager:ListSecrets",
    "rds:DescribeDBInstances",
];

/// A dormant key falls silent for good at 25–27 h and comes back at least this long after.
const DORMANT_SILENCE_FROM: Millis = 25 * HOUR;
const DORMANT_SILENCE_JITTER: Millis = 2 * HOUR;
const DORMANT_IDLE: Millis = 8 * DAY + HOUR;

/// A new nightly batch runs at 30× the identity's rate for 10 minutes, at the same time of
/// night (±10 min), inside one 2-hour slot of the UTC day.
const BATCH_FACTOR: f64 = 30.0;
const BATCH_LENGTH: Millis = 10 * MINUTE;
const BATCH_JITTER_MIN: i64 = 10;
/// Seasonality learns a batch on two nights: from the third on it is expected, and alerts
/// on it are false alerts (an hour of slack before it).
const BATCH_NIGHTS_TO_LEARN: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    LeakedKeyNewNetwork,
    ExfiltrationSpike,
    AgentScopeDrift,
    ExpiredTokenReplay,
    DeniedProbeBurst,
    SlowRampThenSpike,
    LateralMovement,
    DormantKeyReactivated,
    TokenSharedAcrossWorkloads,
    AgentRidesHumanSession,
    MachineConsoleLogin,
    ShadowKey,
    UnattributedAgent,
    /// Benign: a steady identity starts a nightly batch.
    NewNightlyBatch,
    /// Cloud estate: a low-volume key's stolen secret, a handful of reconnaissance calls from
    /// a hosting provider.
    StolenKeyRecon,
    /// Cloud estate: a trickle key reading at 18 calls a minute for 15 minutes, from its own
    /// network and client.
    SlowExfiltration,
    /// Cloud estate: a serverless function's session key used from an anonymising network
    /// with a bare HTTP client.
    StolenServerlessSession,
    /// Cloud estate: a CI job's OIDC role session used from outside GitHub's ranges.
    CiSessionOffGithub,
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
    /// Planning order: the scenarios with the fewest eligible victims choose first, the six
    /// original ones before the others that compete for the same victims, so a small
    /// population still holds those six. The new nightly batch goes first: its victims (a
    /// steady service account at 5 calls a minute or less) are the scarcest, and the slow
    /// ramp can take any steady one.
    pub(crate) const PLANNING_ORDER: [Scenario; 14] = [
        Scenario::NewNightlyBatch,
        Scenario::SlowRampThenSpike,
        Scenario::ExfiltrationSpike,
        Scenario::LeakedKeyNewNetwork,
        Scenario::ExpiredTokenReplay,
        Scenario::AgentScopeDrift,
        Scenario::DeniedProbeBurst,
        Scenario::MachineConsoleLogin,
        Scenario::UnattributedAgent,
        Scenario::ShadowKey,
        Scenario::AgentRidesHumanSession,
        Scenario::DormantKeyReactivated,
        Scenario::LateralMovement,
        Scenario::TokenSharedAcrossWorkloads,
    ];

    /// The cloud estate's own scenarios, planned after the classic ones (whose victims are
    /// classic identities, a pool of their own).
    const CLOUD_ORDER: [Scenario; 4] = [
        Scenario::CiSessionOffGithub,
        Scenario::StolenServerlessSession,
        Scenario::SlowExfiltration,
        Scenario::StolenKeyRecon,
    ];

    /// Every scenario a run of `estate` plans, in planning order.
    pub(crate) fn planning_order(estate: Estate) -> Vec<Scenario> {
        let cloud: &[Scenario] = match estate {
            Estate::Classic => &[],
            Estate::Cloud => &Scenario::CLOUD_ORDER,
        };
        Scenario::PLANNING_ORDER.iter().chain(cloud).copied().collect()
    }

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
            Scenario::LateralMovement => "lateral_movement",
            Scenario::DormantKeyReactivated => "dormant_key_reactivated",
            Scenario::TokenSharedAcrossWorkloads => "token_shared_across_workloads",
            Scenario::AgentRidesHumanSession => "agent_rides_human_session",
            Scenario::MachineConsoleLogin => "machine_console_login",
            Scenario::ShadowKey => "shadow_key",
            Scenario::UnattributedAgent => "unattributed_agent",
            Scenario::NewNightlyBatch => "new_nightly_batch",
            Scenario::StolenKeyRecon => "stolen_key_recon",
            Scenario::SlowExfiltration => "slow_exfiltration",
            Scenario::StolenServerlessSession => "stolen_serverless_session",
            Scenario::CiSessionOffGithub => "ci_session_off_github",
        }
    }

    /// The detector kinds of which one must fire; none for the benign change.
    fn expected_kinds(self) -> &'static [&'static str] {
        match self {
            Scenario::LeakedKeyNewNetwork | Scenario::StolenKeyRecon => &["new_source"],
            Scenario::ExfiltrationSpike | Scenario::SlowRampThenSpike | Scenario::SlowExfiltration => &["rate_spike"],
            Scenario::AgentScopeDrift => &["scope_drift"],
            Scenario::ExpiredTokenReplay => &["expired_credential"],
            Scenario::DeniedProbeBurst => &["denied_burst"],
            Scenario::LateralMovement => &["breadth"],
            Scenario::DormantKeyReactivated => &["dormant_reactivation"],
            Scenario::TokenSharedAcrossWorkloads => &["shared_credential"],
            Scenario::AgentRidesHumanSession => &["session_inheritance"],
            Scenario::MachineConsoleLogin => &["interactive_login"],
            Scenario::ShadowKey => &["unregistered_principal"],
            Scenario::UnattributedAgent => &["missing_attribution"],
            // A workload's session used elsewhere: from a place the identity never used
            // (new_source), or away from the workload it was minted for (shared_credential).
            Scenario::StolenServerlessSession | Scenario::CiSessionOffGithub => &["new_source", "shared_credential"],
            Scenario::NewNightlyBatch => &[],
        }
    }

    /// The response a SOC expects, the narrowest that contains the attack given what its events
    /// name; `None` for the benign change.
    fn expected_response(self) -> Option<Response> {
        Some(match self {
            // A session-scoped token is cut with its session: the agent's, a role session's.
            Scenario::AgentScopeDrift | Scenario::StolenServerlessSession | Scenario::CiSessionOffGithub => {
                Response::RevokeSession
            }
            // A password sign-in names no session to cut; a key back from dormancy may be a job
            // resumed; an agent outside any session has none to cut.
            Scenario::MachineConsoleLogin | Scenario::DormantKeyReactivated | Scenario::UnattributedAgent => {
                Response::NotifyOwner
            }
            // A person is never acted on; nobody is known to notify about an unregistered key.
            Scenario::AgentRidesHumanSession | Scenario::ShadowKey => Response::None,
            Scenario::NewNightlyBatch => return None,
            _ => Response::RevokeCredential,
        })
    }

    fn eligible(self, who: &Identity) -> bool {
        use PrincipalType::*;
        let static_service_account = who.kind == ServiceAccount && who.has_static_key();
        match self {
            Scenario::StolenKeyRecon => return who.archetype == Archetype::LowVolumeKey,
            Scenario::SlowExfiltration => return cloud::trickles(who),
            Scenario::StolenServerlessSession => return who.archetype == Archetype::Serverless,
            Scenario::CiSessionOffGithub => return who.archetype == Archetype::CiRunner,
            // The classic scenarios take classic victims.
            _ if who.archetype != Archetype::Classic => return false,
            _ => {}
        }
        match self {
            Scenario::LeakedKeyNewNetwork => who.kind == ApiKey || static_service_account,
            Scenario::ExfiltrationSpike => matches!(who.kind, ServiceAccount | ApiKey) && who.is_steady(),
            Scenario::AgentScopeDrift => who.kind == AiAgent,
            Scenario::ExpiredTokenReplay => matches!(who.kind, Workload | OauthClient),
            Scenario::DeniedProbeBurst => matches!(who.kind, ServiceAccount | ApiKey),
            Scenario::SlowRampThenSpike => who.kind == ServiceAccount && who.is_steady(),
            // A low-rate machine without a nightly batch, whose benign windows hold few targets.
            Scenario::LateralMovement => {
                matches!(who.kind, ServiceAccount | ApiKey | Workload)
                    && !who.has_nightly_batch()
                    && who.base_rate() <= 5.0
                    && who.benign_targets_per_10_min() <= LATERAL_MAX_BENIGN_TARGETS
            }
            Scenario::DormantKeyReactivated => who.kind == ApiKey || static_service_account,
            // Steady, so its own calls present the token in the same 10 minutes.
            Scenario::TokenSharedAcrossWorkloads => {
                matches!(who.kind, Workload | ServiceAccount) && who.next_token_at(0).is_some() && who.is_steady()
            }
            Scenario::AgentRidesHumanSession => who.kind == Human,
            Scenario::MachineConsoleLogin => static_service_account,
            Scenario::ShadowKey => who.kind == ApiKey,
            Scenario::UnattributedAgent => who.kind == AiAgent,
            Scenario::NewNightlyBatch => who.kind == ServiceAccount && who.is_steady() && who.base_rate() <= 5.0,
            Scenario::StolenKeyRecon
            | Scenario::SlowExfiltration
            | Scenario::StolenServerlessSession
            | Scenario::CiSessionOffGithub => false,
        }
    }

    /// How long after the run's start the attack can begin: [`EARLIEST`], or for a dormant
    /// key, the latest its silence can begin plus the idle time it needs.
    fn earliest(self) -> Millis {
        match self {
            Scenario::DormantKeyReactivated => DORMANT_SILENCE_FROM + DORMANT_SILENCE_JITTER + DORMANT_IDLE,
            _ => EARLIEST,
        }
    }

    /// How long the attack runs once it starts, or, for those whose start moves after it is
    /// drawn, the most it can take from the drawn start to its end:
    /// - an agent waiting for its next session: a 60 min gap plus a 10 min session and a
    ///   minute of slack; an unattributed agent waiting for a gap between sessions: up to
    ///   2 min, then a session of up to 10 min, then its 5 min;
    /// - lateral movement starts on the next aligned 10 minutes and runs up to 5;
    /// - a shared token moves to the next token if the current one would change within
    ///   its 10 minutes;
    /// - a new nightly batch needs three nights, the first within a day of the start.
    fn duration(self, pace: &Pace) -> Millis {
        match self {
            Scenario::LeakedKeyNewNetwork => pace.leaked_key,
            Scenario::ExfiltrationSpike => pace.exfiltration,
            Scenario::AgentScopeDrift => pace.drift_in_open_session.unwrap_or(71 * MINUTE),
            Scenario::ExpiredTokenReplay => 5 * pace.replay_unit,
            Scenario::DeniedProbeBurst => pace.probe,
            Scenario::SlowRampThenSpike => pace.ramp + pace.spike_after_ramp,
            Scenario::LateralMovement => 15 * MINUTE,
            Scenario::DormantKeyReactivated => 15 * MINUTE,
            Scenario::TokenSharedAcrossWorkloads => 20 * MINUTE,
            Scenario::AgentRidesHumanSession => 5 * MINUTE,
            Scenario::MachineConsoleLogin => 10 * MINUTE,
            Scenario::ShadowKey => 10 * MINUTE,
            Scenario::UnattributedAgent => 20 * MINUTE,
            Scenario::NewNightlyBatch => {
                (BATCH_NIGHTS_TO_LEARN as Millis + 1) * DAY + BATCH_LENGTH + 2 * BATCH_JITTER_MIN * MINUTE
            }
            Scenario::StolenKeyRecon => cloud::RECON_SPAN,
            Scenario::SlowExfiltration => cloud::SLOW_EXFILTRATION_SPAN,
            Scenario::StolenServerlessSession => cloud::SERVERLESS_SPAN,
            // Within the hour the job's session is valid, from the job's start.
            Scenario::CiSessionOffGithub => HOUR,
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
    Scripted {
        calls: Vec<Draft>,
        next: usize,
    },
    Flood(Flood),
    /// Drifts in an agent session from `armed_at`, as [`Pace::drift_in_open_session`] says.
    Drift {
        armed_at: Millis,
        tools: Vec<&'static str>,
        in_open_session: Option<Millis>,
    },
    /// `calls` calls of the agent's own tools, from `armed_at`, in the first gap between its
    /// sessions with room for them.
    Unattributed {
        armed_at: Millis,
        calls: usize,
    },
    /// A benign nightly batch: [`BATCH_FACTOR`]× the identity's rate in each of `nights`.
    Batch {
        nights: Vec<(Millis, Millis)>,
    },
}

/// Rate-based traffic drawn per minute: an optional ramp from 1× to 3× the identity's rate,
/// then a spike at `spike_per_min`.
struct Flood {
    ramp_start: Millis,
    spike_start: Millis,
    end: Millis,
    spike_per_min: f64,
    exfiltrate: bool,
}

/// The run's bounds, for scenarios whose timing depends on more than their start.
pub(crate) struct Calendar {
    pub sim_start: Millis,
    /// The scenario's earliest and latest start ([`Scenario::earliest`],
    /// [`Scenario::duration`] and [`MARGIN_BEFORE_END`]).
    pub earliest: Millis,
    pub latest: Millis,
}

/// Chooses victims and times for about one instance of each scenario per 100 principals.
/// Scenarios that do not fit the run (too short, no eligible principal left) are skipped.
///
/// Some scenarios change the victim's benign traffic (`pop`): a dormant key's silence after
/// its first day, a shadow key's before it appears (and its absence from the inventory).
pub(crate) fn plan(
    pop: &mut [Identity],
    estate: Estate,
    sim_start: Millis,
    sim_end: Millis,
    rng: &mut Rng,
) -> (Vec<Attack>, Vec<Label>) {
    // About one instance per 100 principals: of the classic population for its own scenarios
    // (all of it in the classic estate), of the whole estate for the cloud ones.
    let classic = pop.iter().filter(|who| who.archetype == Archetype::Classic).count();
    let mut taken = vec![false; pop.len()];
    let mut attacks = Vec::new();
    let mut labels = Vec::new();
    for scenario in Scenario::planning_order(estate) {
        let pool = if Scenario::PLANNING_ORDER.contains(&scenario) { classic } else { pop.len() };
        for _ in 0..((pool + 50) / 100).max(1) {
            let latest = sim_end - MARGIN_BEFORE_END - scenario.duration(&BATCH);
            let earliest = sim_start + scenario.earliest();
            if latest < earliest {
                break;
            }
            let cal = Calendar { sim_start, earliest, latest };
            let fits = |who: &Identity| match scenario {
                Scenario::AgentRidesHumanSession => !ride_windows(who, &cal).is_empty(),
                Scenario::CiSessionOffGithub => !cloud::jobs_within(who, &cal).is_empty(),
                _ => true,
            };
            let Some(who) = choose_victim(scenario, pop, &mut taken, fits, rng) else {
                break;
            };
            let start = earliest + rng.random_range(0..=(latest - earliest) / MINUTE) * MINUTE;
            let (plan, label) = plan_one(scenario, pop, who, start, &cal, &BATCH, rng);
            attacks.push(Attack { label: labels.len(), who: who as u32, plan });
            labels.push(label);
        }
    }
    (attacks, labels)
}

/// An eligible victim no attack has `taken` yet and that `fits` the run, now taken; `None`
/// when none is left.
fn choose_victim(
    scenario: Scenario,
    pop: &[Identity],
    taken: &mut [bool],
    fits: impl Fn(&Identity) -> bool,
    rng: &mut Rng,
) -> Option<usize> {
    let mut candidates: Vec<usize> =
        (0..pop.len()).filter(|&i| !taken[i] && scenario.eligible(&pop[i]) && fits(&pop[i])).collect();
    // Exfiltration reads S3 objects, and a lateral mover uses the victim's own object
    // actions on other buckets: prefer victims that address objects anyway.
    let prefer: fn(&Identity) -> bool = match scenario {
        Scenario::ExfiltrationSpike => reads_s3,
        Scenario::LateralMovement => |who| who.ops.iter().any(|o| o.object),
        _ => |_| true,
    };
    if candidates.iter().any(|&i| prefer(&pop[i])) {
        candidates.retain(|&i| prefer(&pop[i]));
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
                    let Some(i) = Scenario::LIVE_ORDER.iter().position(|&s| s == scenario) else {
                        continue;
                    };
                    self.victims[i] = choose_victim(scenario, pop, &mut self.taken, |_| true, rng);
                }
            }
            let scenario = Scenario::LIVE_ORDER[slot];
            let Some(who) = self.victims[slot] else {
                continue;
            };
            if scenario == Scenario::AgentScopeDrift {
                pop[who].open_session_by(start - start.rem_euclid(MINUTE));
            }
            // Live scenarios start when they are planned; none needs more of the calendar.
            let cal = Calendar { sim_start: start, earliest: start, latest: start };
            let (plan, label) = plan_one(scenario, pop, who, start, &cal, &LIVE, rng);
            attacks.push(Attack { label: labels.len(), who: who as u32, plan });
            labels.push(label);
        }
    }
}

fn reads_s3(who: &Identity) -> bool {
    who.ops.iter().any(|o| o.action == "s3:GetObject")
}

/// Plans `scenario` on `pop[who]` from `start` (which some scenarios move, see
/// [`Scenario::duration`]).
fn plan_one(
    scenario: Scenario,
    pop: &mut [Identity],
    who: usize,
    start: Millis,
    cal: &Calendar,
    pace: &Pace,
    rng: &mut Rng,
) -> (Plan, Label) {
    let mut span = Span { start, end: start + scenario.duration(pace), quiet_from: None };
    let plan = plan_calls(scenario, pop, who, &mut span, cal, pace, rng);
    let victim = &pop[who];
    let label = Label {
        scenario: scenario.name().to_owned(),
        principal_id: victim.id.clone(),
        principal_type: victim.kind,
        start: span.start,
        end: span.end,
        first_malicious_event_id: String::new(),
        first_malicious_time: 0,
        expected_kinds: scenario.expected_kinds().iter().map(|&k| k.to_owned()).collect(),
        quiet_from: span.quiet_from,
        credential_id: None,
        session_id: None,
        expected_response: scenario.expected_response(),
    };
    (plan, label)
}

/// What a planned scenario's label spans, as its plan settles it.
struct Span {
    start: Millis,
    end: Millis,
    quiet_from: Option<Millis>,
}

impl Span {
    /// Scripted scenarios whose label spans their calls: from the first to just after the last.
    fn scripted(&mut self, calls: Vec<Draft>) -> Plan {
        if let (Some(first), Some(last)) = (calls.first(), calls.last()) {
            self.start = self.start.min(first.time);
            self.end = last.time + 1;
        }
        Plan::Scripted { calls, next: 0 }
    }

    /// A new nightly batch spans its nights, and is learned after [`BATCH_NIGHTS_TO_LEARN`]
    /// of them (an hour of slack before the next).
    fn nightly(&mut self, nights: Vec<(Millis, Millis)>) -> Plan {
        if let (Some(first), Some(last)) = (nights.first(), nights.last()) {
            (self.start, self.end) = (first.0, last.1);
        }
        self.quiet_from = nights.get(BATCH_NIGHTS_TO_LEARN).map(|n| n.0 - HOUR);
        Plan::Batch { nights }
    }
}

/// The calls (or how to draw them) of `scenario` on `pop[who]`, moving `span` where the
/// scenario needs to.
fn plan_calls(
    scenario: Scenario,
    pop: &mut [Identity],
    who: usize,
    span: &mut Span,
    cal: &Calendar,
    pace: &Pace,
    rng: &mut Rng,
) -> Plan {
    let victim = &pop[who];
    let who32 = who as u32;
    let start = span.start;
    match scenario {
        Scenario::LeakedKeyNewNetwork => {
            Plan::Scripted { calls: leaked_key(victim, who32, start, pace.leaked_key, rng), next: 0 }
        }
        Scenario::DeniedProbeBurst => {
            Plan::Scripted { calls: denied_probe(victim, who32, start, pace.probe, rng), next: 0 }
        }
        Scenario::ExpiredTokenReplay => {
            let calls = expired_replay(victim, who32, start, pace.replay_unit, rng);
            span.end = calls.last().map_or(span.end, |c| c.time + 1);
            Plan::Scripted { calls, next: 0 }
        }
        Scenario::ExfiltrationSpike => Plan::Flood(Flood::new(victim, span, pace, true, rng)),
        Scenario::SlowRampThenSpike => Plan::Flood(Flood::new(victim, span, pace, false, rng)),
        Scenario::AgentScopeDrift => {
            let n = rng.random_range(5..=15);
            Plan::Drift {
                armed_at: start,
                tools: DRIFT_TOOLS.sample(rng, n).copied().collect(),
                in_open_session: pace.drift_in_open_session,
            }
        }
        Scenario::LateralMovement => {
            // All of it inside one aligned 10-minute window, where breadth counts.
            span.start += (10 * MINUTE - start.rem_euclid(10 * MINUTE)) % (10 * MINUTE);
            let calls = lateral_movement(pop, who, span.start, rng);
            span.scripted(calls)
        }
        Scenario::DormantKeyReactivated => {
            let silence =
                cal.sim_start + DORMANT_SILENCE_FROM + rng.random_range(0..=DORMANT_SILENCE_JITTER / MINUTE) * MINUTE;
            pop[who].active_until = silence;
            span.scripted(dormant_return(&pop[who], who32, start, rng))
        }
        Scenario::TokenSharedAcrossWorkloads => {
            span.start = one_token_from(victim, start);
            span.scripted(shared_token(victim, who32, span.start, rng))
        }
        Scenario::AgentRidesHumanSession => {
            if let Some(&(from, to)) = ride_windows(victim, cal).choose(rng) {
                span.start = from + rng.random_range(0..=(to - from) / MINUTE) * MINUTE;
            }
            span.scripted(desktop_agent(victim, who32, span.start, rng))
        }
        Scenario::MachineConsoleLogin => span.scripted(console_login(victim, who32, start, rng)),
        Scenario::ShadowKey => {
            Plan::Scripted { calls: vec![shadow_key_appears(&mut pop[who], who32, start, rng)], next: 0 }
        }
        Scenario::UnattributedAgent => Plan::Unattributed { armed_at: start, calls: rng.random_range(10..=30) },
        Scenario::NewNightlyBatch => span.nightly(batch_nights(cal, end_of(cal, scenario), rng)),
        Scenario::StolenKeyRecon => span.scripted(cloud::recon(victim, who32, start, rng)),
        Scenario::SlowExfiltration => span.scripted(cloud::slow_exfiltration(victim, who32, start, rng)),
        Scenario::StolenServerlessSession => span.scripted(cloud::stolen_session(victim, who32, start, rng)),
        Scenario::CiSessionOffGithub => {
            // The label starts with the attack, not at the moment drawn before the job it waits for.
            let calls = cloud::ci_session_elsewhere(victim, who32, cal, start, rng);
            span.start = calls.first().map_or(start, |c| c.time);
            span.scripted(calls)
        }
    }
}

impl Flood {
    /// A spike at [`spike_rate`] (paced), after the pace's ramp unless it exfiltrates.
    fn new(victim: &Identity, span: &Span, pace: &Pace, exfiltrate: bool, rng: &mut Rng) -> Flood {
        Flood {
            ramp_start: span.start,
            spike_start: if exfiltrate { span.start } else { span.start + pace.ramp },
            end: span.end,
            spike_per_min: spike_rate(victim, rng) * pace.spike_factor,
            exfiltrate,
        }
    }
}

/// One token for the whole sharing: if the one current at `start` is replaced within the
/// 10 minutes, the sharing starts with the next, from its first minute.
fn one_token_from(victim: &Identity, start: Millis) -> Millis {
    match victim.next_token_at(start + 1) {
        Some(next) if next < start + 10 * MINUTE => next,
        _ => start,
    }
}

/// Silent until `start`, then it acts as it always would, unregistered: its first call is
/// the label's first event.
fn shadow_key_appears(key: &mut Identity, who: u32, start: Millis, rng: &mut Rng) -> Draft {
    key.active_from = start;
    key.registered = false;
    key.own_call(who, start, rng)
}

/// The latest moment a scenario's traffic may reach: [`MARGIN_BEFORE_END`] before the end.
fn end_of(cal: &Calendar, scenario: Scenario) -> Millis {
    cal.latest + scenario.duration(&BATCH)
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
            (d.action, d.resource, d.bytes_out) = match i {
                0 => ("sts:GetCallerIdentity", None, None),
                1 => ("s3:ListBuckets", None, None),
                _ if i == mint_at => ("iam:CreateAccessKey", None, None),
                _ if i % 3 == 0 => ("s3:ListObjectsV2", None, None),
                _ => (
                    "s3:GetObject",
                    Some(Resource::Object(rng.random_range(0..5_000))),
                    Some(rng.random_range(10_000..5_000_000)),
                ),
            };
            d.ip = ip;
            d.user_agent = UserAgent::Fixed(ATTACKER_AGENT);
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
                d.resource = None;
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

/// Start ranges `(from, to)` for a desktop agent riding `who`'s console session: inside one
/// of its working windows, 10 minutes from either edge, within the calendar.
fn ride_windows(who: &Identity, cal: &Calendar) -> Vec<(Millis, Millis)> {
    who.workdays()
        .iter()
        .filter_map(|w| {
            let from = (w.start + 10 * MINUTE).max(cal.earliest);
            let from = from + (MINUTE - from.rem_euclid(MINUTE)) % MINUTE;
            let to = (w.end - 10 * MINUTE - Scenario::AgentRidesHumanSession.duration(&BATCH)).min(cal.latest);
            (from <= to).then_some((from, to))
        })
        .collect()
}

/// 20–30 calls a minute for 3–5 minutes, each on a resource the victim never touched: its
/// own object actions on other identities' buckets, or, for a victim without any, reads of
/// other buckets' objects, instances and secrets.
fn lateral_movement(pop: &[Identity], who: usize, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let victim = &pop[who];
    let own: Vec<_> = victim.ops.iter().filter(|o| o.object).copied().collect();
    let others: Vec<u32> = (0..pop.len()).filter(|&i| i != who && pop[i].kind.is_machine()).map(|i| i as u32).collect();
    let buckets: Vec<u32> = others.sample(rng, 6.min(others.len())).copied().collect();
    // Consecutive numbers from a random base: every call a resource of its own.
    let mut serial: u32 = rng.random_range(10_000..1_000_000);
    let mut calls = Vec::new();
    for minute in 0..rng.random_range(3..=5) {
        let n = rng.random_range(20..=30);
        for t in spread(start + minute * MINUTE, MINUTE, n, rng) {
            let mut d = victim.own_call(who as u32, t, rng);
            serial += 1;
            let foreign = buckets.choose(rng).map(|&owner| Resource::ForeignObject { owner, object: serial });
            let (action, resource, reads) = match (own.choose(rng), foreign) {
                (Some(op), Some(object)) => (op.action, object, op.reads),
                (None, Some(object)) if serial.is_multiple_of(3) => (LATERAL_OBJECT_READ, object, true),
                _ if serial % 3 == 1 => (LATERAL_SECRET_READ, Resource::Secret(serial), true),
                _ => (LATERAL_INSTANCE_READ, Resource::Instance(serial), false),
            };
            d.action = action;
            d.resource = Some(resource);
            d.bytes_out = reads.then(|| rng.random_range(1_000..=2_000_000));
            calls.push(d);
        }
    }
    calls
}

/// 5–20 of the key's own calls, from its own networks and clients, over 2–15 minutes.
fn dormant_return(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(5..=20);
    let span = rng.random_range(2..=15) * MINUTE;
    spread(start, span, n, rng).into_iter().map(|t| victim.own_call(who, t, rng)).collect()
}

/// 10–30 calls over 10 minutes with the token the victim presents at the time, from a
/// second workload: one address in a network of its own, a bare HTTP client.
fn shared_token(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(10..=30);
    let ip = [SHARED_TOKEN_NET[0], SHARED_TOKEN_NET[1], rng.random_range(0..=255), rng.random_range(2..250)];
    spread(start, 10 * MINUTE, n, rng)
        .into_iter()
        .map(|t| {
            let mut d = victim.own_call(who, t, rng);
            d.ip = ip;
            d.user_agent = UserAgent::Fixed(SHARED_TOKEN_AGENT);
            d
        })
        .collect()
}

/// 30–80 calls over 5 minutes by a desktop agent in the human's console session: its own
/// console actions (not the sign-in), its own address and session, an agent runtime.
fn desktop_agent(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let n = rng.random_range(30..=80);
    let ip = *victim.ips.choose(rng).unwrap_or(&[203, 0, 113, 10]);
    let agent = rng.random_range(1..=99);
    spread(start, 5 * MINUTE, n, rng)
        .into_iter()
        .map(|t| {
            let mut d = victim.own_call(who, t, rng);
            for _ in 0..8 {
                if !d.action.ends_with("ConsoleLogin") {
                    break;
                }
                d = victim.own_call(who, t, rng);
            }
            d.ip = ip;
            d.user_agent = UserAgent::Fixed(DESKTOP_AGENT);
            d.attribution = Attribution::DesktopAgent(agent);
            d
        })
        .collect()
}

/// A console sign-in with the service account's password from a browser, then 5–10 console
/// calls in the session it opened, over 10 minutes.
fn console_login(victim: &Identity, who: u32, start: Millis, rng: &mut Rng) -> Vec<Draft> {
    let browser = BROWSERS.choose(rng).copied().unwrap_or("Mozilla/5.0");
    let ip = *victim.ips.choose(rng).unwrap_or(&[10, 0, 0, 1]);
    let at = |t: Millis, action: &'static str, credential: CredentialUse, rng: &mut Rng| {
        let mut d = victim.own_call(who, t, rng);
        d.action = action;
        d.resource = None;
        d.bytes_out = None;
        d.ip = ip;
        d.user_agent = UserAgent::Fixed(browser);
        d.credential = credential;
        d.credential_issued_at = start;
        d
    };
    let mut calls = vec![at(start, "signin:ConsoleLogin", CredentialUse::Password, rng)];
    let n = rng.random_range(5..=10);
    for t in spread(start + 20 * SECOND, 10 * MINUTE - 20 * SECOND, n, rng) {
        let action = CONSOLE_BROWSING.choose(rng).copied().unwrap_or("ec2:DescribeInstances");
        calls.push(at(t, action, CredentialUse::ConsoleSession, rng));
    }
    calls
}

/// The nights of a new batch: from the first at or after `cal.earliest` to the last ending
/// by `until`, at the same time of night (±10 min) inside one 2-hour slot of the UTC day
/// (00–02, 02–04 or 04–06), so a seasonality per slot sees it recur.
fn batch_nights(cal: &Calendar, until: Millis, rng: &mut Rng) -> Vec<(Millis, Millis)> {
    let slot = rng.random_range(0..3) * 2 * HOUR;
    let length_min = BATCH_LENGTH / MINUTE;
    let offset = rng.random_range(BATCH_JITTER_MIN..=120 - length_min - BATCH_JITTER_MIN) * MINUTE;
    let mut nights = Vec::new();
    let mut midnight = cal.earliest.div_euclid(DAY) * DAY;
    loop {
        let start = midnight + slot + offset + rng.random_range(-BATCH_JITTER_MIN..=BATCH_JITTER_MIN) * MINUTE;
        if start + BATCH_LENGTH > until {
            return nights;
        }
        if start >= cal.earliest {
            nights.push((start, start + BATCH_LENGTH));
        }
        midnight += DAY;
    }
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
        let m = Drafting { victim: &pop[self.who as usize], who: self.who, label: self.label, sim_start, t0 };
        let drawn = match &mut self.plan {
            Plan::Scripted { calls, next } => {
                release_due(calls, next, self.label, t0, out);
                return;
            }
            Plan::Flood(flood) => {
                flood.emit_minute(&m, rng, out);
                return;
            }
            Plan::Batch { nights } => {
                emit_batch_minute(nights, &m, rng, out);
                return;
            }
            Plan::Drift { armed_at, tools, in_open_session } => {
                drift_calls(&m, *armed_at, tools, *in_open_session, rng)
            }
            Plan::Unattributed { armed_at, calls } => unattributed_calls(&m, *armed_at, *calls, rng),
        };
        // Their span is only known once their moment comes: the label gets it then, and the
        // calls go out as a scripted attack's would.
        if let Some((calls, from, to)) = drawn {
            let l = &mut labels[self.label];
            l.start = from;
            l.end = to;
            self.plan = Plan::Scripted { calls, next: 0 };
            self.emit_minute(pop, labels, sim_start, t0, rng, out);
        }
    }
}

/// Releases the scripted calls whose time falls before the end of the minute at `t0`.
fn release_due(calls: &[Draft], next: &mut usize, label: usize, t0: Millis, out: &mut Vec<Draft>) {
    while let Some(call) = calls.get(*next).filter(|c| c.time < t0 + MINUTE) {
        let mut d = call.clone();
        d.tag = malicious(label);
        out.push(d);
        *next += 1;
    }
}

/// The minute an attack is drafting, on its victim.
struct Drafting<'a> {
    victim: &'a Identity,
    who: u32,
    /// Index into the run's labels, for the calls' tags.
    label: usize,
    sim_start: Millis,
    t0: Millis,
}

impl Flood {
    /// Draws the ramp's and the spike's calls in the minute at `t0`.
    fn emit_minute(&self, m: &Drafting<'_>, rng: &mut Rng, out: &mut Vec<Draft>) {
        let Drafting { victim, who, label, sim_start, t0 } = *m;
        // The part of this minute in the ramp, then the part in the spike. Batch attacks
        // start on a minute, so a minute is all one or the other; live ones start anywhere in it.
        let minute_end = (t0 + MINUTE).min(self.end);
        let phases =
            [(t0.max(self.ramp_start), minute_end.min(self.spike_start)), (t0.max(self.spike_start), minute_end)];
        for (i, (lo, hi)) in phases.into_iter().enumerate() {
            if lo >= hi {
                continue;
            }
            let share = (hi - lo) as f64 / MINUTE as f64;
            let (n, tag) = if i == 0 {
                // The ramp adds (f - 1)× the benign rate on top of the benign traffic.
                let f = 1.0 + 2.0 * (lo - self.ramp_start) as f64 / (self.spike_start - self.ramp_start) as f64;
                (
                    poisson(victim.rate(sim_start, t0) * (f - 1.0) * share, rng),
                    Tag::Attack { label: label as u32, malicious: false },
                )
            } else {
                ((self.spike_per_min * rng.random_range(1.0..1.05) * share).round() as u32, malicious(label))
            };
            for _ in 0..n {
                let mut d = victim.own_call(who, lo + rng.random_range(0..hi - lo), rng);
                if self.exfiltrate {
                    d.action = "s3:GetObject";
                    d.resource = Some(Resource::Object(rng.random_range(0..100_000)));
                    d.bytes_out = Some(rng.random_range(5_000_000..=50_000_000));
                }
                d.outcome = Outcome::Success;
                d.tag = tag;
                out.push(d);
            }
        }
    }
}

/// The agent's drift calls and their span, once the session they go into is open in the
/// minute at `t0`; `None` before.
fn drift_calls(
    m: &Drafting<'_>,
    armed_at: Millis,
    tools: &[&'static str],
    in_open_session: Option<Millis>,
    rng: &mut Rng,
) -> Option<(Vec<Draft>, Millis, Millis)> {
    let Drafting { victim, who, t0, .. } = *m;
    let session = victim.session()?;
    let (from, to) = match in_open_session {
        None if session.start == t0 && session.start >= armed_at => (session.start, session.end),
        // Sessions end on a minute boundary after this one, so the span is not empty.
        Some(span) if (t0..t0 + MINUTE).contains(&armed_at) => (armed_at, session.end.min(armed_at + span)),
        _ => return None,
    };
    let mut calls = Vec::new();
    for &tool in tools {
        for _ in 0..rng.random_range(1..=3) {
            let t = from + rng.random_range(0..to - from);
            let mut d = victim.own_call(who, t, rng);
            d.action = tool;
            d.resource = None;
            d.bytes_out = (tool.contains("Get") || tool.contains("read") || tool.contains("query"))
                .then(|| rng.random_range(500..20_000));
            calls.push(d);
        }
    }
    calls.sort_by_key(|d| d.time);
    Some((calls, from, to))
}

/// `n` calls of the agent's own outside any session, and their span, once a gap between
/// sessions has room for them at `t0`; `None` before.
fn unattributed_calls(
    m: &Drafting<'_>,
    armed_at: Millis,
    n: usize,
    rng: &mut Rng,
) -> Option<(Vec<Draft>, Millis, Millis)> {
    let Drafting { victim, who, t0, .. } = *m;
    // Outside any session: none in progress, and the next one not due for 2 minutes.
    if t0 < armed_at || victim.session().is_some() {
        return None;
    }
    let idle_until = victim.idle_until().filter(|&u| u >= t0 + 2 * MINUTE)?;
    let to = idle_until.min(t0 + 5 * MINUTE);
    // One token of its own, issued just before, as a session's would be.
    let issued = t0 - rng.random_range(1..30) * SECOND;
    let mut calls: Vec<Draft> = (0..n)
        .map(|_| {
            let mut d = victim.own_call(who, t0 + rng.random_range(0..to - t0), rng);
            d.credential_issued_at = issued;
            d.attribution = Attribution::Unattributed;
            d
        })
        .collect();
    calls.sort_by_key(|d| d.time);
    Some((calls, t0, to))
}

/// Draws the new batch's calls in the minute at `t0`, in whichever of its nights overlap it.
fn emit_batch_minute(nights: &[(Millis, Millis)], m: &Drafting<'_>, rng: &mut Rng, out: &mut Vec<Draft>) {
    let Drafting { victim, who, label, sim_start, t0 } = *m;
    for &(from, to) in nights.iter().filter(|&&(from, to)| from < t0 + MINUTE && to > t0) {
        let (lo, hi) = (from.max(t0), to.min(t0 + MINUTE));
        let share = (hi - lo) as f64 / MINUTE as f64;
        for _ in 0..poisson(BATCH_FACTOR * victim.rate(sim_start, t0) * share, rng) {
            let mut d = victim.own_call(who, lo + rng.random_range(0..hi - lo), rng);
            d.tag = Tag::Change { label: label as u32 };
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_its_own_name_and_fits_the_days_it_needs() {
        let all = Scenario::planning_order(Estate::Cloud);
        let names: std::collections::BTreeSet<_> = all.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), 18);
        assert_eq!(Scenario::planning_order(Estate::Classic), Scenario::PLANNING_ORDER);
        // The CLI's warning names these: two days for most, five and ten for two of them.
        for s in all {
            let needs = s.earliest() + s.duration(&BATCH) + MARGIN_BEFORE_END;
            let days = match s {
                Scenario::NewNightlyBatch => 5,
                Scenario::DormantKeyReactivated => 10,
                _ => 2,
            };
            assert!(needs <= days * DAY, "{} needs {needs} ms", s.name());
            assert!(needs > (days - 1) * DAY, "{} fits {} days", s.name(), days - 1);
        }
        for s in Scenario::LIVE_ORDER {
            assert!(Scenario::PLANNING_ORDER.contains(&s));
        }
    }

    #[test]
    fn batch_nights_stay_in_one_slot_of_the_day_and_start_after_the_earliest() {
        let mut rng = <Rng as rand::SeedableRng>::seed_from_u64(5);
        for _ in 0..200 {
            let cal = Calendar { sim_start: 0, earliest: EARLIEST, latest: 20 * DAY };
            let nights = batch_nights(&cal, 20 * DAY, &mut rng);
            assert!(nights.len() >= 17, "{nights:?}");
            let slot = |t: Millis| t.rem_euclid(DAY) / (2 * HOUR);
            for &(from, to) in &nights {
                assert!(from >= EARLIEST && to - from == BATCH_LENGTH);
                assert_eq!(slot(from), slot(nights[0].0));
                assert_eq!(slot(to - 1), slot(from));
                assert!(((from - nights[0].0).rem_euclid(DAY) + 20 * MINUTE).rem_euclid(DAY) <= 40 * MINUTE);
            }
            assert!(nights[0].0 < EARLIEST + DAY + 20 * MINUTE);
        }
    }
}
