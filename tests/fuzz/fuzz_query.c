/* fuzz_query.c - fuzzes the analytics API's request parsing: query_parse(),
 * query_add() and query_params() (src/query.c, with timeutil_parse_date() of
 * src/timeutil.c), and auth_key_wellformed(), auth_parse_scopes() and the
 * header parsing of auth_check() (src/auth.c).
 *
 * Input: "YYYY-MM-DD" and one byte (today: that date, plus a time of day from
 * the byte), then the query string; or, when the input does not start with a
 * date, 8 bytes (today: anywhere from year 1 to year 10100) then the query.
 * The query bytes are passed without a terminator (an exactly sized copy, so
 * AddressSanitizer flags a read past the length). Invariants checked against
 * an independent reference written from query.h and SPEC.md's HTTP API:
 *  - query_parse succeeds exactly when the reference does, with the same
 *    decoded pairs; on failure the same parameter is named. Decoded names
 *    are 1..32 and values 0..64 printable ASCII bytes, NUL-terminated within
 *    their arrays; no name appears twice; query_get finds every value;
 *  - feeding the same pairs one by one through query_add (as api.c does)
 *    gives the same result, error included;
 *  - re-encoding a parsed query (every byte as %XX, or only the bytes that
 *    need it, with '+' for spaces) parses to the same pairs;
 *  - query_params, for both endpoints, with today from the input and with
 *    todays placed around the query's own start/end dates: succeeds exactly
 *    when the reference does, with the same start, end, days, limit and csv;
 *    on success 1 <= days <= 90, start <= end <= today's midnight, both at
 *    midnight, end - start == (days - 1) days, limit 1..100 (10 on the image
 *    endpoint), csv iff format=csv; on failure the parameter named is one the
 *    reference finds at fault;
 *  - every error has a non-empty, NUL-terminated message and a printable,
 *    NUL-terminated parameter;
 *  - auth_key_wellformed agrees with the pattern ^pfk_[a-z0-9]{12}_[A-Za-z0-9]{40}$
 *    (on the input, and on a valid key overwritten with input bytes) and
 *    returns the id; auth_parse_scopes agrees with a reference and
 *    auth_format_scopes of its result parses back to the same set;
 *  - auth_check, on the query as an Authorization header (each '@' replaced
 *    by a valid key) against a one-key database stub (revoked, expired or
 *    recently used by the bits of the byte before the query), answers what the
 *    reference expects (missing, malformed, unknown, revoked, expired, ok)
 *    with a message exactly when not ok, and on ok the principal's owner_hex
 *    is the reference HMAC of the owner. */
#include "api/auth.h"
#include "store/db.h"
#include "base/err.h"
#include "fuzz_check.h"
#include "api/query.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <strings.h>

#define DAY INT64_C(86400)
#define YEAR1 INT64_C(-62135596800)     /* 0001-01-01 */
#define YEAR10100 INT64_C(256559990400) /* 10100-01-01 */

static const char SECRET[] = "fuzz secret";
static const char OWNER[] = "alice";
static const char KEY[] = "pfk_abcdefghij01_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn";

/* ---- Reference query-string decoding (query.h) ---- */

enum { REF_OK, REF_BAD, REF_TOOLONG };

