#!/bin/sh
# bench/api.sh - the analytics REST API's latency over HTTP, on a generated
# dataset of over a million analytics_daily rows for one owner, against
# ClickHouse answering the same questions over the same rows, in one run.
#
# Run alone: `sh bench/api.sh` (about 5 minutes at the defaults), or by
# bench/run.sh (`make bench`; BENCH_API=0 skips it).
#
# 1. Data: a fresh data directory (PIXFLARE_SECRET fixed, so the owner
#    hashes are known), four small PNGs imported for owner "bench" (album
#    "live", the CDN traffic of step 5), API keys for "bench" and "carol"
#    (`pixflare keys create --owner NAME`), then bench/apigen.py gen writes
#    the dataset straight into the database (how the rows are drawn: its
#    header): BENCH_API_ROWS (about 1,100,000) analytics_daily rows for owner
#    "bench" over the 90 dates ending today (UTC), ~4,000 images with Zipf
#    popularity, ~3.6 (variant, country) rows per image and date served, and
#    five small owners (~47,000 rows between them); the images rows, and
#    owner_daily / monthly / status_daily rows consistent with them, a
#    fixed bot share of each image's rows (bot_ columns), analytics_hourly
#    for the last 14 dates (the owner's hours and each image's), per-image
#    and owner analytics_clients_daily and analytics_uniques_daily rows
#    (issue 20; ANALYTICS_HOURLY_RETENTION_DAYS=14 keeps the hours). It
#    prints (and writes as JSON) the answers the API must give, computed
#    from the generated values alone.
# 2. Cold: BENCH_API_COLD times, a fresh `pixflare serve` and at once one
#    GET /v1/analytics/overview?days=90 (the cache is empty: every row of
#    the range is read from SQLite), then the same request again (warm);
#    and as many fresh starts with the top image's GET
#    /v1/analytics/images/ID?days=90 first. curl's time_total. The database
#    file is in the page cache (written just before): cold means pixflare's
#    cache, not the disk.
# 3. Checks (exit 1 on a mismatch, after the report): the overview for
#    days=90, 30 and 7 (and limit=100), the top and a mid image (the one
#    ranked images/10 by requests) for days=90 and 30, compared field for
#    field with the generator's answers (totals, timeseries, top_images with
#    album and filename, countries, variants, status_codes); "carol"'s key
#    gets 404 for bench's image and carol's own totals.
# 4. Warm latency, BENCH_API_ROUNDS rounds: wrk (a Lua script prints
#    latency:percentile 50/95/99 and requests/s) for BENCH_SECONDS each,
#    after a BENCH_WARMUP warm-up in the first round, on the overview
#    days=90 and days=30 and the image endpoint days=90 for the top and the
#    mid image, with 1 connection (-t1 -c1) and 4 (-t2 -c4); the round with
#    the lower p95 is reported. Then, in the same round, the peer: 
#    bench/apigen.py peer times BENCH_API_CH_RUNS client round trips
#    (Python http.client, keep-alive) alternating, per run: pixflare's
#    request, ClickHouse's equivalent queries one HTTP request each
#    (overview: timeseries by date WITH TOTALS, top 10 images, countries,
#    variants, status codes; image: timeseries WITH TOTALS, variants,
#    countries) and the same as one UNION ALL request. ClickHouse's
#    server-side durations come from system.query_log.
#    Then issue 20's parameters, the same wrk runs: the overview
#    days=7&interval=hour&compare=previous, the same with exclude_bots=true,
#    days=90&exclude_bots=true, and the top image's
#    days=7&interval=hour&compare=previous (checked first against the
#    generator's day totals, bots, hours and uniques: apigen.py check20).
# 5. Under CDN traffic: a second wrk on CPU 1 (taskset) requests the live
#    images and variants of "bench" (BENCH_API_CDN_CONNECTIONS connections,
#    each waiting BENCH_API_CDN_DELAY_MS between requests) while the
#    overview days=90 is measured with wrk on CPU 0, 1 and 4 connections:
#    realtime flushes (every 500 ms) keep bumping today's version, so
#    today's segment is re-read. Afterwards the overview must equal the
#    database's rows summed by SQL (the cache is still right).
#
# ClickHouse (Debian's clickhouse-server, installed with apt-get if
# missing; its own server on 127.0.0.1, started by ch_start in
# bench/lib.sh) holds the same rows: analytics_daily in a MergeTree ORDER
# BY (owner, date, image_id, variant, country) (owner String, date Date,
# image_id FixedString(6), variant Enum8, country FixedString(2)), merged
# into one part, and analytics_status_daily likewise.
#
# Output: bench/out/api.md (also printed); raw outputs in
# bench/out/raw/api-*.
#
# Environment:
#   BENCH_SECONDS        seconds per measured wrk run (default 10)
#   BENCH_WARMUP         seconds of the warm-up before each wrk case, first
#                        round only (default 2)
#   BENCH_API_ROUNDS     rounds of wrk runs and ClickHouse timings (default 2)
#   BENCH_API_COLD       fresh starts per cold measurement (default 5)
#   BENCH_API_ROWS       analytics_daily rows of owner "bench", about
#                        (default 1100000; below 1000000 the report says so)
#   BENCH_API_IMAGES     images of owner "bench" (default 4000)
#   BENCH_API_SEED       generator seed (default 1)
#   BENCH_API_CH_RUNS    timed round trips per request and round (default 50)
#   BENCH_API_CLICKHOUSE=0  skip ClickHouse
#   BENCH_API_TRAFFIC=0  skip the run under CDN traffic
#   BENCH_API_CDN_CONNECTIONS  connections of the traffic wrk (default 4)
#   BENCH_API_CDN_DELAY_MS     pause between its requests per connection
#                        (default 4)
#   BENCH_API_PROFILE=1  also `perf record -g` the server for
#                        BENCH_PROFILE_SECONDS (default 5) under `wrk -c1` on
#                        the overview days=90 and the top image, into
#                        bench/out/profile-api-ov90.txt and profile-api-imgtop.txt
#   BENCH_PIXFLARE_BIN   another pixflare binary to measure (default: make,
#                        then build/pixflare)
#   BENCH_KEEP=1         keep the temp work dir (its path is printed)
# Only 127.0.0.1 is used.
set -eu

