//! Content rules: what a call does, judged on the record as its source wrote it. Sigma
//! rules (the public rule packs' format) are compiled once by `rsigma-eval` into matchers
//! behind its candidate index, and each record is evaluated by the rules whose logsource is
//! its format: the packs' CloudTrail rules read `eventName` and `requestParameters.*`
//! exactly as CloudTrail writes them, so they work unchanged.
//!
//! A record is read lazily ([`Raw`]): the fields its decoder already read (the call's name,
//! the caller, the client: `AuditEvent::raw_fields`) are taken from it, any other is found
//! in the JSON text by a SIMD scan (sonic-rs) without building the document; only a path
//! through an array, or a rule searching every value, parses it whole, once. Most records
//! match no candidate rule and cost a lookup or two, with no scan.
//!
//! The rules a record matched go on its canonical event ([`RuleMatch`]); the `content`
//! detector weighs them against the identity's baseline.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use foldhash::fast::RandomState;
use nhid_model::event::{AuditEvent, RawFields, RuleMatch, SourceFormat};
use nhid_model::vocab::Severity;
use rsigma_eval::{
    CorrelationAction, CorrelationConfig, CorrelationEngine, Engine as Sigma, EvaluationResult, Event, EventValue,
    JsonEvent, Pipeline, apply_pipelines, parse_pipeline,
};
use rsigma_parser::{
    ConditionExpr, CorrelationRule, Detection, DetectionItem, Level, LogSource, Modifier, Quantifier, SelectorPattern,
    SigmaRule, SigmaValue,
};

/// The rules shipped in `rules/`, compiled in: `(path under rules/, text)`.
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// Matches kept per record: a record matching more is an odd one, and the event carries a
/// bounded list.
pub const MAX_MATCHES: usize = 16;

/// Compiled content rules, by the format whose records they read.
pub struct Rules {
    by_format: Vec<Compiled>,
    /// Rules read for at least one format (a CloudTrail rule is compiled for two), and
    /// correlation rules.
    count: usize,
    /// Sigma correlation rules (`correlation:` documents), over the matches of the rules they
    /// name: one engine for every format, its windows in memory behind a lock that only a
    /// record matching a rule they count takes.
    correlations: Option<Correlations>,
}

struct Correlations {
    engine: Mutex<CorrelationEngine>,
    /// The ids of the rules they count.
    counted: HashSet<String>,
}

/// Bounds on the correlation windows: groups kept (the oldest evicted beyond), and entries
/// kept in one group's window (a group past it can only under-count).
const MAX_CORRELATION_GROUPS: usize = 100_000;
const MAX_GROUP_ENTRIES: usize = 1_000;

/// One format's rules, indexed by the value they require of one of the format's key
/// fields ([`key_fields`], the first a rule pins, [`pinned`]): a record is evaluated only by
/// the rules whose value it has, and by those that pin none, unless a field the decoder
/// read lacks what such a rule needs ([`Prefilter`]).
struct Compiled {
    format: SourceFormat,
    sigma: Sigma,
    /// Per key field, the rules by the value they require (folded to lower case).
    by_key: Vec<(&'static str, ByValue)>,
    always: Vec<(usize, Option<Prefilter>)>,
}

/// Rules by the value they require of a key field: looked up for every record, so hashed
/// with foldhash rather than SipHash. The map holds the rules' values only; a record's value
/// is only looked up, and cannot crowd it.
type ByValue = HashMap<String, Vec<usize>, RandomState>;

/// The fields most rules of a format pin, the call first, all of them early in a record.
fn key_fields(format: SourceFormat) -> &'static [&'static str] {
    match format {
        SourceFormat::Cloudtrail => &["eventName", "eventSource", "userIdentity.type"],
        SourceFormat::Okta => &["eventType"],
        SourceFormat::Github => &["action"],
        SourceFormat::K8sAudit => &["verb", "objectRef.resource"],
        SourceFormat::GcpAudit => &["protoPayload.methodName"],
        SourceFormat::Ocsf => &["api.operation", "api.service.name", "actor.user.type"],
        SourceFormat::AzureActivity => &["operationName"],
        _ => &[],
    }
}

/// What loading rule files found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Rules whose logsource is no format nhid reads (Windows, M365, ...): left out.
    pub other_logsources: usize,
    /// Files or rules that could not be read, each with why: a configuration error.
    pub errors: Vec<String>,
}

impl Rules {
    /// The rules shipped with nhid (`rules/`).
    pub fn builtin() -> (Rules, Loaded) {
        Rules::from_texts(BUILTIN.iter().map(|(path, text)| (PathBuf::from(path), Cow::Borrowed(*text))))
    }

