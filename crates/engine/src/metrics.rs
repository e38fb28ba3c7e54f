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
use crate::respond::incident::IncidentActivity;
use crate::respond::policy::{ACTION_STORM, Block, RESPONSE_POLICY};
use crate::respond::{ACTION_RESULTS, RESPONSE_FAILED};
use crate::{ControlKind, Engine, Stats};
use nhid_decode::control::{ActionStatus, VerdictKind};
use nhid_model::event::{PrincipalType, SourceFormat};
use nhid_model::string_enum;
use nhid_model::vocab::DeadLetterReason;
use nhid_model::vocab::{ActionKind, Severity};

/// What `/readyz` reports, kept up to date by the runtime.
#[derive(Debug, Default)]
pub struct Health {
    pub assigned_partitions: AtomicUsize,
    /// Set when librdkafka reports every broker down, cleared by the next message.
    pub brokers_down: AtomicBool,
    /// Set while assigned partitions' state is restored from the changelog.
    pub restoring: AtomicBool,
}

pub struct Metrics {
    registry: Registry,
    pub messages_received: IntCounterVec,
    pub events_received: IntCounterVec,
    /// Messages of a topic read as keyed by principal whose key is not their events'
    /// principal id (or whose events name several).
    pub not_keyed: IntCounterVec,
    events: IntCounterVec,
    dead_letters: IntCounterVec,
    alerts: IntCounterVec,
    actions: IntCounterVec,
    action_results: IntCounterVec,
    guardrail_blocks: IntCounterVec,
    incidents: IntCounterVec,
    verdicts: IntCounterVec,
    accepted: IntCounter,
    suppressions_matched: IntCounterVec,
    suppression_expiry: IntGaugeVec,
    /// Each configured suppression's series, by its index (set by [`Metrics::expect`]).
    suppressed: std::sync::OnceLock<Vec<IntCounter>>,
    suppressed_repeats: IntCounter,
    identities: IntGaugeVec,
    evictions: IntCounter,
    /// One message through the engine, outputs handed to the producer included.
    pub processing: Histogram,
    /// Input message timestamp to alert acknowledged by the broker.
    pub event_to_alert: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub producer_queue: IntGauge,
    /// Re-keyed events received again (a re-keying stage re-read them) and skipped.
    pub rekey_duplicates: IntCounter,
    /// Re-keyed events processed after a later event of their events partition.
    pub rekey_out_of_order: IntCounter,
    /// Events dated ahead of their input message's timestamp, ordered as at it.
    pub rekey_times_ahead: IntCounter,
    /// Records written to the state changelog (identities, tombstones, deletions, marks).
    pub changelog_records: IntCounter,
    /// Records restored from it, by what they were.
    pub restored: IntCounterVec,
    /// Partitions whose state could not come from the changelog and was rebuilt by
    /// re-reading their input, by why.
    pub restore_fallbacks: IntCounterVec,
    /// One assignment's restore, reading the changelog included.
    pub restore_seconds: Histogram,
    /// Resolved per kind up front: the transport counts from librdkafka's callbacks, where a
    /// label lookup would be one more lock on a thread that also delivers messages.
    kafka_errors: [IntCounter; KafkaErrorKind::ALL.len()],
}

string_enum! {
    /// A Kafka error the transport logs: what went wrong, never which broker or topic, so the
    /// `kind` label of `nhid_kafka_errors_total` stays bounded.
    KafkaErrorKind {
        /// librdkafka reported a client error (a connection lost, a timeout, an
        /// authentication failure) other than every broker being down.
        Client => "client",
        /// librdkafka reported every broker down: `/readyz` fails until a message arrives.
        BrokersDown => "brokers_down",
        /// The group coordinator reported an error instead of an assignment.
        Rebalance => "rebalance",
        /// Applying a new assignment (or revoking one) to the consumer failed.
        Assignment => "assignment",
        /// Reading the committed offsets or the rebuild window's start offsets failed.
        OffsetLookup => "offset_lookup",
        /// Polling the consumer returned an error instead of a message.
        Consume => "consume",
        /// An offset commit failed; the next interval retries it.
        Commit => "commit",
        /// Outputs were still unacknowledged when a drain's grace ran out.
        FlushTimeout => "flush_timeout",
        /// The producer could not enqueue an output (the run stops).
        Produce => "produce",
        /// The broker never acknowledged an output (the run stops).
        Delivery => "delivery",
        /// An output larger than the producer's `message.max.bytes`: a dead letter saying so
        /// goes instead, and the partition moves on.
        OutputTooLarge => "output_too_large",
    }
}

