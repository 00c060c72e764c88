# shellcheck shell=sh disable=SC2034 # sourced: the variables are used by the scripts that source it
# tests/fuzz/targets.sh - the libFuzzer targets and what each links; sourced by
# tests/fuzz/run.sh (the short CI run) and tests/fuzz/campaign.sh (long runs),
# so both build every target the same way.

FUZZ_FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -std=c17 -D_GNU_SOURCE"
FUZZ_FLAGS="$FUZZ_FLAGS -Wall -Wextra -Werror -Isrc -Itests/fuzz"
FUZZ_TARGETS="urlpath range cron config date evlog spool query dash chrows utf8 ratelimit shipstate datafiles etag churl names framing hll uaclass"

# The src/*/*.c files each target links: the parser and what it calls.
sources_for() {
    case $1 in
    urlpath) echo "src/cdn/urlpath.c src/base/variant.c src/base/err.c" ;;
    range) echo "src/http/hdr.c src/base/timeutil.c src/base/err.c" ;;
    cron) echo "src/base/cron.c src/base/err.c" ;;
    config) echo "src/config/config.c src/base/fsutil.c src/base/cron.c src/base/err.c src/base/strbuf.c" ;;
    date) echo "src/base/timeutil.c src/base/err.c" ;;
    evlog) echo "src/analytics/evlog_format.c src/base/err.c src/base/variant.c" ;;
    spool) echo "src/analytics/evlog_format.c src/base/err.c src/base/variant.c" ;;
    chrows) echo "src/analytics/chrows.c src/base/err.c src/base/variant.c" ;;
    # query: auth.c's three db_key_* calls (store/db.c's) are stubs inside the target
    query) echo "src/api/query.c src/cdn/urlpath.c src/base/variant.c src/base/timeutil.c src/base/err.c src/api/auth.c src/base/keyhash.c" ;;
    # dash: http/http.c's two functions are stubs inside the target; the assets
    # are the Makefile's generated table (build/gen/dash_assets.c)
    dash) echo "src/api/dash.c src/http/hdr.c src/base/timeutil.c src/base/err.c build/gen/dash_assets.c" ;;
    etag) echo "src/http/hdr.c src/base/timeutil.c src/base/err.c" ;;
    # churl: includes src/analytics/clickhouse.c itself (url_where and
    # url_database are static)
    churl) echo "src/base/err.c src/base/strbuf.c" ;;
    # names: import.c's database and storage calls are stubs inside the target
    names) echo "src/cdn/import.c src/cdn/urlpath.c src/base/variant.c src/base/utf8.c src/base/err.c src/base/fsutil.c" ;;
    framing) echo "src/http/http_framing.c" ;;
    utf8) echo "src/base/utf8.c" ;;
    uaclass) echo "src/analytics/uaclass.c src/analytics/uaclass_data.c src/base/err.c" ;;
    hll) echo "src/base/hll.c src/base/err.c" ;;
    ratelimit) echo "src/api/ratelimit.c src/base/err.c" ;;
    # shipstate: includes src/analytics/ship.c itself (its parser is static) and
    # stubs the ClickHouse client and event-store calls
    shipstate) echo "src/base/err.c src/base/strbuf.c src/base/fsutil.c src/base/metrics.c src/base/timeutil.c" ;;
    datafiles) echo "src/config/config.c src/base/fsutil.c src/base/cron.c src/base/err.c src/base/strbuf.c" ;;
    esac
}

# Libraries beyond libc a target links (after its sources), from pkg-config
# as in the Makefile.
libs_for() {
    case $1 in
    evlog | spool) echo "$(pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash) -pthread" ;;
    query | names) pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto ;;
    dash) echo "-lz" ;;
    ratelimit) echo "-pthread" ;;
    uaclass) echo "$(pkg-config --cflags --libs libpcre2-8 libhs 2>/dev/null || echo -I/usr/include/hs -lpcre2-8 -lhs) -pthread" ;;
    hll) echo "-lm" ;;
    churl) echo "$(pkg-config --libs libcurl 2>/dev/null || echo -lcurl) -pthread" ;;
    shipstate) echo "$(pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash) -pthread -lm" ;;
    esac
}
