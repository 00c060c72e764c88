/* metrics.c - see metrics.h.
 *
 * The registry (families, series, gauges, collectors, the list of thread
 * blocks) sits behind one mutex, taken only by registration, a thread's
 * first count and a scrape. Slots are handed out from 1 up (0 is the sink);
 * a histogram takes nbounds + 1 bucket slots (the last one +Inf) and one
 * slot for its sum, and its count is the sum of its buckets. */
#include "base/metrics.h"

#include "base/err.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 128
#define MAX_SERIES 512
#define MAX_GAUGES 64
#define MAX_COLLECTORS 32
#define MAX_BOUNDS 24

enum kind { K_COUNTER, K_HISTOGRAM, K_GAUGE };

struct family {
    char name[80];
    char help[200];
    enum kind kind;
    int flags;
};

struct series {
    int family;
    char labels[96];
    int slot; /* counter, histogram: first slot; gauge: index in gauges */
    int nbounds;
    double bounds[MAX_BOUNDS];
    uint64_t bounds_ns[MAX_BOUNDS]; /* the same in nanoseconds, for observe_ns */
};

struct block {
    struct block *next;
    _Atomic uint64_t slot[METRICS_SLOTS];
};

struct collector {
    void (*fn)(void *ctx, struct metrics_out *out);
    void *ctx;
};

