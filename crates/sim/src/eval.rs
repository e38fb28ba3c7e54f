//! Detection quality: the alerts and actions of a replay scored against the labels of the
//! stream (`nhid-sim eval`). Pure computation over what the replay produced; the `nhid-sim`
//! binary runs the replay and prints the [`Report`].
//!
//! # What is measured
//!
//! - **Attacks** (labels with `expected_kinds`): detected when an alert of an expected kind
//!   names the label's principal at a time in `[start, end + 1 h]` ([`GRACE`]). The delay runs
//!   in event time from `first_malicious_time` to the earliest such alert, clamped at 0 (a slow
//!   ramp can be alerted during its camouflage, before the first malicious event).
//! - **Benign changes** (labels without `expected_kinds`): alerts on the principal from `start`
//!   until `quiet_from` are tolerated (neither required nor false); from `quiet_from` on they
//!   are false alerts. A benign label without `quiet_from` tolerates `[start, end + 1 h]`.
//! - **False alerts**: alerts that no label explains, raised after their principal's learning
//!   period (`learned_at`), per 1,000 principal-days after learning (the sum over identities of
//!   `max(0, last_seen - learned_at)`). Alerts of an unknown principal count as learned. The
//!   pseudo-detectors count like any alert: an `action_storm` alert names the principal whose
//!   alert tripped the breaker, a `response_failed` alert the principal of the failed action.
//! - **Automatic actions** against benign identities (containment, that is anything but
//!   `notify_owner`, whose target is under no attack label at the time, `[start, end + 1 h]`)
//!   and against humans (any action, notices included, whose target's type is `human`),
//!   dry runs included: what enforce mode would have done.
//! - **The narrow response** per attack whose label names one (`expected_response`): right when
//!   the actions on its window's alerts include the expected one aimed at the label's credential
//!   (`revoke_credential`) or session (`revoke_session`), or a notice to the owner and no
//!   containment (`notify_owner`), or nothing at all (`none`), and nothing wider
//!   (`disable_principal`).
//! - **By archetype** ([`crate::Archetype::of`] on the principal id: classic, or each of the
//!   cloud estate's archetypes): principals, principal-days after learning, false alerts (per
//!   1,000 principal-days and by kind) and containment of benign identities, so that a reader
//!   sees where the noise comes from.
//!
//! # JSON (`nhid-sim eval --json`)
//!
//! One object, [`Report`] serialized; times are RFC 3339, durations milliseconds, and a
//! value that cannot be computed (a median of nothing, a rate over no principal-days) is
//! `null`, as is `met` for a target with nothing to judge. The fields:
//!
//! - `replay`: `messages`, `events`, `dead_letters`, `evictions` (identities the state evicted:
//!   non-zero means principal-days are undercounted), `principals` (identities tracked).
//! - `totals`: `labels`, `attack_labels`, `benign_labels`, `alerts`, `actions`.
//! - `attacks[]`: `scenario`, `principal_id`, `principal_type`, `start`, `end`,
//!   `first_malicious_time`, `expected_kinds`, `detected`, `detected_at`, `detected_by` (the
//!   kind of the earliest expected alert), `delay_ms`, `kinds` (every kind alerted on the
//!   principal in the window), `actions[]` (`action`, `mode`, `count`: the actions taken on
//!   those alerts), `credential_id`, `session_id` and `expected_response` (from the label,
//!   `null` in labels without them), `narrow_response` (`true`/`false` as above, `null` without
//!   an expected response).
//! - `benign_changes[]`: `scenario`, `principal_id`, `principal_type`, `start`, `end`,
//!   `quiet_from`, `tolerated_alerts`, `false_alerts`, `quiet`.
//! - `recall`: `detected`, `attacks`, `value`, `target`, `met`.
//! - `delay`: `overall`, `rate_based` (detected by one of [`RATE_BASED_KINDS`]), `other`; each
//!   `detected`, `median_ms`, `max_ms`, `target_median_ms`, `met`.
//! - `false_alerts`: `count`, `principal_days_after_learning`, `per_1000_principal_days`,
//!   `target_per_1000_principal_days`, `met`, `alerts_explained`, `alerts_during_learning`,
//!   `by_kind_severity[]` (`kind`, `severity`, `count`, `per_1000_principal_days`), `alerts[]`
//!   (`alert_id`, `time`, `kind`, `severity`, `principal_id`, `principal_type`).
//! - `automatic_actions`: `against_benign` and `against_humans`, each `count`, `target` (0),
//!   `met`, `offenders[]` (`action_id`, `alert_id`, `alert_kind`, `time`, `action`, `mode`,
//!   `principal_id`, `principal_type`); `on_benign_changes_while_new`: containment of a benign
//!   change before its `quiet_from` (tolerated like its alerts, no target).
//! - `narrow_response`: `correct`, `judged` (attacks with an expected response), `value`.
//! - `by_archetype[]`: `archetype`, `principals`, `principal_days_after_learning`,
//!   `false_alerts`, `per_1000_principal_days`, `false_alerts_by_kind` (kind: count),
//!   `containment_of_benign` (as counted in `automatic_actions.against_benign`).
//! - `targets_missed`: names of the targets missed, from `recall`, `median_delay_rate_based`,
//!   `median_delay_other`, `false_alerts`, `actions_against_benign`, `actions_against_humans`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::{Archetype, Label};
use nhid_engine::respond::alert::{Action, Alert, Mode};
use nhid_model::event::PrincipalType;
use nhid_model::time::{DAY, HOUR, Millis, SECOND, serde_rfc3339};
use nhid_model::vocab::{ActionKind, Response, Severity};

