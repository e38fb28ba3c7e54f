//! Per-identity state: what each principal normally does, learned from its own events.
//!
//! A sharded concurrent map (dashmap) keyed by principal id; every update takes the
//! event's own time. Memory is bounded: sets are capped, idle identities are evicted, and
//! the number of tracked identities has a ceiling (the least recently seen go first).

pub mod baseline;
pub mod bindings;
pub mod breadth;
pub mod lifecycle;
pub mod seasonal;
pub mod sets;
pub mod snapshot;
pub mod sources;
pub mod tail;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use foldhash::fast::RandomState;
use half::f16;
use serde::{Deserialize, Serialize};

use crate::context::actions;
use crate::context::client::{self, Client};
use crate::context::network::{Category, Described, Ranges};
use crate::respond::incident::Incident;
use crate::respond::verdict::{self, AppliedVerdict, RecentAlert};
use baseline::{Expectation, RateBaseline};
use breadth::{Breadth, Reach};
use nhid_decode::control::VerdictKind;
use nhid_model::event::{AuditEvent, CredentialKind, Outcome, PrincipalType};
use nhid_model::time::{HOUR, MINUTE, Millis};
use nhid_model::vocab::Severity;
use sets::{Dim, EPISODE_GAP_MINUTES, Fingerprints, NetworkPrefix, Step, fingerprint, place_and_network};
use sources::Sources;

/// Caps on the per-identity sets. Past a cap the set is marked overflowed.
const MAX_ACTIONS: usize = 64;
const MAX_SERVICES: usize = 16;
const MAX_NETWORKS: usize = 16;
const MAX_PLACES: usize = 8;
const MAX_CLIENTS: usize = 8;
const MAX_CLIENT_FAMILIES: usize = 8;
const MAX_CREDENTIALS: usize = 4;
/// The chance of a new network (/24 or /48) at and above which finding one inside a kind of
/// place the identity already uses is its own churn, not another provenance: the bar at
/// which `new_source` and `shared_credential` call a value new (their `max_probability`).
const USUAL_CHURN: f32 = 0.01;

/// The time constant of a credential's recent call count: the share a rate is judged by
/// is that of the last minute or so, the smallest window `rate_spike` tests.
const RECENT: Millis = MINUTE;

fn decay(idle: Millis) -> f32 {
    (-(idle as f32) / RECENT as f32).exp()
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Ceiling on tracked identities; past it the least recently seen are evicted.
    #[serde(default = "default_max_identities")]
    pub max_identities: usize,
    /// Ceiling on the state's estimated memory, in MiB: each identity's fixed part
    /// ([`IDENTITY_BYTES`]) and the strings events chose the length of (its id, its
    /// credentials' ids, its owner). Past it the least recently seen are evicted, as past
    /// `max_identities`: a flood of principals with kilobyte ids is bounded in bytes.
    #[serde(default = "default_max_memory_mib")]
    pub max_memory_mib: usize,
    /// An identity not seen for this long (event time) is forgotten.
    #[serde(default = "default_idle_ttl_secs")]
    pub idle_ttl_secs: u64,
    /// How long each identity is learned before baseline-relative detectors may fire,
    /// per principal type; `default` covers types not named.
    #[serde(default)]
    pub learning_secs: LearningSecs,
}

fn default_max_identities() -> usize {
    1_000_000
}

fn default_max_memory_mib() -> usize {
    // A million identities with their usual ids take about 1.6 GiB by the estimate.
    4_096
}

/// What an identity takes besides the strings events chose the length of: the boxed
/// identity (`size_of::<Identity>()`, at most 728 bytes), its table slot, its capped
/// sets' heap and alerting state, rounded up. An estimate: the bound is on the order of
/// magnitude, which a flood of long ids would otherwise move a hundredfold.
pub const IDENTITY_BYTES: usize = 1_536;

fn default_idle_ttl_secs() -> u64 {
    // Five weeks: a monthly job keeps its baseline, and a key that wakes after
    // `dormant_reactivation`'s eight days is still judged by all it learned (its networks,
    // scope and rate), not relearned as new. Past this, a tombstone keeps its last-seen time.
    35 * 86_400
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            max_identities: default_max_identities(),
            max_memory_mib: default_max_memory_mib(),
            idle_ttl_secs: default_idle_ttl_secs(),
            learning_secs: LearningSecs::default(),
        }
    }
}

// No `deny_unknown_fields`: serde does not support it beside `flatten` (it rejected every
// per-type key); every key but `default` goes to `per_type`, whose key type rejects names
// that are not principal types.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct LearningSecs {
    /// One day: covers the daily cycle and a nightly batch once.
    #[serde(default = "default_learning_secs")]
    pub default: u64,
    #[serde(default, flatten)]
    pub per_type: std::collections::BTreeMap<PrincipalType, u64>,
}

fn default_learning_secs() -> u64 {
    86_400
}

impl Default for LearningSecs {
    fn default() -> Self {
        LearningSecs { default: default_learning_secs(), per_type: Default::default() }
    }
}

impl LearningSecs {
    pub fn for_type(&self, kind: PrincipalType) -> Millis {
        (*self.per_type.get(&kind).unwrap_or(&self.default) as Millis) * 1_000
    }
}

