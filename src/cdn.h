/* cdn.h - the CDN route of the seed's diagram: resolve an image, serve it.
 *
 * cdn_serve() resolves /{owner}/{album}/{filename}[/{variant}] or
 * /i/{id}[/{variant}] against the in-memory catalog, finds or generates the
 * variant through storage, and answers with caching headers, conditional
 * requests (If-None-Match, If-Modified-Since) and single byte ranges. The
 * cdn borrows the catalog and storage; it owns neither. */
#ifndef PF_CDN_H
#define PF_CDN_H

#include "http.h"
#include "urlpath.h"

struct cdn;
struct catalog;
struct storage;

int cdn_new(struct catalog *cat, struct storage *st, struct cdn **out);
void cdn_free(struct cdn *cdn);

/* Answer a GET or HEAD for an already parsed image path. */
void cdn_serve(struct cdn *cdn, const struct http_req *req, const struct urlpath *path,
               struct http_resp *resp);

#endif
