//! The metrics of a running nhid, checked with the real Prometheus tooling: `nhid-sim demo` (the
//! binary, live simulated traffic with frequent attacks) serves `/metrics`; the Grafana
//! dashboard's queries name only metrics and labels a real scrape has; `promtool check
//! metrics` accepts the scrape; and a real Prometheus scraping the demo returns data for every
//! dashboard query.
//!
//! The Prometheus tests need `prometheus` and `promtool` (Debian package `prometheus`;
//! `.ci/run` installs it). Without them they fail and say how to install them, unless
//! `NHID_SKIP_PROMETHEUS_TESTS=1` skips them explicitly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::dashboard::{self, Query, grouping_labels, legend_labels, metric_names_in};
use common::try_http_get as get;
use serde_json::Value;

/// Time for the demo to learn its baselines and serve; several times what it takes on a
/// quiet machine (4-7 s), as tests share 2 cores.
const START: Duration = Duration::from_secs(90);
/// Time for every series to appear and every query to return data once the demo serves:
/// consumer lag comes with librdkafka's first statistics (5 s), latency quantiles with the
/// first alerts after Prometheus's first scrapes.
const DATA: Duration = Duration::from_secs(90);

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// Exported metrics deliberately without a panel, and why.
const NOT_ON_DASHBOARD: &[&str] = &[
    // Repeats folded into an alert already raised: a tuning figure for detector windows,
    // queried by hand when tuning, not an operations signal.
    "nhid_alerts_suppressed_total",
];

// ---------------------------------------------------------------------------------------
// The demo, a scrape, a bare HTTP client

/// The demo's configuration here: a suppression of runner addresses, which the demo's
/// traffic does not match.
const SUPPRESSION: &str = r#"
[[suppressions]]
name = "ci-runner-addresses"
owner = "platform-team@example.com"
reason = "hosted CI runners get a new address every run"
expires = "2030-01-01T00:00:00Z"
principal = "gh-runner-*"
detector = "new_source"
"#;

/// `nhid-sim demo` on a free port; killed when dropped, so a failing test leaves no process.
struct Demo {
    child: Child,
    addr: SocketAddr,
    /// Everything the demo printed, for failure messages.
    output: Arc<Mutex<String>>,
    /// Holds its configuration file.
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        // One suppression, as a SOC has them: its series (dropped alerts, expiry) are exported
        // only for configured rules, and the dashboard has panels for them.
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("nhid.toml");
        std::fs::write(&config, SUPPRESSION).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_nhid-sim"))
            // An attack every 2 s: alerts (and their latency observations) keep coming while
            // Prometheus scrapes. The duration only bounds a demo whose test died unkilled.
            .args(["demo", "--duration", "600", "--attack-every", "2", "--http-listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting nhid-sim demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        {
            let output = output.clone();
            // Reads to the end: a full pipe would stop the demo.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix("metrics: http://").and_then(|r| r.strip_suffix("/metrics")) {
                        let _ = tx.send(addr.parse::<SocketAddr>().expect("a socket address"));
                    }
                    let mut o = output.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        let addr = match rx.recv_timeout(START) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "nhid-sim demo printed no `metrics: http://…` line within {START:?}:\n{}",
                    output.lock().unwrap()
                );
            }
        };
        Demo { child, addr, output, _dir: dir }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn scrape(&self) -> Scrape {
        let (status, body) = get(self.addr, "/metrics").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        assert_eq!(status, 200, "GET /metrics: {body}");
        Scrape::parse(&body)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `/metrics` text: each metric family with its type and the label names of its samples.
struct Scrape {
    text: String,
    types: BTreeMap<String, String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                types.insert(name.to_string(), kind.to_string());
            }
        }
        let histograms = types.iter().filter(|(_, t)| *t == "histogram").map(|(n, _)| n.clone()).collect();
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let series = line.split([' ', '{']).next().unwrap_or_default();
            let family = dashboard::histogram_name(series, &histograms).to_string();
            let names = labels.entry(family).or_default();
            if let Some((_, rest)) = line.split_once('{') {
                // Label values here are bounded identifiers: no `,` `=` or `}` inside them.
                let inner = &rest[..rest.find('}').expect("labels close")];
                names.extend(inner.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, _)| k.to_string()));
            }
        }
        Scrape { text: text.to_string(), types, labels }
    }

    fn histograms(&self) -> BTreeSet<String> {
        self.types.iter().filter(|(_, t)| *t == "histogram").map(|(n, _)| n.clone()).collect()
    }

    /// Families with at least one sample (a `# TYPE` line alone shows nothing on a dashboard).
    fn exported(&self) -> BTreeSet<String> {
        self.types.keys().filter(|n| self.labels.contains_key(*n)).cloned().collect()
    }
}