SECS=${BENCH_SECONDS:-10}
WARM=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_API_ROUNDS:-2}
COLD=${BENCH_API_COLD:-5}
ROWS=${BENCH_API_ROWS:-1100000}
IMAGES=${BENCH_API_IMAGES:-4000}
SEED=${BENCH_API_SEED:-1}
CH_RUNS=${BENCH_API_CH_RUNS:-50}
CH_ON=${BENCH_API_CLICKHOUSE:-1}
TRAFFIC=${BENCH_API_TRAFFIC:-1}
CDN_CONNS=${BENCH_API_CDN_CONNECTIONS:-4}
CDN_DELAY=${BENCH_API_CDN_DELAY_MS:-4}
PROFILE=${BENCH_API_PROFILE:-0}
PY=${PYTHON:-/usr/bin/python3}
[ "$ROUNDS" -ge 1 ] || ROUNDS=1
[ "$COLD" -ge 1 ] || COLD=1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/bench/out
RAW=$OUT/raw
BIN=${BENCH_PIXFLARE_BIN:-$ROOT/build/pixflare}
GEN=$ROOT/bench/apigen.py

. "$ROOT/bench/lib.sh"
die() { log "bench/api: $*"; exit 1; }

# --- tools, build, work dir ---------------------------------------------------
need=""
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v taskset >/dev/null 2>&1 || need="$need util-linux"
command -v "$PY" >/dev/null 2>&1 || need="$need python3"
if [ "$CH_ON" = 1 ]; then
    [ -x /usr/sbin/clickhouse-server ] || need="$need clickhouse-server"
    [ -x /usr/bin/clickhouse-client ] || need="$need clickhouse-client"
fi
if [ "$PROFILE" = 1 ]; then
    command -v perf >/dev/null 2>&1 || need="$need linux-perf"
fi
# shellcheck disable=SC2086 # a list of package names
apt_need $need

if [ -z "${BENCH_PIXFLARE_BIN:-}" ]; then
    log "== building pixflare"
    make -s all
fi
"$BIN" keys --help >/dev/null 2>&1 || die "$BIN has no working 'keys' command (no analytics API in this build)"

REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$ROOT" status --porcelain -- src Makefile 2>/dev/null)" ] || REV="$REV+local-changes"
[ -z "${BENCH_PIXFLARE_BIN:-}" ] || REV="$BENCH_PIXFLARE_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-apibench.XXXXXX")
PF_PID=""
CH_PID=""
CDN_PID=""
MON_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_pid "$MON_PID"
    stop_pid "$CDN_PID"
    stop_pid "$PF_PID"
    stop_pid "$CH_PID"
    drop_workdir "$WORK" bench/api
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A copy of the binary: a rebuild of build/pixflare during the run (other
# work in the same tree) must not change what the later starts run, and
# perf must find the symbols.
cp "$BIN" "$WORK/pixflare"
BIN=$WORK/pixflare
DATA=$WORK/data
SRC=$WORK/src
mkdir -p "$DATA" "$SRC/bench/live" "$RAW"
rm -f "$RAW"/api-* "$OUT"/profile-api-*.txt
# Only these settings; the rest is pixflare's default.
unset PIXFLARE_DATABASE PIXFLARE_STORAGE_DIR PIXFLARE_GEOIP_DB PIXFLARE_THREADS PIXFLARE_LISTEN 2>/dev/null || true
unset ANALYTICS_ENGINE ANALYTICS_DATASET ANALYTICS_REALTIME_ENABLED ANALYTICS_RETENTION_DAYS 2>/dev/null || true
export PIXFLARE_DATA_DIR="$DATA"
export PIXFLARE_SECRET=pixflare-api-bench-secret-0001
export PIXFLARE_API_RATE_LIMIT=0
export ANALYTICS_BATCH_ENABLED=false
# the generated hours (the last 14 dates) are kept: compare=previous on a
# 7-day hourly range then reads real rows for both periods (the default, 7,
# would purge the previous week's at start)
export ANALYTICS_HOURLY_RETENTION_DAYS=14

now_ms() { echo $(($(date +%s%N) / 1000000)); }
kv() { # kv KEY FILE: the value of KEY=VALUE in FILE's first such pair
    sed -n "s/^.*[ 	]$1=\([^ ]*\).*$/\1/p; s/^$1=\([^ ]*\).*$/\1/p" "$2" | head -n 1
}
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

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
DATE0=$(date -u '+%Y-%m-%d %H:%M UTC')
T_START=$(now_ms)
# The 1-minute load average every 5 s: this script's own load is about 2
# (server and wrk, or ClickHouse and its client); more means other work.
(while :; do cut -d' ' -f1 /proc/loadavg; sleep 5; done) >"$WORK/loadavg" 2>/dev/null &
MON_PID=$!

# --- 1. the data ----------------------------------------------------------------
log "== live images for the CDN traffic, imported for owner bench"
"$PY" - "$SRC/bench/live" <<'EOF'
import random, struct, sys, zlib

def png(path, w, h, seed):
    rnd = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rnd.randrange(256) for _ in range(w * 3)) for _ in range(h))
    def chunk(tag, body):
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xffffffff))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))

for i, (w, h) in enumerate([(64, 48), (96, 96), (160, 120), (300, 200)]):
    png("%s/p%d.png" % (sys.argv[1], i + 1), w, h, i + 1)
EOF
"$BIN" import "$SRC" >"$WORK/import.tsv"
[ "$(wc -l <"$WORK/import.tsv")" = 4 ] || die "import did not print 4 ids"
KEY=$("$BIN" keys create --owner bench)
KEY_CAROL=$("$BIN" keys create --owner carol)
[ -n "$KEY" ] && [ -n "$KEY_CAROL" ] || die "pixflare keys create printed no key"
"$BIN" keys list >"$RAW/api-keys-list.txt" 2>&1 || true

TODAY=$(date -u +%F)
log "== generating the dataset (bench/apigen.py gen, $ROWS rows for bench, 90 dates ending $TODAY)"
mkdir -p "$WORK/ch"
G=$RAW/api-gen.txt
t0=$(now_ms)
/usr/bin/python3 "$GEN" gen --db "$DATA/pixflare.db" --secret "$PIXFLARE_SECRET" --today "$TODAY" \
    --days 90 --rows "$ROWS" --images "$IMAGES" --seed "$SEED" \
    --tsv "$WORK/ch/daily.tsv" --status-tsv "$WORK/ch/status.tsv" --expect "$WORK/expect.json" --progress >"$G"
