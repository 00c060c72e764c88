/* api.h - the analytics REST API of SPEC.md: /v1/analytics/overview and
 * /v1/analytics/images/{id}, behind API keys, per-owner rate limits and
 * strict parameters, answering JSON or CSV; and /v1/images/{id}/thumb, an
 * image's thumbnail for the dashboard (key and owner checked, no rate limit,
 * no analytics event: looking at the stats does not change them); and
 * /v1/analytics/export, every daily row of a range streamed (export.h).
 *
 * The API is the router's route for /v1. On the event loop its handler only
 * copies what a call carries (path, Authorization header, query pairs); the
 * call is answered on one of the route's own threads (queries may take a
 * few milliseconds; the event loops serve images meanwhile), each borrowing
 * one of the API's database connections. */
#ifndef PF_API_H
#define PF_API_H

#include "cdn/cdn.h"
#include "config/config.h"
#include "http/http.h"

#include <stddef.h>

struct api;

#define API_THREADS 2 /* threads (and database connections) answering calls */

/* threads: connections kept (one per API thread). cdn: where thumbnails
 * come from (/v1/images/{id}/thumb), or NULL (404). */
int api_new(const struct config *cfg, int threads, struct cdn *cdn, struct api **out, char *err,
            size_t errlen);
void api_free(struct api *api);

/* The route to register for the first path segment "v1". */
struct http_route api_route_http(struct api *api);

#endif
