/* cdn_route.c - see cdn_route.h. */
#include "cdn/cdn_route.h"

#include "base/err.h"
#include "cdn/urlpath.h"

#include <stdlib.h>
#include <string.h>

/* The request's state (http_req.state): the kinds of work already done for
 * it off the event loop. */
#define STATE_REFRESHED ((uintptr_t)1 << HTTP_STATE_RESERVED) /* a catalog refresh */
#define STATE_GENERATED ((uintptr_t)2 << HTTP_STATE_RESERVED) /* a variant job */

struct cdn_route {
    struct cdn *cdn;
    const struct capture *cap;
    const struct event_sink *sink; /* NULL: nothing recorded */
};

int cdn_route_new(struct cdn *cdn, const struct capture *cap, const struct event_sink *sink,
                  struct cdn_route **out)
{
    struct cdn_route *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PF_ENOMEM;
    r->cdn = cdn;
    r->cap = cap;
    r->sink = sink;
    *out = r;
    return 0;
}

void cdn_route_free(struct cdn_route *r)
{
    free(r);
}

struct job {
    struct cdn *cdn;
    struct cdn_job job;
};

/* On one of the route's threads. */
static void run_job(void *arg)
{
    struct job *j = arg;
    cdn_job_run(j->cdn, &j->job);
    free(j);
}

/* Note what a path that did not parse is charged to: nobody, and no event
 * at all for a path under a server route. */
static void note_unparsed(const struct http_req *req, struct http_note *note)
{
    int server = urlpath_server_segment(req->path, req->path_len);
    *note = (struct http_note){server ? CDN_NOTE_SERVER : CDN_NOTE_CHARGED, -1, {NULL, NULL}};
}

static int handle(void *ctx, struct http_req *req, struct http_resp *resp, struct http_work *work)
{
    struct cdn_route *r = ctx;
    struct urlpath path;
    struct cdn_job job;
    if (req->refused)
        free(work->arg); /* its job never ran: done inline below */
    int flags =
        ((req->state & STATE_REFRESHED) ? CDN_REFRESHED : 0) |
        ((req->state & STATE_GENERATED) || req->stopping || req->refused ? CDN_MAY_BLOCK : 0);
    if (urlpath_parse(req->path, req->path_len, &path) != 0) {
        http_resp_error(resp, path.status, path.code, path.message);
        note_unparsed(req, &resp->note);
        return HTTP_DONE;
    }
    if (path.kind == URLPATH_SERVER) {
        http_resp_error(resp, 404, "NOT_FOUND", "not found");
        resp->note.kind = CDN_NOTE_SERVER;
        return HTTP_DONE;
    }
    if (cdn_serve(r->cdn, req, &path, flags, resp, &job) != CDN_PENDING)
        return HTTP_DONE;
    struct job *j = malloc(sizeof(*j));
    if (j == NULL) { /* out of memory: do the work here */
        memset(resp, 0, sizeof(*resp));
        cdn_serve(r->cdn, req, &path, CDN_MAY_BLOCK, resp, &job);
        return HTTP_DONE;
    }
    j->cdn = r->cdn;
    j->job = job;
    req->state |= job.img == NULL ? STATE_REFRESHED : STATE_GENERATED;
    work->fn = run_job;
    work->arg = j;
    return HTTP_DEFER;
}

/* One event per CDN response, made before the response is queued. */
static void answered(void *ctx, const struct http_req *req, const struct http_resp *resp)
{
    struct cdn_route *r = ctx;
    struct http_note note = resp->note;
    struct urlpath path;
    struct event ev;
    if (note.kind == 0) {
        /* Refused by the server before the route ran (405, 414, 431): charged
         * to the image or owner its path names when it can be parsed (not a
         * target too long to be looked at). */
        note_unparsed(req, &note);
        if (note.kind == CDN_NOTE_CHARGED && resp->status != 414 &&
            urlpath_parse(req->path, req->path_len, &path) == 0) {
            if (path.kind == URLPATH_SERVER)
                note.kind = CDN_NOTE_SERVER;
            else
                cdn_attribute(r->cdn, &path, &note);
        }
    }
    if (note.kind != CDN_NOTE_CHARGED)
        return;
    memset(&ev, 0, sizeof(ev));
    if (note.ptr[0] != NULL)
        memcpy(ev.owner, note.ptr[0], 16);
    if (note.ptr[1] != NULL) /* ids are 6 characters; ev is zeroed */
        memcpy(ev.image_id, note.ptr[1], strnlen(note.ptr[1], sizeof(ev.image_id) - 1));
    ev.variant = note.num;
    ev.status = resp->status;
    ev.bytes = req->is_head || resp->status == 304 ? 0 : (uint64_t)resp->len;
    const char *header = capture_country_header(r->cap);
    capture_stamp(r->cap, header ? http_req_header(req, header) : NULL,
                  http_req_header(req, "User-Agent"), http_req_peer(req), &ev);
    event_emit(r->sink, &ev);
}

struct http_route cdn_route_http(struct cdn_route *r, int threads)
{
    return (struct http_route){.name = "cdn",
                               .handle = handle,
                               .answered = r->sink != NULL ? answered : NULL,
                               .release = NULL,
                               .threads = threads,
                               .ctx = r};
}
