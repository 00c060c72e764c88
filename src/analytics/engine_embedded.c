/* engine_embedded.c - the `embedded` event engine (engine.h): the event log
 * of evlog.h under DATA_DIR/events/<dataset>/.
 *
 * Grouping a day (the batch aggregation's query): reader threads share out
 * the day's files (evlog_scan_mt()) and each counts its events into its own
 * open-addressing table keyed by engine_key, one probe per event, with the
 * slots of a batch of 64 events prefetched together. The tables are then
 * merged into one. */
#include "analytics/engine.h"
#include "analytics/engine_int.h"

#include "analytics/evlog.h"
#include "base/err.h"
#include "base/timeutil.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define STOP_CHECK_EVENTS 65536

struct embedded {
    struct engine base;
    char *data_dir, *dataset;
    int fsync_ms;
    struct evlog *writer; /* NULL: not writing */
};

/* ---- Grouping ---------------------------------------------------------- */

struct group {
    struct engine_group *slots;
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
static inline uint64_t key_hash(const struct engine_key *k)
{
    uint64_t h = mul_fold(k->w[0] ^ 0xbe4ba423396cfeb8ULL, k->w[1] ^ 0x1cad21f72c81017cULL) ^
                 mul_fold(k->w[2] ^ 0xdb979083e96dd4deULL, k->w[3] ^ 0x1f67b3b7a4a44072ULL);
    h ^= h >> 37;
    h *= 0x165667919e3779f9ULL;
    return h ^ (h >> 32);
}

static inline int key_eq(const struct engine_key *a, const struct engine_key *b)
{
    return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) |
            (a->w[3] ^ b->w[3])) == 0;
}

/* Tables of 2 MiB and more are mapped on huge pages where the kernel
 * allows it (transparent huge pages in madvise mode, Debian's default): a
 * probe into a table of many 4 KiB pages would miss the TLB as well as the
 * cache. */
#define HUGE_BYTES (2u << 20)

static struct engine_group *slots_alloc(size_t cap)
{
    size_t bytes = cap * sizeof(struct engine_group);
    if (bytes < HUGE_BYTES)
        return calloc(cap, sizeof(struct engine_group));
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    madvise(m, bytes, MADV_HUGEPAGE);
    return m;
}

static void slots_free(struct engine_group *slots, size_t cap)
{
    if (slots == NULL)
        return;
    if (cap * sizeof(struct engine_group) < HUGE_BYTES)
        free(slots);
    else
        munmap(slots, cap * sizeof(struct engine_group));
}

static int group_init(struct group *g, size_t cap, const atomic_int *stop)
{
    memset(g, 0, sizeof(*g));
    g->slots = slots_alloc(cap);
    g->mask = cap - 1;
    g->stop = stop;
    return g->slots ? 0 : PF_ENOMEM;
}

static struct engine_group *group_find(struct group *g, const struct engine_key *k, uint64_t h)
{
    for (size_t i = h & g->mask;; i = (i + 1) & g->mask) {
        struct engine_group *s = &g->slots[i];
        if (s->requests == 0 || key_eq(&s->k, k))
            return s;
    }
}

static int group_grow(struct group *g)
{
    size_t cap = (g->mask + 1) * 2, old_cap = g->mask + 1;
    struct engine_group *slots = slots_alloc(cap), *old = g->slots;
    if (slots == NULL)
        return PF_ENOMEM;
    g->slots = slots;
    g->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].requests != 0)
            *group_find(g, &old[i].k, key_hash(&old[i].k)) = old[i];
    slots_free(old, old_cap);
    return 0;
}