/// Percent-encodes a query parameter (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------
// The dashboard against a real scrape (no Prometheus needed)

#[test]
fn metric_names_fold_histogram_series_and_skip_strings() {
    let histograms = ["nhid_processing_seconds", "nhid_event_to_alert_seconds"].map(String::from).into();
    let names = metric_names_in(
        r#"histogram_quantile(0.99, sum by (le) (rate(nhid_processing_seconds_bucket{topic="nhid_not_a_metric"}[5m])))
           / nhid_event_to_alert_seconds_count + nhid_events_total + xnhid_other + nhid_messages_count"#,
        &histograms,
    );
    let want: BTreeSet<String> =
        ["nhid_processing_seconds", "nhid_event_to_alert_seconds", "nhid_events_total", "nhid_messages_count"]
            .map(String::from)
            .into();
    assert_eq!(names, want);
    assert_eq!(
        grouping_labels("sum by (topic, partition) (x) / sum without(le) (y)"),
        ["le", "partition", "topic"].map(String::from).into()
    );
    assert_eq!(legend_labels("{{detector}} {{ severity }}"), ["detector", "severity"].map(String::from).into());
}

#[test]
fn scrapes_are_parsed_into_families_and_label_names() {
    let s = Scrape::parse(
        "# HELP a_seconds x\n# TYPE a_seconds histogram\na_seconds_bucket{le=\"1\"} 0\na_seconds_sum 0\n\
         a_seconds_count 0\n# HELP b_total x\n# TYPE b_total counter\nb_total{x=\"1\",y=\"2\"} 3\n\
         # HELP c x\n# TYPE c gauge\n",
    );
    assert_eq!(s.histograms(), ["a_seconds".to_string()].into());
    assert_eq!(s.exported(), ["a_seconds", "b_total"].map(String::from).into(), "c has no sample");
    assert_eq!(s.labels["a_seconds"], ["le".to_string()].into());
    assert_eq!(s.labels["b_total"], ["x", "y"].map(String::from).into());
}

