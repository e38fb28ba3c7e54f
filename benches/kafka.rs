//! The Kafka runtime end to end, on librdkafka's in-process mock cluster and on Tansu:
//! events/s through `nhid_kafka::run` beside the raw ceiling of the same broker (a bare
//! consumer that only counts), and event → alert-acknowledged latency below saturation.
//!
//! `cargo bench --bench kafka` (figures in README.md; about three minutes on 2 cores).
//! Targets: nhid ≥ 50% of the bare consumer's rate on the same broker; p99 event → alert
//! ≤ 50 ms below saturation. Not criterion: each figure is one long run against a broker
//! whose group join alone takes seconds, not a loop of short iterations.
//!
//! # What is measured, per broker
//!
//! - **Throughput.** The pipeline benchmark's workload (`nhid-sim simulate --seed 7 --principals
//!   200 --days 2`), its first 1,000,000 events, produced up front keyed by principal id,
//!   lz4, over 32 partitions: the mock keeps 5 MB per partition and drops older batches past
//!   that, so the delivery reports and the low watermarks are checked before anything is
//!   timed. (200,000 events take 0.2–0.5 s to consume, of which start-up and the commit
//!   interval are too large a part.) Five rounds, each a bare consumer then nhid twice, in
//!   fresh groups; the medians are reported, and each ratio is the median of the rounds' own
//!   (nhid's rate over that round's bare consumer's). The bare consumer counts from its first
//!   message to the last. nhid (`Config::default().engine()`) runs first as `nhid run` does by
//!   default (commits every second, its changelog every 30 s), timed in the steady state as
//!   the bare consumer is: from its first messages processed to its last (its workers' count
//!   of messages processed, polled every millisecond; the target's ratio is taken on this
//!   one). Then with its changelog at every commit, every 100 ms (the changelog's most
//!   expensive setting), timed in the steady state too, and to the moment the group's
//!   committed offsets, polled every 25 ms, reach the end of every partition, from its
//!   assignment (the runtime's "partitions assigned" log, caught by a tracing layer), which
//!   includes its first fetch and up to one commit interval and one poll that the bare
//!   consumer does not pay. (By default, commits never pass the changelog written at the
//!   start, so that run ends at its last message.) None includes the group join (printed
//!   apart: the mock delays a new group's first rebalance by 3 s). The scheduler's account
//!   of each thread of this process and the broker's (`on_cpu`) says how many cores each kept
//!   busy meanwhile and where that went: µs of a core an event for nhid's workers, its
//!   consumer thread, librdkafka, the rest of the process and the broker; `/proc/stat`, how
//!   many cores the machine left idle.
//! - **Latency.** An engine warmed by two days of `Live` history (as `nhid-sim demo` does), then
//!   20 s of traffic paced at 2,000 events/s: the live simulator's (an attack every second),
//!   and benign background traffic making up the rate: the throughput workload with
//!   principals renamed `bg-*` and timestamps moved to the moment of sending, one event in
//!   100 turned into `iam:CreateAccessKey` by a new service account, a `privilege_change`
//!   alert by construction, so that the percentiles rest on hundreds of alerts rather than
//!   the attacks' few dozen. Before the clock starts, a few background events and one
//!   malformed message (a dead letter, so the runtime's idempotent producer has its id:
//!   about 1 s on Tansu, which would land on the first alert) go through. The figure is the
//!   runtime's own `Report.latency`: message timestamp (set by the producer when the event
//!   is sent) to the alert's acknowledgement.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use nhid::config::Config;
use nhid_engine::Engine;
use nhid_engine::metrics::Metrics;
use nhid_kafka::{KafkaConfig, Report};
use nhid_model::time::{Millis, SECOND, format_rfc3339, parse_rfc3339};
use nhid_sim::{Live, LiveConfig, SimConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

// The tests' Tansu launcher: the same command line as `scripts/tansu.sh start`.
#[allow(dead_code)]
#[path = "../tests/common/broker.rs"]
mod broker;

/// Events of the throughput run.
const EVENTS: usize = 1_000_000;
/// Partitions of the audit topics: 1,000,000 lz4 events leave each under the mock's 5 MB
/// (16 do not).
const PARTITIONS: i32 = 32;
const AUDIT: &str = "audit";
/// The latency run has a topic of its own: a fresh group reading from the earliest offset
/// must not first wade through the throughput run's events.
const PACED: &str = "audit-paced";
/// The re-keying run's input: the throughput workload produced without keys.
const UNKEYED: &str = "audit-unkeyed";
/// Events of the re-keying run: re-keyed, a million pass the mock's 5 MB in some partitions
/// of the events topic (keyed by principal, as canonical JSON with headers).
const REKEYED_EVENTS: usize = 250_000;
const COMMIT_INTERVAL_MS: u64 = 100;
/// Throughput rounds per broker (bare consumer, then nhid, each in a fresh group).
const ROUNDS: usize = 5;
/// How often the committed offsets are read while nhid runs.
const COMMITTED_POLL: Duration = Duration::from_millis(25);
const PACED_RATE: u64 = 2_000;
const PACED_FOR: Duration = Duration::from_secs(20);
/// Background events sent and committed before the latency run starts; fewer than
/// [`PRIVILEGE_CHANGE_EVERY`], so none alerts.
const WARM_UP: u64 = 50;
/// One background event in this many is a privilege change by a new service account.
const PRIVILEGE_CHANGE_EVERY: usize = 100;
/// Longest any phase may take before the broker is reported as failed.
const WAIT: Duration = Duration::from_secs(180);

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and should not spend
    // minutes against brokers.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kafka benchmark: run it with `cargo bench --bench kafka`");
        return Ok(());
    }
    init_logs();
    let started = Instant::now();
    let workload = workload()?;
    let bytes = workload.iter().map(|(_, p)| p.len()).sum::<usize>();
    println!(
        "workload: {} events from `nhid-sim simulate --seed 7 --principals 200 --days 2`, {} B/event, keyed by principal",
        workload.len(),
        bytes / workload.len()
    );

    // `NHID_BENCH_BROKER=mock` or `tansu` measures that one only (to profile it alone).
    let only = std::env::var("NHID_BENCH_BROKER").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let mut rows = Vec::new();
    println!("\n== mock cluster (librdkafka in process, 1 broker)");
    let mock = if wanted("mock") {
        let mock = MockCluster::new(1).context("starting the mock cluster")?;
        measure(&Cluster::Mock(mock), &workload)
    } else {
        Err(anyhow!("skipped: NHID_BENCH_BROKER={}", only.as_deref().unwrap_or_default()))
    };
    if let Err(e) = &mock {
        println!("{e:#}");
    }
    rows.push(("mock cluster", mock));

    println!("\n== tansu 0.6 (memory storage, loopback)");
    let tansu = if !wanted("tansu") {
        Err(anyhow!("skipped: NHID_BENCH_BROKER={}", only.as_deref().unwrap_or_default()))
    } else if broker::tansu().is_none() {
        Err(anyhow!("skipped: tansu not installed (scripts/tansu.sh install)"))
    } else {
        match broker::Broker::start() {
            Some(b) => measure(&Cluster::Tansu(b), &workload),
            None => Err(anyhow!("skipped: NHID_SKIP_BROKER_TESTS=1")),
        }
    };
    if let Err(e) = &tansu {
        println!("{e:#}");
    }
    rows.push(("tansu", tansu));

    println!(
        "\nmedians of {ROUNDS} rounds (each ratio the median of the rounds' own); latency at {PACED_RATE} events/s, \
         event → alert acknowledged"
    );
    println!("nhid steady: first to last message processed, as the bare consumer is timed, with nhid's defaults");
    println!("(changelog every 30 s); changelog at every 100 ms commit: the same, and from assignment to everything");
    println!("committed");
    println!(
        "{:<13} | {:>18} | {:>11} | {:>5} | {:>22} | {:>5} | {:>15} | {:>5} | latency p50/p99/max (alerts)",
        "broker",
        "bare consumer ev/s",
        "nhid steady",
        "ratio",
        "every commit: steady",
        "ratio",
        "from assignment",
        "ratio"
    );
    println!("{}", "-".repeat(150));
    for (name, row) in &rows {
        match row {
            Ok(f) => {
                let (bare, nhid, steady, every) =
                    (f.bare.per_sec(), f.nhid.per_sec(), f.steady.per_sec(), f.every.per_sec());
                let [steady_ratio, every_ratio, nhid_ratio] = f.ratios.medians();
                let l = &f.paced.report.latency;
                println!(
                    "{name:<13} | {:>18} | {:>11} | {:>4.0}% | {:>22} | {:>4.0}% | {:>15} | {:>4.0}% | {}/{}/{} ms ({})",
                    thousands(bare),
                    thousands(steady),
                    100.0 * steady_ratio,
                    thousands(every),
                    100.0 * every_ratio,
                    thousands(nhid),
                    100.0 * nhid_ratio,
                    l.value_at_quantile(0.5),
                    l.value_at_quantile(0.99),
                    l.max(),
                    l.len()
                );
            }
            Err(e) => println!("{name:<13} | {e:#}"),
        }
    }
    println!("\n(whole benchmark: {:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Where the benchmark's topics live.
enum Cluster {
    Mock(MockCluster<'static, DefaultProducerContext>),
    Tansu(broker::Broker),
}

impl Cluster {
    fn brokers(&self) -> String {
        match self {
            Cluster::Mock(m) => m.bootstrap_servers(),
            Cluster::Tansu(b) => b.brokers.clone(),
        }
    }

    /// The broker's process when it is not this one.
    fn pid(&self) -> Option<u32> {
        match self {
            Cluster::Mock(_) => None,
            Cluster::Tansu(b) => b.pid(),
        }
    }

    fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        match self {
            Cluster::Mock(m) => m.create_topic(name, partitions, 1).with_context(|| format!("creating {name}")),
            Cluster::Tansu(b) => {
                b.create_topic(name, partitions as u32);
                Ok(())
            }
        }
    }
}

/// One broker's figures.
struct Figures {
    bare: Run,
    /// nhid as configured by default, from its first messages processed to its last (the
    /// steady state).
    steady: Run,
    /// With the changelog written at every commit (every 100 ms), its most expensive
    /// setting: in the steady state, and from its assignment to everything committed.
    every: Run,
    nhid: Run,
    ratios: Ratios,
    paced: Paced,
}

/// Each round's rates over its bare consumer's: nhid by default in the steady state, with
/// the changelog at every commit in the steady state, and from assignment to everything
/// committed.
#[derive(Default)]
struct Ratios([Vec<f64>; 3]);

impl Ratios {
    fn push(&mut self, bare: &Run, steady: &Run, every: &Run, nhid: &Run) {
        for (ratios, run) in self.0.iter_mut().zip([steady, every, nhid]) {
            ratios.push(run.per_sec() / bare.per_sec());
        }
    }

    /// The median of each, in the order pushed.
    fn medians(&self) -> [f64; 3] {
        self.0.each_ref().map(|r| {
            let mut r = r.clone();
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
    }
}

impl std::fmt::Display for Ratios {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [steady, every, nhid] = &self.0;
        let percents = |r: &[f64]| r.iter().map(|x| format!("{:.0}%", 100.0 * x)).collect::<Vec<_>>().join(" ");
        write!(
            f,
            "steady {}; every commit, steady {}; from assignment {}",
            percents(steady),
            percents(every),
            percents(nhid)
        )
    }
}

/// A consumer's pass over the throughput workload.
struct Run {
    /// From subscribing to the first message (bare) or to the assignment (nhid).
    join: Duration,
    /// Events over `elapsed`.
    events: u64,
    /// From there to the last message counted (bare) or committed (nhid); for nhid's steady
    /// state, from its first messages processed to its last.
    elapsed: Duration,
    /// Cores kept busy by this process and the broker's, and the broker's of them (when it
    /// runs apart), from the first message (bare) or commit (nhid) to the end; `None`
    /// without /proc.
    cores: Option<(f64, f64)>,
    /// Time on a core an event by thread role over the same span (see [`on_cpu`]).
    per_event: Option<BTreeMap<&'static str, Duration>>,
    /// Cores the whole machine left idle over the same span (`/proc/stat`): whether the run
    /// was bound by CPU (none idle) or waited (for the broker, for data).
    idle: Option<f64>,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    /// µs of a core an event by thread role, and all told.
    fn per_event(&self) -> String {
        let Some(roles) = &self.per_event else { return "CPU by thread not measured".into() };
        let us = |d: &Duration| d.as_secs_f64() * 1e6;
        let each: Vec<String> = roles.iter().map(|(role, d)| format!("{role} {:.2}", us(d))).collect();
        let idle = self.idle.map_or(String::new(), |cores| format!("; the machine left {cores:.2} cores idle"));
        format!("µs of a core an event: {}; all {:.2}{idle}", each.join(", "), roles.values().map(us).sum::<f64>())
    }

    fn cores(&self) -> String {
        match self.cores {
            None => "CPU not measured".into(),
            Some((all, 0.0)) => format!("{all:.1} cores busy"),
            Some((all, broker)) => format!("{all:.1} cores busy, {broker:.1} of them the broker's"),
        }
    }
}

/// The run with the median rate.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
    runs.swap_remove(runs.len() / 2)
}

/// A moment, the time on a core this process's threads (by role) and the broker's had used by
/// then, and the machine's idle time.
#[derive(Clone)]
struct Sample {
    at: Instant,
    threads: Option<BTreeMap<&'static str, Duration>>,
    idle: Option<Duration>,
}

impl Sample {
    fn now(broker: Option<u32>) -> Sample {
        Sample { at: Instant::now(), threads: on_cpu(broker), idle: idle_time() }
    }

    /// Cores left idle on average from `self` to `until`.
    fn idle_until(&self, until: &Sample) -> Option<f64> {
        Some(until.idle?.checked_sub(self.idle?)?.as_secs_f64() / (until.at - self.at).as_secs_f64())
    }

    /// Time on a core by thread role from `self` to `until`.
    fn spent_until(&self, until: &Sample) -> Option<BTreeMap<&'static str, Duration>> {
        let (before, after) = (self.threads.as_ref()?, until.threads.as_ref()?);
        // A thread that ended in between takes its time with it: none rather than less.
        let spent =
            after.iter().map(|(role, t)| (*role, t.saturating_sub(before.get(role).copied().unwrap_or_default())));
        Some(spent.collect())
    }

    /// [`Sample::spent_until`], divided by `events`.
    fn per_event_until(&self, until: &Sample, events: u64) -> Option<BTreeMap<&'static str, Duration>> {
        let events = u32::try_from(events).ok().filter(|&n| n > 0)?;
        Some(self.spent_until(until)?.into_iter().map(|(role, spent)| (role, spent / events)).collect())
    }

    /// Cores busy on average from `self` to `until`: all told, and the broker's of them.
    fn cores_until(&self, until: &Sample) -> Option<(f64, f64)> {
        let spent = self.spent_until(until)?;
        let secs = (until.at - self.at).as_secs_f64();
        let broker = spent.get("broker").copied().unwrap_or_default().as_secs_f64() / secs;
        Some((spent.values().sum::<Duration>().as_secs_f64() / secs, broker))
    }
}

