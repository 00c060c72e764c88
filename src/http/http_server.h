/* http_server.h - the HTTP server: libmicrohttpd, its limits, and the
 * dispatch of each request to the route the router gives.
 *
 * The server refuses on its own, before any route sees them, requests
 * whose target is over 8 KiB (414), whose headers are over 8 KiB (431) and
 * whose method is not GET or HEAD (405), and those whose framing is
 * malformed or ambiguous (400/501, http_framing.h; docs/HTTP.md), closing
 * the connection after the answer; the route of their path still hears of
 * the answer (http_route.answered). A route's deferred work runs on threads
 * the server makes for it (http_route.threads). */
#ifndef PF_HTTP_SERVER_H
#define PF_HTTP_SERVER_H

#include "http/http_router.h"

#include <stddef.h>

struct http_server;

struct http_server_options {
    const char *host;                 /* numeric IPv4 or IPv6 address */
    int port;                         /* 0: any free port */
    int threads;                      /* event-loop threads */
    const struct http_router *router; /* must outlive the server */
    /* Count this server's requests in the process's metrics (base/metrics.h):
     * pixflare_http_requests_total{route,status}, response bytes, durations
     * and requests in flight, by the routes' names. One such server per
     * process (the main listener; the metrics listener is not counted). */
    int metrics;
    /* Connection limits (0: the defaults, 10000, 30 and 10; see
     * docs/HTTP.md). Beyond max_connections open connections, a new one's
     * request is answered 503 and the connection closed; one with no
     * traffic for idle_timeout_s is closed; a new connection must send its
     * whole request header within header_timeout_s, and a kept-alive one
     * its next request's within idle_timeout_s of the last answer, however
     * slowly the bytes trickle in. */
    int max_connections;
    int idle_timeout_s;
    int header_timeout_s;
};

/* Start listening and serving on worker threads. OUT: *out, *bound_port. */
int http_server_start(const struct http_server_options *opt, struct http_server **out,
                      int *bound_port, char *err, size_t errlen);

/* Whether host:port can be listened on now: binds a socket as the server
 * will (SO_REUSEADDR; IPv6 only for an IPv6 address) and closes it. The
 * command line asks before it opens or creates anything, so that a taken
 * address is one line and no side effect (a start may still fail if another
 * process takes the address meanwhile). Returns 0, or PF_EIO with "cannot
 * listen on HOST:PORT: <why>" in err. */
int http_server_probe(const char *host, int port, char *err, size_t errlen);

/* Graceful stop: stop accepting, let in-flight requests finish (up to
 * `grace_ms`), run the deferred work queued, then close every connection
 * and free the server. NULL is fine. */
void http_server_stop(struct http_server *srv, int grace_ms);

#endif
