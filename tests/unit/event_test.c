/* event_test.c - the shared event record's helpers (analytics/event.h):
 * event_request_id() from several threads at once (every id distinct, one
 * run prefix per process, a slot per thread, a big-endian counter that
 * steps by one per call), and the tee sink (none, one sink passed through
 * as is, two to four sinks fed in the order added, a fifth refused). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/event.h"
#include "base/err.h"

#define ID_THREADS 4
#define IDS_PER_THREAD 50000

/* ---- event_request_id() ------------------------------------------------- */

struct id_worker {
    pthread_barrier_t *start;
    uint8_t (*ids)[16]; /* IDS_PER_THREAD of them */
};

static void *make_ids(void *arg)
{
    struct id_worker *w = arg;
    /* All threads take their slot and count at the same time. */
    pthread_barrier_wait(w->start);
    for (int i = 0; i < IDS_PER_THREAD; i++)
        event_request_id(w->ids[i]);
    return NULL;
}

static uint64_t id_counter(const uint8_t id[16])
{
    uint64_t n = 0;
    for (int i = 10; i < 16; i++)
        n = n << 8 | id[i];
    return n;
}

static unsigned id_slot(const uint8_t id[16])
{
    return (unsigned)id[8] | (unsigned)id[9] << 8;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_request_id_threads(void **state)
{
    (void)state;
    size_t total = (size_t)ID_THREADS * IDS_PER_THREAD;
    uint8_t(*ids)[16] = calloc(total, 16);
    assert_non_null(ids);
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, ID_THREADS), 0);
    pthread_t th[ID_THREADS];
    struct id_worker w[ID_THREADS];
    for (int t = 0; t < ID_THREADS; t++) {
        w[t].start = &start;
        w[t].ids = ids + (size_t)t * IDS_PER_THREAD;
        assert_int_equal(pthread_create(&th[t], NULL, make_ids, &w[t]), 0);
    }
    for (int t = 0; t < ID_THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    pthread_barrier_destroy(&start);

    /* The main thread's own id carries the same run prefix. */
    uint8_t mine[16];
    event_request_id(mine);

    unsigned slots[ID_THREADS];
    for (int t = 0; t < ID_THREADS; t++) {
        const uint8_t(*own)[16] = w[t].ids;
        slots[t] = id_slot(own[0]);
        for (int i = 0; i < IDS_PER_THREAD; i++) {
            if (memcmp(own[i], mine, 8) != 0)
                fail_msg("thread %d id %d: run prefix differs from the process's", t, i);
            if (id_slot(own[i]) != slots[t])
                fail_msg("thread %d id %d: slot %u, the thread's first was %u", t, i,
                         id_slot(own[i]), slots[t]);
            if (i > 0 && id_counter(own[i]) != id_counter(own[i - 1]) + 1)
                fail_msg("thread %d id %d: counter %llu after %llu", t, i,
                         (unsigned long long)id_counter(own[i]),
                         (unsigned long long)id_counter(own[i - 1]));
        }
        assert_int_not_equal(id_slot(mine), slots[t]);
        for (int u = 0; u < t; u++)
            if (slots[u] == slots[t])
                fail_msg("threads %d and %d share slot %u", u, t, slots[t]);
    }

    /* Sorted, no two neighbours are equal: every id is distinct. */
    qsort(ids, total, 16, cmp_id);
    for (size_t i = 1; i < total; i++)
        if (memcmp(ids[i - 1], ids[i], 16) == 0)
            fail_msg("id %zu of %zu (sorted) repeats", i, total);
    free(ids);
}

/* Consecutive ids of one thread differ only in the counter. */
static void test_request_id_same_thread(void **state)
{
    (void)state;
    uint8_t a[16], b[16];
    event_request_id(a);
    event_request_id(b);
    assert_memory_equal(a, b, 10);
    assert_int_equal(id_counter(b), id_counter(a) + 1);
    assert_true(memcmp(a, b, 16) != 0);
}

/* ---- The tee ------------------------------------------------------------ */

/* Every recording sink appends to one shared journal, so that the order in
 * which the sinks were fed shows. */
struct journal {
    int who[64];
    int64_t ts[64];
    int n;
};

struct recorder {
    struct journal *j;
    int id;
};

