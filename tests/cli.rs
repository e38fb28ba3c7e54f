//! The binary as operators use it: `check` exit codes and error lists, `replay` on gzip
//! and plain input, and its summary.

use std::io::Write;
use std::process::Command;

fn nhid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nhid")).args(args).output().unwrap()
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cloudtrail_leaked_access_key");

#[test]
fn check_accepts_the_shipped_detectors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/detectors");
    let out = nhid(&["check", "--detectors", dir]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shipped =
        std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension() == Some("toml".as_ref()));
    let expected = format!("ok: {} detectors", shipped.count());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&expected), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn check_reports_every_error_at_once_with_exit_code_64() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "kind = \"rate_spike\"\ndescription = \"x\"\nseverity = \"loud\"\nreferences = [\"T1\"]\n[default]\nmin_count = 1\nratio = 1.0\nz = 1.0\n").unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        "kind = \"no_such_kind\"\ndescription = \"x\"\nseverity = \"high\"\nreferences = [\"T1\"]\n[default]\n",
    )
    .unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(&config, "[response]\nmax_actions_per_minute = 0\n[state]\nmax_identities = 0\n").unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(&inventory, "[[principal]]\nmatch = \"svc-[\"\n").unwrap();
    let out = nhid(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "--detectors",
        dir.path().to_str().unwrap(),
        "--inventory",
        inventory.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["max_actions_per_minute", "max_identities", "a: ", "loud", "b: ", "no_such_kind", "svc-["] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn replay_reads_gzip_like_plain_text_and_prints_a_summary() {
    let input = std::fs::read(format!("{FIXTURE}/input.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("input.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&input).unwrap();
    enc.finish().unwrap();
    let config = format!("{FIXTURE}/config.toml");
    let plain = nhid(&["replay", &format!("{FIXTURE}/input.jsonl"), "--config", &config]);
    let zipped = nhid(&["replay", gz.to_str().unwrap(), "--config", &config]);
    assert!(plain.status.success() && zipped.status.success());
    assert!(!plain.stdout.is_empty());
    assert_eq!(plain.stdout, zipped.stdout, "same alerts from gzip and plain input");
    let summary = String::from_utf8_lossy(&plain.stderr);
    for section in [
        "events by principal type",
        "events by source format and principal type",
        "cloudtrail",
        "alerts by detector and severity",
        "actions",
        "dead letters by reason",
        "new_source",
    ] {
        assert!(summary.contains(section), "{section:?} missing from:\n{summary}");
    }
}

/// The `[kafka]` section is validated with the rest, every error at once.
#[test]
fn check_reports_kafka_errors_with_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nhid.toml");
    std::fs::write(
        &config,
        "[state]\nmax_identities = 0\n[kafka]\ntopics = []\nalerts_topic = \"audit\"\n[kafka.properties]\n\"enable.auto.commit\" = \"true\"\n",
    )
    .unwrap();
    let out = nhid(&["check", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    for e in ["state.max_identities", "kafka.topics", "kafka.properties.enable.auto.commit"] {
        assert!(stderr.contains(e), "no {e} error in:\n{stderr}");
    }
}
