//! `nhid-sim demo`: the whole product on one machine with no setup. An in-process Kafka cluster
//! (librdkafka's mock cluster), a live simulated population producing audit events in wall
//! time with an attack every 20 s, the Kafka runtime consuming them, and the incidents, their
//! alerts and the revocation requests read back from their topics and printed as they
//! arrive. `/metrics`, `/healthz` and `/readyz` are served as by `nhid run` (`http.listen`,
//! `--http-listen`).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use nhid::cli::{EngineArgs, config_errors, init_logs, stop_on_signals};
use nhid::config::LogConfig;
use nhid_engine::Engine;
use nhid_engine::metrics::Health;
use nhid_engine::metrics::Metrics;
use nhid_kafka::KafkaConfig;
use nhid_model::time::{Millis, SECOND, format_rfc3339, wall_clock};
use nhid_sim::{Estate, Live, LiveConfig};

use crate::simulate::parse_estate;

#[derive(Args)]
pub struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Simulated identities, humans included.
    #[arg(long, default_value_t = 100)]
    principals: usize,
    /// Seed of the simulated population.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Seconds between injected attacks.
    #[arg(long, default_value_t = 20)]
    attack_every: u64,
    /// The simulated population: `classic`, or `cloud` (CI runners, serverless functions,
    /// fleets, low-volume keys and more beside the classic identities, whose live attacks are
    /// the same six).
    #[arg(long, default_value = "classic", value_parser = parse_estate)]
    estate: Estate,
    /// Where /metrics, /healthz and /readyz listen [http.listen; default 127.0.0.1:9898]; port 0 picks a free one.
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    engine: EngineArgs,
}

const AUDIT: &str = "audit";
const PARTITIONS: i32 = 4;