/// Time on a core so far of this process's threads by role, and of the broker's process (when
/// it is another): the scheduler's own account in nanoseconds (`/proc/<pid>/task/<tid>/
/// schedstat`, Linux), exact where the tick counts of `/proc/<pid>/stat` miss threads that
/// run in short bursts, as librdkafka's do. The roles: nhid's workers, the
/// runtime's consumer thread (named so by [`Running::start`]), librdkafka's threads (every
/// client's: nhid's consumer and producer, the watcher of the commits; the mock cluster's
/// broker), the rest of this process, and the broker.
fn on_cpu(broker: Option<u32>) -> Option<BTreeMap<&'static str, Duration>> {
    let mut by_role = BTreeMap::new();
    let processes = std::iter::once((String::from("self"), true)).chain(broker.map(|pid| (pid.to_string(), false)));
    for (pid, ours) in processes {
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            // A thread that ended since the directory was listed has no file left: skipped.
            let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
            let Some(ns) = stat.split_whitespace().next().and_then(|ns| ns.parse().ok()) else { continue };
            let role = match comm.trim_end() {
                _ if !ours => "broker",
                c if c.starts_with("nhid-worker") => "workers",
                "nhid-consumer" => "consumer thread",
                c if c.starts_with("rdk:") => "librdkafka",
                _ => "other",
            };
            *by_role.entry(role).or_default() += Duration::from_nanos(ns);
        }
    }
    Some(by_role)
}

