#!/usr/bin/env bash
# Every test of the workspace, on a fresh machine: installs what the tests need when it is
# absent, then runs `cargo test --workspace --all-features` (extra arguments go to cargo test).
#   - a C toolchain and OpenSSL/zlib headers: rdkafka builds librdkafka from source (apt)
#   - prometheus and promtool: tests/prometheus.rs runs the real tooling (apt)
#   - tansu, a Kafka-protocol broker: tests/kafka_broker.rs (cargo install, 15-20 minutes once)
#   - the OCSF project's schema tools (Python, pinned, in a venv): tests/ocsf_output.rs
#     (scripts/ocsf.sh install; python3-venv from apt if missing)
# NHID_SKIP_BROKER_TESTS=1 / NHID_SKIP_PROMETHEUS_TESTS=1 / NHID_SKIP_OCSF_TESTS=1 skip those
# tests (and their installs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

command -v cargo >/dev/null || { echo "test: cargo is required (https://rustup.rs)" >&2; exit 1; }
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
apt_updated=""
apt_install() {
  command -v apt-get >/dev/null || { echo "test: install $* with your package manager" >&2; exit 1; }
  [ -n "$apt_updated" ] || { $sudo apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

need=()
command -v cc >/dev/null || need+=(build-essential)
command -v make >/dev/null || need+=(make)
command -v perl >/dev/null || need+=(perl)
if command -v dpkg >/dev/null; then
  for pkg in libssl-dev zlib1g-dev pkg-config; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
fi
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

if [ -z "${NHID_SKIP_PROMETHEUS_TESTS:-}" ] && ! { command -v prometheus && command -v promtool; } >/dev/null; then
  # The package's postinst starts its service through invoke-rc.d; a policy-rc.d that answers
  # 101 ("action forbidden") keeps the machine from running a Prometheus daemon (or the
  # install from failing where there is no init system).
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  apt_install prometheus
  [ -z "$added_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

[ -n "${NHID_SKIP_BROKER_TESTS:-}" ] || scripts/tansu.sh install
[ -n "${NHID_SKIP_OCSF_TESTS:-}" ] || scripts/ocsf.sh install >/dev/null

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-features "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (the last one cargo runs, often the doc-tests,
# would otherwise seem to speak for all of them).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
