/* timeutil.c - see timeutil.h. */
#include "base/timeutil.h"

#include "base/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int timeutil_days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

/* Read exactly n digits. OUT: *v. */
static int digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PF_EINVAL;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

int timeutil_parse_iso8601(const char *s, int64_t *t)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == 'Z')
        n--;
    if (n < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d))
        return PF_EINVAL;
    if (n == 10) {
        /* date only */
    } else if ((n == 16 || n == 19) && (s[10] == 'T' || s[10] == ' ') &&
               digits(s + 11, 2, &h) == 0 && s[13] == ':' && digits(s + 14, 2, &mi) == 0) {
        if (n == 19 && (s[16] != ':' || digits(s + 17, 2, &se)))
            return PF_EINVAL;
    } else {
        return PF_EINVAL;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > timeutil_days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 59)
        return PF_EINVAL;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *t = (int64_t)timegm(&tm);
    return 0;
}

void timeutil_format_iso8601(int64_t t, char out[21])
{
    struct tm tm;
    time_t tt = (time_t)t;
    char buf[64]; /* roomier than needed: the compiler cannot bound tm's fields */
    if (gmtime_r(&tt, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        snprintf(out, 21, "%s", t < 0 ? "0000-01-01T00:00:00Z" : "9999-12-31T23:59:59Z");
        return;
    }
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(out, 21, "%.20s", buf);
}

int timeutil_parse_date(const char *s, int64_t *t)
{
    if (strlen(s) != 10)
        return PF_EINVAL;
    return timeutil_parse_iso8601(s, t);
}

void timeutil_format_date(int64_t t, char out[11])
{
    char full[21];
    timeutil_format_iso8601(t, full);
    memcpy(out, full, 10);
    out[10] = '\0';
}

int64_t timeutil_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t timeutil_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