pub fn run(args: &DemoArgs) -> ExitCode {
    let loaded = args.engine.load(|c| {
        if let Some(l) = args.http_listen {
            c.http.listen = l;
        }
    });
    let (config, engine) = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => return config_errors(&errors),
    };
    // The demo's own lines are the output; logs (in the configured format) only say when
    // something is wrong, unless RUST_LOG asks for more.
    init_logs(&LogConfig { level: "warn,librdkafka=error,rdkafka=error".into(), ..config.log });
    match demo(engine, &config.http, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo(engine: Engine, http: &nhid_http::HttpConfig, args: &DemoArgs) -> anyhow::Result<()> {
    let paint = Paint(std::io::stdout().is_terminal());
    // Kept until the end: dropping it stops the cluster.
    let (_cluster, kafka) = start_cluster()?;
    println!("{}", paint.bold(&format!("nhid demo: in-process Kafka cluster at {}", kafka.brokers)));
    let (mut live, shift) = learn_baselines(&engine, args)?;
    let stop = stop_on_signals()?;
    if let Some(d) = args.duration {
        stop_after(Duration::from_secs(d), stop.clone());
    }
    let engine = Arc::new(engine);
    let (metrics, health) = (Arc::new(Metrics::new()), Arc::new(Health::default()));
    let bound = nhid_http::serve(http, engine.clone(), metrics.clone(), health.clone())
        .with_context(|| format!("serving HTTP on {}", http.listen))?;
    // Where to look; tests read the address from the first line.
    println!("metrics: http://{bound}/metrics");
    println!("inventory: http://{bound}/principals");
    let runtime = {
        let (engine, kafka, stop) = (engine.clone(), kafka.clone(), stop.clone());
        thread::Builder::new()
            .name("nhid-runtime".into())
            .spawn(move || nhid_kafka::run_observed(engine, &kafka, stop, metrics, health))?
    };
    let printer = {
        let (kafka, stop) = (kafka.clone(), stop.clone());
        thread::Builder::new().name("nhid-demo-printer".into()).spawn(move || print_outputs(&kafka, &stop, paint))?
    };
    println!(
        "live traffic: an attack every {} s; alerts and revocation requests (dry run) appear below. Ctrl-C stops.\n",
        args.attack_every
    );
    let produced = produce_live(&mut live, shift, &kafka, &stop, paint)?;
    let report = runtime.join().map_err(|_| anyhow::anyhow!("the runtime panicked"))??;
    let _ = printer.join();
    print_stopped(produced, &report, paint);
    Ok(())
}

/// An in-process cluster with the audit topic and the topics the runtime writes to, and the
/// runtime's configuration for it.
fn start_cluster() -> anyhow::Result<(MockCluster<'static, DefaultProducerContext>, KafkaConfig)> {
    let cluster = MockCluster::new(1).context("starting the in-process Kafka cluster")?;
    let kafka = KafkaConfig {
        brokers: cluster.bootstrap_servers(),
        topics: vec![AUDIT.into()],
        group: "nhid-demo".into(),
        rebuild_secs: 0,
        ..KafkaConfig::default()
    };
    for (topic, partitions) in [
        (AUDIT, PARTITIONS),
        (&kafka.alerts_topic, 2),
        (&kafka.actions_topic, 2),
        (&kafka.incidents_topic, 2),
        (&kafka.dead_letter_topic, 1),
    ]
    .into_iter()
    // The mock cluster has no admin API: the runtime cannot create it.
    .chain([(kafka.changelog_topic.as_str(), PARTITIONS)])
    {
        cluster.create_topic(topic, partitions, 1).with_context(|| format!("creating topic {topic}"))?;
    }
    Ok((cluster, kafka))
}

/// Baselines first: two days of simulated history straight into the engine, as if nhid had
/// been running; live traffic then goes through Kafka. Returns the live simulation and how
/// far event time lags the wall clock.
fn learn_baselines(engine: &Engine, args: &DemoArgs) -> anyhow::Result<(Live, Millis)> {
    let started = Instant::now();
    let now = wall_clock();
    let cfg = LiveConfig {
        seed: args.seed,
        principals: args.principals,
        attack_every: args.attack_every as Millis * SECOND,
        estate: args.estate,
        ..LiveConfig::default()
    };
    let mut live = Live::new(&cfg, now);
    let n = live.warm(engine)?;
    println!(
        "learned baselines of {} identities from {} simulated events (2 days of history) in {:.1} s",
        engine.store().len(),
        n,
        started.elapsed().as_secs_f64()
    );
    // Event time runs with the wall clock from here, starting where the history ended.
    Ok((live, wall_clock() - now))
}

fn stop_after(duration: Duration, stop: Arc<AtomicBool>) {
    thread::spawn(move || {
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
}

/// Produces live traffic into the audit topic as event time (the wall clock less `shift`)
/// advances, and announces each attack as its first malicious event goes out, until
/// stopped. Returns how many events it produced.
fn produce_live(
    live: &mut Live,
    shift: Millis,
    kafka: &KafkaConfig,
    stop: &AtomicBool,
    paint: Paint,
) -> anyhow::Result<u64> {
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", &kafka.brokers).set("linger.ms", "5").create()?;
    let mut produced = 0;
    let mut announced = 0;
    while !stop.load(Ordering::Relaxed) {
        live.advance(wall_clock() - shift, &mut |event, principal| {
            let mut record = BaseRecord::to(AUDIT).key(principal).payload(event);
            while let Err((_, r)) = producer.send(record) {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            produced += 1;
        })?;
        producer.poll(Duration::ZERO);
        for label in &live.injected()[announced..] {
            println!(
                "{}  {} {} on {} ({}); expect {}",
                paint.dim(&clock(label.first_malicious_time)),
                paint.magenta("ATTACK"),
                label.scenario,
                label.principal_id,
                label.principal_type.as_str(),
                label.expected_kinds.join(", ")
            );
        }
        announced = live.injected().len();
        thread::sleep(Duration::from_millis(100));
    }
    producer.flush(Duration::from_secs(5))?;
    Ok(produced)
}

fn print_stopped(produced: u64, report: &nhid_kafka::Report, paint: Paint) {
    let s = &report.stats;
    println!(
        "\n{}",
        paint.bold(&format!(
            "stopped: {} live events produced, {} processed, {} incidents of {} alerts, {} actions, {} dead letters; p99 event→alert {} ms",
            produced,
            s.events,
            s.incidents[0],
            s.alerts.values().sum::<u64>(),
            s.actions.values().sum::<u64>(),
            s.dead_letters_total(),
            report.latency.value_at_quantile(0.99)
        ))
    );
}

/// Reads the incidents, alerts and actions topics (what a SIEM and a revocation service
/// would) and prints, as they arrive, incidents with their alerts under them, and actions.
fn print_outputs(kafka: &KafkaConfig, stop: &AtomicBool, paint: Paint) {
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", "nhid-demo-printer")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => return eprintln!("error: reading outputs: {e}"),
    };
    let mut tpl = TopicPartitionList::new();
    for topic in [&kafka.alerts_topic, &kafka.actions_topic, &kafka.incidents_topic] {
        for p in 0..2 {
            let _ = tpl.add_partition_offset(topic, p, Offset::Beginning);
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        return eprintln!("error: reading outputs: {e}");
    }
    let mut stdout = std::io::stdout();
    let mut incidents = Incidents::default();
    // Keep printing what is already on its way when asked to stop.
    let mut quiet_since: Option<Instant> = None;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                quiet_since = None;
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default()) else {
                    continue;
                };
                let lines = match m.topic() {
                    t if t == kafka.alerts_topic => incidents.alert(v, paint),
                    t if t == kafka.incidents_topic => incidents.record(v, paint),
                    _ => vec![action_line(&v, paint)],
                };
                for line in lines {
                    let _ = writeln!(stdout, "{line}");
                }
            }
            _ if stop.load(Ordering::Relaxed) => {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(1) {
                    for line in incidents.flush(paint) {
                        let _ = writeln!(stdout, "{line}");
                    }
                    return;
                }
            }
            _ => {}
        }
    }
}

