/* dash.c - see dash.h. */
#include "api/dash.h"

#include "http/hdr.h"

#include <string.h>

#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define COMMON                                                                                     \
    "Content-Security-Policy", CSP, "X-Content-Type-Options", "nosniff", "Referrer-Policy",        \
        "no-referrer"

const char *const dash_headers[] = {COMMON, NULL};
/* An asset with a gzipped copy: sent as is, or gzipped. */
static const char *const plain_headers[] = {COMMON, "Vary", "Accept-Encoding", NULL};
static const char *const gzip_headers[] = {COMMON, "Vary", "Accept-Encoding", "Content-Encoding",
                                           "gzip", NULL};

static const struct dash_asset *find(const char *name, size_t len)
{
    for (size_t i = 0; i < dash_nassets; i++)
        if (strlen(dash_assets[i].name) == len && memcmp(dash_assets[i].name, name, len) == 0)
            return &dash_assets[i];
    return NULL;
}

void dash_serve(const struct http_req *req, struct http_resp *resp)
{
    static const char prefix[] = "/dashboard";
    const size_t plen = sizeof(prefix) - 1;
    const struct dash_asset *a = NULL;
    if (req->path_len == plen || (req->path_len == plen + 1 && req->path[plen] == '/'))
        a = find("index.html", 10);
    else if (req->path_len > plen + 1 && req->path[plen] == '/')
        a = find(req->path + plen + 1, req->path_len - plen - 1);
    resp->fixed_headers = dash_headers;
    if (a == NULL) {
        http_resp_error(resp, 404, "NOT_FOUND", "no such dashboard file");
        return;
    }
    int gz = a->gz != NULL && hdr_accepts_gzip(http_req_header(req, "Accept-Encoding"));
    if (a->gz != NULL)
        resp->fixed_headers = gz ? gzip_headers : plain_headers;
    /* Revalidated on every use: a new binary must never run with an old
     * script from the browser's cache, and a 304 costs one small round trip. */
    resp->etag = gz ? a->gz_etag : a->etag;
    resp->cache_control = "no-cache";
    resp->len = gz ? a->gz_len : a->len;
    const char *inm = http_req_header(req, "If-None-Match");
    if (inm != NULL && hdr_etag_matches(inm, resp->etag)) {
        resp->status = 304;
        return;
    }
    resp->status = 200;
    resp->content_type = a->content_type;
    resp->body = gz ? a->gz : a->data;
}

static int handle(void *ctx, struct http_req *req, struct http_resp *resp, struct http_work *work)
{
    (void)ctx;
    (void)work;
    dash_serve(req, resp);
    return HTTP_DONE;
}

struct http_route dash_route_http(void)
{
    return (struct http_route){.name = "dashboard", .handle = handle};
}
