//! The typed configuration: defaults, then the TOML file (`nhid.example.toml` documents every
//! field), then `NHID__SECTION__KEY` environment variables; the command line's flags come last
//! (`cli`). Unknown fields are rejected in the file and the environment alike, and every error
//! is reported at once (exit code 64 in the CLI).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use nhid_decode::{DEFAULT_MAX_EVENT_BYTES, Format};
use nhid_engine::context::asn::Asns;
use nhid_engine::context::network::Ranges;
use nhid_engine::detect;
use nhid_engine::inventory::Inventory;
use nhid_engine::respond::policy::ResponseConfig;
use nhid_engine::respond::suppress::{SuppressionConfig, Suppressions};
use nhid_engine::rules::Rules;
use nhid_engine::state::StateConfig;
use nhid_engine::{Engine, EngineConfig};
use nhid_http::HttpConfig;
use nhid_kafka::KafkaConfig;
use nhid_model::time::{MAX_SETTING_SECS, Millis, SECOND};

/// Exit code for bad configuration (`EX_CONFIG` in sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// Environment variables under this prefix override the file: `NHID__HTTP__LISTEN` is
/// `http.listen`, `NHID__DETECTORS_DIR` is `detectors_dir`.
pub const ENV_PREFIX: &str = "NHID__";

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of detector instances (`*.toml`); the built-in set when absent.
    pub detectors_dir: Option<PathBuf>,
    /// Directory of content rules (Sigma, `*.yml`, searched recursively); the set shipped in
    /// `rules/` when absent.
    pub rules_dir: Option<PathBuf>,
    /// Inventory file (owners, type overrides, protected principals); optional.
    pub inventory: Option<PathBuf>,
    /// Directory of published address ranges, one folder per provider (the layout of
    /// `data/ipranges`), to place sources by; the dated copy built in when absent.
    pub ip_ranges_dir: Option<PathBuf>,
    /// Directory holding an IP-to-ASN table (`asn-ipv4.csv`, `asn-ipv6.csv` as ip-location-db
    /// publishes them), to place public addresses in no published range by their autonomous
    /// system; none when absent (they are all one place, `public`).
    pub ip_asn_dir: Option<PathBuf>,
    #[serde(default)]
    pub decode: DecodeConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub response: ResponseConfig,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Accepted behaviours whose alerts are dropped, each with an owner, a reason and an
    /// expiry (`[[suppressions]]`; docs/soc.md).
    #[serde(default)]
    pub suppressions: Vec<SuppressionConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// `auto` detects the format of every message.
    #[serde(default)]
    pub format: Format,
    /// Per input topic (or `replay` file), a format that overrides `format`: a topic fed by
    /// one platform's exporter need not be sniffed, and a look-alike message cannot be misread.
    #[serde(default)]
    pub topics: BTreeMap<String, Format>,
    /// Larger messages are dead-lettered unread (`too_large`).
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// How far an event's time may be ahead of the transport's (a Kafka message's
    /// timestamp) and of the wall clock; later events are dead-lettered (`implausible_time`).
    #[serde(default = "default_max_clock_skew_secs")]
    pub max_clock_skew_secs: u64,
}

fn default_max_event_bytes() -> usize {
    DEFAULT_MAX_EVENT_BYTES
}

fn default_max_clock_skew_secs() -> u64 {
    (nhid_engine::DEFAULT_MAX_CLOCK_SKEW / SECOND) as u64
}

/// The longest skew accepted: a day ahead is no clock's error.
const MAX_CLOCK_SKEW_SECS: u64 = 86_400;

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            format: Format::Auto,
            topics: BTreeMap::new(),
            max_event_bytes: default_max_event_bytes(),
            max_clock_skew_secs: default_max_clock_skew_secs(),
        }
    }
}

/// The `[log]` section. Logs go to standard error.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `RUST_LOG`-style filter (`info`, `warn,nhid=debug`); `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Pretty, level: "info".into() }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Pretty,
    /// One JSON object per line, fields at the top level, for log shippers.
    Json,
}

impl Config {
    /// The layered configuration (see [`Config::layered`]), validated.
    pub fn load(path: Option<&Path>) -> Result<Config, Vec<String>> {
        let (config, mut errors) = Config::layered(path, std::env::vars_os());
        errors.extend(config.validate());
        if errors.is_empty() { Ok(config) } else { Err(errors) }
    }

