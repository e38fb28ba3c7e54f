//! The engine: bytes in, alerts, actions and dead letters out.
//!
//! Transports (`nhid replay` over files, the Kafka runtime) call [`Engine::process`] with
//! one message and where it came from, and take the [`Outputs`]; messages from the
//! lifecycle and action-results topics go to [`Engine::control`]. The engine is shared by
//! reference between workers; per-identity state lives in the sharded store, so workers
//! owning different partitions (keyed by principal) rarely touch the same shard.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::context::network::Ranges;
use crate::detect::{Detector, Finding, LaneSettings};
use crate::inventory::{Criticality, Entry, Inventory};
use crate::respond::alert::{Action, Alert, AlertActor, AlertEvent, MAX_EVENT_IDS, Mode, Score};
use crate::respond::incident::{CloseReason, Incident, IncidentActivity, IncidentRecord};
use crate::respond::policy::{Acting, Block, Policy, ResponseConfig, alert_principal};
use crate::respond::suppress::Suppressions;
use crate::respond::verdict::{self, AppliedVerdict, Pending, RecentAlert, id_hash};
use crate::rules::{Matches, Rules};
use crate::state::bindings::CredentialBindings;
use crate::state::lifecycle::{FACT_TTL, Lifecycle};
use crate::state::snapshot::{self, Record, SnapshotError, SourceDone};
use crate::state::{Change, Identity, Observation, StateConfig, StateStore};
use nhid_decode::control::{self, ActionResult, ActionStatus, LifecycleEvent, LifecycleKind, Verdict, VerdictKind};
use nhid_decode::{DecodeContext, DecodeError, Format};
use nhid_model::event::{AuditEvent, MAX_FIELD_BYTES, PrincipalType, SourceFormat};
use nhid_model::time::{MINUTE, Millis, SECOND, format_rfc3339};
use nhid_model::vocab::DeadLetterReason;
use nhid_model::vocab::{ActionKind, Severity};

/// Idle eviction runs at most once per this much event time.
const SWEEP_EVERY: Millis = MINUTE;

pub struct EngineConfig {
    pub format: Format,
    /// Per source (topic or file), a format overriding `format`.
    pub topic_formats: Vec<(String, Format)>,
    /// Emit every decoded event, normalized, in [`Outputs::normalized`] (for lane topics).
    pub normalize: bool,
    /// The re-keying stage's engine: decode and check only. Every event that passes goes to
    /// [`Outputs::normalized`] as its source stated it, to be produced keyed by principal;
    /// nothing is detected and no state is kept (the detection stage does both).
    pub rekey: bool,
    pub max_event_bytes: usize,
    pub state: StateConfig,
    pub response: ResponseConfig,
    /// Published address ranges that place sources; `None`: the dated copy built in.
    pub ranges: Option<Arc<Ranges>>,
    /// Content rules evaluated on each record as its source wrote it; `None`: none.
    pub rules: Option<Arc<Rules>>,
    /// Accepted behaviours whose alerts are dropped (`[[suppressions]]`).
    pub suppressions: Arc<Suppressions>,
    /// How far an event's time may be ahead of the transport's own (a Kafka message's
    /// timestamp) and of the wall clock; further is `implausible_time`.
    pub max_clock_skew: Millis,
    /// The wall clock (a fixed one in tests).
    pub wall_clock: fn() -> Millis,
}

/// Default for `max_clock_skew`: audit sources' clocks and delivery disagree by seconds to
/// minutes; fifteen minutes ahead of now is no clock's error.
pub const DEFAULT_MAX_CLOCK_SKEW: Millis = 15 * MINUTE;

/// Events this far ahead of the watermark (more than the skew) move it only as a quorum
/// ([`Engine::advance_watermark`]): a stream resuming after a gap sends many, a forged
/// date one; and a sparse stream (a handful of events a day) still moves it, a few events
/// late.
const JUMP_QUORUM: u32 = 8;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            format: Format::Auto,
            topic_formats: Vec::new(),
            normalize: false,
            rekey: false,
            max_event_bytes: nhid_decode::DEFAULT_MAX_EVENT_BYTES,
            state: StateConfig::default(),
            response: ResponseConfig::default(),
            ranges: None,
            rules: None,
            suppressions: Arc::default(),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            wall_clock: nhid_model::time::wall_clock,
        }
    }
}

pub struct Engine {
    detectors: Vec<Detector>,
    inventory: Inventory,
    store: StateStore,
    /// Revoked credentials, retired principals and offboarded owners, from the control
    /// topics; engine-wide, not per identity (see `state::lifecycle`).
    lifecycle: Lifecycle,
    /// Which principal each credential belongs to (see `state::bindings`).
    bindings: CredentialBindings,
    policy: Policy,
    format: Format,
    topic_formats: Vec<(Box<str>, Format)>,
    normalize: bool,
    rekey: bool,
    max_event_bytes: usize,
    /// Highest event time seen (but see [`Engine::advance_watermark`]): the clock of
    /// eviction, and the time given to events that have none of their own when the
    /// transport has none either (a line in a file).
    watermark: AtomicI64,
    next_sweep: AtomicI64,
    /// Events seen beyond the watermark by more than the skew since it last moved, and the
    /// earliest of their times.
    ahead: AtomicU32,
    ahead_min: AtomicI64,
    max_clock_skew: Millis,
    wall_clock: fn() -> Millis,
    /// The wall clock's latest reading ([`Engine::latest`]).
    clock: AtomicI64,
    /// Learning period per principal type, resolved once (it is read per event).
    learning_ms: [Millis; PrincipalType::ALL.len()],
    ranges: Option<Arc<Ranges>>,
    rules: Option<Arc<Rules>>,
    suppressions: Arc<Suppressions>,
    /// A hash of the detector instances' ids in order: identities' alert marks are indexed
    /// by this list, so a snapshot taken under another is restored without them.
    detectors_fingerprint: u64,
    /// `response.incident_gap_secs`.
    incident_gap: Millis,
    /// The identities with an open incident and the time of its latest alert, for the sweep
    /// that closes quiet ones: few (alerts are), so one lock. Taken inside an identity's
    /// (never the other way round).
    open_incidents: Mutex<HashMap<Box<str>, Millis>>,
    /// Verdicts naming an alert or incident not raised yet, and how many (read without the
    /// lock at each alert).
    pending_verdicts: Mutex<Vec<Pending>>,
    pending_count: std::sync::atomic::AtomicUsize,
}

/// What one changelog record did to the state ([`Engine::restore`]).
#[derive(Debug, PartialEq)]
pub enum Restored {
    Identity,
    /// A copy older than the identity already here: kept the newer.
    Older,
    Tombstone,
    /// The partition's state is in the changelog up to this input offset, and of each
    /// source partition of a re-keyed one, up to the event named.
    Through {
        offset: i64,
        sources: Vec<SourceDone>,
    },
    /// A record of another partition's (sharing the changelog partition).
    Elsewhere,
}

