/* http.c - see http.h.
 *
 * libmicrohttpd runs a pool of worker threads, each with its own epoll set,
 * so connections never share a lock on the request path. Two MHD hooks are
 * bent to our needs:
 *  - the unescape callback is the identity, so handlers get the raw path and
 *    decode it themselves (MHD's decoder would turn %00 into a NUL that
 *    silently truncates the path);
 *  - the URI-log callback, called once per request with the whole request
 *    target, stores its length in the per-request pointer (no allocation),
 *    so over-long targets get our JSON 414 rather than a truncated path.
 * libmicrohttpd's own log lines may quote request targets (and so query
 * strings), so they are dropped: Pixflare never logs those. */
#include "http/http.h"

#include "api/api.h"
#include "cdn/cdn.h"
#include "api/dash.h"
#include "base/err.h"
#include "cdn/urlpath.h"
#include "base/workq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TARGET_MAX 8192  /* whole request target, query included: else 414 */
#define HEADERS_MAX 8192 /* sum of header names and values: else 431 */
/* libmicrohttpd's memory pool per connection. It must hold the request line,
 * the headers and the reply's header; it is also zeroed between requests on
 * a kept-alive connection, so a larger pool costs every request (measured in
 * BENCHMARKS.md). 32 KiB fits the two caps above with room to spare. */
#define CONN_POOL (32 * 1024)
#define INFLIGHT_SLOTS 64

/* Per-request state packed into MHD's con_cls pointer: bit 0 marks a request
 * counted in flight, bits 1-2 the kinds of work the generation pool did for
 * it, the rest is the target length + 1 from the URI log. An API request
 * waiting for its answer has instead a pointer to its `struct api_box`
 * (malloc'd, so 16-byte aligned) with bit 3 set; the box keeps the state. */
#define REQ_COUNTED ((uintptr_t)1)
#define REQ_REFRESHED ((uintptr_t)2) /* a catalog refresh ran for it */
#define REQ_GENERATED ((uintptr_t)4) /* a variant job ran for it */
#define REQ_BOXED ((uintptr_t)8)
#define REQ_SHIFT 4

struct inflight_slot {
    _Atomic long n;
    char pad[64 - sizeof(long)];
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct cdn *cdn;
    struct analytics *an; /* NULL: nothing recorded */
    struct workq *gen;    /* variant generation, off the event loops */
    struct api *api;      /* NULL: /v1/ answers 404 */
    struct workq *apiq;   /* the API's calls, off the event loops */
    _Atomic int stopping; /* set by http_stop(): answer inline, then close */
    _Atomic int next_slot;
    struct inflight_slot inflight[INFLIGHT_SLOTS];
};

static _Thread_local int thread_slot = -1;

const char *http_req_header(const struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
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

/* An API request between its two handler calls (see REQ_BOXED). */
struct api_box {
    uintptr_t state;
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct api_call call;
};

static struct api_box *unbox(uintptr_t cls)
{
    return (cls & REQ_BOXED) ? (struct api_box *)(cls & ~(uintptr_t)15) : NULL;
}

static size_t unescape_identity(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* The path of an absolute-form target ("http://host/path", RFC 9112 3.2.2),
 * or the target itself. */
static const char *origin_form(const char *url)
{
    const char *p = NULL;
    if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    if (p == NULL)
        return url;
    p = strchr(p, '/');
    return p != NULL ? p : "/";
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls;
    (void)con;
    size_t n = strlen(uri);
    if (n > TARGET_MAX)
        n = TARGET_MAX + 1;
    return (void *)((uintptr_t)(n + 1) << REQ_SHIFT);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap;
}

static void inflight_add(struct http_server *srv, long d)
{
    if (thread_slot < 0)
        thread_slot = atomic_fetch_add(&srv->next_slot, 1) % INFLIGHT_SLOTS;
    atomic_fetch_add_explicit(&srv->inflight[thread_slot].n, d, memory_order_relaxed);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    uintptr_t state = (uintptr_t)*con_cls;
    struct api_box *box = unbox(state);
    if (box != NULL) { /* the connection went before its answer */
        state = box->state;
        free(box->call.resp.owned_body);
        free(box);
    }
    if ((state & REQ_COUNTED) != 0)
        inflight_add(cls, -1);
    *con_cls = NULL;
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    size_t *sum = cls;
    *sum += strlen(key) + (value ? strlen(value) : 0) + 4;
    return *sum > HEADERS_MAX ? MHD_NO : MHD_YES;
}

static void route_healthz(struct http_resp *resp)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = ok;
    resp->len = sizeof(ok) - 1;
    resp->cache_control = "no-store";
}

/* Whether the raw path's first segment names one of the server's own
 * routes, whose responses are not CDN responses and make no event. */
static int server_path(const char *p, size_t len)
{
    static const char *const routes[] = {"v1", "dashboard", "metrics", "healthz"};
    size_t i = 1, n;
    if (len == 0 || p[0] != '/')
        return 0;
    for (n = 0; i + n < len && p[i + n] != '/'; n++)
        ;
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++)
        if (strlen(routes[r]) == n && memcmp(p + i, routes[r], n) == 0)
            return 1;
    return 0;
}

