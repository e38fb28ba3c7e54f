//! Re-keying beside a quiet source partition, on librdkafka's mock cluster: a backlog on
//! seven partitions of an unkeyed topic, and an eighth that gets one message every 300 ms,
//! its events the earliest (so that pacing, which reads the partition furthest behind in
//! event time first, always looks at it first). Timed from the start of the re-keying stage
//! (group join included) to its commits reaching the backlog's end.
//!
//! `cargo bench --bench rekey_quiet_source` (under a minute). Pacing once waited a second
//! for an empty partition after each of its messages, which held the backlog back most of
//! the time; a partition at its end is now read around at once (docs/performance.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure};
use nhid::config::Config;
use nhid_kafka::Stage;
use rdkafka::mocking::MockCluster;

// The tests' Kafka helpers: produce, committed offsets, the runtime in a thread.
#[allow(dead_code)]
#[path = "../tests/common/kafka.rs"]
mod kafka;

/// Backlog messages, round robin over partitions 0 to 6.
const BACKLOG: usize = 70_000;
const QUIET_EVERY: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(400);

fn main() -> anyhow::Result<()> {
    let cluster = MockCluster::new(1)?;
    for (topic, partitions) in [
        ("audit", 8),
        ("nhid.events", 4),
        ("nhid.alerts", 2),
        ("nhid.actions", 2),
        ("nhid.incidents", 2),
        ("nhid.dead-letter", 1),
    ] {
        cluster.create_topic(topic, partitions, 1)?;
    }
    let brokers = cluster.bootstrap_servers();
    let mut bytes = Vec::new();
    nhid_sim::run(&nhid_sim::SimConfig { seed: 7, principals: 20, days: 2, ..Default::default() }, &mut bytes)?;
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).take(BACKLOG).collect();
    ensure!(lines.len() == BACKLOG, "{} events simulated", lines.len());
    let backlog: Vec<(i32, &[u8])> = lines.iter().enumerate().map(|(i, l)| ((i % 7) as i32, *l)).collect();
    kafka::produce_partitioned(&brokers, "audit", &backlog);

    let stop = Arc::new(AtomicBool::new(false));
    let quiet = {
        let (brokers, stop, first) = (brokers.clone(), stop.clone(), lines[0].to_vec());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                kafka::produce_partitioned(&brokers, "audit", &[(7, first.as_slice())]);
                std::thread::sleep(QUIET_EVERY);
            }
        })
    };
    let mut config = Config::default();
    config.kafka = kafka::config(&brokers, &["audit"], "bench");
    config.kafka.rekey_topics = vec!["audit".into()];
    config.kafka.stage = Stage::Rekey;
    let engine = config.engine().map_err(|e| anyhow!("building the engine: {}", e.join("; ")))?;
    let started = Instant::now();
    let running = kafka::Running::start(engine, config.kafka.clone());
    loop {
        let committed = kafka::committed(&brokers, "bench.rekey", "audit", 8);
        let done: i64 = committed[..7].iter().map(|o| o.unwrap_or(0)).sum();
        if done >= BACKLOG as i64 {
            break;
        }
        ensure!(started.elapsed() < WAIT, "{done} of {BACKLOG} re-keyed after {WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    quiet.join().map_err(|_| anyhow!("the quiet producer panicked"))?;
    running.stop()?;
    println!(
        "{BACKLOG} backlog messages re-keyed in {:.1} s ({:.0}/s, group join included) beside a partition getting one \
         every {} ms",
        took.as_secs_f64(),
        BACKLOG as f64 / took.as_secs_f64(),
        QUIET_EVERY.as_millis()
    );
    Ok(())
}
