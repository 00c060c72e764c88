/* rollup.c - see rollup.h.
 *
 * Counting tables are open-addressing hash tables of fixed-size keys. Each
 * thread's shard has an active table and a spare; a flush swaps them under
 * the shard's mutex (a pointer swap), merges the taken table into the
 * flusher's `pending` table, and clears it for the next swap. Nothing on the
 * request path allocates except when its table grows.
 *
 * Exactly once. Each write of a table carries a flush id ("NODE.RUN.SEQ":
 * the node's id, this process's random id and a sequence number) that the database records in the
 * same transaction (db_counts_add()). A write that fails moves its table aside as `inflight`,
 * unchanged, with its id; later counts go on into a new `pending`. The next flushes retry
 * `inflight` under the same id before anything else: if the failed write had committed after all
 * (PostgreSQL went away during COMMIT), the database knows the id and adds nothing, so the counts
 * are neither lost nor added twice.
 *
 * Kinds of keys. A daily, status and owner-day key counts as before, its
 * bots' share beside (slot.bot_*). An hour key (owner, hour, image,
 * client) feeds both analytics_hourly and analytics_clients_daily, each
 * with its owner's totals summed at write time. A sketch key (owner, day,
 * image or "" for the owner's, register index in `status`) keeps the
 * highest rank seen (slot.requests), merged into analytics_uniques_daily
 * (db_sketches_merge(): register max, so a retried write adds nothing).
 * Requests count into image sketches only: the owner's sketch is their
 * union (one client, one point in both), made at write time. */
#include "analytics/rollup.h"

#include "analytics/uniq.h"
#include "store/db.h"
#include "base/err.h"
#include "base/metrics.h"
#include "base/keyhash.h"
#include "base/ticker.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define XXH_INLINE_ALL /* see evlog.c */
#include <xxhash.h>

enum {
    KIND_DAILY = 1,
    KIND_STATUS = 2,
    KIND_OWNER_DAY = 3,
    KIND_HOUR = 4,   /* day holds the hour (Unix time / 3600); pad[0] the client */
    KIND_SKETCH = 5, /* status holds the register index; the slot the rank */
    KIND_CLIENT = 6, /* write_table()'s: a day's requests of a client class (pad[0]) */
};

#define BUSY_TIMEOUT_MS 1000
#define FINAL_TRIES 8

/* Zeroed before filling, so that keys compare and hash as bytes. */
struct key {
    uint8_t owner[16];
    int32_t day; /* days since 1970-01-01 */
    uint16_t status;
    uint8_t variant;
    uint8_t kind;
    char image_id[8];
    char country[2];
    uint8_t pad[2];
};

struct slot {
    struct key key;
    uint32_t used;
    int64_t requests, bytes;
    int64_t bot_requests, bot_bytes; /* of them, bots' */
};

struct table {
    size_t mask, count;
    struct slot *slots;
};

struct shard {
    pthread_mutex_t mu;
    struct table *active; /* the thread counts here */
    struct table *spare;  /* flusher's, swapped in at each flush */
    struct shard *next;
};

struct rollup {
    struct db *db;
    int flush_ms;
    size_t max_keys;
    FILE *log;
    uint64_t gen;
    pthread_mutex_t list_mu;
    struct shard *shards;
    struct table *pending;  /* flusher only */
    struct table *inflight; /* a failed write's counts, retried as they are (or NULL) */
    char inflight_id[48];
    char node_id[17];
    uint64_t run_id, next_flush; /* run: random per process */
    pthread_mutex_t flush_mu;    /* one flush at a time (the thread, or close) */
    struct ticker *flusher;
    struct uniq *uniq;        /* the caller's; NULL: no unique clients */
    _Atomic size_t live_keys; /* keys in every table, for the memory bound */
    _Atomic uint64_t flushes, rows, failures, overflow, pending_keys, batched;
    int64_t last_error_log, last_salt_log;
    int m_flush; /* metrics: duration of the flushes that wrote */
};

static _Atomic uint64_t next_gen = 1;
static _Thread_local struct shard *tl_shard;
static _Thread_local uint64_t tl_gen;

static struct table *table_new(size_t cap)
{
    struct table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->slots = calloc(cap, sizeof(*t->slots));
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    t->mask = cap - 1;
    return t;
}

static void table_free(struct table *t)
{
    if (t != NULL)
        free(t->slots);
    free(t);
}

