/* http_server.c - see http_server.h.
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
#include "http/http_server.h"

#include "base/err.h"
#include "base/metrics.h"
#include "base/timeutil.h"
#include "base/workq.h"
#include "http/http_framing.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
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

/* Per-request word kept in MHD's con_cls pointer. Before the first handler
 * call it is the target length + 1 from the URI log, shifted past the low
 * bits. From the first call on: bit 0 marks the request counted in flight,
 * bits 1-3 hold its route's index, and the bits above are the route's own
 * state (http_req.state), which keeps its low bits zero for these. */
#define REQ_COUNTED ((uintptr_t)1)
#define REQ_BAD_TARGET ((uintptr_t)2) /* before the first call: a CTL or space in the target */
#define REQ_ROUTE_SHIFT 1
#define REQ_ROUTE_MASK ((uintptr_t)7)
#define REQ_SHIFT HTTP_STATE_RESERVED
#define REQ_STATE_MASK (~(((uintptr_t)1 << HTTP_STATE_RESERVED) - 1))

struct inflight_slot {
    _Atomic long n;
    char pad[64 - sizeof(long)];
};

/* The metrics' route label: a route's name if it is one of these, else
 * "other" (as for a path no route takes). */
static const char *const route_labels[] = {"cdn", "api", "dashboard", "other"};
#define NLABELS 4
#define LABEL_OTHER 3
/* The statuses counted by name; any other counts as the last, "other". */
static const int statuses[] = {200, 204, 206, 301, 302, 304, 400, 401, 403, 404,
                               405, 406, 408, 409, 412, 413, 414, 415, 416, 422,
                               429, 431, 500, 501, 502, 503, 504, 505};
#define NSTATUS ((int)(sizeof(statuses) / sizeof(statuses[0])))

struct http_metrics {
    int label[HTTP_ROUTER_MAX + 1]; /* route index -> label index */
    int requests[NLABELS][NSTATUS + 1];
    int bytes[NLABELS];
    int duration[NLABELS];
};

/* Per connection (MHD's socket context): when the current request's
 * headers came in (requests on a connection follow one another, so one
 * word serves them all), and by when its next request's headers must be
 * in. The server keeps them all on a list that a watchdog thread walks. */
struct conn_ctx {
    int64_t start_ns;
    _Atomic int64_t deadline_ns; /* 0: none (a request is being answered) */
    int fd;
    int refused; /* opened beyond max_connections: its request gets a 503 */
    struct conn_ctx *prev, *next;
};

/* Connections beyond max_connections are still taken by libmicrohttpd, up
 * to this many more, so that they can be answered 503 rather than dropped
 * without a word; past that libmicrohttpd closes them at once. */
#define REFUSAL_HEADROOM(max) ((max) / 4 + 64)

struct http_server {
    struct MHD_Daemon *daemon;
    const struct http_router *router;
    struct workq *pools[HTTP_ROUTER_MAX + 1]; /* by route index; NULL: none */
    _Atomic int stopping; /* set by http_server_stop(): answer inline, then close */
    _Atomic int next_slot;
    struct inflight_slot inflight[INFLIGHT_SLOTS];
    struct http_metrics *metrics; /* NULL: not counted */
    int max_connections, idle_timeout_s, header_timeout_s;
    _Atomic long open_conns;
    pthread_mutex_t conns_lock; /* the list; taken as a connection opens or closes */
    struct conn_ctx *conns;
    pthread_t watchdog;
    int watchdog_running;
    pthread_cond_t watchdog_cond; /* with conns_lock: signalled to stop */
    int watchdog_stop;
    int refused_id, timeouts_id;  /* metrics counters (when counted) */
    _Atomic long streams_waiting; /* streams suspended until their route wakes them */
    _Atomic int cutting;          /* the stop's grace is over: streams that would wait are cut */
};

static _Thread_local int thread_slot = -1;

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
    uintptr_t bad = http_framing_target_ok(uri, n) ? 0 : REQ_BAD_TARGET;
    if (n > TARGET_MAX)
        n = TARGET_MAX + 1;
    return (void *)((uintptr_t)(n + 1) << REQ_SHIFT | bad);
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

