//! Detector kinds (one file each) and their instances (`detectors/*.toml`).
//!
//! A kind is Rust code that turns an [`Observation`] into a [`Finding`]; an instance is
//! a file that names a kind and gives it thresholds per principal type, a severity, the
//! response it asks for and its references. Humans run in their own lane: a detector
//! evaluates humans (and `unknown` principals) only where its file has a `[human]`
//! (`[unknown]`) table; `[default]` covers the machine types not named.

pub mod breadth;
pub mod content;
pub mod denied_burst;
pub mod dormant_reactivation;
pub mod expired_credential;
pub mod interactive_login;
pub mod missing_attribution;
pub mod new_source;
pub mod orphaned_principal;
pub mod privilege_change;
pub mod rate_spike;
pub mod scope_drift;
pub mod session_inheritance;
pub mod shared_credential;
pub mod static_credential;
pub mod unregistered_principal;
pub mod volume_ceiling;

use std::any::Any;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::state::Observation;
use crate::state::baseline::WINDOWS;
use crate::state::tail::upper_tail;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::{MAX_SETTING_SECS, Millis, SECOND};
use nhid_model::vocab::Response;
use nhid_model::vocab::Severity;

/// What a detector saw. Built only when it fires, so it may allocate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Finding {
    /// Observed against expected numbers, for the alert's `evidence`.
    pub evidence: serde_json::Map<String, serde_json::Value>,
    pub summary: String,
    /// The natural unit a finding repeats in (the minute for a rate, the hour for a
    /// ceiling): further findings in the same unit are the same finding, not repeats.
    pub unit: i64,
    /// How surprising it is under the identity's own model: the chance of seeing this
    /// under its baseline. `None` for facts no baseline explains away (a privilege
    /// operation, a revoked key used); the response policy acts on a model's finding only
    /// when it clears its bar.
    pub probability: Option<f64>,
    /// What it was judged against, in words (`None` for facts).
    pub baseline: Option<String>,
    /// What is new in it (the network, action, credential), hashed: within one
    /// aggregation window, a finding of the same detector with another key raises an alert
    /// of its own instead of being folded into the first one's count.
    pub key: u32,
    /// Its own severity, where the finding carries one (a content rule's level), instead
    /// of the detector file's.
    pub severity: Option<Severity>,
    /// Its own response, where the finding asks for one (a content rule's call from a
    /// place the identity never used), instead of the lane's; the policy's guardrails apply
    /// to it as to any.
    pub response: Option<Response>,
    /// References of its own beside the detector's (a content rule's ATT&CK techniques).
    pub references: Vec<String>,
}

/// A detector kind is its parameters for one lane (deserialized from the lane's table,
/// so a file's typos are errors) and the check it makes with them.
pub trait Kind: DeserializeOwned + Send + Sync + 'static {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding>;

    /// The lane whose settings apply: the identity's current type, unless the kind judges
    /// the event against what the identity was before it.
    fn lane(lane: PrincipalType, _obs: &Observation<'_>) -> PrincipalType {
        lane
    }
}

/// A kind with its parameters for every lane, behind one trait object per instance.
/// `Any` lets readers outside the engine's loop ask an instance for its kind's parameters
/// ([`Detector::params`]) instead of keeping thresholds of their own.
trait Check: Any + Send + Sync {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding>;
    fn lane(&self, lane: PrincipalType, obs: &Observation<'_>) -> PrincipalType;
}

impl<K: Kind> Check for PerType<K> {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding> {
        self.get(lane)?.check(lane, ev, obs)
    }

    fn lane(&self, lane: PrincipalType, obs: &Observation<'_>) -> PrincipalType {
        K::lane(lane, obs)
    }
}

/// Per-type settings of an instance: severity and response may differ per lane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaneSettings {
    pub severity: Severity,
    pub response: Response,
    /// The lane's own bar for acting on a model's finding, where the narrow action it asks
    /// for is cheap (ending an agent's delegated session); else the policy's
    /// `response.act_max_probability`.
    pub act_max_probability: Option<f64>,
}

pub struct Detector {
    /// Instance id: the file stem (`detectors/rate_spike.toml` → `rate_spike`).
    pub id: String,
    pub kind: &'static str,
    pub description: String,
    pub references: Vec<String>,
    /// Aggregation window: one alert per principal and detector per window.
    pub cooldown_ms: Millis,
    /// Indexed by `PrincipalType::index()`; `None` = not evaluated for that type.
    pub lanes: [Option<LaneSettings>; PrincipalType::ALL.len()],
    check: Box<dyn Check>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("id", &self.id).field("kind", &self.kind).finish()
    }
}