static int ref_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode raw[0..len) into out (at most max bytes, then a NUL). */
static int ref_decode(const char *raw, size_t len, char *out, size_t max, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '%') {
            if (len - i < 3 || ref_hex((unsigned char)raw[i + 1]) < 0 ||
                ref_hex((unsigned char)raw[i + 2]) < 0)
                return REF_BAD;
            c = (unsigned char)(ref_hex((unsigned char)raw[i + 1]) * 16 +
                                ref_hex((unsigned char)raw[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c < 0x20 || c > 0x7e)
            return REF_BAD;
        if (o == max)
            return REF_TOOLONG;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    *outlen = o;
    return REF_OK;
}

struct ref_query {
    size_t n;
    char name[QUERY_MAX_PARAMS][QUERY_NAME_MAX + 1];
    char value[QUERY_MAX_PARAMS][QUERY_VALUE_MAX + 1];
};

/* One raw pair. Returns 0, or -1 with the parameter the error must name. */
static int ref_add(struct ref_query *r, const char *name, size_t nlen, const char *value,
                   size_t vlen, char param[QUERY_NAME_MAX + 1])
{
    size_t len;
    param[0] = '\0';
    if (r->n == QUERY_MAX_PARAMS)
        return -1;
    char *n = r->name[r->n], *v = r->value[r->n];
    int rc = ref_decode(name, nlen, n, QUERY_NAME_MAX, &len);
    if (rc == REF_TOOLONG) {
        /* named by its first raw bytes, anything unprintable as '?' */
        size_t k = nlen < QUERY_NAME_MAX ? nlen : QUERY_NAME_MAX;
        for (size_t i = 0; i < k; i++)
            param[i] = name[i] >= 0x20 && name[i] <= 0x7e ? name[i] : '?';
        param[k] = '\0';
        return -1;
    }
    if (rc != REF_OK || len == 0)
        return -1;
    rc = ref_decode(value ? value : "", value ? vlen : 0, v, QUERY_VALUE_MAX, &len);
    if (rc == REF_OK)
        for (size_t i = 0; i < r->n; i++)
            if (strcmp(r->name[i], n) == 0)
                rc = REF_BAD;
    if (rc != REF_OK) {
        memcpy(param, n, strlen(n) + 1);
        return -1;
    }
    r->n++;
    return 0;
}

/* Split like a query string: '&' between pairs, empty pairs skipped, the
 * first '=' between name and value. Calls fn on each pair until one fails. */
typedef int (*pair_fn)(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen);

static int split_pairs(const char *raw, size_t len, pair_fn fn, void *ctx)
{
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(raw + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - raw) : len;
        if (end > i) {
            const char *eq = memchr(raw + i, '=', end - i);
            size_t nlen = eq ? (size_t)(eq - raw) - i : end - i;
            int rc = eq ? fn(ctx, raw + i, nlen, eq + 1, end - i - nlen - 1)
                        : fn(ctx, raw + i, nlen, NULL, 0);
            if (rc != 0)
                return rc;
        }
        i = end + 1;
    }
    return 0;
}

struct ref_ctx {
    struct ref_query *r;
    char param[QUERY_NAME_MAX + 1];
};

static int ref_pair(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct ref_ctx *c = ctx;
    return ref_add(c->r, name, nlen, value, vlen, c->param);
}

/* query_add on exactly sized heap copies of the name and value. */
struct add_ctx {
    struct query *q;
    struct query_error *e;
};

static int add_pair(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct add_ctx *c = ctx;
    char *n = malloc(nlen ? nlen : 1), *v = value ? malloc(vlen ? vlen : 1) : NULL;
    FUZZ_CHECK(n != NULL && (value == NULL || v != NULL));
    memcpy(n, name, nlen);
    if (v != NULL)
        memcpy(v, value, vlen);
    int rc = query_add(c->q, n, nlen, v, vlen, c->e);
    FUZZ_CHECK(rc == 0 || rc == PF_EINVAL);
    free(n);
    free(v);
    return rc;
}

/* ---- Invariants on results and errors ---- */

/* s[0..cap) holds a NUL; the bytes before it are printable ASCII. Returns
 * the length. */
static size_t check_text(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    FUZZ_CHECK(nul != NULL);
    for (const char *p = s; p < nul; p++)
        FUZZ_CHECK(*p >= 0x20 && *p <= 0x7e);
    return (size_t)(nul - s);
}

static void check_error(const struct query_error *e)
{
    check_text(e->param, sizeof(e->param));
    FUZZ_CHECK(memchr(e->message, '\0', sizeof(e->message)) != NULL);
    FUZZ_CHECK(e->message[0] != '\0');
}

static void check_query(const struct query *q)
{
    FUZZ_CHECK(q->n <= QUERY_MAX_PARAMS);
    for (size_t i = 0; i < q->n; i++) {
        size_t n = check_text(q->p[i].name, sizeof(q->p[i].name));
        FUZZ_CHECK(n >= 1 && n <= QUERY_NAME_MAX);
        check_text(q->p[i].value, sizeof(q->p[i].value));
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(q->p[i].name, q->p[j].name) != 0);
        FUZZ_CHECK(query_get(q, q->p[i].name) == q->p[i].value);
    }
}