/// Where a message came from: a topic or file, a partition, an offset or line number.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub source: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl Origin<'_> {
    /// A compact tag of the source and partition, kept on each identity so that the state
    /// of a revoked partition can be released. A hash: a collision only keeps or drops
    /// one partition's state with another's.
    pub fn home(&self) -> u32 {
        let h = xxhash_rust::xxh3::xxh3_64(self.source.as_bytes());
        // 31 bits: an identity keeps a flag in the 32nd (`Identity::home`).
        ((h as u32) ^ (h >> 32) as u32 ^ (self.partition as u32).wrapping_mul(0x9E37_79B9)) >> 1
    }
}

/// A decoded event in canonical form, with its lane (the principal type it was judged as),
/// for republishing to per-lane topics or, re-keyed, to the detection stage.
#[derive(Clone, Debug)]
pub struct Normalized {
    pub lane: PrincipalType,
    pub principal_id: String,
    /// The event's time, by which the re-keying stage orders what it produces.
    pub time: Millis,
    pub json: Vec<u8>,
}

/// Which control topic a message came from; each has its own schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// `schemas/lifecycle.schema.json`: owner offboarded, credential revoked, principal retired.
    Lifecycle,
    /// `schemas/action-result.schema.json`: what the revocation service did with an action.
    ActionResult,
    /// `schemas/verdict.schema.json`: an analyst's verdict on an alert or an incident.
    Verdict,
}

/// A message (or one record of it) that could not be processed, with its original bytes:
/// the first [`MAX_DEAD_LETTER_BYTES`] of them, the size and a hash of the whole.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub reason: DeadLetterReason,
    pub detail: String,
    pub record: Option<usize>,
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    pub bytes: Vec<u8>,
    /// The original message's size, and its XXH3-128 in hex: what finds it in the source
    /// when `bytes` holds only its beginning.
    pub original_len: usize,
    pub original_xxh3: String,
}

/// How much of a dead message a dead letter keeps: a megabyte of garbage must not become a
/// megabyte on the dead-letter topic, past what a producer may send, which would stop the
/// partition that carried it.
pub const MAX_DEAD_LETTER_BYTES: usize = 64 * 1024;

/// What a dead letter keeps of a message: its beginning (the whole message, or as much of it
/// as was held), and the whole message's size and XXH3-128.
#[derive(Clone, Copy, Debug)]
pub struct Original<'a> {
    pub head: &'a [u8],
    pub len: usize,
    pub xxh3: u128,
}

impl DeadLetter {
    /// One JSON line for files: the original message as text when it is UTF-8, else base64.
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        let mut v = serde_json::json!({
            "reason": self.reason.as_str(),
            "detail": self.detail,
            "source": self.source,
            "partition": self.partition,
            "offset": self.offset,
            "original_bytes": self.original_len,
            "original_xxh3": self.original_xxh3,
        });
        if let Some(r) = self.record {
            v["record"] = r.into();
        }
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => v["raw"] = text.into(),
            Err(_) => v["raw_base64"] = base64::engine::general_purpose::STANDARD.encode(&self.bytes).into(),
        }
        v
    }
}

/// What one message held: its source format and how many events it decoded to (a
/// CloudTrail file holds many); `format` is `None` when nothing decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Decoded {
    pub format: Option<SourceFormat>,
    pub events: u64,
    /// The XXH3 of its events' principal id, `None` when none decoded or they name more
    /// than one: the transport compares it with the message's key, to tell a topic keyed
    /// by principal from one that is not.
    pub principal: Option<u64>,
}

/// A message prepared for [`Engine::commit`] ([`Engine::prepare`]): its records in order,
/// each an event with the content rules it matched, or why it is not one. The first is held
/// inline: most messages hold one record, and the hot path allocates nothing for it.
pub struct Prepared<'a> {
    bytes: &'a [u8],
    first: Option<Item<'a>>,
    rest: Vec<Item<'a>>,
}

impl<'a> Prepared<'a> {
    fn push(&mut self, item: Item<'a>) {
        match self.first {
            None => self.first = Some(item),
            Some(_) => self.rest.push(item),
        }
    }
}

// Most items are events: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Item<'a> {
    Event(AuditEvent<'a>, Matches),
    /// Decoded but refused (a time too far ahead, a field too long).
    Refused(DecodeError),
    /// Not decoded: the message, or one record of it (the error names which).
    Undecoded(DecodeError),
}

/// A message whose records are being committed, in order: what it decoded to, and which of
/// its records a refusal names.
struct Committing<'m> {
    bytes: &'m [u8],
    origin: Origin<'m>,
    /// `origin.home()`, once a message.
    home: u32,
    decoded: Decoded,
    /// Records committed so far: the index of the next.
    records: usize,
    /// The dead letter of a refused first record, which names it only if others follow.
    first_refused: Option<usize>,
}

impl<'m> Committing<'m> {
    fn new(bytes: &'m [u8], origin: Origin<'m>, out: &mut Outputs) -> Self {
        out.stats.messages += 1;
        Committing { bytes, origin, home: origin.home(), decoded: Decoded::default(), records: 0, first_refused: None }
    }

    /// Dead-letters a record decoded but refused. A message of several records (a CloudTrail
    /// document) names the one refused; whether there are several is known at the end.
    fn refuse(&mut self, mut e: DecodeError, out: &mut Outputs) {
        if e.record.is_none() {
            e.record = Some(self.records);
            self.first_refused = self.first_refused.or((self.records == 0).then_some(out.dead_letters.len()));
        }
        self.undecoded(e, out);
    }

    /// Dead-letters the message, or one record of it (the error names which).
    fn undecoded(&mut self, e: DecodeError, out: &mut Outputs) {
        self.records += 1;
        dead_letter(e, self.bytes, self.origin, out);
    }

    fn finish(self, out: &mut Outputs) -> Decoded {
        if self.records == 1
            && let Some(at) = self.first_refused
        {
            out.dead_letters[at].record = None;
        }
        self.decoded
    }
}

/// The time decoders give an event that has none of its own while only the watermark could
/// give one ([`Engine::prepare`]): no timestamp reads as this, the earliest time there is
/// (decoders bound every time they read to the years RFC 3339 writes, so no event's own
/// time is this, whatever its source wrote).
const TIME_FROM_WATERMARK: Millis = Millis::MIN;

/// [`Decoded::principal`] of a message whose events all name `id`.
pub fn principal_hash(id: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id)
}

