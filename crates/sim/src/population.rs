//! The benign population: who exists, what each identity normally does, and when.
//!
//! Everything an identity will ever do benignly is fixed when it is built (its actions,
//! networks, user agents, credential scheme, rate pattern, nightly batch windows, working
//! days), so the detectors can learn it in its first 24 h and see nothing new afterwards.
//! A benign violation of that stability would be a false alert in the replay test.

use rand::RngExt;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_distr::{Distribution, Poisson};

mod cloud;

pub(crate) use cloud::{CloudPlan, Episode, SessionNaming};

use super::clients::UserAgent;
use super::{Archetype, Attribution, CredentialUse, Draft, Estate, Resource, Rng, Tag};
use nhid_model::event::{CredentialKind, Outcome, PrincipalType};
use nhid_model::time::{DAY, HOUR, MINUTE, Millis, SECOND};

/// One operation of a service's catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Op {
    /// `"<service>:<Operation>"`; the service is the prefix.
    pub action: &'static str,
    /// Returns data to the caller, so its events carry `bytes_out`.
    pub reads: bool,
    /// Addresses an S3 object (the event names it as `resource`).
    pub object: bool,
}

const fn op(action: &'static str, reads: bool, object: bool) -> Op {
    Op { action, reads, object }
}

/// Cloud services machine identities call. Every service has at least three operations so
/// an identity with one service still has the 3–12 actions the stability rules ask for.
/// No privilege operation appears here: benign machines never do them.
const CLOUD: &[&[Op]] = &[
    &[
        op("s3:GetObject", true, true),
        op("s3:PutObject", false, true),
        op("s3:ListObjectsV2", false, false),
        op("s3:HeadObject", false, true),
    ],
    &[
        op("sqs:ReceiveMessage", true, false),
        op("sqs:DeleteMessage", false, false),
        op("sqs:SendMessage", false, false),
        op("sqs:GetQueueAttributes", false, false),
    ],
    &[
        op("dynamodb:GetItem", true, false),
        op("dynamodb:PutItem", false, false),
        op("dynamodb:Query", true, false),
        op("dynamodb:UpdateItem", false, false),
        op("dynamodb:BatchWriteItem", false, false),
    ],
    &[op("kms:Decrypt", false, false), op("kms:GenerateDataKey", false, false), op("kms:Encrypt", false, false)],
    &[
        op("logs:PutLogEvents", false, false),
        op("logs:CreateLogStream", false, false),
        op("logs:DescribeLogStreams", false, false),
    ],
    &[
        op("sns:Publish", false, false),
        op("sns:GetTopicAttributes", false, false),
        op("sns:ListSubscriptionsByTopic", false, false),
    ],
    &[
        op("ecr:GetAuthorizationToken", false, false),
        op("ecr:BatchGetImage", true, false),
        op("ecr:GetDownloadUrlForLayer", false, false),
    ],
    &[
        op("cloudwatch:PutMetricData", false, false),
        op("cloudwatch:GetMetricData", true, false),
        op("cloudwatch:ListMetrics", false, false),
    ],
];

/// SaaS APIs OAuth clients call.
const SAAS: &[&[Op]] = &[
    &[
        op("gmail:ListMessages", false, false),
        op("gmail:GetMessage", true, false),
        op("gmail:ModifyLabels", false, false),
    ],
    &[op("drive:FilesList", false, false), op("drive:FilesGet", true, false), op("drive:FilesCreate", false, false)],
    &[
        op("calendar:EventsList", true, false),
        op("calendar:EventsInsert", false, false),
        op("calendar:FreeBusyQuery", false, false),
    ],
    &[
        op("salesforce:Query", true, false),
        op("salesforce:Update", false, false),
        op("salesforce:Describe", false, false),
    ],
];

/// Tool servers AI agents call (the service is the tool server).
const TOOLS: &[&[Op]] = &[
    &[
        op("mcp-github:list_issues", true, false),
        op("mcp-github:get_issue", true, false),
        op("mcp-github:search_code", true, false),
        op("mcp-github:create_comment", false, false),
        op("mcp-github:get_pull_request", true, false),
    ],
    &[
        op("mcp-jira:search", true, false),
        op("mcp-jira:get_issue", true, false),
        op("mcp-jira:add_comment", false, false),
        op("mcp-jira:transition_issue", false, false),
    ],
    &[
        op("mcp-slack:search_messages", true, false),
        op("mcp-slack:post_message", false, false),
        op("mcp-slack:list_channels", false, false),
    ],
    &[
        op("mcp-confluence:search", true, false),
        op("mcp-confluence:get_page", true, false),
        op("mcp-confluence:list_spaces", false, false),
    ],
];

/// What a human clicks through in a cloud console.
const CONSOLE: &[Op] = &[
    op("signin:ConsoleLogin", false, false),
    op("ec2:DescribeInstances", false, false),
    op("s3:ListObjectsV2", false, false),
    op("s3:GetObject", true, true),
    op("cloudwatch:GetMetricData", true, false),
    op("logs:FilterLogEvents", true, false),
    op("iam:ListRoles", false, false),
    op("rds:DescribeDBInstances", false, false),
    op("cloudformation:DescribeStacks", false, false),
    op("lambda:GetFunction", false, false),
];

