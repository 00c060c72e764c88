/* fuzz_etag.c - fuzzes the entity-tag list matching of the conditional
 * request headers in src/http/hdr.c: hdr_etag_matches() (If-None-Match, weak
 * comparison; the CDN, the API and the dashboard) and
 * hdr_etag_matches_strong() (If-Match, strong comparison; the CDN's 412).
 *
 * Input layout: the bytes up to the first NUL are the header value, the
 * bytes after it the server's entity tag (used only when it is well formed,
 * as the server's own always are; else "\"abc\"" stands in). Both are exactly
 * sized heap strings. Invariants checked, against ref_list(), a separately
 * written parser of RFC 9110's grammar (#entity-tag with empty elements,
 * entity-tag = [W/] DQUOTE *etagc DQUOTE, plus "*" as a member, which the
 * server honours wherever it appears):
 *  - for a well-formed list, both answers equal the reference's: weak, any
 *    member with the same opaque tag; strong, the server's tag not weak and
 *    a member not weak with the same opaque tag; "*" matches any tag,
 *    but strongly only a strong one (the server's tags are all strong, so
 *    RFC 9110's "*" matching any current representation is not at stake);
 *  - for any list, answers are 0 or 1, a strong match is also a weak one,
 *    and the weak answer is the same for the tag and for its W/ form. */
#include "fuzz_check.h"
#include "http/hdr.h"

static int etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7E) || c >= 0x80;
}

/* Length of the entity-tag at p, or 0. OUT: *weak. */
static size_t entity_tag(const char *p, int *weak)
{
    size_t i = 0;
    *weak = p[0] == 'W' && p[1] == '/';
    if (*weak)
        i = 2;
    if (p[i] != '"')
        return 0;
    i++;
    while (p[i] != '\0' && etagc((unsigned char)p[i]))
        i++;
    return p[i] == '"' ? i + 1 : 0;
}

/* Whether `list` is well formed; OUT: *weak_match, *strong_match against
 * the well-formed tag `etag`. */
static int ref_list(const char *list, const char *etag, int *weak_match, int *strong_match)
{
    int eweak;
    size_t elen = entity_tag(etag, &eweak);
    const char *eo = etag + (eweak ? 2 : 0); /* opaque tag */
    size_t eolen = elen - (eweak ? 2 : 0);
    *weak_match = *strong_match = 0;
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            return 1;
        size_t n;
        int weak = 0;
        if (*p == '*') {
            n = 1;
            *weak_match = 1;
            /* The server's tags are strong; a weak one never matches
             * strongly, "*" included (RFC 9110 would let "*" match it). */
            *strong_match = !eweak;
        } else {
            n = entity_tag(p, &weak);
            if (n == 0)
                return 0;
            const char *o = p + (weak ? 2 : 0);
            size_t olen = n - (weak ? 2 : 0);
            if (olen == eolen && memcmp(o, eo, olen) == 0) {
                *weak_match = 1;
                if (!weak && !eweak)
                    *strong_match = 1;
            }
        }
        p += n;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != ',' && *p != '\0')
            return 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t vlen = nul ? (size_t)(nul - data) : size;
    char *value = fuzz_cstr(data, vlen);
    char *etag = nul ? fuzz_cstr(nul + 1, size - vlen - 1) : NULL;
    int w;
    if (etag == NULL || entity_tag(etag, &w) != strlen(etag)) {
        free(etag);
        etag = fuzz_cstr((const uint8_t *)"\"abc\"", 5);
    }
    /* The tag's other form: W/ added or taken away. */
    char *other = malloc(strlen(etag) + 3);
    if (other == NULL)
        abort();
    if (strncmp(etag, "W/", 2) == 0)
        snprintf(other, strlen(etag) + 3, "%s", etag + 2);
    else
        snprintf(other, strlen(etag) + 3, "W/%s", etag);

    int weak = hdr_etag_matches(value, etag);
    int strong = hdr_etag_matches_strong(value, etag);
    FUZZ_CHECK(weak == 0 || weak == 1);
    FUZZ_CHECK(strong == 0 || strong == 1);
    FUZZ_CHECK(!strong || weak);
    FUZZ_CHECK(hdr_etag_matches(value, other) == weak);
    int rweak, rstrong;
    if (ref_list(value, etag, &rweak, &rstrong)) {
        FUZZ_CHECK(weak == rweak);
        FUZZ_CHECK(strong == rstrong);
    }
    free(other);
    free(etag);
    free(value);
    return 0;
}
