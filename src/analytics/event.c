/* event.c - see event.h. */
#include "analytics/event.h"

#include "base/err.h"
#include "base/fsutil.h"

#include <endian.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint8_t run_id[8];
static pthread_once_t run_once = PTHREAD_ONCE_INIT;
static _Atomic unsigned next_slot;
static _Thread_local int thread_slot = -1;
static _Thread_local uint64_t thread_counter;

static void run_init(void)
{
    if (fsutil_random(run_id, sizeof(run_id)) != 0) {
        /* No getrandom(): the time and the process id still tell runs
         * apart. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t v = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        v ^= (uint64_t)getpid() << 48;
        memcpy(run_id, &v, sizeof(run_id));
    }
}

void event_request_id(uint8_t out[16])
{
    if (thread_slot < 0) {
        pthread_once(&run_once, run_init);
        thread_slot = (int)(atomic_fetch_add(&next_slot, 1) & 0xffff);
    }
    /* The counter's low 48 bits, big-endian: byte-swapped, its first six
     * bytes in memory order are those. */
    uint64_t be = htobe64(++thread_counter << 16);
    memcpy(out, run_id, 8);
    out[8] = (uint8_t)thread_slot;
    out[9] = (uint8_t)(thread_slot >> 8);
    memcpy(out + 10, &be, 6);
}

int event_tee_add(struct event_tee *t, struct event_sink s)
{
    if (t->n >= EVENT_TEE_MAX)
        return PF_ERANGE;
    t->to[t->n++] = s;
    return 0;
}

static void tee_emit(void *impl, const struct event *ev)
{
    const struct event_tee *t = impl;
    for (int i = 0; i < t->n; i++)
        event_emit(&t->to[i], ev);
}

static const struct event_sink_ops tee_ops = {"tee", tee_emit};

struct event_sink event_tee_sink(struct event_tee *t)
{
    if (t->n == 0)
        return (struct event_sink){NULL, NULL};
    if (t->n == 1)
        return t->to[0];
    return (struct event_sink){&tee_ops, t};
}
