#!/bin/sh
# Install the Debian packages Pixflare needs. Does nothing when they are all
# present; uses sudo when not root. When another apt-get, dpkg or
# unattended-upgrades holds the package lock, waits for it (up to 10
# minutes, saying so) instead of failing.
#
#   sh scripts/deps.sh          build and run (make, make run): a C compiler,
#                               pkg-config and the libraries' -dev packages
#   sh scripts/deps.sh geoip    what builds the GeoIP database
#                               (make geoip): tor-geoipdb, the mmdb writer
#   sh scripts/deps.sh bench    the first, and python3 (make bench; bench/run.sh
#                               installs nginx and wrk itself)
#   sh scripts/deps.sh test     all of the above, and what the tests need
#                               (make test): clang and clang-format, cmocka,
#                               pytest, faketime, Debian's postgresql (a
#                               throwaway server, scripts/pg.sh) and
#                               python3-psycopg2, clickhouse-server (a
#                               throwaway server, scripts/ch.sh; the tests
#                               speak HTTP to it) and clickhouse-client (for
#                               people), prometheus (promtool and a server),
#                               systemd (systemd-analyze), groff-base and
#                               man-db (the manual page), chromium, node and
#                               npm when there is no npm command, and
#                               tests/dashboard's npm packages (npm ci, when
#                               node_modules is missing or older than
#                               package-lock.json)
#   sh scripts/deps.sh --list [GROUP]   print the packages, install nothing
set -e
list=""
if [ "${1-}" = --list ]; then
    list=1
    shift
fi
group=${1:-run}
case "$group" in
run | geoip | bench | test) ;;
*)
    echo "usage: sh scripts/deps.sh [--list] [run|geoip|bench|test]" >&2
    exit 2
    ;;
esac
RUN="build-essential pkg-config zlib1g-dev libmicrohttpd-dev libvips-dev libjansson-dev
libsqlite3-dev libssl-dev libpq-dev libcurl4-openssl-dev libmaxminddb-dev libxxhash-dev libpcre2-dev libhyperscan-dev curl"
GEOIP="tor-geoipdb libmaxmind-db-writer-perl mmdb-bin"
TEST="clang clang-format libclang-rt-14-dev libcmocka-dev python3 python3-pytest python3-pytest-xdist faketime valgrind
postgresql python3-psycopg2 clickhouse-server clickhouse-client prometheus systemd groff-base
man-db chromium"
case "$group" in
run) PKGS="$RUN" ;;
geoip) PKGS="$GEOIP" ;;
bench) PKGS="$RUN python3" ;;
test)
    PKGS="$RUN $GEOIP $TEST"
    # Only when there is no npm at all: Debian's npm over another nodejs (say
    # nodesource's, which bundles npm) would conflict.
    command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
    ;;
esac
if [ -n "$list" ]; then
    echo $PKGS
    exit 0
fi

# apt-get, waiting for the locks another apt holds. apt-get install waits for
# dpkg's lock itself (DPkg::Lock::Timeout, printing "Waiting for cache
# lock"); apt-get update does not wait for the lists' lock, so it is retried.
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_get() {
    deadline=$(($(date +%s) + 600))
    said=""
    err=$(mktemp)
    while :; do
        if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 \
            "$@" 2>"$err"; then
            cat "$err" >&2
            rm -f "$err"
            return 0
        fi
        if grep -q "Could not get lock" "$err" && [ "$(date +%s)" -lt "$deadline" ]; then
            [ -n "$said" ] || echo "deps.sh: another apt is running; waiting for its lock" \
                "(up to 10 minutes)..." >&2
            said=1
            sleep 5
            continue
        fi
        cat "$err" >&2
        rm -f "$err"
        return 1
    done
}

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "Installing Debian packages:$missing"
    apt_get update
    apt_get install -y --no-install-recommends $missing
fi
[ "$group" = test ] || exit 0

# The browser test's npm packages (playwright-core, pinned in
# package-lock.json). npm writes node_modules/.package-lock.json on every
# install, so it dates node_modules.
dir="$(cd "$(dirname "$0")/.." && pwd)/tests/dashboard"
if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
    [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "Installing tests/dashboard's npm packages (npm ci)"
    (cd "$dir" && npm ci --quiet --no-audit --no-fund)
fi
