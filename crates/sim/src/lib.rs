//! `nhid-sim simulate`: a seeded population of identities behaving normally, with labeled
//! attacks injected into it, written as canonical JSON lines.
//!
//! # Layout
//!
//! - [`population`]: who exists and what each identity normally does: its fixed actions,
//!   networks, user agents, credential scheme and rate pattern. In the cloud estate
//!   ([`Estate::Cloud`]), beside that classic population, archetypes that behave as the
//!   platforms do (`population::cloud`): CI jobs on fresh runner addresses, serverless cold
//!   starts, autoscaled fleets, low-volume keys, Terraform runs, weekly jobs.
//! - [`attacks`]: the labeled scenarios (thirteen attacks and one benign change of
//!   behaviour, a new nightly batch; in the cloud estate four more attacks that stay small)
//!   on distinct victims, emitted alongside the victims' benign traffic: planned up front for
//!   a batch run, one after another live (the six original attacks only).
//! - `clients`: user agents, rendered per call where current AWS clients name the call;
//!   `ranges`: the providers' published address ranges the cloud estate draws from.
//! - [`live`]: live mode for `nhid-sim demo`: benign history to warm an engine, then traffic in
//!   consecutive windows of event time with an attack every few seconds.
//! - this file: the minute step both modes share, which merges both into time-ordered
//!   events, and the writer that assigns ids and fills in the labels; the batch run.
//!
//! Generation walks minute by minute over all principals and writes each minute as soon
//! as it is sorted, so memory depends on the population, not on the number of days. One
//! `ChaCha8Rng` seeded from the configured seed drives everything: the same seed gives
//! byte-identical output on every platform.

mod attacks;
mod clients;
pub mod eval;
mod live;
mod population;
mod ranges;

pub use live::{Live, LiveConfig};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use attacks::Attack;
use clients::UserAgent;
use nhid_model::event::{
    Actor, AuditEvent, Credential, CredentialKind, Outcome, Principal, PrincipalType, Source, SourceFormat,
};
use nhid_model::time::{DAY, HOUR, MINUTE, Millis, serde_rfc3339};
use nhid_model::vocab::Response;
use population::{AGENT_TOKEN_TTL, CredentialPlan, Identity, SessionNaming, mix};

/// The only generator the simulator uses: portable and reproducible from a `u64` seed.
type Rng = rand_chacha::ChaCha8Rng;

/// How many scenarios a classic run long and large enough holds (see the `attacks` module);
/// [`Estate::scenarios`] for either estate.
pub const SCENARIOS: usize = attacks::Scenario::PLANNING_ORDER.len();

/// 2026-11-02T00:00:00Z, a Monday, so the first day is a working day for humans.
pub const DEFAULT_START: Millis = 1_793_577_600_000;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub principals: usize,
    pub days: u32,
    /// Event time of the first minute.
    pub start: Millis,
    /// Which population: the classic one, or the cloud estate around it.
    pub estate: Estate,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { seed: 0, principals: 100, days: 3, start: DEFAULT_START, estate: Estate::Classic }
    }
}

/// Which population a run simulates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Estate {
    /// Identities with fixed actions, addresses and user agents, each shown within its first
    /// hours: the population the detectors were written with. Its output for a seed never
    /// changes.
    #[default]
    Classic,
    /// The classic population for 45 % of the principals, and for the rest what a cloud estate
    /// holds, each as its platform behaves ([`Archetype`]): CI runners on a fresh GitHub
    /// address per job, serverless functions on a new AWS address and session key per cold
    /// start, autoscaled fleets, low-volume keys with long-tailed action mixes, Terraform runs
    /// changing IAM, weekly jobs; current SDK user agents everywhere. Four more attack
    /// scenarios, all small.
    Cloud,
}

impl Estate {
    pub const ALL: [Estate; 2] = [Estate::Classic, Estate::Cloud];

    pub fn name(self) -> &'static str {
        match self {
            Estate::Classic => "classic",
            Estate::Cloud => "cloud",
        }
    }

    pub fn parse(s: &str) -> Option<Estate> {
        Estate::ALL.into_iter().find(|e| e.name() == s)
    }

    /// How many scenarios a run of this estate long and large enough holds.
    pub fn scenarios(self) -> usize {
        attacks::Scenario::planning_order(self).len()
    }
}

/// What kind of identity a principal of the simulated population is. Each archetype's ids
/// start the same way, so that [`Archetype::of`] tells them apart from the id alone, in the
/// simulator's output as in any file written from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Archetype {
    /// The classic population (both estates): service accounts, keys, workloads, OAuth
    /// clients, AI agents and humans with fixed behaviour.
    Classic,
    /// `gha-deploy-…`: GitHub Actions jobs deploying through an OIDC role session.
    CiRunner,
    /// `fn-…` (Lambda) and `task-…` (Fargate): a new address and session key per cold start
    /// or task.
    Serverless,
    /// `fleet-…`: an instance role on instances spread over many /24 networks.
    AutoscaledFleet,
    /// `iamuser-…`: static keys making a few calls a day over a long tail of actions.
    LowVolumeKey,
    /// `tf-…`: Terraform runs from CI that change IAM.
    Terraform,
    /// `cron-weekly-…`: a job that runs once a week.
    WeeklyJob,
}