    /// Every `.yml`/`.yaml` file under `dir` (an empty directory: no content rules).
    pub fn load(dir: &Path) -> (Rules, Loaded) {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        collect(dir, &mut files, &mut errors);
        files.sort();
        let texts = files.into_iter().filter_map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Some((path, Cow::Owned(text))),
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                None
            }
        });
        let texts: Vec<_> = texts.collect();
        let (rules, mut loaded) = Rules::from_texts(texts.into_iter());
        loaded.errors.splice(0..0, errors);
        (rules, loaded)
    }

    fn from_texts<'t>(texts: impl Iterator<Item = (PathBuf, Cow<'t, str>)>) -> (Rules, Loaded) {
        let mut loaded = Loaded::default();
        let mut by_format: Vec<Compiled> = Vec::new();
        let mut count = 0;
        let mut correlations: Vec<(PathBuf, CorrelationRule)> = Vec::new();
        for (path, text) in texts {
            let collection = match rsigma_parser::parse_sigma_yaml(&text) {
                Ok(c) => c,
                Err(e) => {
                    loaded.errors.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            loaded.errors.extend(collection.errors.iter().map(|e| format!("{}: {e}", path.display())));
            correlations.extend(collection.correlations.iter().map(|c| (path.clone(), c.clone())));
            for rule in &collection.rules {
                let formats = formats_of(&rule.logsource);
                match formats.is_empty() {
                    true => loaded.other_logsources += 1,
                    false => count += 1,
                }
                for &format in formats {
                    let at = match by_format.iter().position(|c| c.format == format) {
                        Some(at) => at,
                        None => {
                            let by_key = key_fields(format).iter().map(|&f| (f, HashMap::default())).collect();
                            let compiled = Compiled { format, sigma: Sigma::new(), by_key, always: Vec::new() };
                            by_format.push(compiled);
                            by_format.len() - 1
                        }
                    };
                    let compiled = &mut by_format[at];
                    let index = compiled.sigma.rule_count();
                    let mut rule = with_id(rule, &path);
                    if let Err(e) = apply_pipelines(fields(format), &mut rule) {
                        loaded.errors.push(format!("{}: {}: {e}", path.display(), rule.title));
                        continue;
                    }
                    if let Err(e) = compiled.sigma.add_rule(&rule) {
                        loaded.errors.push(format!("{}: {}: {e}", path.display(), rule.title));
                        continue;
                    }
                    let key = compiled.by_key.iter_mut().find_map(|(field, map)| Some((map, pinned(&rule, field)?)));
                    match key {
                        Some((map, values)) => values.into_iter().for_each(|v| map.entry(v).or_default().push(index)),
                        None => compiled.always.push((index, Prefilter::of(&rule, format))),
                    }
                }
            }
        }
        let correlations = correlate(correlations, &by_format, &mut loaded);
        count += correlations.as_ref().map_or(0, |c| c.counted_rules());
        (Rules { by_format, count, correlations }, loaded)
    }

    /// Rules compiled, by the format whose records they read, then the correlation rules
    /// (`correlation`).
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let correlations = self.correlations.as_ref().map(|c| ("correlation", c.counted_rules()));
        self.by_format.iter().map(|c| (c.format.as_str(), c.sigma.rule_count())).chain(correlations).collect()
    }

    /// Rules loaded, each counted once whatever the formats it is compiled for, and the
    /// correlation rules.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds to `ev` the rules its raw record matches: [`Rules::matches`], then [`Rules::apply`].
    pub fn evaluate(&self, ev: &mut AuditEvent<'_>) {
        let matches = self.matches(ev);
        self.apply(ev, matches);
    }

    /// The rules `ev`'s raw record matches. Reads no state: records are matched in parallel
    /// (`nhid replay` on every core) and applied in order.
    pub fn matches(&self, ev: &AuditEvent<'_>) -> Matches {
        if ev.raw.is_empty() {
            return Matches::default();
        }
        let Some(compiled) = self.by_format.iter().find(|c| c.format == ev.source_format) else {
            return Matches::default();
        };
        let raw = Raw::new(ev.raw, &ev.raw_fields, ev.source_format);
        // A key field no rule of the format pins is not read.
        let keyed = compiled.by_key.iter().filter(|(_, map)| !map.is_empty()).filter_map(|(field, map)| {
            match raw.get_field(field) {
                Some(EventValue::Str(v)) => lowercase(&v, |v| map.get(v)),
                _ => None,
            }
        });
        let rules = compiled.sigma.rules();
        let unpinned = compiled.always.iter().filter(|(_, p)| p.as_ref().is_none_or(|p| p.admits(&raw)));
        let candidates = unpinned.map(|(i, _)| i).chain(keyed.flatten());
        Matches(candidates.filter_map(|&i| rsigma_eval::evaluate_rule(&rules[i], &raw)).take(MAX_MATCHES).collect())
    }

    /// Adds `matches` of `ev` to it, through the correlations: the one step that keeps state,
    /// so records are applied in their order.
    pub fn apply(&self, ev: &mut AuditEvent<'_>, Matches(mut matches): Matches) {
        if matches.is_empty() {
            return;
        }
        // A record matching a rule the correlations count goes to them; they keep the matches
        // that alert on their own (a counted rule only counts), with what they fire.
        if let Some(c) = self.correlations.as_ref().filter(|c| matches.iter().any(|m| c.counts(m))) {
            let raw = Raw::new(ev.raw, &ev.raw_fields, ev.source_format);
            let mut engine = c.engine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            matches = engine.process_with_detections(&raw, matches, ev.time.div_euclid(1000));
        }
        for result in matches.into_iter().take(MAX_MATCHES) {
            let header = result.header;
            let id = header.rule_id.unwrap_or_else(|| header.rule_title.clone());
            ev.rules.push(RuleMatch {
                id: Cow::Owned(id),
                title: Cow::Owned(header.rule_title),
                level: header.level.map_or(Severity::Medium, severity),
                techniques: header.tags.iter().filter_map(|t| technique(t)).collect(),
            });
        }
    }
}

/// What a record matched, before the correlations saw it ([`Rules::matches`]).
#[derive(Default)]
pub struct Matches(Vec<EvaluationResult>);

/// `f` of `v` folded to lower case, without allocating for the short ASCII values key
/// fields hold (`StopLogging`, `AwsApiCall`): this runs for every record.
fn lowercase<T>(v: &str, f: impl FnOnce(&str) -> T) -> T {
    let mut buf = [0u8; 64];
    match buf.get_mut(..v.len()) {
        Some(folded) if v.is_ascii() => {
            folded.copy_from_slice(v.as_bytes());
            folded.make_ascii_lowercase();
            f(std::str::from_utf8(folded).expect("ASCII"))
        }
        _ => f(&v.to_lowercase()),
    }
}

impl Correlations {
    fn counts(&self, m: &EvaluationResult) -> bool {
        m.header.rule_id.as_ref().is_some_and(|id| self.counted.contains(id))
    }

    fn counted_rules(&self) -> usize {
        self.engine.lock().unwrap_or_else(std::sync::PoisonError::into_inner).correlation_rule_count()
    }
}

