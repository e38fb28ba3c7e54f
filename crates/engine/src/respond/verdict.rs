//! Analysts' verdicts (`schemas/verdict.schema.json`): what each did to an identity, kept in
//! its state as the audit trail (`/principals/{id}`) and, while a false positive or benign
//! change holds, as what the identity's alerts are checked against.
//!
//! A verdict names an alert or an incident; the identity remembers its latest alerts by id
//! ([`RecentAlert`]) so that it resolves to the detector instances they came from. A verdict
//! about an alert not raised yet (read before the events that raise it: a replay given its
//! verdicts first, a verdicts topic read ahead of the audit topics) waits in the engine
//! until the alert is raised ([`Pending`]).
//!
//! A false positive or a benign change accepts the findings of those detector instances
//! about that identity, from the verdict's time until it expires: they raise no alert and no
//! action. Other detectors, and other identities, are judged as before. A true positive is
//! recorded: its alerts' actions stand.

use serde::{Deserialize, Serialize};

use nhid_decode::control::{Verdict, VerdictKind};
use nhid_model::time::{Millis, format_rfc3339, serde_rfc3339};

/// Latest alerts an identity remembers, to resolve verdicts: an analyst answers within
/// hours, and an identity raising more than this in that time is an incident to judge whole.
pub const RECENT_ALERTS: usize = 32;

/// Verdicts an identity keeps: the latest, whether they still hold or not.
pub const KEPT_VERDICTS: usize = 16;

/// An analyst's note is shown, not interpreted: bounded so one cannot bloat the state.
const MAX_NOTE_CHARS: usize = 256;

/// Verdicts waiting for their alert, engine-wide, at most: each is small, and a flood of
/// verdicts naming alerts that never come must not grow without bound.
pub const MAX_PENDING: usize = 10_000;

/// One alert an identity raised, as a verdict finds it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentAlert {
    /// XXH3 of the alert id and of its incident id.
    pub alert: u64,
    pub incident: u64,
    /// The detector instance (index in the engine's list, as alert marks are).
    pub detector: u16,
}

/// A verdict as applied to an identity: who said what about which alert or incident, when,
/// until when, and what it changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedVerdict {
    pub verdict: VerdictKind,
    /// The alert or incident id it names.
    pub target: String,
    pub by: String,
    /// Written as `null` when absent: it is part of the identity's state, whose binary form
    /// has no field names and cannot skip one.
    pub note: Option<String>,
    #[serde(with = "serde_rfc3339")]
    pub time: Millis,
    #[serde(with = "serde_rfc3339")]
    pub until: Millis,
    /// The detector instances whose findings about the identity it accepts from `time` to
    /// `until` (a false positive or benign change); empty for a true positive.
    pub accepts: Vec<String>,
}

impl AppliedVerdict {
    /// The verdict, resolved to the detector instances named (by id).
    pub fn new(v: &Verdict<'_>, detectors: Vec<String>) -> Self {
        AppliedVerdict {
            verdict: v.verdict,
            target: v.target().to_string(),
            by: v.by.to_string(),
            note: v.note.as_deref().map(|n| n.chars().take(MAX_NOTE_CHARS).collect()),
            time: v.time,
            until: v.until(),
            accepts: Vec::new(),
        }
        .accepting(detectors)
    }

    /// The verdict accepting `detectors`, if it is one that accepts (a false positive or a
    /// benign change); a true positive accepts nothing.
    pub fn accepting(self, detectors: Vec<String>) -> Self {
        match self.verdict {
            VerdictKind::FalsePositive | VerdictKind::BenignChange => AppliedVerdict { accepts: detectors, ..self },
            VerdictKind::TruePositive => self,
        }
    }

    /// Whether it accepts a finding of `detector` at `t`.
    pub fn accepts(&self, detector: &str, t: Millis) -> bool {
        (self.time..=self.until).contains(&t) && self.accepts.iter().any(|d| d == detector)
    }

    /// The same verdict given again (a topic read twice, a message redelivered).
    pub fn same(&self, other: &AppliedVerdict) -> bool {
        (self.verdict, &self.target, &self.by, self.time) == (other.verdict, &other.target, &other.by, other.time)
    }

    /// What it changed, in words (logged, and shown in `/principals/{id}`).
    pub fn change(&self) -> String {
        match (self.verdict, self.accepts.is_empty()) {
            (VerdictKind::TruePositive, _) => "confirmed: its actions stand".to_string(),
            (_, true) => "nothing: no detector of it is known".to_string(),
            (_, false) => format!(
                "accepts findings of {} about this identity until {}",
                self.accepts.join(", "),
                format_rfc3339(self.until)
            ),
        }
    }
}

/// A verdict waiting for the alert or incident it names to be raised.
#[derive(Clone, Debug)]
pub struct Pending {
    pub principal: Box<str>,
    pub target: Box<str>,
    pub verdict: AppliedVerdict,
}

/// The XXH3 of an alert or incident id, as [`RecentAlert`] keeps it.
pub fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}
