#!/bin/sh
# bench/postgres.sh - the PostgreSQL backend against SQLite, same run, same
# machine: realtime flushes, CDN throughput with analytics on, the API's
# latency on the 1.09M-row dataset, and batch aggregation.
#
# Run alone: `sh bench/postgres.sh` (about 8.5 minutes at the defaults), or
# by bench/run.sh (`make bench`; BENCH_PG=0 skips it).
#
# PostgreSQL: a throwaway server of our own (scripts/pg.sh start, in a
# mktemp -d directory, 127.0.0.1 only, stopped and removed on exit), one
# fresh database per part (scripts/pg.sh createdb). pg.sh tunes its server
# for tests (fsync, synchronous_commit and full_page_writes off); unless
# BENCH_PG_DURABILITY=test, this script turns those three back to
# PostgreSQL's defaults (ALTER SYSTEM, reload) so that commits are durable,
# as on a real server. (wal_level stays minimal: it needs a restart, and it
# only changes bulk loads into tables created in the same transaction.)
# SQLite runs as pixflare always runs it: WAL, synchronous=NORMAL.
#
# Every part alternates the backends, the order rotating each round, and
# reports medians over the rounds and the ratio PostgreSQL / SQLite.
#
# 1. flush: build/flush_bench (bench/flush_bench.c, `make build/flush_bench`)
#    calls db_counts_add() as the realtime flusher does (rollup.c's
#    write_table: DAILY rows in hash order mixed with the owners' STATUS
#    rows, then OWNER_DAY rows, under a flush id) with 100, 1,000 and
#    10,000 distinct DAILY keys per flush, new keys (insert) and the same
#    keys again (update); rows per second per backend. With durable
#    PostgreSQL it also runs "postgres-async": the same server with
#    synchronous_commit=off for the bench's connection (libpq options in
#    the URL), which is what SQLite's synchronous=NORMAL amounts to (a
#    commit does not wait for the disk).
# 2. cdn: `pixflare serve` with analytics on (the defaults: embedded event
#    store, realtime flushes every ANALYTICS_REALTIME_FLUSH_MS=1000) on
#    each backend, each with its own data directory holding the same 56x56
#    noise PNG (9,532 bytes); a fresh server per run: start, one curl GET
#    checked byte for byte, BENCH_WARMUP s of wrk, then `wrk -t2 -c64
#    -dBENCH_SECONDS --latency`, SIGTERM; BENCH_PG_CDN_ROUNDS runs each.
#    The server's CPU time and the PostgreSQL server's (postmaster and its
#    children, exited ones included) are read from /proc around the
#    measured run. Target: the PostgreSQL runs at most 3% below SQLite.
#    Afterwards each database's SUM(requests) of analytics_status_daily
#    must equal the events the servers stored (their SIGTERM summary
#    lines). One image, so each flush writes a few rows: this measures
#    the request path, which must not touch the database (part 1 measures
#    the flushes).
# 3. api: bench/apigen.py gen writes the bench/api.sh dataset (about 1.09M
#    analytics_daily rows for owner "bench", 90 dates ending today) into a
#    SQLite install, `pixflare db copy --to POSTGRES_URL` copies it
#    (timed), then VACUUM ANALYZE (what autovacuum does within a minute of
#    the copy). Per round and backend: a fresh server (PIXFLARE_API_RATE_LIMIT=0
#    as in bench/api.sh), the first GET /v1/analytics/overview?days=90
#    (cold: pixflare's cache empty) timed with curl, the answers checked
#    against the generator's (first round), then wrk with a Lua reporter
#    (p50/p95/p99) for BENCH_SECONDS on: overview days=90 with 1 and 4
#    connections, overview days=30, the top image days=90; then a second
#    server with the rate limit on (PIXFLARE_API_RATE_LIMIT=1000000, never
#    reached: on PostgreSQL every call then takes its token in the
#    database, one more round trip) and overview days=90 again. Target:
#    overview p95 <= 20 ms on both backends.
# 4. aggregate: build/evgen writes BENCH_PG_AGG_EVENTS events (default 10M,
#    evgen's default cardinality: ~231k distinct daily keys, as
#    bench/aggregate.sh's heavy dataset) of BENCH_PG_AGG_DATE into one
#    event store; `pixflare aggregate --date D` runs on it against each
#    backend (PIXFLARE_DATABASE), first into empty tables (shown apart),
#    then BENCH_PG_ROUNDS timed runs each, each replacing the date's rows.
#    Before each PostgreSQL run (untimed) a VACUUM: the previous run's
#    231k deleted rows would otherwise still be in the table and its index,
#    which a day between two scheduled runs (autovacuum) would not leave.
#    Reported: wall time of the command, its db_ms (the database
#    transaction) and the PostgreSQL server's CPU. Checked: both backends'
#    rows for the date (analytics_daily, analytics_status_daily,
#    analytics_owner_daily, analytics_monthly) are identical, and the
#    totals are evgen's.
#
# Output: bench/out/postgres.md (also printed); raw outputs in
# bench/out/raw/pg-*. Exit 1 if a check failed (after the report).
#
# Environment:
#   BENCH_SECONDS        seconds per measured wrk run (default 10)
#   BENCH_WARMUP         seconds of warm-up wrk (default 2)
#   BENCH_CONNECTIONS    wrk -c for the CDN part (default 64)
#   BENCH_WRK_THREADS    wrk -t for the CDN part (default 2)
#   BENCH_PG_PARTS       which parts, in order (default "flush cdn api aggregate")
#   BENCH_PG_ROUNDS      rounds of the flush and aggregate parts (default 3)
#   BENCH_PG_CDN_ROUNDS  runs per backend of the cdn part (default 5)
#   BENCH_PG_API_ROUNDS  rounds of the api part (default 2)
#   BENCH_PG_DURABILITY  durable (default) or test (pg.sh's fsync=off server)
#   BENCH_PG_FLUSH_KEYS  DAILY keys per flush (default 100,1000,10000)
#   BENCH_PG_FLUSH_ROWS  rows per flush measurement, at least 5 flushes (default 30000)
#   BENCH_PG_API_ROWS    analytics_daily rows of owner "bench" (default 1100000)
#   BENCH_PG_AGG_EVENTS  events of the aggregated day (default 10000000)
#   BENCH_PG_AGG_DATE    its date (default 2026-11-20)
#   BENCH_PG_PROFILE=1   also log every statement's duration (PostgreSQL's
#                        log_min_duration_statement = 0) during one extra
#                        10,000-key flush series and one extra aggregate run,
#                        and summarize them by statement into
#                        bench/out/profile-postgres.txt
#   BENCH_PIXFLARE_BIN   another pixflare binary to measure (default: make,
#                        then build/pixflare)
#   BENCH_KEEP=1         keep the temp work dir (its path is printed; the
#                        PostgreSQL server is stopped and removed anyway)
# Only 127.0.0.1 is used.
set -eu