    /// Defaults, then the file at `path` (if any), then the `NHID__*` variables of `env`; not
    /// validated, so that command-line flags can still override it. Every source is read on
    /// its own first, so each error names its file or variable, and one bad variable does not
    /// hide another; the configuration returned layers the sources that were readable.
    pub fn layered(path: Option<&Path>, env: impl IntoIterator<Item = (OsString, OsString)>) -> (Config, Vec<String>) {
        let mut errors = Vec::new();
        let mut layers = config::Config::builder();
        if let Some(path) = path {
            let name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let (source, found) = read(config::File::from_str(&text, config::FileFormat::Toml));
                    errors.extend(found.into_iter().map(|e| format!("{name}: {e}")));
                    layers = layers.add_source(source);
                }
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        // Sorted: the environment's order is arbitrary, and errors should not move between runs.
        let mut vars: Vec<_> = env.into_iter().filter(|(k, _)| k.to_string_lossy().starts_with(ENV_PREFIX)).collect();
        vars.sort();
        for (name, value) in vars {
            let name = name.to_string_lossy().into_owned();
            let Ok(value) = value.into_string() else {
                errors.push(format!("{name}: not valid UTF-8"));
                continue;
            };
            let variable = config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
                .separator("__")
                // Numbers and booleans typed, so that fields deserialized through maps (the
                // per-type learning periods) accept them; strings still accept "42".
                .try_parsing(true)
                // The one list field; elsewhere a comma is data (`kafka.brokers`).
                .list_separator(",")
                .with_list_parse_key("kafka.topics")
                .source(Some(config::Map::from([(name.clone(), value)])));
            let (source, found) = read(variable);
            errors.extend(found.into_iter().map(|e| format!("{name}: {e}")));
            layers = layers.add_source(source);
        }
        match layers.build().and_then(config::Config::try_deserialize) {
            Ok(config) => (config, errors),
            Err(e) => {
                // Each source was readable on its own; only their combination (a table in
                // the file replaced by a value in the environment, say) can fail here.
                errors.push(format!("file and environment together: {}", describe(e)));
                (Config::default(), errors)
            }
        }
    }

    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, msg: &str| {
            if !ok {
                errors.push(msg.to_string());
            }
        };
        check(self.decode.max_event_bytes > 0, "decode.max_event_bytes: must be positive");
        check(
            (1..=MAX_CLOCK_SKEW_SECS).contains(&self.decode.max_clock_skew_secs),
            "decode.max_clock_skew_secs: must be between 1 and 86400 (a day)",
        );
        check(self.state.max_identities > 0, "state.max_identities: must be positive");
        check(self.state.max_memory_mib > 0, "state.max_memory_mib: must be positive");
        let secs = |v: u64| (1..=MAX_SETTING_SECS).contains(&v);
        check(secs(self.state.idle_ttl_secs), "state.idle_ttl_secs: must be between 1 and 315360000 (ten years)");
        let learning = &self.state.learning_secs;
        check(
            [learning.default].iter().chain(learning.per_type.values()).all(|&v| v <= MAX_SETTING_SECS),
            "state.learning_secs: at most 315360000 (ten years)",
        );
        check(
            self.response.identity_cooldown_secs <= MAX_SETTING_SECS,
            "response.identity_cooldown_secs: at most 315360000 (ten years)",
        );
        check(self.response.max_actions_per_minute > 0, "response.max_actions_per_minute: must be positive");
        check(
            secs(self.response.breaker_cooldown_secs),
            "response.breaker_cooldown_secs: must be between 1 and 315360000 (ten years)",
        );
        check(
            self.response.act_max_probability > 0.0 && self.response.act_max_probability <= 1.0,
            "response.act_max_probability: must be in (0, 1]",
        );
        errors.extend(self.kafka.validate());
        errors.extend(self.http.validate());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            errors.push(format!("log.level: {e}"));
        }
        errors
    }

    /// Loads detectors and inventory and builds the engine, reporting every error at once
    /// (the HTTP token's too: it is read here so that `nhid check` reports it).
    pub fn engine(&self) -> Result<Engine, Vec<String>> {
        let mut errors = self.validate();
        if let Err(e) = self.http.token() {
            errors.push(e);
        }
        let detectors = detect::load(self.detectors_dir.as_deref()).map_err(|e| errors.extend(e.messages())).ok();
        let inventory = match &self.inventory {
            None => Some(Inventory::default()),
            Some(p) => Inventory::load(p).map_err(|e| errors.extend(e.messages())).ok(),
        };
        let loaded = match &self.ip_ranges_dir {
            None => Some(None),
            Some(dir) => Ranges::load(dir)
                .map(Some)
                .map_err(|e| errors.extend(e.problems.iter().map(|p| format!("ip_ranges_dir: {p}"))))
                .ok(),
        };
        let asns = self.ip_asn_dir.as_ref().map(|dir| {
            Asns::load(dir).map_err(|e| errors.extend(e.problems.iter().map(|p| format!("ip_asn_dir: {p}")))).ok()
        });
        // `None`: a problem reported; `Some(None)`: the shipped ranges as they are.
        let ranges = match (loaded, asns) {
            (Some(ranges), None) => Some(ranges.map(std::sync::Arc::new)),
            (Some(ranges), Some(Some(asns))) => {
                Some(Some(std::sync::Arc::new(ranges.unwrap_or_else(Ranges::shipped).with_asns(asns))))
            }
            _ => None,
        };
        let (rules, loaded) = match &self.rules_dir {
            None => Rules::builtin(),
            Some(dir) => Rules::load(dir),
        };
        errors.extend(loaded.errors.into_iter().map(|e| format!("rules_dir: {e}")));
        let suppressions = Suppressions::compile(&self.suppressions).map_err(|e| errors.extend(e)).ok();
        match (detectors, inventory, ranges, suppressions) {
            (Some(d), Some(i), Some(ranges), Some(suppressions)) if errors.is_empty() => Ok(Engine::new(
                d,
                i,
                EngineConfig {
                    format: self.decode.format,
                    topic_formats: self.topic_formats(),
                    normalize: !self.kafka.lanes.is_empty(),
                    max_event_bytes: self.decode.max_event_bytes,
                    state: self.state.clone(),
                    response: self.response.clone(),
                    ranges,
                    rules: (!rules.is_empty()).then(|| std::sync::Arc::new(rules)),
                    suppressions: std::sync::Arc::new(suppressions),
                    max_clock_skew: self.decode.max_clock_skew_secs as Millis * SECOND,
                    ..EngineConfig::default()
                },
            )),
            _ => Err(errors),
        }
    }
}

