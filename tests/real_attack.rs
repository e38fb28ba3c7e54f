//! Real attack data through the binary. Panther's "compromised-root-creds" test scenario
//! (panther-labs/panther-analysis, Apache-2.0; `test_scenarios/compromised-root-creds.README.md`
//! beside the data) recorded an attack on AWS account 493859302102 in November 2020: failed
//! root console logins from 92.55.146.245, then a successful one, an attempt to stop
//! CloudTrail, a new IAM user `tracy_stone` with EC2, S3 and IAM full access, an access key
//! AKIASWJJJ66ZZZII4IYY minted for it, and a p2.8xlarge launched with that key.
//!
//! Its CloudTrail events (the attacker's and the account owner's own root logins) are spliced
//! into six days of simulated benign traffic of the same account, written as CloudTrail by
//! the fixture generator in `tests/common/aws_account.rs`, and replayed with the inventory of
//! the organisation's known identities. The scenario's Okta, S3 server access and VPC flow
//! records are other log sources, not CloudTrail, and are left out of this stream.
//!
//! Required: the minted key is alerted at its first use; benign traffic raises nothing after
//! learning; no automatic action touches a person (root is one).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use common::aws_account::{self, AwsPrincipal};
use common::panther::{ScenarioEvent, scenario_events};
use nhid_decode::{DecodeContext, Format, decode};
use nhid_engine::respond::alert::{Action, Alert};
use nhid_engine::state::StateConfig;
use nhid_model::event::{CredentialKind, PrincipalType};
use nhid_model::time::{Millis, parse_rfc3339};
use nhid_model::vocab::Severity;
use nhid_sim::SimConfig;

const ACCOUNT: &str = "493859302102";
const ROOT: &str = "arn:aws:iam::493859302102:root";
const ATTACKER_USER: &str = "arn:aws:iam::493859302102:user/tracy_stone";
const ATTACKER_KEY: &str = "AKIASWJJJ66ZZZII4IYY";
const ATTACKER_IP: &str = "92.55.146.245";
/// `RunInstances` with the minted key: its first use.
const FIRST_USE: &str = "2020-11-01T09:30:03Z";

/// Four days of history before the attack's day, two days around it.
const SIM_START: &str = "2020-10-28T00:00:00Z";
const SIM_DAYS: u32 = 6;
const SIM_PRINCIPALS: usize = 40;

fn t(s: &str) -> Millis {
    parse_rfc3339(s).unwrap()
}

/// The scenario's CloudTrail events: the attacker's and the owner's benign root logins.
fn scenario_cloudtrail() -> Vec<ScenarioEvent> {
    let events = scenario_events("compromised-root-creds");
    let (trail, other): (Vec<ScenarioEvent>, Vec<ScenarioEvent>) =
        events.into_iter().partition(|e| e.log_type == "AWS.CloudTrail");
    // What is left out is the other log sources, nothing else.
    let left_out: BTreeSet<&str> = other.iter().map(|e| e.log_type.as_str()).collect();
    assert_eq!(left_out, BTreeSet::from(["AWS.S3ServerAccess", "AWS.VPCFlow", "Okta.SystemLog"]));
    let by_file = |f: &str| trail.iter().filter(|e| e.file == f).count();
    assert_eq!((by_file("attacker_cloudtrail"), by_file("victim_cloudtrail")), (12, 4));
    assert!(trail.iter().all(|e| e.role == "attacker" || e.role == "victim_benign"));
    trail
}

fn event_time(e: &ScenarioEvent) -> Millis {
    t(e.log["eventTime"].as_str().expect("a CloudTrail eventTime"))
}

fn gzip(path: &str) -> flate2::write::GzEncoder<BufWriter<std::fs::File>> {
    let file = BufWriter::new(std::fs::File::create(path).unwrap());
    flate2::write::GzEncoder::new(file, flate2::Compression::fast())
}

fn nhid(args: &[&str]) -> std::process::Output {
    common::nhid_ok(env!("CARGO_BIN_EXE_nhid"), args)
}

