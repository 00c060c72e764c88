/* query.c - see query.h. */
#include "api/query.h"

#include "base/err.h"
#include "base/timeutil.h"
#include "cdn/urlpath.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DAY 86400

static int fail(struct query_error *e, const char *param, const char *fmt, ...)
{
    va_list ap;
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return PF_EINVAL;
}

/* Decode `len` raw bytes into out[cap] (NUL-terminated). Returns the
 * decoded length, -1 on a bad escape or a byte outside printable ASCII,
 * -2 when too long. */
static long decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = urlpath_hex_digit(s[i + 1]), lo = urlpath_hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c >= 0x7f) /* every name and value we know is ASCII */
            return -1;
        if (o + 1 >= cap)
            return -2;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

/* A printable copy of a raw name for a message (cut, controls as '?'). */
static void show(const char *s, size_t len, char out[QUERY_NAME_MAX + 1])
{
    size_t n = len < QUERY_NAME_MAX ? len : QUERY_NAME_MAX;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    out[n] = '\0';
}

int query_add(struct query *q, const char *name, size_t nlen, const char *value, size_t vlen,
              struct query_error *e)
{
    char shown[QUERY_NAME_MAX + 1];
    if (q->n == QUERY_MAX_PARAMS)
        return fail(e, NULL, "too many query parameters (at most %d)", QUERY_MAX_PARAMS);
    char *n = q->p[q->n].name, *v = q->p[q->n].value;
    long r = decode(name, nlen, n, QUERY_NAME_MAX + 1);
    if (r == -2) {
        show(name, nlen, shown);
        return fail(e, shown, "unknown parameter '%s...'", shown);
    }
    if (r < 0)
        return fail(
            e, NULL,
            "malformed query string (bad %%-escape, or a byte that is not printable ASCII)");
    if (r == 0)
        return fail(e, NULL, "malformed query string (a parameter without a name)");
    if (value == NULL)
        value = "", vlen = 0;
    r = decode(value, vlen, v, QUERY_VALUE_MAX + 1);
    if (r == -2)
        return fail(e, n, "%s: value too long", n);
    if (r < 0)
        return fail(
            e, n, "%s: malformed value (bad %%-escape, or a byte that is not printable ASCII)", n);
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->p[i].name, n) == 0)
            return fail(e, n, "%s: given more than once", n);
    q->n++;
    return 0;
}

int query_parse(const char *raw, size_t len, struct query *q, struct query_error *e)
{
    size_t i = 0;
    q->n = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && raw[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(raw + i, '=', end - i);
            size_t nlen = eq ? (size_t)(eq - (raw + i)) : end - i;
            const char *v = eq ? eq + 1 : NULL;
            size_t vlen = eq ? (size_t)(raw + end - v) : 0;
            int rc = query_add(q, raw + i, nlen, v, vlen, e);
            if (rc != 0)
                return rc;
        }
        i = end + 1;
    }
    return 0;
}

const char *query_get(const struct query *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->p[i].name, name) == 0)
            return q->p[i].value;
    return NULL;
}

/* A whole number from 1 to max: digits only (no sign, no spaces). */
static int small_int(const char *s, int max, int *out)
{
    long v = 0;
    if (s[0] == '\0')
        return PF_EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return PF_EINVAL;
        v = v * 10 + (*p - '0');
        if (v > max)
            return PF_EINVAL;
    }
    if (v < 1)
        return PF_EINVAL;
    *out = (int)v;
    return 0;
}

static int date_param(const struct query *q, const char *name, int64_t *t, int *given,
                      struct query_error *e)
{
    const char *v = query_get(q, name);
    *given = v != NULL;
    if (v == NULL)
        return 0;
    if (strlen(v) != 10 || timeutil_parse_date(v, t) != 0)
        return fail(e, name, "%s must be a real calendar date written YYYY-MM-DD", name);
    return 0;
}

/* A choice among fixed words: the index of v in words (NULL-terminated),
 * or -1. */
static int word(const char *v, const char *const *words)
{
    for (int i = 0; words[i] != NULL; i++)
        if (strcmp(v, words[i]) == 0)
            return i;
    return -1;
}

/* interval, compare and exclude_bots (the range is checked after). */
static int choice_params(const struct query *q, struct api_params *out, struct query_error *e)
{
    static const char *const intervals[] = {"day", "hour", NULL};
    static const char *const compares[] = {"previous", NULL};
    static const char *const bools[] = {"false", "true", NULL};
    const char *v = query_get(q, "interval");
    int k = 0;
    if (v != NULL && (k = word(v, intervals)) < 0)
        return fail(e, "interval", "interval must be day or hour");
    out->hourly = v != NULL && k == 1;
    v = query_get(q, "compare");
    if (v != NULL && word(v, compares) < 0)
        return fail(e, "compare", "compare must be previous");
    out->compare = v != NULL;
    v = query_get(q, "exclude_bots");
    if (v != NULL && (k = word(v, bools)) < 0)
        return fail(e, "exclude_bots", "exclude_bots must be true or false");
    out->exclude_bots = v != NULL && k == 1;
    return 0;
}

