#!/bin/sh
# bench/aggregate.sh - batch aggregation: `pixflare aggregate` against
# ClickHouse running the same GROUP BYs over the same events, in one run.
#
# Run alone: `sh bench/aggregate.sh` (about a minute at the defaults).
#
# 1. Builds build/pixflare and build/evgen (make), and writes a day of
#    BENCH_AGG_EVENTS synthetic events (bench/evgen.c: Zipf owners and images,
#    per-image variants, weighted countries, a daily cycle; see its header)
#    for the fixed date BENCH_AGG_DATE into a fresh data directory's event
#    store, through the server's writer from 2 threads, plus the same events
#    as a TSV file for ClickHouse. evgen also prints the exact answers
#    (distinct daily keys, requests, bytes, status keys), computed on its own.
# 2. ClickHouse (Debian's clickhouse-server, installed with apt-get if
#    missing): a server of its own, started here with its config and data in
#    the work directory, listening on 127.0.0.1 only, on free ports, stopped
#    at the end. The TSV is loaded into a MergeTree table (timed), then
#    merged into one part (OPTIMIZE ... FINAL, timed apart). Two table
#    layouts, both loaded from the same TSV: "compact" (owner
#    FixedString(16), image_id FixedString(6), variant Enum8, country
#    FixedString(2): ClickHouse's fastest) and "strings" (owner as 32 hex
#    characters, image_id and variant String); the ratios are against the
#    faster one.
# 3. The measured runs, pixflare and ClickHouse in turn so that both see the
#    machine in the same state:
#    - pixflare: `PIXFLARE_DATA_DIR=DIR pixflare aggregate --date D` under
#      /usr/bin/time -v (peak RSS, CPU time): a first run into empty tables
#      (shown, not compared), then BENCH_AGG_ROUNDS runs of each setting,
#      each replacing the date's rows as a scheduled run replaces
#      realtime's: the default thread count, and `--threads 1` pinned to
#      CPU 0 (`taskset -c 0`). Its stdout line `D events=N daily_rows=R
#      status_rows=S ... scan_ms=X db_ms=Y` gives where the time goes:
#      scanning and grouping vs writing the database.
#    - ClickHouse, after each pixflare run, on every layout, with the
#      default max_threads after the default pixflare run and with
#      max_threads=1 after the one-thread run (BENCH_AGG_CH_ROUNDS rounds),
#      the two GROUP BYs of the aggregation:
#        daily:  WHERE status IN (200, 206, 304) AND variant != ''
#                GROUP BY owner, image_id, variant, country -> count(), sum(bytes)
#        status: GROUP BY owner, status -> count()
#      Durations, rows read, memory and CPU time from system.query_log.
# 4. Checks: pixflare's analytics_daily and analytics_status_daily rows for
#    the date must equal ClickHouse's GROUP BY results row for row (sorted
#    exports compared), and the totals must equal evgen's. Exit 1 if not
#    (after the report is written).
#
# Output: bench/out/aggregate.md (also printed); raw outputs in
# bench/out/raw/agg-*.
#
# Environment:
#   BENCH_AGG_EVENTS     events in the day (default 10000000)
#   BENCH_AGG_DATE       the day, YYYY-MM-DD (default 2026-11-20)
#   BENCH_AGG_WRITERS    evgen writer threads (default 2)
#   BENCH_AGG_SEED       evgen seed (default 1)
#   BENCH_AGG_OWNERS, BENCH_AGG_IMAGES  evgen -o / -i (default: evgen's)
#   BENCH_AGG_ROUNDS     pixflare runs per thread setting (default 3)
#   BENCH_AGG_CH_ROUNDS  runs per ClickHouse query and setting (default 3)
#   BENCH_AGG_CH_STRINGS=0  skip the "strings" ClickHouse layout
#   BENCH_AGG_CLICKHOUSE=0  skip ClickHouse altogether (pixflare only; the
#                        results are then checked against evgen's alone)
#   BENCH_AGG_PROFILE=1  also `perf record -g` one `pixflare aggregate
#                        --threads 1` into bench/out/profile-aggregate.txt
#   BENCH_PIXFLARE_BIN   another pixflare binary to measure (default: make,
#                        then build/pixflare)
#   BENCH_KEEP=1         keep the temp work dir (its path is printed)
# Only 127.0.0.1 is used.
set -eu

