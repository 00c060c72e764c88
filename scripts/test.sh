#!/bin/sh
# `make test`: every check CI runs, in order of how fast they fail.
#   1. formatting (clang-format, .clang-format); the GeoIP test database
#   2. the dashboard's JavaScript unit tests; gcc build with -Werror, the
#      structure check (layers, include circles, prefixes, file sizes), unit
#      tests (on SQLite, then on PostgreSQL), integration tests (each test
#      that opens a database on both backends; the dashboard in headless
#      Chromium included)
#   3. clang build with -Werror
#   4. clang ASan + UBSan build (leak checking on), unit and integration tests
#   5. ThreadSanitizer unit tests; every unit test under Valgrind memcheck
#   6. a short fuzzing run of every parser target (FUZZ_SECONDS, default 8:
#      18 targets: with their builds, no longer than 10 targets at 20 s)
# A throwaway PostgreSQL server (scripts/pg.sh, in a mktemp directory) serves
# the unit and integration tests: PIXFLARE_TEST_PG_URL is its maintenance
# database's URL (tests/integration makes a database per test there), and
# the PostgreSQL unit steps get a fresh database each in
# PIXFLARE_TEST_DATABASE. Next to it a throwaway ClickHouse server
# (scripts/ch.sh, Debian's clickhouse-server, in another mktemp directory):
# PIXFLARE_TEST_CH_URL is its HTTP interface's URL (tests/integration makes
# a ClickHouse database per test there). Both are stopped and removed at the
# end, interrupted or not. Ends with one summary line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
JOBS=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
failures=""

step() {
    name=$1
    shift
    echo
    echo "==== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures="$failures
  - $name"
    fi
}

# pytest_run BUILD [PYTEST-ARGS...]: the integration tests on JOBS pytest-xdist
# workers (most of a test's time is spent waiting on servers it started, so
# two workers on two cores take about 60% of one worker's time; each worker
# has its own port range, see pftest.free_port). --durations shows where the
# time goes when the budget is tight.
# pytest_run_files BUILD [PYTEST-ARGS...] FILES...: only the files named.
pytest_run_files() {
    bin="$(pwd)/$1/pixflare"
    shift
    PIXFLARE_BIN="$bin" /usr/bin/python3 -m pytest -q -p no:cacheprovider -n "$JOBS" "$@"
}

pytest_run() {
    bin="$(pwd)/$1/pixflare"
    shift
    PIXFLARE_BIN="$bin" /usr/bin/python3 -m pytest -q -p no:cacheprovider -n "$JOBS" \
        --durations=10 "$@" tests/integration
}

PG_DIR=""
pg_start() {
    PG_DIR=$(mktemp -d) && sh scripts/pg.sh start "$PG_DIR" || return 1
    PIXFLARE_TEST_PG_URL=$(sh scripts/pg.sh url "$PG_DIR") || return 1
    export PIXFLARE_TEST_PG_URL
    echo "$PIXFLARE_TEST_PG_URL"
}

pg_stop() {
    if [ -n "$PG_DIR" ]; then
        sh scripts/pg.sh stop "$PG_DIR" || echo "test: could not stop the PostgreSQL in $PG_DIR" >&2
        PG_DIR=""
    fi
}
CH_DIR=""
ch_start() {
    CH_DIR=$(mktemp -d) && sh scripts/ch.sh start "$CH_DIR" || return 1
    PIXFLARE_TEST_CH_URL=$(sh scripts/ch.sh url "$CH_DIR") || return 1
    export PIXFLARE_TEST_CH_URL
    echo "$PIXFLARE_TEST_CH_URL"
}

ch_stop() {
    if [ -n "$CH_DIR" ]; then
        sh scripts/ch.sh stop "$CH_DIR" || echo "test: could not stop the ClickHouse in $CH_DIR" >&2
        CH_DIR=""
    fi
}

