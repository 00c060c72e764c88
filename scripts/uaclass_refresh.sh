#!/bin/sh
# scripts/uaclass_refresh.sh - refresh the bot patterns that
# src/analytics/uaclass.c matches user agents against, from the npm packages
# crawler-user-agents (github.com/monperrus/crawler-user-agents, MIT licence:
# named crawlers) and isbot (github.com/omrilotan/isbot, Unlicense: generic
# rules such as HTTP libraries).
#
#   sh scripts/uaclass_refresh.sh [VERSION]     crawler-user-agents' version
#                                               (default: the latest release;
#                                               ISBOT_VERSION for isbot's)
#
# Needs npm and node (only to fetch the packages and read isbot's list),
# python3, a C compiler and PCRE2 (libpcre2-dev). Rewrites, all committed so
# that `make` needs neither network nor node:
#   third_party/crawler-user-agents/patterns.txt   the patterns compiled, one a line,
#                                           verbatim from the package
#   third_party/crawler-user-agents/dropped.txt    patterns PCRE2 does not compile
#   third_party/crawler-user-agents/LICENSE        the package's licence text
#   third_party/crawler-user-agents/SOURCE         name, version, tarball, checksum
#   third_party/isbot/{patterns,dropped}.txt, LICENSE, SOURCE   the same for isbot
#   src/analytics/uaclass_data.c            the patterns as a C array
# and prints what changed (patterns added and removed). Review the diff, run
# the uaclass unit test (it asserts the accuracy on tests/data/ua_labelled.tsv
# with both engines, and that Hyperscan still takes every pattern, at worst as
# a prefilter for PCRE2 to confirm: otherwise uaclass.c falls back to PCRE2
# alone, hundreds of times slower), then commit.
set -eu
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
want=${1:-latest}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

command -v npm >/dev/null 2>&1 || {
    echo "uaclass_refresh.sh: npm is needed to fetch the package (apt-get install npm)" >&2
    exit 1
}
echo "Fetching crawler-user-agents@$want from the npm registry"
(cd "$tmp" && npm pack --silent "crawler-user-agents@$want" >pack.name)
tgz="$tmp/$(tail -n 1 "$tmp/pack.name")"
mkdir "$tmp/pkg"
tar -xzf "$tgz" -C "$tmp/pkg"
pkg="$tmp/pkg/package"
license=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["license"])' "$pkg/package.json")
[ "$license" = MIT ] || {
    echo "uaclass_refresh.sh: the package's licence is now '$license', not MIT: check it" \
        "before vendoring" >&2
    exit 1
}

# Every pattern, one a line (none holds a newline: checked).
python3 - "$pkg/crawler-user-agents.json" "$tmp/all.txt" <<'EOF'
import json, sys
entries = json.load(open(sys.argv[1], encoding="utf-8"))
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for e in entries:
        p = e["pattern"]
        if "\n" in p or "\r" in p or not p:
            sys.exit("uaclass_refresh.sh: a pattern with a line break or empty: %r" % p)
        out.write(p + "\n")
EOF

# The patterns are JavaScript regular expressions; keep those PCRE2 compiles
# the way uaclass.c does (no flags: case-sensitive, bytes, no UTF).
cat >"$tmp/check.c" <<'EOF'
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    FILE *in = fopen(argv[1], "r"), *ok = fopen(argv[2], "w"), *bad = fopen(argv[3], "w");
    char line[4096];
    uint32_t opts = argc == 5 ? PCRE2_CASELESS : 0;
    if (argc < 4 || in == NULL || ok == NULL || bad == NULL)
        return 1;
    while (fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)line, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
        if (re != NULL) {
            fprintf(ok, "%s\n", line);
            pcre2_code_free(re);
        } else {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            fprintf(bad, "%s\t%s at offset %zu\n", line, (char *)msg, (size_t)off);
        }
    }
    return fclose(ok) != 0 || fclose(bad) != 0;
}
EOF
${CC:-cc} -o "$tmp/check" "$tmp/check.c" $(pkg-config --cflags --libs libpcre2-8)
"$tmp/check" "$tmp/all.txt" "$tmp/patterns.txt" "$tmp/dropped.txt"

# isbot (Unlicense): generic rules that catch what no list names, HTTP
# libraries and "name/1.0" clients above all; matched case-insensitively, as
# isbot does. Its patterns live in index.js: node prints them.
want_isbot=${ISBOT_VERSION:-latest}
echo "Fetching isbot@$want_isbot from the npm registry"
(cd "$tmp" && npm pack --silent "isbot@$want_isbot" >isbot.name)
itgz="$tmp/$(tail -n 1 "$tmp/isbot.name")"
mkdir "$tmp/isbot"
tar -xzf "$itgz" -C "$tmp/isbot"
ipkg="$tmp/isbot/package"
ilicense=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["license"])' "$ipkg/package.json")
[ "$ilicense" = Unlicense ] || {
    echo "uaclass_refresh.sh: isbot's licence is now '$ilicense', not Unlicense: check it" >&2
    exit 1
}
node -e 'for (const p of require(process.argv[1]).list) { if (/[\r\n]/.test(p) || !p) process.exit(1); console.log(p); }' \
    "$ipkg/index.js" >"$tmp/iall.txt"