EVENTS=${BENCH_AGG_EVENTS:-10000000}
DATE=${BENCH_AGG_DATE:-2026-11-20}
WRITERS=${BENCH_AGG_WRITERS:-2}
SEED=${BENCH_AGG_SEED:-1}
ROUNDS=${BENCH_AGG_ROUNDS:-3}
CH_ROUNDS=${BENCH_AGG_CH_ROUNDS:-3}
CH_ON=${BENCH_AGG_CLICKHOUSE:-1}
CH_STRINGS=${BENCH_AGG_CH_STRINGS:-1}
PY=${PYTHON:-python3}
[ "$ROUNDS" -ge 1 ] || ROUNDS=1
[ "$CH_ROUNDS" -ge 1 ] || CH_ROUNDS=1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/bench/out
RAW=$OUT/raw
BIN=${BENCH_PIXFLARE_BIN:-$ROOT/build/pixflare}
EVGEN=$ROOT/build/evgen
CH_SERVER=/usr/sbin/clickhouse-server
CH_CLIENT=/usr/bin/clickhouse-client

. "$ROOT/bench/lib.sh"
die() { log "bench/aggregate: $*"; exit 1; }

# --- tools, build, work dir ---------------------------------------------------
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=""
[ -x /usr/bin/time ] || need="$need time"
command -v taskset >/dev/null 2>&1 || need="$need util-linux"
command -v "$PY" >/dev/null 2>&1 || need="$need python3"
if [ "$CH_ON" = 1 ]; then
    [ -x "$CH_SERVER" ] || need="$need clickhouse-server"
    [ -x "$CH_CLIENT" ] || need="$need clickhouse-client"
fi
if [ "${BENCH_AGG_PROFILE:-0}" = 1 ]; then
    command -v perf >/dev/null 2>&1 || need="$need linux-perf"
fi
if [ -n "$need" ]; then
    log "== installing:$need"
    # The packages' init scripts may not start a service here (policy-rc.d);
    # this script starts its own ClickHouse anyway.
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $need; then
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $need
    fi
fi

log "== building pixflare and evgen"
if [ -z "${BENCH_PIXFLARE_BIN:-}" ]; then
    make -s all build/evgen
else
    make -s build/evgen
fi
"$BIN" aggregate --help >/dev/null 2>&1 || die "$BIN has no working 'aggregate' command"

REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$ROOT" status --porcelain -- src Makefile 2>/dev/null)" ] || REV="$REV+local-changes"
[ -z "${BENCH_PIXFLARE_BIN:-}" ] || REV="$BENCH_PIXFLARE_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-aggbench.XXXXXX")
CH_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_pid "$CH_PID"
    drop_workdir "$WORK" bench/aggregate
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DATA=$WORK/data
CH=$WORK/clickhouse
TSV=$CH/user_files/events.tsv
mkdir -p "$DATA" "$CH/data" "$CH/tmp" "$CH/user_files" "$CH/format_schemas" "$CH/log" "$RAW"
rm -f "$RAW"/agg-*
export PIXFLARE_DATA_DIR="$DATA"
# Only the data directory is set; everything else is pixflare's default,
# except the retention, so that the fixed date is never out of it.
unset PIXFLARE_DATABASE PIXFLARE_STORAGE_DIR PIXFLARE_GEOIP_DB PIXFLARE_THREADS 2>/dev/null || true
unset ANALYTICS_ENGINE ANALYTICS_DATASET ANALYTICS_REALTIME_ENABLED ANALYTICS_BATCH_ENABLED 2>/dev/null || true
export ANALYTICS_RETENTION_DAYS=36500

now_ms() { echo $(($(date +%s%N) / 1000000)); }
kv() { # kv KEY FILE: the value of KEY=VALUE in FILE's first such pair
    sed -n "s/^.*[ 	]$1=\([^ ]*\).*$/\1/p; s/^$1=\([^ ]*\).*$/\1/p" "$2" | head -n 1
}