impl Archetype {
    pub const ALL: [Archetype; 7] = [
        Archetype::Classic,
        Archetype::CiRunner,
        Archetype::Serverless,
        Archetype::AutoscaledFleet,
        Archetype::LowVolumeKey,
        Archetype::Terraform,
        Archetype::WeeklyJob,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Archetype::Classic => "classic",
            Archetype::CiRunner => "ci_runner",
            Archetype::Serverless => "serverless",
            Archetype::AutoscaledFleet => "autoscaled_fleet",
            Archetype::LowVolumeKey => "low_volume_key",
            Archetype::Terraform => "terraform",
            Archetype::WeeklyJob => "weekly_job",
        }
    }

    /// The archetype of a simulated principal, by the start of its id; anything else is
    /// classic.
    pub fn of(principal_id: &str) -> Archetype {
        const PREFIXES: &[(&str, Archetype)] = &[
            ("gha-deploy-", Archetype::CiRunner),
            ("fn-", Archetype::Serverless),
            ("task-", Archetype::Serverless),
            ("fleet-", Archetype::AutoscaledFleet),
            ("iamuser-", Archetype::LowVolumeKey),
            ("tf-", Archetype::Terraform),
            ("cron-weekly-", Archetype::WeeklyJob),
        ];
        PREFIXES.iter().find(|(p, _)| principal_id.starts_with(p)).map_or(Archetype::Classic, |&(_, a)| a)
    }
}

/// Ground truth for one injected attack instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub scenario: String,
    pub principal_id: String,
    pub principal_type: PrincipalType,
    /// The whole attack lies in `start..=end` (for the slow ramp, the ramp included; for a
    /// new nightly batch, from its first night to its last, at the end of the run).
    #[serde(with = "serde_rfc3339")]
    pub start: Millis,
    #[serde(with = "serde_rfc3339")]
    pub end: Millis,
    /// The first attacker event; for the slow ramp, the first event of the spike. For a
    /// benign change (no `expected_kinds`), its first event (the first event of the new
    /// nightly batch): nothing in it is malicious, but it is where the change begins, and a
    /// label without a first event would mean the change never happened.
    pub first_malicious_event_id: String,
    #[serde(with = "serde_rfc3339")]
    pub first_malicious_time: Millis,
    /// Detector kinds that must fire on this attack (others may fire too). Empty for a
    /// benign change of behaviour (a new nightly batch), which is labeled so that `nhid-sim eval`
    /// can tell the alerts it may raise while new from false alerts once it is learned.
    pub expected_kinds: Vec<String>,
    /// Benign changes only: alerts on this principal from this time on are false alerts
    /// (before it, the change is new and alerting on it is tolerated, not required).
    #[serde(default, with = "serde_rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub quiet_from: Option<Millis>,
    /// Attacks only: the credential the first malicious event presents (none for a password
    /// sign-in), and the session it names (`actor.session_id`: an agent's or a role
    /// session's), as that event has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Attacks only: the response a SOC expects nhid to request, the narrowest that contains
    /// the attack: `revoke_credential` (that key), `revoke_session` (that session),
    /// `notify_owner` (nothing to cut, or nothing sure enough to cut), `none` (alert only: a
    /// person, or a principal nobody registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_response: Option<Response>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimSummary {
    pub events: u64,
    pub principals_by_type: BTreeMap<PrincipalType, usize>,
    pub principals_by_archetype: BTreeMap<Archetype, usize>,
    pub labels: Vec<Label>,
    /// What the organisation knows: every principal but the shadow keys, in population order.
    pub inventory: Vec<Registered>,
}

/// One `[[principal]]` entry of the inventory file (`nhid_engine::inventory`) the simulator writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Registered {
    /// The exact principal id.
    #[serde(rename = "match")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PrincipalType,
    /// The owning team of a machine; humans own themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `entries` as an inventory file that [`nhid_engine::inventory::Inventory::parse`] reads.
pub fn inventory_toml(entries: &[Registered]) -> Result<String, toml::ser::Error> {
    #[derive(Serialize)]
    struct File<'a> {
        principal: &'a [Registered],
    }
    toml::to_string(&File { principal: entries })
}

/// One call before it becomes an [`AuditEvent`]: the variable parts only, the rest comes
/// from the identity when it is written.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    time: Millis,
    /// Index of the identity in the population.
    who: u32,
    action: &'static str,
    outcome: Outcome,
    ip: [u8; 4],
    user_agent: UserAgent,
    /// Issue time of the credential presented; token and session ids derive from it.
    credential_issued_at: Millis,
    /// Agent session number and delegating user index (agents only); for role sessions, the
    /// episode (job, cold start, task, instance) number.
    session: u32,
    delegating_user: u8,
    resource: Option<Resource>,
    bytes_out: Option<u64>,
    /// The identity's own credential, or what a scenario presents instead.
    credential: CredentialUse,
    attribution: Attribution,
    tag: Tag,
}

/// What a call names as its `resource`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    /// An object of the identity's own bucket, by number.
    Object(u32),
    /// An object of another identity's bucket: `owner` indexes the population.
    ForeignObject { owner: u32, object: u32 },
    /// An EC2 instance of the account, by number.
    Instance(u32),
    /// A Secrets Manager secret of the account, by number.
    Secret(u32),
}

/// The credential a call presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CredentialUse {
    /// The identity's own, as its [`CredentialPlan`] says, issued at `credential_issued_at`.
    Own,
    /// A password sign-in: kind `password`, no id.
    Password,
    /// A console session opened at `credential_issued_at` (kind `session`), whatever the
    /// identity's plan: what a machine signed in at the console uses afterwards.
    ConsoleSession,
}

