//! `nhid-sim soak`: `nhid run` as a child process on a real broker for a long time, fed
//! simulated traffic at a steady rate with faults mixed in (garbage, far-future times,
//! oversized messages and fields). It samples the process's memory (`/proc/PID/status`) and
//! its consumer lag (`/metrics`) over time, and at the end checks that every fault was
//! dead-lettered with its reason and that every alert id of a clean `nhid replay` of the same
//! traffic arrived on the alerts topic. Not part of CI: docs/testing.md says how to run it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use nhid_model::time::{DAY, MINUTE, format_rfc3339, wall_clock};
use nhid_sim::{Estate, SimConfig};

use crate::simulate::parse_estate;

#[derive(Args)]
pub struct SoakArgs {
    /// A Kafka broker (`host:port`); without it, a Tansu broker is started on a free loopback
    /// port for the soak and stopped after it (`NHID_TANSU`, `tansu` on PATH or in ~/.cargo/bin).
    #[arg(long)]
    broker: Option<String>,
    /// How long traffic is produced: `3600`, `90s`, `5m`, `1h`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    duration: Duration,
    /// Simulated events per second, steady.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds between injected faults, in turn: a garbage line (non-UTF-8, not a format,
    /// broken JSON), an event dated far in the future, a message over `max_event_bytes`, an
    /// event with a field over the 4 KiB cap.
    #[arg(long, default_value_t = 10)]
    fault_every: u64,
    /// Seconds between samples of memory and lag.
    #[arg(long, default_value_t = 60)]
    sample_every: u64,
    /// Simulated identities, humans included. Twenty make about 100,000 events a simulated
    /// day, so an hour at 200 events/s covers a week: a day of learning, then detection.
    #[arg(long, default_value_t = 20)]
    principals: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value = "classic", value_parser = parse_estate)]
    estate: Estate,
    /// The `nhid` binary to soak (default: the one beside this binary).
    #[arg(long)]
    nhid: Option<PathBuf>,
    /// Where the traffic, configuration, logs and outputs are kept (default: a new directory
    /// under the system's temporary directory, removed when the soak passes).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// How long to wait, after the traffic stops, for nhid to catch up.
    #[arg(long, default_value_t = 300)]
    drain_secs: u64,
}

/// `--duration`: seconds, or a number with `s`, `m` or `h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.char_indices().last() {
        Some((i, c @ ('s' | 'm' | 'h'))) => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: u64 = number.parse().map_err(|_| "a duration: 3600, 90s, 5m or 1h".to_string())?;
    let secs = match unit {
        'h' => n.checked_mul(3600),
        'm' => n.checked_mul(60),
        _ => Some(n),
    };
    secs.filter(|&s| s > 0).map(Duration::from_secs).ok_or_else(|| "a positive duration".to_string())
}

