/* rollup.h - realtime rollups: events counted in memory, written to the
 * analytics tables in one transaction per flush.
 *
 * The seed writes to D1 twice per request. Here each thread counts into its
 * own table (its mutex is only ever contended by the flusher, once per
 * flush), and a flusher thread merges the threads' tables every half
 * `flush_ms` and adds the counts to analytics_daily, analytics_monthly and
 * analytics_status_daily (and analytics_owner_daily, analytics_hourly,
 * analytics_clients_daily) in one transaction: one upsert per distinct
 * key per flush, whatever the request rate; then raises the registers of
 * the day's unique-clients sketches (analytics_uniques_daily). If the database refuses (busy, disk
 * full), the counts stay pending and the next flush retries them.
 *
 * Memory is bounded by `max_keys` distinct keys pending in total; a count
 * for a new key beyond it is not kept for realtime (it is counted as
 * overflow and reported). The event store still has the event, and the
 * batch aggregation rebuilds the day's rows from it. */
#ifndef PF_ROLLUP_H
#define PF_ROLLUP_H

#include "analytics/event.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct rollup;

/* database: db_open()'s URL (PIXFLARE_DATABASE); node_id: this node's
 * (config_node_id()), the first part of every flush id. */
struct uniq;
/* uniq (may be NULL: no unique clients): the salts the capture reads,
 * kept current by the flusher (uniq_refresh()); the caller's, outliving
 * the rollup. */
int rollup_open(const char *database, const char *node_id, int flush_ms, size_t max_keys,
                struct uniq *uniq, FILE *log, struct rollup **out, char *err, size_t errlen);

/* Count one event: a status row always, a daily row (and so its month) for
 * statuses 200, 206 and 304. */
void rollup_add(struct rollup *ru, const struct event *ev);

/* The sink that counts into ru (rollup_add()). */
struct event_sink rollup_sink(struct rollup *ru);

/* Whether a response with this status counts in analytics_daily. */
int rollup_counts_daily(int status);

struct rollup_stats {
    uint64_t flushes;      /* transactions committed */
    uint64_t rows;         /* upserts committed */
    uint64_t failures;     /* transactions that failed (retried) */
    uint64_t overflow;     /* counts not kept for realtime (memory bound) */
    uint64_t pending_keys; /* keys waiting for the database */
    uint64_t batched;      /* requests left out: their date was already
                              aggregated by the batch, which counted them,
                              or purged by the retention */
};
void rollup_get_stats(struct rollup *ru, struct rollup_stats *st);

/* Stop the flusher and write everything counted so far (retrying for a few
 * seconds if the database refuses), fill *final (if not NULL) and free. No
 * rollup_add() may run concurrently or after. Counts that still could not be
 * written are reported on the log. */
void rollup_close(struct rollup *ru, struct rollup_stats *final);

#endif