/* Release a request's route state, if any. */
static void release_state(struct http_server *srv, uintptr_t word)
{
    uintptr_t state = word & REQ_STATE_MASK;
    if (state == 0)
        return;
    const struct http_route *route =
        http_router_get(srv->router, (int)((word >> REQ_ROUTE_SHIFT) & REQ_ROUTE_MASK));
    if (route != NULL && route->release != NULL)
        route->release(route->ctx, state);
}

static struct conn_ctx *conn_ctx_of(struct MHD_Connection *conn);

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    (void)toe;
    uintptr_t word = (uintptr_t)*con_cls;
    /* Answered: the next request's headers must all be in within the idle
     * timeout, however slowly they trickle in. */
    struct conn_ctx *cc = conn_ctx_of(c);
    if (cc != NULL)
        atomic_store_explicit(&cc->deadline_ns,
                              timeutil_mono_ns() + (int64_t)srv->idle_timeout_s * 1000000000,
                              memory_order_relaxed);
    if ((word & REQ_COUNTED) != 0) {
        release_state(cls, word); /* the connection went before its answer */
        inflight_add(cls, -1);
    }
    *con_cls = NULL;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_len, const char *value, size_t value_len)
{
    (void)kind;
    struct http_framing *f = cls;
    http_framing_add(f, key, key_len, value, value_len);
    return f->header_bytes > HEADERS_MAX ? MHD_NO : MHD_YES;
}

struct deferred {
    struct MHD_Connection *conn;
    struct http_work work;
};

/* On one of the route's threads: do the work, then hand the connection back
 * to its event loop, which calls the handler again to answer. */
static void run_deferred(void *arg)
{
    struct deferred *d = arg;
    d->work.fn(d->work.arg);
    MHD_resume_connection(d->conn);
    free(d);
}

/* Suspend the request and queue its work on route `ri`'s threads. Returns
 * 0, or PF_ENOMEM / PF_EINVAL (stopping, or a route without threads) with
 * nothing queued. */
static int defer(struct http_server *srv, struct MHD_Connection *conn, int ri,
                 const struct http_work *work)
{
    struct workq *q = srv->pools[ri];
    if (q == NULL)
        return PF_EINVAL;
    struct deferred *d = malloc(sizeof(*d));
    if (d == NULL)
        return PF_ENOMEM;
    d->conn = conn;
    d->work = *work;
    MHD_suspend_connection(conn);
    int rc = workq_push(q, run_deferred, d);
    if (rc != 0) {
        MHD_resume_connection(conn);
        free(d);
    }
    return rc;
}

/* ---- Streamed bodies (http.h's `stream`) ----
 *
 * Why a content reader with suspension, rather than a pipe
 * (MHD_create_response_from_pipe): libmicrohttpd reads a pipe in its event
 * loop and wants it in blocking mode (microhttpd.h), so an empty pipe
 * stalls every connection of that thread while the database is read
 * (measured on 0.9.75 with one event-loop thread: a request sent 0.3 s
 * after a pipe response that got its data at 2 s was answered in 1.7 s).
 * Here the event loop only copies bytes the route already has; when it
 * has none, the connection is suspended (libmicrohttpd's way: "returning
 * zero should only be used in conjunction with
 * MHD_suspend_connection()") and the route's own thread resumes it.
 *
 * The suspension must come before its resumption: a route may finish
 * between saying WAIT and our suspending. So `mu` orders the two: the
 * reader suspends under it only if no wake came meanwhile (`woken`), and
 * a wake resumes under it only a connection the reader suspended
 * (`waiting`). A suspended connection is never closed by libmicrohttpd,
 * so `conn` is alive whenever `waiting` is set. The memory goes with the
 * last reference: the response's (dropped when libmicrohttpd frees it)
 * and the route's holds. Lock order: the route's own lock (if it wakes
 * under it), then `mu`, then libmicrohttpd's. */
struct http_stream {
    struct http_server *srv;
    struct MHD_Connection *conn;
    long (*fn)(void *ctx, struct http_stream *s, char *buf, size_t max);
    void (*release)(void *ctx);
    void *ctx;
    pthread_mutex_t mu;
    int waiting, woken; /* under mu */
    _Atomic int refs;
};