# --- 1. the events --------------------------------------------------------------
EVGEN_ARGS="-d DATA_DIR -D $DATE -n $EVENTS -t $WRITERS -s $SEED"
[ -z "${BENCH_AGG_OWNERS:-}" ] || EVGEN_ARGS="$EVGEN_ARGS -o $BENCH_AGG_OWNERS"
[ -z "${BENCH_AGG_IMAGES:-}" ] || EVGEN_ARGS="$EVGEN_ARGS -i $BENCH_AGG_IMAGES"
log "== evgen $EVGEN_ARGS --tsv events.tsv"
# shellcheck disable=SC2046 # word splitting of the options is wanted
set -- $(echo "$EVGEN_ARGS" | sed "s|DATA_DIR|$DATA|")
"$EVGEN" "$@" --tsv "$TSV" >"$RAW/agg-evgen.txt"
cat "$RAW/agg-evgen.txt" >&2
EG=$RAW/agg-evgen.txt
EXP_DAILY_KEYS=$(kv daily_keys "$EG")
EXP_DAILY_REQ=$(kv daily_requests "$EG")
EXP_DAILY_BYTES=$(kv daily_bytes "$EG")
EXP_STATUS_KEYS=$(kv status_keys "$EG")
STORE_FILES=$(kv files "$EG")
STORE_BYTES=$(kv store_bytes "$EG")
TSV_BYTES=$(wc -c <"$TSV" | tr -d ' ')
[ "$(kv events "$EG")" = "$EVENTS" ] || die "evgen did not write $EVENTS events"

# --- 2. ClickHouse: its own server, the same events loaded ---------------------------
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

CH_VERSION="-"
CH_RSS_KB=0
: >"$WORK/ch"
if [ "$CH_ON" = 1 ]; then
    CH_TCP=$(free_port)
    CH_HTTP=$(free_port)
    while [ "$CH_HTTP" = "$CH_TCP" ]; do CH_HTTP=$(free_port); done
    cat >"$CH/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$CH/log/server.log</log>
        <errorlog>$CH/log/server.err.log</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$CH_TCP</tcp_port>
    <http_port>$CH_HTTP</http_port>
    <path>$CH/data/</path>
    <tmp_path>$CH/tmp/</tmp_path>
    <user_files_path>$CH/user_files/</user_files_path>
    <format_schema_path>$CH/format_schemas/</format_schema_path>
    <mark_cache_size>536870912</mark_cache_size>
    <max_concurrent_queries>16</max_concurrent_queries>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds>
    </query_log>
</yandex>
EOF
    cat >"$CH/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>10000000000</max_memory_usage>
            <log_queries>1</log_queries>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