static void table_clear(struct table *t)
{
    if (t->count > 0)
        memset(t->slots, 0, (t->mask + 1) * sizeof(*t->slots));
    t->count = 0;
}

static struct slot *find(struct table *t, const struct key *k, uint64_t h)
{
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        struct slot *s = &t->slots[i];
        if (!s->used || memcmp(&s->key, k, sizeof(*k)) == 0)
            return s;
    }
}

static int grow(struct table *t)
{
    size_t cap = (t->mask + 1) * 2;
    struct slot *slots = calloc(cap, sizeof(*slots)), *old = t->slots;
    if (slots == NULL)
        return PF_ENOMEM;
    size_t old_cap = t->mask + 1;
    t->slots = slots;
    t->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].used)
            *find(t, &old[i].key, XXH3_64bits(&old[i].key, sizeof(old[i].key))) = old[i];
    free(old);
    return 0;
}

/* Add to key's counts. Returns 0, or PF_ERANGE when the key is new and the
 * memory bound (or memory) leaves no room for it. With `ru` NULL the table
 * is outside the bound (a flush's own scratch table). */
static int table_add(struct rollup *ru, struct table *t, const struct key *k, int64_t requests,
                     int64_t bytes, int bot)
{
    uint64_t h = XXH3_64bits(k, sizeof(*k));
    struct slot *s = find(t, k, h);
    if (!s->used) {
        if (ru != NULL &&
            atomic_load_explicit(&ru->live_keys, memory_order_relaxed) >= ru->max_keys)
            return PF_ERANGE;
        if ((t->count + 1) * 2 > t->mask + 1) {
            if (grow(t) != 0)
                return PF_ERANGE;
            s = find(t, k, h);
        }
        s->used = 1;
        s->key = *k;
        t->count++;
        if (ru != NULL)
            atomic_fetch_add_explicit(&ru->live_keys, 1, memory_order_relaxed);
    }
    if (k->kind == KIND_SKETCH) { /* a register: the highest rank */
        if (requests > s->requests)
            s->requests = requests;
        return 0;
    }
    s->requests += requests;
    s->bytes += bytes;
    if (bot) {
        s->bot_requests += requests;
        s->bot_bytes += bytes;
    }
    return 0;
}

/* Add a slot's counts (bots' share included) to t. */
static int table_add_slot(struct rollup *ru, struct table *t, const struct key *k,
                          const struct slot *s)
{
    int rc = table_add(ru, t, k, s->requests - s->bot_requests, s->bytes - s->bot_bytes, 0);
    if (rc == 0 && s->bot_requests > 0 && k->kind != KIND_SKETCH)
        rc = table_add(ru, t, k, s->bot_requests, s->bot_bytes, 1);
    return rc;
}

int rollup_counts_daily(int status)
{
    return status == 200 || status == 206 || status == 304;
}

static struct shard *shard_get(struct rollup *ru)
{
    if (tl_gen == ru->gen)
        return tl_shard;
    struct shard *sh = calloc(1, sizeof(*sh));
    if (sh == NULL)
        return NULL;
    sh->active = table_new(1024);
    sh->spare = table_new(1024);
    if (sh->active == NULL || sh->spare == NULL) {
        table_free(sh->active);
        table_free(sh->spare);
        free(sh);
        return NULL;
    }
    pthread_mutex_init(&sh->mu, NULL);
    pthread_mutex_lock(&ru->list_mu);
    sh->next = ru->shards;
    ru->shards = sh;
    pthread_mutex_unlock(&ru->list_mu);
    tl_shard = sh;
    tl_gen = ru->gen;
    return sh;
}