GEN_MS=$(($(now_ms) - t0))
cat "$G" >&2
EXP=$WORK/expect.json
cp "$EXP" "$RAW/api-expect.json"
BENCH_ROWS=$(kv rows "$G")
TOP=$(kv top_image "$G")
MID=$(kv mid_image "$G")
OWNER_HASH=$(kv owner_hash "$G")
DB_BYTES=$(wc -c <"$DATA/pixflare.db" | tr -d ' ')
# the database's own count, as a check of the generator's
DB_ROWS=$("$PY" -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute("SELECT COUNT(*) FROM analytics_daily WHERE owner = ?", (sys.argv[2],)).fetchone()[0])' "$DATA/pixflare.db" "$OWNER_HASH")
check "analytics_daily rows of bench in the database = the generator's" "$DB_ROWS" "$BENCH_ROWS"
[ "$BENCH_ROWS" -ge 1000000 ] && big=yes || big=no
if [ "$ROWS" -ge 1000000 ]; then
    check "at least 1,000,000 analytics_daily rows for bench" "$big" yes
else
    echo "- BENCH_API_ROWS=$ROWS: fewer than the 1,000,000 rows the requirement asks for" >>"$CHECKS"
fi

# --- ClickHouse: the same rows ------------------------------------------------------
if [ "$CH_ON" = 1 ]; then
    ch_start "$WORK/ch/server"
    chc -q "CREATE TABLE daily (owner String, date Date, image_id FixedString(6), variant Enum8('original' = 1, 'w128' = 2, 'w256' = 3, 'w512' = 4, 'w1024' = 5, 'w1536' = 6, 'w2048' = 7, 'thumb' = 8, 'og-image' = 9), country FixedString(2), requests UInt64, bandwidth_bytes UInt64) ENGINE = MergeTree() ORDER BY (owner, date, image_id, variant, country)"
    chc -q "CREATE TABLE status_daily (owner String, date Date, status UInt16, requests UInt64) ENGINE = MergeTree() ORDER BY (owner, date, status)"
    log "== ClickHouse: loading $(wc -l <"$WORK/ch/daily.tsv" | tr -d ' ') analytics_daily rows"
    t0=$(now_ms)
    chc --query_id=load-daily -q "INSERT INTO daily FORMAT TabSeparated" <"$WORK/ch/daily.tsv"
    chc -q "INSERT INTO status_daily FORMAT TabSeparated" <"$WORK/ch/status.tsv"
    CH_LOAD_MS=$(($(now_ms) - t0))
    i=0
    while [ "$(chc -q "SELECT count() FROM system.merges")" != 0 ] && [ "$i" -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    chc -q "OPTIMIZE TABLE daily FINAL"
    chc -q "OPTIMIZE TABLE status_daily FINAL"
    CH_PARTS=$(chc -q "SELECT count() FROM system.parts WHERE table = 'daily' AND active")
    CH_DISK=$(chc -q "SELECT sum(bytes_on_disk) FROM system.parts WHERE table = 'daily' AND active")
    check "ClickHouse daily rows of bench = the generator's" \
        "$(chc -q "SELECT count() FROM daily WHERE owner = '$OWNER_HASH'")" "$BENCH_ROWS"
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -f "$WORK/ch/daily.tsv"
fi

# --- the server -----------------------------------------------------------------------
PORT=$(free_port)
PF=http://127.0.0.1:$PORT
NSTART=0
pf_start() {
    NSTART=$((NSTART + 1))
    PIXFLARE_LISTEN=127.0.0.1:$PORT "$BIN" serve 2>>"$RAW/api-pixflare.log" &
    PF_PID=$!
    i=0
    while ! curl -s -o /dev/null "$PF/healthz"; do
        i=$((i + 1))
        if [ "$i" -gt 300 ] || ! kill -0 "$PF_PID" 2>/dev/null; then
            tail -n 20 "$RAW/api-pixflare.log" >&2
            die "pixflare did not start"
        fi
        sleep 0.05
    done
}
pf_stop() {
    stop_pid "$PF_PID"
    PF_PID=""
}
# api PATH FILE [KEY]: GET, body to FILE; prints "seconds status"
api() {
    curl -s -o "$2" -w '%{time_total} %{http_code}\n' -H "Authorization: Bearer ${3:-$KEY}" "$PF$1"
}
OV90=/v1/analytics/overview?days=90
OV30=/v1/analytics/overview?days=30
IMGTOP=/v1/analytics/images/$TOP?days=90
IMGMID=/v1/analytics/images/$MID?days=90

# --- 2. cold --------------------------------------------------------------------------------
: >"$WORK/cold"
for kind in overview image; do
    if [ "$kind" = overview ]; then path=$OV90; else path=$IMGTOP; fi
    n=1
    while [ "$n" -le "$COLD" ]; do
        pf_start
        set -- $(api "$path" "$WORK/cold.json")
        [ "$2" = 200 ] || { cat "$WORK/cold.json" >&2; die "GET $path answered $2"; }
        first=$1
        set -- $(api "$path" "$WORK/cold.json")
        pf_stop
        echo "$kind $n $first $1" >>"$WORK/cold"
        log "== cold $kind $n/$COLD: first request $(awk -v s="$first" 'BEGIN { printf "%.1f", s * 1000 }') ms, second $(awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }') ms"
        n=$((n + 1))
    done
done
cp "$WORK/cold" "$RAW/api-cold.txt"

# --- 3. checks ------------------------------------------------------------------------------
pf_start
log "== checking the API's answers against the generator's"
api_check() { # api_check WHAT PATH CHECK-ARGS...
    what=$1
    p=$2
    shift 2
    set -- $(api "$p" "$WORK/ans.json") "$@"
    code=$2
    shift 2
    cp "$WORK/ans.json" "$RAW/api-answer-$(echo "$p" | tr -c 'a-zA-Z0-9=\n' '_' | cut -c 1-60).json"
    if [ "$code" != 200 ]; then
        check "GET $p" "HTTP $code" "HTTP 200"
        return
    fi
    res=$(/usr/bin/python3 "$GEN" check "$@" <"$WORK/ans.json" 2>&1) && same=identical || same=different
    [ "$same" = identical ] || log "$res"
    check "GET $p: $what" "$same" identical
}
GW="totals, timeseries and lists against the generator's"
api_check "$GW" "$OV90" --kind overview --days 90 --expect "$EXP"
api_check "$GW" "$OV30" --kind overview --days 30 --expect "$EXP"
api_check "$GW" "/v1/analytics/overview?days=7" --kind overview --days 7 --expect "$EXP"
api_check "$GW" "/v1/analytics/overview?days=90&limit=100" --kind overview --days 90 --limit 100 --expect "$EXP"
api_check "$GW" "$IMGTOP" --kind image --days 90 --image "$TOP" --expect "$EXP"
api_check "$GW" "/v1/analytics/images/$TOP?days=30" --kind image --days 30 --image "$TOP" --expect "$EXP"
api_check "$GW" "$IMGMID" --kind image --days 90 --image "$MID" --expect "$EXP"
api_check "$GW" "/v1/analytics/images/$MID?days=30" --kind image --days 30 --image "$MID" --expect "$EXP"
# issue 20's parameters against the generator's day totals, bots and hours
check20() { # check20 PATH CHECK20-ARGS...
    p=$1
    shift
    set -- $(api "$p" "$WORK/ans.json") "$@"
    code=$2
    shift 2
    cp "$WORK/ans.json" "$RAW/api-answer-$(echo "$p" | tr -c 'a-zA-Z0-9=\n' '_' | cut -c 1-80).json"
    if [ "$code" != 200 ]; then
        check "GET $p" "HTTP $code" "HTTP 200"
        return
    fi
    res=$("$PY" "$GEN" check20 --expect "$EXP" "$@" <"$WORK/ans.json" 2>&1) && same=identical || same=different
    [ "$same" = identical ] || log "$res"
    check "GET $p: totals, series and previous against the generator's" "$same" identical
}
OV7HP=/v1/analytics/overview?days=7\&interval=hour\&compare=previous
OV7HPX=$OV7HP\&exclude_bots=true
OV90X=/v1/analytics/overview?days=90\&exclude_bots=true
IMGTOP7HP=/v1/analytics/images/$TOP?days=7\&interval=hour\&compare=previous
check20 "$OV7HP" --days 7 --hourly --compare
check20 "$OV7HPX" --days 7 --hourly --compare --exclude-bots
check20 "$OV90X" --days 90 --exclude-bots
check20 "/v1/analytics/overview?days=30&compare=previous&exclude_bots=true" --days 30 --compare --exclude-bots
set -- $(api "$IMGTOP" "$WORK/ans.json" "$KEY_CAROL")
check "GET $IMGTOP with carol's key" "HTTP $2" "HTTP 404"
set -- $(api "$OV90" "$WORK/ans.json" "$KEY_CAROL")
got=$("$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d.get("owner"), d["totals"]["requests"], d["totals"]["bandwidth_bytes"])' "$WORK/ans.json" 2>/dev/null || echo "HTTP $2")
want=$("$PY" -c 'import json, sys; d = json.load(open(sys.argv[1]))["owners"]["carol"]; print("carol", d["requests"], d["bandwidth_bytes"])' "$EXP")
check "carol's overview (owner, requests, bytes)" "$got" "$want"
set -- $(api "$OV90" "$WORK/ans.json" "not-a-key")
check "GET $OV90 with a wrong key" "HTTP $2" "HTTP 401"

# --- wrk ------------------------------------------------------------------------------------
cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d rps=%.1f p50_us=%.0f p95_us=%.0f p99_us=%.0f max_us=%.0f mean_us=%.0f socket_errors=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / summary.duration * 1e6,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean,
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOF
cat "$WORK/report.lua" >"$WORK/traffic.lua"
cat >>"$WORK/traffic.lua" <<'EOF'
local paths, n, d = {}, 0, 0
init = function(args)
  d = tonumber(args[1]) or 0
  for i = 2, #args do paths[#paths + 1] = args[i] end
end
delay = function() return d end
request = function()
  n = n % #paths + 1
  return wrk.format("GET", paths[n])
end
EOF
: >"$WORK/results"
# wrk_run LABEL ROUND CONNS PATH [PIN]: appends
# "label round conns rps p50_ms p95_ms p99_ms max_ms requests errors" to results
wrk_run() {
    if [ "$3" = 1 ]; then th=1; else th=2; fi
    f=$RAW/api-wrk-$1-c$3-$2.txt
    ${5:-} wrk -t"$th" -c"$3" -d"${SECS}s" --latency -s "$WORK/report.lua" \
        -H "Authorization: Bearer $KEY" "$PF$4" >"$f"
    line=$(grep '^RESULT ' "$f") || die "no RESULT line in $f"
    echo "$line" >"$f.line"
    set -- "$1" "$2" "$3" "$(kv rps "$f.line")" "$(kv p50_us "$f.line")" "$(kv p95_us "$f.line")" \
        "$(kv p99_us "$f.line")" "$(kv max_us "$f.line")" "$(kv requests "$f.line")" \
        "$(($(kv socket_errors "$f.line") + $(kv non2xx "$f.line")))"
    echo "$1 $2 $3 $4 $(awk -v a="$5" -v b="$6" -v c="$7" -v d="$8" 'BEGIN { printf "%.3f %.3f %.3f %.3f", a / 1000, b / 1000, c / 1000, d / 1000 }') $9 ${10}" >>"$WORK/results"
    log "   $4 req/s, p50 $(awk -v v="$5" 'BEGIN { printf "%.2f", v / 1000 }') ms, p95 $(awk -v v="$6" 'BEGIN { printf "%.2f", v / 1000 }') ms, p99 $(awk -v v="$7" 'BEGIN { printf "%.2f", v / 1000 }') ms"
    [ "${10}" = 0 ] || log "   WARNING: ${10} errors or non-2xx responses (see $f)"
}

# ClickHouse's queries for the peer runs
if [ "$CH_ON" = 1 ]; then
    "$PY" - "$EXP" "$TOP" "$MID" >"$WORK/queries.json" <<'EOF'
import datetime, json, sys
exp = json.load(open(sys.argv[1]))
top, mid = sys.argv[2], sys.argv[3]
h = exp["owners"]["bench"]["hash"]
today = datetime.date.fromisoformat(exp["today"])
def where(days, image=None):
    start = today - datetime.timedelta(days=days - 1)
    w = "owner = '%s' AND date >= toDate('%s') AND date <= toDate('%s')" % (h, start, today)
    return w + (" AND image_id = '%s'" % image if image else "")
def lists(w, image):
    q = {
        "timeseries": "SELECT date, sum(requests), sum(bandwidth_bytes) FROM daily WHERE %s GROUP BY date WITH TOTALS ORDER BY date" % w,
        "top_images": "SELECT image_id, sum(requests) AS r, sum(bandwidth_bytes) AS b FROM daily WHERE %s GROUP BY image_id ORDER BY r DESC, b DESC, image_id LIMIT 10" % w,
        "countries": "SELECT country, sum(requests) AS r, sum(bandwidth_bytes) AS b FROM daily WHERE %s GROUP BY country ORDER BY r DESC, b DESC, country" % w,
        "variants": "SELECT toString(variant) AS v, sum(requests) AS r, sum(bandwidth_bytes) AS b FROM daily WHERE %s GROUP BY variant ORDER BY r DESC, b DESC, v" % w,
        "status_codes": "SELECT status, sum(requests) AS r FROM status_daily WHERE %s GROUP BY status ORDER BY r DESC, status" % w,
    }
    u = {
        "timeseries": "SELECT 'date' AS k, toString(date) AS name, sum(requests) AS r, sum(bandwidth_bytes) AS b FROM daily WHERE %s GROUP BY date" % w,
        "top_images": "SELECT 'image' AS k, toString(image_id) AS name, sum(requests) AS r, sum(bandwidth_bytes) AS b FROM daily WHERE %s GROUP BY image_id ORDER BY r DESC, b DESC, name LIMIT 10" % w,
        "countries": "SELECT 'country' AS k, toString(country) AS name, sum(requests) AS r, sum(bandwidth_bytes) AS b FROM daily WHERE %s GROUP BY country" % w,
        "variants": "SELECT 'variant' AS k, toString(variant) AS name, sum(requests) AS r, sum(bandwidth_bytes) AS b FROM daily WHERE %s GROUP BY variant" % w,
        "status_codes": "SELECT 'status' AS k, toString(status) AS name, sum(requests) AS r, toUInt64(0) AS b FROM status_daily WHERE %s GROUP BY status" % w,
    }
    keys = ["timeseries", "variants", "countries"] if image else ["timeseries", "top_images", "countries", "variants", "status_codes"]
    return [q[k] + " FORMAT TabSeparated" for k in keys], \
        " UNION ALL ".join("SELECT * FROM (%s)" % u[k] for k in keys) + " FORMAT TabSeparated"
cases = []
for name, path, days, image in [("ov90", "/v1/analytics/overview?days=90", 90, None),
                                 ("ov30", "/v1/analytics/overview?days=30", 30, None),
                                 ("imgtop", "/v1/analytics/images/%s?days=90" % top, 90, top),
                                 ("imgmid", "/v1/analytics/images/%s?days=90" % mid, 90, mid)]:
    sep, union = lists(where(days, image), image)
    cases.append({"name": name, "pixflare": path, "days": days, "image": image, "separate": sep, "union": union})
print(json.dumps({"cases": cases}, indent=1))
EOF
    cp "$WORK/queries.json" "$RAW/api-ch-queries.json"
    # ClickHouse's answers must be the generator's too (totals, top 10, lists)
    "$PY" - "$EXP" "$WORK/queries.json" "http://127.0.0.1:$CH_HTTP/" >"$WORK/ch-check" <<'EOF' || true
import json, sys, urllib.request
exp = json.load(open(sys.argv[1]))
q = json.load(open(sys.argv[2]))
url = sys.argv[3]
def run(sql):
    with urllib.request.urlopen(url, sql.encode()) as r:
        return [l.split("\t") for l in r.read().decode().splitlines()]
bad = 0
for c in q["cases"]:
    if c["image"]:
        want = exp["image"][c["image"]][str(c["days"])]
    else:
        want = exp["overview"][str(c["days"])]
    rows = run(c["union"])
    got = {}
    for k, name, r, b in rows:
        got.setdefault(k, []).append((name, int(r), int(b)))
    tot = [sum(x[1] for x in got["date"]), sum(x[2] for x in got["date"])]
    ok = tot == [want["totals"]["requests"], want["totals"]["bandwidth_bytes"]]
    key = lambda x: (-x[1], -x[2], x[0])
    if not c["image"]:
        ok = ok and [x[0] for x in got["image"]] == [t["image_id"] for t in want["top_images"][:10]]
    ok = ok and sorted(got["country"], key=key) == [(x["country"], x["requests"], x["bandwidth_bytes"]) for x in want["countries"]]
    ok = ok and sorted(got["variant"], key=key) == [(x["variant"], x["requests"], x["bandwidth_bytes"]) for x in want["variants"]]
    sep = run(c["separate"][0])
    ok = ok and [int(sep[-1][1]), int(sep[-1][2])] == tot
    print("%s %s" % (c["name"], "identical" if ok else "different"))
    bad += not ok
sys.exit(1 if bad else 0)
EOF
    while read -r cname same; do
        check "ClickHouse's answers for $cname (totals, top 10, countries, variants) against the generator's" "$same" identical
    done <"$WORK/ch-check"
    [ -s "$WORK/ch-check" ] || check "ClickHouse's answers" "no answer" identical
fi

# --- 4. warm latency ------------------------------------------------------------------------
CASES="ov90 ov30 imgtop imgmid"
path_of() {
    case $1 in
    ov90) echo "$OV90" ;;
    ov30) echo "$OV30" ;;
    imgtop) echo "$IMGTOP" ;;
    imgmid) echo "$IMGMID" ;;
    esac
}
total=$((ROUNDS * 8))
n=0
r=1
: >"$WORK/peer"
while [ "$r" -le "$ROUNDS" ]; do
    for c in $CASES; do
        for conns in 1 4; do
            n=$((n + 1))
            if [ "$r" = 1 ]; then
                if [ "$conns" = 1 ]; then th=1; else th=2; fi
                wrk -t"$th" -c"$conns" -d"${WARM}s" -H "Authorization: Bearer $KEY" "$PF$(path_of "$c")" >/dev/null
            fi
            log "== wrk $c, $conns connection(s), round $r ($n/$total, ${SECS}s)"
            wrk_run "$c" "$r" "$conns" "$(path_of "$c")"
        done
    done
    if [ "$CH_ON" = 1 ]; then
        log "== round $r: pixflare and ClickHouse round trips, alternating ($CH_RUNS runs + 3 warm-up)"
        /usr/bin/python3 "$GEN" peer --pixflare "$PF" --key "$KEY" --clickhouse "http://127.0.0.1:$CH_HTTP/" \
            --queries "$WORK/queries.json" --runs "$CH_RUNS" --warmup 3 --tag "api$r" --out "$WORK/peer-$r" --progress
        sed "s/^/$r /" "$WORK/peer-$r" >>"$WORK/peer"
    fi
    r=$((r + 1))
