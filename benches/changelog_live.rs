//! What writing the state changelog costs, live and at capacity: `nhid run` (the binary, a
//! process of its own) on Tansu, fed at a fixed rate with events dated as they are sent,
//! with the changelog at its default interval (`changelog_interval_ms`, 30 s) and without
//! it; then a backlog read as fast as nhid can, with and without ([`capacity`]). The figure is nhid's CPU time per event over the same window of each run (its
//! `/proc/<pid>/stat`), so that the broker, the producer and the machine's other tenants do
//! not count; records written come from its own metrics.
//!
//! `cargo bench --bench changelog_live` (about 14 minutes; figures in docs/performance.md).
//! Target: the changelog costs at most 10% of the steady-state throughput.
//!
//! The cost is one record per identity that changed in an interval, so it depends on how
//! many events an identity makes in 30 s. Two estates bracket it:
//! - **dense**: the simulator's 200 principals (`nhid-sim simulate --seed 7 --principals 200
//!   --days 1`), each active in every interval;
//! - **sparse**: the same events spread over 300,000 identities (principal and credential ids
//!   suffixed with the event's number modulo 1,500), about one event per identity per
//!   interval: about one record per event, the most there can be.
//!
//! The identities are new at the start of each run: their records are smaller than a
//! learned identity's (919 bytes, `cargo bench --bench changelog`); the mean size written is
//! printed, from the changelog topic read back.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use nhid_model::time::{Millis, format_rfc3339, parse_rfc3339};
use nhid_sim::SimConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

// The tests' Tansu launcher: the same command line as `scripts/tansu.sh start`.
#[allow(dead_code)]
#[path = "../tests/common/broker.rs"]
mod broker;

/// Events per second sent: well below what nhid and Tansu take on this machine, so that
/// both runs process the same events in the same time.
const RATE: u64 = 10_000;
/// From nhid's assignment to the window: past its first changelog write.
const WARM_UP: Duration = Duration::from_secs(40);
/// Four changelog intervals.
const WINDOW: Duration = Duration::from_secs(120);
const PARTITIONS: i32 = 8;
/// Events of the sparse estate read at capacity.
const BACKLOG: usize = 3_000_000;
/// The sparse estate's copies of each principal.
const SPARSE_COPIES: usize = 1_500;
/// Records of the changelog read back for their mean size.
const SIZE_SAMPLE: usize = 50_000;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and should not spend
    // minutes against a broker.
    if !std::env::args().any(|a| a == "--bench") {
        println!("changelog_live benchmark: run it with `cargo bench --bench changelog_live`");
        return Ok(());
    }
    ensure!(broker::tansu().is_some(), "tansu is not installed (scripts/tansu.sh install)");
    let broker = broker::Broker::start().ok_or_else(|| anyhow!("NHID_SKIP_BROKER_TESTS=1"))?;
    for topic in ["nhid.alerts", "nhid.actions", "nhid.incidents", "nhid.dead-letter"] {
        broker.create_topic(topic, 2);
    }
    let events = workload()?;
    println!(
        "{} events of `nhid-sim simulate --seed 7 --principals 200 --days 1`, sent at {RATE}/s, dated as sent; \
         window {} s after {} s",
        events.len(),
        WINDOW.as_secs(),
        WARM_UP.as_secs()
    );
    println!(
        "\n{:<7} | {:<9} | {:>12} | {:>15} | {:>14} | {:>11}",
        "estate", "changelog", "CPU µs/event", "records/event", "record bytes", "nhid CPU"
    );
    println!("{}", "-".repeat(82));
    let mut cost = BTreeMap::new();
    // `NHID_BENCH_ESTATE=dense`, `sparse` or `backlog` runs that part only (to profile it).
    let only = std::env::var("NHID_BENCH_ESTATE").ok();
    for (estate, copies) in [("dense", 1), ("sparse", SPARSE_COPIES)] {
        if only.as_deref().is_some_and(|o| o != estate) {
            continue;
        }
        for changelog in [false, true] {
            let run = run(&broker, &events, estate, copies, changelog)?;
            println!(
                "{estate:<7} | {:<9} | {:>12.2} | {:>15.3} | {:>14} | {:>10.0}%",
                if changelog { "30 s" } else { "none" },
                run.cpu_per_event * 1e6,
                run.records_per_event,
                run.record_bytes.map_or("-".into(), |b| format!("{b:.0}")),
                100.0 * run.cpu_share
            );
            cost.entry(estate).or_insert_with(Vec::new).push(run.cpu_per_event);
        }
    }
    if only.as_deref().is_none_or(|o| o == "backlog") {
        capacity(&broker, &events)?;
    }
    println!();
    for (estate, per_event) in cost {
        if per_event.len() < 2 {
            continue;
        }
        let more = per_event[1] / per_event[0] - 1.0;
        println!(
            "{estate}: the changelog costs {:.1}% more CPU per event: throughput {:.1}% of without (target ≥ 90.9%, ≤ 10% more)",
            100.0 * more,
            100.0 / (1.0 + more)
        );
    }
    Ok(())
}