EOF
    log "== starting clickhouse-server on 127.0.0.1:$CH_TCP (data in the work dir)"
    "$CH_SERVER" --config-file="$CH/config.xml" >"$CH/log/stdout.log" 2>&1 &
    CH_PID=$!
    chc() { "$CH_CLIENT" --host 127.0.0.1 --port "$CH_TCP" "$@"; }
    i=0
    until chc -q 'SELECT 1' >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -gt 300 ] || ! kill -0 "$CH_PID" 2>/dev/null; then
            cat "$CH/log/stdout.log" "$CH/log/server.err.log" >&2 2>/dev/null || true
            die "clickhouse-server did not start"
        fi
        sleep 0.1
    done
    CH_VERSION=$(chc -q 'SELECT version()')
    CH_DEFAULT_THREADS=$(chc -q "SELECT value FROM system.settings WHERE name = 'max_threads'")
    TSV_COLS="ts UInt64, owner String, image_id String, variant String, status UInt16, country FixedString(2), bytes UInt64"
    # ch_query ID SETTINGS SQL: run a query with a query id, output discarded.
    ch_query() {
        id=$1
        shift
        chc --query_id="$id" "$@" >/dev/null
    }
    # ch_load NAME CREATE_COLUMNS SELECT_LIST OWNER_EXPR IMAGE_EXPR
    ch_load() {
        name=$1
        log "== ClickHouse, $name layout: loading $TSV_BYTES bytes of TSV"
        chc -q "CREATE TABLE events_$name ($2) ENGINE = MergeTree() ORDER BY ts"
        ch_query "agg-$name-load" -q "INSERT INTO events_$name SELECT $3 FROM file('events.tsv', 'TabSeparated', '$TSV_COLS')"
        # Merge the load's parts into one (after any background merge), so
        # that no merge runs during the queries and every run sees the same
        # table; timed, but not counted as loading.
        i=0
        while [ "$(chc -q "SELECT count() FROM system.merges WHERE table = 'events_$name'")" != 0 ] && [ "$i" -lt 600 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        ch_query "agg-$name-optimize" -q "OPTIMIZE TABLE events_$name FINAL"
        parts=$(chc -q "SELECT count() FROM system.parts WHERE table = 'events_$name' AND active")
        disk=$(chc -q "SELECT sum(bytes_on_disk) FROM system.parts WHERE table = 'events_$name' AND active")
        echo "$name $parts $disk $4 $5" >>"$WORK/ch-layouts"
    }
    # ch_round THREADS ROUND: both queries once on every layout.
    ch_round() {
        threads=$1 round=$2
        set --
        [ "$threads" = default ] || set -- --max_threads="$threads"
        for name in $(awk '{ print $1 }' "$WORK/ch-layouts"); do
            ch_query "agg-$name-daily-$threads-$round" "$@" -q "SELECT owner, image_id, variant, country, count(), sum(bytes) FROM events_$name WHERE status IN (200, 206, 304) AND variant != '' GROUP BY owner, image_id, variant, country FORMAT Null"
            ch_query "agg-$name-status-$threads-$round" "$@" -q "SELECT owner, status, count() FROM events_$name GROUP BY owner, status FORMAT Null"
        done
    }
    : >"$WORK/ch-layouts"
    ch_load compact \
        "ts UInt64, owner FixedString(16), image_id FixedString(6), variant Enum8('' = 0, 'original' = 1, 'w128' = 2, 'w256' = 3, 'w512' = 4, 'w1024' = 5, 'w1536' = 6, 'w2048' = 7, 'thumb' = 8, 'og-image' = 9), status UInt16, country FixedString(2), bytes UInt64" \
        "ts, toFixedString(unhex(owner), 16), image_id, variant, status, country, bytes" \
        owner image_id
    if [ "$CH_STRINGS" = 1 ]; then
        ch_load strings \
            "ts UInt64, owner String, image_id String, variant String, status UInt16, country FixedString(2), bytes UInt64" \
            "ts, owner, image_id, variant, status, country, bytes" \
            "unhex(owner)" image_id
    fi
fi

# --- 3. the measured runs: pixflare and ClickHouse in turn --------------------------------
# One run: pf_run MODE ROUND (MODE: default, one, or first: the untimed
# first run, default threads, into empty tables). Appends to $WORK/pf:
# mode round wall_ms scan_ms db_ms rss_kb user_s sys_s events daily_rows status_rows drift
pf_run() {
    mode=$1
    r=$2
    base=$RAW/agg-pf-$mode-$r
    if [ "$mode" = one ]; then
        set -- taskset -c 0 /usr/bin/time -v -o "$base.time" "$BIN" aggregate --date "$DATE" --threads 1
    else
        set -- /usr/bin/time -v -o "$base.time" "$BIN" aggregate --date "$DATE"
    fi
    t0=$(now_ms)
    "$@" >"$base.out" 2>"$base.err" || { cat "$base.err" >&2; die "pixflare aggregate failed (see $base.err)"; }
    t1=$(now_ms)
    line=$(grep "^$DATE " "$base.out" | head -n 1)
    [ -n "$line" ] || { cat "$base.out" >&2; die "no '$DATE ...' line in pixflare aggregate's output"; }
    echo "$line" >"$base.line"
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$base.time")
    usr=$(awk -F': ' '/User time \(seconds\)/ { print $2 }' "$base.time")
    sys=$(awk -F': ' '/System time \(seconds\)/ { print $2 }' "$base.time")
    ev=$(kv events "$base.line")
    scan=$(kv scan_ms "$base.line")
    db=$(kv db_ms "$base.line")
    echo "$mode $r $((t1 - t0)) ${scan:--1} ${db:--1} $rss $usr $sys ${ev:--1} $(kv daily_rows "$base.line") $(kv status_rows "$base.line") $(kv drift "$base.line")" >>"$WORK/pf"
    log "   $mode, run $r: $((t1 - t0)) ms wall, $line, peak RSS $((rss / 1024)) MiB, CPU ${usr}s user ${sys}s sys"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
DATE0=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$WORK/pf"
# The first run writes into empty tables; every later one replaces the
# date's rows, as a real batch run replaces what realtime counted. The
# first is shown apart and left out of the comparison.
log "== pixflare aggregate --date $DATE, first run (empty tables)"
pf_run first 0
# Pixflare and ClickHouse alternate, so that both see the machine in the
# same state (ClickHouse idles while pixflare runs, and the other way).
r=1
while [ "$r" -le "$ROUNDS" ] || { [ "$CH_ON" = 1 ] && [ "$r" -le "$CH_ROUNDS" ]; }; do
    for threads in default 1; do
        if [ "$r" -le "$ROUNDS" ]; then
            if [ "$threads" = 1 ]; then
                log "== run $r, pixflare aggregate --date $DATE --threads 1 on CPU 0"
                pf_run one "$r"
            else
                log "== run $r, pixflare aggregate --date $DATE (default threads)"
                pf_run default "$r"
            fi
        fi
        if [ "$CH_ON" = 1 ] && [ "$r" -le "$CH_ROUNDS" ]; then
            log "== run $r, ClickHouse queries, max_threads $threads"
            ch_round "$threads" "$r"
        fi
    done
    r=$((r + 1))
done

# --- 4. the results ------------------------------------------------------------------
# The database's rows for the date, sorted, and their totals.
"$PY" - "$DATA/pixflare.db" "$DATE" "$WORK/pf-daily.tsv" "$WORK/pf-status.tsv" >"$WORK/pf-totals" <<'EOF'
import sqlite3, sys
db, date, daily, status = sys.argv[1:]
c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
with open(daily, "w") as f:
    for r in c.execute("SELECT owner, image_id, variant, country, requests, bandwidth_bytes "
                       "FROM analytics_daily WHERE date = ? ORDER BY 1, 2, 3, 4", (date,)):
        f.write("\t".join(str(x) for x in r) + "\n")
with open(status, "w") as f:
    for r in c.execute("SELECT owner, status, requests FROM analytics_status_daily "
                       "WHERE date = ? ORDER BY 1, 2", (date,)):
        f.write("\t".join(str(x) for x in r) + "\n")
d = c.execute("SELECT COUNT(*), COALESCE(SUM(requests), 0), COALESCE(SUM(bandwidth_bytes), 0) "
              "FROM analytics_daily WHERE date = ?", (date,)).fetchone()
s = c.execute("SELECT COUNT(*), COALESCE(SUM(requests), 0) FROM analytics_status_daily "
              "WHERE date = ?", (date,)).fetchone()
print(*d, *s)
EOF
# shellcheck disable=SC2046 # five numbers
set -- $(cat "$WORK/pf-totals")
PF_DAILY_ROWS=$1 PF_DAILY_REQ=$2 PF_DAILY_BYTES=$3 PF_STATUS_ROWS=$4 PF_STATUS_REQ=$5

if [ "$CH_ON" = 1 ]; then
    while read -r name parts disk owner_x image_x; do
        chc -q "SELECT replaceRegexpOne(lower(hex($owner_x)), '^0{32}\$', ''), replaceAll(toString($image_x), '\\0', ''), toString(variant), country, count(), sum(bytes) FROM events_$name WHERE status IN (200, 206, 304) AND variant != '' GROUP BY $owner_x, $image_x, variant, country" |
            LC_ALL=C sort >"$WORK/ch-$name-daily.tsv"
        chc -q "SELECT replaceRegexpOne(lower(hex($owner_x)), '^0{32}\$', ''), status, count() FROM events_$name GROUP BY $owner_x, status" |
            LC_ALL=C sort >"$WORK/ch-$name-status.tsv"
    done <"$WORK/ch-layouts"
    chc -q "SYSTEM FLUSH LOGS"
    # name kind threads round duration_ms read_rows memory_bytes cpu_us
    chc -q "SELECT query_id, query_duration_ms, read_rows, written_rows, memory_usage,
            arraySum(arrayMap((n, v) -> if(n IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds'), v, 0), ProfileEvents.Names, ProfileEvents.Values))
            FROM system.query_log WHERE type = 2 AND query_id LIKE 'agg-%' ORDER BY event_time, query_id" |
        awk '{ split($1, p, "-")
               if (p[3] == "load" || p[3] == "optimize") { print p[2], p[3], "-", 1, $2, $4, $5, $6 }
               else { print p[2], p[3], p[4], p[5], $2, $3, $5, $6 } }' >"$WORK/ch"
    CH_RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$CH_PID/status" 2>/dev/null || echo 0)
    stop_pid "$CH_PID"
    CH_PID=""
    cp "$WORK/ch" "$RAW/agg-clickhouse.txt"
fi
# --- optional: where pixflare's time goes ------------------------------------------
if [ "${BENCH_AGG_PROFILE:-0}" = 1 ]; then
    log "== profile: perf record -g on pixflare aggregate --threads 1"
    # DWARF unwinding: pixflare is built without frame pointers.
    taskset -c 0 perf record -q -F 2999 --call-graph dwarf,16384 -o "$WORK/perf.data" -- \
        "$BIN" aggregate --date "$DATE" --threads 1 >"$RAW/agg-profile.out" 2>/dev/null
    f=$OUT/profile-aggregate.txt
    {
        echo "# pixflare aggregate --date $DATE --threads 1 ($EVENTS events), taskset -c 0, perf record -F 2999 --call-graph dwarf"
        echo
        cat "$RAW/agg-profile.out"
        echo
        echo "## self time by object file"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -12
        echo
        echo "## self time, top symbols"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -g none \
            --percent-limit 0.5 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
        echo
        echo "## including children (pixflare's functions)"
        perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none \
            --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
    } >"$f"
    log "   written to bench/out/profile-aggregate.txt"
fi

LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 4. checks -----------------------------------------------------------------------
: >"$WORK/checks"
ok=1
check() { # check WHAT GOT WANT
    if [ "$2" = "$3" ]; then
        echo "- $1: $2 (as expected)" >>"$WORK/checks"
    else
        echo "- $1: **$2, expected $3: MISMATCH**" >>"$WORK/checks"
        ok=0
    fi
}
check "pixflare analytics_daily rows for $DATE = evgen's distinct daily keys" "$PF_DAILY_ROWS" "$EXP_DAILY_KEYS"
check "pixflare SUM(requests) of analytics_daily = evgen's daily requests" "$PF_DAILY_REQ" "$EXP_DAILY_REQ"
check "pixflare SUM(bandwidth_bytes) of analytics_daily = evgen's daily bytes" "$PF_DAILY_BYTES" "$EXP_DAILY_BYTES"
check "pixflare analytics_status_daily rows = evgen's distinct (owner, status)" "$PF_STATUS_ROWS" "$EXP_STATUS_KEYS"
check "pixflare SUM(requests) of analytics_status_daily = events" "$PF_STATUS_REQ" "$EVENTS"
awk -v ev="$EVENTS" -v dk="$EXP_DAILY_KEYS" -v sk="$EXP_STATUS_KEYS" '
    $9 != ev || $10 != dk || $11 != sk { bad++ }
    END { exit bad ? 1 : 0 }' "$WORK/pf" && pf_lines=same || pf_lines=different
check "every pixflare run reported events=$EVENTS, daily_rows and status_rows as above" "$pf_lines" same
LC_ALL=C sort "$WORK/pf-daily.tsv" >"$WORK/pf-daily.sorted"
LC_ALL=C sort "$WORK/pf-status.tsv" >"$WORK/pf-status.sorted"
if [ "$CH_ON" = 1 ]; then
    for name in $(awk '{ print $1 }' "$WORK/ch-layouts"); do
        cmp -s "$WORK/pf-daily.sorted" "$WORK/ch-$name-daily.tsv" && same=identical || same=different
        check "ClickHouse ($name) daily GROUP BY vs pixflare's analytics_daily, row for row ($(wc -l <"$WORK/ch-$name-daily.tsv" | tr -d ' ') rows)" "$same" identical
        cmp -s "$WORK/pf-status.sorted" "$WORK/ch-$name-status.tsv" && same=identical || same=different
        check "ClickHouse ($name) status GROUP BY vs pixflare's analytics_status_daily, row for row ($(wc -l <"$WORK/ch-$name-status.tsv" | tr -d ' ') rows)" "$same" identical
    done
    awk -v ev="$EVENTS" '$2 != "optimize" && $6 != ev { bad++ } END { exit bad ? 1 : 0 }' "$WORK/ch" &&
        rows=all || rows=not-all
    check "every ClickHouse query read (and the load wrote) $EVENTS rows" "$rows" all
fi
[ "$ok" = 1 ] || log "bench/aggregate: RESULTS DIFFER (see the checks in the report)"

# --- 5. report -------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
EVGEN_CMD="build/evgen $EVGEN_ARGS --tsv events.tsv"
{
    echo "# Batch aggregation: pixflare aggregate vs ClickHouse"
    echo
    echo "- date: $DATE0; load average before / after: $LOAD0 / $LOAD1 (other processes share the machine)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo); work dir on $fs (everything is in the page cache: warm runs)"
    echo "- pixflare: $REV; ClickHouse: $CH_VERSION (Debian's clickhouse-server), default max_threads ${CH_DEFAULT_THREADS:-?}"
    echo "- events: \`$EVGEN_CMD\`: $EVENTS events of $DATE, $(kv daily_keys "$EG") distinct daily keys (owner, image, variant, country), $(kv status_keys "$EG") distinct (owner, status), $(kv unattributed "$EG") unattributed; statuses 200/206/304/400/404: $(kv s200 "$EG")/$(kv s206 "$EG")/$(kv s304 "$EG")/$(kv s400 "$EG")/$(kv s404 "$EG"); event store: $STORE_FILES files, $STORE_BYTES bytes; TSV: $TSV_BYTES bytes; written in $(kv gen_ms "$EG") ms"
    echo
    echo "## pixflare aggregate"
    echo
    echo "\`PIXFLARE_DATA_DIR=DIR pixflare aggregate --date $DATE\` (default threads), and the same with \`--threads 1\` under \`taskset -c 0\`, alternating, each under \`/usr/bin/time -v\`. The first run (not compared) writes into empty tables; the timed ones replace the date's rows, as a scheduled run replaces what realtime counted. scan: reading the day's files and grouping; db: writing the rows to SQLite; other: the rest of the wall time (start, database open, exit)."
    echo
    echo "| run | threads | wall (ms) | scan (ms) | db (ms) | other (ms) | scan M events/s | end-to-end M events/s | CPU user+sys (s) | M events per CPU-second | peak RSS (MiB) |"
    echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    awk '{ cpu = $7 + $8; other = $3 - $4 - $5
        printf "| %s | %s | %d | %d | %d | %d | %.1f | %.1f | %.2f | %.1f | %.1f |\n", ($1 == "first" ? "first" : $2), ($1 == "one" ? "1 (CPU 0)" : $1 == "first" ? "default, into empty tables" : "default"), $3, $4, $5, other,
            ($4 > 0 ? $9 / $4 / 1000 : 0), $9 / $3 / 1000, cpu, (cpu > 0 ? $9 / cpu / 1e6 : 0), $6 / 1024 }' "$WORK/pf"
    echo
    awk -v ev="$EVENTS" '$1 == "one" { if (!s || $4 < s) s = $4; if (!w || $3 < w) w = $3 }
        END { if (s > 0) printf "- one core (`--threads 1` on CPU 0), best runs: scan %.1f M events/s, end to end %.1f M events/s; against the target of 30 M events/s: %.2fx and %.2fx\n", ev / s / 1000, ev / w / 1000, ev / s / 1000 / 30, ev / w / 1000 / 30 }' "$WORK/pf"
    awk '$1 != "first" { if (!r || $6 > r) r = $6 } END { printf "- peak RSS of the timed runs: at most %.1f MiB\n", r / 1024 }' "$WORK/pf"
    echo
    if [ "$CH_ON" = 1 ]; then
        echo "## ClickHouse $CH_VERSION"
        echo
        echo "Its own server on 127.0.0.1 (config and data in the work dir). Load: \`INSERT INTO events SELECT ... FROM file('events.tsv', 'TabSeparated', ...)\` (the same events, as TSV, parsed by the server), then \`OPTIMIZE TABLE events FINAL\` (one part; not counted as loading); then each query, \`FORMAT Null\`, $CH_ROUNDS run(s) per setting, each round right after the pixflare run of the same setting. Durations, rows read, memory and CPU (user + system) from \`system.query_log\`. \"both\" is daily + status: pixflare computes both in its one scan."
        echo
        awk '{ printf "- layout %s: %s active part(s), %.1f MiB on disk\n", $1, $2, $3 / 1048576 }' "$WORK/ch-layouts"
        echo
        echo "| layout | query | max_threads | runs (ms) | best (ms) | M rows/s (best) | M rows per CPU-second (best run) | memory (MiB, max) |"
        echo "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"
        awk -v dt="${CH_DEFAULT_THREADS:-?}" '
        function row(l, q, t,   k, th) {
            k = l SUBSEP q SUBSEP t
            if (!(k in n)) return
            th = t == "default" ? "default (" dt ")" : t == "-" ? "-" : t
            if (rows[k] == 0) {
                printf "| %s | %s | %s | %s | %d | - | - | %.0f |\n", l, q, th, runs[k], best[k], mem[k] / 1048576
                return
            }
            printf "| %s | %s | %s | %s | %d | %.1f | %.1f | %.0f |\n", l, q, th, runs[k], best[k],
                (best[k] > 0 ? rows[k] / best[k] / 1000 : 0), (cpub[k] > 0 ? rows[k] / cpub[k] : 0), mem[k] / 1048576
        }
        function both(l, t,   d, s, b, c, th) {
            d = l SUBSEP "daily" SUBSEP t; s = l SUBSEP "status" SUBSEP t
            if (!(d in n) || !(s in n)) return
            b = best[d] + best[s]; c = cpub[d] + cpub[s]
            th = t == "default" ? "default (" dt ")" : t
            printf "| %s | both (daily + status) | %s | | %d | %.1f | %.1f | |\n", l, th, b,
                (b > 0 ? rows[s] / b / 1000 : 0), (c > 0 ? rows[s] / c : 0)
        }
        { key = $1 SUBSEP $2 SUBSEP $3
          if (!($1 in seen)) { seen[$1] = 1; lays[++nl] = $1 }
          n[key]++; runs[key] = runs[key] (n[key] > 1 ? ", " : "") $5
          if (!(key in best) || $5 < best[key]) { best[key] = $5; cpub[key] = $8 }
          if ($7 > mem[key]) mem[key] = $7
          rows[key] = $6 }
        END {
          for (i = 1; i <= nl; i++) {
            row(lays[i], "load", "-")
            row(lays[i], "optimize", "-")
            for (t = 0; t < 2; t++) {
              th = t ? "1" : "default"
              row(lays[i], "daily", th); row(lays[i], "status", th); both(lays[i], th)
            }
          }
        }' "$WORK/ch"
        echo
        echo "clickhouse-server peak RSS (VmHWM, whole server, all of the above): $((CH_RSS_KB / 1024)) MiB"
        echo
        echo "## pixflare / ClickHouse"
        echo
        echo "Best run of each; ClickHouse's fastest layout for each setting. Rows/s = $EVENTS events over the time. Targets: at least 1.0x ClickHouse, and at least 30 M events/s on one core."
        echo
        echo "| threads | pixflare scan M ev/s | pixflare end-to-end M ev/s | ClickHouse queries (daily + status) M rows/s | ClickHouse load + queries M rows/s | scan / queries | end-to-end / queries | scan / (load + queries) | end-to-end / (load + queries) |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk -v ev="$EVENTS" -v dt="${CH_DEFAULT_THREADS:-?}" '
        FNR == NR { if ($1 == "first") next
            m = $1 == "one" ? "1" : "default"
            if (!(m in scan) || $4 < scan[m]) scan[m] = $4
            if (!(m in wall) || $3 < wall[m]) wall[m] = $3
            next }
        { key = $1 SUBSEP $2 SUBSEP $3
          if (!(key in best) || $5 < best[key]) best[key] = $5
          if ($2 == "load") load[$1] = $5; lay[$1] = 1 }
        END {
          for (t = 0; t < 2; t++) {
            m = t ? "1" : "default"
            q = -1
            for (l in lay) { b = best[l, "daily", m] + best[l, "status", m]
                if (q < 0 || b < q) { q = b; ql = load[l] } }
            if (q <= 0) continue
            printf "| %s | %.1f | %.1f | %.1f | %.1f | **%.2fx** | **%.2fx** | %.2fx | %.2fx |\n",
                (t ? "1 (pixflare on CPU 0; ClickHouse max_threads=1)" : "default (pixflare: its default; ClickHouse: max_threads " dt ")"),
                ev / scan[m] / 1000, ev / wall[m] / 1000, ev / q / 1000, ev / (ql + q) / 1000,
                q / scan[m], q / wall[m], (ql + q) / scan[m], (ql + q) / wall[m]
          }
        }' "$WORK/pf" "$WORK/ch"
        echo
    fi
    echo "## Checks"
    echo
    cat "$WORK/checks"
} >"$OUT/aggregate.md"
echo
cat "$OUT/aggregate.md"
log ""
log "bench: written to bench/out/aggregate.md (raw outputs in bench/out/raw/agg-*)"
[ "$ok" = 1 ] || exit 1