done
# issue 20's parameters: a 7-day hourly series with the previous period
# (the overview and the top image), and exclude_bots on it and on 90 days
CASES20="ov7hp ov7hpx ov90x imgtop7hp"
path20() {
    case $1 in
    ov7hp) echo "$OV7HP" ;;
    ov7hpx) echo "$OV7HPX" ;;
    ov90x) echo "$OV90X" ;;
    imgtop7hp) echo "$IMGTOP7HP" ;;
    esac
}
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for c in $CASES20; do
        for conns in 1 4; do
            if [ "$r" = 1 ]; then
                if [ "$conns" = 1 ]; then th=1; else th=2; fi
                wrk -t"$th" -c"$conns" -d"${WARM}s" -H "Authorization: Bearer $KEY" "$PF$(path20 "$c")" >/dev/null
            fi
            log "== wrk $c, $conns connection(s), round $r (${SECS}s)"
            wrk_run "$c" "$r" "$conns" "$(path20 "$c")"
        done
    done
    r=$((r + 1))
done
cp "$WORK/results" "$RAW/api-wrk-results.txt"

# --- 5. under CDN traffic ------------------------------------------------------------------
TRAFFIC_DONE=0
if [ "$TRAFFIC" = 1 ]; then
    set --
    while IFS='	' read -r id name; do
        for v in "" /w128 /thumb /w256; do
            set -- "$@" "/$name$v"
        done
    done <"$WORK/import.tsv"
    CDN_PATHS="$*"
    # make the variants before the traffic (libvips, once)
    for p in "$@"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$PF$p")
        [ "$code" = 200 ] || die "GET $p answered $code"
    done
    PRE=$#
    for conns in 1 4; do
        tsecs=$((SECS + 4))
        log "== CDN traffic (wrk on CPU 1, $CDN_CONNS connections, ${CDN_DELAY} ms between requests) and wrk overview days=90, $conns connection(s) on CPU 0 (${SECS}s)"
        # shellcheck disable=SC2086 # the paths
        taskset -c 1 wrk -t1 -c"$CDN_CONNS" -d"${tsecs}s" -s "$WORK/traffic.lua" "$PF" -- "$CDN_DELAY" $CDN_PATHS \
            >"$RAW/api-cdn-traffic-c$conns.txt" &
        CDN_PID=$!
        sleep 2
        wrk_run ov90-traffic 1 "$conns" "$OV90" "taskset -c 0"
        wait "$CDN_PID" || true
        CDN_PID=""
        grep '^RESULT ' "$RAW/api-cdn-traffic-c$conns.txt" >"$WORK/cdn-c$conns.line" || die "no RESULT from the traffic wrk"
        log "   CDN traffic: $(kv rps "$WORK/cdn-c$conns.line") req/s, $(kv requests "$WORK/cdn-c$conns.line") requests, $(kv non2xx "$WORK/cdn-c$conns.line") non-2xx"
    done
    TRAFFIC_DONE=1
    sleep 2 # the last realtime flush (every 500 ms)
    cdn_req=$(cat "$WORK"/cdn-c*.line | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^requests=/) { sub(/^requests=/, "", $i); s += $i } } END { print s }')
    DW="after the CDN traffic, against SQL sums over the database now"
    api_check "$DW" "$OV90" --kind overview --days 90 --db "$DATA/pixflare.db" --secret "$PIXFLARE_SECRET" --today "$TODAY"
    live=$(head -n 1 "$WORK/import.tsv" | cut -f 1)
    api_check "$DW (a live image)" "/v1/analytics/images/$live?days=90" --kind image --days 90 \
        --image "$live" --db "$DATA/pixflare.db" --secret "$PIXFLARE_SECRET" --today "$TODAY"
    api_total=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["totals"]["requests"])' "$RAW/api-answer-_v1_analytics_overview_days=90.json")
    gen_total=$(kv requests "$G")
    TRAFFIC_DELTA=$((api_total - gen_total))
    TRAFFIC_SENT=$((cdn_req + PRE))
    echo "traffic: overview requests $api_total - generated $gen_total = $TRAFFIC_DELTA; CDN requests wrk completed + variant pre-requests = $TRAFFIC_SENT" >"$RAW/api-traffic-count.txt"
