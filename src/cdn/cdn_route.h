/* cdn_route.h - the CDN as an HTTP route, and the event of each of its
 * answers.
 *
 * The route is the router's default: every path that no server route owns
 * is an image path. It parses the path (urlpath.h), answers through
 * cdn_serve(), and hands the blocking work cdn_serve() asks for (a catalog
 * refresh, a variant to make) to the route's own threads while the request
 * waits. Once the answer is built, before it is queued, it makes the
 * response's event (SPEC.md's "Analytics": what cdn_serve() noted, the
 * status, the body size, the time, a request id and the country) and emits
 * it to the analytics sink: one event per CDN response, refusals of the
 * server (405, 414, 431) included; paths of the server's own routes make
 * none. */
#ifndef PF_CDN_ROUTE_H
#define PF_CDN_ROUTE_H

#include "analytics/capture.h"
#include "analytics/event.h"
#include "cdn/cdn.h"
#include "http/http.h"

struct cdn_route;

/* sink: where events go, or NULL (nothing recorded: not even the country
 * header is read). cap: how events learn their country (unused without a
 * sink). Everything is borrowed. OUT: *out. */
int cdn_route_new(struct cdn *cdn, const struct capture *cap, const struct event_sink *sink,
                  struct cdn_route **out);
void cdn_route_free(struct cdn_route *r);

/* The route to register as the default, with `threads` threads for the
 * blocking work (variant generation). */
struct http_route cdn_route_http(struct cdn_route *r, int threads);

#endif