fn lines<T: serde::de::DeserializeOwned>(path: &Path, schema: &str) -> Vec<T> {
    common::schema_lines(path, schema)
}

/// The fixture generator's records read as the principals they stand for: the decoder
/// derives the ARN and, from AWS's own fields, the type (an API key is an IAM user to AWS).
fn check_shape(bytes: &[u8], principal: &AwsPrincipal) {
    let mut decoded = None;
    decode(bytes, Format::Cloudtrail, &DecodeContext::default(), &mut |r| {
        decoded = Some(r.map(|ev| (ev.principal.id.into_owned(), ev.principal.kind)).map_err(|e| e.to_string()))
    });
    let (id, kind) = decoded.expect("one record").expect("a generated record decodes");
    let aws_kind = if principal.kind == PrincipalType::ApiKey { PrincipalType::ServiceAccount } else { principal.kind };
    assert_eq!((id.as_str(), kind), (principal.arn.as_str(), aws_kind), "{}", String::from_utf8_lossy(bytes));
}

/// What the decoder makes of the real records that carry the attack's key: the
/// `RunInstances` call spells `accesskeyid` in lowercase beside camelCase keys, and the
/// `CreateAccessKey` call names the new key only in its response.
#[test]
fn the_decoder_reads_the_attackers_key_from_the_real_records() {
    let trail = scenario_cloudtrail();
    let decode_one = |name: &str, key: Option<&str>| {
        let e = trail
            .iter()
            .find(|e| {
                e.log["eventName"] == name
                    && key.is_none_or(|k| e.log["responseElements"]["accessKey"]["accessKeyId"] == k)
            })
            .unwrap_or_else(|| panic!("no {name} in the scenario"));
        let bytes = serde_json::to_vec(&e.log).unwrap();
        let mut out = Vec::new();
        decode(&bytes, Format::Cloudtrail, &DecodeContext::default(), &mut |r| {
            out.push(r.map(|ev| serde_json::to_value(&ev).unwrap()).map_err(|e| e.to_string()))
        });
        assert_eq!(out.len(), 1);
        out.remove(0).unwrap_or_else(|err| panic!("{name} does not decode: {err}"))
    };

    let run = decode_one("RunInstances", None);
    assert_eq!(run["principal"]["id"], ATTACKER_USER);
    assert_eq!(run["principal"]["type"], PrincipalType::ServiceAccount.as_str(), "{run}");
    assert_eq!(run["credential"]["id"], ATTACKER_KEY);
    assert_eq!(run["credential"]["kind"], CredentialKind::StaticKey.as_str());
    assert_eq!(run["action"], "ec2:RunInstances");
    assert_eq!(run["source"]["ip"], ATTACKER_IP);
    assert_eq!(parse_rfc3339(run["time"].as_str().unwrap()), Some(t(FIRST_USE)));

    let mint = decode_one("CreateAccessKey", Some(ATTACKER_KEY));
    assert_eq!(mint["principal"]["id"], ROOT);
    assert_eq!(mint["principal"]["type"], PrincipalType::Human.as_str());
    assert_eq!(mint["action"], "iam:CreateAccessKey");
    assert_eq!(mint["resource"], ATTACKER_KEY, "the key created is what the call acted on: {mint}");
}

