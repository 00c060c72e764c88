/* http.h - the HTTP server: libmicrohttpd glue, limits and the route table.
 *
 * Route handlers see a `struct http_req` and fill a `struct http_resp`; only
 * http.c knows libmicrohttpd. Bodies are either memory that outlives the
 * response (`body`), memory the response owns and frees (`owned_body`), or a
 * byte range of a file sent with sendfile(2) (`file_path`). Every error body
 * is the JSON of SPEC.md, made by http_resp_error(). */
#ifndef PF_HTTP_H
#define PF_HTTP_H

#include "analytics/analytics.h"

#include <stddef.h>
#include <stdint.h>

struct http_server;
struct cdn;
struct api;

struct http_req {
    const char *method;
    int is_head;
    const char *path; /* raw, as sent; no query string */
    size_t path_len;
    void *conn; /* opaque, for http_req_header() */
};

/* Headers beyond the fixed ones (the API's: rate limits, Retry-After,
 * ...), kept apart so that the CDN's responses do not carry their room. */
struct http_headers {
    struct {
        const char *name;
        char value[96];
    } h[4];
    int n;
};

struct http_resp {
    int status;
    const char *content_type;
    const void *body; /* outlives the response, or NULL */
    char *owned_body; /* malloc'd; freed by the server, or NULL */
    size_t len;
    const char *file_path; /* serve [file_off, file_off + len) of this file */
    uint64_t file_off;
    const char *etag, *last_modified, *cache_control, *allow;
    int accept_ranges;
    char content_range[80];
    struct http_headers *extra;       /* more headers (the API's), or NULL */
    const char *const *fixed_headers; /* static name, value, ..., NULL, or NULL */
    struct an_hit hit;                /* what analytics records of it (CDN route only) */
};

/* Value of request header `name` (case-insensitive), or NULL. */
const char *http_req_header(const struct http_req *req, const char *name);

/* Fill resp with the JSON error body {"success":false,"error":{...}}. */
void http_resp_error(struct http_resp *resp, int status, const char *code, const char *message);

/* Add a header to resp->extra (ignored without one, or beyond its four
 * slots). */
void http_resp_header(struct http_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct http_options {
    const char *host;
    int port;
    int threads;
    struct cdn *cdn;
    struct analytics *an; /* may be NULL */
    struct api *api;      /* /v1/: may be NULL (404) */
};

/* Start listening and serving on worker threads. OUT: *out, *bound_port. */
int http_start(const struct http_options *opt, struct http_server **out, int *bound_port, char *err,
               size_t errlen);

/* Graceful stop: stop accepting, let in-flight requests finish (up to
 * `grace_ms`), then close every connection and free the server. */
void http_stop(struct http_server *srv, int grace_ms);

#endif