pub fn run(args: &SoakArgs) -> ExitCode {
    match soak(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The topics of one soak: new names per run, so that a soak on a shared broker reads only
/// its own outputs.
struct Topics {
    audit: String,
    alerts: String,
    actions: String,
    incidents: String,
    dead_letter: String,
}

const AUDIT_PARTITIONS: i32 = 4;

/// What a fault is expected to become: the dead-letter reason.
#[derive(Clone, Copy)]
enum Fault {
    NotUtf8,
    NotAFormat,
    BrokenJson,
    FarFuture,
    TooLarge,
    FieldTooLong,
}

impl Fault {
    fn reason(self) -> &'static str {
        match self {
            Fault::NotUtf8 => "invalid_utf8",
            Fault::NotAFormat => "unknown_format",
            Fault::BrokenJson => "invalid_json",
            Fault::FarFuture => "implausible_time",
            Fault::TooLarge => "too_large",
            Fault::FieldTooLong => "field_too_long",
        }
    }

    /// The `n`th fault: garbage, far future, too large, a long field, in turn; the garbage
    /// rotates through its three kinds.
    fn nth(n: u64) -> Fault {
        match n % 4 {
            0 => [Fault::NotUtf8, Fault::NotAFormat, Fault::BrokenJson][(n / 4 % 3) as usize],
            1 => Fault::FarFuture,
            2 => Fault::TooLarge,
            _ => Fault::FieldTooLong,
        }
    }

    fn message(self, n: u64) -> Vec<u8> {
        let event = |time: &str, principal: &str| {
            format!(
                r#"{{"id":"soak-fault-{n}","time":"{time}","principal":{{"id":"{principal}","type":"service_account"}},"action":"s3:GetObject","service":"s3","outcome":"success"}}"#
            )
            .into_bytes()
        };
        match self {
            Fault::NotUtf8 => b"\xff\xfe soak garbage \xc3\x28".to_vec(),
            Fault::NotAFormat => format!("soak garbage {n}: not an audit event").into_bytes(),
            Fault::BrokenJson => format!(r#"{{"id":"soak-fault-{n}","principal":{{"id":"#).into_bytes(),
            // Forty days ahead: past any clock skew, a date an attacker would choose to blind
            // detection (the watermark would evict every baseline).
            Fault::FarFuture => event(&format_rfc3339(wall_clock() + 40 * DAY), "soak-far-future"),
            // Over the default `max_event_bytes` (1 MiB), under what the producer here sends.
            Fault::TooLarge => vec![b' '; 1_100_000],
            Fault::FieldTooLong => event(&format_rfc3339(wall_clock() - DAY), &"p".repeat(300_000)),
        }
    }
}

fn soak(args: &SoakArgs) -> anyhow::Result<bool> {
    let nhid = match &args.nhid {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("nhid"),
    };
    anyhow::ensure!(
        nhid.is_file(),
        "no nhid binary at {} (cargo build --release --bin nhid, or --nhid)",
        nhid.display()
    );
    let run_id = format!("{}", wall_clock());
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("nhid-soak-{run_id}")));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    // The broker: the one given, or a Tansu of our own (stopped when `_tansu` drops).
    let (brokers, _tansu) = match &args.broker {
        Some(b) => (b.clone(), None),
        None => {
            let t = Tansu::start(&dir)?;
            (t.brokers.clone(), Some(t))
        }
    };
    let topics = Topics {
        audit: format!("nhid-soak-{run_id}.audit"),
        alerts: format!("nhid-soak-{run_id}.alerts"),
        actions: format!("nhid-soak-{run_id}.actions"),
        incidents: format!("nhid-soak-{run_id}.incidents"),
        dead_letter: format!("nhid-soak-{run_id}.dead-letter"),
    };
    create_topics(&brokers, &topics)?;

    // The clean traffic, then its alert ids from a clean replay.
    let events = u64::from(args.rate) * args.duration.as_secs();
    let traffic = dir.join("traffic.jsonl");
    let days = simulate(args, events, &traffic)?;
    let config = dir.join("nhid.toml");
    let http = free_port()?;
    std::fs::write(&config, config_toml(&brokers, &topics, http))?;
    let started = Instant::now();
    let clean = replay(&nhid, &traffic, &config, &dir)?;
    println!(
        "soak: {events} simulated events ({} principals, seed {}, {days:.1} days of event time), {} alerts in a clean nhid replay ({:.1} s)",
        args.principals,
        args.seed,
        clean.len(),
        started.elapsed().as_secs_f64()
    );

    let log = dir.join("nhid-run.log");
    let mut child = Command::new(&nhid)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", nhid.display()))?;
    let pid = child.id();
    println!(
        "soak: nhid run (pid {pid}) on {brokers}, {} s at {} events/s, a fault every {} s; logs in {}",
        args.duration.as_secs(),
        args.rate,
        args.fault_every,
        log.display()
    );
    // `lag`: nhid's own gauge (librdkafka's statistics, every 5 s, against committed offsets);
    // `behind`: produced less received, now.
    println!(
        "{:>7} {:>9} {:>9} {:>9} {:>10} {:>10} {:>7}",
        "time_s", "rss_mib", "lag", "behind", "produced", "received", "faults"
    );

    let produced = produce(args, &brokers, &topics, &traffic, pid, http, &mut child);
    let produced = match produced {
        Ok(p) => p,
        Err(e) => {
            let _ = child.kill();
            return Err(e);
        }
    };

    // Catch up: every message received and the lag gone, or the drain time over.
    let drain_until = Instant::now() + Duration::from_secs(args.drain_secs);
    let total = produced.clean + produced.faults.len() as u64;
    loop {
        let m = scrape(http, &topics.audit);
        if m.received >= total && m.lag == 0 {
            break;
        }
        if Instant::now() >= drain_until || child.try_wait()?.is_some() {
            println!("soak: nhid did not catch up within {} s: {} of {total} received", args.drain_secs, m.received);
            break;
        }
        thread::sleep(Duration::from_secs(1));
    }
    // Alerts are produced before offsets commit; a little room for those in flight.
    thread::sleep(Duration::from_secs(3));
    let peak = status_kib(pid, "VmHWM").unwrap_or(0);
    let exited = child.try_wait()?;
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let status = child.wait()?;

    let alerts = read_topic(&brokers, &topics.alerts)?;
    let arrived: BTreeSet<String> = alerts
        .iter()
        .filter_map(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
        .filter_map(|v| v["alert_id"].as_str().map(str::to_owned))
        .collect();
    let dead = read_topic(&brokers, &topics.dead_letter)?;
    let mut dead_by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for m in &dead {
        *dead_by_reason.entry(m.reason.clone().unwrap_or_else(|| "(no reason header)".into())).or_default() += 1;
    }
    let mut expected_dead: BTreeMap<String, u64> = BTreeMap::new();
    for f in &produced.faults {
        *expected_dead.entry(f.reason().to_string()).or_default() += 1;
    }

    println!("\npeak rss: {:.1} MiB; nhid exited {status} after SIGTERM", peak as f64 / 1024.0);
    println!("dead letters by reason (injected → dead-lettered):");
    let reasons: BTreeSet<&String> = dead_by_reason.keys().chain(expected_dead.keys()).collect();
    for r in &reasons {
        let (want, got) = (expected_dead.get(*r).copied().unwrap_or(0), dead_by_reason.get(*r).copied().unwrap_or(0));
        println!("  {r:<18} {want:>6} → {got:<6}{}", if want == got { "" } else { "  MISMATCH" });
    }
    let missing: Vec<&String> = clean.difference(&arrived).collect();
    let extra = arrived.difference(&clean).count();
    println!(
        "alerts: {} of {} clean alert ids arrived ({} missing), {} other alert ids, {} alert messages",
        clean.len() - missing.len(),
        clean.len(),
        missing.len(),
        extra,
        alerts.len()
    );
    for id in missing.iter().take(10) {
        println!("  missing: {id}");
    }
    let ok = exited.is_none() && status.success() && missing.is_empty() && dead_by_reason == expected_dead;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    drop(_tansu);
    if ok && args.dir.is_none() {
        std::fs::remove_dir_all(&dir)?;
    } else {
        println!("soak: traffic, configuration, logs and outputs in {}", dir.display());
    }
    Ok(ok)
}

/// The soak's configuration for `nhid run` and the clean replay: defaults but for where.
fn config_toml(brokers: &str, t: &Topics, http: u16) -> String {
    format!(
        "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{}\"]\ngroup = \"nhid-soak\"\nalerts_topic = \"{}\"\n\
         actions_topic = \"{}\"\nincidents_topic = \"{}\"\ndead_letter_topic = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n\
         [log]\nformat = \"json\"\nlevel = \"info\"\n",
        t.audit, t.alerts, t.actions, t.incidents, t.dead_letter
    )
}

/// Writes `events` lines of simulated traffic, ending before now (so that no clean event is
/// implausibly far ahead): a day is simulated first to learn how many days are needed.
/// Returns about how many days of event time the traffic covers.
fn simulate(args: &SoakArgs, events: u64, path: &Path) -> anyhow::Result<f64> {
    let one_day =
        SimConfig { seed: args.seed, principals: args.principals, days: 1, estate: args.estate, ..Default::default() };
    let per_day = nhid_sim::run(&one_day, &mut std::io::sink())?.events.max(1);
    let days = u32::try_from(events.div_ceil(per_day) + 1).context("too many events for the simulation")?;
    let start = (wall_clock() - i64::from(days) * DAY - DAY) / MINUTE * MINUTE;
    let cfg = SimConfig { days, start, ..one_day };
    let mut out = Lines { out: BufWriter::new(File::create(path)?), left: events };
    match nhid_sim::run(&cfg, &mut out) {
        Err(e) if e.kind() == std::io::ErrorKind::WriteZero && out.left == 0 => {}
        Err(e) => return Err(e.into()),
        Ok(_) => bail!("the simulation gave fewer than {events} events"),
    }
    out.out.flush()?;
    Ok(events as f64 / per_day as f64)
}

/// The first `left` lines of what is written; then the writer refuses (`WriteZero`), which
/// stops the simulation where the soak has enough.
struct Lines<W> {
    out: W,
    left: u64,
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut end = buf.len();
        for (i, _) in buf.iter().enumerate().filter(|(_, b)| **b == b'\n') {
            self.left -= 1;
            if self.left == 0 {
                end = i + 1;
                break;
            }
        }
        self.out.write_all(&buf[..end])?;
        Ok(end)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Alert ids of `nhid replay` over the clean traffic, with the same configuration.
fn replay(nhid: &Path, traffic: &Path, config: &Path, dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let alerts = dir.join("replay-alerts.jsonl");
    let out = Command::new(nhid)
        .arg("replay")
        .arg(traffic)
        .arg("--config")
        .arg(config)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--actions")
        .arg(dir.join("replay-actions.jsonl"))
        .output()?;
    anyhow::ensure!(out.status.success(), "nhid replay failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut ids = BTreeSet::new();
    for line in BufReader::new(File::open(&alerts)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        ids.insert(v["alert_id"].as_str().context("an alert without alert_id")?.to_string());
    }
    Ok(ids)
}

struct Produced {
    clean: u64,
    faults: Vec<Fault>,
}

/// Produces the traffic at the steady rate, a fault every `fault_every` seconds, and prints a
/// sample of memory and lag every `sample_every` seconds.
fn produce(
    args: &SoakArgs,
    brokers: &str,
    topics: &Topics,
    traffic: &Path,
    pid: u32,
    http: u16,
    child: &mut Child,
) -> anyhow::Result<Produced> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        // The oversized fault is over nhid's `max_event_bytes`, and so over librdkafka's default.
        .set("message.max.bytes", "2000000")
        .create()
        .context("creating the soak's producer")?;
    let mut lines = BufReader::new(File::open(traffic)?).lines();
    let start = Instant::now();
    let (mut produced, mut faults) = (Produced { clean: 0, faults: Vec::new() }, 0u64);
    let mut next_sample = Duration::ZERO;
    while start.elapsed() < args.duration {
        let elapsed = start.elapsed();
        let due = (elapsed.as_secs_f64() * f64::from(args.rate)) as u64;
        while produced.clean < due {
            let Some(line) = lines.next().transpose()? else { break };
            let key = serde_json::from_str::<serde_json::Value>(&line)?["principal"]["id"].as_str().map(str::to_owned);
            send(&producer, &topics.audit, key.as_deref(), line.as_bytes());
            produced.clean += 1;
        }
        if elapsed.as_secs() >= (faults + 1) * args.fault_every {
            let fault = Fault::nth(faults);
            send(&producer, &topics.audit, None, &fault.message(faults));
            produced.faults.push(fault);
            faults += 1;
        }
        if elapsed >= next_sample {
            let m = scrape(http, &topics.audit);
            let rss = status_kib(pid, "VmRSS").map_or("gone".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
            let sent = produced.clean + produced.faults.len() as u64;
            println!(
                "{:>7} {rss:>9} {:>9} {:>9} {:>10} {:>10} {:>7}",
                elapsed.as_secs(),
                m.lag,
                sent.saturating_sub(m.received),
                sent,
                m.received,
                produced.faults.len()
            );
            next_sample += Duration::from_secs(args.sample_every.max(1));
            if let Some(status) = child.try_wait()? {
                bail!("nhid run exited during the soak: {status}");
            }
        }
        producer.poll(Duration::ZERO);
        thread::sleep(Duration::from_millis(5));
    }
    producer.flush(Duration::from_secs(60)).context("the broker did not acknowledge the soak's traffic")?;
    Ok(produced)
}

/// Sends one message, waiting for room in the producer's queue.
fn send(producer: &BaseProducer, topic: &str, key: Option<&str>, payload: &[u8]) {
    let mut record = BaseRecord::to(topic).payload(payload);
    if let Some(k) = key {
        record = record.key(k);
    }
    while let Err((_, r)) = producer.send(record) {
        record = r;
        producer.poll(Duration::from_millis(10));
    }
}

/// A line of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

#[derive(Default)]
struct Scrape {
    /// Sum of `nhid_consumer_lag_messages` over the audit topic's partitions.
    lag: i64,
    /// `nhid_messages_received_total` of the audit topic.
    received: u64,
}

/// nhid's own view from `/metrics`; zeros until it serves.
fn scrape(port: u16, audit: &str) -> Scrape {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return Scrape::default() };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut text = String::new();
    if stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err()
        || stream.read_to_string(&mut text).is_err()
    {
        return Scrape::default();
    }
    let topic = format!("topic=\"{audit}\"");
    let mut s = Scrape::default();
    for line in text.lines().filter(|l| l.contains(&topic)) {
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        if line.starts_with("nhid_consumer_lag_messages{") {
            s.lag += value.max(0.0) as i64;
        } else if line.starts_with("nhid_messages_received_total{") {
            s.received += value as u64;
        }
    }
    s
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn create_topics(brokers: &str, t: &Topics) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().context("creating an admin client")?;
    let new = [(&t.audit, AUDIT_PARTITIONS), (&t.alerts, 2), (&t.actions, 2), (&t.incidents, 2), (&t.dead_letter, 1)]
        .map(|(name, partitions)| NewTopic::new(name, partitions, TopicReplication::Fixed(1)));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in runtime.block_on(admin.create_topics(&new, &options))? {
        result.map_err(|(topic, e)| anyhow::anyhow!("creating topic {topic}: {e}"))?;
    }
    Ok(())
}

struct Got {
    payload: Vec<u8>,
    reason: Option<String>,
}

/// Every message of a topic, from the start until nothing more comes for [`QUIET`]. Not to
/// the high watermark: Tansu 0.6 can report one below what it has acknowledged (an hour's
/// soak read 26 of the 31 alerts nhid had produced and seen acknowledged).
fn read_topic(brokers: &str, topic: &str) -> anyhow::Result<Vec<Got>> {
    const QUIET: Duration = Duration::from_secs(5);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "nhid-soak-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = Instant::now();
    while last.elapsed() < QUIET {
        anyhow::ensure!(Instant::now() < deadline, "reading {topic} to its end took over 300 s");
        let Some(m) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = m?;
        last = Instant::now();
        let reason = m.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == "nhid-reason")
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        got.push(Got { payload: m.payload().unwrap_or_default().to_vec(), reason });
    }
    Ok(got)
}

/// A Tansu broker of the soak's own (in-memory storage) on a free loopback port.
struct Tansu {
    child: Child,
    brokers: String,
}

impl Tansu {
    fn start(dir: &Path) -> anyhow::Result<Tansu> {
        let bin = std::env::var_os("NHID_TANSU")
            .map(PathBuf::from)
            .or_else(|| {
                let path = std::env::var_os("PATH").unwrap_or_default();
                let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
                std::env::split_paths(&path).chain(home).map(|d| d.join("tansu")).find(|p| p.is_file())
            })
            .context("no --broker and no tansu binary (NHID_TANSU, PATH, ~/.cargo/bin): scripts/tansu.sh install")?;
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("tansu.log"))?)
            .spawn()
            .context("starting tansu")?;
        let mut tansu = Tansu { child, brokers: format!("127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() >= deadline || tansu.child.try_wait()?.is_some() {
                bail!("tansu did not listen on port {port}; see {}", dir.join("tansu.log").display());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(tansu)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0").is_err() && parse_duration("1d").is_err() && parse_duration("h").is_err());
    }

    #[test]
    fn lines_keeps_the_first_lines_then_refuses() {
        let mut out = Lines { out: Vec::new(), left: 3 };
        assert!(out.write_all(b"a\nb\n").is_ok());
        assert!(out.write_all(b"c\nd\n").is_err());
        assert_eq!(out.out, b"a\nb\nc\n");
    }
}
