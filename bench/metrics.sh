#!/bin/sh
# bench/metrics.sh - what Prometheus metrics cost the CDN's request path.
#
# Run by bench/run.sh (so by `make bench`; BENCH_METRICS=0 skips it), or
# alone: `sh bench/metrics.sh`.
#
# The HTTP server counts its answers (route, status, bytes, duration:
# count_answer() in src/http/http_server.c) only when PIXFLARE_METRICS_LISTEN
# is set; the other parts count always. So:
#   off: PIXFLARE_METRICS_LISTEN unset;
#   on:  PIXFLARE_METRICS_LISTEN=127.0.0.1:PORT, and a scraper GETs /metrics
#        on it every BENCH_MET_SCRAPE_MS (default 1000) ms during each
#        measured run (one keep-alive connection, as Prometheus keeps; every
#        scrape's status, size and time recorded).
# Everything else is the default configuration (analytics on: embedded event
# store, realtime rollups), in one data directory holding bench/run.sh's
# seeded noise PNGs (small.png 56x56, 9,532 bytes; large.png 260x256, whose
# w128 variant the first server makes).
#
# 1. Throughput: a fresh `pixflare serve` per run, off/on/off/on...,
#    BENCH_MET_ROUNDS (default 5) runs of each mode. A run: start, GET the
#    small image (checked byte for byte) and the w128 variant, then per
#    object (BENCH_MET_OBJECTS, default "small w128") a warm-up wrk and the
#    measured `wrk -t2 -c64 -d10s --latency URL` (with the scraper beside it
#    when on); the server's CPU time around the measured run from
#    /proc/PID/stat. An ON server is scraped once more at the end, and its
#    pixflare_http_requests_total{route="cdn",status="200"} is compared with
#    the responses wrk and curl counted. By default the server (all its
#    threads) runs on CPU 0 and wrk and the scraper on CPU 1 (taskset).
# 2. Instructions (perf's counters are "not supported" on this VM, so
#    callgrind, as bench/insns.sh): one server per mode under valgrind, one
#    HTTP thread; BENCH_INSNS_REQUESTS (default 2000) keep-alive GETs of each
#    object, and for ON also BENCH_MET_INSNS_SCRAPES (default 20) scrapes,
#    each in its own collection window. Instructions per request (user
#    space, everything included) and per scrape do not move with the load.
#
# Output: bench/out/metrics.md (also printed); raw wrk output, scraper logs
# and server logs in bench/out/raw/met-*.
#
# Environment (shared with bench/run.sh):
#   BENCH_SECONDS       seconds per measured wrk run (default 10)
#   BENCH_WARMUP        seconds of the warm-up run before each (default 2)
#   BENCH_CONNECTIONS   wrk -c (default 64)
#   BENCH_WRK_THREADS   wrk -t (default 2)
#   BENCH_PIXFLARE_BIN  another pixflare binary to measure (default:
#                       make BUILD=$BUILD, then $BUILD/pixflare)
#   BUILD               the build directory (default build)
#   BENCH_KEEP=1        keep the temp work dir (its path is printed)
# and its own:
#   BENCH_MET_ROUNDS    runs per mode (default 5; at least 2)
#   BENCH_MET_OBJECTS   objects measured: small and/or w128 (default both)
#   BENCH_MET_SCRAPE_MS the scrape interval (default 1000; 0: ON servers are
#                       not scraped, which tells the counting's cost from
#                       the scrapes')
#   BENCH_MET_PIN=0     do not pin (default 1: server on CPU 0, wrk and the
#                       scraper on CPU 1)
#   BENCH_MET_INSNS=0   skip the callgrind part
#   BENCH_INSNS_REQUESTS, BENCH_MET_INSNS_SCRAPES  its request and scrape counts
# Only 127.0.0.1 is used.
set -eu

