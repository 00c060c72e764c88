/* timeutil_test.c - strict ISO-8601 parsing: real calendar dates only. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/timeutil.h"

static void test_parse(void **state)
{
    (void)state;
    int64_t t;
    char buf[21];
    assert_int_equal(timeutil_parse_iso8601("2026-11-24", &t), 0);
    assert_int_equal(t, 1795478400);
    assert_int_equal(timeutil_parse_iso8601("2024-02-29T23:59:59Z", &t), 0);
    timeutil_format_iso8601(t, buf);
    assert_string_equal(buf, "2024-02-29T23:59:59Z");
    assert_int_equal(timeutil_parse_iso8601("2026-11-24T02:00", &t), 0);
    assert_int_equal(t, 1795478400 + 7200);
    const char *bad[] = {"2026-02-29",    "2026-02-30",
                         "2026-13-01",    "2026-00-10",
                         "2026-04-31",    "1900-02-29",
                         "2026-1-01",     "2026-01-01T24:00",
                         "2026-01-01T12", "2026-01-01T12:00:60",
                         "2026-01-01ZZ",  "",
                         "yesterday",     "2026-01-01T12:00:00+02:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (timeutil_parse_iso8601(bad[i], &t) == 0)
            fail_msg("'%s' was accepted", bad[i]);
    timeutil_format_iso8601(INT64_MAX, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    assert_int_equal(timeutil_days_in_month(2000, 2), 29);
    assert_int_equal(timeutil_days_in_month(2100, 2), 28);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
