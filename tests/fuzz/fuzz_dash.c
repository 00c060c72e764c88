/* fuzz_dash.c - fuzzes the dashboard's request handling in src/api/dash.c:
 * dash_serve() (the lookup of the embedded assets, build/gen/dash_assets.c,
 * with its If-None-Match answer), and once the asset table and the headers
 * every dashboard answer carries. (Thumbnails are not the dashboard's
 * business any more: they are /v1/images/{id}/thumb of the API.)
 *
 * dash.c calls http_req_header() and http_resp_error() of src/http/http.c, which
 * needs libmicrohttpd; this target defines both itself: the request's only
 * header (If-None-Match) is taken from the input, and an error is recorded
 * as the real one shapes the response (status, JSON type, no validators,
 * no-store).
 *
 * Input layout: one flags byte, then the header value up to the first '\n'
 * (copied into an exactly sized NUL-terminated string), then the path (the
 * rest, passed as an exactly sized copy WITHOUT a terminator, so ASan flags
 * any read past its length). Flags: bit 0, no header at all (NULL); bit 1,
 * Accept-Encoding: gzip; bit 2,
 * "/dashboard" is put before the path; bit 7, the request is a HEAD; the
 * other bits are unused (they once steered the thumbnail functions; the
 * committed corpus keeps its meaning). Invariants checked:
 *  - dash_serve() (on paths starting "/dashboard", its precondition) always
 *    sets the dashboard's headers, and answers 200 with the asset's bytes,
 *    type, ETag and no-cache exactly when the path is "/dashboard" or
 *    "/dashboard/" (index.html) or "/dashboard/<name>" of an asset; 304
 *    (ETag, no-cache, no body, the asset's length) only when If-None-Match
 *    names the asset's tag or is "*" (exactly the RFC 9110 answer when the
 *    header is a well-formed list); anything else (/dashboard/thumb/{id}
 *    included) a 404 JSON error;
 *  - once: the asset table has unique names without '/', index.html among
 *    them, the content type of each extension, and a strong ETag that is the
 *    FNV-1a 64 of the bytes (tools/embed.c), and dash_headers[] holds the
 *    CSP (exactly the directives of dash.h and docs/DASHBOARD.md, each once, and no
 *    other origin), nosniff and no-referrer pairs. */
#include "api/dash.h"
#include "fuzz_check.h"

#include <zlib.h>

#include <strings.h>

#define DASH_PREFIX "/dashboard"

/* ---- The two http.c functions dash.c calls ---- */

struct fake_conn {
    const char *header;          /* If-None-Match's value, or NULL */
    const char *accept_encoding; /* or NULL */
    int asked;                   /* If-None-Match look-ups */
};

static struct {
    int called, status;
    const char *code;
} last_error;

const char *http_req_header(const struct http_req *req, const char *name)
{
    struct fake_conn *c = req->conn;
    if (strcasecmp(name, "Accept-Encoding") == 0)
        return c->accept_encoding;
    if (strcasecmp(name, "If-None-Match") != 0)
        return NULL;
    c->asked++;
    return c->header;
}

void http_resp_error(struct http_resp *resp, int status, const char *code, const char *message)
{
    FUZZ_CHECK(code != NULL && code[0] != '\0' && message != NULL && message[0] != '\0');
    last_error.called++;
    last_error.status = status;
    last_error.code = code;
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = NULL;
    resp->len = 0;
    resp->etag = NULL;
    resp->last_modified = NULL;
    resp->cache_control = "no-store";
}

/* ---- References ---- */

static const struct dash_asset *ref_find(const char *name, size_t len)
{
    for (size_t i = 0; i < dash_nassets; i++)
        if (strlen(dash_assets[i].name) == len && memcmp(dash_assets[i].name, name, len) == 0)
            return &dash_assets[i];
    return NULL;
}

/* The asset a path names (which starts "/dashboard"), or NULL. */
static const struct dash_asset *ref_asset(const char *path, size_t len)
{
    const size_t plen = sizeof(DASH_PREFIX) - 1;
    if (len == plen || (len == plen + 1 && path[plen] == '/'))
        return ref_find("index.html", 10);
    if (len > plen + 1 && path[plen] == '/' && memchr(path + plen + 1, '/', len - plen - 1) == NULL)
        return ref_find(path + plen + 1, len - plen - 1);
    return NULL;
}

