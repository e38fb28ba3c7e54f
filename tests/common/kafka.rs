//! Kafka helpers for tests against the in-process mock cluster and the real broker: produce,
//! read a topic from the start, read a group's committed offsets, run the runtime in a thread.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nhid_engine::Engine;
use nhid_kafka::{KafkaConfig, Report};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Six principals of the simulated population (seed 7, 20 principals, 2 days) whose events
/// (12,274) fit a small Kafka test, and still raise alerts and actions: the mock cluster keeps
/// 5 MB per partition, and reading two days of all twenty back from Tansu takes minutes.
pub const SMALL_POPULATION: [&str; 6] = [
    "user-grace1@example.com",
    "oauth-crm-sync-0016",
    "key-status-page-0012",
    "key-webhook-relay-0011",
    "agent-code-review-0018",
    "svc-ml-features-0008",
];

/// One message read back.
#[derive(Clone, Debug)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("a JSON message")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Produces `payloads` without keys, round robin over `partitions` (message i to partition i
/// mod `partitions`), in order, and waits until the broker has them all. Not the sticky
/// partitioner's runs, which put 10,405 of 12,274 messages in one partition: past the 5 MB the
/// mock cluster keeps of a partition, and it dropped the first 1,933.
pub fn produce_round_robin(brokers: &str, topic: &str, partitions: i32, payloads: &[Vec<u8>]) {
    let messages =
        payloads.iter().enumerate().map(|(i, p)| (None, Some(i as i32 % partitions), p.as_slice(), None, None));
    send_all(brokers, topic, messages);
}

/// Produces `(partition, payload)` messages in order, and waits until the broker has them.
pub fn produce_partitioned(brokers: &str, topic: &str, messages: &[(i32, &[u8])]) {
    send_all(brokers, topic, messages.iter().map(|&(partition, p)| (None, Some(partition), p, None, None)));
}

/// Produces one message to one partition, and waits until the broker has it.
pub fn produce_to(brokers: &str, topic: &str, partition: i32, key: &str, payload: &[u8]) {
    send_all(brokers, topic, std::iter::once((Some(key), Some(partition), payload, None, None)));
}

/// Produces `(key, payload, timestamp)` messages in order, each with its timestamp (as a
/// connector stamps an audit record with its event time), and waits until the broker has them.
pub fn produce_at(brokers: &str, topic: &str, messages: &[(String, Vec<u8>, i64)]) {
    send_all(brokers, topic, messages.iter().map(|(k, p, t)| (Some(k.as_str()), None, p.as_slice(), Some(*t), None)));
}

/// Writes canonical events to `topic` as a re-keying instance holding `source`
/// (`topic:partition`) would (`crates/kafka/src/rekeyed.rs`): keyed by principal id, each
/// with its place at the source (`offset`, index 0) in `nhid-source` and its time in
/// `nhid-time`.
pub fn produce_rekeyed(brokers: &str, topic: &str, source: &str, events: &[(i64, &[u8])]) {
    let messages: Vec<_> = events
        .iter()
        .map(|&(offset, payload)| {
            let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
            let time = nhid_model::time::parse_rfc3339(v["time"].as_str().unwrap()).unwrap();
            let headers = OwnedHeaders::new()
                .insert(Header { key: "nhid-source", value: Some(&format!("{source}:{offset}:0")) })
                .insert(Header { key: "nhid-time", value: Some(&time.to_string()) });
            (v["principal"]["id"].as_str().unwrap().to_string(), payload, headers)
        })
        .collect();
    send_all(brokers, topic, messages.iter().map(|(k, p, h)| (Some(k.as_str()), None, *p, None, Some(h.clone()))));
}

/// Writes to every partition of `topic` the watermark a re-keying instance holding `source`
/// sends when it has caught up: events sent up to `time`, and idle.
pub fn produce_idle_mark(brokers: &str, topic: &str, partitions: i32, (source, partition): (&str, i32), time: i64) {
    let mark = serde_json::json!([{ "topic": source, "partition": partition, "time": time, "idle": true }]).to_string();
    let headers = OwnedHeaders::new().insert(Header { key: "nhid-watermarks", value: Some("1") });
    let messages = (0..partitions).map(|p| (None, Some(p), mark.as_bytes(), None, Some(headers.clone())));
    send_all(brokers, topic, messages);
}

/// Produces `(key, payload)` messages in order and waits until the broker has them all.
pub fn produce(brokers: &str, topic: &str, messages: &[(Option<String>, Vec<u8>)]) {
    send_all(brokers, topic, messages.iter().map(|(k, p)| (k.as_deref(), None, p.as_slice(), None, None)));
}

