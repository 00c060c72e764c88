/* batch.c - see batch.h.
 *
 * Grouping: each reader thread counts its files' events into its own
 * open-addressing table keyed by (owner, image, variant, country, status),
 * one probe per event. The tables are merged, and the distinct keys (far
 * fewer than events) are sorted twice: by the analytics_daily key, to sum
 * the statuses counted there (200, 206, 304) and insert in key order, and by
 * (owner, status) for analytics_status_daily. What counts where mirrors the
 * realtime rollup exactly (rollup_counts_daily()), so that both agree. */
#include "jobs/batch.h"

#include "store/db.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "base/keyhash.h"
#include "analytics/rollup.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NO_VARIANT 255
#define STOP_CHECK_EVENTS 65536

/* A grouping key as four words, built in registers (byte-wise stores
 * followed by word loads would stall on store forwarding):
 *   w[0], w[1]  owner hash (16 bytes, as stored)
 *   w[2]        image id, 8 bytes NUL-padded
 *   w[3]        country (bytes 0-1), variant (byte 2), status (bytes 4-5) */
struct gkey {
    uint64_t w[4];
};

struct gslot {
    struct gkey k;
    uint64_t requests; /* 0: empty slot */
    uint64_t bytes;
};

struct group {
    struct gslot *slots;
    size_t mask, count;
    uint64_t seen;
    const atomic_int *stop;
    int oom;
};

static inline uint64_t mul_fold(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* XXH3's 16-byte mixing step, twice: the owner words are already keyed
 * hash output, and the rest is mixed by the multiplies. */
static inline uint64_t gkey_hash(const struct gkey *k)
{
    uint64_t h = mul_fold(k->w[0] ^ 0xbe4ba423396cfeb8ULL, k->w[1] ^ 0x1cad21f72c81017cULL) ^
                 mul_fold(k->w[2] ^ 0xdb979083e96dd4deULL, k->w[3] ^ 0x1f67b3b7a4a44072ULL);
    h ^= h >> 37;
    h *= 0x165667919e3779f9ULL;
    return h ^ (h >> 32);
}

static inline int gkey_eq(const struct gkey *a, const struct gkey *b)
{
    return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) |
            (a->w[3] ^ b->w[3])) == 0;
}

static uint64_t load64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void gkey_make(struct gkey *k, const struct event *ev)
{
    uint8_t variant = ev->variant < 0 ? NO_VARIANT : (uint8_t)ev->variant;
    k->w[0] = load64(ev->owner);
    k->w[1] = load64(ev->owner + 8);
    k->w[2] = load64(ev->image_id);
    k->w[3] = (uint64_t)(uint8_t)ev->country[0] | (uint64_t)(uint8_t)ev->country[1] << 8 |
              (uint64_t)variant << 16 | (uint64_t)(uint16_t)ev->status << 32;
}

static const uint8_t *gkey_owner(const struct gkey *k)
{
    return (const uint8_t *)&k->w[0];
}

static const char *gkey_image(const struct gkey *k)
{
    return (const char *)&k->w[2];
}

static uint8_t gkey_variant(const struct gkey *k)
{
    return (uint8_t)(k->w[3] >> 16);
}

static int gkey_status(const struct gkey *k)
{
    return (int)(uint16_t)(k->w[3] >> 32);
}

static void gkey_country(const struct gkey *k, char out[3])
{
    out[0] = (char)(k->w[3] & 0xff);
    out[1] = (char)((k->w[3] >> 8) & 0xff);
    out[2] = '\0';
}

/* Tables of 2 MiB and more are mapped on huge pages where the kernel
 * allows it (transparent huge pages in madvise mode, Debian's default): a
 * probe into a table of many 4 KiB pages would miss the TLB as well as the
 * cache. */
#define HUGE_BYTES (2u << 20)

static struct gslot *slots_alloc(size_t cap)
{
    size_t bytes = cap * sizeof(struct gslot);
    if (bytes < HUGE_BYTES)
        return calloc(cap, sizeof(struct gslot));
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    madvise(m, bytes, MADV_HUGEPAGE);
    return m;
}

