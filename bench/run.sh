#!/bin/sh
# bench/run.sh - serving benchmark: pixflare vs nginx on the same files.
#
# Run with `make bench` (or `sh bench/run.sh`). It installs nginx and wrk if
# missing, builds pixflare, generates two deterministic noise PNGs (~10 KB
# and ~200 KB), imports them into a fresh data directory, has pixflare make
# the large image's w128 variant (~45 KB), then serves the same three files
# from pixflare and from an nginx pointed at pixflare's storage directory.
# Both are checked to return identical bytes, then each object is hit with
# wrk: a warm-up run per server, then nginx and pixflare alternately
# BENCH_ROUNDS times; the best run of each server is kept. The Markdown table
# is printed and written to bench/out/serve.md; raw wrk output goes to
# bench/out/raw/. Pixflare runs with its default settings, so with analytics
# on (embedded event store and realtime rollups).
#
# Then, once both servers are stopped, bench/analytics.sh measures what the
# analytics cost: the same wrk load with analytics off and on, alternating,
# the database writes against the requests, and the per-event costs
# (bench/evlog_bench.c); see that script. BENCH_ANALYTICS=0 skips it. Then
# bench/aggregate.sh measures `pixflare aggregate` against ClickHouse on the
# same events (BENCH_AGGREGATE=0 skips it), then bench/api.sh the analytics
# REST API's latency on over a million generated rows, against ClickHouse
# (BENCH_API=0 skips it), then bench/postgres.sh the PostgreSQL backend
# against SQLite (BENCH_PG=0 skips it), then bench/clickhouse.sh
# ANALYTICS_ENGINE=clickhouse against the embedded engine (BENCH_CH=0 skips
# it), then bench/metrics.sh the CDN with Prometheus metrics scraped every
# second against metrics off (BENCH_METRICS=0 skips it), then bench/cache.sh
# the hot-object cache under a Zipf workload ten times PIXFLARE_CACHE_MB
# against nginx (BENCH_CACHE=0 skips it), then bench/analytics20.sh issue
# 20's analytics (client class, unique clients, more rollup keys) against the
# seed's analytics alone (BENCH_A20=0 skips it), and last bench/insns.sh the
# instructions the server executes per request (BENCH_INSNS=0 skips it).
#
# Environment:
#   BENCH_SECONDS      seconds per measured wrk run (default 10)
#   BENCH_WARMUP       seconds of the warm-up run (default 2)
#   BENCH_ROUNDS       measured runs per server and object (default 2)
#   BENCH_CONNECTIONS  wrk -c (default 64)
#   BENCH_WRK_THREADS  wrk -t (default 2)
#   BENCH_PIXFLARE_BIN another pixflare binary to measure (default: make, then
#                      build/pixflare)
#   BENCH_KEEP=1       keep the temp work dir (its path is printed)
#   BENCH_PROFILE=1    profile pixflare with perf instead of comparing (see
#                      below; BENCH_PROFILE_SECONDS, default 3)
#   BENCH_ANALYTICS=0  skip bench/analytics.sh (its own knobs: see there)
#   BENCH_AGGREGATE=0  skip bench/aggregate.sh (batch aggregation against
#                      ClickHouse; its own knobs: see there)
#   BENCH_INSNS=0      skip bench/insns.sh (instructions per request under
#                      callgrind: a figure the machine's load does not move)
#   BENCH_API=0        skip bench/api.sh (REST API latency against
#                      ClickHouse; its own knobs: see there)
#   BENCH_PG=0         skip bench/postgres.sh (PostgreSQL against SQLite:
#                      flushes, CDN, API, aggregation; its own knobs: see there)
#   BENCH_CH=0         skip bench/clickhouse.sh (ANALYTICS_ENGINE=clickhouse
#                      against embedded: CDN, shipping, delay to ClickHouse,
#                      aggregation; its own knobs, BENCH_CH_PARTS and the
#                      rest: see there)
#   BENCH_METRICS=0    skip bench/metrics.sh (metrics on and scraped against
#                      off: CDN req/s, CPU and instructions per request; its
#                      own knobs: see there)
#   BENCH_CACHE=0      skip bench/cache.sh (Zipf workload ten times the
#                      cache: hit ratio and req/s against nginx; its own
#                      knobs: see there)
#   BENCH_A20=0        skip bench/analytics20.sh (issue 20's analytics
#                      against commit 70728f5's, both built from their
#                      commits: req/s with a User-Agent mix, instructions
#                      per request, ns per event; its own knobs: see there)
#   PIXFLARE_THREADS, PIXFLARE_CACHE_MB  passed to pixflare as usual
# Only addresses on 127.0.0.1 are used.
set -eu

