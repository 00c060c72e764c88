/* api.c - see api.h.
 *
 * Order of checks, so that each answer reveals no more than it must: the
 * key (401), its scope (403), the owner's rate (429), the route (404), the
 * parameters (400), the image's owner (404, as for an unknown image). Every
 * call with a valid key counts against its owner's rate, errors included. */
#include "api/api.h"

#include "api/aq.h"
#include "api/csv.h"
#include "api/export.h"
#include "api/query.h"
#include "api/auth.h"
#include "cdn/cdn.h"
#include "store/db.h"
#include "base/err.h"
#include "base/metrics.h"
#include "http/hdr.h"
#include "api/ratelimit.h"
#include "base/strbuf.h"
#include "cdn/storage.h"
#include "base/timeutil.h"
#include "base/utf8.h"
#include "base/variant.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY 86400
#define API_AUTH_MAX 256 /* longer Authorization values are malformed keys */

/* One call, copied off the connection on the event loop and answered on
 * an API thread. */
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
#define SEGMENT_BUDGET ((size_t)256 << 20) /* bytes of cached segments (aq.h) */

struct api {
    const struct config *cfg;
    struct cdn *cdn; /* thumbnails; NULL: none */
    struct aq *aq;
    struct ratelimit *rl; /* NULL: no limit */
    int m_limited;        /* pixflare_api_rate_limited_total */
    struct export *ex;    /* GET /v1/analytics/export */
    pthread_mutex_t lock; /* the idle connections */
    struct db **idle;
    int nidle, cap;
};

static struct db *conn_get(void *ctx);
static void conn_put(void *ctx, struct db *db);

int api_new(const struct config *cfg, int threads, struct cdn *cdn, struct api **out, char *err,
            size_t errlen)
{
    struct api *api = calloc(1, sizeof(*api));
    int rc = api ? 0 : PF_ENOMEM;
    if (rc == 0)
        api->m_limited = metrics_counter("pixflare_api_rate_limited_total", "",
                                         "API calls refused by the per-owner rate limit (429).", 0);
    if (rc == 0) {
        api->cfg = cfg;
        api->cdn = cdn;
        /* The API's threads and the export's, which borrow one a page. */
        api->cap = (threads > 0 ? threads : 1) + EXPORT_THREADS;
        api->idle = calloc((size_t)api->cap, sizeof(*api->idle));
        pthread_mutex_init(&api->lock, NULL);
        if (api->idle == NULL)
            rc = PF_ENOMEM;
    }
    if (rc == 0)
        rc = aq_new(SEGMENT_BUDGET, &api->aq);
    if (rc == 0)
        rc = export_new(&(struct export_pool){conn_get, conn_put, api}, &api->ex);
    if (rc == 0 && cfg->api_rate_limit > 0)
        rc = ratelimit_new(cfg->api_rate_limit, &api->rl);
    /* One connection now: a database that cannot be opened stops the
     * server at start rather than failing every API call. */
    if (rc == 0 && (rc = db_open(cfg->database, &api->idle[0], err, errlen)) == 0)
        api->nidle = 1;
    if (rc != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "cannot start the API: %s", err_str(rc));
        api_free(api);
        return rc;
    }
    *out = api;
    return 0;
}

void api_free(struct api *api)
{
    if (api == NULL)
        return;
    export_free(api->ex); /* its threads give connections back */
    for (int i = 0; i < api->nidle; i++)
        db_close(api->idle[i]);
    free(api->idle);
    aq_free(api->aq);
    ratelimit_free(api->rl);
    pthread_mutex_destroy(&api->lock);
    free(api);
}

static struct db *conn_get(void *ctx)
{
    struct api *api = ctx;
    struct db *db = NULL;
    char err[256];
    pthread_mutex_lock(&api->lock);
    if (api->nidle > 0)
        db = api->idle[--api->nidle];
    pthread_mutex_unlock(&api->lock);
    int rc = db == NULL ? db_open(api->cfg->database, &db, err, sizeof(err)) : 0;
    if (rc != 0) {
        if (rc != PF_EUNAVAIL) /* an outage is logged once, by the database layer */
            fprintf(stderr, "pixflare: API: %s\n", err);
        db = NULL;
    }
    return db;
}

