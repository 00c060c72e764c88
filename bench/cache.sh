#!/bin/sh
# bench/cache.sh - the hot-object cache under a Zipf workload ten times its
# size: pixflare's hit ratio and requests/s against nginx on the same files.
#
# Run by bench/run.sh (so by `make bench`; BENCH_CACHE=0 skips it), or alone:
# `sh bench/cache.sh`.
#
# BENCH_CACHE_IMAGES (default 640) seeded noise PNGs of about 64 KB (they do
# not compress) are imported: about 40 MiB, ten times PIXFLARE_CACHE_MB=4.
# wrk (BENCH_CONNECTIONS, default 64, BENCH_WRK_THREADS, default 2) asks
# for them along a Zipf law of exponent alpha (BENCH_CACHE_ALPHAS, default
# "0.8 1.0"): a Lua script draws each request's path from the law's
# cumulative table (rank r has weight 1/r^alpha; rank 1 is image 0). nginx
# (worker_processes 2, sendfile, open_file_cache, access_log off) serves the
# same files from pixflare's storage directory; both are checked to answer
# identical bytes for a sample of images. For each alpha: a warm-up run per
# server, then nginx and pixflare alternately BENCH_CACHE_ROUNDS (default
# 3) times, best run of each kept (other work on the machine hurts both
# alike). Pixflare's hit ratio is the change of pixflare_cache_hits_total
# over hits + misses in its /metrics during the measured run. Both servers
# read from the OS page cache (the 40 MiB fit in memory): the comparison
# is what pixflare's misses cost (a read on a worker thread, then memory)
# against nginx's sendfile from the page cache. Last, bench/cachesim.c
# gives the candidate policies' hit ratios on the same shape (objects,
# cache size in objects, alphas).
#
# Output: bench/out/cache.md (also printed); raw wrk output in
# bench/out/raw/cache-*.
#
# Environment (shared with bench/run.sh): BENCH_SECONDS (default 10),
# BENCH_WARMUP (default 2), BENCH_CONNECTIONS, BENCH_WRK_THREADS,
# BENCH_PIXFLARE_BIN (default: make BUILD=$BUILD, then $BUILD/pixflare),
# BUILD (default build), BENCH_KEEP=1; and its own: BENCH_CACHE_IMAGES,
# BENCH_CACHE_MB (default 4), BENCH_CACHE_ALPHAS, BENCH_CACHE_ROUNDS.
# Only 127.0.0.1 is used.
set -eu

SECS=${BENCH_SECONDS:-10}
WARM=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WTHREADS=${BENCH_WRK_THREADS:-2}
NIMG=${BENCH_CACHE_IMAGES:-640}
CACHE_MB=${BENCH_CACHE_MB:-4}
ALPHAS=${BENCH_CACHE_ALPHAS:-0.8 1.0}
ROUNDS=${BENCH_CACHE_ROUNDS:-3}
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/bench/out
BUILD=${BUILD:-build}
BIN=${BENCH_PIXFLARE_BIN:-$ROOT/$BUILD/pixflare}

. "$ROOT/bench/lib.sh"
die() { log "bench/cache: $*"; exit 1; }

need=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v curl >/dev/null 2>&1 || need="$need curl"
# shellcheck disable=SC2086 # a list of package names
apt_need $need
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
if [ -z "${BENCH_PIXFLARE_BIN:-}" ]; then
    log "== building pixflare"
    make -s BUILD="$BUILD" all
fi
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[ -z "$(git -C "$ROOT" status --porcelain -- src Makefile 2>/dev/null)" ] || REV="$REV+local-changes"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixflare-cache.XXXXXX")
chmod 755 "$WORK"
PF_PID=""
NG_PID=""
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    stop_pid "$PF_PID"
    stop_pid "$NG_PID"
    drop_workdir "$WORK" bench/cache
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DATA=$WORK/data
SRC=$WORK/src
mkdir -p "$DATA" "$SRC/bench/z" "$OUT/raw"
export PIXFLARE_DATA_DIR="$DATA"

log "== generating $NIMG noise PNGs of ~64 KB"
"$PY" - "$SRC/bench/z" "$NIMG" <<'EOF'
import random, struct, sys, zlib
def chunk(tag, body):
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xffffffff)
w, h = 146, 146
for i in range(int(sys.argv[2])):
    rnd = random.Random(i)
    rows = b"".join(b"\x00" + rnd.randbytes(w * 3) for _ in range(h))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))
    with open("%s/img%04d.png" % (sys.argv[1], i), "wb") as f:
        f.write(data)
