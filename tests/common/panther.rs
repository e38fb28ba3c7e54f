//! The Panther rule-test corpus in `../shared/datasets/panther_analysis_labeled_events`
//! (panther-labs/panther-analysis, Apache-2.0; see its README.txt): hand-made or anonymised
//! real events of many log types, read in place, never copied into the repository.

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

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/panther_analysis_labeled_events/rule_tests.jsonl.gz")
}

/// Every rule test of the corpus, in file order.
pub fn rule_tests() -> Vec<RuleTest> {
    let path = path();
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!("the panther rule-test dataset is required by this test and is missing at {}: {e}", path.display())
    });
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|line| serde_json::from_str(&line.expect("readable gzip line")).expect("a rule-test line"))
        .collect()
}

/// The Falco Kubernetes audit traces (`../shared/datasets/falco_k8s_audit_traces/k8s_audit`),
/// by file name, each one event per line as Falco's tests fed them.
pub fn falco_traces() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/falco_k8s_audit_traces/k8s_audit");
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
