/* batch.h - the seed's two cron jobs: batch aggregation and retention.
 *
 * Aggregation makes a UTC date's analytics_daily and analytics_status_daily
 * rows equal to what the event store holds for that date: the events are
 * scanned (by several threads), grouped in memory, and written in one
 * database transaction that replaces the date's rows, so a date is either
 * fully re-counted or left as it was. The realtime writer leaves dates the
 * batch has aggregated alone (see db_counts_add()), so running both never
 * double counts. A date is aggregated only once it has ended: a day still
 * receiving events would be counted short.
 *
 * Cleanup deletes daily rows and raw event files of dates older than the
 * retention: the last ANALYTICS_RETENTION_DAYS dates, today included, are
 * kept.
 *
 * Both take the data directory's batch lock (`DATA_DIR/.batch.lock`), so a
 * scheduled job and a command never run at once. */
#ifndef PF_BATCH_H
#define PF_BATCH_H

#include "config/config.h"
#include "analytics/evlog.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

struct db;

/* Seconds after a date's end before it is aggregated: the last events of
 * the day, stamped just before midnight, are in the store by then. */
#define BATCH_GRACE_SECONDS 5

struct batch_opts {
    int threads;            /* event readers; < 1: one per online CPU */
    int force;              /* aggregate despite damaged or missing events */
    const atomic_int *stop; /* when set: give up at the next safe point */
};

struct batch_day {
    int64_t day;     /* days since 1970-01-01 */
    uint64_t events; /* events of the date in the store */
    size_t daily_rows, status_rows;
    int64_t requests; /* analytics_daily requests after */
    int64_t drift;    /* before - after */
    int64_t scan_ms;  /* read the files, group, merge the readers' tables */
    int64_t sort_ms;  /* sort the distinct keys, make the rows */
    int64_t db_ms;    /* the transaction */
    struct evlog_file_stats files;
};

/* Aggregate one date. Errors (reason in err): PF_EINVAL, the date has not
 * ended, is older than the retention, or no event store is configured; PF_EIO, event files could
 * not be read; PF_EFORMAT, events are damaged or missing while the tables hold rows for the date
 * (opts->force overrides); PF_EDB, the database refused; PF_ECONFLICT, stopped. On any error the
 * date's rows are as they were. */
int batch_aggregate_day(const struct config *cfg, struct db *db, int64_t day,
                        const struct batch_opts *opts, struct batch_day *out, char *err,
                        size_t errlen);

/* One line describing an aggregated date, as `pixflare aggregate` prints
 * it: "YYYY-MM-DD events=N daily_rows=N status_rows=N requests=N drift=N
 * scan_ms=N sort_ms=N db_ms=N". */
void batch_format_day(const struct batch_day *d, char *out, size_t len);

/* The dates the scheduler owes at Unix time `now`: every date within the
 * retention, up to yesterday, whose first aggregation slot (`cron` after the
 * date's end) has passed and which the batch has not aggregated, skipping
 * dates before last_aggregation_date that have no events (nothing to do).
 * OUT: *days (malloc'd, ascending, free()), *n. */
int batch_due_days(const struct config *cfg, struct db *db, const struct cron_expr *cron,
                   int64_t now, int64_t **days, size_t *n);

struct batch_cleanup {
    int64_t cutoff_day; /* dates before it were purged */
    int64_t daily_rows, status_rows, dates;
    uint64_t files;
};

/* Purge what is older than the retention, as of Unix time `now`, and record
 * last_cleanup_at. PF_ECONFLICT when *stop (may be NULL) is set: it stops
 * between dates. */
int batch_cleanup(const struct config *cfg, struct db *db, int64_t now, const atomic_int *stop,
                  struct batch_cleanup *out, char *err, size_t errlen);

/* When ANALYTICS_AGGREGATION_CRON leaves more days between two runs than
 * the retention keeps dates, some dates leave the retention before their
 * slot and are never aggregated: then 1, with a warning in `out`. */
int batch_schedule_warning(const struct config *cfg, int64_t now, char *out, size_t len);

/* Take the batch lock, waiting for its holder; `waiting` (if not NULL) is
 * called once if the lock is busy. Gives up with PF_ECONFLICT when *stop is
 * set (stop may be NULL). OUT: *fd, for batch_unlock(). */
int batch_lock(const struct config *cfg, const atomic_int *stop, void (*waiting)(void), int *fd,
               char *err, size_t errlen);
void batch_unlock(int fd);

/* The server's two scheduled jobs (see scheduler.h), sharing one database
 * connection that only the scheduler thread uses. The aggregation reads
 * events with one thread, leaving the other cores to serving. */
struct batch_jobs;
int batch_jobs_open(const struct config *cfg, FILE *log, struct batch_jobs **out, char *err,
                    size_t errlen);
int batch_job_aggregate(void *ctx, int64_t now, int catch_up, const atomic_int *stop);
int batch_job_cleanup(void *ctx, int64_t now, int catch_up, const atomic_int *stop);
void batch_jobs_close(struct batch_jobs *j);

#endif