/// How long after a label's `end` its alerts still count: detection of the tail of an attack
/// (a minute aggregated, an hour ceiling) lands after the last malicious event.
pub const GRACE: Millis = HOUR;

/// Kinds that measure a rate over a window, so that they cannot fire on the first malicious
/// event: their delay target is [`TARGET_MEDIAN_DELAY_RATE_MS`], not [`TARGET_MEDIAN_DELAY_MS`].
pub const RATE_BASED_KINDS: &[&str] = &["rate_spike", "volume_ceiling", "denied_burst", "breadth"];

/// The targets of issue 6.
pub const TARGET_RECALL: f64 = 1.0;
pub const TARGET_MEDIAN_DELAY_MS: Millis = 5 * SECOND;
pub const TARGET_MEDIAN_DELAY_RATE_MS: Millis = 60 * SECOND;
pub const TARGET_FALSE_PER_1000: f64 = 1.0;

/// What eval keeps of an alert: memory grows with alerts, so not their evidence and summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertRecord {
    pub alert_id: String,
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    pub kind: String,
    pub severity: Severity,
    pub principal_id: String,
    pub principal_type: PrincipalType,
}

impl From<&Alert> for AlertRecord {
    fn from(a: &Alert) -> Self {
        AlertRecord {
            alert_id: a.alert_id.clone(),
            time: a.time,
            kind: a.kind.clone(),
            severity: a.severity,
            principal_id: a.principal.id.clone(),
            principal_type: a.principal.kind,
        }
    }
}

/// What eval keeps of an action.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionRecord {
    pub action_id: String,
    pub alert_id: String,
    pub time: Millis,
    pub action: ActionKind,
    pub mode: Mode,
    pub principal_id: String,
    pub principal_type: PrincipalType,
    /// What the action targets beyond the principal: the key or session it cuts.
    pub credential_id: Option<String>,
    pub session_id: Option<String>,
}

impl From<&Action> for ActionRecord {
    fn from(a: &Action) -> Self {
        ActionRecord {
            action_id: a.action_id.clone(),
            alert_id: a.alert_id.clone(),
            time: a.time,
            action: a.action,
            mode: a.mode,
            principal_id: a.target.principal_id.clone(),
            principal_type: a.target.principal_kind,
            credential_id: a.target.credential_id.clone(),
            session_id: a.target.session_id.clone(),
        }
    }
}

/// One identity as the state saw it over the replay: its principal-days after learning are
/// the denominator of the false-alert rate.
#[derive(Clone, Debug, PartialEq)]
pub struct PrincipalSpan {
    pub principal_id: String,
    pub first_seen: Millis,
    pub last_seen: Millis,
    /// `first_seen` plus the learning period of its type: alerts before it are not counted.
    pub learned_at: Millis,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Filled in by the caller from the replay's counts (zero from [`evaluate`]).
    pub replay: ReplayCounts,
    pub totals: Totals,
    pub attacks: Vec<AttackRow>,
    pub benign_changes: Vec<BenignRow>,
    pub recall: Recall,
    pub delay: Delays,
    pub false_alerts: FalseAlerts,
    pub automatic_actions: AutomaticActions,
    pub narrow_response: NarrowResponse,
    pub by_archetype: Vec<ArchetypeRow>,
    pub targets_missed: Vec<&'static str>,
}

/// How many attacks got the narrow response their label expects.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NarrowResponse {
    pub correct: usize,
    /// Attacks whose label names an expected response.
    pub judged: usize,
    pub value: Option<f64>,
}

/// Where the noise comes from: one archetype's false alerts and containment of benign identities.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchetypeRow {
    pub archetype: Archetype,
    /// Identities of the archetype the replay's state holds.
    pub principals: usize,
    pub principal_days_after_learning: f64,
    pub false_alerts: usize,
    pub per_1000_principal_days: Option<f64>,
    pub false_alerts_by_kind: BTreeMap<String, usize>,
    /// Containment (revocations and the like, dry runs included) of its benign identities.
    pub containment_of_benign: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReplayCounts {
    pub messages: u64,
    pub events: u64,
    pub dead_letters: u64,
    pub evictions: u64,
    pub principals: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub labels: usize,
    pub attack_labels: usize,
    pub benign_labels: usize,
    pub alerts: usize,
    pub actions: usize,
}

/// The label a row scores: its scenario, principal and span, the first fields of both kinds
/// of row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelSpan {
    pub scenario: String,
    pub principal_id: String,
    pub principal_type: PrincipalType,
    #[serde(with = "serde_rfc3339")]
    pub start: Millis,
    #[serde(with = "serde_rfc3339")]
    pub end: Millis,
}

