#!/bin/sh
# A throwaway ClickHouse server for the tests (scripts/test.sh, the
# integration tests): Debian's clickhouse-server (18.16 in Debian 12) with a
# config.xml and users.xml of its own, written into a directory that also
# holds its data, temporary files and logs. It listens on 127.0.0.1 only:
# an HTTP port and a native TCP port (for clickhouse-client), both free ones
# below Linux's ephemeral range; no interserver port (no replication). Sized
# for a 2-core machine: 4 background merge threads, 64 MB caches, at most
# 2 GB per query and 3 GB for all; no query, thread or part log tables. Its
# log (level information, at most 10 MB kept) is DIR/log/server.log, with
# the errors again in DIR/log/error.log; a start moves the run before's to
# *.prev. Time zone UTC, or CH_TIMEZONE. Users, both with full access from the loopback
# only: `default` without a password, `pixflare` with the password
# `pixflare-test-secret`. The server runs as whoever runs this (18.16 runs
# as root without complaint) in a session of its own, so that a Ctrl-C at
# the terminal leaves it to the caller's EXIT trap. Uses
# /usr/sbin/clickhouse-server, or CH_SERVER when set; waits for it with
# curl.
#
#   sh scripts/ch.sh start DIR      writes the configuration and starts the
#                                   server (0.3 s); returns once GET /ping
#                                   answers (else, after CH_START_TIMEOUT
#                                   seconds, default 30, prints the log's
#                                   tail and fails); writes DIR/url and
#                                   prints nothing when all goes well;
#                                   running (or paused) already: does
#                                   nothing; stopped (halt, crash): starts
#                                   it again, same ports (fails if one is
#                                   taken meanwhile: the URL cannot move),
#                                   same data
#   sh scripts/ch.sh url DIR        its HTTP interface: http://127.0.0.1:PORT/
#   sh scripts/ch.sh port DIR       the HTTP port
#   sh scripts/ch.sh tcp-port DIR   the native protocol's port
#   sh scripts/ch.sh halt DIR       stops the server (SIGTERM: a graceful
#                                   shutdown, 0.5-2 s; SIGKILL after 30 s)
#                                   and keeps DIR for a start
#   sh scripts/ch.sh crash DIR      kill -9: no shutdown; keeps DIR
#   sh scripts/ch.sh pause DIR      SIGSTOP: the kernel still accepts
#                                   connections, nothing answers them
#   sh scripts/ch.sh resume DIR     SIGCONT
#   sh scripts/ch.sh stop DIR       stops the server (as halt) and removes DIR
#
# DIR may be an empty directory (say from mktemp -d) or not exist yet.
set -eu

MARK=.pixflare-test-ch # what stop looks for before it removes a directory
CH_PASSWORD=pixflare-test-secret

usage() {
    echo "usage: sh scripts/ch.sh start|stop|halt|crash|pause|resume|url|port|tcp-port DIR" >&2
    exit 2
}

die() {
    echo "ch.sh: $*" >&2
    exit 1
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case "$cmd" in
start | stop | halt | crash | pause | resume | url | port | tcp-port) ;;
*) usage ;;
esac
server=${CH_SERVER:-/usr/sbin/clickhouse-server}