/// The `action` of a result that names none.
const UNSPECIFIED: &str = "unspecified";

/// Seconds, from 50 µs to about 100 s.
fn buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.5, 16).expect("valid buckets")
}

/// Creates metrics already registered in one registry, so none can be forgotten there.
struct Register<'a>(&'a Registry);

impl Register<'_> {
    fn add<M: prometheus::core::Collector + Clone + 'static>(&self, metric: prometheus::Result<M>) -> M {
        let metric = metric.expect("valid metric");
        self.0.register(Box::new(metric.clone())).expect("registered once");
        metric
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels))
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help))
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help))
    }

    fn histogram(&self, name: &str, help: &str) -> Histogram {
        self.add(Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets())))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = Register(&registry);
        let build = r.gauges("nhid_build_info", "Always 1; the version in a label.", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let kafka_errors = r.counters(
            "nhid_kafka_errors_total",
            "Kafka errors logged by the transport, by kind (retried, or the run stops).",
            &["kind"],
        );
        let metrics = Metrics {
            messages_received: r.counters("nhid_messages_received_total", "Messages consumed, by topic.", &["topic"]),
            events_received: r.counters(
                "nhid_events_received_total",
                "Audit events decoded from each input topic, by source format.",
                &["topic", "format"],
            ),
            not_keyed: r.counters(
                "nhid_messages_not_keyed_by_principal_total",
                "Messages of a topic read as keyed by principal whose key is not their events' principal id: name the topic in kafka.rekey_topics.",
                &["topic"],
            ),
            events: r.counters(
                "nhid_events_total",
                "Audit events decoded, by source format and principal type (lane).",
                &["format", "principal_type"],
            ),
            dead_letters: r.counters("nhid_dead_letters_total", "Messages dead-lettered, by reason.", &["reason"]),
            alerts: r.counters(
                "nhid_alerts_total",
                "Alerts raised, by detector and severity.",
                &["detector", "severity"],
            ),
            actions: r.counters(
                "nhid_actions_total",
                "Automatic actions requested, by action and mode.",
                &["action", "mode"],
            ),
            action_results: r.counters(
                "nhid_action_results_total",
                "Action results reported by the revocation service, by action and status.",
                &["action", "status"],
            ),
            guardrail_blocks: r.counters(
                "nhid_guardrail_blocks_total",
                "Actions narrowed or withheld by a guardrail, by reason.",
                &["reason"],
            ),
            incidents: r.counters(
                "nhid_incidents_total",
                "Incident records: opened (create), joined by an alert (update), closed (close).",
                &["activity"],
            ),
            verdicts: r.counters("nhid_verdicts_total", "Analysts' verdicts read, by verdict.", &["verdict"]),
            accepted: r.counter(
                "nhid_findings_accepted_total",
                "Findings accepted by an analyst's verdict (false positive, benign change): no alert, no action.",
            ),
            suppressions_matched: r.counters(
                "nhid_suppressions_matched_total",
                "Alerts dropped by each configured suppression (0: it never matched).",
                &["suppression"],
            ),
            suppression_expiry: r.gauges(
                "nhid_suppression_expiry_timestamp_seconds",
                "When each configured suppression expires (alert when time() passes it).",
                &["suppression"],
            ),
            suppressed: std::sync::OnceLock::new(),
            suppressed_repeats: r
                .counter("nhid_alerts_suppressed_total", "Findings folded into an alert already raised in its window."),
            identities: r.gauges("nhid_identities", "Identities tracked, by principal type.", &["principal_type"]),
            evictions: r
                .counter("nhid_state_evictions_total", "Identities evicted from state (idle or over capacity)."),
            processing: r.histogram("nhid_processing_seconds", "Time to process one message and hand off its outputs."),
            event_to_alert: r.histogram(
                "nhid_event_to_alert_seconds",
                "From the input message's timestamp to its alert acknowledged.",
            ),
            consumer_lag: r.gauges(
                "nhid_consumer_lag_messages",
                "Messages behind the partition's end.",
                &["topic", "partition"],
            ),
            producer_queue: r.gauge("nhid_producer_queue_messages", "Outputs not yet acknowledged by the broker."),
            rekey_duplicates: r.counter(
                "nhid_rekey_duplicates_total",
                "Re-keyed events received again (the re-keying stage re-read their source) and skipped.",
            ),
            rekey_out_of_order: r.counter(
                "nhid_rekey_out_of_order_total",
                "Re-keyed events processed after a later one of their events partition (a source partition said idle or passed over after kafka.rekey_max_idle_ms sent earlier events, or the reorder bound was reached).",
            ),
            rekey_times_ahead: r.counter(
                "nhid_rekey_times_ahead_total",
                "Events re-keyed dated more than a second after their input message's timestamp (a source's clock ahead, or a forged time), ordered as at that timestamp so that they do not hold their source's later events back.",
            ),
            changelog_records: r.counter(
                "nhid_changelog_records_total",
                "Records written to the state changelog topic (identities changed, tombstones, deletions, partition marks).",
            ),
            restored: r.counters(
                "nhid_restored_records_total",
                "State changelog records restored on assignment, by record (identity, tombstone, older: a copy older than the identity already here).",
                &["record"],
            ),
            restore_fallbacks: r.counters(
                "nhid_restore_fallbacks_total",
                "Assigned partitions rebuilt by re-reading kafka.rebuild_secs of input instead of restored from the changelog, by reason (none: it holds nothing for them; refused: a record of another format or corrupt; behind: it holds less than was committed; ahead: more, after a crash).",
                &["reason"],
            ),
            restore_seconds: r.histogram(
                "nhid_restore_seconds",
                "Time to restore one assignment's partitions from the state changelog.",
            ),
            kafka_errors: std::array::from_fn(|i| kafka_errors.with_label_values(&[KafkaErrorKind::ALL[i].as_str()])),
            registry,
        };
        metrics.create_bounded_series();
        metrics
    }

    /// Creates, at 0, every series of the label sets fixed at build time (those of the run's
    /// topics and detectors come with [`Metrics::expect`]).
    fn create_bounded_series(&self) {
        for t in PrincipalType::ALL {
            self.identities.with_label_values(&[t.as_str()]).set(0);
            for f in SourceFormat::ALL {
                self.events.with_label_values(&[f.as_str(), t.as_str()]);
            }
        }
        for r in DeadLetterReason::ALL {
            self.dead_letters.with_label_values(&[r.as_str()]);
        }
        for record in ["identity", "tombstone", "older"] {
            self.restored.with_label_values(&[record]);
        }
        for reason in ["none", "refused", "behind", "ahead"] {
            self.restore_fallbacks.with_label_values(&[reason]);
        }
        for b in Block::ALL {
            self.guardrail_blocks.with_label_values(&[b.as_str()]);
        }
        for a in IncidentActivity::ALL {
            self.incidents.with_label_values(&[a.as_str()]);
        }
        for v in VerdictKind::ALL {
            self.verdicts.with_label_values(&[v.as_str()]);
        }
        for a in ActionKind::ALL {
            for m in Mode::ALL {
                self.actions.with_label_values(&[a.as_str(), m.as_str()]);
            }
        }
        for a in ActionKind::ALL.iter().map(|a| a.as_str()).chain([UNSPECIFIED]) {
            for s in ActionStatus::ALL {
                self.action_results.with_label_values(&[a, s.as_str()]);
            }
        }
    }

    /// Counts one logged Kafka error.
    pub fn kafka_error(&self, kind: KafkaErrorKind) {
        self.kafka_errors[kind.index()].inc();
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
                self.not_keyed.with_label_values(&[topic]);
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
        let suppressions = engine.suppressions();
        let series = suppressions.names().map(|name| self.suppressions_matched.with_label_values(&[name])).collect();
        let _ = self.suppressed.set(series);
        for (name, expires) in suppressions.names().zip(suppressions.expiries()) {
            self.suppression_expiry.with_label_values(&[name]).set(expires.div_euclid(1000));
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
        for (activity, &n) in IncidentActivity::ALL.iter().zip(&s.incidents) {
            self.incidents.with_label_values(&[activity.as_str()]).inc_by(n);
        }
        for (verdict, &n) in VerdictKind::ALL.iter().zip(&s.verdicts) {
            self.verdicts.with_label_values(&[verdict.as_str()]).inc_by(n);
        }
        self.accepted.inc_by(s.accepted);
        self.suppressed_repeats.inc_by(s.suppressed_repeats);
        if let Some(series) = self.suppressed.get() {
            for (counter, &n) in series.iter().zip(&s.suppressed) {
                counter.inc_by(n);
            }
        }
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
    fn each_suppression_has_its_count_from_zero_and_its_expiry() {
        use crate::respond::suppress::{SuppressionConfig, Suppressions};
        let rule = |name: &str, expires: &str| SuppressionConfig {
            name: name.into(),
            owner: "soc".into(),
            reason: "accepted".into(),
            expires: expires.into(),
            principal: Some("ci-*".into()),
            principal_type: None,
            detector: None,
            network: None,
            client: None,
        };
        let suppressions =
            Suppressions::compile(&[rule("used", "2027-01-01T00:00:00Z"), rule("unused", "2026-01-01T00:00:00Z")])
                .unwrap();
        let config = EngineConfig { suppressions: std::sync::Arc::new(suppressions), ..EngineConfig::default() };
        let engine = Engine::new(detect::load(None).unwrap(), Inventory::default(), config);
        let metrics = Metrics::new();
        metrics.expect(&engine, &[("audit", None)]);
        metrics.absorb(&Stats { suppressed: vec![3], ..Stats::default() });
        let text = metrics.render(&engine);
        assert_eq!(
            series(&text, "nhid_suppressions_matched_total"),
            [
                r#"nhid_suppressions_matched_total{suppression="unused"} 0"#,
                r#"nhid_suppressions_matched_total{suppression="used"} 3"#
            ]
        );
        assert_eq!(
            series(&text, "nhid_suppression_expiry_timestamp_seconds"),
            [
                r#"nhid_suppression_expiry_timestamp_seconds{suppression="unused"} 1767225600"#,
                r#"nhid_suppression_expiry_timestamp_seconds{suppression="used"} 1798761600"#
            ]
        );
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
        assert_eq!(count("nhid_incidents_total"), IncidentActivity::ALL.len());
        assert_eq!(count("nhid_verdicts_total"), VerdictKind::ALL.len());
        assert_eq!(count("nhid_events_total"), SourceFormat::ALL.len() * PrincipalType::ALL.len());
        assert_eq!(count("nhid_actions_total"), ActionKind::ALL.len() * Mode::ALL.len());
        assert_eq!(count("nhid_action_results_total"), (ActionKind::ALL.len() + 1) * ActionStatus::ALL.len());
        assert_eq!(count("nhid_kafka_errors_total"), KafkaErrorKind::ALL.len());
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
            .filter(|l| {
                ["nhid_dead_letters", "nhid_alerts_total", "nhid_action", "nhid_kafka_errors"]
                    .iter()
                    .any(|m| l.starts_with(m))
            })
            .filter_map(|l| l.rsplit(' ').next())
            .collect();
        assert!(values.iter().all(|v| *v == "0"), "{values:?}");
    }

    #[test]
    fn kafka_errors_are_counted_by_kind() {
        let engine = Engine::new(
            detect::load(None).expect("the built-in detectors load"),
            Inventory::default(),
            EngineConfig::default(),
        );
        let metrics = Metrics::new();
        metrics.kafka_error(KafkaErrorKind::Commit);
        metrics.kafka_error(KafkaErrorKind::Commit);
        metrics.kafka_error(KafkaErrorKind::BrokersDown);
        let text = metrics.render(&engine);
        assert!(text.contains("nhid_kafka_errors_total{kind=\"commit\"} 2\n"), "{text}");
        assert!(text.contains("nhid_kafka_errors_total{kind=\"brokers_down\"} 1\n"), "{text}");
        assert!(text.contains("nhid_kafka_errors_total{kind=\"consume\"} 0\n"), "{text}");
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