/// Who the `actor` fields say acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attribution {
    /// What the credential plan implies: agents name their delegating user and session,
    /// others nothing.
    Usual,
    /// An agent acting outside any session: its `agent_id` only.
    Unattributed,
    /// A desktop agent `agent-desktop-<n>` riding a human's console session: the human
    /// delegates, the session is the console session's.
    DesktopAgent(u32),
}

/// Never written: it only lets the writer fill in the labels' first malicious event.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tag {
    Benign,
    /// `malicious: false` marks camouflage (the slow ramp before its spike).
    Attack {
        label: u32,
        malicious: bool,
    },
    /// Benign traffic of a labeled change of behaviour (a new nightly batch); its first
    /// event fills the label's first event.
    Change {
        label: u32,
    },
}

/// Writes the simulated events to `out` as JSON lines in non-decreasing time and returns
/// what was written, with the labels of every injected attack.
///
/// Scenarios need `days >= 2` (they start at least 30 h in and end an hour before the end),
/// a new nightly batch `days >= 5` (three nights from 30 h in), a dormant key `days >= 10`
/// (silent from its first day, back more than 8 days later); a shorter run, or a
/// population too small to hold a suitable victim (about 25 principals hold one for
/// each), gets no labels for the scenarios that do not fit.
pub fn run(cfg: &SimConfig, out: &mut dyn Write) -> io::Result<SimSummary> {
    let end = cfg.start + i64::from(cfg.days) * DAY;
    let mut sim = Sim::planned(cfg);
    let mut t0 = cfg.start;
    while t0 < end {
        sim.draft_minute(t0);
        sim.writer.line.clear();
        for d in &sim.drafts {
            sim.writer.append(d, &sim.pop, &mut sim.labels)?;
        }
        out.write_all(&sim.writer.line)?;
        t0 += MINUTE;
    }
    out.flush()?;
    let Sim { pop, mut labels, writer, .. } = sim;
    // An attack whose moment never came (an agent without a session before the end) is not one.
    labels.retain(|l| !l.first_malicious_event_id.is_empty());
    let mut principals_by_type = BTreeMap::new();
    let mut principals_by_archetype = BTreeMap::new();
    for identity in &pop {
        *principals_by_type.entry(identity.kind).or_insert(0) += 1;
        *principals_by_archetype.entry(identity.archetype).or_insert(0) += 1;
    }
    Ok(SimSummary {
        events: writer.written,
        principals_by_type,
        principals_by_archetype,
        labels,
        inventory: registered(&pop),
    })
}

/// The inventory [`run`] reports for `cfg`, without generating a single event: what a caller
/// that must load the inventory before the events come (an engine fed in process) needs.
pub fn inventory(cfg: &SimConfig) -> Vec<Registered> {
    registered(&Sim::planned(cfg).pop)
}

/// What the organisation knows: every principal but the shadow keys, in population order.
fn registered(pop: &[Identity]) -> Vec<Registered> {
    pop.iter()
        .filter(|who| who.registered)
        .map(|who| Registered { id: who.id.clone(), kind: who.kind, owner: who.owner.clone() })
        .collect()
}

/// A population with its attacks, stepped a minute at a time: what the batch run and live
/// mode share.
struct Sim {
    rng: Rng,
    /// Day 0 of the population's calendar (nightly batches, working days, day-to-day rates).
    epoch: Millis,
    pop: Vec<Identity>,
    attacks: Vec<Attack>,
    /// One per planned attack, indexed by [`Tag::Attack`]'s `label`.
    labels: Vec<Label>,
    /// The minute drafted last, in time order.
    drafts: Vec<Draft>,
    writer: EventWriter,
}

impl Sim {
    /// The population of a batch run with its attacks planned.
    fn planned(cfg: &SimConfig) -> Sim {
        let end = cfg.start + i64::from(cfg.days) * DAY;
        let mut sim = Sim::new(cfg.seed, cfg.principals, cfg.days, cfg.start, cfg.estate);
        (sim.attacks, sim.labels) = attacks::plan(&mut sim.pop, cfg.estate, cfg.start, end, &mut sim.rng);
        sim
    }

    fn new(seed: u64, principals: usize, days: u32, epoch: Millis, estate: Estate) -> Sim {
        let mut rng = Rng::seed_from_u64(seed);
        let pop = population::build_estate(estate, principals, days, epoch, &mut rng);
        Sim {
            rng,
            epoch,
            pop,
            attacks: Vec::new(),
            labels: Vec::new(),
            drafts: Vec::new(),
            writer: EventWriter::default(),
        }
    }

    /// Drafts every call of the minute starting at `t0`, benign and malicious, into `drafts`.
    fn draft_minute(&mut self, t0: Millis) {
        let Sim { rng, epoch, pop, attacks, labels, drafts, .. } = self;
        drafts.clear();
        for (who, identity) in pop.iter_mut().enumerate() {
            identity.emit_minute(who as u32, *epoch, t0, rng, drafts);
        }
        for attack in attacks.iter_mut() {
            attack.emit_minute(pop, labels, *epoch, t0, rng, drafts);
        }
        // Stable, so equal times keep generation order and the output stays reproducible.
        drafts.sort_by_key(|d| d.time);
    }
}

