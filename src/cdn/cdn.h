/* cdn.h - the CDN route of the seed's diagram: resolve an image, serve it.
 *
 * cdn_serve() resolves /{owner}/{album}/{filename}[/{variant}] or
 * /i/{id}[/{variant}] against the in-memory catalog, finds or generates the
 * variant through storage, and answers with caching headers, conditional
 * requests (If-None-Match, If-Modified-Since) and single byte ranges. It
 * also notes in the answer what it is charged to (CDN_NOTE_*, read by
 * cdn_route.c, which makes the event). The cdn borrows the catalog and
 * storage; it owns neither. */
#ifndef PF_CDN_H
#define PF_CDN_H

#include "cdn/urlpath.h"
#include "http/http.h"

struct cdn;
struct catalog;
struct storage;
struct storage_obj;

int cdn_new(struct catalog *cat, struct storage *st, struct cdn **out);
void cdn_free(struct cdn *cdn);

/* Work to do off the event loop before a request can be answered: make the
 * variant of img, or (img NULL) read newly imported images. */
struct cdn_job {
    struct catalog_image *img;
    int variant;
};

#define CDN_PENDING 1

/* What an answer is charged to, in its http_resp.note: kind CDN_NOTE_CHARGED
 * with ptr[0] the owner's keyed hash (16 bytes, or NULL: no known owner),
 * ptr[1] the image id (or NULL) and num the variant asked for (-1: none);
 * kind CDN_NOTE_SERVER for a path of the server's own (reserved) routes,
 * which is charged to nothing. Both pointers live as long as the catalog. */
#define CDN_NOTE_CHARGED 1
#define CDN_NOTE_SERVER 2

/* What a request may do inline, by the work already done for it. */
#define CDN_REFRESHED 1 /* the catalog was refreshed for it: just look up */
#define CDN_MAY_BLOCK 2 /* its job ran (or the server is stopping): block if need be */

/* Answer a GET or HEAD for an already parsed image path. Returns 0 with resp
 * filled, or CDN_PENDING with *job filled when blocking work must come first:
 * run cdn_job_run(job) on a worker thread, then call cdn_serve() again with
 * CDN_REFRESHED added to `flags` for a refresh job (job->img NULL), or
 * CDN_MAY_BLOCK for a variant job (so that a failure is answered rather than
 * deferred again). A request may thus be deferred twice: once to find a newly
 * imported image, once to make its variant. */
int cdn_serve(struct cdn *cdn, const struct http_req *req, const struct urlpath *path, int flags,
              struct http_resp *resp, struct cdn_job *job);

/* Note in *note what the image path is charged to: the image's owner and id
 * when it exists, else the owner when it is a known one. */
void cdn_attribute(struct cdn *cdn, const struct urlpath *path, struct http_note *note);

/* The object of `variant` of image `id` if `owner` owns it, found or made
 * now (blocking: call it off the event loops). OUT: *out, a reference to
 * give back with cdn_release() (an http_resp's body_release). PF_ENOTFOUND for an unknown image or
 * another owner's (the same answer, so existence is not revealed); PF_EIMAGE when the variant
 * cannot be made. Makes no analytics event. */
int cdn_get_owned(struct cdn *cdn, const char *id, const char *owner, int variant,
                  const struct storage_obj **out);

/* Give back an object from cdn_get_owned() (void *: an http_resp hook). */
void cdn_release(void *obj);

/* Do the job: generate (or load) the variant and publish it for later
 * requests, remembering a failure for a while; or refresh the catalog. */
void cdn_job_run(struct cdn *cdn, const struct cdn_job *job);

#endif
