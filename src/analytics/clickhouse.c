/* clickhouse.c - see clickhouse.h. The only user of libcurl. */
#include "analytics/clickhouse.h"

#include "base/err.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct clickhouse {
    CURL *curl;
    char *base; /* the URL up to and including '?' or '&' for our parameters */
    char *user, *password;
    char database[65];
    char where[128]; /* host:port */
    int timeout_ms;
    int auth_refused;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    /* Not thread-safe in libcurl 7.88, and needed once before any handle. */
    global_rc = curl_global_init(CURL_GLOBAL_ALL);
}

int clickhouse_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return 0;
    }
    return 1;
}

/* The URL's host[:port] for messages: no scheme, no credentials, no path. */
static void url_where(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *end = p + strcspn(p, "/?#");
    /* The last '@': a password with an unescaped '@' in it must not show
     * its tail in log lines. */
    const char *at = memrchr(p, '@', (size_t)(end - p));
    if (at != NULL)
        p = at + 1;
    snprintf(out, cap, "%.*s", (int)(end - p), p);
}

/* The value of ?database= in url's query (percent-decoding is not needed:
 * a valid name has no escapes). */
static int url_database(const char *url, char *out, size_t cap)
{
    const char *q = strchr(url, '?');
    snprintf(out, cap, "default");
    while (q != NULL) {
        q++;
        size_t n = strcspn(q, "&#");
        if (n > 9 && strncmp(q, "database=", 9) == 0) {
            if (n - 9 >= cap)
                return PF_EINVAL;
            snprintf(out, cap, "%.*s", (int)(n - 9), q + 9);
            return 0;
        }
        q = q[n] == '&' ? q + n : NULL;
    }
    return 0;
}

int clickhouse_open(const char *url, const char *user, const char *password, int timeout_ms,
                    struct clickhouse **out, char *err, size_t errlen)
{
    struct clickhouse *c = calloc(1, sizeof(*c));
    int rc = 0;
    *out = NULL;
    if (c == NULL)
        return PF_ENOMEM;
    pthread_once(&global_once, global_init);
    url_where(url, c->where, sizeof(c->where));
    c->timeout_ms = timeout_ms;
    if (global_rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl cannot start: %s", curl_easy_strerror(global_rc));
        rc = PF_EINVAL;
    } else if (url_database(url, c->database, sizeof(c->database)) != 0 ||
               !clickhouse_valid_name(c->database)) {
        snprintf(err, errlen,
                 "ANALYTICS_ENGINE_URL's database must be 1-64 letters, digits or '_', not "
                 "starting with a digit");
        rc = PF_EINVAL;
    } else {
        size_t n = strlen(url);
        char *hash = strchr(url, '#');
        if (hash != NULL)
            n = (size_t)(hash - url);
        c->base = malloc(n + 2);
        c->user = user ? strdup(user) : NULL;
        c->password = password ? strdup(password) : NULL;
        c->curl = curl_easy_init();
        if (c->base == NULL || c->curl == NULL || (user && !c->user) || (password && !c->password))
            rc = PF_ENOMEM;
        else
            snprintf(c->base, n + 2, "%.*s%c", (int)n, url,
                     memchr(url, '?', n) == NULL    ? '?'
                     : (n > 0 && url[n - 1] == '?') ? '\0'
                                                    : '&');
    }
    if (rc == 0)
        *out = c;
    else
        clickhouse_close(c);
    return rc;
}

void clickhouse_close(struct clickhouse *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    free(c->base);
    free(c->user);
    if (c->password != NULL) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
    free(c);
}

const char *clickhouse_database(const struct clickhouse *c)
{
    return c->database;
}

const char *clickhouse_where(const struct clickhouse *c)
{
    return c->where;
}

int clickhouse_auth_refused(const struct clickhouse *c)
{
    return c->auth_refused;
}

void clickhouse_quote(struct strbuf *out, const char *s)
{
    strbuf_put(out, "'", 1);
    for (; *s; s++) {
        if (*s == '\\' || *s == '\'')
            strbuf_put(out, "\\", 1);
        strbuf_put(out, s, 1);
    }
    strbuf_put(out, "'", 1);
}

/* ---- One request -------------------------------------------------------- */

