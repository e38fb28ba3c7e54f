//! The state changelog's records at a million identities: what writing one costs, how large
//! they are, and how fast an engine restores them: from memory (the CPU side of a restore),
//! then read from a broker (Tansu 0.6, memory storage, loopback), as an assignment reads
//! them: a consumer assigned the changelog's partitions reads them to their ends on one
//! thread and each record is restored as it comes; produced uncompressed and with lz4 (as
//! nhid's producer sends them), with the bytes each sent.
//!
//! `cargo bench --bench changelog` (a few minutes on 2 cores; the broker part is skipped,
//! saying so, without a tansu binary). Target: a million identities restored in ≤ 30 s.
//!
//! The identities are real ones: the two hundred principals of `nhid-sim simulate --seed 7
//! --principals 200 --days 2`, learned by the engine from their two days, each written under
//! 5,000 names (their state otherwise as learned: sets, baselines, seasonal profile,
//! credentials, alert marks).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use nhid::config::Config;
use nhid_engine::state::snapshot::{self, Record};
use nhid_engine::{Engine, Origin, Outputs, Restored};
use nhid_sim::SimConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, Statistics, TopicPartitionList};

// The tests' Tansu launcher: the same command line as `scripts/tansu.sh start`.
#[allow(dead_code)]
#[path = "../tests/common/broker.rs"]
mod broker;

const IDENTITIES: usize = 1_000_000;
/// The changelog topic's partitions: one per input partition, as nhid creates it.
const PARTITIONS: i32 = 8;
const WAIT: Duration = Duration::from_secs(300);

fn engine() -> anyhow::Result<Engine> {
    let engine = Config::default().engine().map_err(|e| anyhow!("building the engine: {}", e.join("; ")))?;
    engine.track_changes();
    Ok(engine)
}

fn main() -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    nhid_sim::run(&SimConfig { seed: 7, principals: 200, days: 2, ..SimConfig::default() }, &mut bytes)?;
    let learned = engine()?;
    let origin = Origin { source: "audit", partition: 0, offset: 0 };
    let mut out = Outputs::default();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        learned.process(line, origin, None, &mut out);
        out.clear();
    }
    let home = origin.home();
    let mut changes = Vec::new();
    learned.changes(home, &mut changes);
    let templates: Vec<(Box<str>, u64, Box<nhid_engine::state::Identity>)> = changes
        .iter()
        .filter_map(|c| c.value.as_deref())
        .filter_map(|v| match snapshot::decode(v) {
            Ok((home, Record::Identity { id, detectors, mut identity })) => {
                // A record's home is in its head, not its body: the template keeps it.
                identity.set_home(home);
                Some((id, detectors, identity))
            }
            _ => None,
        })
        .collect();
    ensure!(templates.len() >= 150, "{} identities learned", templates.len());
    let template_bytes: usize = changes.iter().filter_map(|c| c.value.as_ref()).map(Vec::len).sum();
    println!(
        "{} identities learned from {} events; their records {} bytes each on average",
        templates.len(),
        bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(),
        template_bytes / changes.len()
    );

    // Writing: one record per identity, as a commit does for each changed identity.
    let started = Instant::now();
    let records: Vec<Vec<u8>> = (0..IDENTITIES)
        .map(|i| {
            let (id, detectors, identity) = &templates[i % templates.len()];
            snapshot::identity(&format!("{id}-{i}"), *detectors, identity)
        })
        .collect();
    let written = started.elapsed();
    let total: usize = records.iter().map(Vec::len).sum();
    println!(
        "write: {} records in {:.2} s ({}/s, {:.2} µs each), {:.0} MB, {} bytes a record",
        thousands(IDENTITIES),
        written.as_secs_f64(),
        thousands(rate(IDENTITIES, written)),
        written.as_secs_f64() * 1e6 / IDENTITIES as f64,
        total as f64 / 1e6,
        total / IDENTITIES
    );

    // Restoring: each record decoded and put in the state, as an assignment does.
    let restored = engine()?;
    let started = Instant::now();
    for r in &records {
        ensure!(restored.restore(r, home).context("a record refused")? == Restored::Identity, "not restored");
    }
    let took = started.elapsed();
    ensure!(restored.store().len() == IDENTITIES, "{} restored", restored.store().len());
    println!(
        "restore: {} identities in {:.2} s ({}/s); the state then holds {:.0} MB by its estimate",
        thousands(IDENTITIES),
        took.as_secs_f64(),
        thousands(rate(IDENTITIES, took)),
        restored.store().estimated_bytes() as f64 / 1e6
    );
    ensure!(took <= Duration::from_secs(30), "restoring a million identities took {took:?}, over the 30 s target");
    drop(restored);

    println!("\n== from a broker: tansu 0.6 (memory storage, loopback)");
    if broker::tansu().is_none() {
        println!("skipped: tansu not installed (scripts/tansu.sh install)");
        return Ok(());
    }
    let broker = broker::Broker::start().context("starting tansu")?;
    for compression in ["none", "lz4"] {
        let topic = format!("nhid.changelog-{compression}");
        broker.create_topic(&topic, PARTITIONS as u32);
        let started = Instant::now();
        let (counts, sent) = produce(&broker.brokers, &topic, &records, compression)?;
        println!(
            "{compression}: produced in {:.1} s, {:.0} MB sent to the broker for {:.0} MB of records",
            started.elapsed().as_secs_f64(),
            sent as f64 / 1e6,
            total as f64 / 1e6
        );
        let (restored, took) = from_broker(&broker.brokers, &topic, &counts, home)?;
        ensure!(restored.store().len() == IDENTITIES, "{} restored", restored.store().len());
        println!(
            "{compression}: restore from the broker: {} identities in {:.2} s ({}/s)",
            thousands(IDENTITIES),
            took.as_secs_f64(),
            thousands(rate(IDENTITIES, took))
        );
        ensure!(
            took <= Duration::from_secs(30),
            "restoring a million identities from the broker took {took:?}, over 30 s"
        );
    }
    Ok(())
}

