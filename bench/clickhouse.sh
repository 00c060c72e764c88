#!/bin/sh
# bench/clickhouse.sh - ANALYTICS_ENGINE=clickhouse against the embedded
# engine, same run, same machine: CDN throughput, shipping throughput, the
# delay from a response to its event in ClickHouse, and the batch
# aggregation of one day of 10M events.
#
# Run alone: `sh bench/clickhouse.sh` (about 8 minutes at the defaults), or
# by bench/run.sh (`make bench`; BENCH_CH=0 skips it).
#
# ClickHouse: a throwaway server of our own (bench/lib.sh's ch_start:
# Debian's clickhouse-server, installed with apt-get when missing; config,
# data and logs in the work dir, 127.0.0.1 only, free ports, query_log on),
# stopped on exit. Pixflare talks to it as the `default` user through
# ANALYTICS_ENGINE_URL=http://127.0.0.1:PORT/?database=DB, one database
# per part. It runs on the same 2 CPUs as pixflare and wrk: its CPU time
# (read from /proc) is reported with every number it is part of.
#
# 1. cdn: `pixflare serve` three ways: ANALYTICS_ENGINE=embedded,
#    ANALYTICS_ENGINE=clickhouse, and "stub": clickhouse against
#    bench/chstub.py, a stand-in for ClickHouse's HTTP interface that reads
#    each batch's insert and throws it away, and passes every other request
#    on to the real ClickHouse (what the node itself pays when
#    ClickHouse runs elsewhere, as it would in production; here ClickHouse's
#    inserts take the same 2 CPUs). Everything else at its defaults
#    (realtime flush every 1000 ms, fsync every 1000 ms,
#    ANALYTICS_ENGINE_BATCH_MS 1000); each way its own data directory
#    holding the same 56x56 noise PNG (9,532 bytes); BENCH_CH_CDN_ROUNDS
#    rounds, the order rotating each round (the clickhouse servers with
#    `&log_queries=0` in ANALYTICS_ENGINE_URL, as ClickHouse's default:
#    this bench's ClickHouse logs every query otherwise, at a cost larger
#    than the inserts'); per run a fresh server: start, one curl GET checked byte for
#    byte, BENCH_WARMUP s of wrk, `wrk -t2 -c64 -dBENCH_SECONDS --latency`,
#    SIGTERM. Before each run (untimed) the script waits until ClickHouse
#    runs no merge, so that no run pays for the one before. The CPU time of
#    pixflare, of ClickHouse and of wrk during the measured run, and the
#    machine's busy time left over (other processes: this machine is
#    shared), from /proc. Target: clickhouse at most 3% below embedded.
#    Checked afterwards: ClickHouse's table holds exactly the events the
#    clickhouse servers stored (their SIGTERM summary lines), each request
#    id once. BENCH_CH_PROFILE=1 adds one clickhouse run under `perf record
#    -g`: CPU by thread and the busiest symbols of the threads other than
#    the HTTP workers (the shipper among them) in
#    bench/out/profile-clickhouse.txt.
# 1b. insns: instructions per request under callgrind, embedded against
#    clickhouse (a figure the machine's load does not move): as
#    bench/insns.sh, `valgrind --tool=callgrind --instr-atstart=no pixflare
#    serve` with one HTTP thread and the fsync and realtime flush timers at
#    60 s, 50 GETs of warm-up, then collection on for
#    BENCH_CH_INSNS_REQUESTS (2000) keep-alive GETs of the benchmark image
#    from one client; for clickhouse the window opens once ClickHouse holds
#    the warm-up's events and closes once it holds all, so the shipper's
#    passes over the measured events are in it (embedded: closed 2 s after
#    the last GET).
# 2. latency: per case of BENCH_CH_LAT_CASES (default "1000 200 1000:paced
#    1000:idle": ANALYTICS_ENGINE_BATCH_MS, then the load: flat out by
#    default, ":paced" for `wrk -t1 -c4` with a 3 ms pause between a
#    connection's requests (about 1,200 requests/s: a node's share of 10
#    billion events a day over 100 nodes), ":idle" for none), a fresh
#    clickhouse server with a second image of its own owner ("probe"), a
#    fresh table; bench/chprobe.py runs the load on the benchmark image for
#    BENCH_CH_LAT_SECONDS + 2 s and meanwhile sends 10 probes a
#    second to the probe image, each carrying a country of its own
#    (CF-IPCountry: A0, A1, ...), so that exactly one event in ClickHouse
#    answers to it; a poller asks ClickHouse every 20 ms which probes it
#    holds (the table's sort key starts with owner and image_id, so the
#    poll skips the load's rows by the primary index). The delay of a probe:
#    from the moment its response had arrived to the midpoint between the
#    last poll that did not see its event and the first that did (the
#    width of that interval, the resolution, is reported). Also: ClickHouse's
#    count() every second (events shipped per second under load, against
#    wrk's requests per second), and after wrk ends, how long until count()
#    stops moving (drain: how far shipping was behind). Checked: every probe
#    seen, count() before the SIGTERM = the events the server stored (the
#    shipping had caught up), and after.
# 2b. ingest: what one node at about 1,200 requests/s costs ClickHouse: per
#    ANALYTICS_ENGINE_BATCH_MS of BENCH_CH_INGEST_BATCH_MS (default "1000
#    5000"), a fresh clickhouse server under the paced load for
#    BENCH_CH_INGEST_SECONDS (30), no probes: ClickHouse's CPU (it does
#    nothing else), its inserts (system.query_log), pixflare's CPU and the
#    realtime transactions (the database's load per node). Checked: the rows
#    = the events stored.
# 3. ship: build/evgen writes BENCH_CH_SHIP_EVENTS events (default 10M,
#    the heavy dataset of bench/aggregate.sh: evgen -D BENCH_CH_DATE -t 2
#    -s 1) into an event log; per round its files are hard-linked into a
#    fresh data directory (the shipper deletes what it has shipped, and
#    never writes into a sealed file) and `pixflare serve` starts there with
#    ANALYTICS_ENGINE=clickhouse on a fresh database; chprobe.py polls
#    count() every 100 ms until it reaches N. Reported: events/s from the
#    server's start and from the first batch seen, batches (distinct batch
#    numbers in the table), ClickHouse's insert durations (system.query_log,
#    the shipper's query ids), CPU of pixflare and of ClickHouse per million
#    events, and ClickHouse's bytes per event on disk. Then SIGTERM (the
#    last pass: shipped_through = max in the nodes table). Checked: count()
#    and distinct request ids = N, no segment left in the spool.
#    BENCH_CH_SHIP_ROUNDS rounds (default 2); round 1's database feeds part 4.
# 4. aggregate: the same N events, two ways, same run: `pixflare aggregate
#    --date D` with the embedded engine on evgen's data directory, and with
#    ANALYTICS_ENGINE=clickhouse on round 1's data directory and database
#    (ClickHouse's GROUP BY through Pixflare; first the script waits until
#    ClickHouse merges no more, and reports the partition's parts); also
#    with `&max_threads=NPROC` in ANALYTICS_ENGINE_URL (a setting passed on
#    to ClickHouse: 18.16 may count fewer "physical" cores than the CPUs it
#    has). The first run of each into empty tables (shown apart), then
#    BENCH_CH_ROUNDS replacing runs each, the order rotating, under
#    /usr/bin/time -v. Reported: wall, scan_ms (for ClickHouse: the query,
#    transfer and parsing of the groups), sort_ms, db_ms as aggregate prints
#    them, pixflare's CPU, ClickHouse's CPU, peak RSS. Checked: the date's
#    rows in analytics_daily, analytics_status_daily, analytics_owner_daily
#    and analytics_monthly are identical both ways, and equal evgen's counts.
#
# Output: bench/out/clickhouse.md (also printed); raw outputs in
# bench/out/raw/ch-*. Exit 1 if a check failed (after the report).
#
# Environment:
#   BENCH_SECONDS         seconds per measured wrk run (default 10)
#   BENCH_WARMUP          seconds of warm-up wrk (default 2)
#   BENCH_CONNECTIONS     wrk -c (default 64)
#   BENCH_WRK_THREADS     wrk -t (default 2)
#   BENCH_CH_PARTS        which parts, in order (default "cdn insns latency
#                         ingest ship aggregate"; aggregate ships the events
#                         itself when ship is not among them)
#   BENCH_CH_CDN_ROUNDS   runs per way of the cdn part (default 5)
#   BENCH_CH_PROFILE=1    also profile one clickhouse run (see part 1)
#   BENCH_CH_INSNS_REQUESTS  requests of the insns part (default 2000)
#   BENCH_CH_LAT_CASES    latency cases (default "1000 200 1000:paced 1000:idle")
#   BENCH_CH_PACED_CONNECTIONS, BENCH_CH_PACED_DELAY_MS  the paced load's
#                         connections and pause (default 4, 3 ms)
#   BENCH_CH_LAT_SECONDS  seconds of probes per case (default 20; at most
#                         93 at 10 probes a second)
#   BENCH_CH_LAT_RATE     probes per second (default 10)
#   BENCH_CH_LAT_POLL_MS  the poller's interval (default 20)
#   BENCH_CH_INGEST_BATCH_MS  ANALYTICS_ENGINE_BATCH_MS values of the ingest
#                         part (default "1000 5000")
#   BENCH_CH_INGEST_SECONDS   its wrk run per value (default 30)
#   BENCH_CH_SHIP_EVENTS  events shipped and aggregated (default 10000000)
#   BENCH_CH_SHIP_ROUNDS  shipping rounds (default 2)
#   BENCH_CH_ROUNDS       replacing aggregate runs per way (default 3)
#   BENCH_CH_DATE         the day of the events (default 2026-11-20)
#   BENCH_PIXFLARE_BIN    another pixflare binary to measure (default: make,
#                         then build/pixflare)
#   BENCH_KEEP=1          keep the temp work dir (its path is printed;
#                         ClickHouse is stopped anyway)
# Only 127.0.0.1 is used.
set -eu

