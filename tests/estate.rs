//! The cloud estate (`nhid-sim simulate --estate cloud`) behaves as the platforms it imitates
//! do, checked on its output with the providers' published ranges (`data/ipranges`) read here
//! independently of the simulator:
//! - GitHub Actions jobs assume their role through OIDC first, each job on one fresh address in
//!   GitHub's ranges, nearly all distinct across jobs, with a session of its own;
//! - a Lambda function's cold starts each bring a new AWS address and a new session key;
//!   Fargate tasks each their own address;
//! - fleets spread over 30 /24 networks and more, instances coming and going every day;
//! - low-volume keys still show actions on later days they never showed on their first;
//! - Terraform changes IAM from CI addresses; a weekly job runs once a week;
//! - SDK user agents name the call, and some identities upgrade their SDK mid-run;
//! - every cloud attack is labeled with its principal, credential, session and expected
//!   response, and carries its signal (the source it comes from, its pace);
//! - a seed gives byte-identical output, another seed other output.
//!
//! nhid's detection numbers on this estate are `nhid-sim eval`'s business (tests/eval.rs runs
//! it), not asserted here: the detectors are being rewritten for it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Write};
use std::sync::OnceLock;

use nhid_decode::native;
use nhid_model::time::{DAY, HOUR, MINUTE, Millis};
use nhid_model::vocab::Response;
use nhid_sim::{Archetype, Estate, Label, SimConfig};

const DAYS: u32 = 9;

/// Published IPv4 prefixes of a provider, from the repository's dated copy.
struct Ranges(Vec<(u32, u32)>);

impl Ranges {
    fn of(provider: &str) -> Ranges {
        let path = format!("{}/data/ipranges/{provider}/ipv4_merged.txt", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut prefixes: Vec<(u32, u32)> = text
            .lines()
            .filter_map(|l| {
                let (addr, len) = l.trim().split_once('/')?;
                let ip: std::net::Ipv4Addr = addr.parse().ok()?;
                let size = 1u64 << (32 - len.parse::<u32>().ok()?);
                Some((u32::from(ip), size.min(u64::from(u32::MAX)) as u32))
            })
            .collect();
        prefixes.sort_unstable();
        Ranges(prefixes)
    }

    fn contains(&self, ip: &str) -> bool {
        let Ok(ip) = ip.parse::<std::net::Ipv4Addr>() else {
            return false;
        };
        let ip = u32::from(ip);
        let i = self.0.partition_point(|&(base, _)| base <= ip);
        i > 0 && ip - self.0[i - 1].0 < self.0[i - 1].1
    }
}

/// One event, as much of it as the checks need.
#[derive(Clone, Debug)]
struct Call {
    time: Millis,
    principal: String,
    action: String,
    ip: String,
    user_agent: String,
    credential: Option<String>,
    session: Option<String>,
}

/// Everything the checks look at, from one cloud run: the calls of the cloud archetypes (and
/// the classic ones' user agents), the labels, and the first malicious events.
struct Observed {
    cfg: SimConfig,
    start: Millis,
    by_principal: BTreeMap<String, Vec<Call>>,
    classic_agents: HashMap<String, BTreeSet<String>>,
    labels: Vec<Label>,
    first_malicious: HashMap<String, Call>,
}

/// Feeds every complete line to `f`: millions of events, none held.
struct Lines<F: FnMut(&str)>(Vec<u8>, F);

impl<F: FnMut(&str)> Write for Lines<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        let mut done = 0;
        while let Some(nl) = self.0[done..].iter().position(|&b| b == b'\n') {
            (self.1)(std::str::from_utf8(&self.0[done..done + nl]).map_err(io::Error::other)?);
            done += nl + 1;
        }
        self.0.drain(..done);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn observed() -> &'static Observed {
    static RUN: OnceLock<Observed> = OnceLock::new();
    RUN.get_or_init(|| {
        let cfg = SimConfig { seed: 5, principals: 80, days: DAYS, estate: Estate::Cloud, ..SimConfig::default() };
        let mut by_principal: BTreeMap<String, Vec<Call>> = BTreeMap::new();
        let mut classic_agents: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut all: Vec<(String, Call)> = Vec::new();
        let mut last = Millis::MIN;
        let mut sink = Lines(Vec::new(), |line: &str| {
            let e = native::decode(line).unwrap();
            assert!(e.time >= last, "out of order at {}", e.id);
            last = e.time;
            let principal = e.principal.id.to_string();
            let ua = e.source.user_agent.as_deref().unwrap_or("").to_owned();
            if Archetype::of(&principal) == Archetype::Classic {
                classic_agents.entry(principal).or_default().insert(ua);
                return;
            }
            let call = Call {
                time: e.time,
                principal: principal.clone(),
                action: e.action.to_string(),
                ip: e.source.ip.as_deref().unwrap_or("").to_owned(),
                user_agent: ua,
                credential: e.credential.id.as_deref().map(str::to_owned),
                session: e.actor.session_id.as_deref().map(str::to_owned),
            };
            all.push((e.id.to_string(), call.clone()));
            by_principal.entry(principal).or_default().push(call);
        });
        let summary = nhid_sim::run(&cfg, &mut sink).unwrap();
        drop(sink);
        let ids: HashSet<&str> = summary.labels.iter().map(|l| l.first_malicious_event_id.as_str()).collect();
        let first_malicious = all.into_iter().filter(|(id, _)| ids.contains(id.as_str())).collect();
        Observed { start: cfg.start, cfg, by_principal, classic_agents, labels: summary.labels, first_malicious }
    })
}

