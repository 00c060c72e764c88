#!/bin/sh
# tests/fuzz/campaign.sh - a long fuzzing campaign, one target at a time.
#
# Usage: sh tests/fuzz/campaign.sh [TARGET...]   (default: every target)
#
# Per target, under `nice -n 19` and one libFuzzer process (-fork=0):
#   1. build build/fuzz-campaign/fuzz_<name> (ASan + UBSan, as tests/fuzz/run.sh);
#   2. fuzz a copy of tests/fuzz/corpus/<name>/ in build/fuzz-campaign/corpus/<name>/
#      until CAMPAIGN_RUNS executions (default 10000000) or CAMPAIGN_SECONDS
#      seconds (default 1800), whichever comes first;
#   3. minimise: a fresh directory build/fuzz-campaign/min/<name>/ gets the
#      committed corpus (its named seeds and regress-* inputs stay whatever
#      their coverage), then libFuzzer -merge=1 adds from the campaign's
#      corpus only the inputs that bring new coverage;
#   4. write build/fuzz-campaign/stats/<name>.txt (one line: executions, seconds,
#      exec/s, corpus files and bytes before and after minimising, cov, ft, result).
# With CAMPAIGN_KEEP=1 the inputs the merge added are then copied into
# tests/fuzz/corpus/<name>/. Crash inputs go to build/fuzz-campaign/artifacts/<name>/; logs to
# build/fuzz-campaign/logs/. OUT overrides the build directory. Exits 1 if a
# target fails to build or crashes.
set -u

cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=tests/fuzz/targets.sh
. tests/fuzz/targets.sh
CC=${FUZZ_CC:-clang}
OUT=${OUT:-build/fuzz-campaign}
RUNS=${CAMPAIGN_RUNS:-10000000}
SECS=${CAMPAIGN_SECONDS:-1800}
targets=${*:-$FUZZ_TARGETS}
mkdir -p "$OUT/logs" "$OUT/stats" || exit 2

if ! make -s build/gen/dash_assets.c >"$OUT/logs/gen_dash.log" 2>&1; then
    echo "campaign: cannot generate build/gen/dash_assets.c" >&2
fi

# "FILES BYTES" of a corpus directory.
corpus_size() {
    printf '%s %s' "$(find "$1" -type f | wc -l)" "$(find "$1" -type f -exec cat {} + | wc -c)"
}

failed=0
for t in $targets; do
    bin="$OUT/fuzz_$t"
    log="$OUT/logs/campaign_$t.log"
    # shellcheck disable=SC2046,SC2086 # flags and source lists are word lists
    if ! $CC $FUZZ_FLAGS -o "$bin" "tests/fuzz/fuzz_$t.c" $(sources_for "$t") $(libs_for "$t") \
        >"$OUT/logs/build_$t.log" 2>&1; then
        cat "$OUT/logs/build_$t.log" >&2
        echo "campaign: $t: build failed" >&2
        failed=$((failed + 1))
        continue
    fi
    work="$OUT/corpus/$t"
    min="$OUT/min/$t"
    mkdir -p "$work" "$OUT/artifacts/$t"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        find "tests/fuzz/corpus/$t" -type f -exec cp {} "$work/" \;
    fi
    dict=""
    if [ -f "tests/fuzz/$t.dict" ]; then
        dict="-dict=tests/fuzz/$t.dict"
    fi
    echo "campaign: $t: fuzzing ($RUNS runs or ${SECS}s) $(date -u +%H:%M:%S)"
    start=$(date +%s)
    # shellcheck disable=SC2086 # $dict is empty or one word
    nice -n 19 "$bin" -runs="$RUNS" -max_total_time="$SECS" -fork=0 -max_len=4096 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$t/" $dict "$work" >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate="?"
    if [ -n "$execs" ] && [ "$secs" -gt 0 ]; then
        rate=$((execs / secs))
    fi
    line=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -n 1)
    cov=$(echo "$line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$line" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    result=ok
    if [ "$rc" -ne 0 ]; then
        result="crash(exit $rc)"
        failed=$((failed + 1))
        grep -aE 'ERROR: |fuzz invariant failed|runtime error|SUMMARY|Test unit written' "$log" |
            head -n 6 | sed 's/^/    /'
    fi
    before=$(corpus_size "$work")
    rm -rf "$min"
    mkdir -p "$min"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        find "tests/fuzz/corpus/$t" -type f -exec cp {} "$min/" \;
    fi
    nice -n 19 "$bin" -merge=1 -max_len=4096 -timeout=10 -rss_limit_mb=2048 "$min" "$work" \
        >"$OUT/logs/merge_$t.log" 2>&1
    after=$(corpus_size "$min")
    printf '%s execs=%s secs=%s exec_per_s=%s before=%s after=%s cov=%s ft=%s result=%s\n' \
        "$t" "${execs:-?}" "$secs" "$rate" "$(echo "$before" | tr ' ' /)" \
        "$(echo "$after" | tr ' ' /)" "${cov:-?}" "${ft:-?}" "$result" | tee "$OUT/stats/$t.txt"
    if [ "${CAMPAIGN_KEEP:-0}" = 1 ] && [ "$result" = ok ]; then
        mkdir -p "tests/fuzz/corpus/$t"
        find "$min" -type f -exec cp {} "tests/fuzz/corpus/$t/" \;
    fi
done
exit $((failed > 0))
