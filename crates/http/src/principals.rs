//! `/principals`: the inventory the seeds start from ("you can't scope what you can't see"),
//! read from live state. Each tracked identity with its type, owner, first and last seen,
//! the credentials it uses with their age and expiry, its rate against its baseline, its open
//! alerts and a risk score that says which facts make it up.
//!
//! Times are event time: "now" is the engine's watermark, so a replayed file reads as it
//! would have at its end, and a live stream as it is.

use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use nhid_engine::Engine;
use nhid_engine::detect::static_credential::StaticCredential;
use nhid_engine::inventory::Criticality;
use nhid_engine::respond::incident::Incident;
use nhid_engine::respond::verdict::AppliedVerdict;
use nhid_engine::state::Identity;
use nhid_engine::state::sets::Dim;
use nhid_model::event::{CredentialKind, PrincipalType};
use nhid_model::time::{DAY, Millis, format_rfc3339};
use nhid_model::vocab::Severity;

/// Alerts raised within this much event time are open: nhid is not told when an analyst
/// closes one, and a day keeps yesterday's incident in view without keeping last month's.
pub const OPEN_FOR: Millis = DAY;
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;

/// The query string of `/principals`. Unknown parameters are rejected: `?orphan=true`
/// must not quietly list everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// A principal type, or `machine` for every type nhid may act on.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Exactly as alerts name it (the inventory's owner, else the events').
    pub owner: Option<String>,
    /// `true`: machine identities whose owner was offboarded or that have none.
    pub orphaned: Option<bool>,
    pub limit: Option<usize>,
    /// The `next` of the previous page: ids sort in byte order and pages follow on from it,
    /// stable while identities come and go.
    pub after: Option<String>,
}

enum Kinds {
    Any,
    Machine,
    One(PrincipalType),
}

/// A query `/principals` cannot answer; the message is the 400 response's `error`.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("type: unknown principal type {0:?}; expected machine or one of {known}", known = known_types())]
    UnknownType(String),
    #[error("limit: must be between 1 and {MAX_LIMIT}")]
    Limit,
}

fn known_types() -> String {
    PrincipalType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}

