/* dash.h - the stats dashboard's web assets, embedded in the binary.
 *
 * The files under dashboard/ are compiled into the table dash_assets[] by
 * tools/embed.c at build time, so the binary alone serves the dashboard:
 * nothing is read from disk and nothing is fetched from another origin.
 *
 *     /dashboard, /dashboard/   index.html
 *     /dashboard/<name>         the asset <name> (app.js, app.css, ...)
 *
 * Every answer carries a Content-Security-Policy that lets the page load and
 * connect to its own origin only (and show the thumbnails it fetched with
 * its API key from /v1/images/{id}/thumb as blob: URLs), so the browser
 * itself enforces SPEC.md's "no request leaves the server's origin". */
#ifndef PF_DASH_H
#define PF_DASH_H

#include "http/http.h"

#include <stddef.h>

struct dash_asset {
    const char *name; /* base name, e.g. "app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted strong entity tag */
    /* The gzipped copy, or NULL when gzip saves under a tenth. */
    const unsigned char *gz;
    size_t gz_len;
    const char *gz_etag; /* its own tag: another representation */
};

extern const struct dash_asset dash_assets[];
extern const size_t dash_nassets;

/* The headers every dashboard answer carries: name, value pairs, then NULL. */
extern const char *const dash_headers[];

/* Answer a GET or HEAD for the raw path (which starts "/dashboard"): the
 * asset with ETag, revalidation (304) and no-cache, gzipped when the client
 * accepts it (Vary: Accept-Encoding), or a JSON 404. */
void dash_serve(const struct http_req *req, struct http_resp *resp);

/* The route to register for the first path segment "dashboard". */
struct http_route dash_route_http(void);

#endif