const SDK_AGENTS: &[&str] =
    &["aws-sdk-go/1.44", "Boto3/1.34 Python/3.11", "aws-sdk-java/2.25", "aws-cli/2.15", "aws-sdk-js/3.540"];
const SAAS_AGENTS: &[&str] = &["google-api-go-client/0.5", "simple-salesforce/1.12", "okhttp/4.12"];
const AGENT_RUNTIMES: &[&str] = &["agent-runtime/2.3", "mcp-client/0.9"];
pub(crate) const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
];

const TEAMS: &[&str] =
    &["billing", "orders", "payments", "search", "data", "platform", "ml", "sre", "growth", "identity"];
const TENANTS: &[&str] = &["acme-prod", "acme-staging", "acme-corp"];
const SVC_NAMES: &[&str] = &[
    "billing-export",
    "orders-sync",
    "payments-worker",
    "search-indexer",
    "reports",
    "inventory",
    "etl",
    "ml-features",
    "notifications",
    "ledger",
    "backup",
    "audit-shipper",
    "catalog",
    "pricing",
    "fraud-scoring",
];
const KEY_NAMES: &[&str] =
    &["partner-acme", "ci-deploy", "monitoring", "webhook-relay", "mobile-backend", "status-page", "analytics"];
const WORKLOAD_NAMES: &[&str] =
    &["checkout", "cart", "recommender", "image-resizer", "email-sender", "gateway", "scheduler"];
const OAUTH_NAMES: &[&str] = &["crm-sync", "calendar-bot", "drive-backup", "mail-archiver", "lead-enricher"];
const AGENT_NAMES: &[&str] = &["triage", "code-review", "support", "release-notes", "oncall"];
const PEOPLE: &[&str] = &[
    "alice", "bob", "carla", "deepak", "emma", "farid", "grace", "hiro", "ines", "jon", "kemal", "lena", "mateo",
    "nora", "omar", "priya",
];
/// Whole-hour UTC offsets people and regional services live in.
const UTC_OFFSETS_H: &[i64] = &[-8, -5, -3, 0, 1, 2, 5, 8, 9];

/// Population mix in percent, in the order identities are built (humans before the agents
/// that act for them).
const MIX: &[(PrincipalType, usize)] = &[
    (PrincipalType::Human, 17),
    (PrincipalType::ServiceAccount, 35),
    (PrincipalType::ApiKey, 15),
    (PrincipalType::Workload, 15),
    (PrincipalType::OauthClient, 8),
    (PrincipalType::AiAgent, 10),
];

/// Benign machines: failed or denied calls are rare and never bunch up.
const MACHINE_FAILURE_P: f64 = 0.002;
const MACHINE_DENIED_P: f64 = 0.001;
const MACHINE_MAX_BAD_PER_MINUTE: u32 = 3;
const HUMAN_DENIED_P: f64 = 0.01;
/// A human pages through a console a few times per working day.
const HUMAN_BURSTS_PER_DAY: f64 = 3.0;
/// Agent session tokens live this long from issue; sessions last at most 10 min.
pub(crate) const AGENT_TOKEN_TTL: Millis = 15 * MINUTE;
const CONSOLE_SESSION_TTL: Millis = 12 * HOUR;

/// How an identity authenticates; fixes the credential fields of every event it emits.
#[derive(Clone, Debug)]
pub(crate) enum CredentialPlan {
    /// A long-lived access key, the same id in every event.
    Static { id: String, issued_at: Millis },
    /// A new token every hour at `phase` past the hour, valid for one hour.
    Hourly { kind: CredentialKind, phase: Millis },
    /// One token per agent session, valid [`AGENT_TOKEN_TTL`] from its issue.
    PerSession,
    /// One console session per working day.
    Console,
    /// Role session credentials (`ASIA…`) of the cloud estate: one per episode (a CI job, a
    /// cold start, a task, an instance), replaced every `rotate` within it, each valid `ttl`
    /// from its issue; the session is named as `naming` says.
    RoleSession { ttl: Millis, rotate: Millis, naming: SessionNaming },
}

/// When and how fast an identity calls.
#[derive(Clone, Debug)]
pub(crate) enum Behaviour {
    Steady {
        per_min: f64,
    },
    /// Business-hours curve in the region's time zone; nights run at 20 % of peak.
    Diurnal {
        peak_per_min: f64,
        utc_offset_h: i64,
    },
    /// A trickle all day plus one batch per night, starting in the same hour every night.
    NightlyBatch {
        base_per_min: f64,
        batches: Vec<Window>,
    },
    Agent(AgentPlan),
    /// Only inside working windows (08–18 local, weekdays mostly).
    Human {
        per_min: f64,
        workdays: Vec<Window>,
    },
    /// A cloud estate archetype (`cloud` module): jobs, cold starts, instances, low-volume keys.
    Cloud(Box<CloudPlan>),
}