/* The event of a response refused before routing (405, 414, 431): charged
 * to the image or owner its path names when it can be parsed. */
static void attribute_refusal(struct http_server *srv, const struct http_req *req, int may_parse,
                              struct an_hit *hit)
{
    struct urlpath path;
    if (server_path(req->path, req->path_len))
        return;
    hit->record = 1;
    hit->variant = -1;
    if (may_parse && urlpath_parse(req->path, req->path_len, &path) == 0) {
        if (path.kind == URLPATH_SERVER)
            hit->record = 0;
        else
            cdn_attribute(srv->cdn, &path, hit);
    }
}

/* One event per CDN response, written before the response is queued. */
static void record(struct http_server *srv, struct MHD_Connection *conn, const struct http_req *req,
                   const struct http_resp *resp)
{
    if (srv->an == NULL || !resp->hit.record)
        return;
    const char *header = analytics_country_header(srv->an);
    const char *country =
        header ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, header) : NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    uint64_t bytes = req->is_head || resp->status == 304 ? 0 : (uint64_t)resp->len;
    analytics_record(srv->an, &resp->hit, resp->status, bytes, country,
                     ci ? ci->client_addr : NULL);
}

/* The route table. Parses the path once and dispatches on its kind.
 * Returns CDN_PENDING (with *job set) when the answer needs blocking work. */
static int route(struct http_server *srv, const struct http_req *req, int flags,
                 struct http_resp *resp, struct cdn_job *job)
{
    struct urlpath path;
    /* The dashboard matches its raw paths itself (its names are plain, and
     * "/dashboard/" is its index, which urlpath refuses as an empty
     * segment). */
    if (req->path_len >= 10 && memcmp(req->path, "/dashboard", 10) == 0 &&
        (req->path_len == 10 || req->path[10] == '/')) {
        dash_serve(req, resp);
        return 0;
    }
    if (urlpath_parse(req->path, req->path_len, &path) != 0) {
        http_resp_error(resp, path.status, path.code, path.message);
        if (!server_path(req->path, req->path_len))
            resp->hit = (struct an_hit){1, NULL, NULL, -1};
        return 0;
    }
    if (path.kind == URLPATH_SERVER) {
        if (strcmp(path.route, "healthz") == 0 && req->path_len == 8)
            route_healthz(resp);
        else
            http_resp_error(resp, 404, "NOT_FOUND", "not found");
        return 0;
    }
    return cdn_serve(srv->cdn, req, &path, flags, resp, job);
}

struct deferred {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct cdn_job job;
};

/* On a generation thread: do the work, then hand the connection back to its
 * event loop, which calls the handler again to answer. */
static void run_deferred(void *arg)
{
    struct deferred *d = arg;
    cdn_job_run(d->srv->cdn, &d->job);
    MHD_resume_connection(d->conn);
    free(d);
}