SECS=${BENCH_SECONDS:-10}
WARM=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WTHREADS=${BENCH_WRK_THREADS:-2}
PARTS=${BENCH_CH_PARTS:-cdn insns latency ingest ship aggregate}
INSNS_N=${BENCH_CH_INSNS_REQUESTS:-2000}
INGEST_MS=${BENCH_CH_INGEST_BATCH_MS:-1000 5000}
INGEST_SECS=${BENCH_CH_INGEST_SECONDS:-30}
CDN_ROUNDS=${BENCH_CH_CDN_ROUNDS:-5}
LAT_CASES=${BENCH_CH_LAT_CASES:-1000 200 1000:paced 1000:idle}
LAT_SECS=${BENCH_CH_LAT_SECONDS:-20}
LAT_RATE=${BENCH_CH_LAT_RATE:-10}
LAT_POLL=${BENCH_CH_LAT_POLL_MS:-20}
PACED_CONNS=${BENCH_CH_PACED_CONNECTIONS:-4}
PACED_DELAY=${BENCH_CH_PACED_DELAY_MS:-3}
PROFILE=${BENCH_CH_PROFILE:-0}
SHIP_N=${BENCH_CH_SHIP_EVENTS:-10000000}
SHIP_ROUNDS=${BENCH_CH_SHIP_ROUNDS:-2}
ROUNDS=${BENCH_CH_ROUNDS:-3}
DAY=${BENCH_CH_DATE:-2026-11-20}
PY=${PYTHON:-/usr/bin/python3}
[ "$CDN_ROUNDS" -ge 1 ] || CDN_ROUNDS=1
[ "$SHIP_ROUNDS" -ge 1 ] || SHIP_ROUNDS=1
[ "$ROUNDS" -ge 1 ] || ROUNDS=1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/bench/out
RAW=$OUT/raw
BIN=${BENCH_PIXFLARE_BIN:-$ROOT/build/pixflare}
PROBE=$ROOT/bench/chprobe.py
CH_SERVER=/usr/sbin/clickhouse-server
CH_CLIENT=/usr/bin/clickhouse-client

. "$ROOT/bench/lib.sh"
die() { log "bench/clickhouse: $*"; exit 1; }

# --- tools, build, work dir ---------------------------------------------------
need=""
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v curl >/dev/null 2>&1 || need="$need curl"
[ -x "$CH_SERVER" ] || need="$need clickhouse-server"
[ -x "$CH_CLIENT" ] || need="$need clickhouse-client"
[ -x /usr/bin/time ] || need="$need time"
command -v "$PY" >/dev/null 2>&1 || need="$need python3"
# shellcheck disable=SC2086 # a list of package names
apt_need $need

log "== building pixflare and evgen"
if [ -z "${BENCH_PIXFLARE_BIN:-}" ]; then
    make -s all build/evgen >&2
else
    make -s build/evgen >&2
fi
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$ROOT" status --porcelain -- src Makefile 2>/dev/null)" ] || REV="$REV+local-changes"
[ -z "${BENCH_PIXFLARE_BIN:-}" ] || REV="$BENCH_PIXFLARE_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-chbench.XXXXXX")
PF_PID=""
CH_PID=""
MON_PID=""
STUB_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_pid "$MON_PID"
    stop_pid "$PF_PID"
    stop_pid "$STUB_PID"
    stop_pid "$CH_PID"
    drop_workdir "$WORK" bench/clickhouse
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A copy of the binaries: a rebuild in the tree during the run (other work)
# must not change what later steps run.
cp "$BIN" "$WORK/pixflare"
BIN=$WORK/pixflare
cp "$ROOT/build/evgen" "$WORK/evgen"
mkdir -p "$RAW"
rm -f "$RAW"/ch-*
# Only the settings each step names; the rest is pixflare's default.
unset PIXFLARE_DATABASE PIXFLARE_DATABASE_FILE PIXFLARE_DATA_DIR PIXFLARE_STORAGE_DIR PIXFLARE_GEOIP_DB \
    PIXFLARE_LISTEN PIXFLARE_SECRET PIXFLARE_THREADS PIXFLARE_API_RATE_LIMIT PIXFLARE_COUNTRY_HEADER 2>/dev/null || true
unset ANALYTICS_ENGINE ANALYTICS_ENGINE_URL ANALYTICS_ENGINE_USER ANALYTICS_ENGINE_PASSWORD \
    ANALYTICS_ENGINE_BATCH_MS ANALYTICS_ENGINE_TIMEOUT_MS ANALYTICS_DATASET ANALYTICS_REALTIME_ENABLED \
    ANALYTICS_BATCH_ENABLED ANALYTICS_RETENTION_DAYS ANALYTICS_REALTIME_FLUSH_MS ANALYTICS_FSYNC_MS 2>/dev/null || true