/// A stretch of time with its own rate; for humans also the console session issued for it.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    pub start: Millis,
    pub end: Millis,
    pub per_min: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct AgentPlan {
    per_min: f64,
    /// The humans this agent acts for (1–3).
    pub users: Vec<String>,
    /// The session in progress, if any.
    pub session: Option<Session>,
    next_start: Millis,
    sessions: u32,
}

/// One delegated agent session: one user, one session id, one token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Session {
    pub number: u32,
    pub start: Millis,
    pub end: Millis,
    pub user: u8,
    pub token_issued_at: Millis,
    per_min: f64,
}

pub(crate) struct Identity {
    pub id: String,
    pub kind: PrincipalType,
    pub owner: Option<String>,
    pub tenant: &'static str,
    /// The fixed action set; nothing else is ever called benignly.
    pub ops: Vec<Op>,
    /// Cumulative weights over `ops`, each op at least 5 % so all appear early.
    cdf: Vec<f64>,
    /// 1–3 addresses in 1–2 stable /24 networks (humans: home and office networks).
    pub ips: Vec<[u8; 4]>,
    pub user_agents: Vec<UserAgent>,
    pub credential: CredentialPlan,
    pub behaviour: Behaviour,
    /// The S3 bucket its object actions name.
    pub bucket: String,
    /// Derives token and session ids deterministically.
    pub salt: u64,
    /// Day-to-day variation of the rate (±20 %), indexed by day since the start.
    day_factor: Vec<f64>,
    /// Calls emitted so far; the first ones walk through every action, address and user
    /// agent so each is seen within the identity's first hours.
    emitted: usize,
    /// Benign traffic only in `active_from..active_until`: the silences some scenarios need
    /// (a dormant key stops for good, a shadow key starts late). Unbounded otherwise.
    pub active_from: Millis,
    pub active_until: Millis,
    /// Listed in the inventory `nhid-sim simulate --inventory` writes; a shadow key is not.
    pub registered: bool,
    /// What kind of identity it is: the classic population's, or a cloud estate archetype.
    pub archetype: Archetype,
    /// From this moment its SDK user agents name the next minor version (cloud estate only).
    pub sdk_upgrade_at: Millis,
}

impl Identity {
    pub fn is_steady(&self) -> bool {
        matches!(self.behaviour, Behaviour::Steady { .. })
    }

    pub fn has_static_key(&self) -> bool {
        matches!(self.credential, CredentialPlan::Static { .. })
    }

    pub fn has_nightly_batch(&self) -> bool {
        matches!(self.behaviour, Behaviour::NightlyBatch { .. })
    }

    /// The moment its hourly token is next replaced at or after `t` (hourly tokens only).
    pub fn next_token_at(&self, t: Millis) -> Option<Millis> {
        match &self.credential {
            CredentialPlan::Hourly { phase, .. } => Some(phase + (t - phase + HOUR - 1).div_euclid(HOUR) * HOUR),
            _ => None,
        }
    }

    /// A human's working windows (empty for machines).
    pub fn workdays(&self) -> &[Window] {
        match &self.behaviour {
            Behaviour::Human { workdays, .. } => workdays,
            _ => &[],
        }
    }

    /// For an agent between sessions: the moment before which no session opens (a session
    /// opens on the first minute at or after it). `None` during a session and for others.
    pub fn idle_until(&self) -> Option<Millis> {
        match &self.behaviour {
            Behaviour::Agent(a) if a.session.is_none() => Some(a.next_start),
            _ => None,
        }
    }

    /// About how many distinct targets (service + object, or service + action for calls
    /// without a resource) a busy 10-minute window of its benign traffic holds: what a
    /// breadth baseline learns.
    pub fn benign_targets_per_10_min(&self) -> f64 {
        let calls = 10.0 * 1.2 * self.base_rate();
        let mut prev = 0.0;
        let mut objects = 0.0;
        let mut actions = 0.0;
        for (op, &c) in self.ops.iter().zip(&self.cdf) {
            let share = c - prev;
            prev = c;
            // Objects come from a few hundred, so nearly every object call is a new target.
            if op.object {
                objects += calls * share;
            } else {
                actions += (calls * share).min(1.0);
            }
        }
        objects + actions
    }

    /// The agent session in progress in the minute just emitted.
    pub fn session(&self) -> Option<&Session> {
        match &self.behaviour {
            Behaviour::Agent(a) => a.session.as_ref(),
            _ => None,
        }
    }

    /// Makes an agent's next session open no later than the minute `t0`, unless one is in
    /// progress then: live mode steers an agent inside a session and cannot wait up to an
    /// hour for its user to open one.
    pub fn open_session_by(&mut self, t0: Millis) {
        if let Behaviour::Agent(a) = &mut self.behaviour {
            a.next_start = a.next_start.min(t0);
        }
    }

    /// Steady rate before day-to-day variation, for attacks that scale it.
    pub fn base_rate(&self) -> f64 {
        match &self.behaviour {
            Behaviour::Steady { per_min } => *per_min,
            Behaviour::Diurnal { peak_per_min, .. } => *peak_per_min,
            Behaviour::NightlyBatch { base_per_min, .. } => *base_per_min,
            Behaviour::Agent(a) => a.per_min,
            Behaviour::Human { per_min, .. } => *per_min,
            Behaviour::Cloud(plan) => plan.nominal_per_min(),
        }
    }

