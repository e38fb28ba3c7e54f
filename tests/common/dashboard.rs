//! The Grafana dashboard (`deploy/grafana/dashboards/nhid.json`) read as data: its panels,
//! their PromQL queries, and the metric names and labels those queries use.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

pub const DASHBOARD: &str = "deploy/grafana/dashboards/nhid.json";

pub fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD}: not valid JSON: {e}"))
}

/// Every panel, rows' collapsed panels included.
pub fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("dashboard has panels") {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// One query of a panel.
pub struct Query {
    pub panel: String,
    pub expr: String,
    pub legend: String,
}

/// Every query of every panel, in dashboard order.
pub fn queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                panel: title.to_string(),
                expr: t["expr"].as_str().unwrap_or_default().to_string(),
                legend: t["legendFormat"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

/// The `nhid_*` metric names in a PromQL expression, outside string literals, histogram
/// series (`_bucket`, `_sum`, `_count`) folded into the histogram's name when `histograms`
/// names it.
pub fn metric_names_in(expr: &str, histograms: &BTreeSet<String>) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // A label value or a string argument: skip to the closing quote.
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if ident(c) && (i == 0 || !ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word.starts_with("nhid_") {
                names.insert(histogram_name(&word, histograms).to_string());
            }
            continue;
        }
        i += 1;
    }
    names
}

/// The histogram a series belongs to, or the series itself.
pub fn histogram_name<'a>(series: &'a str, histograms: &BTreeSet<String>) -> &'a str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| series.strip_suffix(s).filter(|h| histograms.contains(*h)))
        .unwrap_or(series)
}

/// The labels of every `by (...)` and `without (...)` clause of an expression.
pub fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for keyword in ["by", "without"] {
        let mut rest = expr;
        while let Some(at) = rest.find(keyword) {
            let before = rest[..at].chars().next_back();
            let after = rest[at + keyword.len()..].trim_start();
            rest = &rest[at + keyword.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') || !after.starts_with('(') {
                continue;
            }
            let inner = &after[1..after.find(')').expect("grouping clause closes")];
            labels.extend(inner.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
        }
    }
    labels
}

/// `{{label}}` references of a legend format.
pub fn legend_labels(legend: &str) -> BTreeSet<String> {
    legend.split("{{").skip(1).filter_map(|s| s.split_once("}}")).map(|(l, _)| l.trim().to_string()).collect()
}
