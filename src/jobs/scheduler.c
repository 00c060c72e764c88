/* scheduler.c - see scheduler.h. */
#include "jobs/scheduler.h"

#include "base/err.h"
#include "base/metrics.h"
#include "base/timeutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct scheduler {
    const struct scheduler_job *jobs;
    size_t n;
    FILE *log;
    int64_t (*clock)(void);
    int64_t *next; /* per job: its next fire time, Unix seconds; -1 never */
    /* Per job with a claim hook: the slot still to settle (-1: none), when
     * to ask about it again, whether its failed claim was logged, and
     * whether another node was seen running it. */
    int64_t *pending, *poll_at;
    int *told, *busy;
    struct job_gauges *gauges; /* per job: pixflare_job_*{job} */
    atomic_int stop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

struct job_gauges {
    int success, duration, next;
};

static void register_gauges(struct scheduler *s)
{
    char labels[96];
    for (size_t i = 0; i < s->n; i++) {
        snprintf(labels, sizeof(labels), "job=\"%s\"", s->jobs[i].name);
        s->gauges[i].success =
            metrics_gauge("pixflare_job_last_success_timestamp_seconds", labels,
                          "When the scheduled job last ended without error on this node (Unix "
                          "time; 0: not since start).");
        s->gauges[i].duration = metrics_gauge("pixflare_job_last_duration_seconds", labels,
                                              "How long the job's last run on this node took.");
        s->gauges[i].next = metrics_gauge("pixflare_job_next_run_timestamp_seconds", labels,
                                          "The job's next fire time (Unix time; -1: never).");
    }
}

/* The first fire time after `after`, or -1 when the expression never
 * fires again. */
static int64_t next_fire(const struct scheduler_job *j, int64_t after)
{
    int64_t t = 0;
    return cron_next(j->cron, after, &t) == 0 ? t : -1;
}

static int run_job(struct scheduler *s, size_t i, int catch_up)
{
    const struct scheduler_job *j = &s->jobs[i];
    int64_t t0 = timeutil_mono_ns();
    int rc = j->run(j->ctx, s->clock(), catch_up, &s->stop);
    metrics_gauge_set(s->gauges[i].duration, (double)(timeutil_mono_ns() - t0) / 1e9);
    if (rc == 0)
        metrics_gauge_set(s->gauges[i].success, (double)s->clock());
    if (rc != 0 && rc != PF_ECONFLICT && s->log != NULL) {
        char when[21] = "never";
        int64_t t = next_fire(j, s->clock());
        if (t >= 0)
            timeutil_format_iso8601(t, when);
        fprintf(s->log, "pixflare: scheduler: %s failed; next run at %s\n", j->name, when);
    }
    return rc;
}

/* Why a slot is being claimed. */
enum occasion { AT_START, AT_FIRE, AT_POLL };

/* A claimed job's turn at `slot`: claim it, and run it, run this node's
 * share, or leave it pending, as the claim says. */
static void claimed_turn(struct scheduler *s, size_t i, int64_t slot, enum occasion why)
{
    const struct scheduler_job *j = &s->jobs[i];
    enum scheduler_claim c = SCHEDULER_ENDED;
    char when[21];
    timeutil_format_iso8601(slot, when);
    if (s->pending[i] != slot)
        s->told[i] = s->busy[i] = 0;
    s->pending[i] = -1;
    if (j->claim(j->ctx, j->name, slot, why == AT_START, &c) != 0) {
        /* The database is down, say: ask again soon, and say so once. */
        if (!s->told[i] && s->log != NULL)
            fprintf(s->log,
                    "pixflare: scheduler: %s of %s: cannot tell whether another node runs it; "
                    "asking again every %d s\n",
                    j->name, when, SCHEDULER_POLL_SECONDS);
        s->told[i] = 1;
        s->pending[i] = slot;
        s->poll_at[i] = s->clock() + SCHEDULER_POLL_SECONDS;
        return;
    }
    if (c == SCHEDULER_RUN) {
        if (why == AT_POLL && s->busy[i] && s->log != NULL)
            fprintf(s->log,
                    "pixflare: scheduler: %s of %s was left unfinished by its node; running it "
                    "here\n",
                    j->name, when);
        int rc = run_job(s, i, why == AT_START);
        j->release(j->ctx, j->name, slot,
                   atomic_load(&s->stop) ? SCHEDULER_ABANDONED
                   : rc == 0             ? SCHEDULER_DONE
                                         : SCHEDULER_FAILED);
        return;
    }
    if (c == SCHEDULER_BUSY) {
        s->pending[i] = slot;
        s->poll_at[i] = s->clock() + SCHEDULER_POLL_SECONDS;
        s->busy[i] = 1;
    }
    if (why != AT_FIRE)
        return;
    if (s->log != NULL)
        fprintf(s->log, "pixflare: scheduler: %s of %s %s on another node\n", j->name, when,
                c == SCHEDULER_ENDED ? "ran" : "runs");
    if (j->run_elsewhere != NULL)
        j->run_elsewhere(j->ctx, s->clock(), &s->stop);
}

