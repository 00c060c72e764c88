/* query_test.c - the analytics API's query strings (query_parse, query_add)
 * and parameters (query_params) against query.h and SPEC.md's HTTP API. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "api/query.h"
#include "base/timeutil.h"

#define DAY 86400

/* ---- query_parse ---- */

struct parse_case {
    const char *raw;
    size_t len;                   /* 0: strlen(raw) */
    int ok;                       /* 1: parses, to `pairs` */
    const char *pairs[2 * 4 + 1]; /* name, value, ..., NULL */
    const char *param;            /* on failure: the parameter named ("" none) */
};

static const struct parse_case parse_cases[] = {
    {"", 0, 1, {NULL}, NULL},
    {"days=7&format=csv", 0, 1, {"days", "7", "format", "csv", NULL}, NULL},
    /* '+' is a space, in names and values */
    {"a+b=c+d", 0, 1, {"a b", "c d", NULL}, NULL},
    /* %XX in either case; an escaped '+' or '&' or '=' is that byte */
    {"%64ays=%37", 0, 1, {"days", "7", NULL}, NULL},
    {"x=%41%4a%4A%7e", 0, 1, {"x", "AJJ~", NULL}, NULL},
    {"%2B=%2b&%26=%3D&%25=%20", 0, 1, {"+", "+", "&", "=", "%", " ", NULL}, NULL},
    /* empty pairs are skipped */
    {"&&a=1&&b=2&", 0, 1, {"a", "1", "b", "2", NULL}, NULL},
    {"&", 0, 1, {NULL}, NULL},
    /* no '=' and an empty value are both "" */
    {"a&b=", 0, 1, {"a", "", "b", "", NULL}, NULL},
    /* the first '=' splits */
    {"a=b=c", 0, 1, {"a", "b=c", NULL}, NULL},
    /* the length given is the end, not a NUL */
    {"days=7&x=1", 6, 1, {"days", "7", NULL}, NULL},
    /* no name */
    {"=1", 0, 0, {NULL}, ""},
    {"a=1&=", 0, 0, {NULL}, ""},
    /* repeated names, also when spelt differently */
    {"a=1&a=2", 0, 0, {NULL}, "a"},
    {"a=1&a", 0, 0, {NULL}, "a"},
    {"days=1&d%61ys=2", 0, 0, {NULL}, "days"},
    {"a+b=1&a%20b=2", 0, 0, {NULL}, "a b"},
    /* bad escapes */
    {"a%", 0, 0, {NULL}, ""},
    {"%4", 0, 0, {NULL}, ""},
    {"a=%", 0, 0, {NULL}, "a"},
    {"a=%4", 0, 0, {NULL}, "a"},
    {"a=%zz", 0, 0, {NULL}, "a"},
    {"a=%4g", 0, 0, {NULL}, "a"},
    {"a=%%41", 0, 0, {NULL}, "a"},
    /* bytes outside printable ASCII, raw or escaped */
    {"caf%C3%A9=1", 0, 0, {NULL}, ""},
    {"a=caf\xc3\xa9", 0, 0, {NULL}, "a"},
    {"a=%00", 0, 0, {NULL}, "a"},
    {"a=%1F", 0, 0, {NULL}, "a"},
    {"a=%7F", 0, 0, {NULL}, "a"},
    {"a=\x7f", 0, 0, {NULL}, "a"},
    {"a=\t", 0, 0, {NULL}, "a"},
    {"a\n=1", 0, 0, {NULL}, ""},
    {"a=1\0", 4, 0, {NULL}, "a"},
    {"days=1&limit=%FF", 0, 0, {NULL}, "limit"},
};

