/* jobs.h - the server's cron triggers: the seed's two jobs, scheduled.
 *
 * jobs_start() runs, in a scheduler thread of their own (scheduler.h), the
 * retention purge on ANALYTICS_CLEANUP_CRON (always: it applies to realtime
 * rows too) and the batch aggregation on ANALYTICS_AGGREGATION_CRON (when
 * ANALYTICS_BATCH_ENABLED and there is an event engine). They share one
 * database connection that only the scheduler thread uses. Each run takes
 * the batch lock (joblock.h); the aggregation reads events with one thread,
 * leaving the other cores to serving, and catches up every date it owes.
 *
 * Several nodes on one database: each slot of each job runs on one node
 * (the scheduler's claim hook is db_job_begin(), this node named by
 * config_node_id(); see scheduler.h and db.h for the lease and the
 * take-over of a dead runner's slot). The cleanup purges the shared
 * database and storage directory once, on the node that runs the slot;
 * with the embedded event log, whose events are each node's own, every
 * other node purges its own log at the slot. */
#ifndef PF_JOBS_H
#define PF_JOBS_H

#include "analytics/engine.h"
#include "config/config.h"

#include <stddef.h>
#include <stdio.h>

struct jobs;

/* Open the database and start the scheduler; warnings and every run's
 * result go to `log`. `cfg` and `engine` (NULL: none) must outlive the
 * jobs. OUT: *out. */
int jobs_start(const struct config *cfg, struct engine *engine, FILE *log, struct jobs **out,
               char *err, size_t errlen);

/* Ask a running job to stop at its next safe point, wait for it, and free.
 * NULL is fine. */
void jobs_stop(struct jobs *j);

#endif