static int ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 13.1.2 If-None-Match ("*" / #entity-tag, weak comparison) on a
 * strong tag: 1 match, 0 no match, -1 when the value is not well formed
 * (then only the weaker check of ref_may_match() applies). */
static int ref_inm(const char *v, const char *etag)
{
    size_t n = strlen(v), i = 0, elen = strlen(etag);
    size_t a = 0, b = n;
    while (a < b && ows(v[a]))
        a++;
    while (b > a && ows(v[b - 1]))
        b--;
    if (b - a == 1 && v[a] == '*')
        return 1;
    int match = 0;
    for (;;) {
        while (i < n && (ows(v[i]) || v[i] == ','))
            i++;
        if (i == n)
            return match;
        if (n - i >= 2 && v[i] == 'W' && v[i + 1] == '/')
            i += 2;
        if (v[i] != '"')
            return -1;
        size_t start = i++;
        while (i < n && v[i] != '"') {
            unsigned char c = (unsigned char)v[i];
            if (c < 0x21 || c == 0x7f)
                return -1;
            i++;
        }
        if (i == n)
            return -1;
        i++; /* the closing quote */
        if (i - start == elen && memcmp(v + start, etag, elen) == 0)
            match = 1;
        while (i < n && ows(v[i]))
            i++;
        if (i < n && v[i] != ',')
            return -1;
    }
}

/* Whatever the syntax, a 304 needs the tag or a "*" in the header. */
static int ref_may_match(const char *v, const char *etag)
{
    return strchr(v, '*') != NULL || strstr(v, etag) != NULL;
}

/* ---- The asset table, once ---- */

/* The Content-Security-Policy: exactly these directives, each once (so no
 * manifest-src, which went with the web app manifest, and nothing that names
 * another origin). */
static void check_csp(const char *csp)
{
    static const char *const want[] = {
        "default-src 'none'", "script-src 'self'", "style-src 'self'",   "img-src 'self' blob:",
        "connect-src 'self'", "base-uri 'none'",   "form-action 'none'", "frame-ancestors 'none'",
    };
    const size_t nwant = sizeof(want) / sizeof(want[0]);
    int seen[sizeof(want) / sizeof(want[0])] = {0};
    size_t n = 0;
    FUZZ_CHECK(strstr(csp, "http") == NULL && strchr(csp, '*') == NULL);
    for (const char *d = csp; *d != '\0';) {
        while (*d == ' ')
            d++;
        size_t len = strcspn(d, ";");
        FUZZ_CHECK(len > 0 && d[len - 1] != ' ');
        size_t k = 0;
        while (k < nwant && !(strlen(want[k]) == len && memcmp(d, want[k], len) == 0))
            k++;
        FUZZ_CHECK(k < nwant && !seen[k]); /* a known directive, once */
        seen[k] = 1;
        n++;
        d += len;
        if (*d == ';')
            d++;
    }
    FUZZ_CHECK(n == nwant);
}

/* A gzipped copy: inflates to the very bytes, is worth having, and has
 * its own tag (the plain one with "-gz" before the closing quote). */
static void check_gz(const struct dash_asset *a)
{
    FUZZ_CHECK(a->gz_len > 0 && a->gz_len * 10 <= a->len * 9);
    unsigned char *out = malloc(a->len + 1);
    FUZZ_CHECK(out != NULL);
    z_stream z;
    memset(&z, 0, sizeof(z));
    FUZZ_CHECK(inflateInit2(&z, 15 + 16) == Z_OK);
    z.next_in = (unsigned char *)a->gz;
    z.avail_in = (uInt)a->gz_len;
    z.next_out = out;
    z.avail_out = (uInt)a->len + 1;
    FUZZ_CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
    FUZZ_CHECK(z.avail_in == 0 && z.total_out == a->len && memcmp(out, a->data, a->len) == 0);
    inflateEnd(&z);
    free(out);
    size_t el = strlen(a->etag);
    FUZZ_CHECK(a->gz_etag != NULL && strlen(a->gz_etag) == el + 3);
    FUZZ_CHECK(memcmp(a->gz_etag, a->etag, el - 1) == 0 &&
               strcmp(a->gz_etag + el - 1, "-gz\"") == 0);
}

static void check_table(void)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    FUZZ_CHECK(dash_nassets >= 1);
    FUZZ_CHECK(ref_find("index.html", 10) != NULL);
    for (size_t i = 0; i < dash_nassets; i++) {
        const struct dash_asset *a = &dash_assets[i];
        FUZZ_CHECK(a->name != NULL && a->name[0] != '\0' && strchr(a->name, '/') == NULL);
        FUZZ_CHECK(ref_find(a->name, strlen(a->name)) == a); /* the first of its name */
        FUZZ_CHECK(a->data != NULL && a->content_type != NULL && a->etag != NULL);
        const char *dot = strrchr(a->name, '.');
        const char *type = NULL;
        for (size_t t = 0; dot != NULL && t < sizeof(types) / sizeof(types[0]); t++)
            if (strcmp(dot, types[t].ext) == 0)
                type = types[t].type;
        FUZZ_CHECK(type != NULL && strcmp(a->content_type, type) == 0);
        uint64_t h = 0xcbf29ce484222325u;
        for (size_t j = 0; j < a->len; j++)
            h = (h ^ a->data[j]) * 0x100000001b3u;
        char want[24];
        snprintf(want, sizeof(want), "\"%016llx\"", (unsigned long long)h);
        FUZZ_CHECK(strcmp(a->etag, want) == 0);
        if (a->gz != NULL)
            check_gz(a);
        else
            FUZZ_CHECK(a->gz_len == 0 && a->gz_etag == NULL);
    }
    static const char *const want[] = {"Content-Security-Policy", "X-Content-Type-Options",
                                       "Referrer-Policy"};
    size_t n = 0;
    while (dash_headers[n] != NULL)
        n += 2;
    FUZZ_CHECK(n == 6);
    for (size_t i = 0; i < 3; i++)
        FUZZ_CHECK(strcmp(dash_headers[2 * i], want[i]) == 0);
    check_csp(dash_headers[1]);
    FUZZ_CHECK(strcmp(dash_headers[3], "nosniff") == 0);
    FUZZ_CHECK(strcmp(dash_headers[5], "no-referrer") == 0);
}