static void check_same(const struct query *q, const struct ref_query *r)
{
    FUZZ_CHECK(q->n == r->n);
    for (size_t i = 0; i < q->n; i++) {
        FUZZ_CHECK(strcmp(q->p[i].name, r->name[i]) == 0);
        FUZZ_CHECK(strcmp(q->p[i].value, r->value[i]) == 0);
    }
}

static void check_same_query(const struct query *a, const struct query *b)
{
    FUZZ_CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        FUZZ_CHECK(strcmp(a->p[i].name, b->p[i].name) == 0);
        FUZZ_CHECK(strcmp(a->p[i].value, b->p[i].value) == 0);
    }
}

/* Append s escaped: every byte as %XX when all, else only the bytes that
 * would change meaning ('%', '&', '=', '+'), and spaces as '+'. */
static size_t encode(char *out, size_t w, const char *s, int all, int lower)
{
    const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (all || c == '%' || c == '&' || c == '=' || c == '+') {
            out[w++] = '%';
            out[w++] = hex[c >> 4];
            out[w++] = hex[c & 15];
        } else {
            out[w++] = c == ' ' ? '+' : (char)c;
        }
    }
    return w;
}

static void check_reencoded(const struct query *q, int all, int lower)
{
    /* at most 16 * (3 * 32 + 1 + 3 * 64 + 1) bytes */
    static char raw[QUERY_MAX_PARAMS * (3 * QUERY_NAME_MAX + 3 * QUERY_VALUE_MAX + 2)];
    static struct query again;
    struct query_error e;
    size_t w = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (i > 0)
            raw[w++] = '&';
        w = encode(raw, w, q->p[i].name, all, lower);
        raw[w++] = '=';
        w = encode(raw, w, q->p[i].value, all, lower);
    }
    FUZZ_CHECK(w <= sizeof(raw));
    FUZZ_CHECK(query_parse(raw, w, &again, &e) == 0);
    check_same_query(q, &again);
}

/* ---- Reference API parameters (SPEC.md, HTTP API) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "YYYY-MM-DD", a real date (years 0000-9999). OUT: *t, its midnight. */
static int ref_date_any(const char *s, size_t len, int64_t *t, int *year)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    static const char shape[] = "dddd-dd-dd";
    int v[3] = {0, 0, 0}, k = 0;
    if (len != 10)
        return -1;
    for (int i = 0; i < 10; i++) {
        if (shape[i] == '-') {
            if (s[i] != '-')
                return -1;
            k++;
        } else {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            v[k] = v[k] * 10 + (s[i] - '0');
        }
    }
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays[v[1] - 1] + (v[1] == 2 && leap(v[0])))
        return -1;
    *t = days_from_civil(v[0], v[1], v[2]) * DAY;
    *year = v[0];
    return 0;
}

/* The dates the API takes: timeutil_parse_date's years, 1970 on. */
static int ref_date(const char *s, int64_t *t)
{
    int year;
    return ref_date_any(s, strlen(s), t, &year) == 0 && year >= 1970 ? 0 : -1;
}