/* Suspend the request and queue its job. Returns 0, or PF_ENOMEM when it
 * could not be queued (the caller then does the work itself). */
static int defer(struct http_server *srv, struct MHD_Connection *conn, const struct cdn_job *job)
{
    struct deferred *d = malloc(sizeof(*d));
    if (d == NULL)
        return PF_ENOMEM;
    d->srv = srv;
    d->conn = conn;
    d->job = *job;
    MHD_suspend_connection(conn);
    if (workq_push(srv->gen, run_deferred, d) != 0) {
        MHD_resume_connection(conn);
        free(d);
        return PF_ENOMEM;
    }
    return 0;
}

/* On an API thread: answer the call, then hand the connection back. */
static void run_api(void *arg)
{
    struct api_box *box = arg;
    api_handle(box->srv->api, &box->call);
    MHD_resume_connection(box->conn);
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    struct api_call *call = cls;
    (void)kind;
    if (call->query_rc != 0 || (key[0] == '\0' && (value == NULL || value[0] == '\0')))
        return MHD_YES; /* the first error is the one reported; "&&" is nothing */
    call->query_rc =
        query_add(&call->q, key, strlen(key), value, value ? strlen(value) : 0, &call->qe);
    return MHD_YES;
}

/* Copy what the API needs off the connection, and queue the call. Returns
 * 0 with the connection suspended and *con_cls boxed, or PF_ENOMEM /
 * PF_EINVAL (stopping) with nothing changed. */
static int defer_api(struct http_server *srv, struct MHD_Connection *conn,
                     const struct http_req *req, uintptr_t state, void **con_cls)
{
    struct api_box *box = calloc(1, sizeof(*box));
    if (box == NULL)
        return PF_ENOMEM;
    struct api_call *call = &box->call;
    box->state = state;
    box->srv = srv;
    box->conn = conn;
    call->is_head = req->is_head;
    call->path_too_long = req->path_len >= sizeof(call->path);
    if (!call->path_too_long)
        memcpy(call->path, req->path, req->path_len + 1);
    const char *auth = NULL;
    size_t auth_len = 0;
    if (MHD_lookup_connection_value_n(conn, MHD_HEADER_KIND, "Authorization", 13, &auth,
                                      &auth_len) != MHD_YES)
        auth = NULL;
    call->has_auth = auth != NULL;
    /* A NUL inside the value would cut the key short: refused as too long. */
    call->auth_too_long =
        auth != NULL && (auth_len >= sizeof(call->authorization) || strlen(auth) != auth_len);
    if (auth != NULL && !call->auth_too_long)
        memcpy(call->authorization, auth, auth_len + 1);
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
    size_t inm_len = inm ? strlen(inm) : 0;
    if (inm != NULL && inm_len < sizeof(call->if_none_match))
        memcpy(call->if_none_match, inm, inm_len + 1);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, call);
    *con_cls = (void *)((uintptr_t)box | REQ_BOXED);
    MHD_suspend_connection(conn);
    int rc = workq_push(srv->apiq, run_api, box);
    if (rc != 0) {
        MHD_resume_connection(conn);
        *con_cls = (void *)state;
        free(box);
    }
    return rc;
}

/* Whether the raw path is under /v1/ (or is /v1). */
static int api_path(const char *p, size_t len)
{
    return len >= 3 && memcmp(p, "/v1", 3) == 0 && (len == 3 || p[3] == '/');
}