static void conn_put(void *ctx, struct db *db)
{
    struct api *api = ctx;
    pthread_mutex_lock(&api->lock);
    if (api->nidle < api->cap) {
        api->idle[api->nidle++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&api->lock);
    db_close(db); /* more threads than expected: keep only `cap` */
}

/* ---- Answers ---- */

/* A 400 naming the parameter. */
static void param_error(struct http_resp *resp, const struct query_error *e)
{
    json_t *err = json_pack("{s:s, s:s}", "code", "INVALID_PARAMETER", "message", e->message);
    if (err != NULL && e->param[0] != '\0')
        json_object_set_new(err, "parameter", json_string(e->param));
    json_t *j = err ? json_pack("{s:b, s:o}", "success", 0, "error", err) : NULL;
    http_resp_error(resp, 400, "INVALID_PARAMETER", e->message);
    if (j != NULL) {
        free(resp->owned_body);
        resp->owned_body = json_dumps(j, JSON_COMPACT);
        resp->len = resp->owned_body ? strlen(resp->owned_body) : 0;
        json_decref(j);
    }
}

/* Append v to array a; on any failure (v NULL included) drop a and give
 * NULL, so that a broken entry fails the answer rather than vanishing. */
static json_t *append(json_t *a, json_t *v)
{
    if (a == NULL || v == NULL) {
        json_decref(v);
        json_decref(a);
        return NULL;
    }
    if (json_array_append_new(a, v) != 0) { /* v is released either way */
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *range_json(const struct aq_period *p)
{
    char a[11], b[11];
    timeutil_format_date(p->start, a);
    timeutil_format_date(p->start + (int64_t)(p->days - 1) * DAY, b);
    return json_pack("{s:s, s:s, s:i, s:s}", "start", a, "end", b, "days", p->days, "interval",
                     p->hourly ? "hour" : "day");
}

/* Days with their uniques, or hours without (the sketches are daily). */
static json_t *series_json(const struct aq_period *p)
{
    json_t *a = json_array();
    char t[21];
    for (int i = 0; a && i < p->npoints; i++) {
        const struct aq_point *e = &p->points[i];
        if (p->hourly) {
            timeutil_format_iso8601(p->start + (int64_t)i * 3600, t);
            a = append(a,
                       json_pack("{s:s, s:I, s:I}", "hour", t, "requests", (json_int_t)e->requests,
                                 "bandwidth_bytes", (json_int_t)e->bytes));
        } else {
            timeutil_format_date(p->start + (int64_t)i * DAY, t);
            a = append(a, json_pack("{s:s, s:I, s:I, s:I}", "date", t, "requests",
                                    (json_int_t)e->requests, "bandwidth_bytes",
                                    (json_int_t)e->bytes, "uniques", (json_int_t)e->uniques));
        }
    }
    return a;
}

static json_t *list_json(const struct aq_item *items, size_t n, const char *key)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        a = append(a, json_pack("{s:s, s:I, s:I}", key, items[i].name, "requests",
                                (json_int_t)items[i].requests, "bandwidth_bytes",
                                (json_int_t)items[i].bytes));
    return a;
}

static json_t *freshness_json(const struct api *api, const struct aq_result *r)
{
    return json_pack("{s:b, s:o}", "realtime", api->cfg->realtime_enabled, "last_aggregation_date",
                     r->last_aggregation_date[0] ? json_string(r->last_aggregation_date)
                                                 : json_null());
}

static json_t *totals_json(const struct aq_period *p)
{
    return json_pack("{s:I, s:I, s:I}", "requests", (json_int_t)p->requests, "bandwidth_bytes",
                     (json_int_t)p->bytes, "uniques", (json_int_t)p->uniques);
}

static json_t *clients_json(const struct aq_result *r)
{
    json_t *a = json_array();
    for (int i = 0; a && i < r->nclients; i++)
        a = append(a, json_pack("{s:s, s:I, s:I}", "client", r->clients[i].name, "requests",
                                (json_int_t)r->clients[i].requests, "bandwidth_bytes",
                                (json_int_t)r->clients[i].bytes));
    return a;
}

/* The answer's fields after its own: exclude_bots, clients and, with
 * compare, the previous period (its range, totals and series). */
static json_t *add_common(json_t *j, const struct api_params *p, const struct aq_result *r)
{
    json_t *prev = NULL;
    if (j != NULL && p->compare)
        prev = json_pack("{s:o, s:o, s:o}", "range", range_json(&r->prev), "totals",
                         totals_json(&r->prev), "timeseries", series_json(&r->prev));
    int bad = j == NULL || (p->compare && prev == NULL);
    if (!bad)
        bad = json_object_set_new(j, "exclude_bots", json_boolean(p->exclude_bots)) != 0 ||
              json_object_set_new(j, "clients", clients_json(r)) != 0;
    if (!bad && prev != NULL) {
        bad = json_object_set_new(j, "previous", prev) != 0; /* taken either way */
        prev = NULL;
    }
    json_decref(prev);
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Albums and filenames of the top images (NULL when an image is no longer
 * in the catalog). */
struct image_names {
    char album[129 * 3], filename[256 * 3]; /* made valid UTF-8 (utf8_clean) */
    int known;
};

/* An image's names as the JSON and CSV show them: the catalog takes file
 * names as the disk had them, not always UTF-8. */
static void clean_names(const struct db_image *img, struct image_names *n)
{
    utf8_clean(img->album, n->album, sizeof(n->album));
    utf8_clean(img->filename, n->filename, sizeof(n->filename));
    n->known = 1;
}

static json_t *overview_json(const struct api *api, const char *owner, const struct api_params *p,
                             const struct aq_result *r, const struct image_names *names)
{
    json_t *top = json_array(), *statuses = json_array();
    for (size_t i = 0; top && i < r->nimages; i++)
        top = append(
            top,
            json_pack("{s:s, s:o, s:o, s:I, s:I, s:I}", "image_id", r->images[i].name, "album",
                      names[i].known ? json_string(names[i].album) : json_null(), "filename",
                      names[i].known ? json_string(names[i].filename) : json_null(), "requests",
                      (json_int_t)r->images[i].requests, "bandwidth_bytes",
                      (json_int_t)r->images[i].bytes, "uniques", (json_int_t)r->images[i].uniques));
    for (size_t i = 0; statuses && i < r->nstatuses; i++)
        statuses = append(statuses, json_pack("{s:i, s:I}", "status", r->statuses[i].status,
                                              "requests", (json_int_t)r->statuses[i].requests));
    return add_common(json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "owner", owner,
                                "range", range_json(&r->cur), "totals", totals_json(&r->cur),
                                "timeseries", series_json(&r->cur), "top_images", top, "countries",
                                list_json(r->countries, r->ncountries, "country"), "variants",
                                list_json(r->variants, r->nvariants, "variant"), "status_codes",
                                statuses, "freshness", freshness_json(api, r)),
                      p, r);
}

static json_t *image_json(const struct api *api, const char *owner, const struct db_image *img,
                          const struct image_names *n, const struct api_params *p,
                          const struct aq_result *r)
{
    return add_common(json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "image_id",
                                img->id, "owner", owner, "album", n->album, "filename", n->filename,
                                "range", range_json(&r->cur), "totals", totals_json(&r->cur),
                                "variants", list_json(r->variants, r->nvariants, "variant"),
                                "countries", list_json(r->countries, r->ncountries, "country"),
                                "timeseries", series_json(&r->cur), "freshness",
                                freshness_json(api, r)),
                      p, r);
}

/* ---- CSV (RFC 4180) ---- */

/* A series: `date` rows with uniques, or `hour` rows without; the
 * previous period's named previous_date, previous_hour. */
static void csv_series(struct strbuf *b, const struct aq_period *p, const char *prefix)
{
    char t[21];
    strbuf_printf(b, "\r\n%s%s,requests,bandwidth_bytes%s\r\n", prefix, p->hourly ? "hour" : "date",
                  p->hourly ? "" : ",uniques");
    for (int i = 0; i < p->npoints; i++) {
        const struct aq_point *e = &p->points[i];
        if (p->hourly)
            timeutil_format_iso8601(p->start + (int64_t)i * 3600, t);
        else
            timeutil_format_date(p->start + (int64_t)i * DAY, t);
        strbuf_printf(b, "%s,%lld,%lld", t, (long long)e->requests, (long long)e->bytes);
        if (!p->hourly)
            strbuf_printf(b, ",%lld", (long long)e->uniques);
        strbuf_puts(b, "\r\n");
    }
}

/* The sections after the lists: clients, then with compare the previous
 * period's summary row and series. */
static void csv_tail(struct strbuf *b, const struct api_params *p, const struct aq_result *r)
{
    char a[11], e[11];
    strbuf_puts(b, "\r\nclient,requests,bandwidth_bytes\r\n");
    for (int i = 0; i < r->nclients; i++)
        strbuf_printf(b, "%s,%lld,%lld\r\n", r->clients[i].name, (long long)r->clients[i].requests,
                      (long long)r->clients[i].bytes);
    if (!p->compare)
        return;
    timeutil_format_date(r->prev.start, a);
    timeutil_format_date(r->prev.start + (int64_t)(r->prev.days - 1) * DAY, e);
    strbuf_printf(b,
                  "\r\nprevious_start,previous_end,previous_days,requests,bandwidth_bytes,"
                  "uniques\r\n%s,%s,%d,%lld,%lld,%lld\r\n",
                  a, e, r->prev.days, (long long)r->prev.requests, (long long)r->prev.bytes,
                  (long long)r->prev.uniques);
    csv_series(b, &r->prev, "previous_");
}

static void csv_list(struct strbuf *b, const char *key, const struct aq_item *items, size_t n)
{
    strbuf_printf(b, "\r\n%s,requests,bandwidth_bytes\r\n", key);
    for (size_t i = 0; i < n; i++)
        strbuf_printf(b, "%s,%lld,%lld\r\n", items[i].name, (long long)items[i].requests,
                      (long long)items[i].bytes);
}

/* The first section: the answer's scalars, one row. */
static void csv_head(struct strbuf *b, const struct api *api, const char *owner, const char *image,
                     const struct image_names *img, const struct api_params *p,
                     const struct aq_result *r)
{
    char a[11], e[11];
    timeutil_format_date(p->start, a);
    timeutil_format_date(p->start + (int64_t)(p->days - 1) * DAY, e);
    if (image != NULL)
        strbuf_puts(b, "image_id,album,filename,");
    /* The columns of issue 20 come last, so that readers by position of
     * the earlier ones still read them right. */
    strbuf_puts(b, "owner,start,end,days,requests,bandwidth_bytes,realtime,last_aggregation_date,"
                   "uniques,interval,exclude_bots\r\n");
    if (image != NULL) {
        csv_field(b, image);
        strbuf_puts(b, ",");
        csv_field(b, img->album);
        strbuf_puts(b, ",");
        csv_field(b, img->filename);
        strbuf_puts(b, ",");
    }
    csv_field(b, owner);
    strbuf_printf(b, ",%s,%s,%d,%lld,%lld,%s,%s,%lld,%s,%s\r\n", a, e, p->days,
                  (long long)r->cur.requests, (long long)r->cur.bytes,
                  api->cfg->realtime_enabled ? "true" : "false", r->last_aggregation_date,
                  (long long)r->cur.uniques, p->hourly ? "hour" : "day",
                  p->exclude_bots ? "true" : "false");
}

/* ---- The endpoints ---- */

static void set_body(struct http_resp *resp, char *body, size_t len, const char *type)
{
    free(resp->owned_body);
    resp->owned_body = body;
    resp->len = len;
    resp->status = 200;
    resp->content_type = type;
    resp->cache_control = "no-store";
}

static void set_json(struct http_resp *resp, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s == NULL) {
        http_resp_error(resp, 500, "INTERNAL", "cannot build the answer");
        return;
    }
    set_body(resp, s, strlen(s), "application/json");
}