"$tmp/check" "$tmp/iall.txt" "$tmp/ipatterns.txt" "$tmp/idropped.txt" caseless
iversion=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$ipkg/package.json")
idir="$root/third_party/isbot"
mkdir -p "$idir"
touch "$idir/patterns.txt"
cp "$idir/patterns.txt" "$tmp/iold.txt"
cp "$tmp/ipatterns.txt" "$idir/patterns.txt"
cp "$tmp/idropped.txt" "$idir/dropped.txt"
cp "$ipkg/LICENSE" "$idir/LICENSE"
{
    echo "name: isbot"
    echo "version: $iversion"
    echo "licence: $ilicense (LICENSE beside this file)"
    echo "upstream: https://github.com/omrilotan/isbot"
    echo "tarball: $(basename "$itgz")"
    echo "sha256: $(sha256sum "$itgz" | cut -d' ' -f1)"
    echo "fetched: $(date -u +%Y-%m-%d)"
    echo "refresh: sh scripts/uaclass_refresh.sh"
} >"$idir/SOURCE"

dir="$root/third_party/crawler-user-agents"
mkdir -p "$dir"
old_version=$(sed -n 's/^version: //p' "$dir/SOURCE" 2>/dev/null || true)
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$pkg/package.json")
touch "$dir/patterns.txt"
cp "$dir/patterns.txt" "$tmp/old.txt"

cp "$tmp/patterns.txt" "$dir/patterns.txt"
cp "$tmp/dropped.txt" "$dir/dropped.txt"
cp "$pkg/LICENSE" "$dir/LICENSE"
{
    echo "name: crawler-user-agents"
    echo "version: $version"
    echo "licence: $license (LICENSE beside this file)"
    echo "upstream: https://github.com/monperrus/crawler-user-agents"
    echo "tarball: $(basename "$tgz")"
    echo "sha256: $(sha256sum "$tgz" | cut -d' ' -f1)"
    echo "fetched: $(date -u +%Y-%m-%d)"
    echo "refresh: sh scripts/uaclass_refresh.sh"
} >"$dir/SOURCE"

# The C array: several patterns a line, so that the file stays far under the
# 1,000 lines scripts/check_structure.py allows.
python3 - "$dir/patterns.txt" "$root/src/analytics/uaclass_data.c" "$version" "$idir/patterns.txt" "$iversion" <<'EOF'
import sys
def lit(p):
    return '"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"'
def packed(path):
    pats = open(path, encoding="utf-8").read().split("\n")[:-1]
    lines, cur = [], "   "
    for p in pats:
        item = " " + lit(p) + ","
        if len(cur) + len(item) > 99 and cur.strip():
            lines.append(cur)
            cur = "   "
        cur += item
    if cur.strip():
        lines.append(cur)
    return "\n".join(lines)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write("""/* uaclass_data.c - GENERATED by scripts/uaclass_refresh.sh: do not edit.
 *
 * The crawler user-agent patterns of the npm package crawler-user-agents %s
 * (github.com/monperrus/crawler-user-agents), MIT licence: Copyright (c) 2017
 * Martin Monperrus; the licence text is third_party/crawler-user-agents/LICENSE.
 * Then the generic rules of the npm package isbot %s
 * (github.com/omrilotan/isbot), Unlicense (public domain; third_party/isbot/LICENSE).
 * JavaScript regular expressions, each compiled by PCRE2 unchanged; the ones
 * it does not compile are left out (third_party/NAME/dropped.txt). */
#include "analytics/uaclass_int.h"

const char uaclass_data_version[] = "crawler-user-agents %s, isbot %s";

/* Packed, not clang-formatted: one pattern a line would be over the 1,000
 * lines scripts/check_structure.py allows. */
/* clang-format off */
const char *const uaclass_data_patterns[] = {
%s
};

/* Matched case-insensitively. */
const char *const uaclass_data_generic[] = {
%s
};
/* clang-format on */

const size_t uaclass_data_count = sizeof uaclass_data_patterns / sizeof uaclass_data_patterns[0];
const size_t uaclass_data_generic_count =
    sizeof uaclass_data_generic / sizeof uaclass_data_generic[0];
""" % (sys.argv[3], sys.argv[5], sys.argv[3], sys.argv[5], packed(sys.argv[1]), packed(sys.argv[4])))
EOF
if command -v clang-format >/dev/null 2>&1; then
    clang-format -i "$root/src/analytics/uaclass_data.c"
fi

echo "crawler-user-agents ${old_version:-none} -> $version:" \
    "$(wc -l <"$dir/patterns.txt") patterns, $(wc -l <"$dir/dropped.txt") dropped"
echo "isbot -> $iversion: $(wc -l <"$idir/patterns.txt") patterns, $(wc -l <"$idir/dropped.txt") dropped;" \
    "$(sort "$idir/patterns.txt" | comm -13 "$(sort "$tmp/iold.txt" >"$tmp/iold.s" && echo "$tmp/iold.s")" - | grep -c . || true) added," \
    "$(sort "$idir/patterns.txt" | comm -23 "$tmp/iold.s" - | grep -c . || true) removed"
[ ! -s "$idir/dropped.txt" ] || sed 's/^/  isbot dropped: /' "$idir/dropped.txt"
if [ -s "$dir/dropped.txt" ]; then
    echo "Dropped (PCRE2 does not compile them):"
    sed 's/^/  /' "$dir/dropped.txt"
fi
added=$(sort "$dir/patterns.txt" | comm -13 "$(sort "$tmp/old.txt" >"$tmp/old.s" && echo "$tmp/old.s")" -)
removed=$(sort "$dir/patterns.txt" | comm -23 "$tmp/old.s" -)
echo "Added: $(printf '%s' "$added" | grep -c . || true)"
[ -z "$added" ] || printf '%s\n' "$added" | sed 's/^/  + /'
echo "Removed: $(printf '%s' "$removed" | grep -c . || true)"
[ -z "$removed" ] || printf '%s\n' "$removed" | sed 's/^/  - /'