fi
cp "$WORK/results" "$RAW/api-wrk-results.txt"

# --- optional: where the server's time goes ---------------------------------------------------
if [ "$PROFILE" = 1 ]; then
    PS=${BENCH_PROFILE_SECONDS:-5}
    for c in ov90 imgtop; do
        log "== profile: perf record -g on the server, wrk -c1 on $c (${PS}s)"
        perf record -q -F 999 -g -p "$PF_PID" -o "$WORK/perf.data" -- sleep "$PS" 2>/dev/null &
        rec=$!
        wrk -t1 -c1 -d"${PS}s" --latency -s "$WORK/report.lua" -H "Authorization: Bearer $KEY" \
            "$PF$(path_of "$c")" >"$WORK/prof-wrk.txt"
        wait "$rec" || true
        {
            echo "# pixflare serve under \`wrk -t1 -c1 -d${PS}s\` on $(path_of "$c" | sed "s/$TOP/TOP/"), perf record -F 999 -g"
            echo
            grep '^RESULT ' "$WORK/prof-wrk.txt"
            echo
            echo "## self time by object file"
            perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -12
            echo
            echo "## self time, top symbols"
            perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -g none \
                --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
        } >"$OUT/profile-api-$c.txt"
        rm -f "$WORK/perf.data"
        log "   written to bench/out/profile-api-$c.txt"
    done
