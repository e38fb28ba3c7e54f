#!/usr/bin/env bash
# Starts and stops Tansu, the Kafka-compatible broker used by the tests and benchmarks.
#   scripts/tansu.sh install            install tansu 0.6.0 unless it is already on PATH or in ~/.cargo/bin
#   scripts/tansu.sh start PORT [STORAGE]   start on 127.0.0.1:PORT (STORAGE: memory://tansu/ by default,
#                                       or sqlite://FILE to survive restarts); prints the pid
#   scripts/tansu.sh topic PORT NAME PARTITIONS
#   scripts/tansu.sh stop PID
# The tests start their own brokers (tests/common/broker.rs) with the same command line.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

case "${1:-}" in
install)
    if command -v tansu >/dev/null; then
        echo "tansu: $(command -v tansu)"
    else
        echo "installing tansu 0.6.0 (15-20 minutes on 2 cores, once per machine)"
        cargo install tansu --version 0.6.0 --features dynostore,libsql --locked
    fi
    ;;
start)
    port=$2
    storage=${3:-memory://tansu/}
    tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$storage" >"${TMPDIR:-/tmp}/tansu-$port.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$pid"
            exit 0
        fi
        sleep 0.1
    done
    echo "tansu did not listen on $port; see ${TMPDIR:-/tmp}/tansu-$port.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
    ;;
topic)
    tansu topic create "$3" --broker "tcp://127.0.0.1:$2" --partitions "$4" >/dev/null
    ;;
stop)
    kill "$2" 2>/dev/null || true
    ;;
*)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
