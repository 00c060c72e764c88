/* scheduler.c - see scheduler.h. */
#include "jobs/scheduler.h"

#include "base/err.h"
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
    atomic_int stop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* The first fire time after `after`, or -1 when the expression never
 * fires again. */
static int64_t next_fire(const struct scheduler_job *j, int64_t after)
{
    int64_t t = 0;
    return cron_next(j->cron, after, &t) == 0 ? t : -1;
}

static void run_job(struct scheduler *s, size_t i, int catch_up)
{
    const struct scheduler_job *j = &s->jobs[i];
    int rc = j->run(j->ctx, s->clock(), catch_up, &s->stop);
    if (rc != 0 && rc != PF_ECONFLICT && s->log != NULL) {
        char when[21] = "never";
        int64_t t = next_fire(j, s->clock());
        if (t >= 0)
            timeutil_format_iso8601(t, when);
        fprintf(s->log, "pixflare: scheduler: %s failed; next run at %s\n", j->name, when);
    }
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
    for (size_t i = 0; i < s->n; i++)
        s->next[i] = next_fire(&s->jobs[i], seen);
    for (size_t i = 0; i < s->n && !atomic_load(&s->stop); i++)
        run_job(s, i, 1);
    while (!atomic_load(&s->stop)) {
        int64_t now = s->clock(), soonest = -1;
        if (now < seen) /* the clock was set back: the slots move back too */
            for (size_t i = 0; i < s->n; i++)
                s->next[i] = next_fire(&s->jobs[i], now);
        seen = now;
        for (size_t i = 0; i < s->n && !atomic_load(&s->stop); i++) {
            if (s->next[i] >= 0 && s->next[i] <= now) {
                run_job(s, i, 0);
                s->next[i] = next_fire(&s->jobs[i], s->clock());
            }
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

static int64_t wall_clock(void)
{
    return (int64_t)time(NULL);
}

int scheduler_start(const struct scheduler_job *jobs, size_t n, FILE *log, int64_t (*clock)(void),
                    struct scheduler **out)
{
    struct scheduler *s = calloc(1, sizeof(*s));
    pthread_condattr_t attr;
    if (s == NULL || (s->next = calloc(n ? n : 1, sizeof(*s->next))) == NULL) {
        free(s);
        return PF_ENOMEM;
    }
    s->jobs = jobs;
    s->n = n;
    s->log = log;
    s->clock = clock ? clock : wall_clock;
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
        free(s->next);
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
    free(s->next);
    free(s);
}
