#!/bin/sh
# bench/analytics.sh - what recording analytics costs the serving path.
#
# Run by bench/run.sh (so by `make bench`), or alone: `sh bench/analytics.sh`.
#
# 1. Serving with analytics OFF (ANALYTICS_ENGINE=none
#    ANALYTICS_REALTIME_ENABLED=false) against ON (embedded event store +
#    realtime rollups, ANALYTICS_REALTIME_FLUSH_MS=1000 ANALYTICS_FSYNC_MS=1000,
#    the defaults), same wrk load on the same ~10 KB image, alternating
#    off/on/off/on... BENCH_AN_ROUNDS times each. Every run is a fresh
#    `pixflare serve` on one data directory: start, one curl GET (checked),
#    a warm-up wrk, the measured wrk, SIGTERM. The server's CPU time during
#    the measured run is read from /proc/PID/stat. For ON runs, the summary
#    line the server prints on SIGTERM gives events stored, fsyncs, realtime
#    transactions and rows; events stored are compared with the responses
#    wrk counted (warm-up + measured + the curl), and at the end the
#    realtime tables (SUM(requests) of analytics_status_daily) and the event
#    files on disk (`pixflare events`) with the sum of events stored.
# 2. bench/evlog_bench.c (built with `make build/evlog_bench`): ns per
#    evlog_append(), rollup_add() and the whole per-response record
#    (capture_stamp() + event_emit()), 1 and 2 threads.
#
# Output: bench/out/analytics.md (also printed), raw wrk output in
# bench/out/raw/an-*.txt, server logs in bench/out/raw/an-*.log.
#
# Environment (shared with bench/run.sh):
#   BENCH_SECONDS       seconds per measured wrk run (default 10)
#   BENCH_WARMUP        seconds of the warm-up run before each (default 2)
#   BENCH_CONNECTIONS   wrk -c (default 64)
#   BENCH_WRK_THREADS   wrk -t (default 2)
#   BENCH_PIXFLARE_BIN  another pixflare binary to measure (default: make,
#                       then build/pixflare)
#   BENCH_KEEP=1        keep the temp work dir (its path is printed)
# and its own:
#   BENCH_AN_ROUNDS     measured runs per mode (default 3; at least 2)
#   BENCH_EVLOG_EVENTS  events per thread for evlog_bench (default 5000000;
#                       0 skips evlog_bench)
#   BENCH_EVLOG_REPS    runs per evlog_bench measurement (default 3)
#   BENCH_AN_PIN=1      pin the server to CPU 0 and wrk to CPU 1 (taskset):
#                       steadier numbers on a shared 2-CPU machine, but the
#                       server then has exactly one CPU (default: not pinned,
#                       as in bench/run.sh)
#   BENCH_AN_PROFILE=1  also profile one extra ON run with perf record
#                       (BENCH_PROFILE_SECONDS, default 5) into
#                       bench/out/profile-analytics.txt
# Only 127.0.0.1 is used.
set -eu

SECS=${BENCH_SECONDS:-10}
WARM=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WTHREADS=${BENCH_WRK_THREADS:-2}
ROUNDS=${BENCH_AN_ROUNDS:-3}
EV_N=${BENCH_EVLOG_EVENTS:-5000000}
EV_REPS=${BENCH_EVLOG_REPS:-3}
PY=${PYTHON:-python3}
[ "$ROUNDS" -ge 2 ] || ROUNDS=2
PIN_SRV=""
PIN_WRK=""
PINNED="not pinned (the scheduler places the server's and wrk's threads)"
if [ "${BENCH_AN_PIN:-0}" = 1 ]; then
    PIN_SRV="taskset -c 0"
    PIN_WRK="taskset -c 1"
    PINNED="pinned: the server (all its threads) on CPU 0, wrk on CPU 1"
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/bench/out
RAW=$OUT/raw
BIN=${BENCH_PIXFLARE_BIN:-$ROOT/build/pixflare}
EVB=$ROOT/build/evlog_bench

. "$ROOT/bench/lib.sh"
die() { log "bench/analytics: $*"; exit 1; }

# --- tools, build, work dir ---------------------------------------------------
need=""
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v curl >/dev/null 2>&1 || need="$need curl"
# shellcheck disable=SC2086 # a list of package names
apt_need $need

log "== building pixflare and evlog_bench"
if [ -z "${BENCH_PIXFLARE_BIN:-}" ]; then
    make -s all build/evlog_bench
else
    make -s build/evlog_bench
fi

REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$ROOT" status --porcelain -- src Makefile 2>/dev/null)" ] || REV="$REV+local-changes"
[ -z "${BENCH_PIXFLARE_BIN:-}" ] || REV="$BENCH_PIXFLARE_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-anbench.XXXXXX")
PF_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_pid "$PF_PID"
    drop_workdir "$WORK" bench/analytics
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DATA=$WORK/data
SRC=$WORK/src
mkdir -p "$DATA" "$SRC/bench/imgs" "$RAW"
rm -f "$RAW"/an-*
export PIXFLARE_DATA_DIR="$DATA"
# Only the settings under test vary; anything else comes from the defaults.
unset PIXFLARE_DATABASE PIXFLARE_STORAGE_DIR PIXFLARE_GEOIP_DB PIXFLARE_LISTEN 2>/dev/null || true
unset ANALYTICS_ENGINE ANALYTICS_REALTIME_ENABLED ANALYTICS_REALTIME_FLUSH_MS ANALYTICS_FSYNC_MS 2>/dev/null || true

# The same 56x56 noise PNG as bench/run.sh's small image (9,532 bytes).
log "== generating and importing the small test image"
bench_pngs "$SRC/bench/imgs"
rm "$SRC/bench/imgs/large.png"
"$BIN" import "$SRC" >"$WORK/import.tsv"
SIZE=$(wc -c <"$SRC/bench/imgs/small.png" | tr -d ' ')

wait_http() { # URL - wait up to 10 s until it answers
    i=0
    while ! curl -s -o /dev/null "$1"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || return 1
        sleep 0.1
    done
}

# CPU ticks (user + system) of a process so far.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# "completed_requests seconds" from a wrk output ("N requests in 10.00s, ...").
wrk_count() {
    awk '/ requests in / {
        t = $4; sub(/,$/, "", t)
        if (t ~ /ms$/) { sub(/ms$/, "", t); t = t / 1000 }
        else if (t ~ /m$/) { sub(/m$/, "", t); t = t * 60 }
        else sub(/s$/, "", t)
        print $1, t; found = 1
    } END { if (!found) print "0 0" }' "$1"
}


# Stop the server with SIGTERM and wait (up to 30 s) for it to exit.
stop_pf() {
    kill -TERM "$PF_PID"
    i=0
    while kill -0 "$PF_PID" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 300 ]; then
            kill -KILL "$PF_PID" 2>/dev/null || true
            die "pixflare did not stop within 30 s of SIGTERM"
        fi
        sleep 0.1
    done
    st=0
    wait "$PF_PID" || st=$?
    PF_PID=""
    [ "$st" = 0 ] || die "pixflare exited with status $st after SIGTERM"
}

# One measured run: run_mode MODE ROUND (MODE: off or on). Appends a line to
# $WORK/results: mode round rps p50 p99 errors completed load_s cpu_s
# events dropped fsyncs tx rows txfail
run_mode() {
    mode=$1
    r=$2
    base=$RAW/an-$mode-$r
    port=$(free_port)
    if [ "$mode" = off ]; then
        set -- ANALYTICS_ENGINE=none ANALYTICS_REALTIME_ENABLED=false
    else
        set -- ANALYTICS_ENGINE=embedded ANALYTICS_REALTIME_ENABLED=true \
            ANALYTICS_REALTIME_FLUSH_MS=1000 ANALYTICS_FSYNC_MS=1000
    fi
    $PIN_SRV env "$@" PIXFLARE_LISTEN="127.0.0.1:$port" "$BIN" serve 2>"$base.log" &
    PF_PID=$!
    url=http://127.0.0.1:$port/bench/imgs/small.png
    wait_http "http://127.0.0.1:$port/healthz" || { cat "$base.log" >&2; die "pixflare did not start"; }
    got=$(curl -s -o "$WORK/got.png" -w '%{http_code}' "$url")
    [ "$got" = 200 ] && cmp -s "$WORK/got.png" "$SRC/bench/imgs/small.png" ||
        die "GET $url answered $got or other bytes"
    $PIN_WRK wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$url" >"$base-warm.txt"
    c0=$(cpu_ticks "$PF_PID")
    $PIN_WRK wrk -t"$WTHREADS" -c"$CONNS" -d"${SECS}s" --latency "$url" >"$base.txt"
    c1=$(cpu_ticks "$PF_PID")
    stop_pf
    set -- $(parse_wrk "$base.txt")
    rps=$1 p50=$2 p99=$3 errs=$4
    set -- $(wrk_count "$base-warm.txt")
    wn=$1 ws=$2
    set -- $(wrk_count "$base.txt")
    mn=$1 ms=$2
    completed=$((wn + mn + 1))
    load_s=$(awk -v a="$ws" -v b="$ms" 'BEGIN { printf "%.2f", a + b }')
    cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
    summary=$(sed -n 's/^pixflare: analytics: \([0-9]*\) events stored (\([0-9]*\) could not be), \([0-9]*\) fsyncs; \([0-9]*\) realtime transactions wrote \([0-9]*\) rows (\([0-9]*\) failed, retried)$/\1 \2 \3 \4 \5 \6/p' "$base.log")
    if [ "$mode" = on ]; then
        [ -n "$summary" ] || { cat "$base.log" >&2; die "no analytics summary line in the ON server's stderr"; }
    else
        [ -z "$(grep 'pixflare: analytics:' "$base.log" || true)" ] ||
            die "the OFF server printed an analytics summary"
        summary="- - - - - -"
    fi
    log "   $mode run $r: $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU ${cpu_s}s; wrk completed $completed (incl. warm-up and 1 curl)${summary:+; summary: $summary}"
    [ "$errs" = 0 ] || log "   WARNING: $errs errors or non-2xx responses (see $base.txt)"
    echo "$mode $r $rps $p50 $p99 $errs $completed $load_s $cpu_s $mn $summary" >>"$WORK/results"
}