/// Cold-start prior: events per minute a new identity of each type is assumed to make
/// until its own minutes replace the guess.
fn prior_rate(kind: PrincipalType) -> f32 {
    match kind {
        PrincipalType::Human => 1.0,
        PrincipalType::AiAgent | PrincipalType::McpServer => 5.0,
        PrincipalType::Unknown => 1.0,
        _ => 2.0,
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialState {
    /// The credential's id (key id, token id or hash: an identifier, never the secret):
    /// alerts and `/principals` name it. Compared as a string: at most a few per identity.
    pub id: Box<str>,
    pub kind: CredentialKind,
    /// A short-lived token whose first call woke the identity from a quiet spell of
    /// [`EPISODE_GAP_MINUTES`] or more: a job starting. In what would be padding after
    /// `kind`, as is `job`.
    woke: bool,
    /// A job's session (see [`Observation::job`]): it woke the identity, or it came while
    /// a job that did had started within the hour (overlapping jobs, a matrix build), and
    /// its first call came from the kind of place the identity's jobs run in.
    job: bool,
    /// First presented by another principal ([`bindings::CredentialBindings`]): never this
    /// identity's to lose. Set by the engine, which holds the bindings.
    pub foreign: bool,
    /// The place ([`crate::context::network::Place::key`]) a short-lived token was first
    /// used from, 0 if none (in what would be padding after `kind`): see
    /// [`Observation::moved`].
    place: u32,
    /// Calls made with the credential lately: a count decaying with time constant
    /// [`RECENT`].
    recent: f32,
    /// In seconds (u32 holds them until 2106; an age needs no milliseconds): 4 bytes
    /// where `Millis` takes 8, which `recent` takes. Read through
    /// [`CredentialState::first_seen`].
    first_seen: u32,
    pub last_seen: Millis,
    /// `Millis::MIN` when unknown: 8 bytes where `Option<Millis>` takes 16, on a struct every
    /// identity holds one or two of. Read through [`CredentialState::issued_at`].
    issued_at: Millis,
    expires_at: Millis,
}

impl CredentialState {
    /// Its recent call count as of `t` (calls out of order count as of its latest).
    fn recent_at(&self, t: Millis) -> f32 {
        self.recent * decay((t - self.last_seen).max(0))
    }

    pub fn issued_at(&self) -> Option<Millis> {
        Some(self.issued_at).filter(|&t| t != Millis::MIN)
    }

    pub fn expires_at(&self) -> Option<Millis> {
        Some(self.expires_at).filter(|&t| t != Millis::MIN)
    }

    pub fn first_seen(&self) -> Millis {
        Millis::from(self.first_seen) * 1_000
    }

    /// Age at `t`: from issue when the events say, else from first use.
    pub fn age_at(&self, t: Millis) -> Millis {
        t - self.issued_at().unwrap_or(self.first_seen()).min(self.first_seen())
    }
}

/// [`Identity::home`]'s top bit: changed since its last snapshot.
const DIRTY: u32 = 1 << 31;

fn no_inventory() -> u32 {
    u32::MAX
}

/// Everything nhid keeps about one principal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity {
    /// Its established type: the inventory's, else the first an event showed (`unknown`
    /// gives way to the first other). Events the platform types otherwise are judged in
    /// their own lane (see [`Identity::lane`]); a type read from fields the caller chooses
    /// never moves it. Kept in its tombstone when it is evicted.
    pub kind: PrincipalType,
    /// Types other than `kind` its events showed, one bit per type (`unknown`, the ninth,
    /// is never shown): each is reported the first time only ([`Observation::first_as`]).
    shown: u8,
    /// Index of the matching inventory entry, resolved once (globs are not matched per
    /// event); `u32::MAX` when none (4 bytes where `Option<u32>` takes 8). Read through
    /// [`Identity::inventory`]. Not in a snapshot: the inventory may have changed by the
    /// restore, which resolves it again.
    #[serde(skip, default = "no_inventory")]
    inventory: u32,
    pub first_seen: Millis,
    pub last_seen: Millis,
    pub rate: RateBaseline,
    /// Bytes out in the open UTC hour (the hour of `rate.minute`, the latest minute seen),
    /// for absolute ceilings; its calls are [`Identity::hour_count`].
    pub hour_bytes_out: u64,
    /// Actions, services, networks (/24 or /48) and user agents seen, each capped.
    pub seen: Fingerprints,
    /// Allocated exactly (a boxed slice: no capacity word, no growth slack).
    pub credentials: Box<[CredentialState]>,
    /// Distinct targets per window against the usual: lateral movement.
    pub breadth: Breadth,
    /// Where each credential was used from lately: copied credentials.
    pub sources: Sources,
    /// What alerting keeps about it, allocated at its first finding: most identities never
    /// have one, and a thin pointer takes 8 bytes where the marks and the last action took
    /// 24. Read through [`Identity::alert_marks`] and [`Identity::last_action`].
    alerting: Option<Box<Alerting>>,
    /// Owner as last reported by events (the inventory wins when it names one).
    pub owner: Option<Box<str>>,
    /// The input partition its events last came from ([`crate::Origin::home`], 31 bits):
    /// its state is released when that partition is revoked. The top bit says it changed
    /// since its last snapshot ([`StateStore::track_changes`]): a flag of its own would
    /// cost 8 bytes. Not in a snapshot: the partition restoring it says. Read through
    /// [`Identity::home`].
    #[serde(skip)]
    home: u32,
    /// Calls made with any credential lately, decaying like each credential's own count
    /// (see [`CredentialState::recent`]): kept here rather than summed over the
    /// credentials, as a workload spread over more of them than are kept still counts. A
    /// half float, in 2 bytes of what would be padding after `kind`: it stops growing near
    /// 2,048, so above about 2,000 calls a minute shares read high (a gate on them errs
    /// towards firing).
    recent: f16,
}

/// An identity's alerting state, from its first finding on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Alerting {
    /// Per detector instance: the aggregation window of its last alert and the repeats
    /// suppressed since. Indexed like the engine's detector list.
    marks: Box<[AlertMark]>,
    /// Event time of the last automatic action against this identity (per-identity
    /// cooldown); `Millis::MIN` when none (8 bytes where `Option<Millis>` takes 16).
    last_action: Millis,
    /// The incident its alerts are gathered in while it is open.
    incident: Option<Box<Incident>>,
    /// Its latest alerts, for verdicts to name ([`verdict::RECENT_ALERTS`]).
    recent: Vec<RecentAlert>,
    /// Verdicts given on its alerts, the latest [`verdict::KEPT_VERDICTS`].
    verdicts: Vec<AppliedVerdict>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertMark {
    /// Aggregation window of the last alert.
    pub window: Option<i64>,
    /// Findings suppressed since that alert.
    pub suppressed: u32,
    /// The finding unit (minute, hour) last seen: more findings in it are the same finding.
    pub unit: Option<i64>,
    /// Event time and severity of the last alert: `/principals` shows it while it is open.
    pub last: Option<(Millis, Severity)>,
    /// Keys of the findings alerted in the window (see `detect::Finding::key`), in order.
    keys: Box<[u32]>,
    /// The unit the latest keys were alerted in, how many units of the window alerted new
    /// keys, and how many keys the latest unit did.
    key_unit: i64,
    key_units: u8,
    unit_keys: u8,
}

/// Units (minutes) of one window that may alert new evidence, and keys per unit: a flood of
/// forged variety buys an attacker a few alerts, not thousands. Bounded per unit rather than
/// by a first-come count, so the same findings in another order within a minute give the
/// same alerts (unless one minute holds more than [`KEYS_PER_UNIT`] new ones).
pub const KEY_UNITS: u8 = 4;
pub const KEYS_PER_UNIT: u8 = 16;

impl AlertMark {
    /// Whether a finding with this key was alerted in the window.
    pub fn raised(&self, key: u32) -> bool {
        self.keys.contains(&key)
    }

    /// The key of the window's latest alert (0 when none).
    pub fn last_key(&self) -> u32 {
        self.keys.last().copied().unwrap_or(0)
    }

    /// Records a further finding of the window, found in `unit`; false when the window has
    /// alerted all it may.
    pub fn raise(&mut self, key: u32, unit: i64) -> bool {
        if unit == self.key_unit {
            if self.unit_keys >= KEYS_PER_UNIT {
                return false;
            }
            self.unit_keys += 1;
        } else {
            if self.key_units >= KEY_UNITS {
                return false;
            }
            (self.key_unit, self.key_units, self.unit_keys) = (unit, self.key_units + 1, 1);
        }
        let mut keys = std::mem::take(&mut self.keys).into_vec();
        keys.reserve_exact(1);
        keys.push(key);
        self.keys = keys.into_boxed_slice();
        true
    }

    /// Opens a window with its first finding, found in `unit`.
    pub fn start(&mut self, key: u32, unit: i64) {
        self.keys = Box::new([key]);
        (self.key_unit, self.key_units, self.unit_keys) = (unit, 1, 1);
    }
}

/// Facts about one event against its identity's history, computed during the update and
/// read by every detector: the state decides what is known, detectors decide what is odd.
#[derive(Clone, Debug)]
pub struct Observation<'e> {
    pub kind: PrincipalType,
    /// Past its learning period: baseline-relative detectors may fire.
    pub learned: bool,
    /// Closed minutes the rate baseline has learned from.
    pub baseline_minutes: u32,
    /// Events and denied/failed events so far in this minute, this one included.
    pub minute_count: u32,
    pub minute_denied: u32,
    /// Calls and denied/failed calls over the last 1, 5, 15 and 60 minutes
    /// ([`baseline::WINDOWS`]), this one included.
    pub calls_in: [u32; baseline::WINDOWS.len()],
    pub denied_in: [u32; baseline::WINDOWS.len()],
    /// The baseline for this minute, as it stood before it.
    pub expected: Expectation,
    /// The count model (mean, variance) of each of those windows, and its busiest bucket
    /// lately (see [`baseline::RateBaseline::bursts`]).
    pub window_models: [(f32, f32); baseline::WINDOWS.len()],
    pub window_peaks: [f32; baseline::WINDOWS.len()],
    /// Denied calls per minute the identity usually has: mean and variance.
    pub denials_expected: (f32, f32),
    pub hour_count: u32,
    pub hour_bytes_out: u64,
    /// Values the identity never showed, each judged at the finest level whose set is
    /// still a baseline (see [`Novel`]); `None` while learning.
    pub new_action: Option<Novel>,
    /// The identity had made this action, or another of its family ([`actions::siblings`]:
    /// managing roles, managing users and groups, managing policies), before (whether or
    /// not it was still learning).
    pub known_family: bool,
    /// The identity had read what this action's family manages ([`actions::reads`]: a
    /// role, the policies of one) before: a deploy job refreshing its resources.
    pub reads_family: bool,
    pub new_service: Option<Novel>,
    pub new_network: Option<Novel>,
    pub new_client: Option<Novel>,
    /// Where the event came from and what made it, as context classifies them.
    pub network: Option<NetworkPrefix<'e>>,
    pub place: Option<Described<'e>>,
    pub client: Option<Client<'e>>,
    /// Age of the credential (from issue, else from first sighting) and how long ago it expired.
    pub credential_age: Option<Millis>,
    pub expired_for: Option<Millis>,
    /// From the control topics (filled in by the engine, which holds those facts): when the
    /// credential was revoked and when the principal was retired, if at or before this event.
    pub revoked_at: Option<Millis>,
    pub retired_at: Option<Millis>,
    /// The principal's owner (inventory, else events) and when it was offboarded, if at or before this event.
    pub offboarded_owner: Option<(Box<str>, Millis)>,
    /// Event time since the identity's previous event (0 on its first): how long it slept.
    /// An identity evicted while idle leaves a tombstone, so its sleep is still known.
    pub idle_for: Millis,
    /// Distinct targets in the open window against the usual.
    pub reach: Reach,
    /// Distinct (network, user agent) pairs that used this event's credential within
    /// [`sources::CONCURRENT`], and the most the identity usually has (see [`Sources`]).
    pub concurrent_sources: u8,
    pub source_peak: u8,
    /// A short-lived token used from another place (provider or category, see
    /// [`crate::context::network`]) than the one it was first used from: a job's, a
    /// function's or an instance's session carried off its workload. A service calling on
    /// the identity's behalf (`cloudformation.amazonaws.com`) is no place.
    pub moved: bool,
    /// Moved, from the place of a CI service's hosted runners (`ci`: GitHub Actions): a VM
    /// made for one job, the session's only holder. Judged from the first call, learning
    /// or not, as an EC2 instance's session outside AWS is.
    pub off_runner: bool,
    /// The share of the identity's recent calls (see [`RECENT`]) made with this event's
    /// credential, this call included; 1 without a credential id. A workload that scales
    /// out spreads its calls over many credentials (an execution environment, a task, an
    /// instance each holds its own); a stolen credential carries the thief's calls alone.
    pub credential_share: f32,
    /// This event's credential's own recent calls (about its calls of the last minute,
    /// this one included); `None` without a credential id.
    pub credential_recent: Option<f32>,
    /// The identity's first use of this event's credential.
    pub new_credential: bool,
    /// This event's credential was first presented by another principal
    /// ([`bindings::CredentialBindings`]): set by the engine at its first use.
    pub foreign_credential: bool,
    /// The event's credential is a job's session: a short-lived token whose first call
    /// woke the identity from a quiet spell of [`EPISODE_GAP_MINUTES`] (a CI job's role
    /// session, a scheduled task's, a function's first cold start after idle), or one that
    /// came within the hour after such a session (jobs overlapping, a matrix build), its
    /// first call from a kind of place (a provider, a private network) and with a client
    /// family the identity used before. Each job's session makes that job's calls, and jobs
    /// vary in size by nature (a site deploy of 20 files, then of 400). Not transitive: a
    /// workload that woke and then rotates its session every hour has jobs' sessions for
    /// its first hour only. A place is a provider: a job's session copied and used, after
    /// its job stopped using it, from another address of the same provider with the same
    /// client family (a function's key from the thief's own EC2 instance) is still a job's.
    pub job: bool,
    /// The identity's established type ([`Identity::kind`]); interactive sign-ins are
    /// judged against it, as an IAM user's console sign-in is typed human by its event.
    pub prior_kind: PrincipalType,
    /// A type other than the established one that this event showed the identity as for
    /// the first time: an IAM user's first console sign-in (stated by the platform), or a
    /// role session's first browser user agent (inferred, see `AuditEvent::principal`).
    pub first_as: Option<PrincipalType>,
    /// Whether the inventory lists the principal; `None` when no inventory is loaded.
    pub registered: Option<bool>,
}

