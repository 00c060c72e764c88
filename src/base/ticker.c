/* ticker.c - see ticker.h. */
#include "base/ticker.h"

#include "base/err.h"
#include "base/timeutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct ticker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int64_t period_ns;
    void (*fn)(void *ctx);
    void *ctx;
};

static void *ticker_main(void *arg)
{
    struct ticker *t = arg;
    int64_t next = timeutil_mono_ns() + t->period_ns;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec until = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
        if (pthread_cond_timedwait(&t->cv, &t->mu, &until) == 0 || t->stop)
            continue; /* woken (stop, or spurious): check and wait again */
        pthread_mutex_unlock(&t->mu);
        t->fn(t->ctx);
        int64_t now = timeutil_mono_ns();
        next += t->period_ns;
        if (next <= now) /* the call overran: start again from now */
            next = now + t->period_ns;
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int ticker_start(int period_ms, void (*fn)(void *ctx), void *ctx, struct ticker **out)
{
    struct ticker *t = calloc(1, sizeof(*t));
    pthread_condattr_t attr;
    if (t == NULL)
        return PF_ENOMEM;
    t->period_ns = (int64_t)(period_ms > 0 ? period_ms : 1) * 1000000;
    t->fn = fn;
    t->ctx = ctx;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return PF_ENOMEM;
    }
    *out = t;
    return 0;
}

void ticker_stop(struct ticker *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
