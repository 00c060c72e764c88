#!/bin/sh
# bench/aggregate.sh - batch aggregation: `pixflare aggregate` against
# ClickHouse running the same GROUP BYs over the same events, in one run.
#
# Run alone: `sh bench/aggregate.sh` (about 70 s at the defaults).
#
# Two datasets, one after the other, each measured and checked on its own:
#   heavy  BENCH_AGG_EVENTS events (default 10M) with evgen's default
#          cardinality (500 owners, 1500 images: ~231k distinct daily keys)
#   light  BENCH_AGG_LIGHT_EVENTS events (default: as many) with few keys
#          (50 owners, 50 images: ~22k distinct daily keys), closer to a
#          typical install; BENCH_AGG_LIGHT=0 skips it
#
# For each dataset:
# 1. Writes a day of synthetic events (bench/evgen.c: Zipf owners and images,
#    per-image variants, weighted countries, a daily cycle; see its header)
#    for the fixed date BENCH_AGG_DATE into a fresh data directory's event
#    store, through the server's writer from 2 threads, plus the same events
#    as a TSV file for ClickHouse. evgen also prints the exact answers
#    (distinct daily keys, requests, bytes, status keys), computed on its own.
# 2. ClickHouse (Debian's clickhouse-server, installed with apt-get if
#    missing; one server for both datasets, started here with its config and
#    data in the work directory, listening on 127.0.0.1 only, on free ports,
#    stopped at the end). The TSV is loaded into a MergeTree table (timed),
#    then merged into one part (OPTIMIZE ... FINAL, timed apart). Table
#    layouts, all loaded from the same TSV: "compact" (owner FixedString(16),
#    image_id FixedString(6), variant Enum8, country FixedString(2):
#    ClickHouse's fastest) and, for the heavy dataset only, "strings" (owner
#    as 32 hex characters, image_id and variant String); the ratios are
#    against the faster one.
# 3. The measured runs, pixflare and ClickHouse in turn so that both see the
#    machine in the same state:
#    - pixflare: `PIXFLARE_DATA_DIR=DIR pixflare aggregate --date D` under
#      /usr/bin/time -v (peak RSS, CPU time): a first run into empty tables
#      (shown, not compared), then BENCH_AGG_ROUNDS runs of each setting,
#      each replacing the date's rows as a scheduled run replaces
#      realtime's: the default thread count, and `--threads 1` pinned to
#      CPU 0 (`taskset -c 0`). Its stdout line `D events=N daily_rows=R
#      status_rows=S ... scan_ms=X sort_ms=Y db_ms=Z` gives where the time
#      goes: scan (read the files, group, merge the reader threads' tables),
#      sort (sort the distinct keys, build the rows), db (the SQLite
#      transaction). Events/s are reported for the scan alone, for scan +
#      sort (the grouped result, what ClickHouse's GROUP BYs produce too)
#      and end to end (the command's wall time).
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
#   BENCH_AGG_EVENTS     events in the heavy day (default 10000000)
#   BENCH_AGG_DATE       the day, YYYY-MM-DD (default 2026-11-20)
#   BENCH_AGG_WRITERS    evgen writer threads (default 2)
#   BENCH_AGG_SEED       evgen seed (default 1)
#   BENCH_AGG_OWNERS, BENCH_AGG_IMAGES  evgen -o / -i of the heavy dataset
#                        (default: evgen's, 500 / 1500)
#   BENCH_AGG_LIGHT=0    skip the light dataset
#   BENCH_AGG_LIGHT_EVENTS  events in the light day (default: BENCH_AGG_EVENTS)
#   BENCH_AGG_LIGHT_OWNERS, BENCH_AGG_LIGHT_IMAGES  its evgen -o / -i
#                        (default 50 / 50)
#   BENCH_AGG_ROUNDS     pixflare runs per thread setting (default 3)
#   BENCH_AGG_CH_ROUNDS  runs per ClickHouse query and setting (default 3)
#   BENCH_AGG_CH_STRINGS=0  skip the "strings" ClickHouse layout
#   BENCH_AGG_CLICKHOUSE=0  skip ClickHouse altogether (pixflare only; the
#                        results are then checked against evgen's alone)
#   BENCH_AGG_PROFILE=1  also `perf record -g` one `pixflare aggregate
#                        --threads 1` per dataset into
#                        bench/out/profile-aggregate.txt (heavy) and
#                        bench/out/profile-aggregate-light.txt
#   BENCH_PIXFLARE_BIN   another pixflare binary to measure (default: make,
#                        then build/pixflare)
#   BENCH_KEEP=1         keep the temp work dir (its path is printed)
# Only 127.0.0.1 is used.
set -eu