now_ms() { echo $(($(date +%s%N) / 1000000)); }
kv() { # kv KEY FILE: the value of KEY=VALUE in FILE's first such pair
    sed -n "s/^.*[ 	]$1=\([^ ]*\).*$/\1/p; s/^$1=\([^ ]*\).*$/\1/p" "$2" | head -n 1
}
# med: the median of the numbers on stdin (one per line)
med() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
ok=1
CHECKS=$WORK/checks
: >"$CHECKS"
check() { # check WHAT GOT WANT
    if [ "$2" = "$3" ]; then
        echo "- $1: $2 (as expected)" >>"$CHECKS"
    else
        echo "- $1: **$2, expected $3: MISMATCH**" >>"$CHECKS"
        log "   MISMATCH: $1: $2, expected $3"
        ok=0
    fi
}
wait_http() { # URL PID LOG - wait up to 30 s until it answers
    i=0
    while ! curl -s -o /dev/null "$1"; do
        i=$((i + 1))
        if [ "$i" -gt 300 ] || ! kill -0 "$2" 2>/dev/null; then
            tail -n 20 "$3" >&2
            return 1
        fi
        sleep 0.1
    done
}
cpu_ticks() { # CPU ticks (user + system) of a process so far
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)
# The machine's busy ticks (user, nice, system, irq, softirq) and steal
sys_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }
# ClickHouse's CPU ticks so far, plus the stub's while one runs
ch_ticks() {
    _t=$(cpu_ticks "$CH_PID")
    [ -z "$STUB_PID" ] || _t=$((_t + $(cpu_ticks "$STUB_PID")))
    echo "$_t"
}
ticks_s() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }'; }
# Stop the server with SIGTERM and wait (up to 60 s: its shipper's last
# pass) for it to exit.
stop_pf() {
    kill -TERM "$PF_PID"
    i=0
    while kill -0 "$PF_PID" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 600 ]; then
            kill -KILL "$PF_PID" 2>/dev/null || true
            die "pixflare did not stop within 60 s of SIGTERM"
        fi
        sleep 0.1
    done
    st=0
    wait "$PF_PID" || st=$?
    PF_PID=""
    [ "$st" = 0 ] || die "pixflare exited with status $st after SIGTERM"
}
# The events a stopped server stored, from its SIGTERM summary line.
stored() {
    n=$(sed -n 's/^pixflare: analytics: \([0-9]*\) events stored .*$/\1/p' "$1")
    [ -n "$n" ] || { cat "$1" >&2; die "no analytics summary line in $1"; }
    echo "$n"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
DATE0=$(date -u '+%Y-%m-%d %H:%M UTC')
T_START=$(now_ms)
# The 1-minute load average every 10 s (this script's own load is 2-4).
(while :; do cut -d' ' -f1 /proc/loadavg; sleep 10; done) >"$WORK/loadavg" 2>/dev/null &
MON_PID=$!

# --- ClickHouse ------------------------------------------------------------------
ch_start "$WORK/ch"
CHBASE=http://127.0.0.1:$CH_HTTP/
chq() { # chq SQL: one statement over HTTP, the answer on stdout (an error: status 22)
    curl -sS --fail-with-body "$CHBASE" --data-binary "$1"
}
ch_url() { echo "${CHBASE}?database=$1${2:+&$2}"; }
log "   ClickHouse $CH_VERSION on 127.0.0.1:$CH_HTTP (HTTP), default max_threads $CH_DEFAULT_THREADS"
for db in cdn lat stub; do chq "CREATE DATABASE IF NOT EXISTS $db" >/dev/null; done
# Wait (up to 60 s) until ClickHouse merges nothing.
ch_idle() {
    _i=0
    while [ "$(chq "SELECT count() FROM system.merges")" != 0 ] && [ "$_i" -lt 600 ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
}
# the shipper's inserts into DB since epoch ms T: "inserts avg_ms p50 p99 max rows"
ch_inserts() {
    chq "SYSTEM FLUSH LOGS" >/dev/null 2>&1 || sleep 1.5
    chq "SELECT count(), round(avg(query_duration_ms), 1), quantileExact(0.5)(query_duration_ms), quantileExact(0.99)(query_duration_ms), max(query_duration_ms), sum(written_rows) FROM system.query_log WHERE type = 2 AND query_id LIKE 'pixflare-%' AND query LIKE 'INSERT INTO $1.%' AND event_time >= toDateTime(intDiv($2, 1000)) FORMAT TSV" | tr '\t' ' '
}

# The benchmark images: bench/imgs/small.png (the load), probe/p/p.png (the
# latency probe: the same bytes, another owner).
SRC=$WORK/src
mkdir -p "$SRC/bench/imgs" "$WORK/src-lat/probe/p"
bench_pngs "$SRC/bench/imgs"
rm "$SRC/bench/imgs/large.png"
cp -r "$SRC/bench" "$WORK/src-lat/bench"
cp "$SRC/bench/imgs/small.png" "$WORK/src-lat/probe/p/p.png"

# =================================================================================
# 1. CDN throughput, embedded against clickhouse
# =================================================================================
part_cdn() {
    log ""
    log "== 1. CDN requests/s, ANALYTICS_ENGINE=embedded against clickhouse"
    for be in embedded clickhouse stub; do
        mkdir -p "$WORK/cdn-$be"
        PIXFLARE_DATA_DIR=$WORK/cdn-$be "$BIN" import "$SRC" >"$WORK/cdn-$be.tsv" 2>/dev/null
    done
    : >"$WORK/cdn"
    r=1
    while [ "$r" -le "$CDN_ROUNDS" ]; do
        case $((r % 3)) in
        1) order="embedded clickhouse stub" ;;
        2) order="clickhouse stub embedded" ;;
        0) order="stub embedded clickhouse" ;;
        esac
        for be in $order; do
            ch_idle
            log "== cdn: $be, run $r/$CDN_ROUNDS (${WARM}s warm-up, ${SECS}s measured)"
            cdn_run "$be" "$r"
        done
        r=$((r + 1))
    done
    ev=$(awk '$1 == "clickhouse" { s += $11 } END { print s + 0 }' "$WORK/cdn")
    set -- $(chq "SELECT count(), uniqExact(request_id) FROM cdn.pixflare_cdn_metrics FORMAT TSV")
    check "cdn: rows in ClickHouse = events the clickhouse servers stored" "$1" "$ev"
    check "cdn: distinct request ids in ClickHouse = rows" "$2" "$1"
    errs=$(awk '{ s += $6 } END { print s + 0 }' "$WORK/cdn")
    check "cdn: wrk errors or non-2xx answers" "$errs" 0
    [ "$PROFILE" != 1 ] || cdn_profile
}

# BENCH_CH_PROFILE=1: one more clickhouse run under perf record; CPU by
# thread (/proc/PID/task) and samples by thread and symbol into
# bench/out/profile-clickhouse.txt.
cdn_profile() {
    command -v perf >/dev/null 2>&1 || apt_need linux-perf
    port=$(free_port)
    base=$RAW/ch-profile
    ch_idle
    log "== profile: a clickhouse server under wrk, perf record -g (${SECS}s)"
    env PIXFLARE_DATA_DIR="$WORK/cdn-clickhouse" PIXFLARE_LISTEN="127.0.0.1:$port" ANALYTICS_ENGINE=clickhouse \
        ANALYTICS_ENGINE_URL="$(ch_url cdn log_queries=0)" "$BIN" serve 2>"$base.log" &
    PF_PID=$!
    url=http://127.0.0.1:$port/bench/imgs/small.png
    wait_http "http://127.0.0.1:$port/healthz" "$PF_PID" "$base.log" || die "pixflare did not start"
    wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$url" >/dev/null
    threads() { for t in /proc/"$PF_PID"/task/*; do echo "${t##*/} $(cat "$t/comm") $(cpu_ticks "$PF_PID/task/${t##*/}")"; done | sort; }
    threads >"$WORK/th0"
    perf record -q -F 999 -g -p "$PF_PID" -o "$WORK/perf.data" -- sleep "$SECS" 2>/dev/null &
    rec=$!
    wrk -t"$WTHREADS" -c"$CONNS" -d"${SECS}s" "$url" >"$base.wrk"
    wait "$rec" || true
    threads >"$WORK/th1"
    stop_pf
    {
        echo "# pixflare serve, ANALYTICS_ENGINE=clickhouse, under \`wrk -t$WTHREADS -c$CONNS -d${SECS}s\`"
        echo
        grep -E 'Requests/sec| requests in' "$base.wrk"
        echo
        echo "## CPU seconds by thread during the run (/proc/PID/task; unnamed threads are pixflare's own: the event log's sync thread, the shipper, the realtime flusher, ...)"
        join "$WORK/th0" "$WORK/th1" | awk -v hz="$HZ" '{ printf "%-8s %-12s %.2f\n", $1, $2, ($5 - $3) / hz }'
        echo
        echo "## perf samples by thread"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort pid -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
        echo
        echo "## perf samples by thread and symbol (self, >= 0.05%)"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort pid,sym -g none --percent-limit 0.05 2>/dev/null |
            grep -v '^#' | grep -v '^$' | grep -v MHD-worker | head -60
    } >"$OUT/profile-clickhouse.txt"
    log "   written to bench/out/profile-clickhouse.txt"
}

