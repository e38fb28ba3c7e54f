#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz and libFuzzer, coverage-guided, on the stable
# toolchain), each for a bounded time, one after the other, from corpora seeded with the
# repository's real samples (fuzz/seed.py).
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 20 s each, every target
# A crash, an input taking over 30 s or more than 2 GB of memory fails the run: its input is kept in
# fuzz/artifacts/TARGET/ and printed in base64, the target's log in fuzz/artifacts/TARGET.log.
# Installs cargo-fuzz when absent (cargo install, about a minute). docs/testing.md says more.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds=${1:-20}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
command -v python3 >/dev/null || { echo "fuzz: python3 is required to seed the corpora" >&2; exit 1; }

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
python3 fuzz/seed.py >/dev/null

# `-s none`: sanitizers need the nightly toolchain; Rust code without `unsafe` gains little
# from them, and libFuzzer's coverage instrumentation (SanitizerCoverage) works on stable.
# `-a`: debug assertions and overflow checks, as in the tests.
flags=(--fuzz-dir fuzz -s none -a)
if [ ${#targets[@]} -eq 1 ]; then cargo fuzz build "${flags[@]}" "${targets[0]}"; else cargo fuzz build "${flags[@]}"; fi

failed=()
for target in "${targets[@]}"; do
    log="fuzz/artifacts/$target.log"
    mkdir -p "fuzz/artifacts/$target"
    before=$(find "fuzz/artifacts/$target" -type f | wc -l)
    set +e
    cargo fuzz run "${flags[@]}" "$target" -- -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    runs=$(grep -oP 'stat::number_of_executed_units: *\K[0-9]+' "$log" || echo "?")
    echo "fuzz $target: ${runs} runs (at most ${seconds} s); ${done_line#*DONE   }"
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        grep -E -A6 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -n 40 >&2 || tail -n 20 "$log" >&2
        for input in $(find "fuzz/artifacts/$target" -type f | sort | tail -n +"$((before + 1))"); do
            echo "fuzz $target: failing input $input ($(wc -c <"$input") bytes), base64:" >&2
            base64 -w 0 "$input" | head -c 20000 >&2
            echo >&2
            echo "reproduce: cargo fuzz run ${flags[*]} $target $input" >&2
        done
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
