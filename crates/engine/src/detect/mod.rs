//! Detector kinds (one file each) and their instances (`detectors/*.toml`).
//!
//! A kind is Rust code that turns an [`Observation`] into a [`Finding`]; an instance is
//! a file that names a kind and gives it thresholds per principal type, a severity, the
//! response it asks for and its references. Humans run in their own lane: a detector
//! evaluates humans (and `unknown` principals) only where its file has a `[human]`
//! (`[unknown]`) table; `[default]` covers the machine types not named.

pub mod breadth;
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

use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::state::Observation;
use nhid_model::event::{AuditEvent, PrincipalType};
use nhid_model::time::{Millis, SECOND};
use nhid_model::vocab::Response;
use nhid_model::vocab::Severity;

/// What a detector saw. Built only when it fires, so it may allocate.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Observed against expected numbers, for the alert's `evidence`.
    pub evidence: serde_json::Map<String, serde_json::Value>,
    pub summary: String,
    /// The natural unit a finding repeats in (the minute for a rate, the hour for a
    /// ceiling): further findings in the same unit are the same finding, not repeats.
    pub unit: i64,
}

/// One kind's check with its typed per-type parameters.
pub trait Check: Send + Sync {
    fn check(&self, lane: PrincipalType, ev: &AuditEvent<'_>, obs: &Observation<'_>) -> Option<Finding>;

    /// The lane whose settings apply: the identity's current type, unless the kind judges
    /// the event against what the identity was before it.
    fn lane(&self, lane: PrincipalType, _obs: &Observation<'_>) -> PrincipalType {
        lane
    }
}

/// Per-type settings of an instance: severity and response may differ per lane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaneSettings {
    pub severity: Severity,
    pub response: Response,
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
}

/// Per-type parameters of one kind, parsed from the file's tables.
pub struct PerType<P>(pub [Option<P>; PrincipalType::ALL.len()]);

impl<P> PerType<P> {
    pub fn get(&self, lane: PrincipalType) -> Option<&P> {
        self.0[lane.index()].as_ref()
    }
}

/// The kinds nhid knows, and how to build each from its parameters.
pub const KINDS: &[&str] = &[
    "rate_spike",
    "volume_ceiling",
    "new_source",
    "scope_drift",
    "denied_burst",
    "static_credential",
    "expired_credential",
    "privilege_change",
    "orphaned_principal",
    "breadth",
    "dormant_reactivation",
    "shared_credential",
    "session_inheritance",
    "interactive_login",
    "unregistered_principal",
    "missing_attribution",
];

/// The detector files shipped in the repository, compiled in, used when no directory is given.
pub const BUILTIN: &[(&str, &str)] = &[
    ("rate_spike", include_str!("../../../../detectors/rate_spike.toml")),
    ("volume_ceiling", include_str!("../../../../detectors/volume_ceiling.toml")),
    ("new_source", include_str!("../../../../detectors/new_source.toml")),
    ("scope_drift", include_str!("../../../../detectors/scope_drift.toml")),
    ("denied_burst", include_str!("../../../../detectors/denied_burst.toml")),
    ("static_credential", include_str!("../../../../detectors/static_credential.toml")),
    ("expired_credential", include_str!("../../../../detectors/expired_credential.toml")),
    ("privilege_change", include_str!("../../../../detectors/privilege_change.toml")),
    ("orphaned_principal", include_str!("../../../../detectors/orphaned_principal.toml")),
    ("breadth", include_str!("../../../../detectors/breadth.toml")),
    ("dormant_reactivation", include_str!("../../../../detectors/dormant_reactivation.toml")),
    ("shared_credential", include_str!("../../../../detectors/shared_credential.toml")),
    ("session_inheritance", include_str!("../../../../detectors/session_inheritance.toml")),
    ("interactive_login", include_str!("../../../../detectors/interactive_login.toml")),
    ("unregistered_principal", include_str!("../../../../detectors/unregistered_principal.toml")),
    ("missing_attribution", include_str!("../../../../detectors/missing_attribution.toml")),
];

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