static int group_add(struct group *g, const struct engine_key *k, uint64_t requests, uint64_t bytes)
{
    uint64_t h = key_hash(k);
    struct engine_group *s = group_find(g, k, h);
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
    struct engine_key k[64];
    uint64_t h[64];
    if (n > 64)
        n = 64; /* evlog's batch size; never more */
    for (size_t i = 0; i < n; i++) {
        engine_key_make(&k[i], &evs[i]);
        h[i] = key_hash(&k[i]);
        __builtin_prefetch(&g->slots[h[i] & g->mask], 1);
    }
    for (size_t i = 0; i < n; i++) {
        struct engine_group *s = group_find(g, &k[i], h[i]);
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

static void stats_from(struct engine_scan_stats *st, const struct evlog_file_stats *f)
{
    st->events = f->events;
    st->damaged_bytes = f->damaged_bytes + f->tail_bytes;
    st->bad_files = f->bad_header;
    st->unreadable = f->unreadable;
}

static int embedded_group_day(struct engine *e, int64_t day, const struct engine_group_opts *o,
                              FILE *report, struct engine_group **groups, size_t *n,
                              struct engine_scan_stats *st, char *err, size_t errlen)
{
    struct embedded *em = (struct embedded *)e;
    int threads = o->threads < 1 ? 1 : o->threads;
    struct group *g = calloc((size_t)threads, sizeof(*g));
    void **ctxs = calloc((size_t)threads, sizeof(*ctxs));
    struct evlog_file_stats files;
    int rc = g && ctxs ? 0 : PF_ENOMEM;
    memset(&files, 0, sizeof(files));
    *groups = NULL;
    *n = 0;
    for (int t = 0; rc == 0 && t < threads; t++) {
        rc = group_init(&g[t], 1 << 12, o->stop);
        ctxs[t] = &g[t];
    }
    if (rc == 0) {
        rc = evlog_scan_mt(em->data_dir, em->dataset, day, day, threads, group_events, ctxs, report,
                           &files);
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
    if (rc == 0 && (*groups = malloc((g[0].count ? g[0].count : 1) * sizeof(**groups))) == NULL)
        rc = PF_ENOMEM;
    if (rc == 0) {
        size_t m = 0;
        for (size_t i = 0; i <= g[0].mask; i++)
            if (g[0].slots[i].requests != 0)
                (*groups)[m++] = g[0].slots[i];
        *n = m;
    }
    if (rc == PF_ENOMEM)
        snprintf(err, errlen, "out of memory grouping the events");
    else if (rc == PF_ECONFLICT)
        snprintf(err, errlen, "stopped");
    else if (rc != 0)
        snprintf(err, errlen, "cannot list the event store under %s/events/%s: %s", em->data_dir,
                 em->dataset, strerror(errno));
    stats_from(st, &files);
    for (int t = 0; g && t < threads; t++)
        slots_free(g[t].slots, g[t].mask + 1);
    free(g);
    free(ctxs);
    return rc;
}

/* ---- The rest of engine.h ---------------------------------------------- */

static int embedded_writer_start(struct engine *e, FILE *log, struct event_sink *sink, char *err,
                                 size_t errlen)
{
    struct embedded *em = (struct embedded *)e;
    int rc = evlog_open(em->data_dir, em->dataset, em->fsync_ms, log, &em->writer, err, errlen);
    if (rc == 0)
        *sink = evlog_sink(em->writer);
    return rc;
}

static void embedded_writer_stop(struct engine *e, struct engine_write_stats *st)
{
    struct embedded *em = (struct embedded *)e;
    struct evlog_stats es = {0};
    if (em->writer != NULL) {
        evlog_get_stats(em->writer, &es);
        evlog_close(em->writer);
        em->writer = NULL;
    }
    if (st != NULL) {
        st->appended = es.appended;
        st->dropped = es.dropped;
        st->syncs = es.syncs;
    }
}

static int embedded_scan_day(struct engine *e, int64_t day,
                             int (*fn)(void *ctx, const struct event *ev), void *ctx, FILE *report,
                             struct engine_scan_stats *st)
{
    struct embedded *em = (struct embedded *)e;
    struct evlog_file_stats files;
    int rc = evlog_scan(em->data_dir, em->dataset, day, day, fn, ctx, report, &files);
    if (st != NULL)
        stats_from(st, &files);
    return rc;
}

static int embedded_has_day(struct engine *e, int64_t day)
{
    struct embedded *em = (struct embedded *)e;
    char path[PATH_MAX], date[11];
    timeutil_format_date(day * 86400, date);
    snprintf(path, sizeof(path), "%s/events/%s/%s", em->data_dir, em->dataset, date);
    return access(path, F_OK) == 0;
}

static int embedded_purge_before(struct engine *e, int64_t day, uint64_t *removed, char *err,
                                 size_t errlen)
{
    struct embedded *em = (struct embedded *)e;
    int rc = evlog_purge_before(em->data_dir, em->dataset, day, removed);
    if (rc != 0)
        snprintf(err, errlen, "cannot delete event files under %s/events/%s: %s", em->data_dir,
                 em->dataset, strerror(errno));
    return rc;
}

static void embedded_free(struct engine *e)
{
    struct embedded *em = (struct embedded *)e;
    free(em->data_dir);
    free(em->dataset);
    free(em);
}

static const struct engine_ops embedded_ops = {
    .name = "embedded",
    .writer_start = embedded_writer_start,
    .writer_stop = embedded_writer_stop,
    .scan_day = embedded_scan_day,
    .group_day = embedded_group_day,
    .has_day = embedded_has_day,
    .purge_before = embedded_purge_before,
    .free = embedded_free,
};

int engine_embedded_check(const struct config *cfg, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct stat sb;
    int rc = 0;
    snprintf(path, sizeof(path), "%s/events/%s", cfg->data_dir, cfg->dataset);
    if (stat(path, &sb) != 0) {
        rc = errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
        snprintf(err, errlen, "no event directory %s: %s", path,
                 rc == PF_ENOTFOUND ? "nothing recorded yet; 'pixflare serve' makes it at start"
                                    : strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s is not a directory: move it away", path);
        rc = PF_EINVAL;
    } else if (access(path, W_OK | X_OK) != 0) {
        snprintf(err, errlen,
                 "the event directory %s is not writable by this user (uid %u): %s; chown it "
                 "to the user pixflare serve runs as",
                 path, (unsigned)geteuid(), strerror(errno));
        rc = PF_EINVAL;
    }
    return rc;
}

int engine_embedded_new(const struct config *cfg, struct engine **out)
{
    struct embedded *em = calloc(1, sizeof(*em));
    if (em == NULL)
        return PF_ENOMEM;
    em->base.ops = &embedded_ops;
    em->data_dir = strdup(cfg->data_dir);
    em->dataset = strdup(cfg->dataset);
    em->fsync_ms = cfg->fsync_ms;
    if (em->data_dir == NULL || em->dataset == NULL) {
        embedded_free(&em->base);
        return PF_ENOMEM;
    }
    *out = &em->base;
    return 0;
}