servers_stop() {
    pg_stop
    ch_stop
}
trap servers_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# pg_unit DBNAME BUILD: the database's unit tests (tests/unit/db_test.c and
# db_more_test.c, on PIXFLARE_TEST_DATABASE; the other unit tests open no
# database) on fresh PostgreSQL databases DBNAME and DBNAME_more, with
# BUILD's binaries (built by the unit step).
pg_unit() {
    db=$1
    shift
    if [ -z "${PIXFLARE_TEST_PG_URL-}" ]; then
        echo "no PostgreSQL server (see the step that starts it)"
        return 1
    fi
    build=$1
    url=$(sh scripts/pg.sh createdb "$PG_DIR" "$db") || return 1
    PIXFLARE_TEST_DATABASE=$url "$build/unit/db_test" || return 1
    url=$(sh scripts/pg.sh createdb "$PG_DIR" "${db}_more") || return 1
    PIXFLARE_TEST_DATABASE=$url "$build/unit/db_more_test"
}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(pwd)/tests/tsan.supp"

step "format check (clang-format)" make -s format-check
# The GeoIP unit and integration tests read a real database, built offline
# from Debian's tor-geoipdb (a few seconds; skipped when up to date).
step "GeoIP database (make geoip)" make -s geoip
step "dashboard unit tests (node --test)" node --test tests/dashboard/unit.test.mjs
step "gcc build (-Wall -Wextra -Werror)" make -s -j"$JOBS" CC=gcc BUILD=build/gcc all
step "structure (scripts/check_structure.py)" make -s CC=gcc BUILD=build/gcc structure
step "PostgreSQL for the tests (scripts/pg.sh)" pg_start
step "ClickHouse for the tests (scripts/ch.sh)" ch_start
step "gcc unit tests" make -s -j"$JOBS" CC=gcc BUILD=build/gcc unit
step "gcc unit tests (PostgreSQL)" pg_unit unit_gcc build/gcc
step "gcc integration tests" pytest_run build/gcc
step "clang build (-Wall -Wextra -Werror)" make -s -j"$JOBS" CC=clang BUILD=build/clang all
step "asan+ubsan build" make -s -j"$JOBS" CC=clang SAN=1 BUILD=build/asan all
step "asan+ubsan unit tests" make -s -j"$JOBS" CC=clang SAN=1 BUILD=build/asan unit
step "asan+ubsan unit tests (PostgreSQL)" pg_unit unit_asan build/asan
# Under the sanitizers: every test on SQLite, and the PostgreSQL-only tests
# (test_postgres.py: nodes, outages, copies) that exercise the PostgreSQL
# backend's C code; the gcc run above has run every test on both backends.
step "asan+ubsan integration tests" pytest_run build/asan -m "not pg or pg_only"
# Data races (ThreadSanitizer) in the unit tests that start threads; db_test
# runs on SQLite. About 50 s (plus its build). Suppressions: tests/tsan.supp.
step "tsan unit tests" env TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(pwd)/tests/tsan.supp" \
    make -s -j"$JOBS" CC=clang SAN=thread BUILD=build/tsan unit
# The server under ThreadSanitizer, on the integration tests that drive its
# threads hardest: the evicting cache under concurrent Zipf traffic
# (test_cache), variants made on the pool (test_cdn), metrics scraped while
# serving (test_metrics), events and realtime flushes (test_analytics). About
# a minute on SQLite. pftest.sanitizer_clean fails a test on any TSan report.
step "tsan build" make -s -j"$JOBS" CC=clang SAN=thread BUILD=build/tsan all
step "tsan integration tests (threaded subset)" pytest_run_files build/tsan -m "not pg" \
    tests/integration/test_cache.py tests/integration/test_cdn.py \
    tests/integration/test_metrics.py tests/integration/test_analytics.py
# Every unit test under Valgrind's memcheck (definite leaks, invalid reads and
# writes, uninitialised values) on a gcc build without sanitizers: about
# 100 s (plus its build). Suppressions: tests/valgrind.supp.
step "valgrind unit tests" make -s -j"$JOBS" valgrind-unit
servers_stop
if [ -f tests/fuzz/run.sh ]; then
    step "fuzzing (${FUZZ_SECONDS:-5}s per target)" sh tests/fuzz/run.sh "${FUZZ_SECONDS:-5}"
fi

echo
if [ "$failed" -gt 0 ]; then
    echo "failed steps:$failures"
fi
echo "test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