SECS=${BENCH_SECONDS:-10}
WARM=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WTHREADS=${BENCH_WRK_THREADS:-2}
ROUNDS=${BENCH_MET_ROUNDS:-5}
OBJECTS=${BENCH_MET_OBJECTS:-small w128}
SCRAPE_MS=${BENCH_MET_SCRAPE_MS:-1000}
INSNS=${BENCH_MET_INSNS:-1}
INSNS_N=${BENCH_INSNS_REQUESTS:-2000}
INSNS_S=${BENCH_MET_INSNS_SCRAPES:-20}
BUILD=${BUILD:-build}
PY=${PYTHON:-python3}
[ "$ROUNDS" -ge 2 ] || ROUNDS=2
PIN_SRV=""
PIN_CLI=""
PINNED="not pinned (the scheduler places the server's, wrk's and the scraper's threads)"
if [ "${BENCH_MET_PIN:-1}" = 1 ]; then
    PIN_SRV="taskset -c 0"
    PIN_CLI="taskset -c 1"
    PINNED="pinned: the server (all its threads) on CPU 0, wrk and the scraper on CPU 1"
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/bench/out
RAW=$OUT/raw
BIN=${BENCH_PIXFLARE_BIN:-$ROOT/$BUILD/pixflare}

. "$ROOT/bench/lib.sh"
die() { log "bench/metrics: $*"; exit 1; }

for o in $OBJECTS; do
    case $o in small | w128) ;; *) die "BENCH_MET_OBJECTS: unknown object '$o' (small, w128)" ;; esac
done

# --- tools, build, work dir ---------------------------------------------------
need=""
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v curl >/dev/null 2>&1 || need="$need curl"
[ -n "$PIN_SRV" ] && ! command -v taskset >/dev/null 2>&1 && need="$need util-linux"
[ "$INSNS" = 0 ] || command -v valgrind >/dev/null 2>&1 || need="$need valgrind"
# shellcheck disable=SC2086 # a list of package names
apt_need $need

if [ -z "${BENCH_PIXFLARE_BIN:-}" ]; then
    log "== building pixflare (make BUILD=$BUILD all)"
    make -s BUILD="$BUILD" all
fi

REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$ROOT" status --porcelain -- src Makefile 2>/dev/null)" ] || REV="$REV+local-changes"
[ -z "${BENCH_PIXFLARE_BIN:-}" ] || REV="$BENCH_PIXFLARE_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-metbench.XXXXXX")
PF_PID=""
SC_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_pid "$SC_PID"
    stop_pid "$PF_PID"
    drop_workdir "$WORK" bench/metrics
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DATA=$WORK/data
SRC=$WORK/src
mkdir -p "$DATA" "$SRC/bench/imgs" "$RAW"
rm -f "$RAW"/met-*
export PIXFLARE_DATA_DIR="$DATA"
# Only the setting under test varies; anything else comes from the defaults.
unset PIXFLARE_DATABASE PIXFLARE_STORAGE_DIR PIXFLARE_GEOIP_DB PIXFLARE_LISTEN \
    PIXFLARE_METRICS_LISTEN 2>/dev/null || true

log "== generating and importing the test images"
bench_pngs "$SRC/bench/imgs"
"$BIN" import "$SRC" >"$WORK/import.tsv"
SMALL_SIZE=$(wc -c <"$SRC/bench/imgs/small.png" | tr -d ' ')
W128_SIZE="?"

path_of() {
    case $1 in
    small) echo /bench/imgs/small.png ;;
    w128) echo /bench/imgs/large.png/w128 ;;
    esac
}

wait_http() { # URL - wait up to 10 s until it answers
    i=0
    while ! curl -s -o /dev/null "$1"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || return 1
        sleep 0.1
    done
}