# --- 1. off / on, alternating -------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
DATE0=$(date -u '+%Y-%m-%d %H:%M UTC')
DAY0=$(date -u +%Y-%m-%d)
: >"$WORK/results"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for mode in off on; do
        log "== analytics $mode, run $r/$ROUNDS (${WARM}s warm-up, ${SECS}s measured)"
        run_mode "$mode" "$r"
    done
    r=$((r + 1))
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
DAY1=$(date -u +%Y-%m-%d)

# --- end-to-end checks: the realtime tables and the files on disk ---------------
log "== checking the realtime tables and the event files"
EV_SUM=$(awk '$1 == "on" { s += $11 } END { print s + 0 }' "$WORK/results")
DB_SUM=$("$PY" - "$DATA/pixflare.db" <<'EOF'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(c.execute("SELECT COALESCE(SUM(requests), 0) FROM analytics_status_daily").fetchone()[0])
EOF
)
DISK_SUM=0
for d in $(printf '%s\n%s\n' "$DAY0" "$DAY1" | sort -u); do
    n=$("$BIN" events --date "$d" 2>"$WORK/events.err" | wc -l) || true
    [ ! -s "$WORK/events.err" ] || { cat "$WORK/events.err" >&2; log "   WARNING: pixflare events reported problems"; }
    DISK_SUM=$((DISK_SUM + n))
done
log "   events stored (sum of the summaries) $EV_SUM, realtime tables $DB_SUM, on disk $DISK_SUM"

# --- optional: where the ON server's time goes --------------------------------
if [ "${BENCH_AN_PROFILE:-0}" = 1 ]; then
    command -v perf >/dev/null 2>&1 || die "perf not found (apt-get install -y linux-perf)"
    PS=${BENCH_PROFILE_SECONDS:-5}
    port=$(free_port)
    log "== profile: analytics on, perf record for ${PS}s under wrk"
    $PIN_SRV env ANALYTICS_ENGINE=embedded ANALYTICS_REALTIME_ENABLED=true \
        PIXFLARE_LISTEN="127.0.0.1:$port" "$BIN" serve 2>"$RAW/an-profile.log" &
    PF_PID=$!
    url=http://127.0.0.1:$port/bench/imgs/small.png
    wait_http "http://127.0.0.1:$port/healthz" || die "pixflare did not start"
    $PIN_WRK wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$url" >/dev/null
    # DWARF unwinding: pixflare is built without frame pointers, so plain -g
    # would lose the record path above its leaves (page faults included).
    perf record -q -F 1999 --call-graph dwarf,8192 -p "$PF_PID" -o "$WORK/perf.data" \
        -- sleep "$PS" 2>/dev/null &
    rec=$!
    $PIN_WRK wrk -t"$WTHREADS" -c"$CONNS" -d"${PS}s" "$url" >"$RAW/an-profile.txt"
    wait "$rec" || true
    stop_pf
    f=$OUT/profile-analytics.txt
    {
        echo "# pixflare, analytics on: \`wrk -t$WTHREADS -c$CONNS -d${PS}s $url\`, perf record -F 1999 --call-graph dwarf -p PID"
        echo
        grep -E 'Requests/sec|Latency ' "$RAW/an-profile.txt"
        echo
        echo "## analytics functions, including children (% of all pixflare samples)"
        echo "(record: http.c's per-response hook, header lookup included; sync_main: the"
        echo "event store's fsync thread; flusher_main: the realtime SQLite writer)"
        echo
        perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none \
            --percent-limit 0.01 2>/dev/null |
            grep -E 'handler |record \(inl|analytics_|evlog_|rollup_|seg_new|table_add|XXH3|clock_gettime|writer_get|shard_get|MHD_lookup_connection_value|MHD_get_connection_info|exc_page_fault|sync_main|flusher_main|sqlite3_step|fdatasync' | head -40
        echo
        echo "## samples by thread"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort comm -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -8
        echo
        echo "## self time by object file"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -12
        echo
        echo "## self time, top symbols"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -g none \
            --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
    } >"$f"
    log "   written to bench/out/profile-analytics.txt"