/* Check a parse against its case. */
static void expect_parse(const struct parse_case *c, int rc, const struct query *q,
                         const struct query_error *e, const char *how)
{
    if (c->ok) {
        if (rc != 0)
            fail_msg("%s '%s': failed (%s: %s)", how, c->raw, e->param, e->message);
        size_t n = 0;
        while (c->pairs[2 * n] != NULL)
            n++;
        if (q->n != n)
            fail_msg("%s '%s': %zu pairs, want %zu", how, c->raw, q->n, n);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(q->p[i].name, c->pairs[2 * i]) != 0 ||
                strcmp(q->p[i].value, c->pairs[2 * i + 1]) != 0)
                fail_msg("%s '%s': pair %zu is '%s'='%s', want '%s'='%s'", how, c->raw, i,
                         q->p[i].name, q->p[i].value, c->pairs[2 * i], c->pairs[2 * i + 1]);
            assert_ptr_equal(query_get(q, c->pairs[2 * i]), q->p[i].value);
        }
    } else {
        if (rc != PF_EINVAL)
            fail_msg("%s '%s': rc %d, want PF_EINVAL", how, c->raw, rc);
        if (strcmp(e->param, c->param) != 0)
            fail_msg("%s '%s': names '%s', want '%s'", how, c->raw, e->param, c->param);
        assert_true(e->message[0] != '\0');
    }
}

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        size_t len = c->len ? c->len : strlen(c->raw);
        struct query q;
        struct query_error e;
        memset(&e, 0, sizeof(e));
        expect_parse(c, query_parse(c->raw, len, &q, &e), &q, &e, "query_parse");
    }
}

/* The same cases, the pairs split by hand and handed to query_add as api.c
 * does: not NUL-terminated, value NULL without '='. */
static void test_add_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        size_t len = c->len ? c->len : strlen(c->raw), at = 0;
        struct query q;
        struct query_error e;
        int rc = 0;
        char buf[256];
        q.n = 0;
        memset(&e, 0, sizeof(e));
        while (at < len && rc == 0) {
            const char *amp = memchr(c->raw + at, '&', len - at);
            size_t end = amp ? (size_t)(amp - c->raw) : len;
            if (end > at) {
                /* a copy followed by hex digits, so that reading past the end
                 * shows (a cut "%4" would decode) */
                memset(buf, '0', sizeof(buf));
                memcpy(buf, c->raw + at, end - at);
                const char *eq = memchr(buf, '=', end - at);
                size_t nlen = eq ? (size_t)(eq - buf) : end - at;
                rc = query_add(&q, buf, nlen, eq ? eq + 1 : NULL, eq ? end - at - nlen - 1 : 0, &e);
            }
            at = end + 1;
        }
        expect_parse(c, rc, &q, &e, "query_add");
    }
}

/* raw = prefix + n copies of unit + suffix (curl style: no strcat). */
static size_t build(char *raw, size_t cap, const char *prefix, const char *unit, int n,
                    const char *suffix)
{
    size_t w = (size_t)snprintf(raw, cap, "%s", prefix);
    for (int i = 0; i < n; i++)
        w += (size_t)snprintf(raw + w, cap - w, "%s", unit);
    w += (size_t)snprintf(raw + w, cap - w, "%s", suffix);
    assert_true(w < cap);
    return w;
}