void http_stream_hold(struct http_stream *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void http_stream_drop(struct http_stream *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void http_stream_wake(struct http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->waiting) {
        s->waiting = 0;
        MHD_resume_connection(s->conn);
        /* After the resumption: a stopping server waits for this count to
         * reach zero before libmicrohttpd may meet no suspended connection. */
        atomic_fetch_sub(&s->srv->streams_waiting, 1);
    } else {
        s->woken = 1;
    }
    pthread_mutex_unlock(&s->mu);
}

/* libmicrohttpd's content reader: on the event loop. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_stream *s = cls;
    (void)pos;
    for (;;) {
        long n = s->fn(s->ctx, s, buf, max);
        if (n > 0)
            return (ssize_t)n;
        if (n == HTTP_STREAM_END)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n != HTTP_STREAM_WAIT)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        pthread_mutex_lock(&s->mu);
        if (s->woken) { /* the route got there first: ask again */
            s->woken = 0;
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        /* Counted before `cutting` is read, as http_server_stop() sets
         * `cutting` before it reads the count: one of them sees the other.
         * Until then (the stop's grace included) a stream goes on. */
        atomic_fetch_add(&s->srv->streams_waiting, 1);
        if (atomic_load(&s->srv->cutting)) {
            atomic_fetch_sub(&s->srv->streams_waiting, 1);
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR; /* cut: the server is going */
        }
        s->waiting = 1;
        MHD_suspend_connection(s->conn);
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
}

/* libmicrohttpd frees the response: the route is told, and the response's
 * reference goes. The connection is not suspended here (see above). */
static void stream_free(void *cls)
{
    struct http_stream *s = cls;
    if (s->release != NULL)
        s->release(s->ctx);
    http_stream_drop(s);
}

static struct MHD_Response *stream_response(struct http_server *srv, struct MHD_Connection *conn,
                                            struct http_resp *r)
{
    struct http_stream *s = calloc(1, sizeof(*s));
    struct MHD_Response *m = NULL;
    if (s != NULL) {
        s->srv = srv;
        s->conn = conn;
        s->fn = r->stream;
        s->release = r->body_release;
        s->ctx = r->body_ctx;
        atomic_init(&s->refs, 1);
        pthread_mutex_init(&s->mu, NULL);
        m = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s,
                                              stream_free);
    }
    if (m == NULL) {
        if (s != NULL)
            pthread_mutex_destroy(&s->mu);
        free(s);
        r->stream = NULL; /* the 500 that follows is a plain body */
        return NULL;
    }
    r->body_release = NULL; /* the stream's now */
    return m;
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

static struct MHD_Response *make_response(struct http_server *srv, struct MHD_Connection *conn,
                                          struct http_resp *r)
{
    struct MHD_Response *m = NULL;
    if (r->stream != NULL)
        return stream_response(srv, conn, r);
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
    if (r->body != NULL && r->body_release != NULL) {
        /* The body stays alive until MHD has sent its last copy. */
        m = MHD_create_response_from_buffer_with_free_callback_cls(r->len, (void *)r->body,
                                                                   r->body_release, r->body_ctx);
        if (m != NULL)
            r->body_release = NULL; /* MHD's now */
        return m;
    }
    return MHD_create_response_from_buffer(r->len, (void *)r->body, MHD_RESPMEM_PERSISTENT);
}

/* Call the route's handler, deferring its work if it asks; a refused
 * deferral is answered at once. Returns HTTP_DONE with resp filled, or
 * HTTP_DEFER (queued: nothing to answer yet). */
static int run_route(struct http_server *srv, struct MHD_Connection *conn,
                     const struct http_route *route, int ri, struct http_req *req,
                     struct http_resp *resp, void **con_cls, int *closing)
{
    struct http_work work = {NULL, NULL};
    uintptr_t head = (uintptr_t)*con_cls & ~REQ_STATE_MASK;
    int rc = route->handle(route->ctx, req, resp, &work);
    assert((req->state & ~REQ_STATE_MASK) == 0);
    *con_cls = (void *)(head | req->state);
    if (rc != HTTP_DEFER)
        return HTTP_DONE;
    req->refused = defer(srv, conn, ri, &work);
    if (req->refused == 0)
        return HTTP_DEFER;
    /* Not queued (stopping, or out of memory): answered here, and the
     * connection let go. */
    *closing = 1;
    free(resp->owned_body);
    if (resp->body_release != NULL)
        resp->body_release(resp->body_ctx);
    memset(resp, 0, sizeof(*resp));
    if (route->handle(route->ctx, req, resp, &work) != HTTP_DONE)
        http_resp_error(resp, 503, "UNAVAILABLE", "the server is stopping");
    *con_cls = (void *)(head | req->state);
    return HTTP_DONE;
}