SECS=${BENCH_SECONDS:-10}
WARM=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WTHREADS=${BENCH_WRK_THREADS:-2}
PY=${PYTHON:-python3}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/bench/out
BIN=${BENCH_PIXFLARE_BIN:-$ROOT/build/pixflare}

. "$ROOT/bench/lib.sh"
die() { log "bench: $*"; exit 1; }

# --- 1. tools, build, work dir ------------------------------------------------
need=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v curl >/dev/null 2>&1 || need="$need curl"
# shellcheck disable=SC2086 # a list of package names
apt_need $need
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)

if [ -z "${BENCH_PIXFLARE_BIN:-}" ]; then
    log "== building pixflare"
    make -s all
fi

REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$ROOT" status --porcelain -- src Makefile 2>/dev/null)" ] || REV="$REV+local-changes"
[ -z "${BENCH_PIXFLARE_BIN:-}" ] || REV="$BENCH_PIXFLARE_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-bench.XXXXXX")
# nginx's workers may run as another user: let them traverse to the files.
chmod 755 "$WORK"
PF_PID=""
NG_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    drop_workdir "$WORK" bench
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DATA=$WORK/data
SRC=$WORK/src
mkdir -p "$DATA" "$SRC/bench/imgs" "$OUT/raw"
export PIXFLARE_DATA_DIR="$DATA"

# --- 2. deterministic test images ---------------------------------------------
log "== generating test images"
bench_pngs "$SRC/bench/imgs"

log "== importing"
"$BIN" import "$SRC" >"$WORK/import.tsv"
id_of() { awk -F'\t' -v n="$1" '$2 == n { print $1 }' "$WORK/import.tsv"; }
SMALL_ID=$(id_of bench/imgs/small.png)
LARGE_ID=$(id_of bench/imgs/large.png)
[ -n "$SMALL_ID" ] && [ -n "$LARGE_ID" ] || die "import did not print both ids"

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL - wait up to 10 s until it answers
    i=0
    while ! curl -s -o /dev/null "$1"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || return 1
        sleep 0.1
    done
}

# --- 3. servers ---------------------------------------------------------------
PF_PORT=$(free_port)
NG_PORT=$(free_port)
while [ "$NG_PORT" = "$PF_PORT" ]; do NG_PORT=$(free_port); done

log "== starting pixflare on 127.0.0.1:$PF_PORT"
PIXFLARE_LISTEN=127.0.0.1:$PF_PORT "$BIN" serve 2>"$WORK/pixflare.log" &
PF_PID=$!
wait_http "http://127.0.0.1:$PF_PORT/healthz" || { cat "$WORK/pixflare.log" >&2; die "pixflare did not start"; }
PF=http://127.0.0.1:$PF_PORT

# Make the w128 variant once, so it exists on disk for nginx too.
code=$(curl -s -o /dev/null -w '%{http_code}' "$PF/bench/imgs/large.png/w128")
[ "$code" = 200 ] || die "GET /bench/imgs/large.png/w128 answered $code"

NG_PREFIX=$WORK/nginx
mkdir -p "$NG_PREFIX/logs" "$NG_PREFIX/tmp"
NG_CONF=$NG_PREFIX/nginx.conf
cat >"$NG_CONF" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $NG_PREFIX/nginx.pid;
error_log $NG_PREFIX/logs/error.log warn;
events {
    worker_connections 4096;
}
http {
    types { image/png png; }
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path $NG_PREFIX/tmp/body;
    proxy_temp_path $NG_PREFIX/tmp/proxy;
    fastcgi_temp_path $NG_PREFIX/tmp/fastcgi;
    uwsgi_temp_path $NG_PREFIX/tmp/uwsgi;
    scgi_temp_path $NG_PREFIX/tmp/scgi;
    server {
        listen 127.0.0.1:$NG_PORT;
        root $DATA/images;
        location / { }
    }
}
EOF
log "== starting nginx on 127.0.0.1:$NG_PORT"
"$NGINX" -c "$NG_CONF" -p "$NG_PREFIX" 2>>"$NG_PREFIX/logs/error.log" &
NG_PID=$!
wait_http "http://127.0.0.1:$NG_PORT/" || { cat "$NG_PREFIX/logs/error.log" >&2; die "nginx did not start"; }
NG=http://127.0.0.1:$NG_PORT

small_pf=$PF/bench/imgs/small.png
large_pf=$PF/bench/imgs/large.png
w128_pf=$PF/bench/imgs/large.png/w128
small_ng=$NG/$(printf %.2s "$SMALL_ID")/$SMALL_ID/original.png
large_ng=$NG/$(printf %.2s "$LARGE_ID")/$LARGE_ID/original.png
w128_ng=$NG/$(printf %.2s "$LARGE_ID")/$LARGE_ID/w128.png