impl Observation<'_> {
    /// Nothing about where the call came from or what made it is new: a network (or a new
    /// /24 inside a kind of place it uses, where it often finds new ones) and a client the
    /// identity used before, its credential in the place it was first used
    /// and held from no more places at once than usual. A copy of the credential used
    /// elsewhere fails this; its own workload, or a thief on that workload's host, does not.
    pub fn usual_provenance(&self) -> bool {
        // A new /24 inside a kind of place the identity uses, where it finds new ones often
        // (a CI role whose every job runs on a fresh runner address), is its churn.
        let churn = |n: &Novel| n.level == Dim::Network && n.probability >= USUAL_CHURN;
        self.new_network.is_none_or(|n| churn(&n))
            && self.new_client.is_none()
            && !self.moved
            && self.concurrent_sources <= self.source_peak.max(1)
    }

    /// A job's session ([`Observation::job`]) with [usual provenance](Self::usual_provenance):
    /// how many calls it makes, or how many objects it reaches, is that job's size, not a
    /// theft. A job's session carried elsewhere fails this; what a job does that its jobs
    /// never did is for the novelty and content detectors.
    pub fn usual_job(&self) -> bool {
        self.job && self.usual_provenance()
    }

    /// [`Observation::credential_share`] less one standard error of a share of the
    /// identity's recent calls: what a credential can be said to carry. A burst spread
    /// over two environments' sessions reads anywhere near a half from minute to minute
    /// (9 of 15 calls, 0.6, is 0.47 here), a thief's share is high at any count (45 of 50,
    /// 0.9, is 0.86).
    pub fn credential_share_bound(&self) -> f32 {
        let share = self.credential_share;
        let Some(mine) = self.credential_recent else { return share };
        let all = (mine / share.max(f32::MIN_POSITIVE)).max(1.0);
        (share - (share * (1.0 - share) / all).sqrt()).max(0.0)
    }
}

/// A value an identity never showed, and how surprising that is from its own history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Novel {
    /// The level it was judged at: the finest whose set is not full (a fleet that spread
    /// over more networks than the set holds is judged by the places it uses).
    pub level: Dim,
    /// The chance that an event of this identity shows a value never seen at that level
    /// (Good–Turing, see [`Fingerprints::observe`]): the identity's own discovery rate.
    pub probability: f32,
    /// The baseline it was judged against: values known and observations at that level.
    pub known: u16,
    pub observed: u32,
}

/// How an event used its credential ([`Identity::observe_credential`]); the fields are
/// [`Observation`]'s of the same names (`credential_age`, `credential_share`, ...).
#[derive(Default)]
struct CredentialUse {
    /// The identity's first use of it (as far as its capped list remembers).
    first: bool,
    foreign: bool,
    age: Option<Millis>,
    expired_for: Option<Millis>,
    /// The place the token was first used from, when this call came from another.
    moved_from: Option<u32>,
    share: f32,
    recent: Option<f32>,
    job: bool,
}

/// What one event showed of the identity's sets, with the fingerprints computed for them,
/// which breadth's target and the sources' place reuse rather than hash again.
struct Novelty<'e> {
    known_family: bool,
    reads_family: bool,
    /// From a kind of place and with a client family the identity used before: an address
    /// or a version may be new (a runner's fresh address, an upgraded SDK).
    familiar: bool,
    new_action: Option<Novel>,
    new_service: Option<Novel>,
    new_network: Option<Novel>,
    new_client: Option<Novel>,
    network: Option<NetworkPrefix<'e>>,
    place: Option<Described<'e>>,
    client: Option<Client<'e>>,
    action_fp: u32,
    service_fp: u32,
    network_fp: Option<u32>,
    /// The place's key, `None` for a service calling on the identity's behalf.
    place_fp: Option<u32>,
}

impl Identity {
    pub fn new(kind: PrincipalType, inventory: Option<u32>, time: Millis) -> Self {
        Identity {
            kind,
            shown: 0,
            inventory: inventory.unwrap_or(u32::MAX),
            first_seen: time,
            last_seen: time,
            rate: RateBaseline::new(time, prior_rate(kind)),
            hour_bytes_out: 0,
            seen: Fingerprints::default(),
            credentials: Box::default(),
            recent: f16::ZERO,
            breadth: Breadth::new(time),
            sources: Sources::default(),
            alerting: None,
            owner: None,
            home: 0,
        }
    }

    /// Calls in the open UTC hour, for absolute ceilings: the rate's hour bucket, which
    /// counts every event and is reset when an event opens a later hour, as a count of its
    /// own would be (4 bytes per identity).
    pub fn hour_count(&self) -> u32 {
        self.rate.calls_in.open_hour()
    }