impl Observed {
    fn of(&self, archetype: Archetype) -> impl Iterator<Item = (&String, &Vec<Call>)> {
        self.by_principal.iter().filter(move |(p, _)| Archetype::of(p) == archetype)
    }

    /// The benign calls of `principal`: all but those presenting an attack's credential within
    /// its span.
    fn benign<'a>(&'a self, principal: &'a str, calls: &'a [Call]) -> impl Iterator<Item = &'a Call> + 'a {
        let attacks: Vec<&Label> = self.labels.iter().filter(|l| l.principal_id == principal).collect();
        calls.iter().filter(move |c| {
            !attacks.iter().any(|l| (l.start..=l.end).contains(&c.time) && c.credential == l.credential_id)
        })
    }

    /// The calls of `l`'s principal within its span.
    fn in_label<'a>(&'a self, l: &'a Label) -> impl Iterator<Item = &'a Call> + 'a {
        self.by_principal[&l.principal_id].iter().filter(move |c| (l.start..=l.end).contains(&c.time))
    }
}

#[test]
fn ci_jobs_assume_their_role_then_call_from_one_fresh_github_address_each() {
    let o = observed();
    let github = Ranges::of("github");
    let mut jobs = 0;
    let mut addresses = HashSet::new();
    for (principal, calls) in o.of(Archetype::CiRunner) {
        let mut by_job: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
        for c in o.benign(principal, calls) {
            by_job.entry(c.session.as_deref().expect("a role session names its session")).or_default().push(c);
        }
        let agents: BTreeSet<&str> = calls.iter().map(|c| c.user_agent.as_str()).collect();
        assert!(agents.len() >= 3, "{principal}: the client names each command: {agents:?}");
        for (session, job) in &by_job {
            jobs += 1;
            assert_eq!(job[0].action, "sts:AssumeRoleWithWebIdentity", "{principal} {session}");
            assert!(job[0].user_agent.contains("configure-aws-credentials"), "{}", job[0].user_agent);
            let ips: BTreeSet<&str> = job.iter().map(|c| c.ip.as_str()).collect();
            let credentials: BTreeSet<_> = job.iter().map(|c| &c.credential).collect();
            assert_eq!((ips.len(), credentials.len()), (1, 1), "{principal} {session}: {ips:?}");
            let ip = *ips.first().unwrap();
            assert!(github.contains(ip), "{principal} {session}: {ip} outside GitHub's ranges");
            assert!(
                job.iter().skip(1).all(|c| c.user_agent.contains(" command/") || c.user_agent.contains("Terraform/"))
            );
            addresses.insert(ip);
            // A job's session serves it for minutes, well within its hour.
            assert!(job.last().unwrap().time - job[0].time < 20 * MINUTE);
        }
    }
    eprintln!("{jobs} CI jobs, {} distinct addresses", addresses.len());
    assert!(jobs >= 50, "{jobs}");
    assert!(addresses.len() as f64 >= 0.97 * jobs as f64, "{} addresses for {jobs} jobs", addresses.len());
}