/// Counts of what went through, per worker; merged for summaries and metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Audit messages; control messages are counted apart, below.
    pub messages: u64,
    pub events: u64,
    pub events_by_type: [u64; PrincipalType::ALL.len()],
    /// Events by source format, then by principal type (lane), for metrics.
    pub events_by_format: [[u64; PrincipalType::ALL.len()]; SourceFormat::ALL.len()],
    pub dead_letters: [u64; DeadLetterReason::ALL.len()],
    /// Alerts by detector (instance id: the file stem) and severity.
    pub alerts: BTreeMap<(String, Severity), u64>,
    pub suppressed_repeats: u64,
    /// Incident records by [`IncidentActivity::index`]: opened, updated, closed.
    pub incidents: [u64; IncidentActivity::ALL.len()],
    /// Verdicts read, by [`VerdictKind::index`] (malformed ones are dead letters).
    pub verdicts: [u64; VerdictKind::ALL.len()],
    /// Findings accepted by an analyst's verdict: no alert, no action.
    pub accepted: u64,
    /// Alerts dropped by each configured suppression, by its index ([`Engine::suppressions`]);
    /// shorter than the list when the last ones matched nothing.
    pub suppressed: Vec<u64>,
    pub actions: BTreeMap<(ActionKind, Mode), u64>,
    pub guardrail_blocks: BTreeMap<Block, u64>,
    pub evictions: u64,
    /// Lifecycle events applied, by `LifecycleKind::index` (malformed ones are dead letters).
    pub lifecycle_events: [u64; LifecycleKind::ALL.len()],
    /// Action results applied, by the action they report (`None`: the result names none) and status.
    pub action_results: BTreeMap<(Option<ActionKind>, ActionStatus), u64>,
}

impl Stats {
    /// Adds another worker's counts.
    pub fn merge(&mut self, other: &Stats) {
        self.messages += other.messages;
        self.events += other.events;
        if self.suppressed.len() < other.suppressed.len() {
            self.suppressed.resize(other.suppressed.len(), 0);
        }
        for (a, b) in self.suppressed.iter_mut().zip(&other.suppressed) {
            *a += b;
        }
        for (a, b) in self.events_by_type.iter_mut().zip(other.events_by_type) {
            *a += b;
        }
        for (a, b) in self.events_by_format.iter_mut().flatten().zip(other.events_by_format.iter().flatten()) {
            *a += b;
        }
        for (a, b) in self.dead_letters.iter_mut().zip(other.dead_letters) {
            *a += b;
        }
        for (k, v) in &other.alerts {
            *self.alerts.entry(k.clone()).or_default() += v;
        }
        self.suppressed_repeats += other.suppressed_repeats;
        for (a, b) in self.incidents.iter_mut().zip(other.incidents) {
            *a += b;
        }
        for (a, b) in self.verdicts.iter_mut().zip(other.verdicts) {
            *a += b;
        }
        self.accepted += other.accepted;
        for (k, v) in &other.actions {
            *self.actions.entry(*k).or_default() += v;
        }
        for (k, v) in &other.guardrail_blocks {
            *self.guardrail_blocks.entry(*k).or_default() += v;
        }
        self.evictions += other.evictions;
        for (a, b) in self.lifecycle_events.iter_mut().zip(other.lifecycle_events) {
            *a += b;
        }
        for (k, v) in &other.action_results {
            *self.action_results.entry(*k).or_default() += v;
        }
    }

    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().sum()
    }

    /// Action results applied, by `ActionStatus::index`, whatever their action.
    pub fn action_results_by_status(&self) -> [u64; ActionStatus::ALL.len()] {
        let mut by_status = [0; ActionStatus::ALL.len()];
        for ((_, status), n) in &self.action_results {
            by_status[status.index()] += n;
        }
        by_status
    }
}

/// What processing produced; the caller drains the vectors after each message.
#[derive(Debug, Default)]
pub struct Outputs {
    pub alerts: Vec<Alert>,
    pub actions: Vec<Action>,
    pub dead_letters: Vec<DeadLetter>,
    /// Only with [`EngineConfig::normalize`].
    pub normalized: Vec<Normalized>,
    /// Incidents opened, updated and closed (`schemas/incident.schema.json`).
    pub incidents: Vec<IncidentRecord>,
    /// Verdicts applied to an identity (the principal, and what the verdict did): the audit
    /// trail, for the log.
    pub verdicts: Vec<(String, AppliedVerdict)>,
    pub stats: Stats,
}

impl Outputs {
    /// Drops the outputs (not the stats).
    pub fn clear(&mut self) {
        self.alerts.clear();
        self.actions.clear();
        self.dead_letters.clear();
        self.normalized.clear();
        self.incidents.clear();
        self.verdicts.clear();
    }
}

impl Engine {
    pub fn new(detectors: Vec<Detector>, inventory: Inventory, config: EngineConfig) -> Self {
        let learning_ms = std::array::from_fn(|i| config.state.learning_secs.for_type(PrincipalType::ALL[i]));
        let ids: Vec<&str> = detectors.iter().map(|d| d.id.as_str()).collect();
        let detectors_fingerprint = xxhash_rust::xxh3::xxh3_64(ids.join("\n").as_bytes());
        Engine {
            detectors_fingerprint,
            incident_gap: (config.response.incident_gap_secs as Millis).saturating_mul(SECOND),
            open_incidents: Mutex::default(),
            pending_verdicts: Mutex::default(),
            pending_count: Default::default(),
            learning_ms,
            detectors,
            inventory,
            // Two credentials an identity on average: a rotated key, a session beside a key.
            bindings: CredentialBindings::new(config.state.max_identities.saturating_mul(2)),
            store: StateStore::new(config.state),
            lifecycle: Lifecycle::default(),
            policy: Policy::new(config.response),
            format: config.format,
            topic_formats: config.topic_formats.into_iter().map(|(t, f)| (t.into(), f)).collect(),
            normalize: config.normalize,
            rekey: config.rekey,
            max_event_bytes: config.max_event_bytes,
            watermark: AtomicI64::new(Millis::MIN),
            next_sweep: AtomicI64::new(Millis::MIN),
            ahead: AtomicU32::new(0),
            ahead_min: AtomicI64::new(Millis::MAX),
            max_clock_skew: config.max_clock_skew,
            wall_clock: config.wall_clock,
            clock: AtomicI64::new(Millis::MIN),
            ranges: config.ranges,
            rules: config.rules,
            suppressions: config.suppressions,
        }
    }

    /// The configured suppressions (indexes of [`Stats::suppressed`]).
    pub fn suppressions(&self) -> &Suppressions {
        &self.suppressions
    }

    /// The content rules evaluated on raw records, if any.
    pub fn rules(&self) -> Option<&Rules> {
        self.rules.as_deref()
    }

    /// The re-keying stage's engine for this one: the same decoding and checks (formats,
    /// size and time bounds), no detectors and no state.
    pub fn rekeying(&self) -> Engine {
        Engine::new(
            Vec::new(),
            Inventory::default(),
            EngineConfig {
                format: self.format,
                topic_formats: self.topic_formats.iter().map(|(t, f)| (t.to_string(), *f)).collect(),
                rekey: true,
                // Re-keying reads the raw records; detection gets only canonical events.
                rules: self.rules.clone(),
                max_event_bytes: self.max_event_bytes,
                max_clock_skew: self.max_clock_skew,
                wall_clock: self.wall_clock,
                state: StateConfig { max_identities: 1, ..StateConfig::default() },
                ..EngineConfig::default()
            },
        )
    }