    /// The lane an event the decoder typed `seen` is judged in, and `seen` if the identity
    /// shows as that type, not its own, for the first time.
    ///
    /// What the platform states decides per event: an IAM user's console sign-in is a
    /// person's, its access key's calls are the machine's, each judged in its lane. What the
    /// caller chooses (`inferred`) decides only a new identity's type: a stolen role session
    /// used with a browser's user agent stays in the role's lane.
    pub fn lane(&mut self, seen: PrincipalType, inferred: bool) -> (PrincipalType, Option<PrincipalType>) {
        if self.kind == PrincipalType::Unknown {
            self.kind = seen;
        }
        if seen == PrincipalType::Unknown || seen == self.kind {
            return (self.kind, None);
        }
        let bit = 1 << seen.index();
        let first = (self.shown & bit == 0).then_some(seen);
        self.shown |= bit;
        (if inferred { self.kind } else { seen }, first)
    }

    /// Bytes of the strings it holds whose length events chose (beyond [`IDENTITY_BYTES`]).
    fn variable_bytes(&self) -> usize {
        let credentials: usize = self.credentials.iter().map(|c| c.id.len() + size_of::<CredentialState>()).sum();
        let verdicts: usize = self
            .verdicts()
            .iter()
            .map(|v| {
                let accepts: usize = v.accepts.iter().map(|d| d.len() + size_of::<String>()).sum();
                size_of::<AppliedVerdict>()
                    + v.target.len()
                    + v.by.len()
                    + v.note.as_ref().map_or(0, String::len)
                    + accepts
            })
            .sum();
        credentials
            + self.owner.as_ref().map_or(0, |o| o.len())
            + self.incident().map_or(0, Incident::heap_bytes)
            + size_of_val(self.recent_alerts())
            + verdicts
    }

    /// Marks its credential `id` as first presented by another principal.
    pub fn mark_foreign(&mut self, id: &str) {
        if let Some(c) = self.credentials.iter_mut().find(|c| *c.id == *id) {
            c.foreign = true;
        }
    }

    /// Whether its credential `id` was first presented by another principal.
    pub fn is_foreign(&self, id: &str) -> bool {
        self.credentials.iter().any(|c| c.foreign && *c.id == *id)
    }

    /// The input partition its events last came from ([`crate::Origin::home`]).
    pub fn home(&self) -> u32 {
        self.home & !DIRTY
    }

    /// Sets its home; a new home clears its dirty mark, so that its next change is noted
    /// under the new one.
    pub fn set_home(&mut self, home: u32) {
        if home & !DIRTY != self.home() {
            self.home = home & !DIRTY;
        }
    }

    /// Restored from a snapshot: its home is the partition that restored it, and its
    /// inventory entry is resolved again. Alert marks indexed by another detector list
    /// than the engine's are dropped.
    pub fn restored(&mut self, home: u32, inventory: Option<u32>, same_detectors: bool) {
        self.home = home & !DIRTY;
        self.inventory = inventory.unwrap_or(u32::MAX);
        // Marks indexed by another detector list are meaningless; the cooldown and the
        // open incident are not about detectors.
        if !same_detectors && let Some(a) = &mut self.alerting {
            a.marks = Box::default();
        }
    }

    pub fn inventory(&self) -> Option<u32> {
        Some(self.inventory).filter(|&i| i != u32::MAX)
    }

    pub fn last_action(&self) -> Option<Millis> {
        self.alerting.as_ref().map(|a| a.last_action).filter(|&t| t != Millis::MIN)
    }

    pub fn set_last_action(&mut self, t: Option<Millis>) {
        if t.is_some() || self.alerting.is_some() {
            self.alerting().last_action = t.unwrap_or(Millis::MIN);
        }
    }

    /// Per detector instance: the aggregation window of its last alert and the repeats
    /// suppressed since, indexed like the engine's detector list. Empty until the
    /// identity's first finding.
    pub fn alert_marks(&self) -> &[AlertMark] {
        self.alerting.as_ref().map_or(&[], |a| &a.marks)
    }

    /// The marks of `detectors` detector instances, allocated at the first call.
    pub fn alert_marks_mut(&mut self, detectors: usize) -> &mut [AlertMark] {
        let alerting = self.alerting();
        if alerting.marks.len() < detectors {
            let mut marks = std::mem::take(&mut alerting.marks).into_vec();
            marks.resize(detectors, AlertMark::default());
            alerting.marks = marks.into_boxed_slice();
        }
        &mut alerting.marks
    }

    fn alerting(&mut self) -> &mut Alerting {
        self.alerting.get_or_insert_with(|| {
            Box::new(Alerting {
                marks: Box::default(),
                last_action: Millis::MIN,
                incident: None,
                recent: Vec::new(),
                verdicts: Vec::new(),
            })
        })
    }

    /// Its open incident, if any.
    pub fn incident(&self) -> Option<&Incident> {
        self.alerting.as_ref().and_then(|a| a.incident.as_deref())
    }

    pub fn incident_mut(&mut self) -> Option<&mut Incident> {
        self.alerting.as_mut().and_then(|a| a.incident.as_deref_mut())
    }

    /// Opens `incident` (the caller has closed the one before).
    pub fn set_incident(&mut self, incident: Incident) {
        self.alerting().incident = Some(Box::new(incident));
    }

    /// Its latest alerts, oldest first.
    pub fn recent_alerts(&self) -> &[RecentAlert] {
        self.alerting.as_ref().map_or(&[], |a| &a.recent)
    }

    /// Remembers an alert it raised, forgetting the oldest past [`verdict::RECENT_ALERTS`].
    pub fn remember_alert(&mut self, alert: RecentAlert) {
        let recent = &mut self.alerting().recent;
        if recent.len() >= verdict::RECENT_ALERTS {
            recent.remove(0);
        }
        recent.push(alert);
    }

    /// The verdicts given on its alerts, oldest first.
    pub fn verdicts(&self) -> &[AppliedVerdict] {
        self.alerting.as_ref().map_or(&[], |a| &a.verdicts)
    }

    /// Records a verdict, unless the same one is recorded; keeps the latest
    /// [`verdict::KEPT_VERDICTS`]. Returns whether it is new.
    pub fn add_verdict(&mut self, v: AppliedVerdict) -> bool {
        let verdicts = &mut self.alerting().verdicts;
        if verdicts.iter().any(|known| known.same(&v)) {
            return false;
        }
        if verdicts.len() >= verdict::KEPT_VERDICTS {
            verdicts.remove(0);
        }
        verdicts.push(v);
        true
    }

    /// Whether an analyst's true-positive verdict on it holds at `t`.
    pub fn confirmed(&self, t: Millis) -> bool {
        self.verdicts().iter().any(|v| v.verdict == VerdictKind::TruePositive && (v.time..=v.until).contains(&t))
    }

    /// Whether a verdict accepts a finding of detector instance `detector` at `t`.
    pub fn accepted(&self, detector: &str, t: Millis) -> bool {
        self.verdicts().iter().any(|v| v.accepts(detector, t))
    }

    /// Closes its incident: takes it out.
    pub fn take_incident(&mut self) -> Option<Incident> {
        self.alerting.as_mut().and_then(|a| a.incident.take()).map(|i| *i)
    }

