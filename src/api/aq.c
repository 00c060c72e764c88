/* aq.c - see aq.h.
 *
 * Codes: an image id (6 characters of [a-z0-9]) is its base-36 value, which
 * fits 32 bits and sorts like the text; a country ([A-Z][A-Z0-9]) is a
 * number below 26 * 36; a variant is its index in variant_table. */
#include "api/aq.h"

#include "base/err.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400
#define COUNTRY_CODES (26 * 36)

struct seg_count {
    uint32_t code;
    int64_t requests, bytes;
    int64_t bot_requests, bot_bytes; /* of them, bots' */
};

/* One owner's analytics_daily rows of one date, grouped. Immutable once
 * published; freed when evicted (or replaced) and no query holds it. */
struct seg {
    struct seg *hnext;       /* hash chain */
    struct seg *prev, *next; /* LRU: head most recent */
    char owner[33], date[11];
    int64_t version;
    int refs;   /* queries holding it (under the lock) */
    int cached; /* in the hash and LRU; else freed at the last release */
    size_t bytes;
    uint32_t nimg, ncty;
    struct seg_count *img, *cty; /* by code */
    int64_t var_req[VARIANT_COUNT], var_bytes[VARIANT_COUNT];
    int64_t var_bot_req[VARIANT_COUNT], var_bot_bytes[VARIANT_COUNT];
};

struct aq {
    pthread_mutex_t lock;
    size_t budget, bytes, count;
    size_t nbuckets; /* power of 2 */
    struct seg **buckets;
    struct seg *head, *tail;
};

int aq_new(size_t budget, struct aq **out)
{
    struct aq *aq = calloc(1, sizeof(*aq));
    if (aq == NULL)
        return PF_ENOMEM;
    aq->budget = budget;
    aq->nbuckets = 1024;
    aq->buckets = calloc(aq->nbuckets, sizeof(*aq->buckets));
    if (aq->buckets == NULL) {
        free(aq);
        return PF_ENOMEM;
    }
    pthread_mutex_init(&aq->lock, NULL);
    *out = aq;
    return 0;
}

static void seg_free(struct seg *s)
{
    if (s == NULL)
        return;
    free(s->img);
    free(s->cty);
    free(s);
}

void aq_free(struct aq *aq)
{
    if (aq == NULL)
        return;
    for (struct seg *s = aq->head, *next; s != NULL; s = next) {
        next = s->next;
        seg_free(s);
    }
    pthread_mutex_destroy(&aq->lock);
    free(aq->buckets);
    free(aq);
}

void aq_usage(struct aq *aq, size_t *bytes, size_t *segments)
{
    pthread_mutex_lock(&aq->lock);
    *bytes = aq->bytes;
    *segments = aq->count;
    pthread_mutex_unlock(&aq->lock);
}

/* ---- Codes ---- */

static int b36(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    return -1;
}

static int image_code(const char *id, uint32_t *code)
{
    uint32_t v = 0;
    for (int i = 0; i < 6; i++) {
        int d = b36(id[i]);
        if (d < 0)
            return PF_EINVAL;
        v = v * 36 + (uint32_t)d;
    }
    if (id[6] != '\0')
        return PF_EINVAL;
    *code = v;
    return 0;
}

static void image_name(uint32_t code, char out[16])
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    for (int i = 5; i >= 0; i--) {
        out[i] = digits[code % 36];
        code /= 36;
    }
    out[6] = '\0';
}

static int country_code(const char *c)
{
    int second;
    if (c[0] < 'A' || c[0] > 'Z' || c[1] == '\0' || c[2] != '\0')
        return -1;
    if (c[1] >= 'A' && c[1] <= 'Z')
        second = c[1] - 'A';
    else if (c[1] >= '0' && c[1] <= '9')
        second = 26 + c[1] - '0';
    else
        return -1;
    return (c[0] - 'A') * 36 + second;
}

static void country_name(int code, char out[16])
{
    int second = code % 36;
    out[0] = (char)('A' + code / 36);
    out[1] = (char)(second < 26 ? 'A' + second : '0' + second - 26);
    out[2] = '\0';
}