impl Detector {
    pub fn check(
        &self,
        lane: PrincipalType,
        ev: &AuditEvent<'_>,
        obs: &Observation<'_>,
    ) -> Option<(LaneSettings, Finding)> {
        let lane = self.check.lane(lane, obs);
        let settings = self.lanes[lane.index()]?;
        self.check.check(lane, ev, obs).map(|f| (settings, f))
    }

    /// This instance's parameters in `lane` when it is of kind `K` and evaluates the lane.
    pub fn params<K: Kind>(&self, lane: PrincipalType) -> Option<&K> {
        let check: &dyn Any = &*self.check;
        check.downcast_ref::<PerType<K>>()?.get(lane)
    }
}

/// Per-type parameters of one kind, parsed from the file's tables.
pub struct PerType<P>(pub [Option<P>; PrincipalType::ALL.len()]);

impl<P> PerType<P> {
    pub fn get(&self, lane: PrincipalType) -> Option<&P> {
        self.0[lane.index()].as_ref()
    }
}

/// A kind nhid knows: the id a file's `kind` names, the instance shipped in `detectors/`
/// (compiled in, used when no directory is given; its stem is the kind's id) and how to
/// build the kind from a file's lane tables.
pub struct Registered {
    pub id: &'static str,
    pub builtin: &'static str,
    build: Build,
}

type Build = fn(&LaneTables) -> Result<Box<dyn Check>, Vec<Problem>>;

const fn kind<K: Kind>(id: &'static str, builtin: &'static str) -> Registered {
    Registered { id, builtin, build: build::<K> }
}

/// Every kind, in the order built-in instances run (the order alerts of one event come in).
pub const REGISTRY: &[Registered] = &[
    kind::<rate_spike::RateSpike>("rate_spike", include_str!("../../../../detectors/rate_spike.toml")),
    kind::<volume_ceiling::VolumeCeiling>("volume_ceiling", include_str!("../../../../detectors/volume_ceiling.toml")),
    kind::<new_source::NewSource>("new_source", include_str!("../../../../detectors/new_source.toml")),
    kind::<scope_drift::ScopeDrift>("scope_drift", include_str!("../../../../detectors/scope_drift.toml")),
    kind::<denied_burst::DeniedBurst>("denied_burst", include_str!("../../../../detectors/denied_burst.toml")),
    kind::<static_credential::StaticCredential>(
        "static_credential",
        include_str!("../../../../detectors/static_credential.toml"),
    ),
    kind::<expired_credential::ExpiredCredential>(
        "expired_credential",
        include_str!("../../../../detectors/expired_credential.toml"),
    ),
    kind::<privilege_change::PrivilegeChange>(
        "privilege_change",
        include_str!("../../../../detectors/privilege_change.toml"),
    ),
    kind::<orphaned_principal::OrphanedPrincipal>(
        "orphaned_principal",
        include_str!("../../../../detectors/orphaned_principal.toml"),
    ),
    kind::<breadth::Breadth>("breadth", include_str!("../../../../detectors/breadth.toml")),
    kind::<dormant_reactivation::DormantReactivation>(
        "dormant_reactivation",
        include_str!("../../../../detectors/dormant_reactivation.toml"),
    ),
    kind::<shared_credential::SharedCredential>(
        "shared_credential",
        include_str!("../../../../detectors/shared_credential.toml"),
    ),
    kind::<session_inheritance::SessionInheritance>(
        "session_inheritance",
        include_str!("../../../../detectors/session_inheritance.toml"),
    ),
    kind::<interactive_login::InteractiveLogin>(
        "interactive_login",
        include_str!("../../../../detectors/interactive_login.toml"),
    ),
    kind::<unregistered_principal::UnregisteredPrincipal>(
        "unregistered_principal",
        include_str!("../../../../detectors/unregistered_principal.toml"),
    ),
    kind::<missing_attribution::MissingAttribution>(
        "missing_attribution",
        include_str!("../../../../detectors/missing_attribution.toml"),
    ),
    kind::<content::Content>("content", include_str!("../../../../detectors/content.toml")),
];