static void set_csv(struct http_resp *resp, struct strbuf *b, const char *what, int64_t start,
                    int days)
{
    char a[11], e[11];
    if (b->failed || b->p == NULL) {
        free(b->p);
        http_resp_error(resp, 500, "INTERNAL", "cannot build the answer");
        return;
    }
    timeutil_format_date(start, a);
    timeutil_format_date(start + (int64_t)(days - 1) * DAY, e);
    set_body(resp, b->p, b->len, "text/csv; charset=utf-8");
    http_resp_header(resp, "Content-Disposition", "attachment; filename=\"pixflare-%s-%s-%s.csv\"",
                     what, a, e);
}

static void db_failed(struct http_resp *resp, int rc)
{
    /* Unreachable: logged once by the database layer, answered 503 so that
     * clients retry. */
    if (rc == PF_EUNAVAIL) {
        http_resp_error(resp, 503, "UNAVAILABLE",
                        "the analytics database is unreachable; retry shortly");
        http_resp_header(resp, "Retry-After", "5");
        return;
    }
    fprintf(stderr, "pixflare: API: database read failed: %s\n", err_str(rc));
    http_resp_error(resp, 500, "INTERNAL", "the analytics database could not be read");
}

static void overview(struct api *api, struct db *db, const struct auth_principal *who,
                     const struct api_params *p, struct http_resp *resp)
{
    struct aq_result r;
    struct image_names *names = NULL;
    struct aq_query q = {p->start, p->days, p->limit, p->hourly, p->exclude_bots, p->compare};
    int rc = aq_overview(api->aq, db, who->owner_hex, &q, &r);
    if (rc == 0 && (names = calloc(r.nimages + 1, sizeof(*names))) == NULL)
        rc = PF_ENOMEM;
    for (size_t i = 0; rc == 0 && i < r.nimages; i++) {
        struct db_image img;
        if (db_image_by_id(db, r.images[i].name, &img) == 0 && strcmp(img.owner, who->owner) == 0)
            clean_names(&img, &names[i]);
    }
    if (rc != 0) {
        db_failed(resp, rc);
    } else if (!p->csv) {
        set_json(resp, overview_json(api, who->owner, p, &r, names));
    } else {
        struct strbuf b = {0};
        csv_head(&b, api, who->owner, NULL, NULL, p, &r);
        csv_series(&b, &r.cur, "");
        strbuf_puts(&b, "\r\nimage_id,album,filename,requests,bandwidth_bytes,uniques\r\n");
        for (size_t i = 0; i < r.nimages; i++) {
            strbuf_printf(&b, "%s,", r.images[i].name);
            csv_field(&b, names[i].album);
            strbuf_puts(&b, ",");
            csv_field(&b, names[i].filename);
            strbuf_printf(&b, ",%lld,%lld,%lld\r\n", (long long)r.images[i].requests,
                          (long long)r.images[i].bytes, (long long)r.images[i].uniques);
        }
        csv_list(&b, "country", r.countries, r.ncountries);
        csv_list(&b, "variant", r.variants, r.nvariants);
        strbuf_puts(&b, "\r\nstatus,requests\r\n");
        for (size_t i = 0; i < r.nstatuses; i++)
            strbuf_printf(&b, "%d,%lld\r\n", r.statuses[i].status,
                          (long long)r.statuses[i].requests);
        csv_tail(&b, p, &r);
        set_csv(resp, &b, "overview", p->start, p->days);
    }
    free(names);
    aq_result_free(&r);
}

