#!/bin/sh
# tests/fuzz/coverage.sh - source line coverage of each fuzz target's corpus.
#
# Usage: sh tests/fuzz/coverage.sh [TARGET...]   (default: every target)
#
# Builds each target with clang's source-based coverage
# (-fprofile-instr-generate -fcoverage-mapping, no sanitizers) into
# build/fuzz-coverage/ (OUT overrides), runs it once over every file of its
# corpus (CORPUS, default tests/fuzz/corpus; <name>/ under it), and prints
# the line coverage llvm-cov reports for the code the target is about: its
# parser's file(s), or for targets that drive a few functions of a larger
# file, those functions only (subject_for below).
set -u

cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=tests/fuzz/targets.sh
. tests/fuzz/targets.sh
CC=${FUZZ_CC:-clang}
OUT=${OUT:-build/fuzz-coverage}
CORPUS=${CORPUS:-tests/fuzz/corpus}
targets=${*:-$FUZZ_TARGETS}
major=$($CC -dumpversion | cut -d. -f1)
PROFDATA=$(command -v "llvm-profdata-$major" || command -v llvm-profdata)
COV=$(command -v "llvm-cov-$major" || command -v llvm-cov)
mkdir -p "$OUT/logs" || exit 2
make -s build/gen/dash_assets.c >/dev/null 2>&1

# "FILE..." or "FILE:FUNCTION,FUNCTION": what a target's coverage is
# measured on.
subject_for() {
    case $1 in
    urlpath) echo "src/cdn/urlpath.c" ;;
    range) echo "src/http/hdr.c" ;;
    etag) echo "src/http/hdr.c:hdr_etag_matches,hdr_etag_matches_strong,etag_list_matches,skip_ows" ;;
    cron) echo "src/base/cron.c" ;;
    config) echo "src/config/config.c" ;;
    date) echo "src/base/timeutil.c:timeutil_parse_iso8601,timeutil_format_iso8601,timeutil_days_in_month,digits" ;;
    evlog | spool) echo "src/analytics/evlog_format.c" ;;
    chrows) echo "src/analytics/chrows.c" ;;
    query) echo "src/api/query.c src/api/auth.c" ;;
    # dash: dash_route_http and handle are the libmicrohttpd glue, stubbed
    dash) echo "src/api/dash.c:dash_serve,find" ;;
    churl) echo "src/analytics/clickhouse.c:url_where,url_database,clickhouse_valid_name,clickhouse_open" ;;
    names) echo "src/cdn/import.c:import_check_owner,import_check_album,import_check_filename,name_chars_ok" ;;
    framing) echo "src/http/http_framing.c" ;;
    utf8) echo "src/base/utf8.c" ;;
    hll) echo "src/base/hll.c:hll_decode,hll_merge_encoded,apply,hll_encode" ;;
    ratelimit) echo "src/api/ratelimit.c" ;;
    shipstate) echo "src/analytics/ship.c:state_parse,state_write,valid_stem,cursor_set,cursor_find,range_add" ;;
    datafiles) echo "src/config/config.c:config_node_id,config_ensure_secret" ;;
    esac
}

failed=0
for t in $targets; do
    bin="$OUT/fuzz_$t"
    # shellcheck disable=SC2046,SC2086 # source lists are word lists
    if ! $CC -g -O0 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping -std=c17 \
        -D_GNU_SOURCE -Isrc -Itests/fuzz -o "$bin" "tests/fuzz/fuzz_$t.c" $(sources_for "$t") \
        $(libs_for "$t") >"$OUT/logs/build_$t.log" 2>&1; then
        cat "$OUT/logs/build_$t.log" >&2
        failed=$((failed + 1))
        continue
    fi
    rm -f "$OUT/$t".profraw
    LLVM_PROFILE_FILE="$OUT/$t.profraw" "$bin" -runs=0 "$CORPUS/$t" >"$OUT/logs/run_$t.log" 2>&1
    "$PROFDATA" merge -sparse -o "$OUT/$t.profdata" "$OUT/$t.profraw" || {
        failed=$((failed + 1))
        continue
    }
    subject=$(subject_for "$t")
    case $subject in
    *:*)
        file=${subject%%:*}
        funcs=$(echo "${subject#*:}" | tr , ' ')
        # Per function: name regions miss cover% lines miss cover% ...
        "$COV" report --show-functions -instr-profile="$OUT/$t.profdata" "$bin" "$file" \
            >"$OUT/logs/report_$t.txt"
        total=0
        missed=0
        for f in $funcs; do
            row=$(awk -v f="$f" '$1 == f || $1 ~ (":" f "$") { print $5, $6 }' "$OUT/logs/report_$t.txt")
            total=$((total + ${row% *}))
            missed=$((missed + ${row#* }))
        done
        what="$file ($(echo "$funcs" | tr ' ' ,))"
        ;;
    *)
        # shellcheck disable=SC2086 # $subject is a word list
        "$COV" report -instr-profile="$OUT/$t.profdata" "$bin" $subject >"$OUT/logs/report_$t.txt"
        total=0
        missed=0
        for file in $subject; do
            # llvm-cov names the files by full path, or by what follows
            # their common directory when there are several
            row=$(awk -v f="$PWD/$file" '$1 == f || substr(f, length(f) - length($1)) == "/" $1 {
                print $8, $9 }' "$OUT/logs/report_$t.txt")
            total=$((total + ${row% *}))
            missed=$((missed + ${row#* }))
        done
        what=$subject
        ;;
    esac
    if [ "$total" -gt 0 ]; then
        pct=$(awk -v c=$((total - missed)) -v t="$total" 'BEGIN { printf "%.1f", 100 * c / t }')
    else
        pct="?"
    fi
    echo "coverage: $t: lines $pct% ($((total - missed))/$total) of $what"
done
exit $((failed > 0))