# cdn_run ENGINE ROUND: appends "engine round rps p50 p99 errors srv_cpu_s
# ch_cpu_s measured_requests completed events_stored realtime_tx
# realtime_rows wrk_cpu_s other_cpu_s steal_s" to $WORK/cdn
cdn_run() {
    be=$1 r=$2
    base=$RAW/ch-cdn-$be-$r
    port=$(free_port)
    case $be in
    embedded) set -- env ANALYTICS_ENGINE=embedded ;;
    clickhouse) set -- env ANALYTICS_ENGINE=clickhouse ANALYTICS_ENGINE_URL="$(ch_url cdn log_queries=0)" ;;
    stub)
        rm -f "$WORK/stub.port"
        "$PY" "$ROOT/bench/chstub.py" "$WORK/stub.port" "$CHBASE" >"$base.stub" &
        STUB_PID=$!
        i=0
        until [ -s "$WORK/stub.port" ]; do
            i=$((i + 1))
            [ "$i" -lt 100 ] || die "bench/chstub.py did not start"
            sleep 0.05
        done
        set -- env ANALYTICS_ENGINE=clickhouse ANALYTICS_ENGINE_URL="http://127.0.0.1:$(cat "$WORK/stub.port")/?database=stub&log_queries=0"
        ;;
    esac
    set -- "$@" PIXFLARE_DATA_DIR="$WORK/cdn-$be" PIXFLARE_LISTEN="127.0.0.1:$port"
    "$@" "$BIN" serve 2>"$base.log" &
    PF_PID=$!
    url=http://127.0.0.1:$port/bench/imgs/small.png
    wait_http "http://127.0.0.1:$port/healthz" "$PF_PID" "$base.log" || die "pixflare ($be) did not start"
    got=$(curl -s -o "$WORK/got.png" -w '%{http_code}' "$url")
    [ "$got" = 200 ] && cmp -s "$WORK/got.png" "$SRC/bench/imgs/small.png" ||
        die "GET $url ($be) answered $got or other bytes"
    wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$url" >"$base-warm.txt"
    c0=$(cpu_ticks "$PF_PID")
    h0=$(ch_ticks)
    s0=$(sys_ticks)
    /usr/bin/time -f "%U %S" -o "$base.wrktime" wrk -t"$WTHREADS" -c"$CONNS" -d"${SECS}s" --latency "$url" >"$base.txt"
    c1=$(cpu_ticks "$PF_PID")
    h1=$(ch_ticks)
    s1=$(sys_ticks)
    stop_pf
    stub_ins=""
    if [ -n "$STUB_PID" ]; then
        stop_pid "$STUB_PID"
        STUB_PID=""
        stub_ins=" (the stub took $(kv inserts "$base.stub") inserts, $(kv bytes "$base.stub") bytes)"
    fi
    wc_s=$(awk '{ printf "%.2f", $1 + $2 }' "$base.wrktime")
    # the machine's busy time not ours (other users' jobs), and the VM's steal
    other=$(awk -v a="${s0% *}" -v b="${s1% *}" -v pf="$(ticks_s "$c0" "$c1")" -v ch="$(ticks_s "$h0" "$h1")" -v w="$wc_s" -v hz="$HZ" \
        'BEGIN { o = (b - a) / hz - pf - ch - w; printf "%.2f", (o > 0 ? o : 0) }')
    steal=$(ticks_s "${s0#* }" "${s1#* }")
    set -- $(parse_wrk "$base.txt")
    rps=$1 p50=$2 p99=$3 errs=$4
    wn=$(awk '/ requests in / { print $1 }' "$base-warm.txt")
    mn=$(awk '/ requests in / { print $1 }' "$base.txt")
    n=$(stored "$base.log")
    rt=$(sed -n 's/^.* \([0-9]*\) realtime transactions wrote \([0-9]*\) rows.*$/\1 \2/p' "$base.log")
    [ -n "$rt" ] || rt="0 0"
    srv=$(ticks_s "$c0" "$c1")
    chc_s=$(ticks_s "$h0" "$h1")
    log "   $be run $r: $rps req/s, p50 $p50 ms, p99 $p99 ms, CPU: pixflare ${srv}s, ClickHouse ${chc_s}s, wrk ${wc_s}s, other processes ${other}s, steal ${steal}s; $n events stored$stub_ins"
    [ "$errs" = 0 ] || log "   WARNING: $errs errors or non-2xx responses (see $base.txt)"
    echo "$be $r $rps $p50 $p99 $errs $srv $chc_s $mn $((wn + mn + 1)) $n $rt $wc_s $other $steal" >>"$WORK/cdn"
}

# =================================================================================
# 1b. instructions per request, embedded against clickhouse, under callgrind
# =================================================================================
part_insns() {
    log ""
    log "== 1b. instructions per request under callgrind, embedded against clickhouse ($INSNS_N requests)"
    command -v valgrind >/dev/null 2>&1 || apt_need valgrind
    : >"$WORK/insns"
    chq "CREATE DATABASE IF NOT EXISTS insns" >/dev/null
    for be in embedded clickhouse; do
        d=$WORK/insns-$be
        mkdir -p "$d"
        PIXFLARE_DATA_DIR=$d "$BIN" import "$SRC" >/dev/null 2>&1
        port=$(free_port)
        cg=$RAW/ch-insns-$be.out
        set -- env PIXFLARE_DATA_DIR="$d" PIXFLARE_LISTEN="127.0.0.1:$port" PIXFLARE_THREADS=1 \
            ANALYTICS_FSYNC_MS=60000 ANALYTICS_REALTIME_FLUSH_MS=60000 ANALYTICS_ENGINE="$be"
        [ "$be" = embedded ] || set -- "$@" ANALYTICS_ENGINE_URL="$(ch_url insns)"
        # VIPSHOME elsewhere: libvips loads none of its plugin modules (as
        # bench/insns.sh does)
        "$@" VIPSHOME=/nonexistent valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$cg" \
            "$BIN" serve 2>"$cg.log" &
        PF_PID=$!
        i=0
        until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
            i=$((i + 1))
            [ $i -lt 600 ] || die "pixflare did not start under valgrind (see $cg.log)"
            sleep 0.1
        done
        url=/bench/imgs/small.png
        insns_client "$port" "$url" 50
        # the warm-up's events shipped before the window opens
        [ "$be" = embedded ] || insns_wait 50
        callgrind_control -i on "$PF_PID" >/dev/null
        t0=$(now_ms)
        insns_client "$port" "$url" "$INSNS_N"
        if [ "$be" = clickhouse ]; then
            insns_wait $((50 + INSNS_N))
        else
            sleep 2 # as long as the clickhouse window's wait, about
        fi
        callgrind_control -i off "$PF_PID" >/dev/null
        w=$(($(now_ms) - t0))
        stop_pid "$PF_PID"
        PF_PID=""
        ir=$(cat "$cg"* 2>/dev/null | awk '/^totals:/ { s += $2 } END { print s + 0 }')
        [ "$ir" -gt 0 ] || die "no instructions collected ($be)"
        echo "$be $INSNS_N $ir $w" >>"$WORK/insns"
        log "   $be: $((ir / INSNS_N)) instructions per request (window $w ms)"
    done
}

# insns_client PORT PATH N: N keep-alive GETs, each read whole and checked
insns_client() {
    "$PY" - "$1" "$2" "$3" <<'EOF' || die "GETs failed"
import http.client, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("GET %s answered %d" % (path, r.status))
EOF
}

# insns_wait N: until ClickHouse holds N events of the insns database (60 s)
insns_wait() {
    _i=0
    while [ "$(chq "SELECT count() FROM insns.pixflare_cdn_metrics" 2>/dev/null)" != "$1" ]; do
        _i=$((_i + 1))
        [ "$_i" -lt 1200 ] || die "ClickHouse did not get $1 events under valgrind"
        sleep 0.05
    done
}