    pub fn day_factor(&self, sim_start: Millis, t: Millis) -> f64 {
        let day = (t - sim_start).div_euclid(DAY).clamp(0, self.day_factor.len() as i64 - 1);
        self.day_factor[day as usize]
    }

    /// Expected benign calls in the minute starting at `t0` (agents are handled by sessions).
    pub fn rate(&self, sim_start: Millis, t0: Millis) -> f64 {
        let f = self.day_factor(sim_start, t0);
        match &self.behaviour {
            Behaviour::Steady { per_min } => per_min * f,
            Behaviour::Diurnal { peak_per_min, utc_offset_h } => {
                let local_h = (t0 + utc_offset_h * HOUR).rem_euclid(DAY) as f64 / HOUR as f64;
                let bump = if (7.0..19.0).contains(&local_h) {
                    (std::f64::consts::PI * (local_h - 7.0) / 12.0).sin()
                } else {
                    0.0
                };
                peak_per_min * f * (0.2 + 0.8 * bump)
            }
            Behaviour::NightlyBatch { base_per_min, batches } => {
                let batch: f64 = batches.iter().filter(|w| (w.start..w.end).contains(&t0)).map(|w| w.per_min).sum();
                base_per_min * f + batch
            }
            Behaviour::Agent(_) => 0.0,
            Behaviour::Human { workdays, .. } => {
                workdays.iter().find(|w| (w.start..w.end).contains(&t0)).map_or(0.0, |w| w.per_min)
            }
            Behaviour::Cloud(plan) => plan.nominal_per_min() * f,
        }
    }

    /// The credential a benign call at `t` presents, as its issue time (the id derives from it).
    fn credential_issued_at(&self, t: Millis) -> Millis {
        match &self.credential {
            CredentialPlan::Static { issued_at, .. } => *issued_at,
            CredentialPlan::Hourly { phase, .. } => phase + (t - phase).div_euclid(HOUR) * HOUR,
            CredentialPlan::PerSession => self.session().map_or(t, |s| s.token_issued_at),
            CredentialPlan::Console => match &self.behaviour {
                Behaviour::Human { workdays, .. } => {
                    workdays.iter().rev().find(|w| w.start <= t).map_or(t, console_issued_at)
                }
                _ => t,
            },
            CredentialPlan::RoleSession { rotate, .. } => match self.episode_at(t) {
                Some(e) => e.issued_at(t, *rotate),
                None => t,
            },
        }
    }

    fn weighted_op(&self, rng: &mut Rng) -> usize {
        let x: f64 = rng.random();
        self.cdf.partition_point(|&c| c < x).min(self.ops.len() - 1)
    }

    /// A call shaped like this identity's own (its actions, addresses, user agents and
    /// current credential), without advancing the warm-up walk. Attacks that hide in an
    /// identity's usual traffic start from this.
    pub fn own_call(&self, who: u32, time: Millis, rng: &mut Rng) -> Draft {
        if let Some(e) = self.episode_at(time) {
            return cloud::episode_call(self, e, who, time, rng);
        }
        let op = self.ops[self.weighted_op(rng)];
        let ip = *self.ips.choose(rng).unwrap_or(&[10, 0, 0, 1]);
        let user_agent = self.user_agents.choose(rng).copied().unwrap_or(UserAgent::Fixed("unknown"));
        self.call(who, time, op, ip, user_agent, rng)
    }

    /// The episode (job, environment, task, instance) a call at `t` belongs to: the one in
    /// progress that started last, or else the last one before `t`. `None` for identities
    /// without episodes.
    pub fn episode_at(&self, t: Millis) -> Option<&Episode> {
        match &self.behaviour {
            Behaviour::Cloud(plan) => plan.episode_at(t),
            _ => None,
        }
    }

    /// The cloud plan of a cloud estate archetype.
    pub fn cloud(&self) -> Option<&CloudPlan> {
        match &self.behaviour {
            Behaviour::Cloud(plan) => Some(plan),
            _ => None,
        }
    }

    /// `agent` as this identity sends it at `time`: upgraded once its SDK upgrade has come.
    fn agent_at(&self, agent: UserAgent, host: u8, time: Millis) -> UserAgent {
        agent.at(host, time >= self.sdk_upgrade_at)
    }

    fn call(&self, who: u32, time: Millis, op: Op, ip: [u8; 4], user_agent: UserAgent, rng: &mut Rng) -> Draft {
        let session = self.session().map_or((0, 0), |s| (s.number, s.user));
        let user_agent = self.agent_at(user_agent, 0, time);
        Draft {
            time,
            who,
            action: op.action,
            outcome: Outcome::Success,
            ip,
            user_agent,
            credential_issued_at: self.credential_issued_at(time),
            session: session.0,
            delegating_user: session.1,
            resource: op.object.then(|| Resource::Object(rng.random_range(0..400))),
            bytes_out: op.reads.then(|| rng.random_range(1_000..=200_000)),
            credential: CredentialUse::Own,
            attribution: Attribution::Usual,
            tag: Tag::Benign,
        }
    }

