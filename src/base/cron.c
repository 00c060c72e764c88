/* cron.c - crontab(5) parser and next-fire search. See cron.h. */
#include "base/cron.h"

#include "base/err.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct field_def {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] stands for min + i, or NULL */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const struct field_def fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, dow_names},
};

struct parser {
    const char *start; /* whole expression, for columns */
    const char *p;
    char *err;
    size_t errlen;
};

/* Record "column N: <message>" for the fault at `at`; returns PF_EINVAL. */
__attribute__((format(printf, 3, 4))) static int fail(struct parser *ps, const char *at,
                                                      const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errlen, "column %d: %s", (int)(at - ps->start) + 1, msg);
    return PF_EINVAL;
}

/* Read a number or a name of field `f`. OUT: *v. */
static int read_value(struct parser *ps, const struct field_def *f, int *v)
{
    const char *at = ps->p;
    if (isdigit((unsigned char)*ps->p)) {
        long n = 0;
        while (isdigit((unsigned char)*ps->p)) {
            n = n * 10 + (*ps->p - '0');
            if (n > 1000)
                return fail(ps, at, "%s value too large", f->name);
            ps->p++;
        }
        if (n < f->min || n > f->max)
            return fail(ps, at, "%s value out of range %d-%d", f->name, f->min, f->max);
        *v = (int)n;
        return 0;
    }
    if (f->names != NULL && isalpha((unsigned char)*ps->p)) {
        int count = f == &fields[3] ? 12 : 7;
        for (int i = 0; i < count; i++) {
            if (strncasecmp(ps->p, f->names[i], 3) == 0 && !isalpha((unsigned char)ps->p[3])) {
                ps->p += 3;
                *v = f == &fields[3] ? i + 1 : i;
                return 0;
            }
        }
        return fail(ps, at, "unknown %s name", f->name);
    }
    return fail(ps, at, "expected a %s value", f->name);
}

