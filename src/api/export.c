/* export.c - see export.h.
 *
 * Wire formats. CSV (RFC 4180, CRLF line ends; text fields through
 * csv_field(), as every CSV answer of the API):
 *
 *   date,image_id,variant,country,requests,bandwidth_bytes
 *   2026-12-03,35dhnh,w512,US,12,98304
 *
 * NDJSON: one JSON object per line (LF), the same field names:
 *
 *   {"date":"2026-12-03","image_id":"35dhnh","variant":"w512","country":"US","requests":12,"bandwidth_bytes":98304}
 *
 * Text that is not valid UTF-8 (a row written by hand) is shown with
 * U+FFFD in both. An empty range is the CSV header alone, or nothing.
 *
 * One export's state, `struct xstream`, is shared by three parties under
 * its mutex: the server's event loop (xs_read: copies out, asks for a
 * refill when the buffer runs low, never blocks), one refill at a time on
 * the export's threads (fill: reads pages until the buffer is above its
 * low-water mark again, then ends; it never waits for the client), and the
 * server's release (the response is freed: sent, the client gone, or the
 * server stopping). The memory goes with the last of the release and the
 * refill. A database error after the first page cuts the connection (the
 * chunked body then lacks its end, so the client knows it is incomplete)
 * and is logged without the owner. */
#include "api/export.h"

#include "api/csv.h"
#include "base/err.h"
#include "base/strbuf.h"
#include "base/timeutil.h"
#include "base/utf8.h"
#include "base/workq.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400
/* Rows per database read: about 70 bytes each in CSV (120 in NDJSON), so a
 * page is some 140-240 KB of text and a year of a busy owner some hundreds
 * of reads, each a short statement. */
#define PAGE_ROWS 2000
/* A refill starts when less than this is left to send: so the buffer holds
 * at most this plus one page, and the client rarely waits for a read. */
#define LOW_WATER ((size_t)64 * 1024)

struct export
{
    struct export_pool pool;
    struct workq *q;
};

/* A text field of a key kept between pages (a row's strings live only in
 * its callback). */
struct keep {
    char *s;
    size_t cap;
};

struct xstream {
    struct export *ex;
    pthread_mutex_t mu;
    char owner[33], from[11], to[11];
    int csv;
    /* Under mu: the text not yet sent is out.p[off, out.len). */
    struct strbuf out;
    size_t off;
    int fetching;           /* a refill is queued or running */
    int done;               /* the last page is in `out` */
    int failed;             /* a refill failed: the body is cut once `out` is sent */
    int released;           /* the server is done with the body */
    struct http_stream *hs; /* held once xs_read said WAIT */
    /* The refill's own (one at a time, or export_start before the body
     * goes out): the page being made and the last key read. */
    struct strbuf page;
    struct keep key[4]; /* date, image_id, variant, country */
    int have_key;
};

int export_new(const struct export_pool *pool, struct export **out)
{
    struct export *ex = calloc(1, sizeof(*ex));
    int rc = ex != NULL ? 0 : PF_ENOMEM;
    if (rc == 0) {
        ex->pool = *pool;
        rc = workq_new(EXPORT_THREADS, &ex->q);
    }
    if (rc != 0) {
        free(ex);
        return rc;
    }
    *out = ex;
    return 0;
}

void export_free(struct export *ex)
{
    if (ex == NULL)
        return;
    workq_free(ex->q);
    free(ex);
}

