//! The configuration as operators write it: `nhid.example.toml` documents every field and
//! loads to the defaults; `NHID__*` environment variables override the file and flags
//! override both; every error, from every source, is reported at once; JSON logs never show
//! a secret.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nhid::config::Config;
use nhid_model::event::PrincipalType;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("nhid.example.toml")
}

fn example() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

/// `nhid` with `vars` as its only `NHID__*` variables and no `RUST_LOG`, whatever the
/// environment the tests run in.
fn nhid(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nhid"));
    cmd.args(args).env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NHID__") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(vars.iter().copied());
    cmd
}

fn check(args: &[&str], vars: &[(&str, &str)]) -> Output {
    nhid(&[&["check"], args].concat(), vars).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every key path of a configuration serialized to TOML (`kafka.properties.security.protocol`
/// is `kafka.properties` + `security.protocol`); tables are walked, not listed.
fn key_paths(value: &toml::Value, prefix: &str, paths: &mut BTreeSet<String>) {
    if let toml::Value::Table(table) = value {
        for (key, value) in table {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value {
                toml::Value::Table(_) => key_paths(value, &path, paths),
                _ => {
                    paths.insert(path);
                }
            }
        }
    }
}

/// The key paths the example mentions, settings commented out (`# key = value`) included.
fn documented_paths(text: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut paths = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, _)) = line.split_once(" = ") {
            let key = key.trim_matches('"');
            if !key.contains(' ') {
                paths.insert(if section.is_empty() { key.to_string() } else { format!("{section}.{key}") });
            }
        }
    }
    paths
}

/// The example with its optional settings (`# key = value` lines) switched on.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(setting) if setting.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')) => setting,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A configuration with every optional field and every map set, so that serializing it
/// shows every key path (`Config::default()` has no `instance_id`, no lanes...).
fn populated() -> Config {
    let mut c = Config {
        detectors_dir: Some("detectors".into()),
        inventory: Some("inventory.toml".into()),
        ..Config::default()
    };
    c.state.learning_secs.per_type.insert(PrincipalType::AiAgent, 43_200);
    c.kafka.instance_id = Some("nhid-0".into());
    c.http.token_file = Some("/run/secrets/nhid-http-token".into());
    c.kafka.lifecycle_topic = Some("nhid.lifecycle".into());
    c.kafka.action_results_topic = Some("nhid.action-results".into());
    c.kafka.lanes.insert("machine".into(), "audit.machine".into());
    c.kafka.properties.insert("security.protocol".into(), "SASL_SSL".into());
    c.decode.topics.insert("audit-cloudtrail".into(), nhid_decode::Format::Cloudtrail);
    c
}

#[test]
fn the_example_documents_every_field_with_its_environment_variable() {
    let mut fields = BTreeSet::new();
    for config in [Config::default(), populated()] {
        key_paths(&toml::Value::try_from(&config).unwrap(), "", &mut fields);
    }
    assert!(fields.contains("kafka.properties.security.protocol") && fields.contains("log.format"));
    let text = example();
    let documented = documented_paths(&text);
    let missing: Vec<_> = fields.difference(&documented).collect();
    assert!(missing.is_empty(), "nhid.example.toml does not document {missing:?}");
    // Property and topic names hold dots, which environment variable names cannot.
    let without_variable: Vec<_> = fields
        .iter()
        // Suppressions are a list of tables: a file's to write.
        .filter(|path| !path.starts_with("kafka.properties.") && !path.starts_with("decode.topics."))
        .filter(|path| *path != "suppressions")
        .map(|path| format!("NHID__{}", path.to_uppercase().replace('.', "__")))
        .filter(|variable| !text.contains(variable.as_str()))
        .collect();
    assert!(without_variable.is_empty(), "nhid.example.toml does not name {without_variable:?}");
}

#[test]
fn the_example_loads_to_the_defaults() {
    let (config, errors) = Config::layered(Some(&example_path()), []);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(config, Config::default(), "the example's values are the defaults");
    assert_eq!(config.validate(), Vec::<String>::new());
}

