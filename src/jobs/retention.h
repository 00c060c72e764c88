/* retention.h - the seed's 1 AM cleanup: ANALYTICS_RETENTION_DAYS applied.
 *
 * The last ANALYTICS_RETENTION_DAYS dates, today included, are kept: with
 * 90, on 2026-11-24 the dates from 2026-08-27 on. Older analytics_daily and
 * analytics_status_daily rows go (db_cleanup_before(): one date per
 * transaction, so realtime writes wait for one short transaction at a
 * time), and so do the event engine's days (engine_purge_before()), except
 * yesterday's and today's, whatever the retention: the server may still be
 * writing them and yesterday's are the batch's input. analytics_monthly and
 * analytics_owner_daily are kept. The run is recorded in analytics_meta
 * (last_cleanup_at, last_cleanup_rows, last_cleanup_files). Last, the
 * temporary files that writers killed half-way left in the storage
 * directory more than an hour ago go too (storage_sweep_temps(): nodes
 * sharing the directory leave them there, and nothing else ever removes
 * them); that sweep never fails the run.
 *
 * Callers hold the batch lock (joblock.h). */
#ifndef PF_RETENTION_H
#define PF_RETENTION_H

#include "analytics/engine.h"
#include "config/config.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct db;

struct retention_result {
    int64_t cutoff_day; /* dates before it were purged */
    int64_t daily_rows, status_rows, dates;
    int64_t more_rows; /* analytics_hourly, _clients_daily and _uniques_daily rows */
    uint64_t files;
    uint64_t temp_files; /* stale temporaries removed from the storage directory */
};

/* Purge what is older than the retention as of Unix time `now` from db and
 * from `engine` (NULL: no events kept). PF_ECONFLICT when *stop (may be
 * NULL) is set: it stops between dates, and a next run resumes. OUT: *out,
 * also on error (what was purged so far). */
int retention_run(const struct config *cfg, struct engine *engine, struct db *db, int64_t now,
                  const atomic_int *stop, struct retention_result *out, char *err, size_t errlen);

/* The engine's share of retention_run() alone: its days before the
 * cutoff as of `now` (yesterday's and today's always kept). For a node
 * whose events are its own (the embedded log) when another node of the
 * cluster runs the cleanup of the shared database. OUT: *files. */
int retention_purge_events(const struct config *cfg, struct engine *engine, int64_t now,
                           uint64_t *files, char *err, size_t errlen);

#endif