/* Parse one field up to the next blank. OUT: *bits, *star. */
static int parse_field(struct parser *ps, const struct field_def *f, uint64_t *bits, int *star)
{
    *bits = 0;
    *star = *ps->p == '*';
    for (;;) {
        const char *item = ps->p;
        int lo, hi, step = 1, rc;
        if (*ps->p == '*') {
            ps->p++;
            lo = f->min;
            hi = f->max;
        } else {
            rc = read_value(ps, f, &lo);
            if (rc != 0)
                return rc;
            hi = lo;
            if (*ps->p == '-') {
                ps->p++;
                rc = read_value(ps, f, &hi);
                if (rc != 0)
                    return rc;
                if (hi < lo)
                    return fail(ps, item, "%s range %d-%d runs backwards", f->name, lo, hi);
            } else if (*ps->p == '/') {
                hi = f->max;
            }
        }
        if (*ps->p == '/') {
            ps->p++;
            const char *at = ps->p;
            if (!isdigit((unsigned char)*ps->p))
                return fail(ps, at, "%s step must be a number", f->name);
            long n = 0;
            while (isdigit((unsigned char)*ps->p) && n <= 1000)
                n = n * 10 + (*ps->p++ - '0');
            if (n < 1 || n > f->max - f->min + 1 || isdigit((unsigned char)*ps->p))
                return fail(ps, at, "%s step out of range 1-%d", f->name, f->max - f->min + 1);
            step = (int)n;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << v;
        if (*ps->p != ',')
            break;
        ps->p++;
    }
    if (*ps->p != '\0' && *ps->p != ' ' && *ps->p != '\t')
        return fail(ps, ps->p, "unexpected character in %s field", f->name);
    return 0;
}

static const struct {
    const char *name;
    const char *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

int cron_parse(const char *text, struct cron_expr *out, char *err, size_t errlen)
{
    struct parser ps = {text, text, err, errlen};
    struct cron_expr e;
    memset(&e, 0, sizeof(e));
    while (*ps.p == ' ' || *ps.p == '\t')
        ps.p++;
    if (*ps.p == '@') {
        const char *end = ps.p;
        while (*end != '\0' && *end != ' ' && *end != '\t')
            end++;
        const char *tail = end;
        while (*tail == ' ' || *tail == '\t')
            tail++;
        for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
            size_t n = strlen(macros[i].name);
            if ((size_t)(end - ps.p) == n && strncasecmp(ps.p, macros[i].name, n) == 0) {
                if (*tail != '\0')
                    return fail(&ps, tail, "unexpected text after %s", macros[i].name);
                return cron_parse(macros[i].expansion, out, err, errlen);
            }
        }
        return fail(&ps, ps.p, "unknown macro (use @yearly @monthly @weekly @daily @hourly)");
    }
    uint64_t bits[5];
    int star[5];
    for (int i = 0; i < 5; i++) {
        while (*ps.p == ' ' || *ps.p == '\t')
            ps.p++;
        if (*ps.p == '\0')
            return fail(&ps, ps.p, "missing %s field (5 fields: minute hour day month weekday)",
                        fields[i].name);
        int rc = parse_field(&ps, &fields[i], &bits[i], &star[i]);
        if (rc != 0)
            return rc;
    }
    while (*ps.p == ' ' || *ps.p == '\t')
        ps.p++;
    if (*ps.p != '\0')
        return fail(&ps, ps.p, "unexpected text after 5 fields");
    e.minute = bits[0];
    e.hour = (uint32_t)bits[1];
    e.dom = (uint32_t)bits[2];
    e.month = (uint16_t)bits[3];
    e.dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    e.dom_star = star[2];
    e.dow_star = star[4];
    *out = e;
    if (errlen > 0)
        err[0] = '\0';
    return 0;
}

static int day_matches(const struct cron_expr *e, const struct tm *t)
{
    int dom = (e->dom >> t->tm_mday) & 1;
    int dow = (e->dow >> t->tm_wday) & 1;
    /* As Vixie cron: a field starting with '*' makes both fields count
     * together (AND), each by its bits: a step over '*' (every other day,
     * say) still restricts its field. */
    if (e->dom_star || e->dow_star)
        return dom && dow;
    return dom || dow;
}

/* Last second of year 9999: fire times are searched no further. */
#define CRON_TIME_MAX INT64_C(253402300799)

int cron_next(const struct cron_expr *e, int64_t after, int64_t *next)
{
    if (after < 0 || after >= CRON_TIME_MAX)
        return PF_ENOTFOUND;
    /* Start at the next whole minute; skip a month, day or hour at a time so
     * the search is short. 28 years covers every weekday/leap-day cycle. */
    time_t t = (time_t)(after - (after % 60 + 60) % 60 + 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    int start_year = tm.tm_year;
    while (tm.tm_year - start_year <= 28) {
        if (!((e->month >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!day_matches(e, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!((e->hour >> tm.tm_hour) & 1)) {
            tm.tm_hour++;
            tm.tm_min = 0;
        } else if (!((e->minute >> tm.tm_min) & 1)) {
            tm.tm_min++;
        } else {
            int64_t found = (int64_t)timegm(&tm);
            if (found > CRON_TIME_MAX)
                return PF_ENOTFOUND;
            *next = found;
            return 0;
        }
        tm.tm_sec = 0;
        t = timegm(&tm); /* normalises overflowed fields */
        gmtime_r(&t, &tm);
    }
    return PF_ENOTFOUND;
}

int cron_prev(const struct cron_expr *e, int64_t at, int64_t *prev)
{
    if (at < 0 || at > CRON_TIME_MAX)
        return PF_ENOTFOUND;
    /* cron_next's walk, backwards: from the current minute, step back a
     * month, day or hour at a time to the last minute of the one before
     * (day 0 of a month is the last of the month before, once timegm()
     * has normalised it). */
    time_t t = (time_t)(at - at % 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    int start_year = tm.tm_year;
    while (start_year - tm.tm_year <= 28) {
        if (!((e->month >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mday = 0;
            tm.tm_hour = 23;
            tm.tm_min = 59;
        } else if (!day_matches(e, &tm)) {
            tm.tm_mday--;
            tm.tm_hour = 23;
            tm.tm_min = 59;
        } else if (!((e->hour >> tm.tm_hour) & 1)) {
            tm.tm_hour--;
            tm.tm_min = 59;
        } else if (!((e->minute >> tm.tm_min) & 1)) {
            tm.tm_min--;
        } else {
            *prev = (int64_t)timegm(&tm);
            return 0;
        }
        tm.tm_sec = 0;
        t = timegm(&tm);
        if (t < 0)
            return PF_ENOTFOUND;
        gmtime_r(&t, &tm);
    }
    return PF_ENOTFOUND;
}