log "== checking that both servers return identical bytes"
for obj in small large w128; do
    eval "pu=\$${obj}_pf ng=\$${obj}_ng"
    curl -sf -o "$WORK/$obj.pf" "$pu" || die "pixflare: GET $pu failed"
    curl -sf -o "$WORK/$obj.ng" "$ng" || die "nginx: GET $ng failed"
    cmp -s "$WORK/$obj.pf" "$WORK/$obj.ng" || die "$obj: pixflare and nginx bodies differ"
    eval "${obj}_size=\$(wc -c <\"\$WORK/\$obj.pf\" | tr -d ' ')"
    eval "log \"   $obj: \$${obj}_size bytes, identical\""
done

# Keep-alive matters more than anything else here: say so when it is off.
PF_KEEPALIVE=yes
if curl -s -D - -o /dev/null "$small_pf" | tr -d '\r' | grep -qi '^connection: *close'; then
    PF_KEEPALIVE=no
    log "   WARNING: pixflare answers 'Connection: close': every wrk request opens a new connection"
fi

# --- profile mode: where pixflare's time goes ---------------------------------
# BENCH_PROFILE=1: instead of the comparison, run wrk for BENCH_PROFILE_SECONDS
# (default 3) per object while `perf stat` and `perf record -g` watch the
# pixflare process; summaries go to bench/out/profile-<object>.txt.
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    command -v perf >/dev/null 2>&1 || die "perf not found (apt-get install -y linux-perf)"
    PS=${BENCH_PROFILE_SECONDS:-3}
    for obj in small large w128; do
        eval "pu=\$${obj}_pf"
        log "== profile pixflare $obj (${PS}s)"
        wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$pu" >/dev/null
        f=$OUT/profile-$obj.txt
        perf stat -p "$PF_PID" -o "$WORK/stat.txt" -- sleep "$PS" &
        st=$!
        wrk -t"$WTHREADS" -c"$CONNS" -d"${PS}s" "$pu" >"$WORK/wrk.txt"
        wait "$st" || true
        perf record -q -g -p "$PF_PID" -o "$WORK/perf.data" -- sleep "$PS" 2>/dev/null &
        rec=$!
        wrk -t"$WTHREADS" -c"$CONNS" -d"${PS}s" "$pu" >"$WORK/wrk2.txt"
        wait "$rec" || true
        {
            echo "# pixflare $obj: \`wrk -t$WTHREADS -c$CONNS -d${PS}s $pu\`"
            echo
            grep -E 'Requests/sec|Latency ' "$WORK/wrk.txt"
            cat "$WORK/stat.txt"
            echo "## perf report (self time by object file)"
            perf report -i "$WORK/perf.data" --stdio --no-children --sort dso \
                -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
            echo
            echo "## perf report (self time, top symbols)"
            perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol \
                -g none --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
            echo
            echo "## perf report (including children, top symbols)"
            perf report -i "$WORK/perf.data" --stdio --children --sort symbol \
                -g none --percent-limit 3 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
        } >"$f"
        log "   written to bench/out/profile-$obj.txt"
    done
    exit 0
fi

# --- 4. wrk -------------------------------------------------------------------