    /// The next benign call: during warm-up it walks every action, address and user agent in
    /// turn, afterwards it draws them by weight.
    fn next_call(&mut self, who: u32, time: Millis, rng: &mut Rng) -> Draft {
        let i = self.emitted;
        self.emitted += 1;
        if i < self.ops.len().max(self.ips.len()).max(self.user_agents.len()) {
            let op = self.ops[i % self.ops.len()];
            let ip = self.ips[i % self.ips.len()];
            let ua = self.user_agents[i % self.user_agents.len()];
            self.call(who, time, op, ip, ua, rng)
        } else {
            self.own_call(who, time, rng)
        }
    }

    /// Appends this identity's benign calls for the minute starting at `t0`.
    pub fn emit_minute(&mut self, who: u32, sim_start: Millis, t0: Millis, rng: &mut Rng, out: &mut Vec<Draft>) {
        if !(self.active_from..self.active_until).contains(&t0) {
            return;
        }
        if matches!(self.behaviour, Behaviour::Cloud(_)) {
            cloud::emit_minute(self, who, sim_start, t0, rng, out);
            return;
        }
        if let Behaviour::Agent(a) = &mut self.behaviour {
            advance_session(a, t0, rng);
        }
        let lambda = match self.session() {
            Some(s) => s.per_min,
            None => self.rate(sim_start, t0),
        };
        let n = poisson(lambda, rng);
        let human = self.kind == PrincipalType::Human;
        let mut bad = 0;
        let first = out.len();
        for _ in 0..n {
            let t = t0 + rng.random_range(0..MINUTE);
            let mut d = self.next_call(who, t, rng);
            if human {
                if rng.random_bool(HUMAN_DENIED_P) {
                    d.outcome = Outcome::Denied;
                    d.bytes_out = None;
                }
            } else if bad < MACHINE_MAX_BAD_PER_MINUTE {
                let x: f64 = rng.random();
                if x < MACHINE_FAILURE_P + MACHINE_DENIED_P {
                    d.outcome = if x < MACHINE_FAILURE_P { Outcome::Failure } else { Outcome::Denied };
                    d.bytes_out = None;
                    bad += 1;
                }
            }
            out.push(d);
        }
        // A human paging through a console: normal for a person, a spike for a machine.
        if human && lambda > 0.0 && rng.random_bool(HUMAN_BURSTS_PER_DAY / 600.0) {
            let burst = rng.random_range(15..=40);
            let paged = if out.len() > first { out[out.len() - 1].action } else { "" };
            for _ in 0..burst {
                let t = t0 + rng.random_range(0..MINUTE);
                let mut d = self.next_call(who, t, rng);
                if let Some(op) = self.ops.iter().find(|o| o.action == paged) {
                    d.action = op.action;
                    d.resource = op.object.then_some(d.resource.unwrap_or(Resource::Object(0)));
                    d.bytes_out = op.reads.then_some(d.bytes_out.unwrap_or(4_000));
                }
                out.push(d);
            }
        }
    }
}

fn console_issued_at(w: &Window) -> Millis {
    w.start - 2 * MINUTE
}

pub(crate) fn console_expires_at(issued_at: Millis) -> Millis {
    issued_at + CONSOLE_SESSION_TTL
}

/// Ends a finished session and starts the next one when its time has come.
fn advance_session(a: &mut AgentPlan, t0: Millis, rng: &mut Rng) {
    if a.session.is_some_and(|s| t0 >= s.end) {
        a.session = None;
    }
    if a.session.is_none() && t0 >= a.next_start {
        a.sessions += 1;
        let end = t0 + rng.random_range(2..=10) * MINUTE;
        a.session = Some(Session {
            number: a.sessions,
            start: t0,
            end,
            user: rng.random_range(0..a.users.len()) as u8,
            token_issued_at: t0 - rng.random_range(1..30) * SECOND,
            per_min: a.per_min * rng.random_range(0.8..1.2),
        });
        a.next_start = end + rng.random_range(10..=60) * MINUTE;
    }
}

pub(crate) fn poisson(lambda: f64, rng: &mut Rng) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    Poisson::new(lambda).map_or(0, |p| p.sample(rng) as u32)
}

/// The population of `estate`: the classic mix ([`build`]), or in the cloud estate the
/// classic mix for part of it and the cloud archetypes for the rest ([`cloud::build`]).
pub(crate) fn build_estate(estate: Estate, n: usize, days: u32, sim_start: Millis, rng: &mut Rng) -> Vec<Identity> {
    match estate {
        Estate::Classic => build(n, days, sim_start, rng),
        Estate::Cloud => cloud::build(n, days, sim_start, rng),
    }
}

/// Builds `n` identities in the configured mix (every type present once `n >= 6`), with
/// calendars (nightly batches, working days) for `days` days from `sim_start`, a UTC midnight.
pub(crate) fn build(n: usize, days: u32, sim_start: Millis, rng: &mut Rng) -> Vec<Identity> {
    let counts = apportion(n);
    let mut ids = Vec::with_capacity(n);
    let mut humans = Vec::new();
    for (&(kind, _), &count) in MIX.iter().zip(&counts) {
        for i in 0..count {
            let ident = build_one(kind, i, ids.len(), days, sim_start, &humans, rng);
            if kind == PrincipalType::Human {
                humans.push(ident.id.clone());
            }
            ids.push(ident);
        }
    }
    ids
}