/// Parses one detector file. Every problem is reported, prefixed with the file name.
pub fn parse(id: &str, text: &str) -> Result<Detector, Vec<String>> {
    let err = |m: String| format!("{id}: {m}");
    let table: toml::Table = toml::from_str(text).map_err(|e| vec![err(e.to_string())])?;
    let (head, lanes): (toml::Table, toml::Table) =
        table.into_iter().partition(|(k, _)| HEAD_KEYS.contains(&k.as_str()));
    let mut errors = Vec::new();
    let head: Option<FileHead> = toml::Value::Table(head).try_into().map_err(|e| errors.push(err(e.to_string()))).ok();
    for key in lanes.keys() {
        if key != "default" && PrincipalType::parse(key).is_none() {
            errors.push(err(format!(
                "unknown key `{key}`: expected one of {HEAD_KEYS:?}, `default`, or a principal type table"
            )));
        }
    }
    if !lanes.contains_key("default") {
        errors.push(err("missing `[default]` table (parameters for machine principals)".into()));
    }
    let Some(head) = head else { return Err(errors) };
    if head.cooldown_secs == 0 {
        errors.push(err("cooldown_secs must be positive".into()));
    }
    if head.references.is_empty() {
        errors.push(err("references must name at least one MITRE ATT&CK or OWASP NHI entry".into()));
    }
    let lane_settings = |name: &str| -> Option<toml::Table> {
        // Machine types inherit `[default]`; humans and unknown only run where named.
        let own = lanes.get(name).and_then(|v| v.as_table()).cloned();
        let machine = PrincipalType::parse(name).is_some_and(PrincipalType::is_machine);
        let mut merged = if machine { lanes.get("default").and_then(|v| v.as_table()).cloned()? } else { own.clone()? };
        if machine {
            merged.extend(own.unwrap_or_default());
        }
        Some(merged)
    };
    let mut settings: [Option<LaneSettings>; PrincipalType::ALL.len()] = [None; PrincipalType::ALL.len()];
    let mut params: [Option<toml::Table>; PrincipalType::ALL.len()] = Default::default();
    for &lane in PrincipalType::ALL {
        let Some(mut t) = lane_settings(lane.as_str()) else {
            continue;
        };
        let enabled = match t.remove("enabled") {
            None => true,
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => {
                errors.push(err(format!("[{lane}] enabled must be true or false")));
                true
            }
        };
        let severity = match t.remove("severity") {
            None => Some(head.severity),
            Some(v) => v.try_into::<Severity>().map_err(|e| errors.push(err(format!("[{lane}] severity: {e}")))).ok(),
        };
        let response = match t.remove("response") {
            None => Some(head.response),
            Some(v) => v.try_into::<Response>().map_err(|e| errors.push(err(format!("[{lane}] response: {e}")))).ok(),
        };
        if lane == PrincipalType::Human && response.is_some_and(|r| r != Response::None) {
            errors.push(err("[human] response must be \"none\": humans are never acted on automatically".into()));
        }
        if let (true, Some(severity), Some(response)) = (enabled, severity, response) {
            settings[lane.index()] = Some(LaneSettings { severity, response });
            params[lane.index()] = Some(t);
        }
    }
    let check = build_check(&head.kind, &params).map_err(|es| errors.extend(es.into_iter().map(err))).ok();
    match check {
        Some((kind, check)) if errors.is_empty() => Ok(Detector {
            id: id.to_string(),
            kind,
            description: head.description,
            references: head.references,
            cooldown_ms: head.cooldown_secs as Millis * 1_000,
            lanes: settings,
            check,
        }),
        _ => Err(errors),
    }
}

type Params = [Option<toml::Table>; PrincipalType::ALL.len()];

fn build_check(kind: &str, params: &Params) -> Result<(&'static str, Box<dyn Check>), Vec<String>> {
    Ok(match kind {
        "rate_spike" => ("rate_spike", Box::new(rate_spike::RateSpike(per_type(params)?))),
        "volume_ceiling" => ("volume_ceiling", Box::new(volume_ceiling::VolumeCeiling(per_type(params)?))),
        "new_source" => ("new_source", Box::new(new_source::NewSource(per_type(params)?))),
        "scope_drift" => ("scope_drift", Box::new(scope_drift::ScopeDrift(per_type(params)?))),
        "denied_burst" => ("denied_burst", Box::new(denied_burst::DeniedBurst(per_type(params)?))),
        "static_credential" => ("static_credential", Box::new(static_credential::StaticCredential(per_type(params)?))),
        "expired_credential" => {
            ("expired_credential", Box::new(expired_credential::ExpiredCredential(per_type(params)?)))
        }
        "privilege_change" => ("privilege_change", Box::new(privilege_change::PrivilegeChange(per_type(params)?))),
        "orphaned_principal" => {
            ("orphaned_principal", Box::new(orphaned_principal::OrphanedPrincipal(per_type(params)?)))
        }
        "breadth" => ("breadth", Box::new(breadth::Breadth(per_type(params)?))),
        "dormant_reactivation" => {
            ("dormant_reactivation", Box::new(dormant_reactivation::DormantReactivation(per_type(params)?)))
        }
        "shared_credential" => ("shared_credential", Box::new(shared_credential::SharedCredential(per_type(params)?))),
        "session_inheritance" => {
            ("session_inheritance", Box::new(session_inheritance::SessionInheritance(per_type(params)?)))
        }
        "interactive_login" => ("interactive_login", Box::new(interactive_login::InteractiveLogin(per_type(params)?))),
        "unregistered_principal" => {
            ("unregistered_principal", Box::new(unregistered_principal::UnregisteredPrincipal(per_type(params)?)))
        }
        "missing_attribution" => {
            ("missing_attribution", Box::new(missing_attribution::MissingAttribution(per_type(params)?)))
        }
        other => {
            return Err(vec![format!("unknown kind `{other}`: expected one of {KINDS:?}")]);
        }
    })
}