EVENTS=${BENCH_AGG_EVENTS:-10000000}
DATE=${BENCH_AGG_DATE:-2026-11-20}
WRITERS=${BENCH_AGG_WRITERS:-2}
SEED=${BENCH_AGG_SEED:-1}
LIGHT=${BENCH_AGG_LIGHT:-1}
LIGHT_EVENTS=${BENCH_AGG_LIGHT_EVENTS:-$EVENTS}
LIGHT_OWNERS=${BENCH_AGG_LIGHT_OWNERS:-50}
LIGHT_IMAGES=${BENCH_AGG_LIGHT_IMAGES:-50}
ROUNDS=${BENCH_AGG_ROUNDS:-3}
CH_ROUNDS=${BENCH_AGG_CH_ROUNDS:-3}
CH_ON=${BENCH_AGG_CLICKHOUSE:-1}
CH_STRINGS=${BENCH_AGG_CH_STRINGS:-1}
PROFILE=${BENCH_AGG_PROFILE:-0}
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
need=""
[ -x /usr/bin/time ] || need="$need time"
command -v taskset >/dev/null 2>&1 || need="$need util-linux"
command -v "$PY" >/dev/null 2>&1 || need="$need python3"
if [ "$CH_ON" = 1 ]; then
    [ -x "$CH_SERVER" ] || need="$need clickhouse-server"
    [ -x "$CH_CLIENT" ] || need="$need clickhouse-client"
fi
if [ "$PROFILE" = 1 ]; then
    command -v perf >/dev/null 2>&1 || need="$need linux-perf"
fi
# shellcheck disable=SC2086 # a list of package names
apt_need $need

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

CH=$WORK/clickhouse
mkdir -p "$CH/data" "$CH/tmp" "$CH/user_files" "$CH/format_schemas" "$CH/log" "$RAW"
rm -f "$RAW"/agg-* "$OUT/profile-aggregate.txt" "$OUT/profile-aggregate-light.txt"
# Only the data directory is set (per dataset); everything else is
# pixflare's default, except the retention, so that the fixed date is never
# out of it.
unset PIXFLARE_DATABASE PIXFLARE_STORAGE_DIR PIXFLARE_GEOIP_DB PIXFLARE_THREADS 2>/dev/null || true
unset ANALYTICS_ENGINE ANALYTICS_DATASET ANALYTICS_REALTIME_ENABLED ANALYTICS_BATCH_ENABLED 2>/dev/null || true
export ANALYTICS_RETENTION_DAYS=36500