static void test_lengths(void **state)
{
    (void)state;
    struct query q;
    struct query_error e;
    char raw[512], want[64];
    /* a 32-byte name and a 64-byte value fit */
    size_t w = build(raw, sizeof(raw), "", "n", QUERY_NAME_MAX, "=");
    w = build(raw + w, sizeof(raw) - w, "", "v", QUERY_VALUE_MAX, "") + w;
    assert_int_equal(query_parse(raw, w, &q, &e), 0);
    assert_int_equal(q.n, 1);
    assert_int_equal(strlen(q.p[0].name), QUERY_NAME_MAX);
    assert_int_equal(strlen(q.p[0].value), QUERY_VALUE_MAX);

    /* a 33-byte name is unknown, named by what fits */
    w = build(raw, sizeof(raw), "", "n", QUERY_NAME_MAX + 1, "=1");
    assert_int_equal(query_parse(raw, w, &q, &e), PF_EINVAL);
    build(want, sizeof(want), "", "n", QUERY_NAME_MAX, "");
    assert_string_equal(e.param, want);
    assert_non_null(strstr(e.message, "unknown parameter"));

    /* a 65-byte value is too long */
    w = build(raw, sizeof(raw), "format=", "x", QUERY_VALUE_MAX + 1, "");
    assert_int_equal(query_parse(raw, w, &q, &e), PF_EINVAL);
    assert_string_equal(e.param, "format");
    assert_non_null(strstr(e.message, "too long"));

    /* the limits count decoded bytes: 32 escapes are a 32-byte name */
    w = build(raw, sizeof(raw), "", "%41", QUERY_NAME_MAX, "=1");
    assert_int_equal(query_parse(raw, w, &q, &e), 0);
    build(want, sizeof(want), "", "A", QUERY_NAME_MAX, "");
    assert_string_equal(q.p[0].name, want);
    /* 33 escapes are too long; the error shows the raw name, cut */
    w = build(raw, sizeof(raw), "", "%41", QUERY_NAME_MAX + 1, "=1");
    assert_int_equal(query_parse(raw, w, &q, &e), PF_EINVAL);
    assert_string_equal(e.param, "%41%41%41%41%41%41%41%41%41%41%4");
    /* a control byte is refused as such, before the length is reached */
    w = build(raw, sizeof(raw), "\x01", "n", QUERY_NAME_MAX + 1, "=1");
    assert_int_equal(query_parse(raw, w, &q, &e), PF_EINVAL);
    assert_string_equal(e.param, "");
    assert_non_null(strstr(e.message, "malformed"));

    /* 64 escaped value bytes fit, 65 do not */
    w = build(raw, sizeof(raw), "v=", "%7E", QUERY_VALUE_MAX, "");
    assert_int_equal(query_parse(raw, w, &q, &e), 0);
    assert_int_equal(strlen(q.p[0].value), QUERY_VALUE_MAX);
    w = build(raw, sizeof(raw), "v=", "%7E", QUERY_VALUE_MAX, "+");
    assert_int_equal(query_parse(raw, w, &q, &e), PF_EINVAL);
    assert_string_equal(e.param, "v");
}

static void test_too_many(void **state)
{
    (void)state;
    struct query q;
    struct query_error e;
    char raw[512];
    size_t w = 0;
    for (int i = 0; i < QUERY_MAX_PARAMS; i++)
        w += (size_t)snprintf(raw + w, sizeof(raw) - w, "%sp%d=%d", i ? "&" : "", i, i);
    assert_int_equal(query_parse(raw, w, &q, &e), 0);
    assert_int_equal(q.n, QUERY_MAX_PARAMS);
    assert_string_equal(query_get(&q, "p15"), "15");
    assert_null(query_get(&q, "p16"));
    w += (size_t)snprintf(raw + w, sizeof(raw) - w, "&&&"); /* empty pairs do not count */
    assert_int_equal(query_parse(raw, w, &q, &e), 0);
    w += (size_t)snprintf(raw + w, sizeof(raw) - w, "p16=16");
    assert_int_equal(query_parse(raw, w, &q, &e), PF_EINVAL);
    assert_string_equal(e.param, "");
    assert_non_null(strstr(e.message, "too many"));
}

/* ---- query_params ---- */

enum { OV = QUERY_OVERVIEW, IMG = QUERY_IMAGE };

struct param_case {
    const char *today; /* ISO 8601, any time of the day */
    const char *raw;
    int ep;
    const char *start, *end; /* NULL: an error naming `param` */
    int days, limit, csv;
    const char *param;
};

#define T "2026-11-24T15:30:00Z"
#define LEAP "2028-03-15T00:00:00Z"

