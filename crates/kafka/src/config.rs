//! The `[kafka]` section: what to read and write, and the librdkafka properties every client
//! gets. Validation lists every problem at once, before any client connects.

use std::collections::BTreeMap;
use std::thread;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use nhid_engine::ControlKind;
use nhid_engine::respond::ocsf::AlertsFormat;
use nhid_model::time::MAX_SETTING_SECS;

use crate::error::refusal;

/// Client properties whose values logs may show: none of them holds a secret.
const SHOWN_PROPERTIES: &[&str] = &[
    "acks",
    "auto.offset.reset",
    "batch.size",
    "broker.address.family",
    "client.id",
    "compression.type",
    "debug",
    "fetch.max.bytes",
    "isolation.level",
    "linger.ms",
    "max.poll.interval.ms",
    "message.max.bytes",
    "partition.assignment.strategy",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "request.timeout.ms",
    "retries",
    "retry.backoff.ms",
    "sasl.mechanism",
    "sasl.mechanisms",
    "security.protocol",
    "session.timeout.ms",
    "socket.timeout.ms",
    "ssl.endpoint.identification.algorithm",
    "statistics.interval.ms",
];

/// Which stages an instance runs when topics are re-keyed.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Re-keying and detection, side by side in one process.
    Both,
    /// Only re-keying: the re-keyed topics in, the events topic out.
    Rekey,
    /// Only detection: the keyed topics and the events topic in.
    Detect,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Both => "both",
            Stage::Rekey => "rekey",
            Stage::Detect => "detect",
        }
    }
}

/// The `[kafka]` section of the configuration; the essentials also have flags on `nhid run`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Audit topics to consume.
    pub topics: Vec<String>,
    /// Audit topics not keyed by principal id, which is most of them (a connector from S3
    /// keys by object or not at all, Kubernetes audit comes keyed by cluster, SaaS logs by
    /// tenant). Their events are decoded, checked and produced to `events_topic` keyed by
    /// principal, in event-time order across their partitions, and detection reads them
    /// there: one identity's events then reach one worker, in order. The rest of `topics`
    /// is read as keyed by principal.
    pub rekey_topics: Vec<String>,
    /// The re-keyed canonical events (`schemas/audit-event.schema.json`), keyed by principal
    /// id; each keeps its source message's timestamp and names its source in headers.
    pub events_topic: String,
    /// How long detection holds re-keyed events for a source partition that has said
    /// nothing past their time (no event, no watermark) and was not said idle, before it
    /// goes on without it: order across source partitions is kept only within this. A
    /// caught-up source is said idle by its re-keying worker (after a second) and not waited
    /// for; this covers a re-keying instance that died, until the group hands its partitions
    /// to another (`session.timeout.ms`, 45 s by default, and a rebalance): keep it above that.
    pub rekey_max_idle_ms: u64,
    /// Which stages this instance runs when topics are re-keyed: `both` (the default),
    /// `rekey` or `detect`, for a deployment that scales them apart.
    pub stage: Stage,
    /// Consumer group; partitions (and the identities keyed to them) are shared across its members.
    pub group: String,
    /// Static group membership (`group.instance.id`): a stable id per nhid instance (a pod
    /// name, say). A restarted instance takes its partitions back at once, without a
    /// rebalance of the others or the wait for its old session to expire. (Tansu 0.6 never
    /// expires a crashed dynamic member, so there it is what makes a crash recoverable.)
    pub instance_id: Option<String>,
    pub alerts_topic: String,
    /// How alerts are written to `alerts_topic`: `nhid` (schemas/alert.schema.json) or
    /// `ocsf` (OCSF Detection Findings, class 2004).
    pub alerts_format: AlertsFormat,
    pub actions_topic: String,
    /// Incident records (`schemas/incident.schema.json`; OCSF Incident Findings when
    /// `alerts_format` is `ocsf`), keyed by incident id: compaction keeps each incident's latest.
    pub incidents_topic: String,
    pub dead_letter_topic: String,
    /// Lifecycle events (`schemas/lifecycle.schema.json`): owners offboarded, credentials
    /// revoked, principals retired. Every instance reads all of its partitions' facts.
    pub lifecycle_topic: Option<String>,
    /// Analysts' verdicts on alerts and incidents (`schemas/verdict.schema.json`); like the
    /// lifecycle topic, every instance reads all of its partitions.
    pub verdicts_topic: Option<String>,
    /// What the revocation service did with each action (`schemas/action-result.schema.json`).
    pub action_results_topic: Option<String>,
    /// Republish each normalized event to a topic per lane: keys are `machine`, `human` or a
    /// principal type (which wins over `machine`); lanes without a topic are not republished.
    pub lanes: BTreeMap<String, String>,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    pub commit_interval_ms: u64,
    /// How long SIGTERM may take to drain, flush and commit.
    pub shutdown_grace_secs: u64,
    /// On assignment, re-read this much of each partition before its committed offset
    /// (by message timestamp) to rebuild the identities' baselines, with outputs
    /// suppressed (they were acknowledged before the commit). A restart or a rebalance is
    /// then not a blind learning window. 0 starts at the committed offset with empty state.
    pub rebuild_secs: u64,
    /// The state changelog: a compacted topic of per-identity snapshots, keyed by principal
    /// (hashed), each in the partition numbered as its input partition (modulo the topic's
    /// count). Written every `changelog_interval_ms` for the identities changed since the last, and
    /// restored from on assignment, after which only the input past the snapshots is read;
    /// `rebuild_secs` is then the fallback for partitions it holds nothing for. Created at
    /// start when missing (compacted, one partition per partition of the largest input
    /// topic). Empty: no changelog, every assignment rebuilds by re-reading.
    pub changelog_topic: String,
    /// How often each partition's changed identities go to the changelog (by its worker,
    /// between two messages): an identity active throughout is written once per
    /// interval, however many events it has. Commits never pass the last write, so after a
    /// crash up to this much input is processed again (its outputs keep their ids). On
    /// shutdown and revocation every change is written. 30 s, as Kafka Streams commits.
    pub changelog_interval_ms: u64,
    /// librdkafka properties passed through to every client (TLS, SASL, timeouts...). Values
    /// are never logged: they hold passwords and keys.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "localhost:9092".into(),
            topics: vec!["audit".into()],
            rekey_topics: Vec::new(),
            events_topic: "nhid.events".into(),
            rekey_max_idle_ms: 60_000,
            stage: Stage::Both,
            group: "nhid".into(),
            instance_id: None,
            alerts_topic: "nhid.alerts".into(),
            alerts_format: AlertsFormat::Nhid,
            actions_topic: "nhid.actions".into(),
            incidents_topic: "nhid.incidents".into(),
            dead_letter_topic: "nhid.dead-letter".into(),
            lifecycle_topic: None,
            verdicts_topic: None,
            action_results_topic: None,
            lanes: BTreeMap::new(),
            workers: 0,
            commit_interval_ms: 1_000,
            shutdown_grace_secs: 10,
            rebuild_secs: 2 * 86_400,
            changelog_topic: "nhid.changelog".into(),
            changelog_interval_ms: 30_000,
            properties: BTreeMap::new(),
        }
    }
}

