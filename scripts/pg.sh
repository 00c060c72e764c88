#!/bin/sh
# A throwaway PostgreSQL server for the tests (scripts/test.sh, the
# integration tests): initdb into a directory of its own, served on
# 127.0.0.1 at a free port, with a unix socket inside that directory, tuned
# for speed rather than safety (fsync and full_page_writes off: what an
# operating system crash would need; a crash of the server itself still
# loses no committed transaction, so synchronous_commit stays on, and costs
# little without fsync). The superuser is `pixflare` with the password
# `pixflare-test-secret`, checked over TCP (scram-sha-256); the socket
# trusts everyone who can reach it. Run as root, the server runs as the
# `postgres` user; run as anyone else, as that user. Uses
# /usr/lib/postgresql/<highest version>/bin, or PG_BINDIR when set.
#
#   sh scripts/pg.sh start DIR          initdb (first time) and start; writes
#                                       DIR/url (the `postgres` database's URL)
#                                       and prints nothing when all goes well;
#                                       running already: does nothing; stopped
#                                       (crash): starts it again, same port
#   sh scripts/pg.sh url DIR [DBNAME]   the URL of DBNAME (default postgres)
#   sh scripts/pg.sh createdb DIR NAME  a fresh, empty database NAME (dropped
#                                       first when it exists); prints its URL
#   sh scripts/pg.sh dropdb DIR NAME    drops NAME (connections cut) if present
#   sh scripts/pg.sh crash DIR          stops the server at once (pg_ctl -m
#                                       immediate: no shutdown, a crash for
#                                       its clients); keeps DIR for a start
#   sh scripts/pg.sh stop DIR           stops the server (fast) and removes DIR
#
# DIR may be an empty directory (say from mktemp -d) or not exist yet. Run
# as root with a DIR the postgres user cannot reach (say under pytest's
# 0700 /tmp/pytest-of-root), the server's own files go to a directory of
# /tmp instead, named in DIR/home and removed with DIR.
set -eu

PG_USER=pixflare
PG_PASSWORD=pixflare-test-secret
MARK=.pixflare-test-pg # what stop looks for before it removes a directory

usage() {
    echo "usage: sh scripts/pg.sh start|stop|crash DIR | url DIR [DBNAME] |" \
        "createdb|dropdb DIR NAME" >&2
    exit 2
}

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
case "$cmd" in
start | stop | crash) [ $# -eq 2 ] || usage ;;
url) [ $# -le 3 ] || usage ;;
createdb | dropdb) [ $# -eq 3 ] || usage ;;
*) usage ;;
esac

if [ -n "${PG_BINDIR-}" ]; then
    bindir=$PG_BINDIR
else
    bindir=""
    # shellcheck disable=SC2012 # the versions, numerically: 9.6 < 15 < 16
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n); do
        [ -x "$d/initdb" ] && bindir=$d
    done
    if [ -z "$bindir" ] && command -v initdb >/dev/null 2>&1; then
        bindir=$(dirname "$(command -v initdb)")
    fi
fi

root=false
[ "$(id -u)" -ne 0 ] || root=true

# as_pg CMD ARGS...: run as the server's owner (postgres when we are root).
if $root; then
    id postgres >/dev/null 2>&1 ||
        die "run as root, needs the postgres user (apt-get install postgresql)"
    if command -v runuser >/dev/null 2>&1; then
        as_pg() { runuser -u postgres -- "$@"; }
    else
        as_pg() {
            # su wants one command line: quote every word for sh.
            line=""
            for a in "$@"; do
                line="$line '$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'"
            done
            su postgres -s /bin/sh -c "$line"
        }
    fi
else
    as_pg() { "$@"; }
fi

valid_name() {
    case "$1" in
    "" | *[!A-Za-z0-9_]*) die "database names here use only A-Z a-z 0-9 _: '$1'" ;;
    esac
}