/// Deserializes each enabled lane's table into the kind's typed parameters.
fn per_type<P: DeserializeOwned>(params: &Params) -> Result<PerType<P>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out: [Option<P>; PrincipalType::ALL.len()] = std::array::from_fn(|_| None);
    for &lane in PrincipalType::ALL {
        if let Some(t) = &params[lane.index()] {
            match toml::Value::Table(t.clone()).try_into::<P>() {
                Ok(p) => out[lane.index()] = Some(p),
                Err(e) => errors.push(format!("[{lane}] {e}")),
            }
        }
    }
    if errors.is_empty() { Ok(PerType(out)) } else { Err(errors) }
}

/// Loads every `*.toml` in `dir` (sorted, so the detector order is stable), or the
/// built-in set when `dir` is `None`. Returns every error of every file at once.
pub fn load(dir: Option<&Path>) -> Result<Vec<Detector>, Vec<String>> {
    let files: Vec<(String, String)> = match dir {
        None => BUILTIN.iter().map(|(id, text)| (id.to_string(), text.to_string())).collect(),
        Some(dir) => {
            let entries = std::fs::read_dir(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
            let mut paths: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            let mut files = Vec::new();
            let mut errors = Vec::new();
            for p in paths {
                let id = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                match std::fs::read_to_string(&p) {
                    Ok(text) => files.push((id, text)),
                    Err(e) => errors.push(format!("{}: {e}", p.display())),
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            files
        }
    };
    let mut detectors = Vec::new();
    let mut errors = Vec::new();
    for (id, text) in files {
        match parse(&id, &text) {
            Ok(d) => detectors.push(d),
            Err(es) => errors.extend(es),
        }
    }
    if detectors.is_empty() && errors.is_empty() {
        errors.push("no detector files found".into());
    }
    if errors.is_empty() { Ok(detectors) } else { Err(errors) }
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

/// Operation names a kind looks for (`CreateAccessKey`, `ConsoleLogin`, `user.session.start`),
/// matched without case against an event's whole action or its operation: the part after
/// the last `:` or `/` (`iam:CreateAccessKey`, `google.iam.admin.v1.CreateServiceAccountKey`
/// after the last `.` too).
#[derive(Debug, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct Operations {
    names: std::collections::HashSet<String, xxhash_rust::xxh3::Xxh3Builder>,
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
        let b = action.as_bytes();
        let operation = b.iter().rposition(|&c| c == b':' || c == b'/').map_or(action, |i| &action[i + 1..]);
        let last = operation.as_bytes().iter().rposition(|&c| c == b'.').map_or(operation, |i| &operation[i + 1..]);
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
        let (_, text) = BUILTIN.iter().find(|(name, _)| *name == id).expect("a shipped detector");
        parse(id, text).expect("shipped detectors parse")
    }

    pub fn event(time: Millis, kind: PrincipalType) -> AuditEvent<'static> {
        AuditEvent {
            id: "e1".into(),
            time,
            principal: Principal { id: "svc-a".into(), kind, name: None, owner: None, tenant: None },
            credential: Credential { id: Some("AKIA1".into()), kind: CredentialKind::StaticKey, ..Default::default() },
            actor: Actor::default(),
            action: "s3:GetObject".into(),
            service: "s3".into(),
            resource: None,
            outcome: Outcome::Success,
            source: Source::default(),
            bytes_out: None,
            source_format: SourceFormat::Native,
        }
    }

    pub fn observe<'e>(ev: &'e AuditEvent<'_>) -> Observation<'e> {
        Identity::new(ev.principal.kind, None, ev.time).observe(ev, 0)
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
min_count = "many"
[robot]
"#;
        let errors = parse("bad", text).unwrap_err();
        let joined = errors.join("\n");
        assert!(joined.contains("urgent"), "{joined}");
        assert!(joined.contains("colour"), "{joined}");
        assert!(joined.contains("robot"), "{joined}");
        assert!(errors.iter().all(|e| e.starts_with("bad: ")));
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
min_count = 10
min_ratio = 0.5
[human]
min_count = 30
min_ratio = 0.5
response = "revoke_credential"
"#;
        let errors = parse("d", text).unwrap_err();
        assert!(errors[0].contains("humans are never acted on"), "{errors:?}");
    }

    #[test]
    fn typed_parameter_errors_name_the_lane() {
        let text = r#"
kind = "rate_spike"
description = "x"
severity = "high"
references = ["T1530"]
[default]
min_count = 30
ratio = 4.0
z = 6.0
[ai_agent]
ratio = "high"
"#;
        let errors = parse("r", text).unwrap_err();
        assert!(errors.iter().any(|e| e.contains("[ai_agent]")), "{errors:?}");
    }
}
