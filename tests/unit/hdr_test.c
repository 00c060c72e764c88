/* hdr_test.c - Range, If-None-Match and HTTP-date parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "hdr.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