SECS=${BENCH_SECONDS:-10}
WARM=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WTHREADS=${BENCH_WRK_THREADS:-2}
PARTS=${BENCH_PG_PARTS:-flush cdn api aggregate}
ROUNDS=${BENCH_PG_ROUNDS:-3}
CDN_ROUNDS=${BENCH_PG_CDN_ROUNDS:-5}
API_ROUNDS=${BENCH_PG_API_ROUNDS:-2}
DURABILITY=${BENCH_PG_DURABILITY:-durable}
FLUSH_KEYS=${BENCH_PG_FLUSH_KEYS:-100,1000,10000}
FLUSH_ROWS=${BENCH_PG_FLUSH_ROWS:-30000}
API_ROWS=${BENCH_PG_API_ROWS:-1100000}
AGG_EVENTS=${BENCH_PG_AGG_EVENTS:-10000000}
AGG_DATE=${BENCH_PG_AGG_DATE:-2026-11-20}
PROFILE=${BENCH_PG_PROFILE:-0}
PY=${PYTHON:-/usr/bin/python3}
[ "$ROUNDS" -ge 1 ] || ROUNDS=1
[ "$API_ROUNDS" -ge 1 ] || API_ROUNDS=1
[ "$CDN_ROUNDS" -ge 1 ] || CDN_ROUNDS=1
case $DURABILITY in durable | test) ;; *) echo "BENCH_PG_DURABILITY: durable or test" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/bench/out
RAW=$OUT/raw
BIN=${BENCH_PIXFLARE_BIN:-$ROOT/build/pixflare}
GEN=$ROOT/bench/apigen.py

. "$ROOT/bench/lib.sh"
die() { log "bench/postgres: $*"; exit 1; }

# --- tools, build, work dir ---------------------------------------------------
need=""
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v psql >/dev/null 2>&1 || need="$need postgresql-client"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 ||
    [ -n "${PG_BINDIR:-}" ] || need="$need postgresql"
[ -x /usr/bin/time ] || need="$need time"
command -v "$PY" >/dev/null 2>&1 || need="$need python3"
# shellcheck disable=SC2086 # a list of package names
apt_need $need

log "== building pixflare, flush_bench and evgen"
if [ -z "${BENCH_PIXFLARE_BIN:-}" ]; then
    make -s all build/flush_bench build/evgen >&2
else
    make -s build/flush_bench build/evgen >&2
fi
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$ROOT" status --porcelain -- src Makefile 2>/dev/null)" ] || REV="$REV+local-changes"
[ -z "${BENCH_PIXFLARE_BIN:-}" ] || REV="$BENCH_PIXFLARE_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-pgbench.XXXXXX")
# pg.sh's directory: its own, since the postgres user must reach it when
# we are root (a mktemp -d directory is given to it by pg.sh).
PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-pgbench-pg.XXXXXX")
PF_PID=""
MON_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_pid "$MON_PID"
    stop_pid "$PF_PID"
    sh "$ROOT/scripts/pg.sh" stop "$PGDIR" || log "bench/postgres: could not stop PostgreSQL in $PGDIR"
    rm -rf "$PGDIR"
    drop_workdir "$WORK" bench/postgres
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A copy of the binaries: a rebuild in the tree during the run (other work)
# must not change what later steps run.
cp "$BIN" "$WORK/pixflare"
BIN=$WORK/pixflare
cp "$ROOT/build/flush_bench" "$WORK/flush_bench"
cp "$ROOT/build/evgen" "$WORK/evgen"
mkdir -p "$RAW"
rm -f "$RAW"/pg-* "$OUT/profile-postgres.txt"
# Only the settings each step names; the rest is pixflare's default.
unset PIXFLARE_DATABASE PIXFLARE_DATABASE_FILE PIXFLARE_DATA_DIR PIXFLARE_STORAGE_DIR PIXFLARE_GEOIP_DB \
    PIXFLARE_LISTEN PIXFLARE_SECRET PIXFLARE_THREADS PIXFLARE_API_RATE_LIMIT 2>/dev/null || true
unset ANALYTICS_ENGINE ANALYTICS_DATASET ANALYTICS_REALTIME_ENABLED ANALYTICS_BATCH_ENABLED \
    ANALYTICS_RETENTION_DAYS ANALYTICS_REALTIME_FLUSH_MS ANALYTICS_FSYNC_MS PGOPTIONS 2>/dev/null || true

now_ms() { echo $(($(date +%s%N) / 1000000)); }
kv() { # kv KEY FILE: the value of KEY=VALUE in FILE's first such pair
    sed -n "s/^.*[ 	]$1=\([^ ]*\).*$/\1/p; s/^$1=\([^ ]*\).*$/\1/p" "$2" | head -n 1
}
# med: the median of the numbers on stdin (one per line)
med() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
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
ticks_s() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }'; }
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

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
DATE0=$(date -u '+%Y-%m-%d %H:%M UTC')
T_START=$(now_ms)
# The 1-minute load average every 10 s (this script's own load is about 2,
# 3-4 during the cdn part).
(while :; do cut -d' ' -f1 /proc/loadavg; sleep 10; done) >"$WORK/loadavg" 2>/dev/null &
MON_PID=$!

# --- PostgreSQL ------------------------------------------------------------------
log "== starting PostgreSQL (scripts/pg.sh start, durability: $DURABILITY)"
sh "$ROOT/scripts/pg.sh" start "$PGDIR"
PG_ADMIN=$(cat "$PGDIR/url")
pgq() { # pgq URL SQL...: psql, unaligned, tuples only
    _u=$1
    shift
    for _s in "$@"; do set -- "$@" -c "$_s"; shift; done
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$_u" "$@"
}
if [ "$DURABILITY" = durable ]; then
    pgq "$PG_ADMIN" "ALTER SYSTEM SET fsync = on" "ALTER SYSTEM SET synchronous_commit = on" \
        "ALTER SYSTEM SET full_page_writes = on" "SELECT pg_reload_conf()" >/dev/null
    i=0
    while [ "$(pgq "$PG_ADMIN" "SHOW fsync")" != on ] && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