    /// Folds one event into the state and reports what it showed; `ranges` places its
    /// source address.
    pub fn observe<'e>(&mut self, ev: &'e AuditEvent<'_>, learning_ms: Millis, ranges: &'e Ranges) -> Observation<'e> {
        let t = ev.time;
        let learned = t - self.first_seen >= learning_ms;
        let open_minute = self.rate.minute;
        let (expected, calls_in) = self.count(ev, learned);
        if self.rate.minute != open_minute {
            self.seen.close_minute();
        }
        let idle_for = (t - self.last_seen).max(0);
        self.last_seen = self.last_seen.max(t);
        let step = Step {
            new_minute: self.rate.minute != open_minute,
            paused: idle_for >= 2 * MINUTE,
            after_gap: idle_for >= EPISODE_GAP_MINUTES * MINUTE,
        };
        let novelty = self.observe_sets(ev, learned, ranges, step);

        // A target is a resource, or where an event names none, the action (which names its
        // service): distinct targets across services are distinct trust zones too.
        let target = ev.resource.as_deref().map_or(novelty.action_fp, fingerprint) ^ novelty.service_fp.rotate_left(7);
        let reach = self.breadth.record(t, target, !learned, self.first_seen);
        // A holder is a network: one workload runs several tools with its credential (a CI
        // job's credentials action, then the CLI), a copy runs from elsewhere.
        let (concurrent_sources, source_peak) = match (ev.credential.id.as_deref(), novelty.network_fp) {
            (Some(c), Some(net)) => self.sources.record(fingerprint(c), net, t, !learned),
            _ => (0, u8::MAX),
        };

        let credential = self.observe_credential(ev, novelty.place_fp, idle_for, novelty.familiar);
        let moved = credential.moved_from.is_some();
        // A GitHub-hosted runner is a VM made for one job: its session has no other holder.
        let off_runner = credential.moved_from.and_then(|first| ranges.category_of_key(first)) == Some(Category::Ci);
        if moved && !learned && !off_runner {
            // Its workloads move tokens between places: a move is not a copy for it.
            self.sources.learn_roaming();
        }
        if self.owner.is_none()
            && let Some(owner) = ev.principal.owner.as_deref()
        {
            self.owner = Some(owner.into());
        }

        Observation {
            kind: self.kind,
            learned,
            baseline_minutes: self.rate.minutes,
            minute_count: self.rate.count,
            minute_denied: self.rate.denied,
            calls_in,
            denied_in: self.rate.denied_in.counts(self.rate.minute, self.rate.denied),
            window_models: self.rate.window_models(&expected),
            window_peaks: self.rate.bursts,
            expected,
            denials_expected: self.rate.denials_expected(),
            hour_count: self.hour_count(),
            hour_bytes_out: self.hour_bytes_out,
            new_action: novelty.new_action,
            known_family: novelty.known_family,
            reads_family: novelty.reads_family,
            new_service: novelty.new_service,
            new_network: novelty.new_network,
            new_client: novelty.new_client,
            network: novelty.network,
            place: novelty.place,
            client: novelty.client,
            credential_age: credential.age,
            expired_for: credential.expired_for,
            revoked_at: None,
            retired_at: None,
            offboarded_owner: None,
            idle_for,
            reach,
            concurrent_sources,
            source_peak,
            moved,
            off_runner,
            credential_share: credential.share,
            credential_recent: credential.recent,
            new_credential: credential.first,
            foreign_credential: credential.foreign,
            job: credential.job,
            prior_kind: self.kind,
            first_as: None,
            registered: None,
        }
    }

    /// Counts the event in the rate baseline and the hour's totals; returns what the
    /// baseline expected of this minute before the event, and the calls over each window.
    fn count(&mut self, ev: &AuditEvent<'_>, learned: bool) -> (Expectation, [u32; baseline::WINDOWS.len()]) {
        let t = ev.time;
        let mut expected = self.rate.expectation_without_seasonality(t);
        // The open hour is the latest minute's: derived, not stored (8 bytes per identity).
        let open_hour = self.rate.minute.div_euclid(HOUR / MINUTE);
        self.rate.record(t, ev.outcome != Outcome::Success, !learned);
        // The recurring peak is only read where some window's count is above the slow
        // baseline (no window's bar lies below it): a window still holding a batch that
        // ended minutes ago needs it as much as the batch's own minutes.
        let calls = self.rate.calls_in.counts(self.rate.minute, self.rate.count);
        let floor = expected.slow_mean.min(expected.mean);
        if calls.iter().zip(baseline::WINDOWS).any(|(&c, w)| c as f32 > floor * w as f32) {
            expected.recurring = self.rate.peaks.recurring(t, self.first_seen);
        }
        if t.div_euclid(HOUR) > open_hour {
            self.hour_bytes_out = 0;
        }
        self.hour_bytes_out = self.hour_bytes_out.saturating_add(ev.bytes_out.unwrap_or(0));
        (expected, calls)
    }

    /// Adds the event's action, service, network, place and client to the identity's sets
    /// and judges what was new, each pair at the finer level while its set holds a baseline
    /// and at the coarser one once it is full.
    fn observe_sets<'e>(
        &mut self,
        ev: &'e AuditEvent<'_>,
        learned: bool,
        ranges: &'e Ranges,
        step: Step,
    ) -> Novelty<'e> {
        let seen = &mut self.seen;
        // Novelty counts only once learned, and only where the set was not already full.
        // `None` for a value the set holds; else the judgement, itself `None` when it does
        // not count.
        let mut observe = |d: Dim, fp: u32, cap: usize| {
            let (known, observed, full) = (seen.len(d) as u16, seen.observed(d), seen.overflowed(d));
            let probability = seen.observe(d, fp, cap, step)?;
            Some((learned && !full).then_some(Novel { level: d, probability, known, observed }))
        };
        let (action_fp, service_fp) = (fingerprint(&ev.action), fingerprint(&ev.service));
        let action = observe(Dim::Action, action_fp, MAX_ACTIONS);
        let (new_action, known_action) = (action.flatten(), action.is_none());
        let mut judge = |d: Dim, fp: u32, cap: usize| observe(d, fp, cap).flatten();
        let new_service = judge(Dim::Service, service_fp, MAX_SERVICES);

        let ip = ev.source.ip.as_deref();
        let (place, network) = ip.map(|ip| place_and_network(ip, ranges)).unwrap_or_default();
        // A public address in no published range is placed by its autonomous system: the
        // event's when it names one, else the loaded table's.
        let place = place.map(|p| p.in_system(ev.source.asn));
        let place_fp = place.map(|p| match p.category {
            Category::Service => fingerprint(ip.unwrap_or_default()),
            _ => p.key(ranges),
        });
        let new_place = place_fp.and_then(|fp| judge(Dim::Place, fp, MAX_PLACES));
        let network_fp = network.as_ref().map(|(fp, _)| *fp);
        let new_prefix = network_fp.and_then(|fp| judge(Dim::Network, fp, MAX_NETWORKS));
        // A service calling on the identity's behalf (`ec2.amazonaws.com`) is not someone
        // else's infrastructure.
        let by_service = place.is_some_and(|p| p.category == Category::Service);
        let new_network = new_place.or(new_prefix).filter(|_| !by_service);

        let client = ev.source.user_agent.as_deref().map(client::fingerprinted);
        let (client_fp, family_fp) = client.map(|(_, fingerprints)| fingerprints).unzip();
        let client = client.map(|(c, _)| c);
        let new_family = family_fp.and_then(|fp| judge(Dim::ClientFamily, fp, MAX_CLIENT_FAMILIES));
        let new_version = client_fp.and_then(|fp| judge(Dim::Client, fp, MAX_CLIENTS));
        // Only a new action is looked up (rare once learned), and only an IAM change has a
        // family.
        let known = |a: String| self.seen.contains(Dim::Action, fingerprint(&a));
        let known_family = known_action || actions::siblings(&ev.action).any(known);
        let reads_family = !known_family && actions::reads(&ev.action).any(known);
        Novelty {
            familiar: new_place.is_none() && new_family.is_none(),
            new_action,
            known_family,
            reads_family,
            new_service,
            new_network,
            new_client: new_family.or(new_version),
            network: network.map(|(_, prefix)| prefix),
            place: place.map(|p| ranges.describe(p)),
            client,
            action_fp,
            service_fp,
            network_fp,
            place_fp: place_fp.filter(|_| !by_service),
        }
    }

    /// Records the event's credential, used from `place` (`familiar`: see [`Novelty`]),
    /// and reports its use.
    fn observe_credential(
        &mut self,
        ev: &AuditEvent<'_>,
        place: Option<u32>,
        idle_for: Millis,
        familiar: bool,
    ) -> CredentialUse {
        self.recent = f16::from_f32(self.recent.to_f32() * decay(idle_for));
        let Some(id) = ev.credential.id.as_deref() else {
            return CredentialUse { share: 1.0, ..CredentialUse::default() };
        };
        let t = ev.time;
        let c = &ev.credential;
        let existing = self.credentials.iter().position(|s| *s.id == *id);
        let pos = match existing {
            Some(i) => i,
            None => {
                // A job starts where the identity's jobs run: a token first used from
                // anywhere new neither is a job's session nor makes those beside it ones.
                let token = c.kind == CredentialKind::ShortLivedToken && familiar;
                let woke = token && idle_for >= EPISODE_GAP_MINUTES * MINUTE;
                let job = woke || (token && self.credentials.iter().any(|o| o.woke && t - o.first_seen() <= HOUR));
                // Keep the most recently used credentials; rotation retires the old ones.
                let mut credentials = std::mem::take(&mut self.credentials).into_vec();
                if credentials.len() >= MAX_CREDENTIALS {
                    let oldest = (0..credentials.len()).min_by_key(|&i| credentials[i].last_seen).unwrap_or(0);
                    credentials.swap_remove(oldest);
                }
                // Exact growth: most identities hold one or two credentials, and the
                // default growth would reserve four.
                credentials.reserve_exact(1);
                credentials.push(CredentialState {
                    id: id.into(),
                    kind: c.kind,
                    woke,
                    job,
                    foreign: false,
                    place: 0,
                    recent: 0.0,
                    first_seen: (t / 1_000).clamp(0, i64::from(u32::MAX)) as u32,
                    last_seen: t,
                    issued_at: Millis::MIN,
                    expires_at: Millis::MIN,
                });
                self.credentials = credentials.into_boxed_slice();
                self.credentials.len() - 1
            }
        };
        let s = &mut self.credentials[pos];
        // A token minted for one workload (a job, an execution environment, an instance)
        // stays where that workload runs. The first place is kept: every call from
        // elsewhere is a move.
        let mut moved_from = None;
        if let Some(place) = place.filter(|_| s.kind == CredentialKind::ShortLivedToken) {
            if s.place == 0 {
                s.place = place;
            }
            moved_from = (s.place != place).then_some(s.place);
        }
        let mine = s.recent_at(t) + 1.0;
        s.recent = mine;
        s.last_seen = s.last_seen.max(t);
        s.issued_at = c.issued_at.unwrap_or(s.issued_at);
        s.expires_at = c.expires_at.unwrap_or(s.expires_at);
        let expired_for = s.expires_at().map(|e| t - e).filter(|d| *d > 0);
        let all = self.recent.to_f32() + 1.0;
        self.recent = f16::from_f32(all);
        CredentialUse {
            first: existing.is_none(),
            foreign: s.foreign,
            age: Some(s.age_at(t)),
            expired_for,
            moved_from,
            share: (mine / all).min(1.0),
            recent: Some(mine),
            job: s.job,
        }
    }
}

