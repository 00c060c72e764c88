#!/bin/sh
# bench/insns.sh - instructions the server executes per request, counted by
# callgrind: a figure that does not move with the machine's load, for
# comparing two builds where wrk's req/s (bench/run.sh) is too noisy.
#
#   sh bench/insns.sh [BIN ...]     (default: build/pixflare, made first)
#
# For each binary, in a fresh data directory: imports the same seeded noise
# PNGs as bench/run.sh (small.png 56x56, large.png 260x256), starts
# `valgrind --tool=callgrind --instr-atstart=no BIN serve` with one HTTP
# thread and analytics at their defaults (embedded event log and realtime
# rollups; ANALYTICS_FSYNC_MS and ANALYTICS_REALTIME_FLUSH_MS at 60000, so
# that the timer threads run the same few times in every run), warms each
# URL up (the variant is made, the objects are cached, every thread has its
# event segment and rollup table), then switches collection on
# (callgrind_control -i on), sends BENCH_INSNS_REQUESTS (default 2000)
# keep-alive GETs of each object from one client, switches it off, and
# stops the server. The instructions of the collected window, over the
# requests, are the instructions per request, everything included: the
# event loop, libmicrohttpd, routing, the CDN, the event's capture and its
# sinks, the kernel excluded (callgrind counts user space).
#
# Output: one Markdown table on stdout (and bench/out/insns.md).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
N=${BENCH_INSNS_REQUESTS:-2000}
OUT=$ROOT/bench/out
. "$ROOT/bench/lib.sh"
die() { log "insns: $*"; exit 1; }

command -v valgrind >/dev/null 2>&1 || apt_need valgrind
command -v callgrind_control >/dev/null 2>&1 || die "callgrind_control not found (valgrind)"
if [ $# -eq 0 ]; then
    make -s all >&2
    set -- "$ROOT/build/pixflare"
fi
mkdir -p "$OUT"
WORK=$(mktemp -d)
PID=""
trap 'stop_pid "$PID"; drop_workdir "$WORK" insns' EXIT INT TERM

mkdir -p "$WORK/src/bench/imgs"
bench_pngs "$WORK/src/bench/imgs"

# One keep-alive client: N GETs of PATH, each read whole and checked.
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

echo "| binary | object | requests | instructions per request |"
echo "| --- | --- | ---: | ---: |"
{
    echo "| binary | object | requests | instructions per request |"
    echo "| --- | --- | ---: | ---: |"
} >"$OUT/insns.md"
run=0
for BIN in "$@"; do
    run=$((run + 1))
    DATA=$WORK/data$run
    export PIXFLARE_DATA_DIR=$DATA PIXFLARE_THREADS=1 ANALYTICS_FSYNC_MS=60000 \
        ANALYTICS_REALTIME_FLUSH_MS=60000
    "$BIN" import "$WORK/src" >/dev/null
    for obj in small.png large.png large.png/w128; do
        port=$(free_port)
        cg=$WORK/callgrind.$run.$(echo "$obj" | tr '/.' '__')
        # VIPSHOME elsewhere: libvips then loads none of its plugin modules
        # (HEIF, JXL, ...), one of which runs RDTSCP at load, an instruction
        # valgrind 3.19 does not know. PNG is in libvips itself.
        VIPSHOME=/nonexistent PIXFLARE_LISTEN=127.0.0.1:$port valgrind --tool=callgrind --instr-atstart=no \
            --callgrind-out-file="$cg" "$BIN" serve 2>"$cg.log" &
        PID=$!
        i=0
        until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
            i=$((i + 1))
            [ $i -lt 600 ] || die "$BIN did not start under valgrind (see $cg.log)"
            sleep 0.1
        done
        client "$port" "/bench/imgs/$obj" 50 || die "warm-up of $obj failed"
        callgrind_control -i on "$PID" >/dev/null
        client "$port" "/bench/imgs/$obj" "$N" || die "GETs of $obj failed"
        callgrind_control -i off "$PID" >/dev/null
        stop_pid "$PID"
        PID=""
        ir=$(cat "$cg"* 2>/dev/null | awk '/^totals:/ { s += $2 } END { print s + 0 }')
        [ "$ir" -gt 0 ] || die "no instructions collected for $obj"
        row="| $BIN | $obj | $N | $((ir / N)) |"
        echo "$row"
        echo "$row" >>"$OUT/insns.md"
    done
done