impl From<&Label> for LabelSpan {
    fn from(l: &Label) -> Self {
        LabelSpan {
            scenario: l.scenario.clone(),
            principal_id: l.principal_id.clone(),
            principal_type: l.principal_type,
            start: l.start,
            end: l.end,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttackRow {
    #[serde(flatten)]
    pub label: LabelSpan,
    #[serde(with = "serde_rfc3339")]
    pub first_malicious_time: Millis,
    pub expected_kinds: Vec<String>,
    pub detected: bool,
    #[serde(with = "serde_rfc3339::option")]
    pub detected_at: Option<Millis>,
    pub detected_by: Option<String>,
    pub delay_ms: Option<Millis>,
    pub kinds: Vec<String>,
    pub actions: Vec<ActionTaken>,
    pub credential_id: Option<String>,
    pub session_id: Option<String>,
    pub expected_response: Option<Response>,
    /// Whether the actions include the expected narrow one and nothing wider; `None` without
    /// an expected response.
    pub narrow_response: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ActionTaken {
    pub action: ActionKind,
    pub mode: Mode,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenignRow {
    #[serde(flatten)]
    pub label: LabelSpan,
    #[serde(with = "serde_rfc3339::option")]
    pub quiet_from: Option<Millis>,
    /// Alerts on the principal in `[start, quiet_from)`.
    pub tolerated_alerts: usize,
    /// False alerts (as counted in [`FalseAlerts`]) on the principal from `quiet_from` on.
    pub false_alerts: usize,
    pub quiet: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Recall {
    pub detected: usize,
    pub attacks: usize,
    pub value: Option<f64>,
    pub target: f64,
    pub met: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Delays {
    pub overall: DelayStats,
    pub rate_based: DelayStats,
    pub other: DelayStats,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DelayStats {
    pub detected: usize,
    /// For an even count, the mean of the two middle delays (rounded down to the millisecond).
    pub median_ms: Option<Millis>,
    pub max_ms: Option<Millis>,
    pub target_median_ms: Option<Millis>,
    pub met: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FalseAlerts {
    pub count: usize,
    pub principal_days_after_learning: f64,
    pub per_1000_principal_days: Option<f64>,
    pub target_per_1000_principal_days: f64,
    pub met: Option<bool>,
    /// Alerts a label explains (attack windows, benign changes before `quiet_from`).
    pub alerts_explained: usize,
    /// Unexplained alerts raised while their principal was still learning: not counted.
    pub alerts_during_learning: usize,
    pub by_kind_severity: Vec<KindSeverityCount>,
    pub alerts: Vec<AlertRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindSeverityCount {
    pub kind: String,
    pub severity: Severity,
    pub count: usize,
    pub per_1000_principal_days: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AutomaticActions {
    pub against_benign: ActionCount,
    pub against_humans: ActionCount,
    /// Containment of a benign change of behaviour before its `quiet_from`: a new nightly
    /// batch at 30 times the usual rate looks exactly like exfiltration on its first nights,
    /// so these are tolerated as its alerts are, and reported apart (no target).
    pub on_benign_changes_while_new: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ActionCount {
    pub count: usize,
    pub target: usize,
    pub met: bool,
    pub offenders: Vec<Offender>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Offender {
    pub action_id: String,
    pub alert_id: String,
    /// Kind of the alert that asked for the action (`None` if no alert has its id).
    pub alert_kind: Option<String>,
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    pub action: ActionKind,
    pub mode: Mode,
    pub principal_id: String,
    pub principal_type: PrincipalType,
}

fn is_attack(l: &Label) -> bool {
    !l.expected_kinds.is_empty()
}

/// Whether `l` covers `t` on its principal: an attack from `start` to `end` plus [`GRACE`];
/// a benign change from `start` until `quiet_from` (excluded), or plus grace without one.
fn explains(l: &Label, t: Millis) -> bool {
    match (is_attack(l), l.quiet_from) {
        (false, Some(quiet)) => l.start <= t && t < quiet,
        _ => in_attack_window(l, t),
    }
}

fn in_attack_window(l: &Label, t: Millis) -> bool {
    l.start <= t && t <= l.end.saturating_add(GRACE)
}

fn per_1000(count: usize, principal_days: f64) -> Option<f64> {
    (principal_days > 0.0).then(|| count as f64 * 1_000.0 / principal_days)
}

fn delay_stats(mut delays: Vec<Millis>, target: Option<Millis>) -> DelayStats {
    delays.sort_unstable();
    let n = delays.len();
    let median_ms = match n {
        0 => None,
        _ if n % 2 == 1 => Some(delays[n / 2]),
        _ => Some((delays[n / 2 - 1] + delays[n / 2]) / 2),
    };
    DelayStats {
        detected: n,
        median_ms,
        max_ms: delays.last().copied(),
        target_median_ms: target,
        met: target.and_then(|t| median_ms.map(|m| m <= t)),
    }
}

/// Scores a replay: `alerts` and `actions` as the engine produced them, `principals` as its
/// state holds them afterwards.
pub fn evaluate(
    labels: &[Label],
    alerts: &[AlertRecord],
    actions: &[ActionRecord],
    principals: &[PrincipalSpan],
) -> Report {
    let index = Index::new(labels, alerts, actions, principals);
    let attacks: Vec<AttackRow> = labels.iter().filter(|l| is_attack(l)).map(|l| index.score_attack(l)).collect();
    let false_alerts = index.count_false_alerts(alerts, principals);
    let benign_changes = labels.iter().filter(|l| !is_attack(l)).map(|l| index.score_benign_change(l)).collect();
    let automatic_actions = index.judge_actions(alerts, actions);
    let recall = recall_of(&attacks);
    let delay = delays_of(&attacks);
    let narrow_response = narrow_response_of(&attacks);
    let by_archetype = by_archetype(&false_alerts, &automatic_actions, principals);
    let targets_missed = [
        ("recall", recall.met),
        ("median_delay_rate_based", delay.rate_based.met),
        ("median_delay_other", delay.other.met),
        ("false_alerts", false_alerts.met),
        ("actions_against_benign", Some(automatic_actions.against_benign.met)),
        ("actions_against_humans", Some(automatic_actions.against_humans.met)),
    ]
    .into_iter()
    .filter(|(_, met)| *met == Some(false))
    .map(|(name, _)| name)
    .collect();
    Report {
        replay: ReplayCounts::default(),
        totals: Totals {
            labels: labels.len(),
            attack_labels: attacks.len(),
            benign_labels: labels.len() - attacks.len(),
            alerts: alerts.len(),
            actions: actions.len(),
        },
        attacks,
        benign_changes,
        recall,
        delay,
        false_alerts,
        automatic_actions,
        narrow_response,
        by_archetype,
        targets_missed,
    }
}

fn narrow_response_of(attacks: &[AttackRow]) -> NarrowResponse {
    let judged: Vec<bool> = attacks.iter().filter_map(|r| r.narrow_response).collect();
    let correct = judged.iter().filter(|&&ok| ok).count();
    NarrowResponse {
        correct,
        judged: judged.len(),
        value: (!judged.is_empty()).then(|| correct as f64 / judged.len() as f64),
    }
}

/// False alerts and containment of benign identities per archetype, for every archetype with
/// a principal in the state or a false alert.
fn by_archetype(f: &FalseAlerts, a: &AutomaticActions, principals: &[PrincipalSpan]) -> Vec<ArchetypeRow> {
    fn row<'r>(rows: &'r mut BTreeMap<Archetype, ArchetypeRow>, principal: &str) -> &'r mut ArchetypeRow {
        let archetype = Archetype::of(principal);
        rows.entry(archetype).or_insert_with(|| ArchetypeRow {
            archetype,
            principals: 0,
            principal_days_after_learning: 0.0,
            false_alerts: 0,
            per_1000_principal_days: None,
            false_alerts_by_kind: BTreeMap::new(),
            containment_of_benign: 0,
        })
    }
    let mut rows = BTreeMap::new();
    for p in principals {
        let r = row(&mut rows, &p.principal_id);
        r.principals += 1;
        r.principal_days_after_learning += (p.last_seen - p.learned_at).max(0) as f64 / DAY as f64;
    }
    for alert in &f.alerts {
        let r = row(&mut rows, &alert.principal_id);
        r.false_alerts += 1;
        *r.false_alerts_by_kind.entry(alert.kind.clone()).or_default() += 1;
    }
    for x in &a.against_benign.offenders {
        row(&mut rows, &x.principal_id).containment_of_benign += 1;
    }
    rows.into_values()
        .map(|mut r| {
            r.per_1000_principal_days = per_1000(r.false_alerts, r.principal_days_after_learning);
            r
        })
        .collect()
}

/// Whether `taken` (the actions on an attack window's alerts) hold the narrow response `l`
/// expects, and nothing wider.
fn narrow(l: &Label, taken: &[&ActionRecord]) -> Option<bool> {
    let expected = l.expected_response?;
    let wider = taken.iter().any(|x| x.action == ActionKind::DisablePrincipal);
    let containment = taken.iter().any(|x| x.action != ActionKind::NotifyOwner);
    let aimed = |x: &&&ActionRecord, kind: ActionKind| {
        x.action == kind
            && match kind {
                ActionKind::RevokeSession if l.session_id.is_some() => x.session_id == l.session_id,
                _ => x.credential_id == l.credential_id,
            }
    };
    Some(match expected {
        Response::RevokeCredential => !wider && taken.iter().any(|x| aimed(&x, ActionKind::RevokeCredential)),
        Response::RevokeSession => !wider && taken.iter().any(|x| aimed(&x, ActionKind::RevokeSession)),
        Response::RotateSecret => !wider && taken.iter().any(|x| x.action == ActionKind::RotateSecret),
        Response::DisablePrincipal => taken.iter().any(|x| x.action == ActionKind::DisablePrincipal),
        Response::NotifyOwner => !containment && taken.iter().any(|x| x.action == ActionKind::NotifyOwner),
        Response::None => taken.is_empty(),
    })
}

/// What the scoring looks up: alerts and labels by principal, actions by the alert that
/// asked for them, and when each principal finished learning.
struct Index<'a> {
    alerts_of: HashMap<&'a str, Vec<&'a AlertRecord>>,
    labels_of: HashMap<&'a str, Vec<&'a Label>>,
    actions_of: HashMap<&'a str, Vec<&'a ActionRecord>>,
    learned_at: HashMap<&'a str, Millis>,
}

impl<'a> Index<'a> {
    fn new(
        labels: &'a [Label],
        alerts: &'a [AlertRecord],
        actions: &'a [ActionRecord],
        principals: &'a [PrincipalSpan],
    ) -> Self {
        let mut alerts_of: HashMap<&str, Vec<&AlertRecord>> = HashMap::new();
        for a in alerts {
            alerts_of.entry(&a.principal_id).or_default().push(a);
        }
        let mut labels_of: HashMap<&str, Vec<&Label>> = HashMap::new();
        for l in labels {
            labels_of.entry(&l.principal_id).or_default().push(l);
        }
        let mut actions_of: HashMap<&str, Vec<&ActionRecord>> = HashMap::new();
        for x in actions {
            actions_of.entry(&x.alert_id).or_default().push(x);
        }
        let learned_at = principals.iter().map(|p| (p.principal_id.as_str(), p.learned_at)).collect();
        Index { alerts_of, labels_of, actions_of, learned_at }
    }

    fn alerts_on(&self, principal: &str) -> &[&'a AlertRecord] {
        self.alerts_of.get(principal).map_or(&[], Vec::as_slice)
    }

    /// Whether some label of `principal` satisfies `covers`.
    fn labeled(&self, principal: &str, covers: impl Fn(&Label) -> bool) -> bool {
        self.labels_of.get(principal).is_some_and(|ls| ls.iter().any(|l| covers(l)))
    }

    fn explained(&self, a: &AlertRecord) -> bool {
        self.labeled(&a.principal_id, |l| explains(l, a.time))
    }

    fn learning(&self, a: &AlertRecord) -> bool {
        self.learned_at.get(a.principal_id.as_str()).is_some_and(|&learned| a.time < learned)
    }

    fn is_false(&self, a: &AlertRecord) -> bool {
        !self.explained(a) && !self.learning(a)
    }

    /// The attack's row: whether and how fast an expected kind caught it, and what was done.
    fn score_attack(&self, l: &Label) -> AttackRow {
        let window: Vec<&AlertRecord> =
            self.alerts_on(&l.principal_id).iter().copied().filter(|a| in_attack_window(l, a.time)).collect();
        // The earliest; among simultaneous ones, the first raised.
        let first = window.iter().filter(|a| l.expected_kinds.contains(&a.kind)).min_by_key(|a| a.time);
        let kinds: BTreeSet<&str> = window.iter().map(|a| a.kind.as_str()).collect();
        let records: Vec<&ActionRecord> = window
            .iter()
            .flat_map(|a| self.actions_of.get(a.alert_id.as_str()).into_iter().flatten().copied())
            .collect();
        let mut taken: BTreeMap<(ActionKind, Mode), usize> = BTreeMap::new();
        for x in &records {
            *taken.entry((x.action, x.mode)).or_default() += 1;
        }
        AttackRow {
            label: LabelSpan::from(l),
            first_malicious_time: l.first_malicious_time,
            expected_kinds: l.expected_kinds.clone(),
            detected: first.is_some(),
            detected_at: first.map(|a| a.time),
            detected_by: first.map(|a| a.kind.clone()),
            delay_ms: first.map(|a| (a.time - l.first_malicious_time).max(0)),
            kinds: kinds.into_iter().map(str::to_owned).collect(),
            actions: taken.into_iter().map(|((action, mode), count)| ActionTaken { action, mode, count }).collect(),
            credential_id: l.credential_id.clone(),
            session_id: l.session_id.clone(),
            expected_response: l.expected_response,
            narrow_response: narrow(l, &records),
        }
    }

    /// Sorts every alert: explained by a label, raised while its principal learned, or false.
    fn count_false_alerts(&self, alerts: &[AlertRecord], principals: &[PrincipalSpan]) -> FalseAlerts {
        let mut f = FalseAlerts { target_per_1000_principal_days: TARGET_FALSE_PER_1000, ..Default::default() };
        for a in alerts {
            if self.explained(a) {
                f.alerts_explained += 1;
            } else if self.learning(a) {
                f.alerts_during_learning += 1;
            } else {
                f.alerts.push(a.clone());
            }
        }
        let principal_days: f64 =
            principals.iter().map(|p| (p.last_seen - p.learned_at).max(0) as f64).sum::<f64>() / DAY as f64;
        let mut by_kind_severity: BTreeMap<(&str, Severity), usize> = BTreeMap::new();
        for a in &f.alerts {
            *by_kind_severity.entry((a.kind.as_str(), a.severity)).or_default() += 1;
        }
        f.by_kind_severity = by_kind_severity
            .into_iter()
            .map(|((kind, severity), count)| KindSeverityCount {
                kind: kind.to_owned(),
                severity,
                count,
                per_1000_principal_days: per_1000(count, principal_days),
            })
            .collect();
        f.count = f.alerts.len();
        f.principal_days_after_learning = principal_days;
        f.per_1000_principal_days = per_1000(f.count, principal_days);
        f.met = f.per_1000_principal_days.map(|r| r <= TARGET_FALSE_PER_1000);
        f
    }

    /// The benign change's row: alerts tolerated while it was new, false ones once learned.
    fn score_benign_change(&self, l: &Label) -> BenignRow {
        let on_principal = self.alerts_on(&l.principal_id);
        let tolerated = on_principal.iter().filter(|a| explains(l, a.time)).count();
        let after =
            l.quiet_from.map_or(0, |quiet| on_principal.iter().filter(|a| a.time >= quiet && self.is_false(a)).count());
        BenignRow {
            label: LabelSpan::from(l),
            quiet_from: l.quiet_from,
            tolerated_alerts: tolerated,
            false_alerts: after,
            quiet: after == 0,
        }
    }

    /// Automatic actions that should not have been taken: containment of identities under no
    /// attack (apart from benign changes while new), and anything against humans.
    fn judge_actions(&self, alerts: &[AlertRecord], actions: &[ActionRecord]) -> AutomaticActions {
        let kind_of: HashMap<&str, &str> = alerts.iter().map(|a| (a.alert_id.as_str(), a.kind.as_str())).collect();
        let offender = |x: &ActionRecord| Offender {
            action_id: x.action_id.clone(),
            alert_id: x.alert_id.clone(),
            alert_kind: kind_of.get(x.alert_id.as_str()).map(|k| (*k).to_owned()),
            time: x.time,
            action: x.action,
            mode: x.mode,
            principal_id: x.principal_id.clone(),
            principal_type: x.principal_type,
        };
        let count = |offenders: Vec<Offender>| ActionCount {
            count: offenders.len(),
            target: 0,
            met: offenders.is_empty(),
            offenders,
        };
        let under_attack =
            |x: &ActionRecord| self.labeled(&x.principal_id, |l| is_attack(l) && in_attack_window(l, x.time));
        let while_new = |x: &ActionRecord| self.labeled(&x.principal_id, |l| !is_attack(l) && explains(l, x.time));
        let containment = |x: &&ActionRecord| x.action != ActionKind::NotifyOwner && !under_attack(x);
        AutomaticActions {
            against_benign: count(actions.iter().filter(containment).filter(|x| !while_new(x)).map(offender).collect()),
            on_benign_changes_while_new: actions.iter().filter(containment).filter(|x| while_new(x)).count(),
            against_humans: count(
                actions.iter().filter(|x| x.principal_type == PrincipalType::Human).map(offender).collect(),
            ),
        }
    }
}

fn recall_of(attacks: &[AttackRow]) -> Recall {
    let detected = attacks.iter().filter(|r| r.detected).count();
    let value = (!attacks.is_empty()).then(|| detected as f64 / attacks.len() as f64);
    Recall { detected, attacks: attacks.len(), value, target: TARGET_RECALL, met: value.map(|v| v >= TARGET_RECALL) }
}

/// Delays of the detected attacks, apart for the rate-based kinds, which cannot fire on the
/// first malicious event.
fn delays_of(attacks: &[AttackRow]) -> Delays {
    let (mut all, mut rate_based, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for r in attacks {
        if let (Some(kind), Some(d)) = (&r.detected_by, r.delay_ms) {
            all.push(d);
            if RATE_BASED_KINDS.contains(&kind.as_str()) { rate_based.push(d) } else { other.push(d) }
        }
    }
    Delays {
        overall: delay_stats(all, None),
        rate_based: delay_stats(rate_based, Some(TARGET_MEDIAN_DELAY_RATE_MS)),
        other: delay_stats(other, Some(TARGET_MEDIAN_DELAY_MS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::time::MINUTE;

    /// Day 10 of the epoch: every principal below has learned by then.
    const T: Millis = 10 * DAY;

    fn attack(scenario: &str, principal: &str, start: Millis, end: Millis, first: Millis, kinds: &[&str]) -> Label {
        Label {
            scenario: scenario.into(),
            principal_id: principal.into(),
            principal_type: PrincipalType::ServiceAccount,
            start,
            end,
            first_malicious_event_id: "e1".into(),
            first_malicious_time: first,
            expected_kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            quiet_from: None,
            credential_id: None,
            session_id: None,
            expected_response: None,
        }
    }

    fn benign(principal: &str, start: Millis, end: Millis, quiet_from: Option<Millis>) -> Label {
        Label { scenario: "new_nightly_batch".into(), quiet_from, ..attack("", principal, start, end, start, &[]) }
    }

    fn alert(id: &str, principal: &str, kind: &str, time: Millis) -> AlertRecord {
        AlertRecord {
            alert_id: id.into(),
            time,
            kind: kind.into(),
            severity: Severity::High,
            principal_id: principal.into(),
            principal_type: PrincipalType::ServiceAccount,
        }
    }

    fn action(alert_id: &str, principal: &str, kind: ActionKind, time: Millis) -> ActionRecord {
        ActionRecord {
            action_id: format!("x-{alert_id}"),
            alert_id: alert_id.into(),
            time,
            action: kind,
            mode: Mode::DryRun,
            principal_id: principal.into(),
            principal_type: PrincipalType::ServiceAccount,
            credential_id: None,
            session_id: None,
        }
    }

    /// Seen from day 0 to day 11, learned after day 1: ten principal-days after learning.
    fn span(principal: &str) -> PrincipalSpan {
        PrincipalSpan { principal_id: principal.into(), first_seen: 0, last_seen: 11 * DAY, learned_at: DAY }
    }

    #[test]
    fn an_attack_is_detected_by_an_expected_kind_on_its_principal_only() {
        let labels = [
            attack("leaked_key", "svc-a", T, T + 10 * MINUTE, T, &["new_source"]),
            attack("exfiltration", "svc-b", T, T + 10 * MINUTE, T, &["rate_spike"]),
        ];
        let alerts = [
            alert("a1", "svc-a", "new_source", T + 3 * SECOND),
            // Right kind, wrong principal; right principal, a kind not expected.
            alert("a2", "svc-c", "rate_spike", T + SECOND),
            alert("a3", "svc-b", "scope_drift", T + SECOND),
        ];
        let r = evaluate(&labels, &alerts, &[], &[span("svc-a"), span("svc-b"), span("svc-c")]);
        assert!(r.attacks[0].detected);
        assert_eq!(r.attacks[0].delay_ms, Some(3_000));
        assert_eq!(r.attacks[0].detected_by.as_deref(), Some("new_source"));
        assert!(!r.attacks[1].detected);
        assert_eq!(r.attacks[1].delay_ms, None);
        assert_eq!(r.attacks[1].kinds, ["scope_drift"]);
        assert_eq!((r.recall.detected, r.recall.attacks, r.recall.value, r.recall.met), (1, 2, Some(0.5), Some(false)));
        assert!(r.targets_missed.contains(&"recall"));
    }

    #[test]
    fn an_alert_before_the_first_malicious_event_detects_with_zero_delay() {
        // A slow ramp: the window starts with the camouflage, the first malicious event an hour later.
        let labels = [attack("slow_ramp", "svc-a", T, T + 2 * HOUR, T + HOUR, &["rate_spike"])];
        let alerts =
            [alert("a1", "svc-a", "rate_spike", T + 50 * MINUTE), alert("a2", "svc-a", "rate_spike", T + HOUR)];
        let r = evaluate(&labels, &alerts, &[], &[span("svc-a")]);
        assert_eq!(r.attacks[0].delay_ms, Some(0));
        assert_eq!(r.attacks[0].detected_at, Some(T + 50 * MINUTE));
    }

    #[test]
    fn the_window_runs_from_start_to_an_hour_after_end_inclusive() {
        let end = T + 10 * MINUTE;
        let l = |p: &str| attack("s", p, T, end, T, &["new_source"]);
        let labels = [l("svc-a"), l("svc-b"), l("svc-c")];
        let alerts = [
            alert("a", "svc-a", "new_source", end + HOUR),
            alert("b", "svc-b", "new_source", end + HOUR + 1),
            alert("c", "svc-c", "new_source", T - 1),
        ];
        let r = evaluate(&labels, &alerts, &[], &[span("svc-a"), span("svc-b"), span("svc-c")]);
        assert_eq!(r.attacks.iter().map(|a| a.detected).collect::<Vec<_>>(), [true, false, false]);
        assert_eq!(r.attacks[0].delay_ms, Some(10 * MINUTE + HOUR));
        // Outside its window an alert is explained by nothing: both are false alerts.
        let ids: Vec<&str> = r.false_alerts.alerts.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(r.false_alerts.alerts_explained, 1);
    }

    #[test]
    fn a_benign_change_tolerates_alerts_until_quiet_from_and_counts_them_false_after() {
        let quiet = T + DAY;
        let labels = [benign("svc-batch", T, T + 2 * DAY, Some(quiet))];
        let alerts = [
            alert("a1", "svc-batch", "rate_spike", T),
            alert("a2", "svc-batch", "volume_ceiling", quiet - 1),
            alert("a3", "svc-batch", "rate_spike", quiet),
            // After the label's end, still false: the change was learned.
            alert("a4", "svc-batch", "rate_spike", T + 3 * DAY),
        ];
        let r = evaluate(&labels, &alerts, &[], &[span("svc-batch")]);
        assert_eq!(r.totals.attack_labels, 0);
        assert_eq!(r.recall.value, None);
        let row = &r.benign_changes[0];
        assert_eq!((row.tolerated_alerts, row.false_alerts, row.quiet), (2, 2, false));
        assert_eq!((r.false_alerts.count, r.false_alerts.alerts_explained), (2, 2));

        let r = evaluate(&labels, &alerts[..2], &[], &[span("svc-batch")]);
        assert!(r.benign_changes[0].quiet);
        assert_eq!(r.false_alerts.count, 0);
    }

    #[test]
    fn false_alerts_are_counted_per_1000_principal_days_after_learning() {
        let principals = [
            span("svc-a"),
            span("svc-b"),
            // Gone before it learned: no principal-days, whatever it did.
            PrincipalSpan { principal_id: "svc-short".into(), first_seen: 0, last_seen: DAY / 2, learned_at: DAY },
        ];
        let mut low = alert("a2", "svc-b", "new_source", T);
        low.severity = Severity::Low;
        let alerts = [
            alert("a1", "svc-a", "new_source", T),
            low,
            alert("a3", "svc-a", "scope_drift", T),
            // While learning: not counted.
            alert("a4", "svc-a", "new_source", DAY - 1),
            // A principal the state does not hold counts as learned.
            alert("a5", "svc-gone", "new_source", T),
        ];
        let r = evaluate(&[], &alerts, &[], &principals);
        let f = &r.false_alerts;
        assert_eq!(f.principal_days_after_learning, 20.0);
        assert_eq!((f.count, f.alerts_during_learning), (4, 1));
        assert_eq!(f.per_1000_principal_days, Some(200.0));
        assert_eq!(f.met, Some(false));
        let rows: Vec<(&str, Severity, usize, Option<f64>)> = f
            .by_kind_severity
            .iter()
            .map(|k| (k.kind.as_str(), k.severity, k.count, k.per_1000_principal_days))
            .collect();
        assert_eq!(
            rows,
            [
                ("new_source", Severity::Low, 1, Some(50.0)),
                ("new_source", Severity::High, 2, Some(100.0)),
                ("scope_drift", Severity::High, 1, Some(50.0)),
            ]
        );
        assert!(r.targets_missed.contains(&"false_alerts"));

        // No principal-days: no rate, and no verdict.
        let r = evaluate(&[], &[], &[], &[]);
        assert_eq!((r.false_alerts.per_1000_principal_days, r.false_alerts.met), (None, None));
        assert!(r.targets_missed.is_empty());
    }

    #[test]
    fn actions_against_benign_identities_and_humans_are_counted() {
        let labels = [attack("leaked_key", "svc-a", T, T + 10 * MINUTE, T, &["new_source"])];
        let alerts = [
            alert("a1", "svc-a", "new_source", T),
            alert("a2", "svc-a", "new_source", T + 2 * HOUR),
            alert("a3", "svc-b", "scope_drift", T),
            alert("a4", "alice", "privilege_change", T),
        ];
        let mut notify_human = action("a4", "alice", ActionKind::NotifyOwner, T);
        notify_human.principal_type = PrincipalType::Human;
        let actions = [
            // Containment of the attacked principal in its window: expected.
            action("a1", "svc-a", ActionKind::RevokeCredential, T),
            // The same principal after the window, and a benign one: against benign identities.
            action("a2", "svc-a", ActionKind::RevokeCredential, T + 2 * HOUR),
            action("a3", "svc-b", ActionKind::RevokeSession, T),
            // A notice to a benign identity's owner is not containment.
            action("a3", "svc-b", ActionKind::NotifyOwner, T),
            // A notice is still an action against a human.
            notify_human,
        ];
        let r = evaluate(&labels, &alerts, &actions, &[]);
        let benign: Vec<(&str, Option<&str>)> = r
            .automatic_actions
            .against_benign
            .offenders
            .iter()
            .map(|o| (o.alert_id.as_str(), o.alert_kind.as_deref()))
            .collect();
        assert_eq!(benign, [("a2", Some("new_source")), ("a3", Some("scope_drift"))]);
        assert_eq!(r.automatic_actions.against_humans.count, 1);
        assert_eq!(r.automatic_actions.against_humans.offenders[0].action, ActionKind::NotifyOwner);
        assert!(!r.automatic_actions.against_humans.met);
        assert_eq!(r.targets_missed, ["actions_against_benign", "actions_against_humans"]);
        // The attack row lists the action taken on its window's alerts, not the later one.
        assert_eq!(
            r.attacks[0].actions,
            [ActionTaken { action: ActionKind::RevokeCredential, mode: Mode::DryRun, count: 1 }]
        );
    }

    #[test]
    fn delays_split_into_rate_based_and_other_kinds_with_their_targets() {
        let l = |p: &str, kind: &str| attack("s", p, T, T + HOUR, T, &[kind]);
        let labels = [
            l("p1", "rate_spike"),
            l("p2", "denied_burst"),
            l("p3", "new_source"),
            l("p4", "scope_drift"),
            l("p5", "expired_credential"),
        ];
        let alerts = [
            alert("a1", "p1", "rate_spike", T + 30 * SECOND),
            alert("a2", "p2", "denied_burst", T + 90 * SECOND),
            alert("a3", "p3", "new_source", T),
            alert("a4", "p4", "scope_drift", T + 4 * SECOND),
            alert("a5", "p5", "expired_credential", T + 7 * SECOND),
        ];
        let r = evaluate(&labels, &alerts, &[], &[]);
        let d = &r.delay;
        assert_eq!((d.overall.detected, d.overall.median_ms, d.overall.max_ms), (5, Some(7_000), Some(90_000)));
        assert_eq!(d.overall.met, None);
        // Even count: the mean of the middle two.
        assert_eq!((d.rate_based.median_ms, d.rate_based.met), (Some(60_000), Some(true)));
        assert_eq!((d.other.median_ms, d.other.max_ms, d.other.met), (Some(4_000), Some(7_000), Some(true)));
        assert!(r.targets_missed.is_empty());

        let r = evaluate(&labels[2..], &alerts[4..], &[], &[]);
        assert_eq!((r.delay.other.median_ms, r.delay.other.met), (Some(7_000), Some(false)));
        assert_eq!(r.delay.rate_based.met, None);
        assert!(r.targets_missed.contains(&"median_delay_other"));
    }

    #[test]
    fn the_narrow_response_is_the_expected_action_on_the_labels_credential_or_session() {
        let with = |principal: &str, response: Response| Label {
            credential_id: Some(format!("AKIA-{principal}")),
            session_id: Some(format!("sess-{principal}")),
            expected_response: Some(response),
            ..attack("s", principal, T, T + HOUR, T, &["new_source"])
        };
        let labels = [
            with("p1", Response::RevokeCredential),
            with("p2", Response::RevokeSession),
            with("p3", Response::RevokeCredential),
            with("p4", Response::NotifyOwner),
            with("p5", Response::None),
            with("p6", Response::RevokeSession),
            attack("s", "p7", T, T + HOUR, T, &["new_source"]),
        ];
        let alerts: Vec<AlertRecord> =
            (1..=7).map(|i| alert(&format!("a{i}"), &format!("p{i}"), "new_source", T + SECOND)).collect();
        let aimed =
            |alert_id: &str, principal: &str, kind: ActionKind, credential: &str, session: Option<&str>| ActionRecord {
                credential_id: Some(credential.into()),
                session_id: session.map(Into::into),
                ..action(alert_id, principal, kind, T + SECOND)
            };
        let actions = [
            aimed("a1", "p1", ActionKind::RevokeCredential, "AKIA-p1", None),
            aimed("a2", "p2", ActionKind::RevokeSession, "x", Some("sess-p2")),
            // Another key than the attacker's.
            aimed("a3", "p3", ActionKind::RevokeCredential, "AKIA-other", None),
            aimed("a4", "p4", ActionKind::NotifyOwner, "AKIA-p4", None),
            // Wider than the session.
            aimed("a6", "p6", ActionKind::RevokeSession, "x", Some("sess-p6")),
            aimed("a6", "p6", ActionKind::DisablePrincipal, "x", None),
        ];
        let r = evaluate(&labels, &alerts, &actions, &[]);
        let verdicts: Vec<Option<bool>> = r.attacks.iter().map(|a| a.narrow_response).collect();
        assert_eq!(verdicts, [Some(true), Some(true), Some(false), Some(true), Some(true), Some(false), None]);
        assert_eq!((r.narrow_response.correct, r.narrow_response.judged), (4, 6));
        assert_eq!(r.attacks[1].session_id.as_deref(), Some("sess-p2"));
    }

    #[test]
    fn false_alerts_and_containment_are_counted_per_archetype() {
        let principals =
            [span("svc-a"), span("fn-orders-api-0001"), span("fn-thumbnailer-0002"), span("iamuser-x-0003")];
        let alerts = [
            alert("a1", "fn-orders-api-0001", "new_source", T),
            alert("a2", "fn-thumbnailer-0002", "new_source", T),
            alert("a3", "fn-thumbnailer-0002", "shared_credential", T),
            alert("a4", "iamuser-x-0003", "scope_drift", T),
        ];
        let actions = [
            action("a1", "fn-orders-api-0001", ActionKind::RevokeSession, T),
            action("a4", "iamuser-x-0003", ActionKind::NotifyOwner, T),
        ];
        let r = evaluate(&[], &alerts, &actions, &principals);
        let rows: Vec<(Archetype, usize, f64, usize, Option<f64>, usize)> = r
            .by_archetype
            .iter()
            .map(|a| {
                (
                    a.archetype,
                    a.principals,
                    a.principal_days_after_learning,
                    a.false_alerts,
                    a.per_1000_principal_days,
                    a.containment_of_benign,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (Archetype::Classic, 1, 10.0, 0, Some(0.0), 0),
                (Archetype::Serverless, 2, 20.0, 3, Some(150.0), 1),
                (Archetype::LowVolumeKey, 1, 10.0, 1, Some(100.0), 0),
            ]
        );
        assert_eq!(r.by_archetype[1].false_alerts_by_kind["new_source"], 2);
    }
}
