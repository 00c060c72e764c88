/* cron_test.c - cron expressions against hand-checked fire times (UTC). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/cron.h"
#include "base/err.h"
#include "base/timeutil.h"

/* Check that the fire times after `from` are exactly `want` (NULL-ended). */
static void expect_fires(const char *expr, const char *from, const char *const *want)
{
    struct cron_expr e;
    char err[200];
    int64_t t;
    if (cron_parse(expr, &e, err, sizeof(err)) != 0)
        fail_msg("'%s' did not parse: %s", expr, err);
    assert_int_equal(timeutil_parse_iso8601(from, &t), 0);
    for (int i = 0; want[i] != NULL; i++) {
        char got[21];
        assert_int_equal(cron_next(&e, t, &t), 0);
        timeutil_format_iso8601(t, got);
        if (strcmp(got, want[i]) != 0)
            fail_msg("'%s' from %s, fire %d: got %s want %s", expr, from, i, got, want[i]);
    }
}

static void test_fire_times(void **state)
{
    (void)state;
    expect_fires("0 2 * * *", "2026-11-24T19:56:00Z",
                 (const char *[]){"2026-11-25T02:00:00Z", "2026-11-26T02:00:00Z", NULL});
    /* strictly after: a time equal to a fire time moves on */
    expect_fires("0 1 * * *", "2026-11-25T01:00:00Z",
                 (const char *[]){"2026-11-26T01:00:00Z", NULL});
    /* month ends: only months with a 31st */
    expect_fires("59 23 31 * *", "2026-01-31T23:59:00Z",
                 (const char *[]){"2026-03-31T23:59:00Z", "2026-05-31T23:59:00Z", NULL});
    /* leap years */
    expect_fires("0 0 29 2 *", "2026-01-01T00:00:00Z",
                 (const char *[]){"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", NULL});
    expect_fires("0 0 29 2 *", "2099-03-01T00:00:00Z",
                 (const char *[]){"2104-02-29T00:00:00Z", NULL});
    /* both day fields restricted: either matches (Mon 30 Nov, then Tue 1 Dec) */
    expect_fires("0 0 1 * mon", "2026-11-24T00:00:00Z",
                 (const char *[]){"2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z",
                                  "2026-12-07T00:00:00Z", NULL});
    /* day-of-week restricted alone: AND with '*' day-of-month */
    expect_fires("5 4 * * 7", "2026-11-24T00:00:00Z",
                 (const char *[]){"2026-11-29T04:05:00Z", "2026-12-06T04:05:00Z", NULL});
    expect_fires("5 4 * * sun", "2026-11-24T00:00:00Z",
                 (const char *[]){"2026-11-29T04:05:00Z", NULL});
    /* steps, ranges, names, across a year boundary */
    expect_fires("*/15 9-17 * jan-mar mon-fri", "2026-11-24T12:00:00Z",
                 (const char *[]){"2027-01-01T09:00:00Z", "2027-01-01T09:15:00Z",
                                  "2027-01-01T09:30:00Z", NULL});
    expect_fires("0 22 * * 1-5/2", "2026-11-24T23:00:00Z",
                 (const char *[]){"2026-11-25T22:00:00Z", "2026-11-27T22:00:00Z",
                                  "2026-11-30T22:00:00Z", NULL});
    expect_fires("10,20 */6 * * *", "2026-11-24T19:56:00Z",
                 (const char *[]){"2026-11-25T00:10:00Z", "2026-11-25T00:20:00Z",
                                  "2026-11-25T06:10:00Z", NULL});
    expect_fires("30 5/8 * * *", "2026-11-24T00:00:00Z",
                 (const char *[]){"2026-11-24T05:30:00Z", "2026-11-24T13:30:00Z",
                                  "2026-11-24T21:30:00Z", "2026-11-25T05:30:00Z", NULL});
    /* macros */
    expect_fires("@hourly", "2026-11-24T19:56:30Z", (const char *[]){"2026-11-24T20:00:00Z", NULL});
    expect_fires("@monthly", "2026-11-24T00:00:00Z",
                 (const char *[]){"2026-12-01T00:00:00Z", NULL});
    expect_fires("@yearly", "2026-12-31T23:59:00Z", (const char *[]){"2027-01-01T00:00:00Z", NULL});
    expect_fires("@weekly", "2026-11-24T00:00:00Z", (const char *[]){"2026-11-29T00:00:00Z", NULL});
    expect_fires("@daily", "2026-11-24T12:00:00Z", (const char *[]){"2026-11-25T00:00:00Z", NULL});
    expect_fires("@midnight", "2026-11-24T12:00:00Z",
                 (const char *[]){"2026-11-25T00:00:00Z", NULL});
    expect_fires("@annually", "2026-11-24T12:00:00Z",
                 (const char *[]){"2027-01-01T00:00:00Z", NULL});
}