/// Idle and I/O-wait time of all the machine's cores so far, from `/proc/stat` (Linux).
fn idle_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // "cpu  user nice system idle iowait ...", in USER_HZ (100 per second).
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
    Some(Duration::from_millis((fields.get(3)? + fields.get(4)?) * 10))
}

struct Paced {
    report: Report,
    /// Events sent, live simulator's and background.
    sent: u64,
    /// Over how long they were sent.
    over: Duration,
}

fn measure(cluster: &Cluster, workload: &[(String, Vec<u8>)]) -> anyhow::Result<Figures> {
    let brokers = cluster.brokers();
    let defaults = KafkaConfig::default();
    for (topic, partitions) in [
        (AUDIT, PARTITIONS),
        (PACED, PARTITIONS),
        (UNKEYED, PARTITIONS),
        (defaults.events_topic.as_str(), PARTITIONS),
        (defaults.alerts_topic.as_str(), 2),
        (defaults.actions_topic.as_str(), 2),
        (defaults.incidents_topic.as_str(), 2),
        (defaults.dead_letter_topic.as_str(), 1),
        (defaults.changelog_topic.as_str(), PARTITIONS),
    ] {
        cluster.create_topic(topic, partitions)?;
    }

    let t = Instant::now();
    let ends = produce_all(&brokers, AUDIT, workload, false)?;
    println!("produced {} events in {:.1} s (lz4), none dropped", workload.len(), secs(t.elapsed()));

    // Rounds alternate the two so that a neighbour's burst on the shared machine lands on
    // both alike; the medians go in the table. Each ratio is taken within its round, against
    // the bare consumer run just before, and the table has their median: the machine's speed
    // drifts from round to round (the bare consumer's rate by a fifth), and a ratio of two
    // medians would pair runs minutes apart.
    let (mut bares, mut nhids, mut steadies, mut every) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ratios = Ratios::default();
    for round in 1..=ROUNDS {
        let bare = bare(&brokers, &format!("bench-bare-{round}"), &ends, cluster.pid())?;
        println!(
            "round {round}: bare consumer {} events/s ({:.2} s from the first message, {}; {:.2} s to join and fetch it)\n  \
             {}",
            thousands(bare.per_sec()),
            secs(bare.elapsed),
            bare.cores(),
            secs(bare.join),
            bare.per_event()
        );
        bares.push(bare);
        let (_, steady, _, _) =
            nhid(&brokers, &format!("bench-nhid-{round}"), &ends, cluster.pid(), Changelog::Default)?;
        println!(
            "round {round}: nhid {} events/s first to last processed ({:.2} s, {})\n  {}",
            thousands(steady.per_sec()),
            secs(steady.elapsed),
            steady.cores(),
            steady.per_event()
        );
        steadies.push(steady);
        let (nhid, steady, report, first_commit) =
            nhid(&brokers, &format!("bench-every-{round}"), &ends, cluster.pid(), Changelog::EveryCommit)?;
        let nhid = nhid.context("a run with the changelog at every commit waits for its commits")?;
        println!(
            "round {round}: nhid, the changelog at every commit, {} events/s ({:.2} s from assignment to everything \
             committed, {}; {:.2} s to join, {:.2} s to the first commit; {} alerts); {} events/s first to last \
             processed\n  {}",
            thousands(nhid.per_sec()),
            secs(nhid.elapsed),
            nhid.cores(),
            secs(nhid.join),
            secs(first_commit.unwrap_or_default()),
            report.stats.alerts.values().sum::<u64>(),
            thousands(steady.per_sec()),
            steady.per_event()
        );
        ratios.push(&bares[round - 1], &steadies[round - 1], &steady, &nhid);
        nhids.push(nhid);
        every.push(steady);
    }
    let (bare, nhid, steady, every) = (median(bares), median(nhids), median(steadies), median(every));
    println!("ratios to the bare consumer each round: {ratios}");
    println!(
        "the changelog written at every 100 ms commit rather than every 30 s costs {:.1}% of nhid's steady rate here",
        100.0 * (1.0 - every.per_sec() / steady.per_sec()),
    );

    // Tansu's watermarks cannot say where the re-keyed topic ends (see `Ends`).
    if let Cluster::Mock(_) = cluster {
        let events = &workload[..REKEYED_EVENTS];
        let (both, rekeying) = rekeyed(&brokers, "bench-rekeyed", events, cluster.pid())?;
        println!(
            "re-keyed: the first {} events without keys, both stages in one process {} events/s ({:.2} s from \
             assignment to everything committed, {}); re-keying alone reached the end in {:.2} s ({} events/s)",
            thousands(REKEYED_EVENTS as f64),
            thousands(both.per_sec()),
            secs(both.elapsed),
            both.cores(),
            secs(rekeying.elapsed),
            thousands(rekeying.per_sec()),
        );
    }

    let paced = paced(&brokers, "bench-paced", workload)?;
    let l = &paced.report.latency;
    println!(
        "latency at {:.0} events/s for {:.0} s: p50 {} ms, p99 {} ms, max {} ms over {} alerts ({})",
        paced.sent as f64 / paced.over.as_secs_f64(),
        secs(paced.over),
        l.value_at_quantile(0.5),
        l.value_at_quantile(0.99),
        l.max(),
        l.len(),
        alerts_by_detector(&paced.report)
    );
    Ok(Figures { bare, nhid, steady, every, ratios, paced })
}