/// A skew of none would refuse every event a clock ahead by a millisecond sends; one of
/// more than a day lets a forged date move nhid's clock.
#[test]
fn a_clock_skew_outside_a_second_to_a_day_is_refused() {
    for bad in [0, 86_401, u64::MAX] {
        let mut config = Config::default();
        config.decode.max_clock_skew_secs = bad;
        let errors = config.validate();
        assert!(errors.iter().any(|e| e.starts_with("decode.max_clock_skew_secs")), "{bad}: {errors:?}");
    }
}

/// The optional settings are real fields with valid values, and the config crate reads maps
/// whose keys hold dots (`[kafka.properties]`) and enum values exactly as the TOML parser did.
#[test]
fn the_examples_optional_settings_load_like_plain_toml() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nhid.toml");
    let text = uncommented(&example());
    std::fs::write(&path, &text).unwrap();
    let (config, errors) = Config::layered(Some(&path), []);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(config.validate(), Vec::<String>::new());
    assert_eq!(config, toml::from_str::<Config>(&text).unwrap(), "the config crate reads what toml reads");
    assert_eq!(config.kafka.properties["sasl.password"], "...");
    assert_eq!(config.kafka.properties.len(), 4);
    assert_eq!(config.kafka.lanes["human"], "audit.human");
    assert_eq!(config.decode.topics["audit-cloudtrail"], nhid_decode::Format::Cloudtrail);
    assert_eq!(config.kafka.instance_id.as_deref(), Some("nhid-0"));
    assert_eq!(config.state.learning_secs.per_type[&PrincipalType::AiAgent], 43_200);
}

#[test]
fn the_stack_configuration_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nhid/nhid.toml");
    let (config, errors) = Config::layered(Some(&path), []);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(config.kafka.lifecycle_topic.as_deref(), Some("nhid.lifecycle"));
}

/// Precedence, observed through validation: the file's bad value is fixed by a variable, a
/// variable's bad directory by a flag.
#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(&config, "[state]\nmax_identities = 0\n").unwrap();
    let config = config.to_str().unwrap();

    let file_only = check(&["--config", config], &[]);
    assert_eq!(file_only.status.code(), Some(64), "{}", stderr(&file_only));
    assert!(stderr(&file_only).contains("state.max_identities"));

    let fixed = check(&["--config", config], &[("NHID__STATE__MAX_IDENTITIES", "5")]);
    assert!(fixed.status.success(), "{}", stderr(&fixed));

    let missing = dir.path().join("no-such-dir");
    let broken = [("NHID__STATE__MAX_IDENTITIES", "5"), ("NHID__DETECTORS_DIR", missing.to_str().unwrap())];
    let bad_dir = check(&["--config", config], &broken);
    assert_eq!(bad_dir.status.code(), Some(64));
    assert!(stderr(&bad_dir).contains("no-such-dir"), "{}", stderr(&bad_dir));

    let detectors = concat!(env!("CARGO_MANIFEST_DIR"), "/detectors");
    let flag_wins = check(&["--config", config, "--detectors", detectors], &broken);
    assert!(flag_wins.status.success(), "{}", stderr(&flag_wins));
}

/// `NHID__KAFKA__TOPICS` is a list: with `nhid.alerts` as its second element nhid would read
/// its own output, which only a list of two can say.
#[test]
fn topics_from_the_environment_are_a_comma_separated_list() {
    let out = check(&[], &[("NHID__KAFKA__TOPICS", "audit,nhid.alerts")]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("\"nhid.alerts\" is also an input topic"), "{}", stderr(&out));
    assert!(check(&[], &[("NHID__KAFKA__TOPICS", "audit,audit-eu")]).status.success());
}