/// The ids of [`REGISTRY`], for messages and for picking kinds by name.
pub const KINDS: &[&str] = &{
    let mut ids = [""; REGISTRY.len()];
    let mut i = 0;
    while i < ids.len() {
        ids[i] = REGISTRY[i].id;
        i += 1;
    }
    ids
};

/// One problem found in a detector file; shown after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("unknown key `{0}`: expected one of {HEAD_KEYS:?}, `default`, or a principal type table")]
    UnknownKey(String),
    #[error("missing `[default]` table (parameters for machine principals)")]
    MissingDefault,
    #[error("cooldown_secs must be between 1 and {MAX_SETTING_SECS} (ten years)")]
    Cooldown,
    #[error("references must name at least one MITRE ATT&CK or OWASP NHI entry")]
    NoReferences,
    #[error("[{0}] enabled must be true or false")]
    Enabled(PrincipalType),
    /// A lane's own `severity` or `response`.
    #[error("[{lane}] {key}: {source}")]
    LaneSetting { lane: PrincipalType, key: &'static str, source: toml::de::Error },
    #[error("[human] response must be \"none\": humans are never acted on automatically")]
    HumanResponse,
    /// A lane's table does not fit the kind's parameters.
    #[error("[{lane}] {source}")]
    Parameters { lane: PrincipalType, source: toml::de::Error },
    #[error("unknown kind `{0}`: expected one of {KINDS:?}")]
    UnknownKind(String),
}

/// Why the detectors did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", dir.display())]
    ReadDir { dir: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("{detector}: {problem}")]
    Invalid { detector: String, problem: Problem },
    #[error("no detector files found")]
    NoFiles,
}

/// Every error of every detector file, so that one run shows them all; one a line.
#[derive(Debug, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl std::fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.messages().collect::<Vec<_>>().join("\n"))
    }
}

impl LoadErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, LoadError> {
        self.0.iter()
    }

    /// Each error as its own message, for callers that print them with others.
    pub fn messages(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(ToString::to_string)
    }

    fn invalid(detector: &str, problems: Vec<Problem>) -> Self {
        LoadErrors(
            problems.into_iter().map(|problem| LoadError::Invalid { detector: detector.into(), problem }).collect(),
        )
    }
}

/// Common keys of every detector file; the remaining tables are per-type parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHead {
    kind: String,
    description: String,
    severity: Severity,
    #[serde(default)]
    response: Response,
    references: Vec<String>,
    #[serde(default = "default_cooldown_secs")]
    cooldown_secs: u64,
}

fn default_cooldown_secs() -> u64 {
    3_600
}

const HEAD_KEYS: &[&str] = &["kind", "description", "severity", "response", "references", "cooldown_secs"];

/// Each enabled lane's parameter table, by `PrincipalType::index()`.
type LaneTables = [Option<toml::Table>; PrincipalType::ALL.len()];

/// Parses one detector file. Every problem is reported, with the file's name.
pub fn parse(id: &str, text: &str) -> Result<Detector, LoadErrors> {
    let mut problems = Vec::new();
    let detector = toml::from_str(text)
        .map_err(|e| problems.push(Problem::Toml(e)))
        .ok()
        .and_then(|table| instance(id, table, &mut problems));
    match detector {
        Some(d) if problems.is_empty() => Ok(d),
        _ => Err(LoadErrors::invalid(id, problems)),
    }
}

/// The detector a parsed file describes, or `None` with what is wrong in `problems`.
fn instance(id: &str, table: toml::Table, problems: &mut Vec<Problem>) -> Option<Detector> {
    let (head, lanes): (toml::Table, toml::Table) =
        table.into_iter().partition(|(k, _)| HEAD_KEYS.contains(&k.as_str()));
    let head: Option<FileHead> = toml::Value::Table(head).try_into().map_err(|e| problems.push(Problem::Toml(e))).ok();
    for key in lanes.keys() {
        if key != "default" && PrincipalType::parse(key).is_none() {
            problems.push(Problem::UnknownKey(key.clone()));
        }
    }
    if !lanes.contains_key("default") {
        problems.push(Problem::MissingDefault);
    }
    let head = head?;
    if !(1..=MAX_SETTING_SECS).contains(&head.cooldown_secs) {
        problems.push(Problem::Cooldown);
    }
    if head.references.is_empty() {
        problems.push(Problem::NoReferences);
    }
    let (settings, tables) = lane_settings(&head, &lanes, problems);
    let kind = REGISTRY.iter().find(|k| k.id == head.kind);
    let check = match kind {
        Some(kind) => (kind.build)(&tables).map_err(|ps| problems.extend(ps)).ok(),
        None => {
            problems.push(Problem::UnknownKind(head.kind.clone()));
            None
        }
    };
    Some(Detector {
        id: id.to_string(),
        kind: kind?.id,
        description: head.description,
        references: head.references,
        // Refused above when out of range; clamped so the refusal is all that happens.
        cooldown_ms: head.cooldown_secs.min(MAX_SETTING_SECS) as Millis * SECOND,
        lanes: settings,
        check: check?,
    })
}