static void xs_free(struct xstream *st)
{
    if (st->hs != NULL)
        http_stream_drop(st->hs);
    strbuf_free(&st->out);
    strbuf_free(&st->page);
    for (int i = 0; i < 4; i++)
        free(st->key[i].s);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static int keep(struct keep *k, const char *s)
{
    size_t n = strlen(s) + 1;
    if (n > k->cap) {
        char *p = realloc(k->s, n);
        if (p == NULL)
            return PF_ENOMEM;
        k->s = p;
        k->cap = n;
    }
    memcpy(k->s, s, n);
    return 0;
}

/* ---- Rows as text ---- */

static int put_json(const char *buffer, size_t size, void *data)
{
    strbuf_put(data, buffer, size);
    return 0;
}

/* s as valid UTF-8: itself, or a cleaned copy in *tmp (freed by the
 * caller). NULL when out of memory. */
static const char *valid(const char *s, char **tmp)
{
    if (utf8_valid(s, strlen(s)))
        return s;
    size_t cap = strlen(s) * 3 + 1; /* each bad byte may become 3 (U+FFFD) */
    *tmp = malloc(cap);
    if (*tmp != NULL)
        utf8_clean(s, *tmp, cap);
    return *tmp;
}

/* One row of the read: its text appended to the page, its key kept. */
static int put_row(void *ctx, const struct db_stat_row *r)
{
    struct xstream *st = ctx;
    const char *raw[4] = {r->date, r->image_id, r->variant, r->country};
    const char *f[4];
    char *tmp[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; rc == 0 && i < 4; i++)
        if ((rc = keep(&st->key[i], raw[i])) == 0 && (f[i] = valid(raw[i], &tmp[i])) == NULL)
            rc = PF_ENOMEM;
    st->have_key = 1;
    if (rc == 0 && st->csv) {
        for (int i = 0; i < 4; i++) {
            csv_field(&st->page, f[i]);
            strbuf_puts(&st->page, ",");
        }
        strbuf_printf(&st->page, "%lld,%lld\r\n", (long long)r->requests, (long long)r->bytes);
    } else if (rc == 0) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "date", f[0], "image_id", f[1],
                              "variant", f[2], "country", f[3], "requests", (json_int_t)r->requests,
                              "bandwidth_bytes", (json_int_t)r->bytes);
        if (j == NULL || json_dump_callback(j, put_json, &st->page, JSON_COMPACT) != 0)
            rc = PF_ENOMEM;
        strbuf_puts(&st->page, "\n");
        json_decref(j);
    }
    for (int i = 0; i < 4; i++)
        free(tmp[i]);
    return rc != 0 ? rc : st->page.failed ? PF_ENOMEM : 0;
}

/* Read the page after the last key into st->page (emptied first). OUT:
 * *rows. */
static int read_page(struct xstream *st, struct db *db, int *rows)
{
    struct db_stat_row after = {0};
    if (st->have_key) {
        after.date = st->key[0].s;
        after.image_id = st->key[1].s;
        after.variant = st->key[2].s;
        after.country = st->key[3].s;
    }
    st->page.len = 0;
    return db_daily_page(db, st->owner, st->from, st->to, st->have_key ? &after : NULL, PAGE_ROWS,
                         put_row, st, rows);
}

/* Append the page to what is left to send (under mu), the sent part
 * dropped first so that the buffer does not grow with the export. */
static int append_page(struct xstream *st)
{
    if (st->off > 0) {
        memmove(st->out.p, st->out.p + st->off, st->out.len - st->off);
        st->out.len -= st->off;
        st->off = 0;
    }
    if (st->page.len > 0)
        strbuf_put(&st->out, st->page.p, st->page.len);
    return st->out.failed ? PF_ENOMEM : 0;
}

/* ---- The refill, on the export's threads ---- */

