# bench/lib.sh - helpers shared by the bench/*.sh scripts
# (sourced, not run).

log() { printf '%s\n' "$*" >&2; }

# Install the Debian packages named (nothing when none): apt-get update only
# when the package lists cannot satisfy the install. The packages' init
# scripts may not start a service here (policy-rc.d); the scripts start
# their own servers anyway.
apt_need() {
    [ -n "$*" ] || return 0
    _sudo=""
    [ "$(id -u)" -eq 0 ] || _sudo="sudo"
    log "== installing: $*"
    if ! DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -q "$@"; then
        $_sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -q "$@"
    fi
}

# Stop a background process of this shell, if it still runs, and reap it.
stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}

# Remove the work directory $1, or keep it (BENCH_KEEP=1) and say where;
# $2 names the script in that message.
drop_workdir() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "$2: work dir kept: $1"
    else
        rm -rf "$1"
    fi
}

# bench_pngs DIR: the two seeded noise PNGs of the serving benchmarks
# (they do not compress): DIR/small.png 56x56 (9,532 bytes) and
# DIR/large.png 260x256 (200,064 bytes). Needs $PY.
bench_pngs() {
"$PY" - "$1" <<'EOF'
import random, struct, sys, zlib

def png(path, w, h, seed):
    rnd = random.Random(seed)
    rows = b"".join(b"\x00" + rnd.randbytes(w * 3) for _ in range(h))
    def chunk(tag, body):
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xffffffff))
    data = (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)

png(sys.argv[1] + "/small.png", 56, 56, 1)
png(sys.argv[1] + "/large.png", 260, 256, 2)
EOF
}

# A free TCP port on 127.0.0.1 (needs $PY, a python3).
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ch_start DIR: start a clickhouse-server of our own (Debian's
# clickhouse-server; /usr/sbin/clickhouse-server and /usr/bin/clickhouse-client
# unless CH_SERVER / CH_CLIENT say otherwise), with its config, data and logs
# under DIR, listening on 127.0.0.1 only, on free ports, query_log on
# (flushed every second). Waits until it answers, or dies (needs a die
# function). Sets CH_PID (stop it with stop_pid), CH_TCP, CH_HTTP,
# CH_VERSION and CH_DEFAULT_THREADS; `chc ARGS` runs clickhouse-client
# against it.
ch_start() {
    CH=$1
    CH_SERVER=${CH_SERVER:-/usr/sbin/clickhouse-server}
    CH_CLIENT=${CH_CLIENT:-/usr/bin/clickhouse-client}
    mkdir -p "$CH/data" "$CH/tmp" "$CH/user_files" "$CH/format_schemas" "$CH/log"
    CH_TCP=$(free_port)
    CH_HTTP=$(free_port)
    while [ "$CH_HTTP" = "$CH_TCP" ]; do CH_HTTP=$(free_port); done
    cat >"$CH/config.xml" <<CHEOF
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
CHEOF
    cat >"$CH/users.xml" <<'CHEOF'
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
CHEOF
    log "== starting clickhouse-server on 127.0.0.1:$CH_TCP (data in the work dir)"
    "$CH_SERVER" --config-file="$CH/config.xml" >"$CH/log/stdout.log" 2>&1 &
    CH_PID=$!
    _i=0
    until chc -q 'SELECT 1' >/dev/null 2>&1; do
        _i=$((_i + 1))
        if [ "$_i" -gt 300 ] || ! kill -0 "$CH_PID" 2>/dev/null; then
            cat "$CH/log/stdout.log" "$CH/log/server.err.log" >&2 2>/dev/null || true
            die "clickhouse-server did not start"
        fi
        sleep 0.1
    done
    CH_VERSION=$(chc -q 'SELECT version()')
    CH_DEFAULT_THREADS=$(chc -q "SELECT value FROM system.settings WHERE name = 'max_threads'")
}
chc() { "$CH_CLIENT" --host 127.0.0.1 --port "$CH_TCP" "$@"; }

# Prints "req_per_s p50_ms p99_ms errors" for a wrk output file (wrk
# --latency: the 50% and 99% lines; errors: non-2xx/3xx and socket errors).
parse_wrk() {
    awk '
    function ms(v) {
        if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
        if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
        if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
        if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
        return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /Socket errors:/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { v = $i; sub(/,/, "", v); err += v } }
    END { printf "%s %.3f %.3f %d\n", rps == "" ? 0 : rps, p50, p99, err }
    ' "$1"
}
