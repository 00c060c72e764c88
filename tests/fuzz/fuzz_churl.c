/* fuzz_churl.c - fuzzes the reading of ANALYTICS_ENGINE_URL, the ClickHouse
 * URL of the configuration: clickhouse_open() and the static url_where()
 * and url_database() of src/analytics/clickhouse.c (this file includes
 * clickhouse.c; libcurl is linked, but no request is made).
 *
 * The input is the URL (an exactly sized NUL-terminated string). Invariants
 * checked:
 *  - url_where (the host[:port] that log lines and errors name) never holds
 *    the URL's credentials: no '@', and it is the part of the authority
 *    after its last '@' (cut to fit), no scheme, path, query or fragment;
 *  - url_database gives the first non-empty "database=" parameter of the
 *    query (before any '#'), or "default", as a reference walk of the query
 *    does; too long a value is refused;
 *  - clickhouse_open succeeds exactly when that name is valid
 *    (clickhouse_valid_name, itself checked against 1-64 of [A-Za-z0-9_],
 *    not starting with a digit), and then its base URL is the URL up to any
 *    '#', ending in '?' or '&' so that parameters can be appended. */
#include "analytics/clickhouse.c"
#include "fuzz_check.h"

#include <ctype.h>

static int ref_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64 || isdigit((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_cstr(data, size);

    /* Where: the authority after its last '@'. */
    char where[128];
    url_where(url, where, sizeof(where));
    FUZZ_CHECK(strchr(where, '@') == NULL);
    const char *a = strstr(url, "://");
    a = a ? a + 3 : url;
    size_t alen = strcspn(a, "/?#");
    const char *host = a;
    for (size_t i = 0; i < alen; i++)
        if (a[i] == '@')
            host = a + i + 1;
    size_t hlen = alen - (size_t)(host - a);
    if (hlen > sizeof(where) - 1)
        hlen = sizeof(where) - 1;
    FUZZ_CHECK(strlen(where) == hlen && memcmp(where, host, hlen) == 0);

    /* The database parameter. */
    char db[65];
    int rc = url_database(url, db, sizeof(db));
    const char *want = "default";
    size_t wlen = 7;
    int too_long = 0;
    const char *q = strchr(url, '?');
    size_t qend = q ? strcspn(q, "#") : 0;
    for (size_t i = 1; q != NULL && i < qend;) {
        size_t n = strcspn(q + i, "&#");
        if (n > 9 && strncmp(q + i, "database=", 9) == 0) {
            want = q + i + 9;
            wlen = n - 9;
            too_long = wlen >= sizeof(db);
            break;
        }
        i += n + 1;
    }
    if (too_long) {
        FUZZ_CHECK(rc == PF_EINVAL);
    } else {
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(strlen(db) == wlen && memcmp(db, want, wlen) == 0);
    }
    FUZZ_CHECK(clickhouse_valid_name(db) == ref_valid_name(db));

    /* The whole. */
    struct clickhouse *c = NULL;
    char err[256] = "";
    rc = clickhouse_open(url, "u", "p", 1000, &c, err, sizeof(err));
    if (!too_long && ref_valid_name(db)) {
        FUZZ_CHECK(rc == 0 && c != NULL);
        FUZZ_CHECK(strcmp(clickhouse_database(c), db) == 0);
        FUZZ_CHECK(strcmp(clickhouse_where(c), where) == 0);
        size_t n = strcspn(url, "#"), blen = strlen(c->base);
        FUZZ_CHECK(blen >= n && memcmp(c->base, url, n) == 0);
        FUZZ_CHECK(blen > 0 && (c->base[blen - 1] == '?' || c->base[blen - 1] == '&'));
        FUZZ_CHECK(strchr(c->base, '#') == NULL);
        clickhouse_close(c);
    } else {
        FUZZ_CHECK(rc == PF_EINVAL && c == NULL && err[0] != '\0');
    }
    free(url);
    return 0;
}