/// Sends `(key, partition, payload, timestamp)` messages in order, waiting for room when the
/// queue is full, then until the broker has them all.
fn send_all<'a>(
    brokers: &str,
    topic: &str,
    messages: impl Iterator<Item = (Option<&'a str>, Option<i32>, &'a [u8], Option<i64>, Option<OwnedHeaders>)>,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("test producer");
    for (key, partition, payload, timestamp, headers) in messages {
        let mut record = BaseRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(h) = headers {
            record = record.headers(h);
        }
        if let Some(t) = timestamp {
            record = record.timestamp(t);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("test messages acknowledged");
}

/// Reads `topic` (every partition, from the start) until `done` holds for what was read
/// or `timeout` passes, and returns what was read either way.
pub fn read_until(brokers: &str, topic: &str, timeout: Duration, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "nhid-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        let n = md.as_ref().ok().and_then(|m| m.topics().first().map(|t| t.partitions().len())).unwrap_or(0);
        if n > 0 || Instant::now() >= deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    while !done(&got) && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            got.push(Got {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    got
}

/// The group's committed offset per partition of `topic` (`None`: nothing committed).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    // Not subscribed, so reading the offsets does not join the group or rebalance it.
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let tpl = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    tpl.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// Polls the group's committed offsets of `topic` (every 20 ms) until `done` holds for them;
/// after `timeout`, fails with `why()` (which may add the process's logs).
pub fn wait_committed(
    brokers: &str,
    group: &str,
    (topic, partitions): (&str, i32),
    timeout: Duration,
    done: impl Fn(&[Option<i64>]) -> bool,
    why: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done(&committed(brokers, group, topic, partitions)) {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The runtime in a thread, stopped (as SIGTERM would) by [`Running::stop`].
pub struct Running {
    stop: Arc<AtomicBool>,
    health: Arc<nhid_engine::metrics::Health>,
    handle: Option<JoinHandle<Result<Report, nhid_kafka::Error>>>,
}

impl Running {
    pub fn start(engine: Engine, cfg: KafkaConfig) -> Running {
        Running::start_shared(Arc::new(engine), cfg)
    }

    /// Like [`Running::start`], keeping a handle on the engine to look at its state.
    pub fn start_shared(engine: Arc<Engine>, cfg: KafkaConfig) -> Running {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let stop = Arc::new(AtomicBool::new(false));
        let health = Arc::new(nhid_engine::metrics::Health::default());
        let (flag, seen) = (stop.clone(), health.clone());
        let handle = std::thread::spawn(move || nhid_kafka::run_observed(engine, &cfg, flag, Arc::default(), seen));
        Running { stop, health, handle: Some(handle) }
    }

    /// How many partitions are assigned to it now.
    pub fn assigned(&self) -> usize {
        self.health.assigned_partitions.load(Ordering::Relaxed)
    }

    pub fn stop(mut self) -> anyhow::Result<Report> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.handle.take().unwrap().join().expect("the runtime thread panicked")?)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A runtime configuration for tests: the given brokers and audit topics, the default
/// output topics, a short commit interval, the changelog written at every commit (tests wait
/// for commits, which never pass the changelog's last write).
pub fn config(brokers: &str, topics: &[&str], group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_string(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        group: group.to_string(),
        commit_interval_ms: 100,
        changelog_interval_ms: 100,
        properties: test_properties(),
        ..KafkaConfig::default()
    }
}

/// librdkafka properties for tests: a short session timeout, because the mock cluster
/// makes a new member wait for a departed member's session to time out even after it left
/// the group (45 s by default); `NHID_TEST_KAFKA_DEBUG=cgrp,...` turns on librdkafka's debug
/// logs (shown with `RUST_LOG=librdkafka=debug` and `--nocapture`).
pub fn test_properties() -> std::collections::BTreeMap<String, String> {
    let mut p = std::collections::BTreeMap::from([("session.timeout.ms".to_string(), "6000".to_string())]);
    if let Ok(d) = std::env::var("NHID_TEST_KAFKA_DEBUG") {
        p.insert("debug".into(), d);
    }
    p
}

/// A running `nhid run`, its logs in a file shown when a test fails.
pub struct Nhid {
    child: Child,
    log: PathBuf,
}

impl Nhid {
    pub fn start(brokers: &str, group: &str, dir: &Path, extra: &[&str]) -> Nhid {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let log = dir.join(format!("nhid-{group}-{}.log", STARTED.fetch_add(1, Ordering::Relaxed)));
        let child = Command::new(env!("CARGO_BIN_EXE_nhid"))
            .args(["run", "--brokers", brokers, "--topics", "audit", "--group", group])
            // Tests run side by side: each instance's HTTP endpoint on a port of its own.
            .args(["--http-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", std::env::var("NHID_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            // Tests wait for commits, which never pass the changelog's last write.
            .env("NHID__KAFKA__CHANGELOG_INTERVAL_MS", "100")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Nhid { child, log }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self, within: Duration) -> (ExitStatus, Duration, String) {
        let asked = Instant::now();
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, asked.elapsed(), self.logs());
            }
            assert!(asked.elapsed() < within, "nhid did not exit within {within:?} of SIGTERM:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Nhid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