impl Query {
    fn kinds(&self) -> Result<Kinds, QueryError> {
        match self.kind.as_deref() {
            None => Ok(Kinds::Any),
            Some("machine") => Ok(Kinds::Machine),
            Some(t) => PrincipalType::parse(t).map(Kinds::One).ok_or_else(|| QueryError::UnknownType(t.into())),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Page {
    /// The event time the views are as of (the engine's watermark).
    pub as_of: Option<String>,
    /// Identities matching the filters, on every page.
    pub total: usize,
    pub principals: Vec<Principal>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Principal {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PrincipalType,
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orphaned: Option<Orphaned>,
    /// When the lifecycle topic reported the principal retired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// Still in its learning period: baseline-relative detectors do not fire yet.
    pub learning: bool,
    pub credentials: Vec<CredentialView>,
    pub rate: Rate,
    /// The latest alert of each detector, while open (raised within [`OPEN_FOR`]), newest first.
    pub open_alerts: Vec<OpenAlert>,
    /// Its open incident, as the incidents topic last had it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
    /// Analysts' verdicts on its alerts, the latest, oldest first: who, when, about which
    /// alert or incident, until when, and what each accepts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<AppliedVerdict>,
    pub risk: Risk,
    /// The inventory entry it matched, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Registered>,
    /// `/principals/{id}` only: what the baseline has learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Orphaned {
    OwnerOffboarded { owner_offboarded_at: String },
    NoOwner,
}

#[derive(Debug, Serialize)]
pub struct CredentialView {
    pub id: String,
    pub kind: CredentialKind,
    pub first_seen: String,
    pub last_seen: String,
    /// From issue when the events say, else from first use.
    pub age_secs: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Negative once expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<i64>,
    /// From the lifecycle topic or a done revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Rate {
    /// Events per minute over about the last 15 minutes.
    pub recent_per_minute: f32,
    /// What the baseline expects per minute at this hour (long horizon and hour profile).
    pub baseline_per_minute: f32,
    pub baseline_sd: f32,
    /// recent / baseline; absent while the baseline is below one event an hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f32>,
}

#[derive(Debug, Serialize)]
pub struct OpenAlert {
    /// The id the alert was emitted with on the alerts topic.
    pub alert_id: String,
    pub detector: String,
    pub kind: &'static str,
    pub severity: Severity,
    pub time: String,
    /// Findings folded into it since.
    pub suppressed_repeats: u32,
}

#[derive(Debug, Serialize)]
pub struct Risk {
    /// 0-100: the sum of the factors' points, capped.
    pub score: u32,
    pub factors: Vec<Factor>,
}

#[derive(Debug, Serialize)]
pub struct Factor {
    pub factor: &'static str,
    pub points: u32,
}

#[derive(Debug, Serialize)]
pub struct Registered {
    pub pattern: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criticality: Option<Criticality>,
    pub protected: bool,
}

#[derive(Debug, Serialize)]
pub struct Baseline {
    pub known_actions: usize,
    pub known_services: usize,
    pub known_networks: usize,
    pub known_user_agents: usize,
    /// Expected events per minute for each UTC hour of the day.
    pub hourly_per_minute: [f32; 24],
    /// Closed minutes learned from.
    pub minutes_learned: u32,
}

/// One page of the identities matching `query`, in id order.
/// Credential ids are whole with `full_ids`, else shortened by [`shortened`].
pub fn list(engine: &Engine, query: &Query, full_ids: bool) -> Result<Page, QueryError> {
    let kinds = query.kinds()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(QueryError::Limit);
    }
    let now = engine.now().unwrap_or(0);
    let after = query.after.as_deref();
    let mut total = 0;
    // The `limit + 1` smallest ids after the cursor (one more tells whether a page follows):
    // a bounded max-heap, so a page costs one pass over the state and allocates per kept id.
    let mut page: BinaryHeap<Box<str>> = BinaryHeap::with_capacity(limit + 2);
    engine.store().for_each(|id, identity| {
        let wanted = match kinds {
            Kinds::Any => true,
            Kinds::Machine => identity.kind.is_machine(),
            Kinds::One(k) => identity.kind == k,
        } && query.owner.as_deref().is_none_or(|o| engine.owner_of(identity) == Some(o))
            && query.orphaned.is_none_or(|o| orphaned(engine, identity, now).is_some() == o);
        if !wanted {
            return;
        }
        total += 1;
        if after.is_some_and(|a| id <= a) || (page.len() > limit && page.peek().is_some_and(|top| id >= &**top)) {
            return;
        }
        page.push(id.into());
        if page.len() > limit + 1 {
            page.pop();
        }
    });
    let mut ids = page.into_sorted_vec();
    let next = (ids.len() > limit).then(|| {
        ids.truncate(limit);
        ids[limit - 1].to_string()
    });
    // An identity evicted between the pass and here is left out of the page.
    let principals = ids.iter().filter_map(|id| view(engine, id, false, full_ids)).collect();
    Ok(Page { as_of: engine.now().map(format_rfc3339), total, principals, next })
}

/// One identity, with what its baseline has learned when `detail` is set; credential ids
/// whole with `full_ids`, else shortened by [`shortened`].
pub fn view(engine: &Engine, id: &str, detail: bool, full_ids: bool) -> Option<Principal> {
    let identity = engine.store().get(id)?;
    let identity: &Identity = &identity;
    let now = engine.now().unwrap_or(identity.last_seen);
    let entry = engine.inventory().entry(identity.inventory());
    let credentials = credentials(engine, identity, now, full_ids);
    let rate = rate(identity, now);
    let open_alerts = open_alerts(engine, id, identity, now);
    let orphaned = orphaned(engine, identity, now);
    let retired_at = engine.lifecycle().principals.since(id, now);
    let learned = now - identity.first_seen >= engine.learning_ms(identity.kind);
    let risk = risk(&RiskFacts {
        open: open_alerts.iter().map(|a| a.severity).collect(),
        orphaned: orphaned.as_ref(),
        retired_active: retired_at.is_some_and(|r| identity.last_seen > r),
        expired_in_use: identity.credentials.iter().any(|c| c.expires_at().is_some_and(|e| c.last_seen > e)),
        revoked_in_use: identity
            .credentials
            .iter()
            .any(|c| engine.lifecycle().credentials.since(&c.id, c.last_seen).is_some_and(|r| c.last_seen > r)),
        stale_static_key: static_key_limit(engine, identity.kind).is_some_and(|limit| {
            credentials.iter().any(|c| c.kind == CredentialKind::StaticKey && c.age_secs * 1_000 > limit)
        }),
        above_baseline: learned && rate.ratio.is_some_and(|r| r >= 3.0),
        criticality: entry.and_then(|e| e.criticality),
    });
    Some(Principal {
        id: id.to_string(),
        kind: identity.kind,
        owner: engine.owner_of(identity).map(str::to_owned),
        orphaned,
        retired_at: retired_at.map(format_rfc3339),
        first_seen: format_rfc3339(identity.first_seen),
        last_seen: format_rfc3339(identity.last_seen),
        learning: !learned,
        credentials,
        rate,
        open_alerts,
        incident: identity.incident().cloned(),
        verdicts: identity.verdicts().to_vec(),
        risk,
        inventory: entry.map(|e| Registered {
            pattern: e.pattern.clone(),
            criticality: e.criticality,
            protected: e.protected,
        }),
        baseline: detail.then(|| baseline(identity)),
    })
}

/// A credential id as the inventory shows it by default: its first and last 4 characters
/// (`AKIA…WXYZ`, as consoles show access keys), enough to tell keys apart and find one
/// elsewhere, too little to use as a lookup key for someone who reads the page. A short id
/// keeps a quarter of its characters at each end, so at least half of it is hidden.
pub fn shortened(id: &str) -> String {
    let chars = id.chars().count();
    let kept = (chars / 4).min(4);
    let head: String = id.chars().take(kept).collect();
    let tail: String = id.chars().skip(chars - kept).collect();
    format!("{head}…{tail}")
}

fn credentials(engine: &Engine, identity: &Identity, now: Millis, full_ids: bool) -> Vec<CredentialView> {
    let revocations = &engine.lifecycle().credentials;
    identity
        .credentials
        .iter()
        .map(|c| CredentialView {
            id: if full_ids { c.id.to_string() } else { shortened(&c.id) },
            kind: c.kind,
            first_seen: format_rfc3339(c.first_seen()),
            last_seen: format_rfc3339(c.last_seen),
            age_secs: c.age_at(now) / 1_000,
            issued_at: c.issued_at().map(format_rfc3339),
            expires_at: c.expires_at().map(format_rfc3339),
            expires_in_secs: c.expires_at().map(|e| (e - now) / 1_000),
            revoked_at: revocations.since(&c.id, now).map(format_rfc3339),
        })
        .collect()
}

fn rate(identity: &Identity, now: Millis) -> Rate {
    let expected = identity.rate.slow_expectation(now);
    let recent = identity.rate.recent_at(now);
    Rate {
        recent_per_minute: recent,
        baseline_per_minute: expected.mean,
        baseline_sd: expected.sd,
        ratio: (expected.mean * 60.0 >= 1.0).then(|| recent / expected.mean),
    }
}

/// The latest alert of each detector while open, newest first.
fn open_alerts(engine: &Engine, id: &str, identity: &Identity, now: Millis) -> Vec<OpenAlert> {
    let mut open: Vec<OpenAlert> = engine
        .detectors()
        .iter()
        .zip(identity.alert_marks())
        .filter_map(|(detector, mark)| {
            let ((time, severity), window) = (mark.last?, mark.window?);
            (time >= now - OPEN_FOR).then(|| OpenAlert {
                alert_id: nhid_engine::respond::alert_id(&detector.id, id, window, mark.last_key()),
                detector: detector.id.clone(),
                kind: detector.kind,
                severity,
                time: format_rfc3339(time),
                suppressed_repeats: mark.suppressed,
            })
        })
        .collect();
    open.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.detector.cmp(&b.detector)));
    open
}

/// The age past which a static credential of this type counts against it: the one the
/// loaded `static_credential` detectors allow (the strictest of several), so the score
/// and the alerts never disagree. `None` where no instance evaluates the type.
fn static_key_limit(engine: &Engine, kind: PrincipalType) -> Option<Millis> {
    engine.detectors().iter().filter_map(|d| d.params::<StaticCredential>(kind)).map(StaticCredential::max_age).min()
}

fn baseline(identity: &Identity) -> Baseline {
    Baseline {
        known_actions: identity.seen.len(Dim::Action),
        known_services: identity.seen.len(Dim::Service),
        known_networks: identity.seen.len(Dim::Network),
        known_user_agents: identity.seen.len(Dim::Client),
        hourly_per_minute: identity.rate.profile.mean,
        minutes_learned: identity.rate.minutes,
    }
}

/// A machine identity nobody answers for (DESIGN's `orphaned_principal`): its owner was
/// offboarded (lifecycle topic) by `now`, or neither the inventory nor its events name one.
/// Humans are not orphans, and `unknown` ones are not known to be machines.
pub fn orphaned(engine: &Engine, identity: &Identity, now: Millis) -> Option<Orphaned> {
    if !identity.kind.is_machine() {
        return None;
    }
    match engine.owner_of(identity) {
        None => Some(Orphaned::NoOwner),
        Some(owner) => engine
            .lifecycle()
            .owners
            .since(owner, now)
            .map(|at| Orphaned::OwnerOffboarded { owner_offboarded_at: format_rfc3339(at) }),
    }
}

struct RiskFacts<'a> {
    /// Severities of the open alerts.
    open: Vec<Severity>,
    orphaned: Option<&'a Orphaned>,
    retired_active: bool,
    expired_in_use: bool,
    revoked_in_use: bool,
    /// A static credential older than its type's `static_credential` limit: a rotation
    /// finding of every NHI programme.
    stale_static_key: bool,
    above_baseline: bool,
    criticality: Option<Criticality>,
}

