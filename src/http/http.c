/* http.c - see http.h: the accessors a handler reads its request with, and
 * the helpers it fills its response with. */
#include "http/http.h"

#include "base/err.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *http_req_header(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int http_req_header_n(const struct http_req *req, const char *name, const char **value, size_t *len)
{
    if (MHD_lookup_connection_value_n(req->conn, MHD_HEADER_KIND, name, strlen(name), value, len) !=
        MHD_YES)
        return PF_ENOTFOUND;
    return 0;
}

struct args_ctx {
    int (*fn)(void *ctx, const char *key, const char *value);
    void *ctx;
};

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct args_ctx *a = cls;
    (void)kind;
    return a->fn(a->ctx, key, value) == 0 ? MHD_YES : MHD_NO;
}

void http_req_args(const struct http_req *req,
                   int (*fn)(void *ctx, const char *key, const char *value), void *ctx)
{
    struct args_ctx a = {fn, ctx};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, each_arg, &a);
}

const struct sockaddr *http_req_peer(const struct http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci ? ci->client_addr : NULL;
}

void http_resp_error(struct http_resp *resp, int status, const char *code, const char *message)
{
    json_t *j =
        json_pack("{s:b, s:{s:s, s:s}}", "success", 0, "error", "code", code, "message", message);
    free(resp->owned_body);
    resp->owned_body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = NULL;
    resp->file_path = NULL;
    resp->len = resp->owned_body ? strlen(resp->owned_body) : 0;
    resp->accept_ranges = 0;
    /* An error must not inherit an image's validators or its year-long
     * immutable caching (a cache in front would keep the error). */
    resp->etag = NULL;
    resp->last_modified = NULL;
    resp->cache_control = "no-store";
    resp->content_range[0] = '\0';
}

void http_resp_header(struct http_resp *resp, const char *name, const char *fmt, ...)
{
    va_list ap;
    struct http_headers *x = resp->extra;
    if (x == NULL || x->n >= (int)(sizeof(x->h) / sizeof(x->h[0])))
        return;
    x->h[x->n].name = name;
    va_start(ap, fmt);
    vsnprintf(x->h[x->n].value, sizeof(x->h[0].value), fmt, ap);
    va_end(ap);
    x->n++;
}
