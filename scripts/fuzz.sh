#!/usr/bin/env bash
# Fuzz the firmware's C with libFuzzer (clang -fsanitize=fuzzer,address,undefined).
#
#   scripts/fuzz.sh [MINUTES] [target...]      targets: tokenizer protocol (default: both)
#
# Builds build/fuzz/fuzz_<target> (tests/fuzz/build_fuzz.py: generated sources of a tiny
# artifact), then runs each target for MINUTES (default 1) one after the other, in-process (one job),
# with its working corpus in build/fuzz/corpus-<target>, seeded from the checked-in
# tests/fuzz/corpus/<target>/. Crash, leak and timeout files go to build/fuzz/artifacts-<target>/.
# Prints the executions of each run and any crash file; exits 1 if a target crashed.
# A crash reproducer belongs in tests/fuzz/regressions/<target>/ (replayed by tests/test_fuzz.py).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MINUTES=${1:-1}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(tokenizer protocol)
OUT=build/fuzz

case "$MINUTES" in
    ''|*[!0-9.]*) echo "fuzz.sh: MINUTES must be a number, got '$MINUTES'" >&2; exit 2 ;;
esac
SECONDS_TOTAL=$($PY -c "print(max(1, int(float('$MINUTES') * 60)))")

echo "fuzz: building ${TARGETS[*]} into $OUT/"
$PY tests/fuzz/build_fuzz.py "$OUT" "${TARGETS[@]}" || { echo "fuzz: build failed" >&2; exit 2; }

status=0
for t in "${TARGETS[@]}"; do
    exe="$OUT/fuzz_$t"
    corpus="$OUT/corpus-$t"
    arts="$OUT/artifacts-$t"
    log="$OUT/fuzz-$t.log"
    mkdir -p "$corpus" "$arts"
    cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
    before=$(ls "$arts" | wc -l)
    echo "fuzz: $t for $SECONDS_TOTAL s (corpus $corpus, $(ls "$corpus" | wc -l) files; log $log)"
    # -max_len 4096: long enough for lines past BX_LINE_MAX (64 in the fuzz build, 512 on devices)
    "$exe" "$corpus" -max_total_time="$SECONDS_TOTAL" -max_len=4096 -timeout=25 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$arts/" >"$log" 2>&1
    rc=$?
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+')
    echo "fuzz: $t: exit $rc, ${execs:-?} executions (${rate:-?}/s), ${cov:-no stats}, corpus $(ls "$corpus" | wc -l) files"
    new=$(ls -t "$arts" | head -n $(( $(ls "$arts" | wc -l) - before )))
    if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
        status=1
        echo "fuzz: $t FOUND A PROBLEM (exit $rc); last lines of $log:"
        grep -E 'INVARIANT|ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20 | sed 's/^/    /'
        for f in $new; do
            echo "fuzz: crash file: $arts/$f ($(stat -c %s "$arts/$f") bytes)"
            echo "      reproduce: $exe $arts/$f"
        done
    fi
done
exit $status