/// Incident records are printed with their newest alert, which comes on another topic: a
/// record waits until its alert has arrived (the records of one incident in order).
#[derive(Default)]
struct Incidents {
    alerts: std::collections::HashMap<String, serde_json::Value>,
    waiting: Vec<serde_json::Value>,
}

impl Incidents {
    fn alert(&mut self, v: serde_json::Value, paint: Paint) -> Vec<String> {
        if let Some(id) = v["alert_id"].as_str() {
            self.alerts.insert(id.to_string(), v);
        }
        self.ready(paint, false)
    }

    fn record(&mut self, v: serde_json::Value, paint: Paint) -> Vec<String> {
        self.waiting.push(v);
        self.ready(paint, false)
    }

    /// What is still waiting, with what is known of its alerts.
    fn flush(&mut self, paint: Paint) -> Vec<String> {
        self.ready(paint, true)
    }

    /// The lines of the waiting records that can be printed (all of them with `all`).
    fn ready(&mut self, paint: Paint, all: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let mut held: Vec<String> = Vec::new();
        let mut waiting = std::mem::take(&mut self.waiting);
        waiting.retain(|r| {
            let incident = r["incident_id"].as_str().unwrap_or("").to_string();
            let newest = r["alerts"].as_array().and_then(|a| a.last()).and_then(|a| a["alert_id"].as_str());
            let alert = newest.and_then(|id| self.alerts.get(id));
            let closing = r["activity"] == "close";
            if held.contains(&incident) || !(all || closing || alert.is_some()) {
                held.push(incident);
                return true;
            }
            lines.push(incident_line(r, alert, paint));
            false
        });
        self.waiting = waiting;
        lines
    }
}