now_ms() { echo $(($(date +%s%N) / 1000000)); }
kv() { # kv KEY FILE: the value of KEY=VALUE in FILE's first such pair
    sed -n "s/^.*[ 	]$1=\([^ ]*\).*$/\1/p; s/^$1=\([^ ]*\).*$/\1/p" "$2" | head -n 1
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
DATE0=$(date -u '+%Y-%m-%d %H:%M UTC')
T_START=$(now_ms)

# --- ClickHouse: its own server, shared by the datasets ------------------------------
CH_VERSION="-"
CH_RSS_KB=0
[ "$CH_ON" != 1 ] || ch_start "$CH"
TSV_COLS="ts UInt64, owner String, image_id String, variant String, status UInt16, country FixedString(2), bytes UInt64"
COMPACT_COLS="ts UInt64, owner FixedString(16), image_id FixedString(6), variant Enum8('' = 0, 'original' = 1, 'w128' = 2, 'w256' = 3, 'w512' = 4, 'w1024' = 5, 'w1536' = 6, 'w2048' = 7, 'thumb' = 8, 'og-image' = 9), status UInt16, country FixedString(2), bytes UInt64"
COMPACT_SELECT="ts, toFixedString(unhex(owner), 16), image_id, variant, status, country, bytes"
STRINGS_COLS="ts UInt64, owner String, image_id String, variant String, status UInt16, country FixedString(2), bytes UInt64"
STRINGS_SELECT="ts, owner, image_id, variant, status, country, bytes"

# ch_query ID ARGS...: run a query with a query id, output discarded.
ch_query() {
    qid=$1
    shift
    chc --query_id="$qid" "$@" >/dev/null
}
# ch_load DS LAYOUT CREATE_COLUMNS SELECT_LIST OWNER_EXPR IMAGE_EXPR: table
# events_DS_LAYOUT from DS.tsv; appends "LAYOUT parts bytes OWNER_EXPR
# IMAGE_EXPR" to the dataset's ch-layouts.
ch_load() {
    lds=$1 lname=$2
    tbl=events_${lds}_$lname
    log "== ClickHouse, $lds events, $lname layout: loading $(wc -c <"$CH/user_files/$lds.tsv" | tr -d ' ') bytes of TSV"
    chc -q "CREATE TABLE $tbl ($3) ENGINE = MergeTree() ORDER BY ts"
    ch_query "agg-$lds-$lname-load" -q "INSERT INTO $tbl SELECT $4 FROM file('$lds.tsv', 'TabSeparated', '$TSV_COLS')"
    # Merge the load's parts into one (after any background merge), so that
    # no merge runs during the queries and every run sees the same table;
    # timed, but not counted as loading.
    i=0
    while [ "$(chc -q "SELECT count() FROM system.merges WHERE table = '$tbl'")" != 0 ] && [ "$i" -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    ch_query "agg-$lds-$lname-optimize" -q "OPTIMIZE TABLE $tbl FINAL"
    parts=$(chc -q "SELECT count() FROM system.parts WHERE table = '$tbl' AND active")
    disk=$(chc -q "SELECT sum(bytes_on_disk) FROM system.parts WHERE table = '$tbl' AND active")
    echo "$lname $parts $disk $5 $6" >>"$WORK/$lds/ch-layouts"
}
# ch_round DS THREADS ROUND: both queries once on every layout of DS.
ch_round() {
    rds=$1 rthreads=$2 rround=$3
    set --
    [ "$rthreads" = default ] || set -- --max_threads="$rthreads"
    for lname in $(awk '{ print $1 }' "$WORK/$rds/ch-layouts"); do
        tbl=events_${rds}_$lname
        ch_query "agg-$rds-$lname-daily-$rthreads-$rround" "$@" -q "SELECT owner, image_id, variant, country, count(), sum(bytes) FROM $tbl WHERE status IN (200, 206, 304) AND variant != '' GROUP BY owner, image_id, variant, country FORMAT Null"
        ch_query "agg-$rds-$lname-status-$rthreads-$rround" "$@" -q "SELECT owner, status, count() FROM $tbl GROUP BY owner, status FORMAT Null"
    done
}

# One pixflare run: pf_run DS MODE ROUND (MODE: default, one, or first: the
# untimed first run, default threads, into empty tables). Appends to
# $WORK/DS/pf:
# mode round wall_ms scan_ms sort_ms db_ms rss_kb user_s sys_s events daily_rows status_rows drift
pf_run() {
    pds=$1 mode=$2 r=$3
    base=$RAW/agg-$pds-pf-$mode-$r
    if [ "$mode" = one ]; then
        set -- taskset -c 0 /usr/bin/time -v -o "$base.time" "$BIN" aggregate --date "$DATE" --threads 1
    else
        set -- /usr/bin/time -v -o "$base.time" "$BIN" aggregate --date "$DATE"
    fi
    t0=$(now_ms)
    PIXFLARE_DATA_DIR="$WORK/$pds/data" "$@" >"$base.out" 2>"$base.err" ||
        { cat "$base.err" >&2; die "pixflare aggregate failed (see $base.err)"; }
    t1=$(now_ms)
    line=$(grep "^$DATE " "$base.out" | head -n 1)
    [ -n "$line" ] || { cat "$base.out" >&2; die "no '$DATE ...' line in pixflare aggregate's output"; }
    echo "$line" >"$base.line"
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$base.time")
    usr=$(awk -F': ' '/User time \(seconds\)/ { print $2 }' "$base.time")
    sys=$(awk -F': ' '/System time \(seconds\)/ { print $2 }' "$base.time")
    ev=$(kv events "$base.line")
    scan=$(kv scan_ms "$base.line")
    # A binary from before sort_ms counted the sort in scan_ms.
    sort=$(kv sort_ms "$base.line")
    db=$(kv db_ms "$base.line")
    echo "$mode $r $((t1 - t0)) ${scan:--1} ${sort:-0} ${db:--1} $rss $usr $sys ${ev:--1} $(kv daily_rows "$base.line") $(kv status_rows "$base.line") $(kv drift "$base.line")" >>"$WORK/$pds/pf"
    log "   $mode, run $r: $((t1 - t0)) ms wall, $line, peak RSS $((rss / 1024)) MiB, CPU ${usr}s user ${sys}s sys"
}

ok=1
check() { # check WHAT GOT WANT (into $DSDIR/checks)
    if [ "$2" = "$3" ]; then
        echo "- $1: $2 (as expected)" >>"$DSDIR/checks"
    else
        echo "- $1: **$2, expected $3: MISMATCH**" >>"$DSDIR/checks"
        ok=0
    fi
}

# --- one dataset: events, ClickHouse load, measured runs, checks, report ---------------
# run_dataset DS TITLE EVENTS OWNERS IMAGES LAYOUTS PROFILE_FILE
# (OWNERS, IMAGES "" for evgen's defaults; LAYOUTS: ClickHouse layouts,
# "compact" and/or "strings"). Writes $WORK/DS/report.md.
run_dataset() {
    DS=$1 TITLE=$2 N=$3 D_OWNERS=$4 D_IMAGES=$5 D_LAYOUTS=$6 PROF=$7
    DSDIR=$WORK/$DS
    DATA=$DSDIR/data
    mkdir -p "$DATA"
    : >"$DSDIR/pf"
    : >"$DSDIR/ch"
    : >"$DSDIR/ch-layouts"
    : >"$DSDIR/checks"

    # 1. the events
    EVGEN_ARGS="-d DATA_DIR -D $DATE -n $N -t $WRITERS -s $SEED"
    [ -z "$D_OWNERS" ] || EVGEN_ARGS="$EVGEN_ARGS -o $D_OWNERS"
    [ -z "$D_IMAGES" ] || EVGEN_ARGS="$EVGEN_ARGS -i $D_IMAGES"
    TSV=$CH/user_files/$DS.tsv
    log "== [$DS] evgen $EVGEN_ARGS --tsv $DS.tsv"
    # shellcheck disable=SC2046 # word splitting of the options is wanted
    set -- $(echo "$EVGEN_ARGS" | sed "s|DATA_DIR|$DATA|")
    [ "$CH_ON" != 1 ] || set -- "$@" --tsv "$TSV"
    EG=$RAW/agg-$DS-evgen.txt
    "$EVGEN" "$@" >"$EG"
    cat "$EG" >&2
    EXP_DAILY_KEYS=$(kv daily_keys "$EG")
    EXP_DAILY_REQ=$(kv daily_requests "$EG")
    EXP_DAILY_BYTES=$(kv daily_bytes "$EG")
    EXP_STATUS_KEYS=$(kv status_keys "$EG")
    [ "$(kv events "$EG")" = "$N" ] || die "evgen did not write $N events"
    TSV_BYTES=-
    [ "$CH_ON" != 1 ] || TSV_BYTES=$(wc -c <"$TSV" | tr -d ' ')

    # 2. ClickHouse: the same events loaded
    if [ "$CH_ON" = 1 ]; then
        for lname in $D_LAYOUTS; do
            case $lname in
            compact) ch_load "$DS" compact "$COMPACT_COLS" "$COMPACT_SELECT" owner image_id ;;
            strings) ch_load "$DS" strings "$STRINGS_COLS" "$STRINGS_SELECT" "unhex(owner)" image_id ;;
            esac
        done
        [ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$TSV"
    fi

    # 3. the measured runs: pixflare and ClickHouse in turn. The first run
    # writes into empty tables; every later one replaces the date's rows, as
    # a real batch run replaces what realtime counted. The first is shown
    # apart and left out of the comparison. Pixflare and ClickHouse
    # alternate, so that both see the machine in the same state (ClickHouse
    # idles while pixflare runs, and the other way).
    log "== [$DS] pixflare aggregate --date $DATE, first run (empty tables)"
    pf_run "$DS" first 0
    rnd=1
    while [ "$rnd" -le "$ROUNDS" ] || { [ "$CH_ON" = 1 ] && [ "$rnd" -le "$CH_ROUNDS" ]; }; do
        for th in default 1; do
            if [ "$rnd" -le "$ROUNDS" ]; then
                if [ "$th" = 1 ]; then
                    log "== [$DS] run $rnd, pixflare aggregate --date $DATE --threads 1 on CPU 0"
                    pf_run "$DS" one "$rnd"
                else
                    log "== [$DS] run $rnd, pixflare aggregate --date $DATE (default threads)"
                    pf_run "$DS" default "$rnd"
                fi
            fi
            if [ "$CH_ON" = 1 ] && [ "$rnd" -le "$CH_ROUNDS" ]; then
                log "== [$DS] run $rnd, ClickHouse queries, max_threads $th"
                ch_round "$DS" "$th" "$rnd"
            fi
        done
        rnd=$((rnd + 1))
    done

    # 4. the results: the database's rows for the date, sorted, and their totals
    "$PY" - "$DATA/pixflare.db" "$DATE" "$DSDIR/pf-daily.tsv" "$DSDIR/pf-status.tsv" >"$DSDIR/pf-totals" <<'EOF'
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
    set -- $(cat "$DSDIR/pf-totals")
    PF_DAILY_ROWS=$1 PF_DAILY_REQ=$2 PF_DAILY_BYTES=$3 PF_STATUS_ROWS=$4 PF_STATUS_REQ=$5

    if [ "$CH_ON" = 1 ]; then
        while read -r lname parts disk owner_x image_x; do
            tbl=events_${DS}_$lname
            chc -q "SELECT replaceRegexpOne(lower(hex($owner_x)), '^0{32}\$', ''), replaceAll(toString($image_x), '\\0', ''), toString(variant), country, count(), sum(bytes) FROM $tbl WHERE status IN (200, 206, 304) AND variant != '' GROUP BY $owner_x, $image_x, variant, country" |
                LC_ALL=C sort >"$DSDIR/ch-$lname-daily.tsv"
            chc -q "SELECT replaceRegexpOne(lower(hex($owner_x)), '^0{32}\$', ''), status, count() FROM $tbl GROUP BY $owner_x, status" |
                LC_ALL=C sort >"$DSDIR/ch-$lname-status.tsv"
        done <"$DSDIR/ch-layouts"
        chc -q "SYSTEM FLUSH LOGS"
        # layout kind threads round duration_ms read_rows memory_bytes cpu_us
        chc -q "SELECT query_id, query_duration_ms, read_rows, written_rows, memory_usage,
                arraySum(arrayMap((n, v) -> if(n IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds'), v, 0), ProfileEvents.Names, ProfileEvents.Values))
                FROM system.query_log WHERE type = 2 AND query_id LIKE 'agg-$DS-%' ORDER BY event_time, query_id" |
            awk '{ split($1, p, "-")
                   if (p[4] == "load" || p[4] == "optimize") { print p[3], p[4], "-", 1, $2, $4, $5, $6 }
                   else { print p[3], p[4], p[5], p[6], $2, $3, $5, $6 } }' >"$DSDIR/ch"
        cp "$DSDIR/ch" "$RAW/agg-$DS-clickhouse.txt"
    fi

    # optional: where pixflare's time goes
    if [ "$PROFILE" = 1 ]; then
        log "== [$DS] profile: perf record -g on pixflare aggregate --threads 1"
        # DWARF unwinding: pixflare is built without frame pointers.
        PIXFLARE_DATA_DIR="$DATA" taskset -c 0 perf record -q -F 2999 --call-graph dwarf,16384 -o "$DSDIR/perf.data" -- \
            "$BIN" aggregate --date "$DATE" --threads 1 >"$RAW/agg-$DS-profile.out" 2>/dev/null
        {
            echo "# pixflare aggregate --date $DATE --threads 1 ($N events, $DS dataset: \`build/evgen $EVGEN_ARGS\`), taskset -c 0, perf record -F 2999 --call-graph dwarf"
            echo
            cat "$RAW/agg-$DS-profile.out"
            echo
            echo "## self time by object file"
            perf report -i "$DSDIR/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -12
            echo
            echo "## self time, top symbols"
            perf report -i "$DSDIR/perf.data" --stdio --no-children --sort dso,symbol -g none \
                --percent-limit 0.5 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
            echo
            echo "## including children (pixflare's functions)"
            perf report -i "$DSDIR/perf.data" --stdio --children --sort symbol -g none \
                --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
        } >"$PROF"
        rm -f "$DSDIR/perf.data"
        log "   written to ${PROF#"$ROOT"/}"
    fi

    # checks
    check "pixflare analytics_daily rows for $DATE = evgen's distinct daily keys" "$PF_DAILY_ROWS" "$EXP_DAILY_KEYS"
    check "pixflare SUM(requests) of analytics_daily = evgen's daily requests" "$PF_DAILY_REQ" "$EXP_DAILY_REQ"
    check "pixflare SUM(bandwidth_bytes) of analytics_daily = evgen's daily bytes" "$PF_DAILY_BYTES" "$EXP_DAILY_BYTES"
    check "pixflare analytics_status_daily rows = evgen's distinct (owner, status)" "$PF_STATUS_ROWS" "$EXP_STATUS_KEYS"
    check "pixflare SUM(requests) of analytics_status_daily = events" "$PF_STATUS_REQ" "$N"
    awk -v ev="$N" -v dk="$EXP_DAILY_KEYS" -v sk="$EXP_STATUS_KEYS" '
        $10 != ev || $11 != dk || $12 != sk { bad++ }
        END { exit bad ? 1 : 0 }' "$DSDIR/pf" && pf_lines=same || pf_lines=different
    check "every pixflare run reported events=$N, daily_rows and status_rows as above" "$pf_lines" same
    LC_ALL=C sort "$DSDIR/pf-daily.tsv" >"$DSDIR/pf-daily.sorted"
    LC_ALL=C sort "$DSDIR/pf-status.tsv" >"$DSDIR/pf-status.sorted"
    if [ "$CH_ON" = 1 ]; then
        for lname in $(awk '{ print $1 }' "$DSDIR/ch-layouts"); do
            cmp -s "$DSDIR/pf-daily.sorted" "$DSDIR/ch-$lname-daily.tsv" && same=identical || same=different
            check "ClickHouse ($lname) daily GROUP BY vs pixflare's analytics_daily, row for row ($(wc -l <"$DSDIR/ch-$lname-daily.tsv" | tr -d ' ') rows)" "$same" identical
            cmp -s "$DSDIR/pf-status.sorted" "$DSDIR/ch-$lname-status.tsv" && same=identical || same=different
            check "ClickHouse ($lname) status GROUP BY vs pixflare's analytics_status_daily, row for row ($(wc -l <"$DSDIR/ch-$lname-status.tsv" | tr -d ' ') rows)" "$same" identical
        done
        awk -v ev="$N" '$2 != "optimize" && $6 != ev { bad++ } END { exit bad ? 1 : 0 }' "$DSDIR/ch" &&
            rows=all || rows=not-all
        check "every ClickHouse query read (and the load wrote) $N rows" "$rows" all
        # Free the disk for the next dataset.
        for lname in $(awk '{ print $1 }' "$DSDIR/ch-layouts"); do
            chc -q "DROP TABLE events_${DS}_$lname"
        done
    fi

    # the report's part for this dataset
    {
        echo "## $TITLE"
        echo
        echo "\`build/evgen $EVGEN_ARGS --tsv $DS.tsv\`: $N events of $DATE, **$(kv daily_keys "$EG") distinct daily keys** (owner, image, variant, country), $(kv status_keys "$EG") distinct (owner, status), $(kv unattributed "$EG") unattributed; statuses 200/206/304/400/404: $(kv s200 "$EG")/$(kv s206 "$EG")/$(kv s304 "$EG")/$(kv s400 "$EG")/$(kv s404 "$EG"); event store: $(kv files "$EG") files, $(kv store_bytes "$EG") bytes; TSV: $TSV_BYTES bytes; written in $(kv gen_ms "$EG") ms."
        echo
        echo "### pixflare aggregate"
        echo
        echo "| run | threads | wall (ms) | scan (ms) | sort (ms) | db (ms) | other (ms) | scan M ev/s | scan+sort M ev/s | end-to-end M ev/s | CPU user+sys (s) | M ev per CPU-second | peak RSS (MiB) |"
        echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk '{ cpu = $8 + $9; other = $3 - $4 - $5 - $6; ss = $4 + $5
            printf "| %s | %s | %d | %d | %d | %d | %d | %.1f | %.1f | %.1f | %.2f | %.1f | %.1f |\n", ($1 == "first" ? "first" : $2), ($1 == "one" ? "1 (CPU 0)" : $1 == "first" ? "default, into empty tables" : "default"), $3, $4, $5, $6, other,
                ($4 > 0 ? $10 / $4 / 1000 : 0), (ss > 0 ? $10 / ss / 1000 : 0), $10 / $3 / 1000, cpu, (cpu > 0 ? $10 / cpu / 1e6 : 0), $7 / 1024 }' "$DSDIR/pf"
        echo
        awk -v ev="$N" '$1 == "one" { if (!s || $4 < s) s = $4; if (!ss || $4 + $5 < ss) ss = $4 + $5; if (!w || $3 < w) w = $3 }
            END { if (s > 0) printf "- one core (`--threads 1` on CPU 0), best runs: scan %.1f M events/s, scan+sort %.1f M events/s, end to end %.1f M events/s; against the target of 30 M events/s: %.2fx, %.2fx and %.2fx\n", ev / s / 1000, ev / ss / 1000, ev / w / 1000, ev / s / 1000 / 30, ev / ss / 1000 / 30, ev / w / 1000 / 30 }' "$DSDIR/pf"
        awk '$1 != "first" { if (!r || $7 > r) r = $7; if ($1 == "one" && (!o || $7 > o)) o = $7 }
            END { printf "- peak RSS of the timed runs: at most %.1f MiB (one thread: %.1f MiB)\n", r / 1024, o / 1024 }' "$DSDIR/pf"
        echo
        if [ "$CH_ON" = 1 ]; then
            echo "### ClickHouse $CH_VERSION"
            echo
            awk '{ printf "- layout %s: %s active part(s), %.1f MiB on disk\n", $1, $2, $3 / 1048576 }' "$DSDIR/ch-layouts"
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
                printf "| %s | **both** (daily + status) | %s | | %d | **%.1f** | %.1f | |\n", l, th, b,
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
            }' "$DSDIR/ch"
            echo
            echo "### pixflare / ClickHouse"
            echo
            echo "Best run of each; ClickHouse's fastest layout for each setting. Rows/s = $N events over the time. scan+sort is pixflare's grouped result (what the GROUP BYs produce); end to end adds the SQLite write, process start and exit."
            echo
            echo "| threads | pixflare scan M ev/s | pixflare scan+sort M ev/s | pixflare end-to-end M ev/s | ClickHouse queries (daily + status) M rows/s | ClickHouse load + queries M rows/s | scan+sort / queries | end-to-end / queries | end-to-end / (load + queries) |"
            echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            awk -v ev="$N" -v dt="${CH_DEFAULT_THREADS:-?}" '
            FNR == NR { if ($1 == "first") next
                m = $1 == "one" ? "1" : "default"
                if (!(m in scan) || $4 < scan[m]) scan[m] = $4
                if (!(m in ss) || $4 + $5 < ss[m]) ss[m] = $4 + $5
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
                if (q <= 0 || !(m in wall)) continue
                printf "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | **%.2fx** | **%.2fx** | %.2fx |\n",
                    (t ? "1 (pixflare on CPU 0; ClickHouse max_threads=1)" : "default (pixflare: its default; ClickHouse: max_threads " dt ")"),
                    ev / scan[m] / 1000, ev / ss[m] / 1000, ev / wall[m] / 1000, ev / q / 1000, ev / (ql + q) / 1000,
                    q / ss[m], q / wall[m], (ql + q) / wall[m]
              }
            }' "$DSDIR/pf" "$DSDIR/ch"
            echo
        fi
        echo "### Checks"
        echo
        cat "$DSDIR/checks"
        echo
    } >"$DSDIR/report.md"
}

