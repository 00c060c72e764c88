/* fuzz_cron.c - fuzzes cron_parse(), cron_next() and cron_prev() (src/cron.c).
 *
 * The input is copied into an exactly sized NUL-terminated string (ASan
 * catches reads past the terminator). Invariants checked:
 *  - cron_parse returns 0 or PF_EINVAL; on failure err is a NUL-terminated
 *    "column N: ..." message whose column lies within the text (or one past);
 *  - on success every bitmask is non-empty and has no bit outside its field
 *    (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6);
 *  - from a few fixed start times, cron_next returns 0 or PF_ENOTFOUND; on 0
 *    the time is a whole minute strictly after the start whose minute, hour,
 *    month and day (day-of-month / day-of-week under the Vixie rule of
 *    cron.h) match the expression, no earlier minute after the start matches,
 *    and searching again from one second before it finds it again; on
 *    PF_ENOTFOUND no day in the next 28 years matches;
 *  - from the same times, cron_prev returns 0 or PF_ENOTFOUND; on 0 the time
 *    is a matching whole minute at or before the start, no later minute up
 *    to the start matches, and cron_next from one second before it finds
 *    it; on PF_ENOTFOUND no whole day in the 28 years before the start's
 *    day (and after 1970) matches. */
#include "base/cron.h"
#include "base/err.h"
#include "fuzz_check.h"

#include <time.h>

#define DAY 86400

static int day_matches(const struct cron_expr *e, const struct tm *tm)
{
    if (!((e->month >> (tm->tm_mon + 1)) & 1))
        return 0;
    int dom = (e->dom >> tm->tm_mday) & 1;
    int dow = (e->dow >> tm->tm_wday) & 1;
    if (e->dom_star || e->dow_star) /* Vixie cron: both, by their bits */
        return dom && dow;
    return dom || dow;
}

static int minute_matches(const struct cron_expr *e, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    FUZZ_CHECK(gmtime_r(&tt, &tm) != NULL);
    return tm.tm_sec == 0 && day_matches(e, &tm) && ((e->hour >> tm.tm_hour) & 1) &&
           ((e->minute >> tm.tm_min) & 1);
}

static int date_matches(const struct cron_expr *e, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    FUZZ_CHECK(gmtime_r(&tt, &tm) != NULL);
    return day_matches(e, &tm);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

/* No minute in [from, to) fires. Whole days in between are checked a day at a
 * time: since the hour and minute masks are non-empty, a matching day would
 * fire somewhere in it. */
static void check_none_between(const struct cron_expr *e, int64_t from, int64_t to)
{
    int64_t day_end = (floor_div(from, DAY) + 1) * DAY;
    int64_t t = from;
    for (; t < to && t < day_end; t += 60)
        FUZZ_CHECK(!minute_matches(e, t));
    for (; t + DAY <= to; t += DAY)
        FUZZ_CHECK(!date_matches(e, t));
    for (; t < to; t += 60)
        FUZZ_CHECK(!minute_matches(e, t));
}

static void check_next(const struct cron_expr *e, int64_t after)
{
    int64_t next = 0;
    int rc = cron_next(e, after, &next);
    FUZZ_CHECK(rc == 0 || rc == PF_ENOTFOUND);
    int64_t first_minute = (floor_div(after, 60) + 1) * 60;
    if (rc == PF_ENOTFOUND) {
        /* Whole days from the day after the start, to stay day-aligned. */
        int64_t t = (floor_div(after, DAY) + 1) * DAY;
        for (int i = 0; i < 28 * 365; i++, t += DAY)
            FUZZ_CHECK(!date_matches(e, t));
        return;
    }
    FUZZ_CHECK(next > after);
    FUZZ_CHECK(next % 60 == 0);
    FUZZ_CHECK(minute_matches(e, next));
    check_none_between(e, first_minute, next);
    int64_t again = 0;
    FUZZ_CHECK(cron_next(e, next - 1, &again) == 0);
    FUZZ_CHECK(again == next);
}

static void check_prev(const struct cron_expr *e, int64_t at)
{
    int64_t prev = 0;
    int rc = cron_prev(e, at, &prev);
    FUZZ_CHECK(rc == 0 || rc == PF_ENOTFOUND);
    if (rc == PF_ENOTFOUND) {
        int64_t t = floor_div(at, DAY) * DAY - DAY;
        for (int i = 0; i < 28 * 365 && t >= 0; i++, t -= DAY)
            FUZZ_CHECK(!date_matches(e, t));
        return;
    }
    FUZZ_CHECK(prev <= at);
    FUZZ_CHECK(prev % 60 == 0);
    FUZZ_CHECK(minute_matches(e, prev));
    check_none_between(e, prev + 60, floor_div(at, 60) * 60 + 60);
    int64_t again = 0;
    if (prev > 0) { /* cron_next searches from 1970 on */
        FUZZ_CHECK(cron_next(e, prev - 1, &again) == 0);
        FUZZ_CHECK(again == prev);
    }
}

static void check_error(const char *text, const char *err, size_t errlen)
{
    const char *end = memchr(err, '\0', errlen);
    FUZZ_CHECK(end != NULL);
    int column = 0;
    FUZZ_CHECK(sscanf(err, "column %d: ", &column) == 1);
    FUZZ_CHECK(column >= 1 && (size_t)column <= strlen(text) + 1);
    FUZZ_CHECK(strstr(err, ": ") != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1970-01-01, 2000-02-29 00:00:30, 2024-12-31 23:59:59, 2100-02-28 12:00. */
    static const int64_t starts[] = {0, 951782430, 1735689599, 4107067200};
    char *text = fuzz_cstr(data, size);
    char err[128];
    struct cron_expr e;
    memset(err, 'x', sizeof(err));
    int rc = cron_parse(text, &e, err, sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(rc == PF_EINVAL);
        check_error(text, err, sizeof(err));
        free(text);
        return 0;
    }
    FUZZ_CHECK(err[0] == '\0');
    FUZZ_CHECK(e.minute != 0 && (e.minute >> 60) == 0);
    FUZZ_CHECK(e.hour != 0 && (e.hour >> 24) == 0);
    FUZZ_CHECK(e.dom != 0 && (e.dom & 1) == 0);
    FUZZ_CHECK(e.month != 0 && (e.month & 1) == 0 && (e.month >> 13) == 0);
    FUZZ_CHECK(e.dow != 0 && (e.dow >> 7) == 0);
    FUZZ_CHECK(e.dom_star == 0 || e.dom_star == 1);
    FUZZ_CHECK(e.dow_star == 0 || e.dow_star == 1);
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        check_next(&e, starts[i]);
        check_prev(&e, starts[i]);
    }
    free(text);
    return 0;
}