/// All tracked identities. Shared by the pipeline workers; each principal lives in one
/// shard, and partitions keyed by principal mean workers rarely contend.
pub struct StateStore {
    /// Identities boxed: the table keeps a slot for every bucket, and between a quarter and
    /// over half of them are empty (at 100,000 identities 131,072 buckets), which cost an
    /// identity's full size each when identities were stored in place, and a pointer now.
    map: DashMap<Box<str>, Box<Identity>, RandomState>,
    /// When each identity evicted for idleness was last seen, by a hash of its id: 16 bytes
    /// where the identity took a kilobyte, so that a key asleep for months and then used
    /// again is known to have slept (`dormant_reactivation`).
    tombstones: DashMap<u64, Tombstone, RandomState>,
    /// The identities' ids and [`Identity::variable_bytes`], summed: with the count, the
    /// estimate `state.max_memory_mib` bounds.
    bytes: AtomicUsize,
    config: StateConfig,
    /// What changed since the last snapshot, per home partition ([`Identity::home`]); `None`
    /// unless [`StateStore::track_changes`] was called (only a changelog reads it).
    changes: std::sync::OnceLock<Mutex<HashMap<u32, Changed>>>,
}

/// A home partition's changes since its last snapshot.
#[derive(Default)]
struct Changed {
    /// Identities marked dirty (some may have been evicted or released since).
    ids: Vec<Box<str>>,
    /// Keys ([`snapshot::key_of`]) of identities evicted and of tombstones forgotten.
    gone: Vec<u64>,
}

/// One changelog record: a key ([`snapshot::key_of`]) and the record, `None` to delete it.
#[derive(Debug)]
pub struct Change {
    pub key: u64,
    pub value: Option<Vec<u8>>,
}

/// What an identity evicted for idleness leaves: when it was last seen, so its sleep is
/// known, and its type and claims, so that a role people use is still theirs when it
/// returns, and one machines use is not re-typed by whoever uses it first after the gap
/// (with the other types it showed, reported once).
#[derive(Clone, Copy, Debug)]
struct Tombstone {
    last_seen: Millis,
    kind: PrincipalType,
    shown: u8,
    /// The identity's home, whose changelog partition keeps the tombstone.
    home: u32,
}

/// Tombstones older than this are forgotten: a principal back after half a year is treated
/// as new (and is not the threat a week-old leak is).
const TOMBSTONE_TTL: Millis = 180 * nhid_model::time::DAY;

use snapshot::key_of as tombstone_key;

/// Shards of the identity map, at least. Walks over every identity (`/principals`, the
/// identities gauge of `/metrics`, eviction) hold one shard's lock at a time, and a worker
/// updating an identity in that shard waits. A `/principals` page walks 100,000 identities in
/// about 30 ms; with dashmap's default (4 per core: 8 on two cores) a worker could wait about
/// 37 ms at a million identities, with 32 about 9 ms. 128 shards cost measurable throughput
/// with hot state (`cargo bench --bench pipeline -- pipeline/native_2`), 32 did not.
const MIN_SHARDS: usize = 32;

impl StateStore {
    pub fn new(config: StateConfig) -> Self {
        let shards =
            MIN_SHARDS.max(4 * std::thread::available_parallelism().map_or(1, |n| n.get())).next_power_of_two();
        StateStore {
            map: DashMap::with_hasher_and_shard_amount(RandomState::default(), shards),
            tombstones: DashMap::with_hasher(RandomState::default()),
            bytes: AtomicUsize::new(0),
            config,
            changes: std::sync::OnceLock::new(),
        }
    }

    /// From now on, records which identities change, are evicted and are forgotten, for
    /// [`StateStore::take_changes`].
    pub fn track_changes(&self) {
        self.changes.get_or_init(Mutex::default);
    }

    fn changed(&self, home: u32, f: impl FnOnce(&mut Changed)) {
        if let Some(changes) = self.changes.get() {
            f(changes.lock().unwrap_or_else(PoisonError::into_inner).entry(home).or_default());
        }
    }

    /// Marks the identity changed since its last snapshot, once.
    fn touch(&self, id: &str, identity: &mut Identity) {
        if identity.home & DIRTY == 0 && self.changes.get().is_some() {
            identity.home |= DIRTY;
            self.changed(identity.home(), |c| c.ids.push(id.into()));
        }
    }

    /// The changelog records of what changed in home partition `home` since the last call:
    /// deletions and tombstones first, then the state of each changed identity still here
    /// (so an identity evicted and back since is written after its tombstone).
    /// `detectors` goes in each identity's record ([`snapshot::Record::Identity`]).
    pub fn take_changes(&self, home: u32, detectors: u64, out: &mut Vec<Change>) {
        let Some(changes) = self.changes.get() else { return };
        let Some(changed) = changes.lock().unwrap_or_else(PoisonError::into_inner).remove(&home) else { return };
        for key in changed.gone {
            let value = self.tombstones.get(&key).map(|t| snapshot::tombstone(key, &t));
            out.push(Change { key, value });
        }
        for id in changed.ids {
            if let Some(mut identity) = self.map.get_mut(&*id)
                && identity.home & DIRTY != 0
                && identity.home() == home
            {
                identity.home &= !DIRTY;
                out.push(Change {
                    key: snapshot::key_of(&id),
                    value: Some(snapshot::identity(&id, detectors, &identity)),
                });
            }
        }
    }

    /// Restores an identity from its snapshot, unless one seen later is here (a partition
    /// restored twice, or a copy the identity left in another partition's changelog).
    /// Returns whether it was restored.
    pub fn restore(&self, id: &str, mut identity: Box<Identity>) -> bool {
        identity.home &= !DIRTY;
        let bytes = identity.variable_bytes();
        match self.map.entry(id.into()) {
            dashmap::Entry::Occupied(mut e) => {
                if e.get().last_seen >= identity.last_seen {
                    return false;
                }
                self.account(e.get().variable_bytes(), bytes);
                e.insert(identity);
            }
            dashmap::Entry::Vacant(e) => {
                self.account(0, id.len() + bytes);
                e.insert(identity);
            }
        }
        self.tombstones.remove(&tombstone_key(id));
        true
    }