static void slots_free(struct gslot *slots, size_t cap)
{
    if (slots == NULL)
        return;
    if (cap * sizeof(struct gslot) < HUGE_BYTES)
        free(slots);
    else
        munmap(slots, cap * sizeof(struct gslot));
}

static int group_init(struct group *g, size_t cap, const atomic_int *stop)
{
    memset(g, 0, sizeof(*g));
    g->slots = slots_alloc(cap);
    g->mask = cap - 1;
    g->stop = stop;
    return g->slots ? 0 : PF_ENOMEM;
}

static struct gslot *group_find(struct group *g, const struct gkey *k, uint64_t h)
{
    for (size_t i = h & g->mask;; i = (i + 1) & g->mask) {
        struct gslot *s = &g->slots[i];
        if (s->requests == 0 || gkey_eq(&s->k, k))
            return s;
    }
}

static int group_grow(struct group *g)
{
    size_t cap = (g->mask + 1) * 2, old_cap = g->mask + 1;
    struct gslot *slots = slots_alloc(cap), *old = g->slots;
    if (slots == NULL)
        return PF_ENOMEM;
    g->slots = slots;
    g->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].requests != 0)
            *group_find(g, &old[i].k, gkey_hash(&old[i].k)) = old[i];
    slots_free(old, old_cap);
    return 0;
}

static int group_add(struct group *g, const struct gkey *k, uint64_t requests, uint64_t bytes)
{
    uint64_t h = gkey_hash(k);
    struct gslot *s = group_find(g, k, h);
    if (s->requests == 0) {
        if ((g->count + 1) * 4 >
            (g->mask + 1) * 3) { /* load 3/4: a smaller table misses the caches less */
            if (group_grow(g) != 0)
                return PF_ENOMEM;
            s = group_find(g, k, h);
        }
        s->k = *k;
        g->count++;
    }
    s->requests += requests;
    s->bytes += bytes;
    return 0;
}

/* The scan's callback: one reader's events into its table. The slots of
 * a whole batch are prefetched before any is probed: with a table larger
 * than the CPU caches, each probe would otherwise wait on memory. */
static int group_events(void *ctx, const struct event *evs, size_t n)
{
    struct group *g = ctx;
    struct gkey k[64];
    uint64_t h[64];
    if (n > 64)
        n = 64; /* evlog's batch size; never more */
    for (size_t i = 0; i < n; i++) {
        gkey_make(&k[i], &evs[i]);
        h[i] = gkey_hash(&k[i]);
        __builtin_prefetch(&g->slots[h[i] & g->mask], 1);
    }
    for (size_t i = 0; i < n; i++) {
        struct gslot *s = group_find(g, &k[i], h[i]);
        if (s->requests != 0) {
            s->requests++;
            s->bytes += evs[i].bytes;
        } else if (group_add(g, &k[i], 1, evs[i].bytes) != 0) {
            g->oom = 1;
            return PF_ENOMEM;
        }
    }
    g->seen += n;
    if (g->seen % STOP_CHECK_EVENTS < n && g->stop && atomic_load(g->stop))
        return PF_ECONFLICT;
    return 0;
}

/* Variants sort by name in analytics_daily's key: rank of each index, by
 * the variant byte (NO_VARIANT, a path that does not parse, ranks last;
 * such keys make status rows only). */
static uint8_t variant_rank[256];
static pthread_once_t rank_once = PTHREAD_ONCE_INIT;

static void rank_variants(void)
{
    for (int i = 0; i < VARIANT_COUNT; i++) {
        int r = 0;
        for (int j = 0; j < VARIANT_COUNT; j++)
            r += strcmp(variant_table[j].name, variant_table[i].name) < 0;
        variant_rank[i] = (uint8_t)r;
    }
    for (int i = VARIANT_COUNT; i < 256; i++)
        variant_rank[i] = (uint8_t)i;
}

static inline int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

/* Where a key sorts after its owner and image: variant name, country,
 * status. */
