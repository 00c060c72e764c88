#!/bin/sh
# Install the Debian packages Pixflare needs to build, run and test. Does
# nothing when they are all present; uses sudo when not root.
#
#   sh scripts/deps.sh        build and run (make run)
#   sh scripts/deps.sh test   also what the tests need (make test): Debian's
#                             postgresql (a throwaway server, scripts/pg.sh)
#                             and python3-psycopg2, clickhouse-server (a
#                             throwaway server, scripts/ch.sh; the tests
#                             speak HTTP to it) and clickhouse-client (for
#                             people), chromium, node and npm
#                             when there is no npm command, and
#                             tests/dashboard's npm packages (npm ci, when
#                             node_modules is missing or older than
#                             package-lock.json)
set -e
case "${1-}" in
"" | test) ;;
*)
    echo "usage: sh scripts/deps.sh [test]" >&2
    exit 2
    ;;
esac
PKGS="build-essential clang clang-format pkg-config libmicrohttpd-dev libvips-dev
libjansson-dev libsqlite3-dev libssl-dev libcmocka-dev libclang-rt-14-dev
python3 python3-pytest curl libmaxminddb-dev libxxhash-dev tor-geoipdb
libmaxmind-db-writer-perl mmdb-bin faketime zlib1g-dev libpq-dev libcurl4-openssl-dev"
if [ "${1-}" = test ]; then
    PKGS="$PKGS postgresql python3-psycopg2 clickhouse-server clickhouse-client chromium"
    # Only when there is no npm at all: Debian's npm over another nodejs (say
    # nodesource's, which bundles npm) would conflict.
    command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "Installing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
[ "${1-}" = test ] || exit 0

# The browser test's npm packages (playwright-core, pinned in
# package-lock.json). npm writes node_modules/.package-lock.json on every
# install, so it dates node_modules.
dir="$(cd "$(dirname "$0")/.." && pwd)/tests/dashboard"
if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
    [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "Installing tests/dashboard's npm packages (npm ci)"
    (cd "$dir" && npm ci --quiet --no-audit --no-fund)
fi
