//! The producer side: alerts, actions, dead letters, lane copies and re-keyed events go out
//! through one idempotent producer, and each delivery report is credited to the input
//! message that caused it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};

use nhid_engine::Outputs;
use nhid_engine::detect::Detector;
use nhid_engine::metrics::{KafkaErrorKind, Metrics};
use nhid_engine::respond::ocsf::AlertsFormat;
use nhid_model::event::PrincipalType;
use nhid_model::vocab::DeadLetterReason;

use crate::config::KafkaConfig;
use crate::error::Error;
use crate::internal_events::{ClientError, KafkaErrorEvent as _, OutputLost, OutputTooLarge, WatermarkLost};
use crate::partition::Partition;
use crate::rekeyed;

/// How long the events topic's partition count may take to look up at start.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Event (input message timestamp) to alert-acknowledged latency, in milliseconds.
pub type Latency = hdrhistogram::Histogram<u64>;

/// Which input message an output belongs to; a re-keying watermark belongs to none.
pub(crate) struct Delivery {
    partition: Option<Arc<Partition>>,
    offset: i64,
    /// The input message's timestamp, for alerts only: their latency is measured.
    alert_of: Option<i64>,
}

struct Deliveries {
    latency: Mutex<Latency>,
    metrics: Arc<Metrics>,
    fatal: Mutex<Option<String>>,
    stop: Arc<AtomicBool>,
}

impl ClientContext for Deliveries {
    /// The producer reconnects and retries by itself; what it cannot deliver in the end
    /// comes back as a failed delivery report.
    fn error(&self, error: KafkaError, reason: &str) {
        ClientError { error: &error, reason }.emit(&self.metrics);
    }

    /// librdkafka's periodic statistics: outputs waiting for the broker.
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.metrics.producer_queue.set(statistics.msg_cnt as i64);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, d: Box<Delivery>) {
        match result {
            Ok(_) => {
                if let Some(p) = &d.partition {
                    p.progress().acknowledged(d.offset);
                }
                if let Some(t) = d.alert_of {
                    let ms = now_ms().saturating_sub(t).max(0) as u64;
                    let _ = self.latency.lock().unwrap_or_else(PoisonError::into_inner).record(ms);
                    self.metrics.event_to_alert.observe(ms as f64 / 1_000.0);
                }
            }
            Err((e, m)) => self.fail(&d, KafkaErrorKind::Delivery, &format!("delivery to {} failed: {e}", m.topic())),
        }
    }
}

impl Deliveries {
    /// An output that will never be acknowledged: its input stays uncommitted, and the
    /// runtime stops so that a restart reads it again (librdkafka has already retried it
    /// for `message.timeout.ms`).
    fn fail(&self, d: &Delivery, kind: KafkaErrorKind, why: &str) {
        let Some(p) = &d.partition else {
            return WatermarkLost { kind, why }.emit(&self.metrics);
        };
        p.progress().failed(d.offset);
        let (topic, partition, offset) = (&*p.topic, p.partition, d.offset);
        OutputLost { kind, why, topic, partition, offset }.emit(&self.metrics);
        self.fatal.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| why.to_string());
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(crate) struct Sender {
    producer: ThreadedProducer<Deliveries>,
    alerts_topic: String,
    alerts_format: AlertsFormat,
    actions_topic: String,
    incidents_topic: String,
    dead_letter_topic: String,
    /// Topic of each principal type's lane copy, if any.
    lanes: [Option<String>; PrincipalType::ALL.len()],
    /// The re-keying stage's: where every normalized event goes, keyed by principal, and
    /// how many partitions it has (each gets the watermarks).
    events: Option<(String, i32)>,
    /// Past this instant a full queue is no longer waited on (shutdown or revocation grace).
    give_up_at: Mutex<Option<Instant>>,
}

impl Sender {
    /// A sender for `cfg`'s outputs; `events_topic` for the re-keying stage's.
    pub(crate) fn new(
        cfg: &KafkaConfig,
        events_topic: Option<&str>,
        stop: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
        let context = Deliveries { latency: Mutex::new(new_latency()), metrics, fatal: Mutex::default(), stop };
        let producer = cfg
            .producer_config()
            .create_with_context(context)
            .map_err(|source| Error::create_client("producer", &source))?;
        let lanes = std::array::from_fn(|i| {
            let kind = PrincipalType::ALL[i];
            cfg.lanes.get(kind.as_str()).or(kind.is_machine().then(|| cfg.lanes.get("machine")).flatten()).cloned()
        });
        let events = match events_topic {
            Some(topic) => Some((topic.to_string(), partition_count(&producer, topic)?)),
            None => None,
        };
        Ok(Sender {
            producer,
            alerts_topic: cfg.alerts_topic.clone(),
            alerts_format: cfg.alerts_format,
            actions_topic: cfg.actions_topic.clone(),
            incidents_topic: cfg.incidents_topic.clone(),
            dead_letter_topic: cfg.dead_letter_topic.clone(),
            lanes,
            events,
            give_up_at: Mutex::default(),
        })
    }

