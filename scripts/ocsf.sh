#!/usr/bin/env bash
# The Python tools that check nhid's OCSF findings (tests/ocsf/check.py, read by
# tests/ocsf_output.rs), in a virtual environment of their own, at pinned versions:
#   scripts/ocsf.sh install    create it unless it is there; prints its python
# Where: $NHID_OCSF_VENV, /var/tmp/nhid-ocsf-venv by default (outside the clone, so CI runs
# on fresh clones share it). From PyPI:
#   ocsf-lib          the OCSF project's library: compiles the schema source
#   ocsf-json-schema  turns a compiled OCSF class into JSON Schema
#   jsonschema        validates against it
set -euo pipefail
venv="${NHID_OCSF_VENV:-/var/tmp/nhid-ocsf-venv}"
packages=(ocsf-lib==0.10.4 ocsf-json-schema==1.2.0 jsonschema==4.26.0)

case "${1:-}" in
install)
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import ocsf.compile, ocsf_json_schema, jsonschema' 2>/dev/null; then
        echo "$venv/bin/python"
        exit 0
    fi
    command -v python3 >/dev/null || { echo "ocsf: python3 is required" >&2; exit 1; }
    if ! python3 -m venv --clear "$venv" >/dev/null 2>&1; then
        # Debian splits venv (and its ensurepip) out of python3.
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        ver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "python$ver-venv" \
            || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv
        python3 -m venv --clear "$venv"
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${packages[@]}" >&2
    echo "$venv/bin/python"
    ;;
*)
    echo "usage: $0 install" >&2
    exit 64
    ;;
esac