struct metrics_out {
    struct strbuf *sb;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct family families[MAX_FAMILIES];
static int nfamilies;
static struct series series[MAX_SERIES];
static int nseries;
static int next_slot = 1;
static _Atomic uint64_t gauges[MAX_GAUGES]; /* a double's bits */
static int ngauges;
static struct collector collectors[MAX_COLLECTORS];
static int ncollectors;
static int16_t slot_series[METRICS_SLOTS]; /* a histogram's first slot: its series + 1 */
static struct block *blocks;
/* Counts of a thread that could not get a block of its own land here: lost
 * to the scrape, but never a crash on the request path. */
static _Atomic uint64_t sink_block[METRICS_SLOTS];

_Thread_local _Atomic uint64_t *metrics_tls_block;

const double metrics_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const int metrics_latency_nbounds =
    (int)(sizeof(metrics_latency_bounds) / sizeof(metrics_latency_bounds[0]));

_Atomic uint64_t *metrics_thread_block(void)
{
    struct block *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return sink_block;
    pthread_mutex_lock(&lock);
    b->next = blocks;
    blocks = b;
    pthread_mutex_unlock(&lock);
    metrics_tls_block = b->slot;
    return b->slot;
}

/* With the lock held: the family `name`, made if new. -1 when the table is
 * full or the name is taken by another kind. */
static int family_get(const char *name, const char *help, enum kind kind, int flags)
{
    for (int i = 0; i < nfamilies; i++)
        if (strcmp(families[i].name, name) == 0)
            return families[i].kind == kind ? i : -1;
    if (nfamilies == MAX_FAMILIES || strlen(name) >= sizeof(families[0].name))
        return -1;
    struct family *f = &families[nfamilies];
    snprintf(f->name, sizeof(f->name), "%s", name);
    snprintf(f->help, sizeof(f->help), "%s", help);
    f->kind = kind;
    f->flags = flags;
    return nfamilies++;
}

/* With the lock held: the series (name, labels), made with `nslots` slots
 * if new. Returns its index, or -1. */
static int series_get(const char *name, const char *labels, const char *help, enum kind kind,
                      int flags, int nslots)
{
    int f = family_get(name, help, kind, flags);
    if (f < 0 || strlen(labels) >= sizeof(series[0].labels))
        return -1;
    for (int i = 0; i < nseries; i++)
        if (series[i].family == f && strcmp(series[i].labels, labels) == 0)
            return i;
    if (nseries == MAX_SERIES)
        return -1;
    struct series *s = &series[nseries];
    if (kind == K_GAUGE) {
        if (ngauges == MAX_GAUGES)
            return -1;
        s->slot = ngauges++;
    } else {
        if (next_slot + nslots > METRICS_SLOTS)
            return -1;
        s->slot = next_slot;
        next_slot += nslots;
    }
    s->family = f;
    snprintf(s->labels, sizeof(s->labels), "%s", labels);
    return nseries++;
}

int metrics_counter(const char *name, const char *labels, const char *help, int flags)
{
    pthread_mutex_lock(&lock);
    int i = series_get(name, labels, help, K_COUNTER, flags, 1);
    int id = i < 0 ? 0 : series[i].slot;
    pthread_mutex_unlock(&lock);
    return id;
}

int metrics_histogram(const char *name, const char *labels, const char *help, const double *bounds,
                      int nbounds)
{
    int id = 0;
    if (nbounds < 1 || nbounds > MAX_BOUNDS)
        return 0;
    pthread_mutex_lock(&lock);
    int i = series_get(name, labels, help, K_HISTOGRAM, 0, nbounds + 2);
    if (i >= 0) {
        struct series *s = &series[i];
        s->nbounds = nbounds;
        for (int b = 0; b < nbounds; b++) {
            s->bounds[b] = bounds[b];
            s->bounds_ns[b] = (uint64_t)llround(bounds[b] * 1e9);
        }
        slot_series[s->slot] = (int16_t)(i + 1);
        id = s->slot;
    }
    pthread_mutex_unlock(&lock);
    return id;
}

int metrics_gauge(const char *name, const char *labels, const char *help)
{
    pthread_mutex_lock(&lock);
    int i = series_get(name, labels, help, K_GAUGE, 0, 0);
    int gid = i < 0 ? -1 : series[i].slot;
    pthread_mutex_unlock(&lock);
    return gid;
}

void metrics_gauge_set(int gid, double v)
{
    uint64_t bits;
    if (gid < 0 || gid >= MAX_GAUGES)
        return;
    memcpy(&bits, &v, sizeof(bits));
    atomic_store_explicit(&gauges[gid], bits, memory_order_relaxed);
}

static void observe(int id, uint64_t v, int in_ns)
{
    /* The table only grows and a series never moves: reading it without the
     * lock is safe once the id was handed out (which took the lock). */
    if (id <= 0 || id >= METRICS_SLOTS || slot_series[id] == 0)
        return;
    const struct series *s = &series[slot_series[id] - 1];
    int b = 0;
    if (in_ns) {
        while (b < s->nbounds && v > s->bounds_ns[b])
            b++;
    } else {
        while (b < s->nbounds && (double)v > s->bounds[b])
            b++;
    }
    metrics_add(id + b, 1);
    metrics_add(id + s->nbounds + 1, v);
}

void metrics_observe_ns(int id, uint64_t ns)
{
    observe(id, ns, 1);
}

void metrics_observe(int id, uint64_t v)
{
    observe(id, v, 0);
}

int metrics_collector_add(void (*fn)(void *ctx, struct metrics_out *out), void *ctx)
{
    int rc = PF_ENOMEM;
    pthread_mutex_lock(&lock);
    if (ncollectors < MAX_COLLECTORS) {
        collectors[ncollectors++] = (struct collector){fn, ctx};
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void metrics_collector_remove(void *ctx)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ncollectors;) {
        if (collectors[i].ctx == ctx) {
            memmove(&collectors[i], &collectors[i + 1],
                    (size_t)(ncollectors - i - 1) * sizeof(collectors[0]));
            ncollectors--;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&lock);
}

/* With the lock held. */
static uint64_t slot_sum(int slot)
{
    uint64_t v = atomic_load_explicit(&sink_block[slot], memory_order_relaxed);
    for (const struct block *b = blocks; b != NULL; b = b->next)
        v += atomic_load_explicit(&b->slot[slot], memory_order_relaxed);
    return v;
}

uint64_t metrics_value(int id)
{
    pthread_mutex_lock(&lock);
    uint64_t v = id > 0 && id < METRICS_SLOTS ? slot_sum(id) : 0;
    pthread_mutex_unlock(&lock);
    return v;
}

/* A sample value as Prometheus reads it: integers without a fraction. */
static void put_value(struct strbuf *sb, double v)
{
    if (isnan(v))
        strbuf_puts(sb, "NaN");
    else if (isinf(v))
        strbuf_puts(sb, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15)
        strbuf_printf(sb, "%" PRId64, (int64_t)v);
    else
        strbuf_printf(sb, "%.15g", v);
}

static void put_header(struct strbuf *sb, const char *name, const char *type, const char *help)
{
    strbuf_printf(sb, "# HELP %s ", name);
    for (const char *p = help; *p; p++) { /* HELP escapes \ and newline */
        if (*p == '\\')
            strbuf_puts(sb, "\\\\");
        else if (*p == '\n')
            strbuf_puts(sb, "\\n");
        else
            strbuf_put(sb, p, 1);
    }
    strbuf_printf(sb, "\n# TYPE %s %s\n", name, type);
}

static void put_series(struct strbuf *sb, const char *name, const char *suffix, const char *labels,
                       const char *extra)
{
    strbuf_printf(sb, "%s%s", name, suffix);
    if (labels[0] != '\0' || extra != NULL)
        strbuf_printf(sb, "{%s%s%s}", labels, labels[0] && extra ? "," : "", extra ? extra : "");
    strbuf_puts(sb, " ");
}

static void render_histogram(struct strbuf *sb, const char *name, const struct series *s,
                             int seconds)
{
    uint64_t cum = 0;
    char le[48];
    for (int b = 0; b <= s->nbounds; b++) {
        cum += slot_sum(s->slot + b);
        if (b < s->nbounds)
            snprintf(le, sizeof(le), "le=\"%.15g\"", s->bounds[b]);
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        put_series(sb, name, "_bucket", s->labels, le);
        strbuf_printf(sb, "%" PRIu64 "\n", cum);
    }
    uint64_t sum = slot_sum(s->slot + s->nbounds + 1);
    put_series(sb, name, "_sum", s->labels, NULL);
    put_value(sb, seconds ? (double)sum / 1e9 : (double)sum);
    strbuf_puts(sb, "\n");
    put_series(sb, name, "_count", s->labels, NULL);
    strbuf_printf(sb, "%" PRIu64 "\n", cum);
}

static void render_family(struct strbuf *sb, int f)
{
    static const char *const types[] = {"counter", "histogram", "gauge"};
    const struct family *fam = &families[f];
    size_t n = strlen(fam->name);
    int seconds = n > 8 && strcmp(fam->name + n - 8, "_seconds") == 0;
    put_header(sb, fam->name, types[fam->kind], fam->help);
    for (int i = 0; i < nseries; i++) {
        const struct series *s = &series[i];
        if (s->family != f)
            continue;
        if (fam->kind == K_HISTOGRAM) {
            render_histogram(sb, fam->name, s, seconds);
        } else if (fam->kind == K_GAUGE) {
            uint64_t bits = atomic_load_explicit(&gauges[s->slot], memory_order_relaxed);
            double v;
            memcpy(&v, &bits, sizeof(v));
            put_series(sb, fam->name, "", s->labels, NULL);
            put_value(sb, v);
            strbuf_puts(sb, "\n");
        } else {
            uint64_t v = slot_sum(s->slot);
            if (v == 0 && (fam->flags & METRICS_HIDE_ZERO))
                continue;
            put_series(sb, fam->name, "", s->labels, NULL);
            strbuf_printf(sb, "%" PRIu64 "\n", v);
        }
    }
}

void metrics_out_family(struct metrics_out *o, const char *name, const char *type, const char *help)
{
    put_header(o->sb, name, type, help);
}

void metrics_out_sample(struct metrics_out *o, const char *name, const char *labels, double v)
{
    put_series(o->sb, name, "", labels != NULL ? labels : "", NULL);
    put_value(o->sb, v);
    strbuf_puts(o->sb, "\n");
}

int metrics_render(struct strbuf *sb)
{
    struct metrics_out out = {sb};
    pthread_mutex_lock(&lock);
    for (int f = 0; f < nfamilies; f++)
        render_family(sb, f);
    for (int i = 0; i < ncollectors; i++)
        collectors[i].fn(collectors[i].ctx, &out);
    pthread_mutex_unlock(&lock);
    return sb->failed ? PF_ENOMEM : 0;
}