/// The score is a sum of named factors so an analyst can see why an identity ranks high:
/// what is happening (open alerts, use of dead credentials) weighs more than hygiene (no
/// owner, an old static key), and a critical identity adds to either.
fn risk(f: &RiskFacts<'_>) -> Risk {
    let mut factors = Vec::new();
    let mut add = |factor: &'static str, points: u32| factors.push(Factor { factor, points });
    if let Some(&worst) = f.open.iter().max() {
        let (factor, points) = match worst {
            Severity::Critical => ("open_alert_critical", 50),
            Severity::High => ("open_alert_high", 35),
            Severity::Medium => ("open_alert_medium", 20),
            Severity::Low => ("open_alert_low", 10),
            Severity::Info => ("open_alert_info", 2),
        };
        add(factor, points);
        if f.open.len() > 1 {
            add("more_open_alerts", 5 * (f.open.len() as u32 - 1).min(3));
        }
    }
    match f.orphaned {
        Some(Orphaned::OwnerOffboarded { .. }) => add("owner_offboarded", 25),
        Some(Orphaned::NoOwner) => add("no_owner", 10),
        None => {}
    }
    if f.retired_active {
        add("active_after_retirement", 25);
    }
    if f.revoked_in_use {
        add("revoked_credential_in_use", 25);
    }
    if f.expired_in_use {
        add("expired_credential_in_use", 20);
    }
    if f.stale_static_key {
        // Named when every type's limit was 90 days; kept, since dashboards key on it.
        add("static_key_over_90_days", 10);
    }
    if f.above_baseline {
        add("rate_3x_baseline", 10);
    }
    match f.criticality {
        Some(Criticality::Critical) => add("criticality_critical", 10),
        Some(Criticality::High) => add("criticality_high", 5),
        _ => {}
    }
    let score = factors.iter().map(|f| f.points).sum::<u32>().min(100);
    Risk { score, factors }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_engine::inventory::Inventory;
    use nhid_engine::{EngineConfig, Origin, Outputs, detect};

    /// An engine that saw one event of each principal, each with a static key issued
    /// 120 days before it.
    fn engine_with_old_keys(principals: &[(&str, &str)]) -> Engine {
        let engine = Engine::new(detect::load(None).unwrap(), Inventory::default(), EngineConfig::default());
        let mut out = Outputs::default();
        for (i, (id, kind)) in principals.iter().enumerate() {
            let event = format!(
                r#"{{"id":"e{i}","time":"2026-11-20T00:00:00Z","principal":{{"id":"{id}","type":"{kind}","owner":"team"}},"credential":{{"id":"AKIA{i}","kind":"static_key","issued_at":"2026-07-23T00:00:00Z"}},"action":"s3:GetObject","service":"s3","outcome":"success"}}"#
            );
            engine.process(
                event.as_bytes(),
                Origin { source: "audit", partition: 0, offset: i as i64 },
                None,
                &mut out,
            );
        }
        assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
        engine
    }

    fn factors(engine: &Engine, id: &str) -> Vec<&'static str> {
        view(engine, id, false, false).unwrap().risk.factors.iter().map(|f| f.factor).collect()
    }

    #[test]
    fn a_credential_id_is_shortened_to_its_ends_and_never_half_shown() {
        assert_eq!(shortened("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(shortened("0d5e3b1c-7f4a-4e2b-9c1d-2a6b8e4f0a91"), "0d5e…0a91");
        assert_eq!(shortened("AKIA1234"), "AK…34");
        assert_eq!(shortened("abc"), "…");
        assert_eq!(shortened(""), "…");
        assert_eq!(shortened("ключ-доступа-123"), "ключ…-123", "characters, not bytes");
    }

    #[test]
    fn a_static_key_is_stale_past_the_limit_its_type_s_detector_sets() {
        let engine = engine_with_old_keys(&[("svc", "service_account"), ("key", "api_key"), ("who", "unknown")]);
        // 120 days: past the 90 of `[default]`, within the 180 of `[api_key]`.
        assert!(factors(&engine, "svc").contains(&"static_key_over_90_days"));
        assert!(!factors(&engine, "key").contains(&"static_key_over_90_days"));
        // No `[unknown]` table: no instance judges the type's keys, so neither does the score.
        assert!(!factors(&engine, "who").contains(&"static_key_over_90_days"));
    }
}