/// One run's figures over its window.
struct Run {
    cpu_per_event: f64,
    records_per_event: f64,
    /// Mean size of the records on the changelog topic.
    record_bytes: Option<f64>,
    /// nhid's CPU over the window as a share of one core.
    cpu_share: f64,
}

fn run(broker: &broker::Broker, events: &[Value], estate: &str, copies: usize, changelog: bool) -> anyhow::Result<Run> {
    let name = format!("{estate}-{}", if changelog { "changelog" } else { "none" });
    let (audit, changelog_topic) = (format!("audit-{name}"), format!("changelog-{name}"));
    broker.create_topic(&audit, PARTITIONS as u32);
    let nhid = Nhid::start(broker, &audit, &name, changelog.then_some((changelog_topic.as_str(), 30_000)))?;
    let (pid, port) = (nhid.pid, nhid.port);
    let producer = producer(broker)?;
    let started = Instant::now();
    let mut sent = 0usize;
    let mut window: Option<(Duration, usize, f64)> = None;
    let end = WARM_UP + WINDOW;
    loop {
        let elapsed = started.elapsed();
        if window.is_none() && elapsed >= WARM_UP {
            window = Some((cpu_time(pid)?, sent, sum(port, "nhid_changelog_records_total")?));
        }
        if elapsed >= end {
            break;
        }
        let due = (elapsed.as_secs_f64() * RATE as f64) as usize;
        while sent < due {
            let mut event = events[sent % events.len()].clone();
            let (key, payload) = dated(&mut event, sent, copies)?;
            send(&producer, &audit, &key, &payload)?;
            sent += 1;
        }
        producer.poll(Duration::from_millis(1));
    }
    let (cpu_then, sent_then, records_then) = window.expect("the window started");
    let cpu = cpu_time(pid)? - cpu_then;
    let records = sum(port, "nhid_changelog_records_total")? - records_then;
    producer.flush(Duration::from_secs(30))?;
    // Kept up: what was sent by the window's end is processed within seconds of it, not
    // left to a backlog. (Not by committed offsets: those wait for the changelog's marks.)
    let caught_up = Instant::now();
    while sum(port, "nhid_events_total")? < sent as f64 {
        ensure!(
            caught_up.elapsed() < Duration::from_secs(10),
            "nhid fell behind: the rate is too high for this machine"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let in_window = (sent - sent_then) as f64;
    let record_bytes = if changelog { Some(mean_size(&broker.brokers, &changelog_topic)?) } else { None };
    drop(nhid);
    Ok(Run {
        cpu_per_event: cpu.as_secs_f64() / in_window,
        records_per_event: records / in_window,
        record_bytes,
        cpu_share: cpu.as_secs_f64() / WINDOW.as_secs_f64(),
    })
}

/// `nhid run` reading `audit` in group `group`, with the changelog (topic, interval in
/// milliseconds) or none, ready: its partitions assigned.
struct Nhid {
    _process: Process,
    pid: u32,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nhid {
    fn start(
        broker: &broker::Broker,
        audit: &str,
        group: &str,
        changelog: Option<(&str, u64)>,
    ) -> anyhow::Result<Nhid> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.path().join("nhid.toml");
        let (topic, interval) = changelog.unwrap_or_default();
        let text = format!("[kafka]\nchangelog_topic = \"{topic}\"\nchangelog_interval_ms = {}\n", interval.max(1));
        std::fs::write(&config, text)?;
        let log = std::fs::File::create(dir.path().join("nhid.log"))?;
        let process = Process(
            Command::new(env!("CARGO_BIN_EXE_nhid"))
                .args(["run", "--config", config.to_str().unwrap(), "--brokers", &broker.brokers])
                .args(["--topics", audit, "--group", group, "--http-listen", &format!("127.0.0.1:{port}")])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting nhid run")?,
        );
        let ready = Instant::now();
        while !get(port, "/readyz").is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
            let logs = std::fs::read_to_string(dir.path().join("nhid.log")).unwrap_or_default();
            ensure!(ready.elapsed() < Duration::from_secs(60), "nhid was not assigned its partitions:\n{logs}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Nhid { pid: process.0.id(), _process: process, port, _dir: dir })
    }
}

fn producer(broker: &broker::Broker) -> anyhow::Result<BaseProducer> {
    let config = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .clone();
    Ok(config.create()?)
}

/// At capacity: [`BACKLOG`] events of a sparse estate produced before nhid starts, read as
/// fast as it can, with the changelog and without; events/s of each, from its readiness to
/// its last event processed. The backlog takes about 20 s, so the estate and the interval
/// are the sparse estate's at 30 s scaled down tenfold (30,000 identities, written every
/// 3 s): each identity makes as many events per interval as 300,000 would in 30 s at
/// this rate, about fifteen, so there are as many records per event.
fn capacity(broker: &broker::Broker, events: &[Value]) -> anyhow::Result<()> {
    let payloads = (0..BACKLOG)
        .map(|n| dated(&mut events[n % events.len()].clone(), n, SPARSE_COPIES / 10))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut rates = Vec::new();
    for changelog in [false, true] {
        let name = format!("backlog-{}", if changelog { "changelog" } else { "none" });
        let (audit, changelog_topic) = (format!("audit-{name}"), format!("changelog-{name}"));
        broker.create_topic(&audit, PARTITIONS as u32);
        let producer = producer(broker)?;
        for (key, payload) in &payloads {
            send(&producer, &audit, key, payload)?;
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(120))?;
        let nhid = Nhid::start(broker, &audit, &name, changelog.then_some((changelog_topic.as_str(), 3_000)))?;
        let (started, cpu) = (Instant::now(), cpu_time(nhid.pid)?);
        while sum(nhid.port, "nhid_events_total")? < BACKLOG as f64 {
            ensure!(started.elapsed() < Duration::from_secs(600), "nhid did not process the backlog in 10 minutes");
            std::thread::sleep(Duration::from_millis(100));
        }
        let took = started.elapsed().as_secs_f64();
        let cpu = (cpu_time(nhid.pid)? - cpu).as_secs_f64();
        let records = sum(nhid.port, "nhid_changelog_records_total")?;
        println!(
            "sparse backlog, changelog {:<4}: {:>7.0} events/s ({took:.1} s), {:.2} µs CPU/event, {:.3} records/event",
            if changelog { "3 s" } else { "none" },
            BACKLOG as f64 / took,
            cpu * 1e6 / BACKLOG as f64,
            records / BACKLOG as f64
        );
        rates.push(BACKLOG as f64 / took);
    }
    println!(
        "sparse backlog: throughput with the changelog {:.1}% of without (target ≥ 90%)",
        100.0 * rates[1] / rates[0]
    );
    Ok(())
}

/// One simulated day's events.
fn workload() -> anyhow::Result<Vec<Value>> {
    let mut bytes = Vec::new();
    nhid_sim::run(&SimConfig { seed: 7, principals: 200, days: 1, ..SimConfig::default() }, &mut bytes)
        .context("simulating the workload")?;
    bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| Ok(serde_json::from_slice(l)?)).collect()
}

/// The `n`th event sent, dated now (its credential's times moved as much), its principal
/// and credential one of `copies`: its key and payload.
fn dated(v: &mut Value, n: usize, copies: usize) -> anyhow::Result<(String, Vec<u8>)> {
    let now = wall_ms();
    let time = v["time"].as_str().and_then(parse_rfc3339).ok_or_else(|| anyhow!("an event without a time"))?;
    let shift = now - time;
    v["time"] = format_rfc3339(now).into();
    for field in ["issued_at", "expires_at"] {
        if let Some(t) = v["credential"][field].as_str().and_then(parse_rfc3339) {
            v["credential"][field] = format_rfc3339(t + shift).into();
        }
    }
    let copy = n % copies;
    let id = format!("{}-{copy}", v["principal"]["id"].as_str().unwrap_or_default());
    v["principal"]["id"] = id.clone().into();
    if let Some(c) = v["credential"]["id"].as_str() {
        v["credential"]["id"] = format!("{c}-{copy}").into();
    }
    Ok((id, serde_json::to_vec(v)?))
}

fn send(producer: &BaseProducer, topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => bail!("producing to {topic}: {e}"),
        }
    }
}