    /// How many messages [`Sender::send_all`] will send for these outputs.
    pub(crate) fn count(&self, out: &Outputs) -> u32 {
        let normalized = match self.events {
            Some(_) => out.normalized.len(),
            None => out.normalized.iter().filter(|n| self.lanes[n.lane.index()].is_some()).count(),
        };
        (out.alerts.len() + out.actions.len() + out.incidents.len() + out.dead_letters.len() + normalized) as u32
    }

    /// Sends (and clears) the outputs of the input message at `offset`; `detectors` name the
    /// analytics of OCSF findings.
    pub(crate) fn send_all(
        &self,
        out: &mut Outputs,
        p: &Arc<Partition>,
        offset: i64,
        timestamp: Option<i64>,
        detectors: &[Detector],
    ) {
        let delivery = |alert_of| Box::new(Delivery { partition: Some(p.clone()), offset, alert_of });
        for alert in out.alerts.drain(..) {
            let json = self.alerts_format.encode(&alert, detectors);
            self.send(&self.alerts_topic, Some(&alert.principal.id), &json, None, None, delivery(timestamp));
        }
        for action in out.actions.drain(..) {
            let json = serde_json::to_vec(&action).expect("actions serialize");
            self.send(&self.actions_topic, Some(&action.target.principal_id), &json, None, None, delivery(None));
        }
        // Verdicts are audited in the log: who said what about which alert, and what it did.
        for (principal, v) in out.verdicts.drain(..) {
            tracing::info!(
                principal = %principal,
                verdict = %v.verdict,
                by = %v.by,
                target = %v.target,
                change = %v.change(),
                "analyst verdict applied"
            );
        }
        for incident in out.incidents.drain(..) {
            let json = self.alerts_format.encode_incident(&incident);
            let key = Some(incident.incident.incident_id.as_str());
            self.send(&self.incidents_topic, key, &json, None, None, delivery(None));
        }
        for dl in out.dead_letters.drain(..) {
            let record = dl.record.map(|r| r.to_string());
            let original_len = dl.original_len.to_string();
            let mut headers = dead_letter_headers(dl.reason, &dl.detail, &dl.source, dl.partition, dl.offset)
                .insert(Header { key: "nhid-original-bytes", value: Some(&original_len) })
                .insert(Header { key: "nhid-original-xxh3", value: Some(&dl.original_xxh3) });
            if let Some(r) = &record {
                headers = headers.insert(Header { key: "nhid-record", value: Some(r) });
            }
            self.send(&self.dead_letter_topic, None, &dl.bytes, Some(headers), None, delivery(None));
        }
        for (index, n) in out.normalized.drain(..).enumerate() {
            if let Some((topic, _)) = &self.events {
                // The source message's timestamp stays: detection bounds event times by it
                // and rebuilds by it.
                let source = rekeyed::Source { topic: p.topic.clone(), partition: p.partition };
                let headers = rekeyed::event_headers(&source, offset, index as u32, n.time);
                self.send(topic, Some(&n.principal_id), &n.json, Some(headers), timestamp, delivery(None));
            } else if let Some(topic) = &self.lanes[n.lane.index()] {
                self.send(topic, Some(&n.principal_id), &n.json, None, None, delivery(None));
            }
        }
    }

    /// One record of the state changelog (`value` `None` deletes the key), an output of the
    /// message of `p` at `of` (`None`: of none).
    pub(crate) fn send_changelog(
        &self,
        topic: &str,
        partition: i32,
        key: u64,
        value: Option<&[u8]>,
        p: &Arc<Partition>,
        of: Option<i64>,
    ) {
        let d = Box::new(Delivery { partition: of.map(|_| p.clone()), offset: of.unwrap_or(0), alert_of: None });
        let key = key.to_be_bytes();
        let mut record = BaseRecord::with_opaque_to(topic, d).partition(partition).key(&key[..]);
        if let Some(v) = value {
            record = record.payload(v);
        }
        self.enqueue(record, topic, value.unwrap_or_default());
    }

    /// The re-keying stage's watermarks: how far each of `sources` has been re-keyed, to
    /// every partition of the events topic, after the events they cover.
    pub(crate) fn send_watermarks(&self, sources: &[rekeyed::Mark]) {
        let Some((topic, partitions)) = &self.events else { return };
        let (headers, payload) = rekeyed::watermarks(sources);
        for partition in 0..*partitions {
            let d = Box::new(Delivery { partition: None, offset: 0, alert_of: None });
            let record = BaseRecord::<str, [u8], _>::with_opaque_to(topic.as_str(), d).partition(partition);
            self.enqueue(record.payload(payload.as_slice()).headers(headers.clone()), topic, &payload);
        }
    }

