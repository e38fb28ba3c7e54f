//! The Panther rule-test corpus and attack test scenarios in
//! `tests/data/panther_analysis_labeled_events` (panther-labs/panther-analysis,
//! Apache-2.0; see its README.txt): hand-made or anonymised real events of many log types,
//! read in place, never copied into the repository.

use std::io::BufRead;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct RuleTest {
    pub rule_id: String,
    pub test_name: String,
    /// The log types the rule is written for; a rule listing several carries samples of each.
    pub log_types: Option<Vec<String>>,
    pub log: serde_json::Value,
}

impl RuleTest {
    /// The sample's own log type: `p_log_type` when the sample says, else the rule's only one.
    pub fn log_type(&self) -> Option<&str> {
        match self.log.get("p_log_type").and_then(|t| t.as_str()) {
            Some(t) => Some(t),
            None => match self.log_types.as_deref() {
                Some([only]) => Some(only),
                _ => None,
            },
        }
    }

    /// The event as one message (compact JSON), as a stream would carry it.
    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.log).expect("serializable")
    }
}

fn dataset(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/panther_analysis_labeled_events").join(file)
}

/// The lines of a gzip JSON-lines file of the dataset, each parsed as `T`.
fn read_gzip_lines<T: serde::de::DeserializeOwned>(file: &str) -> Vec<T> {
    let path = dataset(file);
    let opened = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!("the panther dataset is required by this test and is missing at {}: {e}", path.display())
    });
    std::io::BufReader::new(flate2::read::GzDecoder::new(opened))
        .lines()
        .map(|line| serde_json::from_str(&line.expect("readable gzip line")).expect("a dataset line"))
        .collect()
}

/// Every rule test of the corpus, in file order.
pub fn rule_tests() -> Vec<RuleTest> {
    read_gzip_lines("rule_tests.jsonl.gz")
}

/// One event of Panther's multi-source attack stories (`test_scenarios/*.yml` upstream; see
/// `test_scenarios/<scenario>.README.md` beside the data for each story's timeline).
#[derive(Clone, Debug, Deserialize)]
pub struct ScenarioEvent {
    pub scenario: String,
    /// The upstream file the event came from (`attacker_cloudtrail`, `victim_okta`, ...).
    pub file: String,
    /// Panther's log type: `AWS.CloudTrail`, `Okta.SystemLog`, `AWS.VPCFlow`, ...
    pub log_type: String,
    /// `attacker`, `victim_benign` or `unlabeled`, from the upstream file names.
    pub role: String,
    /// Position in its upstream file.
    pub seq: u32,
    /// The record as the log source wrote it: an object, or a raw line for text formats.
    pub log: serde_json::Value,
}

/// The events of one attack story, in file order (not time order).
pub fn scenario_events(scenario: &str) -> Vec<ScenarioEvent> {
    let all: Vec<ScenarioEvent> = read_gzip_lines("test_scenarios/scenario_events.jsonl.gz");
    let events: Vec<ScenarioEvent> = all.into_iter().filter(|e| e.scenario == scenario).collect();
    assert!(!events.is_empty(), "no events of scenario {scenario} in the panther test scenarios");
    events
}

/// The Falco Kubernetes audit traces (`tests/data/falco_k8s_audit_traces/k8s_audit`),
/// by file name, each one event per line as Falco's tests fed them.
pub fn falco_traces() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/falco_k8s_audit_traces/k8s_audit");
    let mut traces: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!("the falco trace dataset is required by this test and is missing at {}: {e}", dir.display())
        })
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).expect("readable trace"))
        })
        .collect();
    traces.sort();
    traces
}

/// A format's own `detect` and auto-detection claim no event of another log type among
/// Panther's rule tests, and none of the behaviour fixtures' events (canonical, CloudTrail).
pub fn assert_claims_no_other_event(log_type: &str, format: nhid_decode::Format, own: fn(&[u8]) -> bool) {
    let mut checked = 0;
    for t in rule_tests().iter().filter(|t| t.log_type() != Some(log_type)) {
        let bytes = t.bytes();
        assert!(!own(&bytes), "{:?}: {} / {}", t.log_type(), t.rule_id, t.test_name);
        assert_ne!(nhid_decode::detect(&bytes), Some(format), "{:?}: {} / {}", t.log_type(), t.rule_id, t.test_name);
        checked += 1;
    }
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for dir in std::fs::read_dir(fixtures).expect("tests/fixtures") {
        let input = std::fs::read(dir.expect("an entry").path().join("input.jsonl")).unwrap_or_default();
        for line in input.split(|&b| b == b'\n') {
            assert!(!own(line), "{}", String::from_utf8_lossy(line));
            checked += 1;
        }
    }
    assert!(checked > 3000, "only {checked} events checked");
}