# =================================================================================
# 2. delay from a response to its event in ClickHouse
# =================================================================================
# A data directory with the benchmark image and the probe's.
lat_data() {
    mkdir -p "$WORK/lat-data"
    PIXFLARE_DATA_DIR=$WORK/lat-data "$BIN" import "$WORK/src-lat" >"$WORK/lat.tsv" 2>/dev/null
    PROBE_ID=$(awk -F'\t' '$2 == "probe/p/p.png" { print $1 }' "$WORK/lat.tsv")
    [ -n "$PROBE_ID" ] || die "import did not print the probe image's id"
}
# The paced load: PACED_CONNS connections, each waiting PACED_DELAY ms
# between its requests.
write_pace() {
    cat >"$WORK/pace.lua" <<'EOF'
local d = 0
init = function(args) d = tonumber(args[1]) or 0 end
delay = function() return d end
EOF
}
part_latency() {
    log ""
    log "== 2. delay from a response to its event in ClickHouse: cases $LAT_CASES"
    [ -d "$WORK/lat-data" ] || lat_data
    : >"$WORK/lat"
    write_pace
    ci=0
    for c in $LAT_CASES; do
        ci=$((ci + 1))
        ms=${c%%:*}
        case $c in
        *:idle) load=idle ;;
        *:paced) load=paced ;;
        *) load=load ;;
        esac
        ds=lat_${ci}_${ms}_$load
        base=$RAW/ch-lat-$ci-$ms-$load
        port=$(free_port)
        ch_idle
        log "== latency: ANALYTICS_ENGINE_BATCH_MS=$ms, $load (${LAT_SECS}s of probes, $LAT_RATE a second)"
        env PIXFLARE_DATA_DIR="$WORK/lat-data" PIXFLARE_LISTEN="127.0.0.1:$port" ANALYTICS_ENGINE=clickhouse \
            ANALYTICS_ENGINE_URL="$(ch_url lat)" ANALYTICS_DATASET="$ds" ANALYTICS_ENGINE_BATCH_MS="$ms" \
            "$BIN" serve 2>"$base.log" &
        PF_PID=$!
        PF=http://127.0.0.1:$port
        wait_http "$PF/healthz" "$PF_PID" "$base.log" || die "pixflare did not start"
        got=$(curl -s -o /dev/null -w '%{http_code}' "$PF/probe/p/p.png")
        [ "$got" = 200 ] || die "GET /probe/p/p.png answered $got"
        set -- "$PY" "$PROBE" probe --ch "$CHBASE" --table "lat.$ds" --url "$PF/probe/p/p.png" \
            --image-id "$PROBE_ID" --seconds "$LAT_SECS" --rate "$LAT_RATE" --poll-ms "$LAT_POLL" \
            --out "$base.probes" --series "$base.series"
        case $load in
        load)
            set -- "$@" --load-out "$base.wrk" -- wrk -t"$WTHREADS" -c"$CONNS" -d"$((LAT_SECS + 2))s" --latency \
                "$PF/bench/imgs/small.png"
            ;;
        paced)
            set -- "$@" --load-out "$base.wrk" -- wrk -t1 -c"$PACED_CONNS" -d"$((LAT_SECS + 2))s" --latency \
                -s "$WORK/pace.lua" "$PF/bench/imgs/small.png" -- "$PACED_DELAY"
            ;;
        esac
        c0=$(cpu_ticks "$PF_PID")
        h0=$(cpu_ticks "$CH_PID")
        s0=$(sys_ticks)
        t0=$(now_ms)
        /usr/bin/time -f "%U %S" -o "$base.time" "$@" >"$base.txt" || die "chprobe.py probe failed"
        t1=$(now_ms)
        c1=$(cpu_ticks "$PF_PID")
        h1=$(cpu_ticks "$CH_PID")
        s1=$(sys_ticks)
        # the machine's busy time not ours (the probe's and wrk's CPU: /usr/bin/time's)
        other=$(awk -v a="${s0% *}" -v b="${s1% *}" -v pf="$(ticks_s "$c0" "$c1")" -v ch="$(ticks_s "$h0" "$h1")" \
            -v w="$(awk '{ print $1 + $2 }' "$base.time")" -v hz="$HZ" \
            'BEGIN { o = (b - a) / hz - pf - ch - w; printf "%.2f", (o > 0 ? o : 0) }')
        before=$(chq "SELECT count() FROM lat.$ds")
        stop_pf
        after=$(chq "SELECT count() FROM lat.$ds")
        n=$(stored "$base.log")
        rps=0 p99w=0
        if [ "$load" != idle ]; then
            set -- $(parse_wrk "$base.wrk")
            rps=$1 p99w=$3
        fi
        ins=$(ch_inserts lat "$t0")
        cat "$base.txt" >&2
        log "   inserts (count avg_ms p50 p99 max rows): $ins; CPU: pixflare $(ticks_s "$c0" "$c1") s, ClickHouse $(ticks_s "$h0" "$h1") s, other processes $other s"
        echo "$ms $load $(kv p50_ms "$base.txt") $(kv p90_ms "$base.txt") $(kv p99_ms "$base.txt") $(kv max_ms "$base.txt") $(kv res_ms "$base.txt") $(kv drain_ms "$base.txt") $(kv ship_rate "$base.txt") $rps $p99w $(ticks_s "$c0" "$c1") $(ticks_s "$h0" "$h1") $(((t1 - t0) / 1000)) $(kv probes "$base.txt") $(kv poll_ms_mean "$base.txt") $ins $other" >>"$WORK/lat"
        check "latency $ms $load: probes seen in ClickHouse" "$(kv seen "$base.txt")" "$(kv probes "$base.txt")"
        check "latency $ms $load: rows in ClickHouse before the SIGTERM (shipping caught up) = events the server stored" "$before" "$n"
        check "latency $ms $load: rows after the SIGTERM" "$after" "$n"
    done
}

# =================================================================================
# 2b. what one node's paced traffic costs ClickHouse
# =================================================================================
part_ingest() {
    log ""
    log "== 2b. ClickHouse's cost of one node at a paced load: ANALYTICS_ENGINE_BATCH_MS $INGEST_MS"
    [ -s "$WORK/pace.lua" ] || write_pace
    [ -d "$WORK/lat-data" ] || lat_data
    : >"$WORK/ingest"
    # ClickHouse's own idle CPU (its background threads, the query log's
    # flushes), to subtract
    ch_idle
    bs=$((INGEST_SECS < 10 ? INGEST_SECS : 10))
    h0=$(cpu_ticks "$CH_PID")
    sleep "$bs"
    h1=$(cpu_ticks "$CH_PID")
    CH_IDLE_PER_S=$(awk -v a="$h0" -v b="$h1" -v hz="$HZ" -v s="$bs" 'BEGIN { printf "%.4f", (b - a) / hz / s }')
    log "   ClickHouse idle: $CH_IDLE_PER_S CPU seconds per second"
    for ms in $INGEST_MS; do
        ds=ingest_$ms
        base=$RAW/ch-ingest-$ms
        port=$(free_port)
        ch_idle
        log "== ingest: ANALYTICS_ENGINE_BATCH_MS=$ms, wrk -t1 -c$PACED_CONNS with ${PACED_DELAY} ms pauses, ${INGEST_SECS}s, no probes"
        life0=$(now_ms)
        env PIXFLARE_DATA_DIR="$WORK/lat-data" PIXFLARE_LISTEN="127.0.0.1:$port" ANALYTICS_ENGINE=clickhouse \
            ANALYTICS_ENGINE_URL="$(ch_url lat log_queries=0)" ANALYTICS_DATASET="$ds" ANALYTICS_ENGINE_BATCH_MS="$ms" \
            "$BIN" serve 2>"$base.log" &
        PF_PID=$!
        PF=http://127.0.0.1:$port
        wait_http "$PF/healthz" "$PF_PID" "$base.log" || die "pixflare did not start"
        sleep 1 # the start's own queries (table checks) left out
        c0=$(cpu_ticks "$PF_PID")
        h0=$(cpu_ticks "$CH_PID")
        s0=$(sys_ticks)
        t0=$(now_ms)
        /usr/bin/time -f "%U %S" -o "$base.time" wrk -t1 -c"$PACED_CONNS" -d"${INGEST_SECS}s" --latency \
            -s "$WORK/pace.lua" "$PF/bench/imgs/small.png" -- "$PACED_DELAY" >"$base.wrk"
        c1=$(cpu_ticks "$PF_PID")
        h1=$(cpu_ticks "$CH_PID")
        s1=$(sys_ticks)
        t1=$(now_ms)
        stop_pf
        life=$(($(now_ms) - life0))
        n=$(stored "$base.log")
        rt=$(sed -n 's/^.* \([0-9]*\) realtime transactions wrote \([0-9]*\) rows.*$/\1 \2/p' "$base.log")
        set -- $(parse_wrk "$base.wrk")
        rps=$1
        other=$(awk -v a="${s0% *}" -v b="${s1% *}" -v pf="$(ticks_s "$c0" "$c1")" -v ch="$(ticks_s "$h0" "$h1")" \
            -v w="$(awk '{ print $1 + $2 }' "$base.time")" -v hz="$HZ" \
            'BEGIN { o = (b - a) / hz - pf - ch - w; printf "%.2f", (o > 0 ? o : 0) }')
        # (no query log for these inserts: count them in the table)
        ins=$(chq "SELECT uniqExact(batch), count() FROM lat.$ds FORMAT TSV" | tr '\t' ' ')
        chnet=$(awk -v c="$(ticks_s "$h0" "$h1")" -v i="$CH_IDLE_PER_S" -v t="$((t1 - t0))" 'BEGIN { v = c - i * t / 1000; printf "%.2f", (v > 0 ? v : 0) }')
        echo "$ms $rps $(ticks_s "$c0" "$c1") $chnet $other $ins $n $rt $life $(ticks_s "$h0" "$h1")" >>"$WORK/ingest"
        log "   $rps req/s; CPU: pixflare $(ticks_s "$c0" "$c1") s, ClickHouse $(ticks_s "$h0" "$h1") s ($chnet s above idle), other processes $other s; batches and rows in the table: $ins"
        check "ingest $ms: rows in ClickHouse = events the server stored" "$(chq "SELECT count() FROM lat.$ds")" "$n"
    done
}

# =================================================================================
# 3. shipping throughput: a full local event log into an empty table
# =================================================================================
SHIPPED=0
part_ship() {
    log ""
    log "== 3. shipping: evgen -n $SHIP_N -D $DAY, then pixflare serve ships it into an empty table"
    evgen_once
    : >"$WORK/ship"
    r=1
    while [ "$r" -le "$SHIP_ROUNDS" ]; do
        db=ship
        [ "$r" = 1 ] || db=ship$r
        chq "CREATE DATABASE IF NOT EXISTS $db" >/dev/null
        ship_run "$r" "$db"
        # later rounds' tables only for their numbers
        [ "$r" = 1 ] || chq "DROP DATABASE $db" >/dev/null
        r=$((r + 1))
    done
    SHIPPED=1
}

