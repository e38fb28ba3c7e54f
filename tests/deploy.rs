//! The operations files agree with each other and with nhid: `docker-compose.yml`, the
//! `Dockerfile`, and `deploy/` (Prometheus, Grafana provisioning and dashboard, nhid.toml).
//! Docker does not run here, so these are structural checks: every bind-mounted file exists,
//! published ports stay on loopback, Prometheus scrapes where nhid listens, Grafana loads the
//! dashboard from where it is mounted, the stack creates every topic nhid reads or writes, and
//! its nhid.toml is a valid configuration. `docker compose config` also validates the file
//! where the compose client is installed (it needs no engine). Whether the dashboard's queries
//! name metrics and labels nhid really exports, and return data, is tests/prometheus.rs's job.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::dashboard::{all_panels, dashboard};
use nhid::config::Config;
use nhid_engine::respond::alert::Mode;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: not valid YAML: {e}"))
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"].get(name).unwrap_or_else(|| panic!("docker-compose.yml: no service {name:?}"))
}

/// A command (`command`, `entrypoint`, a healthcheck `test`) as one string, whichever form it has.
fn command_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            a.iter().map(|x| x.as_str().expect("command words are strings")).collect::<Vec<_>>().join(" ")
        }
        Value::Null => String::new(),
        other => panic!("not a command: {other}"),
    }
}

/// The command's words, split on whitespace (enough for the flags these tests look at).
fn words(v: &Value) -> Vec<String> {
    command_text(v).split_whitespace().map(str::to_string).collect()
}

/// The value after `flag` in `words`.
fn flag<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    words.iter().position(|w| w == flag).and_then(|i| words.get(i + 1)).map(String::as_str)
}

/// A service's environment, from either the map or the `KEY=value` list form.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(m) => {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
        }
        Value::Array(a) => {
            a.iter().filter_map(|x| x.as_str()?.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
        }
        _ => BTreeMap::new(),
    }
}

/// A service's mounts as (source, target): short `src:dst[:mode]` or long syntax.
fn mounts(service: &Value) -> Vec<(String, String)> {
    let Some(list) = service["volumes"].as_array() else { return Vec::new() };
    list.iter()
        .map(|m| match m {
            Value::String(s) => {
                let mut parts = s.splitn(3, ':');
                let source = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_else(|| panic!("mount {s:?} has no target")).to_string();
                (source, target)
            }
            Value::Object(o) => (
                o["source"].as_str().expect("mount source").to_string(),
                o["target"].as_str().expect("mount target").to_string(),
            ),
            other => panic!("not a mount: {other}"),
        })
        .collect()
}