/* Reader for a response that has a length but never a body (304). */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static struct MHD_Response *make_response(struct http_resp *r)
{
    struct MHD_Response *m = NULL;
    if (r->status == 304)
        return MHD_create_response_from_callback(r->len, 4096, no_body, NULL, NULL);
    if (r->file_path != NULL) {
        int fd = open(r->file_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            http_resp_error(r, 500, "INTERNAL", "cannot read the stored image");
        } else {
            m = MHD_create_response_from_fd_at_offset64(r->len, fd, r->file_off);
            if (m == NULL)
                close(fd);
            return m;
        }
    }
    if (r->owned_body != NULL) {
        m = MHD_create_response_from_buffer(r->len, r->owned_body, MHD_RESPMEM_MUST_FREE);
        if (m != NULL)
            r->owned_body = NULL;
        return m;
    }
    return MHD_create_response_from_buffer(r->len, (void *)r->body, MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    (void)version;
    (void)upload_data;
    struct api_box *box = unbox((uintptr_t)*con_cls), *done = NULL;
    uintptr_t state = box ? box->state : (uintptr_t)*con_cls;
    struct http_req req = {method, 0, origin_form(url), 0, conn};
    req.path_len = strlen(req.path);
    struct http_resp resp;
    memset(&resp, 0, sizeof(resp));
    int closing = 0;
    int is_get = strcmp(method, "GET") == 0;
    req.is_head = strcmp(method, "HEAD") == 0;

    if ((state & REQ_COUNTED) == 0) {
        /* First call: headers are in, the body (if any) is not. Answering now
         * makes MHD close the connection after the reply, which suits
         * requests we refuse; a good request waits for the next call so the
         * connection stays alive. */
        inflight_add(srv, 1);
        *con_cls = (void *)(state | REQ_COUNTED);
        size_t header_bytes = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, sum_header, &header_bytes);
        if ((state >> REQ_SHIFT) > TARGET_MAX + 1) {
            http_resp_error(&resp, 414, "URI_TOO_LONG", "request target is longer than 8192 bytes");
            attribute_refusal(srv, &req, 0, &resp.hit);
        } else if (header_bytes > HEADERS_MAX) {
            http_resp_error(&resp, 431, "HEADERS_TOO_LARGE", "request headers exceed 8192 bytes");
            attribute_refusal(srv, &req, 1, &resp.hit);
        } else if (!is_get && !req.is_head) {
            http_resp_error(&resp, 405, "METHOD_NOT_ALLOWED", "only GET and HEAD are allowed here");
            resp.allow = "GET, HEAD";
            attribute_refusal(srv, &req, 1, &resp.hit);
        } else {
            return MHD_YES;
        }
    } else if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a GET body is read and discarded */
        return MHD_YES;
    } else if (box != NULL) {
        /* Resumed: the API thread has answered. The box (which holds the
         * answer's extra headers) goes once they are added. */
        resp = box->call.resp;
        *con_cls = (void *)state;
        done = box;
        closing = atomic_load_explicit(&srv->stopping, memory_order_relaxed);
    } else if (srv->api != NULL && api_path(req.path, req.path_len)) {
        int rc = defer_api(srv, conn, &req, state, con_cls);
        if (rc == 0)
            return MHD_YES;
        closing = 1;
        http_resp_error(&resp, 503, "UNAVAILABLE",
                        rc == PF_ENOMEM ? "out of memory" : "the server is stopping");
    } else {
        /* While stopping, nothing new goes to the generation pool (it is
         * being drained) and kept-alive connections are told to close. */
        struct cdn_job job;
        closing = atomic_load_explicit(&srv->stopping, memory_order_relaxed);
        int flags = ((state & REQ_REFRESHED) ? CDN_REFRESHED : 0) |
                    ((state & REQ_GENERATED) || closing ? CDN_MAY_BLOCK : 0);
        if (route(srv, &req, flags, &resp, &job) == CDN_PENDING) {
            *con_cls = (void *)(state | (job.img == NULL ? REQ_REFRESHED : REQ_GENERATED));
            if (defer(srv, conn, &job) == 0)
                return MHD_YES;
            /* The pool refused it: the server is stopping (or out of memory).
             * Do the work here and let the connection go. */
            closing = 1;
            route(srv, &req, CDN_MAY_BLOCK, &resp, &job);
        }
    }

    struct MHD_Response *m = make_response(&resp);
    if (m == NULL && resp.status != 500) {
        http_resp_error(&resp, 500, "INTERNAL", "cannot build the response");
        m = make_response(&resp);
    }
    free(resp.owned_body);
    if (m == NULL) {
        free(done);
        return MHD_NO;
    }
    if (resp.content_type)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, resp.content_type);
    if (resp.etag)
        MHD_add_response_header(m, MHD_HTTP_HEADER_ETAG, resp.etag);
    if (resp.last_modified)
        MHD_add_response_header(m, MHD_HTTP_HEADER_LAST_MODIFIED, resp.last_modified);
    if (resp.cache_control)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, resp.cache_control);
    if (resp.accept_ranges)
        MHD_add_response_header(m, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (resp.content_range[0])
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_RANGE, resp.content_range);
    if (resp.allow)
        MHD_add_response_header(m, MHD_HTTP_HEADER_ALLOW, resp.allow);
    for (int i = 0; resp.fixed_headers != NULL && resp.fixed_headers[i] != NULL; i += 2)
        MHD_add_response_header(m, resp.fixed_headers[i], resp.fixed_headers[i + 1]);
    for (int i = 0; resp.extra != NULL && i < resp.extra->n; i++)
        MHD_add_response_header(m, resp.extra->h[i].name, resp.extra->h[i].value);
    free(done);
    if (closing)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONNECTION, "close");
    record(srv, conn, &req, &resp);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)resp.status, m);
    MHD_destroy_response(m);
    return ret;
}