impl Config {
    /// The per-topic formats: the configured ones, and the re-keyed events' (canonical,
    /// whatever `decode.format` says of the audit topics).
    fn topic_formats(&self) -> Vec<(String, Format)> {
        let mut formats: Vec<_> = self.decode.topics.clone().into_iter().collect();
        if self.kafka.rekeys() {
            formats.push((self.kafka.events_topic.clone(), Format::Native));
        }
        formats
    }
}

/// One source on its own, checked by deserializing it over the defaults: what of it is
/// readable, and every error it holds, not only the first (where serde stops). The readable
/// rest is layered, so that validation still sees it and reports its errors too.
fn read(source: impl config::Source + Send + Sync + 'static) -> (Table, Vec<String>) {
    let table = match config::Config::builder().add_source(source).build().and_then(|c| config::Source::collect(&c)) {
        Ok(table) => table,
        Err(e) => return (Table::default(), vec![describe(e)]),
    };
    let mut errors = Vec::new();
    let readable = readable(&[], table, &mut errors);
    (Table(readable), errors)
}

/// The entries of `table` (found at `path`) that deserialize, each alone over the defaults
/// (every field has one); an entry that fails and is a table itself is split in turn, down
/// to the entries at fault, whose errors are pushed. In key order, so that errors do not
/// move between runs.
fn readable(path: &[&str], table: Map, errors: &mut Vec<String>) -> Map {
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept = Map::new();
    for (key, value) in entries {
        let path = [path, &[key.as_str()]].concat();
        let Err(error) = alone(&path, value.clone()) else {
            kept.insert(key, value);
            continue;
        };
        let found = errors.len();
        if let config::ValueKind::Table(inner) = value.kind {
            let inner = readable(&path, inner, errors);
            if errors.len() > found {
                kept.insert(key, config::Value::new(None, inner));
            }
        }
        if errors.len() == found {
            errors.push(describe(error));
        }
    }
    kept
}

type Map = config::Map<String, config::Value>;

/// A source's readable entries, as a source.
#[derive(Clone, Debug, Default)]
struct Table(Map);