/* Each connection's context goes on the server's list as it opens (its
 * first request's headers due within the header timeout) and off it as it
 * closes: libmicrohttpd tells of the close before it closes the socket, so
 * the watchdog never touches a descriptor that may have been reused. */
static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    struct conn_ctx *cc = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cc = calloc(1, sizeof(*cc));
        *socket_context = cc;
        if (cc == NULL)
            return;
        cc->fd = ci != NULL ? ci->connect_fd : -1;
        cc->refused = atomic_fetch_add(&srv->open_conns, 1) >= srv->max_connections;
        atomic_store(&cc->deadline_ns,
                     timeutil_mono_ns() + (int64_t)srv->header_timeout_s * 1000000000);
        pthread_mutex_lock(&srv->conns_lock);
        cc->next = srv->conns;
        if (srv->conns != NULL)
            srv->conns->prev = cc;
        srv->conns = cc;
        pthread_mutex_unlock(&srv->conns_lock);
    } else if (cc != NULL) {
        pthread_mutex_lock(&srv->conns_lock);
        if (cc->prev != NULL)
            cc->prev->next = cc->next;
        else
            srv->conns = cc->next;
        if (cc->next != NULL)
            cc->next->prev = cc->prev;
        pthread_mutex_unlock(&srv->conns_lock);
        atomic_fetch_sub(&srv->open_conns, 1);
        free(cc);
        *socket_context = NULL;
    }
}

/* Every quarter second: a connection whose request headers are overdue is
 * shut down (libmicrohttpd then reads the end of it and closes it in its
 * own thread). libmicrohttpd's own timeout restarts on every byte, so a
 * client trickling one byte at a time would otherwise hold its connection
 * for ever. */
static void *watchdog_main(void *arg)
{
    struct http_server *srv = arg;
    pthread_mutex_lock(&srv->conns_lock);
    while (!srv->watchdog_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&srv->watchdog_cond, &srv->conns_lock, &until);
        int64_t now = timeutil_mono_ns();
        for (struct conn_ctx *cc = srv->conns; cc != NULL && !srv->watchdog_stop; cc = cc->next) {
            int64_t d = atomic_load_explicit(&cc->deadline_ns, memory_order_relaxed);
            if (d == 0 || now < d || cc->fd < 0)
                continue;
            atomic_store_explicit(&cc->deadline_ns, 0, memory_order_relaxed);
            shutdown(cc->fd, SHUT_RDWR);
            if (srv->metrics != NULL)
                metrics_inc(srv->timeouts_id);
        }
    }
    pthread_mutex_unlock(&srv->conns_lock);
    return NULL;
}

static struct conn_ctx *conn_ctx_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static int status_index(int status)
{
    int lo = 0, hi = NSTATUS;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (statuses[mid] < status)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < NSTATUS && statuses[lo] == status ? lo : NSTATUS;
}

/* Count an answer just queued: its route (index ri, or none), status, body
 * bytes and the time since its headers came in. */
static void count_answer(struct http_server *srv, struct MHD_Connection *conn, int ri,
                         const struct http_route *route, const struct http_req *req,
                         const struct http_resp *resp)
{
    const struct http_metrics *m = srv->metrics;
    int l = route != NULL ? m->label[ri] : LABEL_OTHER;
    metrics_inc(m->requests[l][status_index(resp->status)]);
    if (!req->is_head && resp->status != 304)
        metrics_add(m->bytes[l], resp->len);
    const struct conn_ctx *cc = conn_ctx_of(conn);
    if (cc != NULL && cc->start_ns != 0) {
        int64_t d = timeutil_mono_ns() - cc->start_ns;
        metrics_observe_ns(m->duration[l], d > 0 ? (uint64_t)d : 0);
    }
}