#[test]
fn an_unknown_variable_under_the_prefix_is_an_error_naming_it() {
    let out = check(&[], &[("NHID__HTTP__LISTN", "0.0.0.0:9898")]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(err.contains("NHID__HTTP__LISTN") && err.contains("listn"), "{err}");
    // A single underscore is not the prefix: the test suite's own switches are not configuration.
    assert!(check(&[], &[("NHID_SKIP_BROKER_TESTS", "1")]).status.success());
}

/// Two semantic errors in the file, a mistyped value and an unknown key in the environment,
/// a bad level: five errors, one run.
#[test]
fn every_error_of_the_file_and_the_environment_at_once_with_exit_code_64() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(&config, "[state]\nmax_identities = 0\n[kafka]\ncommit_interval_ms = 0\n").unwrap();
    let vars = [("NHID__HTTP__LISTEN", "not-an-address"), ("NHID__KAFKA__GRUOP", "nhid"), ("NHID__LOG__LEVEL", "[[[")];
    let out = check(&["--config", config.to_str().unwrap()], &vars);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    for needle in [
        "state.max_identities",
        "kafka.commit_interval_ms",
        "NHID__HTTP__LISTEN",
        "NHID__KAFKA__GRUOP",
        "log.level",
        "5 configuration error(s)",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

/// An IP-to-ASN table is checked with the rest: every bad line, and a directory holding
/// neither table, named at once; a good one is reported loaded.
#[test]
fn an_asn_table_s_every_bad_line_is_named_and_a_good_one_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn");
    std::fs::create_dir(&asn).unwrap();
    std::fs::write(asn.join("asn-ipv4.csv"), "73.0.0.0,73.255.255.255,7922,Comcast\n73.0.0.0,x,1,bad\n").unwrap();
    std::fs::write(asn.join("asn-ipv6.csv"), "2601::,2601:ff::,AS7922,bad\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(&config, format!("ip_asn_dir = {:?}\n[state]\nmax_identities = 0\n", asn.display().to_string()))
        .unwrap();
    let out = check(&["--config", config.to_str().unwrap()], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    for needle in [
        "ip_asn_dir: ".to_string() + &asn.join("asn-ipv4.csv").display().to_string() + ":2: ",
        "ip_asn_dir: ".to_string() + &asn.join("asn-ipv6.csv").display().to_string() + ":1: ",
        "state.max_identities".into(),
        "3 configuration error(s)".into(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    }
    let out = check(&[], &[("NHID__IP_ASN_DIR", empty.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("neither asn-ipv4.csv nor asn-ipv6.csv"), "{}", stderr(&out));
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/asn");
    let out = check(&[], &[("NHID__IP_ASN_DIR", data.to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout.contains("1261 autonomous systems' ranges"), "{stdout}");
}

/// serde stops at a file's first error; the file is split until every entry at fault is
/// named, and what is readable of it is still layered and validated.
#[test]
fn every_error_in_one_file_is_named_and_the_rest_of_it_still_validated() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(
        &config,
        "[state]\nmax_identities = \"many\"\nmax_memory_mib = 0\nidle_ttl_secs = -1\n\
         [decode]\nformat = \"xml\"\nmax_event_bytes = 4096\n[kafka]\ngruop = \"nhid\"\ncommit_interval_ms = 0\n\
         [http]\nlisten = \"nowhere\"\n",
    )
    .unwrap();
    let out = check(&["--config", config.to_str().unwrap()], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    let file = config.display().to_string();
    for needle in [
        format!("{file}: decode.format: unknown variant `xml`"),
        format!("{file}: http.listen: "),
        format!("{file}: kafka: unknown field `gruop`"),
        format!("{file}: state.idle_ttl_secs: invalid type"),
        format!("{file}: state.max_identities: invalid type"),
        // What was readable is validated: these two are fine types with bad values.
        "error: state.max_memory_mib: must be positive".into(),
        "error: kafka.commit_interval_ms: must be positive".into(),
        "7 configuration error(s)".into(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    }
}

/// librdkafka checks client properties only when a client is built: `check` builds the
/// clients `run` would, so both refuse a bad property with exit code 64, naming every bad
/// property and never showing a value (librdkafka's own message ends with it).
#[test]
fn check_refuses_what_the_kafka_clients_would_and_never_shows_the_value() {
    const SECRET: &str = "hunter2-do-not-show";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    let write = |properties: &str| std::fs::write(&config, format!("[kafka.properties]\n{properties}")).unwrap();
    write(&format!("\"sasl.passwrod\" = \"{SECRET}\"\n\"linger.ms\" = \"{SECRET}\"\n"));
    let config = config.to_str().unwrap();
    let out = check(&["--config", config], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("kafka.properties.sasl.passwrod: No such configuration property"), "{err}");
    assert!(err.contains("kafka.properties.linger.ms: "), "{err}");
    assert!(!err.contains(SECRET), "{err}");

    // Each valid alone; the idempotent producer needs `acks=all`. `run` stops before any
    // connection, with the same code and message as `check`.
    write("acks = \"1\"\n");
    for args in [&["check", "--config", config][..], &["run", "--config", config, "--brokers", "127.0.0.1:1"]] {
        let out = nhid(args, &[]).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains("kafka.properties: the producer: ") && err.contains("acks"), "{args:?}: {err}");
    }
}

/// Durations past what milliseconds hold disabled detection silently: an idle timeout of
/// 1e16 s gave no alerts, a learning period as long learned nothing, a cooldown as long
/// wrapped to none. Each is refused and named, with a detector file's cooldown.
#[test]
fn durations_past_ten_years_are_refused_each_named() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("detectors/rate_spike.toml");
    let text =
        std::fs::read_to_string(builtin).unwrap().replace("cooldown_secs = 3600", "cooldown_secs = 10000000000000000");
    assert!(text.contains("10000000000000000"));
    std::fs::write(dir.path().join("rate_spike.toml"), text).unwrap();
    let vars = [
        ("NHID__STATE__IDLE_TTL_SECS", "1e16"),
        ("NHID__STATE__LEARNING_SECS__DEFAULT", "10000000000000000"),
        ("NHID__RESPONSE__IDENTITY_COOLDOWN_SECS", "18446744073709551615"),
    ];
    let out = check(&["--detectors", dir.path().to_str().unwrap()], &vars);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    for needle in
        ["state.idle_ttl_secs", "state.learning_secs", "response.identity_cooldown_secs", "rate_spike: cooldown_secs"]
    {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

/// A type error names its file and key.
#[test]
fn a_mistyped_value_in_the_file_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(&config, "[decode]\nmax_event_bytes = \"big\"\n").unwrap();
    let out = check(&["--config", config.to_str().unwrap()], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains(&format!("{}: decode.max_event_bytes", config.display())), "{err}");
}

/// `nhid run` against a broker that is not there, with JSON logs: every line of standard
/// error is one JSON object, and the SASL password is in none of them.
#[test]
fn json_logs_are_one_object_per_line_and_never_show_a_secret() {
    const PASSWORD: &str = "hunter2-do-not-log";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"PLAIN\"\n\
             \"sasl.username\" = \"nhid\"\n\"sasl.password\" = \"{PASSWORD}\"\n\"reconnect.backoff.ms\" = \"100\"\n"
        ),
    )
    .unwrap();
    // Port 1 on loopback: refused at once, so librdkafka logs its connection errors.
    let args =
        ["run", "--config", config.to_str().unwrap(), "--brokers", "127.0.0.1:1", "--http-listen", "127.0.0.1:0"];
    let mut child =
        nhid(&args, &[("NHID__LOG__FORMAT", "json")]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nhid run did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains(PASSWORD) && !String::from_utf8_lossy(&out.stdout).contains(PASSWORD), "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}")))
        .collect();
    let start = lines.iter().find(|l| l["message"] == "starting the Kafka runtime").expect("the start is logged");
    let properties = start["properties"].as_str().expect("properties logged as a field");
    assert!(properties.contains("sasl.password") && properties.contains("<redacted>"), "{properties}");
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{err}");
}