/* ---- Loading a segment ---- */

struct loader {
    struct seg *s;
    uint32_t cap;
    int64_t cty_req[COUNTRY_CODES], cty_bytes[COUNTRY_CODES];
    int64_t cty_bot_req[COUNTRY_CODES], cty_bot_bytes[COUNTRY_CODES];
    int64_t rows;
    int failed;
};

static int load_row(void *ctx, const struct db_stat_row *r)
{
    struct loader *l = ctx;
    struct seg *s = l->s;
    uint32_t code;
    int c = country_code(r->country), v = variant_find(r->variant, strlen(r->variant));
    l->rows++;
    /* Rows no writer makes (hand edits) are left out rather than guessed. */
    if (image_code(r->image_id, &code) != 0 || c < 0 || v < 0)
        return 0;
    /* Rows come in key order, so an image's rows are adjacent. */
    if (s->nimg == 0 || s->img[s->nimg - 1].code != code) {
        if (s->nimg == l->cap) {
            uint32_t ncap = l->cap ? l->cap * 2 : 64;
            void *n = realloc(s->img, ncap * sizeof(*s->img));
            if (n == NULL)
                return PF_ENOMEM;
            s->img = n;
            l->cap = ncap;
        }
        s->img[s->nimg++] = (struct seg_count){code, 0, 0, 0, 0};
    }
    struct seg_count *img = &s->img[s->nimg - 1];
    img->requests += r->requests;
    img->bytes += r->bytes;
    img->bot_requests += r->bot_requests;
    img->bot_bytes += r->bot_bytes;
    l->cty_req[c] += r->requests;
    l->cty_bytes[c] += r->bytes;
    l->cty_bot_req[c] += r->bot_requests;
    l->cty_bot_bytes[c] += r->bot_bytes;
    s->var_req[v] += r->requests;
    s->var_bytes[v] += r->bytes;
    s->var_bot_req[v] += r->bot_requests;
    s->var_bot_bytes[v] += r->bot_bytes;
    return 0;
}

/* Load (owner, date) at `version` from the database. OUT: *out. */
static int seg_load(struct db *db, const char *owner, const char *date, int64_t version,
                    struct seg **out, int64_t *rows)
{
    struct loader *l = calloc(1, sizeof(*l));
    struct seg *s = calloc(1, sizeof(*s));
    int rc = l && s ? 0 : PF_ENOMEM;
    if (rc == 0) {
        l->s = s;
        snprintf(s->owner, sizeof(s->owner), "%s", owner);
        snprintf(s->date, sizeof(s->date), "%s", date);
        s->version = version;
        rc = db_segment_rows(db, owner, date, load_row, l);
    }
    if (rc == 0) {
        uint32_t n = 0;
        for (int c = 0; c < COUNTRY_CODES; c++)
            n += l->cty_req[c] != 0 || l->cty_bytes[c] != 0;
        s->cty = malloc((n ? n : 1) * sizeof(*s->cty));
        if (s->cty == NULL)
            rc = PF_ENOMEM;
        for (int c = 0; rc == 0 && c < COUNTRY_CODES; c++)
            if (l->cty_req[c] != 0 || l->cty_bytes[c] != 0)
                s->cty[s->ncty++] = (struct seg_count){(uint32_t)c, l->cty_req[c], l->cty_bytes[c],
                                                       l->cty_bot_req[c], l->cty_bot_bytes[c]};
    }
    if (rc == 0 && s->nimg > 0 && s->nimg < l->cap) {
        void *n = realloc(s->img, s->nimg * sizeof(*s->img));
        if (n != NULL)
            s->img = n;
    }
    if (rc == 0) {
        s->bytes = sizeof(*s) + (s->nimg + s->ncty) * sizeof(struct seg_count);
        *rows = l->rows;
        *out = s;
    } else {
        seg_free(s);
    }
    free(l);
    return rc;
}

/* ---- The cache ---- */