/* ---- dash_serve() ---- */

static void check_serve(const char *path, size_t len, const char *inm, int is_head, int gzip)
{
    const size_t plen = sizeof(DASH_PREFIX) - 1;
    if (len < plen || memcmp(path, DASH_PREFIX, plen) != 0)
        return; /* the router sends only "/dashboard..." here */
    struct fake_conn conn = {inm, gzip ? "gzip" : NULL, 0};
    struct http_req req = {.method = is_head ? "HEAD" : "GET",
                           .is_head = is_head,
                           .path = path,
                           .path_len = len,
                           .conn = &conn};
    struct http_resp resp;
    memset(&resp, 0, sizeof(resp));
    memset(&last_error, 0, sizeof(last_error));
    dash_serve(&req, &resp);
    FUZZ_CHECK(resp.file_path == NULL && resp.owned_body == NULL && resp.extra == NULL);
    const struct dash_asset *a = ref_asset(path, len);
    if (a == NULL) {
        FUZZ_CHECK(resp.status == 404 && last_error.called == 1 && last_error.status == 404);
        FUZZ_CHECK(strcmp(last_error.code, "NOT_FOUND") == 0);
        FUZZ_CHECK(resp.etag == NULL && strcmp(resp.cache_control, "no-store") == 0);
        FUZZ_CHECK(resp.fixed_headers == dash_headers);
        return;
    }
    /* The representation: gzipped when asked for and there is a copy. */
    int gz = gzip && a->gz != NULL;
    const char *etag = gz ? a->gz_etag : a->etag;
    size_t n = 0;
    while (resp.fixed_headers[n] != NULL)
        n += 2;
    FUZZ_CHECK(n == (a->gz == NULL ? 6 : gz ? 10 : 8));
    for (size_t i = 0; i < 6; i++)
        FUZZ_CHECK(strcmp(resp.fixed_headers[i], dash_headers[i]) == 0);
    if (a->gz != NULL)
        FUZZ_CHECK(strcmp(resp.fixed_headers[6], "Vary") == 0 &&
                   strcmp(resp.fixed_headers[7], "Accept-Encoding") == 0);
    if (gz)
        FUZZ_CHECK(strcmp(resp.fixed_headers[8], "Content-Encoding") == 0 &&
                   strcmp(resp.fixed_headers[9], "gzip") == 0);
    FUZZ_CHECK(last_error.called == 0);
    FUZZ_CHECK(conn.asked == 1);
    FUZZ_CHECK(resp.etag == etag);
    FUZZ_CHECK(resp.cache_control != NULL && strcmp(resp.cache_control, "no-cache") == 0);
    FUZZ_CHECK(resp.len == (gz ? a->gz_len : a->len));
    int want = inm == NULL ? 0 : ref_inm(inm, etag);
    if (resp.status == 304) {
        FUZZ_CHECK(inm != NULL && want != 0);
        FUZZ_CHECK(ref_may_match(inm, etag));
        FUZZ_CHECK(resp.body == NULL);
    } else {
        FUZZ_CHECK(resp.status == 200);
        FUZZ_CHECK(want != 1);
        FUZZ_CHECK(resp.body == (gz ? a->gz : a->data));
        FUZZ_CHECK(resp.content_type == a->content_type);
    }
}

/* An exactly sized copy of prefix + data[0..size), unterminated. */
static char *joined(const char *prefix, const uint8_t *data, size_t size, size_t *len)
{
    size_t p = prefix ? strlen(prefix) : 0;
    *len = p + size;
    char *s = malloc(*len > 0 ? *len : 1);
    FUZZ_CHECK(s != NULL);
    if (p > 0)
        memcpy(s, prefix, p);
    if (size > 0)
        memcpy(s + p, data, size);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int table_checked;
    if (!table_checked) {
        check_table();
        table_checked = 1;
    }
    if (size == 0)
        return 0;
    unsigned flags = data[0];
    data++;
    size--;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    const uint8_t *rest = nl ? nl + 1 : data + size;
    size_t rlen = (size_t)(data + size - rest);

    char *header = (flags & 1) ? NULL : fuzz_cstr(data, hlen);

    size_t len;
    char *path = joined((flags & 4) ? DASH_PREFIX : NULL, rest, rlen, &len);
    check_serve(path, len, header, (int)(flags >> 7) & 1, (int)(flags >> 1) & 1);
    free(path);
    free(header);
    return 0;
}
