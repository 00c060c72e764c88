/* metrics.h - the process's Prometheus metrics: counters and histograms
 * kept per thread, gauges read when scraped, and their text exposition.
 *
 * The request path must not pay for being counted, so a counter is a slot
 * in a block of memory each thread owns: metrics_add() is a load, an add
 * and a store to the calling thread's own cache lines (relaxed atomics, no
 * lock prefix, no sharing). A scrape sums the slot over every thread's
 * block. Blocks are made on a thread's first count and never freed: a
 * thread that ends leaves its counts behind, so counters never go down.
 *
 * Registration (metrics_counter, metrics_histogram, metrics_gauge) happens
 * when a part starts, not per request; registering the same name and
 * labels again returns the same id, so a part opened twice counts on. A
 * family is one metric name with its HELP and TYPE; `labels` is the
 * series' label text without braces (`route="cdn",status="200"`), made of
 * constants by the caller: no label may carry an owner, image id, key, IP
 * or path. Values known only to a part (a cache's size, a queue's length)
 * come from collectors, called at each scrape under the registry's lock:
 * a collector must not register or remove anything.
 *
 * Format: Prometheus text exposition 0.0.4. Ids are ints; 0 is a slot that
 * counts nothing (what registration returns when the table is full). */
#ifndef PF_METRICS_H
#define PF_METRICS_H

#include "base/strbuf.h"

#include <stdatomic.h>
#include <stdint.h>

#define METRICS_SLOTS 2048

/* Families whose zero-valued series are left out of a scrape (those with
 * many label values of which few are ever seen, such as HTTP statuses). */
#define METRICS_HIDE_ZERO 1

/* A counter series. Returns its id. */
int metrics_counter(const char *name, const char *labels, const char *help, int flags);

/* A histogram series over `nbounds` upper bounds (ascending, in the unit
 * of the name: seconds for *_seconds), observed in nanoseconds when the
 * unit is seconds (metrics_observe_ns) or in whole units otherwise
 * (metrics_observe). Returns its id. */
int metrics_histogram(const char *name, const char *labels, const char *help, const double *bounds,
                      int nbounds);

/* The usual latency buckets, 0.5 ms to 10 s. */
extern const double metrics_latency_bounds[];
extern const int metrics_latency_nbounds;

/* A gauge set by its part (rarely: a job's last run). Returns its id in
 * the gauges' own table. */
int metrics_gauge(const char *name, const char *labels, const char *help);
void metrics_gauge_set(int gid, double v);

/* The calling thread's block; the inline functions' slow path. */
extern _Thread_local _Atomic uint64_t *metrics_tls_block;
_Atomic uint64_t *metrics_thread_block(void);

static inline void metrics_add(int id, uint64_t n)
{
    _Atomic uint64_t *b = metrics_tls_block;
    if (b == NULL)
        b = metrics_thread_block();
    uint64_t v = atomic_load_explicit(&b[id], memory_order_relaxed);
    atomic_store_explicit(&b[id], v + n, memory_order_relaxed);
}

static inline void metrics_inc(int id)
{
    metrics_add(id, 1);
}

/* Histogram observations. */
void metrics_observe_ns(int id, uint64_t ns);
void metrics_observe(int id, uint64_t v);

/* ---- Collectors: values read at scrape time ---- */

struct metrics_out;

/* Register fn(ctx, out) to be called at every scrape; remove it (by ctx)
 * before ctx goes away. After metrics_collector_remove() returns, fn is not
 * running and will not run again. Returns 0 or PF_ENOMEM. */
int metrics_collector_add(void (*fn)(void *ctx, struct metrics_out *out), void *ctx);
void metrics_collector_remove(void *ctx);

/* In a collector: one family's HELP and TYPE ("gauge" or "counter"), then
 * its samples. */
void metrics_out_family(struct metrics_out *o, const char *name, const char *type,
                        const char *help);
void metrics_out_sample(struct metrics_out *o, const char *name, const char *labels, double v);

/* The whole exposition, appended to sb. Returns 0, or PF_ENOMEM. */
int metrics_render(struct strbuf *sb);

/* The sum of a counter's slot over every thread (tests, benchmarks). */
uint64_t metrics_value(int id);

#endif