/* The job's turn at start or at a fire time reached by `now`. */
static void turn(struct scheduler *s, size_t i, int64_t now, enum occasion why)
{
    const struct scheduler_job *j = &s->jobs[i];
    int64_t slot = 0;
    if (j->claim == NULL) {
        run_job(s, i, why == AT_START);
        return;
    }
    /* No fire time yet (an expression that never fired): the start-up
     * catch-up is still claimed, as slot 0. */
    if (cron_prev(j->cron, now, &slot) != 0)
        slot = why == AT_FIRE ? s->next[i] : 0;
    claimed_turn(s, i, slot, why);
}

/* Wait up to `ms` or until stopped. */
static void nap(struct scheduler *s, int64_t ms)
{
    int64_t until = timeutil_mono_ns() + ms * 1000000;
    struct timespec ts = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
    pthread_mutex_lock(&s->mu);
    if (!atomic_load(&s->stop))
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    pthread_mutex_unlock(&s->mu);
}

static void *sched_main(void *arg)
{
    struct scheduler *s = arg;
    int64_t seen = s->clock();
    /* Slots are counted from the start, so that one passing during a long
     * catch-up of another job still runs. */
    for (size_t i = 0; i < s->n; i++) {
        s->next[i] = next_fire(&s->jobs[i], seen);
        s->pending[i] = -1;
        metrics_gauge_set(s->gauges[i].next, (double)s->next[i]);
    }
    for (size_t i = 0; i < s->n && !atomic_load(&s->stop); i++)
        turn(s, i, seen, AT_START);
    while (!atomic_load(&s->stop)) {
        int64_t now = s->clock(), soonest = -1;
        if (now < seen) /* the clock was set back: the slots move back too */
            for (size_t i = 0; i < s->n; i++) {
                s->next[i] = next_fire(&s->jobs[i], now);
                s->poll_at[i] = now;
            }
        seen = now;
        for (size_t i = 0; i < s->n && !atomic_load(&s->stop); i++) {
            if (s->next[i] >= 0 && s->next[i] <= now) {
                turn(s, i, now, AT_FIRE);
                s->next[i] = next_fire(&s->jobs[i], s->clock());
            } else if (s->pending[i] >= 0 && s->poll_at[i] <= now) {
                claimed_turn(s, i, s->pending[i], AT_POLL);
            }
            metrics_gauge_set(s->gauges[i].next, (double)s->next[i]);
            if (s->next[i] >= 0 && (soonest < 0 || s->next[i] < soonest))
                soonest = s->next[i];
        }
        /* At most a second: the wall clock may be set meanwhile. */
        now = s->clock();
        if (soonest < 0 || soonest > now)
            nap(s, 1000);
    }
    return NULL;
}

static void free_arrays(struct scheduler *s)
{
    if (s == NULL)
        return;
    free(s->next);
    free(s->pending);
    free(s->poll_at);
    free(s->told);
    free(s->busy);
    free(s->gauges);
}

static int64_t wall_clock(void)
{
    return (int64_t)time(NULL);
}

int scheduler_start(const struct scheduler_job *jobs, size_t n, FILE *log, int64_t (*clock)(void),
                    struct scheduler **out)
{
    struct scheduler *s = calloc(1, sizeof(*s));
    pthread_condattr_t attr;
    size_t m = n ? n : 1;
    if (s == NULL || (s->next = calloc(m, sizeof(*s->next))) == NULL ||
        (s->pending = calloc(m, sizeof(*s->pending))) == NULL ||
        (s->poll_at = calloc(m, sizeof(*s->poll_at))) == NULL ||
        (s->told = calloc(m, sizeof(*s->told))) == NULL ||
        (s->busy = calloc(m, sizeof(*s->busy))) == NULL ||
        (s->gauges = calloc(m, sizeof(*s->gauges))) == NULL) {
        free_arrays(s);
        free(s);
        return PF_ENOMEM;
    }
    s->jobs = jobs;
    s->n = n;
    s->log = log;
    s->clock = clock ? clock : wall_clock;
    register_gauges(s);
    atomic_init(&s->stop, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (log != NULL)
        for (size_t i = 0; i < n; i++) {
            char when[21] = "never";
            int64_t t = next_fire(&jobs[i], s->clock());
            if (t >= 0)
                timeutil_format_iso8601(t, when);
            fprintf(log, "pixflare: scheduler: %s next at %s\n", jobs[i].name, when);
        }
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free_arrays(s);
        free(s);
        return PF_ENOMEM;
    }
    *out = s;
    return 0;
}

void scheduler_stop(struct scheduler *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, 1);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free_arrays(s);
    free(s);
}