void rollup_add(struct rollup *ru, const struct event *ev)
{
    struct shard *sh = shard_get(ru);
    struct key k;
    int lost = 0;
    if (sh == NULL) {
        atomic_fetch_add_explicit(&ru->overflow, 1, memory_order_relaxed);
        return;
    }
    int32_t day = (int32_t)(ev->ts_ms / 86400000);
    int bot = ev->client == DB_CLIENT_BOT;
    pthread_mutex_lock(&sh->mu);
    memset(&k, 0, sizeof(k));
    memcpy(k.owner, ev->owner, 16);
    k.day = day;
    k.kind = KIND_STATUS;
    k.status = (uint16_t)ev->status;
    lost += table_add(ru, sh->active, &k, 1, 0, bot) != 0;
    if (rollup_counts_daily(ev->status) && ev->variant >= 0) {
        memset(&k, 0, sizeof(k));
        memcpy(k.owner, ev->owner, 16);
        k.day = day;
        k.kind = KIND_DAILY;
        k.variant = (uint8_t)ev->variant;
        memcpy(k.image_id, ev->image_id, sizeof(k.image_id));
        memcpy(k.country, ev->country, 2);
        lost += table_add(ru, sh->active, &k, 1, (int64_t)ev->bytes, bot) != 0;
        memset(&k, 0, sizeof(k));
        memcpy(k.owner, ev->owner, 16);
        k.day = (int32_t)(ev->ts_ms / 3600000);
        k.kind = KIND_HOUR;
        k.pad[0] = ev->client;
        memcpy(k.image_id, ev->image_id, sizeof(k.image_id));
        lost += table_add(ru, sh->active, &k, 1, (int64_t)ev->bytes, bot) != 0;
        /* The image's sketch; the owner's is the union of its images'
         * (a client's point is the same in both), made at write time. */
        if (ev->upoint != 0) {
            memset(&k, 0, sizeof(k));
            memcpy(k.owner, ev->owner, 16);
            k.day = day;
            k.kind = KIND_SKETCH;
            k.status = (uint16_t)(ev->upoint >> 8);
            memcpy(k.image_id, ev->image_id, sizeof(k.image_id));
            table_add(ru, sh->active, &k, ev->upoint & 0xff, 0, 0); /* lost: not a request */
        }
    }
    pthread_mutex_unlock(&sh->mu);
    if (lost) /* counted in requests, as merge() does */
        atomic_fetch_add_explicit(&ru->overflow, 1, memory_order_relaxed);
}

static void sink_emit(void *impl, const struct event *ev)
{
    rollup_add(impl, ev);
}

static const struct event_sink_ops sink_ops = {"rollup", sink_emit};

struct event_sink rollup_sink(struct rollup *ru)
{
    return (struct event_sink){&sink_ops, ru};
}

/* Move every count of `from` into `to`, then clear `from`. */
static void merge(struct rollup *ru, struct table *to, struct table *from)
{
    size_t moved = from->count;
    for (size_t i = 0; i <= from->mask && from->count > 0; i++) {
        struct slot *s = &from->slots[i];
        if (!s->used)
            continue;
        /* The key is already counted in live_keys; only a key new to `to`
         * after the move adds one, which table_add does. */
        atomic_fetch_sub_explicit(&ru->live_keys, 1, memory_order_relaxed);
        if (table_add_slot(ru, to, &s->key, s) != 0 && s->key.kind != KIND_SKETCH)
            atomic_fetch_add_explicit(&ru->overflow, (uint64_t)s->requests, memory_order_relaxed);
    }
    (void)moved;
    table_clear(from);
}

static void owner_hex(const struct key *k, char out[33])
{
    static const uint8_t zero[16];
    if (memcmp(k->owner, zero, 16) == 0)
        out[0] = '\0';
    else
        keyhash_hex(k->owner, 16, out);
}

/* One database count per client share of slot s (the bots' apart, so
 * that they reach the bot_ columns), from template c. */
static void emit(struct db_count *rows, size_t *n, const struct db_count *c, const struct slot *s)
{
    if (s->requests - s->bot_requests > 0 || s->bot_requests == 0) {
        struct db_count *r = &rows[(*n)++];
        *r = *c;
        r->client = DB_CLIENT_HUMAN;
        r->requests = s->requests - s->bot_requests;
        r->bytes = s->bytes - s->bot_bytes;
    }
    if (s->bot_requests > 0) {
        struct db_count *r = &rows[(*n)++];
        *r = *c;
        r->client = DB_CLIENT_BOT;
        r->requests = s->bot_requests;
        r->bytes = s->bot_bytes;
    }
}

/* Sketch slots in (owner, day, image) order, then register index. */
static int cmp_sketch(const void *a, const void *b)
{
    const struct key *x = &(*(struct slot *const *)a)->key, *y = &(*(struct slot *const *)b)->key;
    int c = memcmp(x->owner, y->owner, 16);
    if (c == 0)
        c = (x->day > y->day) - (x->day < y->day);
    if (c == 0)
        c = memcmp(x->image_id, y->image_id, sizeof(x->image_id));
    return c != 0 ? c : (x->status > y->status) - (x->status < y->status);
}