fi
PG_VERSION=$(pgq "$PG_ADMIN" "SHOW server_version")
PG_SETTINGS=$(pgq "$PG_ADMIN" "SELECT string_agg(name || '=' || setting || COALESCE(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'shared_buffers', 'max_connections')")
log "   PostgreSQL $PG_VERSION: $PG_SETTINGS"
pg_db() { sh "$ROOT/scripts/pg.sh" createdb "$PGDIR" "$1"; }
# CPU ticks of the PostgreSQL server so far: the postmaster's own and its
# reaped children's (cutime, cstime), plus the live children's. A child
# reaped while the children are read would be lost (or counted twice):
# then read again.
pg_ticks() {
    pm=$(head -n 1 "$PGDIR/data/postmaster.pid")
    _i=0
    while :; do
        _a=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pm/stat")
        _c=$(for c in $(ps -o pid= --ppid "$pm"); do
            awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$c/stat" 2>/dev/null || true
        done | awk '{ s += $1 } END { print s + 0 }')
        _b=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pm/stat")
        _i=$((_i + 1))
        [ "$_a" != "$_b" ] && [ "$_i" -lt 20 ] || break
        sleep 0.05
    done
    echo $((_b + _c))
}
# Statement durations in the server log (BENCH_PG_PROFILE=1).
pg_log_on() { pgq "$PG_ADMIN" "ALTER SYSTEM SET log_min_duration_statement = 0" "SELECT pg_reload_conf()" >/dev/null; sleep 0.5; }
pg_log_off() { pgq "$PG_ADMIN" "ALTER SYSTEM RESET log_min_duration_statement" "SELECT pg_reload_conf()" >/dev/null; sleep 0.5; }
pg_log_mark() { wc -l <"$PGDIR/data/server.log" | tr -d ' '; }
# pg_log_summary FROM_LINE: total ms, calls and mean by statement (parse,
# bind and execute of a prepared statement summed), most time first.
pg_log_summary() {
    tail -n +"$1" "$PGDIR/data/server.log" |
        sed -n 's/^.*duration: \([0-9.]*\) ms  \(statement\|parse [a-z0-9_]*\|bind [a-z0-9_]*\|execute [a-z0-9_]*\): \(.*\)$/\1\t\2\t\3/p' |
        awk -F'\t' '{ k = substr($3, 1, 150); t[k] += $1; if ($2 !~ /^(parse|bind)/) n[k]++ }
            END { for (k in t) printf "%10.1f ms %6d calls %8.3f ms/call  %s\n", t[k], n[k], n[k] ? t[k] / n[k] : 0, k }' |
        sort -rn | head -25
}

# =================================================================================
# 1. realtime flushes
# =================================================================================
part_flush() {
    log ""
    log "== 1. realtime flushes: flush_bench -k $FLUSH_KEYS -r $ROUNDS -n $FLUSH_ROWS"
    set -- sqlite="sqlite:$WORK/flush.db" postgres="$(pg_db flush)"
    if [ "$DURABILITY" = durable ]; then
        set -- "$@" postgres-async="$(pg_db flush_async)?options=-c%20synchronous_commit%3Doff"
    fi
    "$WORK/flush_bench" -k "$FLUSH_KEYS" -r "$ROUNDS" -n "$FLUSH_ROWS" "$@" >"$RAW/pg-flush.txt" ||
        { ok=0; log "   flush_bench failed or its check did not hold (see bench/out/raw/pg-flush.txt)"; }
    grep '^CHECK ' "$RAW/pg-flush.txt" | while read -r _ b r e f s; do
        echo "- flush_bench: ${b#backend=} counts ${r#requests=} requests for today after ${f#flushes=} flushes, ${e#expected=} added: $s" >>"$CHECKS"
    done
    grep -q '^CHECK .* ok$' "$RAW/pg-flush.txt" || ok=0
    if [ "$PROFILE" = 1 ]; then
        log "== profile: one 10,000-key flush series with statement durations logged"
        u=$(pg_db flush_profile)
        mark=$(pg_log_mark)
        pg_log_on
        "$WORK/flush_bench" -k 10000 -r 1 -n 50000 postgres="$u" >"$RAW/pg-flush-profile.txt"
        pg_log_off
        {
            echo "# PostgreSQL statement durations: one flush_bench series, 10,000 keys per flush"
            echo "(log_min_duration_statement = 0; the untimed first flush included)"
            echo
            pg_log_summary "$mark"
            echo
        } >>"$OUT/profile-postgres.txt"
    fi
}

# =================================================================================
# 2. CDN throughput, analytics on
# =================================================================================
part_cdn() {
    log ""
    log "== 2. CDN requests/s with analytics on, per backend"
    SRC=$WORK/cdn-src
    mkdir -p "$SRC/bench/imgs"
    bench_pngs "$SRC/bench/imgs"
    rm "$SRC/bench/imgs/large.png"
    CDN_URL_PG=$(pg_db cdn)
    for be in sqlite postgres; do
        mkdir -p "$WORK/cdn-$be"
        if [ "$be" = postgres ]; then
            PIXFLARE_DATABASE=$CDN_URL_PG PIXFLARE_DATA_DIR=$WORK/cdn-$be "$BIN" import "$SRC" >"$WORK/cdn-$be.tsv"
        else
            PIXFLARE_DATA_DIR=$WORK/cdn-$be "$BIN" import "$SRC" >"$WORK/cdn-$be.tsv"
        fi
    done
    : >"$WORK/cdn"
    DAY0=$(date -u +%Y-%m-%d)
    r=1
    while [ "$r" -le "$CDN_ROUNDS" ]; do
        if [ $((r % 2)) = 1 ]; then order="sqlite postgres"; else order="postgres sqlite"; fi
        for be in $order; do
            log "== cdn: $be, run $r/$CDN_ROUNDS (${WARM}s warm-up, ${SECS}s measured)"
            cdn_run "$be" "$r"
        done
        r=$((r + 1))
    done
    DAY1=$(date -u +%Y-%m-%d)
    # the realtime tables against the events the servers stored
    ev_sq=$(awk '$1 == "sqlite" { s += $11 } END { print s + 0 }' "$WORK/cdn")
    ev_pg=$(awk '$1 == "postgres" { s += $11 } END { print s + 0 }' "$WORK/cdn")
    db_sq=$("$PY" -c 'import sqlite3, sys; c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True); print(c.execute("SELECT COALESCE(SUM(requests), 0) FROM analytics_status_daily").fetchone()[0])' "$WORK/cdn-sqlite/pixflare.db")
    db_pg=$(pgq "$CDN_URL_PG" "SELECT COALESCE(SUM(requests), 0) FROM analytics_status_daily")
    check "cdn, SQLite: SUM(requests) of analytics_status_daily = events the servers stored ($DAY0..$DAY1)" "$db_sq" "$ev_sq"
    check "cdn, PostgreSQL: SUM(requests) of analytics_status_daily = events the servers stored" "$db_pg" "$ev_pg"
    fails=$(awk '{ s += $16 } END { print s + 0 }' "$WORK/cdn")
    check "cdn: realtime transactions that failed (retried)" "$fails" 0
}