#[test]
fn serverless_cold_starts_bring_a_new_address_and_a_new_session_key() {
    let o = observed();
    let amazon = Ranges::of("amazon");
    let mut functions = 0;
    for (principal, calls) in o.of(Archetype::Serverless) {
        // A function's sessions are all named after it; each cold start has a key of its own.
        // A task's session is its task id, with the key rotated within it.
        let lambda = principal.starts_with("fn-");
        let mut by_start: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for c in o.benign(principal, calls) {
            let start = if lambda { c.credential.as_deref() } else { c.session.as_deref() };
            by_start.entry(start.unwrap()).or_default().insert(&c.ip);
            assert!(amazon.contains(&c.ip), "{principal}: {} outside AWS's ranges", c.ip);
            assert!(c.credential.as_deref().unwrap().starts_with("ASIA"));
            if lambda {
                assert_eq!(c.session.as_deref(), Some(principal.as_str()));
            }
        }
        assert!(by_start.values().all(|ips| ips.len() == 1), "{principal}: one address per cold start or task");
        let addresses: BTreeSet<&&str> = by_start.values().flatten().collect();
        let wanted = if lambda { 20 } else { 3 };
        assert!(by_start.len() >= wanted, "{principal}: {} cold starts or tasks", by_start.len());
        assert!(addresses.len() as f64 >= 0.95 * by_start.len() as f64, "{principal}");
        functions += usize::from(lambda);
    }
    assert!(functions >= 5, "{functions}");
}

#[test]
fn fleets_spread_over_many_networks_with_instances_coming_and_going_daily() {
    let o = observed();
    let amazon = Ranges::of("amazon");
    for (principal, calls) in o.of(Archetype::AutoscaledFleet) {
        let nets: BTreeSet<&str> = calls.iter().map(|c| c.ip.rsplit_once('.').unwrap().0).collect();
        assert!(nets.len() >= 30, "{principal}: {} /24 networks", nets.len());
        assert!(calls.iter().all(|c| amazon.contains(&c.ip)), "{principal}");
        let mut first_seen: HashMap<&str, Millis> = HashMap::new();
        for c in calls {
            first_seen.entry(c.session.as_deref().unwrap()).or_insert(c.time);
        }
        let days_with_new: BTreeSet<Millis> = first_seen.values().map(|t| (t - o.start) / DAY).collect();
        assert!(days_with_new.len() as u32 >= DAYS - 1, "{principal}: new instances on {days_with_new:?}");
        assert!(calls.iter().any(|c| c.user_agent.contains("amazon-ssm-agent/")), "{principal}");
    }
}

#[test]
fn low_volume_keys_make_few_calls_and_show_new_actions_after_their_first_day() {
    let o = observed();
    let (mut keys, mut still_new) = (0, 0);
    for (principal, calls) in o.of(Archetype::LowVolumeKey) {
        let benign: Vec<&Call> = o.benign(principal, calls).collect();
        let per_day = benign.len() as f64 / f64::from(DAYS);
        assert!((2.0..=1_000.0).contains(&per_day), "{principal}: {per_day} calls a day");
        let first = benign[0].time;
        let learned: HashSet<&str> =
            benign.iter().take_while(|c| c.time < first + DAY).map(|c| c.action.as_str()).collect();
        let later: HashSet<&str> = benign.iter().map(|c| c.action.as_str()).filter(|a| !learned.contains(a)).collect();
        keys += 1;
        still_new += usize::from(!later.is_empty());
        let all: HashSet<&str> = benign.iter().map(|c| c.action.as_str()).collect();
        assert!(all.len() >= 5, "{principal}: {all:?}");
        assert!(benign.iter().all(|c| c.credential.as_deref().unwrap().starts_with("AKIA")));
    }
    eprintln!("{still_new} of {keys} low-volume keys show actions after their first day they had not shown");
    assert!(keys >= 5 && still_new * 10 >= keys * 7, "{still_new} of {keys}");
}

