//! The binary as operators use it: `check` exit codes and error lists, `replay` on gzip
//! and plain input and on trails as exported, its summary, an overlong line and a signal.

mod common;

use std::io::{BufRead, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
fn check_validates_a_rules_directory() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let out = nhid(&["check", "--rules", shipped]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The documents of the shipped packs (a file holds one rule, or a correlation with the
    // rule it counts), each with its title.
    fn count(dir: &std::path::Path) -> usize {
        let documents = |p: &std::path::Path| {
            let text = std::fs::read_to_string(p).unwrap();
            text.lines().filter(|l| l.starts_with("title:")).count()
        };
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| match p.is_dir() {
                true => count(&p),
                false if p.extension() == Some("yml".as_ref()) => documents(&p),
                false => 0,
            })
            .sum()
    }
    let expected = format!("{} content rules (", count(shipped.as_ref()));
    assert!(stdout.contains(&expected) && stdout.contains("cloudtrail") && stdout.contains("k8s_audit"), "{stdout}");
    assert!(stdout.contains(" correlation)"), "nhid's correlation rules: {stdout}");

    let dir = tempfile::tempdir().unwrap();
    let good = "title: Trail stopped\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    eventName: StopLogging\n  condition: sel\nlevel: high\n";
    std::fs::write(dir.path().join("good.yml"), good).unwrap();
    let out = nhid(&["check", "--rules", dir.path().to_str().unwrap()]);
    // A CloudTrail rule reads Security Lake's OCSF form of the records too.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 content rules (compiled by format: 1 cloudtrail, 1 ocsf)"), "{out:?}");
    // A broken file, and a condition naming a detection that does not exist: both named.
    std::fs::write(dir.path().join("broken.yml"), "title: [unclosed\n").unwrap();
    std::fs::write(dir.path().join("dangling.yml"), good.replace("condition: sel", "condition: nothing")).unwrap();
    let out = nhid(&["check", "--rules", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["rules_dir", "broken.yml", "dangling.yml"] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
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

/// Trails as people export them: CloudTrail's own S3 objects (`{"Records":[...]}` per file,
/// gzip, concatenated), the same pretty-printed, a JSON array over many lines (published
/// attack datasets), and records that carry only a shipper's `@timestamp`: the same alerts
/// as the trail in JSON lines, and nothing dead-lettered. The Stratus records
/// (`tests/data/stratus`, README there) are the trail: 43 techniques, alerts on most.
#[test]
fn replay_reads_trails_as_exported() {
    let stratus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stratus/aws");
    let mut files: Vec<_> = std::fs::read_dir(&stratus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("aws."))
        .collect();
    files.sort();
    let per_file: Vec<Vec<serde_json::Value>> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect())
        .collect();
    let all: Vec<&serde_json::Value> = per_file.iter().flatten().collect();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let lines: String = all.iter().map(|r| format!("{r}\n")).collect();
    let mut s3 = Vec::new();
    for records in &per_file {
        // One gzip member per delivered object; `cat *.json.gz` keeps them apart.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(serde_json::json!({ "Records": records }).to_string().as_bytes()).unwrap();
        s3.extend(enc.finish().unwrap());
    }
    let shipped: String = all
        .iter()
        .map(|r| {
            let mut r = (*r).clone();
            let time = r.as_object_mut().unwrap().remove("eventTime").unwrap();
            r["@timestamp"] = time;
            format!("{r}\n")
        })
        .collect();
    let layouts = [
        ("lines.jsonl", lines.into_bytes()),
        ("s3.json.gz", s3),
        ("pretty.json", serde_json::to_vec_pretty(&serde_json::json!({ "Records": all })).unwrap()),
        ("array.json", serde_json::to_vec_pretty(&all).unwrap()),
        ("shipped.jsonl", shipped.into_bytes()),
    ];
    let mut expected: Option<Vec<String>> = None;
    for (name, bytes) in layouts {
        let path = write(name, &bytes);
        let out = nhid(&["replay", path.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let summary = String::from_utf8_lossy(&out.stderr);
        assert!(summary.contains("dead letters by reason\n  (none)"), "{name}:\n{summary}");
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["alert_id"].as_str().unwrap().to_string())
            .collect();
        match &expected {
            None => {
                assert!(ids.len() >= 30, "{name}: {} alerts", ids.len());
                expected = Some(ids);
            }
            Some(e) => assert_eq!(&ids, e, "{name}: the same alerts as JSON lines"),
        }
    }
}

/// `replay` decodes on every core and commits in input order: its outputs (alerts, actions,
/// dead letters, the summary's counts) are those of one thread, byte for byte, on a stream of
/// many batches mixing canonical events from the fixtures (baselines learned, then broken),
/// the Stratus trail (content rules, and the correlations that count across records),
/// garbage, lines longer than `max_event_bytes`, and events without a time of their own.
#[test]
fn replay_gives_the_same_outputs_on_any_number_of_threads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut input: Vec<u8> = Vec::new();
    // A CloudTrail record without a time of its own before any event gave one: dead-lettered;
    // after, it takes the latest.
    let timeless = r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/r/s"}}"#;
    input.extend(format!("{timeless}\n").bytes());
    for fixture in
        ["breadth_lateral_movement_after_learning", "shared_credential_token_used_from_second_place", "garbage_lines"]
    {
        input.extend(std::fs::read(root.join("fixtures").join(fixture).join("input.jsonl")).unwrap());
        input.extend(format!("{timeless}\n").bytes());
    }
    let mut stratus: Vec<_> =
        std::fs::read_dir(root.join("data/stratus/aws")).unwrap().map(|e| e.unwrap().path()).collect();
    stratus.sort();
    for f in stratus.iter().filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("aws.")) {
        input.extend(std::fs::read(f).unwrap());
        input.extend(format!("{}\n{{\"id\":\"{}\"}}\n", "x".repeat(5_000), "y".repeat(5_000)).bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.jsonl");
    std::fs::write(&file, &input).unwrap();
    // A batch ends at 1,024 messages, at 1 MiB, and where the reader's 256 KiB buffer runs dry.
    assert!(input.len() > 4 << 18, "several batches: {} bytes", input.len());
    let run = |threads: &str| {
        let out = |name: &str| dir.path().join(format!("{name}-{threads}.jsonl"));
        let output = Command::new(env!("CARGO_BIN_EXE_nhid"))
            .args(["replay", file.to_str().unwrap(), "--threads", threads, "--alerts"])
            .arg(out("alerts"))
            .arg("--actions")
            .arg(out("actions"))
            .arg("--dead-letter")
            .arg(out("dead"))
            .env("NHID__DECODE__MAX_EVENT_BYTES", "4096")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        // The summary, but for its first line's timing.
        let summary: String =
            String::from_utf8_lossy(&output.stderr).lines().skip(1).map(|l| format!("{l}\n")).collect();
        let read = |name| std::fs::read_to_string(out(name)).unwrap();
        (read("alerts"), read("actions"), read("dead"), summary)
    };
    let one = run("1");
    let (alerts, _, dead, summary) = &one;
    assert!(alerts.lines().count() >= 30, "{summary}");
    for reason in ["too_large", "invalid_json", "missing_time"] {
        assert!(dead.contains(&format!("\"reason\":\"{reason}\"")), "{reason}: {summary}");
    }
    for threads in ["2", "3"] {
        assert!(run(threads) == one, "--threads {threads} gives other outputs than --threads 1");
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

/// `nhid replay --http` as a process, its standard error read line by line as it comes.
struct Replaying {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Replaying {
    fn start(args: &[&str], stdin: Stdio) -> Replaying {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nhid"))
            .arg("replay")
            .args(args)
            .args(["--http", "127.0.0.1:0"])
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, stderr) = mpsc::channel();
        let pipe = std::io::BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || pipe.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        Replaying { child, stderr, seen: Vec::new() }
    }

    /// The first line of standard error holding `marker`, waited for at most a minute.
    fn wait_for(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Ok(line) = self.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(line.clone());
            if line.contains(marker) {
                return line;
            }
        }
        let _ = self.child.kill();
        panic!("no {marker:?} from nhid replay within a minute:\n{}", self.seen.join("\n"));
    }

    /// The most memory the process has held so far (`VmHWM`), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap();
        kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
    }

    /// Sends SIGTERM and waits for the exit, which must come `within` the bound; returns the
    /// exit status and everything written to standard error.
    fn terminate(mut self, within: Duration) -> (ExitStatus, String) {
        assert!(Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success());
        let asked = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if asked.elapsed() > within {
                let _ = self.child.kill();
                panic!("nhid replay did not exit within {within:?} of SIGTERM:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.seen.extend(self.stderr.iter());
        (status, self.seen.join("\n"))
    }
}

/// A 64 MiB line (a message far over `max_event_bytes`) among good ones: it is dead-lettered
/// with its size and hash, the good lines give the alerts they give alone, and the process
/// never holds the line.
#[test]
fn replay_refuses_an_overlong_line_without_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let long = [&b"{\"principal\":\""[..], &vec![b'x'; 64 << 20], b"\"}"].concat();
    let input = dir.path().join("input.jsonl");
    let fixture = std::fs::read(format!("{FIXTURE}/input.jsonl")).unwrap();
    std::fs::write(&input, [&long[..], b"\n", &fixture].concat()).unwrap();
    let (alerts, dead) = (dir.path().join("alerts.jsonl"), dir.path().join("dead.jsonl"));
    let config = format!("{FIXTURE}/config.toml");
    let mut replay = Replaying::start(
        &[
            input.to_str().unwrap(),
            "--config",
            &config,
            "--alerts",
            alerts.to_str().unwrap(),
            "--dead-letter",
            dead.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    replay.wait_for("serving http://");
    let peak = replay.peak_rss();
    let (status, stderr) = replay.terminate(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    // Holding the line would take at least its 64 MiB; nhid itself needs about 15.
    assert!(peak < 40 << 20, "peak RSS {} MiB for a 64 MiB line", peak >> 20);

    let alone = nhid(&["replay", &format!("{FIXTURE}/input.jsonl"), "--config", &config]);
    assert_eq!(std::fs::read(&alerts).unwrap(), alone.stdout, "the good lines give their alerts");
    let dead = std::fs::read_to_string(&dead).unwrap();
    let letters: Vec<serde_json::Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 1, "{dead:.300}");
    let letter = &letters[0];
    assert_eq!(letter["reason"], "too_large");
    assert_eq!(letter["offset"], 1);
    assert_eq!(letter["original_bytes"], long.len());
    assert_eq!(letter["original_xxh3"], format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&long)));
    assert!(letter["raw"].as_str().unwrap().len() <= 64 << 10);
}

/// SIGTERM stops a replay whose input never ends (a pipe kept open) at once: what was read is
/// processed, its outputs are flushed, the summary printed, and it exits 130. The outputs are
/// those of a whole replay of the same lines.
#[test]
fn sigterm_stops_a_replay_whose_input_never_ends() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(format!("{FIXTURE}/input.jsonl")).unwrap();
    // The last line names a principal of its own: once /principals knows it, every line before
    // it was processed.
    let sentinel = r#"{"id":"sentinel","time":"2026-11-02T09:30:21Z","principal":{"id":"svc-sentinel","type":"service_account"},"action":"sts:GetCallerIdentity","service":"sts","outcome":"success"}"#;
    let lines = format!("not json\n{fixture}{sentinel}\n");
    let (alerts, dead) = (dir.path().join("alerts.jsonl"), dir.path().join("dead.jsonl"));
    let config = format!("{FIXTURE}/config.toml");
    let mut replay = Replaying::start(
        &["-", "--config", &config, "--alerts", alerts.to_str().unwrap(), "--dead-letter", dead.to_str().unwrap()],
        Stdio::piped(),
    );
    let listening = replay.wait_for("HTTP endpoint");
    let addr: std::net::SocketAddr =
        listening.split("listen=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let mut input = replay.child.stdin.take().unwrap();
    input.write_all(lines.as_bytes()).unwrap();
    input.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(common::try_http_get(addr, "/principals/svc-sentinel"), Ok((200, _))) {
        assert!(Instant::now() < deadline, "the sentinel was not processed within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (status, stderr) = replay.terminate(Duration::from_secs(5));
    drop(input);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopped by a signal before the end of its input"), "{stderr}");
    assert!(stderr.contains("dead letters by reason"), "the summary is printed:\n{stderr}");
    let file = dir.path().join("input.jsonl");
    std::fs::write(&file, &lines).unwrap();
    let whole = nhid(&["replay", file.to_str().unwrap(), "--config", &config]);
    assert!(!whole.stdout.is_empty());
    assert_eq!(std::fs::read(&alerts).unwrap(), whole.stdout, "every alert of the lines read, flushed");
    let dead = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(dead.contains("not json"), "{dead}");
}