# cdn_run BACKEND ROUND: appends "backend round rps p50 p99 errors srv_cpu_s
# pg_cpu_s measured_requests completed events_stored dropped fsyncs tx rows
# txfail" to $WORK/cdn
cdn_run() {
    be=$1 r=$2
    base=$RAW/pg-cdn-$be-$r
    port=$(free_port)
    set -- env PIXFLARE_DATA_DIR="$WORK/cdn-$be" PIXFLARE_LISTEN="127.0.0.1:$port" \
        ANALYTICS_ENGINE=embedded ANALYTICS_REALTIME_ENABLED=true ANALYTICS_REALTIME_FLUSH_MS=1000 \
        ANALYTICS_FSYNC_MS=1000
    [ "$be" = sqlite ] || set -- "$@" PIXFLARE_DATABASE="$CDN_URL_PG"
    "$@" "$BIN" serve 2>"$base.log" &
    PF_PID=$!
    url=http://127.0.0.1:$port/bench/imgs/small.png
    wait_http "http://127.0.0.1:$port/healthz" "$PF_PID" "$base.log" || die "pixflare ($be) did not start"
    got=$(curl -s -o "$WORK/got.png" -w '%{http_code}' "$url")
    [ "$got" = 200 ] && cmp -s "$WORK/got.png" "$SRC/bench/imgs/small.png" ||
        die "GET $url ($be) answered $got or other bytes"
    wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$url" >"$base-warm.txt"
    c0=$(cpu_ticks "$PF_PID")
    p0=$(pg_ticks)
    wrk -t"$WTHREADS" -c"$CONNS" -d"${SECS}s" --latency "$url" >"$base.txt"
    c1=$(cpu_ticks "$PF_PID")
    p1=$(pg_ticks)
    stop_pf
    set -- $(parse_wrk "$base.txt")
    rps=$1 p50=$2 p99=$3 errs=$4
    wn=$(awk '/ requests in / { print $1 }' "$base-warm.txt")
    mn=$(awk '/ requests in / { print $1 }' "$base.txt")
    summary=$(sed -n 's/^pixflare: analytics: \([0-9]*\) events stored (\([0-9]*\) could not be), \([0-9]*\) fsyncs; \([0-9]*\) realtime transactions wrote \([0-9]*\) rows (\([0-9]*\) failed, retried)$/\1 \2 \3 \4 \5 \6/p' "$base.log")
    [ -n "$summary" ] || { cat "$base.log" >&2; die "no analytics summary line in the $be server's stderr"; }
    srv=$(ticks_s "$c0" "$c1")
    pgc=$(ticks_s "$p0" "$p1")
    log "   $be run $r: $rps req/s, p50 $p50 ms, p99 $p99 ms, pixflare CPU ${srv}s, PostgreSQL CPU ${pgc}s; summary: $summary"
    [ "$errs" = 0 ] || log "   WARNING: $errs errors or non-2xx responses (see $base.txt)"
    echo "$be $r $rps $p50 $p99 $errs $srv $pgc $mn $((wn + mn + 1)) $summary" >>"$WORK/cdn"
}