int http_server_probe(const char *host, int port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int v6 = strchr(host, ':') != NULL, on = 1, rc = PF_EIO;
    memset(&ss, 0, sizeof(ss));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        len = sizeof(*a);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
        (!v6 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == 0) &&
        bind(fd, (struct sockaddr *)&ss, len) == 0)
        rc = 0;
    else
        snprintf(err, errlen, "cannot listen on %s%s%s:%d: %s", v6 ? "[" : "", host, v6 ? "]" : "",
                 port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

static long inflight_total(struct http_server *srv);

static void collect_inflight(void *ctx, struct metrics_out *out)
{
    long n = inflight_total(ctx);
    metrics_out_family(out, "pixflare_http_requests_in_flight", "gauge",
                       "HTTP requests received and not yet answered.");
    metrics_out_sample(out, "pixflare_http_requests_in_flight", NULL, (double)(n < 0 ? 0 : n));
    struct http_server *srv = ctx;
    long open = atomic_load(&srv->open_conns);
    metrics_out_family(out, "pixflare_http_connections", "gauge",
                       "HTTP connections open (PIXFLARE_MAX_CONNECTIONS caps them).");
    metrics_out_sample(out, "pixflare_http_connections", NULL, (double)(open < 0 ? 0 : open));
}

/* Register the server's series: every (route label, status) pair, so that
 * the request path only indexes a table. */
static int metrics_setup(struct http_server *srv)
{
    struct http_metrics *m = calloc(1, sizeof(*m));
    char labels[64];
    if (m == NULL)
        return PF_ENOMEM;
    for (int i = 0; i <= HTTP_ROUTER_MAX; i++) {
        const struct http_route *r = http_router_get(srv->router, i);
        m->label[i] = LABEL_OTHER;
        for (int l = 0; r != NULL && r->name != NULL && l < NLABELS; l++)
            if (strcmp(r->name, route_labels[l]) == 0)
                m->label[i] = l;
    }
    for (int l = 0; l < NLABELS; l++) {
        for (int st = 0; st <= NSTATUS; st++) {
            if (st < NSTATUS)
                snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"", route_labels[l],
                         statuses[st]);
            else
                snprintf(labels, sizeof(labels), "route=\"%s\",status=\"other\"", route_labels[l]);
            m->requests[l][st] = metrics_counter(
                "pixflare_http_requests_total", labels,
                "HTTP requests answered, by route (cdn, api, dashboard, other) and status.",
                METRICS_HIDE_ZERO);
        }
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_labels[l]);
        m->bytes[l] = metrics_counter("pixflare_http_response_bytes_total", labels,
                                      "Response body bytes sent, by route.", 0);
        m->duration[l] =
            metrics_histogram("pixflare_http_request_duration_seconds", labels,
                              "Time from a request's headers to its answer being queued, by route.",
                              metrics_latency_bounds, metrics_latency_nbounds);
    }
    srv->refused_id =
        metrics_counter("pixflare_http_connections_refused_total", "",
                        "Connections beyond PIXFLARE_MAX_CONNECTIONS, answered 503 and closed.", 0);
    srv->timeouts_id = metrics_counter(
        "pixflare_http_header_timeouts_total", "",
        "Connections closed because their request headers were not all in on time.", 0);
    srv->metrics = m;
    return metrics_collector_add(collect_inflight, srv);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    static const char *const retry_after[] = {"Retry-After", "1", NULL};
    struct http_server *srv = cls;
    (void)upload_data;
    uintptr_t word = (uintptr_t)*con_cls;
    struct http_req req = {method, 0, origin_form(url), 0, conn, 0, 0, 0};
    req.path_len = strlen(req.path);
    struct http_resp resp;
    memset(&resp, 0, sizeof(resp));
    int closing = 0, ri = 0;
    int is_get = strcmp(method, "GET") == 0;
    req.is_head = strcmp(method, "HEAD") == 0;
    const struct http_route *route;

    /* The route is found once, on the first call, and kept in the word. */
    if ((word & REQ_COUNTED) == 0) {
        route = http_router_find(srv->router, req.path, req.path_len, &ri);
    } else {
        ri = (int)((word >> REQ_ROUTE_SHIFT) & REQ_ROUTE_MASK);
        route = http_router_get(srv->router, ri);
    }
    if ((word & REQ_COUNTED) == 0) {
        /* First call: headers are in, the body (if any) is not. Answering now
         * makes MHD close the connection after the reply, which suits
         * requests we refuse; a good request waits for the next call so the
         * connection stays alive. */
        inflight_add(srv, 1);
        *con_cls = (void *)(REQ_COUNTED | (uintptr_t)ri << REQ_ROUTE_SHIFT);
        struct conn_ctx *cc = conn_ctx_of(conn);
        if (cc != NULL) {
            cc->start_ns = timeutil_mono_ns();
            atomic_store_explicit(&cc->deadline_ns, 0, memory_order_relaxed);
        }
        struct http_framing fr;
        memset(&fr, 0, sizeof(fr));
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_header, &fr);
        const char *code = NULL, *msg = NULL;
        int bad = 0;
        if (cc != NULL && cc->refused) {
            http_resp_error(&resp, 503, "TOO_MANY_CONNECTIONS",
                            "too many open connections; try again later");
            resp.fixed_headers = retry_after;
            if (srv->metrics != NULL)
                metrics_inc(srv->refused_id);
        } else if ((word >> REQ_SHIFT) > TARGET_MAX + 1) {
            http_resp_error(&resp, 414, "URI_TOO_LONG", "request target is longer than 8192 bytes");
        } else if (fr.header_bytes > HEADERS_MAX) {
            http_resp_error(&resp, 431, "HEADERS_TOO_LARGE", "request headers exceed 8192 bytes");
        } else if ((word & REQ_BAD_TARGET) != 0) {
            http_resp_error(&resp, 400, "BAD_REQUEST",
                            "the request target holds a control character or a space");
        } else if ((bad = http_framing_check(&fr, url, strcmp(version, "HTTP/1.1") == 0, &code,
                                             &msg)) != 0) {
            http_resp_error(&resp, bad, code, msg);
        } else if (!is_get && !req.is_head) {
            http_resp_error(&resp, 405, "METHOD_NOT_ALLOWED", "only GET and HEAD are allowed here");
            resp.allow = "GET, HEAD";
        } else {
            return MHD_YES;
        }
        /* Refused before its body: libmicrohttpd closes the connection
         * after this answer (nothing after these bytes is read as a
         * request); said in the answer too. */
        closing = 1;
    } else if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a GET body is read and discarded */
        return MHD_YES;
    } else if (route == NULL) {
        http_resp_error(&resp, 404, "NOT_FOUND", "not found");
    } else {
        /* While stopping, nothing new is deferred (the pools are being
         * drained) and kept-alive connections are told to close. */
        req.state = word & REQ_STATE_MASK;
        req.stopping = closing = atomic_load_explicit(&srv->stopping, memory_order_relaxed);
        if (run_route(srv, conn, route, ri, &req, &resp, con_cls, &closing) == HTTP_DEFER)
            return MHD_YES;
    }

    struct MHD_Response *m = make_response(srv, conn, &resp);
    if (m == NULL && resp.status != 500) {
        http_resp_error(&resp, 500, "INTERNAL", "cannot build the response");
        m = make_response(srv, conn, &resp);
    }
    free(resp.owned_body);
    resp.owned_body = NULL;
    enum MHD_Result ret = MHD_NO;
    if (m != NULL) {
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
        if (closing)
            MHD_add_response_header(m, MHD_HTTP_HEADER_CONNECTION, "close");
        /* Before the response is queued: an event is on its way to disk
         * before the client can have the answer. */
        if (route != NULL && route->answered != NULL)
            route->answered(route->ctx, &req, &resp);
        ret = MHD_queue_response(conn, (unsigned)resp.status, m);
        MHD_destroy_response(m);
        if (srv->metrics != NULL && ret == MHD_YES)
            count_answer(srv, conn, ri, route, &req, &resp);
    }
    if (resp.body_release != NULL) /* not handed to MHD: done with now */
        resp.body_release(resp.body_ctx);
    word = (uintptr_t)*con_cls;
    release_state(srv, word);
    *con_cls = (void *)(word & ~REQ_STATE_MASK);
    return ret;
}