static void record_emit(void *impl, const struct event *ev)
{
    struct recorder *r = impl;
    assert_true(r->j->n < 64);
    r->j->who[r->j->n] = r->id;
    r->j->ts[r->j->n] = ev->ts_ms;
    r->j->n++;
}

static const struct event_sink_ops record_ops = {"record", record_emit};

static struct event event_at(int64_t ts)
{
    struct event ev;
    memset(&ev, 0, sizeof(ev));
    ev.ts_ms = ts;
    ev.variant = -1;
    ev.status = 200;
    memcpy(ev.country, "US", 3);
    return ev;
}

static void test_tee_empty(void **state)
{
    (void)state;
    struct event_tee tee;
    memset(&tee, 0, sizeof(tee));
    struct event_sink s = event_tee_sink(&tee);
    assert_null(s.ops);
}

static void test_tee_one_sink_is_passed_through(void **state)
{
    (void)state;
    struct journal j;
    memset(&j, 0, sizeof(j));
    struct recorder r = {&j, 7};
    struct event_tee tee;
    memset(&tee, 0, sizeof(tee));
    assert_int_equal(event_tee_add(&tee, (struct event_sink){&record_ops, &r}), 0);
    struct event_sink s = event_tee_sink(&tee);
    assert_ptr_equal(s.ops, &record_ops);
    assert_ptr_equal(s.impl, &r);
    struct event ev = event_at(42);
    event_emit(&s, &ev);
    assert_int_equal(j.n, 1);
    assert_int_equal(j.who[0], 7);
    assert_int_equal(j.ts[0], 42);
}

static void test_tee_feeds_each_sink_in_order(void **state)
{
    (void)state;
    for (int n = 2; n <= EVENT_TEE_MAX; n++) {
        struct journal j;
        memset(&j, 0, sizeof(j));
        struct recorder r[EVENT_TEE_MAX];
        struct event_tee tee;
        memset(&tee, 0, sizeof(tee));
        /* Added in reverse id order, so that "in the order added" is not
         * the same as "by id". */
        for (int i = 0; i < n; i++) {
            r[i].j = &j;
            r[i].id = 100 - i;
            assert_int_equal(event_tee_add(&tee, (struct event_sink){&record_ops, &r[i]}), 0);
        }
        struct event_sink s = event_tee_sink(&tee);
        assert_non_null(s.ops);
        for (int e = 0; e < 3; e++) {
            struct event ev = event_at(1000 + e);
            event_emit(&s, &ev);
        }
        assert_int_equal(j.n, 3 * n);
        for (int e = 0; e < 3; e++)
            for (int i = 0; i < n; i++) {
                int k = e * n + i;
                if (j.who[k] != 100 - i || j.ts[k] != 1000 + e)
                    fail_msg("%d sinks: call %d went to sink %d with event %lld; expected sink "
                             "%d with event %d",
                             n, k, j.who[k], (long long)j.ts[k], 100 - i, 1000 + e);
            }
    }
}

static void test_tee_full(void **state)
{
    (void)state;
    struct journal j;
    memset(&j, 0, sizeof(j));
    struct recorder r[EVENT_TEE_MAX + 1];
    struct event_tee tee;
    memset(&tee, 0, sizeof(tee));
    for (int i = 0; i < EVENT_TEE_MAX + 1; i++) {
        r[i].j = &j;
        r[i].id = i;
        int rc = event_tee_add(&tee, (struct event_sink){&record_ops, &r[i]});
        assert_int_equal(rc, i < EVENT_TEE_MAX ? 0 : PF_ERANGE);
    }
    /* The refused sink is fed nothing; the others still are. */
    struct event_sink s = event_tee_sink(&tee);
    struct event ev = event_at(5);
    event_emit(&s, &ev);
    assert_int_equal(j.n, EVENT_TEE_MAX);
    for (int i = 0; i < EVENT_TEE_MAX; i++)
        assert_int_equal(j.who[i], i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id_threads),
        cmocka_unit_test(test_request_id_same_thread),
        cmocka_unit_test(test_tee_empty),
        cmocka_unit_test(test_tee_one_sink_is_passed_through),
        cmocka_unit_test(test_tee_feeds_each_sink_in_order),
        cmocka_unit_test(test_tee_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
