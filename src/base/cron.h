/* cron.h - 5-field cron expressions as in crontab(5), evaluated in UTC.
 *
 * Fields: minute hour day-of-month month day-of-week. Each is a list of items
 * `*`, `N`, `A-B`, each optionally `/STEP`; `N/STEP` means N to the field's
 * maximum. Months accept jan..dec, weekdays sun..sat (7 is also Sunday).
 * Macros: @yearly @annually @monthly @weekly @daily @midnight @hourly.
 * When both day fields are restricted (neither starts with `*`), a day
 * matches if either does, as in Vixie cron; otherwise it must match both
 * (every other day of the month with `mon` means odd-numbered Mondays).
 * The struct is plain data: no allocation, nothing to free. */
#ifndef PF_CRON_H
#define PF_CRON_H

#include <stddef.h>
#include <stdint.h>

struct cron_expr {
    uint64_t minute; /* bit m: minute m (0-59) */
    uint32_t hour;   /* bit h: hour h (0-23) */
    uint32_t dom;    /* bit d: day of month d (1-31) */
    uint16_t month;  /* bit m: month m (1-12) */
    uint8_t dow;     /* bit d: weekday d (0=Sunday .. 6) */
    int dom_star;    /* day-of-month field started with '*' */
    int dow_star;    /* day-of-week field started with '*' */
};

/* Parse `text`. On error returns PF_EINVAL and writes a one-line reason with
 * the 1-based column of the fault into err (errlen bytes, NUL-terminated). */
int cron_parse(const char *text, struct cron_expr *out, char *err, size_t errlen);

/* First fire time strictly after `after` (Unix seconds, UTC). OUT: *next.
 * PF_ENOTFOUND when the expression never fires (e.g. "0 0 30 2 *"), or
 * not before the end of year 9999, or `after` is outside 1970..9999. */
int cron_next(const struct cron_expr *e, int64_t after, int64_t *next);

/* Last fire time at or before `at` (Unix seconds, UTC): the slot a moment
 * belongs to. OUT: *prev. PF_ENOTFOUND when the expression has not fired
 * in the 28 years before `at` (a full weekday/leap-day cycle), or `at` is
 * outside 1970..9999. */
int cron_prev(const struct cron_expr *e, int64_t at, int64_t *prev);

#endif