    /// Paces automatic actions in processing time (the wall clock) as well as in event time:
    /// for `nhid run`, where actions reach a revocation service as they are decided. A
    /// replay judges what nhid would have done, in event time only.
    pub fn pace_actions_in_processing_time(&mut self) {
        self.policy.pace_with(self.wall_clock);
    }

    /// The address ranges sources are placed by.
    pub fn ranges(&self) -> &Ranges {
        self.ranges.as_deref().unwrap_or_else(|| Ranges::builtin())
    }

    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The event-time clock: the highest event time seen (within a second), if any.
    pub fn now(&self) -> Option<Millis> {
        Some(self.watermark.load(Ordering::Relaxed)).filter(|&t| t != Millis::MIN)
    }

    /// How long identities of this type learn before baseline-relative detectors may fire.
    pub fn learning_ms(&self, kind: PrincipalType) -> Millis {
        self.learning_ms[kind.index()]
    }

    /// Who answers for an identity, as alerts name it and offboarding is checked.
    pub fn owner_of<'a>(&'a self, identity: &'a Identity) -> Option<&'a str> {
        owner(self.inventory.entry(identity.inventory()), identity)
    }

    /// Processes one message. `transport_time` is the transport's own timestamp (a Kafka
    /// message's): the time of events that carry none, and with the wall clock the bound
    /// on how far ahead an event's own time may be.
    /// Returns what the message held, for the transport's per-topic counts.
    pub fn process(
        &self,
        bytes: &[u8],
        origin: Origin<'_>,
        transport_time: Option<Millis>,
        out: &mut Outputs,
    ) -> Decoded {
        // What `prepare` then `commit` do, each record committed in place as it is decoded:
        // an event is some 600 bytes, and holding each in the message, then moving it out,
        // cost a tenth of the steady-state pipeline in copies.
        let mut message = Committing::new(bytes, origin, out);
        let (format, ctx) = self.decoding(origin.source, transport_time);
        nhid_decode::decode(bytes, format, &ctx, &mut |mut record| match record {
            Ok(ref mut ev) => match self.check(ev, transport_time) {
                Ok(matches) => self.commit_event(ev, matches, &mut message, out),
                Err(e) => message.refuse(e, out),
            },
            Err(e) => message.undecoded(e, out),
        });
        message.finish(out)
    }

