#!/bin/sh
# Build the country database Pixflare uses for GeoIP, offline, from Debian's
# tor-geoipdb data (see scripts/geoip.pl), and check the result.
#
#   sh scripts/geoip.sh [OUT]        (default: build/geoip/country.mmdb)
#
# GEOIP_IPV4_FILE / GEOIP_IPV6_FILE override the inputs (tests use small
# files). Up-to-date output is kept, so this is cheap to call from builds.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/geoip/country.mmdb}
v4=${GEOIP_IPV4_FILE:-/usr/share/tor/geoip}
v6=${GEOIP_IPV6_FILE:-/usr/share/tor/geoip6}
builder=$root/scripts/geoip.pl
pkgs='tor-geoipdb libmaxmind-db-writer-perl mmdb-bin'

die() { echo "geoip.sh: $*" >&2; exit 1; }

for f in "$v4" "$v6"; do
    [ -r "$f" ] || die "missing $f: apt-get install $pkgs"
done
perl -MMaxMind::DB::Writer::Tree -e1 2>/dev/null \
    || die "Perl module MaxMind::DB::Writer::Tree missing: apt-get install $pkgs"
command -v mmdblookup >/dev/null 2>&1 \
    || die "mmdblookup missing: apt-get install $pkgs"

start=$(date +%s.%N)
stale=

# Rebuild only when an input or the builder changed: a full build costs
# seconds, which adds up when every make run calls this.
# (find -newer, because test -nt is not POSIX.)
newer() { [ -n "$(find "$1" -prune -newer "$2" 2>/dev/null)" ]; }
if [ -s "$out" ] && newer "$out" "$v4" && newer "$out" "$v6" \
    && newer "$out" "$builder" && newer "$out" "$0"; then
    echo "geoip.sh: $out is up to date"
    stale=" ($out was not rebuilt: delete it to force a rebuild)"
else
    mkdir -p "$(dirname "$out")"
    perl "$builder" "$out" "$v4" "$v6"
fi

# A smoke test through libmaxminddb's own tool, so a file that the writer
# produced but readers reject never passes as built. 8.8.8.8 is in every
# real data set; test inputs without it may set GEOIP_CHECK_IP.
ip=${GEOIP_CHECK_IP:-8.8.8.8}
answer=$(mmdblookup --file "$out" --ip "$ip" country iso_code 2>&1) || true
cc=$(printf '%s\n' "$answer" | sed -n 's/^ *"\([A-Z0-9][A-Z0-9]\)" <utf8_string>$/\1/p')
answer=$(printf '%s' "$answer" | tr -s '\n ' '  ')
[ -n "$cc" ] || die "self-check failed: mmdblookup of $ip in $out gave" \
    "no country code:$answer$stale"

end=$(date +%s.%N)
echo "geoip.sh: $out: $(wc -c <"$out") bytes, $ip is $cc," \
    "$(awk "BEGIN { printf \"%.1f\", $end - $start }")s"