    /// Enqueues one message; a full queue is back-pressure: wait for room, never drop.
    fn send(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
        timestamp: Option<i64>,
        d: Box<Delivery>,
    ) {
        let mut record = BaseRecord::with_opaque_to(topic, d).payload(payload);
        if let Some(t) = timestamp {
            record = record.timestamp(t);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        self.enqueue(record, topic, payload);
    }

    fn enqueue<K: ToBytes + ?Sized>(
        &self,
        mut record: BaseRecord<'_, K, [u8], Box<Delivery>>,
        topic: &str,
        payload: &[u8],
    ) {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    let give_up = *self.give_up_at.lock().unwrap_or_else(PoisonError::into_inner);
                    if give_up.is_some_and(|t| Instant::now() >= t) {
                        let why = "the producer queue stayed full past the grace period";
                        self.producer.context().fail(&r.delivery_opaque, KafkaErrorKind::Produce, why);
                        return;
                    }
                    record = r;
                    thread::sleep(Duration::from_millis(1));
                }
                // Whatever made it this large (the engine caps fields and dead letters, but a
                // broker may take less than librdkafka's default), one output must not stop
                // the partition: a dead letter that says so goes instead, once.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), r))
                    if !payload.is_empty() =>
                {
                    let d = r.delivery_opaque;
                    let Some(p) = d.partition.clone() else {
                        let why = format!("a watermark to {topic} exceeds message.max.bytes");
                        return self.producer.context().fail(&d, KafkaErrorKind::Produce, &why);
                    };
                    let (source, partition, offset) = (&*p.topic, p.partition, d.offset);
                    let event =
                        OutputTooLarge { output_topic: topic, bytes: payload.len(), topic: source, partition, offset };
                    event.emit(&self.producer.context().metrics);
                    let detail = format!("an output of {} bytes to {topic} exceeds message.max.bytes", payload.len());
                    let reason = DeadLetterReason::OutputTooLarge;
                    let headers = dead_letter_headers(reason, &detail, source, partition, offset);
                    return self.send(&self.dead_letter_topic, None, b"", Some(headers), None, d);
                }
                Err((e, r)) => {
                    let why = format!("producing to {topic} failed: {e}");
                    self.producer.context().fail(&r.delivery_opaque, KafkaErrorKind::Produce, &why);
                    return;
                }
            }
        }
    }

    /// From `deadline` on (until cleared with `None`), a full queue is no longer waited on:
    /// a drain must end even when the broker is gone.
    pub(crate) fn give_up_at(&self, deadline: Option<Instant>) {
        *self.give_up_at.lock().unwrap_or_else(PoisonError::into_inner) = deadline;
    }

    /// Waits until every output is acknowledged, or until `deadline`.
    pub(crate) fn flush(&self, deadline: Instant) -> Result<(), KafkaError> {
        self.producer.flush(deadline.saturating_duration_since(Instant::now()))
    }

    /// Whether it is the re-keying stage's, which sends canonical events to the events topic.
    pub(crate) fn rekeys(&self) -> bool {
        self.events.is_some()
    }

    /// How many partitions `topic` has, by the broker's metadata.
    pub(crate) fn partitions(&self, topic: &str) -> Result<i32, Error> {
        partition_count(&self.producer, topic)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.producer.in_flight_count().max(0) as u64
    }

    pub(crate) fn latency(&self) -> Latency {
        self.producer.context().latency.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn fatal(&self) -> Option<String> {
        self.producer.context().fatal.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// What every dead letter says of itself: why, and the input message it stands for.
fn dead_letter_headers(
    reason: DeadLetterReason,
    detail: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OwnedHeaders {
    let (partition, offset) = (partition.to_string(), offset.to_string());
    OwnedHeaders::new()
        .insert(Header { key: "nhid-reason", value: Some(reason.as_str()) })
        .insert(Header { key: "nhid-detail", value: Some(detail) })
        .insert(Header { key: "nhid-source-topic", value: Some(topic) })
        .insert(Header { key: "nhid-source-partition", value: Some(&partition) })
        .insert(Header { key: "nhid-source-offset", value: Some(&offset) })
}

/// How many partitions `topic` has, by the broker's metadata.
fn partition_count(producer: &ThreadedProducer<Deliveries>, topic: &str) -> Result<i32, Error> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| Error::Metadata(format!("{topic}: {e}")))?;
    match metadata.topics().first().map(|t| (t.error(), t.partitions().len())) {
        Some((None, n)) if n > 0 => Ok(n as i32),
        Some((Some(e), _)) => Err(Error::Metadata(format!("{topic}: {e:?}"))),
        _ => Err(Error::Metadata(format!("{topic} has no partitions"))),
    }
}

fn new_latency() -> Latency {
    Latency::new_with_bounds(1, 3_600_000, 3).expect("valid histogram bounds")
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