/* The sketch slots of t and u as db_sketch entries. OUT: *sk, *nsk, *pts
 * (free both). */
static int make_sketches(struct table *t, struct table *u, struct db_sketch **sk, size_t *nsk,
                         uint32_t **pts)
{
    size_t n = 0, m = 0, all = t->count + u->count + 1;
    struct slot **v = malloc(all * sizeof(*v));
    uint32_t *p = malloc(all * sizeof(*p));
    struct db_sketch *out = malloc(all * sizeof(*out));
    int rc = v && p && out ? 0 : PF_ENOMEM;
    for (int w = 0; rc == 0 && w < 2; w++) {
        struct table *x = w == 0 ? t : u;
        for (size_t i = 0; i <= x->mask; i++)
            if (x->slots[i].used && x->slots[i].key.kind == KIND_SKETCH)
                v[n++] = &x->slots[i];
    }
    if (rc == 0)
        qsort(v, n, sizeof(*v), cmp_sketch);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct key *k = &v[i]->key;
        p[i] = (uint32_t)k->status << 8 | (uint32_t)(v[i]->requests & 0xff);
        if (i > 0 && memcmp(k->owner, v[i - 1]->key.owner, 16) == 0 &&
            k->day == v[i - 1]->key.day &&
            memcmp(k->image_id, v[i - 1]->key.image_id, sizeof(k->image_id)) == 0) {
            out[m - 1].npoints++;
            continue;
        }
        struct db_sketch *d = &out[m++];
        memset(d, 0, sizeof(*d));
        owner_hex(k, d->owner);
        timeutil_format_date((int64_t)k->day * 86400, d->date);
        memcpy(d->image_id, k->image_id, sizeof(k->image_id));
        d->image_id[7] = '\0';
        d->points = &p[i];
        d->npoints = 1;
    }
    free(v);
    if (rc != 0) {
        free(p);
        free(out);
        p = NULL;
        out = NULL;
        m = 0;
    }
    *sk = out;
    *nsk = m;
    *pts = p;
    return rc;
}

/* Write table t in one transaction under flush id `id`, then its sketches.
 * Returns 0 (t cleared) or an error (t kept: a retry under the same id
 * adds the counts once, and the sketches' register max is idempotent). */
