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
 * recomputed from the new time. */
#ifndef PF_SCHEDULER_H
#define PF_SCHEDULER_H

#include "base/cron.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct scheduler_job {
    const char *name;
    const struct cron_expr *cron;
    /* `now`: Unix seconds. When `*stop` becomes set the job returns at its
     * next safe point (leaving nothing half-written). Returns 0 or an
     * error. */
    int (*run)(void *ctx, int64_t now, int catch_up, const atomic_int *stop);
    void *ctx;
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