# The directory, absolute (the postgres user cannot resolve a path relative
# to root's working directory).
case "$dir" in
/*) ;;
*) dir="$(pwd)/$dir" ;;
esac

# Where the server's files are: DIR, or the directory DIR/home names.
home() {
    if [ -f "$dir/home" ]; then
        cat "$dir/home"
    else
        echo "$dir"
    fi
}

port() {
    [ -f "$dir/port" ] || die "no server in $dir (sh scripts/pg.sh start $dir)"
    cat "$dir/port"
}

url() {
    echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$(port)/$1"
}

running() {
    h=$(home)
    [ -f "$h/data/PG_VERSION" ] &&
        (cd / && as_pg "$bindir/pg_ctl" -D "$h/data" status >/dev/null 2>&1)
}

psql_admin() {
    # Over the socket (trusted), as the superuser, on the maintenance db.
    (cd / && as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$(home)/sock" -p "$(port)" \
        -U "$PG_USER" -d postgres "$@")
}

new_port() {
    # A port below Linux's ephemeral range (32768-60999): nothing the kernel
    # hands out later (the tests' own servers bind port 0) can take it; a
    # port already taken is seen at start and another one tried.
    n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    echo $((20000 + n % 10000)) >"$dir/port"
}

init() {
    [ -z "$(ls -A "$dir")" ] || [ -f "$dir/$MARK" ] ||
        die "$dir is neither empty nor a test server's directory"
    : >"$dir/$MARK"
    h=$dir
    if $root; then
        chown postgres: "$dir"
        if ! as_pg test -w "$dir"; then
            h=$(mktemp -d /tmp/pixflare-pg.XXXXXX)
            : >"$h/$MARK"
            chown postgres: "$h"
            echo "$h" >"$dir/home"
        fi
    fi
    umask 077
    printf '%s\n' "$PG_PASSWORD" >"$h/pwfile"
    ! $root || chown postgres: "$h/pwfile"
    if ! (cd / && as_pg "$bindir/initdb" -D "$h/data" -U "$PG_USER" --pwfile="$h/pwfile" \
        --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --no-locale \
        --no-instructions) >"$dir/initdb.log" 2>&1; then
        rm -f "$h/pwfile"
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    rm -f "$h/pwfile"
    as_pg mkdir -p "$h/sock"
    new_port
}

start() {
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        die "no PostgreSQL server programs (apt-get install postgresql, or set PG_BINDIR)"
    fi
    if running; then
        return 0
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -f "$(home)/data/PG_VERSION" ] || init
    h=$(home)
    tries=0
    while :; do
        rm -f "$h/data/server.log"
        # postgresql.auto.conf, rewritten each try, wins over postgresql.conf.
        # shellcheck disable=SC2016 # $1 is the inner sh's
        cat <<EOF | as_pg sh -c 'cat >"$1"' sh "$h/data/postgresql.auto.conf"
# written by scripts/pg.sh: a throwaway server for tests
listen_addresses = '127.0.0.1'
port = $(port)
unix_socket_directories = '$h/sock'
max_connections = 300
fsync = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
logging_collector = off
log_min_messages = warning
EOF
        if (cd / && as_pg "$bindir/pg_ctl" -D "$h/data" -l "$h/data/server.log" -w -t 60 \
            start) >"$dir/pg_ctl.log" 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 10 ] || ! grep -q -e "could not bind" -e "already in use" \
            "$h/data/server.log" 2>/dev/null; then
            cat "$dir/pg_ctl.log" >&2
            tail -n 20 "$h/data/server.log" >&2 2>/dev/null || true
            die "the server did not start"
        fi
        new_port
    done
    url postgres >"$dir/url"
}

halt() { # halt MODE: pg_ctl stop -m MODE, when running
    if running; then
        (cd / && as_pg "$bindir/pg_ctl" -D "$(home)/data" -m "$1" -w -t 60 stop) >/dev/null ||
            die "pg_ctl stop failed (server log: $(home)/data/server.log)"
    fi
}

stop() {
    [ -d "$dir" ] || return 0
    if [ -z "$(ls -A "$dir")" ]; then # start failed before it began
        rmdir "$dir"
        return 0
    fi
    [ -f "$dir/$MARK" ] || die "$dir is not a test server's directory (no $MARK): left alone"
    halt fast
    h=$(home)
    if [ "$h" != "$dir" ] && [ -f "$h/$MARK" ]; then
        rm -rf "$h"
    fi
    rm -rf "$dir"
}

case "$cmd" in
start) start ;;
stop) stop ;;
crash)
    [ -f "$dir/$MARK" ] || die "no server in $dir"
    halt immediate
    ;;
url) url "${3:-postgres}" ;;
createdb)
    valid_name "$3"
    psql_admin -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS \"$3\" WITH (FORCE)" -c "CREATE DATABASE \"$3\""
    url "$3"
    ;;
dropdb)
    valid_name "$3"
    psql_admin -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS \"$3\" WITH (FORCE)"
    ;;
esac