static int write_table(struct rollup *ru, struct table *t, const char *id, char *err, size_t errlen)
{
    struct table *derived = NULL;
    struct db_count *rows = NULL;
    struct db_sketch *sk = NULL;
    uint32_t *pts = NULL;
    size_t n = 0, nsk = 0;
    int rc = 0;
    if (t->count == 0)
        return 0;
    derived = table_new(64);
    if (derived == NULL) {
        rc = PF_ENOMEM;
        goto done;
    }
    /* The owners' day totals (and so their months'), hourly totals and
     * client rows, summed from the keys: in the same transaction, so that
     * each always equals the sum of its parts. */
    for (size_t i = 0; rc == 0 && i <= t->mask; i++) {
        const struct slot *s = &t->slots[i];
        struct key dk;
        if (!s->used || s->key.kind == KIND_STATUS)
            continue;
        memset(&dk, 0, sizeof(dk));
        memcpy(dk.owner, s->key.owner, 16);
        dk.day = s->key.day;
        if (s->key.kind == KIND_SKETCH) { /* the owner's register: the max of its images' */
            dk.kind = KIND_SKETCH;
            dk.status = s->key.status;
            rc = table_add(NULL, derived, &dk, s->requests, 0, 0);
            continue;
        }
        if (s->key.kind == KIND_DAILY) {
            dk.kind = KIND_OWNER_DAY;
            rc = table_add_slot(NULL, derived, &dk, s);
            continue;
        }
        dk.kind = KIND_HOUR; /* the owner's hour (image "", every client) */
        rc = table_add_slot(NULL, derived, &dk, s);
        memcpy(dk.image_id, s->key.image_id, sizeof(dk.image_id)); /* the image's hour */
        if (rc == 0)
            rc = table_add_slot(NULL, derived, &dk, s);
        dk.kind = KIND_CLIENT; /* the image's day by client, then the owner's */
        dk.day = (int32_t)(s->key.day / 24);
        dk.pad[0] = s->key.pad[0];
        if (rc == 0)
            rc = table_add(NULL, derived, &dk, s->requests, s->bytes, 0);
        memset(dk.image_id, 0, sizeof(dk.image_id));
        if (rc == 0)
            rc = table_add(NULL, derived, &dk, s->requests, s->bytes, 0);
    }
    if (rc == 0 && (rows = malloc((t->count + derived->count + 1) * 2 * sizeof(*rows))) == NULL)
        rc = PF_ENOMEM;
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        struct table *from = pass == 0 ? t : derived;
        for (size_t i = 0; i <= from->mask; i++) {
            const struct slot *s = &from->slots[i];
            struct db_count c;
            if (!s->used || s->key.kind == KIND_SKETCH || (pass == 0 && s->key.kind == KIND_HOUR))
                continue;
            memset(&c, 0, sizeof(c));
            owner_hex(&s->key, c.owner);
            memcpy(c.image_id, s->key.image_id, sizeof(s->key.image_id));
            c.image_id[7] = '\0';
            if (s->key.kind == KIND_HOUR) {
                c.kind = DB_COUNT_HOURLY;
                c.hour = s->key.day;
                timeutil_format_date(c.hour * 3600, c.date);
            } else
                timeutil_format_date((int64_t)s->key.day * 86400, c.date);
            switch (s->key.kind) {
            case KIND_STATUS:
                c.kind = DB_COUNT_STATUS;
                c.status = s->key.status;
                break;
            case KIND_DAILY:
                c.kind = DB_COUNT_DAILY;
                c.variant = variant_table[s->key.variant % VARIANT_COUNT].name;
                memcpy(c.country, s->key.country, 2);
                break;
            case KIND_OWNER_DAY:
                c.kind = DB_COUNT_OWNER_DAY;
                break;
            case KIND_CLIENT: /* one row per class: no bots' share to split */
                c.kind = DB_COUNT_CLIENT;
                c.client = s->key.pad[0];
                c.requests = s->requests;
                c.bytes = s->bytes;
                rows[n++] = c;
                continue;
            default:
                break;
            }
            emit(rows, &n, &c, s);
        }
    }
    if (rc == 0)
        rc = make_sketches(t, derived, &sk, &nsk, &pts);
    if (rc == PF_ENOMEM)
        snprintf(err, errlen, "out of memory");
    int64_t dropped = 0;
    if (rc == 0)
        rc = db_counts_add(ru->db, id, rows, n, &dropped, err, errlen);
    if (rc == 0 && nsk > 0)
        rc = db_sketches_merge(ru->db, sk, nsk, err, errlen);
    if (rc == 0) {
        atomic_fetch_sub_explicit(&ru->live_keys, t->count, memory_order_relaxed);
        table_clear(t);
        atomic_fetch_add(&ru->flushes, 1);
        atomic_fetch_add(&ru->rows, n);
        atomic_fetch_add(&ru->batched, (uint64_t)dropped);
    }
done:
    table_free(derived);
    free(rows);
    free(sk);
    free(pts);
    return rc;
}

/* Take every shard's counts and write them. Returns 0 when nothing is left
 * pending. */
