#!/usr/bin/env bash
# What nhid emits on fixed inputs, for checking that a change of structure changes no
# behaviour: run it with the binaries before and after, then `diff -r` the two folders.
#   scripts/outputs.sh NHID NHID_SIM OUT
# Inputs: simulator seeds 7, 11, 101 (150 principals, 4 days; replayed without and with the
# simulator's inventory), the real datasets in tests/data (Panther rule-test logs and attack
# scenarios, Falco k8s audit traces) and the garbage-lines fixture. Outputs: alerts, actions
# and dead letters of each replay, the simulated events, and `nhid-sim eval --json` of seed 7.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 NHID NHID_SIM OUT" >&2; exit 64; }
nhid=$(realpath "$1"); sim=$(realpath "$2"); mkdir -p "$3"; out=$(realpath "$3")
cd "$(dirname "$0")/.."
in=$(mktemp -d)
trap 'rm -rf "$in"' EXIT

python3 - "$in" <<'PY'
import glob, gzip, json, sys
d, out = "tests/data/", sys.argv[1]
def lines(path, pick):
    for line in gzip.open(path, "rt"):
        yield json.dumps(pick(json.loads(line)))
with open(f"{out}/panther_logs.jsonl", "w") as o:
    o.writelines(l + "\n" for l in lines(d + "panther_analysis_labeled_events/rule_tests.jsonl.gz", lambda r: r["log"]))
with open(f"{out}/panther_scenarios.jsonl", "w") as o:
    o.writelines(l + "\n" for l in lines(d + "panther_analysis_labeled_events/test_scenarios/scenario_events.jsonl.gz", lambda r: r.get("log", r)))
with open(f"{out}/falco.jsonl", "w") as o:
    for f in sorted(glob.glob(d + "falco_k8s_audit_traces/k8s_audit/*.json")):
        o.write(open(f).read().rstrip("\n") + "\n")
PY
cp tests/fixtures/garbage_lines/input.jsonl "$in/garbage.jsonl"

# From the input's folder, by its file name: dead letters name their source, which is then the
# same in every run.
replay() { # NAME INPUT [ARGS...]
  local name=$1 input=$2; shift 2
  (cd "$(dirname "$input")" && "$nhid" replay "$(basename "$input")" "$@" --alerts "$out/$name.alerts.jsonl" \
    --actions "$out/$name.actions.jsonl" --dead-letter "$out/$name.dl.jsonl" >/dev/null 2>&1) || true
}
for seed in 7 11 101; do
  "$sim" simulate --seed $seed --principals 150 --days 4 --out "$out/sim-$seed.events.jsonl" \
    --labels "$in/sim-$seed.labels.json" --inventory "$in/sim-$seed.inv.toml" >/dev/null 2>&1
  replay "sim-$seed" "$out/sim-$seed.events.jsonl"
  replay "sim-$seed-inv" "$out/sim-$seed.events.jsonl" --inventory "$in/sim-$seed.inv.toml"
done
for name in panther_logs panther_scenarios falco garbage; do replay "$name" "$in/$name.jsonl"; done
"$sim" eval --labels "$in/sim-7.labels.json" --inventory "$in/sim-7.inv.toml" "$out/sim-7.events.jsonl" --json \
  >"$out/eval-7.json" 2>/dev/null
ls "$out" | wc -l
