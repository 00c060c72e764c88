#!/bin/sh
# Install the Debian packages Pixflare needs to build, run and test. Does
# nothing when they are all present; uses sudo when not root.
set -e
PKGS="build-essential clang clang-format pkg-config libmicrohttpd-dev libvips-dev
libjansson-dev libsqlite3-dev libssl-dev libcmocka-dev libclang-rt-14-dev
python3 python3-pytest curl libmaxminddb-dev libxxhash-dev tor-geoipdb
libmaxmind-db-writer-perl mmdb-bin faketime"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "Installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