EOF
log "== importing"
"$BIN" import "$SRC" >"$WORK/import.tsv"
TOTAL_BYTES=$(cat "$SRC"/bench/z/*.png | wc -c | tr -d ' ')

# One Lua script per server: the same Zipf law over the same images, by
# their pixflare path or their file under the storage directory.
lua_script() { # server alpha > file
    "$PY" - "$WORK/import.tsv" "$NIMG" "$1" "$2" <<'EOF'
import sys
ids = {}
for line in open(sys.argv[1]):
    i, rel = line.rstrip("\n").split("\t")
    ids[rel] = i
n, server, alpha = int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
paths = []
for r in range(n):
    rel = "bench/z/img%04d.png" % r
    paths.append("/" + rel if server == "pixflare" else "/%s/%s/original.png" % (ids[rel][:2], ids[rel]))
print("local paths = {" + ",".join('"%s"' % p for p in paths) + "}")
print("local alpha = %r" % alpha)
print("""local cdf, sum = {}, 0
for r = 1, #paths do sum = sum + 1 / r ^ alpha; cdf[r] = sum end
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
function init(args) math.randomseed(7919 * (tonumber(id) or 1)) end
function request()
    local u, lo, hi = math.random() * sum, 1, #paths
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if cdf[mid] < u then lo = mid + 1 else hi = mid end
    end
    return wrk.format("GET", paths[lo])
end""")
EOF
}

PF_PORT=$(free_port)
MET_PORT=$(free_port)
NG_PORT=$(free_port)
wait_http() {
    i=0
    while ! curl -s -o /dev/null "$1"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || return 1
        sleep 0.1
    done
}
log "== starting pixflare (PIXFLARE_CACHE_MB=$CACHE_MB) on 127.0.0.1:$PF_PORT"
PIXFLARE_CACHE_MB=$CACHE_MB PIXFLARE_LISTEN=127.0.0.1:$PF_PORT \
    PIXFLARE_METRICS_LISTEN=127.0.0.1:$MET_PORT "$BIN" serve 2>"$WORK/pixflare.log" &
PF_PID=$!
wait_http "http://127.0.0.1:$PF_PORT/healthz" || { cat "$WORK/pixflare.log" >&2; die "pixflare did not start"; }

NG_PREFIX=$WORK/nginx
mkdir -p "$NG_PREFIX/logs" "$NG_PREFIX/tmp"
cat >"$NG_PREFIX/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $NG_PREFIX/nginx.pid;
error_log $NG_PREFIX/logs/error.log warn;
events { worker_connections 4096; }
http {
    types { image/png png; }
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path $NG_PREFIX/tmp/body;
    proxy_temp_path $NG_PREFIX/tmp/proxy;
    fastcgi_temp_path $NG_PREFIX/tmp/fastcgi;
    uwsgi_temp_path $NG_PREFIX/tmp/uwsgi;
    scgi_temp_path $NG_PREFIX/tmp/scgi;
    server { listen 127.0.0.1:$NG_PORT; root $DATA/images; location / { } }
}
EOF
log "== starting nginx on 127.0.0.1:$NG_PORT"
"$NGINX" -c "$NG_PREFIX/nginx.conf" -p "$NG_PREFIX" 2>>"$NG_PREFIX/logs/error.log" &
NG_PID=$!
wait_http "http://127.0.0.1:$NG_PORT/" || die "nginx did not start"

log "== checking identical bytes (every 16th image, twice: read, then from memory)"
i=0
while [ "$i" -lt "$NIMG" ]; do
    rel=$(printf 'bench/z/img%04d.png' "$i")
    id=$(awk -F'\t' -v n="$rel" '$2 == n { print $1 }' "$WORK/import.tsv")
    for k in 1 2; do
        curl -sf -o "$WORK/pf" "http://127.0.0.1:$PF_PORT/$rel" || die "pixflare: GET $rel"
        cmp -s "$WORK/pf" "$SRC/$rel" || die "$rel: pixflare's bytes differ ($k)"
    done
    curl -sf -o "$WORK/ng" "http://127.0.0.1:$NG_PORT/$(printf %.2s "$id")/$id/original.png" || die "nginx: GET $rel"
    cmp -s "$WORK/ng" "$SRC/$rel" || die "$rel: nginx's bytes differ"
    i=$((i + 16))
done

metric() { # name: its value in pixflare's /metrics
    curl -sf "http://127.0.0.1:$MET_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

RES=$WORK/results.txt
: >"$RES"
WRK="wrk -t$WTHREADS -c$CONNS -d${SECS}s --latency"
for alpha in $ALPHAS; do
    lua_script pixflare "$alpha" >"$WORK/pf-$alpha.lua"
    lua_script nginx "$alpha" >"$WORK/ng-$alpha.lua"
    log "== alpha $alpha: warm-up runs (${WARM}s each)"
    wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" -s "$WORK/ng-$alpha.lua" "http://127.0.0.1:$NG_PORT" >/dev/null
    wrk -t"$WTHREADS" -c"$CONNS" -d"${WARM}s" -s "$WORK/pf-$alpha.lua" "http://127.0.0.1:$PF_PORT" >/dev/null
    n=1
    while [ "$n" -le "$ROUNDS" ]; do
        for srv in nginx pixflare; do
            f=$OUT/raw/cache-$srv-a$alpha-$n.txt
            log "== wrk $srv alpha $alpha ($n/$ROUNDS)"
            if [ "$srv" = nginx ]; then
                $WRK -s "$WORK/ng-$alpha.lua" "http://127.0.0.1:$NG_PORT" >"$f"
                hr=-
            else
                h0=$(metric pixflare_cache_hits_total)
                m0=$(metric pixflare_cache_misses_total)
                $WRK -s "$WORK/pf-$alpha.lua" "http://127.0.0.1:$PF_PORT" >"$f"
                h1=$(metric pixflare_cache_hits_total)
                m1=$(metric pixflare_cache_misses_total)
                hr=$(awk -v a="$h0" -v b="$m0" -v c="$h1" -v d="$m1" \
                    'BEGIN { t = (c - a) + (d - b); printf "%.2f", (t > 0 ? 100 * (c - a) / t : 0) }')
            fi
            # shellcheck disable=SC2046 # four fields
            set -- $(parse_wrk "$f")
            echo "$alpha $srv $1 $2 $3 $4 $hr" >>"$RES"
            log "   $1 req/s, p50 $2 ms, p99 $3 ms, errors $4, hit ratio $hr"
        done
        n=$((n + 1))
    done
done
EV=$(metric pixflare_cache_evictions_total)
CB=$(metric pixflare_cache_bytes)
CO=$(metric pixflare_cache_objects)
RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PF_PID/status")
AVG=$((TOTAL_BYTES / NIMG))
CAP=$((CACHE_MB * 1048576 / AVG))
log "== policy simulation (bench/cachesim.c): $NIMG objects, cache $CAP objects"
SIM=$WORK/cachesim
cc -O2 -o "$SIM" "$ROOT/bench/cachesim.c" -lm
# shellcheck disable=SC2086 # a list of alphas
"$SIM" "$NIMG" "$CAP" 2000000 $ALPHAS >"$WORK/sim.txt"

{
    echo "# Hot-object cache: Zipf workload ten times the cache, pixflare vs nginx"
    echo
    echo "- pixflare: $REV, PIXFLARE_CACHE_MB=$CACHE_MB ($((CACHE_MB * 1048576)) bytes), defaults otherwise"
    echo "- files: $NIMG noise PNGs, $TOTAL_BYTES bytes in all (avg $AVG; $(awk -v t="$TOTAL_BYTES" -v c="$CACHE_MB" 'BEGIN { printf "%.1f", t / (c * 1048576) }')x the cache)"
    echo "- load: \`$WRK -s zipf.lua\` (paths drawn from Zipf(alpha) over the $NIMG images), warm-up ${WARM}s, nginx and pixflare alternately $ROUNDS times, best run kept"
    echo "- nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes 2, sendfile, open_file_cache, access_log off"
    echo "- machine: $(nproc) CPUs, shared with other work; $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "| alpha | nginx req/s | pixflare req/s | pixflare/nginx | pixflare hit ratio (best run; all runs) | nginx p50 / p99 (ms) | pixflare p50 / p99 (ms) | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    awk '
    { k = $1 SUBSEP $2
      if (!(k in best) || $3 > best[k]) { best[k] = $3; p50[k] = $4; p99[k] = $5; hr[k] = $7 }
      err[$1] += $6
      if ($2 == "pixflare") hrs[$1] = hrs[$1] (hrs[$1] == "" ? "" : ", ") $7
      if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    END { for (i = 1; i <= n; i++) { a = order[i]; ng = a SUBSEP "nginx"; pf = a SUBSEP "pixflare"
          printf "| %s | %.0f | %.0f | %.2f | %s%% (%s) | %.2f / %.2f | %.2f / %.2f | %d |\n", a, best[ng], best[pf],
              (best[ng] > 0 ? best[pf] / best[ng] : 0), hr[pf], hrs[a], p50[ng], p99[ng], p50[pf], p99[pf], err[a] } }
    ' "$RES"
    echo
    echo "At the end: pixflare_cache_bytes $CB, pixflare_cache_objects $CO, pixflare_cache_evictions_total $EV; pixflare's RSS $RSS KiB."
    echo
    echo "Candidate policies on the same shape (\`cachesim $NIMG $CAP 2000000 $ALPHAS\`, one object size):"
    echo
    echo '```'
    cat "$WORK/sim.txt"
    echo '```'
} >"$OUT/cache.md"
cat "$OUT/cache.md"
log "bench/cache: written to bench/out/cache.md (raw wrk output in bench/out/raw/cache-*)"