/// The first [`EVENTS`] events of the pipeline benchmark's workload, with their principal
/// ids (the Kafka key).
fn workload() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut lines = FirstLines { limit: EVENTS, lines: Vec::with_capacity(EVENTS), partial: Vec::new() };
    // One day of it holds 916,399 events: the second one makes up the million.
    let cfg = SimConfig { seed: 7, principals: 200, days: 2, ..SimConfig::default() };
    if let Err(e) = nhid_sim::run(&cfg, &mut lines)
        && lines.lines.len() < EVENTS
    {
        return Err(e).context("simulating the workload");
    }
    lines.lines.truncate(EVENTS);
    ensure!(lines.lines.len() == EVENTS, "the simulation gave {} events of {EVENTS}", lines.lines.len());
    lines
        .lines
        .into_iter()
        .map(|l| {
            let text = std::str::from_utf8(&l).context("simulated events are UTF-8")?;
            let key = nhid_decode::native::decode(text).map_err(|e| anyhow!("a simulated event: {e}"))?.principal.id;
            Ok((key.to_string(), l))
        })
        .collect()
}

/// Keeps the first `limit` lines written, then refuses more: the simulator stops there
/// instead of generating the rest of the day.
struct FirstLines {
    limit: usize,
    lines: Vec<Vec<u8>>,
    partial: Vec<u8>,
}