/// The correlation rules, each checked to name only rules that are loaded, by id: the engine
/// is fed matches made elsewhere, which carry their rule's id only (a rule without one is
/// named by its file). `None` without any.
fn correlate(
    rules: Vec<(PathBuf, CorrelationRule)>,
    by_format: &[Compiled],
    loaded: &mut Loaded,
) -> Option<Correlations> {
    if rules.is_empty() {
        return None;
    }
    let config = CorrelationConfig {
        // A rule a correlation names does not alert on its own (Sigma's `generate: false`).
        emit_detections: false,
        // Once fired, a group counts again from nothing: one alert per threshold crossed.
        action_on_match: CorrelationAction::Reset,
        max_state_entries: MAX_CORRELATION_GROUPS,
        max_group_entries: Some(MAX_GROUP_ENTRIES),
        ..CorrelationConfig::default()
    };
    let mut engine = CorrelationEngine::new(config);
    let ids: HashSet<&str> = by_format.iter().flat_map(|c| c.sigma.rules()).filter_map(|r| r.id.as_deref()).collect();
    let mut counted = HashSet::new();
    for (path, rule) in rules {
        if let Some(missing) = rule.rules.iter().find(|r| !ids.contains(r.as_str())) {
            loaded.errors.push(format!(
                "{}: {}: names rule {missing:?}, which is not the id of a loaded rule",
                path.display(),
                rule.title
            ));
        } else if let Err(e) = engine.add_correlation(&rule) {
            loaded.errors.push(format!("{}: {}: {e}", path.display(), rule.title));
        } else {
            counted.extend(rule.rules.iter().cloned());
        }
    }
    (engine.correlation_rule_count() > 0).then(|| Correlations { engine: Mutex::new(engine), counted })
}

/// The formats whose records a rule's logsource names; none for one nhid does not read.
/// CloudTrail's are also read as OCSF API Activity (Amazon Security Lake's form of them).
fn formats_of(logsource: &LogSource) -> &'static [SourceFormat] {
    let (product, service) = (logsource.product.as_deref(), logsource.service.as_deref());
    match (product, service) {
        (Some("aws"), Some("cloudtrail")) => &[SourceFormat::Cloudtrail, SourceFormat::Ocsf],
        (Some("kubernetes"), Some("audit")) => &[SourceFormat::K8sAudit],
        (Some("github"), Some("audit")) => &[SourceFormat::Github],
        (Some("okta"), Some("okta")) => &[SourceFormat::Okta],
        (Some("gcp"), Some("gcp.audit")) => &[SourceFormat::GcpAudit],
        (Some("azure"), Some("signinlogs" | "auditlogs")) => &[SourceFormat::Entra],
        (Some("azure"), Some("activitylogs")) => &[SourceFormat::AzureActivity],
        _ => &[],
    }
}

/// Where the fields the public rules name are in the records nhid's decoder reads, for the
/// formats whose rule packs were written against another shape (pySigma's field names, a
/// SIEM's columns): a pySigma processing pipeline per format (`crates/engine/fields/`),
/// applied to each rule before it is compiled and indexed. The other formats' rules name
/// the platform's own fields.
fn fields(format: SourceFormat) -> &'static [Pipeline] {
    use std::sync::LazyLock;
    fn parse(yaml: &str) -> Vec<Pipeline> {
        vec![parse_pipeline(yaml).expect("the shipped field pipelines parse (a unit test holds it)")]
    }
    static GCP: LazyLock<Vec<Pipeline>> = LazyLock::new(|| parse(include_str!("../fields/gcp_audit.yml")));
    static ENTRA: LazyLock<Vec<Pipeline>> = LazyLock::new(|| parse(include_str!("../fields/entra.yml")));
    static OCSF: LazyLock<Vec<Pipeline>> = LazyLock::new(|| parse(include_str!("../fields/ocsf.yml")));
    static ACTIVITY: LazyLock<Vec<Pipeline>> = LazyLock::new(|| parse(include_str!("../fields/azure_activity.yml")));
    match format {
        SourceFormat::AzureActivity => &ACTIVITY,
        SourceFormat::Ocsf => &OCSF,
        SourceFormat::GcpAudit => &GCP,
        SourceFormat::Entra => &ENTRA,
        _ => &[],
    }
}

/// The values `field` must hold (plainly, without modifiers or wildcards, folded to lower
/// case as Sigma compares) for `rule` to match; `None` when the rule does not pin it, or
/// pins it in a way [`needs`] does not follow.
fn pinned(rule: &SigmaRule, field: &str) -> Option<Vec<String>> {
    needs(rule, &|item: &DetectionItem| {
        let plain = item.field.name.as_deref() == Some(field) && item.field.modifiers.is_empty();
        let values: Option<Vec<String>> = item
            .values
            .iter()
            .map(|v| match v {
                SigmaValue::String(s) => s.as_plain().map(|p| p.to_lowercase()),
                _ => None,
            })
            .collect();
        values.filter(|v| plain && !v.is_empty())
    })
}

