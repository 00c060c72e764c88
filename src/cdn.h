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

/* Work to do off the event loop before a request can be answered: make the
 * variant of img, or (img NULL) read newly imported images. */
struct cdn_job {
    struct cat_image *img;
    int variant;
};

#define CDN_PENDING 1

/* Answer a GET or HEAD for an already parsed image path. Returns 0 with resp
 * filled, or, when !may_block and the variant must first be generated,
 * CDN_PENDING with *job filled: run cdn_job_run(job) on a worker thread,
 * then call cdn_serve() again (with may_block set, so that a failed
 * generation is answered rather than deferred again). */
int cdn_serve(struct cdn *cdn, const struct http_req *req, const struct urlpath *path,
              int may_block, struct http_resp *resp, struct cdn_job *job);

/* Do the job: generate (or load) the variant and publish it for later
 * requests, remembering a failure for a while; or refresh the catalog. */
void cdn_job_run(struct cdn *cdn, const struct cdn_job *job);

#endif