# =================================================================================
# 3. the API on the 1.09M-row dataset
# =================================================================================
part_api() {
    log ""
    log "== 3. API latency on the bench/api.sh dataset, per backend"
    DATA_API=$WORK/api-data
    mkdir -p "$DATA_API"
    SECRET=pixflare-api-bench-secret-0001
    apienv() { env PIXFLARE_DATA_DIR="$DATA_API" PIXFLARE_SECRET="$SECRET" ANALYTICS_BATCH_ENABLED=false "$@"; }
    KEY=$(apienv "$BIN" keys create --owner bench)
    [ -n "$KEY" ] || die "pixflare keys create printed no key"
    TODAY=$(date -u +%F)
    log "== api: generating the dataset (bench/apigen.py gen, $API_ROWS rows, 90 dates ending $TODAY)"
    G=$RAW/pg-api-gen.txt
    "$PY" "$GEN" gen --db "$DATA_API/pixflare.db" --secret "$SECRET" --today "$TODAY" --days 90 \
        --rows "$API_ROWS" --images 4000 --seed 1 --tsv "$WORK/daily.tsv" --status-tsv /dev/null \
        --expect "$WORK/expect.json" >"$G"
    EXP=$WORK/expect.json
    rm -f "$WORK/daily.tsv" # (read back by the generator for the image answers)
    BENCH_ROWS=$(kv rows "$G")
    TOP=$(kv top_image "$G")
    API_URL_PG=$(pg_db api)
    log "== api: pixflare db copy --to (a fresh PostgreSQL database)"
    t0=$(now_ms)
    apienv "$BIN" db copy --to "$API_URL_PG" >"$RAW/pg-api-copy.txt" 2>&1 ||
        { cat "$RAW/pg-api-copy.txt" >&2; die "pixflare db copy failed"; }
    COPY_MS=$(($(now_ms) - t0))
    t0=$(now_ms)
    pgq "$API_URL_PG" "VACUUM ANALYZE"
    VACUUM_MS=$(($(now_ms) - t0))
    COPY_ROWS=$("$PY" -c 'import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(sum(c.execute("SELECT COUNT(*) FROM " + t).fetchone()[0] for t in sys.argv[2:]))' "$DATA_API/pixflare.db" \
        images api_keys analytics_daily analytics_status_daily analytics_owner_daily analytics_monthly analytics_batch_days)
    n_sq=$("$PY" -c 'import sqlite3, sys; c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True); print(c.execute("SELECT COUNT(*), SUM(requests), SUM(bandwidth_bytes) FROM analytics_daily").fetchone())' "$DATA_API/pixflare.db" | tr -d '(),')
    n_pg=$(pgq "$API_URL_PG" "SELECT COUNT(*), SUM(requests), SUM(bandwidth_bytes) FROM analytics_daily" | tr '|' ' ')
    check "api: analytics_daily rows, requests, bytes in PostgreSQL after the copy = SQLite's" "$n_pg" "$n_sq"
    PG_BYTES=$(pgq "$API_URL_PG" "SELECT pg_database_size(current_database())")
    SQ_BYTES=$(wc -c <"$DATA_API/pixflare.db" | tr -d ' ')
    log "   $BENCH_ROWS rows for bench; copy ${COPY_MS} ms, VACUUM ANALYZE ${VACUUM_MS} ms"

    cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d rps=%.1f p50_us=%.0f p95_us=%.0f p99_us=%.0f max_us=%.0f socket_errors=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / summary.duration * 1e6,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOF
    OV90="/v1/analytics/overview?days=90"
    OV30="/v1/analytics/overview?days=30"
    IMGTOP="/v1/analytics/images/$TOP?days=90"
    : >"$WORK/api-results"
    : >"$WORK/api-cold"
    r=1
    while [ "$r" -le "$API_ROUNDS" ]; do
        if [ $((r % 2)) = 1 ]; then order="sqlite postgres"; else order="postgres sqlite"; fi
        for be in $order; do
            api_server "$be" 0 "$r"
            if [ "$r" = 1 ]; then
                for c in "$OV90 overview 90" "$OV30 overview 30" "$IMGTOP image 90 --image $TOP"; do
                    set -- $c
                    p=$1
                    curl -s -H "Authorization: Bearer $KEY" "$PF$p" >"$WORK/ans.json"
                    cp "$WORK/ans.json" "$RAW/pg-api-answer-$be-$2-$3.json"
                    shift
                    res=$("$PY" "$GEN" check --kind "$1" --days "$2" ${3:+"$3" "$4"} --expect "$EXP" <"$WORK/ans.json" 2>&1) &&
                        same=identical || same=different
                    [ "$same" = identical ] || log "$res"
                    check "api, $be: GET $p against the generator's answer" "$same" identical
                done
                wrk -t1 -c1 -d"${WARM}s" -H "Authorization: Bearer $KEY" "$PF$OV90" >/dev/null
            fi
            api_wrk "$be" "$r" ov90 1 "$OV90"
            api_wrk "$be" "$r" ov90 4 "$OV90"
            api_wrk "$be" "$r" ov30 1 "$OV30"
            api_wrk "$be" "$r" imgtop 1 "$IMGTOP"
            stop_pf
            api_server "$be" 1000000 "$r"
            api_wrk "$be" "$r" ov90-rl 1 "$OV90"
            api_wrk "$be" "$r" ov90-rl 4 "$OV90"
            stop_pf
            if [ "$be" = postgres ] && [ "$DURABILITY" = durable ]; then
                # the same with commits that do not wait for the disk
                api_server "$be" 1000000 "$r" async
                api_wrk "$be" "$r" ov90-rl-async 1 "$OV90"
                api_wrk "$be" "$r" ov90-rl-async 4 "$OV90"
                stop_pf
            fi
        done
        r=$((r + 1))
    done
}

# api_server BACKEND RATE_LIMIT ROUND [async]: a fresh server; times the
# first overview days=90 (cold), appended to $WORK/api-cold. async: its
# PostgreSQL sessions with synchronous_commit=off (PGOPTIONS).
api_server() {
    _be=$1 _rl=$2 _r=$3 _async=${4:-}
    port=$(free_port)
    PF=http://127.0.0.1:$port
    set -- env PIXFLARE_DATA_DIR="$DATA_API" PIXFLARE_SECRET="$SECRET" ANALYTICS_BATCH_ENABLED=false \
        PIXFLARE_LISTEN="127.0.0.1:$port" PIXFLARE_API_RATE_LIMIT="$_rl"
    [ "$_be" = sqlite ] || set -- "$@" PIXFLARE_DATABASE="$API_URL_PG"
    [ -z "$_async" ] || set -- "$@" PGOPTIONS="-c synchronous_commit=off"
    # (a simple command, not a function: $! must be the server itself)
    "$@" "$BIN" serve 2>>"$RAW/pg-api-$_be.log" &
    PF_PID=$!
    wait_http "$PF/healthz" "$PF_PID" "$RAW/pg-api-$_be.log" || die "pixflare ($_be) did not start"
    set -- $(curl -s -o "$WORK/cold.json" -w '%{time_total} %{http_code}' -H "Authorization: Bearer $KEY" "$PF$OV90")
    [ "$2" = 200 ] || { cat "$WORK/cold.json" >&2; die "GET $OV90 ($_be) answered $2"; }
    echo "$_be $_r $_rl $1 ${_async:-sync}" >>"$WORK/api-cold"
    log "== api: $_be${_async:+ ($_async)}, round $_r, rate limit $_rl: first overview days=90 in $(awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }') ms"
}

# api_wrk BACKEND ROUND CASE CONNS PATH: appends "backend round case conns
# rps p50_ms p95_ms p99_ms max_ms requests errors" to $WORK/api-results
api_wrk() {
    if [ "$4" = 1 ]; then th=1; else th=2; fi
    f=$RAW/pg-api-wrk-$1-$3-c$4-$2.txt
    wrk -t"$th" -c"$4" -d"${SECS}s" --latency -s "$WORK/report.lua" \
        -H "Authorization: Bearer $KEY" "$PF$5" >"$f"
    grep '^RESULT ' "$f" >"$f.line" || die "no RESULT line in $f"
    errs=$(($(kv socket_errors "$f.line") + $(kv non2xx "$f.line")))
    line="$1 $2 $3 $4 $(kv rps "$f.line") $(awk -v a="$(kv p50_us "$f.line")" -v b="$(kv p95_us "$f.line")" -v c="$(kv p99_us "$f.line")" -v d="$(kv max_us "$f.line")" 'BEGIN { printf "%.3f %.3f %.3f %.3f", a / 1000, b / 1000, c / 1000, d / 1000 }') $(kv requests "$f.line") $errs"
    echo "$line" >>"$WORK/api-results"
    set -- $line
    log "   $1 $3, $4 connection(s): $5 req/s, p50 $6 ms, p95 $7 ms, p99 $8 ms"
    [ "$errs" = 0 ] || { log "   WARNING: $errs errors or non-2xx responses (see $f)"; ok=0; }
}

