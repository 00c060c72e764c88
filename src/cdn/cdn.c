/* cdn.c - see cdn.h.
 *
 * The hot path (a published object, no conditional headers) is: one hash
 * lookup without locks, a reference taken on the variant's object
 * (storage_take(): atomic operations only), a few header lookups, and a
 * response that points at the object's memory and gives the reference back
 * when it is freed. No file is opened and no database is touched. */
#include "cdn/cdn.h"

#include "cdn/catalog.h"
#include "base/err.h"
#include "http/hdr.h"
#include "cdn/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static struct catalog_image *lookup(struct cdn *cdn, const struct urlpath *path)
{
    if (path->kind == URLPATH_BY_ID)
        return catalog_find_id(cdn->cat, path->id);
    return catalog_find_name(cdn->cat, path->owner, path->album, path->filename);
}

/* RFC 9110 section 13.2.2: evaluate the preconditions in order. Returns the
 * status they call for (412 or 304), or 0 to go on. */
static int preconditions(const struct http_req *req, const struct storage_obj *obj)
{
    time_t t;
    const char *im = http_req_header(req, "If-Match");
    if (im != NULL) {
        if (!hdr_etag_matches_strong(im, obj->etag))
            return 412;
    } else {
        const char *ius = http_req_header(req, "If-Unmodified-Since");
        if (ius != NULL && hdr_parse_http_date(ius, &t) == 0 && obj->mtime > t)
            return 412;
    }
    const char *inm = http_req_header(req, "If-None-Match");
    if (inm != NULL)
        return hdr_etag_matches(inm, obj->etag) ? 304 : 0;
    const char *ims = http_req_header(req, "If-Modified-Since");
    if (ims != NULL && hdr_parse_http_date(ims, &t) == 0 && obj->mtime <= t)
        return 304;
    return 0;
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

static void ref_of(const struct catalog_image *img, struct storage_ref *ref)
{
    ref->id = img->id;
    ref->sha256 = img->sha256;
    ref->content_type = img->content_type;
    ref->created_at = img->created_at;
}

/* A variant that failed to generate is not retried for this long: each
 * attempt decodes the whole original, and requests for it keep coming. */
#define FAIL_RETRY_SECONDS 60

static int recently_failed(const struct catalog_image *img, int variant)
{
    return atomic_load_explicit(&img->fail_until[variant], memory_order_relaxed) >
           (int64_t)time(NULL);
}

/* Find or make the object; remember a failure. */
static int get_obj(struct cdn *cdn, struct catalog_image *img, int variant,
                   const struct storage_obj **obj)
{
    struct storage_ref ref;
    ref_of(img, &ref);
    int rc = storage_get(cdn->st, &ref, variant, &img->objs[variant], obj);
    if (rc != 0 && rc != PF_ENOTFOUND)
        atomic_store_explicit(&img->fail_until[variant], (int64_t)time(NULL) + FAIL_RETRY_SECONDS,
                              memory_order_relaxed);
    return rc;
}

static void attribute(struct cdn *cdn, const struct urlpath *path, const struct catalog_image *img,
                      struct http_note *note)
{
    note->kind = CDN_NOTE_CHARGED;
    note->num = path->variant;
    if (img != NULL) {
        note->ptr[0] = img->owner_hash;
        note->ptr[1] = img->id;
    } else {
        note->ptr[0] =
            path->kind == URLPATH_BY_NAME ? catalog_owner_hash(cdn->cat, path->owner) : NULL;
        note->ptr[1] = NULL;
    }
}

void cdn_attribute(struct cdn *cdn, const struct urlpath *path, struct http_note *note)
{
    attribute(cdn, path, lookup(cdn, path), note);
}

void cdn_job_run(struct cdn *cdn, const struct cdn_job *job)
{
    const struct storage_obj *obj;
    if (job->img == NULL)
        catalog_refresh(cdn->cat);
    else if (get_obj(cdn, job->img, job->variant, &obj) == 0)
        storage_release(obj); /* published: the request asks again */
}

void cdn_release(void *obj)
{
    storage_release(obj);
}

int cdn_get_owned(struct cdn *cdn, const char *id, const char *owner, int variant,
                  const struct storage_obj **out)
{
    struct catalog_image *img = catalog_find_id(cdn->cat, id);
    if (img == NULL && catalog_refresh(cdn->cat) > 0)
        img = catalog_find_id(cdn->cat, id);
    if (img == NULL || strcmp(img->owner, owner) != 0)
        return PF_ENOTFOUND;
    const struct storage_obj *obj = storage_take(cdn->st, &img->objs[variant], 1);
    if (obj != NULL) {
        *out = obj;
        return 0;
    }
    if (recently_failed(img, variant))
        return PF_EIMAGE;
    return get_obj(cdn, img, variant, out);
}

int cdn_serve(struct cdn *cdn, const struct http_req *req, const struct urlpath *path, int flags,
              struct http_resp *resp, struct cdn_job *job)
{
    /* Anything that may block (reading the database for images imported
     * since the last look, reading or generating a file the first time) is
     * done off the event loop: the request comes back with a flag set. */
    struct catalog_image *img = lookup(cdn, path);
    if (img == NULL && !(flags & (CDN_REFRESHED | CDN_MAY_BLOCK)) &&
        catalog_refresh_due(cdn->cat)) {
        job->img = NULL;
        return CDN_PENDING;
    }
    if (img == NULL && (flags & CDN_MAY_BLOCK))
        catalog_refresh(cdn->cat); /* stopping: no pool to do it */
    if (img == NULL && (flags & (CDN_REFRESHED | CDN_MAY_BLOCK)))
        img = lookup(cdn, path);
    attribute(cdn, path, img, &resp->note);
    if (img == NULL) {
        http_resp_error(resp, 404, "NOT_FOUND", "image not found");
        return 0;
    }
    int v = path->variant;
    /* A reference, given back by the server once the response is done
     * (resp->body_release), whatever the answer made of the object. */
    /* Back from its job (CDN_MAY_BLOCK), a request's miss is counted. */
    const struct storage_obj *obj = storage_take(cdn->st, &img->objs[v], !(flags & CDN_MAY_BLOCK));
    if (obj == NULL) {
        if (recently_failed(img, v)) {
            http_resp_error(resp, 500, "INTERNAL", "cannot produce this variant of the image");
            return 0;
        }
        if (!(flags & CDN_MAY_BLOCK)) {
            job->img = img;
            job->variant = v;
            return CDN_PENDING;
        }
        int rc = get_obj(cdn, img, v, &obj);
        if (rc == PF_ENOTFOUND) {
            http_resp_error(resp, 404, "NOT_FOUND", "image not found");
            return 0;
        }
        if (rc != 0) {
            http_resp_error(resp, 500, "INTERNAL", "cannot produce this variant of the image");
            return 0;
        }
    }
    resp->body_release = cdn_release;
    resp->body_ctx = (void *)obj;

    resp->etag = obj->etag;
    resp->last_modified = obj->last_modified;
    resp->cache_control = cache_control;
    int pre = preconditions(req, obj);
    if (pre == 412) {
        http_resp_error(resp, 412, "PRECONDITION_FAILED",
                        "the image does not match If-Match "
                        "or If-Unmodified-Since");
        return 0;
    }
    if (pre == 304) {
        /* No body, but the length a 200 would have (RFC 9110 8.6). */
        resp->status = 304;
        resp->len = (size_t)obj->size;
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