/* A whole number 1..max, digits only. */
static int ref_int(const char *s, int max, int *out)
{
    int64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > 1000)
            v = 1000; /* saturate: already too big */
    }
    if (v < 1 || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

enum { F_DAYS = 1, F_START = 2, F_END = 4, F_FORMAT = 8, F_LIMIT = 16, F_UNKNOWN = 32 };

struct ref_params {
    int faults; /* F_* bits: the parameters at fault */
    int64_t start, end;
    int days, limit, csv;
};

static void ref_params(const struct query *q, enum query_endpoint ep, int64_t today,
                       struct ref_params *r)
{
    static const char *const names[] = {"days", "start", "end", "format", "limit"};
    const char *v[5] = {NULL, NULL, NULL, NULL, NULL};
    int64_t midnight = floor_div(today, DAY) * DAY, s = 0, e = 0;
    int s_ok = 0, e_ok = 0;
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < q->n; i++) {
        int k = 0;
        while (k < 5 && strcmp(q->p[i].name, names[k]) != 0)
            k++;
        if (k == 5 || (k == 4 && ep == QUERY_IMAGE))
            r->faults |= F_UNKNOWN;
        else
            v[k] = q->p[i].value;
    }
    r->limit = 10;
    if (v[4] && ref_int(v[4], 100, &r->limit) != 0)
        r->faults |= F_LIMIT;
    if (v[3] && strcmp(v[3], "json") != 0 && strcmp(v[3], "csv") != 0)
        r->faults |= F_FORMAT;
    r->csv = v[3] && strcmp(v[3], "csv") == 0;
    if (v[1] && !(s_ok = ref_date(v[1], &s) == 0))
        r->faults |= F_START;
    if (v[2] && !(e_ok = ref_date(v[2], &e) == 0))
        r->faults |= F_END;
    if (v[0]) {
        if (v[1] || v[2] || ref_int(v[0], 90, &r->days) != 0)
            r->faults |= F_DAYS;
        r->end = midnight;
        r->start = midnight - (r->days - 1) * DAY;
        return;
    }
    int given = (v[1] ? F_START : 0) | (v[2] ? F_END : 0);
    if (e_ok && e > midnight)
        r->faults |= F_END;
    if (s_ok && s > midnight)
        r->faults |= F_START;
    if ((v[1] && !s_ok) || (v[2] && !e_ok))
        return;
    r->end = v[2] ? e : midnight;
    r->start = v[1] ? s : r->end - 29 * DAY;
    if (r->start > r->end || r->end - r->start >= 90 * DAY)
        r->faults |= given;
    r->days = (int)((r->end - r->start) / DAY) + 1;
}

static void check_params(const struct query *q, enum query_endpoint ep, int64_t today)
{
    struct api_params p;
    struct query_error e;
    struct ref_params r;
    int64_t midnight = floor_div(today, DAY) * DAY;
    ref_params(q, ep, today, &r);
    int rc = query_params(q, ep, today, &p, &e);
    FUZZ_CHECK(rc == 0 || rc == PF_EINVAL);
    FUZZ_CHECK((rc == 0) == (r.faults == 0));
    if (rc != 0) {
        check_error(&e);
        if (strcmp(e.param, "days") == 0)
            FUZZ_CHECK(r.faults & F_DAYS);
        else if (strcmp(e.param, "start") == 0)
            FUZZ_CHECK(r.faults & F_START);
        else if (strcmp(e.param, "end") == 0)
            FUZZ_CHECK(r.faults & F_END);
        else if (strcmp(e.param, "format") == 0)
            FUZZ_CHECK(r.faults & F_FORMAT);
        else if (strcmp(e.param, "limit") == 0 && ep == QUERY_OVERVIEW)
            FUZZ_CHECK(r.faults & F_LIMIT);
        else
            FUZZ_CHECK((r.faults & F_UNKNOWN) && query_get(q, e.param) != NULL);
        return;
    }
    FUZZ_CHECK(p.start == r.start && p.end == r.end && p.days == r.days);
    FUZZ_CHECK(p.limit == r.limit && p.csv == r.csv);
    FUZZ_CHECK(p.days >= 1 && p.days <= API_DAYS_MAX);
    FUZZ_CHECK(p.start <= p.end && p.end <= midnight);
    FUZZ_CHECK(floor_div(p.start, DAY) * DAY == p.start);
    FUZZ_CHECK(floor_div(p.end, DAY) * DAY == p.end);
    FUZZ_CHECK(p.end - p.start == (int64_t)(p.days - 1) * DAY);
    FUZZ_CHECK(p.limit >= 1 && p.limit <= API_LIMIT_MAX);
    if (ep == QUERY_IMAGE)
        FUZZ_CHECK(p.limit == API_LIMIT_DEFAULT);
    const char *f = query_get(q, "format");
    FUZZ_CHECK(p.csv == (f != NULL && strcmp(f, "csv") == 0));
    if (query_get(q, "days") == NULL && query_get(q, "start") == NULL)
        FUZZ_CHECK(p.days == API_DAYS_DEFAULT);
    if (query_get(q, "start") == NULL && query_get(q, "end") == NULL)
        FUZZ_CHECK(p.end == midnight);
}