static inline uint64_t tail_order(const struct gkey *k)
{
    return (uint64_t)variant_rank[gkey_variant(k)] << 40 | (k->w[3] & 0xff) << 32 |
           ((k->w[3] >> 8) & 0xff) << 24 | (uint64_t)gkey_status(k);
}

/* All keys in analytics_daily's key order (owner hex, which keeps the
 * bytes' order; image id; variant name; country), then status. Words are
 * compared as big-endian numbers, i.e. as bytes, without memcmp calls. */
static int cmp_key(const void *a, const void *b)
{
    const struct gkey *x = &((const struct gslot *)a)->k, *y = &((const struct gslot *)b)->k;
    for (int i = 0; i < 3; i++)
        if (x->w[i] != y->w[i])
            return cmp_u64(__builtin_bswap64(x->w[i]), __builtin_bswap64(y->w[i]));
    return cmp_u64(tail_order(x), tail_order(y));
}

/* Same analytics_daily row: all but the status. */
static int same_daily(const struct gkey *x, const struct gkey *y)
{
    return x->w[0] == y->w[0] && x->w[1] == y->w[1] && x->w[2] == y->w[2] &&
           ((x->w[3] ^ y->w[3]) & 0xffffff) == 0;
}

static void owner_hex(const uint8_t owner[16], char out[33])
{
    static const uint8_t zero[16];
    if (memcmp(owner, zero, 16) == 0)
        out[0] = '\0';
    else
        keyhash_hex(owner, 16, out);
}

/* Add one key's count to its owner's status rows (the owner's run of keys
 * is being read; s[first..*ns) are its rows so far, few). */
static void add_status(struct db_status_row *s, size_t first, size_t *ns, const char *owner,
                       int status, int64_t requests)
{
    for (size_t i = first; i < *ns; i++)
        if (s[i].status == status) {
            s[i].requests += requests;
            return;
        }
    /* Insert in status order. */
    size_t at = *ns;
    while (at > first && s[at - 1].status > status) {
        s[at] = s[at - 1];
        at--;
    }
    memcpy(s[at].owner, owner, 33);
    s[at].status = status;
    s[at].requests = requests;
    (*ns)++;
}

/* The grouped counts as database rows, each list in its table's key order,
 * from one sort of the distinct keys (far fewer than events). `keys` is
 * sorted in place. */
static int make_rows(struct gslot *keys, size_t n, struct db_daily_row **daily, size_t *ndaily,
                     struct db_status_row **status, size_t *nstatus)
{
    size_t nd = 0, ns = 0, owner_first = 0, last = 0;
    struct db_daily_row *d = malloc((n ? n : 1) * sizeof(*d));
    struct db_status_row *s = malloc((n ? n : 1) * sizeof(*s));
    char owner[33] = "";
    if (d == NULL || s == NULL) {
        free(d);
        free(s);
        return PF_ENOMEM;
    }
    qsort(keys, n, sizeof(*keys), cmp_key);
    for (size_t i = 0; i < n; i++) {
        const struct gkey *k = &keys[i].k;
        if (i == 0 || k->w[0] != keys[i - 1].k.w[0] || k->w[1] != keys[i - 1].k.w[1]) {
            owner_hex(gkey_owner(k), owner);
            owner_first = ns;
        }
        add_status(s, owner_first, &ns, owner, gkey_status(k), (int64_t)keys[i].requests);
        /* Daily: the statuses analytics_daily counts, with a variant. */
        if (!rollup_counts_daily(gkey_status(k)) || gkey_variant(k) == NO_VARIANT)
            continue;
        /* The keys of one row differ only in status, so they are adjacent
         * (a status analytics_daily leaves out may sit between them). */
        if (nd > 0 && same_daily(k, &keys[last].k)) {
            d[nd - 1].requests += (int64_t)keys[i].requests;
            d[nd - 1].bytes += (int64_t)keys[i].bytes;
            last = i;
            continue;
        }
        last = i;
        struct db_daily_row *r = &d[nd++];
        memcpy(r->owner, owner, 33);
        memcpy(r->image_id, gkey_image(k), 8);
        r->image_id[7] = '\0';
        r->variant = variant_table[gkey_variant(k)].name;
        gkey_country(k, r->country);
        r->requests = (int64_t)keys[i].requests;
        r->bytes = (int64_t)keys[i].bytes;
    }
    *daily = d;
    *ndaily = nd;
    *status = s;
    *nstatus = ns;
    return 0;
}