static void image(struct api *api, struct db *db, const struct auth_principal *who, const char *id,
                  const struct api_params *p, struct http_resp *resp)
{
    struct db_image img;
    struct image_names names;
    struct aq_result r;
    int rc = db_image_by_id(db, id, &img);
    /* Another owner's image is not found either: its existence is theirs. */
    if (rc == PF_ENOTFOUND || (rc == 0 && strcmp(img.owner, who->owner) != 0)) {
        http_resp_error(resp, 404, "NOT_FOUND", "no such image");
        return;
    }
    if (rc == 0) {
        struct aq_query q = {p->start, p->days, 0, p->hourly, p->exclude_bots, p->compare};
        clean_names(&img, &names);
        rc = aq_image(db, who->owner_hex, id, &q, &r);
    } else
        memset(&r, 0, sizeof(r));
    if (rc != 0) {
        db_failed(resp, rc);
    } else if (!p->csv) {
        set_json(resp, image_json(api, who->owner, &img, &names, p, &r));
    } else {
        struct strbuf b = {0};
        csv_head(&b, api, who->owner, id, &names, p, &r);
        csv_series(&b, &r.cur, "");
        csv_list(&b, "variant", r.variants, r.nvariants);
        csv_list(&b, "country", r.countries, r.ncountries);
        csv_tail(&b, p, &r);
        char what[16];
        snprintf(what, sizeof(what), "image-%s", id);
        set_csv(resp, &b, what, p->start, p->days);
    }
    aq_result_free(&r);
}