    /// The first half of [`Engine::process`]: decodes a message, checks its events and
    /// matches them against the content rules. It reads no state and writes none, so
    /// messages can be prepared on every core and committed in order ([`Engine::commit`]),
    /// with the outputs processing them one by one gives.
    pub fn prepare<'a>(&self, bytes: &'a [u8], source: &str, transport_time: Option<Millis>) -> Prepared<'a> {
        let mut prepared = Prepared { bytes, first: None, rest: Vec::new() };
        let (format, ctx) = self.decoding(source, transport_time);
        nhid_decode::decode(bytes, format, &ctx, &mut |record| {
            prepared.push(match record {
                Ok(ev) => match self.check(&ev, transport_time) {
                    Ok(matches) => Item::Event(ev, matches),
                    Err(e) => Item::Refused(e),
                },
                Err(e) => Item::Undecoded(e),
            })
        });
        prepared
    }

    /// The second half of [`Engine::process`]: the prepared message's events through the
    /// state, the detectors and the policy, its refusals dead-lettered, in the order of
    /// its records.
    pub fn commit(&self, prepared: Prepared<'_>, origin: Origin<'_>, out: &mut Outputs) -> Decoded {
        let Prepared { bytes, mut first, mut rest } = prepared;
        let mut message = Committing::new(bytes, origin, out);
        // In place, as `process` does. Refusals are rare, and their dead letters copy the
        // message anyway: cloning their errors costs nothing that counts.
        for record in first.iter_mut().chain(rest.iter_mut()) {
            match record {
                Item::Event(ev, matches) => self.commit_event(ev, std::mem::take(matches), &mut message, out),
                Item::Refused(e) => message.refuse(e.clone(), out),
                Item::Undecoded(e) => message.undecoded(e.clone(), out),
            }
        }
        message.finish(out)
    }

    /// The format a message from `source` is decoded as, and how.
    fn decoding(&self, source: &str, transport_time: Option<Millis>) -> (Format, DecodeContext) {
        let ctx = DecodeContext {
            // An event without a time of its own gets the watermark's, which only the commit
            // knows: it is resolved there.
            fallback_time: Some(transport_time.unwrap_or(TIME_FROM_WATERMARK)),
            max_event_bytes: self.max_event_bytes,
        };
        // A handful of entries at most: a scan beats hashing the topic per message.
        let format = self.topic_formats.iter().find(|(t, _)| **t == *source).map_or(self.format, |(_, f)| *f);
        (format, ctx)
    }

    /// A decoded event's content-rule matches, or why it is refused.
    fn check(&self, ev: &AuditEvent<'_>, transport_time: Option<Millis>) -> Result<Matches, DecodeError> {
        match self.implausible(ev, transport_time) {
            None => Ok(self.rules.as_ref().map(|r| r.matches(ev)).unwrap_or_default()),
            Some(e) => Err(e),
        }
    }

    /// One checked event of a message through the state, the detectors and the policy.
    fn commit_event(&self, ev: &mut AuditEvent<'_>, matches: Matches, message: &mut Committing<'_>, out: &mut Outputs) {
        message.records += 1;
        if ev.time == TIME_FROM_WATERMARK {
            match self.watermark.load(Ordering::Relaxed) {
                Millis::MIN => {
                    let e = DecodeError::new(
                        DeadLetterReason::MissingTime,
                        "no time of its own, and neither the transport nor an event before it gives one",
                    );
                    return dead_letter(e, message.bytes, message.origin, out);
                }
                watermark => ev.time = watermark,
            }
        }
        if let Some(rules) = &self.rules {
            rules.apply(ev, matches);
        }
        let principal = principal_hash(ev.principal.id.as_bytes());
        let decoded = &mut message.decoded;
        *decoded = Decoded {
            format: Some(ev.source_format),
            events: decoded.events + 1,
            principal: match decoded.events {
                0 => Some(principal),
                _ => decoded.principal.filter(|&p| p == principal),
            },
        };
        if self.rekey {
            out.normalized.push(normalized(ev, ev.principal.kind));
        } else {
            self.handle(ev, message.home, out)
        }
    }

    /// Refuses a message too large to be held whole (a line of a file read with a cap), of
    /// which only `original` is known: counted and dead-lettered as `too_large`, as
    /// [`Engine::process`] refuses a whole message larger than `max_event_bytes`.
    pub fn refuse_too_large(&self, original: Original<'_>, origin: Origin<'_>, out: &mut Outputs) {
        out.stats.messages += 1;
        dead_letter_of(nhid_decode::too_large(original.len, self.max_event_bytes), original, origin, out);
    }

    /// The largest message decoded; larger ones are dead-lettered as `too_large`.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// An event is the source's claim, and anyone writing the topic or holding a key
    /// shapes it. One dated after `latest` (the transport's time or the wall clock, plus the
    /// skew) would move the clock every idle timeout, tombstone and pacing runs by; one
    /// with a megabyte field would make outputs larger than a broker takes.
    ///
    /// Why `ev` is refused, if it is; by reference, as an event is some 700 bytes and each move
    /// of it a copy.
    fn implausible(&self, ev: &AuditEvent<'_>, transport_time: Option<Millis>) -> Option<DecodeError> {
        let latest = self.latest(ev.time, transport_time);
        if ev.time > latest {
            return Some(implausible(ev.time, latest, self.max_clock_skew));
        }
        ev.oversized_field().map(|(field, len)| {
            DecodeError::new(
                DeadLetterReason::FieldTooLong,
                format!("{field} is {len} bytes, longer than {MAX_FIELD_BYTES}"),
            )
        })
    }

    /// The latest plausible time for an event of time `time`: the transport's time or the
    /// wall clock, whichever is earlier, plus the skew allowed. The clock is read only when
    /// its last reading would not let the event pass (reading it for every message was 2 %
    /// of a replay): it only moves on, so an earlier reading never passes an event a fresh
    /// one would refuse.
    fn latest(&self, time: Millis, transport_time: Option<Millis>) -> Millis {
        let latest = |now: Millis| transport_time.map_or(now, |t| t.min(now)).saturating_add(self.max_clock_skew);
        let last = latest(self.clock.load(Ordering::Relaxed));
        if time <= last {
            return last;
        }
        let now = (self.wall_clock)();
        self.clock.fetch_max(now, Ordering::Relaxed);
        latest(now)
    }

    /// From now on, notes what changes for [`Engine::changes`]: for a changelog.
    pub fn track_changes(&self) {
        self.store.track_changes();
    }

    /// The changelog records of home partition `home` ([`Origin::home`]) since the last
    /// call: identities changed, evicted, forgotten (see [`StateStore::take_changes`]).
    pub fn changes(&self, home: u32, out: &mut Vec<Change>) {
        self.store.take_changes(home, self.detectors_fingerprint, out);
    }

    /// The changelog record of one identity's state as it is now.
    pub fn snapshot(&self, id: &str) -> Option<Vec<u8>> {
        self.store.get(id).map(|identity| snapshot::identity(id, self.detectors_fingerprint, &identity))
    }

    /// Applies one changelog record of partition `home`: identities and tombstones come
    /// back, a partition's [`Restored::Through`] is returned. A record of another format
    /// version or a corrupt one is refused, never misread; the caller then rebuilds.
    pub fn restore(&self, record: &[u8], home: u32) -> Result<Restored, SnapshotError> {
        let (of, record) = snapshot::decode(record)?;
        if of != home {
            return Ok(Restored::Elsewhere);
        }
        Ok(match record {
            Record::Identity { id, detectors, mut identity } => {
                let inventory = self.inventory.resolve(&id);
                identity.restored(home, inventory, detectors == self.detectors_fingerprint);
                for c in identity.credentials.iter().filter(|c| !c.foreign) {
                    self.bindings.bind(&c.id, &id, c.last_seen);
                }
                // The clock is where the state was: events times were bounded when processed.
                self.watermark.fetch_max(identity.last_seen, Ordering::Relaxed);
                if let Some(incident) = identity.incident() {
                    let mut open = self.open_incidents.lock().unwrap_or_else(PoisonError::into_inner);
                    open.insert(id.clone(), incident.last_seen);
                }
                if self.store.restore(&id, identity) { Restored::Identity } else { Restored::Older }
            }
            Record::Tombstone { key, last_seen, kind, shown } => {
                self.store.restore_tombstone(key, last_seen, kind, shown, home);
                Restored::Tombstone
            }
            Record::Through { offset, sources } => Restored::Through { offset, sources },
        })
    }

    /// Releases the state of identities whose events came from these partitions
    /// ([`Origin::home`]); returns how many identities were released.
    pub fn release(&self, homes: &std::collections::HashSet<u32>) -> usize {
        if homes.is_empty() { 0 } else { self.store.release(homes) }
    }

    /// Processes one message from a control topic: it changes what nhid knows (a revoked
    /// credential, a retired principal, an offboarded owner) and judges audit events processed
    /// after it, by their event time against the message's own time; a failed action result
    /// raises a `response_failed` alert at once. Malformed messages are dead-lettered like
    /// audit events.
    pub fn control(&self, kind: ControlKind, bytes: &[u8], origin: Origin<'_>, out: &mut Outputs) {
        let applied = nhid_decode::checked_text(bytes, self.max_event_bytes).and_then(|text| match kind {
            ControlKind::Lifecycle => control::parse_lifecycle(text).map(|e| self.apply_lifecycle(&e, out)),
            ControlKind::ActionResult => control::parse_action_result(text).map(|r| self.apply_action_result(&r, out)),
            ControlKind::Verdict => control::parse_verdict(text).map(|v| self.apply_verdict(&v, out)),
        });
        if let Err(e) = applied {
            dead_letter(e, bytes, origin, out);
        }
    }

    fn apply_lifecycle(&self, event: &LifecycleEvent<'_>, out: &mut Outputs) {
        out.stats.lifecycle_events[event.kind.index()] += 1;
        let facts = match event.kind {
            LifecycleKind::OwnerOffboarded => &self.lifecycle.owners,
            LifecycleKind::CredentialRevoked => &self.lifecycle.credentials,
            LifecycleKind::PrincipalRetired => &self.lifecycle.principals,
        };
        facts.record(event.subject(), event.time);
    }

    fn apply_action_result(&self, result: &ActionResult<'_>, out: &mut Outputs) {
        *out.stats.action_results.entry((result.action, result.status)).or_default() += 1;
        match result.status {
            ActionStatus::Done => {
                if let Some(credential) = result.revoked_credential() {
                    self.lifecycle.credentials.record(credential, result.time);
                }
            }
            ActionStatus::Failed => {
                let id: &str = &result.principal_id;
                // The identity as nhid knows it, the alert in its incident; one never seen
                // (evicted since) as the inventory has it.
                let known = self.store.with_existing(id, |identity| {
                    let owner = owner(self.inventory.entry(identity.inventory()), identity);
                    let mut alert = crate::respond::response_failed(result, alert_principal(id, identity.kind, owner));
                    self.gather(identity, &mut alert, None, None, out);
                    alert
                });
                let alert = known.unwrap_or_else(|| {
                    let entry = self.inventory.entry(self.inventory.resolve(id));
                    let kind = entry.and_then(|e| e.kind).unwrap_or(PrincipalType::Unknown);
                    crate::respond::response_failed(
                        result,
                        alert_principal(id, kind, entry.and_then(|e| e.owner.as_deref())),
                    )
                });
                *out.stats.alerts.entry((alert.detector.clone(), alert.severity)).or_default() += 1;
                out.alerts.push(alert);
            }
        }
    }

    fn handle(&self, ev: &AuditEvent<'_>, home: u32, out: &mut Outputs) {
        out.stats.events += 1;
        let t = ev.time;
        self.advance_watermark(t, out);
        let inventory = &self.inventory;
        let mut created = false;
        self.store.with_identity(
            &ev.principal.id,
            || {
                created = true;
                let entry = inventory.resolve(&ev.principal.id);
                let kind = inventory.entry(entry).and_then(|e| e.kind).unwrap_or(ev.principal.kind);
                Identity::new(kind, entry, t)
            },
            |identity| {
                let entry = inventory.entry(identity.inventory());
                let prior_kind = identity.kind;
                let (lane, first_as) = match entry.and_then(|e| e.kind) {
                    Some(kind) => (kind, None),
                    None => identity.lane(ev.principal.kind, ev.principal.inferred),
                };
                identity.set_home(home);
                out.stats.events_by_type[lane.index()] += 1;
                out.stats.events_by_format[ev.source_format.index()][lane.index()] += 1;
                if self.normalize {
                    out.normalized.push(normalized(ev, lane));
                }
                let mut obs = identity.observe(ev, self.learning_ms[lane.index()], self.ranges());
                obs.prior_kind = prior_kind;
                obs.first_as = first_as;
                if obs.new_credential
                    && let Some(credential) = ev.credential.id.as_deref()
                    && self.bindings.bind(credential, &ev.principal.id, t)
                {
                    obs.foreign_credential = true;
                    identity.mark_foreign(credential);
                }
                self.recall(&mut obs, ev, identity);
                for (i, detector) in self.detectors.iter().enumerate() {
                    if let Some((settings, finding)) = detector.check(lane, ev, &obs) {
                        self.raise(i, lane, settings, finding, ev, identity, out);
                    }
                }
            },
        );
        // Only a new identity can break the ceiling; counting shards per event would not be free.
        if created && self.store.over_capacity() {
            let (now, mut closing) = (self.watermark.load(Ordering::Relaxed), Vec::new());
            out.stats.evictions += self.store.evict(now, &mut closing) as u64;
            self.close_evicted(closing, now, out);
        }
    }

    /// Adds what the inventory and the control topics say about this event's principal,
    /// credential and owner.
    /// Nearly free while they said nothing: each lookup starts with a relaxed load of a count.
    fn recall(&self, obs: &mut Observation<'_>, ev: &AuditEvent<'_>, identity: &Identity) {
        obs.registered = (!self.inventory.is_empty()).then_some(identity.inventory().is_some());
        let facts = &self.lifecycle;
        obs.revoked_at = ev.credential.id.as_deref().and_then(|c| facts.credentials.since(c, ev.time));
        obs.retired_at = facts.principals.since(&ev.principal.id, ev.time);
        if !facts.owners.is_empty() {
            let owner = owner(self.inventory.entry(identity.inventory()), identity);
            obs.offboarded_owner = owner.and_then(|o| facts.owners.since(o, ev.time).map(|at| (o.into(), at)));
        }
    }

    /// Aggregates a finding into at most one alert per principal, detector and window,
    /// then asks the policy for an action. The alert names the principal with the type
    /// `lane` its event was judged as: what the policy may do depends on it.
    #[allow(clippy::too_many_arguments)]
    fn raise(
        &self,
        index: usize,
        lane: PrincipalType,
        settings: LaneSettings,
        finding: Finding,
        ev: &AuditEvent<'_>,
        identity: &mut Identity,
        out: &mut Outputs,
    ) {
        let detector = &self.detectors[index];
        let Some((window, suppressed)) = self.aggregate(index, &finding, ev.time, identity, out) else {
            return;
        };
        let entry = self.inventory.entry(identity.inventory());
        let owner = owner(entry, identity);
        let mut severity = finding.severity.unwrap_or(settings.severity);
        if entry.and_then(|e| e.criticality) == Some(Criticality::Critical) {
            severity = severity.raised();
        }
        let principal_id: &str = &ev.principal.id;
        let mut evidence = finding.evidence;
        if let Some(c) = entry.and_then(|e| e.criticality) {
            evidence.insert("criticality".into(), format!("{c:?}").to_lowercase().into());
        }
        let mut alert = Alert {
            alert_id: crate::respond::alert_id(&detector.id, principal_id, window, finding.key),
            time: ev.time,
            detector: detector.id.clone(),
            kind: detector.kind.to_string(),
            severity,
            principal: alert_principal(principal_id, lane, owner),
            credential_id: ev.credential.id.as_deref().map(str::to_owned),
            actor: AlertActor {
                delegating_user: ev.actor.delegating_user.as_deref().map(str::to_owned),
                agent_id: ev.actor.agent_id.as_deref().map(str::to_owned),
                session_id: ev.actor.session_id.as_deref().map(str::to_owned),
            },
            event: Some(AlertEvent::of(ev)),
            event_ids: vec![ev.id.to_string()],
            evidence,
            summary: with_source(finding.summary, ev),
            suppressed_repeats: u64::from(suppressed),
            references: references(&detector.references, finding.references),
            score: Score { probability: finding.probability, baseline: finding.baseline },
            incident_id: None,
        };
        debug_assert!(alert.event_ids.len() <= MAX_EVENT_IDS);
        // Suppressed: no alert, no action. The finding still counts as raised in its window,
        // so its repeats fold into it as into an alert.
        if let Some(rule) = self.suppressions.matching(&alert) {
            let counts = &mut out.stats.suppressed;
            if counts.len() <= rule {
                counts.resize(rule + 1, 0);
            }
            counts[rule] += 1;
            return;
        }
        // Accepted by an analyst's verdict, while it holds: as a suppression.
        if identity.accepted(&detector.id, ev.time) {
            out.stats.accepted += 1;
            return;
        }
        identity.alert_marks_mut(self.detectors.len())[index].last = Some((ev.time, severity));
        // Containment cuts off whoever made the request: the principal, or its impersonator,
        // and never a credential another principal presented first.
        let acting = match ev.actor.impersonator.as_deref() {
            None => Acting {
                foreign: ev.credential.id.as_deref().is_some_and(|c| identity.is_foreign(c)),
                confirmed: identity.confirmed(ev.time),
                ..Acting::principal(ev, lane, entry)
            },
            Some(i) => Acting {
                foreign: i.credential.id.as_deref().is_some_and(|c| self.bindings.bind(c, &i.principal.id, ev.time)),
                ..Acting::impersonator(i, self.inventory.entry(self.inventory.resolve(&i.principal.id)))
            },
        };
        let mut last_action = identity.last_action();
        let response = finding.response.unwrap_or(settings.response);
        let decision = self.policy.decide(&alert, response, settings.act_max_probability, &acting, &mut last_action);
        identity.set_last_action(last_action);
        alert.summary = format!("{} {}", alert.summary, decision.sentence());
        for b in decision.blocks {
            *out.stats.guardrail_blocks.entry(b).or_default() += 1;
        }
        self.gather(identity, &mut alert, Some(index), decision.action.as_ref(), out);
        let storm = decision.storm.map(|mut storm| {
            self.gather(identity, &mut storm, None, None, out);
            storm
        });
        for alert in std::iter::once(alert).chain(storm) {
            *out.stats.alerts.entry((alert.detector.clone(), alert.severity)).or_default() += 1;
            out.alerts.push(alert);
        }
        if let Some(action) = decision.action {
            *out.stats.actions.entry((action.action, action.mode)).or_default() += 1;
            out.actions.push(action);
        }
    }

    /// Gathers an alert of detector instance `detector` (`None`: of nhid's own responses),
    /// and the action it caused, into the identity's incident: the open one, or a new one
    /// when none is open or the gap has passed since its latest alert (that one is closed
    /// first). The identity remembers the alert, and a verdict waiting for it is applied.
    fn gather(
        &self,
        identity: &mut Identity,
        alert: &mut Alert,
        detector: Option<usize>,
        action: Option<&Action>,
        out: &mut Outputs,
    ) {
        self.close_if_quiet(identity, alert.time, out);
        let activity = match identity.incident() {
            Some(_) => IncidentActivity::Update,
            None => {
                identity.set_incident(Incident::open(alert));
                IncidentActivity::Create
            }
        };
        let incident = identity.incident_mut().expect("open: found or opened above");
        incident.join(alert, action);
        alert.incident_id = Some(incident.incident_id.clone());
        out.stats.incidents[activity.index()] += 1;
        out.incidents.push(incident.record(activity, alert.time, None));
        let (last, incident) = (incident.last_seen, id_hash(&incident.incident_id));
        self.open_incidents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(alert.principal.id.as_str().into(), last);
        let detector = detector.map_or(u16::MAX, |i| i as u16);
        identity.remember_alert(RecentAlert { alert: id_hash(&alert.alert_id), incident, detector });
        if self.pending_count.load(Ordering::Relaxed) > 0 {
            self.apply_pending(identity, alert, out);
        }
    }

    /// Applies a verdict: to the identity at once when it remembers the alert or incident
    /// named, else when that is raised.
    fn apply_verdict(&self, v: &Verdict<'_>, out: &mut Outputs) {
        out.stats.verdicts[v.verdict.index()] += 1;
        let target = id_hash(v.target());
        let applied = self.store.with_existing(&v.principal_id, |identity| {
            let detectors = self.detectors_of(identity, target)?;
            self.record_verdict(identity, &v.principal_id, AppliedVerdict::new(v, detectors), out);
            Some(())
        });
        if applied.flatten().is_none() {
            let mut pending = self.pending_verdicts.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.len() >= verdict::MAX_PENDING {
                pending.remove(0);
            }
            let verdict = AppliedVerdict::new(v, Vec::new());
            pending.push(Pending { principal: v.principal_id.as_ref().into(), target: v.target().into(), verdict });
            self.pending_count.store(pending.len(), Ordering::Relaxed);
        }
    }

    /// The verdicts waiting for this alert or its incident, applied.
    fn apply_pending(&self, identity: &mut Identity, alert: &Alert, out: &mut Outputs) {
        let waiting: Vec<Pending> = {
            let mut pending = self.pending_verdicts.lock().unwrap_or_else(PoisonError::into_inner);
            let named = |p: &Pending| {
                *p.principal == *alert.principal.id
                    && (*p.target == *alert.alert_id || Some(&*p.target) == alert.incident_id.as_deref())
            };
            let (waiting, rest) = std::mem::take(&mut *pending).into_iter().partition(named);
            *pending = rest;
            self.pending_count.store(pending.len(), Ordering::Relaxed);
            waiting
        };
        for p in waiting {
            let detectors = self.detectors_of(identity, id_hash(&p.target)).unwrap_or_default();
            self.record_verdict(identity, &p.principal, p.verdict.accepting(detectors), out);
        }
    }

    /// The detector instances of the identity's remembered alerts named by `target` (an
    /// alert's or an incident's id hash); `None` when it remembers none.
    fn detectors_of(&self, identity: &Identity, target: u64) -> Option<Vec<String>> {
        let named: Vec<&RecentAlert> =
            identity.recent_alerts().iter().filter(|r| r.alert == target || r.incident == target).collect();
        if named.is_empty() {
            return None;
        }
        let mut ids: Vec<String> = Vec::new();
        for d in named.iter().filter_map(|r| self.detectors.get(usize::from(r.detector))) {
            if !ids.contains(&d.id) {
                ids.push(d.id.clone());
            }
        }
        Some(ids)
    }

    fn record_verdict(&self, identity: &mut Identity, principal: &str, v: AppliedVerdict, out: &mut Outputs) {
        if identity.add_verdict(v.clone()) {
            out.verdicts.push((principal.to_string(), v));
        }
    }

    /// Forgets the verdicts waiting past their expiry.
    fn forget_pending_verdicts(&self, now: Millis) {
        if self.pending_count.load(Ordering::Relaxed) > 0 {
            let mut pending = self.pending_verdicts.lock().unwrap_or_else(PoisonError::into_inner);
            pending.retain(|p| p.verdict.until >= now);
            self.pending_count.store(pending.len(), Ordering::Relaxed);
        }
    }

    fn close(&self, incident: Incident, at: Millis, why: CloseReason, out: &mut Outputs) {
        out.stats.incidents[IncidentActivity::Close.index()] += 1;
        out.incidents.push(incident.record(IncidentActivity::Close, at, Some(why)));
    }

    /// Closes the identity's incident if no alert came for the gap before `t`, as of when
    /// the gap passed.
    fn close_if_quiet(&self, identity: &mut Identity, t: Millis, out: &mut Outputs) {
        let gap = self.incident_gap;
        if identity.incident().is_some_and(|i| i.is_over(t, gap))
            && let Some(quiet) = identity.take_incident()
        {
            let at = quiet.last_seen.saturating_add(gap);
            self.close(quiet, at, CloseReason::Quiet, out);
        }
    }

    /// Closes the incidents with no alert for the gap before `now` (event time).
    fn close_quiet_incidents(&self, now: Millis, out: &mut Outputs) {
        let gap = self.incident_gap;
        let lock = || self.open_incidents.lock().unwrap_or_else(PoisonError::into_inner);
        let due: Vec<Box<str>> = {
            let open = lock();
            if open.is_empty() {
                return;
            }
            open.iter().filter(|&(_, &last)| now > last.saturating_add(gap)).map(|(id, _)| id.clone()).collect()
        };
        for id in due {
            // Under the identity's lock, so that an alert opening its next incident meanwhile
            // keeps its entry. One still open had an alert since.
            let here = self.store.with_existing(&id, |identity| {
                self.close_if_quiet(identity, now, out);
                if identity.incident().is_none() {
                    lock().remove(&id);
                }
            });
            // Gone: its incident was closed when it was evicted, or went with its partition
            // to the consumer that restores it.
            if here.is_none() {
                lock().remove(&id);
            }
        }
    }

    /// Closes the incidents of identities that left the state.
    fn close_evicted(&self, incidents: Vec<Incident>, now: Millis, out: &mut Outputs) {
        for incident in incidents {
            self.close(incident, now, CloseReason::Evicted, out);
        }
    }

    /// Folds a finding into the identity's mark for detector `index`. `None` when it is the
    /// finding already raised (same unit) or a repeat within the cooldown window (counted).
    /// Else the window and the repeats folded in before it. A finding with another key
    /// (another network, action, credential) is an alert of its own: new evidence is never
    /// folded into an earlier alert unseen.
    fn aggregate(
        &self,
        index: usize,
        finding: &Finding,
        time: Millis,
        identity: &mut Identity,
        out: &mut Outputs,
    ) -> Option<(i64, u32)> {
        let mark = &mut identity.alert_marks_mut(self.detectors.len())[index];
        if mark.unit == Some(finding.unit) && mark.raised(finding.key) {
            return None;
        }
        mark.unit = Some(finding.unit);
        // An earlier window than the mark's is out-of-order input (a shuffled batch, a lagging
        // partition): its alert was raised or superseded already, and going back to it would
        // emit its alert id a second time, so the finding counts towards the latest window.
        let window = time.div_euclid(self.detectors[index].cooldown_ms).max(mark.window.unwrap_or(i64::MIN));
        if mark.window == Some(window) {
            if mark.raised(finding.key) || !mark.raise(finding.key, finding.unit) {
                mark.suppressed += 1;
                out.stats.suppressed_repeats += 1;
                return None;
            }
            return Some((window, 0));
        }
        mark.window = Some(window);
        mark.start(finding.key, finding.unit);
        Some((window, std::mem::take(&mut mark.suppressed)))
    }

    /// Moves the event-time watermark and runs idle eviction once per `SWEEP_EVERY` of it.
    /// The watermark moves in steps of a second at least: workers share its cache line, and
    /// a write per event would make them take turns on it.
    ///
    /// It moves further than the skew at once only when [`JUMP_QUORUM`] events beyond it
    /// arrived without one moving it the ordinary way in between, and then to the earliest
    /// of them: a stream resuming after a gap (a second file, a topic idle overnight) does
    /// that within a moment, and one event dated weeks ahead (which the wall clock cannot
    /// refuse in a replay of old files) never evicts every identity.
    fn advance_watermark(&self, t: Millis, out: &mut Outputs) {
        let current = self.watermark.load(Ordering::Relaxed);
        if t < current.saturating_add(SECOND) {
            return;
        }
        let mut to = t;
        if current != Millis::MIN && t - current > self.max_clock_skew {
            self.ahead_min.fetch_min(t, Ordering::Relaxed);
            if self.ahead.fetch_add(1, Ordering::Relaxed) + 1 < JUMP_QUORUM {
                return;
            }
            self.ahead.store(0, Ordering::Relaxed);
            to = self.ahead_min.swap(Millis::MAX, Ordering::Relaxed).min(t);
        } else if self.ahead.load(Ordering::Relaxed) != 0 {
            self.ahead.store(0, Ordering::Relaxed);
            self.ahead_min.store(Millis::MAX, Ordering::Relaxed);
        }
        let watermark = self.watermark.fetch_max(to, Ordering::Relaxed).max(to);
        let due = self.next_sweep.load(Ordering::Relaxed);
        if watermark >= due
            && self
                .next_sweep
                .compare_exchange(due, watermark + SWEEP_EVERY, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let mut closing = Vec::new();
            out.stats.evictions += self.store.evict(watermark, &mut closing) as u64;
            self.close_evicted(closing, watermark, out);
            self.close_quiet_incidents(watermark, out);
            self.forget_pending_verdicts(watermark);
            self.lifecycle.forget_before(watermark.saturating_sub(FACT_TTL));
        }
    }
}

