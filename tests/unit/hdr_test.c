/* hdr_test.c - Range, If-None-Match, HTTP-date and Accept-Encoding parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/hdr.h"

static void expect_range(const char *v, uint64_t size, enum hdr_range want, uint64_t first,
                         uint64_t count)
{
    uint64_t f = 999, c = 999;
    enum hdr_range got = hdr_parse_range(v, size, &f, &c);
    if (got != want)
        fail_msg("Range '%s' on %llu: got %d want %d", v, (unsigned long long)size, got, want);
    if (want == HDR_RANGE_OK && (f != first || c != count))
        fail_msg("Range '%s': got %llu+%llu want %llu+%llu", v, (unsigned long long)f,
                 (unsigned long long)c, (unsigned long long)first, (unsigned long long)count);
}

static void test_range(void **state)
{
    (void)state;
    expect_range("bytes=0-99", 1000, HDR_RANGE_OK, 0, 100);
    expect_range("bytes=500-", 1000, HDR_RANGE_OK, 500, 500);
    expect_range("bytes=-100", 1000, HDR_RANGE_OK, 900, 100);
    expect_range("bytes=-5000", 1000, HDR_RANGE_OK, 0, 1000);
    expect_range("bytes=990-5000", 1000, HDR_RANGE_OK, 990, 10);
    expect_range("bytes = 1-1", 1000, HDR_RANGE_OK, 1, 1);
    expect_range("bytes=999-999", 1000, HDR_RANGE_OK, 999, 1);
    expect_range("bytes=1000-", 1000, HDR_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=5-4", 1000, HDR_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=-0", 1000, HDR_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=abc", 1000, HDR_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=-", 1000, HDR_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=1-2x", 1000, HDR_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=99999999999999999999999-", 1000, HDR_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("bytes=0-0", 0, HDR_RANGE_UNSATISFIABLE, 0, 0);
    expect_range("items=0-5", 1000, HDR_RANGE_NONE, 0, 0);
    expect_range("bytes=0-1,5-6", 1000, HDR_RANGE_NONE, 0, 0);
    expect_range("", 1000, HDR_RANGE_NONE, 0, 0);
}

static void test_etag(void **state)
{
    (void)state;
    const char *etag = "\"abc-w128\"";
    assert_true(hdr_etag_matches("\"abc-w128\"", etag));
    assert_true(hdr_etag_matches("W/\"abc-w128\"", etag));
    assert_true(hdr_etag_matches("\"x\", \"abc-w128\"", etag));
    assert_true(hdr_etag_matches("*", etag));
    assert_false(hdr_etag_matches("\"abc-w256\"", etag));
    assert_false(hdr_etag_matches("abc-w128", etag));
    assert_false(hdr_etag_matches("\"abc-w128", etag));
    assert_false(hdr_etag_matches("", etag));
    assert_true(hdr_etag_matches_strong("\"abc-w128\"", etag));
    assert_true(hdr_etag_matches_strong("W/\"x\", \"abc-w128\"", etag));
    assert_true(hdr_etag_matches_strong("*", etag));
    assert_false(hdr_etag_matches_strong("W/\"abc-w128\"", etag));
    assert_false(hdr_etag_matches_strong("\"other\"", etag));
}

static void test_dates(void **state)
{
    (void)state;
    time_t t;
    char buf[30];
    assert_int_equal(hdr_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    assert_int_equal((long long)t, 784111777LL);
    hdr_format_http_date(t, buf);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(hdr_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
    assert_int_equal((long long)t, 784111777LL);
    assert_int_equal(hdr_parse_http_date("Sun Nov  6 08:49:37 1994", &t), 0);
    assert_int_equal((long long)t, 784111777LL);
    assert_int_not_equal(hdr_parse_http_date("Sunday, 31-Feb-94 08:49:37 GMT", &t), 0);
    /* two-digit years: within 50 years ahead stay ahead (run in 2026-2069) */
    assert_int_equal(hdr_parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT", &t), 0);
    assert_true((long long)t > 3000000000LL);
    assert_int_not_equal(hdr_parse_http_date("Sun Nov  6 08:49:37 1994 junk", &t), 0);
    assert_int_not_equal(hdr_parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC", &t), 0);
    assert_int_not_equal(hdr_parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT", &t), 0);
    assert_int_not_equal(hdr_parse_http_date("", &t), 0);
    assert_int_not_equal(hdr_parse_http_date("Mon, 31 Feb 2025 00:00:00 GMT", &t), 0);
    assert_int_equal(hdr_parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT", &t), 0);
    hdr_format_http_date((time_t)INT64_MAX - 1, buf); /* beyond gmtime: clamped */
    assert_string_equal(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
}

static void test_accept_gzip(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int want;
    } cases[] = {
        {NULL, 0},
        {"", 0},
        {"gzip", 1},
        {"GZip", 1},
        {"x-gzip", 1},
        {"gzip, deflate, br", 1},
        {"br;q=1.0, gzip;q=0.8, *;q=0.1", 1},
        {"deflate, br", 0},
        {"identity", 0},
        {"*", 1},
        {"*;q=0", 0},
        {"gzip;q=0", 0},
        {"gzip;q=0.000", 0},
        {"gzip;q=0.001", 1},
        {"gzip ; q=0.5 ", 1},
        {"gzip;Q=0.5", 1},
        {"gzip;q=0, *", 0}, /* gzip named: its weight decides */
        {"*;q=0, gzip", 1}, /* and the other way round */
        {"gzip;q=0, x-gzip;q=1", 1},
        {"gzip;q=2", 0}, /* not a qvalue: member ignored */
        {"gzip;q=1.5", 0},
        {"gzip;q=0.1234", 0},
        {"gzip;q=", 0},
        {"gzip;", 0},
        {"gzip;level=9", 0},
        {"gzip x", 0},
        {"gzipx", 0},
        {"gzip;q=abc, *;q=0.2", 1}, /* the broken member is ignored, not "*" */
        {",,gzip,,", 1},
        {"\tgzip\t", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (hdr_accepts_gzip(cases[i].v) != cases[i].want)
            fail_msg("Accept-Encoding '%s': want %d", cases[i].v ? cases[i].v : "(none)",
                     cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_accept_gzip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