/// Largest-remainder split of `n` over [`MIX`], then at least one of each type.
fn apportion(n: usize) -> Vec<usize> {
    let percents: Vec<usize> = MIX.iter().map(|&(_, pct)| pct).collect();
    split(n, &percents)
}

/// Largest-remainder split of `n` by `percents` (summing to 100), then at least one of each
/// once `n` has room for them.
fn split(n: usize, percents: &[usize]) -> Vec<usize> {
    let mut counts: Vec<usize> = percents.iter().map(|pct| n * pct / 100).collect();
    let mut order: Vec<usize> = (0..percents.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(n * percents[i] % 100));
    let mut left = n - counts.iter().sum::<usize>();
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    if n >= percents.len() {
        for i in 0..counts.len() {
            if counts[i] == 0 {
                let largest = (0..counts.len()).max_by_key(|&j| counts[j]).unwrap_or(0);
                counts[largest] -= 1;
                counts[i] = 1;
            }
        }
    }
    counts
}

/// The `i`-th identity of its `kind` and the `serial`-th of the population. Every draw is
/// in a fixed order: a seed must give the same population on every run.
fn build_one(
    kind: PrincipalType,
    i: usize,
    serial: usize,
    days: u32,
    sim_start: Millis,
    humans: &[String],
    rng: &mut Rng,
) -> Identity {
    let team = *TEAMS.choose(rng).unwrap_or(&"platform");
    // Every machine has an owning team: an ownerless one is an `orphaned_principal` finding,
    // which would be a false alert in a population meant to be benign. Humans own themselves.
    let owner = format!("team-{team}");
    let tenant = if kind == PrincipalType::Human {
        TENANTS[2]
    } else if rng.random_bool(0.8) {
        TENANTS[0]
    } else {
        TENANTS[1]
    };
    let (id, surface) = name_and_surface(kind, serial, rng);
    let human = kind == PrincipalType::Human;
    let ops = if human {
        choose_ops(&[CONSOLE], 1, rng.random_range(4..=8), rng)
    } else {
        choose_ops(surface.catalog, rng.random_range(1..=3), rng.random_range(3..=12), rng)
    };
    let cdf = cumulative_weights(ops.len(), rng);
    let ips = if human { human_addresses(rng) } else { machine_addresses(surface.net_base, rng) };
    let user_agents = choose_user_agents(surface.user_agents, rng).into_iter().map(UserAgent::Fixed).collect();
    let day_factor: Vec<f64> = (0..=days).map(|_| rng.random_range(0.8..1.2)).collect();
    let (credential, behaviour) = match kind {
        PrincipalType::ServiceAccount => service_account_plan(i, days, sim_start, rng),
        PrincipalType::ApiKey => api_key_plan(i, sim_start, rng),
        PrincipalType::Workload => (
            hourly_token(CredentialKind::ShortLivedToken, rng),
            Behaviour::Steady { per_min: rng.random_range(1.0..10.0) },
        ),
        PrincipalType::OauthClient => (
            hourly_token(CredentialKind::OauthAccessToken, rng),
            Behaviour::Diurnal { peak_per_min: rng.random_range(0.5..4.0), utc_offset_h: utc_offset(rng) },
        ),
        PrincipalType::AiAgent => (CredentialPlan::PerSession, Behaviour::Agent(agent_plan(humans, sim_start, rng))),
        _ => (CredentialPlan::Console, human_workdays(days, sim_start, rng)),
    };
    Identity {
        id,
        kind,
        owner: (!human).then_some(owner),
        tenant,
        ops,
        cdf,
        ips,
        user_agents,
        credential,
        behaviour,
        bucket: format!("{team}-data-{serial:04}"),
        salt: rng.random(),
        day_factor,
        emitted: 0,
        active_from: Millis::MIN,
        active_until: Millis::MAX,
        registered: true,
        archetype: Archetype::Classic,
        sdk_upgrade_at: Millis::MAX,
    }
}

/// What identities of one type choose their calls, clients and addresses from.
struct Surface {
    catalog: &'static [&'static [Op]],
    user_agents: &'static [&'static str],
    /// The first two octets of a machine's addresses.
    net_base: [u8; 2],
}

/// An id of the shape its type has in real estates, and what the type calls from where.
fn name_and_surface(kind: PrincipalType, serial: usize, rng: &mut Rng) -> (String, Surface) {
    let surface = |catalog, user_agents, net_base| Surface { catalog, user_agents, net_base };
    match kind {
        PrincipalType::ServiceAccount => {
            (format!("svc-{}-{serial:04}", pick(SVC_NAMES, rng)), surface(CLOUD, SDK_AGENTS, [10, 20]))
        }
        PrincipalType::ApiKey => {
            (format!("key-{}-{serial:04}", pick(KEY_NAMES, rng)), surface(CLOUD, SDK_AGENTS, [10, 30]))
        }
        PrincipalType::Workload => {
            (format!("wl-prod-{}-{serial:04}", pick(WORKLOAD_NAMES, rng)), surface(CLOUD, SDK_AGENTS, [10, 40]))
        }
        PrincipalType::OauthClient => {
            (format!("oauth-{}-{serial:04}", pick(OAUTH_NAMES, rng)), surface(SAAS, SAAS_AGENTS, [10, 50]))
        }
        PrincipalType::AiAgent => {
            (format!("agent-{}-{serial:04}", pick(AGENT_NAMES, rng)), surface(TOOLS, AGENT_RUNTIMES, [10, 60]))
        }
        _ => (format!("user-{}{serial}@example.com", pick(PEOPLE, rng)), surface(&[CONSOLE], BROWSERS, [100, 64])),
    }
}