static void fill(void *arg)
{
    struct xstream *st = arg;
    struct export *ex = st->ex;
    int more = 1, release = 0;
    while (more) {
        int rc = 0, rows = 0;
        pthread_mutex_lock(&st->mu);
        int gone = st->released;
        pthread_mutex_unlock(&st->mu);
        if (!gone) {
            struct db *db = ex->pool.get(ex->pool.ctx);
            rc = db != NULL ? read_page(st, db, &rows) : PF_EUNAVAIL;
            if (db != NULL)
                ex->pool.put(ex->pool.ctx, db);
        }
        pthread_mutex_lock(&st->mu);
        if (!gone && rc == 0)
            rc = append_page(st);
        if (!gone && rc != 0) {
            st->failed = 1;
            if (rc != PF_EUNAVAIL) /* an outage is logged once, by the database layer */
                fprintf(stderr, "pixflare: API: export cut short: %s\n", err_str(rc));
        } else if (rows < PAGE_ROWS) {
            st->done = 1;
        }
        struct http_stream *hs = st->hs;
        pthread_mutex_unlock(&st->mu);
        /* Not under mu: the server's lock comes after ours, never before,
         * but its release path need not know that. hs stays alive: the
         * state (and its hold) is not freed while `fetching`. */
        if (hs != NULL)
            http_stream_wake(hs);
        pthread_mutex_lock(&st->mu);
        /* Decided under mu, as xs_read decides whether to ask for a
         * refill: the client may have drained the buffer since the wake. */
        more = !st->released && !st->done && !st->failed && st->out.len - st->off < LOW_WATER;
        if (!more) {
            st->fetching = 0;
            release = st->released;
        }
        pthread_mutex_unlock(&st->mu);
    }
    if (release)
        xs_free(st);
}

/* ---- The server's side ---- */

static long xs_read(void *ctx, struct http_stream *s, char *buf, size_t max)
{
    struct xstream *st = ctx;
    long r;
    pthread_mutex_lock(&st->mu);
    size_t have = st->out.len - st->off;
    if (have > 0) {
        size_t n = have < max ? have : max;
        memcpy(buf, st->out.p + st->off, n);
        st->off += n;
        have -= n;
        r = (long)n;
    } else if (st->failed) {
        r = HTTP_STREAM_ERROR;
    } else if (st->done) {
        r = HTTP_STREAM_END;
    } else {
        if (st->hs == NULL) {
            http_stream_hold(s);
            st->hs = s;
        }
        r = HTTP_STREAM_WAIT; /* a refill is on its way (fetching), or asked below */
    }
    int ask = !st->done && !st->failed && !st->fetching && have < LOW_WATER;
    if (ask)
        st->fetching = 1;
    pthread_mutex_unlock(&st->mu);
    /* Queued, not run: the event loop never touches the database. */
    if (ask && workq_push(st->ex->q, fill, st) != 0) {
        pthread_mutex_lock(&st->mu);
        st->fetching = 0;
        st->failed = 1;
        pthread_mutex_unlock(&st->mu);
        if (r == HTTP_STREAM_WAIT)
            r = HTTP_STREAM_ERROR;
    }
    return r;
}

static void xs_release(void *ctx)
{
    struct xstream *st = ctx;
    pthread_mutex_lock(&st->mu);
    st->released = 1;
    int now = !st->fetching; /* else the refill frees it as it ends */
    pthread_mutex_unlock(&st->mu);
    if (now)
        xs_free(st);
}

int export_start(struct export *ex, struct db *db, const char *owner_hex,
                 const struct api_params *p, struct http_resp *resp)
{
    struct xstream *st = calloc(1, sizeof(*st));
    int rc = st != NULL ? 0 : PF_ENOMEM, rows = 0;
    if (st == NULL)
        return rc;
    st->ex = ex;
    pthread_mutex_init(&st->mu, NULL);
    snprintf(st->owner, sizeof(st->owner), "%s", owner_hex);
    timeutil_format_date(p->start, st->from);
    timeutil_format_date(p->end, st->to);
    st->csv = p->csv;
    if (st->csv)
        strbuf_puts(&st->out, "date,image_id,variant,country,requests,bandwidth_bytes\r\n");
    rc = read_page(st, db, &rows);
    if (rc == 0)
        rc = append_page(st);
    if (rc != 0) {
        xs_free(st);
        return rc;
    }
    st->done = rows < PAGE_ROWS;
    resp->status = 200;
    resp->content_type = st->csv ? "text/csv; charset=utf-8" : "application/x-ndjson";
    resp->cache_control = "no-store";
    http_resp_header(resp, "Content-Disposition",
                     "attachment; filename=\"pixflare-export-%s-%s.%s\"", st->from, st->to,
                     st->csv ? "csv" : "ndjson");
    resp->stream = xs_read;
    resp->body_ctx = st;
    resp->body_release = xs_release;
    return 0;
}
