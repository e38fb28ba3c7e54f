//! Throughput of decode+classify, state update and the whole pipeline (bytes → alerts) on
//! a realistic mix from `nhid-sim simulate`, what each detector kind adds to the whole pipeline,
//! the memory held per tracked identity, and what a `/principals` page costs over a large state.
//!
//! `cargo bench --bench pipeline` (figures in docs/performance.md; `-- pipeline_per_kind` for
//! the per-kind table alone, about a minute and a half). The `pipeline` group measures the
//! steady state: an engine that learned its identities on two simulated days, timed on the
//! third (it asserts that alerts are raised there). Targets on the 2-core machine: ≤ 1.5 µs
//! an event on one core through the whole pipeline, ≤ 1 KiB of state per identity at 100,000
//! identities. `cargo bench --bench replay` measures the whole process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nhid_decode::{DecodeContext, Format};
use nhid_engine::detect;
use nhid_engine::inventory::Inventory;
use nhid_engine::state::{Identity, LearningSecs, StateConfig, StateStore};
use nhid_engine::{Engine, EngineConfig, Origin, Outputs};
use nhid_http::principals;
use nhid_model::event::AuditEvent;
use nhid_model::time::{DAY, format_rfc3339};
use nhid_sim::SimConfig;
use serde_json::{Value, json};

/// Counts live heap bytes and allocations, to measure state size and hot-path allocations.
struct Counting;
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's own layout and
// pointer, unchanged; the counters are plain atomics and never touch the memory.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Relaxed);
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

mod shapes;

const EVENTS: usize = 200_000;

/// Canonical event lines from the simulator: 200 principals, one day, first `EVENTS` lines.
fn native_lines() -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    nhid_sim::run(&SimConfig { seed: 7, principals: 200, days: 1, ..SimConfig::default() }, &mut buf).unwrap();
    buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).take(EVENTS).map(<[u8]>::to_vec).collect()
}

/// `nhid-sim simulate --seed 7 --principals 200 --days 3`: its first two days, and the first
/// `EVENTS` events of the third.
fn steady_state_days() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut buf = Vec::new();
    nhid_sim::run(&SimConfig { seed: 7, principals: 200, days: 3, ..SimConfig::default() }, &mut buf).unwrap();
    let third = format_rfc3339(nhid_sim::DEFAULT_START + 2 * DAY);
    let lines: Vec<Vec<u8>> = buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    // The simulator writes in time order; its times are RFC 3339 in UTC, ordered as text.
    let time = |l: &[u8]| serde_json::from_slice::<Value>(l).unwrap()["time"].as_str().unwrap().to_owned();
    let split = lines.partition_point(|l| time(l) < third);
    let mut history = lines;
    let day = history.split_off(split).into_iter().take(EVENTS).collect();
    (history, day)
}

/// The same events as CloudTrail records ([`shapes::cloudtrail`]).
fn cloudtrail_lines(native: &[Vec<u8>]) -> Vec<Vec<u8>> {
    native.iter().map(|l| shapes::cloudtrail(l)).collect()
}

/// The same events as GitHub audit log events (streamed shape: `@timestamp` in ms, a
/// document id, token fields, location and ids the decoder skips).
fn github_lines(native: &[Vec<u8>]) -> Vec<Vec<u8>> {
    native
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let e: Value = serde_json::from_slice(l).unwrap();
            let pid = e["principal"]["id"].as_str().unwrap().replace([':', '/'], "-");
            let kind = e["principal"]["type"].as_str().unwrap_or("unknown");
            let time = nhid_model::time::parse_rfc3339(e["time"].as_str().unwrap()).unwrap();
            let action = e["action"].as_str().unwrap().replace(':', ".").to_lowercase();
            let mut r = json!({
                "@timestamp": time, "_document_id": format!("doc{i:020}"), "action": action,
                "actor": pid, "actor_id": 1000 + i % 200, "actor_ip": e["source"]["ip"], "user_agent": e["source"]["user_agent"],
                "actor_location": {"country_code": "US"}, "business": "example-ent", "business_id": 42,
                "org": "example", "org_id": 4242, "repo": "example/service-api", "repo_id": 777, "public_repo": false,
                "operation_type": "access", "created_at": time, "request_id": "0C4D:3A7E:1B2C3D:4E5F60:6553F1A2",
                "programmatic_access_type": "Personal access token (classic)", "hashed_token": "dGhpcyBpcyBhIGhhc2g=",
                "token_id": 5_000 + i % 50, "token_scopes": "repo,workflow,read:org"
            });
            match kind {
                "bot" | "workload" | "service_account" => {
                    r["actor"] = format!("{pid}[bot]").into();
                    r["programmatic_access_type"] = "GitHub App server-to-server token".into();
                }
                "ai_agent" => {
                    r["actor"] = "Copilot".into();
                    r["actor_is_agent"] = true.into();
                    r["agent_session_id"] = format!("session-{}", i % 97).into();
                    r["user"] = "octocat".into();
                }
                _ => {}
            }
            serde_json::to_vec(&r).unwrap()
        })
        .collect()
}