/// What `rule` needs of a record, by what `item` says a detection item needs (one of the
/// values it gives): in a mapping, what its first item that says gives; in a list of
/// mappings, or an `or`, the union of what each needs (each must say); in an `and`, what its
/// first part that says gives. `None` when the rule does not say, or says it in a way this
/// does not follow (a quantifier over detections, a negation).
fn needs<T>(rule: &SigmaRule, item: &dyn Fn(&DetectionItem) -> Option<Vec<T>>) -> Option<Vec<T>> {
    let named = &rule.detection.named;
    fn in_detection<T>(d: &Detection, item: &dyn Fn(&DetectionItem) -> Option<Vec<T>>) -> Option<Vec<T>> {
        match d {
            Detection::AllOf(items) => items.iter().find_map(item),
            Detection::AnyOf(ds) => {
                let all: Option<Vec<Vec<T>>> = ds.iter().map(|d| in_detection(d, item)).collect();
                all.map(|v| v.into_iter().flatten().collect::<Vec<T>>()).filter(|v| !v.is_empty())
            }
            _ => None,
        }
    }
    fn in_condition<T>(
        c: &ConditionExpr,
        named: &HashMap<String, Detection>,
        item: &dyn Fn(&DetectionItem) -> Option<Vec<T>>,
    ) -> Option<Vec<T>> {
        match c {
            ConditionExpr::Identifier(name) => in_detection(named.get(name)?, item),
            ConditionExpr::And(cs) => cs.iter().find_map(|c| in_condition(c, named, item)),
            ConditionExpr::Or(cs) => {
                let all: Option<Vec<Vec<T>>> = cs.iter().map(|c| in_condition(c, named, item)).collect();
                all.map(|v| v.into_iter().flatten().collect())
            }
            // `1 of selection_*` is an `or` of the detections named so, `all of` an `and`
            // (a detection of `them` named `filter*` is no exception: it is not negated here).
            ConditionExpr::Selector { quantifier, pattern } => {
                let prefix = match pattern {
                    SelectorPattern::Them => "",
                    SelectorPattern::Pattern(p) => p.strip_suffix('*').filter(|p| !p.contains(['*', '?']))?,
                };
                let mut names: Vec<&String> = named.keys().filter(|n| n.starts_with(prefix)).collect();
                names.sort();
                let each = names.iter().map(|n| in_detection(&named[*n], item));
                match quantifier {
                    Quantifier::Any | Quantifier::Count(1) => each
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.into_iter().flatten().collect::<Vec<T>>())
                        .filter(|v| !v.is_empty()),
                    Quantifier::All => each.flatten().next(),
                    Quantifier::Count(_) => None,
                }
            }
            ConditionExpr::Not(_) => None,
        }
    }
    match rule.detection.conditions.as_slice() {
        [condition] => in_condition(condition, named, item),
        _ => None,
    }
}

/// What a rule no key field indexes needs in one of the fields its format's decoder reads
/// (`SourceFormat::raw_fields`): one of a few strings, found without evaluating it. Those
/// rules meet every record; the shipped ones are a regex on `userIdentity.arn` (SigmaHQ's
/// "IMDS credentials outside AWS", about 200 ns a record) and a `userAgent` equality
/// (TruffleHog, about 100), an eighth of `nhid replay`'s time on a CloudTrail estate. Found
/// in the field the decoder already read, about 10 ns.
///
/// Only ever a necessary condition: a value where none is found cannot match (a record
/// whose field is not a string, or absent, is evaluated as before).
struct Prefilter {
    field: &'static str,
    needles: Vec<Needle>,
}

/// A string a field must contain.
#[derive(Debug, PartialEq)]
enum Needle {
    /// As it is: a literal a regex needs (Sigma regexes are case-sensitive).
    Exact(String),
    /// In any ASCII case (held folded): a plain value, which Sigma compares without case.
    Folded(String),
}

impl Prefilter {
    fn of(rule: &SigmaRule, format: SourceFormat) -> Option<Prefilter> {
        format.raw_fields().iter().find_map(|&field| {
            let needles = needs(rule, &|item: &DetectionItem| {
                (item.field.name.as_deref() == Some(field)).then_some(())?;
                let needles: Option<Vec<Needle>> =
                    item.values.iter().map(|v| needle(v, &item.field.modifiers)).collect();
                // An item without values needs nothing that can be searched for.
                needles.filter(|n| !n.is_empty())
            })?;
            Some(Prefilter { field, needles })
        })
    }

    /// Whether `raw` may match: its field holds one of the needles, or is no string.
    fn admits(&self, raw: &Raw<'_>) -> bool {
        let Some(EventValue::Str(value)) = raw.get_field(self.field) else { return true };
        // Sigma folds case by Unicode's rules, under which a few other letters fold to
        // ASCII ones (the Kelvin sign to `k`): a value outside ASCII is evaluated.
        let folded_alike = value.is_ascii();
        self.needles.iter().any(|n| match n {
            Needle::Exact(s) => memchr::memmem::find(value.as_bytes(), s.as_bytes()).is_some(),
            Needle::Folded(s) => !folded_alike || contains_folded(value.as_bytes(), s.as_bytes()),
        })
    }
}

/// What a detection item's value needs its field to contain, by the item's modifiers: a plain
/// value itself for an equality, `contains`, `startswith` or `endswith` (in any case, unless
/// `cased`); for `re`, the longest literal the regex cannot match without. `None` for any
/// other modifier, a wildcard, or a value outside ASCII.
fn needle(value: &SigmaValue, modifiers: &[Modifier]) -> Option<Needle> {
    let SigmaValue::String(s) = value else { return None };
    let mut cased = false;
    for m in modifiers {
        match m {
            Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith => {}
            Modifier::Cased => cased = true,
            Modifier::Re => return regex_needle(&s.as_plain().unwrap_or_else(|| s.original.clone()), modifiers),
            _ => return None,
        }
    }
    let plain = s.as_plain().filter(|p| !p.is_empty() && p.is_ascii())?;
    Some(if cased { Needle::Exact(plain) } else { Needle::Folded(plain.to_ascii_lowercase()) })
}

/// The longest literal every match of `pattern` contains, as rsigma compiles it (`|re`, with
/// `|m` or `|s` but not `|i`).
fn regex_needle(pattern: &str, modifiers: &[Modifier]) -> Option<Needle> {
    use regex_syntax::hir::{Hir, HirKind};
    if modifiers.iter().any(|m| !matches!(m, Modifier::Re | Modifier::Multiline | Modifier::DotAll)) {
        return None;
    }
    fn needed(hir: &Hir) -> Option<Vec<u8>> {
        match hir.kind() {
            HirKind::Literal(lit) => Some(lit.0.to_vec()),
            HirKind::Capture(c) => needed(&c.sub),
            HirKind::Repetition(r) if r.min > 0 => needed(&r.sub),
            HirKind::Concat(parts) => parts.iter().filter_map(needed).max_by_key(Vec::len),
            _ => None,
        }
    }
    let literal = needed(&regex_syntax::parse(pattern).ok()?).filter(|l| !l.is_empty())?;
    Some(Needle::Exact(String::from_utf8(literal).ok()?))
}