int http_server_start(const struct http_server_options *opt, struct http_server **out,
                      int *bound_port, char *err, size_t errlen)
{
    struct http_server *srv = calloc(1, sizeof(*srv));
    struct sockaddr_storage ss;
    int rc = 0;
    memset(&ss, 0, sizeof(ss));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (srv == NULL)
        return PF_ENOMEM;
    srv->router = opt->router;
    srv->max_connections = opt->max_connections > 0 ? opt->max_connections : 10000;
    srv->idle_timeout_s = opt->idle_timeout_s > 0 ? opt->idle_timeout_s : 30;
    srv->header_timeout_s = opt->header_timeout_s > 0 ? opt->header_timeout_s : 10;
    pthread_mutex_init(&srv->conns_lock, NULL);
    pthread_cond_init(&srv->watchdog_cond, NULL);
    for (int i = 1; rc == 0 && i <= http_router_count(opt->router); i++) {
        const struct http_route *r = http_router_get(opt->router, i);
        if (r->threads > 0)
            rc = workq_new(r->threads, &srv->pools[i]);
    }
    if (rc == 0 && opt->metrics)
        rc = metrics_setup(srv);
    if (rc == 0 && pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0)
        rc = PF_ENOMEM;
    srv->watchdog_running = rc == 0;
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the server's threads");
        http_server_stop(srv, 0);
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
        /* The logger first: options after it log through it */
        flags, (uint16_t)opt->port, NULL, NULL, handler, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, srv, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_THREAD_POOL_SIZE,
        /* 1 is MHD's "no pool" (one internal thread), said with a warning */
        (unsigned)(opt->threads > 1 ? opt->threads : 0), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(srv->max_connections + REFUSAL_HEADROOM(srv->max_connections)),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_POOL, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_UNESCAPE_CALLBACK, unescape_identity, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_END);
    if (srv->daemon == NULL) {
        int v6 = strchr(opt->host, ':') != NULL;
        snprintf(err, errlen, "cannot listen on %s%s%s:%d: %s", v6 ? "[" : "", opt->host,
                 v6 ? "]" : "", opt->port,
                 errno ? strerror(errno) : "libmicrohttpd failed to start");
        http_server_stop(srv, 0);
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

void http_server_stop(struct http_server *srv, int grace_ms)
{
    if (srv == NULL)
        return;
    atomic_store(&srv->stopping, 1);
    if (srv->daemon != NULL) {
        /* Stop accepting: close the listening socket at once, so that new
         * connections are refused rather than left waiting in its backlog. */
        MHD_socket listen_fd = MHD_quiesce_daemon(srv->daemon);
        if (listen_fd != MHD_INVALID_SOCKET)
            close(listen_fd);
        struct timespec tick = {0, 10 * 1000 * 1000};
        for (int waited = 0; waited < grace_ms && inflight_total(srv) > 0; waited += 10)
            nanosleep(&tick, NULL);
    }
    /* Order matters: the pools' jobs resume connections, so drain them while
     * the daemon runs (pushes are refused from now on, and handlers no
     * longer defer), and MHD_stop_daemon() must then meet no suspended
     * connection. The pools' memory goes last, once MHD's threads are gone. */
    for (int i = 0; i <= HTTP_ROUTER_MAX; i++)
        if (srv->pools[i] != NULL)
            workq_stop(srv->pools[i]);
    /* A suspended stream is owed a wake by its route (whose threads are
     * not ours and still run): wait for it, as libmicrohttpd must not be
     * stopped with a suspended connection. Streams that ask to wait from
     * now on are cut instead (stream_read). */
    atomic_store(&srv->cutting, 1);
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (atomic_load(&srv->streams_waiting) > 0)
        nanosleep(&tick, NULL);
    if (srv->daemon != NULL)
        MHD_stop_daemon(srv->daemon);
    if (srv->watchdog_running) {
        pthread_mutex_lock(&srv->conns_lock);
        srv->watchdog_stop = 1;
        pthread_cond_signal(&srv->watchdog_cond);
        pthread_mutex_unlock(&srv->conns_lock);
        pthread_join(srv->watchdog, NULL);
    }
    pthread_cond_destroy(&srv->watchdog_cond);
    pthread_mutex_destroy(&srv->conns_lock);
    for (int i = 0; i <= HTTP_ROUTER_MAX; i++)
        workq_free(srv->pools[i]);
    if (srv->metrics != NULL)
        metrics_collector_remove(srv);
    free(srv->metrics);
    free(srv);
}