EVGENED=0
evgen_once() {
    [ "$EVGENED" = 0 ] || return 0
    DATA_AGG=$WORK/agg-embedded
    mkdir -p "$DATA_AGG"
    log "== evgen: $SHIP_N events of $DAY"
    "$WORK/evgen" -d "$DATA_AGG" -D "$DAY" -n "$SHIP_N" -t 2 -s 1 >"$RAW/ch-evgen.txt"
    EG=$RAW/ch-evgen.txt
    cat "$EG" >&2
    EVGENED=1
}

# ship_run ROUND DB: appends "round db first_ms done_ms batches srv_cpu_s
# ch_cpu_s inserts ins_avg_ms ins_p50 ins_p99 ins_max bytes_on_disk parts" to
# $WORK/ship
ship_run() {
    r=$1 db=$2
    d=$WORK/ship-$r
    base=$RAW/ch-ship-$r
    rm -rf "$d"
    mkdir -p "$d"
    cp -al "$DATA_AGG/events" "$d/events"
    port=$(free_port)
    ch_idle
    log "== ship: round $r/$SHIP_ROUNDS into ClickHouse database $db"
    h0=$(cpu_ticks "$CH_PID")
    t0=$(now_ms)
    env PIXFLARE_DATA_DIR="$d" PIXFLARE_LISTEN="127.0.0.1:$port" ANALYTICS_ENGINE=clickhouse \
        ANALYTICS_ENGINE_URL="$(ch_url "$db")" ANALYTICS_RETENTION_DAYS=36500 ANALYTICS_BATCH_ENABLED=false \
        "$BIN" serve 2>"$base.log" &
    PF_PID=$!
    "$PY" "$PROBE" wait-count --ch "$CHBASE" --table "$db.pixflare_cdn_metrics" --until "$SHIP_N" --t0 "$t0" \
        --interval 100 --timeout 900 --series "$base.series" >"$base.txt" || die "shipping did not finish"
    c1=$(cpu_ticks "$PF_PID")
    h1=$(cpu_ticks "$CH_PID")
    stop_pf
    set -- $(chq "SELECT count(), uniqExact(request_id), uniqExact(batch) FROM $db.pixflare_cdn_metrics FORMAT TSV")
    check "ship round $r: rows in ClickHouse = evgen's events" "$1" "$SHIP_N"
    check "ship round $r: distinct request ids = rows" "$2" "$1"
    batches=$3
    left=$(find "$d/events" -name '*.pfe' -o -name '*.open' | wc -l | tr -d ' ')
    check "ship round $r: segments left in the spool after the stop" "$left" 0
    wm=$(chq "SELECT argMax(shipped_through, updated) FROM $db.pixflare_cdn_metrics_nodes")
    check "ship round $r: shipped_through in the nodes table after the stop" "$wm" 9223372036854775807
    ins=$(ch_inserts "$db" "$t0")
    disk=$(chq "SELECT sum(bytes_on_disk), count() FROM system.parts WHERE active AND database = '$db' AND table = 'pixflare_cdn_metrics' FORMAT TSV" | tr '\t' ' ')
    line="$r $db $(kv first_ms "$base.txt") $(kv done_ms "$base.txt") $batches $(ticks_s 0 "$c1") $(ticks_s "$h0" "$h1") $ins $disk"
    echo "$line" >>"$WORK/ship"
    set -- $line
    log "   round $r: $SHIP_N events in $4 ms from the start (first rows at $3 ms): $(awk -v n="$SHIP_N" -v t="$4" 'BEGIN { printf "%.0f", n / t * 1000 }') events/s; $5 batches; pixflare CPU $6 s, ClickHouse CPU $7 s"
    log "   inserts (count avg_ms p50 p99 max rows): $8 $9 ${10} ${11} ${12} ${13}; on disk: ${14} bytes in ${15} parts"
}

# =================================================================================
# 4. batch aggregation: embedded scan against ClickHouse's GROUP BY
# =================================================================================
part_aggregate() {
    log ""
    log "== 4. batch aggregation of $DAY: embedded against clickhouse"
    if [ "$SHIPPED" = 0 ]; then
        SHIP_ROUNDS=1
        part_ship
    fi
    DATA_CH=$WORK/ship-1
    NP=$(nproc)
    log "== waiting for ClickHouse's merges to end"
    t0=$(now_ms)
    ch_idle
    MERGE_WAIT=$(($(now_ms) - t0))
    PARTS_AT=$(chq "SELECT count() FROM system.parts WHERE active AND database = 'ship' AND table = 'pixflare_cdn_metrics'")
    log "   $PARTS_AT parts (waited $MERGE_WAIT ms)"
    : >"$WORK/agg"
    agg_run embedded first 0
    agg_run clickhouse first 0
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        case $((r % 3)) in
        1) order="embedded clickhouse clickhouse-mt" ;;
        2) order="clickhouse clickhouse-mt embedded" ;;
        0) order="clickhouse-mt embedded clickhouse" ;;
        esac
        for be in $order; do
            agg_run "$be" timed "$r"
        done
        r=$((r + 1))
    done
    PARTS_END=$(chq "SELECT count() FROM system.parts WHERE active AND database = 'ship' AND table = 'pixflare_cdn_metrics'")
    for t in "analytics_daily WHERE date = '$DAY' ORDER BY owner, image_id, variant, country|owner, image_id, variant, country, requests, bandwidth_bytes" \
        "analytics_status_daily WHERE date = '$DAY' ORDER BY owner, status|owner, status, requests" \
        "analytics_owner_daily WHERE date = '$DAY' ORDER BY owner|owner, requests, bandwidth_bytes" \
        "analytics_monthly ORDER BY owner, year_month|owner, year_month, requests, bandwidth_bytes"; do
        rest=${t%%|*}
        cols=${t#*|}
        name=${rest%% *}
        for be in embedded clickhouse; do
            if [ "$be" = embedded ]; then f=$DATA_AGG/pixflare.db; else f=$DATA_CH/pixflare.db; fi
            "$PY" -c 'import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for row in c.execute(sys.argv[2]):
    print("|".join(str(v) for v in row))' "$f" "SELECT $cols FROM $rest" >"$WORK/agg-$name.$be"
        done
        n=$(wc -l <"$WORK/agg-$name.embedded" | tr -d ' ')
        cmp -s "$WORK/agg-$name.embedded" "$WORK/agg-$name.clickhouse" && same=identical || same=different
        check "aggregate: $name rows for $DAY ($n with the embedded engine), clickhouse's against embedded's" "$same" identical
    done
    check "aggregate: analytics_daily rows = evgen's distinct daily keys" \
        "$(wc -l <"$WORK/agg-analytics_daily.clickhouse" | tr -d ' ')" "$(kv daily_keys "$EG")"
    check "aggregate: analytics_status_daily rows = evgen's status keys" \
        "$(wc -l <"$WORK/agg-analytics_status_daily.clickhouse" | tr -d ' ')" "$(kv status_keys "$EG")"
    check "aggregate: requests in analytics_daily = evgen's" \
        "$(awk -F'|' '{ s += $5 } END { printf "%d", s }' "$WORK/agg-analytics_daily.clickhouse")" "$(kv daily_requests "$EG")"
}

