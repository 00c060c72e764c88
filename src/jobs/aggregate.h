/* aggregate.h - batch aggregation: the seed's 2 AM cron job.
 *
 * Aggregation makes a UTC date's analytics_daily and analytics_status_daily
 * rows equal to what the event engine holds for that date: the engine
 * groups the date's events (engine_group_day(): the seed's GraphQL query),
 * and one database transaction replaces the date's rows with the groups, so
 * a date is either fully re-counted or left as it was. The realtime writer
 * leaves dates the batch has aggregated alone (see db_counts_add()), so
 * running both never double counts. A date is aggregated only once it has
 * ended: a day still receiving events would be counted short.
 *
 * Callers hold the batch lock (joblock.h), so that a scheduled job and a
 * command never run at once. */
#ifndef PF_AGGREGATE_H
#define PF_AGGREGATE_H

#include "analytics/engine.h"
#include "config/config.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

struct db;

/* Seconds after a date's end before it is aggregated: the last events of
 * the day, stamped just before midnight, are in the store by then. */
#define AGGREGATE_GRACE_SECONDS 5

struct aggregate_opts {
    int threads;            /* event readers; < 1: one per online CPU */
    int force;              /* aggregate despite damaged or missing events */
    const atomic_int *stop; /* when set: give up at the next safe point */
};

struct aggregate_day {
    int64_t day;     /* days since 1970-01-01 */
    uint64_t events; /* events of the date in the engine */
    size_t daily_rows, status_rows;
    int64_t requests; /* analytics_daily requests after */
    int64_t drift;    /* before - after */
    int64_t scan_ms;  /* read and group the events (the engine's query) */
    int64_t sort_ms;  /* sort the distinct keys, make the rows */
    int64_t db_ms;    /* the transaction */
    struct engine_scan_stats files;
};

/* Aggregate one date from `engine` (NULL: ANALYTICS_ENGINE=none) into db.
 * Errors (reason in err): PF_EINVAL, the date has not ended, is older than
 * the retention, there is no event engine, or other nodes counted the date
 * in a shared database while the engine is this node's own event log
 * (opts->force overrides); PF_EIO, events could not be
 * read; PF_EFORMAT, events are damaged or missing while the tables hold
 * rows for the date (opts->force overrides); PF_EUNAVAIL, a shared engine
 * (clickhouse) is still waiting for some node's events of the date, or
 * cannot be reached (opts->force groups what it holds); PF_EDB, the
 * database refused;
 * PF_ECONFLICT, stopped. On any error the date's rows are as they were. */
int aggregate_run_day(const struct config *cfg, struct engine *engine, struct db *db, int64_t day,
                      const struct aggregate_opts *opts, struct aggregate_day *out, char *err,
                      size_t errlen);

/* One line describing an aggregated date, as `pixflare aggregate` prints
 * it: "YYYY-MM-DD events=N daily_rows=N status_rows=N requests=N drift=N
 * scan_ms=N sort_ms=N db_ms=N". */
void aggregate_format_day(const struct aggregate_day *d, char *out, size_t len);

/* The dates the scheduler owes at Unix time `now`: every date within the
 * retention, up to yesterday, whose first aggregation slot (`cron` after the
 * date's end) has passed and which the batch has not aggregated, skipping
 * dates before last_aggregation_date that the engine holds nothing for.
 * OUT: *days (malloc'd, ascending, free()), *n. */
int aggregate_due_days(const struct config *cfg, struct engine *engine, struct db *db,
                       const struct cron_expr *cron, int64_t now, int64_t **days, size_t *n);

/* When ANALYTICS_AGGREGATION_CRON leaves more days between two runs than
 * the retention keeps dates, some dates leave the retention before their
 * slot and are never aggregated: then 1, with a warning in `out`. */
int aggregate_schedule_warning(const struct config *cfg, int64_t now, char *out, size_t len);

#endif