static const struct param_case param_cases[] = {
    /* defaults: 30 days ending today, limit 10, json */
    {T, "", OV, "2026-10-26", "2026-11-24", 30, 10, 0, NULL},
    {T, "", IMG, "2026-10-26", "2026-11-24", 30, 10, 0, NULL},
    {"2026-11-24T00:00:00Z", "", OV, "2026-10-26", "2026-11-24", 30, 10, 0, NULL},
    {"2026-11-24T23:59:59Z", "", OV, "2026-10-26", "2026-11-24", 30, 10, 0, NULL},
    /* days: 1 to 90, ending today */
    {T, "days=1", OV, "2026-11-24", "2026-11-24", 1, 10, 0, NULL},
    {T, "days=7", IMG, "2026-11-18", "2026-11-24", 7, 10, 0, NULL},
    {T, "days=90", OV, "2026-08-27", "2026-11-24", 90, 10, 0, NULL},
    {T, "days=0", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=91", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=-1", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=+7", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=%2B7", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=7x", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=1.5", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=99999999999999999999", OV, NULL, NULL, 0, 0, 0, "days"},
    /* start and end: real dates, start <= end <= today, at most 90 days */
    {T, "start=2026-11-01&end=2026-11-10", OV, "2026-11-01", "2026-11-10", 10, 10, 0, NULL},
    {T, "end=2026-11-10&start=2026-11-01", IMG, "2026-11-01", "2026-11-10", 10, 10, 0, NULL},
    {T, "start=2026-11-10&end=2026-11-10", OV, "2026-11-10", "2026-11-10", 1, 10, 0, NULL},
    {T, "start=2026-11-24&end=2026-11-24", OV, "2026-11-24", "2026-11-24", 1, 10, 0, NULL},
    {T, "start=2026-08-27&end=2026-11-24", OV, "2026-08-27", "2026-11-24", 90, 10, 0, NULL},
    {T, "start=2026-08-26&end=2026-11-24", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-01-01&end=2026-03-31", OV, "2026-01-01", "2026-03-31", 90, 10, 0, NULL},
    {T, "start=2026-01-01&end=2026-04-01", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-11-10&end=2026-11-09", OV, NULL, NULL, 0, 0, 0, "start"},
    /* end alone: the 30 days ending there (across a year end too) */
    {T, "end=2026-11-10", OV, "2026-10-12", "2026-11-10", 30, 10, 0, NULL},
    {T, "end=2026-11-24", OV, "2026-10-26", "2026-11-24", 30, 10, 0, NULL},
    {"2027-01-10T08:00:00Z", "end=2027-01-05", OV, "2026-12-07", "2027-01-05", 30, 10, 0, NULL},
    {T, "end=1970-01-01", OV, "1969-12-03", "1970-01-01", 30, 10, 0, NULL},
    /* start alone: ends today */
    {T, "start=2026-11-01", OV, "2026-11-01", "2026-11-24", 24, 10, 0, NULL},
    {T, "start=2026-11-24", OV, "2026-11-24", "2026-11-24", 1, 10, 0, NULL},
    {T, "start=2026-08-27", OV, "2026-08-27", "2026-11-24", 90, 10, 0, NULL},
    {T, "start=2026-08-26", OV, NULL, NULL, 0, 0, 0, "start"},
    /* after today (UTC) */
    {T, "end=2026-11-25", OV, NULL, NULL, 0, 0, 0, "end"},
    {T, "start=2026-11-25", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-11-20&end=2026-11-25", OV, NULL, NULL, 0, 0, 0, "end"},
    {"2026-11-24T23:59:59Z", "end=2026-11-25", IMG, NULL, NULL, 0, 0, 0, "end"},
    {"2026-11-25T00:00:00Z", "end=2026-11-25", IMG, "2026-10-27", "2026-11-25", 30, 10, 0, NULL},
    /* real calendar dates only, written YYYY-MM-DD */
    {LEAP, "start=2028-02-29&end=2028-02-29", OV, "2028-02-29", "2028-02-29", 1, 10, 0, NULL},
    {LEAP, "end=2028-02-29", OV, "2028-01-31", "2028-02-29", 30, 10, 0, NULL},
    {LEAP, "start=2028-02-29", OV, "2028-02-29", "2028-03-15", 16, 10, 0, NULL},
    {"2027-03-15T12:00:00Z", "start=2027-02-29", OV, NULL, NULL, 0, 0, 0, "start"},
    {"2027-03-15T12:00:00Z", "end=2027-02-29", OV, NULL, NULL, 0, 0, 0, "end"},
    {"2100-03-15T12:00:00Z", "start=2100-02-29", OV, NULL, NULL, 0, 0, 0, "start"},
    {"2000-03-15T12:00:00Z", "start=2000-02-29", OV, "2000-02-29", "2000-03-15", 16, 10, 0, NULL},
    {T, "start=2026-04-31", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-13-01", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-00-10", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-11-00", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-11-1", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=20261101", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-11-01Z", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-11-01T00:00", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=2026-11-01+", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=+2026-11-01", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=yesterday", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "start=", OV, NULL, NULL, 0, 0, 0, "start"},
    {T, "end=2026/11/10", OV, NULL, NULL, 0, 0, 0, "end"},
    {T, "start=2026%2D11%2D01", OV, "2026-11-01", "2026-11-24", 24, 10, 0, NULL},
    /* days does not combine with start or end */
    {T, "days=7&start=2026-11-01", OV, NULL, NULL, 0, 0, 0, "days"},
    {T, "days=7&end=2026-11-10", IMG, NULL, NULL, 0, 0, 0, "days"},
    {T, "end=2026-11-10&days=7&start=2026-11-01", OV, NULL, NULL, 0, 0, 0, "days"},
    /* limit: overview only, 1 to 100 */
    {T, "limit=1", OV, "2026-10-26", "2026-11-24", 30, 1, 0, NULL},
    {T, "limit=100&days=7", OV, "2026-11-18", "2026-11-24", 7, 100, 0, NULL},
    {T, "limit=0", OV, NULL, NULL, 0, 0, 0, "limit"},
    {T, "limit=101", OV, NULL, NULL, 0, 0, 0, "limit"},
    {T, "limit=ten", OV, NULL, NULL, 0, 0, 0, "limit"},
    {T, "limit=", OV, NULL, NULL, 0, 0, 0, "limit"},
    {T, "limit=10", IMG, NULL, NULL, 0, 0, 0, "limit"},
    /* format: json or csv */
    {T, "format=json", OV, "2026-10-26", "2026-11-24", 30, 10, 0, NULL},
    {T, "format=csv", OV, "2026-10-26", "2026-11-24", 30, 10, 1, NULL},
    {T, "format=csv&days=1", IMG, "2026-11-24", "2026-11-24", 1, 10, 1, NULL},
    {T, "format=CSV", OV, NULL, NULL, 0, 0, 0, "format"},
    {T, "format=xml", OV, NULL, NULL, 0, 0, 0, "format"},
    {T, "format=", OV, NULL, NULL, 0, 0, 0, "format"},
    {T, "format=csv+", OV, NULL, NULL, 0, 0, 0, "format"},
    /* unknown parameters are errors, not silently ignored */
    {T, "foo=1", OV, NULL, NULL, 0, 0, 0, "foo"},
    {T, "days=7&Days=7", OV, NULL, NULL, 0, 0, 0, "Days"},
    {T, "range=7", IMG, NULL, NULL, 0, 0, 0, "range"},
    {T, "top=5", OV, NULL, NULL, 0, 0, 0, "top"},
    /* every parameter at once */
    {T, "start=2026-11-01&end=2026-11-20&limit=25&format=csv", OV, "2026-11-01", "2026-11-20", 20,
     25, 1, NULL},
};

static void test_params_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
        const struct param_case *c = &param_cases[i];
        const char *ep = c->ep == OV ? "overview" : "image";
        struct query q;
        struct query_error e;
        struct api_params p;
        int64_t today;
        char start[11], end[11];
        memset(&e, 0, sizeof(e));
        assert_int_equal(timeutil_parse_iso8601(c->today, &today), 0);
        if (query_parse(c->raw, strlen(c->raw), &q, &e) != 0)
            fail_msg("'%s': query_parse failed: %s", c->raw, e.message);
        int rc = query_params(&q, (enum query_endpoint)c->ep, today, &p, &e);
        if (c->start == NULL) {
            if (rc != PF_EINVAL)
                fail_msg("'%s' (%s, today %s): accepted, want an error naming '%s'", c->raw, ep,
                         c->today, c->param);
            if (strcmp(e.param, c->param) != 0)
                fail_msg("'%s' (%s): names '%s' (%s), want '%s'", c->raw, ep, e.param, e.message,
                         c->param);
            assert_true(e.message[0] != '\0');
            continue;
        }
        if (rc != 0)
            fail_msg("'%s' (%s, today %s): refused: %s: %s", c->raw, ep, c->today, e.param,
                     e.message);
        timeutil_format_date(p.start, start);
        timeutil_format_date(p.end, end);
        if (strcmp(start, c->start) != 0 || strcmp(end, c->end) != 0 || p.days != c->days ||
            p.limit != c->limit || p.csv != c->csv)
            fail_msg("'%s' (%s, today %s): %s..%s days %d limit %d csv %d, want %s..%s days %d "
                     "limit %d csv %d",
                     c->raw, ep, c->today, start, end, p.days, p.limit, p.csv, c->start, c->end,
                     c->days, c->limit, c->csv);
        /* both at midnight, days consistent */
        assert_int_equal(p.start % DAY, 0);
        assert_int_equal(p.end % DAY, 0);
        assert_int_equal(p.end - p.start, (int64_t)(p.days - 1) * DAY);
    }
}

/* Error messages say what is allowed, and name today's date when a date is
 * after it. */
static void test_messages(void **state)
{
    (void)state;
    struct query q;
    struct query_error e;
    struct api_params p;
    int64_t today;
    assert_int_equal(timeutil_parse_iso8601(T, &today), 0);
    assert_int_equal(query_parse("end=2026-11-25", 14, &q, &e), 0);
    assert_int_equal(query_params(&q, QUERY_OVERVIEW, today, &p, &e), PF_EINVAL);
    assert_non_null(strstr(e.message, "2026-11-24"));
    assert_int_equal(query_parse("days=91", 7, &q, &e), 0);
    assert_int_equal(query_params(&q, QUERY_OVERVIEW, today, &p, &e), PF_EINVAL);
    assert_non_null(strstr(e.message, "90"));
    assert_int_equal(query_parse("limit=5", 7, &q, &e), 0);
    assert_int_equal(query_params(&q, QUERY_IMAGE, today, &p, &e), PF_EINVAL);
    assert_non_null(strstr(e.message, "unknown parameter 'limit'"));
    assert_null(strstr(e.message, "known: days, start, end, limit"));
}

/* interval, compare and exclude_bots (issue 20). */
struct choice_case {
    const char *raw;
    int ep;
    int ok; /* 1: accepted with these values */
    int days, hourly, compare, exclude_bots;
    const char *param; /* on failure, the parameter named */
};

static const struct choice_case choice_cases[] = {
    /* defaults */
    {"", OV, 1, 30, 0, 0, 0, NULL},
    {"", IMG, 1, 30, 0, 0, 0, NULL},
    /* interval: day or hour; hour for at most 7 days */
    {"interval=day", OV, 1, 30, 0, 0, 0, NULL},
    {"interval=day&days=90", IMG, 1, 90, 0, 0, 0, NULL},
    {"interval=hour&days=7", OV, 1, 7, 1, 0, 0, NULL},
    {"interval=hour&days=1", IMG, 1, 1, 1, 0, 0, NULL},
    {"days=7&interval=hour", IMG, 1, 7, 1, 0, 0, NULL},
    {"interval=hour&start=2026-11-18&end=2026-11-24", OV, 1, 7, 1, 0, 0, NULL},
    {"interval=hour&start=2026-11-24", OV, 1, 1, 1, 0, 0, NULL},
    {"interval=hour&days=8", OV, 0, 0, 0, 0, 0, "interval"},
    {"interval=hour", OV, 0, 0, 0, 0, 0, "interval"}, /* the default 30 days */
    {"interval=hour&start=2026-11-17&end=2026-11-24", IMG, 0, 0, 0, 0, 0, "interval"},
    {"interval=hour&end=2026-11-24", OV, 0, 0, 0, 0, 0, "interval"},
    {"interval=Hour&days=1", OV, 0, 0, 0, 0, 0, "interval"},
    {"interval=hours&days=1", OV, 0, 0, 0, 0, 0, "interval"},
    {"interval=week", OV, 0, 0, 0, 0, 0, "interval"},
    {"interval=", OV, 0, 0, 0, 0, 0, "interval"},
    {"interval", IMG, 0, 0, 0, 0, 0, "interval"},
    {"interval=day+", OV, 0, 0, 0, 0, 0, "interval"},
    {"interval=day&interval=hour", OV, 0, 0, 0, 0, 0, "interval"},
    /* a bad range is named before interval's range limit */
    {"interval=hour&days=91", OV, 0, 0, 0, 0, 0, "days"},
    {"interval=hour&end=2026-11-25", OV, 0, 0, 0, 0, 0, "end"},
    /* compare: previous only */
    {"compare=previous", OV, 1, 30, 0, 1, 0, NULL},
    {"compare=previous&days=90&interval=day", IMG, 1, 90, 0, 1, 0, NULL},
    {"compare=previous&days=7&interval=hour", OV, 1, 7, 1, 1, 0, NULL},
    {"compare=Previous", OV, 0, 0, 0, 0, 0, "compare"},
    {"compare=prev", OV, 0, 0, 0, 0, 0, "compare"},
    {"compare=true", OV, 0, 0, 0, 0, 0, "compare"},
    {"compare=", IMG, 0, 0, 0, 0, 0, "compare"},
    {"compare", OV, 0, 0, 0, 0, 0, "compare"},
    {"compare=previous&compare=previous", OV, 0, 0, 0, 0, 0, "compare"},
    /* exclude_bots: true or false */
    {"exclude_bots=true", OV, 1, 30, 0, 0, 1, NULL},
    {"exclude_bots=false", IMG, 1, 30, 0, 0, 0, NULL},
    {"exclude_bots=true&compare=previous&interval=hour&days=2", IMG, 1, 2, 1, 1, 1, NULL},
    {"exclude_bots=TRUE", OV, 0, 0, 0, 0, 0, "exclude_bots"},
    {"exclude_bots=1", OV, 0, 0, 0, 0, 0, "exclude_bots"},
    {"exclude_bots=yes", OV, 0, 0, 0, 0, 0, "exclude_bots"},
    {"exclude_bots=", IMG, 0, 0, 0, 0, 0, "exclude_bots"},
    {"exclude_bots", OV, 0, 0, 0, 0, 0, "exclude_bots"},
    {"exclude_bots=true&exclude_bots=true", OV, 0, 0, 0, 0, 0, "exclude_bots"},
    {"exclude%5Fbots=true", OV, 1, 30, 0, 0, 1, NULL},
    /* misspelt: unknown */
    {"exclude_bot=true", OV, 0, 0, 0, 0, 0, "exclude_bot"},
    {"intervals=day", IMG, 0, 0, 0, 0, 0, "intervals"},
    {"Compare=previous", OV, 0, 0, 0, 0, 0, "Compare"},
};

static void test_choice_table(void **state)
{
    (void)state;
    int64_t today;
    assert_int_equal(timeutil_parse_iso8601(T, &today), 0);
    for (size_t i = 0; i < sizeof(choice_cases) / sizeof(choice_cases[0]); i++) {
        const struct choice_case *c = &choice_cases[i];
        struct query q;
        struct query_error e;
        struct api_params p;
        memset(&e, 0, sizeof(e));
        int rc = query_parse(c->raw, strlen(c->raw), &q, &e);
        if (rc == 0)
            rc = query_params(&q, (enum query_endpoint)c->ep, today, &p, &e);
        if (!c->ok) {
            if (rc != PF_EINVAL || strcmp(e.param, c->param) != 0)
                fail_msg("'%s': rc %d naming '%s' (%s), want an error naming '%s'", c->raw, rc,
                         e.param, e.message, c->param);
            assert_true(e.message[0] != '\0');
            continue;
        }
        if (rc != 0)
            fail_msg("'%s': refused: %s: %s", c->raw, e.param, e.message);
        if (p.days != c->days || p.hourly != c->hourly || p.compare != c->compare ||
            p.exclude_bots != c->exclude_bots)
            fail_msg("'%s': days %d hourly %d compare %d exclude_bots %d, want %d %d %d %d", c->raw,
                     p.days, p.hourly, p.compare, p.exclude_bots, c->days, c->hourly, c->compare,
                     c->exclude_bots);
    }
}

/* The new parameters' messages, as docs/API.md quotes them. */
static void test_choice_messages(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        int ep;
        const char *message;
    } m[] = {
        {"interval=minute", OV, "interval must be day or hour"},
        {"interval=hour&days=8", OV, "interval=hour allows a range of at most 7 days"},
        {"compare=last", OV, "compare must be previous"},
        {"exclude_bots=no", IMG, "exclude_bots must be true or false"},
        {"x=1", OV,
         "unknown parameter 'x' (known: days, start, end, limit, format, interval, compare, "
         "exclude_bots)"},
        {"limit=1", IMG,
         "unknown parameter 'limit' (known: days, start, end, format, interval, compare, "
         "exclude_bots)"},
    };
    int64_t today;
    assert_int_equal(timeutil_parse_iso8601(T, &today), 0);
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        struct query q;
        struct query_error e;
        struct api_params p;
        assert_int_equal(query_parse(m[i].raw, strlen(m[i].raw), &q, &e), 0);
        assert_int_equal(query_params(&q, (enum query_endpoint)m[i].ep, today, &p, &e), PF_EINVAL);
        assert_string_equal(e.message, m[i].message);
    }
}