/// Each lane's severity and response (the file's unless the lane sets its own) and its
/// parameter table; disabled lanes and lanes the file does not evaluate stay `None`.
fn lane_settings(
    head: &FileHead,
    lanes: &toml::Table,
    problems: &mut Vec<Problem>,
) -> ([Option<LaneSettings>; PrincipalType::ALL.len()], LaneTables) {
    let mut settings = [None; PrincipalType::ALL.len()];
    let mut tables: LaneTables = Default::default();
    for &lane in PrincipalType::ALL {
        let Some(mut t) = lane_table(lanes, lane) else {
            continue;
        };
        let enabled = match t.remove("enabled") {
            None => true,
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => {
                problems.push(Problem::Enabled(lane));
                true
            }
        };
        let severity = own_setting(&mut t, "severity", head.severity, lane, problems);
        let response = own_setting(&mut t, "response", head.response, lane, problems);
        let act_max_probability = own_setting(&mut t, "act_max_probability", None, lane, problems).flatten();
        if lane == PrincipalType::Human && response.is_some_and(|r| r != Response::None) {
            problems.push(Problem::HumanResponse);
        }
        if let (true, Some(severity), Some(response)) = (enabled, severity, response) {
            settings[lane.index()] = Some(LaneSettings { severity, response, act_max_probability });
            tables[lane.index()] = Some(t);
        }
    }
    (settings, tables)
}

/// A lane's table: machine types inherit `[default]` under their own; humans and unknown
/// principals only run where the file names them.
fn lane_table(lanes: &toml::Table, lane: PrincipalType) -> Option<toml::Table> {
    let own = lanes.get(lane.as_str()).and_then(|v| v.as_table()).cloned();
    if !lane.is_machine() {
        return own;
    }
    let mut merged = lanes.get("default").and_then(|v| v.as_table()).cloned()?;
    merged.extend(own.unwrap_or_default());
    Some(merged)
}

/// Takes `key` out of a lane's table: the lane's own value, else the file's.
fn own_setting<T: DeserializeOwned>(
    table: &mut toml::Table,
    key: &'static str,
    file: T,
    lane: PrincipalType,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match table.remove(key) {
        None => Some(file),
        Some(v) => v.try_into().map_err(|source| problems.push(Problem::LaneSetting { lane, key, source })).ok(),
    }
}

/// Deserializes each enabled lane's table into kind `K`'s parameters.
fn build<K: Kind>(tables: &LaneTables) -> Result<Box<dyn Check>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut out: [Option<K>; PrincipalType::ALL.len()] = std::array::from_fn(|_| None);
    for &lane in PrincipalType::ALL {
        if let Some(t) = &tables[lane.index()] {
            match toml::Value::Table(t.clone()).try_into::<K>() {
                Ok(p) => out[lane.index()] = Some(p),
                Err(source) => problems.push(Problem::Parameters { lane, source }),
            }
        }
    }
    if problems.is_empty() { Ok(Box::new(PerType(out))) } else { Err(problems) }
}

/// Loads every `*.toml` in `dir` (sorted, so the detector order is stable), or the
/// built-in set when `dir` is `None`. Returns every error of every file at once.
pub fn load(dir: Option<&Path>) -> Result<Vec<Detector>, LoadErrors> {
    let files: Vec<(String, String)> = match dir {
        None => REGISTRY.iter().map(|k| (k.id.to_string(), k.builtin.to_string())).collect(),
        Some(dir) => read_files(dir)?,
    };
    let mut detectors = Vec::new();
    let mut errors = Vec::new();
    for (id, text) in files {
        match parse(&id, &text) {
            Ok(d) => detectors.push(d),
            Err(es) => errors.extend(es.0),
        }
    }
    if detectors.is_empty() && errors.is_empty() {
        errors.push(LoadError::NoFiles);
    }
    if errors.is_empty() { Ok(detectors) } else { Err(LoadErrors(errors)) }
}