    /// Restores a tombstone ([`snapshot::Record::Tombstone`]).
    pub fn restore_tombstone(&self, key: u64, last_seen: Millis, kind: PrincipalType, shown: u8, home: u32) {
        self.tombstones.insert(key, Tombstone { last_seen, kind, shown, home });
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Runs `f` on the identity, creating it with `create` on first sight. An identity
    /// evicted while idle comes back with the time it was last seen.
    pub fn with_identity<R>(
        &self,
        id: &str,
        create: impl FnOnce() -> Identity,
        f: impl FnOnce(&mut Identity) -> R,
    ) -> R {
        if let Some(mut entry) = self.map.get_mut(id) {
            let before = entry.variable_bytes();
            let r = f(&mut entry);
            self.account(before, entry.variable_bytes());
            self.touch(id, &mut entry);
            return r;
        }
        let mut created = false;
        let mut entry = self.map.entry(id.into()).or_insert_with(|| {
            created = true;
            let mut identity = create();
            if !self.tombstones.is_empty()
                && let Some((_, tomb)) = self.tombstones.remove(&tombstone_key(id))
            {
                identity.last_seen = identity.last_seen.min(tomb.last_seen);
                if tomb.kind != PrincipalType::Unknown {
                    identity.kind = tomb.kind;
                }
                identity.shown |= tomb.shown;
            }
            Box::new(identity)
        });
        let before = if created { 0 } else { entry.variable_bytes() };
        let r = f(&mut entry);
        self.account(before, entry.variable_bytes() + if created { id.len() } else { 0 });
        self.touch(id, &mut entry);
        r
    }

    /// Runs `f` on the identity if it is here.
    pub fn with_existing<R>(&self, id: &str, f: impl FnOnce(&mut Identity) -> R) -> Option<R> {
        let mut entry = self.map.get_mut(id)?;
        let before = entry.variable_bytes();
        let r = f(&mut entry);
        self.account(before, entry.variable_bytes());
        self.touch(id, &mut entry);
        Some(r)
    }

    fn account(&self, before: usize, after: usize) {
        if after > before {
            self.bytes.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.bytes.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// The state's estimated memory in bytes (see `state.max_memory_mib`).
    pub fn estimated_bytes(&self) -> usize {
        self.map.len() * IDENTITY_BYTES + self.bytes.load(Ordering::Relaxed)
    }

    /// How many identities the ceilings allow now: `max_identities`, fewer when the
    /// estimate per identity times that would pass `max_memory_mib`.
    fn allowed(&self) -> usize {
        let max_bytes = self.config.max_memory_mib.saturating_mul(1 << 20);
        let per = self.estimated_bytes() / self.map.len().max(1);
        self.config.max_identities.min(max_bytes / per.max(IDENTITY_BYTES))
    }

    pub fn get(&self, id: &str) -> Option<dashmap::mapref::one::Ref<'_, Box<str>, Box<Identity>>> {
        self.map.get(id)
    }

    /// Forgets identities idle since before `now - idle_ttl`, then, if still above the
    /// ceiling, the least recently seen down to 90 % of it (so eviction is not per insert).
    /// Returns how many were evicted; the open incidents of those evicted go to `closing`.
    pub fn evict(&self, now: Millis, closing: &mut Vec<Incident>) -> usize {
        let idle_before = now - (self.config.idle_ttl_secs as Millis) * 1_000;
        let mut evicted = self.forget(|v| v.last_seen >= idle_before, closing);
        self.forget_tombstones(|t| t.last_seen >= now - TOMBSTONE_TTL);
        if self.tombstones.len() > self.config.max_identities {
            let seen = self.tombstones.iter().map(|e| e.value().last_seen).collect();
            let cutoff = keep_newest(seen, self.config.max_identities / 2);
            self.forget_tombstones(|t| t.last_seen >= cutoff);
        }
        let allowed = self.allowed();
        if self.map.len() > allowed {
            let seen: Vec<Millis> = self.map.iter().map(|e| e.last_seen).collect();
            let cutoff = keep_newest(seen, allowed * 9 / 10);
            evicted += self.forget(|v| v.last_seen >= cutoff, closing);
        }
        evicted
    }

    /// Drops the identities `keep` rejects, each leaving a [`Tombstone`], their open
    /// incidents to `closing`; returns how many.
    fn forget(&self, keep: impl Fn(&Identity) -> bool, closing: &mut Vec<Incident>) -> usize {
        // Counted as removed, not as the change in length: other workers insert meanwhile
        // (the length could grow across an eviction, and the difference underflow).
        let mut forgotten = 0;
        self.map.retain(|k, v| {
            let kept = keep(v);
            if !kept {
                forgotten += 1;
                self.bytes.fetch_sub(k.len() + v.variable_bytes(), Ordering::Relaxed);
                let (key, home) = (tombstone_key(k), v.home());
                self.tombstones.insert(key, Tombstone { last_seen: v.last_seen, kind: v.kind, shown: v.shown, home });
                self.changed(home, |c| c.gone.push(key));
                closing.extend(v.take_incident());
            }
            kept
        });
        forgotten
    }

    fn forget_tombstones(&self, keep: impl Fn(&Tombstone) -> bool) {
        self.tombstones.retain(|&key, t| {
            let kept = keep(t);
            if !kept {
                self.changed(t.home, |c| c.gone.push(key));
            }
            kept
        });
    }

    /// Calls `f` with every tracked identity (shard by shard; no global lock).
    pub fn for_each(&self, mut f: impl FnMut(&str, &Identity)) {
        for entry in self.map.iter() {
            f(entry.key(), entry.value());
        }
    }

    /// Forgets the identities whose events came from the given partitions (revoked from
    /// this consumer: their new owner rebuilds them); returns how many.
    pub fn release(&self, homes: &std::collections::HashSet<u32>) -> usize {
        // Counted as in `forget`: the length may change under other workers' inserts.
        let mut released = 0;
        self.map.retain(|k, v| {
            let keep = !homes.contains(&v.home());
            if !keep {
                released += 1;
                self.bytes.fetch_sub(k.len() + v.variable_bytes(), Ordering::Relaxed);
            }
            keep
        });
        // The new owner restores them; what this one noticed since the last snapshot is
        // read again from the input after it.
        if let Some(changes) = self.changes.get() {
            changes.lock().unwrap_or_else(PoisonError::into_inner).retain(|home, _| !homes.contains(home));
        }
        released
    }

    /// Whether an eviction pass is due: above the ceiling. Idle expiry runs on the
    /// pipeline's event-time schedule instead.
    pub fn over_capacity(&self) -> bool {
        self.map.len() > self.config.max_identities
            || self.estimated_bytes() > self.config.max_memory_mib.saturating_mul(1 << 20)
    }
}

/// The time from which the `keep` newest of `times` are at or after it (ties keep a few
/// more): what a ceiling keeps when it drops the oldest. Linear, a selection, not a sort.
fn keep_newest(mut times: Vec<Millis>, keep: usize) -> Millis {
    match times.len().checked_sub(keep) {
        Some(cut) if cut < times.len() => *times.select_nth_unstable(cut).1,
        Some(_) => Millis::MAX,
        // Another worker evicted meanwhile: fewer than `keep` remain, keep them all.
        None => Millis::MIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::event::*;
    use nhid_model::time::DAY;
    use std::borrow::Cow;

    pub(crate) fn event(t: Millis, action: &str, ip: &str) -> AuditEvent<'static> {
        AuditEvent {
            id: Cow::Owned(format!("e{t}")),
            time: t,
            principal: Principal {
                id: "svc-a".into(),
                kind: PrincipalType::ServiceAccount,
                name: None,
                owner: None,
                tenant: None,
                inferred: false,
            },
            credential: Credential {
                id: Some("AKIA1".into()),
                kind: CredentialKind::StaticKey,
                issued_at: None,
                expires_at: None,
            },
            actor: Actor::default(),
            action: action.to_string().into(),
            service: action.split(':').next().unwrap_or("x").to_string().into(),
            resource: None,
            outcome: Outcome::Success,
            source: Source {
                ip: Some(ip.to_string().into()),
                user_agent: Some("sdk/1".into()),
                asn: None,
                country: None,
            },
            bytes_out: None,
            source_format: SourceFormat::Native,
            rules: Vec::new(),
            raw: "",
            raw_fields: Default::default(),
        }
    }

    #[test]
    fn novelty_is_reported_only_after_learning() {
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let (e1, e2, e3) = (
            event(0, "s3:GetObject", "10.0.0.1"),
            event(DAY + 1, "s3:GetObject", "10.0.0.2"),
            event(DAY + MINUTE, "iam:CreateUser", "185.220.101.7"),
        );
        let ranges = Ranges::builtin();
        let o = id.observe(&e1, DAY, ranges);
        assert!(!o.learned && o.new_action.is_none() && o.new_network.is_none());
        let o = id.observe(&e2, DAY, ranges);
        assert!(o.learned && o.new_action.is_none() && o.new_network.is_none(), "{o:?}");
        let o = id.observe(&e3, DAY, ranges);
        assert!(o.new_action.is_some() && o.new_service.is_some());
        assert_eq!(o.network.unwrap().to_string(), "185.220.101.0/24");
        let new = o.new_network.unwrap();
        assert_eq!(new.level, Dim::Place, "a public address after a private one: a new kind of place");
        assert!((new.probability - 0.5).abs() < 1e-6, "one place discovered in two minutes: {new:?}");
    }

    #[test]
    fn credential_age_and_expiry() {
        let mut id = Identity::new(PrincipalType::Workload, None, 0);
        let mut e = event(10 * HOUR, "s3:GetObject", "10.0.0.1");
        e.credential = Credential {
            id: Some("tok".into()),
            kind: CredentialKind::ShortLivedToken,
            issued_at: Some(9 * HOUR),
            expires_at: Some(10 * HOUR - 1),
        };
        let o = id.observe(&e, DAY, Ranges::builtin());
        assert_eq!(o.credential_age, Some(HOUR));
        assert_eq!(o.expired_for, Some(1));
    }

    #[test]
    fn a_session_that_wakes_the_identity_is_a_job_and_so_is_one_beside_it_within_the_hour() {
        let ranges = Ranges::builtin();
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        let mut job = |t: Millis, session: &str, ip: &str| {
            let mut e = event(t, "s3:PutObject", ip);
            e.credential = Credential {
                id: Some(session.to_owned().into()),
                kind: CredentialKind::ShortLivedToken,
                ..Default::default()
            };
            id.observe(&e, DAY, ranges).job
        };
        // Learning: the first session is the identity's first call, which wakes nothing.
        assert!(!job(0, "s0", "10.0.0.1"));
        // Learned; a session after a quiet day wakes it, and stays a job while in use.
        assert!(job(2 * DAY, "s1", "10.0.0.1"));
        assert!(job(2 * DAY + 5 * MINUTE, "s1", "10.0.0.1"));
        // Another starting while it runs overlaps it: a job as well...
        assert!(job(2 * DAY + 6 * MINUTE, "s2", "10.0.0.1"));
        // ...but not transitively: still busy an hour on, a rotated session is no job.
        for m in (10..70).step_by(5) {
            job(2 * DAY + m * MINUTE, "s2", "10.0.0.1");
        }
        assert!(!job(2 * DAY + 70 * MINUTE, "s3", "10.0.0.1"));
        // A session that wakes it from a network it never used is not where its jobs run,
        // nor is one beside it.
        assert!(!job(4 * DAY, "s4", "185.220.101.7"));
        assert!(!job(4 * DAY + MINUTE, "s5", "10.0.0.1"));
        // Static keys are no jobs' sessions.
        let mut key = event(6 * DAY, "s3:PutObject", "10.0.0.1");
        key.credential = Credential { id: Some("AKIA9".into()), kind: CredentialKind::StaticKey, ..Default::default() };
        assert!(!id.observe(&key, DAY, ranges).job);
    }

    #[test]
    fn a_job_on_a_fresh_runner_address_is_usual_where_every_job_gets_one_a_new_block_elsewhere_is_not() {
        let ranges = Ranges::builtin();
        let run = |id: &mut Identity, t: Millis, session: &str, ip: &str| {
            let mut e = event(t, "s3:PutObject", ip);
            e.credential = Credential {
                id: Some(session.to_owned().into()),
                kind: CredentialKind::ShortLivedToken,
                ..Default::default()
            };
            let o = id.observe(&e, DAY, ranges);
            (o.new_network.is_some(), o.usual_provenance())
        };
        // A deploy role's jobs every three hours for two days, each on a fresh GitHub-hosted
        // runner address (4.148.0.0/14), then another.
        let mut ci = Identity::new(PrincipalType::ServiceAccount, None, 0);
        for j in 0..16 {
            run(&mut ci, j * 3 * HOUR, &format!("s{j}"), &format!("4.{}.{}.10", 148 + j % 4, j * 13));
        }
        assert_eq!(run(&mut ci, 2 * DAY + HOUR, "s16", "4.150.200.10"), (true, true), "its churn");
        // A role whose jobs, twenty minutes each, always ran from one NAT address: a new
        // block is news.
        let mut nat = Identity::new(PrincipalType::ServiceAccount, None, 0);
        for j in 0..16 {
            for m in 0..20 {
                run(&mut nat, j * 3 * HOUR + m * MINUTE, &format!("s{j}"), "52.95.110.1");
            }
        }
        assert_eq!(run(&mut nat, 2 * DAY + HOUR, "s16", "52.94.0.10"), (true, false));
    }

    #[test]
    fn the_hour_count_is_the_calls_of_the_open_hour() {
        let mut id = Identity::new(PrincipalType::ServiceAccount, None, 0);
        // Late events count in the open hour; an event in a later hour starts it over.
        let times = [0, MINUTE, 59 * MINUTE, 30 * MINUTE, HOUR, HOUR + 1, 3 * HOUR + 5, 2 * HOUR, 3 * HOUR + MINUTE];
        let counts: Vec<u32> = times
            .iter()
            .map(|&t| id.observe(&event(t, "s3:GetObject", "10.0.0.1"), DAY, Ranges::builtin()).hour_count)
            .collect();
        assert_eq!(counts, [1, 2, 3, 4, 1, 2, 1, 2, 3]);
        assert_eq!(id.hour_count(), 3);
    }

    #[test]
    fn an_identity_fits_the_memory_target() {
        // `cargo bench --bench pipeline` measures about 1,020 bytes an identity at 100,000
        // (target 1,024): the identity itself, its heap (key, sets, credentials, owner) and
        // the map's slots. A few bytes more here and the target is missed.
        assert!(std::mem::size_of::<Identity>() <= 728, "{}", std::mem::size_of::<Identity>());
        assert!(std::mem::size_of::<sets::Fingerprints>() <= 104);
        assert!(std::mem::size_of::<breadth::Breadth>() <= 92);
        assert!(std::mem::size_of::<CredentialState>() <= 56, "{}", std::mem::size_of::<CredentialState>());
    }

    #[test]
    fn eviction_forgets_idle_identities_and_enforces_the_ceiling() {
        let store = StateStore::new(StateConfig { max_identities: 100, idle_ttl_secs: 3_600, ..Default::default() });
        for i in 0..150 {
            let t = i as Millis * 1_000;
            store.with_identity(&format!("p{i}"), || Identity::new(PrincipalType::ApiKey, None, t), |_| ());
        }
        assert!(store.over_capacity());
        assert_eq!(store.evict(150_000, &mut Vec::new()), 60);
        assert_eq!(store.len(), 90);
        assert!(store.get("p149").is_some() && store.get("p0").is_none());
        // Idle for over an hour: p60..p99 (last seen before 100 s) are forgotten.
        assert_eq!(store.evict(3_700_000, &mut Vec::new()), 40);
    }

    #[test]
    fn identities_with_long_ids_are_bounded_in_bytes_not_only_in_count() {
        // Ids of 4 KiB (the longest an event may carry) under a 1 MiB ceiling: by count
        // alone (a million) all 2,000 would be kept, about 11 MiB.
        let store = StateStore::new(StateConfig { max_memory_mib: 1, ..Default::default() });
        for i in 0..2_000 {
            let id = format!("{i:04}{}", "x".repeat(4_092));
            store.with_identity(&id, || Identity::new(PrincipalType::ApiKey, None, i), |_| ());
            if store.over_capacity() {
                store.evict(i, &mut Vec::new());
            }
        }
        assert!(store.estimated_bytes() <= 1 << 20, "{}", store.estimated_bytes());
        assert!(store.len() > 100 && store.len() < 300, "{}", store.len());
        // Released identities give their bytes back.
        store.release(&std::collections::HashSet::from([0]));
        assert_eq!((store.len(), store.estimated_bytes()), (0, 0));
    }
}
