/* hdr.c - see hdr.h. */
#include "http/hdr.h"

#include "base/err.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Read a decimal number that fits 63 bits. OUT: *v. Returns the end or NULL. */
static const char *read_u63(const char *p, uint64_t *v)
{
    uint64_t n = 0;
    const char *start = p;
    while (*p >= '0' && *p <= '9') {
        if (n > (UINT64_C(1) << 62) / 10)
            return NULL;
        n = n * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p == start)
        return NULL;
    *v = n;
    return p;
}

enum hdr_range hdr_parse_range(const char *value, uint64_t size, uint64_t *first, uint64_t *count)
{
    const char *p = skip_ows(value);
    if (strncasecmp(p, "bytes", 5) != 0)
        return HDR_RANGE_NONE;
    p = skip_ows(p + 5);
    if (*p != '=')
        return HDR_RANGE_NONE;
    p = skip_ows(p + 1);
    if (strchr(p, ',') != NULL) {
        /* Several ranges. Refuse only if the list is obviously junk. */
        return HDR_RANGE_NONE;
    }
    uint64_t a = 0, b = 0;
    int has_a = 0, has_b = 0;
    if (*p != '-') {
        p = read_u63(p, &a);
        if (p == NULL)
            return HDR_RANGE_UNSATISFIABLE;
        has_a = 1;
    }
    if (*p != '-')
        return HDR_RANGE_UNSATISFIABLE;
    p++;
    if (*p >= '0' && *p <= '9') {
        p = read_u63(p, &b);
        if (p == NULL)
            return HDR_RANGE_UNSATISFIABLE;
        has_b = 1;
    }
    p = skip_ows(p);
    if (*p != '\0' || (!has_a && !has_b))
        return HDR_RANGE_UNSATISFIABLE;
    if (has_a) {
        if (has_b && b < a)
            return HDR_RANGE_UNSATISFIABLE;
        if (a >= size)
            return HDR_RANGE_UNSATISFIABLE;
        uint64_t last = has_b && b < size - 1 ? b : size - 1;
        *first = a;
        *count = last - a + 1;
        return HDR_RANGE_OK;
    }
    /* Suffix range: the last b bytes. */
    if (b == 0 || size == 0)
        return HDR_RANGE_UNSATISFIABLE;
    if (b > size)
        b = size;
    *first = size - b;
    *count = b;
    return HDR_RANGE_OK;
}

/* Walk a list of entity tags; `strong` skips weak members (W/"...").
 * `etag` is one of ours, always strong. */
static int etag_list_matches(const char *list, const char *etag, int strong)
{
    size_t elen = strlen(etag);
    const char *p = list;
    for (;;) {
        p = skip_ows(p);
        while (*p == ',')
            p = skip_ows(p + 1);
        if (*p == '\0')
            return 0;
        if (*p == '*')
            return 1;
        int weak = strncmp(p, "W/", 2) == 0;
        if (weak)
            p += 2;
        if (*p != '"')
            return 0; /* malformed list: no match */
        const char *close = strchr(p + 1, '"');
        if (close == NULL)
            return 0;
        size_t n = (size_t)(close - p) + 1;
        if (n == elen && memcmp(p, etag, n) == 0 && !(strong && weak))
            return 1;
        p = close + 1;
    }
}

/* A qvalue (RFC 9110 12.4.2): "0" or "1", then "." and up to three digits
 * ("1" only with zeros). OUT: *thousandths. Returns 0, or -1. */