static int flush(struct rollup *ru)
{
    char err[256];
    pthread_mutex_lock(&ru->flush_mu);
    pthread_mutex_lock(&ru->list_mu);
    struct shard *shards = ru->shards;
    pthread_mutex_unlock(&ru->list_mu);
    for (struct shard *sh = shards; sh != NULL; sh = sh->next) {
        pthread_mutex_lock(&sh->mu);
        struct table *taken = sh->active;
        sh->active = sh->spare;
        pthread_mutex_unlock(&sh->mu);
        merge(ru, ru->pending, taken);
        sh->spare = taken;
    }
    int rc = 0;
    int64_t t0 = timeutil_mono_ns();
    int wrote = ru->inflight != NULL || ru->pending->count > 0;
    if (ru->inflight != NULL) {
        rc = write_table(ru, ru->inflight, ru->inflight_id, err, sizeof(err));
        if (rc == 0) {
            table_free(ru->inflight);
            ru->inflight = NULL;
        }
    }
    if (rc == 0 && ru->pending->count > 0) {
        char id[48];
        snprintf(id, sizeof(id), "%s.%016llx.%llu", ru->node_id, (unsigned long long)ru->run_id,
                 (unsigned long long)ru->next_flush++);
        rc = write_table(ru, ru->pending, id, err, sizeof(err));
        /* (Without memory for a new table the counts stay in `pending`, and a
         * write that failed yet committed would count twice: rare enough.) */
        struct table *fresh = rc != 0 ? table_new(4096) : NULL;
        if (fresh != NULL) { /* aside, as it is, to be retried under its id */
            ru->inflight = ru->pending;
            ru->pending = fresh;
            snprintf(ru->inflight_id, sizeof(ru->inflight_id), "%s", id);
        }
    }
    atomic_store(&ru->pending_keys,
                 ru->pending->count + (ru->inflight != NULL ? ru->inflight->count : 0));
    if (wrote && rc == 0)
        metrics_observe_ns(ru->m_flush, (uint64_t)(timeutil_mono_ns() - t0));
    /* An unreachable database is logged by the database layer, once. */
    if (rc == PF_EUNAVAIL)
        atomic_fetch_add(&ru->failures, 1);
    else if (rc != 0) {
        atomic_fetch_add(&ru->failures, 1);
        int64_t now = timeutil_mono_ms() / 1000;
        if (ru->log && now - ru->last_error_log >= 60) {
            fprintf(ru->log,
                    "pixflare: analytics: cannot write realtime counts (%s); %zu keys kept, "
                    "retrying\n",
                    err, (size_t)atomic_load(&ru->pending_keys));
            ru->last_error_log = now;
        }
    }
    pthread_mutex_unlock(&ru->flush_mu);
    return rc;
}

static void flush_tick(void *arg)
{
    struct rollup *ru = arg;
    char err[256];
    flush(ru);
    /* The salts of the unique-clients hash: a database call only when a
     * day turns (a database that refuses is tried again next tick). */
    if (ru->uniq != NULL &&
        uniq_refresh(ru->uniq, ru->db, (int64_t)time(NULL), err, sizeof(err)) != 0 &&
        ru->log != NULL && timeutil_mono_ms() / 1000 - ru->last_salt_log >= 60) {
        fprintf(ru->log,
                "pixflare: analytics: cannot fetch the day's salt for unique clients (%s)\n", err);
        ru->last_salt_log = timeutil_mono_ms() / 1000;
    }
}

static void collect(void *ctx, struct metrics_out *out)
{
    struct rollup *ru = ctx;
    static const struct {
        const char *name, *type, *help;
    } f[] = {
        {"pixflare_realtime_flushes_total", "counter",
         "Realtime flushes that wrote counts to the database."},
        {"pixflare_realtime_flush_rows_total", "counter",
         "Rows the realtime flushes wrote (each adds to a daily count)."},
        {"pixflare_realtime_flush_failures_total", "counter",
         "Realtime flushes that failed (their counts are kept and retried)."},
        {"pixflare_realtime_pending_keys", "gauge",
         "Keys counted in memory and not yet in the database."},
    };
    double v[4] = {(double)atomic_load(&ru->flushes), (double)atomic_load(&ru->rows),
                   (double)atomic_load(&ru->failures), (double)atomic_load(&ru->live_keys)};
    for (int i = 0; i < 4; i++) {
        metrics_out_family(out, f[i].name, f[i].type, f[i].help);
        metrics_out_sample(out, f[i].name, NULL, v[i]);
    }
}