/* The range: days, or start and end. */
static int range_params(const struct query *q, int64_t today, int max_days, struct api_params *out,
                        struct query_error *e)
{
    int64_t start = 0, end = 0;
    int has_start, has_end, rc;
    char today_s[11];
    timeutil_format_date(today, today_s);
    if ((rc = date_param(q, "start", &start, &has_start, e)) != 0 ||
        (rc = date_param(q, "end", &end, &has_end, e)) != 0)
        return rc;
    const char *v = query_get(q, "days");
    if (v != NULL) {
        if (has_start || has_end)
            return fail(e, "days", "days cannot be combined with start or end");
        if (small_int(v, max_days, &out->days) != 0)
            return fail(e, "days", "days must be a whole number from 1 to %d", max_days);
        out->end = today;
        out->start = today - (int64_t)(out->days - 1) * DAY;
        return 0;
    }
    if (has_end && end > today)
        return fail(e, "end", "end must not be after today (%s, UTC)", today_s);
    if (has_start && start > today)
        return fail(e, "start", "start must not be after today (%s, UTC)", today_s);
    if (!has_end)
        end = today;
    if (!has_start)
        start = has_end ? end - (int64_t)(API_DAYS_DEFAULT - 1) * DAY
                        : today - (int64_t)(API_DAYS_DEFAULT - 1) * DAY;
    if (start > end)
        return fail(e, "start", "start must not be after end");
    if ((end - start) / DAY + 1 > max_days)
        return fail(e, has_start ? "start" : "end",
                    "the range from start to end may span at most %d days", max_days);
    out->start = start;
    out->end = end;
    out->days = (int)((end - start) / DAY) + 1;
    return 0;
}

int query_params(const struct query *q, enum query_endpoint ep, int64_t today,
                 struct api_params *out, struct query_error *e)
{
    /* `limit` is the overview's alone. */
    static const char *const known[] = {"days",   "start",    "end",     "limit",
                                        "format", "interval", "compare", "exclude_bots"};
    const size_t nknown = sizeof(known) / sizeof(known[0]);
    int rc;
    today -= ((today % DAY) + DAY) % DAY;
    for (size_t i = 0; i < q->n; i++) {
        size_t k = 0;
        while (k < nknown && (strcmp(q->p[i].name, known[k]) != 0 ||
                              (ep != QUERY_OVERVIEW && strcmp(known[k], "limit") == 0)))
            k++;
        if (k == nknown)
            return fail(e, q->p[i].name,
                        ep == QUERY_OVERVIEW
                            ? "unknown parameter '%s' (known: days, start, end, limit, format, "
                              "interval, compare, exclude_bots)"
                            : "unknown parameter '%s' (known: days, start, end, format, interval, "
                              "compare, exclude_bots)",
                        q->p[i].name);
    }
    memset(out, 0, sizeof(*out));
    out->limit = API_LIMIT_DEFAULT;
    const char *v = query_get(q, "limit");
    if (v != NULL && small_int(v, API_LIMIT_MAX, &out->limit) != 0)
        return fail(e, "limit", "limit must be a whole number from 1 to %d", API_LIMIT_MAX);
    v = query_get(q, "format");
    if (v != NULL && strcmp(v, "json") != 0 && strcmp(v, "csv") != 0)
        return fail(e, "format", "format must be json or csv");
    out->csv = v != NULL && strcmp(v, "csv") == 0;
    if ((rc = choice_params(q, out, e)) != 0 ||
        (rc = range_params(q, today, API_DAYS_MAX, out, e)) != 0)
        return rc;
    /* 24 entries a day: a longer range would be a long answer few read. */
    if (out->hourly && out->days > API_HOURLY_DAYS_MAX)
        return fail(e, "interval", "interval=hour allows a range of at most %d days",
                    API_HOURLY_DAYS_MAX);
    return 0;
}

int query_export_params(const struct query *q, int64_t today, struct api_params *out,
                        struct query_error *e)
{
    static const char *const known[] = {"days", "start", "end", "format"};
    today -= ((today % DAY) + DAY) % DAY;
    for (size_t i = 0; i < q->n; i++) {
        size_t k = 0;
        while (k < sizeof(known) / sizeof(known[0]) && strcmp(q->p[i].name, known[k]) != 0)
            k++;
        if (k == sizeof(known) / sizeof(known[0]))
            return fail(e, q->p[i].name, "unknown parameter '%s' (known: days, start, end, format)",
                        q->p[i].name);
    }
    memset(out, 0, sizeof(*out));
    const char *v = query_get(q, "format");
    if (v != NULL && strcmp(v, "csv") != 0 && strcmp(v, "ndjson") != 0)
        return fail(e, "format", "format must be csv or ndjson");
    out->csv = v == NULL || strcmp(v, "csv") == 0;
    return range_params(q, today, API_EXPORT_DAYS_MAX, out, e);
}