static int parse_qvalue(const char *p, size_t n, int *thousandths)
{
    if (n == 0 || (p[0] != '0' && p[0] != '1') || (n > 1 && p[1] != '.') || n > 5)
        return -1;
    int v = (p[0] - '0') * 1000, scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9' || (p[0] == '1' && p[i] != '0'))
            return -1;
        v += (p[i] - '0') * scale;
    }
    *thousandths = v;
    return 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int hdr_accepts_gzip(const char *accept_encoding)
{
    int gzip_q = -1, star_q = -1; /* -1: not listed */
    const char *p = accept_encoding;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        /* One member: OWS coding OWS [";" OWS "q=" qvalue OWS] */
        size_t i = 0, c0, c1;
        int q = 1000, ok = 1;
        while (i < len && is_ows(p[i]))
            i++;
        c0 = i;
        while (i < len && !is_ows(p[i]) && p[i] != ';')
            i++;
        c1 = i;
        while (i < len && is_ows(p[i]))
            i++;
        if (i < len && p[i] == ';') {
            i++;
            while (i < len && is_ows(p[i]))
                i++;
            size_t v0 = i + 2, v1 = len;
            while (v1 > v0 && is_ows(p[v1 - 1]))
                v1--;
            ok = len - i >= 2 && (p[i] == 'q' || p[i] == 'Q') && p[i + 1] == '=' &&
                 parse_qvalue(p + v0, v1 - v0, &q) == 0;
        } else if (i < len) {
            ok = 0; /* something after the coding that is not a weight */
        }
        size_t n = c1 - c0;
        if (ok && ((n == 4 && strncasecmp(p + c0, "gzip", 4) == 0) ||
                   (n == 6 && strncasecmp(p + c0, "x-gzip", 6) == 0)))
            gzip_q = q > gzip_q ? q : gzip_q;
        else if (ok && n == 1 && p[c0] == '*')
            star_q = q > star_q ? q : star_q;
        p = end ? end + 1 : NULL;
    }
    return gzip_q >= 0 ? gzip_q > 0 : star_q > 0;
}

int hdr_etag_matches(const char *if_none_match, const char *etag)
{
    if (strncmp(etag, "W/", 2) == 0)
        etag += 2;
    return etag_list_matches(if_none_match, etag, 0);
}

int hdr_etag_matches_strong(const char *if_match, const char *etag)
{
    return strncmp(etag, "W/", 2) != 0 && etag_list_matches(if_match, etag, 1);
}

static const char *const wkday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void hdr_format_http_date(time_t t, char out[30])
{
    struct tm tm;
    char buf[64]; /* roomier than needed: the compiler cannot bound tm's fields */
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999) {
        snprintf(out, 30, "Fri, 31 Dec 9999 23:59:59 GMT"); /* beyond the calendar */
        return;
    }
    snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", wkday[tm.tm_wday], tm.tm_mday,
             month[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(out, 30, "%.29s", buf);
}

static int two_digits(const char *p, int *v)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
        return PF_EINVAL;
    *v = (p[0] - '0') * 10 + (p[1] - '0');
    return 0;
}

/* The two obsolete forms RFC 9110 5.6.7 still asks recipients to accept:
 * RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6
 * 08:49:37 1994"). strptime() reads English names: Pixflare never changes
 * the C locale. */
static int parse_obsolete_date(const char *p, time_t *t)
{
    static const char *const forms[] = {"%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(p, forms[i], &tm);
        if (end == NULL || *skip_ows(end) != '\0')
            continue;
        int year = tm.tm_year + 1900;
        if (i == 0) {
            /* RFC 9110: a two-digit year more than 50 years ahead is in the
             * past century (strptime's own pivot is fixed at 1969). */
            time_t now = time(NULL);
            struct tm nt;
            gmtime_r(&now, &nt);
            year = 2000 + year % 100;
            if (year > nt.tm_year + 1900 + 50)
                year -= 100;
            tm.tm_year = year - 1900;
        }
        if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
            tm.tm_mday > timeutil_days_in_month(year, tm.tm_mon + 1))
            return PF_EINVAL;
        *t = timegm(&tm);
        return 0;
    }
    return PF_EINVAL;
}

int hdr_parse_http_date(const char *value, time_t *t)
{
    /* "Sun, 06 Nov 1994 08:49:37 GMT": fixed layout, 29 characters. */
    const char *p = skip_ows(value);
    struct tm tm;
    int d, y1, y2, h, mi, s, mon = -1;
    if (strlen(p) < 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' ||
        p[16] != ' ' || p[19] != ':' || p[22] != ':' || strncmp(p + 25, " GMT", 4) != 0 ||
        *skip_ows(p + 29) != '\0')
        return parse_obsolete_date(p, t);
    for (int i = 0; i < 12; i++)
        if (strncmp(p + 8, month[i], 3) == 0)
            mon = i;
    if (mon < 0 || two_digits(p + 5, &d) || two_digits(p + 12, &y1) || two_digits(p + 14, &y2) ||
        two_digits(p + 17, &h) || two_digits(p + 20, &mi) || two_digits(p + 23, &s))
        return PF_EINVAL;
    if (d < 1 || d > timeutil_days_in_month(y1 * 100 + y2, mon + 1) || h > 23 || mi > 59 || s > 60)
        return PF_EINVAL;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y1 * 100 + y2 - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    *t = timegm(&tm);
    return 0;
}