/* Default readers: one per CPU, at most 8. Each holds a table of every
 * distinct key it meets, and past a few readers the scan is bound by memory
 * bandwidth anyway. */
static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

/* Sleep up to `seconds`, returning early (PF_ECONFLICT) when stopped. */
static int pause_unless_stopped(int64_t seconds, const atomic_int *stop)
{
    for (int64_t ms = seconds * 1000; ms > 0; ms -= 100) {
        if (stop && atomic_load(stop))
            return PF_ECONFLICT;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return stop && atomic_load(stop) ? PF_ECONFLICT : 0;
}

/* Scan the day into one table of distinct keys. OUT: *keys (compacted,
 * malloc'd), *n, *files. */
static int scan_group(const struct config *cfg, int64_t day, const struct batch_opts *o,
                      struct gslot **keys, size_t *n, struct evlog_file_stats *files, char *err,
                      size_t errlen)
{
    int threads = o->threads < 1 ? online_cpus() : o->threads;
    struct group *g = calloc((size_t)threads, sizeof(*g));
    void **ctxs = calloc((size_t)threads, sizeof(*ctxs));
    int rc = g && ctxs ? 0 : PF_ENOMEM;
    for (int t = 0; rc == 0 && t < threads; t++) {
        rc = group_init(&g[t], 1 << 12, o->stop);
        ctxs[t] = &g[t];
    }
    if (rc == 0) {
        rc = evlog_scan_mt(cfg->data_dir, cfg->dataset, day, day, threads, group_events, ctxs,
                           stderr, files);
        if (rc == PF_ENOTFOUND) /* nothing was ever recorded: no events */
            rc = 0;
    }
    /* Merge every reader's table into the first, freeing each once merged:
     * after the scan, at most two full tables are alive at a time. */
    for (int t = 1; rc == 0 && t < threads; t++) {
        for (size_t i = 0; rc == 0 && i <= g[t].mask; i++)
            if (g[t].slots[i].requests != 0)
                rc =
                    group_add(&g[0], &g[t].slots[i].k, g[t].slots[i].requests, g[t].slots[i].bytes);
        slots_free(g[t].slots, g[t].mask + 1);
        g[t].slots = NULL;
    }
    if (rc == 0 && (*keys = malloc((g[0].count ? g[0].count : 1) * sizeof(**keys))) == NULL)
        rc = PF_ENOMEM;
    if (rc == 0) {
        size_t m = 0;
        for (size_t i = 0; i <= g[0].mask; i++)
            if (g[0].slots[i].requests != 0)
                (*keys)[m++] = g[0].slots[i];
        *n = m;
    }
    if (rc == PF_ENOMEM)
        snprintf(err, errlen, "out of memory grouping the events");
    else if (rc == PF_ECONFLICT)
        snprintf(err, errlen, "stopped");
    else if (rc != 0)
        snprintf(err, errlen, "cannot list the event store under %s/events/%s: %s", cfg->data_dir,
                 cfg->dataset, strerror(errno));
    for (int t = 0; g && t < threads; t++)
        slots_free(g[t].slots, g[t].mask + 1);
    free(g);
    free(ctxs);
    return rc;
}

int batch_aggregate_day(const struct config *cfg, struct db *db, int64_t day,
                        const struct batch_opts *o, struct batch_day *out, char *err, size_t errlen)
{
    char date[11];
    struct gslot *keys = NULL;
    struct db_daily_row *daily = NULL;
    struct db_status_row *status = NULL;
    size_t nkeys = 0, ndaily = 0, nstatus = 0;
    struct db_batch_stats bs;
    int64_t now = (int64_t)time(NULL), end = (day + 1) * 86400, t0, t1;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    out->day = day;
    err[0] = '\0';
    timeutil_format_date(day * 86400, date);
    pthread_once(&rank_once, rank_variants);
    if (cfg->engine != CONFIG_ENGINE_EMBEDDED) {
        snprintf(err, errlen,
                 "no event store to aggregate from: ANALYTICS_ENGINE is '%s' (batch aggregation "
                 "reads the embedded event store)",
                 cfg->engine == CONFIG_ENGINE_NONE ? "none" : "clickhouse");
        return PF_EINVAL;
    }
    char purged[16] = "";
    if (db_meta_get(db, "cleanup_before", purged, sizeof(purged)) == 0 &&
        strcmp(date, purged) < 0) {
        snprintf(err, errlen,
                 "%s was purged by the retention (a cleanup removed the dates before %s); "
                 "aggregating it again would drop it from its month's totals",
                 date, purged);
        return PF_EINVAL;
    }
    if (day < now / 86400 - cfg->retention_days + 1) {
        char cut[11];
        timeutil_format_date((now / 86400 - cfg->retention_days + 1) * 86400, cut);
        snprintf(err, errlen,
                 "%s is older than the retention (ANALYTICS_RETENTION_DAYS=%d keeps dates from "
                 "%s): its rows and events are purged",
                 date, cfg->retention_days, cut);
        return PF_EINVAL;
    }
    if (now < end) {
        snprintf(err, errlen, "%s has not ended yet (UTC): a day is aggregated once it is over",
                 date);
        return PF_EINVAL;
    }
    if (now < end + BATCH_GRACE_SECONDS &&
        pause_unless_stopped(end + BATCH_GRACE_SECONDS - now, o->stop) != 0) {
        snprintf(err, errlen, "stopped");
        return PF_ECONFLICT;
    }
    t0 = timeutil_mono_ns();
    rc = scan_group(cfg, day, o, &keys, &nkeys, &out->files, err, errlen);
    int64_t ts = timeutil_mono_ns();
    for (size_t i = 0; rc == 0 && i < nkeys; i++)
        out->events += keys[i].requests; /* the date's events (a file's stray ones left out) */
    if (rc == 0)
        rc = make_rows(keys, nkeys, &daily, &ndaily, &status, &nstatus);
    if (rc == PF_ENOMEM && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    t1 = timeutil_mono_ns();
    out->scan_ms = (ts - t0) / 1000000;
    out->sort_ms = (t1 - ts) / 1000000;
    if (rc == 0 && out->files.unreadable > 0) {
        snprintf(err, errlen,
                 "%d event file(s) of %s could not be read (see above); the date's rows are "
                 "left as they were",
                 out->files.unreadable, date);
        rc = PF_EIO;
    }
    uint64_t damaged =
        out->files.damaged_bytes + out->files.tail_bytes + (uint64_t)out->files.bad_header;
    if (rc == 0 && damaged > 0 && !o->force) {
        snprintf(err, errlen,
                 "the event store is damaged for %s (%llu bytes skipped, %d bad file(s), see "
                 "above); the date's rows are left as they were. Use --force to aggregate the "
                 "%llu readable events",
                 date, (unsigned long long)(out->files.damaged_bytes + out->files.tail_bytes),
                 out->files.bad_header, (unsigned long long)out->events);
        rc = PF_EFORMAT;
    }
    if (rc == 0 && out->events == 0 && !o->force) {
        int64_t counted = 0;
        rc = db_day_requests(db, date, &counted);
        if (rc != 0)
            snprintf(err, errlen, "cannot read the analytics tables");
        else if (counted > 0) {
            snprintf(err, errlen,
                     "the event store has no events for %s, but the tables count %lld "
                     "requests for it (realtime, or events since removed); they are left as "
                     "they were. Use --force to replace them with nothing",
                     date, (long long)counted);
            rc = PF_EFORMAT;
        }
    }
    if (rc == 0 && o->stop && atomic_load(o->stop)) {
        snprintf(err, errlen, "stopped");
        rc = PF_ECONFLICT;
    }
    if (rc == 0) {
        char why[256];
        rc = db_batch_replace_day(db, date, daily, ndaily, status, nstatus, (int64_t)out->events,
                                  &bs, why, sizeof(why));
        if (rc != 0)
            snprintf(err, errlen,
                     "database error writing %s: %s; the date's rows are left as "
                     "they were",
                     date, why);
    }
    out->db_ms = (timeutil_mono_ns() - t1) / 1000000;
    if (rc == 0) {
        out->daily_rows = ndaily;
        out->status_rows = nstatus;
        out->requests = bs.requests;
        out->drift = bs.drift;
    }
    free(keys);
    free(daily);
    free(status);
    return rc;
}

int batch_due_days(const struct config *cfg, struct db *db, const struct cron_expr *cron,
                   int64_t now, int64_t **days, size_t *n)
{
    char last[16] = "", date[11];
    int64_t today = now / 86400, last_day = -1;
    int64_t from = today - cfg->retention_days + 1;
    int64_t *v = malloc((size_t)(today - from + 1) * sizeof(*v));
    size_t cnt = 0;
    int rc = v ? 0 : PF_ENOMEM;
    if (rc == 0) {
        int g = db_meta_get(db, "last_aggregation_date", last, sizeof(last));
        if (g == 0 && timeutil_parse_date(last, &last_day) == 0)
            last_day /= 86400;
        else if (g != 0 && g != PF_ENOTFOUND)
            rc = g;
    }
    if (rc == 0) {
        /* Dates a cleanup purged are never owed (a smaller retention then). */
        char purged[16];
        int64_t t = 0;
        int g = db_meta_get(db, "cleanup_before", purged, sizeof(purged));
        if (g == 0 && timeutil_parse_date(purged, &t) == 0 && t / 86400 > from)
            from = t / 86400;
        else if (g != 0 && g != PF_ENOTFOUND)
            rc = g;
    }
    for (int64_t d = from; rc == 0 && d < today; d++) {
        int64_t fire = 0;
        int done = 0;
        /* The date's first slot: a fire time at or after its end. */
        if (cron_next(cron, (d + 1) * 86400 - 1, &fire) != 0 || fire > now)
            continue;
        timeutil_format_date(d * 86400, date);
        rc = db_batch_day_done(db, date, &done);
        if (rc != 0 || done)
            continue;
        /* Before the last aggregated date (or before any), a date without
         * events has nothing to aggregate. */
        if (d <= last_day || last_day < 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/events/%s/%s", cfg->data_dir, cfg->dataset, date);
            if (access(path, F_OK) != 0)
                continue;
        }
        v[cnt++] = d;
    }
    if (rc != 0) {
        free(v);
        return rc;
    }
    *days = v;
    *n = cnt;
    return 0;
}

int batch_cleanup(const struct config *cfg, struct db *db, int64_t now, const atomic_int *stop,
                  struct batch_cleanup *out, char *err, size_t errlen)
{
    char date[11], iso[21], why[256], value[64];
    struct db_cleanup_stats cs;
    int64_t today = now / 86400;
    memset(out, 0, sizeof(*out));
    out->cutoff_day = today - cfg->retention_days + 1;
    timeutil_format_date(out->cutoff_day * 86400, date);
    int rc = db_cleanup_before(db, date, stop, &cs, why, sizeof(why));
    out->daily_rows = cs.daily_rows;
    out->status_rows = cs.status_rows;
    out->dates = cs.dates;
    if (rc == PF_ECONFLICT) {
        snprintf(err, errlen, "stopped");
        return rc;
    }
    if (rc != 0) {
        snprintf(err, errlen, "database error deleting rows before %s: %s", date, why);
        return rc;
    }
    /* Raw events of yesterday and today stay whatever the retention: the
     * server may still be writing them, and yesterday's are the batch's
     * input. */
    int64_t events_cutoff = out->cutoff_day < today - 1 ? out->cutoff_day : today - 1;
    rc = evlog_purge_before(cfg->data_dir, cfg->dataset, events_cutoff, &out->files);
    if (rc != 0) {
        snprintf(err, errlen, "cannot delete event files under %s/events/%s: %s", cfg->data_dir,
                 cfg->dataset, strerror(errno));
        return rc;
    }
    timeutil_format_iso8601(now, iso);
    rc = db_meta_set(db, "last_cleanup_at", iso, why, sizeof(why));
    snprintf(value, sizeof(value), "%lld", (long long)(out->daily_rows + out->status_rows));
    if (rc == 0)
        rc = db_meta_set(db, "last_cleanup_rows", value, why, sizeof(why));
    snprintf(value, sizeof(value), "%llu", (unsigned long long)out->files);
    if (rc == 0)
        rc = db_meta_set(db, "last_cleanup_files", value, why, sizeof(why));
    if (rc != 0)
        snprintf(err, errlen, "database error recording the cleanup: %s", why);
    return rc;
}

int batch_lock(const struct config *cfg, const atomic_int *stop, void (*waiting)(void), int *fd,
               char *err, size_t errlen)
{
    char path[4096];
    int told = 0;
    fsutil_mkdirs(cfg->data_dir, 0755);
    snprintf(path, sizeof(path), "%s/.batch.lock", cfg->data_dir);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return PF_EIO;
    }
    while (flock(f, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
            close(f);
            return PF_EIO;
        }
        if (!told && waiting != NULL)
            waiting();
        told = 1;
        if (pause_unless_stopped(1, stop) != 0) {
            close(f);
            snprintf(err, errlen, "stopped");
            return PF_ECONFLICT;
        }
    }
    *fd = f;
    return 0;
}

void batch_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

void batch_format_day(const struct batch_day *d, char *out, size_t len)
{
    char date[11];
    timeutil_format_date(d->day * 86400, date);
    snprintf(out, len,
             "%s events=%llu daily_rows=%zu status_rows=%zu requests=%lld drift=%lld "
             "scan_ms=%lld sort_ms=%lld db_ms=%lld",
             date, (unsigned long long)d->events, d->daily_rows, d->status_rows,
             (long long)d->requests, (long long)d->drift, (long long)d->scan_ms,
             (long long)d->sort_ms, (long long)d->db_ms);
}

/* ---- The scheduled jobs ------------------------------------------------ */

struct batch_jobs {
    const struct config *cfg;
    struct db *db;
    FILE *log;
};

int batch_jobs_open(const struct config *cfg, FILE *log, struct batch_jobs **out, char *err,
                    size_t errlen)
{
    struct batch_jobs *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return PF_ENOMEM;
    j->cfg = cfg;
    j->log = log;
    int rc = db_open(cfg->sqlite_path, &j->db, err, errlen);
    if (rc != 0) {
        free(j);
        return rc;
    }
    *out = j;
    return 0;
}

void batch_jobs_close(struct batch_jobs *j)
{
    if (j == NULL)
        return;
    db_close(j->db);
    free(j);
}

int batch_job_aggregate(void *ctx, int64_t now, int catch_up, const atomic_int *stop)
{
    struct batch_jobs *j = ctx;
    struct batch_opts o = {.threads = 1, .force = 0, .stop = stop};
    int64_t *days = NULL;
    size_t n = 0;
    int fd = -1, failed = 0;
    char err[512] = "out of memory", line[256], a[11], b[11];
    /* Every run, at start-up or at a slot, aggregates the due dates. */
    int rc = batch_lock(j->cfg, stop, NULL, &fd, err, sizeof(err));
    if (rc == 0)
        rc = batch_due_days(j->cfg, j->db, &j->cfg->aggregation_cron, now, &days, &n);
    if (rc != 0 && rc != PF_ECONFLICT)
        fprintf(j->log, "pixflare: batch: cannot start: %s\n",
                rc == PF_EDB ? "database error" : err);
    if (rc == 0 && n == 0 && !catch_up) {
        char last[16] = "none";
        db_meta_get(j->db, "last_aggregation_date", last, sizeof(last));
        fprintf(j->log, "pixflare: batch: no date to aggregate (last aggregated: %s)\n", last);
    }
    if (rc == 0 && n > 1) {
        timeutil_format_date(days[0] * 86400, a);
        timeutil_format_date(days[n - 1] * 86400, b);
        fprintf(j->log, "pixflare: batch: catching up %zu dates (%s .. %s)\n", n, a, b);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct batch_day d;
        int r = batch_aggregate_day(j->cfg, j->db, days[i], &o, &d, err, sizeof(err));
        if (r == PF_ECONFLICT)
            break; /* stopping: the date is left for the next start */
        batch_format_day(&d, line, sizeof(line));
        if (r == 0) {
            fprintf(j->log, "pixflare: batch: aggregated %s\n", line);
        } else {
            timeutil_format_date(days[i] * 86400, a);
            fprintf(j->log, "pixflare: batch: %s not aggregated: %s\n", a, err);
            failed++;
        }
    }
    free(days);
    batch_unlock(fd);
    return rc != 0 ? rc : failed ? PF_EIO : 0;
}

int batch_job_cleanup(void *ctx, int64_t now, int catch_up, const atomic_int *stop)
{
    struct batch_jobs *j = ctx;
    struct batch_cleanup c = {.cutoff_day = 0};
    char last[32], err[512], cut[11];
    int fd = -1;
    if (catch_up) {
        /* Run at start-up only if a slot passed since the last cleanup. */
        int64_t t = 0, next = 0;
        if (db_meta_get(j->db, "last_cleanup_at", last, sizeof(last)) == 0 &&
            timeutil_parse_iso8601(last, &t) == 0 &&
            (cron_next(&j->cfg->cleanup_cron, t, &next) != 0 || next > now))
            return 0;
    }
    int rc = batch_lock(j->cfg, stop, NULL, &fd, err, sizeof(err));
    if (rc == 0)
        rc = batch_cleanup(j->cfg, j->db, now, stop, &c, err, sizeof(err));
    batch_unlock(fd);
    if (rc == PF_ECONFLICT)
        return rc;
    timeutil_format_date(c.cutoff_day * 86400, cut);
    if (rc != 0)
        fprintf(j->log, "pixflare: cleanup: %s\n", err);
    else
        fprintf(j->log,
                "pixflare: cleanup: kept dates from %s: removed %lld daily rows and %lld status "
                "rows of %lld dates, and %llu event files\n",
                cut, (long long)c.daily_rows, (long long)c.status_rows, (long long)c.dates,
                (unsigned long long)c.files);
    return rc;
}

int batch_schedule_warning(const struct config *cfg, int64_t now, char *out, size_t len)
{
    /* A date's slot is the first run after it ends; a date on which the job
     * runs waits for the next day with a run. Over two years from today,
     * the longest wait between two days with a run, in days. */
    int64_t today = now / 86400, last = -1, gap = 0;
    for (int64_t d = today; d < today + 800; d++) {
        int64_t t = 0;
        if (cron_next(&cfg->aggregation_cron, d * 86400 - 1, &t) != 0) {
            gap = INT64_MAX;
            break;
        }
        if (t >= (d + 1) * 86400)
            continue; /* no run on day d */
        if (last >= 0 && d - last > gap)
            gap = d - last;
        last = d;
    }
    if (last < 0)
        gap = INT64_MAX;
    if (gap <= cfg->retention_days - 1)
        return 0;
    char span[32] = "years";
    if (gap != INT64_MAX)
        snprintf(span, sizeof(span), "%lld days", (long long)gap);
    snprintf(out, len,
             "ANALYTICS_AGGREGATION_CRON '%s' can leave %s between runs, more than "
             "ANALYTICS_RETENTION_DAYS=%d allows: some dates leave the retention before their "
             "run and are never aggregated",
             cfg->aggregation_cron_text, span, cfg->retention_days);
    return 1;
}
