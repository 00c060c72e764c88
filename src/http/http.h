/* http.h - what every HTTP handler shares: the request and response types,
 * and the route a handler is registered as.
 *
 * Handlers see a `struct http_req` and fill a `struct http_resp`; only
 * http_server.c knows libmicrohttpd. Bodies are either memory that
 * outlives the response (`body`, perhaps kept alive until `body_release`
 * is called), memory the response owns and frees
 * (`owned_body`), a byte range of a file sent with sendfile(2)
 * (`file_path`), or a stream of unknown length made while it is sent
 * (`stream`: chunked, see below). Every error body is the JSON of SPEC.md, made by
 * http_resp_error(). This header is the bottom of the HTTP layer: the
 * server and the router include it, and so do the handlers above them
 * (the CDN route, the API, the dashboard), which the server never names. */
#ifndef PF_HTTP_H
#define PF_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct http_req {
    const char *method;
    int is_head;
    const char *path; /* raw, as sent (origin form); no query string */
    size_t path_len;
    void *conn; /* the server's, for the accessors below */
    /* The route's own word, kept by the server across a deferral (0 on the
     * first call). Its low HTTP_STATE_RESERVED bits must stay zero: flags
     * shifted past them, or a malloc'd pointer. */
    uintptr_t state;
    int stopping; /* the server is stopping: defer nothing, answer now */
    /* The server could not queue the work the last call deferred (PF_ENOMEM,
     * or PF_EINVAL while stopping): answer now. That work's fn will not run;
     * its arg (still in *work) is the handler's to free. */
    int refused;
};

#define HTTP_STATE_RESERVED 4

/* Headers beyond the fixed ones (the API's: rate limits, Retry-After,
 * ...), kept apart so that the CDN's responses do not carry their room. */
struct http_headers {
    struct {
        const char *name;
        char value[96];
    } h[4];
    int n;
};

/* What a route remembers of an answer for its answered() hook (the CDN: the
 * image and owner its event is charged to). The server only carries it;
 * kind 0 means the route's handler did not make the answer (the server
 * refused the request first). */
struct http_note {
    int kind;
    int num;
    const void *ptr[2];
};

struct http_stream; /* the server's side of one streamed body */

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
    struct http_note note;
    /* Called once with body_ctx when the server is done with what the
     * handler referenced (the body, the validators, ...): when libmicrohttpd
     * frees a response whose `body` it sends, or else once the answer is
     * queued or dropped. Lets a body be memory that a reference count keeps
     * alive (the CDN's cached objects). NULL: nothing to release. */
    void (*body_release)(void *ctx);
    void *body_ctx;
    /* A streamed body (NULL: none), sent with Transfer-Encoding: chunked
     * and no Content-Length (HTTP/1.0: until the connection closes), made
     * as it goes by stream(body_ctx, s, buf, max), which the server calls
     * on its event loop whenever the client can take more. It must not
     * block: it copies what it has (at most max bytes) and returns the
     * count, or HTTP_STREAM_END, or HTTP_STREAM_ERROR (the connection is
     * cut, so the client sees an unfinished body), or HTTP_STREAM_WAIT
     * when it has nothing yet: the connection is then suspended (no event
     * loop waits) until the route calls http_stream_wake(s), from any
     * thread, once it has more or has ended. body_release(body_ctx) is
     * called once when the server is done with the stream (sent, the
     * client gone, or the server stopping). */
    long (*stream)(void *ctx, struct http_stream *s, char *buf, size_t max);
};

#define HTTP_STREAM_WAIT 0
#define HTTP_STREAM_END (-1)
#define HTTP_STREAM_ERROR (-2)

/* A route that returns HTTP_STREAM_WAIT keeps `s` (http_stream_hold, which
 * keeps its memory alive past body_release) and calls http_stream_wake(s)
 * once more data or the end is ready; a wake when nobody waits is
 * remembered and harmless. http_stream_drop() once it will wake no more.
 * A stopping server serves streams through its grace period like other
 * requests; after it a stream that says WAIT is cut, and
 * http_server_stop() waits for the wakes it is owed. */
void http_stream_hold(struct http_stream *s);
void http_stream_wake(struct http_stream *s);
void http_stream_drop(struct http_stream *s);

/* Value of request header `name` (case-insensitive), or NULL. */
const char *http_req_header(const struct http_req *req, const char *name);

/* The same with its length, which tells a value holding a NUL byte
 * (strlen(value) < *len). Returns 0, or PF_ENOTFOUND when absent. */
int http_req_header_n(const struct http_req *req, const char *name, const char **value,
                      size_t *len);

/* Call fn for each query-string argument, in order (value NULL for a bare
 * key), until fn returns non-zero. Keys and values are %-decoded as sent. */
void http_req_args(const struct http_req *req,
                   int (*fn)(void *ctx, const char *key, const char *value), void *ctx);

/* The client's address, or NULL. For a GeoIP lookup at most: never stored
 * or logged. */
const struct sockaddr *http_req_peer(const struct http_req *req);

/* Fill resp with the JSON error body {"success":false,"error":{...}}. */
void http_resp_error(struct http_resp *resp, int status, const char *code, const char *message);

/* Add a header to resp->extra (ignored without one, or beyond its four
 * slots). */
void http_resp_header(struct http_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Routes ---- */

/* Blocking work a handler hands off the event loop: the server suspends the
 * request, runs fn(arg) on the route's own threads, then calls the handler
 * again (req->state as the handler left it). */
struct http_work {
    void (*fn)(void *arg);
    void *arg;
};

#define HTTP_DONE 0  /* resp is the answer */
#define HTTP_DEFER 1 /* run *work first, then ask again */

struct http_route {
    const char *name; /* "cdn", "api", "dashboard", "other": for logs and metrics */
    /* Answer req into resp (zeroed), or defer blocking work. */
    int (*handle)(void *ctx, struct http_req *req, struct http_resp *resp, struct http_work *work);
    /* Called with every answer to a request of this route, once it is built
     * and before it is queued; also for a request the server refused before
     * handle() ran (a 405, 414 or 431: resp->note.kind 0). May be NULL. */
    void (*answered)(void *ctx, const struct http_req *req, const struct http_resp *resp);
    /* Frees a request's non-zero state once it is over: after its answer
     * was queued, or when its connection went first. May be NULL. */
    void (*release)(void *ctx, uintptr_t state);
    int threads; /* for deferred work; 0: handle() never defers */
    void *ctx;
};

#endif