impl Write for FirstLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.lines.len() >= self.limit {
            return Err(io::Error::other("enough events"));
        }
        for piece in buf.split_inclusive(|&b| b == b'\n') {
            match piece.strip_suffix(b"\n") {
                Some(end) => {
                    self.partial.extend_from_slice(end);
                    self.lines.push(std::mem::take(&mut self.partial));
                }
                None => self.partial.extend_from_slice(piece),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A producer as an audit pipeline would configure one: lz4, librdkafka's 5 ms linger.
fn producer(brokers: &str) -> anyhow::Result<BaseProducer<Ends>> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("compression.type", "lz4")
        .create_with_context(Ends::default())
        .context("creating the producer")
}

/// Where each partition ends, from the delivery reports: the offsets the broker gave the
/// messages. Tansu 0.6's ListOffsets answers short of the end (by about the last batch),
/// so the watermarks cannot say when a consumer has read everything.
#[derive(Default)]
struct Ends {
    ends: Mutex<BTreeMap<i32, i64>>,
    failed: Mutex<Option<String>>,
}

impl ClientContext for Ends {}

impl ProducerContext for Ends {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
                let end = ends.entry(m.partition()).or_default();
                *end = (*end).max(m.offset() + 1);
            }
            Err((e, _)) => {
                self.failed.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Enqueues one message, keyed, or without a key to the partition given (round robin);
/// waits for room when the producer's queue is full.
fn send(producer: &BaseProducer<Ends>, topic: &str, key: Result<&str, i32>, payload: &[u8]) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).payload(payload);
    record = match key {
        Ok(key) => record.key(key),
        Err(partition) => record.partition(partition),
    };
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

/// Waits for every message to be acknowledged and returns each partition's end offset, after
/// checking that the partitions hold `sent` messages from offset 0 between them: nothing was
/// dropped (the mock cluster drops a partition's oldest batches past 5 MB).
fn flushed(producer: &BaseProducer<Ends>, topic: &str, sent: usize) -> anyhow::Result<Vec<i64>> {
    producer.flush(WAIT).with_context(|| format!("waiting for the broker to acknowledge {topic}"))?;
    let ctx = producer.context();
    if let Some(e) = ctx.failed.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
        bail!("a message to {topic} was not delivered: {e}");
    }
    let ends: Vec<i64> = {
        let ends = ctx.ends.lock().unwrap_or_else(PoisonError::into_inner);
        (0..PARTITIONS).map(|p| ends.get(&p).copied().unwrap_or(0)).collect()
    };
    let total: i64 = ends.iter().sum();
    ensure!(total == sent as i64, "{topic} ends at offsets {ends:?} ({total} messages); {sent} were sent");
    for p in 0..PARTITIONS {
        let (low, _) = producer.client().fetch_watermarks(topic, p, Duration::from_secs(10))?;
        ensure!(low == 0, "{topic}[{p}] starts at {low}: the broker dropped messages");
    }
    Ok(ends)
}

/// Produces the events, keyed by principal, or `unkeyed` round robin over the partitions
/// (the sticky partitioner's runs would pass the mock's 5 MB in some).
fn produce_all(brokers: &str, topic: &str, events: &[(String, Vec<u8>)], unkeyed: bool) -> anyhow::Result<Vec<i64>> {
    let producer = producer(brokers)?;
    for (i, (key, payload)) in events.iter().enumerate() {
        let key = if unkeyed { Err(i as i32 % PARTITIONS) } else { Ok(key.as_str()) };
        send(&producer, topic, key, payload)?;
        producer.poll(Duration::ZERO);
    }
    flushed(&producer, topic, events.len())
}

/// The properties nhid's own consumer gets (`nhid_kafka::run`), so that the two differ only in
/// what they do with the messages. librdkafka's 1 s `fetch.queue.backoff.ms` would stall
/// the bare consumer too whenever its fetcher got 100,000 messages ahead.
fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.queue.backoff.ms", "50")
        .set("enable.auto.commit", "false");
    c
}