fn is_bind(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// Where a service mounts the host path `source` (relative to the repository).
fn target_of(service: &Value, source: &str) -> Option<String> {
    let want = Path::new(source.trim_start_matches("./"));
    mounts(service).into_iter().find(|(s, _)| Path::new(s.trim_start_matches("./")) == want).map(|(_, t)| t)
}

/// The services a service waits for, with the condition (`service_started` for the list form).
fn depends_on(service: &Value) -> BTreeMap<String, String> {
    match &service["depends_on"] {
        Value::Array(a) => {
            a.iter().map(|s| (s.as_str().expect("service name").to_string(), "service_started".to_string())).collect()
        }
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v["condition"].as_str().unwrap_or("service_started").to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The configuration nhid runs with in the stack: the mounted file under the `NHID__*`
/// variables the compose file sets, every one of which must be a configuration key.
fn stack_config() -> Config {
    let path = root().join("deploy/nhid/nhid.toml");
    let env = environment(service(&compose(), "nhid")).into_iter().map(|(k, v)| (k.into(), v.into()));
    let (config, errors) = Config::layered(Some(&path), env);
    assert_eq!(errors, Vec::<String>::new(), "deploy/nhid/nhid.toml with the compose environment");
    assert_eq!(config.validate(), Vec::<String>::new());
    config
}

// ---------------------------------------------------------------------------------------
// Dashboard structure (its queries are checked against a real scrape in tests/prometheus.rs)

#[test]
fn dashboard_panels_each_have_a_query_on_the_provisioned_datasource() {
    let d = dashboard();
    assert_eq!(d["uid"], "nhid");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion {}", d["schemaVersion"]);

    // The datasource variable defaults to the provisioned Prometheus.
    let provisioned = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let uid = provisioned["datasources"][0]["uid"].as_str().expect("datasource uid");
    let vars = d["templating"]["list"].as_array().expect("templating variables");
    let var = vars.iter().find(|v| v["type"] == "datasource").expect("a datasource variable");
    assert_eq!(var["query"], "prometheus");
    assert_eq!(var["current"]["value"], uid);
    let var_ref = format!("${{{}}}", var["name"].as_str().expect("variable name"));
    let uses_datasource =
        |ds: &Value| ds["type"] == "prometheus" && (ds["uid"] == var_ref.as_str() || ds["uid"] == uid);

    let mut ids = BTreeSet::new();
    let mut queried = 0;
    for panel in all_panels(&d) {
        let title = panel["title"].as_str().unwrap_or_default();
        let id = panel["id"].as_u64().unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "{title}: panel id {id} is used twice");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().expect("gridPos.x"), grid["w"].as_u64().expect("gridPos.w"));
        assert!(x + w <= 24 && grid["h"].as_u64().is_some_and(|h| h > 0), "{title}: gridPos {grid}");
        if panel["type"] == "row" {
            continue;
        }
        assert!(uses_datasource(&panel["datasource"]), "{title}: datasource {}", panel["datasource"]);
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{title}: a target without expr");
            assert!(refs.insert(t["refId"].as_str().expect("refId")), "{title}: refId repeated");
            assert!(t["datasource"].is_null() || uses_datasource(&t["datasource"]), "{title}: target datasource");
        }
        queried += 1;
    }
    assert!(queried >= 12, "only {queried} panels with queries");
}

// ---------------------------------------------------------------------------------------
// Grafana and Prometheus provisioning

#[test]
fn grafana_provisions_the_datasource_and_the_mounted_dashboards() {
    let c = compose();
    let grafana = service(&c, "grafana");
    let provisioning =
        target_of(grafana, "./deploy/grafana/provisioning").expect("grafana mounts deploy/grafana/provisioning");
    assert_eq!(provisioning, "/etc/grafana/provisioning", "where Grafana reads provisioning");
    let dashboards =
        target_of(grafana, "./deploy/grafana/dashboards").expect("grafana mounts deploy/grafana/dashboards");

    let providers = yaml("deploy/grafana/provisioning/dashboards/nhid.yml");
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"], "file");
    assert_eq!(
        provider["options"]["path"].as_str(),
        Some(dashboards.as_str()),
        "provider path is where compose mounts the dashboards"
    );
    if let Some(home) = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH") {
        let file = Path::new(home).strip_prefix(&dashboards).expect("home dashboard is in the mounted directory");
        assert!(root().join("deploy/grafana/dashboards").join(file).is_file(), "home dashboard {home} does not exist");
    }

    let datasources = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let ds = &datasources["datasources"][0];
    assert_eq!(ds["type"], "prometheus");
    assert_eq!(ds["uid"], "prometheus");
    assert_eq!(ds["url"], "http://prometheus:9090");
    service(&c, "prometheus");
}