# --- the datasets ------------------------------------------------------------------------
HEAVY_LAYOUTS=compact
[ "$CH_STRINGS" != 1 ] || HEAVY_LAYOUTS="compact strings"
run_dataset heavy "Heavy dataset: many keys (evgen's default cardinality)" "$EVENTS" \
    "${BENCH_AGG_OWNERS:-}" "${BENCH_AGG_IMAGES:-}" "$HEAVY_LAYOUTS" "$OUT/profile-aggregate.txt"
DATASETS=heavy
if [ "$LIGHT" = 1 ]; then
    run_dataset light "Light dataset: few keys" "$LIGHT_EVENTS" \
        "$LIGHT_OWNERS" "$LIGHT_IMAGES" compact "$OUT/profile-aggregate-light.txt"
    DATASETS="heavy light"
fi
if [ "$CH_ON" = 1 ]; then
    CH_RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$CH_PID/status" 2>/dev/null || echo 0)
    stop_pid "$CH_PID"
    CH_PID=""
fi
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
T_END=$(now_ms)
[ "$ok" = 1 ] || log "bench/aggregate: RESULTS DIFFER (see the checks in the report)"

# --- report --------------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
{
    echo "# Batch aggregation: pixflare aggregate vs ClickHouse"
    echo
    echo "- date: $DATE0; $(((T_END - T_START) / 1000)) s in all; load average before / after: $LOAD0 / $LOAD1 (other processes share the machine)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo); work dir on $fs (everything is in the page cache: warm runs)"
    echo "- pixflare: $REV; ClickHouse: $CH_VERSION (Debian's clickhouse-server), default max_threads ${CH_DEFAULT_THREADS:-?}"
    [ "$CH_ON" != 1 ] || echo "- clickhouse-server peak RSS (VmHWM, whole server, all loads and queries of both datasets): $((CH_RSS_KB / 1024)) MiB"
    echo
    echo "pixflare: \`PIXFLARE_DATA_DIR=DIR pixflare aggregate --date $DATE\` (default threads), and the same with \`--threads 1\` under \`taskset -c 0\`, alternating, each under \`/usr/bin/time -v\`. The first run (not compared) writes into empty tables; the timed ones replace the date's rows, as a scheduled run replaces what realtime counted. scan: reading the day's files, grouping and merging the reader threads' tables; sort: sorting the distinct keys and building the rows; db: the SQLite transaction; other: the rest of the wall time (start, database open, exit). End to end = the command's wall time."
    echo
    if [ "$CH_ON" = 1 ]; then
        echo "ClickHouse: its own server on 127.0.0.1 (config and data in the work dir). Load: \`INSERT INTO events SELECT ... FROM file('events.tsv', 'TabSeparated', ...)\` (the same events, as TSV, parsed by the server), then \`OPTIMIZE TABLE events FINAL\` (one part; not counted as loading); then each query, \`FORMAT Null\`, $CH_ROUNDS run(s) per setting, each round right after the pixflare run of the same setting. Durations, rows read, memory and CPU (user + system) from \`system.query_log\`. \"both\" is daily + status: pixflare computes both in its one scan. Targets: at least 1.0x ClickHouse, and at least 30 M events/s on one core."
        echo
    fi
    for ds in $DATASETS; do
        cat "$WORK/$ds/report.md"
    done
} >"$OUT/aggregate.md"
echo
cat "$OUT/aggregate.md"
log ""
log "bench: written to bench/out/aggregate.md (raw outputs in bench/out/raw/agg-*)"
[ "$ok" = 1 ] || exit 1