/// The raw ceiling: a group consumer that only counts messages (and notes each partition's
/// last offset, to check that it read what was produced).
fn bare(brokers: &str, group: &str, ends: &[i64], broker: Option<u32>) -> anyhow::Result<Run> {
    let consumer: BaseConsumer = consumer_config(brokers, group).create()?;
    consumer.subscribe(&[AUDIT])?;
    let start = Instant::now();
    let mut first = None;
    let mut n = 0;
    let mut read = vec![0; ends.len()];
    while n < EVENTS {
        ensure!(start.elapsed() < WAIT, "the bare consumer read {n} of {EVENTS} messages in {WAIT:?}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(|| Sample::now(broker));
                n += 1;
                read[m.partition() as usize] = m.offset() + 1;
            }
            Some(Err(e)) => eprintln!("bare consumer: {e}"),
            None => {}
        }
    }
    let end = Sample::now(broker);
    ensure!(read == ends, "the bare consumer read up to {read:?}, the partitions end at {ends:?}");
    let first = first.unwrap_or_else(|| end.clone());
    let (cores, per_event, idle) =
        (first.cores_until(&end), first.per_event_until(&end, EVENTS as u64), first.idle_until(&end));
    Ok(Run { join: first.at - start, events: EVENTS as u64, elapsed: end.at - first.at, cores, per_event, idle })
}

fn kafka_config(brokers: &str, topic: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.into(),
        topics: vec![topic.into()],
        group: group.into(),
        commit_interval_ms: COMMIT_INTERVAL_MS,
        // The changelog at every commit: its most expensive setting, and the end of the
        // run (everything committed) is not held back by its 30 s default.
        changelog_interval_ms: COMMIT_INTERVAL_MS,
        ..KafkaConfig::default()
    }
}

fn engine() -> anyhow::Result<Engine> {
    Config::default().engine().map_err(|e| anyhow!("building the engine: {}", e.join("; ")))
}

/// The runtime in a thread, stopped as SIGTERM would stop it.
struct Running {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Result<Report, nhid_kafka::Error>>,
    started: Instant,
    /// What it counts, as its HTTP endpoint would serve them.
    metrics: Arc<Metrics>,
}

impl Running {
    fn start(engine: Engine, cfg: KafkaConfig) -> Running {
        *ASSIGNED.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let started = Instant::now();
        let metrics = Arc::new(Metrics::default());
        let counted = metrics.clone();
        // Named as `nhid run`'s main thread would be seen, so that a profile
        // (`perf report --sort comm`) tells it from the benchmark's own threads.
        let handle = thread::Builder::new()
            .name("nhid-consumer".into())
            .spawn(move || nhid_kafka::run_observed(Arc::new(engine), &cfg, flag, counted, Arc::default()))
            .expect("spawning the runtime's thread");
        Running { stop, handle, started, metrics }
    }

    /// Watches how many messages the workers have processed (`nhid_processing_seconds`'
    /// count, which each worker adds to once a round of up to 256) until it reaches `total`:
    /// when the first were processed, with how many by then, and when the last were. `None`
    /// if `give_up` is set first, the runtime stops or [`WAIT`] passes.
    fn watch_processed(
        &self,
        total: u64,
        broker: Option<u32>,
        give_up: &AtomicBool,
    ) -> Option<((Sample, u64), Sample)> {
        let mut first = None;
        while !give_up.load(Ordering::Relaxed) && !self.handle.is_finished() && self.started.elapsed() < WAIT {
            let n = self.metrics.processing.get_sample_count();
            if first.is_none() && n > 0 {
                first = Some((Sample::now(broker), n));
            }
            if n >= total {
                return first.map(|first| (first, Sample::now(broker)));
            }
            thread::sleep(Duration::from_millis(1));
        }
        None
    }