#[test]
fn prometheus_scrapes_nhid_where_it_listens() {
    let c = compose();
    let prometheus = service(&c, "prometheus");
    assert_eq!(
        target_of(prometheus, "./deploy/prometheus/prometheus.yml").as_deref(),
        Some("/etc/prometheus/prometheus.yml"),
        "the image's default config path"
    );
    let config = yaml("deploy/prometheus/prometheus.yml");
    let jobs = config["scrape_configs"].as_array().expect("scrape_configs");
    let job = jobs.iter().find(|j| j["job_name"] == "nhid").expect("a job named nhid");
    assert_eq!(job["scrape_interval"], "5s");
    assert!(job["metrics_path"].is_null() || job["metrics_path"] == "/metrics");
    let targets: Vec<&str> = job["static_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["targets"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(targets, ["nhid:9898"]);

    // nhid's listener in the stack: the service named in the target, on all interfaces, that port.
    let nhid = service(&c, "nhid");
    let listen = environment(nhid).get("NHID__HTTP__LISTEN").cloned().expect("nhid sets NHID__HTTP__LISTEN");
    assert_eq!(listen, "0.0.0.0:9898", "a container must listen on all interfaces to be scraped");
}

// ---------------------------------------------------------------------------------------
// docker-compose.yml

#[test]
fn compose_has_the_stack() {
    let c = compose();
    for name in ["kafka", "kafka-init", "nhid", "simulate", "simulator", "prometheus", "grafana"] {
        service(&c, name);
    }
    let kafka = service(&c, "kafka");
    assert!(kafka["image"].as_str().is_some_and(|i| i.starts_with("apache/kafka:")));
    let env = environment(kafka);
    assert_eq!(env.get("KAFKA_PROCESS_ROLES").map(String::as_str), Some("broker,controller"));
    assert!(env["KAFKA_ADVERTISED_LISTENERS"].contains("PLAINTEXT://kafka:9092"));
    let health = command_text(&kafka["healthcheck"]["test"]);
    assert!(health.contains("kafka-topics.sh --bootstrap-server localhost:9092 --list"), "{health}");
}

#[test]
fn compose_bind_mounts_exist_and_named_volumes_are_declared() {
    let c = compose();
    let declared: BTreeSet<&str> =
        c["volumes"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    let mut binds = 0;
    for (name, svc) in c["services"].as_object().expect("services") {
        for (source, target) in mounts(svc) {
            if is_bind(&source) {
                assert!(source.starts_with("./"), "{name}: bind mount {source} is not inside the repository");
                assert!(root().join(&source).exists(), "{name}: {source} (mounted at {target}) does not exist");
                binds += 1;
            } else {
                assert!(declared.contains(source.as_str()), "{name}: volume {source} is not declared");
            }
        }
        if let Some(build) = svc.get("build") {
            let context = build.as_str().or_else(|| build["context"].as_str()).expect("build context");
            assert!(root().join(context).join("Dockerfile").is_file(), "{name}: no Dockerfile in {context}");
        }
    }
    assert!(binds >= 4, "only {binds} bind mounts");
}

#[test]
fn compose_publishes_ports_on_loopback_only() {
    let c = compose();
    let mut published = 0;
    for (name, svc) in c["services"].as_object().expect("services") {
        for port in svc["ports"].as_array().into_iter().flatten() {
            let on_loopback = match port {
                Value::String(p) => p.starts_with("127.0.0.1:") && p.split(':').count() == 3,
                Value::Object(p) => p["host_ip"] == "127.0.0.1",
                _ => false,
            };
            assert!(on_loopback, "{name}: port {port} is not bound to 127.0.0.1");
            published += 1;
        }
    }
    assert!(published >= 4, "only {published} published ports");
}

#[test]
fn compose_runs_nhid_with_the_stack_config_after_the_topics_exist() {
    let c = compose();
    let nhid = service(&c, "nhid");
    assert_eq!(nhid["build"], ".");
    assert_eq!(depends_on(nhid).get("kafka-init").map(String::as_str), Some("service_completed_successfully"));
    let cmd = words(&nhid["command"]);
    assert_eq!(cmd.first().map(String::as_str), Some("run"), "the image's entrypoint is nhid");
    assert_eq!(flag(&cmd, "--brokers"), Some("kafka:9092"));
    let config = flag(&cmd, "--config").expect("--config");
    assert_eq!(
        target_of(nhid, "./deploy/nhid/nhid.toml").as_deref(),
        Some(config),
        "--config is the mounted nhid.toml"
    );
    assert!(nhid["ports"].as_array().expect("ports").iter().any(|p| p.as_str().is_some_and(|p| p.ends_with(":9898"))));
    assert!(environment(nhid).contains_key("RUST_LOG"));
    // In a container the listener must leave loopback for Prometheus to reach it.
    assert_eq!(stack_config().http.listen, "0.0.0.0:9898".parse().unwrap());

    // kafka-init creates every topic nhid reads or writes, after the broker is healthy.
    let init = service(&c, "kafka-init");
    assert_eq!(depends_on(init).get("kafka").map(String::as_str), Some("service_healthy"));
    let script = command_text(&init["command"]);
    assert!(script.contains("kafka-topics.sh") && script.contains("--create --if-not-exists"), "{script}");
    let created: BTreeSet<&str> = script.split_whitespace().collect();
    let k = stack_config().kafka;
    let or = |f: &str, default: &str| flag(&cmd, f).unwrap_or(default).to_string();
    let mut topics: Vec<String> =
        flag(&cmd, "--topics").map_or(k.topics.clone(), |t| t.split(',').map(String::from).collect());
    topics.push(or("--alerts-topic", &k.alerts_topic));
    topics.push(or("--actions-topic", &k.actions_topic));
    topics.push(or("--incidents-topic", &k.incidents_topic));
    topics.push(or("--dead-letter-topic", &k.dead_letter_topic));
    topics.extend(k.lifecycle_topic.clone());
    topics.extend(k.action_results_topic.clone());
    topics.extend(k.verdicts_topic.clone());
    assert!(
        k.lifecycle_topic.is_some() && k.action_results_topic.is_some() && k.verdicts_topic.is_some(),
        "the stack closes the loop"
    );
    for topic in &topics {
        assert!(created.contains(topic.as_str()), "kafka-init does not create {topic}");
    }
}

#[test]
fn compose_simulates_traffic_into_the_topic_nhid_reads() {
    let c = compose();
    let nhid_cmd = words(&service(&c, "nhid")["command"]);
    let audit: Vec<&str> = flag(&nhid_cmd, "--topics").expect("--topics").split(',').collect();

    // One-shot: nhid-sim simulate writes the events to a volume...
    let simulate = service(&c, "simulate");
    assert_eq!(simulate["build"]["context"], ".", "built from the repository");
    assert_eq!(simulate["build"]["target"], "sim", "the simulator's image, not nhid's");
    let has_sim_stage = dockerfile_stages().iter().any(|stage| stage[0].1.to_ascii_lowercase().ends_with(" as sim"));
    assert!(has_sim_stage, "the Dockerfile has a sim stage");
    let cmd = words(&simulate["command"]);
    assert_eq!(cmd.first().map(String::as_str), Some("simulate"));
    let out = flag(&cmd, "--out").expect("--out");
    let (volume, dir) = mounts(simulate)
        .into_iter()
        .find(|(s, t)| !is_bind(s) && Path::new(out).starts_with(t))
        .expect("--out is on a named volume");
    let file = Path::new(out).strip_prefix(&dir).expect("under the mount");

    // ...which the simulator, once it is written and the topics exist, produces into Kafka.
    let simulator = service(&c, "simulator");
    let waits = depends_on(simulator);
    assert_eq!(waits.get("simulate").map(String::as_str), Some("service_completed_successfully"));
    assert_eq!(waits.get("kafka-init").map(String::as_str), Some("service_completed_successfully"));
    let (_, there) =
        mounts(simulator).into_iter().find(|(s, _)| *s == volume).expect("simulator mounts the same volume");
    let script = command_text(&simulator["command"]);
    let input = Path::new(&there).join(file);
    assert!(script.contains(input.to_str().expect("utf-8 path")), "simulator does not read {}", input.display());
    assert!(script.contains("kafka-console-producer.sh --bootstrap-server kafka:9092"), "{script}");
    let produced = script.split("--topic").nth(1).and_then(|s| s.split_whitespace().next()).expect("--topic");
    assert!(audit.contains(&produced), "simulator produces into {produced}, nhid reads {audit:?}");
}

/// `docker compose config -q` parses and validates the file the way `up` would; it is a
/// client-side check (no engine). Skipped, with a note, where the compose client is missing.
#[test]
fn docker_compose_validates_the_file() {
    let available = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    if !available {
        eprintln!(
            "note: `docker compose` is not installed; skipping `docker compose config -q` (the structural checks still ran)"
        );
        return;
    }
    let out = Command::new("docker")
        .args(["compose", "-f", "docker-compose.yml", "config", "-q"])
        .current_dir(root())
        .output()
        .expect("docker compose config");
    assert!(out.status.success(), "docker compose config: {}", String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------------------
// Dockerfile and nhid.toml

/// The Dockerfile's instructions (continuation lines joined, comments dropped) per stage.
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = read("Dockerfile");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            pending.push_str(part);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let instruction = std::mem::take(&mut pending);
        let (op, args) = instruction.split_once(char::is_whitespace).unwrap_or((&instruction, ""));
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("the Dockerfile starts with FROM").push((op, args.trim().to_string()));
    }
    stages
}

#[test]
fn dockerfile_builds_locked_and_runs_nhid_unprivileged() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "a multi-stage build");
    let builder = stages[..stages.len() - 1].iter().flatten().map(|(_, a)| a.as_str()).collect::<Vec<_>>().join("\n");
    assert!(builder.contains("cargo build --release --locked"), "the build uses Cargo.lock");
    for pkg in ["libssl-dev", "zlib1g-dev", "pkg-config", "perl"] {
        assert!(builder.contains(pkg), "the builder installs {pkg} (librdkafka's build)");
    }

    let last = stages.last().expect("a stage");
    let get = |op: &str| last.iter().filter(|(o, _)| o == op).map(|(_, a)| a.clone()).next_back();
    let exec_form = |op: &str| -> Vec<String> {
        let args = get(op).unwrap_or_else(|| panic!("final stage has no {op}"));
        serde_json::from_str(&args).unwrap_or_else(|_| panic!("{op} is not in exec form: {args}"))
    };
    assert_eq!(exec_form("ENTRYPOINT"), ["nhid"]);
    assert_eq!(exec_form("CMD"), ["run"]);
    let exposed: Vec<String> = last
        .iter()
        .filter(|(o, _)| o == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect();
    assert!(exposed.iter().any(|p| p == "9898" || p == "9898/tcp"), "EXPOSE 9898: {exposed:?}");
    let user = get("USER").expect("final stage sets USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(name != "root" && name != "0", "runs as root: USER {user}");
    assert!(
        last.iter().any(|(o, a)| o == "COPY" && a.starts_with("--from=") && a.contains("nhid")),
        "the binary comes from the builder"
    );

    let ignore = read(".dockerignore");
    let ignored: BTreeSet<&str> = ignore.lines().map(|l| l.trim().trim_end_matches('/')).collect();
    assert!(ignored.contains("target") && ignored.contains(".git"), ".dockerignore: {ignore}");
}

#[test]
fn stack_config_loads() {
    let mut config = stack_config();
    assert_eq!(config.response.mode, Mode::DryRun, "no revocation service in the stack");
    // The token file is made in the stack's volume when it starts: a stand-in here.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("http-token");
    std::fs::write(&token, "0123456789abcdefghijklmnopqrstuvwxyzABCD").unwrap();
    config.http.token_file = Some(token);
    assert_eq!(config.engine().err(), None, "the stack's configuration builds an engine");
}

/// nhid listens on all interfaces in the stack, which it refuses without a token: the token
/// file it is given is made, before it starts, in a volume it mounts.
#[test]
fn compose_gives_nhid_the_token_its_listener_needs() {
    let c = compose();
    let token_file = stack_config().http.token_file.expect("the stack sets http.token_file");
    let dir = token_file.parent().unwrap().to_str().unwrap().to_string();
    let nhid = service(&c, "nhid");
    let (volume, _) =
        mounts(nhid).into_iter().find(|(_, target)| *target == dir).expect("nhid mounts the token's directory");
    assert!(!is_bind(&volume), "a named volume, not a file in the repository: {volume}");
    let (maker, made_by) = c["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "nhid")
        .find(|(_, s)| mounts(s).iter().any(|(source, target)| *source == volume && *target == dir))
        .expect("a service writes the token into the volume");
    let script = command_text(&made_by["command"]);
    assert!(script.contains(token_file.to_str().unwrap()) && script.contains("/dev/urandom"), "{script}");
    assert!(script.contains("chown 10001:10001"), "readable by the image's user: {script}");
    assert_eq!(depends_on(nhid).get(maker.as_str()).map(String::as_str), Some("service_completed_successfully"));
}