/* GET /v1/analytics/export (export.h): its parameters checked as the other
 * endpoints' are, then the body streamed. */
static void export_call(struct api *api, struct db *db, const struct api_call *call,
                        const struct auth_principal *who, int64_t now, struct http_resp *resp)
{
    struct api_params p;
    struct query_error qe;
    int rc;
    if (call->query_rc != 0)
        param_error(resp, &call->qe);
    else if (query_export_params(&call->q, now, &p, &qe) != 0)
        param_error(resp, &qe);
    else if ((rc = export_start(api->ex, db, who->owner_hex, &p, resp)) != 0)
        db_failed(resp, rc);
}

/* The endpoint of a raw path. OUT: id[7] for the image endpoint. */
static int route(const struct api_call *call, enum query_endpoint *ep, char id[7])
{
    static const char ov[] = "/v1/analytics/overview", im[] = "/v1/analytics/images/";
    if (call->path_too_long)
        return PF_ENOTFOUND;
    if (strcmp(call->path, ov) == 0) {
        *ep = QUERY_OVERVIEW;
        return 0;
    }
    if (strncmp(call->path, im, sizeof(im) - 1) != 0)
        return PF_ENOTFOUND;
    const char *s = call->path + sizeof(im) - 1;
    if (strlen(s) != 6 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789") != 6)
        return PF_ENOTFOUND;
    memcpy(id, s, 7);
    *ep = QUERY_IMAGE;
    return 0;
}

#define THUMB_PREFIX "/v1/images/"
#define THUMB_SUFFIX "/thumb"

/* The image id of a thumbnail path /v1/images/{id}/thumb. OUT: id[7]. */
static int thumb_route(const struct api_call *call, char id[7])
{
    const size_t np = sizeof(THUMB_PREFIX) - 1, ns = sizeof(THUMB_SUFFIX) - 1;
    const char *s = call->path + np;
    if (call->path_too_long || strlen(call->path) != np + 6 + ns ||
        strncmp(call->path, THUMB_PREFIX, np) != 0 || strcmp(s + 6, THUMB_SUFFIX) != 0 ||
        strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789") != 6)
        return PF_ENOTFOUND;
    memcpy(id, s, 6);
    id[6] = '\0';
    return 0;
}

/* /v1/images/{id}/thumb: the `thumb` variant of one of the key owner's
 * images, as the CDN would send it but counted nowhere. Kept privately by
 * the browser for a day; If-None-Match gives 304. */
static void thumb(struct api *api, const struct api_call *call, const struct auth_principal *who,
                  const char *id, struct http_resp *resp)
{
    const struct storage_obj *obj = NULL;
    int rc = PF_ENOTFOUND;
    if (call->query_rc != 0 || call->q.n > 0) {
        struct query_error qe = {"", "the thumbnail endpoint takes no parameters"};
        if (call->query_rc != 0)
            qe = call->qe;
        else
            snprintf(qe.param, sizeof(qe.param), "%s", call->q.p[0].name);
        param_error(resp, &qe);
        return;
    }
    if (api->cdn != NULL)
        rc = cdn_get_owned(api->cdn, id, who->owner, variant_find("thumb", 5), &obj);
    if (rc == PF_ENOTFOUND) {
        http_resp_error(resp, 404, "NOT_FOUND", "image not found");
        return;
    }
    if (rc != 0) {
        http_resp_error(resp, 500, "INTERNAL", "cannot produce the thumbnail of this image");
        return;
    }
    resp->body_release = cdn_release; /* the server gives the object back */
    resp->body_ctx = (void *)obj;
    resp->etag = obj->etag;
    resp->last_modified = obj->last_modified;
    resp->cache_control = "private, max-age=86400";
    /* A browser's cache must not hand one key's answer to another key. */
    http_resp_header(resp, "Vary", "Authorization");
    resp->len = (size_t)obj->size;
    if (call->if_none_match[0] != '\0' && hdr_etag_matches(call->if_none_match, obj->etag)) {
        resp->status = 304;
        return;
    }
    resp->status = 200;
    resp->content_type = obj->content_type;
    if (obj->data != NULL)
        resp->body = obj->data;
    else
        resp->file_path = obj->path;
}

/* Answer call (fills call->resp). Blocking: never on an event loop. */
static void api_handle(struct api *api, struct api_call *call)
{
    struct http_resp *resp = &call->resp;
    struct auth_principal who;
    struct api_params p;
    struct query_error qe;
    enum query_endpoint ep = QUERY_OVERVIEW;
    const char *why = NULL;
    char id[7] = "";
    int64_t now = (int64_t)time(NULL);
    resp->extra = &call->headers;
    struct db *db = conn_get(api);
    if (db == NULL) {
        http_resp_error(resp, 503, "UNAVAILABLE", "the analytics database cannot be opened");
        return;
    }
    enum auth_result a =
        call->auth_too_long
            ? AUTH_MALFORMED
            : auth_check(db, api->cfg->secret, call->has_auth ? call->authorization : NULL, now,
                         &who, &why);
    if (call->auth_too_long)
        why = "malformed API key";
    if (a == AUTH_ERROR) {
        http_resp_error(resp, 503, "UNAVAILABLE", why);
    } else if (a != AUTH_OK) {
        http_resp_error(resp, 401, "UNAUTHORIZED", why);
        http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"pixflare\"%s",
                         a == AUTH_MISSING ? "" : ", error=\"invalid_token\"");
    } else if (!(who.scopes & AUTH_SCOPE_READ)) {
        http_resp_error(resp, 403, "FORBIDDEN", "this API key lacks the read scope");
    } else if (thumb_route(call, id) == 0) {
        /* Not rate limited: SPEC.md's limit is on the analytics calls, and a
         * page of the dashboard asks for up to ten of these at once. */
        thumb(api, call, &who, id, resp);
    } else {
        int remaining = 0, retry = 0, ok = 1, rrc = 0;
        /* One node: the limit is counted here. Several nodes on one
         * database: by the database, so that it holds for the cluster. */
        if (api->rl != NULL && db_shared(db))
            rrc =
                db_rate_take(db, who.owner_hex, api->cfg->api_rate_limit, &ok, &remaining, &retry);
        else if (api->rl != NULL)
            ok = ratelimit_take(api->rl, who.owner_hex, timeutil_mono_ms(), &remaining, &retry);
        if (rrc != 0) {
            db_failed(resp, rrc);
        } else if (!ok) {
            metrics_inc(api->m_limited);
            http_resp_error(resp, 429, "RATE_LIMITED",
                            "too many requests for this owner; see Retry-After");
            http_resp_header(resp, "Retry-After", "%d", retry);
        } else if (!call->path_too_long && strcmp(call->path, "/v1/analytics/export") == 0) {
            export_call(api, db, call, &who, now, resp);
        } else if (route(call, &ep, id) != 0) {
            http_resp_error(resp, 404, "NOT_FOUND", "no such API endpoint");
        } else if (call->query_rc != 0) {
            param_error(resp, &call->qe);
        } else if (query_params(&call->q, ep, now, &p, &qe) != 0) {
            param_error(resp, &qe);
        } else if (ep == QUERY_OVERVIEW) {
            overview(api, db, &who, &p, resp);
        } else {
            image(api, db, &who, id, &p, resp);
        }
        if (api->rl != NULL) {
            http_resp_header(resp, "X-RateLimit-Limit", "%d", api->cfg->api_rate_limit);
            http_resp_header(resp, "X-RateLimit-Remaining", "%d", remaining);
        }
    }
    conn_put(api, db);
}

/* ---- The route ---- */

/* A call between its two handler calls: the request's state. */
struct api_box {
    struct api *api;
    struct api_call call;
};

/* On an API thread. */
static void run_call(void *arg)
{
    struct api_box *box = arg;
    api_handle(box->api, &box->call);
}

static int add_arg(void *ctx, const char *key, const char *value)
{
    struct api_call *call = ctx;
    if (call->query_rc != 0 || (key[0] == '\0' && (value == NULL || value[0] == '\0')))
        return 0; /* the first error is the one reported; "&&" is nothing */
    call->query_rc =
        query_add(&call->q, key, strlen(key), value, value ? strlen(value) : 0, &call->qe);
    return 0;
}

static int handle(void *ctx, struct http_req *req, struct http_resp *resp, struct http_work *work)
{
    struct api_box *box = (struct api_box *)req->state;
    if (req->refused) { /* the box, in req->state, is released by the server */
        http_resp_error(resp, 503, "UNAVAILABLE",
                        req->refused == PF_ENOMEM ? "out of memory" : "the server is stopping");
        return HTTP_DONE;
    }
    if (box != NULL) { /* resumed: the API thread has answered */
        *resp = box->call.resp;
        box->call.resp.owned_body = NULL; /* the server's now */
        box->call.resp.body_release = NULL;
        return HTTP_DONE;
    }
    /* Aligned: the box's address is the request's state, whose low bits the
     * server keeps for itself (HTTP_STATE_RESERVED). */
    size_t size = (sizeof(*box) + 15) / 16 * 16;
    if ((box = aligned_alloc(16, size)) == NULL) {
        http_resp_error(resp, 503, "UNAVAILABLE", "out of memory");
        return HTTP_DONE;
    }
    memset(box, 0, sizeof(*box));
    struct api_call *call = &box->call;
    box->api = ctx;
    call->is_head = req->is_head;
    call->path_too_long = req->path_len >= sizeof(call->path);
    if (!call->path_too_long)
        memcpy(call->path, req->path, req->path_len + 1);
    const char *auth = NULL;
    size_t auth_len = 0;
    if (http_req_header_n(req, "Authorization", &auth, &auth_len) != 0)
        auth = NULL;
    call->has_auth = auth != NULL;
    /* A NUL inside the value would cut the key short: refused as too long. */
    call->auth_too_long =
        auth != NULL && (auth_len >= sizeof(call->authorization) || strlen(auth) != auth_len);
    if (auth != NULL && !call->auth_too_long)
        memcpy(call->authorization, auth, auth_len + 1);
    const char *inm = http_req_header(req, "If-None-Match");
    size_t inm_len = inm ? strlen(inm) : 0;
    if (inm != NULL && inm_len < sizeof(call->if_none_match))
        memcpy(call->if_none_match, inm, inm_len + 1);
    http_req_args(req, add_arg, call);
    req->state = (uintptr_t)box;
    work->fn = run_call;
    work->arg = box;
    return HTTP_DEFER;
}

static void release(void *ctx, uintptr_t state)
{
    struct api_box *box = (struct api_box *)state;
    (void)ctx;
    free(box->call.resp.owned_body);
    if (box->call.resp.body_release != NULL) /* the connection went first */
        box->call.resp.body_release(box->call.resp.body_ctx);
    free(box);
}

struct http_route api_route_http(struct api *api)
{
    return (struct http_route){.name = "api",
                               .handle = handle,
                               .answered = NULL,
                               .release = release,
                               .threads = API_THREADS,
                               .ctx = api};
}