impl config::Source for Table {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map, config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// The configuration with only `value` at `path`, deserialized.
fn alone(path: &[&str], value: config::Value) -> Result<Config, config::ConfigError> {
    let nested = path.iter().rev().fold(value, |value, key| {
        config::Value::new(None, config::ValueKind::from(config::Map::from([(key.to_string(), value)])))
    });
    Config::deserialize(nested)
}

/// `key: what is wrong`: the config crate's own messages end with the source, which the
/// caller names first instead.
fn describe(error: config::ConfigError) -> String {
    match error {
        config::ConfigError::Type { unexpected, expected, key: Some(key), .. } => {
            format!("{key}: invalid type: {unexpected}, expected {expected}")
        }
        config::ConfigError::At { error, key: Some(key), .. } => format!("{key}: {error}"),
        config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nhid_model::event::PrincipalType;

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn layered(file: &str, vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nhid.toml");
        std::fs::write(&path, file).unwrap();
        Config::layered(Some(&path), env(vars))
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let file = "[kafka]\ngroup = \"from-file\"\nbrokers = \"file:9092\"\n[state]\nmax_identities = 7\n";
        let (config, errors) = layered(file, &[("NHID__KAFKA__GROUP", "from-env"), ("NHID__LOG__FORMAT", "json")]);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(config.kafka.group, "from-env");
        assert_eq!(config.kafka.brokers, "file:9092");
        assert_eq!(config.state.max_identities, 7);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.response, ResponseConfig::default());
    }

    /// Values are typed by the field they land in: a list only where the field is one, a
    /// number-looking value still a string in a string field.
    #[test]
    fn environment_values_take_the_type_of_their_field() {
        let vars = [
            ("NHID__KAFKA__TOPICS", "audit,audit-eu"),
            ("NHID__KAFKA__BROKERS", "a:9092,b:9092"),
            ("NHID__KAFKA__GROUP", "42"),
            ("NHID__KAFKA__INSTANCE_ID", "7"),
            ("NHID__STATE__IDLE_TTL_SECS", "60"),
            ("NHID__STATE__LEARNING_SECS__AI_AGENT", "3600"),
            ("NHID__HTTP__LISTEN", "0.0.0.0:9898"),
            ("NHID__RESPONSE__MODE", "enforce"),
            ("NHID__DETECTORS_DIR", "/x"),
        ];
        let (config, errors) = Config::layered(None, env(&vars));
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(config.kafka.topics, ["audit", "audit-eu"]);
        assert_eq!(config.kafka.brokers, "a:9092,b:9092");
        assert_eq!(config.kafka.group, "42");
        assert_eq!(config.kafka.instance_id.as_deref(), Some("7"));
        assert_eq!(config.state.idle_ttl_secs, 60);
        assert_eq!(config.state.learning_secs.per_type[&PrincipalType::AiAgent], 3600);
        assert_eq!(config.http.listen.to_string(), "0.0.0.0:9898");
        assert_eq!(config.response.mode, nhid_engine::respond::alert::Mode::Enforce);
        assert_eq!(config.detectors_dir, Some(PathBuf::from("/x")));
    }

    #[test]
    fn other_variables_are_not_configuration() {
        let vars = [("NHID_SKIP_BROKER_TESTS", "1"), ("HOME", "/root"), ("nhid__http__listn", "x")];
        assert_eq!(Config::layered(None, env(&vars)), (Config::default(), Vec::new()));
    }

    /// Each variable is read on its own: every bad one is named, and the good ones and the
    /// file still apply (their semantic errors are reported too).
    #[test]
    fn every_bad_variable_is_named() {
        let vars = [
            ("NHID__STATE__MAX_IDENTITIES", "many"),
            ("NHID__DECODE__FORMAT", "xml"),
            ("NHID__STATE__LEARNING_SECS__AI_AGNET", "1"),
            ("NHID__KAFKA__GROUP", "good"),
        ];
        let (config, errors) = layered("[kafka]\ncommit_interval_ms = 0\n", &vars);
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("NHID__DECODE__FORMAT: decode.format"), "{errors:#?}");
        assert!(errors[1].starts_with("NHID__STATE__LEARNING_SECS__AI_AGNET: ") && errors[1].contains("ai_agnet"));
        assert!(errors[2].starts_with("NHID__STATE__MAX_IDENTITIES: state.max_identities"), "{errors:#?}");
        assert_eq!(config.kafka.group, "good");
        assert_eq!(config.validate(), ["kafka.commit_interval_ms: must be positive and at most ten years"]);
    }

    #[test]
    fn a_missing_or_broken_file_is_named() {
        let (_, errors) = Config::layered(Some(Path::new("/no/such/nhid.toml")), []);
        assert!(errors[0].starts_with("/no/such/nhid.toml: "), "{errors:?}");
        let (_, errors) = layered("[kafka\n", &[]);
        assert!(errors[0].contains("nhid.toml: ") && errors[0].contains("line 1"), "{errors:?}");
    }

    #[test]
    fn an_invalid_log_level_is_a_configuration_error() {
        let config =
            Config { log: LogConfig { level: "nhid=loud".into(), ..LogConfig::default() }, ..Config::default() };
        assert_eq!(config.validate().len(), 1);
        assert!(config.validate()[0].starts_with("log.level: "));
    }
}