/// Turns drafts into JSON lines, reusing its buffers across events.
#[derive(Default)]
struct EventWriter {
    /// Lines appended since it was last cleared: a minute's in a batch run, written out in
    /// one call; a single event's live.
    line: Vec<u8>,
    written: u64,
    id: String,
    ip: String,
    credential: String,
    session: String,
    agent: String,
    resource: String,
    user_agent: String,
}

impl EventWriter {
    /// Appends `d` as one JSON line to `line`. Returns the label whose first event this
    /// was, if any.
    fn append(&mut self, d: &Draft, pop: &[Identity], labels: &mut [Label]) -> io::Result<Option<usize>> {
        let who = &pop[d.who as usize];
        self.written += 1;
        let EventWriter { id, ip, credential, session, agent, resource, user_agent, .. } = self;
        id.clear();
        let _ = write!(id, "sim-{}", self.written);
        ip.clear();
        let _ = write!(ip, "{}.{}.{}.{}", d.ip[0], d.ip[1], d.ip[2], d.ip[3]);
        user_agent.clear();
        d.user_agent.render(d.action, user_agent);
        let presented = presented_credential(d, who, credential);
        let actor = acting(d, who, &presented, session, agent);
        name_resource(d, who, pop, resource);
        let event = AuditEvent {
            id: id.as_str().into(),
            time: d.time,
            principal: Principal {
                id: who.id.as_str().into(),
                kind: who.kind,
                name: None,
                owner: who.owner.as_deref().map(Into::into),
                tenant: Some(who.tenant.into()),
                inferred: false,
            },
            credential: presented,
            actor,
            action: d.action.into(),
            service: d.action.split_once(':').map_or(d.action, |(s, _)| s).into(),
            resource: (!resource.is_empty()).then(|| resource.as_str().into()),
            outcome: d.outcome,
            source: Source {
                ip: Some(ip.as_str().into()),
                user_agent: Some(user_agent.as_str().into()),
                asn: None,
                country: None,
            },
            bytes_out: d.bytes_out,
            source_format: SourceFormat::Native,
            rules: Vec::new(),
            raw: "",
            raw_fields: Default::default(),
        };
        serde_json::to_writer(&mut self.line, &event)?;
        self.line.push(b'\n');
        Ok(fill_first_event(d, &event, labels))
    }
}

/// The credential `d` presents; ids derive from the identity's salt and the issue time so
/// that the same token shows the same id in every call.
fn presented_credential<'a>(d: &Draft, who: &'a Identity, buf: &'a mut String) -> Credential<'a> {
    buf.clear();
    let issued = d.credential_issued_at;
    let (kind, expires_at) = match (d.credential, &who.credential) {
        (CredentialUse::Password, _) => return Credential { kind: CredentialKind::Password, ..Credential::default() },
        (CredentialUse::Own, CredentialPlan::Static { id: key, issued_at }) => {
            return Credential {
                id: Some(key.as_str().into()),
                kind: CredentialKind::StaticKey,
                issued_at: Some(*issued_at),
                expires_at: None,
            };
        }
        (CredentialUse::ConsoleSession, _) | (CredentialUse::Own, CredentialPlan::Console) => {
            let _ = write!(buf, "cs_{:016x}", mix(who.salt ^ issued as u64));
            (CredentialKind::Session, population::console_expires_at(issued))
        }
        (CredentialUse::Own, CredentialPlan::Hourly { kind, .. }) => {
            let token = mix(who.salt ^ issued as u64);
            let _ = match kind {
                CredentialKind::OauthAccessToken => write!(buf, "oat_{token:016x}"),
                _ => write!(buf, "ASIA{token:016X}"),
            };
            (*kind, issued + HOUR)
        }
        (CredentialUse::Own, CredentialPlan::PerSession) => {
            let _ = write!(buf, "ast_{:016x}", mix(who.salt ^ issued as u64));
            (CredentialKind::ShortLivedToken, issued + AGENT_TOKEN_TTL)
        }
        (CredentialUse::Own, CredentialPlan::RoleSession { ttl, .. }) => {
            // Episodes of one identity may start in the same millisecond: the number tells them apart.
            let token = mix(who.salt ^ mix(issued as u64 ^ (u64::from(d.session) << 44)));
            let _ = write!(buf, "ASIA{token:016X}");
            (CredentialKind::ShortLivedToken, issued + ttl)
        }
    };
    let id: &'a String = buf;
    Credential { id: Some(id.as_str().into()), kind, issued_at: Some(issued), expires_at: Some(expires_at) }
}

/// Who the `actor` fields of `d` say acted; `presented` is the credential the call shows,
/// whose session a desktop agent rides.
fn acting<'a>(
    d: &Draft,
    who: &'a Identity,
    presented: &Credential<'a>,
    session: &'a mut String,
    agent: &'a mut String,
) -> Actor<'a> {
    session.clear();
    agent.clear();
    match (d.attribution, &who.credential) {
        (Attribution::Usual, CredentialPlan::PerSession) => {
            let _ = write!(session, "sess-{:016x}", mix(who.salt.rotate_left(17) ^ u64::from(d.session)));
            Actor {
                delegating_user: population_user(who, d.delegating_user).map(Into::into),
                agent_id: Some(who.id.as_str().into()),
                session_id: Some(session.as_str().into()),
                impersonator: None,
            }
        }
        (Attribution::Usual, CredentialPlan::RoleSession { naming, .. }) => {
            role_session_name(*naming, who, d.session, session);
            Actor { session_id: Some(session.as_str().into()), ..Actor::default() }
        }
        (Attribution::Usual, _) => Actor::default(),
        (Attribution::Unattributed, _) => Actor { agent_id: Some(who.id.as_str().into()), ..Actor::default() },
        (Attribution::DesktopAgent(n), _) => {
            let _ = write!(agent, "agent-desktop-{n}");
            Actor {
                delegating_user: Some(who.id.as_str().into()),
                agent_id: Some(agent.as_str().into()),
                // The session it rides: the console session the call presents.
                session_id: presented.id.clone(),
                impersonator: None,
            }
        }
    }
}