fi
pf_stop

# --- ClickHouse's own durations ---------------------------------------------------------
if [ "$CH_ON" = 1 ]; then
    chc -q "SYSTEM FLUSH LOGS"
    chc -q "SELECT query_id, query_duration_ms, read_rows FROM system.query_log WHERE type = 2 AND query_id LIKE 'api%' AND query_id NOT LIKE '%warm%' ORDER BY event_time" \
        >"$RAW/api-ch-query-log.txt"
    # per run: round case mode run server_ms read_rows (the separate queries summed)
    awk '{ split($1, p, "-"); r = substr(p[1], 4); k = r " " p[2] " " p[3] " " p[4]
           ms[k] += $2; rows[k] += $3; if (!(k in seen)) { seen[k] = 1; o[++n] = k } }
         END { for (i = 1; i <= n; i++) print o[i], ms[o[i]], rows[o[i]] }' "$RAW/api-ch-query-log.txt" >"$WORK/chlog"
    CH_RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$CH_PID/status" 2>/dev/null || echo 0)
    stop_pid "$CH_PID"
    CH_PID=""
    cp "$WORK/peer" "$RAW/api-peer.txt"
fi
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
T_END=$(now_ms)
stop_pid "$MON_PID"
MON_PID=""
LOADMAX=$(sort -n "$WORK/loadavg" | tail -n 1)
cp "$WORK/loadavg" "$RAW/api-loadavg.txt"
[ "$(date -u +%F)" = "$TODAY" ] || log "bench/api: WARNING: the UTC date changed during the run ($TODAY -> $(date -u +%F)); the ranges moved"