fn pick(names: &[&'static str], rng: &mut Rng) -> &'static str {
    names.choose(rng).copied().unwrap_or("app")
}

/// An office egress shared by everyone, plus one or two home networks of the person's own.
fn human_addresses(rng: &mut Rng) -> Vec<[u8; 4]> {
    let mut ips = vec![[203, 0, 113, rng.random_range(2..250)]];
    for _ in 0..rng.random_range(1..=2) {
        ips.push([100, 64 + rng.random_range(0..60), rng.random_range(0..=255), rng.random_range(2..250)]);
    }
    ips
}

/// One to three addresses in one or two /24 networks under `net_base`.
fn machine_addresses(net_base: [u8; 2], rng: &mut Rng) -> Vec<[u8; 4]> {
    let nets: Vec<u8> = (0..rng.random_range(1..=2)).map(|_| rng.random_range(0..=255)).collect();
    let n_ips = rng.random_range(nets.len()..=3);
    (0..n_ips).map(|j| [net_base[0], net_base[1], nets[j % nets.len()], rng.random_range(2..250)]).collect()
}

/// One or two of `agents`, sorted.
fn choose_user_agents(agents: &[&'static str], rng: &mut Rng) -> Vec<&'static str> {
    let k = rng.random_range(1..=2);
    let mut chosen: Vec<&'static str> = agents.sample(rng, k).copied().collect();
    chosen.sort_unstable();
    chosen
}

fn utc_offset(rng: &mut Rng) -> i64 {
    *UTC_OFFSETS_H.choose(rng).unwrap_or(&0)
}

fn hourly_token(kind: CredentialKind, rng: &mut Rng) -> CredentialPlan {
    CredentialPlan::Hourly { kind, phase: rng.random_range(0..60) * MINUTE }
}

/// A long-lived key issued 10 to 59 days before the start, so none is older than 60 days.
fn static_key(sim_start: Millis, rng: &mut Rng) -> CredentialPlan {
    CredentialPlan::Static { id: access_key_id(rng), issued_at: sim_start - rng.random_range(10 * DAY..59 * DAY) }
}

/// Patterns and credential schemes cycle with `i` so small populations still hold each kind.
fn service_account_plan(i: usize, days: u32, sim_start: Millis, rng: &mut Rng) -> (CredentialPlan, Behaviour) {
    let credential = if i.is_multiple_of(2) {
        static_key(sim_start, rng)
    } else {
        hourly_token(CredentialKind::ShortLivedToken, rng)
    };
    let behaviour = match i % 3 {
        // Every other steady one calls at most 5 times a minute: quiet accounts are what a
        // new nightly batch or a lateral mover stands out on.
        0 if i % 6 == 3 => Behaviour::Steady { per_min: rng.random_range(1.5..5.0) },
        0 => Behaviour::Steady { per_min: rng.random_range(2.0..20.0) },
        1 => Behaviour::Diurnal { peak_per_min: rng.random_range(2.0..20.0), utc_offset_h: utc_offset(rng) },
        _ => nightly_batch(days, sim_start, rng),
    };
    (credential, behaviour)
}

fn api_key_plan(i: usize, sim_start: Millis, rng: &mut Rng) -> (CredentialPlan, Behaviour) {
    let per_min = rng.random_range(0.5..5.0);
    let behaviour = if i.is_multiple_of(2) {
        Behaviour::Steady { per_min }
    } else {
        Behaviour::Diurnal { peak_per_min: per_min, utc_offset_h: utc_offset(rng) }
    };
    (static_key(sim_start, rng), behaviour)
}

/// An agent acting for one to three of the `humans` built before it (a made-up one when
/// there are none), its first session within half an hour of the start.
fn agent_plan(humans: &[String], sim_start: Millis, rng: &mut Rng) -> AgentPlan {
    let k = rng.random_range(1..=3);
    let mut users: Vec<String> = humans.sample(rng, k).cloned().collect();
    if users.is_empty() {
        users.push(format!("user-{}@example.com", pick(PEOPLE, rng)));
    }
    AgentPlan {
        per_min: rng.random_range(5.0..20.0),
        users,
        session: None,
        next_start: sim_start + rng.random_range(0..30) * MINUTE,
        sessions: 0,
    }
}

/// `services` services from the catalog and `target` operations among them, each chosen
/// service contributing at least one.
fn choose_ops(catalog: &[&[Op]], services: usize, target: usize, rng: &mut Rng) -> Vec<Op> {
    let chosen: Vec<&[Op]> = catalog.sample(rng, services.min(catalog.len())).copied().collect();
    let mut ops: Vec<Op> = chosen.iter().filter_map(|s| s.choose(rng).copied()).collect();
    let mut rest: Vec<Op> = chosen.iter().flat_map(|s| s.iter().copied()).filter(|o| !ops.contains(o)).collect();
    rest.shuffle(rng);
    let more = target.saturating_sub(ops.len()).min(rest.len());
    ops.extend(rest.into_iter().take(more));
    ops
}

/// Random weights with a 5 % floor per action, as a cumulative distribution.
fn cumulative_weights(n: usize, rng: &mut Rng) -> Vec<f64> {
    let raw: Vec<f64> = (0..n).map(|_| rng.random_range(0.5..3.0)).collect();
    let total: f64 = raw.iter().sum();
    let spare = 1.0 - 0.05 * n as f64;
    let mut acc = 0.0;
    raw.iter()
        .map(|w| {
            acc += 0.05 + spare * w / total;
            acc
        })
        .collect()
}

fn nightly_batch(days: u32, sim_start: Millis, rng: &mut Rng) -> Behaviour {
    let hour = rng.random_range(0..5);
    let per_min = rng.random_range(20.0..80.0);
    let batches = (0..days as i64)
        .map(|d| {
            let start = sim_start + d * DAY + hour * HOUR + rng.random_range(10..=30) * MINUTE;
            Window {
                start,
                end: start + rng.random_range(20..=40) * MINUTE,
                per_min: per_min * rng.random_range(0.8..1.2),
            }
        })
        .collect();
    Behaviour::NightlyBatch { base_per_min: rng.random_range(0.2..1.0), batches }
}

/// Working windows 08–18 local: weekdays mostly, now and then a short weekend stint.
fn human_workdays(days: u32, sim_start: Millis, rng: &mut Rng) -> Behaviour {
    let offset = utc_offset(rng);
    let per_min = rng.random_range(0.3..2.0);
    let mut workdays = Vec::new();
    // Local days from the one before the start (eastern offsets begin it there) to the end.
    for day in -1..=days as i64 {
        let weekend = weekday(sim_start + day * DAY) >= 5;
        let midnight_utc = sim_start + day * DAY - offset * HOUR;
        let (from, to) = if weekend {
            if !rng.random_bool(0.1) {
                continue;
            }
            let from = rng.random_range(10 * 60..14 * 60) * MINUTE;
            (from, from + rng.random_range(60..=180) * MINUTE)
        } else {
            if !rng.random_bool(0.95) {
                continue;
            }
            (rng.random_range(8 * 60..8 * 60 + 45) * MINUTE, rng.random_range(17 * 60 + 15..18 * 60) * MINUTE)
        };
        workdays.push(Window {
            start: midnight_utc + from,
            end: midnight_utc + to,
            per_min: per_min * rng.random_range(0.8..1.2),
        });
    }
    Behaviour::Human { per_min, workdays }
}

/// Day of the week of the UTC date at `t`, Monday = 0 (1970-01-01 was a Thursday). The
/// batch run starts on a Monday, live mode on whatever day history begins.
fn weekday(t: Millis) -> i64 {
    (t.div_euclid(DAY) + 3).rem_euclid(7)
}

/// An `AKIA…` access key id (the shape of a long-lived AWS key).
fn access_key_id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut id = String::from("AKIA");
    id.extend((0..16).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char));
    id
}

/// splitmix64: a stable 64-bit mix for deriving ids from (salt, time).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_mix_holds_every_type_and_adds_up() {
        for n in [6, 12, 30, 100, 1000] {
            let counts = apportion(n);
            assert_eq!(counts.iter().sum::<usize>(), n);
            assert!(counts.iter().all(|&c| c >= 1), "{n}: {counts:?}");
        }
        assert_eq!(apportion(100), vec![17, 35, 15, 15, 8, 10]);
    }

    #[test]
    fn weekdays_follow_the_calendar() {
        // The batch run's default start is a Monday; 2026-11-07 is a Saturday.
        assert_eq!(weekday(crate::DEFAULT_START), 0);
        assert_eq!(weekday(crate::DEFAULT_START + 5 * DAY + 23 * HOUR), 5);
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
    }

    #[test]
    fn machine_action_sets_are_small_stable_and_weighted() {
        let mut rng = Rng::seed_from_u64(3);
        for ident in build(200, 3, 0, &mut rng) {
            if ident.kind.is_machine() {
                assert!((3..=12).contains(&ident.ops.len()), "{}: {:?}", ident.id, ident.ops);
                let services: std::collections::BTreeSet<_> =
                    ident.ops.iter().map(|o| o.action.split(':').next()).collect();
                assert!((1..=3).contains(&services.len()));
                assert!((1..=3).contains(&ident.ips.len()) && (1..=2).contains(&ident.user_agents.len()));
            }
            let mut prev = 0.0;
            for &c in &ident.cdf {
                assert!(c - prev >= 0.05 - 1e-9);
                prev = c;
            }
            assert!((prev - 1.0).abs() < 1e-9);
        }
    }
}