/// The stem and text of every `*.toml` in `dir`, in path order.
fn read_files(dir: &Path) -> Result<Vec<(String, String)>, LoadErrors> {
    let entries = std::fs::read_dir(dir)
        .map_err(|source| LoadErrors(vec![LoadError::ReadDir { dir: dir.to_path_buf(), source }]))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((id, text)),
            Err(source) => errors.push(LoadError::ReadFile { path, source }),
        }
    }
    if errors.is_empty() { Ok(files) } else { Err(LoadErrors(errors)) }
}

/// Builds a `serde_json::Map` of evidence from `key => value` pairs; absent (`None`)
/// values are left out rather than written as null.
#[macro_export]
macro_rules! evidence {
    ($($k:literal => $v:expr),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $(
            let v = serde_json::json!($v);
            if !v.is_null() {
                m.insert($k.to_string(), v);
            }
        )*
        m
    }};
}

/// A finding's key for `what` (an operation, a rule) done with this event's source address
/// and credential: the same thing from another source or credential is another finding, so
/// a benign change and an attacker's in one window never share one alert.
pub(crate) fn key_with_source(what: &str, ev: &AuditEvent<'_>) -> u32 {
    use crate::state::sets::fingerprint;
    fingerprint(what)
        ^ ev.source.ip.as_deref().map_or(0, fingerprint).rotate_left(7)
        ^ ev.credential.id.as_deref().map_or(0, fingerprint).rotate_left(13)
}

/// Operation names a kind looks for (`CreateAccessKey`, `ConsoleLogin`, `user.session.start`),
/// matched without case against an event's whole action or its operation: the part after
/// the last `:` or `/` (`iam:CreateAccessKey`, `google.iam.admin.v1.CreateServiceAccountKey`
/// after the last `.` too).
#[derive(Debug, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct Operations {
    names: std::collections::HashSet<String, foldhash::fast::RandomState>,
    /// One bit per (length, first letter) of the names: nearly every action is rejected by
    /// it before anything is lowercased or hashed, which matters on a check that runs for
    /// every event (`cargo bench --bench pipeline -- pipeline_per_kind`).
    shapes: [u64; 8],
}

/// The prefilter's bit for a name of this length starting with this byte (any case).
fn shape(len: usize, first: u8) -> (usize, u64) {
    let bit = (len % 32) * 16 + usize::from(first.to_ascii_lowercase() % 16);
    (bit / 64, 1 << (bit % 64))
}

impl From<Vec<String>> for Operations {
    fn from(names: Vec<String>) -> Self {
        let names: std::collections::HashSet<String, _> = names.iter().map(|o| o.to_ascii_lowercase()).collect();
        let mut shapes = [0u64; 8];
        for n in names.iter().filter(|n| !n.is_empty()) {
            let (word, bit) = shape(n.len(), n.as_bytes()[0]);
            shapes[word] |= bit;
        }
        Operations { names, shapes }
    }
}

impl Operations {
    pub fn matches(&self, action: &str) -> bool {
        // One scan from the end, on every event: the operation starts after the last `:` or
        // `/`, its last segment after the last `.` found before reaching it.
        let (mut operation_at, mut last_at) = (0, None);
        for (i, &c) in action.as_bytes().iter().enumerate().rev() {
            // Letters, most of an action, come after every separator: one comparison each.
            if c > b':' {
                continue;
            }
            match c {
                b':' | b'/' => {
                    operation_at = i + 1;
                    break;
                }
                b'.' if last_at.is_none() => last_at = Some(i + 1),
                _ => {}
            }
        }
        // Both at ASCII bytes, so at character boundaries.
        let (operation, last) = (&action[operation_at..], &action[last_at.unwrap_or(operation_at)..]);
        self.contains(last)
            || (operation.len() != last.len() && self.contains(operation))
            || (action.len() != operation.len() && self.contains(action))
    }

    fn contains(&self, name: &str) -> bool {
        let Some(&first) = name.as_bytes().first() else { return false };
        let (word, bit) = shape(name.len(), first);
        if self.shapes[word] & bit == 0 {
            return false;
        }
        // Lowercase into a stack buffer: no allocation on the per-event path.
        let mut buf = [0u8; 96];
        let Some(lower) = buf.get_mut(..name.len()) else { return false };
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        std::str::from_utf8(lower).is_ok_and(|l| self.names.contains(l))
    }
}