# --- report ---------------------------------------------------------------------------------
pcts() { /usr/bin/python3 "$GEN" pct "$@"; }
label() {
    case $1 in
    ov90) echo "overview days=90" ;;
    ov30) echo "overview days=30" ;;
    imgtop) echo "image days=90, top image ($TOP, $(kv top_rows "$G") rows)" ;;
    imgmid) echo "image days=90, mid image ($MID, rank $(kv mid_rank "$G"), $(kv mid_rows "$G") rows)" ;;
    ov90-traffic) echo "overview days=90 under CDN traffic" ;;
    ov7hp) echo "overview days=7&interval=hour&compare=previous" ;;
    ov7hpx) echo "overview days=7&interval=hour&compare=previous&exclude_bots=true" ;;
    ov90x) echo "overview days=90&exclude_bots=true" ;;
    imgtop7hp) echo "image days=7&interval=hour&compare=previous, top image" ;;
    esac
}
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
    echo "# REST API latency: pixflare vs ClickHouse"
    echo
    echo "- date: $DATE0; $(((T_END - T_START) / 1000)) s in all; load average before / after: $LOAD0 / $LOAD1, at most $LOADMAX during the run (sampled every 5 s; this script alone makes about 2; other processes share the machine)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
    echo "- pixflare: $REV, default settings but PIXFLARE_API_RATE_LIMIT=0, ANALYTICS_BATCH_ENABLED=false; threads=${PIXFLARE_THREADS:-default (nproc)}"
    [ "$CH_ON" != 1 ] || echo "- ClickHouse: $CH_VERSION (Debian's clickhouse-server), default max_threads $CH_DEFAULT_THREADS; table daily: $CH_PARTS part(s), $(awk -v b="$CH_DISK" 'BEGIN { printf "%.1f", b / 1048576 }') MiB; loaded in $CH_LOAD_MS ms; peak RSS $((CH_RSS_KB / 1024)) MiB"
    echo
    echo "## Dataset"
    echo
    echo "\`bench/apigen.py gen --days 90 --rows $ROWS --images $IMAGES --seed $SEED --today $TODAY\` ($((GEN_MS / 1000)) s): owner bench: **$(kv rows "$G") analytics_daily rows** in the 90 dates ending $TODAY, $(kv images "$G") images, $(kv image_days "$G") distinct (image, date), $(kv requests "$G") requests, $(kv bandwidth_bytes "$G") bytes; top image $TOP with $(kv top_requests "$G") requests in $(kv top_rows "$G") rows; five more owners, $(($(kv all_rows "$G") - $(kv rows "$G"))) rows; database $(awk -v b="$DB_BYTES" 'BEGIN { printf "%.0f", b / 1048576 }') MiB."
    echo
    echo "## Cold: the first request after a start"
    echo
    echo "curl's time_total of the first request to a fresh \`pixflare serve\` (the overview cache empty; the database file in the page cache), then of the same request again; $COLD starts each."
    echo
    echo "| first request | runs (ms) | median (ms) | max (ms) | the second request, median (ms) |"
    echo "| --- | --- | ---: | ---: | ---: |"
    for kind in overview image; do
        runs=$(awk -v k="$kind" '$1 == k { printf "%s%.1f", (n++ ? ", " : ""), $3 * 1000 }' "$WORK/cold")
        set -- $(awk -v k="$kind" '$1 == k { print $3 * 1000 }' "$WORK/cold" | pcts 50 100)
        med2=$(awk -v k="$kind" '$1 == k { print $4 * 1000 }' "$WORK/cold" | pcts 50)
        if [ "$kind" = overview ]; then l="overview days=90"; else l="image days=90, top image"; fi
        echo "| $l | $runs | $(printf %.1f "$1") | $(printf %.1f "$2") | $(printf %.2f "$med2") |"
    done
    echo
    echo "## Warm: wrk"
    echo
    echo "\`wrk -t1 -c1\` / \`wrk -t2 -c4 -d${SECS}s --latency -s report.lua -H 'Authorization: Bearer KEY' URL\`; $ROUNDS round(s), the one with the lower p95 shown (all runs in bench/out/raw/api-wrk-results.txt)."
    echo
    echo "| request | connections | req/s | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for c in $CASES; do
        for conns in 1 4; do
            awk -v c="$c" -v n="$conns" -v l="$(label "$c")" '$1 == c && $3 == n && (!f || $6 < b) { f = 1; b = $6; line = $0 }
                END { split(line, x, " "); printf "| %s | %s | %.0f | %.2f | %.2f | %.2f | %.1f | %s |\n", l, n, x[4], x[5], x[6], x[7], x[8], x[10] }' "$WORK/results"
        done
    done
    echo
    echo "## Warm: issue 20's parameters"
    echo
    echo "The same wrk runs on the hourly series with the previous period (analytics_hourly: $(kv hourly_rows "$G") rows of bench, the last 14 dates) and with exclude_bots."
    echo
    echo "| request | connections | req/s | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for c in $CASES20; do
        for conns in 1 4; do
            awk -v c="$c" -v n="$conns" -v l="$(label "$c")" '$1 == c && $3 == n && (!f || $6 < b) { f = 1; b = $6; line = $0 }
                END { split(line, x, " "); printf "| %s | %s | %.0f | %.2f | %.2f | %.2f | %.1f | %s |\n", l, n, x[4], x[5], x[6], x[7], x[8], x[10] }' "$WORK/results"
        done
    done
    if [ "$TRAFFIC_DONE" = 1 ]; then
        echo
        echo "## Under CDN traffic"
        echo
        echo "While \`taskset -c 1 wrk -t1 -c$CDN_CONNS\` requests bench's 4 live images as original, w128, thumb and w256 ($CDN_DELAY ms between requests per connection), so that realtime flushes (every 500 ms) bump today's version: \`taskset -c 0 wrk\` on the overview days=90."
        echo
        echo "| request | connections | req/s | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | errors | CDN traffic req/s |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for conns in 1 4; do
            awk -v n="$conns" -v l="$(label ov90-traffic)" -v t="$(kv rps "$WORK/cdn-c$conns.line")" '$1 == "ov90-traffic" && $3 == n {
                printf "| %s | %s | %.0f | %.2f | %.2f | %.2f | %.1f | %s | %.0f |\n", l, n, $4, $5, $6, $7, $8, $10, t }' "$WORK/results"
        done
        echo
        echo "Afterwards the overview's totals were $TRAFFIC_DELTA requests above the generated ones; the CDN requests wrk completed plus the $PRE that made the variants: $TRAFFIC_SENT (wrk does not count the requests in flight when it stops)."
    fi
    if [ "$CH_ON" = 1 ]; then
        echo
        echo "## Against ClickHouse"
        echo
        echo "Client round trips in ms (Python http.client, keep-alive; $CH_RUNS runs per round after 3 warm-up runs, $ROUNDS round(s), every run: pixflare, then ClickHouse's queries one request each, then ClickHouse's UNION ALL request). ClickHouse's queries: overview = timeseries by date WITH TOTALS + top 10 images + countries + variants + status codes; image = timeseries WITH TOTALS + variants + countries (all in bench/out/raw/api-ch-queries.json). Server-side: the sum of the queries' query_duration_ms in system.query_log (whole milliseconds). Ratio = ClickHouse's time / pixflare's: above 1, pixflare is faster."
        echo
        echo "| request | pixflare p50 / p95 | ClickHouse, one request per query: p50 / p95 | ClickHouse, UNION ALL: p50 / p95 | ClickHouse server-side, per query summed: p50 / p95 | ClickHouse rows read (queries summed) | ratio p50 (best ClickHouse / pixflare) | ratio p95 |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for c in $CASES; do
            set -- $(awk -v c="$c-pixflare" '$2 == c { print $4 }' "$WORK/peer" | pcts 50 95) \
                $(awk -v c="$c-ch-separate" '$2 == c { print $4 }' "$WORK/peer" | pcts 50 95) \
                $(awk -v c="$c-ch-union" '$2 == c { print $4 }' "$WORK/peer" | pcts 50 95) \
                $(awk -v c="$c" '$2 == c && $3 == "sep" { print $5 }' "$WORK/chlog" | pcts 50 95) \
                $(awk -v c="$c" '$2 == c && $3 == "sep" { print $6 }' "$WORK/chlog" | pcts 50)
            awk -v l="$(label "$c")" -v a="$1" -v b="$2" -v c="$3" -v d="$4" -v e="$5" -v f="$6" -v g="$7" -v h="$8" -v rows="$9" 'BEGIN {
                b50 = c < e ? c : e; b95 = d < f ? d : f
                printf "| %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %d / %d | %d | **%.1fx** | **%.1fx** |\n", l, a, b, c, d, e, f, g, h, rows, b50 / a, b95 / b }'
        done
        echo
        set -- $(awk '$1 == "overview" { print $3 * 1000 }' "$WORK/cold" | pcts 50) \
            $(awk '$2 == "ov90-ch-separate" { print $4 }' "$WORK/peer" | pcts 50) \
            $(awk '$2 == "ov90-ch-union" { print $4 }' "$WORK/peer" | pcts 50)
        awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { m = b < c ? b : c
            printf "Cold pixflare (the first overview days=90 after a start, median %.1f ms) against ClickHouse'"'"'s overview p50 (%.1f ms): ratio %.2fx.\n", a, m, m / a }'
    fi
    echo
    echo "## Target: overview p95 at most 20 ms"
    echo
    awk '$1 ~ /^ov/ { k = $1 " c" $3; if (!(k in b) || $6 < b[k]) b[k] = $6 }
         END { for (k in b) { split(k, x, " "); printf "- %s, %s connection(s): p95 %.2f ms: %s\n", x[1] == "ov90" ? "overview days=90" : x[1] == "ov30" ? "overview days=30" : x[1] == "ov90-traffic" ? "overview days=90 under CDN traffic" : x[1] == "ov7hp" ? "overview days=7&interval=hour&compare=previous" : x[1] == "ov7hpx" ? "overview days=7&interval=hour&compare=previous&exclude_bots=true" : x[1] == "ov90x" ? "overview days=90&exclude_bots=true" : x[1], substr(x[2], 2), b[k], b[k] <= 20 ? "met" : "**missed**" } }' "$WORK/results" | sort
    set -- $(awk '$1 == "overview" { print $3 * 1000 }' "$WORK/cold" | pcts 50 100)
    echo "- cold (first request after a start): median $(printf %.1f "$1") ms, worst $(printf %.1f "$2") ms (a one-off per start, not a p95)"
    echo
    echo "## Checks"
    echo
    cat "$CHECKS"
} >"$OUT/api.md"
echo
cat "$OUT/api.md"
log ""
log "bench: written to bench/out/api.md (raw outputs in bench/out/raw/api-*)"
[ "$ok" = 1 ] || { log "bench/api: CHECKS FAILED (see the report)"; exit 1; }