/// The same events as Okta System Log events (~1.5 KiB: client, geography, request chain and
/// debug data the decoder skips). Machine principals act with an API token.
fn okta_lines(native: &[Vec<u8>]) -> Vec<Vec<u8>> {
    native
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let e: Value = serde_json::from_slice(l).unwrap();
            let pid = e["principal"]["id"].as_str().unwrap();
            let machine = e["principal"]["type"].as_str().is_some_and(|t| t != "human");
            let ip = &e["source"]["ip"];
            let detail = if machine { json!({"requestApiTokenId": format!("00T{:017}", i % 300)}) } else { json!({}) };
            let r = json!({
                "actor": {"id": format!("00u{:017}", i % 200), "type": "User", "alternateId": format!("{pid}@example.com"), "displayName": pid, "detailEntry": null},
                "client": {"userAgent": {"rawUserAgent": e["source"]["user_agent"], "os": "Linux", "browser": "UNKNOWN"}, "zone": "null", "device": "Computer", "id": null, "ipAddress": ip,
                    "geographicalContext": {"city": "Ashburn", "state": "Virginia", "country": "United States", "postalCode": "20149", "geolocation": {"lat": 39.0469, "lon": -77.4903}}},
                "device": null, "authenticationContext": {"authenticationProvider": null, "credentialProvider": null, "credentialType": null, "issuer": null, "interface": null, "authenticationStep": 0, "externalSessionId": format!("102{:020}", i % 500)},
                "displayMessage": "Update user profile for Okta", "eventType": e["action"].as_str().unwrap().replace(':', ".").to_lowercase(),
                "outcome": {"result": if e["outcome"] == "success" { "SUCCESS" } else { "DENY" }, "reason": null},
                "published": e["time"], "securityContext": {"asNumber": 14618, "asOrg": "amazon", "isp": "amazon.com inc.", "domain": "amazonaws.com", "isProxy": false},
                "severity": "INFO", "debugContext": {"debugData": {"requestId": "Zk3aGxVvY2FcQn0AAAB1", "requestUri": "/api/v1/users/00u1/lifecycle/activate", "url": "/api/v1/users/00u1/lifecycle/activate?sendEmail=false", "dtHash": "4d6fb1e5f1c7a2b0d3e8c9f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6"}},
                "legacyEventType": "core.user.config.profile_update.success", "transaction": {"type": "WEB", "id": "Zk3aGxVvY2FcQn0AAAB1", "detail": detail},
                "uuid": e["id"], "version": "0", "request": {"ipChain": [{"ip": ip, "geographicalContext": {"city": "Ashburn", "state": "Virginia", "country": "United States"}, "version": "V4", "source": null}]},
                "target": [{"id": "00u2exampletarget01", "type": "User", "alternateId": "bob@example.com", "displayName": "Bob", "detailEntry": null}]
            });
            serde_json::to_vec(&r).unwrap()
        })
        .collect()
}