static size_t seg_hash(const char *owner, const char *date)
{
    size_t h = 1469598103934665603ull;
    for (const char *p = owner; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = date; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static struct seg **slot(struct aq *aq, const char *owner, const char *date)
{
    struct seg **p = &aq->buckets[seg_hash(owner, date) & (aq->nbuckets - 1)];
    while (*p != NULL && (strcmp((*p)->owner, owner) != 0 || strcmp((*p)->date, date) != 0))
        p = &(*p)->hnext;
    return p;
}

static void lru_unlink(struct aq *aq, struct seg *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        aq->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        aq->tail = s->prev;
    s->prev = s->next = NULL;
}

static void lru_push(struct aq *aq, struct seg *s)
{
    s->prev = NULL;
    s->next = aq->head;
    if (aq->head)
        aq->head->prev = s;
    aq->head = s;
    if (aq->tail == NULL)
        aq->tail = s;
}

/* Take s out of the cache (it is freed now, or by its last release). */
static void uncache(struct aq *aq, struct seg *s)
{
    struct seg **p = slot(aq, s->owner, s->date);
    if (*p == s)
        *p = s->hnext;
    lru_unlink(aq, s);
    s->cached = 0;
    aq->bytes -= s->bytes;
    aq->count--;
    if (s->refs == 0)
        seg_free(s);
}

/* Double the buckets when the chains grow long (under the lock). */
static void rehash(struct aq *aq)
{
    size_t n = aq->nbuckets * 2;
    struct seg **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return; /* longer chains, still right */
    for (size_t i = 0; i < aq->nbuckets; i++)
        for (struct seg *s = aq->buckets[i], *next; s != NULL; s = next) {
            next = s->hnext;
            size_t h = seg_hash(s->owner, s->date) & (n - 1);
            s->hnext = b[h];
            b[h] = s;
        }
    free(aq->buckets);
    aq->buckets = b;
    aq->nbuckets = n;
}

/* A reference to (owner, date) at `version`, loaded if need be. */
static int seg_get(struct aq *aq, struct db *db, const char *owner, const char *date,
                   int64_t version, struct seg **out, struct aq_result *res)
{
    struct seg *s, *fresh = NULL;
    int64_t rows = 0;
    pthread_mutex_lock(&aq->lock);
    s = *slot(aq, owner, date);
    if (s != NULL && s->version == version) {
        s->refs++;
        lru_unlink(aq, s);
        lru_push(aq, s);
        pthread_mutex_unlock(&aq->lock);
        *out = s;
        return 0;
    }
    pthread_mutex_unlock(&aq->lock);

    int rc = seg_load(db, owner, date, version, &fresh, &rows);
    if (rc != 0)
        return rc;
    res->segments_loaded++;
    res->rows_loaded += rows;
    fresh->refs = 1;
    pthread_mutex_lock(&aq->lock);
    s = *slot(aq, owner, date);
    if (s != NULL && s->version >= version) {
        /* Another query loaded it meanwhile, or a newer snapshot's: keep
         * the cached one, use ours (right for our snapshot) privately. */
        if (s->version == version) {
            s->refs++;
            pthread_mutex_unlock(&aq->lock);
            seg_free(fresh);
            *out = s;
            return 0;
        }
        pthread_mutex_unlock(&aq->lock);
        *out = fresh;
        return 0;
    }
    if (s != NULL)
        uncache(aq, s);
    struct seg **p = slot(aq, owner, date);
    fresh->hnext = *p;
    *p = fresh;
    fresh->cached = 1;
    lru_push(aq, fresh);
    aq->bytes += fresh->bytes;
    aq->count++;
    /* Evict the least recently used segments no query holds. */
    for (struct seg *v = aq->tail, *prev; v != NULL && aq->bytes > aq->budget; v = prev) {
        prev = v->prev;
        if (v->refs == 0)
            uncache(aq, v);
    }
    if (aq->count > aq->nbuckets)
        rehash(aq);
    pthread_mutex_unlock(&aq->lock);
    *out = fresh;
    return 0;
}

static void seg_release(struct aq *aq, struct seg *s)
{
    pthread_mutex_lock(&aq->lock);
    if (--s->refs == 0 && !s->cached)
        seg_free(s);
    pthread_mutex_unlock(&aq->lock);
}

/* ---- Lists ---- */

/* Whether a ranks before b: requests, then bytes descending, then name or
 * status ascending. */
static int before(const struct aq_item *a, const struct aq_item *b)
{
    if (a->requests != b->requests)
        return a->requests > b->requests;
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes;
    if (a->status != b->status)
        return a->status < b->status;
    return strcmp(a->name, b->name) < 0;
}

static int cmp_items(const void *x, const void *y)
{
    const struct aq_item *a = x, *b = y;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

static void sort_items(struct aq_item *items, size_t n)
{
    if (n > 1) /* an empty list may be NULL, which qsort must not get */
        qsort(items, n, sizeof(*items), cmp_items);
}

/* Keep the best `k` of a stream of items: a heap whose root is the worst
 * kept, so each item costs O(log k) and the whole list is never sorted. */
struct topk {
    struct aq_item *h;
    size_t n, k;
};

static void topk_down(struct topk *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < t->n && before(&t->h[w], &t->h[l]))
            w = l;
        if (r < t->n && before(&t->h[w], &t->h[r]))
            w = r;
        if (w == i)
            return;
        struct aq_item tmp = t->h[i];
        t->h[i] = t->h[w];
        t->h[w] = tmp;
        i = w;
    }
}

static void topk_add(struct topk *t, const struct aq_item *it)
{
    if (t->n < t->k) {
        size_t i = t->n++;
        t->h[i] = *it;
        while (i > 0 && before(&t->h[(i - 1) / 2], &t->h[i])) {
            struct aq_item tmp = t->h[i];
            t->h[i] = t->h[(i - 1) / 2];
            t->h[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
    } else if (t->k > 0 && before(it, &t->h[0])) {
        t->h[0] = *it;
        topk_down(t, 0);
    }
}

/* Per-image sums over the segments: open addressing on the image code. */
struct image_sums {
    struct seg_count *slots; /* requests < 0 marks a free slot */
    size_t cap, used;
};

static int sums_init(struct image_sums *m, size_t expect)
{
    m->cap = 1024;
    while (m->cap < expect * 2)
        m->cap *= 2;
    m->used = 0;
    m->slots = malloc(m->cap * sizeof(*m->slots));
    if (m->slots == NULL)
        return PF_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        m->slots[i].requests = -1;
    return 0;
}

static struct seg_count *sums_slot(struct seg_count *slots, size_t cap, uint32_t code)
{
    size_t i = (code * 2654435761u) & (cap - 1);
    while (slots[i].requests >= 0 && slots[i].code != code)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int sums_add(struct image_sums *m, const struct seg_count *c)
{
    if ((m->used + 1) * 2 > m->cap) {
        struct image_sums g = {NULL, m->cap * 2, 0};
        if (sums_init(&g, m->cap) != 0)
            return PF_ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].requests >= 0)
                *sums_slot(g.slots, g.cap, m->slots[i].code) = m->slots[i];
        g.used = m->used;
        free(m->slots);
        *m = g;
    }
    struct seg_count *s = sums_slot(m->slots, m->cap, c->code);
    if (s->requests < 0) {
        *s = (struct seg_count){c->code, 0, 0, 0, 0};
        m->used++;
    }
    s->requests += c->requests;
    s->bytes += c->bytes;
    s->bot_requests += c->bot_requests;
    s->bot_bytes += c->bot_bytes;
    return 0;
}

/* A sorted list of the non-zero entries of arrays indexed by code. */
static int code_list(const int64_t *req, const int64_t *bytes, int n, int countries,
                     struct aq_item **out, size_t *count)
{
    size_t k = 0;
    *out = calloc((size_t)n, sizeof(**out));
    if (*out == NULL)
        return PF_ENOMEM;
    for (int c = 0; c < n; c++) {
        if (req[c] == 0 && bytes[c] == 0)
            continue;
        struct aq_item *it = &(*out)[k++];
        if (countries)
            country_name(c, it->name);
        else
            snprintf(it->name, sizeof(it->name), "%s", variant_table[c].name);
        it->requests = req[c];
        it->bytes = bytes[c];
    }
    sort_items(*out, k);
    *count = k;
    return 0;
}

/* ---- Queries ---- */

struct range_ctx {
    int64_t start;
    int days;
    char last_date[11]; /* offset()'s last answer: rows come grouped by date */
    int last_offset;
    int exclude_bots;
    int64_t *versions;
    struct aq_item *statuses;
    size_t nstatuses, cap;
};

/* The day offset of a date in the range, or -1. */
static int offset(struct range_ctx *r, const char *date)
{
    int64_t t;
    if (strcmp(date, r->last_date) == 0)
        return r->last_offset;
    int o = -1;
    if (timeutil_parse_date(date, &t) == 0 && t >= r->start && (t - r->start) / DAY < r->days)
        o = (int)((t - r->start) / DAY);
    snprintf(r->last_date, sizeof(r->last_date), "%s", date);
    r->last_offset = o;
    return o;
}

static int on_version(void *ctx, const struct db_stat_row *row)
{
    struct range_ctx *r = ctx;
    int o = offset(r, row->date);
    if (o >= 0)
        r->versions[o] = row->requests;
    return 0;
}

static int on_status(void *ctx, const struct db_stat_row *row)
{
    struct range_ctx *r = ctx;
    int64_t req = row->requests - (r->exclude_bots ? row->bot_requests : 0);
    if (r->exclude_bots && req == 0) /* a status only bots got */
        return 0;
    if (r->nstatuses == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        void *n = realloc(r->statuses, ncap * sizeof(*r->statuses));
        if (n == NULL)
            return PF_ENOMEM;
        r->statuses = n;
        r->cap = ncap;
    }
    struct aq_item *it = &r->statuses[r->nstatuses++];
    memset(it, 0, sizeof(*it));
    it->status = row->status;
    it->requests = req;
    return 0;
}

static void fmt_day(int64_t start, int o, char out[11])
{
    timeutil_format_date(start + (int64_t)o * DAY, out);
}

/* Start a result: the periods, zeros. */
static int result_init(struct aq_result *out, const struct aq_query *q)
{
    memset(out, 0, sizeof(*out));
    int rc = aq_period_init(&out->cur, q->start, q->days, q->hourly, q->exclude_bots);
    if (rc == 0 && q->compare)
        rc = aq_period_init(&out->prev, q->start - (int64_t)q->days * DAY, q->days, q->hourly,
                            q->exclude_bots);
    return rc;
}

static void read_freshness(struct db *db, struct aq_result *out)
{
    char v[32];
    if (db_meta_get(db, "last_aggregation_date", v, sizeof(v)) == 0 && strlen(v) == 10)
        memcpy(out->last_aggregation_date, v, 11);
}

/* The period before the range (compare), and the range's clients: the
 * reads both endpoints make alike, in their read transaction. */
static int read_rest(struct db *db, const char *owner, const char *image_id,
                     const struct aq_query *q, struct aq_result *out)
{
    char from[11], to[11];
    int rc = 0;
    fmt_day(q->start, 0, from);
    fmt_day(q->start, q->days - 1, to);
    if (q->compare)
        rc = image_id[0] ? aq_period_image_days(&out->prev, db, owner, image_id)
                         : aq_period_owner_days(&out->prev, db, owner, NULL);
    if (rc == 0 && q->compare)
        rc = aq_period_more(&out->prev, db, owner, image_id);
    if (rc == 0)
        rc = aq_period_more(&out->cur, db, owner, image_id);
    if (rc == 0)
        rc = aq_period_clients(db, owner, image_id, from, to, q->exclude_bots, out->clients,
                               &out->nclients);
    return rc;
}

/* The top images' uniques: one range of analytics_uniques_daily's
 * (owner, image_id, date) index per image, rather than every image of the
 * owner (db_image_uniques: ~3,400 sketches a date here, 300,000 rows over
 * 90 days). */
static int on_image_uniques(void *ctx, const struct db_stat_row *row)
{
    struct aq_item *it = ctx;
    it->uniques += row->uniques;
    return 0;
}

static int read_top_uniques(struct db *db, const char *owner, const char *from, const char *to,
                            struct aq_item *images, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = db_owner_uniques(db, owner, images[i].name, from, to, on_image_uniques, &images[i]);
    return rc;
}

int aq_overview(struct aq *aq, struct db *db, const char *owner, const struct aq_query *q,
                struct aq_result *out)
{
    char from[11], to[11], date[11];
    const int days = q->days, ex = q->exclude_bots;
    struct seg **segs = NULL;
    struct image_sums sums = {NULL, 0, 0};
    int64_t *cty_req = NULL, *cty_bytes = NULL;
    int64_t var_req[VARIANT_COUNT] = {0}, var_bytes[VARIANT_COUNT] = {0};
    int *has_day = NULL;
    int nsegs = 0, reading = 0;
    struct range_ctx r = {q->start, days, "", -1, ex, NULL, NULL, 0, 0};
    int rc = result_init(out, q);
    fmt_day(q->start, 0, from);
    fmt_day(q->start, days - 1, to);
    r.versions = calloc((size_t)days, sizeof(*r.versions));
    has_day = calloc((size_t)days, sizeof(*has_day));
    segs = calloc((size_t)days, sizeof(*segs));
    cty_req = calloc(COUNTRY_CODES, sizeof(*cty_req));
    cty_bytes = calloc(COUNTRY_CODES, sizeof(*cty_bytes));
    if (rc == 0 && (!r.versions || !has_day || !segs || !cty_req || !cty_bytes))
        rc = PF_ENOMEM;

    /* One snapshot: versions, day totals, statuses, the segments and the
     * rest (uniques, hours, clients, the previous period). */
    if (rc == 0 && (rc = db_read_begin(db)) == 0)
        reading = 1;
    if (rc == 0)
        rc = db_day_versions(db, from, to, on_version, &r);
    if (rc == 0)
        rc = aq_period_owner_days(&out->cur, db, owner, has_day);
    if (rc == 0)
        rc = db_owner_statuses(db, owner, from, to, on_status, &r);
    if (rc == 0)
        rc = read_rest(db, owner, "", q, out);
    if (rc == 0)
        read_freshness(db, out);
    /* A date with no day total has no rows: no segment to fetch. */
    for (int o = 0; rc == 0 && o < days; o++) {
        if (!has_day[o])
            continue;
        fmt_day(q->start, o, date);
        rc = seg_get(aq, db, owner, date, r.versions[o], &segs[nsegs], out);
        if (rc == 0)
            nsegs++;
    }

    /* Add the segments up. */
    size_t expect = 0;
    for (int i = 0; i < nsegs; i++)
        expect = segs[i]->nimg > expect ? segs[i]->nimg : expect;
    if (rc == 0)
        rc = sums_init(&sums, expect * 2);
    for (int i = 0; rc == 0 && i < nsegs; i++) {
        const struct seg *s = segs[i];
        for (uint32_t j = 0; rc == 0 && j < s->nimg; j++)
            rc = sums_add(&sums, &s->img[j]);
        for (uint32_t j = 0; j < s->ncty; j++) {
            const struct seg_count *c = &s->cty[j];
            cty_req[c->code] += c->requests - (ex ? c->bot_requests : 0);
            cty_bytes[c->code] += c->bytes - (ex ? c->bot_bytes : 0);
        }
        for (int v = 0; v < VARIANT_COUNT; v++) {
            var_req[v] += s->var_req[v] - (ex ? s->var_bot_req[v] : 0);
            var_bytes[v] += s->var_bytes[v] - (ex ? s->var_bot_bytes[v] : 0);
        }
    }
    out->segments = nsegs;
    for (int i = 0; i < nsegs; i++)
        seg_release(aq, segs[i]);

    if (rc == 0) {
        struct topk t = {calloc((size_t)q->limit, sizeof(struct aq_item)), 0, (size_t)q->limit};
        if (t.h == NULL)
            rc = PF_ENOMEM;
        for (size_t i = 0; rc == 0 && i < sums.cap; i++) {
            const struct seg_count *c = &sums.slots[i];
            if (c->requests < 0)
                continue;
            struct aq_item it = {"", 0, c->requests - (ex ? c->bot_requests : 0),
                                 c->bytes - (ex ? c->bot_bytes : 0), 0};
            if (ex && it.requests == 0 && it.bytes == 0) /* only bots' */
                continue;
            image_name(c->code, it.name);
            topk_add(&t, &it);
        }
        sort_items(t.h, t.n);
        out->images = t.h;
        out->nimages = t.n;
    }
    /* Still in the snapshot: the top images are known only now. */
    if (rc == 0)
        rc = read_top_uniques(db, owner, from, to, out->images, out->nimages);
    if (reading)
        db_read_end(db);
    if (rc == 0)
        rc = code_list(cty_req, cty_bytes, COUNTRY_CODES, 1, &out->countries, &out->ncountries);
    if (rc == 0)
        rc = code_list(var_req, var_bytes, VARIANT_COUNT, 0, &out->variants, &out->nvariants);
    if (rc == 0) {
        sort_items(r.statuses, r.nstatuses);
        out->statuses = r.statuses;
        out->nstatuses = r.nstatuses;
        r.statuses = NULL;
    }
    free(r.statuses);
    free(r.versions);
    free(has_day);
    free(segs);
    free(sums.slots);
    free(cty_req);
    free(cty_bytes);
    return rc;
}

struct image_ctx {
    struct range_ctx r;
    struct aq_period *cur;
    int64_t cty_req[COUNTRY_CODES], cty_bytes[COUNTRY_CODES];
    int64_t var_req[VARIANT_COUNT], var_bytes[VARIANT_COUNT];
};

static int on_image_row(void *ctx, const struct db_stat_row *row)
{
    struct image_ctx *x = ctx;
    int o = offset(&x->r, row->date);
    int c = country_code(row->country), v = variant_find(row->variant, strlen(row->variant));
    int64_t req = row->requests - (x->r.exclude_bots ? row->bot_requests : 0);
    int64_t bytes = row->bytes - (x->r.exclude_bots ? row->bot_bytes : 0);
    if (o < 0)
        return 0;
    aq_period_add_day(x->cur, o, row);
    if (c >= 0) {
        x->cty_req[c] += req;
        x->cty_bytes[c] += bytes;
    }
    if (v >= 0) {
        x->var_req[v] += req;
        x->var_bytes[v] += bytes;
    }
    return 0;
}

int aq_image(struct db *db, const char *owner, const char *image_id, const struct aq_query *q,
             struct aq_result *out)
{
    char from[11], to[11];
    struct image_ctx *x = calloc(1, sizeof(*x));
    int rc = result_init(out, q);
    if (rc == 0 && x == NULL)
        rc = PF_ENOMEM;
    fmt_day(q->start, 0, from);
    fmt_day(q->start, q->days - 1, to);
    if (rc == 0) {
        x->r.start = q->start;
        x->r.days = q->days;
        x->r.exclude_bots = q->exclude_bots;
        x->r.last_offset = -1;
        x->cur = &out->cur;
        if ((rc = db_read_begin(db)) == 0) {
            rc = db_image_rows(db, owner, image_id, from, to, on_image_row, x);
            if (rc == 0)
                rc = read_rest(db, owner, image_id, q, out);
            read_freshness(db, out);
            db_read_end(db);
        }
    }
    if (rc == 0)
        rc = code_list(x->cty_req, x->cty_bytes, COUNTRY_CODES, 1, &out->countries,
                       &out->ncountries);
    if (rc == 0)
        rc = code_list(x->var_req, x->var_bytes, VARIANT_COUNT, 0, &out->variants, &out->nvariants);
    free(x);
    return rc;
}

void aq_result_free(struct aq_result *r)
{
    aq_period_free(&r->cur);
    aq_period_free(&r->prev);
    free(r->images);
    free(r->countries);
    free(r->variants);
    free(r->statuses);
    memset(r, 0, sizeof(*r));
}