# agg_run WAY first|timed ROUND: appends "way mode round wall_ms scan_ms
# sort_ms db_ms user_s sys_s ch_cpu_s rss_kb daily_rows status_rows events"
# to $WORK/agg
agg_run() {
    be=$1 mode=$2 r=$3
    base=$RAW/ch-agg-$be-$mode-$r
    case $be in
    embedded) set -- env PIXFLARE_DATA_DIR="$DATA_AGG" ;;
    clickhouse) set -- env PIXFLARE_DATA_DIR="$DATA_CH" ANALYTICS_ENGINE=clickhouse ANALYTICS_ENGINE_URL="$(ch_url ship)" ;;
    clickhouse-mt) set -- env PIXFLARE_DATA_DIR="$DATA_CH" ANALYTICS_ENGINE=clickhouse ANALYTICS_ENGINE_URL="$(ch_url ship "max_threads=$NP")" ;;
    esac
    set -- "$@" ANALYTICS_RETENTION_DAYS=36500
    h0=$(cpu_ticks "$CH_PID")
    t0=$(now_ms)
    /usr/bin/time -v -o "$base.time" "$@" "$BIN" aggregate --date "$DAY" >"$base.out" 2>"$base.err" ||
        { cat "$base.err" >&2; die "pixflare aggregate ($be) failed"; }
    t1=$(now_ms)
    h1=$(cpu_ticks "$CH_PID")
    line=$(grep "^$DAY " "$base.out" | head -n 1)
    [ -n "$line" ] || die "no '$DAY ...' line in pixflare aggregate's output ($be)"
    echo "$line" >"$base.line"
    usr=$(awk -F': ' '/User time \(seconds\)/ { print $2 }' "$base.time")
    sys=$(awk -F': ' '/System time \(seconds\)/ { print $2 }' "$base.time")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$base.time")
    chs=$(ticks_s "$h0" "$h1")
    echo "$be $mode $r $((t1 - t0)) $(kv scan_ms "$base.line") $(kv sort_ms "$base.line") $(kv db_ms "$base.line") $usr $sys $chs $rss $(kv daily_rows "$base.line") $(kv status_rows "$base.line") $(kv events "$base.line")" >>"$WORK/agg"
    log "   $be, $mode run $r: $((t1 - t0)) ms wall, $line, ClickHouse CPU ${chs}s"
}

for part in $PARTS; do
    case $part in
    cdn) part_cdn ;;
    insns) part_insns ;;
    latency) part_latency ;;
    ingest) part_ingest ;;
    ship) part_ship ;;
    aggregate) part_aggregate ;;
    *) die "unknown part '$part' in BENCH_CH_PARTS (cdn insns latency ingest ship aggregate)" ;;
    esac
done
stop_pid "$MON_PID"
MON_PID=""
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
T_END=$(now_ms)

