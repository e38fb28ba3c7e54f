//! Prometheus metrics, named `nhid_<name>_<unit>[_total]` in base units. The registry is
//! the application's own (never the crate's global default), and label values are bounded:
//! topics, partitions, formats, principal types, detectors, severities, reasons; never a
//! principal id. Every series of a bounded label set exists, at 0, from the start: a rate
//! over a series that appears with its first increment misses that increment, and a
//! dashboard panel with no series reads as "no data" rather than "none".

use std::sync::atomic::{AtomicBool, AtomicUsize};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::respond::alert::Mode;
use crate::respond::policy::{ACTION_STORM, Block, RESPONSE_POLICY};
use crate::respond::{ACTION_RESULTS, RESPONSE_FAILED};
use crate::{ControlKind, Engine, Stats};
use nhid_decode::control::ActionStatus;
use nhid_model::event::{PrincipalType, SourceFormat};
use nhid_model::vocab::DeadLetterReason;
use nhid_model::vocab::{ActionKind, Severity};

/// What `/readyz` reports, kept up to date by the runtime.
#[derive(Debug, Default)]
pub struct Health {
    pub assigned_partitions: AtomicUsize,
    /// Set when librdkafka reports every broker down, cleared by the next message.
    pub brokers_down: AtomicBool,
}

pub struct Metrics {
    registry: Registry,
    pub messages_received: IntCounterVec,
    pub events_received: IntCounterVec,
    events: IntCounterVec,
    dead_letters: IntCounterVec,
    alerts: IntCounterVec,
    actions: IntCounterVec,
    action_results: IntCounterVec,
    guardrail_blocks: IntCounterVec,
    suppressed_repeats: IntCounter,
    identities: IntGaugeVec,
    evictions: IntCounter,
    /// One message through the engine, outputs handed to the producer included.
    pub processing: Histogram,
    /// Input message timestamp to alert acknowledged by the broker.
    pub event_to_alert: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub producer_queue: IntGauge,
}

/// The `action` of a result that names none.
const UNSPECIFIED: &str = "unspecified";

