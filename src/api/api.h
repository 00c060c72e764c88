/* api.h - the analytics REST API of SPEC.md: /v1/analytics/overview and
 * /v1/analytics/images/{id}, behind API keys, per-owner rate limits and
 * strict parameters, answering JSON or CSV; and /v1/images/{id}/thumb, an
 * image's thumbnail for the dashboard (key and owner checked, no rate limit,
 * no analytics event: looking at the stats does not change them).
 *
 * http.c copies what a /v1/ request carries (path, Authorization header,
 * query pairs) into a `struct api_call` on its event loop, and api_handle()
 * answers it on one of the API's own threads (queries may take a few
 * milliseconds; the event loops serve images meanwhile). Each API thread
 * borrows one of the API's database connections. */
#ifndef PF_API_H
#define PF_API_H

#include "config/config.h"
#include "http/http.h"
#include "api/query.h"

#include <stddef.h>

struct api;

#define API_THREADS 2    /* threads (and database connections) answering calls */
#define API_AUTH_MAX 256 /* longer Authorization values are malformed keys */

struct api_call {
    char path[256]; /* raw; longer paths are not API paths (404) */
    int path_too_long;
    char authorization[API_AUTH_MAX];
    int has_auth, auth_too_long;
    char if_none_match[128]; /* "" when absent or too long to match */
    struct query q;
    int query_rc; /* the first query_add() error, with query_error */
    struct query_error qe;
    int is_head;
    struct http_resp resp;       /* api_handle()'s answer */
    struct http_headers headers; /* its extra headers (resp.extra) */
};

/* threads: connections kept (one per API thread). cdn: where thumbnails
 * come from (/v1/images/{id}/thumb), or NULL (404). */
int api_new(const struct config *cfg, int threads, struct cdn *cdn, struct api **out, char *err,
            size_t errlen);
void api_free(struct api *api);

/* Answer call (fills call->resp). Blocking: never on an event loop. */
void api_handle(struct api *api, struct api_call *call);

#endif
