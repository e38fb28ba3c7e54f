#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora from the repository's real samples.

    python3 fuzz/seed.py [CORPUS_DIR]     (default: fuzz/corpus)

One folder per target, one file per seed, named by its SHA-1 as libFuzzer names inputs.
The samples are the ones the tests read: the Panther rule-test events and attack stories,
Falco's Kubernetes audit traces (tests/data), the fixtures' canonical streams
(tests/fixtures), the documented OCSF events (tests/common/ocsf_examples.rs) and the
control topics' schema examples (schemas/). Corpora are built, never committed.
"""

import gzip
import hashlib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PANTHER = ROOT / "tests/data/panther_analysis_labeled_events"
FALCO = ROOT / "tests/data/falco_k8s_audit_traces/k8s_audit"

# Panther log types each decoder reads (tests/format_*.rs pick the same ones).
LOG_TYPES = {
    "cloudtrail": ["AWS.CloudTrail"],
    "k8s_audit": ["Amazon.EKS.Audit"],
    "gcp_audit": ["GCP.AuditLog"],
    "github": ["GitHub.Audit"],
    "okta": ["Okta.SystemLog"],
    "entra": ["Azure.Audit"],
    "azure_activity": ["Azure.MonitorActivity"],
    "ocsf": ["OCSF.DnsActivity", "OCSF.NetworkActivity"],
}
# Lines taken from each fixture stream for the `native` target (evenly spaced), and the
# largest stream given whole to the `engine` target: larger ones are cut at a line.
NATIVE_LINES_PER_FIXTURE = 40
MAX_STREAM_BYTES = 32 * 1024


def compact(value):
    return json.dumps(value, separators=(",", ":")).encode()


def gzip_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def log_type(test):
    log = test["log"]
    if isinstance(log, dict) and log.get("p_log_type"):
        return log["p_log_type"]
    types = test.get("log_types") or []
    return types[0] if len(types) == 1 else None


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz/corpus"
    seeds = {t: [] for t in ["native", *LOG_TYPES, "auto", "engine"]}

    rule_tests = gzip_lines(PANTHER / "rule_tests.jsonl.gz")
    scenarios = gzip_lines(PANTHER / "test_scenarios/scenario_events.jsonl.gz")
    for target, types in LOG_TYPES.items():
        seeds[target] += [compact(t["log"]) for t in rule_tests if log_type(t) in types]
    seeds["cloudtrail"] += [compact(e["log"]) for e in scenarios if e["log_type"] == "AWS.CloudTrail"]
    seeds["okta"] += [compact(e["log"]) for e in scenarios if e["log_type"] == "Okta.SystemLog"]
    # A CloudTrail file is one document of many records.
    records = [e["log"] for e in scenarios if e["log_type"] == "AWS.CloudTrail"][:5]
    seeds["cloudtrail"].append(compact({"Records": records}))
    # Azure's diagnostic exports are `{"records": [...]}`, categories mixed.
    azure = [t["log"] for t in rule_tests if log_type(t) == "Azure.Audit"]
    seeds["entra"] += [compact({"records": azure[i : i + 4]}) for i in range(0, len(azure), 4)]
    activity = [t["log"] for t in rule_tests if log_type(t) == "Azure.MonitorActivity"]
    seeds["azure_activity"] += [compact({"records": activity[i : i + 8]}) for i in range(0, len(activity), 8)]
    for trace in sorted(FALCO.glob("*.json")):
        seeds["k8s_audit"] += [line for line in trace.read_bytes().splitlines() if line.strip()]
    ocsf = (ROOT / "tests/common/ocsf_examples.rs").read_text()
    seeds["ocsf"] += [m.encode() for m in re.findall(r'r#"(\{.*?\})"#', ocsf)]

    streams = []
    for fixture in sorted((ROOT / "tests/fixtures").iterdir()):
        lines = (fixture / "input.jsonl").read_bytes().splitlines()
        step = max(1, len(lines) // NATIVE_LINES_PER_FIXTURE)
        seeds["native"] += lines[::step]
        streams.append(lines)
    for story in sorted({e["scenario"] for e in scenarios}):
        streams.append([compact(e["log"]) for e in scenarios if e["scenario"] == story])
    # Control messages, as the engine target routes them, among audit events.
    for schema, prefix in [("lifecycle", b"@lifecycle "), ("action-result", b"@result ")]:
        examples = json.loads((ROOT / f"schemas/{schema}.schema.json").read_text()).get("examples", [])
        streams.append([prefix + compact(e) for e in examples] + seeds["native"][:20])
    # One event of every format, and the fixtures' garbage, in one stream.
    streams.append([s[0] for t, s in seeds.items() if s and t not in ("auto", "engine")])
    for lines in streams:
        stream = b""
        for line in lines:
            if len(stream) + len(line) + 1 > MAX_STREAM_BYTES:
                break
            stream += line + b"\n"
        seeds["engine"].append(stream)
    seeds["auto"] = [s for t, ss in seeds.items() if t not in ("auto", "engine") for s in ss]

    for target, items in seeds.items():
        folder = out / target
        folder.mkdir(parents=True, exist_ok=True)
        for item in items:
            (folder / hashlib.sha1(item).hexdigest()).write_bytes(item)
        print(f"{target}: {len({hashlib.sha1(i).hexdigest() for i in items})} seeds in {folder}")


if __name__ == "__main__":
    main()