/// Properties nhid sets itself: overriding them would break the delivery guarantee.
const OWNED_PROPERTIES: &[&str] = &[
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "group.id",
    "group.instance.id",
    "bootstrap.servers",
];

impl KafkaConfig {
    /// Every problem with the section, each prefixed with the key it is about; empty when
    /// valid. A list, not an error, so that the caller can print them with the rest of the
    /// configuration's.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.brokers.trim().is_empty() {
            errors.push("kafka.brokers: must name at least one broker".into());
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            errors.push("kafka.topics: must name at least one topic, none empty".into());
        }
        if self.group.trim().is_empty() {
            errors.push("kafka.group: must not be empty".into());
        }
        self.validate_topics(&mut errors);
        if self.commit_interval_ms == 0 || self.commit_interval_ms > MAX_SETTING_SECS * 1_000 {
            errors.push("kafka.commit_interval_ms: must be positive and at most ten years".into());
        }
        if self.changelog_interval_ms > 3_600_000 {
            errors.push("kafka.changelog_interval_ms: at most 3600000 (an hour)".into());
        }
        if self.rekey_max_idle_ms == 0 || self.rekey_max_idle_ms > 600_000 {
            errors.push("kafka.rekey_max_idle_ms: must be between 1 and 600000 (ten minutes)".into());
        }
        for (key, secs) in [("shutdown_grace_secs", self.shutdown_grace_secs), ("rebuild_secs", self.rebuild_secs)] {
            if secs > MAX_SETTING_SECS {
                errors.push(format!("kafka.{key}: at most {MAX_SETTING_SECS} (ten years)"));
            }
        }
        for key in self.properties.keys() {
            if OWNED_PROPERTIES.contains(&key.as_str()) {
                errors.push(format!("kafka.properties.{key}: set by nhid (use the kafka section's own fields)"));
            }
        }
        errors
    }

    /// Output and control topics must not be audit topics: nhid would read its own output.
    fn validate_topics(&self, errors: &mut Vec<String>) {
        for topic in self.rekey_topics.iter().filter(|t| !self.topics.contains(t)) {
            errors.push(format!("kafka.rekey_topics: {topic:?} is not one of kafka.topics"));
        }
        if self.stage != Stage::Both && !self.rekeys() {
            errors.push(format!("kafka.stage: {:?} needs kafka.rekey_topics", self.stage.as_str()));
        }
        let events = self.rekeys().then_some(("events_topic", &self.events_topic));
        if self.changelog() && self.topics.contains(&self.changelog_topic) {
            let topic = &self.changelog_topic;
            errors.push(format!(
                "kafka.changelog_topic: {topic:?} is also an input topic (nhid would read its own output)"
            ));
        }
        for (name, topic) in [
            ("alerts_topic", &self.alerts_topic),
            ("actions_topic", &self.actions_topic),
            ("incidents_topic", &self.incidents_topic),
            ("dead_letter_topic", &self.dead_letter_topic),
        ]
        .into_iter()
        .chain(events)
        {
            if topic.trim().is_empty() {
                errors.push(format!("kafka.{name}: must not be empty"));
            } else if self.topics.contains(topic) {
                errors.push(format!("kafka.{name}: {topic:?} is also an input topic (nhid would read its own output)"));
            }
        }
        let control = [&self.lifecycle_topic, &self.action_results_topic, &self.verdicts_topic];
        for topic in control.into_iter().flatten() {
            if self.topics.contains(topic) || topic.trim().is_empty() {
                errors.push(format!("kafka: control topic {topic:?} must be non-empty and not an audit topic"));
            }
        }
        for lane in self.lanes.keys() {
            if lane != "machine" && nhid_model::event::PrincipalType::parse(lane).is_none() {
                errors.push(format!("kafka.lanes.{lane}: not `machine` or a principal type"));
            }
        }
    }

    /// The properties for logs: values shown only for properties known to hold no secret
    /// (in any case), every other masked. A list of secret names misses what it does not
    /// name: `sasl.oauthbearer.config`, `SASL.PASSWORD`, a typo of `sasl.password`.
    pub fn redacted_properties(&self) -> BTreeMap<&str, &str> {
        self.properties
            .iter()
            .map(|(k, v)| {
                let shown = SHOWN_PROPERTIES.contains(&k.to_ascii_lowercase().as_str());
                (k.as_str(), if shown { v.as_str() } else { "<redacted>" })
            })
            .collect()
    }

    /// The group consumer's configuration.
    ///
    /// The re-keying stage's reads each partition from a queue of its own, which librdkafka
    /// fills up to `queued.min.messages` (100,000 by default) before it stops fetching: that
    /// much of each partition would wait in memory while the slowest is read
    /// (`consumer::consume_paced`). 2,000 is about a megabyte of audit events, and a
    /// partition read down is fetched again after 5 ms rather than librdkafka's 1 s. Its
    /// statistics, every second whatever the properties say, tell it where each partition
    /// ends: a source read to its end is said idle (`rekeyed::SOURCE_IDLE`).
    pub(crate) fn consumer_config(&self, rekeying: bool) -> ClientConfig {
        // Brokers without long polling (librdkafka's mock cluster, Tansu 0.6) answer a fetch
        // that found nothing only after the full `fetch.wait.max.ms`, which then makes most of
        // the event → alert latency: 50 ms gave a p99 of 65 ms on the mock and 119 ms on Tansu,
        // 10 ms gives 25 and 44 (`cargo bench --bench kafka`), for at most 100 empty fetches/s
        // per broker on a quiet topic. Kafka itself answers as soon as data arrives.
        //
        // Past `queued.min.messages` (100,000, shared by every partition of a group consumer)
        // librdkafka stops fetching for `fetch.queue.backoff.ms`, 1 s by default: catching up
        // on a backlog, the workers drained that queue in a fraction of it and then waited
        // (140,000 events/s instead of 330,000 on the mock cluster).
        let mut defaults = vec![
            ("auto.offset.reset", "earliest"),
            ("fetch.wait.max.ms", "10"),
            ("fetch.queue.backoff.ms", "50"),
            ("statistics.interval.ms", "5000"),
        ];
        if rekeying {
            defaults.extend([("queued.min.messages", "2000"), ("fetch.queue.backoff.ms", "5")]);
        }
        let mut c = self.client(&defaults);
        c.set("group.id", &self.group).set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
        if rekeying {
            c.set("statistics.interval.ms", "1000");
        }
        if let Some(id) = &self.instance_id {
            c.set("group.instance.id", id);
        }
        c
    }

    /// A reader of the state changelog (and of control topics' facts):
    /// assigned its partitions by hand, never committing, to the end it finds.
    pub(crate) fn changelog_reader_config(&self) -> ClientConfig {
        let mut c = self.client(&[("fetch.wait.max.ms", "10"), ("enable.partition.eof", "true")]);
        c.set("group.id", format!("{}.changelog-reader", self.group))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        c
    }

    /// The admin client's configuration: it creates the changelog topic when missing.
    pub(crate) fn admin_config(&self) -> ClientConfig {
        self.client(&[("allow.auto.create.topics", "false")])
    }

    /// The producer's configuration: idempotent, so a retried send is not a duplicate; lz4,
    /// because the bulk of what nhid sends repeats itself: the re-keying stage sends the
    /// whole stream again as canonical JSON, and detection its identities' state to the
    /// changelog (a million identities' records, 920 MB, went to the broker as 268 MB,
    /// `cargo bench --bench changelog`).
    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut c = self.client(&[("linger.ms", "5"), ("statistics.interval.ms", "5000"), ("compression.type", "lz4")]);
        c.set("enable.idempotence", "true");
        c
    }

    /// librdkafka's refusals of the section, which it makes only when a client is built:
    /// each passthrough property on its own first (an unknown name, a bad value), so that
    /// every bad one is named at once; then, if they all pass, the consumer and the producer
    /// a run would build, for what only the combination breaks (`acks` other than `all`
    /// under the idempotent producer, a TLS file that cannot be read). The clients are
    /// dropped at once, having read and sent nothing. Values are never shown.
    pub fn client_errors(&self) -> Vec<String> {
        use rdkafka::consumer::BaseConsumer;
        use rdkafka::producer::BaseProducer;
        let alone: Vec<String> = self
            .properties
            .iter()
            .filter_map(|(k, v)| ClientConfig::new().set(k, v).create_native_config().err().map(|e| (k, e)))
            .map(|(k, e)| format!("kafka.properties.{k}: {}", refusal(&e)))
            .collect();
        if !alone.is_empty() {
            return alone;
        }
        let consumer = self.consumer_config(false).create::<BaseConsumer>().err().map(|e| ("consumer", e));
        let producer = self.producer_config().create::<BaseProducer>().err().map(|e| ("producer", e));
        consumer
            .into_iter()
            .chain(producer)
            .map(|(client, e)| format!("kafka.properties: the {client}: {}", refusal(&e)))
            .collect()
    }

    /// nhid's `defaults`, then the passthrough properties over them; the callers set the
    /// properties nhid owns afterwards.
    fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Whether identity state goes to a changelog topic (`changelog_topic`).
    pub fn changelog(&self) -> bool {
        !self.changelog_topic.trim().is_empty()
    }

    /// Whether any topic is re-keyed: then `nhid run` runs the re-keying stage beside detection.
    pub fn rekeys(&self) -> bool {
        !self.rekey_topics.is_empty()
    }

    /// The re-keying stage: the topics to re-key, in a consumer group of its own (it is
    /// stateless: nothing to rebuild).
    pub(crate) fn rekey_stage(&self) -> KafkaConfig {
        KafkaConfig {
            topics: self.rekey_topics.clone(),
            rekey_topics: Vec::new(),
            group: format!("{}.rekey", self.group),
            instance_id: self.instance_id.as_ref().map(|i| format!("{i}.rekey")),
            lifecycle_topic: None,
            action_results_topic: None,
            verdicts_topic: None,
            lanes: BTreeMap::new(),
            rebuild_secs: 0,
            changelog_topic: String::new(),
            ..self.clone()
        }
    }

    /// The detection stage: the keyed topics, and the events re-keyed for it.
    pub(crate) fn detect_stage(&self) -> KafkaConfig {
        let mut topics: Vec<String> = self.topics.iter().filter(|t| !self.rekey_topics.contains(t)).cloned().collect();
        if self.rekeys() {
            topics.push(self.events_topic.clone());
        }
        KafkaConfig { topics, ..self.clone() }
    }

    /// Every topic consumed, with what its messages are.
    pub(crate) fn inputs(&self) -> Vec<(&str, Option<ControlKind>)> {
        let mut inputs: Vec<_> = self.topics.iter().map(|t| (t.as_str(), None)).collect();
        inputs.extend(self.lifecycle_topic.as_deref().map(|t| (t, Some(ControlKind::Lifecycle))));
        inputs.extend(self.action_results_topic.as_deref().map(|t| (t, Some(ControlKind::ActionResult))));
        inputs.extend(self.verdicts_topic.as_deref().map(|t| (t, Some(ControlKind::Verdict))));
        inputs
    }

    pub(crate) fn worker_count(&self) -> usize {
        if self.workers > 0 { self.workers } else { thread::available_parallelism().map_or(2, |n| n.get()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(KafkaConfig::default().validate(), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let cfg = KafkaConfig {
            brokers: " ".into(),
            alerts_topic: "audit".into(),
            commit_interval_ms: 0,
            properties: [("enable.auto.commit".to_string(), "true".to_string())].into(),
            ..KafkaConfig::default()
        };
        assert_eq!(
            cfg.validate(),
            [
                "kafka.brokers: must name at least one broker",
                "kafka.alerts_topic: \"audit\" is also an input topic (nhid would read its own output)",
                "kafka.commit_interval_ms: must be positive and at most ten years",
                "kafka.properties.enable.auto.commit: set by nhid (use the kafka section's own fields)",
            ]
        );
    }

    #[test]
    fn re_keying_settings_are_checked_together() {
        let cfg = KafkaConfig {
            topics: vec!["audit".into(), "nhid.events".into()],
            rekey_topics: vec!["audit".into(), "audit.k8s".into()],
            rekey_max_idle_ms: 0,
            ..KafkaConfig::default()
        };
        assert_eq!(
            cfg.validate(),
            [
                "kafka.rekey_topics: \"audit.k8s\" is not one of kafka.topics",
                "kafka.events_topic: \"nhid.events\" is also an input topic (nhid would read its own output)",
                "kafka.rekey_max_idle_ms: must be between 1 and 600000 (ten minutes)",
            ]
        );
        let one_stage = KafkaConfig { stage: Stage::Detect, ..KafkaConfig::default() };
        assert_eq!(one_stage.validate(), ["kafka.stage: \"detect\" needs kafka.rekey_topics"]);
        // Without re-keying here, the events topic is an input like any other: the detection
        // stage of a split deployment reads it.
        let detect_only = KafkaConfig { topics: vec!["nhid.events".into()], ..KafkaConfig::default() };
        assert_eq!(detect_only.validate(), Vec::<String>::new());
    }

    #[test]
    fn secret_looking_properties_are_redacted() {
        let cfg = KafkaConfig {
            properties: [
                ("sasl.password".to_string(), "hunter2".to_string()),
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ]
            .into(),
            ..KafkaConfig::default()
        };
        let shown = cfg.redacted_properties();
        assert_eq!(shown["sasl.password"], "<redacted>");
        assert_eq!(shown["security.protocol"], "SASL_SSL");
        // Whatever is not known to be harmless: other cases, other secrets, typos.
        let cfg = KafkaConfig {
            properties: ["SASL.PASSWORD", "sasl.oauthbearer.config", "sasl.oauthbearer.extensions", "sasl.passwrod"]
                .map(|k| (k.to_string(), "hunter2".to_string()))
                .into(),
            ..KafkaConfig::default()
        };
        assert!(cfg.redacted_properties().values().all(|v| *v == "<redacted>"));
    }

    /// What `nhid check` adds to validation: what librdkafka would refuse when `nhid run`
    /// builds its clients, each bad property named, no value shown.
    #[test]
    fn librdkafka_s_refusals_are_found_before_a_run_every_one_without_its_value() {
        let with = |properties: &[(&str, &str)]| KafkaConfig {
            properties: properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..KafkaConfig::default()
        };
        assert_eq!(KafkaConfig::default().client_errors(), Vec::<String>::new());
        let sasl = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "nhid"),
            ("sasl.password", "hunter2"),
            ("linger.ms", "20"),
        ];
        assert_eq!(with(&sasl).client_errors(), Vec::<String>::new());
        // librdkafka's default mechanism, GSSAPI, is not built in: `run` would fail.
        let errors = with(&sasl[..1]).client_errors();
        assert!(errors.len() == 2 && errors.iter().all(|e| e.contains("GSSAPI")), "{errors:?}");

        let errors = with(&[("sasl.passwrod", "hunter2"), ("acks", "hunter2"), ("linger.ms", "20")]).client_errors();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("kafka.properties.acks: "), "{errors:?}");
        assert!(errors[1].starts_with("kafka.properties.sasl.passwrod: No such configuration property"), "{errors:?}");
        assert!(errors.iter().all(|e| !e.contains("hunter2")), "{errors:?}");

        // Each property is valid alone; the idempotent producer needs `acks=all`.
        let errors = with(&[("acks", "1")]).client_errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("kafka.properties: the producer: ") && errors[0].contains("acks"), "{errors:?}");
    }
}