/// The same events as Entra sign-ins in the diagnostic-settings (Event Hubs) shape, ~1.5 KiB
/// each like real ones: service principals with a secret, users for the human principals.
fn entra_lines(native: &[Vec<u8>]) -> Vec<Vec<u8>> {
    native
        .iter()
        .map(|l| {
            let e: Value = serde_json::from_slice(l).unwrap();
            let pid = e["principal"]["id"].as_str().unwrap();
            let human = e["principal"]["type"] == "human";
            let code = if e["outcome"] == "success" { 0 } else { 7000215 };
            let mut props = json!({
                "id": e["id"], "createdDateTime": e["time"], "appId": "de8bc8b5-d9f9-48b1-a8ad-b748da725064",
                "appDisplayName": pid, "ipAddress": e["source"]["ip"], "correlationId": "d79f5bee-5860-4832-928f-3133e22ae912",
                "resourceDisplayName": "Microsoft Graph", "resourceId": "00000003-0000-0000-c000-000000000000",
                "status": {"errorCode": code}, "conditionalAccessStatus": "notApplied", "isInteractive": false,
                "authenticationProcessingDetails": [{"key": "Azure AD App Authentication Library", "value": "Family: MSAL Library: MSAL.NET 4.56.0 Platform: .NET"}],
                "location": {"city": "Dublin", "countryOrRegion": "IE", "geoCoordinates": {"latitude": 53.35, "longitude": -6.26}, "state": "Dublin"},
                "riskDetail": "none", "riskLevelAggregated": "low", "riskLevelDuringSignIn": "low", "riskState": "none",
                "tokenIssuerType": "AzureAD", "uniqueTokenIdentifier": "CXXXXXXXXXXXXXXXXXXXXX", "userAgent": e["source"]["user_agent"]
            });
            let category = if human {
                props["userId"] = pid.into();
                props["userPrincipalName"] = format!("{pid}@example.com").into();
                "NonInteractiveUserSignInLogs"
            } else {
                props["servicePrincipalId"] = pid.into();
                props["servicePrincipalName"] = pid.into();
                props["servicePrincipalCredentialKeyId"] = "2afc776a-4e79-4588-b2ad-f62c94d6bea8".into();
                props["clientCredentialType"] = "clientSecret".into();
                "ServicePrincipalSignInLogs"
            };
            let r = json!({
                "time": e["time"], "resourceId": "/tenants/72f988bf-86f1-41af-91ab-2d7cd011db47/providers/Microsoft.aadiam",
                "operationName": "Sign-in activity", "operationVersion": "1.0", "category": category,
                "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "resultType": code.to_string(), "resultSignature": "None",
                "durationMs": 0, "callerIpAddress": e["source"]["ip"], "correlationId": "d79f5bee-5860-4832-928f-3133e22ae912",
                "Level": "4", "properties": props
            });
            serde_json::to_vec(&r).unwrap()
        })
        .collect()
}

