/* scheduler.h - the cron triggers' role: jobs run at the fire times of 5-field
 * cron expressions (UTC), in one thread of their own.
 *
 * Jobs run one at a time, in the order given, so no job ever runs twice at
 * once nor beside another. At start every job is called once with
 * `catch_up` set, to run what it missed while the server was down (the job
 * knows what it owes). A slot that passes while a job is running is not
 * queued: the next run is the first fire time after the job ends. A job
 * that fails has logged why; it runs again at its next slot. The wall
 * clock is re-read at least every second, so a clock that is set (or
 * faked) forwards fires the jobs it passed, once; set back, the slots are
 * recomputed from the new time.
 *
 * Several nodes. A job's slot is the fire time it runs for: at start, the
 * last fire time at or before the start (cron_prev()); at a fire, the last
 * one passed (after a clock jump, the latest of those skipped). A job with
 * a `claim` hook runs a slot only when the hook says so (jobs.c asks the
 * shared database: db_job_begin()), and then reports the outcome through
 * `release`; the start-up catch-up is claimed too, as its slot, so that
 * nodes starting together catch up once. A node told that the slot is
 * another node's skips it with one line in the log (and runs the job's
 * `run_elsewhere`, its own share, if any). A node told that another node
 * is running the job (BUSY) asks again every SCHEDULER_POLL_SECONDS
 * until the slot has ended, silently: if the runner dies before the end,
 * the next node to ask takes the slot over and runs it (logged), so a
 * slot is never lost with its node. Only the latest slot is pursued: a
 * newer fire supersedes an older slot still pending (a run catches up
 * everything owed, as at start). A claim that fails (the database is
 * down) is asked again the same way, logged once per slot. */
#ifndef PF_SCHEDULER_H
#define PF_SCHEDULER_H

#include "base/cron.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How often a pending slot (its job busy on another node, or its claim
 * failed) is asked about again, in seconds of the scheduler's clock. */
#define SCHEDULER_POLL_SECONDS 5

/* What a claim hook answers for one slot. */
enum scheduler_claim {
    SCHEDULER_RUN,   /* run it here, then release */
    SCHEDULER_BUSY,  /* another node is running this job: ask again later */
    SCHEDULER_ENDED, /* the slot's run has ended (on any node): skip it */
};

/* How a claimed run ended. */
enum scheduler_outcome {
    SCHEDULER_DONE,      /* the job returned 0 */
    SCHEDULER_FAILED,    /* the job returned an error (it logged why) */
    SCHEDULER_ABANDONED, /* the scheduler was stopping: the run may be partial */
};

struct scheduler_job {
    const char *name;
    const struct cron_expr *cron;
    /* `now`: Unix seconds. When `*stop` becomes set the job returns at its
     * next safe point (leaving nothing half-written). Returns 0 or an
     * error. */
    int (*run)(void *ctx, int64_t now, int catch_up, const atomic_int *stop);
    void *ctx;
    /* Optional, together (NULL: this node runs every slot). claim: whether
     * this node runs `slot` of job `name`; `retry_failed` is set for the
     * start-up catch-up (a run that failed before is tried again then).
     * Returns 0 with *out, or an error (asked again later). release: once
     * after every SCHEDULER_RUN, with the outcome. */
    int (*claim)(void *ctx, const char *name, int64_t slot, int retry_failed,
                 enum scheduler_claim *out);
    void (*release)(void *ctx, const char *name, int64_t slot, enum scheduler_outcome outcome);
    /* Optional: this node's own share of a slot that another node runs
     * (files only this node has, say), called at the fire instead of run.
     * Returns 0 or an error (logged by it). */
    int (*run_elsewhere)(void *ctx, int64_t now, const atomic_int *stop);
};

struct scheduler;

/* Start the thread; `jobs` must outlive the scheduler. `log` gets a line
 * per failed run and the next fire times at start. `clock` gives the Unix
 * time (NULL: the wall clock; the tests pass their own). */
int scheduler_start(const struct scheduler_job *jobs, size_t n, FILE *log, int64_t (*clock)(void),
                    struct scheduler **out);

/* Ask a running job to stop at its next safe point, wait for it, and end
 * the thread. */
void scheduler_stop(struct scheduler *s);

#endif