#[test]
fn a_key_minted_with_stolen_root_credentials_is_alerted_at_its_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();

    // The real events, in time order.
    let mut real = scenario_cloudtrail();
    real.sort_by_key(event_time);
    let attack_start = real.iter().filter(|e| e.role == "attacker").map(event_time).min().unwrap();

    // Benign traffic: the simulated population minus its injected attacks' victims, whose
    // scripted attacks are not this test's business.
    let cfg =
        SimConfig { seed: 11, principals: SIM_PRINCIPALS, days: SIM_DAYS, start: t(SIM_START), ..SimConfig::default() };
    // Both files are gzip, as CloudTrail delivers its logs: the trail is 0.9 GB of text, 90 MB so.
    let summary = {
        let mut sim = gzip(&p("sim.jsonl.gz"));
        let summary = nhid_sim::run(&cfg, &mut sim).unwrap();
        sim.finish().unwrap();
        summary
    };
    let victims: BTreeSet<&str> = summary.labels.iter().map(|l| l.principal_id.as_str()).collect();

    // One CloudTrail stream: simulated records and real ones merged by event time.
    let mut principals: BTreeMap<String, AwsPrincipal> = BTreeMap::new();
    let mut first_seen: BTreeMap<String, Millis> = BTreeMap::new();
    let mut trail = gzip(&p("trail.jsonl.gz"));
    let mut pending = real.iter().peekable();
    let (mut simulated, mut skipped) = (0u64, 0u64);
    let sim = flate2::read::GzDecoder::new(std::fs::File::open(p("sim.jsonl.gz")).unwrap());
    for line in std::io::BufReader::new(sim).lines() {
        let line = line.unwrap();
        let ev = nhid_decode::native::decode(&line).unwrap();
        if victims.contains(&*ev.principal.id) {
            continue;
        }
        let Some((record, principal)) = aws_account::record(ACCOUNT, &ev) else {
            skipped += 1;
            continue;
        };
        while let Some(e) = pending.next_if(|e| event_time(e) <= ev.time) {
            serde_json::to_writer(&mut trail, &e.log).unwrap();
            trail.write_all(b"\n").unwrap();
        }
        let bytes = serde_json::to_vec(&record).unwrap();
        if !principals.contains_key(&principal.arn) {
            check_shape(&bytes, &principal);
            first_seen.insert(principal.arn.clone(), ev.time);
            principals.insert(principal.arn.clone(), principal);
        }
        trail.write_all(&bytes).unwrap();
        trail.write_all(b"\n").unwrap();
        simulated += 1;
    }
    for e in pending {
        serde_json::to_writer(&mut trail, &e.log).unwrap();
        trail.write_all(b"\n").unwrap();
    }
    trail.finish().unwrap();
    // `NHID_KEEP_TRAIL=FILE` keeps the trail, a realistic CloudTrail stream to measure with.
    if let Some(keep) = std::env::var_os("NHID_KEEP_TRAIL") {
        std::fs::copy(p("trail.jsonl.gz"), keep).unwrap();
    }
    let by_type = principals.values().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(p.kind).or_insert(0) += 1;
        m
    });
    eprintln!(
        "{simulated} simulated CloudTrail records of {} principals {by_type:?} ({} victims of simulated attacks and \
         {skipped} non-AWS events left out) + {} real records: {} MB gzip",
        principals.len(),
        victims.len(),
        real.len(),
        std::fs::metadata(p("trail.jsonl.gz")).unwrap().len() >> 20
    );
    assert!(by_type.len() >= 4, "every AWS-shaped kind is present: {by_type:?}");
    assert!(simulated > 100_000, "{simulated}");

    // The organisation's known identities: every simulated principal and the account root.
    let mut inventory = String::from(
        "# The known identities of account 493859302102.\n[[principal]]\nmatch = \"arn:aws:iam::493859302102:root\"\n\
         type = \"human\"\nowner = \"team-cloud-admins\"\n",
    );
    for p in principals.values() {
        inventory.push_str(&format!("\n[[principal]]\nmatch = {:?}\ntype = \"{}\"\n", p.arn, p.kind.as_str()));
        if let Some(owner) = &p.owner {
            inventory.push_str(&format!("owner = {owner:?}\n"));
        }
    }
    std::fs::write(p("inventory.toml"), inventory).unwrap();

    let replay = nhid(&[
        "replay",
        &p("trail.jsonl.gz"),
        "--format",
        "cloudtrail",
        "--inventory",
        &p("inventory.toml"),
        "--alerts",
        &p("alerts.jsonl"),
        "--actions",
        &p("actions.jsonl"),
        "--dead-letter",
        &p("dead.jsonl"),
    ]);
    eprintln!("{}", String::from_utf8_lossy(&replay.stderr));
    assert_eq!(std::fs::read_to_string(p("dead.jsonl")).unwrap(), "", "every record decodes");
    let alerts: Vec<Alert> = lines(Path::new(&p("alerts.jsonl")), "alert");
    let actions: Vec<Action> = lines(Path::new(&p("actions.jsonl")), "action");
    let show = |a: &Alert| {
        format!(
            "{} {} {} ({}) credential {} severity {:?}: {}",
            nhid_model::time::format_rfc3339(a.time),
            a.kind,
            a.principal.id,
            a.principal.kind,
            a.credential_id.as_deref().unwrap_or("-"),
            a.severity,
            a.summary
        )
    };

    // Everything raised on the attack's principals (the only ones the real records name).
    let on_attack: Vec<&Alert> =
        alerts.iter().filter(|a| a.principal.id == ROOT || a.principal.id == ATTACKER_USER).collect();
    eprintln!("alerts on the attack's principals:");
    for a in &on_attack {
        eprintln!("  {}", show(a));
    }
    let minted = on_attack
        .iter()
        .find(|a| a.credential_id.as_deref() == Some(ATTACKER_KEY))
        .unwrap_or_else(|| panic!("the minted key is not alerted; alerts: {:#?}", on_attack));
    assert_eq!(minted.principal.id, ATTACKER_USER);
    assert_eq!(minted.time, t(FIRST_USE), "{}", show(minted));
    assert!(
        on_attack.iter().any(|a| a.kind == "unregistered_principal"
            && a.principal.id == ATTACKER_USER
            && a.credential_id.as_deref() == Some(ATTACKER_KEY)
            && a.time == t(FIRST_USE)
            && a.summary.contains(ATTACKER_KEY)),
        "the inventory does not list tracy_stone: {on_attack:#?}"
    );
    // The owner's own root logins before the attack raise only the content rule written for
    // any use of root ("AWS Root Credentials", whose false positives SigmaHQ notes are tasks
    // that need root), one level lower once they are the routine; no anomaly detector.
    let before: Vec<&&Alert> = on_attack.iter().filter(|a| a.time < attack_start).collect();
    assert!(
        before.iter().all(|a| a.kind == "content" && a.summary.contains("\"AWS Root Credentials\"")),
        "the owner's own root logins raise only the root rule: {before:#?}"
    );
    assert!(
        before.iter().any(|a| a.summary.contains("as it did before") && a.severity == Severity::Low),
        "repeated from its usual places, the root login is the routine: {before:#?}"
    );
    let acted = |a: &Alert| actions.iter().any(|x| x.alert_id == a.alert_id);
    assert!(!before.iter().any(|a| acted(a)), "a person is never acted on");

    // Benign traffic after its principal's learning period: nothing.
    let learning = StateConfig::default().learning_secs;
    let false_alerts: Vec<String> = alerts
        .iter()
        .filter(|a| !on_attack.contains(a))
        .filter(|a| {
            let kind = principals.get(&a.principal.id).map_or(a.principal.kind, |p| p.kind);
            first_seen.get(&a.principal.id).is_none_or(|&f| a.time >= f + learning.for_type(kind))
        })
        .map(show)
        .collect();
    let during_learning = alerts.len() - on_attack.len() - false_alerts.len();
    eprintln!("benign alerts while learning (not counted): {during_learning}");
    assert!(
        false_alerts.is_empty(),
        "{} false alerts after learning:\n{}",
        false_alerts.len(),
        false_alerts.join("\n")
    );

    // No automatic action against a person: not root, not any simulated human.
    for a in &actions {
        assert_ne!(a.target.principal_kind, PrincipalType::Human, "{a:?}");
        assert_ne!(a.target.principal_id, ROOT, "{a:?}");
    }
    eprintln!("actions: {:#?}", actions.iter().map(|a| (&a.action, &a.target.principal_id)).collect::<Vec<_>>());
}