/// Writes the ARN `d` names into `buf`, or leaves it empty for a call without a resource.
fn name_resource(d: &Draft, who: &Identity, pop: &[Identity], buf: &mut String) {
    buf.clear();
    let _ = match d.resource {
        None => Ok(()),
        Some(Resource::Object(n)) => write!(buf, "arn:aws:s3:::{}/data/part-{n:05}.parquet", who.bucket),
        Some(Resource::ForeignObject { owner, object }) => {
            let bucket = pop.get(owner as usize).map_or("shared-data", |o| o.bucket.as_str());
            write!(buf, "arn:aws:s3:::{bucket}/data/part-{object:05}.parquet")
        }
        Some(Resource::Instance(n)) => {
            write!(buf, "arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0{:016x}", mix(u64::from(n)))
        }
        Some(Resource::Secret(n)) => {
            let name = SECRET_NAMES[n as usize % SECRET_NAMES.len()];
            let suffix = mix(u64::from(n) ^ 0x5ec7) & 0xff_ffff;
            write!(buf, "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/{name}-{n:03}-{suffix:06x}")
        }
    };
}

/// The session name of episode `number` of `who`, as its platform names role sessions.
fn role_session_name(naming: SessionNaming, who: &Identity, number: u32, buf: &mut String) {
    let x = mix(who.salt.rotate_left(29) ^ u64::from(number));
    let _ = match naming {
        SessionNaming::Run => write!(buf, "gha-{}-1", 6_000_000_000 + x % 4_000_000_000),
        SessionNaming::Function => write!(buf, "{}", who.id),
        SessionNaming::Task => write!(buf, "{x:016x}{:016x}", mix(x)),
        SessionNaming::Instance => write!(buf, "i-0{:016x}", x),
    };
}

/// Records `event` as the first event of the label `d` belongs to, unless it has one already
/// (camouflage never counts), and for an attack the credential and session it presents.
/// Returns that label's index when it got its first event.
fn fill_first_event(d: &Draft, event: &AuditEvent<'_>, labels: &mut [Label]) -> Option<usize> {
    let (i, attack) = match d.tag {
        Tag::Attack { label, malicious: true } => (label as usize, true),
        Tag::Change { label } => (label as usize, false),
        Tag::Attack { malicious: false, .. } | Tag::Benign => return None,
    };
    let label = &mut labels[i];
    if !label.first_malicious_event_id.is_empty() {
        return None;
    }
    label.first_malicious_event_id = event.id.to_string();
    label.first_malicious_time = d.time;
    if attack {
        label.credential_id = event.credential.id.as_deref().map(str::to_owned);
        label.session_id = event.actor.session_id.as_deref().map(str::to_owned);
    }
    Some(i)
}

/// The AWS account the simulated cloud resources live in.
const ACCOUNT: &str = "123456789012";
const SECRET_NAMES: &[&str] =
    &["db-password", "stripe-api-key", "github-deploy-token", "datadog-api-key", "jwt-signing-key", "smtp-credentials"];