#[test]
fn terraform_changes_iam_from_ci_and_weekly_jobs_run_once_a_week() {
    let o = observed();
    let github = Ranges::of("github");
    let mut changes = 0;
    for (principal, calls) in o.of(Archetype::Terraform) {
        for c in calls
            .iter()
            .filter(|c| c.action.starts_with("iam:") && !c.action.contains(":Get") && !c.action.contains(":List"))
        {
            assert!(github.contains(&c.ip), "{principal}: {} from {}", c.action, c.ip);
            assert!(c.user_agent.contains("Terraform/") && c.user_agent.contains("api/iam#"), "{}", c.user_agent);
            changes += usize::from(matches!(
                c.action.as_str(),
                "iam:CreateRole" | "iam:PutRolePolicy" | "iam:AttachRolePolicy"
            ));
        }
    }
    assert!(changes >= 3, "{changes} IAM changes");
    let mut twice = 0;
    for (principal, calls) in o.of(Archetype::WeeklyJob) {
        let mut runs: BTreeMap<&str, Millis> = BTreeMap::new();
        for c in calls {
            runs.entry(c.session.as_deref().unwrap()).or_insert(c.time);
        }
        let mut starts: Vec<Millis> = runs.into_values().collect();
        starts.sort_unstable();
        for w in starts.windows(2) {
            assert!((7 * DAY - HOUR..=7 * DAY + HOUR).contains(&(w[1] - w[0])), "{principal}: {starts:?}");
        }
        twice += usize::from(starts.len() == 2);
    }
    assert!(twice >= 1, "a weekly job seen twice in {DAYS} days");
}

#[test]
fn user_agents_name_the_call_and_some_sdks_upgrade_mid_run() {
    let o = observed();
    // Whether some client (the first token's name) shows two versions.
    let upgrades = |agents: &mut dyn Iterator<Item = &str>| {
        let mut versions: HashMap<&str, HashSet<&str>> = HashMap::new();
        for ua in agents {
            if let Some((client, version)) = ua.split_whitespace().next().and_then(|t| t.split_once('/')) {
                versions.entry(client).or_default().insert(version);
            }
        }
        versions.values().any(|v| v.len() >= 2)
    };
    let mut upgraded = 0;
    let mut naming = 0;
    for calls in o.by_principal.values() {
        upgraded += usize::from(upgrades(&mut calls.iter().map(|c| c.user_agent.as_str())));
        naming +=
            usize::from(calls.iter().any(|c| c.user_agent.contains(" api/") || c.user_agent.contains(" command/")));
    }
    for agents in o.classic_agents.values() {
        upgraded += usize::from(upgrades(&mut agents.iter().map(String::as_str)));
        naming += usize::from(agents.iter().any(|ua| ua.contains(" api/") || ua.contains(" command/")));
    }
    eprintln!("{naming} identities with user agents naming the call, {upgraded} upgrading their SDK");
    assert!(naming >= o.cfg.principals / 2, "{naming}");
    assert!(upgraded >= 5, "{upgraded}");
}