/// serde default for the switches that are on unless a file turns them off.
pub(crate) fn yes() -> bool {
    true
}

/// A duration for a summary, in the largest unit that keeps it readable: "45 seconds",
/// "12 minutes", "3 hours", "4 days" (whole units, rounded down).
pub(crate) fn span(ms: Millis) -> String {
    let secs = ms / SECOND;
    // Below two of a unit, the next smaller one reads better ("90 seconds", not "1 minute").
    let (n, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|&(size, _)| secs >= 2 * size)
        .map_or((secs, "second"), |(size, unit)| (secs / size, unit));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The count test of the rate kinds: for each window of [`WINDOWS`], the chance of at
/// least `counts[i]` under the identity's model of that window (`models[i]`: mean and
/// variance), among windows whose count is also `ratio` times the expected and above
/// `floors[i]` (the kind's margin over a recurring daily peak and over the identity's
/// busiest bucket lately). Returns the
/// most surprising window: its index, expected count and probability. Only windows that
/// clear the cheap ratio test compute a tail.
pub(crate) fn count_test(
    counts: &[u32; WINDOWS.len()],
    models: &[(f32, f32); WINDOWS.len()],
    floors: &[f32; WINDOWS.len()],
    ratio: f32,
) -> Option<(usize, f64, f64)> {
    let mut best: Option<(usize, f64, f64)> = None;
    for (i, ((&count, &(mean, var)), &floor)) in counts.iter().zip(models).zip(floors).enumerate() {
        let (count, expected) = (f64::from(count), f64::from(mean));
        if count < f64::from(ratio) * expected || count <= f64::from(floor) {
            continue;
        }
        let p = upper_tail(count, expected, f64::from(var));
        if best.is_none_or(|(_, _, b)| p < b) {
            best = Some((i, expected, p));
        }
    }
    best
}

/// Whether a credential holding `share` of the identity's recent calls carries the excess of
/// a count `observed` over `expected`: a thief's calls are the excess, which is
/// `1 - expected/observed` of the count, so the credential must hold that share of it, scaled
/// so that at the bar (`ratio` times the expectation) `min_share` is enough. A burst spread
/// over a workload's credentials (cold starts, instances) leaves each far below the excess.
/// Callers pass [`crate::state::Observation::credential_share_bound`]: a share of few calls
/// is not yet a credential carrying them.
pub(crate) fn carries_excess(share: f32, min_share: f32, ratio: f32, observed: f32, expected: f32) -> bool {
    let excess = (1.0 - expected / observed.max(f32::MIN_POSITIVE)).max(0.0);
    share >= min_share * excess / (1.0 - 1.0 / ratio.max(1.01))
}

/// A probability for evidence: three significant digits.
pub(crate) fn round_probability(p: f64) -> f64 {
    if p <= 0.0 || !p.is_finite() {
        return p;
    }
    let scale = 10f64.powi(2 - p.log10().floor() as i32);
    (p * scale).round() / scale
}

/// Rounds for evidence so alerts read well and stay stable across platforms.
pub(crate) fn round2(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

/// For the kinds' unit tests: a shipped instance, and an event with what a fresh identity
/// observed of it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::state::Identity;
    use nhid_model::event::{Actor, Credential, CredentialKind, Outcome, Principal, Source, SourceFormat};

    pub fn shipped(id: &str) -> Detector {
        let kind = REGISTRY.iter().find(|k| k.id == id).expect("a shipped detector");
        parse(id, kind.builtin).expect("shipped detectors parse")
    }

    pub fn event(time: Millis, kind: PrincipalType) -> AuditEvent<'static> {
        AuditEvent {
            id: "e1".into(),
            time,
            principal: Principal { id: "svc-a".into(), kind, name: None, owner: None, tenant: None, inferred: false },
            credential: Credential { id: Some("AKIA1".into()), kind: CredentialKind::StaticKey, ..Default::default() },
            actor: Actor::default(),
            action: "s3:GetObject".into(),
            service: "s3".into(),
            resource: None,
            outcome: Outcome::Success,
            source: Source::default(),
            bytes_out: None,
            source_format: SourceFormat::Native,
            rules: Vec::new(),
            raw: "",
            raw_fields: Default::default(),
        }
    }

    pub fn observe<'e>(ev: &'e AuditEvent<'_>) -> Observation<'e> {
        Identity::new(ev.principal.kind, None, ev.time).observe(ev, 0, crate::context::network::Ranges::builtin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_detector_loads_from_the_directory_and_builtin() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../detectors");
        let from_dir = load(Some(&dir)).unwrap();
        let builtin = load(None).unwrap();
        assert_eq!(from_dir.len(), builtin.len());
        let mut kinds: Vec<_> = builtin.iter().map(|d| d.kind).collect();
        kinds.sort();
        let mut expected = KINDS.to_vec();
        expected.sort();
        assert_eq!(kinds, expected);
        for d in &builtin {
            assert!(d.lanes[PrincipalType::Human.index()].is_none_or(|l| l.response == Response::None), "{}", d.id);
            // Nor by a response a finding asks for itself.
            for lane in [PrincipalType::Human, PrincipalType::Unknown] {
                if let Some(c) = d.params::<content::Content>(lane) {
                    assert_eq!(c.from_elsewhere, Response::None, "{}: {lane}", d.id);
                }
            }
        }
    }

    #[test]
    fn operations_match_the_action_or_its_last_segment_in_any_case() {
        let ops = Operations::from(vec!["CreateAccessKey".into(), "user.session.start".into(), "ConsoleLogin".into()]);
        assert!(ops.matches("iam:CreateAccessKey"));
        assert!(ops.matches("iam:createaccesskey"));
        assert!(ops.matches("google.iam.admin.v1.CreateAccessKey"));
        assert!(ops.matches("user.session.start"));
        assert!(ops.matches("okta:user.session.start"));
        assert!(ops.matches("signin:ConsoleLogin"));
        assert!(!ops.matches("iam:CreateAccessKeys"));
        assert!(!ops.matches("user.session.end"));
        // The operation is what follows the last `:` or `/`; a `.` before either is not in it.
        assert!(ops.matches("projects/p/locations/l:user.session.start"));
        assert!(ops.matches("a.b/c:d.CreateAccessKey"));
        assert!(!ops.matches("iam.CreateAccessKey:Get"));
        assert!(!ops.matches("CreateAccessKey/"));
        assert!(!ops.matches(&"x".repeat(200)));
    }

    #[test]
    fn spans_read_in_the_largest_whole_unit() {
        assert_eq!(span(SECOND), "1 second");
        assert_eq!(span(90 * SECOND), "90 seconds");
        assert_eq!(span(2 * 60 * SECOND), "2 minutes");
        assert_eq!(span(3 * 3_600 * SECOND + 59 * SECOND), "3 hours");
        assert_eq!(span(4 * 86_400 * SECOND), "4 days");
    }

    #[test]
    fn every_error_of_a_file_is_reported() {
        let text = r#"
kind = "rate_spike"
description = "x"
severity = "urgent"
references = []
colour = "red"
[default]
max_probability = "many"
[robot]
"#;
        let errors = parse("bad", text).unwrap_err();
        let joined = errors.to_string();
        assert!(joined.contains("urgent"), "{joined}");
        assert!(joined.contains("colour"), "{joined}");
        assert!(joined.contains("robot"), "{joined}");
        assert!(errors.iter().all(|e| e.to_string().starts_with("bad: ")));
    }

    #[test]
    fn humans_cannot_be_given_an_automatic_response() {
        let text = r#"
kind = "denied_burst"
description = "x"
severity = "high"
response = "revoke_credential"
references = ["T1110"]
[default]
max_probability = 1e-8
min_ratio = 0.5
[human]
max_probability = 1e-10
min_ratio = 0.5
response = "revoke_credential"
"#;
        let errors = parse("d", text).unwrap_err();
        assert!(errors.0[0].to_string().contains("humans are never acted on"), "{errors}");
    }

    #[test]
    fn typed_parameter_errors_name_the_lane() {
        let text = r#"
kind = "rate_spike"
description = "x"
severity = "high"
references = ["T1530"]
[default]
max_probability = 1e-8
ratio = 3.0
[ai_agent]
ratio = "high"
"#;
        let errors = parse("r", text).unwrap_err();
        assert!(errors.iter().any(|e| e.to_string().contains("[ai_agent]")), "{errors}");
    }
}
