/* http_router.h - which route a request goes to, by its path's first
 * segment.
 *
 * The composition root (`pixflare serve`) registers each handler's route
 * under the first path segment it owns ("v1", "dashboard", "healthz") and
 * one default route for every other path (the CDN); the server asks the
 * router for each request and knows no route by name. A router is filled
 * before the server starts and only read after, so lookups take no lock.
 * Segments are compared as raw bytes, before any %-decoding. */
#ifndef PF_HTTP_ROUTER_H
#define PF_HTTP_ROUTER_H

#include "http/http.h"

#include <stddef.h>

/* Routes a router holds at most, the default included (the server keeps a
 * request's route index in 3 bits). */
#define HTTP_ROUTER_MAX 7

struct http_router;

int http_router_new(struct http_router **out);
void http_router_free(struct http_router *r);

/* Route paths whose first segment is `segment` (a static string) to a copy
 * of *route; `segment` NULL sets the default route. PF_EEXISTS for a
 * segment taken, PF_ERANGE beyond HTTP_ROUTER_MAX routes. */
int http_router_add(struct http_router *r, const char *segment, const struct http_route *route);

/* The route for the raw path, or NULL when no route matches and there is
 * no default. OUT: *index (if not NULL), 1..HTTP_ROUTER_MAX, for
 * http_router_get(). */
const struct http_route *http_router_find(const struct http_router *r, const char *path, size_t len,
                                          int *index);

/* The route http_router_find() gave `index` for. */
const struct http_route *http_router_get(const struct http_router *r, int index);

/* Routes registered, and each by index (1..n): the server makes each
 * route's threads. */
int http_router_count(const struct http_router *r);

#endif