/* Both endpoints at `today`, and at todays around the query's own dates
 * (where the date checks pass or just fail). */
static void check_all_params(const struct query *q, int64_t today, int64_t tod)
{
    static const int64_t offsets[] = {-1, 0, 1, 29, 89, 90};
    const char *dates[2] = {query_get(q, "start"), query_get(q, "end")};
    for (int ep = QUERY_OVERVIEW; ep <= QUERY_IMAGE; ep++) {
        check_params(q, (enum query_endpoint)ep, today);
        for (int d = 0; d < 2; d++) {
            int64_t t;
            if (dates[d] == NULL || ref_date(dates[d], &t) != 0)
                continue;
            for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++)
                check_params(q, (enum query_endpoint)ep, t + offsets[k] * DAY + tod);
        }
    }
}

/* ---- Keys, scopes and the Authorization header ---- */

static int ref_wellformed(const uint8_t *s, size_t len)
{
    if (len != AUTH_KEY_LEN || memcmp(s, "pfk_", 4) != 0 || s[16] != '_')
        return 0;
    for (size_t i = 4; i < 16; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    for (size_t i = 17; i < AUTH_KEY_LEN; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

static void check_wellformed(const uint8_t *s, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1); /* exactly sized: ASan sees overreads */
    char id[13];
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, s, len);
    memset(id, 'X', sizeof(id));
    int ok = auth_key_wellformed((const char *)copy, len, id);
    FUZZ_CHECK(ok == ref_wellformed(s, len));
    if (ok)
        FUZZ_CHECK(memcmp(id, s + 4, 12) == 0 && id[12] == '\0');
    FUZZ_CHECK(auth_key_wellformed((const char *)copy, len, NULL) == ok);
    free(copy);
}

static int ref_scopes(const char *s, int *scopes)
{
    int r = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n == 4 && memcmp(s, "read", 4) == 0)
            r |= AUTH_SCOPE_READ;
        else if (n == 5 && memcmp(s, "write", 5) == 0)
            r |= AUTH_SCOPE_WRITE;
        else
            return -1;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    *scopes = r;
    return 0;
}

static void check_scopes(const char *s)
{
    int got = -1, want = -1, again = -1;
    char text[32];
    int rc = auth_parse_scopes(s, &got);
    FUZZ_CHECK(rc == 0 || rc == PF_EINVAL);
    FUZZ_CHECK((rc == 0) == (ref_scopes(s, &want) == 0));
    if (rc != 0)
        return;
    FUZZ_CHECK(got == want && got >= 1 && got <= 3);
    auth_format_scopes(got, text);
    FUZZ_CHECK(auth_parse_scopes(text, &again) == 0 && again == got);
    FUZZ_CHECK(strcmp(text, got == 1 ? "read" : got == 2 ? "write" : "read,write") == 0);
}

/* A one-key database: auth.c's calls land here. */
static struct db_key stub_key;
static int stub_touches;

int db_key_insert(struct db *db, const struct db_key *k)
{
    (void)db;
    stub_key = *k;
    return 0;
}

int db_key_get(struct db *db, const char *id, struct db_key *out)
{
    (void)db;
    if (strcmp(id, stub_key.id) != 0)
        return PF_ENOTFOUND;
    *out = stub_key;
    return 0;
}