rm -f "$OUT"/raw/*.txt
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
DATE0=$(date -u '+%Y-%m-%d %H:%M UTC')
WRK="wrk -t$WTHREADS -c$CONNS -d${SECS}s --latency"
total=$((3 * 2 * ROUNDS))
n=0
for obj in small large w128; do
    eval "pu=\$${obj}_pf ng=\$${obj}_ng"
    log "== warm-up nginx $obj (${WARM}s)"
    wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$ng" >/dev/null
    log "== warm-up pixflare $obj (${WARM}s)"
    wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$pu" >/dev/null
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        for srv in nginx pixflare; do
            n=$((n + 1))
            if [ "$srv" = nginx ]; then url=$ng; else url=$pu; fi
            log "== wrk $srv $obj ($n/$total)"
            f=$OUT/raw/$srv-$obj-$r.txt
            $WRK "$url" >"$f"
            set -- $(parse_wrk "$f")
            log "   $1 req/s, p50 $2 ms, p99 $3 ms"
            [ "$4" = 0 ] || log "   WARNING: $4 errors or non-2xx responses (see $f)"
            printf '%s %s %s %s %s %s %s\n' "$obj" "$srv" "$r" "$1" "$2" "$3" "$4" >>"$WORK/results"
        done
        r=$((r + 1))
    done
done

# --- 5. report ----------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
    echo "# Serving: pixflare vs nginx"
    echo
    echo "- date: $DATE0 (start of the wrk runs)"
    echo "- load average before / after: $LOAD0 / $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the machine)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr)"
    echo "- pixflare: $REV, threads=${PIXFLARE_THREADS:-default (nproc)}, cache=${PIXFLARE_CACHE_MB:-default} MB"
    echo "- pixflare HTTP keep-alive: $PF_KEEPALIVE"
    echo "- pixflare analytics: ANALYTICS_ENGINE=${ANALYTICS_ENGINE:-embedded (default)}, ANALYTICS_REALTIME_ENABLED=${ANALYTICS_REALTIME_ENABLED:-true (default)}"
    echo "- nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes 2, sendfile, tcp_nopush, open_file_cache, access_log off"
    echo "- load: \`$WRK URL\` (${WARM}s warm-up per server; best of $ROUNDS alternating runs)"
    echo
    echo "| object | size (bytes) | nginx req/s | pixflare req/s | pixflare/nginx | nginx p50 / p99 (ms) | pixflare p50 / p99 (ms) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for obj in small large w128; do
        eval "size=\$${obj}_size"
        case $obj in
        small) label="small original (56x56 PNG)" ;;
        large) label="large original (260x256 PNG)" ;;
        w128) label="large w128 variant (PNG)" ;;
        esac
        awk -v obj="$obj" -v label="$label" -v size="$size" '
        $1 == obj && ($4 + 0 > best[$2] + 0 || !($2 in best)) { best[$2] = $4; p50[$2] = $5; p99[$2] = $6 }
        END {
            ratio = best["nginx"] > 0 ? best["pixflare"] / best["nginx"] : 0
            printf "| %s | %d | %.0f | %.0f | %.2fx | %.2f / %.2f | %.2f / %.2f |\n", label, size,
                best["nginx"], best["pixflare"], ratio, p50["nginx"], p99["nginx"],
                p50["pixflare"], p99["pixflare"]
        }' "$WORK/results"
    done
    echo
    echo "All runs (req/s): "
    echo
    awk '{ printf "- %s %s run %s: %s req/s, p50 %s ms, p99 %s ms, errors %s\n", $2, $1, $3, $4, $5, $6, $7 }' "$WORK/results"
} >"$OUT/serve.md"
echo
cat "$OUT/serve.md"
log ""
log "bench: written to bench/out/serve.md (raw wrk output in bench/out/raw/)"

# --- 6. analytics off vs on, and the per-event costs --------------------------
if [ "${BENCH_ANALYTICS:-1}" != 0 ]; then
    # Nothing else of ours may run meanwhile: stop both servers first.
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== analytics: bench/analytics.sh"
    sh "$ROOT/bench/analytics.sh"
fi

# --- 7. batch aggregation against ClickHouse --------------------------------
if [ "${BENCH_AGGREGATE:-1}" != 0 ]; then
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== batch aggregation: bench/aggregate.sh"
    sh "$ROOT/bench/aggregate.sh"
fi

# --- 8. the REST API's latency against ClickHouse ------------------------------
if [ "${BENCH_API:-1}" != 0 ]; then
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== REST API latency: bench/api.sh"
    sh "$ROOT/bench/api.sh"
fi

# --- 9. the PostgreSQL backend against SQLite ---------------------------------
if [ "${BENCH_PG:-1}" != 0 ]; then
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== PostgreSQL against SQLite: bench/postgres.sh"
    sh "$ROOT/bench/postgres.sh"
fi

# --- 9b. ANALYTICS_ENGINE=clickhouse against the embedded engine ----------------
if [ "${BENCH_CH:-1}" != 0 ]; then
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== ClickHouse against the embedded engine: bench/clickhouse.sh"
    sh "$ROOT/bench/clickhouse.sh"
fi

# --- 9c. metrics scraped every second against metrics off ----------------------
if [ "${BENCH_METRICS:-1}" != 0 ]; then
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== metrics on the request path: bench/metrics.sh"
    sh "$ROOT/bench/metrics.sh"
fi

# --- 9d. the hot-object cache under a Zipf workload ten times its size ----------
if [ "${BENCH_CACHE:-1}" != 0 ]; then
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== hot-object cache, Zipf workload: bench/cache.sh"
    BENCH_PIXFLARE_BIN=$BIN sh "$ROOT/bench/cache.sh"
fi

# --- 9e. issue 20's analytics against the seed's analytics alone ---------------
if [ "${BENCH_A20:-1}" != 0 ]; then
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== issue 20's analytics against the seed's: bench/analytics20.sh"
    sh "$ROOT/bench/analytics20.sh"
fi

# --- 10. instructions per request, under callgrind ------------------------------
if [ "${BENCH_INSNS:-1}" != 0 ]; then
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    PF_PID=""
    NG_PID=""
    log ""
    log "== instructions per request: bench/insns.sh"
    sh "$ROOT/bench/insns.sh" "$BIN"
fi