/// Every metric the dashboard queries is in a real scrape of nhid, with the labels the
/// queries group and name series by; every exported metric has a panel (or a reason not to).
#[test]
fn the_dashboard_queries_metrics_and_labels_a_real_scrape_has() {
    let queries = dashboard::queries(&dashboard::dashboard());
    let demo = Demo::start();
    // Some series appear with the first statistics or the first assignment: wait for them.
    let deadline = Instant::now() + DATA;
    let scrape = loop {
        let scrape = demo.scrape();
        let histograms = scrape.histograms();
        let wanted: BTreeSet<String> = queries.iter().flat_map(|q| metric_names_in(&q.expr, &histograms)).collect();
        let missing: Vec<String> = wanted.difference(&scrape.exported()).cloned().collect();
        if missing.is_empty() {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard queries metrics nhid does not export: {missing:?}\nscrape:\n{}",
            scrape.text
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let histograms = scrape.histograms();

    let mut used = BTreeSet::new();
    for Query { panel, expr, legend } in &queries {
        let names = metric_names_in(expr, &histograms);
        assert!(!names.is_empty(), "{panel}: {expr:?} queries no nhid metric");
        let mut available: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
        for name in &names {
            available.extend(scrape.labels[name].iter().map(String::as_str));
            if histograms.contains(name) {
                assert!(expr.contains(&format!("{name}_bucket")), "{panel}: histogram {name} used without _bucket");
            }
        }
        let grouped = grouping_labels(expr);
        for label in &grouped {
            assert!(available.contains(label.as_str()), "{panel}: groups by {label:?}, which {names:?} do not have");
        }
        // After an aggregation only its grouping labels are left to name a series.
        let aggregated = expr.contains("sum") || expr.contains("histogram_quantile");
        for label in legend_labels(legend) {
            let ok = if aggregated { grouped.contains(&label) } else { available.contains(label.as_str()) };
            assert!(ok, "{panel}: legend uses {{{{{label}}}}}, which {expr:?} does not keep");
        }
        used.extend(names);
    }
    let exported: BTreeSet<String> = scrape.exported().into_iter().filter(|n| n.starts_with("nhid_")).collect();
    let unused: Vec<&String> = exported.difference(&used).filter(|n| !NOT_ON_DASHBOARD.contains(&n.as_str())).collect();
    assert!(unused.is_empty(), "exported but on no panel: {unused:?}");
}

// ---------------------------------------------------------------------------------------
// promtool and Prometheus

/// `prometheus` and `promtool`, or `None` when the Prometheus tests are explicitly skipped.
fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    if std::env::var("NHID_SKIP_PROMETHEUS_TESTS").as_deref() == Ok("1") {
        eprintln!("NHID_SKIP_PROMETHEUS_TESTS=1: skipping a test that needs prometheus and promtool");
        return None;
    }
    let find = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match (find("prometheus"), find("promtool")) {
        (Some(server), Some(tool)) => Some((server, tool)),
        _ => panic!(
            "this test needs `prometheus` and `promtool` on PATH and did not find them.\n\
             Install them (Debian/Ubuntu): apt-get install prometheus   (.ci/run does it),\n\
             or skip the Prometheus tests explicitly with NHID_SKIP_PROMETHEUS_TESTS=1."
        ),
    }
}

/// A Prometheus server scraping one target every second; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(binary: &Path, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        // Not deploy/prometheus/prometheus.yml: that one names the compose service and sets
        // Prometheus 3's `fallback_scrape_protocol`, which the Debian 2.x package rejects.
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: nhid\n    scrape_interval: 1s\n    scrape_timeout: 1s\n\
             \x20   static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let p = Prometheus { child, addr, dir };
        let deadline = Instant::now() + START;
        while !get(p.addr, "/-/ready").is_ok_and(|(status, _)| status == 200) {
            assert!(Instant::now() < deadline, "prometheus not ready within {START:?}:\n{}", p.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let (status, body) = get(self.addr, &format!("/api/v1/query?query={}", encode(promql)))
            .unwrap_or_else(|e| panic!("querying prometheus: {e}"));
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{promql}: {e}: {body}"));
        assert!(status == 200 && v["status"] == "success", "{promql}: HTTP {status}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Grafana's interval variables, as Grafana would set them for a short range; the dashboard
/// uses none today, and a new one must be added here rather than sent to Prometheus as is.
fn grafana_to_promql(expr: &str) -> String {
    let mut promql = expr.to_string();
    for (var, value) in [("$__rate_interval", "1m"), ("$__interval", "15s"), ("$__range", "5m")] {
        promql = promql.replace(var, value);
    }
    assert!(!promql.contains('$'), "{expr:?}: a Grafana variable this test does not substitute");
    promql
}

/// At least one sample is a number: a quantile over no observations is NaN, which Grafana
/// shows as no data.
fn has_a_number(result: &[Value]) -> bool {
    result.iter().any(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(f64::is_finite))
}

/// A real scrape passes `promtool check metrics` (format and lint, no finding at all); a
/// real Prometheus scraping `nhid-sim demo` returns data for every query of the dashboard.
#[test]
fn prometheus_accepts_a_real_scrape_and_answers_every_dashboard_query() {
    let Some((server, promtool)) = prometheus_tools() else { return };
    let queries = dashboard::queries(&dashboard::dashboard());
    let demo = Demo::start();

    let scrape = demo.scrape();
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    check.stdin.take().unwrap().write_all(scrape.text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let findings = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics: {}\n{findings}\nscrape:\n{}",
        out.status,
        scrape.text
    );

    let prometheus = Prometheus::start(&server, demo.addr);
    let mut pending: Vec<(String, String)> =
        queries.iter().map(|q| (format!("{}: {}", q.panel, q.expr), grafana_to_promql(&q.expr))).collect();
    let deadline = Instant::now() + DATA;
    while !pending.is_empty() {
        pending.retain(|(_, promql)| !has_a_number(&prometheus.query(promql)));
        if Instant::now() > deadline {
            let empty: Vec<&str> = pending.iter().map(|(q, _)| q.as_str()).collect();
            panic!(
                "no data within {DATA:?} for:\n  {}\ntargets: {}\nprometheus log:\n{}\ndemo output:\n{}",
                empty.join("\n  "),
                get(prometheus.addr, "/api/v1/targets").map(|(_, b)| b).unwrap_or_default(),
                prometheus.log(),
                demo.output()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