/// The same events as OCSF API Activity the way Amazon Security Lake writes CloudTrail (~1 KiB).
fn ocsf_lines(native: &[Vec<u8>]) -> Vec<Vec<u8>> {
    native
        .iter()
        .map(|l| {
            let e: Value = serde_json::from_slice(l).unwrap();
            let (service, op) = e["action"].as_str().unwrap().split_once(':').unwrap_or(("aws", "Call"));
            let pid = e["principal"]["id"].as_str().unwrap();
            let key = e["credential"]["id"].as_str().unwrap_or("ASIAEXAMPLE");
            let time = nhid_model::time::parse_rfc3339(e["time"].as_str().unwrap()).unwrap();
            let user = if key.starts_with("AKIA") {
                json!({"type": "IAMUser", "name": pid, "uid": format!("arn:aws:iam::123456789012:user/{pid}"),
                       "account": {"uid": "123456789012", "type": "AWS Account"}, "credential_uid": key})
            } else {
                json!({"type": "AssumedRole", "name": pid, "uid": format!("arn:aws:sts::123456789012:assumed-role/{pid}/session-1"),
                       "uid_alt": format!("AROAEXAMPLE:{pid}"), "account": {"uid": "123456789012", "type": "AWS Account"},
                       "credential_uid": "ASIAEXAMPLE"})
            };
            let ok = e["outcome"] == "success";
            let r = json!({
                "metadata": {"product": {"version": "1.09", "name": "CloudTrail", "vendor_name": "AWS", "feature": {"name": "Data"}},
                             "uid": e["id"], "profiles": ["cloud", "datetime"], "version": "1.1.0"},
                "time": time, "time_dt": e["time"], "cloud": {"region": "us-east-1", "provider": "AWS", "account": {"uid": "123456789012"}},
                "api": {"response": {"error": if ok { Value::Null } else { "AccessDenied".into() }}, "operation": op,
                        "service": {"name": format!("{service}.amazonaws.com")}, "request": {"uid": "8H5MAV3XZ3F2Q7TE"}},
                "actor": {"user": user, "session": {"created_time": time - 3_600_000, "is_mfa": false,
                          "issuer": format!("arn:aws:iam::123456789012:role/{pid}")}},
                "http_request": {"user_agent": e["source"]["user_agent"]}, "src_endpoint": {"ip": e["source"]["ip"]},
                "resources": [{"uid": "arn:aws:s3:::example-data", "type": "AWS::S3::Bucket"}],
                "class_name": "API Activity", "class_uid": 6003, "category_name": "Application Activity", "category_uid": 6,
                "severity_id": 1, "severity": "Informational", "activity_id": 2, "activity_name": "Read", "type_uid": 600302,
                "status": if ok { "Success" } else { "Failure" }, "status_id": if ok { 1 } else { 2 }
            });
            serde_json::to_vec(&r).unwrap()
        })
        .collect()
}

/// The same events as Kubernetes audit Events at `Metadata` level (~900 B): machines as
/// service accounts with bound pod tokens, people as OIDC users.
fn k8s_lines(native: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let verbs = ["get", "list", "watch", "create", "update", "patch", "delete"];
    native
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let e: Value = serde_json::from_slice(l).unwrap();
            let pid = e["principal"]["id"].as_str().unwrap();
            let user = if e["principal"]["type"] == "human" {
                json!({"username": format!("{pid}@example.com"), "groups": ["developers", "system:authenticated"]})
            } else {
                json!({"username": format!("system:serviceaccount:prod:{pid}"), "uid": "6f8a-2b1c",
                       "groups": ["system:serviceaccounts", "system:serviceaccounts:prod", "system:authenticated"],
                       "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={pid}-{}", i % 7)],
                                 "authentication.kubernetes.io/node-name": ["node-3"],
                                 "authentication.kubernetes.io/pod-name": [format!("{pid}-7d9f8-x2k4q")],
                                 "authentication.kubernetes.io/pod-uid": ["0c0e1e43-4d3a-4b8f-a1a4-2f1e6c1b9d77"]}})
            };
            let code = if e["outcome"] == "success" { 200 } else { 403 };
            let r = json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": e["id"],
                "stage": "ResponseComplete", "requestURI": format!("/api/v1/namespaces/prod/configmaps/cm-{}", i % 50),
                "verb": verbs[i % verbs.len()], "user": user, "sourceIPs": [e["source"]["ip"]],
                "userAgent": e["source"]["user_agent"],
                "objectRef": {"resource": "configmaps", "namespace": "prod", "name": format!("cm-{}", i % 50), "apiVersion": "v1"},
                "responseStatus": {"metadata": {}, "code": code},
                "requestReceivedTimestamp": e["time"], "stageTimestamp": e["time"],
                "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"app\" of Role \"app\" to ServiceAccount \"app/prod\""}
            });
            serde_json::to_vec(&r).unwrap()
        })
        .collect()
}

