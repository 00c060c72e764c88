/* timeutil.h - UTC calendar helpers: strict ISO-8601 parsing and printing.
 * Pure functions; no allocation. */
#ifndef PF_TIMEUTIL_H
#define PF_TIMEUTIL_H

#include <stdint.h>

/* Parse "YYYY-MM-DD", "YYYY-MM-DDTHH:MM", "YYYY-MM-DDTHH:MM:SS", each
 * optionally followed by "Z". Real calendar dates only (no 2026-02-30).
 * OUT: *t (Unix seconds, UTC). PF_EINVAL otherwise. */
int timeutil_parse_iso8601(const char *s, int64_t *t);

/* Format as "YYYY-MM-DDTHH:MM:SSZ" into out[21]. Times outside years
 * 0-9999 are clamped to the first or last second of that span. */
void timeutil_format_iso8601(int64_t t, char out[21]);

/* Parse a date "YYYY-MM-DD" alone (a real calendar date). OUT: *t, Unix
 * seconds of its midnight UTC. PF_EINVAL otherwise. */
int timeutil_parse_date(const char *s, int64_t *t);

/* Format the UTC date of Unix time t as "YYYY-MM-DD" into out[11]. */
void timeutil_format_date(int64_t t, char out[11]);

/* Milliseconds on the monotonic clock (coarse: a few ms of resolution,
 * no syscall): for timeouts and rate limits, never for dates. */
int64_t timeutil_mono_ms(void);

/* Nanoseconds on the monotonic clock, full resolution. */
int64_t timeutil_mono_ns(void);

/* Days in a month of a year (month 1-12). */
int timeutil_days_in_month(int year, int month);

#endif