cpu_ticks() { # CPU ticks (user + system) of a process so far
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

wrk_count() { # the responses a wrk output counted ("N requests in 10.00s, ...")
    awk '/ requests in / { print $1; found = 1 } END { if (!found) print 0 }' "$1"
}

# The scraper: GET http://127.0.0.1:PORT/metrics at 0, I, 2I, ... ms for S
# seconds on one keep-alive connection (a new one after a failure). One line
# per scrape: "offset_ms status bytes ms" (status 0: no answer).
scraper() { # PORT SECONDS INTERVAL_MS
    $PIN_CLI "$PY" - "$@" <<'EOF'
import http.client, sys, time
port, secs, every = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]) / 1000.0
c = None
t0 = time.monotonic()
n = 0
while n * every < secs:
    d = t0 + n * every - time.monotonic()
    if d > 0:
        time.sleep(d)
    s = time.monotonic()
    status, size = 0, 0
    try:
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        r = c.getresponse()
        size = len(r.read())
        status = r.status
    except (OSError, http.client.HTTPException):
        c = None
    print("%d %d %d %.2f" % ((s - t0) * 1000, status, size, (time.monotonic() - s) * 1000), flush=True)
    n += 1
EOF
}

# The value of pixflare_http_requests_total{route="cdn",status="200"} (0
# when absent) at http://127.0.0.1:PORT/metrics.
cdn_200() {
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '$1 == "pixflare_http_requests_total{route=\"cdn\",status=\"200\"}" { v = $2 } END { print v + 0 }'
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

# One server's run: run_mode MODE ROUND. Appends per object to
# $WORK/results: "mode round object rps p50 p99 errors measured_responses
# cpu_s scrapes scrapes_200 scrape_bytes scrape_max_ms"; and to
# $WORK/counted: "round responses_counted_by_clients cdn_200_scraped".
run_mode() {
    mode=$1
    r=$2
    base=$RAW/met-$mode-$r
    port=$(free_port)
    mport=$(free_port)
    while [ "$mport" = "$port" ]; do mport=$(free_port); done
    if [ "$mode" = on ]; then
        set -- PIXFLARE_METRICS_LISTEN="127.0.0.1:$mport"
    else
        set --
    fi
    $PIN_SRV env "$@" PIXFLARE_LISTEN="127.0.0.1:$port" "$BIN" serve 2>"$base.log" &
    PF_PID=$!
    base_url=http://127.0.0.1:$port
    wait_http "$base_url/healthz" || { cat "$base.log" >&2; die "pixflare did not start"; }
    if [ "$mode" = on ]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/metrics")
        [ "$code" = 200 ] || die "ON server: GET /metrics answered $code"
    elif curl -s -o /dev/null "http://127.0.0.1:$mport/metrics"; then
        die "OFF server: something answers on the metrics port $mport"
    fi
    got=$(curl -s -o "$WORK/got.png" -w '%{http_code}' "$base_url/bench/imgs/small.png")
    [ "$got" = 200 ] && cmp -s "$WORK/got.png" "$SRC/bench/imgs/small.png" ||
        die "GET /bench/imgs/small.png answered $got or other bytes"
    got=$(curl -s -o "$WORK/got.png" -w '%{http_code}' "$base_url/bench/imgs/large.png/w128")
    [ "$got" = 200 ] || die "GET /bench/imgs/large.png/w128 answered $got"
    W128_SIZE=$(wc -c <"$WORK/got.png" | tr -d ' ')
    counted=2
    for obj in $OBJECTS; do
        url=$base_url$(path_of "$obj")
        $PIN_CLI wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" "$url" >"$base-$obj-warm.txt"
        : >"$base-$obj-scrapes.txt"
        if [ "$mode" = on ] && [ "$SCRAPE_MS" -gt 0 ]; then
            scraper "$mport" "$SECS" "$SCRAPE_MS" >"$base-$obj-scrapes.txt" &
            SC_PID=$!
        fi
        c0=$(cpu_ticks "$PF_PID")
        $PIN_CLI wrk -t"$WTHREADS" -c"$CONNS" -d"${SECS}s" --latency "$url" >"$base-$obj.txt"
        c1=$(cpu_ticks "$PF_PID")
        if [ -n "$SC_PID" ]; then
            wait "$SC_PID" || die "the scraper failed"
            SC_PID=""
        fi
        set -- $(parse_wrk "$base-$obj.txt")
        rps=$1 p50=$2 p99=$3 errs=$4
        mn=$(wrk_count "$base-$obj.txt")
        counted=$((counted + mn + $(wrk_count "$base-$obj-warm.txt")))
        cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
        set -- $(awk '{ n++; if ($2 == 200) ok++; b += $3; if ($4 > mx) mx = $4 }
            END { printf "%d %d %d %.1f\n", n, ok, n ? b / n : 0, mx }' "$base-$obj-scrapes.txt")
        log "   $mode run $r $obj: $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU ${cpu_s}s$([ "$mode" = on ] && echo ", scrapes $2 of $1 answered 200 (~$3 bytes, slowest $4 ms)")"
        [ "$errs" = 0 ] || log "   WARNING: $errs errors or non-2xx responses (see $base-$obj.txt)"
        echo "$mode $r $obj $rps $p50 $p99 $errs $mn $cpu_s $1 $2 $3 $4" >>"$WORK/results"
    done
    if [ "$mode" = on ]; then
        scraped=$(cdn_200 "$mport")
        echo "$r $counted $scraped" >>"$WORK/counted"
        log "   responses counted by wrk and curl: $counted; pixflare_http_requests_total{route=\"cdn\",status=\"200\"}: $scraped"
    fi
    stop_pf
}

# --- 1. off / on, alternating -------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
DATE0=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$WORK/results"
: >"$WORK/counted"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for mode in off on; do
        log "== metrics $mode, run $r/$ROUNDS ($OBJECTS: ${WARM}s warm-up, ${SECS}s measured each)"
        run_mode "$mode" "$r"
    done
    r=$((r + 1))
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 2. instructions per request and per scrape, under callgrind ----------------
# One keep-alive client: N GETs of PATH on PORT, each read whole and checked.
client() {
    "$PY" - "$1" "$2" "$3" <<'EOF'
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

# Collect what `client` (or the scrapes) make the server do in a window of its
# own: callgrind dumps the window's counts to the next numbered file.
# Prints the window's instructions.
window() { # CG_FILE DUMP_NO PORT PATH N
    callgrind_control -i on "$PF_PID" >/dev/null 2>&1
    client "$3" "$4" "$5" || die "GETs of $4 failed"
    callgrind_control -i off "$PF_PID" >/dev/null 2>&1
    callgrind_control -d "$PF_PID" >/dev/null 2>&1
    i=0
    while [ ! -s "$1.$2" ]; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || die "callgrind wrote no $1.$2"
        sleep 0.1
    done
    sleep 0.2
    awk '/^totals:/ { s += $2 } END { print s + 0 }' "$1.$2"
}

: >"$WORK/insns"
if [ "$INSNS" != 0 ]; then
    command -v callgrind_control >/dev/null 2>&1 || die "callgrind_control not found (valgrind)"
    for mode in off on; do
        port=$(free_port)
        mport=$(free_port)
        while [ "$mport" = "$port" ]; do mport=$(free_port); done
        if [ "$mode" = on ]; then set -- PIXFLARE_METRICS_LISTEN="127.0.0.1:$mport"; else set --; fi
        cg=$WORK/callgrind.$mode
        log "== callgrind: metrics $mode, $INSNS_N requests per object$([ "$mode" = on ] && echo ", $INSNS_S scrapes")"
        # As bench/insns.sh: one HTTP thread, timer threads at 60 s (the same
        # few runs every time), VIPSHOME elsewhere (a plugin's RDTSCP).
        env "$@" VIPSHOME=/nonexistent PIXFLARE_THREADS=1 ANALYTICS_FSYNC_MS=60000 \
            ANALYTICS_REALTIME_FLUSH_MS=60000 PIXFLARE_LISTEN="127.0.0.1:$port" \
            valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$cg" \
            "$BIN" serve 2>"$RAW/met-callgrind-$mode.log" &
        PF_PID=$!
        i=0
        until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
            i=$((i + 1))
            [ $i -lt 600 ] || die "pixflare did not start under valgrind (see $RAW/met-callgrind-$mode.log)"
            sleep 0.1
        done
        d=0
        for obj in $OBJECTS; do
            client "$port" "$(path_of "$obj")" 50 || die "warm-up of $obj failed"
            d=$((d + 1))
            ir=$(window "$cg" "$d" "$port" "$(path_of "$obj")" "$INSNS_N")
            [ "$ir" -gt 0 ] || die "no instructions collected for $obj"
            echo "$mode $obj $INSNS_N $ir" >>"$WORK/insns"
            log "   $obj: $((ir / INSNS_N)) instructions per request"
        done
        if [ "$mode" = on ]; then
            client "$mport" /metrics 2 || die "GET /metrics failed"
            d=$((d + 1))
            ir=$(window "$cg" "$d" "$mport" /metrics "$INSNS_S")
            echo "on scrape $INSNS_S $ir" >>"$WORK/insns"
            log "   /metrics: $((ir / INSNS_S)) instructions per scrape"
        fi
        stop_pf
    done
fi

# --- report -------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
    echo "# Metrics on the request path: CDN with metrics scraped every second vs metrics off"
    echo
    echo "- date: $DATE0 (start of the wrk runs)"
    echo "- load average before / after: $LOAD0 / $LOAD1 (other processes share the machine)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo '?')"
    echo "- pixflare: $REV, threads=${PIXFLARE_THREADS:-default (nproc)}, cache=${PIXFLARE_CACHE_MB:-default} MB, analytics at the defaults"
    echo "- off: PIXFLARE_METRICS_LISTEN unset; on: \`PIXFLARE_METRICS_LISTEN=127.0.0.1:PORT\` and $([ "$SCRAPE_MS" -gt 0 ] && echo "GET /metrics every ${SCRAPE_MS} ms during the measured run (one keep-alive connection)" || echo "no scrapes (BENCH_MET_SCRAPE_MS=0)")"
    echo "- load: \`wrk -t$WTHREADS -c$CONNS -d${SECS}s --latency URL\` after a ${WARM}s warm-up, per object; a fresh server per run, off and on alternating, $ROUNDS runs each; $PINNED"
    echo "- objects: small = /bench/imgs/small.png ($SMALL_SIZE bytes), w128 = /bench/imgs/large.png/w128 ($W128_SIZE bytes, a cached variant)"
    for obj in $OBJECTS; do
        echo
        echo "## $obj"
        echo
        echo "| round | off req/s | on req/s | on/off | off CPU per request (us) | on CPU per request (us) | on/off | scrapes (200 of all) | scrape size (bytes) | slowest scrape (ms) |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk -v obj="$obj" '$3 == obj { rps[$1, $2] = $4; us[$1, $2] = $8 > 0 ? $9 * 1e6 / $8 : 0
                if ($1 == "on") { sc[$2] = $11 " of " $10; sb[$2] = $12; sm[$2] = $13 }
                if ($2 > n) n = $2 }
            END { for (r = 1; r <= n; r++)
                printf "| %d | %.0f | %.0f | %.3f | %.2f | %.2f | %.3f | %s | %d | %.1f |\n", r,
                    rps["off", r], rps["on", r], rps["on", r] / rps["off", r],
                    us["off", r], us["on", r], us["on", r] / us["off", r], sc[r], sb[r], sm[r] }' "$WORK/results"
        echo
        awk -v obj="$obj" '
        function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
        function med(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        function pct(x) { return (x - 1) * 100 }
        $3 == obj { m = $1; k[m]++; v[m, k[m]] = $4; c[m, k[m]] = $8 > 0 ? $9 * 1e6 / $8 : 0; e += $7
            q50[m, k[m]] = $5; q99[m, k[m]] = $6 }
        END {
            for (mi = 0; mi < 2; mi++) {
                m = mi ? "on" : "off"; n = k[m]
                for (i = 1; i <= n; i++) { x[i] = v[m, i]; y[i] = c[m, i]; a50[i] = q50[m, i]; a99[i] = q99[m, i] }
                sort(x, n); sort(y, n); sort(a50, n); sort(a99, n)
                median[m] = med(x, n); cpu[m] = med(y, n); p50[m] = med(a50, n); p99[m] = med(a99, n)
                spread[m] = (x[n] - x[1]) / x[n] * 100; cspread[m] = (y[n] - y[1]) / y[1] * 100
                lo[m] = x[1]; hi[m] = x[n]
            }
            np = k["on"] < k["off"] ? k["on"] : k["off"]
            for (i = 1; i <= np; i++) { pr[i] = v["on", i] / v["off", i]; pc[i] = c["on", i] / c["off", i] }
            sort(pr, np); sort(pc, np)
            rm = median["on"] / median["off"]; rp = med(pr, np)
            cm = cpu["on"] / cpu["off"]; cp = med(pc, np)
            print "| metrics | runs | median req/s | lowest - highest | spread | median server CPU per request (us) | its spread | median p50 / p99 (ms) |"
            print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            for (mi = 0; mi < 2; mi++) {
                m = mi ? "on" : "off"
                printf "| %s | %d | %.0f | %.0f - %.0f | %.1f%% | %.2f | %.1f%% | %.2f / %.2f |\n", m, k[m], median[m], lo[m], hi[m], spread[m], cpu[m], cspread[m], p50[m], p99[m]
            }
            print ""
            printf "- req/s on/off: medians **%.3f** (%+.1f%%); median of the %d off-then-on pairs **%.3f** (%+.1f%%; pairs %.3f to %.3f); target >= 0.990\n", rm, pct(rm), np, rp, pct(rp), pr[1], pr[np]
            printf "- server CPU per request on/off: medians %.3f (%+.1f%%), pairs %.3f (%+.1f%%; %.3f to %.3f)\n", cm, pct(cm), cp, pct(cp), pc[1], pc[np]
            printf "- noise floor: identical OFF runs differ by %.1f%% in req/s (best to worst), %.1f%% in CPU per request\n", spread["off"], cspread["off"]
            printf "- wrk errors or non-2xx responses over all runs: %d\n", e
        }' "$WORK/results"
    done
    if [ -s "$WORK/counted" ]; then
        echo
        echo "Counting checked (ON servers): responses wrk and curl counted (warm-ups, measured runs, 2 checks) against the final scrape's \`pixflare_http_requests_total{route=\"cdn\",status=\"200\"}\` (may exceed wrk's count by up to $CONNS per wrk run: answers in flight when wrk stops):"
        echo
        awk '{ printf "- round %d: counted %d, scraped %d (%+d)\n", $1, $2, $3, $3 - $2 }' "$WORK/counted"
    fi
    if [ -s "$WORK/insns" ]; then
        echo
        echo "## Instructions (callgrind, user space, one HTTP thread; $INSNS_N keep-alive GETs per object, $INSNS_S scrapes)"
        echo
        echo "| object | off per request | on per request | on - off | on/off |"
        echo "| --- | ---: | ---: | ---: | ---: |"
        awk '$2 != "scrape" { v[$1, $2] = $4 / $3; o[$2] = 1; ord[++n] = $2 }
            END { for (i = 1; i <= n; i++) { ob = ord[i]; if (done[ob]++) continue
                printf "| %s | %.0f | %.0f | %+.0f | %.4f |\n", ob, v["off", ob], v["on", ob],
                    v["on", ob] - v["off", ob], v["on", ob] / v["off", ob] } }' "$WORK/insns"
        echo
        awk -v res="$WORK/results" '
            $2 == "scrape" { ps = $4 / $3 }
            $1 == "off" && $2 == "small" { pr = $4 / $3 }
            END {
                if (ps == 0) exit
                while ((getline l < res) > 0) { split(l, f, " "); if (f[1] == "off" && f[3] == "small") { n++; x[n] = f[4] } }
                for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
                m = n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
                printf "- one scrape: %.0f instructions (the metrics listener: accept, render, send)", ps
                if (pr > 0) printf ", as many as %.1f small-image requests", ps / pr
                if (pr > 0 && m > 0) printf "; at one scrape a second against the OFF median of %.0f req/s, %.4f%% of the instructions served", m, ps / (pr * m) * 100
                print ""
            }' "$WORK/insns"
    fi
} >"$OUT/metrics.md"
echo
cat "$OUT/metrics.md"
log ""
log "bench: written to bench/out/metrics.md (raw wrk output, scrapes and server logs in bench/out/raw/met-*)"