/// The same events as GCP audit `LogEntry`s (~1.3 KiB): machines as service accounts,
/// a third of them signing with a user-managed key, people through gcloud.
fn gcp_lines(native: &[Vec<u8>]) -> Vec<Vec<u8>> {
    native
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let e: Value = serde_json::from_slice(l).unwrap();
            let pid = e["principal"]["id"].as_str().unwrap();
            let human = e["principal"]["type"] == "human";
            let email =
                if human { format!("{pid}@example.com") } else { format!("{pid}@prod-42.iam.gserviceaccount.com") };
            let mut auth = json!({"principalEmail": email, "principalSubject": format!("serviceAccount:{email}")});
            if !human && i % 3 == 0 {
                auth["serviceAccountKeyName"] =
                    format!("//iam.googleapis.com/projects/prod-42/serviceAccounts/{email}/keys/{:040x}", i % 5).into();
            }
            let status = if e["outcome"] == "success" { json!({}) } else { json!({"code": 7, "message": "PERMISSION_DENIED"}) };
            let r = json!({
                "protoPayload": {
                    "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "status": status, "authenticationInfo": auth,
                    "requestMetadata": {"callerIp": e["source"]["ip"], "callerSuppliedUserAgent": e["source"]["user_agent"],
                        "requestAttributes": {"time": e["time"], "auth": {}}, "destinationAttributes": {}},
                    "serviceName": "storage.googleapis.com", "methodName": "storage.objects.get",
                    "authorizationInfo": [{"resource": format!("projects/_/buckets/exports/objects/part-{}", i % 100),
                        "permission": "storage.objects.get", "granted": true, "resourceAttributes": {}}],
                    "resourceName": format!("projects/_/buckets/exports/objects/part-{}", i % 100),
                    "resourceLocation": {"currentLocations": ["us-central1"]}
                },
                "insertId": e["id"], "resource": {"type": "gcs_bucket", "labels": {"project_id": "prod-42", "bucket_name": "exports", "location": "us-central1"}},
                "timestamp": e["time"], "severity": "INFO", "logName": "projects/prod-42/logs/cloudaudit.googleapis.com%2Fdata_access",
                "receiveTimestamp": e["time"]
            });
            serde_json::to_vec(&r).unwrap()
        })
        .collect()
}

fn engine() -> Engine {
    Engine::new(detect::load(None).unwrap(), Inventory::default(), EngineConfig::default())
}

fn process_all(engine: &Engine, lines: &[Vec<u8>]) -> usize {
    let mut out = Outputs::default();
    let mut alerts = 0;
    for (i, l) in lines.iter().enumerate() {
        engine.process(l, Origin { source: "bench", partition: 0, offset: i as i64 }, None, &mut out);
        alerts += out.alerts.len();
        out.alerts.clear();
        out.actions.clear();
        out.dead_letters.clear();
    }
    alerts
}