# =================================================================================
# report
# =================================================================================
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
aggmed() { awk -v b="$1" -v k="$2" '$1 == b && $2 == "timed" { print $k }' "$WORK/agg" | med; }
{
    echo "# ClickHouse against the embedded engine"
    echo
    echo "- date: $DATE0; $(((T_END - T_START) / 1000)) s in all; load average before / after: $LOAD0 / $LOAD1; 1-minute load average every 10 s: min $(sort -g "$WORK/loadavg" | head -n 1), median $(med <"$WORK/loadavg"), max $(sort -g "$WORK/loadavg" | tail -n 1) (this script's own: 2-4)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo); work dir and ClickHouse's data on $fs"
    echo "- pixflare: $REV; ClickHouse $CH_VERSION on 127.0.0.1 (bench/lib.sh ch_start; its default max_threads here: $CH_DEFAULT_THREADS), on the same CPUs: its CPU is part of every clickhouse number"
    echo
    if [ -s "$WORK/cdn" ] 2>/dev/null; then
        echo "## 1. CDN requests per second, embedded against clickhouse"
        echo
        echo "\`wrk -t$WTHREADS -c$CONNS -d${SECS}s --latency\` on the 56x56 PNG (9,532 bytes) after ${WARM}s of warm-up, a fresh \`pixflare serve\` per run (defaults otherwise: realtime flush and fsync every 1000 ms, ANALYTICS_ENGINE_BATCH_MS=1000), $CDN_ROUNDS runs per way, the order rotating, ClickHouse idle (no merge) at each start. stub: ANALYTICS_ENGINE=clickhouse against bench/chstub.py, which reads each insert and throws it away (the node's own cost, without ClickHouse's work on the same CPUs). CPU: seconds during the measured run; other processes: the machine's busy time left over (other users' jobs)."
        echo
        echo "| run | way | req/s | p50 / p99 (ms) | pixflare CPU (s) | ClickHouse CPU (s; stub: the stub's) | wrk CPU (s) | other processes' CPU (s) | pixflare CPU per request (us) | pixflare + ClickHouse CPU per request (us) | events stored | realtime transactions | errors |"
        echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk '{ printf "| %s | %s | %.0f | %.2f / %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s | %s |\n", $2, $1, $3, $4, $5, $7, $8, $14, $15, ($9 > 0 ? $7 / $9 * 1e6 : 0), ($9 > 0 ? ($7 + $8) / $9 * 1e6 : 0), $11, $12, $6 }' "$WORK/cdn"
        echo
        # cmed WAY EXPR: the median over WAY's runs; cpair WAY EXPR: the
        # median of the rounds' ratios WAY / embedded
        cmed() { awk -v w="$1" '$1 == w && $9 > 0 { print '"$2"' }' "$WORK/cdn" | med; }
        cpair() { awk -v w="$1" '$9 > 0 { v[$2, $1] = '"$2"' } END { for (k in v) { split(k, x, SUBSEP); if (x[2] == w && v[x[1], "embedded"] > 0) print v[k] / v[x[1], "embedded"] } }' "$WORK/cdn" | med; }
        em=$(cmed embedded '$3')
        echo "| | embedded | clickhouse | clickhouse / embedded | stub | stub / embedded |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
        row() { # LABEL EXPR FORMAT
            e=$(cmed embedded "$2")
            c=$(cmed clickhouse "$2")
            s=$(cmed stub "$2")
            echo "| median $1 | $(printf "$3" "$e") | $(printf "$3" "$c") | **$(ratio "$c" "$e")** | $(printf "$3" "$s") | **$(ratio "$s" "$e")** |"
            echo "| $1, median of the rounds' ratios | | | $(printf %.3f "$(cpair clickhouse "$2")") | | $(printf %.3f "$(cpair stub "$2")") |"
        }
        row "req/s" '$3' %.0f
        row "pixflare CPU per request (us)" '$7 / $9 * 1e6' %.2f
        row "pixflare + ClickHouse CPU per request (us)" '($7 + $8) / $9 * 1e6' %.2f
        echo "| median ClickHouse (stub) CPU per ${SECS}s run (s) | $(cmed embedded '$8') | $(cmed clickhouse '$8') | | $(cmed stub '$8') | |"
        echo "| median other processes' CPU per ${SECS}s run (s, of $(($(nproc) * SECS)) s) | $(cmed embedded '$15') | $(cmed clickhouse '$15') | | $(cmed stub '$15') | |"
        echo "| median realtime transactions per run (database writes) | $(cmed embedded '$12') | $(cmed clickhouse '$12') | | $(cmed stub '$12') | |"
        echo
        spread=$(awk '$1 == "embedded" { if (!n++ || $3 > hi) hi = $3; if (n == 1 || $3 < lo) lo = $3 } END { printf "%.1f", (hi > 0 ? (hi - lo) / hi * 100 : 0) }' "$WORK/cdn")
        cm=$(cmed clickhouse '$3')
        pr=$(cpair clickhouse '$3')
        sm=$(cmed stub '$3')
        sp=$(cpair stub '$3')
        echo "Noise floor: the embedded runs spread by ${spread}% (best - worst) / best. Target: clickhouse at most 3% below embedded: $(awk -v r="$(ratio "$cm" "$em")" -v p="$pr" 'BEGIN { if (r >= 0.97 && p >= 0.97) print "**met** (medians " r ", pairs " p ")"; else print "**not met** on this run with ClickHouse on the same CPUs (medians " r ", pairs " p ")" }'); with the stub (ClickHouse elsewhere): $(awk -v r="$(ratio "$sm" "$em")" -v p="$sp" 'BEGIN { if (r >= 0.97 && p >= 0.97) print "**met** (medians " r ", pairs " p ")"; else print "**not met** (medians " r ", pairs " p ")" }'). Compare with the noise floor."
        echo
    fi
    if [ -s "$WORK/insns" ] 2>/dev/null; then
        echo "## 1b. Instructions per request (callgrind)"
        echo
        echo "\`valgrind --tool=callgrind\` around \`pixflare serve\` (one HTTP thread; fsync and realtime flush every 60 s, so their threads do not run in the window; as bench/insns.sh), $INSNS_N keep-alive GETs of the 56x56 PNG from one client after 50 of warm-up. clickhouse: the window opens once ClickHouse holds the warm-up's events and closes once it holds the $INSNS_N, so every pass of the shipper over them is in it; embedded: the window closes 2 s after the last GET. User-space instructions of every thread of the process, over the requests: a figure the machine's load does not move."
        echo
        echo "| way | requests | instructions per request | window (ms) |"
        echo "| --- | ---: | ---: | ---: |"
        awk '{ printf "| %s | %s | %.0f | %s |\n", $1, $2, $3 / $2, $4 }' "$WORK/insns"
        e=$(awk '$1 == "embedded" { print $3 / $2 }' "$WORK/insns")
        c=$(awk '$1 == "clickhouse" { print $3 / $2 }' "$WORK/insns")
        echo
        echo "clickhouse / embedded: **$(ratio "$c" "$e")** ($(awk -v a="$c" -v b="$e" 'BEGIN { printf "%+.0f", a - b }') instructions per request: the shipper's reading, encoding and sending of an event)."
        echo
    fi
    if [ -s "$WORK/lat" ] 2>/dev/null; then
        echo "## 2. Delay from a response to its event being queryable in ClickHouse"
        echo
        echo "bench/chprobe.py: $LAT_RATE probes a second for ${LAT_SECS}s (each a GET of an image of its own owner with its own CF-IPCountry), ClickHouse polled every ${LAT_POLL} ms for them; load: \`wrk -t$WTHREADS -c$CONNS -d$((LAT_SECS + 2))s\` on the benchmark image around the probes (flat out), or \`wrk -t1 -c$PACED_CONNS\` with a ${PACED_DELAY} ms pause between a connection's requests (paced, about a node's share of 10 billion events a day over 100 nodes), or none. Delay: the response's arrival to the midpoint of the polls that bracket the event's first appearance (resolution: the mean bracket width). ms."
        echo
        echo "| ANALYTICS_ENGINE_BATCH_MS | load | probes | p50 | p90 | p99 | max | resolution | wrk req/s | shipped/s during the load (count() growth) | drain after the load (ms) | inserts: count, avg / p99 / max ms (ClickHouse's) | pixflare CPU (s) | ClickHouse CPU (s), run of s | other processes' CPU (s) | poll query (ms) |"
        echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk '{ printf "| %s | %s | %s | **%s** | %s | **%s** | %s | %s | %.0f | %s | %s | %s, %s / %s / %s | %s | %s, %s | %s | %s |\n", $1, ($2 == "load" ? "wrk -c'"$CONNS"' (flat out)" : $2 == "paced" ? "wrk -t1 -c'"$PACED_CONNS"', '"$PACED_DELAY"' ms pause" : "none"), $15, $3, $4, $5, $6, $7, $10, ($2 != "idle" ? $9 : "-"), ($2 != "idle" ? $8 : "-"), $17, $18, $20, $21, $12, $13, $14, $23, $16 }' "$WORK/lat"
        echo
    fi
    if [ -s "$WORK/ingest" ] 2>/dev/null; then
        echo "## 2b. What one node's share of 10 billion events a day over 100 nodes costs ClickHouse"
        echo
        echo "A clickhouse server under \`wrk -t1 -c$PACED_CONNS -d${INGEST_SECS}s\` with a ${PACED_DELAY} ms pause between a connection's requests (no probes, no other queries: ClickHouse does only the shipper's inserts, the nodes table's progress rows and its own background work; \`&log_queries=0\` in ANALYTICS_ENGINE_URL, as ClickHouse's default: this bench's server logs every query otherwise, which costs it more than the inserts), per ANALYTICS_ENGINE_BATCH_MS. CPU: seconds during the wrk run; ClickHouse's net of its idle CPU ($CH_IDLE_PER_S s per s, measured for ${bs}s before). Inserts: the batches in the table (the server's whole life, start to SIGTERM, as the realtime transactions); per insert and per event: the run's share of them (its seconds over the server's life)."
        echo
        echo "| ANALYTICS_ENGINE_BATCH_MS | req/s | inserts (whole life) | rows per insert | ClickHouse CPU above idle (s) | per insert (ms) | per 1M events (s) | % of one core | pixflare CPU (s) | per 1M events (s) | realtime transactions (per s) | other processes' CPU (s) |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk -v secs="$INGEST_SECS" '{ printf "| %s | %.0f | %s | %.0f | %s | %.1f | %.2f | %.1f%% | %s | %.2f | %s (%.2f) | %s |\n", $1, $2, $6, ($6 > 0 ? $7 / $6 : 0), $4, ($6 > 0 ? $4 / ($6 * secs / ($11 / 1000)) * 1000 : 0), ($7 > 0 ? $4 / ($7 * secs / ($11 / 1000)) * 1e6 : 0), $4 / secs * 100, $3, ($7 > 0 ? $3 / ($7 * secs / ($11 / 1000)) * 1e6 : 0), $9, $9 / ($11 / 1000), $5 }' "$WORK/ingest"
        echo
    fi
    if [ -s "$WORK/ship" ] 2>/dev/null; then
        echo "## 3. Events shipped per second: a full local log into an empty table"
        echo
        echo "\`build/evgen -D $DAY -n $SHIP_N -t 2 -s 1\` ($(kv files "$EG") segment files, $(kv store_bytes "$EG") bytes), hard-linked into a fresh data directory, then \`pixflare serve\` with ANALYTICS_ENGINE=clickhouse (no traffic) until ClickHouse's count() = $SHIP_N (polled every 100 ms). ClickHouse's insert durations from system.query_log."
        echo
        echo "| round | from start to all shipped (ms) | events/s from start | events/s after the first batch | batches | events per batch | insert avg / p50 / p99 / max (ms) | pixflare CPU per 1M events (s) | ClickHouse CPU per 1M events (s) | on disk: bytes per event (parts) |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk -v n="$SHIP_N" '{ printf "| %s | %s | **%.0f** | %.0f | %s | %.0f | %s / %s / %s / %s | %.3f | %.3f | %.1f (%s) |\n", $1, $4, n / $4 * 1000, ($4 > $3 ? (n * ($5 - 1) / $5) / ($4 - $3) * 1000 : 0), $5, n / $5, $9, $10, $11, $12, $6 / n * 1e6, $7 / n * 1e6, $14 / n, $15 }' "$WORK/ship"
        echo
    fi
    if [ -s "$WORK/agg" ] 2>/dev/null; then
        echo "## 4. Batch aggregation: pixflare aggregate --date $DAY"
        echo
        echo "The same $(kv events "$EG") events ($(kv daily_keys "$EG") distinct daily keys, $(kv status_keys "$EG") status keys): the embedded engine scanning evgen's event log, and ClickHouse's GROUP BY over the table part 3 shipped them into ($PARTS_AT active parts after the merges ended, $PARTS_END at the end; waited $MERGE_WAIT ms); clickhouse-mt: \`&max_threads=$NP\` in ANALYTICS_ENGINE_URL. First runs into empty tables, then $ROUNDS replacing runs each, rotating. scan: engine_group_day (for ClickHouse: the nodes check, the query, the transfer and parsing of the groups); ClickHouse CPU: the server's during the command."
        echo
        echo "| way | run | wall (ms) | scan (ms) | sort (ms) | db (ms) | pixflare CPU user + sys (s) | ClickHouse CPU (s) | peak RSS (MiB) |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk '{ printf "| %s | %s | %d | %d | %d | %d | %.2f | %.2f | %.0f |\n", $1, $2 == "first" ? "first (empty tables)" : $3, $4, $5, $6, $7, $8 + $9, $10, $11 / 1024 }' "$WORK/agg"
        echo
        echo "| median of the replacing runs | embedded | clickhouse | clickhouse / embedded | clickhouse-mt | clickhouse-mt / embedded |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
        for k in "4 wall" "5 scan" "7 db"; do
            set -- $k
            e=$(aggmed embedded "$1")
            c=$(aggmed clickhouse "$1")
            m=$(aggmed clickhouse-mt "$1")
            echo "| $2 (ms) | $e | $c | **$(ratio "$c" "$e")** | $m | $(ratio "$m" "$e") |"
        done
        e=$(awk '$1 == "embedded" && $2 == "timed" { print $8 + $9 + $10 }' "$WORK/agg" | med)
        c=$(awk '$1 == "clickhouse" && $2 == "timed" { print $8 + $9 + $10 }' "$WORK/agg" | med)
        m=$(awk '$1 == "clickhouse-mt" && $2 == "timed" { print $8 + $9 + $10 }' "$WORK/agg" | med)
        echo "| pixflare + ClickHouse CPU (s) | $e | $c | $(ratio "$c" "$e") | $m | $(ratio "$m" "$e") |"
        echo
    fi
    echo "## Checks"
    echo
    cat "$CHECKS"
} >"$OUT/clickhouse.md"
echo
cat "$OUT/clickhouse.md"
log ""
log "bench: written to bench/out/clickhouse.md (raw outputs in bench/out/raw/ch-*)"
[ "$ok" = 1 ] || { log "bench/clickhouse: CHECKS FAILED (see the report)"; exit 1; }