/// The mean size of the first [`SIZE_SAMPLE`] records of the changelog topic.
fn mean_size(brokers: &str, topic: &str) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "changelog-size")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let (mut n, mut bytes) = (0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(30);
    while n < SIZE_SAMPLE && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
            && let Some(p) = m.payload()
        {
            n += 1;
            bytes += p.len();
        }
    }
    ensure!(n > 0, "nothing read back from {topic}");
    Ok(bytes as f64 / n as f64)
}

/// The whole answer of nhid's HTTP endpoint to a GET of `path`.
fn get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// The sum of a metric's samples, whatever their labels.
fn sum(port: u16, name: &str) -> anyhow::Result<f64> {
    let text = get(port, "/metrics")?;
    let samples = text.lines().filter_map(|l| l.strip_prefix(name)).filter(|l| l.starts_with([' ', '{']));
    let values = samples.map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()));
    values.sum::<Option<f64>>().ok_or_else(|| anyhow!("an odd sample of {name}"))
}

/// User and system CPU time of a process so far, from `/proc/<pid>/stat` (Linux).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces: utime and stime are fields 14
    // and 15 of proc(5), in USER_HZ (100 per second).
    let fields: Vec<&str> = stat.rsplit_once(')').ok_or_else(|| anyhow!("odd stat"))?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| anyhow!("odd stat"));
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

fn wall_ms() -> Millis {
    nhid_model::time::wall_clock()
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
