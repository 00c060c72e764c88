/* fuzz_range.c - fuzzes the request-header parsers of src/hdr.c: hdr_parse_range(),
 * hdr_etag_matches(), hdr_parse_http_date(), hdr_format_http_date() and
 * hdr_accepts_gzip().
 *
 * Input layout: the bytes up to the first NUL are the header value (copied
 * into an exactly sized NUL-terminated string, so ASan catches reads past the
 * terminator); up to 8 bytes after that NUL are the body size, little-endian.
 * Without a NUL the whole input is the value and the size is 1000, so plain
 * text seeds such as "bytes=0-99" work as they are. Invariants checked:
 *  - hdr_parse_range returns one of the three enum values; for HDR_RANGE_OK,
 *    count >= 1, first < size and first + count <= size (without overflow);
 *    an empty body is never HDR_RANGE_OK;
 *  - hdr_etag_matches gives the same answer for an entity tag and for its
 *    weak form W/"..." (weak comparison), and answers 0 or 1;
 *  - when hdr_parse_http_date accepts the value and the time lies in
 *    1970..9999, hdr_format_http_date prints 29 characters that parse back to
 *    the same time_t and format back to the same text;
 *  - the same format/parse round trip holds for a time taken from the size
 *    bytes, reduced into 1970..9999;
 *  - hdr_accepts_gzip agrees with a second, separately written reading of
 *    RFC 9110's Accept-Encoding rules (ref_member). */
#include "base/err.h"
#include "fuzz_check.h"
#include "http/hdr.h"

#include <strings.h>

/* 10000-01-01T00:00:00Z: the first instant IMF-fixdate cannot print. */
#define YEAR_10000 INT64_C(253402300800)

static void check_range(const char *value, uint64_t size)
{
    uint64_t first = 0, count = 0;
    enum hdr_range r = hdr_parse_range(value, size, &first, &count);
    FUZZ_CHECK(r == HDR_RANGE_NONE || r == HDR_RANGE_OK || r == HDR_RANGE_UNSATISFIABLE);
    if (r == HDR_RANGE_OK) {
        FUZZ_CHECK(size > 0);
        FUZZ_CHECK(count >= 1);
        FUZZ_CHECK(first < size);
        FUZZ_CHECK(count <= size - first);
    }
}

static void check_etag(const char *value)
{
    static const char *const tags[] = {"\"abc\"", "\"\"", "\"x,y\"", "\"*\""};
    char weak[16];
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        int strong = hdr_etag_matches(value, tags[i]);
        snprintf(weak, sizeof(weak), "W/%s", tags[i]);
        FUZZ_CHECK(strong == 0 || strong == 1);
        FUZZ_CHECK(hdr_etag_matches(value, weak) == strong);
    }
    /* The value compared with itself as the entity tag: only must not crash. */
    (void)hdr_etag_matches(value, value);
}

/* Format t, check the text, parse it back. */
static void check_date_roundtrip(time_t t)
{
    char text[30], again[30];
    time_t back = 0;
    hdr_format_http_date(t, text);
    FUZZ_CHECK(strlen(text) == 29);
    FUZZ_CHECK(hdr_parse_http_date(text, &back) == 0);
    FUZZ_CHECK(back == t);
    hdr_format_http_date(back, again);
    FUZZ_CHECK(strcmp(text, again) == 0);
}

static void check_date(const char *value, uint64_t size)
{
    time_t t = 0;
    int rc = hdr_parse_http_date(value, &t);
    FUZZ_CHECK(rc == 0 || rc == PF_EINVAL);
    if (rc == 0 && (int64_t)t >= 0 && (int64_t)t < YEAR_10000)
        check_date_roundtrip(t);
    check_date_roundtrip((time_t)(size % (uint64_t)YEAR_10000));
}

/* A second reading of RFC 9110's Accept-Encoding, written apart from
 * hdr.c's: each comma-separated member, trimmed, is a coding, then maybe
 * ";" OWS "q=" qvalue. Returns the weight in thousandths for gzip (or
 * x-gzip) and for "*" through *gz and *star (-1: not listed). */
static void ref_member(const char *m, size_t n, int *gz, int *star)
{
    char buf[64];
    while (n > 0 && (*m == ' ' || *m == '\t'))
        m++, n--;
    while (n > 0 && (m[n - 1] == ' ' || m[n - 1] == '\t'))
        n--;
    if (n >= sizeof(buf))
        return;
    memcpy(buf, m, n);
    buf[n] = '\0';
    int q = 1000;
    char *semi = strchr(buf, ';');
    if (semi != NULL) {
        *semi = '\0';
        char *w = semi + 1;
        while (*w == ' ' || *w == '\t')
            w++;
        size_t wl = strlen(w);
        if (wl < 3 || (w[0] != 'q' && w[0] != 'Q') || w[1] != '=')
            return;
        const char *v = w + 2;
        size_t vl = wl - 2;
        if (vl > 5 || (v[0] != '0' && v[0] != '1') || (vl >= 2 && v[1] != '.'))
            return;
        q = 0;
        for (size_t i = 0; i < 4; i++) {
            int d = i == 0 ? v[0] - '0' : (i + 1 < vl ? v[i + 1] - '0' : 0);
            if (d < 0 || d > 9 || (i > 0 && v[0] == '1' && d != 0))
                return;
            q = q * 10 + d;
        }
        size_t cl = strlen(buf);
        while (cl > 0 && (buf[cl - 1] == ' ' || buf[cl - 1] == '\t'))
            buf[--cl] = '\0';
    }
    if (strpbrk(buf, " \t") != NULL)
        return;
    if (strcasecmp(buf, "gzip") == 0 || strcasecmp(buf, "x-gzip") == 0)
        *gz = q > *gz ? q : *gz;
    else if (strcmp(buf, "*") == 0)
        *star = q > *star ? q : *star;
}

static void check_accept_encoding(const char *value)
{
    int gz = -1, star = -1;
    const char *p = value;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= 64) {
            /* A member longer than the reference's buffer (OWS padding can
             * make even "gzip" that long): no comparison for this input. */
            gz = -2;
            break;
        }
        ref_member(p, n, &gz, &star);
        if (end == NULL)
            break;
        p = end + 1;
    }
    int got = hdr_accepts_gzip(value);
    FUZZ_CHECK(got == 0 || got == 1);
    if (gz != -2)
        FUZZ_CHECK(got == (gz >= 0 ? gz > 0 : star > 0));
    FUZZ_CHECK(hdr_accepts_gzip(NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t vlen = nul != NULL ? (size_t)(nul - data) : size;
    uint64_t body = 1000;
    if (nul != NULL)
        body = fuzz_u64(nul + 1, size - vlen - 1);
    char *value = fuzz_cstr(data, vlen);
    check_range(value, body);
    check_etag(value);
    check_date(value, body);
    check_accept_encoding(value);
    free(value);
    return 0;
}