int db_key_touch(struct db *db, const char *id, int64_t now)
{
    (void)db;
    FUZZ_CHECK(strcmp(id, stub_key.id) == 0);
    stub_key.last_used_at = now;
    stub_touches++;
    return 0;
}

static void hmac_hex(const char *key, const void *msg, size_t len, size_t n, char *hex)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    FUZZ_CHECK(HMAC(EVP_sha256(), key, (int)strlen(key), msg, len, mac, &maclen) != NULL);
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

/* The stored hash of a key, as auth.h describes it. */
static void ref_key_hash(const char *key, char hex[65])
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "pixflare api key\n%s", key);
    hmac_hex(SECRET, msg, (size_t)n, 32, hex);
}

/* Once: a created key is well-formed and stored by its reference hash; then
 * the stub holds KEY. */
static void setup_keys(void)
{
    static int done;
    char key[AUTH_KEY_LEN + 1], hex[65];
    struct db_key rec;
    if (done)
        return;
    done = 1;
    FUZZ_CHECK(auth_key_create(NULL, SECRET, OWNER, AUTH_SCOPE_READ, 0, key, &rec) == 0);
    FUZZ_CHECK(strlen(key) == AUTH_KEY_LEN && ref_wellformed((const uint8_t *)key, AUTH_KEY_LEN));
    ref_key_hash(key, hex);
    FUZZ_CHECK(strcmp(rec.key_hash, hex) == 0 && strcmp(stub_key.key_hash, hex) == 0);
    FUZZ_CHECK(memcmp(rec.id, key + 4, 12) == 0 && rec.id[12] == '\0');
    FUZZ_CHECK(strcmp(rec.owner, OWNER) == 0 && strcmp(rec.scopes, "read") == 0);
    memset(&stub_key, 0, sizeof(stub_key));
    memcpy(stub_key.id, KEY + 4, 12);
    snprintf(stub_key.owner, sizeof(stub_key.owner), "%s", OWNER);
    snprintf(stub_key.scopes, sizeof(stub_key.scopes), "read,write");
    ref_key_hash(KEY, stub_key.key_hash);
}

/* The header with every '@' replaced by KEY. */
static char *expand_header(const uint8_t *data, size_t size)
{
    size_t n = 0, at = 0;
    for (size_t i = 0; i < size && data[i] != '\0'; i++)
        at += data[i] == '@';
    char *h = malloc(size + at * AUTH_KEY_LEN + 1);
    FUZZ_CHECK(h != NULL);
    for (size_t i = 0; i < size && data[i] != '\0'; i++) {
        if (data[i] == '@') {
            memcpy(h + n, KEY, AUTH_KEY_LEN);
            n += AUTH_KEY_LEN;
        } else {
            h[n++] = (char)data[i];
        }
    }
    h[n] = '\0';
    return h;
}

static void check_auth(const char *header, int64_t now, unsigned flags)
{
    struct auth_principal p;
    const char *message = NULL;
    enum auth_result want;
    stub_key.revoked_at = flags & 1 ? 1 : 0;
    stub_key.expires_at = flags & 2 ? now + (int64_t)((flags >> 2) & 3) - 1 : 0;
    stub_key.last_used_at = flags & 16 ? now - 59 : 0;
    if (header == NULL) {
        want = AUTH_MISSING;
    } else if (strncasecmp(header, "bearer ", 7) != 0) {
        want = AUTH_MALFORMED;
    } else {
        const char *s = header + 7;
        while (*s == ' ')
            s++;
        size_t len = strlen(s);
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (!ref_wellformed((const uint8_t *)s, len))
            want = AUTH_MALFORMED;
        else if (memcmp(s, KEY, AUTH_KEY_LEN) != 0)
            want = AUTH_UNKNOWN;
        else if (flags & 1)
            want = AUTH_REVOKED;
        else if ((flags & 2) && stub_key.expires_at != 0 && now >= stub_key.expires_at)
            want = AUTH_EXPIRED;
        else
            want = AUTH_OK;
    }
    int64_t last = stub_key.last_used_at;
    stub_touches = 0;
    enum auth_result got = auth_check(NULL, SECRET, header, now, &p, &message);
    FUZZ_CHECK(got == want);
    if (got != AUTH_OK) {
        FUZZ_CHECK(message != NULL && message[0] != '\0');
        FUZZ_CHECK(stub_touches == 0);
        return;
    }
    char hex[33];
    hmac_hex(SECRET, OWNER, strlen(OWNER), 16, hex);
    FUZZ_CHECK(message == NULL);
    FUZZ_CHECK(strcmp(p.owner_hex, hex) == 0 && strcmp(p.owner, OWNER) == 0);
    FUZZ_CHECK(strcmp(p.key_id, stub_key.id) == 0);
    FUZZ_CHECK(p.scopes == (AUTH_SCOPE_READ | AUTH_SCOPE_WRITE));
    FUZZ_CHECK(stub_touches == (now - last >= 60));
}