    /// When the runtime was first given its partitions.
    fn assigned(&self) -> Option<Instant> {
        *ASSIGNED.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_assigned(&self) -> anyhow::Result<Instant> {
        loop {
            if let Some(t) = self.assigned() {
                return Ok(t);
            }
            ensure!(!self.handle.is_finished(), "the runtime stopped before it was assigned partitions");
            ensure!(self.started.elapsed() < WAIT, "the runtime was not assigned partitions in {WAIT:?}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the group has committed `ends`; returns when it first committed anything,
    /// with how many messages that commit covered, and when it reached the end (with the CPU
    /// used by then by this process and `broker`).
    fn wait_committed(
        &self,
        committed: &Committed,
        ends: &[i64],
        broker: Option<u32>,
    ) -> anyhow::Result<((Sample, u64), Sample)> {
        let mut first = None;
        loop {
            let c = committed.read()?;
            if first.is_none() && c.iter().any(Option::is_some) {
                first = Some((Sample::now(broker), c.iter().flatten().sum::<i64>() as u64));
            }
            if c.iter().zip(ends).all(|(c, &end)| c.unwrap_or(0) >= end) {
                let now = Sample::now(broker);
                let first = first.unwrap_or_else(|| (now.clone(), ends.iter().sum::<i64>() as u64));
                return Ok((first, now));
            }
            ensure!(!self.handle.is_finished(), "the runtime stopped with {c:?} of {ends:?} committed");
            ensure!(self.started.elapsed() < WAIT, "{c:?} of {ends:?} committed after {WAIT:?}");
            thread::sleep(COMMITTED_POLL);
        }
    }

    fn stop(self) -> anyhow::Result<Report> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.handle.join().map_err(|_| anyhow!("the runtime panicked"))??)
    }
}

/// Reads a group's committed offsets without joining it (not subscribed), so the runtime's
/// group never rebalances because it is watched.
struct Committed {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl Committed {
    fn new(brokers: &str, group: &str, topic: &str) -> anyhow::Result<Committed> {
        let consumer = ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create()?;
        let mut partitions = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            partitions.add_partition(topic, p);
        }
        Ok(Committed { consumer, partitions })
    }

    fn read(&self) -> anyhow::Result<Vec<Option<i64>>> {
        let tpl = self.consumer.committed_offsets(self.partitions.clone(), Duration::from_secs(10))?;
        Ok(tpl
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .collect())
    }
}

/// How often nhid writes its changelog in a throughput run.
#[derive(Clone, Copy, PartialEq)]
enum Changelog {
    /// As configured by default (every 30 s, commits every second): none is written after
    /// the first in a run this short, and commits never pass the changelog, so the run ends
    /// when the last message is processed, and only the steady state is timed.
    Default,
    /// At every commit (every 100 ms): its most expensive setting, and a run whose commits
    /// reach the end, to be timed from the assignment too.
    EveryCommit,
}

/// nhid over the throughput workload: in the steady state (from its first messages
/// processed to its last, as the bare consumer is timed from its first message to its last:
/// neither then pays the group join, the first fetch or the last commit), and with the
/// changelog at every commit, from its assignment to everything committed, and the time to
/// its first commit; also the report.
fn nhid(
    brokers: &str,
    group: &str,
    ends: &[i64],
    broker: Option<u32>,
    changelog: Changelog,
) -> anyhow::Result<(Option<Run>, Run, Report, Option<Duration>)> {
    let committed = Committed::new(brokers, group, AUDIT)?;
    let cfg = match changelog {
        Changelog::EveryCommit => kafka_config(brokers, AUDIT, group),
        Changelog::Default => KafkaConfig {
            brokers: brokers.into(),
            topics: vec![AUDIT.into()],
            group: group.into(),
            ..KafkaConfig::default()
        },
    };
    let running = Running::start(engine()?, cfg);
    let give_up = AtomicBool::new(false);
    let (done, processed) = thread::scope(|s| {
        let watcher = s.spawn(|| running.watch_processed(EVENTS as u64, broker, &give_up));
        let done = (changelog == Changelog::EveryCommit).then(|| running.wait_committed(&committed, ends, broker));
        if done.is_some() {
            give_up.store(true, Ordering::Relaxed);
        }
        (done, watcher.join().ok().flatten())
    });
    let done = done.transpose()?;
    let ((first, before), last) =
        processed.context("the workers' count of messages processed never reached the end")?;
    let start = running.started;
    let assigned = running.assigned().context("the runtime never logged its assignment")?;
    let report = running.stop()?;
    ensure!(report.stats.messages == EVENTS as u64, "nhid processed {} of {EVENTS} messages", report.stats.messages);
    let run = done.as_ref().map(|((first_commit, _), done)| Run {
        join: assigned - start,
        events: EVENTS as u64,
        elapsed: done.at - assigned,
        cores: first_commit.cores_until(done),
        per_event: None,
        idle: None,
    });
    let events = EVENTS as u64 - before;
    let steady = Run {
        join: first.at - start,
        events,
        elapsed: last.at - first.at,
        cores: first.cores_until(&last),
        per_event: first.per_event_until(&last, events),
        idle: first.idle_until(&last),
    };
    Ok((run, steady, report, done.map(|((first_commit, _), _)| first_commit.at - start)))
}

/// The throughput workload produced without keys, re-keyed (`kafka.rekey_topics`) and
/// detected in one process: from the assignment to both groups' commits at the end, and to
/// re-keying's alone.
fn rekeyed(
    brokers: &str,
    group: &str,
    workload: &[(String, Vec<u8>)],
    broker: Option<u32>,
) -> anyhow::Result<(Run, Run)> {
    let ends = produce_all(brokers, UNKEYED, workload, true)?;
    let mut cfg = kafka_config(brokers, UNKEYED, group);
    cfg.rekey_topics = vec![UNKEYED.into()];
    let events_topic = cfg.events_topic.clone();
    let running = Running::start(engine()?, cfg);
    let ((first_commit, _), rekeyed) =
        running.wait_committed(&Committed::new(brokers, &format!("{group}.rekey"), UNKEYED)?, &ends, broker)?;
    let client: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let mut event_ends = Vec::new();
    for p in 0..PARTITIONS {
        let (low, high) = client.fetch_watermarks(&events_topic, p, Duration::from_secs(10))?;
        ensure!(low == 0, "{events_topic}[{p}] starts at {low}: the broker dropped messages");
        event_ends.push(high);
    }
    let (_, done) = running.wait_committed(&Committed::new(brokers, group, &events_topic)?, &event_ends, broker)?;
    let assigned = running.assigned().context("the runtime never logged its assignment")?;
    let start = running.started;
    let report = running.stop()?;
    // Messages twice (re-keying's, then detection's of the events topic); events detected once.
    let n = workload.len() as u64;
    ensure!(
        report.stats.messages == 2 * n && report.stats.events == n,
        "nhid re-keyed and detected {} messages and {} events of {n}",
        report.stats.messages,
        report.stats.events,
    );
    let (events, cores) = (n, first_commit.cores_until(&done));
    let both = Run { join: assigned - start, events, elapsed: done.at - assigned, cores, per_event: None, idle: None };
    let rekeying =
        Run { join: Duration::ZERO, events, elapsed: rekeyed.at - assigned, cores: None, per_event: None, idle: None };
    Ok((both, rekeying))
}

/// Latency below saturation: see the module documentation.
fn paced(brokers: &str, group: &str, workload: &[(String, Vec<u8>)]) -> anyhow::Result<Paced> {
    let t = Instant::now();
    let engine = engine()?;
    let now = wall_ms();
    let mut live = Live::new(&LiveConfig { seed: 7, attack_every: SECOND, ..LiveConfig::default() }, now);
    let n = live.warm(&engine)?;
    let mut background = Background::new(workload, (WARM_UP + PACED_RATE * PACED_FOR.as_secs()) as usize)?;
    println!("latency: engine warmed with {n} events of live history in {:.1} s", secs(t.elapsed()));

    let committed = Committed::new(brokers, group, PACED)?;
    let running = Running::start(engine, kafka_config(brokers, PACED, group));
    running.wait_assigned()?;
    // Start-up is not what the figure is about: a few background events and a dead letter
    // are committed before the clock starts, so the consumer is fetching and the producer
    // has its id.
    let producer = producer(brokers)?;
    let mut sent = 0u64;
    while sent < WARM_UP {
        let (key, payload) = background.next(wall_ms()).context("no background events left")?;
        send(&producer, PACED, Ok(&key), &payload)?;
        sent += 1;
    }
    send(&producer, PACED, Ok("bench-warm-up"), b"not an audit event")?;
    sent += 1;
    running.wait_committed(&committed, &flushed(&producer, PACED, sent as usize)?, None)?;
    // Live event time runs with the wall clock from here, from where the history ended.
    let shift = wall_ms() - now;
    let begin = Instant::now();
    let warm = sent;
    while begin.elapsed() < PACED_FOR {
        let mut failed = None;
        live.advance(wall_ms() - shift, &mut |event, principal| {
            if let Err(e) = send(&producer, PACED, Ok(principal), event) {
                failed.get_or_insert(e);
            }
            sent += 1;
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let due = warm + (begin.elapsed().as_secs_f64() * PACED_RATE as f64) as u64;
        while sent < due {
            let Some((key, payload)) = background.next(wall_ms()) else { break };
            send(&producer, PACED, Ok(&key), &payload)?;
            sent += 1;
        }
        producer.poll(Duration::ZERO);
        thread::sleep(Duration::from_millis(2));
    }
    let over = begin.elapsed();
    let ends = flushed(&producer, PACED, sent as usize)?;
    // Every alert is acknowledged once its input is committed.
    running.wait_committed(&committed, &ends, None)?;
    let report = running.stop()?;
    Ok(Paced { report, sent: sent - warm, over })
}

/// Benign traffic to fill the paced rate: workload events under other principal names,
/// their times moved to the moment they are sent, some turned into privilege changes.
struct Background {
    events: Vec<Value>,
    next: usize,
}

impl Background {
    fn new(workload: &[(String, Vec<u8>)], n: usize) -> anyhow::Result<Background> {
        let events = workload[..n.min(workload.len())]
            .iter()
            .map(|(_, l)| serde_json::from_slice(l))
            .collect::<Result<_, _>>()
            .context("parsing workload events")?;
        Ok(Background { events, next: 0 })
    }

    /// The next event (key, payload), sent at `now`; `None` when all are sent.
    fn next(&mut self, now: Millis) -> Option<(String, Vec<u8>)> {
        let i = self.next;
        let v = self.events.get_mut(i)?;
        self.next += 1;
        // Every time in the event moves by the same amount, so credential ages and expiries
        // stay what the simulator made them.
        let shift = now - v["time"].as_str().and_then(parse_rfc3339)?;
        v["time"] = format_rfc3339(now).into();
        for field in ["issued_at", "expires_at"] {
            if let Some(t) = v["credential"][field].as_str().and_then(parse_rfc3339) {
                v["credential"][field] = format_rfc3339(t + shift).into();
            }
        }
        let id = v["principal"]["id"].as_str()?;
        let id = if i % PRIVILEGE_CHANGE_EVERY == PRIVILEGE_CHANGE_EVERY - 1 {
            v["principal"]["type"] = "service_account".into();
            v["action"] = "iam:CreateAccessKey".into();
            v["service"] = "iam".into();
            format!("bg-deployer-{i}")
        } else {
            format!("bg-{id}")
        };
        v["principal"]["id"] = id.clone().into();
        serde_json::to_vec(v).ok().map(|payload| (id, payload))
    }
}

/// Alerts of a run by detector, `detector n, ...`.
fn alerts_by_detector(report: &Report) -> String {
    let mut detectors: BTreeMap<&str, u64> = BTreeMap::new();
    for ((detector, _), n) in &report.stats.alerts {
        *detectors.entry(detector).or_default() += n;
    }
    detectors.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// When the runtime under measurement logged "partitions assigned": where its clock starts.
static ASSIGNED: Mutex<Option<Instant>> = Mutex::new(None);

/// Catches the runtime's assignment log; the runtime has no other way of saying when it
/// started reading, and the group join (seconds on the mock cluster, which delays a new
/// group's first rebalance by 3 s) is not what is measured.
struct Assignments;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Assignments {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
                if field.name() == "message" && format!("{value:?}") == "partitions assigned" {
                    self.0 = true;
                }
            }
        }
        let mut m = Message(false);
        event.record(&mut m);
        if m.0 {
            ASSIGNED.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(Instant::now);
        }
    }
}

/// Warnings and errors on stderr (`RUST_LOG` overrides), and the assignment catcher.
fn init_logs() {
    let shown = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(io::stderr).with_filter(shown))
        .with(Assignments.with_filter(Targets::new().with_target("nhid_kafka", tracing::Level::INFO)))
        .init();
}

fn wall_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `1234567.8` as `1,234,568`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