int http_start(const struct http_options *opt, struct http_server **out, int *bound_port, char *err,
               size_t errlen)
{
    struct http_server *srv = calloc(1, sizeof(*srv));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (srv == NULL)
        return PF_ENOMEM;
    srv->cdn = opt->cdn;
    srv->an = opt->an;
    srv->api = opt->api;
    if (workq_new(opt->threads, &srv->gen) != 0) {
        free(srv);
        return PF_ENOMEM;
    }
    if (srv->api != NULL && workq_new(API_THREADS, &srv->apiq) != 0) {
        workq_free(srv->gen);
        free(srv);
        return PF_ENOMEM;
    }
    if (strchr(opt->host, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)opt->port);
        inet_pton(AF_INET6, opt->host, &a->sin6_addr);
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)opt->port);
        inet_pton(AF_INET, opt->host, &a->sin_addr);
    }
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)opt->port, NULL, NULL, handler, srv, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)opt->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)10000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_POOL, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_UNESCAPE_CALLBACK, unescape_identity, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", opt->host, opt->port,
                 errno ? strerror(errno) : "libmicrohttpd failed to start");
        workq_free(srv->gen);
        workq_free(srv->apiq);
        free(srv);
        return PF_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : opt->port;
    *out = srv;
    return 0;
}

static long inflight_total(struct http_server *srv)
{
    long n = 0;
    for (int i = 0; i < INFLIGHT_SLOTS; i++)
        n += atomic_load_explicit(&srv->inflight[i].n, memory_order_relaxed);
    return n;
}

void http_stop(struct http_server *srv, int grace_ms)
{
    if (srv == NULL)
        return;
    /* Stop accepting: close the listening socket at once, so that new
     * connections are refused rather than left waiting in its backlog. */
    atomic_store(&srv->stopping, 1);
    MHD_socket listen_fd = MHD_quiesce_daemon(srv->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < grace_ms && inflight_total(srv) > 0; waited += 10)
        nanosleep(&tick, NULL);
    /* Order matters: the pool's jobs resume connections, so drain it while
     * the daemon runs (pushes are refused from now on, and handlers no longer
     * defer), and MHD_stop_daemon() must then meet no suspended connection.
     * The pool's memory goes last, once MHD's threads are gone. */
    workq_stop(srv->gen);
    if (srv->apiq != NULL)
        workq_stop(srv->apiq);
    MHD_stop_daemon(srv->daemon);
    workq_free(srv->gen);
    if (srv->apiq != NULL)
        workq_free(srv->apiq);
    free(srv);
}