fn incident_line(r: &serde_json::Value, alert: Option<&serde_json::Value>, paint: Paint) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("");
    let short = s("incident_id").get(..8).unwrap_or("");
    let tag = paint.magenta(&format!("INCIDENT {short}"));
    match s("activity") {
        "close" => {
            format!(
                "{}  {tag} closed\n                        {}",
                paint.dim(&clock_str(s("time"))),
                paint.dim(s("summary"))
            )
        }
        activity => {
            let opened = match activity {
                "create" => format!(
                    "{}  {tag} opened on {} ({})\n",
                    paint.dim(&clock_str(s("time"))),
                    r["principal"]["id"].as_str().unwrap_or(""),
                    r["principal"]["type"].as_str().unwrap_or("")
                ),
                _ => String::new(),
            };
            let newest = r["alerts"].as_array().and_then(|a| a.last()).cloned().unwrap_or_default();
            format!("{opened}{}", alert_line(alert.unwrap_or(&newest), short, paint))
        }
    }
}

/// An alert, under the incident it is part of (`incident`: its id's first characters).
fn alert_line(v: &serde_json::Value, incident: &str, paint: Paint) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("");
    let severity = s("severity");
    let sev = match severity {
        "critical" | "high" => paint.red(&format!("{severity:<8}")),
        "medium" => paint.yellow(&format!("{severity:<8}")),
        _ => paint.dim(&format!("{severity:<8}")),
    };
    // An incident's list names an alert by kind and severity only, until the alert arrives.
    let principal = &v["principal"];
    let mut who = match (principal["id"].as_str(), principal["type"].as_str()) {
        (Some(id), Some(kind)) => format!("{id} ({kind})"),
        _ => String::new(),
    };
    if let Some(c) = v["credential_id"].as_str() {
        who += &format!(" credential {c}");
    }
    if let Some(u) = v["actor"]["delegating_user"].as_str() {
        who += &format!(" for {u}");
    }
    if let Some(sess) = v["actor"]["session_id"].as_str() {
        who += &format!(" session {sess}");
    }
    format!(
        "{}  {} {} {} {:<20} {}\n                        {}",
        paint.dim(&clock_str(s("time"))),
        paint.dim(incident),
        paint.red("ALERT "),
        sev,
        s("kind"),
        who,
        paint.dim(s("summary"))
    )
}

fn action_line(v: &serde_json::Value, paint: Paint) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("");
    let t = &v["target"];
    let mut target = t["principal_id"].as_str().unwrap_or("").to_string();
    if let Some(c) = t["credential_id"].as_str() {
        target += &format!(" credential {c}");
    }
    if let Some(sess) = t["session_id"].as_str() {
        target += &format!(" session {sess}");
    }
    format!(
        "{}           {} {} [{}] {}\n                        {}",
        paint.dim(&clock_str(s("time"))),
        paint.cyan("ACTION"),
        paint.bold(s("action")),
        s("mode"),
        target,
        paint.dim(s("reason"))
    )
}

/// `HH:MM:SS.mmm` of an event time.
fn clock(t: Millis) -> String {
    clock_str(&format_rfc3339(t))
}

fn clock_str(rfc3339: &str) -> String {
    rfc3339.get(11..23).unwrap_or(rfc3339).to_string()
}

/// ANSI colors when standard output is a terminal.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn code(self, code: &str, s: &str) -> String {
        if self.0 { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
    fn bold(self, s: &str) -> String {
        self.code("1", s)
    }
    fn dim(self, s: &str) -> String {
        self.code("2", s)
    }
    fn red(self, s: &str) -> String {
        self.code("31;1", s)
    }
    fn yellow(self, s: &str) -> String {
        self.code("33", s)
    }
    fn cyan(self, s: &str) -> String {
        self.code("36;1", s)
    }
    fn magenta(self, s: &str) -> String {
        self.code("35;1", s)
    }
}
