#!/usr/bin/env bash
# Runs each cargo fuzz target of hookhost for a set time, one after the
# other at the lowest priority, and prints its executions and crashes, then
# the totals (docs/benchmarks.md, "Fuzzing (issue 13)").
#
#   bash host/fuzz/run.sh [SECONDS_PER_TARGET [TARGET...]]   (default: 60, all)
#
# Stable Rust, so no sanitizer (README.md, "Fuzzing"). libFuzzer stops a
# target at its first crash and leaves the input in artifacts/TARGET/; the
# corpus grows in corpus/TARGET/. Neither is committed: a crash's input
# goes to regressions/TARGET/, where the test suite runs it (tests/fuzz.rs).
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true
build=(--sanitizer none --codegen-units 16)
nice -n 19 cargo fuzz build "${build[@]}" >&2
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
bin=target/x86_64-unknown-linux-gnu/release

printf '%-12s %8s %12s %10s %8s\n' target seconds executions exec/s crashes
total_execs=0 total_crashes=0 total_secs=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    dirs=("corpus/$t" "seeds/$t")
    [ -d "regressions/$t" ] && dirs+=("regressions/$t")
    before=$(find "artifacts/$t" -type f | wc -l)
    log="artifacts/$t.log"
    start=$(date +%s)
    nice -n 19 "$bin/$t" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "${dirs[@]}" >"$log" 2>&1 || true
    elapsed=$(( $(date +%s) - start ))
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
    crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
    printf '%-12s %8d %12d %10d %8d\n' "$t" "$elapsed" "${execs:-0}" \
        $(( ${execs:-0} / (elapsed > 0 ? elapsed : 1) )) "$crashes"
    total_execs=$(( total_execs + ${execs:-0} ))
    total_crashes=$(( total_crashes + crashes ))
    total_secs=$(( total_secs + elapsed ))
done
printf '%-12s %8d %12d %10d %8d\n' total "$total_secs" "$total_execs" \
    $(( total_execs / (total_secs > 0 ? total_secs : 1) )) "$total_crashes"