/* More hand-checked cases (calendar: 2026-11-30, 2027-02-01 and
 * 2028-02-07 are Mondays; 2028-02-29 is a Tuesday). */
static void test_fire_times_calendar(void **state)
{
    (void)state;
    /* A day-of-month field starting with '*' counts as unrestricted (Vixie
     * cron): with a weekday, both must match: odd days that are Mondays. */
    expect_fires("0 0 */2 * mon", "2026-11-24T00:00:00Z",
                 (const char *[]){"2026-12-07T00:00:00Z", "2026-12-21T00:00:00Z",
                                  "2027-01-11T00:00:00Z", NULL});
    /* Both restricted: the 29th of February or any Monday of February. */
    expect_fires("0 12 29 2 mon", "2027-01-01T00:00:00Z",
                 (const char *[]){"2027-02-01T12:00:00Z", "2027-02-08T12:00:00Z",
                                  "2027-02-15T12:00:00Z", "2027-02-22T12:00:00Z",
                                  "2028-02-07T12:00:00Z", "2028-02-14T12:00:00Z",
                                  "2028-02-21T12:00:00Z", "2028-02-28T12:00:00Z",
                                  "2028-02-29T12:00:00Z", "2029-02-05T12:00:00Z", NULL});
    /* Month ends: February's last days, then March's. */
    expect_fires("0 0 28-31 * *", "2026-02-27T00:00:00Z",
                 (const char *[]){"2026-02-28T00:00:00Z", "2026-03-28T00:00:00Z",
                                  "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z",
                                  "2026-03-31T00:00:00Z", "2026-04-28T00:00:00Z", NULL});
    expect_fires("0 0 28-31 2 *", "2028-02-28T00:00:00Z",
                 (const char *[]){"2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z", NULL});
    /* Leap day from a leap day. */
    expect_fires("0 0 29 2 *", "2024-02-29T00:00:00Z",
                 (const char *[]){"2028-02-29T00:00:00Z", NULL});
    /* Steps: minutes that do not divide the hour restart at :00. */
    expect_fires("*/7 * * * *", "2026-11-24T10:50:00Z",
                 (const char *[]){"2026-11-24T10:56:00Z", "2026-11-24T11:00:00Z",
                                  "2026-11-24T11:07:00Z", NULL});
    expect_fires("0 0 1-10/3 * *", "2026-11-24T00:00:00Z",
                 (const char *[]){"2026-12-01T00:00:00Z", "2026-12-04T00:00:00Z",
                                  "2026-12-07T00:00:00Z", "2026-12-10T00:00:00Z",
                                  "2027-01-01T00:00:00Z", NULL});
    /* Year end, and Sunday as both 0 and 7. */
    expect_fires("0 0 1 1 *", "2026-12-31T23:59:59Z",
                 (const char *[]){"2027-01-01T00:00:00Z", NULL});
    expect_fires("0 0 * * 0,7", "2026-11-24T00:00:00Z",
                 (const char *[]){"2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z", NULL});
    /* The seed's two jobs: cleanup at 1 AM, aggregation at 2 AM. */
    expect_fires("0 1 * * *", "2026-11-24T01:00:00Z",
                 (const char *[]){"2026-11-25T01:00:00Z", NULL});
    expect_fires("0 2 * * *", "2026-12-31T02:00:01Z",
                 (const char *[]){"2027-01-01T02:00:00Z", NULL});
}

static void test_never(void **state)
{
    (void)state;
    struct cron_expr e;
    char err[200];
    int64_t t;
    assert_int_equal(cron_parse("0 0 30 2 *", &e, err, sizeof(err)), 0);
    assert_int_equal(cron_next(&e, 0, &t), PF_ENOTFOUND);
    /* no overflow at the end of time */
    assert_int_equal(cron_parse("* * * * *", &e, err, sizeof(err)), 0);
    assert_int_equal(cron_next(&e, INT64_MAX - 5, &t), PF_ENOTFOUND);
    assert_int_equal(cron_next(&e, INT64_C(253402300700), &t), 0);
    assert_int_equal(cron_next(&e, INT64_C(253402300740), &t), PF_ENOTFOUND);
}

