#!/bin/sh
# tests/fuzz/run.sh - build the libFuzzer targets, replay the committed corpus, then fuzz.
#
# Usage: sh tests/fuzz/run.sh [SECONDS]   (SECONDS per target, default 60)
#
# Each tests/fuzz/fuzz_<name>.c is linked with only the src/*/*.c files it needs
# (tests/fuzz/targets.sh lists both) into build/fuzz/fuzz_<name>, under
# ASan + UBSan (OUT overrides build/fuzz; long runs: tests/fuzz/campaign.sh).
# Then, per target:
#   1. regression: every file in tests/fuzz/corpus/<name>/ is run once (past
#      findings live there, so a fixed bug stays fixed);
#   2. fuzzing for SECONDS seconds on a copy of that corpus in
#      build/fuzz/corpus/<name>/ (the repository is never written to; the copy
#      keeps what earlier local runs found), with tests/fuzz/<name>.dict when
#      present. Crash, leak, timeout and OOM inputs go to
#      build/fuzz/artifacts/<name>/.
# Logs are in build/fuzz/logs/. Exits 1 if any target fails to build or any
# input crashes, printing the input's path; 0 otherwise. Needs clang with
# libFuzzer (Debian: libclang-rt-<version>-dev, installed here if missing).
set -u

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
    echo "usage: sh tests/fuzz/run.sh [SECONDS]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=tests/fuzz/targets.sh
. tests/fuzz/targets.sh
CC=${FUZZ_CC:-clang}
OUT=${OUT:-build/fuzz}
FLAGS=$FUZZ_FLAGS
TARGETS=$FUZZ_TARGETS

mkdir -p "$OUT/logs" || exit 2

# libFuzzer ships separately from clang on Debian; install it when the probe
# does not link.
probe_libfuzzer() {
    cat >"$OUT/probe.c" <<'EOF'
int LLVMFuzzerTestOneInput(const unsigned char *data, unsigned long size)
{
    (void)data;
    (void)size;
    return 0;
}
EOF
    $CC -fsanitize=fuzzer,address,undefined -o "$OUT/probe" "$OUT/probe.c" \
        >"$OUT/logs/probe.log" 2>&1
}
if ! probe_libfuzzer; then
    major=$($CC -dumpversion 2>/dev/null | cut -d. -f1)
    pkg="libclang-rt-${major:-14}-dev"
    echo "fuzz: $CC cannot link libFuzzer; installing $pkg"
    if [ "$(id -u)" = 0 ]; then
        if ! apt-get install -y "$pkg" >"$OUT/logs/apt.log" 2>&1; then
            apt-get update >>"$OUT/logs/apt.log" 2>&1
            apt-get install -y "$pkg" >>"$OUT/logs/apt.log" 2>&1
        fi
    else
        # shellcheck disable=SC2024 # the log is ours; only apt-get needs root
        sudo -n apt-get install -y "$pkg" >"$OUT/logs/apt.log" 2>&1
    fi
    if ! probe_libfuzzer; then
        cat "$OUT/logs/probe.log" >&2
        echo "fuzz: $CC -fsanitize=fuzzer does not link; install $pkg" >&2
        exit 2
    fi
fi

crashes=0
failed_builds=0
built=""

# The dash target links the embedded dashboard assets: generate them with the
# Makefile's own rule (tools/embed over dashboard/*); if that fails, so does
# the target's build.
if ! make -s build/gen/dash_assets.c >"$OUT/logs/gen_dash.log" 2>&1; then
    cat "$OUT/logs/gen_dash.log" >&2
    echo "fuzz: dash: cannot generate build/gen/dash_assets.c" >&2
fi

# Report the input a libFuzzer run stopped on. $1: log, $2: fallback text.
report_crash() {
    unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1" | tail -n 1)
    if [ -z "$unit" ]; then
        unit=$(sed -n 's/^Running: \(.*\)$/\1/p' "$1" | tail -n 1)
    fi
    grep -aE 'ERROR: |fuzz invariant failed|runtime error|SUMMARY' "$1" | head -n 5 |
        sed 's/^/    /'
    echo "fuzz: crash input: ${unit:-$2} (log: $1)"
}

for t in $TARGETS; do
    bin="$OUT/fuzz_$t"
    # shellcheck disable=SC2046,SC2086 # FLAGS and the source list are word lists
    if ! $CC $FLAGS -o "$bin" "tests/fuzz/fuzz_$t.c" $(sources_for "$t") $(libs_for "$t") \
        >"$OUT/logs/build_$t.log" 2>&1; then
        cat "$OUT/logs/build_$t.log" >&2
        echo "fuzz: $t: build failed" >&2
        failed_builds=$((failed_builds + 1))
        continue
    fi
    built="$built $t"
done

# 1. Regression: replay the committed corpus.
for t in $built; do
    bin="$OUT/fuzz_$t"
    seeds=tests/fuzz/corpus/$t
    log="$OUT/logs/replay_$t.log"
    n=0
    if [ -d "$seeds" ]; then
        n=$(find "$seeds" -type f | wc -l)
    fi
    if [ "$n" -eq 0 ]; then
        echo "fuzz: $t: no committed corpus to replay"
        continue
    fi
    mkdir -p "$OUT/artifacts/$t"
    # One run per file, each input once; libFuzzer stops at the first crash.
    if find "$seeds" -type f -exec "$bin" -artifact_prefix="$OUT/artifacts/$t/" {} + \
        >"$log" 2>&1; then
        echo "fuzz: $t: replayed $n corpus files"
    else
        echo "fuzz: $t: corpus replay FAILED"
        report_crash "$log" "$seeds"
        crashes=$((crashes + 1))
    fi
done

# 2. Fuzz each target on a scratch copy of its corpus.
for t in $built; do
    bin="$OUT/fuzz_$t"
    work="$OUT/corpus/$t"
    log="$OUT/logs/fuzz_$t.log"
    mkdir -p "$work" "$OUT/artifacts/$t"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        find "tests/fuzz/corpus/$t" -type f -exec cp {} "$work/" \;
    fi
    dict=""
    if [ -f "tests/fuzz/$t.dict" ]; then
        dict="-dict=tests/fuzz/$t.dict"
    fi
    # shellcheck disable=SC2086 # $dict is empty or one word
    "$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t/" $dict "$work" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -n 1 |
        sed 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, ft \2, corpus \3/')
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $t: ${execs:-?} execs in ${secs}s, ${cov:-no stats}"
    else
        echo "fuzz: $t: FAILED after ${execs:-?} execs (exit $rc), ${cov:-no stats}"
        report_crash "$log" "(none written)"
        crashes=$((crashes + 1))
    fi
done

ntargets=0
for t in $TARGETS; do
    ntargets=$((ntargets + 1))
done
summary="fuzz: $ntargets targets, $crashes crashes"
if [ "$failed_builds" -gt 0 ]; then
    summary="$summary, $failed_builds build failures"
fi
echo "$summary"
if [ "$crashes" -gt 0 ] || [ "$failed_builds" -gt 0 ]; then
    exit 1
fi
exit 0