/* The export's parameters: the same range rules up to 366 days, format
 * csv (the default) or ndjson, nothing else. */
static void test_export_params(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        int ok, days, csv;
        const char *param, *message;
    } c[] = {
        {"", 1, 30, 1, NULL, NULL},
        {"format=csv", 1, 30, 1, NULL, NULL},
        {"format=ndjson&days=366", 1, 366, 0, NULL, NULL},
        {"start=2025-11-24&end=2026-11-24", 1, 366, 1, NULL, NULL},
        {"start=2025-11-23&end=2026-11-24", 0, 0, 0, "start",
         "the range from start to end may span at most 366 days"},
        {"days=367", 0, 0, 0, "days", "days must be a whole number from 1 to 366"},
        {"days=0", 0, 0, 0, "days", "days must be a whole number from 1 to 366"},
        {"days=7&start=2026-11-01", 0, 0, 0, "days", "days cannot be combined with start or end"},
        {"end=2026-11-25", 0, 0, 0, "end", "end must not be after today (2026-11-24, UTC)"},
        {"start=2026-02-30", 0, 0, 0, "start",
         "start must be a real calendar date written YYYY-MM-DD"},
        {"format=json", 0, 0, 0, "format", "format must be csv or ndjson"},
        {"format=NDJSON", 0, 0, 0, "format", "format must be csv or ndjson"},
        {"limit=5", 0, 0, 0, "limit",
         "unknown parameter 'limit' (known: days, start, end, format)"},
        {"interval=day", 0, 0, 0, "interval",
         "unknown parameter 'interval' (known: days, start, end, format)"},
    };
    int64_t today;
    assert_int_equal(timeutil_parse_iso8601(T, &today), 0);
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct query q;
        struct query_error e;
        struct api_params p;
        assert_int_equal(query_parse(c[i].raw, strlen(c[i].raw), &q, &e), 0);
        int rc = query_export_params(&q, today, &p, &e);
        if (c[i].ok) {
            if (rc != 0)
                fail_msg("%s: %s", c[i].raw, e.message);
            assert_int_equal(p.days, c[i].days);
            assert_int_equal(p.csv, c[i].csv);
            assert_int_equal(p.end - p.start, (int64_t)(c[i].days - 1) * 86400);
        } else {
            assert_int_equal(rc, PF_EINVAL);
            assert_string_equal(e.param, c[i].param);
            assert_string_equal(e.message, c[i].message);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),   cmocka_unit_test(test_add_table),
        cmocka_unit_test(test_lengths),       cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_params_table),  cmocka_unit_test(test_messages),
        cmocka_unit_test(test_choice_table),  cmocka_unit_test(test_choice_messages),
        cmocka_unit_test(test_export_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
