//! Suppressions from configuration, through the binary as an operator uses them: a rule drops
//! exactly the alerts it names and nothing else, says how many, and a rule that matched
//! nothing or has expired is reported; a bad rule is refused with every error at once.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use nhid_engine::respond::alert::Alert;

fn nhid(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nhid")).args(args).output().unwrap()
}

fn ids(alerts: &[Alert]) -> BTreeSet<&str> {
    alerts.iter().map(|a| a.alert_id.as_str()).collect()
}

const RULES: &str = r#"
[[suppressions]]
name = "workload-new-source"
owner = "platform-team"
reason = "workloads move between node pools"
expires = "2099-01-01T00:00:00Z"
principal = "wl-*"
detector = "new_source"

[[suppressions]]
name = "nothing-matches"
owner = "platform-team"
reason = "a rule for a principal that is gone"
expires = "2099-01-01T00:00:00Z"
principal = "svc-decommissioned-*"

[[suppressions]]
name = "expired-everything-human"
owner = "soc"
reason = "an old exception"
expires = "2020-01-01T00:00:00Z"
type = "human"
"#;

#[test]
fn a_suppression_drops_exactly_the_alerts_it_names_and_reports_itself() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (events, inventory) = common::simulate_seed_7(env!("CARGO_BIN_EXE_nhid-sim"), dir.path());
    std::fs::write(p("nhid.toml"), RULES).unwrap();
    let replay = |alerts: &str, config: Option<&str>| {
        let out_path = p(alerts);
        let mut args = vec!["replay", &events, "--inventory", &inventory, "--alerts", &out_path];
        if let Some(c) = config {
            args.extend_from_slice(&["--config", c]);
        }
        let out = nhid(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let alerts: Vec<Alert> = common::schema_lines(Path::new(&out_path), "alert");
        (alerts, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (all, _) = replay("all.jsonl", None);
    let config = p("nhid.toml");
    let (kept, summary) = replay("kept.jsonl", Some(&config));
    let named = |a: &Alert| a.detector == "new_source" && a.principal.id.starts_with("wl-");
    let dropped: Vec<&Alert> = all.iter().filter(|a| named(a)).collect();
    assert!(!dropped.is_empty(), "the seed has workload new_source alerts to suppress");
    assert!(all.iter().any(|a| a.principal.kind == nhid_model::event::PrincipalType::Human), "humans alerted");
    let want: BTreeSet<&str> = all.iter().filter(|a| !named(a)).map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids(&kept), want, "exactly the named alerts are dropped; the expired rule drops none");
    assert!(
        summary.contains(&format!(
            "workload-new-source (owner platform-team): {} alerts dropped, expires 2099-01-01",
            dropped.len()
        )),
        "{summary}"
    );
    assert!(summary.contains("nothing-matches (owner platform-team): unused, expires 2099"), "{summary}");
    assert!(summary.contains("expired-everything-human (owner soc): unused, EXPIRED at 2020-01-01"), "{summary}");

    let check = nhid(&["check", "--config", &config]);
    assert!(check.status.success());
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("suppression expired-everything-human (owner soc): EXPIRED at 2020-01-01T00:00:00.000Z"),
        "{said}"
    );
}

#[test]
fn bad_suppressions_are_refused_with_every_error_and_exit_code_64() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(
        &config,
        r#"
[[suppressions]]
name = "everything"
owner = ""
reason = "too broad"
expires = "soon"

[[suppressions]]
name = "bad-network"
owner = "soc"
reason = "a typo"
expires = "2099-01-01T00:00:00Z"
network = "10.0.0.0/40"
"#,
    )
    .unwrap();
    let out = nhid(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "suppressions[0] (\"everything\"): owner is required",
        "suppressions[0] (\"everything\"): expires: \"soon\" is not an RFC 3339 time",
        "suppressions[0] (\"everything\"): names nothing to match",
        "suppressions[1] (\"bad-network\"): network: \"10.0.0.0/40\" is not an address or a prefix",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}