/// Bytes of a user agent a summary quotes: enough to recognize a client, not a page of
/// whatever the caller sent.
const SUMMARY_CLIENT_CHARS: usize = 80;

/// A finding's sentence, and where the call came from when it does not say: the address an
/// analyst looks up first, and the client the caller named (quoted: the caller chooses it).
fn with_source(summary: String, ev: &AuditEvent<'_>) -> String {
    match ev.source.ip.as_deref() {
        Some(ip) if !summary.contains(ip) => {
            let client = ev.source.user_agent.as_deref().map(|ua| {
                let quoted: String = ua.chars().take(SUMMARY_CLIENT_CHARS).collect();
                format!(" with {quoted:?}")
            });
            format!("{summary} The call came from {ip}{}.", client.unwrap_or_default())
        }
        _ => summary,
    }
}

/// The detector's references, then the finding's own ones it does not already name.
fn references(detector: &[String], own: Vec<String>) -> Vec<String> {
    let mut all = detector.to_vec();
    for r in own {
        if !all.contains(&r) {
            all.push(r);
        }
    }
    all
}

/// Who answers for an identity, as alerts name it and offboarding is checked: the
/// inventory's owner, else the one its events report.
fn owner<'a>(entry: Option<&'a Entry>, identity: &'a Identity) -> Option<&'a str> {
    entry.and_then(|e| e.owner.as_deref()).or(identity.owner.as_deref())
}