# The directory, absolute (the server runs from /) and, once it exists,
# canonical: its path is how the server's process is recognised.
case "$dir" in
/*) ;;
*) dir="$(pwd)/$dir" ;;
esac
[ ! -d "$dir" ] || dir=$(cd -P "$dir" && pwd -P)

port() {
    [ -f "$dir/port" ] || die "no server in $dir (sh scripts/ch.sh start $dir)"
    cat "$dir/port"
}

# pid: the server's process id, when it runs (a zombie does not; nor does a
# process that took the id over since, whose command line differs).
pid() {
    [ -f "$dir/pid" ] || return 1
    p=$(cat "$dir/pid")
    case "$p" in
    "" | *[!0-9]*) return 1 ;;
    esac
    kill -0 "$p" 2>/dev/null || return 1
    tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qxF -- "--config-file=$dir/config.xml" ||
        return 1
    echo "$p"
}

running() { pid >/dev/null; }

new_ports() {
    # Two distinct ports in 30000-32767: below Linux's ephemeral range
    # (32768-60999), so nothing the kernel hands out later (the tests' own
    # servers bind port 0) takes them while the server is halted; not
    # scripts/pg.sh's 20000-29999. A port already taken is seen at start and
    # others tried.
    n=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    http=$((30000 + n % 2768))
    tcp=$((30000 + (n / 2768) % 2768))
    [ "$tcp" -ne "$http" ] || tcp=$((30000 + (http - 30000 + 1) % 2768))
    echo "$http" >"$dir/port"
    echo "$tcp" >"$dir/tcp_port"
}

xml() { # text for an XML element
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
}

write_config() {
    d=$(xml "$dir")
    cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- written by scripts/ch.sh: a throwaway server for tests -->
<yandex>
    <logger>
        <level>information</level>
        <log>$d/log/server.log</log>
        <errorlog>$d/log/error.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$(port)</http_port>
    <tcp_port>$(cat "$dir/tcp_port")</tcp_port>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <format_schema_path>$d/format_schemas/</format_schema_path>
    <users_config>$d/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>$(xml "${CH_TIMEZONE:-UTC}")</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF
    # The password in the clear: a test secret, in a 0700 directory.
    cat >"$dir/users.xml" <<EOF
<?xml version="1.0"?>
<!-- written by scripts/ch.sh: a throwaway server for tests -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <max_memory_usage_for_all_queries>3000000000</max_memory_usage_for_all_queries>
            <background_pool_size>4</background_pool_size>
            <background_schedule_pool_size>4</background_schedule_pool_size>
            <log_queries>0</log_queries>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <pixflare>
            <password>$CH_PASSWORD</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </pixflare>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start() {
    [ -x "$server" ] ||
        die "no $server (apt-get install clickhouse-server, or set CH_SERVER)"
    command -v curl >/dev/null 2>&1 || die "needs curl (apt-get install curl)"
    if running; then
        return 0
    fi
    mkdir -p "$dir"
    dir=$(cd -P "$dir" && pwd -P)
    first=false
    if [ ! -f "$dir/$MARK" ]; then
        [ -z "$(ls -A "$dir")" ] || die "$dir is neither empty nor a test server's directory"
        chmod 700 "$dir"
        : >"$dir/$MARK"
        mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files" "$dir/format_schemas"
        new_ports
        first=true
    fi
    timeout=${CH_START_TIMEOUT:-30}
    tries=0
    while :; do
        write_config
        # This try's logs alone in server.log and error.log; the run
        # before's (a restart) kept as *.prev.
        for f in server.log error.log stdout.log; do
            [ ! -f "$dir/log/$f" ] || mv -f "$dir/log/$f" "$dir/log/$f.prev"
        done
        rm -f "$dir/pid"
        # The server in a session of its own, its pid from the shell that
        # becomes it (setsid forks when it must).
        # shellcheck disable=SC2016 # $1 and $$ are the inner sh's
        setsid sh -c 'echo $$ >"$1" && shift && exec "$@"' sh "$dir/pid" \
            "$server" "--config-file=$dir/config.xml" \
            </dev/null >"$dir/log/stdout.log" 2>&1 &
        url="http://127.0.0.1:$(port)/"
        deadline=$(($(date +%s) + timeout))
        up=false
        while :; do
            # Its log says it listens: the answer to /ping is not another
            # server's on that port.
            if grep -q "Ready for connections" "$dir/log/server.log" 2>/dev/null &&
                [ "$(curl -s --max-time 2 "${url}ping" 2>/dev/null)" = "Ok." ]; then
                up=true
                break
            fi
            # Not yet started (no pid file) or gone?
            if [ -f "$dir/pid" ] && ! running; then
                break
            fi
            [ "$(date +%s)" -lt "$deadline" ] || break
            sleep 0.05
        done
        if $up && running; then
            break
        fi
        if ! running && grep -q "Address already in use" "$dir/log/error.log" 2>/dev/null; then
            $first ||
                die "a port of $dir is taken now (http $(port), tcp $(cat "$dir/tcp_port"));" \
                    "its URL cannot change: stop it and start another"
            tries=$((tries + 1))
            if [ "$tries" -lt 10 ]; then
                new_ports
                continue
            fi
        fi
        if p=$(pid); then
            kill -KILL "-$p" 2>/dev/null || true
            msg="did not answer ${url}ping within $timeout s (killed)"
        else
            msg="exited before it answered ${url}ping"
        fi
        {
            echo "---- $dir/log/server.log"
            tail -n 20 "$dir/log/server.log" 2>/dev/null || true
            echo "---- $dir/log/stdout.log"
            tail -n 10 "$dir/log/stdout.log" 2>/dev/null || true
        } >&2
        die "the server $msg"
    done
    echo "$url" >"$dir/url"
}

# wait_gone PID SECONDS: whether the process has ended within SECONDS.
wait_gone() {
    i=0
    while [ "$i" -lt "$(($2 * 10))" ]; do
        [ "$(pid)" = "$1" ] || return 0
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(pid)" != "$1" ]
}

halt() {
    p=$(pid) || return 0
    kill -CONT "$p" 2>/dev/null || true # paused, it would never see the TERM
    kill -TERM "$p" 2>/dev/null || true
    if ! wait_gone "$p" 30; then
        echo "ch.sh: the server in $dir did not stop within 30 s: killed" >&2
        kill -KILL "-$p" 2>/dev/null || true
        wait_gone "$p" 10 || die "cannot kill the server in $dir (pid $p)"
    fi
}

stop() {
    [ -d "$dir" ] || return 0
    if [ -z "$(ls -A "$dir")" ]; then # start failed before it began
        rmdir "$dir"
        return 0
    fi
    [ -f "$dir/$MARK" ] || die "$dir is not a test server's directory (no $MARK): left alone"
    halt
    rm -rf "$dir"
}

signal() { # signal SIG: to the running server
    p=$(pid) || die "no server running in $dir"
    kill "-$1" "$p"
}

case "$cmd" in
start) start ;;
stop) stop ;;
halt)
    [ -f "$dir/$MARK" ] || die "no server in $dir"
    halt
    ;;
crash)
    [ -f "$dir/$MARK" ] || die "no server in $dir"
    if p=$(pid); then
        kill -KILL "-$p" # its process group: itself (setsid)
        wait_gone "$p" 10 || die "cannot kill the server in $dir (pid $p)"
    fi
    ;;
pause) signal STOP ;;
resume) signal CONT ;;
url) echo "http://127.0.0.1:$(port)/" ;;
port) port ;;
tcp-port)
    port >/dev/null
    cat "$dir/tcp_port"
    ;;
esac