fi

# --- 2. micro-benchmark ----------------------------------------------------------
: >"$WORK/evlog.md"
if [ "$EV_N" -gt 0 ]; then
    log "== evlog_bench -n $EV_N -r $EV_REPS (1 and 2 threads)"
    "$EVB" -n "$EV_N" -r "$EV_REPS" -t 2 "$WORK/evlog" >"$WORK/evlog.md"
fi

# --- report -------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
{
    echo "# Analytics: serving with analytics off vs on"
    echo
    echo "- date: $DATE0 (start of the wrk runs)"
    echo "- load average before / after: $LOAD0 / $LOAD1 (other processes share the machine)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr); data directory on $fs"
    echo "- pixflare: $REV, threads=${PIXFLARE_THREADS:-default (nproc)}, cache=${PIXFLARE_CACHE_MB:-default} MB"
    echo "- off: \`ANALYTICS_ENGINE=none ANALYTICS_REALTIME_ENABLED=false\`; on: \`ANALYTICS_ENGINE=embedded ANALYTICS_REALTIME_ENABLED=true ANALYTICS_REALTIME_FLUSH_MS=1000 ANALYTICS_FSYNC_MS=1000\`"
    echo "- load: \`wrk -t$WTHREADS -c$CONNS -d${SECS}s --latency URL\` on the small image ($SIZE bytes), after a ${WARM}s warm-up; a fresh server per run, off and on alternating, $ROUNDS runs each; $PINNED"
    echo
    echo "| run | analytics | req/s | p50 / p99 (ms) | server CPU (s) | server CPU per request (us) | errors |"
    echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
    awk '{ n++; us = $10 > 0 ? $9 * 1e6 / $10 : 0
        printf "| %d | %s | %.0f | %.2f / %.2f | %.2f | %.2f | %d |\n", n, $1, $3, $4, $5, $9, us, $6 }' "$WORK/results"
    echo
    awk '
    function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
    function med(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function pct(r) { return (r - 1) * 100 }
    { m = $1; k[m]++; v[m, k[m]] = $3; c[m, k[m]] = $10 > 0 ? $9 * 1e6 / $10 : 0 }
    END {
        for (mi = 0; mi < 2; mi++) {
            m = mi ? "on" : "off"; n = k[m]
            for (i = 1; i <= n; i++) { x[i] = v[m, i]; y[i] = c[m, i] }
            sort(x, n); sort(y, n)
            best[m] = x[n]; worst[m] = x[1]; median[m] = med(x, n); cpu[m] = med(y, n)
            spread[m] = (x[n] - x[1]) / x[n] * 100
            cspread[m] = (y[n] - y[1]) / y[1] * 100
        }
        # Run i of ON right after run i of OFF: a pair shares the machine state.
        np = k["on"] < k["off"] ? k["on"] : k["off"]
        for (i = 1; i <= np; i++) { pr[i] = v["on", i] / v["off", i]; pc[i] = c["on", i] / c["off", i] }
        sort(pr, np); sort(pc, np)
        print "| analytics | runs | best req/s | median req/s | worst req/s | spread (best-worst)/best | median server CPU per request (us) | CPU/request spread |"
        print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for (mi = 0; mi < 2; mi++) {
            m = mi ? "on" : "off"
            printf "| %s | %d | %.0f | %.0f | %.0f | %.1f%% | %.2f | %.1f%% |\n", m, k[m], best[m], median[m], worst[m], spread[m], cpu[m], cspread[m]
        }
        rb = best["on"] / best["off"]; rm = median["on"] / median["off"]; rp = med(pr, np)
        print ""
        printf "- throughput on/off: best vs best **%.3f** (%+.1f%%), median vs median **%.3f** (%+.1f%%), median of the %d off-then-on pairs **%.3f** (%+.1f%%; pairs from %.3f to %.3f); target >= 0.970 (at most 3%% lower)\n", rb, pct(rb), rm, pct(rm), np, rp, pct(rp), pr[1], pr[np]
        printf "- noise floor: the OFF runs, identical, differ by %.1f%% between best and worst (ON runs: %.1f%%)\n", spread["off"], spread["on"]
        rc = cpu["on"] / cpu["off"]
        printf "- server CPU per request (measured run, all pixflare threads), on/off: medians %.3f (%+.1f%%), median of the pairs %.3f (%+.1f%%); the OFF runs differ by %.1f%% among themselves\n", rc, pct(rc), med(pc, np), pct(med(pc, np)), cspread["off"]
        lo = rb < rm ? rb : rm; lo = rp < lo ? rp : lo
        hi = rb > rm ? rb : rm; hi = rp > hi ? rp : hi
        if (lo >= 0.97) verdict = "met: best, median and paired ratios are all >= 0.970"
        else if (hi < 0.97) verdict = "missed: best, median and paired ratios are all < 0.970"
        else verdict = "undecided: some ratios are above 0.970, some below"
        if (spread["off"] > 3) verdict = verdict sprintf("; but identical OFF runs already differ by %.1f%%, more than the 3%% to be resolved, so this run cannot confirm or refute the target", spread["off"])
        printf "- 3%% target: %s\n", verdict
    }' "$WORK/results"
    echo
    echo "Events and database writes (ON runs; a server's whole life: the curl check, warm-up and measured run):"
    echo
    echo "| run | wrk completed | events stored | stored - completed | could not be stored | fsyncs | realtime transactions | rows written | failed tx | load (s) | req/s (wrk, measured) | transactions/s | rows/s | rows per 1M requests |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    awk '$1 == "on" {
        per_m = $11 > 0 ? $15 * 1e6 / $11 : 0
        printf "| %d | %d | %d | %+d | %d | %d | %d | %d | %d | %.1f | %.0f | %.2f | %.2f | %.1f |\n", $2, $7, $11, $11 - $7, $12, $13, $14, $15, $16, $8, $3, $14 / $8, $15 / $8, per_m
    }' "$WORK/results"
    echo
    echo "- wrk counts a response when it has read it; when a run ends, requests still in flight on its $CONNS connections may have been answered (and recorded) but are not counted, so events stored may exceed wrk's count by up to $CONNS per wrk run ($((2 * CONNS)) per server)."
    awk -v conns="$CONNS" '$1 == "on" { d = $11 - $7; if (d < 0 || d > 2 * conns || $12 != 0) bad++ } END {
        printf "- every ON run within that bound, nothing dropped: %s\n", bad ? "**NO** (see the table)" : "yes" }' "$WORK/results"
    echo "- sum of events stored over the ON runs: $EV_SUM; SUM(requests) in analytics_status_daily: $DB_SUM; events read back from disk (\`pixflare events\`): $DISK_SUM ($([ "$EV_SUM" = "$DB_SUM" ] && [ "$EV_SUM" = "$DISK_SUM" ] && echo "all equal" || echo "**DIFFERENT**"))"
    rec_ns=$(awk -F'|' '$2 ~ /capture_stamp\(\) \+ event_emit\(\) \(events \+ realtime\)/ && $3 + 0 == 1 { print $5 + 0 }' "$WORK/evlog.md")
    awk -v ns="${rec_ns:-0}" '$1 == "off" && $10 > 0 { n++; x[n] = $9 * 1e6 / $10 } END {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
        m = n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
        if (ns > 0 && m > 0)
            printf "- direct cost: recording an event (capture_stamp() + event_emit()) takes %.0f ns (evlog_bench below, 1 thread, best), %.1f%% of the %.2f us of server CPU an OFF request takes (median)\n", ns, ns / (m * 1000) * 100, m
    }' "$WORK/results"
    if [ "$EV_N" -gt 0 ]; then
        echo
        echo "## evlog_bench"
        echo
        echo "\`build/evlog_bench -n $EV_N -r $EV_REPS -t 2 DIR\` (DIR on $fs; every run checked: the store holds every event, the realtime tables count every event)"
        echo
        cat "$WORK/evlog.md"
    fi
} >"$OUT/analytics.md"
echo
cat "$OUT/analytics.md"
log ""
log "bench: written to bench/out/analytics.md (raw wrk output and server logs in bench/out/raw/an-*)"