#[test]
fn every_cloud_attack_is_labeled_with_its_principal_credential_session_and_response() {
    let o = observed();
    let hosting = [Ranges::of("digitalocean"), Ranges::of("vultr"), Ranges::of("linode")];
    let (github, proton) = (Ranges::of("github"), Ranges::of("protonvpn"));
    let scenarios: BTreeSet<&str> = o.labels.iter().map(|l| l.scenario.as_str()).collect();
    assert_eq!(scenarios.len(), Estate::Cloud.scenarios() - 1, "all but the dormant key (ten days): {scenarios:?}");
    let cloud = ["stolen_key_recon", "slow_exfiltration", "stolen_serverless_session", "ci_session_off_github"];
    for l in &o.labels {
        assert_eq!(l.expected_response.is_some(), !l.expected_kinds.is_empty(), "{l:?}");
        // The classic scenarios are the classic estate's, checked with it (crates/sim).
        if !cloud.contains(&l.scenario.as_str()) {
            assert_eq!(Archetype::of(&l.principal_id), Archetype::Classic, "{l:?}");
            continue;
        }
        let first = &o.first_malicious[&l.first_malicious_event_id];
        assert_eq!((&first.principal, first.time), (&l.principal_id, l.first_malicious_time), "{l:?}");
        assert_eq!((&l.credential_id, &l.session_id), (&first.credential, &first.session), "{l:?}");
        assert!(l.credential_id.is_some(), "{l:?}");
        let benign_ips: HashSet<&str> =
            o.benign(&l.principal_id, &o.by_principal[&l.principal_id]).map(|c| c.ip.as_str()).collect();
        let attack: Vec<&Call> = o.in_label(l).filter(|c| c.credential == l.credential_id).collect();
        let foreign: Vec<&&Call> = attack.iter().filter(|c| !benign_ips.contains(c.ip.as_str())).collect();
        match l.scenario.as_str() {
            "stolen_key_recon" => {
                assert_eq!(Archetype::of(&l.principal_id), Archetype::LowVolumeKey);
                assert!((3..=8).contains(&foreign.len()), "{l:?}: {foreign:#?}");
                assert!(foreign.iter().all(|c| hosting.iter().any(|r| r.contains(&c.ip))), "{foreign:#?}");
                assert_eq!(foreign[0].action, "sts:GetCallerIdentity");
                assert_eq!(l.expected_response, Some(Response::RevokeCredential));
            }
            "slow_exfiltration" => {
                assert_eq!(Archetype::of(&l.principal_id), Archetype::LowVolumeKey);
                assert!(foreign.is_empty(), "from its own network: {foreign:#?}");
                let mut per_minute: BTreeMap<Millis, u32> = BTreeMap::new();
                for c in attack.iter().filter(|c| c.action == "s3:GetObject") {
                    *per_minute.entry(c.time / MINUTE).or_default() += 1;
                }
                let busy: Vec<u32> = per_minute.values().copied().filter(|&n| n >= 10).collect();
                assert!(busy.len() >= 14 && busy.iter().all(|&n| n < 30), "{l:?}: {per_minute:?}");
                let usual =
                    o.benign(&l.principal_id, &o.by_principal[&l.principal_id]).count() as f64 / f64::from(DAYS * 1440);
                assert!((0.1..0.6).contains(&usual), "about 0.3 calls a minute usually: {usual}");
            }
            "stolen_serverless_session" => {
                assert_eq!(Archetype::of(&l.principal_id), Archetype::Serverless);
                assert!(!foreign.is_empty() && foreign.iter().all(|c| proton.contains(&c.ip)), "{foreign:#?}");
                assert!(
                    foreign
                        .iter()
                        .all(|c| c.user_agent.starts_with("curl/") || c.user_agent.starts_with("python-requests/"))
                );
                assert!(l.session_id.is_some() && foreign.iter().all(|c| c.session == l.session_id));
                // The key is the one a cold start got: its benign calls presented it before.
                assert!(
                    o.by_principal[&l.principal_id].iter().any(|c| c.credential == l.credential_id && c.time < l.start)
                );
                assert_eq!(l.expected_response, Some(Response::RevokeSession));
            }
            "ci_session_off_github" => {
                assert_eq!(Archetype::of(&l.principal_id), Archetype::CiRunner);
                assert!(!foreign.is_empty() && foreign.iter().all(|c| !github.contains(&c.ip)), "{foreign:#?}");
                assert!(l.session_id.as_deref().is_some_and(|s| s.starts_with("gha-")), "{l:?}");
                assert!(foreign.iter().all(|c| c.session == l.session_id));
                let job_start = o.by_principal[&l.principal_id]
                    .iter()
                    .find(|c| c.credential == l.credential_id)
                    .map(|c| c.time)
                    .unwrap();
                assert!(l.end - job_start < HOUR, "within the session's hour: {l:?}");
                assert_eq!(l.expected_response, Some(Response::RevokeSession));
            }
            _ => unreachable!(),
        }
    }
    for scenario in cloud {
        assert!(scenarios.contains(scenario), "{scenario}: {scenarios:?}");
    }
}

#[test]
fn a_seed_gives_byte_identical_output_and_another_seed_another() {
    struct Hash(xxhash_rust::xxh3::Xxh3);
    impl Write for Hash {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let digest = |seed: u64| {
        let cfg = SimConfig { seed, principals: 30, days: 2, estate: Estate::Cloud, ..SimConfig::default() };
        let mut h = Hash(xxhash_rust::xxh3::Xxh3::new());
        let summary = nhid_sim::run(&cfg, &mut h).unwrap();
        (h.0.digest(), serde_json::to_string(&summary.labels).unwrap(), nhid_sim::inventory(&cfg))
    };
    let (a, b) = (digest(9), digest(9));
    assert_eq!(a, b);
    assert_ne!(a.0, digest(10).0);
    // The inventory known before any event is the one the run reports.
    let cfg = SimConfig { seed: 9, principals: 30, days: 2, estate: Estate::Cloud, ..SimConfig::default() };
    let summary = nhid_sim::run(&cfg, &mut io::sink()).unwrap();
    assert_eq!(summary.inventory, a.2);
    assert_eq!(summary.principals_by_archetype.values().sum::<usize>(), 30);
    assert_eq!(summary.principals_by_archetype.len(), Archetype::ALL.len());
}