/// Whether `hay` contains `needle` (lower case ASCII) in any ASCII case.
fn contains_folded(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else { return true };
    let mut at = 0;
    while let Some(i) = memchr::memchr2(first, first.to_ascii_uppercase(), &hay[at..]) {
        let start = at + i + 1;
        match hay.get(start..start + rest.len()) {
            Some(tail) if tail.eq_ignore_ascii_case(rest) => return true,
            Some(_) => at = start,
            None => return false,
        }
    }
    false
}

/// A rule without an `id` is named by its file.
fn with_id(rule: &SigmaRule, path: &Path) -> SigmaRule {
    let mut rule = rule.clone();
    if rule.id.is_none() {
        rule.id = Some(path.file_stem().map_or_else(|| rule.title.clone(), |s| s.to_string_lossy().into_owned()));
    }
    rule
}

/// The ATT&CK technique a Sigma tag names: `attack.t1552.005` → `T1552.005`; tactics
/// (`attack.credential-access`) and other tags are not techniques.
fn technique(tag: &str) -> Option<String> {
    let id = format!("T{}", tag.strip_prefix("attack.t")?);
    nhid_model::vocab::attack_technique(&id).is_some().then_some(id)
}

/// A rule's level as nhid's severity.
fn severity(level: Level) -> Severity {
    match level {
        Level::Informational => Severity::Info,
        Level::Low => Severity::Low,
        Level::Medium => Severity::Medium,
        Level::High => Severity::High,
        Level::Critical => Severity::Critical,
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return errors.push(format!("{}: {e}", dir.display())),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files, errors);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            files.push(path);
        }
    }
}

/// The top-level keys passed with their values' JSON text, and the scan: not begun until a
/// field the decoder did not read is asked for (beginning one costs a pass over the record),
/// then `None` once it reached the end.
type Scan<'a> = (Vec<(Cow<'a, str>, &'a str)>, Option<Option<sonic_rs::ObjectJsonIter<'a>>>);

/// A raw record as Sigma reads it. The fields its decoder read come from the decoder; the
/// others are found by one scan of the text, which goes only as far as the fields asked for
/// so far and remembers what it passed; a nested
/// field is then found within its top-level value's text. The whole document is parsed
/// once, only when a path goes through an array or a rule searches every value.
struct Raw<'a> {
    text: &'a str,
    /// What the decoder already read of it (`AuditEvent::raw_fields`), and the format that
    /// names them.
    fields: &'a RawFields<'a>,
    format: SourceFormat,
    top: RefCell<Scan<'a>>,
    parsed: OnceCell<serde_json::Value>,
}

impl<'a> Raw<'a> {
    fn new(text: &'a str, fields: &'a RawFields<'a>, format: SourceFormat) -> Raw<'a> {
        let top = RefCell::new((Vec::new(), None));
        Raw { text, fields, format, top, parsed: OnceCell::new() }
    }

    /// The record of `ev`.
    #[cfg(test)]
    fn of(ev: &'a AuditEvent<'a>) -> Raw<'a> {
        Raw::new(ev.raw, &ev.raw_fields, ev.source_format)
    }

    /// The JSON text of top-level field `key`.
    fn top(&self, key: &str) -> Option<&'a str> {
        let mut top = self.top.borrow_mut();
        let (passed, scan) = &mut *top;
        if let Some((_, v)) = passed.iter().find(|(k, _)| k == key) {
            return Some(v);
        }
        let scan = scan.get_or_insert_with(|| Some(sonic_rs::to_object_iter(self.text)));
        while let Some(entry) = scan.as_mut().and_then(Iterator::next) {
            let Ok((k, value)) = entry else { break };
            // A `&str` input yields slices of itself.
            let Cow::Borrowed(raw) = value.as_raw_cow() else { continue };
            let found = k == key;
            passed.push((k, raw));
            if found {
                return Some(raw);
            }
        }
        *scan = None;
        None
    }

    fn parsed(&self) -> &serde_json::Value {
        self.parsed.get_or_init(|| serde_json::from_str(self.text).unwrap_or_default())
    }

    fn parsed_field(&self, path: &str) -> Option<EventValue<'_>> {
        JsonEvent::borrow(self.parsed()).get_field(path).map(owned)
    }
}

impl Event for Raw<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if let Some(known) = self.fields.get(self.format, path) {
            return known.map(|v| EventValue::Str(Cow::Borrowed(v)));
        }
        if self.parsed.get().is_some() {
            return self.parsed_field(path);
        }
        let (first, rest) = path.split_once('.').map_or((path, None), |(f, r)| (f, Some(r)));
        let value = self.top(first)?;
        match (rest, value.as_bytes().first()) {
            (_, Some(b'[')) | (None, Some(b'{')) => self.parsed_field(path),
            (None, _) => scalar(value),
            (Some(_), Some(b'{')) => match sonic_rs::get(value, rest.unwrap_or_default().split('.')) {
                Ok(v) => match v.as_raw_cow() {
                    Cow::Borrowed(raw) if !raw.starts_with(['{', '[']) => scalar(raw),
                    _ => self.parsed_field(path),
                },
                // Not there as a path of keys: absent, unless an array is on the way.
                Err(_) if !value.contains('[') => None,
                Err(_) => self.parsed_field(path),
            },
            (Some(_), _) => None,
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        JsonEvent::borrow(self.parsed()).any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        JsonEvent::borrow(self.parsed()).all_string_values().into_iter().map(|s| Cow::Owned(s.into_owned())).collect()
    }

    fn to_json(&self) -> serde_json::Value {
        self.parsed().clone()
    }
}

