//! The CloudTrail decoder against the CloudTrail samples of Panther's rule tests
//! (panther-labs/panther-analysis, Apache-2.0; see the dataset's README.txt). Those samples
//! are hand-made or anonymised real records with every field-shape oddity detection teams
//! have met, so they are the parser-coverage test the unit tests cannot be.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use nhid_decode::{DecodeContext, DecodeError, Format, decode, detect};
use nhid_model::event::{AuditEvent, CredentialKind, PrincipalType};
use nhid_model::vocab::DeadLetterReason;
use serde::Deserialize;

/// What the Kafka runtime passes for records without a time of their own: the message timestamp.
const MESSAGE_TIME: i64 = 1_700_000_000_000;

/// Placeholders some samples put in `eventTime`. They are not times, so dead-lettering
/// them as `invalid_time` is correct, and the test checks that it happens.
const PLACEHOLDER_TIMES: &[&str] = &["redacted", "..."];

#[derive(Deserialize)]
struct RuleTest {
    rule_id: String,
    test_name: String,
    log_types: Option<Vec<String>>,
    log: serde_json::Value,
}

struct Sample {
    rule_id: String,
    test_name: String,
    bytes: Vec<u8>,
    placeholder_time: bool,
}

fn dataset() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/panther_analysis_labeled_events/rule_tests.jsonl.gz")
}

fn cloudtrail_samples() -> Vec<Sample> {
    let path = dataset();
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!("the panther rule-test dataset is required by this test and is missing at {}: {e}", path.display())
    });
    let mut samples = Vec::new();
    for line in std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
        let line = line.expect("readable gzip line");
        let test: RuleTest = serde_json::from_str(&line).expect("a rule-test line");
        let listed = test.log_types.as_ref().is_some_and(|t| t.iter().any(|t| t == "AWS.CloudTrail"));
        // Rules that list several log types carry samples of the other types too.
        let own_type = test.log.get("p_log_type").and_then(|t| t.as_str());
        let has_event_name = test.log.get("eventName").or_else(|| test.log.get("eventname")).is_some();
        if !listed || own_type.is_some_and(|t| t != "AWS.CloudTrail") || !has_event_name {
            continue;
        }
        let time = test.log.get("eventTime").and_then(|t| t.as_str());
        samples.push(Sample {
            placeholder_time: time.is_some_and(|t| PLACEHOLDER_TIMES.contains(&t)),
            bytes: serde_json::to_vec(&test.log).expect("serializable"),
            rule_id: test.rule_id,
            test_name: test.test_name,
        });
    }
    samples
}

fn decode_one<'a>(sample: &'a Sample, format: Format) -> Result<AuditEvent<'a>, DecodeError> {
    let ctx = DecodeContext { fallback_time: Some(MESSAGE_TIME), ..Default::default() };
    let mut out = Vec::new();
    decode(&sample.bytes, format, &ctx, &mut |r| out.push(r));
    assert_eq!(out.len(), 1, "{} / {}: one record, one result", sample.rule_id, sample.test_name);
    out.remove(0)
}

#[test]
fn every_cloudtrail_sample_decodes() {
    let samples = cloudtrail_samples();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_credential: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut decoded, mut placeholders) = (0, 0);
    let mut failures = Vec::new();
    for s in &samples {
        match (decode_one(s, Format::Cloudtrail), s.placeholder_time) {
            (Ok(e), false) => {
                decoded += 1;
                *by_type.entry(e.principal.kind.as_str()).or_default() += 1;
                *by_credential.entry(e.credential.kind.as_str()).or_default() += 1;
                assert!(!e.principal.id.is_empty() && !e.id.is_empty() && !e.action.is_empty());
            }
            (Err(e), true) if e.reason == DeadLetterReason::InvalidTime => placeholders += 1,
            (result, _) => failures.push(format!("{} / {}: {:?}", s.rule_id, s.test_name, result.err())),
        }
    }
    println!("cloudtrail samples: {} selected, {decoded} decoded, {placeholders} placeholder times", samples.len());
    println!("by principal type: {by_type:?}");
    println!("by credential kind: {by_credential:?}");
    assert!(failures.is_empty(), "{} samples failed:\n{}", failures.len(), failures.join("\n"));
    assert!(decoded > 400, "only {decoded} cloudtrail samples decoded");
    assert_eq!(placeholders, 2, "the dataset's two placeholder eventTimes are dead-lettered");
}

