/* cdn.c - see cdn.h.
 *
 * The hot path (a published object, no conditional headers) is: one hash
 * lookup without locks, one atomic load of the variant's object, a few
 * header lookups, and a response that points at the object's memory. No
 * file is opened and no database is touched. */
#include "cdn.h"

#include "catalog.h"
#include "err.h"
#include "hdr.h"
#include "storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char cache_control[] = "public, max-age=31536000, immutable";

struct cdn {
    struct catalog *cat;
    struct storage *st;
};

int cdn_new(struct catalog *cat, struct storage *st, struct cdn **out)
{
    struct cdn *cdn = calloc(1, sizeof(*cdn));
    if (cdn == NULL)
        return PF_ENOMEM;
    cdn->cat = cat;
    cdn->st = st;
    *out = cdn;
    return 0;
}

void cdn_free(struct cdn *cdn)
{
    free(cdn);
}

static struct cat_image *lookup(struct cdn *cdn, const struct urlpath *path)
{
    if (path->kind == URLPATH_BY_ID)
        return catalog_find_id(cdn->cat, path->id);
    return catalog_find_name(cdn->cat, path->owner, path->album, path->filename);
}

/* Whether the client's cached copy is current (answer 304). */
static int not_modified(const struct http_req *req, const struct storage_obj *obj)
{
    const char *inm = http_req_header(req, "If-None-Match");
    if (inm != NULL)
        return hdr_etag_matches(inm, obj->etag);
    const char *ims = http_req_header(req, "If-Modified-Since");
    time_t t;
    return ims != NULL && hdr_parse_http_date(ims, &t) == 0 && obj->mtime <= t;
}

/* If-Range: a Range applies only if the validator still matches. */
static int range_applies(const struct http_req *req, const struct storage_obj *obj)
{
    const char *ir = http_req_header(req, "If-Range");
    if (ir == NULL)
        return 1;
    if (ir[0] == '"')
        return strcmp(ir, obj->etag) == 0;
    time_t t;
    return hdr_parse_http_date(ir, &t) == 0 && obj->mtime == t;
}

static void ref_of(const struct cat_image *img, struct storage_ref *ref)
{
    ref->id = img->id;
    ref->sha256 = img->sha256;
    ref->content_type = img->content_type;
    ref->created_at = img->created_at;
}

void cdn_job_run(struct cdn *cdn, const struct cdn_job *job)
{
    const struct storage_obj *obj;
    struct storage_ref ref;
    ref_of(job->img, &ref);
    storage_get(cdn->st, &ref, job->variant, &job->img->objs[job->variant], &obj);
}

int cdn_serve(struct cdn *cdn, const struct http_req *req, const struct urlpath *path,
              int may_block, struct http_resp *resp, struct cdn_job *job)
{
    struct cat_image *img = lookup(cdn, path);
    if (img == NULL && catalog_refresh(cdn->cat))
        img = lookup(cdn, path);
    if (img == NULL) {
        http_resp_error(resp, 404, "NOT_FOUND", "image not found");
        return 0;
    }
    /* A variant not made yet is generated off the event loop, so one slow
     * image never stalls the other connections of this thread. */
    _Atomic(struct storage_obj *) *slot = &img->objs[path->variant];
    if (!may_block && path->variant != VARIANT_ORIGINAL_INDEX &&
        atomic_load_explicit(slot, memory_order_acquire) == NULL) {
        job->img = img;
        job->variant = path->variant;
        return CDN_PENDING;
    }
    const struct storage_obj *obj = NULL;
    struct storage_ref ref;
    ref_of(img, &ref);
    int rc = storage_get(cdn->st, &ref, path->variant, slot, &obj);
    if (rc == PF_ENOTFOUND) {
        http_resp_error(resp, 404, "NOT_FOUND", "image not found");
        return 0;
    }
    if (rc != 0) {
        http_resp_error(resp, 500, "INTERNAL", "cannot produce this variant of the image");
        return 0;
    }

    resp->etag = obj->etag;
    resp->last_modified = obj->last_modified;
    resp->cache_control = cache_control;
    if (not_modified(req, obj)) {
        resp->status = 304;
        return 0;
    }
    resp->content_type = obj->content_type;
    resp->accept_ranges = 1;
    uint64_t first = 0, count = obj->size;
    const char *range = req->is_head ? NULL : http_req_header(req, "Range");
    if (range != NULL && range_applies(req, obj)) {
        switch (hdr_parse_range(range, obj->size, &first, &count)) {
        case HDR_RANGE_OK:
            resp->status = 206;
            snprintf(resp->content_range, sizeof(resp->content_range), "bytes %llu-%llu/%llu",
                     (unsigned long long)first, (unsigned long long)(first + count - 1),
                     (unsigned long long)obj->size);
            break;
        case HDR_RANGE_UNSATISFIABLE:
            http_resp_error(resp, 416, "RANGE_NOT_SATISFIABLE",
                            "the Range header does not fit the image");
            snprintf(resp->content_range, sizeof(resp->content_range), "bytes */%llu",
                     (unsigned long long)obj->size);
            return 0;
        case HDR_RANGE_NONE:
            first = 0;
            count = obj->size;
            break;
        }
    }
    if (resp->status == 0)
        resp->status = 200;
    resp->len = (size_t)count;
    if (obj->data != NULL) {
        resp->body = obj->data + first;
    } else {
        resp->file_path = obj->path;
        resp->file_off = first;
    }
    return 0;
}
