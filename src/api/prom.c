/* prom.c - see prom.h. */
#include "api/prom.h"

#include "base/metrics.h"
#include "base/strbuf.h"

#include <string.h>

static int handle(void *ctx, struct http_req *req, struct http_resp *resp, struct http_work *work)
{
    struct strbuf sb = {0};
    (void)ctx;
    (void)work;
    if (req->path_len != strlen("/metrics") || memcmp(req->path, "/metrics", req->path_len) != 0) {
        http_resp_error(resp, 404, "NOT_FOUND", "not found");
    } else if (metrics_render(&sb) != 0) {
        strbuf_free(&sb);
        http_resp_error(resp, 500, "INTERNAL", "out of memory rendering the metrics");
    } else {
        resp->status = 200;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        resp->owned_body = sb.p;
        resp->len = sb.len;
        resp->cache_control = "no-store";
    }
    return HTTP_DONE;
}

struct http_route prom_route_http(void)
{
    return (struct http_route){.name = "other", .handle = handle};
}