static void expect_prev(const char *expr, const char *at, const char *want)
{
    struct cron_expr e;
    char err[200], got[21];
    int64_t t = 0, p = 0;
    assert_int_equal(cron_parse(expr, &e, err, sizeof(err)), 0);
    assert_int_equal(timeutil_parse_iso8601(at, &t), 0);
    assert_int_equal(cron_prev(&e, t, &p), 0);
    timeutil_format_iso8601(p, got);
    if (strcmp(got, want) != 0)
        fail_msg("'%s' at %s: prev %s, want %s", expr, at, got, want);
}

/* cron_prev(): the slot a moment belongs to (a fire time at the moment
 * itself included), checked by hand and against cron_next() on many
 * moments: prev(t) fires, is at or before t, and nothing fires between. */
static void test_prev(void **state)
{
    (void)state;
    expect_prev("0 1 * * *", "2026-11-25T01:00:00Z", "2026-11-25T01:00:00Z");
    expect_prev("0 1 * * *", "2026-11-25T00:59:59Z", "2026-11-24T01:00:00Z");
    expect_prev("* * * * *", "2026-11-25T10:07:42Z", "2026-11-25T10:07:00Z");
    expect_prev("0 0 29 2 *", "2026-11-25T00:00:00Z", "2024-02-29T00:00:00Z");
    expect_prev("59 23 31 * *", "2026-05-01T00:00:00Z", "2026-03-31T23:59:00Z");
    expect_prev("0 0 1 * mon", "2026-12-06T12:00:00Z", "2026-12-01T00:00:00Z");
    expect_prev("*/7 * * * *", "2026-11-24T11:06:59Z", "2026-11-24T11:00:00Z");
    expect_prev("@yearly", "2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
    const char *exprs[] = {"0 2 * * *",   "*/15 9-17 * jan-mar mon-fri",
                           "0 0 29 2 *",  "10,20 */6 * * *",
                           "0 0 1 * mon", "5 4 * * 7",
                           "* * * * *",   "0 0 28-31 * *"};
    struct cron_expr e;
    char err[200];
    int64_t t = INT64_C(1700000000), p = 0, n = 0;
    for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
        assert_int_equal(cron_parse(exprs[i], &e, err, sizeof(err)), 0);
        for (int k = 0; k < 200; k++) {
            t += 7919 * 61 + k * 13; /* about 5.6 days, seconds varying */
            assert_int_equal(cron_prev(&e, t, &p), 0);
            assert_true(p <= t && p % 60 == 0);
            assert_int_equal(cron_next(&e, p - 1, &n), 0);
            assert_int_equal(n, p);                    /* p fires */
            assert_int_equal(cron_next(&e, p, &n), 0); /* and nothing until after t */
            assert_true(n > t);
        }
    }
    /* Never fired: not found, as out of range. */
    assert_int_equal(cron_parse("0 0 30 2 *", &e, err, sizeof(err)), 0);
    assert_int_equal(cron_prev(&e, INT64_C(1700000000), &p), PF_ENOTFOUND);
    assert_int_equal(cron_parse("* * * * *", &e, err, sizeof(err)), 0);
    assert_int_equal(cron_prev(&e, -1, &p), PF_ENOTFOUND);
    assert_int_equal(cron_prev(&e, 59, &p), 0);
    assert_int_equal(p, 0);
}

static void expect_error(const char *expr, const char *needle)
{
    struct cron_expr e;
    char err[200];
    if (cron_parse(expr, &e, err, sizeof(err)) == 0)
        fail_msg("'%s' parsed but should not", expr);
    if (strstr(err, needle) == NULL)
        fail_msg("'%s': error '%s' lacks '%s'", expr, err, needle);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("0 25 * * *", "column 3: hour value out of range 0-23");
    expect_error("61 * * * *", "column 1");
    expect_error("* * * *", "missing day-of-week field");
    expect_error("* * * * * *", "column 11: unexpected text");
    expect_error("*/0 * * * *", "column 3: minute step");
    expect_error("5-1 * * * *", "runs backwards");
    expect_error("* * 0 * *", "day-of-month value out of range 1-31");
    expect_error("* * * foo *", "unknown month name");
    expect_error("* * * * funday", "unknown day-of-week name");
    expect_error("@reboot", "unknown macro");
    expect_error("", "missing minute field");
    expect_error("1,,2 * * * *", "column 3");
    expect_error("* * * * 8", "out of range 0-7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fire_times), cmocka_unit_test(test_fire_times_calendar),
        cmocka_unit_test(test_never),      cmocka_unit_test(test_prev),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