/// The one-pass reader reads every record it accepts to the event serde reads, on the
/// samples (every oddity of shape detection teams have met) and on the Stratus detonations'
/// records; and it accepts records as CloudTrail writes them, which is what makes it the
/// hot path.
#[test]
fn the_one_pass_reader_reads_what_it_accepts_as_serde_does() {
    let ctx = DecodeContext { fallback_time: Some(MESSAGE_TIME), ..Default::default() };
    let check = |text: &str| {
        let (fast, serde) = nhid_decode::cloudtrail::both_readers(text, &ctx);
        let Some(fast) = fast else { return 0 };
        assert_eq!(fast.map_err(|e| e.detail), serde.map_err(|e| e.detail), "{text}");
        1
    };
    let samples = cloudtrail_samples();
    let accepted: usize = samples.iter().map(|s| check(std::str::from_utf8(&s.bytes).unwrap())).sum();
    println!("one-pass reader: {accepted} of {} samples", samples.len());
    assert!(accepted * 2 > samples.len(), "{accepted} of {} samples", samples.len());

    let stratus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/stratus/aws");
    let (mut records, mut accepted) = (0, 0);
    for file in std::fs::read_dir(&stratus).unwrap() {
        let path = file.unwrap().path();
        if path.file_name().is_some_and(|n| n != "MANIFEST.jsonl") && path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                records += 1;
                accepted += check(line);
            }
        }
    }
    println!("one-pass reader: {accepted} of {records} Stratus records");
    assert!(records > 600 && accepted == records, "{accepted} of {records} Stratus records");
}

#[test]
fn auto_detection_recognizes_every_sample() {
    for s in cloudtrail_samples() {
        assert_eq!(detect(&s.bytes), Some(Format::Cloudtrail), "{} / {}", s.rule_id, s.test_name);
        if !s.placeholder_time {
            let auto = decode_one(&s, Format::Auto).expect("decodes");
            assert_eq!(Some(auto), decode_one(&s, Format::Cloudtrail).ok());
        }
    }
}

#[test]
fn real_samples_are_classified_as_their_rules_describe() {
    let samples = cloudtrail_samples();
    let events: Vec<(&Sample, AuditEvent<'_>)> =
        samples.iter().filter_map(|s| decode_one(s, Format::Cloudtrail).ok().map(|e| (s, e))).collect();

    // EC2 instance-profile credentials (session named after the instance) are a workload.
    let imds: Vec<_> = events
        .iter()
        .filter(|(s, e)| {
            s.rule_id == "AWS.CloudTrail.IMDSCredentialExfiltration"
                && e.actor.session_id.as_deref().is_some_and(|id| id.starts_with("i-"))
        })
        .collect();
    assert!(imds.len() >= 5, "instance-profile sessions in the imds rule tests: {}", imds.len());
    for (s, e) in &imds {
        assert_eq!(e.principal.kind, PrincipalType::Workload, "{}", s.test_name);
        assert!(e.principal.id.starts_with("arn:aws:iam::") && e.principal.id.contains(":role/"), "{}", e.principal.id);
        // Some samples carry made-up key ids ("1111"); only a real ASIA prefix says temporary.
        if e.credential.id.as_deref().is_some_and(|k| k.starts_with("ASIA")) {
            assert_eq!(e.credential.kind, CredentialKind::ShortLivedToken, "{}", s.test_name);
        }
    }

    // A programmatic IAM user with a static key is the classic non-human identity.
    let with_static_key = events
        .iter()
        .find(|(s, _)| s.rule_id == "AWS.CloudTrail.UserAccessKeyAuth" && s.test_name == "Access Key Action Success")
        .expect("the UserAccessKeyAuth sample");
    let e = &with_static_key.1;
    assert_eq!(e.principal.kind, PrincipalType::ServiceAccount);
    assert_eq!(e.credential.kind, CredentialKind::StaticKey);
    assert!(e.credential.id.as_deref().is_some_and(|k| k.starts_with("AKIA")));

    // The root user is a person; not one root sample is anything else.
    let root: Vec<_> = events.iter().filter(|(_, e)| e.principal.id.ends_with(":root")).collect();
    assert!(root.len() >= 5, "root samples: {}", root.len());
    for (s, e) in root {
        assert_eq!(e.principal.kind, PrincipalType::Human, "{} / {}", s.rule_id, s.test_name);
    }
}