# =================================================================================
# 4. batch aggregation
# =================================================================================
part_aggregate() {
    log ""
    log "== 4. batch aggregation: evgen -n $AGG_EVENTS -D $AGG_DATE, then pixflare aggregate per backend"
    DATA_AGG=$WORK/agg-data
    mkdir -p "$DATA_AGG"
    "$WORK/evgen" -d "$DATA_AGG" -D "$AGG_DATE" -n "$AGG_EVENTS" -t 2 -s 1 >"$RAW/pg-agg-evgen.txt"
    EG=$RAW/pg-agg-evgen.txt
    cat "$EG" >&2
    AGG_URL_PG=$(pg_db agg)
    : >"$WORK/agg"
    agg_run sqlite first 0
    agg_run postgres first 0
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        if [ $((r % 2)) = 1 ]; then order="sqlite postgres"; else order="postgres sqlite"; fi
        for be in $order; do
            agg_run "$be" timed "$r"
        done
        r=$((r + 1))
    done
    # the rows, compared
    for t in "analytics_daily WHERE date = '$AGG_DATE' ORDER BY owner, image_id, variant, country|owner, image_id, variant, country, requests, bandwidth_bytes" \
        "analytics_status_daily WHERE date = '$AGG_DATE' ORDER BY owner, status|owner, status, requests" \
        "analytics_owner_daily WHERE date = '$AGG_DATE' ORDER BY owner|owner, requests, bandwidth_bytes" \
        "analytics_monthly ORDER BY owner, year_month|owner, year_month, requests, bandwidth_bytes"; do
        rest=${t%%|*}
        cols=${t#*|}
        name=${rest%% *}
        "$PY" -c 'import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for row in c.execute(sys.argv[2]):
    print("|".join(str(v) for v in row))' "$DATA_AGG/pixflare.db" "SELECT $cols FROM $rest" >"$WORK/agg-$name.sq"
        pgq "$AGG_URL_PG" "SELECT $cols FROM $rest" >"$WORK/agg-$name.pg"
        n=$(wc -l <"$WORK/agg-$name.sq" | tr -d ' ')
        cmp -s "$WORK/agg-$name.sq" "$WORK/agg-$name.pg" && same=identical || same=different
        check "aggregate: $name rows for $AGG_DATE ($n on SQLite), PostgreSQL's against SQLite's" "$same" identical
    done
    check "aggregate: analytics_daily rows = evgen's distinct daily keys" \
        "$(wc -l <"$WORK/agg-analytics_daily.pg" | tr -d ' ')" "$(kv daily_keys "$EG")"
    check "aggregate: analytics_status_daily rows = evgen's status keys" \
        "$(wc -l <"$WORK/agg-analytics_status_daily.pg" | tr -d ' ')" "$(kv status_keys "$EG")"
    check "aggregate: requests in analytics_daily = evgen's" \
        "$(awk -F'|' '{ s += $5 } END { printf "%d", s }' "$WORK/agg-analytics_daily.pg")" "$(kv daily_requests "$EG")"
    if [ "$PROFILE" = 1 ]; then
        log "== profile: one aggregate run on PostgreSQL with statement durations logged"
        pgq "$AGG_URL_PG" "VACUUM"
        mark=$(pg_log_mark)
        pg_log_on
        PIXFLARE_DATA_DIR=$DATA_AGG ANALYTICS_RETENTION_DAYS=36500 PIXFLARE_DATABASE=$AGG_URL_PG \
            "$BIN" aggregate --date "$AGG_DATE" >"$RAW/pg-agg-profile.txt" 2>&1
        pg_log_off
        {
            echo "# PostgreSQL statement durations: one pixflare aggregate --date $AGG_DATE (replacing the date's rows)"
            echo
            cat "$RAW/pg-agg-profile.txt"
            echo
            pg_log_summary "$mark"
            echo
        } >>"$OUT/profile-postgres.txt"
    fi
}

# agg_run BACKEND first|timed ROUND: appends "backend mode round wall_ms
# scan_ms sort_ms db_ms user_s sys_s pg_cpu_s rss_kb daily_rows status_rows
# requests" to $WORK/agg
agg_run() {
    be=$1 mode=$2 r=$3
    base=$RAW/pg-agg-$be-$mode-$r
    set -- env PIXFLARE_DATA_DIR="$DATA_AGG" ANALYTICS_RETENTION_DAYS=36500
    if [ "$be" = postgres ]; then
        set -- "$@" PIXFLARE_DATABASE="$AGG_URL_PG"
        [ "$mode" = first ] || pgq "$AGG_URL_PG" "VACUUM"
    fi
    p0=$(pg_ticks)
    t0=$(now_ms)
    /usr/bin/time -v -o "$base.time" "$@" "$BIN" aggregate --date "$AGG_DATE" >"$base.out" 2>"$base.err" ||
        { cat "$base.err" >&2; die "pixflare aggregate ($be) failed"; }
    t1=$(now_ms)
    p1=$(pg_ticks)
    line=$(grep "^$AGG_DATE " "$base.out" | head -n 1)
    [ -n "$line" ] || die "no '$AGG_DATE ...' line in pixflare aggregate's output ($be)"
    echo "$line" >"$base.line"
    usr=$(awk -F': ' '/User time \(seconds\)/ { print $2 }' "$base.time")
    sys=$(awk -F': ' '/System time \(seconds\)/ { print $2 }' "$base.time")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$base.time")
    pgc=$(ticks_s "$p0" "$p1")
    echo "$be $mode $r $((t1 - t0)) $(kv scan_ms "$base.line") $(kv sort_ms "$base.line") $(kv db_ms "$base.line") $usr $sys $pgc $rss $(kv daily_rows "$base.line") $(kv status_rows "$base.line") $(kv requests "$base.line")" >>"$WORK/agg"
    log "   $be, $mode run $r: $((t1 - t0)) ms wall, $line, PostgreSQL CPU ${pgc}s"
}

for part in $PARTS; do
    case $part in
    flush) part_flush ;;
    cdn) part_cdn ;;
    api) part_api ;;
    aggregate) part_aggregate ;;
    *) die "unknown part '$part' in BENCH_PG_PARTS (flush cdn api aggregate)" ;;
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
# apimed BACKEND CASE CONNS COLUMN: the median of a column of $WORK/api-results
apimed() { awk -v b="$1" -v c="$2" -v n="$3" -v k="$4" '$1 == b && $3 == c && $4 == n { print $k }' "$WORK/api-results" | med; }
# aggmed BACKEND COLUMN: the median of a column of the timed runs of $WORK/agg
aggmed() { awk -v b="$1" -v k="$2" '$1 == b && $2 == "timed" { print $k }' "$WORK/agg" | med; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
{
    echo "# PostgreSQL against SQLite"
    echo
    echo "- date: $DATE0; $(((T_END - T_START) / 1000)) s in all; load average before / after: $LOAD0 / $LOAD1; 1-minute load average every 10 s: min $(sort -g "$WORK/loadavg" | head -n 1), median $(med <"$WORK/loadavg"), max $(sort -g "$WORK/loadavg" | tail -n 1) (this script's own: about 2, 3-4 during the cdn part: wrk's and the server's 2 threads each)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo); work dir and PostgreSQL's data on $fs"
    echo "- pixflare: $REV; PostgreSQL $PG_VERSION on 127.0.0.1 (scripts/pg.sh; durability: $DURABILITY): $PG_SETTINGS; SQLite: WAL, synchronous=NORMAL"
    echo "- every part alternates the backends (the order rotating each round) and compares medians over the rounds; PostgreSQL runs on the same 2 CPUs, so its server's CPU is part of every PostgreSQL number"
    echo
    if [ -s "$RAW/pg-flush.txt" ]; then
        echo "## 1. Realtime flushes: db_counts_add() rows per second"
        echo
        echo "\`build/flush_bench -k $FLUSH_KEYS -r $ROUNDS -n $FLUSH_ROWS sqlite=... postgres=...\`$([ "$DURABILITY" = durable ] && echo " postgres-async=...(synchronous_commit=off)"): rows per flush = DAILY keys + the owners' STATUS (3 each) and OWNER_DAY rows (up to 100 owners); insert = new keys every flush, update = the same keys again. ms per flush is the whole call (one transaction)."
        grep -v -e '^RESULT ' -e '^CHECK ' "$RAW/pg-flush.txt"
        echo
    fi
    if [ -s "$WORK/cdn" ] 2>/dev/null; then
        echo "## 2. CDN requests per second with analytics on"
        echo
        echo "\`wrk -t$WTHREADS -c$CONNS -d${SECS}s --latency\` on the 56x56 PNG (9,532 bytes) after ${WARM}s of warm-up, a fresh \`pixflare serve\` per run (analytics defaults: embedded event store, realtime flush every 1000 ms), $CDN_ROUNDS runs per backend, alternating. CPU: seconds during the measured run."
        echo
        echo "| run | backend | req/s | p50 / p99 (ms) | pixflare CPU (s) | PostgreSQL CPU (s) | pixflare CPU per request (us) | realtime transactions / rows (whole run) | errors |"
        echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk '{ printf "| %s | %s | %.0f | %.2f / %.2f | %.2f | %.2f | %.2f | %s / %s | %s |\n", $2, $1, $3, $4, $5, $7, $8, ($9 > 0 ? $7 / $9 * 1e6 : 0), $14, $15, $6 }' "$WORK/cdn"
        echo
        sq=$(awk '$1 == "sqlite" { print $3 }' "$WORK/cdn" | med)
        pg=$(awk '$1 == "postgres" { print $3 }' "$WORK/cdn" | med)
        # ratios of the pairs run next to each other (same round)
        pr=$(awk '{ v[$2, $1] = $3 } END { for (k in v) { split(k, x, SUBSEP); if (x[2] == "postgres" && v[x[1], "sqlite"] > 0) print v[k] / v[x[1], "sqlite"] } }' "$WORK/cdn" | med)
        spread=$(awk '$1 == "sqlite" { if (!n++ || $3 > hi) hi = $3; if (n == 1 || $3 < lo) lo = $3 } END { printf "%.1f", (hi > 0 ? (hi - lo) / hi * 100 : 0) }' "$WORK/cdn")
        cpu_sq=$(awk '$1 == "sqlite" && $9 > 0 { print $7 / $9 * 1e6 }' "$WORK/cdn" | med)
        cpu_pg=$(awk '$1 == "postgres" && $9 > 0 { print $7 / $9 * 1e6 }' "$WORK/cdn" | med)
        cpu_pr=$(awk '$9 > 0 { v[$2, $1] = $7 / $9 } END { for (k in v) { split(k, x, SUBSEP); if (x[2] == "postgres" && v[x[1], "sqlite"] > 0) print v[k] / v[x[1], "sqlite"] } }' "$WORK/cdn" | med)
        pgcpu=$(awk '$1 == "postgres" { print $8 }' "$WORK/cdn" | med)
        echo "| | SQLite | PostgreSQL | PostgreSQL / SQLite |"
        echo "| --- | ---: | ---: | ---: |"
        echo "| median req/s | $(printf %.0f "$sq") | $(printf %.0f "$pg") | **$(ratio "$pg" "$sq")** |"
        echo "| median of the rounds' ratios | | | **$(printf %.3f "$pr")** |"
        echo "| median pixflare CPU per request (us) | $(printf %.2f "$cpu_sq") | $(printf %.2f "$cpu_pg") | $(ratio "$cpu_pg" "$cpu_sq") |"
        echo "| pixflare CPU per request, median of the rounds' ratios | | | $(printf %.3f "$cpu_pr") |"
        echo "| median PostgreSQL server CPU per ${SECS}s run (s) | | $(printf %.2f "$pgcpu") | |"
        echo
        echo "Noise floor: SQLite's own runs spread by ${spread}% (best - worst) / best. Target: PostgreSQL at most 3% below SQLite: $(awk -v r="$(ratio "$pg" "$sq")" -v p="$pr" 'BEGIN { if (r >= 0.97 && p >= 0.97) print "**met** (medians " r ", pairs " p ")"; else print "**not met** on this run (medians " r ", pairs " p "): compare with the noise floor" }')."
        echo
    fi
    if [ -s "$WORK/api-results" ] 2>/dev/null; then
        echo "## 3. API latency on the 1.09M-row dataset"
        echo
        echo "\`bench/apigen.py gen\` (bench/api.sh's dataset: $BENCH_ROWS analytics_daily rows for owner bench, 90 dates; SQLite file $((SQ_BYTES / 1048576)) MiB), then \`pixflare db copy --to\` a fresh PostgreSQL database: $COPY_ROWS rows in **$COPY_MS ms** ($(awk -v n="$COPY_ROWS" -v t="$COPY_MS" 'BEGIN { printf "%.0f", (t > 0 ? n / t * 1000 : 0) }') rows/s), then VACUUM ANALYZE ($VACUUM_MS ms); PostgreSQL database $((PG_BYTES / 1048576)) MiB. wrk with a Lua reporter, ${SECS}s per case, $API_ROUNDS round(s) per backend alternating, a fresh server per round (cache cold at start; the first request of each start is the cold one). Medians over the rounds."
        echo
        echo "| request | connections | rate limit | SQLite req/s | SQLite p50 / p95 / p99 (ms) | PostgreSQL req/s | PostgreSQL p50 / p95 / p99 (ms) | p95 PostgreSQL / SQLite |"
        echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
        for c in "ov90 1" "ov90 4" "ov30 1" "imgtop 1" "ov90-rl 1" "ov90-rl 4" "ov90-rl-async 1" "ov90-rl-async 4"; do
            [ -n "$(apimed postgres $c 5 | grep -v '^0$')" ] || continue
            set -- $c
            case $1 in
            ov90) l="overview days=90" rl="off" ;;
            ov30) l="overview days=30" rl="off" ;;
            imgtop) l="image days=90 (top image, $(kv top_rows "$G") rows)" rl="off" ;;
            ov90-rl) l="overview days=90" rl="on (1,000,000 per 61 s)" ;;
            ov90-rl-async) l="overview days=90, PostgreSQL sessions with synchronous_commit=off (PGOPTIONS)" rl="on (1,000,000 per 61 s)" ;;
            esac
            sc=$1
            [ "$1" != ov90-rl-async ] || sc=ov90-rl # against SQLite's runs with the limit on
            printf '| %s | %s | %s | %.0f | %.2f / %.2f / %.2f | %.0f | %.2f / %.2f / %.2f | %s |\n' "$l" "$2" "$rl" \
                "$(apimed sqlite "$sc" "$2" 5)" "$(apimed sqlite "$sc" "$2" 6)" "$(apimed sqlite "$sc" "$2" 7)" "$(apimed sqlite "$sc" "$2" 8)" \
                "$(apimed postgres "$1" "$2" 5)" "$(apimed postgres "$1" "$2" 6)" "$(apimed postgres "$1" "$2" 7)" "$(apimed postgres "$1" "$2" 8)" \
                "$(ratio "$(apimed postgres "$1" "$2" 7)" "$(apimed sqlite "$sc" "$2" 7)")"
        done
        echo
        echo "Cold (the first overview days=90 after a start, curl's time_total, ms; the async starts left out): SQLite $(awk '$1 == "sqlite" { printf "%s%.1f", n++ ? ", " : "", $4 * 1000 }' "$WORK/api-cold"); PostgreSQL $(awk '$1 == "postgres" && $5 == "sync" { printf "%s%.1f", n++ ? ", " : "", $4 * 1000 }' "$WORK/api-cold"); medians $(awk '$1 == "sqlite" { print $4 * 1000 }' "$WORK/api-cold" | med | xargs printf %.1f) and $(awk '$1 == "postgres" && $5 == "sync" { print $4 * 1000 }' "$WORK/api-cold" | med | xargs printf %.1f)."
        echo
        echo "Target, overview p95 <= 20 ms on both backends (the worst median p95 of the overview cases, by rate limit setting):"
        for be in sqlite postgres; do
            w=$(for c in "ov90 1" "ov90 4" "ov30 1"; do apimed "$be" $c 7; done | sort -g | tail -n 1)
            w2=$(for c in "ov90-rl 1" "ov90-rl 4"; do apimed "$be" $c 7; done | sort -g | tail -n 1)
            echo "- $be: rate limit off (as bench/api.sh): $(printf %.2f "$w") ms, $(awk -v w="$w" 'BEGIN { print w <= 20 ? "met" : "**missed**" }'); rate limit on: $(printf %.2f "$w2") ms, $(awk -v w="$w2" 'BEGIN { print w <= 20 ? "met" : "**missed**" }')"
        done
        echo
    fi
    if [ -s "$WORK/agg" ] 2>/dev/null; then
        echo "## 4. Batch aggregation: pixflare aggregate --date $AGG_DATE"
        echo
        echo "\`build/evgen -D $AGG_DATE -n $AGG_EVENTS -t 2 -s 1\`: $(kv events "$EG") events, $(kv daily_keys "$EG") distinct daily keys, $(kv status_keys "$EG") status keys; then \`pixflare aggregate --date $AGG_DATE\` (default threads) against each backend: the first run into empty tables, then $ROUNDS replacing runs each, alternating (PostgreSQL: VACUUM before each, untimed). wall: the whole command; db: its db_ms (the database transaction); PostgreSQL CPU: the server's, during the command."
        echo
        echo "| backend | run | wall (ms) | scan (ms) | sort (ms) | db (ms) | pixflare CPU user + sys (s) | PostgreSQL CPU (s) | peak RSS (MiB) |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk '{ printf "| %s | %s | %d | %d | %d | %d | %.2f | %.2f | %.0f |\n", $1, $2 == "first" ? "first (empty tables)" : $3, $4, $5, $6, $7, $8 + $9, $10, $11 / 1024 }' "$WORK/agg"
        echo
        a_sq_4=$(aggmed sqlite 4)
        a_pg_4=$(aggmed postgres 4)
        a_sq_7=$(aggmed sqlite 7)
        a_pg_7=$(aggmed postgres 7)
        echo "| median of the replacing runs | SQLite | PostgreSQL | PostgreSQL / SQLite |"
        echo "| --- | ---: | ---: | ---: |"
        echo "| wall (ms) | $a_sq_4 | $a_pg_4 | **$(ratio "$a_pg_4" "$a_sq_4")** |"
        echo "| db (ms) | $a_sq_7 | $a_pg_7 | **$(ratio "$a_pg_7" "$a_sq_7")** |"
        echo "| db rows/s (daily + status rows / db) | $(awk -v t="$a_sq_7" -v n="$(($(kv daily_keys "$EG") + $(kv status_keys "$EG")))" 'BEGIN { printf "%.0f", n / t * 1000 }') | $(awk -v t="$a_pg_7" -v n="$(($(kv daily_keys "$EG") + $(kv status_keys "$EG")))" 'BEGIN { printf "%.0f", n / t * 1000 }') | |"
        echo
    fi
    echo "## Checks"
    echo
    cat "$CHECKS"
} >"$OUT/postgres.md"
echo
cat "$OUT/postgres.md"
log ""
log "bench: written to bench/out/postgres.md (raw outputs in bench/out/raw/pg-*)"
[ "$ok" = 1 ] || { log "bench/postgres: CHECKS FAILED (see the report)"; exit 1; }