struct recv {
    const struct clickhouse_req *req;
    struct strbuf *answer; /* the answer, or an error's text */
    struct strbuf error;
    long status;
    int sink_rc;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
    struct recv *r = arg;
    size_t n = size * nmemb;
    if (r->status >= 400 || r->req->sink == NULL) {
        struct strbuf *b = r->status >= 400 ? &r->error : r->answer;
        if (b == NULL)
            return n;
        if (r->status >= 400 && b->len > 4096)
            return n; /* an error's first lines are enough */
        strbuf_put(b, p, n);
        return b->failed ? 0 : n;
    }
    r->sink_rc = r->req->sink(r->req->sink_ctx, (const uint8_t *)p, n);
    return r->sink_rc == 0 ? n : 0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct recv *r = arg;
    size_t n = size * nmemb;
    int code;
    /* The status line: "HTTP/1.1 500 ..." (a 100 Continue comes first for
     * large bodies: the last one wins). */
    if (n > 9 && strncmp(p, "HTTP/", 5) == 0 && sscanf(p, "HTTP/%*s %d", &code) == 1)
        r->status = code;
    return n;
}

/* ClickHouse's error text, made one line: "Code: 60, e.displayText() =
 * DB::Exception: Table x doesn't exist., e.what() = DB::Exception". */
static void error_line(const struct strbuf *b, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; b->p && i < b->len && n + 1 < cap && n < 300; i++) {
        char ch = b->p[i];
        if (ch == '\n' || ch == '\r')
            ch = ' ';
        if ((unsigned char)ch < 0x20)
            continue;
        out[n++] = ch;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

/* ClickHouse's codes for an unknown user (192), a wrong password (193),
 * and, since 20.x, authentication failed (516), plus an unknown user from
 * the users.xml network check (195: IP_ADDRESS_NOT_ALLOWED). */
static int is_auth_error(const char *msg)
{
    static const char *const codes[] = {"Code: 192", "Code: 193", "Code: 195", "Code: 516"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strstr(msg, codes[i]) != NULL)
            return 1;
    return 0;
}

int clickhouse_query(struct clickhouse *c, const struct clickhouse_req *req, struct strbuf *answer,
                     int *http_status, char *err, size_t errlen)
{
    struct recv r = {.req = req, .answer = answer};
    struct strbuf url = {0};
    struct curl_slist *headers = NULL;
    CURL *h = c->curl;
    int rc = 0;
    c->auth_refused = 0;
    if (http_status)
        *http_status = 0;
    strbuf_puts(&url, c->base);
    strbuf_printf(&url, "database=%s", c->database);
    if (req->body != NULL) {
        char *q = curl_easy_escape(h, req->sql, 0);
        if (q == NULL)
            url.failed = 1;
        else
            strbuf_puts(&url, "&query="), strbuf_puts(&url, q);
        curl_free(q);
    } else {
        /* A read: finished before the answer starts, so errors are HTTP
         * errors (not a 200 whose body stops in an exception). */
        strbuf_puts(&url, "&wait_end_of_query=1");
    }
    if (req->query_id != NULL)
        strbuf_printf(&url, "&query_id=%s", req->query_id);
    if (req->max_threads > 0)
        strbuf_printf(&url, "&max_threads=%d", req->max_threads);
    if (url.failed) {
        strbuf_free(&url);
        return PF_ENOMEM;
    }
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.p);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     (long)(req->timeout_ms ? req->timeout_ms : c->timeout_ms));
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (c->user != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    if (req->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->sql);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->sql));
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (http_status)
        *http_status = (int)status;
    if (r.sink_rc != 0) {
        rc = r.sink_rc;
    } else if (status >= 400) {
        char line[320];
        error_line(&r.error, line, sizeof(line));
        c->auth_refused = is_auth_error(line) || status == 401 || status == 403;
        snprintf(err, errlen, "ClickHouse at %s answered %ld: %s", c->where, status,
                 line[0] ? line : "(no message)");
        rc = PF_EINVAL;
    } else if (cc == CURLE_WRITE_ERROR && answer != NULL && answer->failed) {
        rc = PF_ENOMEM;
    } else if (cc != CURLE_OK) {
        snprintf(err, errlen, "ClickHouse at %s: %s", c->where, curl_easy_strerror(cc));
        rc = PF_EUNAVAIL;
    }
    curl_slist_free_all(headers);
    strbuf_free(&url);
    strbuf_free(&r.error);
    return rc;
}