/* ---- The entry point ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct query q, q2;
    struct query_error e, e2;
    struct ref_query r;
    struct ref_ctx rc_ctx;
    int64_t today, tod, t;
    int year;
    setup_keys();

    /* today, then the query */
    size_t skip;
    if (size >= 11 && ref_date_any((const char *)data, 10, &t, &year) == 0) {
        tod = (int64_t)data[10] * (DAY - 1) / 255;
        today = t + tod;
        skip = 11;
    } else {
        skip = size < 8 ? size : 8;
        today = YEAR1 + (int64_t)(fuzz_u64(data, skip) % (uint64_t)(YEAR10100 - YEAR1));
        tod = today - floor_div(today, DAY) * DAY;
    }
    const char *raw = (const char *)data + skip;
    size_t len = size - skip;

    memset(&e, 0, sizeof(e));
    int rc = query_parse(raw, len, &q, &e);
    FUZZ_CHECK(rc == 0 || rc == PF_EINVAL);
    memset(&r, 0, sizeof(r));
    rc_ctx.r = &r;
    int want = split_pairs(raw, len, ref_pair, &rc_ctx);
    FUZZ_CHECK((rc == 0) == (want == 0));

    /* the same pairs through query_add, one by one */
    struct add_ctx ac = {&q2, &e2};
    memset(&e2, 0, sizeof(e2));
    q2.n = 0;
    int rc2 = split_pairs(raw, len, add_pair, &ac);
    FUZZ_CHECK(rc2 == rc);

    if (rc == 0) {
        check_query(&q);
        check_same(&q, &r);
        check_same_query(&q, &q2);
        check_reencoded(&q, 1, len & 1);
        check_reencoded(&q, 0, 0);
        check_all_params(&q, today, tod);
    } else {
        check_error(&e);
        FUZZ_CHECK(strcmp(e.param, rc_ctx.param) == 0);
        FUZZ_CHECK(strcmp(e.param, e2.param) == 0 && strcmp(e.message, e2.message) == 0);
    }

    /* keys: the input as it is, and a valid key overwritten by the query */
    check_wellformed(data, size);
    check_wellformed((const uint8_t *)raw, len);
    uint8_t cand[AUTH_KEY_LEN];
    memcpy(cand, KEY, AUTH_KEY_LEN);
    memcpy(cand, raw, len < AUTH_KEY_LEN ? len : AUTH_KEY_LEN);
    check_wellformed(cand, AUTH_KEY_LEN);
    if (len > 0) {
        memcpy(cand, KEY, AUTH_KEY_LEN);
        cand[(uint8_t)raw[0] % AUTH_KEY_LEN] = len > 1 ? (uint8_t)raw[1] : 0;
        check_wellformed(cand, AUTH_KEY_LEN);
    }

    char *s = fuzz_cstr((const uint8_t *)raw, len);
    check_scopes(s);
    free(s);

    char *header = expand_header((const uint8_t *)raw, len);
    unsigned flags = skip > 0 ? data[skip - 1] : 0; /* the time-of-day byte */
    check_auth(header, today, flags);
    check_auth(NULL, today, flags);
    free(header);
    return 0;
}