/// A scalar from its JSON text, borrowed when it is a string without escapes.
fn scalar(raw: &str) -> Option<EventValue<'_>> {
    match raw.as_bytes().first()? {
        b'"' if raw.len() >= 2 && !raw.contains('\\') => Some(EventValue::Str(Cow::Borrowed(&raw[1..raw.len() - 1]))),
        b'"' => serde_json::from_str::<String>(raw).ok().map(|s| EventValue::Str(Cow::Owned(s))),
        b't' => Some(EventValue::Bool(true)),
        b'f' => Some(EventValue::Bool(false)),
        b'n' => Some(EventValue::Null),
        _ => raw.parse::<i64>().map(EventValue::Int).ok().or_else(|| raw.parse::<f64>().ok().map(EventValue::Float)),
    }
}

/// A value of the parse, owned: the parse outlives the call but not by the trait's lifetime.
fn owned(v: EventValue<'_>) -> EventValue<'static> {
    match v {
        EventValue::Str(s) => EventValue::Str(Cow::Owned(s.into_owned())),
        EventValue::Int(i) => EventValue::Int(i),
        EventValue::Float(f) => EventValue::Float(f),
        EventValue::Bool(b) => EventValue::Bool(b),
        EventValue::Null => EventValue::Null,
        EventValue::Array(a) => EventValue::Array(a.into_iter().map(owned).collect()),
        EventValue::Map(m) => {
            EventValue::Map(m.into_iter().map(|(k, v)| (Cow::Owned(k.into_owned()), owned(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_attack_tags_name_techniques_and_nothing_else() {
        assert_eq!(technique("attack.t1552.005").as_deref(), Some("T1552.005"));
        assert_eq!(technique("attack.t1078").as_deref(), Some("T1078"));
        for not_one in ["attack.credential-access", "attack.t15", "attack.t1552.5", "cve.2021-1234", "attack.g0016"] {
            assert_eq!(technique(not_one), None, "{not_one}");
        }
    }

    const STOP_LOGGING: &str = r#"{"eventVersion":"1.08","eventTime":"2026-11-02T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","userAgent":"aws-cli/2.17","requestParameters":{"name":"arn:aws:cloudtrail:us-east-1:123456789012:trail/main"},"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/ci","accessKeyId":"AKIAEXAMPLE"}}"#;

    fn event(raw: &str) -> AuditEvent<'_> {
        let mut ev = crate::detect::testing::event(0, nhid_model::event::PrincipalType::ServiceAccount);
        ev.source_format = SourceFormat::Cloudtrail;
        ev.raw = raw;
        ev
    }

    #[test]
    fn most_shipped_rules_name_their_calls_and_the_index_and_the_decoders_fields_lose_no_match() {
        // Matches as the rules make them, before correlations keep the ones alerting alone.
        let (mut rules, _) = Rules::builtin();
        rules.correlations = None;
        let cloudtrail = rules.by_format.iter().find(|c| c.format == SourceFormat::Cloudtrail).unwrap();
        let indexed: std::collections::BTreeSet<usize> =
            cloudtrail.by_key.iter().flat_map(|(_, map)| map.values().flatten().copied()).collect();
        assert_eq!(indexed.len() + cloudtrail.always.len(), cloudtrail.sigma.rule_count());
        // Left for every record: a regex on `userIdentity.arn`, a `userAgent` equality.
        assert!(cloudtrail.always.len() <= 2, "{} unindexed, {} indexed", cloudtrail.always.len(), indexed.len());
        // Every record of Panther's rule tests in a format with rules: the index finds what
        // evaluating every rule finds.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/panther_analysis_labeled_events/rule_tests.jsonl.gz"
        );
        let text = {
            use std::io::Read as _;
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
            text
        };
        let mut compared = 0;
        let none = RawFields::default();
        for line in text.lines() {
            let test: serde_json::Value = serde_json::from_str(line).unwrap();
            let log = serde_json::to_string(&test["log"]).unwrap();
            let ctx = nhid_decode::DecodeContext { fallback_time: Some(0), max_event_bytes: 0 };
            nhid_decode::decode(log.as_bytes(), nhid_decode::Format::Auto, &ctx, &mut |ev| {
                let Ok(mut ev) = ev else { return };
                let Some(compiled) = rules.by_format.iter().find(|c| c.format == ev.source_format) else { return };
                // What the decoder read is what the record says (but for a key spelled
                // another way, `eventname`, which only the decoder reads).
                let (known, scanned) = (Raw::of(&ev), Raw::new(ev.raw, &none, ev.source_format));
                for name in ev.source_format.raw_fields() {
                    let spelled = name.split('.').all(|key| ev.raw.contains(&format!("\"{key}\"")));
                    if spelled {
                        assert_eq!(known.get_field(name), scanned.get_field(name), "{name} in {log}");
                    }
                }
                let mut all: Vec<String> =
                    compiled.sigma.evaluate(&Raw::of(&ev)).into_iter().map(|r| r.header.rule_title).collect();
                rules.evaluate(&mut ev);
                let mut found: Vec<String> = ev.rules.iter().map(|r| r.title.to_string()).collect();
                all.sort();
                found.sort();
                assert_eq!(found, all, "{log}");
                compared += 1;
            });
        }
        assert!(compared > 500, "{compared}");
    }

    /// The rules no key field indexes are skipped on a record whose decoded field lacks what
    /// they need, and evaluated on any other: rules that match still match.
    #[test]
    fn unindexed_rules_are_skipped_only_where_they_cannot_match() {
        let (rules, _) = Rules::builtin();
        let cloudtrail = rules.by_format.iter().find(|c| c.format == SourceFormat::Cloudtrail).unwrap();
        let titles = cloudtrail.sigma.rules();
        let prefilters: Vec<(&str, &str, &[Needle])> = cloudtrail
            .always
            .iter()
            .map(|(i, p)| {
                let p = p.as_ref().unwrap_or_else(|| panic!("{} has no prefilter", titles[*i].title));
                (titles[*i].title.as_str(), p.field, p.needles.as_slice())
            })
            .collect();
        assert!(
            prefilters.contains(&(
                "Malicious Usage Of IMDS Credentials Outside Of AWS Infrastructure",
                "userIdentity.arn",
                &[Needle::Exact(":assumed-role/aws:".into())]
            )),
            "{prefilters:?}"
        );
        assert!(prefilters.iter().any(|(_, f, n)| *f == "userAgent" && n == &[Needle::Folded("trufflehog".into())]));

        let record = |arn: &str, agent: &str| {
            STOP_LOGGING.replace("arn:aws:iam::123456789012:user/ci", arn).replace("aws-cli/2.17", agent)
        };
        // Decoded as nhid decodes it: the fields the prefilters read are the decoder's.
        let matched = |raw: &str| {
            let mut titles = Vec::new();
            let ctx = nhid_decode::DecodeContext { fallback_time: Some(0), max_event_bytes: 0 };
            nhid_decode::decode(raw.as_bytes(), nhid_decode::Format::Auto, &ctx, &mut |ev| {
                let mut ev = ev.unwrap();
                assert!(ev.raw_fields.known);
                rules.evaluate(&mut ev);
                titles.extend(ev.rules.iter().map(|r| r.title.to_string()));
            });
            titles
        };
        let imds = "Malicious Usage Of IMDS Credentials Outside Of AWS Infrastructure";
        let stolen = record("arn:aws:sts::123456789012:assumed-role/aws:ec2-instance/i-0abc", "aws-cli/2.17");
        assert!(matched(&stolen).iter().any(|t| t == imds), "{:?}", matched(&stolen));
        let session = record("arn:aws:sts::123456789012:assumed-role/deploy/ci", "aws-cli/2.17");
        assert!(!matched(&session).iter().any(|t| t == imds));
        for agent in ["TruffleHog", "trufflehog", "TRUFFLEHOG"] {
            let found = matched(&record("arn:aws:iam::123456789012:user/ci", agent));
            assert!(found.iter().any(|t| t.contains("TruffleHog")), "{agent}: {found:?}");
        }
    }

    /// What cannot be searched for is not a prefilter: the rule is evaluated on every record.
    #[test]
    fn a_rule_without_a_searchable_value_has_no_prefilter() {
        let rule = |selection: &str| {
            let yaml = format!(
                "title: t\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  selection:\n    {selection}\n  condition: selection\n"
            );
            rsigma_parser::parse_sigma_yaml(&yaml).unwrap().rules.remove(0)
        };
        for selection in
            ["userAgent: []", "userAgent|re: 'a|b'", "userAgent|cidr: '10.0.0.0/8'", "userAgent: 'Truffle*'"]
        {
            assert!(Prefilter::of(&rule(selection), SourceFormat::Cloudtrail).is_none(), "{selection}");
        }
        let p = Prefilter::of(&rule("userAgent|contains: ['TruffleHog', 'Boto3']"), SourceFormat::Cloudtrail).unwrap();
        assert_eq!(p.needles, [Needle::Folded("trufflehog".into()), Needle::Folded("boto3".into())]);
    }

    #[test]
    fn a_regex_needs_the_longest_literal_of_its_sequence() {
        let re = |p: &str, m: &[Modifier]| regex_needle(p, m);
        let exact = |s: &str| Some(Needle::Exact(s.into()));
        assert_eq!(re(".+:assumed-role/aws:.+", &[Modifier::Re]), exact(":assumed-role/aws:"));
        assert_eq!(re("^x*(abc)+d?$", &[Modifier::Re]), exact("abc"));
        assert_eq!(re("ab(c)?", &[Modifier::Re, Modifier::DotAll]), exact("ab"));
        // Any one of several, none at all, or in any case: nothing is needed for sure.
        for (pattern, modifiers) in [
            ("abc|def", &[Modifier::Re][..]),
            ("(abc)*", &[Modifier::Re]),
            ("(?i)abc", &[Modifier::Re]),
            ("abc", &[Modifier::Re, Modifier::IgnoreCase]),
            ("[", &[Modifier::Re]),
        ] {
            assert_eq!(re(pattern, modifiers), None, "{pattern} {modifiers:?}");
        }
        let plain = |v: &str, m: &[Modifier]| needle(&SigmaValue::String(rsigma_parser::SigmaString::new(v)), m);
        assert_eq!(plain("TruffleHog", &[]), Some(Needle::Folded("trufflehog".into())));
        assert_eq!(plain("Boto3", &[Modifier::StartsWith, Modifier::Cased]), Some(Needle::Exact("Boto3".into())));
        assert_eq!(plain("Truffle*", &[]), None, "a wildcard");
        assert_eq!(plain("aws-cli", &[Modifier::Base64]), None);
    }

    #[test]
    fn a_folded_needle_is_found_in_any_ascii_case() {
        for (hay, found) in [
            ("TruffleHog", true),
            ("x-trufflehog/3.0", true),
            ("sdk TRUFFLEHOG", true),
            ("truffleho", false),
            ("ttruffle trufflehoG", true),
            ("", false),
        ] {
            assert_eq!(contains_folded(hay.as_bytes(), b"trufflehog"), found, "{hay}");
        }
    }

    #[test]
    fn the_shipped_rules_compile_and_leave_out_only_other_logsources() {
        let (rules, loaded) = Rules::builtin();
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        assert_eq!(loaded.other_logsources, 0, "rules/ holds only logsources nhid reads");
        assert!(rules.len() >= 80, "{}", rules.len());
        let formats: Vec<_> = rules.counts().into_iter().map(|(f, _)| f).collect();
        for f in ["cloudtrail", "k8s_audit", "github", "okta", "gcp_audit", "entra", "ocsf", "azure_activity"] {
            assert!(formats.contains(&f), "{f}: {formats:?}");
        }
    }

    #[test]
    fn a_record_matches_by_its_own_fields_and_only_rules_of_its_format() {
        let (rules, _) = Rules::builtin();
        let mut ev = event(STOP_LOGGING);
        rules.evaluate(&mut ev);
        let titles: Vec<_> = ev.rules.iter().map(|r| r.title.as_ref()).collect();
        assert!(titles.contains(&"AWS CloudTrail Important Change"), "{titles:?}");
        assert!(ev.rules.iter().all(|r| r.level == Severity::Medium || r.level == Severity::High), "{:?}", ev.rules);
        // The same text read as another format's record: no CloudTrail rule applies.
        let mut ev = event(STOP_LOGGING);
        ev.source_format = SourceFormat::Okta;
        rules.evaluate(&mut ev);
        assert!(ev.rules.is_empty(), "{:?}", ev.rules);
        // A canonical event has no raw record: nothing to read.
        let mut ev = event("");
        rules.evaluate(&mut ev);
        assert!(ev.rules.is_empty());
    }

    #[test]
    fn fields_are_read_through_arrays_and_escapes() {
        let raw = r#"{"eventName":"Auth\"orize","requestParameters":{"ipPermissions":{"items":[{"ipRanges":{"items":[{"cidrIp":"10.0.0.0/8"},{"cidrIp":"0.0.0.0/0"}]}}]}},"n":3,"b":true,"z":null}"#;
        let none = RawFields::default();
        let r = Raw::new(raw, &none, SourceFormat::Cloudtrail);
        assert_eq!(r.get_field("eventName"), Some(EventValue::Str(Cow::Borrowed("Auth\"orize"))));
        assert_eq!(r.get_field("n"), Some(EventValue::Int(3)));
        assert_eq!(r.get_field("b"), Some(EventValue::Bool(true)));
        assert_eq!(r.get_field("z"), Some(EventValue::Null));
        assert_eq!(r.get_field("missing"), None);
        assert_eq!(r.get_field("requestParameters.missing"), None);
        let cidrs = r.get_field("requestParameters.ipPermissions.items.ipRanges.items.cidrIp");
        let text = format!("{cidrs:?}");
        assert!(text.contains("0.0.0.0/0"), "{text}");
    }

    #[test]
    fn a_rules_directory_reports_every_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = "title: Trail stopped\nid: t-1\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    eventName: StopLogging\n  condition: sel\nlevel: high\n";
        std::fs::create_dir(dir.path().join("aws")).unwrap();
        std::fs::write(dir.path().join("aws/good.yml"), good).unwrap();
        std::fs::write(dir.path().join("broken.yml"), "title: [unclosed\n").unwrap();
        std::fs::write(dir.path().join("windows.yml"), good.replace("product: aws", "product: windows")).unwrap();
        let (rules, loaded) = Rules::load(dir.path());
        assert_eq!(rules.len(), 1);
        assert_eq!(loaded.other_logsources, 1);
        assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
        assert!(loaded.errors[0].contains("broken.yml"), "{:?}", loaded.errors);
        let mut ev = event(STOP_LOGGING);
        rules.evaluate(&mut ev);
        assert_eq!(ev.rules.len(), 1);
        assert_eq!((ev.rules[0].id.as_ref(), ev.rules[0].level), ("t-1", Severity::High));
    }

    /// A Sigma correlation over one identity's matches: the rule it counts alerts only through
    /// it, it fires on the call that crosses its threshold within the window, per group, and
    /// counts again from nothing after.
    #[test]
    fn a_correlation_fires_at_its_threshold_within_its_window_per_identity() {
        let text = "title: Secret read\nid: base-1\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    eventName: GetSecretValue\n  condition: sel\nlevel: informational\n---\ntitle: Many secrets\nid: corr-1\ncorrelation:\n  type: value_count\n  rules:\n    - base-1\n  group-by:\n    - userIdentity.arn\n  timespan: 10m\n  condition:\n    field: requestParameters.secretId\n    gte: 3\nlevel: high\n";
        let (rules, loaded) = Rules::from_texts([(PathBuf::from("c.yml"), Cow::Borrowed(text))].into_iter());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        assert_eq!(rules.len(), 2);
        let read = |who: &str, secret: &str, second: i64| {
            let raw = format!(
                r#"{{"eventName":"GetSecretValue","userIdentity":{{"arn":"{who}"}},"requestParameters":{{"secretId":"{secret}"}}}}"#
            );
            let mut ev = event(Box::leak(raw.into_boxed_str()));
            ev.time = second * 1000;
            rules.evaluate(&mut ev);
            ev.rules.iter().map(|r| r.id.to_string()).collect::<Vec<_>>()
        };
        // Two secrets, and another identity's third: nothing, not even the counted rule.
        assert!(read("a", "s1", 0).is_empty());
        assert!(read("a", "s1", 1).is_empty());
        assert!(read("a", "s2", 2).is_empty());
        assert!(read("b", "s3", 3).is_empty());
        assert_eq!(read("a", "s3", 4), ["corr-1"]);
        // Counted again from nothing; a third secret outside the window is not enough.
        assert!(read("a", "s4", 10).is_empty());
        assert!(read("a", "s5", 11).is_empty());
        assert!(read("a", "s6", 11 + 600).is_empty());
    }

    #[test]
    fn a_correlation_naming_a_rule_not_loaded_is_an_error() {
        let text = "title: Many\nid: corr-2\ncorrelation:\n  type: event_count\n  rules:\n    - nowhere\n  group-by:\n    - userIdentity.arn\n  timespan: 5m\n  condition:\n    gte: 3\nlevel: high\n";
        let (rules, loaded) = Rules::from_texts([(PathBuf::from("c.yml"), Cow::Borrowed(text))].into_iter());
        assert!(rules.is_empty());
        assert!(loaded.errors.iter().any(|e| e.contains("c.yml") && e.contains("nowhere")), "{:?}", loaded.errors);
    }
}