/// Seconds, from 50 µs to about 100 s.
fn buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.5, 16).expect("valid buckets")
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let messages_received = counter("nhid_messages_received_total", "Messages consumed, by topic.", &["topic"]);
        let events_received = counter(
            "nhid_events_received_total",
            "Audit events decoded from each input topic, by source format.",
            &["topic", "format"],
        );
        let events = counter(
            "nhid_events_total",
            "Audit events decoded, by source format and principal type (lane).",
            &["format", "principal_type"],
        );
        let dead_letters = counter("nhid_dead_letters_total", "Messages dead-lettered, by reason.", &["reason"]);
        let alerts =
            counter("nhid_alerts_total", "Alerts raised, by detector and severity.", &["detector", "severity"]);
        let actions =
            counter("nhid_actions_total", "Automatic actions requested, by action and mode.", &["action", "mode"]);
        let action_results = counter(
            "nhid_action_results_total",
            "Action results reported by the revocation service, by action and status.",
            &["action", "status"],
        );
        let guardrail_blocks = counter(
            "nhid_guardrail_blocks_total",
            "Actions narrowed or withheld by a guardrail, by reason.",
            &["reason"],
        );
        let plain = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let suppressed_repeats =
            plain("nhid_alerts_suppressed_total", "Findings folded into an alert already raised in its window.");
        let evictions = plain("nhid_state_evictions_total", "Identities evicted from state (idle or over capacity).");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("registered once");
            g
        };
        let identities = gauge("nhid_identities", "Identities tracked, by principal type.", &["principal_type"]);
        let consumer_lag =
            gauge("nhid_consumer_lag_messages", "Messages behind the partition's end.", &["topic", "partition"]);
        let producer_queue =
            IntGauge::new("nhid_producer_queue_messages", "Outputs not yet acknowledged by the broker.")
                .expect("valid metric");
        registry.register(Box::new(producer_queue.clone())).expect("registered once");
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets())).expect("valid metric");
            registry.register(Box::new(h.clone())).expect("registered once");
            h
        };
        let processing = histogram("nhid_processing_seconds", "Time to process one message and hand off its outputs.");
        let event_to_alert =
            histogram("nhid_event_to_alert_seconds", "From the input message's timestamp to its alert acknowledged.");
        let build = gauge("nhid_build_info", "Always 1; the version in a label.", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for t in PrincipalType::ALL {
            identities.with_label_values(&[t.as_str()]).set(0);
            for f in SourceFormat::ALL {
                events.with_label_values(&[f.as_str(), t.as_str()]);
            }
        }
        for r in DeadLetterReason::ALL {
            dead_letters.with_label_values(&[r.as_str()]);
        }
        for b in Block::ALL {
            guardrail_blocks.with_label_values(&[b.as_str()]);
        }
        for a in ActionKind::ALL {
            for m in Mode::ALL {
                actions.with_label_values(&[a.as_str(), m.as_str()]);
            }
        }
        for a in ActionKind::ALL.iter().map(|a| a.as_str()).chain([UNSPECIFIED]) {
            for s in ActionStatus::ALL {
                action_results.with_label_values(&[a, s.as_str()]);
            }
        }
        Metrics {
            registry,
            messages_received,
            events_received,
            events,
            dead_letters,
            alerts,
            actions,
            action_results,
            guardrail_blocks,
            suppressed_repeats,
            identities,
            evictions,
            processing,
            event_to_alert,
            consumer_lag,
            producer_queue,
        }
    }

    /// Creates, at 0, the series whose label values depend on the run: the input topics and
    /// the alerts the engine's detectors (and the response policy) can raise, by severity.
    pub fn expect(&self, engine: &Engine, inputs: &[(&str, Option<ControlKind>)]) {
        for &(topic, control) in inputs {
            self.messages_received.with_label_values(&[topic]);
            if control.is_none() {
                for f in SourceFormat::ALL {
                    self.events_received.with_label_values(&[topic, f.as_str()]);
                }
            }
        }
        let mut alerts: Vec<(&str, Severity)> = vec![(RESPONSE_POLICY, ACTION_STORM.1)];
        if inputs.iter().any(|(_, c)| *c == Some(ControlKind::ActionResult)) {
            alerts.push((ACTION_RESULTS, RESPONSE_FAILED.1));
        }
        for d in engine.detectors() {
            alerts.extend(d.lanes.iter().flatten().map(|lane| (d.id.as_str(), lane.severity)));
        }
        for (detector, severity) in alerts {
            self.alerts.with_label_values(&[detector, severity.as_str()]);
        }
    }

    /// Adds a worker's counts since its last call.
    pub fn absorb(&self, s: &Stats) {
        for (f, by_type) in SourceFormat::ALL.iter().zip(&s.events_by_format) {
            for (t, &n) in PrincipalType::ALL.iter().zip(by_type) {
                if n > 0 {
                    self.events.with_label_values(&[f.as_str(), t.as_str()]).inc_by(n);
                }
            }
        }
        for (r, &n) in DeadLetterReason::ALL.iter().zip(&s.dead_letters) {
            if n > 0 {
                self.dead_letters.with_label_values(&[r.as_str()]).inc_by(n);
            }
        }
        for ((detector, severity), &n) in &s.alerts {
            self.alerts.with_label_values(&[detector.as_str(), severity.as_str()]).inc_by(n);
        }
        for ((action, mode), &n) in &s.actions {
            self.actions.with_label_values(&[action.as_str(), mode.as_str()]).inc_by(n);
        }
        for ((action, status), &n) in &s.action_results {
            let action = action.map_or(UNSPECIFIED, ActionKind::as_str);
            self.action_results.with_label_values(&[action, status.as_str()]).inc_by(n);
        }
        for (block, &n) in &s.guardrail_blocks {
            self.guardrail_blocks.with_label_values(&[block.as_str()]).inc_by(n);
        }
        self.suppressed_repeats.inc_by(s.suppressed_repeats);
        self.evictions.inc_by(s.evictions);
    }

    /// The text exposition, with the gauges read from the engine now.
    pub fn render(&self, engine: &Engine) -> String {
        let mut counts = [0i64; PrincipalType::ALL.len()];
        engine.store().for_each(|_, identity| counts[identity.kind.index()] += 1);
        for (t, n) in PrincipalType::ALL.iter().zip(counts) {
            self.identities.with_label_values(&[t.as_str()]).set(n);
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineConfig;
    use crate::detect;
    use crate::inventory::Inventory;

    fn series(text: &str, metric: &str) -> Vec<String> {
        text.lines().filter(|l| l.starts_with(&format!("{metric}{{"))).map(str::to_string).collect()
    }

    #[test]
    fn bounded_label_sets_are_exported_at_zero_from_the_start() {
        let engine = Engine::new(
            detect::load(None).expect("the built-in detectors load"),
            Inventory::default(),
            EngineConfig::default(),
        );
        let metrics = Metrics::new();
        metrics.expect(&engine, &[("audit", None), ("nhid.action-results", Some(ControlKind::ActionResult))]);
        let text = metrics.render(&engine);
        let count = |metric| series(&text, metric).len();
        assert_eq!(count("nhid_dead_letters_total"), DeadLetterReason::ALL.len());
        assert_eq!(count("nhid_guardrail_blocks_total"), Block::ALL.len());
        assert_eq!(count("nhid_events_total"), SourceFormat::ALL.len() * PrincipalType::ALL.len());
        assert_eq!(count("nhid_actions_total"), ActionKind::ALL.len() * Mode::ALL.len());
        assert_eq!(count("nhid_action_results_total"), (ActionKind::ALL.len() + 1) * ActionStatus::ALL.len());
        assert_eq!(count("nhid_messages_received_total"), 2);
        assert_eq!(count("nhid_events_received_total"), SourceFormat::ALL.len(), "audit topics only");
        let alerts = series(&text, "nhid_alerts_total");
        for d in engine.detectors() {
            assert!(alerts.iter().any(|s| s.contains(&format!("detector=\"{}\"", d.id))), "{} in {alerts:?}", d.id);
        }
        assert!(alerts.iter().any(|s| s.contains("detector=\"action_results\",severity=\"high\"")), "{alerts:?}");
        assert!(alerts.iter().any(|s| s.contains("detector=\"response_policy\",severity=\"critical\"")), "{alerts:?}");
        let values: Vec<&str> = text
            .lines()
            .filter(|l| ["nhid_dead_letters", "nhid_alerts_total", "nhid_action"].iter().any(|m| l.starts_with(m)))
            .filter_map(|l| l.rsplit(' ').next())
            .collect();
        assert!(values.iter().all(|v| *v == "0"), "{values:?}");
    }

    #[test]
    fn action_results_are_counted_by_action_and_status() {
        let engine = Engine::new(
            detect::load(None).expect("the built-in detectors load"),
            Inventory::default(),
            EngineConfig::default(),
        );
        let metrics = Metrics::new();
        let mut stats = Stats::default();
        stats.action_results.insert((Some(ActionKind::RevokeCredential), ActionStatus::Failed), 2);
        stats.action_results.insert((None, ActionStatus::Done), 1);
        metrics.absorb(&stats);
        let text = metrics.render(&engine);
        assert!(
            text.contains("nhid_action_results_total{action=\"revoke_credential\",status=\"failed\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("nhid_action_results_total{action=\"unspecified\",status=\"done\"} 1\n"), "{text}");
    }
}