int rollup_open(const char *database, const char *node_id, int flush_ms, size_t max_keys,
                struct uniq *uniq, FILE *log, struct rollup **out, char *err, size_t errlen)
{
    struct rollup *ru = calloc(1, sizeof(*ru));
    if (ru == NULL)
        return PF_ENOMEM;
    ru->flush_ms = flush_ms > 1 ? flush_ms : 2;
    ru->max_keys = max_keys;
    ru->log = log;
    ru->gen = atomic_fetch_add(&next_gen, 1);
    ru->last_error_log = -1000;
    ru->last_salt_log = -1000;
    ru->uniq = uniq;
    snprintf(ru->node_id, sizeof(ru->node_id), "%s", node_id);
    if (getrandom(&ru->run_id, sizeof(ru->run_id), 0) != sizeof(ru->run_id))
        ru->run_id = (uint64_t)timeutil_mono_ms() ^ ((uint64_t)getpid() << 32);
    pthread_mutex_init(&ru->list_mu, NULL);
    pthread_mutex_init(&ru->flush_mu, NULL);
    int rc = db_open(database, &ru->db, err, errlen);
    /* A busy database fails the flush quickly; the counts wait for the next
     * one, and a stop is not held up for long. */
    if (rc == 0)
        db_set_busy_timeout(ru->db, BUSY_TIMEOUT_MS);
    /* The salts before the first request (the flusher retries a failure). */
    char why[256];
    if (rc == 0 && uniq != NULL &&
        uniq_refresh(uniq, ru->db, (int64_t)time(NULL), why, sizeof(why)) != 0 && log != NULL)
        fprintf(log, "pixflare: analytics: cannot fetch the day's salt for unique clients (%s)\n",
                why);
    if (rc == 0 && (ru->pending = table_new(4096)) == NULL)
        rc = PF_ENOMEM;
    ru->m_flush = metrics_histogram("pixflare_realtime_flush_duration_seconds", "",
                                    "Time of one realtime flush that wrote counts.",
                                    metrics_latency_bounds, metrics_latency_nbounds);
    if (rc == 0)
        rc = metrics_collector_add(collect, ru);
    /* Half the period: a count waits at most that for the next swap, then
     * its transaction; so it reaches the database within flush_ms. */
    if (rc == 0 && ticker_start(ru->flush_ms / 2, flush_tick, ru, &ru->flusher) != 0) {
        snprintf(err, errlen, "cannot start the analytics flusher");
        rc = PF_ENOMEM;
    }
    if (rc != 0) {
        rollup_close(ru, NULL);
        return rc;
    }
    *out = ru;
    return 0;
}

void rollup_get_stats(struct rollup *ru, struct rollup_stats *st)
{
    st->flushes = atomic_load(&ru->flushes);
    st->rows = atomic_load(&ru->rows);
    st->failures = atomic_load(&ru->failures);
    st->overflow = atomic_load(&ru->overflow);
    st->pending_keys = atomic_load(&ru->pending_keys);
    st->batched = atomic_load(&ru->batched);
}

void rollup_close(struct rollup *ru, struct rollup_stats *final)
{
    if (ru == NULL)
        return;
    metrics_collector_remove(ru);
    if (ru->flusher != NULL) {
        ticker_stop(ru->flusher);
        /* The final flush: a busy database gets a few more chances, for at
         * most about FINAL_TRIES * (BUSY_TIMEOUT_MS + 200 ms). */
        struct timespec pause = {0, 200 * 1000 * 1000};
        int tries = 0;
        while (flush(ru) != 0 && ++tries < FINAL_TRIES)
            nanosleep(&pause, NULL);
        if ((ru->pending->count > 0 || ru->inflight != NULL) && ru->log) {
            int64_t req = 0;
            for (int k = 0; k < 2; k++) {
                struct table *t = k == 0 ? ru->pending : ru->inflight;
                for (size_t i = 0; t != NULL && i <= t->mask; i++)
                    if (t->slots[i].used && t->slots[i].key.kind == KIND_STATUS)
                        req += t->slots[i].requests;
            }
            fprintf(ru->log,
                    "pixflare: analytics: %lld requests could not be written to the realtime "
                    "tables; the batch aggregation restores them from the event store\n",
                    (long long)req);
        }
    }
    uint64_t overflow = atomic_load(&ru->overflow);
    if (overflow > 0 && ru->log)
        fprintf(ru->log,
                "pixflare: analytics: %llu requests exceeded the realtime memory bound; the "
                "batch aggregation restores them from the event store\n",
                (unsigned long long)overflow);
    uint64_t batched = atomic_load(&ru->batched);
    if (batched > 0 && ru->log)
        fprintf(ru->log,
                "pixflare: analytics: %llu requests arrived for dates the batch had already "
                "aggregated (it counted them) or the retention had purged; not added again\n",
                (unsigned long long)batched);
    if (final != NULL)
        rollup_get_stats(ru, final);
    for (struct shard *sh = ru->shards, *next; sh != NULL; sh = next) {
        next = sh->next;
        table_free(sh->active);
        table_free(sh->spare);
        pthread_mutex_destroy(&sh->mu);
        free(sh);
    }
    table_free(ru->pending);
    table_free(ru->inflight);
    db_close(ru->db);
    pthread_mutex_destroy(&ru->list_mu);
    pthread_mutex_destroy(&ru->flush_mu);
    free(ru);
}