fn benches(c: &mut Criterion) {
    let native = native_lines();
    let cloudtrail = cloudtrail_lines(&native);
    let entra = entra_lines(&native);
    let ocsf = ocsf_lines(&native);
    let n = native.len() as u64;
    let avg = |ls: &[Vec<u8>]| ls.iter().map(Vec::len).sum::<usize>() / ls.len();
    eprintln!(
        "workload: {n} events from `nhid-sim simulate --seed 7 --principals 200 --days 1`; native {} B/event, cloudtrail {} B/record",
        avg(&native),
        avg(&cloudtrail)
    );
    report_allocations(&native);
    report_state_size();

    let ctx = DecodeContext { fallback_time: None, max_event_bytes: nhid_decode::DEFAULT_MAX_EVENT_BYTES };
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    let (github, okta) = (github_lines(&native), okta_lines(&native));
    let (k8s, gcp) = (k8s_lines(&native), gcp_lines(&native));
    for (name, lines) in [
        ("native", &native),
        ("cloudtrail", &cloudtrail),
        ("k8s_audit", &k8s),
        ("gcp_audit", &gcp),
        ("github", &github),
        ("okta", &okta),
        ("entra", &entra),
        ("ocsf", &ocsf),
    ] {
        // Measured only on events that decode: timing dead letters would flatter a decoder.
        let mut failed = 0;
        for l in lines.iter() {
            nhid_decode::decode(l, Format::Auto, &ctx, &mut |r| failed += usize::from(r.is_err()));
        }
        assert_eq!(failed, 0, "{name}: {failed} of {} bench events did not decode", lines.len());
        eprintln!("{name}: {} B/event", avg(lines));
        g.bench_function(name, |b| {
            b.iter(|| {
                for l in lines.iter() {
                    nhid_decode::decode(l, Format::Auto, &ctx, &mut |r| {
                        black_box(r.is_ok());
                    });
                }
            })
        });
    }
    // What auto-detection costs: the same canonical events with the format forced.
    g.bench_function("native_forced", |b| {
        b.iter(|| {
            for l in native.iter() {
                nhid_decode::decode(l, Format::Native, &ctx, &mut |r| {
                    black_box(r.is_ok());
                });
            }
        })
    });
    g.finish();

    let events: Vec<AuditEvent<'_>> =
        native.iter().map(|l| nhid_decode::native::decode(std::str::from_utf8(l).unwrap()).unwrap()).collect();
    let mut g = c.benchmark_group("state");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("observe", |b| {
        b.iter_batched(
            || StateStore::new(StateConfig::default()),
            |store| {
                for ev in &events {
                    store.with_identity(
                        &ev.principal.id,
                        || Identity::new(ev.principal.kind, None, ev.time),
                        |id| {
                            black_box(
                                id.observe(ev, DAY, nhid_engine::context::network::Ranges::builtin()).minute_count,
                            );
                        },
                    );
                }
                store
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // The steady state: an engine that learned the identities on two days, timed on the
    // third day's events (every detector runs on them), with a fresh copy of that engine for
    // every iteration.
    let (history, day) = steady_state_days();
    let day_ct = cloudtrail_lines(&day);
    let warmed = |lines: &[Vec<u8>]| {
        let e = engine();
        process_all(&e, lines);
        e
    };
    let (history_ct, day_events): (Vec<_>, Vec<AuditEvent<'_>>) = (
        cloudtrail_lines(&history),
        day.iter().map(|l| nhid_decode::native::decode(std::str::from_utf8(l).unwrap()).unwrap()).collect(),
    );
    for (name, history, day) in [("canonical", &history, &day), ("cloudtrail", &history_ct, &day_ct)] {
        let raised = process_all(&warmed(history), day);
        eprintln!(
            "steady state, {name}: {} events learned, {} timed, {raised} alerts on them",
            history.len(),
            day.len()
        );
        assert!(raised > 0, "{name}: no alert on the third day: the detectors did not run");
    }
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(day.len() as u64));
    g.sample_size(10);
    g.bench_function("native_1_worker", |b| {
        b.iter_batched(|| warmed(&history), |e| black_box(process_all(&e, &day)), BatchSize::PerIteration)
    });
    g.bench_function("cloudtrail_1_worker", |b| {
        b.iter_batched(|| warmed(&history_ct), |e| black_box(process_all(&e, &day_ct)), BatchSize::PerIteration)
    });
    // Two workers, each owning the partition its principals hash to, as with Kafka.
    let partitions = partition(&day, &day_events, 2);
    g.bench_function("native_2_workers", |b| {
        b.iter_batched(
            || warmed(&history),
            |e| {
                std::thread::scope(|s| {
                    for p in &partitions {
                        let e = &e;
                        s.spawn(move || black_box(process_all(e, p)));
                    }
                });
                e
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    per_kind_cost(c, &native);

    // `/principals` walks every identity per page (filters and the keyset cursor need it):
    // what a page costs at 100,000 identities, a third of them ownerless.
    let e = engine();
    let mut out = Outputs::default();
    for i in 0..100_000 {
        let owner = if i % 3 == 0 { String::new() } else { format!(r#","owner":"team-{}""#, i % 50) };
        let line = format!(
            r#"{{"id":"e{i}","time":"2026-11-20T00:00:00Z","principal":{{"id":"svc-{i:06}","type":"service_account"{owner}}},"credential":{{"id":"AKIA{i:016}","kind":"static_key"}},"action":"s3:GetObject","service":"s3","outcome":"success"}}"#
        );
        e.process(line.as_bytes(), Origin { source: "bench", partition: 0, offset: i }, None, &mut out);
        out.clear();
    }
    let mut g = c.benchmark_group("principals_100k_identities");
    g.sample_size(10);
    let query = |q: &str| -> principals::Query { serde_json::from_value(serde_json::from_str(q).unwrap()).unwrap() };
    for (name, q) in [
        ("first_page_of_100", "{}"),
        ("page_in_the_middle", r#"{"after":"svc-050000"}"#),
        ("orphaned_true", r#"{"orphaned":true}"#),
        ("owner_filter", r#"{"owner":"team-7"}"#),
    ] {
        let q = query(q);
        g.bench_function(name, |b| b.iter(|| principals::list(&e, black_box(&q), false).unwrap().principals.len()));
    }
    g.bench_function("one_principal", |b| {
        b.iter(|| principals::view(&e, black_box("svc-050001"), true, false).is_some())
    });
    g.finish();
}

/// What each detector kind costs: the whole pipeline (bytes → alerts, one worker, the events
/// of the `pipeline` group) with every shipped detector, with none, with rate_spike only, and
/// with rate_spike plus each other kind alone. A kind's cost is its configuration's time per
/// event minus rate_spike only's. The state computes every fact whichever detectors read it
/// (baselines, sets, breadth and credential-source windows), so "none" is the floor every
/// configuration pays and the deltas are the kinds' checks and the alerts they raise.
/// Identities learn for an hour instead of a day: the events span four hours of one day, and
/// during learning most kinds stop at their first test, which would measure nothing; this way
/// most events meet a learned identity and run the whole check (the table says how many), and
/// the young baselines raise some alerts, whose cost is part of a kind's.
/// `unregistered_principal` is inert here: like the other groups, this runs without an inventory.
fn per_kind_cost(c: &mut Criterion, native: &[Vec<u8>]) {
    use std::cell::RefCell;
    use std::time::{Duration, Instant};

    let only = |kinds: &[&str]| {
        detect::load(None).unwrap().into_iter().filter(|d| kinds.contains(&d.kind)).collect::<Vec<_>>()
    };
    let learning_secs = LearningSecs { default: 3_600, per_type: Default::default() };
    let config = || EngineConfig {
        state: StateConfig { learning_secs: learning_secs.clone(), ..StateConfig::default() },
        ..EngineConfig::default()
    };
    let engine_with = |kinds: &[&str]| Engine::new(only(kinds), Inventory::default(), config());
    // Each configuration by the kinds it keeps.
    let mut configs: Vec<(String, Vec<&str>)> = vec![
        ("all".into(), detect::KINDS.to_vec()),
        ("none".into(), vec![]),
        ("rate_spike".into(), vec!["rate_spike"]),
    ];
    for &kind in detect::KINDS.iter().filter(|&&k| k != "rate_spike") {
        configs.push((format!("rate_spike+{kind}"), vec!["rate_spike", kind]));
    }

    let n = native.len();
    let mut first_seen = std::collections::HashMap::new();
    let learned = native
        .iter()
        .filter(|l| {
            let ev = nhid_decode::native::decode(std::str::from_utf8(l).unwrap()).unwrap();
            let first = *first_seen.entry(ev.principal.id.into_owned()).or_insert(ev.time);
            ev.time - first >= learning_secs.default as i64 * 1_000
        })
        .count();
    let mut g = c.benchmark_group("pipeline_per_kind");
    g.throughput(Throughput::Elements(n as u64));
    // Eighteen configurations at ~0.4 s a pass: ten flat samples of one or two passes each.
    g.sample_size(10);
    g.sampling_mode(criterion::SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    // (configuration, detectors, alerts over the events, seconds per pass of every sample)
    let mut rows: Vec<(String, usize, usize, Vec<f64>)> = Vec::new();
    for (name, kinds) in &configs {
        let detectors = only(kinds).len();
        let (passes, alerts) = (RefCell::new(Vec::new()), std::cell::Cell::new(0));
        g.bench_function(name.as_str(), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let e = engine_with(kinds);
                    let start = Instant::now();
                    alerts.set(black_box(process_all(&e, native)));
                    timed += start.elapsed();
                }
                passes.borrow_mut().push(timed.as_secs_f64() / iters as f64);
                timed
            })
        });
        rows.push((name.clone(), detectors, alerts.get(), passes.into_inner()));
    }
    g.finish();
    // A filtered run (`-- <other group>`) skips the measurements: nothing to print.
    if rows.iter().any(|r| r.3.is_empty()) {
        return;
    }

    let ns_per_event = |passes: &[f64]| {
        let mut v: Vec<f64> = passes.iter().map(|s| s * 1e9 / n as f64).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], (v[v.len() - 1] - v[0]) / 2.0)
    };
    let (baseline, _) = ns_per_event(&rows.iter().find(|r| r.0 == "rate_spike").unwrap().3);
    eprintln!(
        "\nper-kind cost: whole pipeline, 1 worker, {n} events ({:.0} % on identities past a 1 h learning period); \
         median of every pass criterion timed (± half the range)",
        learned as f64 * 100.0 / n as f64
    );
    eprintln!(
        "{:<36} {:>9} {:>8} {:>12} {:>16} {:>18}",
        "configuration", "detectors", "alerts", "events/s", "ns/event", "Δ vs rate_spike"
    );
    for (name, detectors, alerts, passes) in &rows {
        let (ns, spread) = ns_per_event(passes);
        let delta = if name == "rate_spike" { "—".to_string() } else { format!("{:+.1} ns/event", ns - baseline) };
        eprintln!(
            "{name:<36} {detectors:>9} {alerts:>8} {:>12.0} {:>16} {delta:>18}",
            1e9 / ns,
            format!("{ns:.1} ±{spread:.1}")
        );
    }
}

fn partition(lines: &[Vec<u8>], events: &[AuditEvent<'_>], n: usize) -> Vec<Vec<Vec<u8>>> {
    let mut parts = vec![Vec::new(); n];
    for (l, e) in lines.iter().zip(events) {
        let h = xxhash_rust::xxh3::xxh3_64(e.principal.id.as_bytes()) as usize;
        parts[h % n].push(l.clone());
    }
    parts
}

/// Allocations per event on the whole pipeline, after the identities exist.
fn report_allocations(native: &[Vec<u8>]) {
    let e = engine();
    let half = native.len() / 2;
    process_all(&e, &native[..half]);
    let before = ALLOCATIONS.load(Relaxed);
    let alerts = process_all(&e, &native[half..]);
    let per_event = (ALLOCATIONS.load(Relaxed) - before) as f64 / (native.len() - half) as f64;
    eprintln!(
        "hot path: {per_event:.3} heap allocations per event over {} events ({alerts} alerts)",
        native.len() - half
    );
}

/// Heap held per identity at 100,000 identities, each having used 8 actions on 2
/// services from 2 networks with 2 user agents and 2 credentials.
fn report_state_size() {
    const IDENTITIES: usize = 100_000;
    let store = StateStore::new(StateConfig::default());
    let before = LIVE_BYTES.load(Relaxed);
    let actions = [
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "s3:HeadObject",
        "sqs:GetQueueUrl",
    ];
    for i in 0..IDENTITIES {
        let id = format!("arn:aws:iam::123456789012:role/service-{i:06}");
        for k in 0..24 {
            let line = json!({
                "id": format!("e{i}-{k}"), "time": format_rfc3339(1_793_577_600_000 + k as i64 * 60_000),
                "principal": {"id": id, "type": "service_account", "owner": "team-data"},
                "credential": {"id": format!("ASIA{i:012}{}", k % 2), "kind": "short_lived_token"},
                "action": actions[k % 8], "service": actions[k % 8].split(':').next().unwrap(),
                "outcome": "success",
                "source": {"ip": format!("10.{}.{}.{}", k % 2, i % 250, k), "user_agent": format!("aws-sdk-go/1.{}", k % 2)}
            })
            .to_string();
            let ev = nhid_decode::native::decode(&line).unwrap();
            store.with_identity(
                &ev.principal.id,
                || Identity::new(ev.principal.kind, None, ev.time),
                |s| {
                    s.observe(&ev, DAY, nhid_engine::context::network::Ranges::builtin());
                },
            );
        }
    }
    let bytes = LIVE_BYTES.load(Relaxed) - before;
    eprintln!(
        "state: {} identities hold {:.1} MiB: {} bytes per identity (target <= 1024), map and keys included",
        store.len(),
        bytes as f64 / (1 << 20) as f64,
        bytes / IDENTITIES
    );
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
