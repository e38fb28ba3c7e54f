//! Prometheus metrics, named `nhid_<name>_<unit>[_total]` in base units. The registry is
//! the application's own (never the crate's global default), and label values are bounded:
//! topics, partitions, formats, principal types, detectors, severities, reasons; never a
//! principal id.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::decode::DeadLetterReason;
use crate::event::{PrincipalType, SourceFormat};
use crate::pipeline::{Engine, Stats};

pub struct Metrics {
    registry: Registry,
    pub messages_received: IntCounterVec,
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
        let action_results =
            counter("nhid_action_results_total", "Action results reported by the revocation service.", &["status"]);
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
        }
        Metrics {
            registry,
            messages_received,
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
        for (status, &n) in crate::control::ActionStatus::ALL.iter().zip(&s.action_results) {
            if n > 0 {
                self.action_results.with_label_values(&[status.as_str()]).inc_by(n);
            }
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