/// A producer's bytes sent to the brokers, by its statistics.
#[derive(Default)]
struct Sent(Mutex<u64>);

impl ClientContext for Sent {
    fn stats(&self, statistics: Statistics) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = statistics.brokers.values().map(|b| b.txbytes).sum();
    }
}

impl ProducerContext for Sent {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Writes the records as the detection stage's producer does (idempotent, 5 ms linger), with
/// `compression`, keyed by identity, round robin over the partitions; returns how many each
/// partition holds (Tansu 0.6's watermarks fall short of the end), and the bytes sent.
fn produce(brokers: &str, topic: &str, records: &[Vec<u8>], compression: &str) -> anyhow::Result<(Vec<i64>, u64)> {
    let producer: BaseProducer<Sent> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", compression)
        .set("statistics.interval.ms", "100")
        .create_with_context(Sent::default())
        .context("creating the producer")?;
    for (i, r) in records.iter().enumerate() {
        let key = (i as u64).to_be_bytes();
        let mut record = BaseRecord::to(topic).key(&key[..]).payload(r).partition(i as i32 % PARTITIONS);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => bail!("producing the changelog: {e}"),
            }
        }
    }
    producer.flush(WAIT).context("waiting for the broker to acknowledge the changelog")?;
    // Statistics after the last send.
    producer.poll(Duration::from_millis(300));
    let counts: Vec<i64> = (0..PARTITIONS)
        .map(|p| (records.len() as i64 - p as i64 + PARTITIONS as i64 - 1) / PARTITIONS as i64)
        .collect();
    let sent = *producer.context().0.lock().unwrap_or_else(PoisonError::into_inner);
    Ok((counts, sent))
}

/// Reads every partition from its start to `counts` and restores each record into a fresh
/// engine, timed from the assignment to the last record restored.
fn from_broker(brokers: &str, topic: &str, counts: &[i64], home: u32) -> anyhow::Result<(Engine, Duration)> {
    let restored = engine()?;
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "changelog-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .context("creating the reader")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    let started = Instant::now();
    reader.assign(&tpl)?;
    let mut left: i64 = counts.iter().sum();
    let mut read = vec![0i64; counts.len()];
    while left > 0 {
        ensure!(started.elapsed() < WAIT, "{left} records not read: {read:?} of {counts:?}");
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let payload = m.payload().context("a record without a value")?;
                ensure!(restored.restore(payload, home)? == Restored::Identity, "not restored");
                read[m.partition() as usize] += 1;
                left -= 1;
            }
            Some(Err(e)) => bail!("reading the changelog: {e}"),
            None => {}
        }
    }
    Ok((restored, started.elapsed()))
}

fn rate(n: usize, took: Duration) -> usize {
    (n as f64 / took.as_secs_f64()) as usize
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