fn population_user(who: &Identity, index: u8) -> Option<&str> {
    match &who.behaviour {
        population::Behaviour::Agent(a) => a.users.get(usize::from(index)).map(String::as_str),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap, HashSet};

    use super::*;
    use nhid_decode::native;

    /// Feeds every complete line to `f`, so tests can check millions of events without
    /// holding them.
    struct Lines<F: FnMut(&str)> {
        partial: Vec<u8>,
        f: F,
    }

    impl<F: FnMut(&str)> Write for Lines<F> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.partial.extend_from_slice(buf);
            let mut done = 0;
            while let Some(nl) = self.partial[done..].iter().position(|&b| b == b'\n') {
                let line = std::str::from_utf8(&self.partial[done..done + nl]).map_err(io::Error::other)?;
                (self.f)(line);
                done += nl + 1;
            }
            self.partial.drain(..done);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Hashing(xxhash_rust::xxh3::Xxh3, u64);

    impl Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.update(buf);
            self.1 += buf.len() as u64;
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn digest(cfg: &SimConfig) -> (u64, u64, SimSummary) {
        let mut h = Hashing(xxhash_rust::xxh3::Xxh3::new(), 0);
        let summary = run(cfg, &mut h).unwrap();
        (h.0.digest(), h.1, summary)
    }

    const PRIVILEGE: &[&str] = &[
        "CreateAccessKey",
        "CreateUser",
        "CreateLoginProfile",
        "AttachUserPolicy",
        "AttachRolePolicy",
        "PutUserPolicy",
        "PutRolePolicy",
        "CreateRole",
        "UpdateAssumeRolePolicy",
        "SetIamPolicy",
        "CreateServiceAccountKey",
    ];

    #[test]
    fn simulate_is_deterministic_per_seed() {
        let cfg = SimConfig { seed: 42, principals: 12, days: 2, ..SimConfig::default() };
        let (a, bytes, sa) = digest(&cfg);
        let (b, _, sb) = digest(&cfg);
        assert_eq!(a, b);
        assert_eq!(sa.labels, sb.labels);
        assert!(bytes > 1_000_000, "{bytes}");
        // Even a dozen principals hold a victim for each of the six original attacks, which
        // choose before the others that compete for the same victims.
        let scenarios: BTreeSet<&str> = sa.labels.iter().map(|l| l.scenario.as_str()).collect();
        for original in [
            "leaked_key_new_network",
            "exfiltration_spike",
            "agent_scope_drift",
            "expired_token_replay",
            "denied_probe_burst",
            "slow_ramp_then_spike",
        ] {
            assert!(scenarios.contains(original), "{original}: {scenarios:?}");
        }
        let (c, _, _) = digest(&SimConfig { seed: 43, ..cfg });
        assert_ne!(a, c);
    }

    /// The decoder's fast path is taken on what the simulators write: every event of either
    /// estate (attacks included) is read in one pass, to the event serde reads.
    #[test]
    fn every_simulated_event_is_read_in_one_pass() {
        for estate in Estate::ALL {
            let mut out = Vec::new();
            run(&SimConfig { seed: 5, principals: 40, days: 3, estate, ..SimConfig::default() }, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            for line in text.lines() {
                let read = native::one_pass::read(line).unwrap_or_else(|| panic!("{estate:?} declined: {line}"));
                assert_eq!(Ok(read), native::by_serde(line).map_err(|e| e.detail));
            }
            assert!(text.lines().count() > 100_000, "{estate:?}");
        }
    }

    /// Everything the detectors rely on, checked on the output itself. The first run gives
    /// the labels, the second streams the events past the checks. Twelve days, so that
    /// every scenario fits (a dormant key needs ten).
    #[test]
    fn simulate_output_is_sorted_decodable_and_benign_traffic_is_stable() {
        let cfg = SimConfig { seed: 7, principals: 60, days: 12, ..SimConfig::default() };
        let end = cfg.start + i64::from(cfg.days) * DAY;
        let (_, _, summary) = digest(&cfg);
        let labels = &summary.labels;
        let scenarios: BTreeSet<&str> = labels.iter().map(|l| l.scenario.as_str()).collect();
        assert_eq!(scenarios.len(), SCENARIOS, "{scenarios:?}");
        let victims: BTreeSet<&str> = labels.iter().map(|l| l.principal_id.as_str()).collect();
        assert_eq!(victims.len(), labels.len(), "victims are distinct");
        for l in labels {
            assert!(l.start >= cfg.start + 30 * HOUR && l.end <= end - HOUR, "{l:?}");
            assert!(l.start <= l.first_malicious_time && l.first_malicious_time <= l.end, "{l:?}");
        }
        let in_attack =
            |who: &str, t: Millis| labels.iter().any(|l| l.principal_id == who && (l.start..=l.end).contains(&t));
        let victims_of = |scenario: &str| -> HashSet<&str> {
            labels.iter().filter(|l| l.scenario == scenario).map(|l| l.principal_id.as_str()).collect()
        };
        let lateral_victims = victims_of("lateral_movement");
        /// What breadth counts: the service and the resource, or the action without one.
        fn target(e: &AuditEvent<'_>) -> String {
            format!("{}|{}", e.service, e.resource.as_deref().unwrap_or(&e.action))
        }

        #[derive(Default)]
        struct Seen {
            first: Millis,
            last: Millis,
            machine: bool,
            actions: HashSet<String>,
            networks: HashSet<String>,
            agents: HashSet<String>,
            /// Every target of its benign calls (lateral movement victims only).
            targets: HashSet<String>,
            events: u64,
            bad: u64,
            bad_by_minute: HashMap<Millis, u32>,
        }
        let mut by_principal: HashMap<String, Seen> = HashMap::new();
        let mut first_event: HashMap<String, Millis> = HashMap::new();
        let mut first_malicious: HashMap<String, (String, Millis)> = HashMap::new();
        /// What happened inside a victim's attack window.
        #[derive(Default)]
        struct Window {
            events: u64,
            denied: u64,
            expired: u64,
            foreign: u64,
            by_minute: HashMap<Millis, u32>,
            actions: HashSet<String>,
            kinds: HashSet<PrincipalType>,
            /// Distinct targets per aligned 10-minute window.
            targets: HashMap<Millis, HashSet<String>>,
            /// Calls from the second workload sharing a token, their credentials, and the
            /// credentials of every other call in the window.
            shared: u64,
            shared_credentials: HashSet<String>,
            own_credentials: HashSet<String>,
            /// Calls of a desktop agent in the human's session.
            desktop_agent: u64,
            password_sign_ins: u64,
            console_session: u64,
            unattributed: u64,
            /// Known actions from known networks and clients, against what was learned.
            known: u64,
        }
        let mut attack_events: HashMap<String, Window> = HashMap::new();
        let mut problems = Vec::new();
        let mut last = Millis::MIN;
        let mut count = 0u64;
        let mut sink = Lines {
            partial: Vec::new(),
            f: |line: &str| {
                let e = native::decode(line).unwrap();
                count += 1;
                assert!(e.time >= last, "out of order at {}", e.id);
                last = e.time;
                assert!(e.time >= cfg.start && e.time < end);
                let who = e.principal.id.as_ref();
                if labels.iter().any(|l| l.first_malicious_event_id == e.id) {
                    first_malicious.insert(e.id.to_string(), (who.to_owned(), e.time));
                }
                first_event.entry(who.to_owned()).or_insert(e.time);
                let ip = e.source.ip.as_deref().unwrap_or("");
                let ua = e.source.user_agent.as_deref().unwrap_or("");
                let credential = e.credential.id.as_deref().unwrap_or("").to_owned();
                if in_attack(who, e.time) {
                    let w = attack_events.entry(who.to_owned()).or_default();
                    w.events += 1;
                    w.denied += u64::from(e.outcome == Outcome::Denied);
                    w.expired += u64::from(e.credential.expires_at.is_some_and(|x| e.time >= x));
                    w.foreign += u64::from(ip.starts_with("185.220.101."));
                    *w.by_minute.entry(e.time / MINUTE).or_default() += 1;
                    w.actions.insert(e.action.to_string());
                    w.kinds.insert(e.principal.kind);
                    if lateral_victims.contains(who) {
                        w.targets.entry(e.time / (10 * MINUTE)).or_default().insert(target(&e));
                    }
                    if ip.starts_with("10.99.") && ua == "curl/8.4.0" {
                        w.shared += 1;
                        w.shared_credentials.insert(credential);
                    } else {
                        w.own_credentials.insert(credential);
                    }
                    let actor = &e.actor;
                    w.desktop_agent += u64::from(
                        actor.agent_id.as_deref().is_some_and(|a| a.starts_with("agent-desktop-"))
                            && actor.delegating_user.as_deref() == Some(who)
                            && actor.session_id.is_some()
                            && actor.session_id == e.credential.id
                            && e.credential.kind == CredentialKind::Session
                            && ua == "agent-runtime/2.3",
                    );
                    w.password_sign_ins += u64::from(
                        e.action == "signin:ConsoleLogin"
                            && e.credential.kind == CredentialKind::Password
                            && e.credential.id.is_none()
                            && ua.starts_with("Mozilla/5.0"),
                    );
                    w.console_session += u64::from(e.credential.kind == CredentialKind::Session);
                    w.unattributed += u64::from(
                        actor.agent_id.as_deref() == Some(who)
                            && actor.delegating_user.is_none()
                            && actor.session_id.is_none(),
                    );
                    if let Some(s) = by_principal.get(who) {
                        let net = ip.rsplit_once('.').map_or("", |(n, _)| n);
                        w.known += u64::from(
                            s.actions.contains(e.action.as_ref()) && s.networks.contains(net) && s.agents.contains(ua),
                        );
                    }
                    return;
                }
                let s = by_principal.entry(who.to_owned()).or_insert_with(|| Seen {
                    first: e.time,
                    machine: e.principal.kind.is_machine(),
                    ..Seen::default()
                });
                s.events += 1;
                s.last = e.time;
                if lateral_victims.contains(who) {
                    s.targets.insert(target(&e));
                }
                if s.machine
                    && (e.action.ends_with("ConsoleLogin")
                        || matches!(e.credential.kind, CredentialKind::Password | CredentialKind::Session))
                {
                    problems.push(format!("{who}: benign console sign-in or session at {}", e.id));
                }
                if e.principal.kind == PrincipalType::AiAgent
                    && (e.actor.delegating_user.is_none() || e.actor.session_id.is_none() || e.actor.agent_id.is_none())
                {
                    problems.push(format!("{who}: benign agent call without attribution at {}", e.id));
                }
                if let Some(exp) = e.credential.expires_at
                    && e.time >= exp
                {
                    problems.push(format!("{who}: benign use after expiry at {}", e.id));
                }
                if let Some(issued) = e.credential.issued_at {
                    assert!(issued <= e.time);
                    if e.credential.kind == CredentialKind::StaticKey {
                        assert!(cfg.start - issued < 60 * DAY);
                    }
                }
                let net = ip.rsplit_once('.').map(|(n, _)| n.to_owned()).unwrap_or_default();
                let ua = ua.to_owned();
                // Machines show everything in their first 6 h; humans within their first day.
                let learning = if s.machine { 6 * HOUR } else { 24 * HOUR };
                if e.time < s.first + learning {
                    s.actions.insert(e.action.to_string());
                    s.networks.insert(net);
                    s.agents.insert(ua);
                } else if !s.actions.contains(e.action.as_ref())
                    || !s.networks.contains(&net)
                    || !s.agents.contains(&ua)
                {
                    problems.push(format!("{who}: new action/network/agent after learning: {line}"));
                }
                if s.machine && PRIVILEGE.iter().any(|p| e.action.ends_with(p)) {
                    problems.push(format!("{who}: benign privilege action {}", e.action));
                }
                if e.outcome != Outcome::Success {
                    s.bad += 1;
                    *s.bad_by_minute.entry(e.time / MINUTE).or_default() += 1;
                }
            },
        };
        let again = run(&cfg, &mut sink).unwrap();
        drop(sink);
        assert_eq!(again.events, count);
        assert_eq!(again.labels, summary.labels);
        for (who, s) in &by_principal {
            if s.machine {
                assert!(s.bad * 100 <= s.events.max(100), "{who}: {} of {} failed", s.bad, s.events);
                assert!(s.bad_by_minute.values().all(|&n| n <= 3), "{who}: failures bunch up");
            }
        }
        assert!(problems.is_empty(), "{} problems, first: {:#?}", problems.len(), &problems[..problems.len().min(5)]);
        for l in labels {
            assert_eq!(first_malicious[&l.first_malicious_event_id], (l.principal_id.clone(), l.first_malicious_time));
            assert_eq!(l.expected_kinds.is_empty(), l.quiet_from.is_some(), "{l:?}");
            // Each scenario carries the signal its expected detector looks for.
            let w = &attack_events[&l.principal_id];
            let peak = w.by_minute.values().copied().max().unwrap_or(0);
            let seen = by_principal.get(&l.principal_id);
            let learned = seen.map(|s| &s.actions);
            let ok = match l.scenario.as_str() {
                "leaked_key_new_network" => w.foreign >= 20 && w.actions.contains("iam:CreateAccessKey"),
                "exfiltration_spike" | "slow_ramp_then_spike" => peak >= 150,
                "expired_token_replay" => w.expired >= 5,
                "denied_probe_burst" => w.denied >= 36,
                "agent_scope_drift" => w.actions.difference(learned.unwrap()).count() >= 5,
                "lateral_movement" => {
                    let learned = &seen.unwrap().targets;
                    let new = w.targets.values().map(|t| t.difference(learned).count()).max().unwrap_or(0);
                    (20..=30 * 5 + 10).contains(&peak) && new >= 40
                }
                // Its benign traffic ended more than 8 days before, on its first day, and
                // never resumes; it comes back as it was.
                "dormant_key_reactivated" => {
                    let s = seen.unwrap();
                    s.last < cfg.start + 28 * HOUR
                        && l.first_malicious_time - s.last > 8 * DAY + HOUR
                        && (5..=20).contains(&w.events)
                        && w.known == w.events
                }
                "token_shared_across_workloads" => {
                    (10..=30).contains(&w.shared)
                        && w.shared_credentials.len() == 1
                        && w.shared_credentials.is_subset(&w.own_credentials)
                }
                "agent_rides_human_session" => l.principal_type == PrincipalType::Human && w.desktop_agent >= 30,
                "machine_console_login" => {
                    w.password_sign_ins == 1
                        && w.console_session >= 5
                        && w.kinds == HashSet::from([PrincipalType::ServiceAccount])
                }
                "shadow_key" => first_event[&l.principal_id] >= l.start && l.principal_type == PrincipalType::ApiKey,
                "unattributed_agent" => w.unattributed >= 10,
                // Benign: 30× its rate on every night from the first, learned after two.
                "new_nightly_batch" => {
                    let mut nights: HashMap<Millis, u32> = HashMap::new();
                    for (&minute, &n) in &w.by_minute {
                        let night = nights.entry(minute * MINUTE / DAY).or_default();
                        *night = (*night).max(n);
                    }
                    let base = seen.map_or(0.0, |s| s.events as f64 / ((s.last - s.first) / MINUTE) as f64);
                    let batch_nights = nights.values().filter(|&&n| f64::from(n) >= 15.0 * base).count();
                    let quiet = l.quiet_from.unwrap();
                    l.expected_kinds.is_empty()
                        && batch_nights as i64 == (l.end - l.start) / DAY + 1
                        && batch_nights >= 3
                        && (l.start + 2 * DAY - 2 * HOUR..=l.start + 2 * DAY).contains(&quiet)
                }
                other => panic!("unknown scenario {other}"),
            };
            assert!(ok, "{l:?}: {} events, peak {peak}/min", w.events);
        }

        // The inventory lists every principal but the shadow keys, and nhid reads it.
        let inventory = nhid_engine::inventory::Inventory::parse(&inventory_toml(&summary.inventory).unwrap()).unwrap();
        let shadow = victims_of("shadow_key");
        assert_eq!(first_event.len(), cfg.principals, "every principal acts");
        assert_eq!(inventory.len(), cfg.principals - shadow.len());
        for who in first_event.keys() {
            let entry = inventory.entry(inventory.resolve(who));
            assert_eq!(entry.is_none(), shadow.contains(who.as_str()), "{who}");
            if let Some(entry) = entry {
                let human = who.starts_with("user-");
                assert_eq!(entry.kind == Some(PrincipalType::Human), human, "{who}");
                assert_eq!(entry.owner.is_some(), !human, "{who}");
            }
        }
    }

    #[test]
    fn simulate_default_population_has_every_type_and_realistic_volume() {
        let cfg = SimConfig { seed: 7, ..SimConfig::default() };
        let started = std::time::Instant::now();
        let (_, bytes, summary) = digest(&cfg);
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{} events, {bytes} bytes in {secs:.1} s ({:.0} events/s)",
            summary.events,
            summary.events as f64 / secs
        );
        assert!((500_000..3_000_000).contains(&summary.events), "{}", summary.events);
        for kind in [
            PrincipalType::ServiceAccount,
            PrincipalType::ApiKey,
            PrincipalType::Workload,
            PrincipalType::OauthClient,
            PrincipalType::AiAgent,
            PrincipalType::Human,
        ] {
            assert!(summary.principals_by_type.get(&kind).copied().unwrap_or(0) > 0, "{kind}");
        }
        assert_eq!(summary.principals_by_type.values().sum::<usize>(), 100);
        // Three days hold every scenario but the new nightly batch and the dormant key.
        let scenarios: BTreeSet<&str> = summary.labels.iter().map(|l| l.scenario.as_str()).collect();
        assert_eq!(scenarios.len(), SCENARIOS - 2, "{scenarios:?}");
        let json = serde_json::to_string(&summary.labels).unwrap();
        let back: Vec<Label> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, summary.labels);
    }
}