fn normalized(ev: &AuditEvent<'_>, lane: PrincipalType) -> Normalized {
    let mut ev = ev.clone();
    ev.principal.kind = lane;
    Normalized {
        lane,
        principal_id: ev.principal.id.to_string(),
        time: ev.time,
        json: serde_json::to_vec(&ev).expect("events serialize"),
    }
}

/// An event dated beyond `latest`, the transport's time (or the wall clock) plus the skew.
fn implausible(time: Millis, latest: Millis, skew: Millis) -> DecodeError {
    DecodeError::new(
        DeadLetterReason::ImplausibleTime,
        format!(
            "event time {} is more than {} s ahead of the transport's time or the wall clock ({})",
            format_rfc3339(time),
            skew / SECOND,
            format_rfc3339(latest - skew)
        ),
    )
}

fn dead_letter(e: DecodeError, bytes: &[u8], origin: Origin<'_>, out: &mut Outputs) {
    let original = Original { head: bytes, len: bytes.len(), xxh3: xxhash_rust::xxh3::xxh3_128(bytes) };
    dead_letter_of(e, original, origin, out);
}

fn dead_letter_of(e: DecodeError, original: Original<'_>, origin: Origin<'_>, out: &mut Outputs) {
    out.stats.dead_letters[e.reason.index()] += 1;
    out.dead_letters.push(DeadLetter {
        reason: e.reason,
        detail: e.detail,
        record: e.record,
        source: origin.source.to_string(),
        partition: origin.partition,
        offset: origin.offset,
        bytes: original.head[..original.head.len().min(MAX_DEAD_LETTER_BYTES)].to_vec(),
        original_len: original.len,
        original_xxh3: format!("{:032x}", original.xxh3),
    });
}
