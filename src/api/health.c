/* health.c - see health.h. */
#include "api/health.h"

#include "cdn/urlpath.h"

#include <string.h>

static int handle(void *ctx, struct http_req *req, struct http_resp *resp, struct http_work *work)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    struct urlpath path;
    (void)ctx;
    (void)work;
    if (urlpath_parse(req->path, req->path_len, &path) != 0) {
        http_resp_error(resp, path.status, path.code, path.message);
    } else if (req->path_len != strlen("/healthz")) {
        http_resp_error(resp, 404, "NOT_FOUND", "not found");
    } else {
        resp->status = 200;
        resp->content_type = "application/json";
        resp->body = ok;
        resp->len = sizeof(ok) - 1;
        resp->cache_control = "no-store";
    }
    return HTTP_DONE;
}

struct http_route health_route_http(void)
{
    return (struct http_route){.name = "other", .handle = handle};
}
