/* ratelimit_test.c - the per-owner sliding window (src/ratelimit.c) on a
 * synthetic clock: exact admissions, Retry-After and remaining counts, a
 * randomized run against a brute-force reference, many owners, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ratelimit.h"

#define SEC INT64_C(1000)
/* ratelimit.h: a request made during second s counts through second s + 60
 * (the current second and the 60 before it), so that no 60 s span, whole
 * seconds or not, holds more than the limit. */
#define SPAN 61

/* Owners as the API passes them: 32 hex characters. */
static void owner_name(int i, char out[33])
{
    snprintf(out, 33, "%032x", (unsigned)i * 2654435761u);
}

struct taken {
    int ok, remaining, retry;
};

static struct taken take(struct ratelimit *rl, const char *owner, int64_t ms)
{
    struct taken t = {-1, -1, -1};
    t.ok = ratelimit_take(rl, owner, ms, &t.remaining, &t.retry);
    return t;
}

#define EXPECT(rl, owner, ms, want_ok, want_remaining, want_retry)                                 \
    do {                                                                                           \
        struct taken t_ = take(rl, owner, ms);                                                     \
        if (t_.ok != (want_ok) || t_.remaining != (want_remaining) ||                              \
            (!t_.ok && t_.retry != (want_retry)))                                                  \
            fail_msg("at %lld ms: ok %d remaining %d retry %d, want ok %d remaining %d retry %d",  \
                     (long long)(ms), t_.ok, t_.remaining, t_.retry, want_ok, want_remaining,      \
                     want_retry);                                                                  \
    } while (0)

/* N pass within one second, then the rest of the span is refused, with a
 * Retry-After that counts down to the second the burst stops counting. */
static void test_burst(void **state)
{
    (void)state;
    struct ratelimit *rl;
    const char *o = "0123456789abcdef0123456789abcdef";
    assert_int_equal(ratelimit_new(5, &rl), 0);
    int64_t t0 = 1000 * SEC + 250;
    for (int i = 0; i < 5; i++)
        EXPECT(rl, o, t0 + i, 1, 4 - i, 0);
    EXPECT(rl, o, t0 + 5, 0, 0, 61);
    EXPECT(rl, o, 1000 * SEC + 999, 0, 0, 61);
    EXPECT(rl, o, 1001 * SEC, 0, 0, 60);
    EXPECT(rl, o, 1030 * SEC + 500, 0, 0, 31);
    EXPECT(rl, o, 1059 * SEC + 999, 0, 0, 2);
    EXPECT(rl, o, 1060 * SEC + 999, 0, 0, 1); /* 60.749 s after the burst */
    /* from second 1061 on, the burst no longer counts */
    for (int i = 0; i < 5; i++)
        EXPECT(rl, o, 1061 * SEC + i, 1, 4 - i, 0);
    EXPECT(rl, o, 1061 * SEC + 5, 0, 0, 61);
    ratelimit_free(rl);
}

/* Spread requests: Retry-After is the wait for the oldest bucket only. */
static void test_spread(void **state)
{
    (void)state;
    struct ratelimit *rl;
    const char *o = "ffffffffffffffffffffffffffffffff";
    assert_int_equal(ratelimit_new(3, &rl), 0);
    EXPECT(rl, o, 5000 * SEC, 1, 2, 0);
    EXPECT(rl, o, 5010 * SEC, 1, 1, 0);
    EXPECT(rl, o, 5020 * SEC + 999, 1, 0, 0);
    EXPECT(rl, o, 5030 * SEC, 0, 0, 31); /* 5000 stops counting at 5061 */
    EXPECT(rl, o, 5060 * SEC + 999, 0, 0, 1);
    EXPECT(rl, o, 5061 * SEC, 1, 0, 0); /* one place */
    EXPECT(rl, o, 5062 * SEC, 0, 0, 9); /* 5010 stops at 5071 */
    EXPECT(rl, o, 5071 * SEC, 1, 0, 0);
    EXPECT(rl, o, 5072 * SEC, 0, 0, 9); /* 5020 stops at 5081 */
    EXPECT(rl, o, 5081 * SEC, 1, 0, 0);
    EXPECT(rl, o, 5081 * SEC + 1, 0, 0, 41); /* 5061 stops at 5122 */
    /* idle for the span: the whole limit again */
    EXPECT(rl, o, 5142 * SEC, 1, 2, 0);
    ratelimit_free(rl);
}

/* Refused requests do not count; owners do not share a window. */
static void test_refused_do_not_count(void **state)
{
    (void)state;
    struct ratelimit *rl;
    const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    assert_int_equal(ratelimit_new(2, &rl), 0);
    EXPECT(rl, a, 0, 1, 1, 0); /* the clock may start at 0 */
    EXPECT(rl, a, 0, 1, 0, 0);
    for (int64_t ms = 0; ms < SPAN * SEC; ms += 250)
        EXPECT(rl, a, ms, 0, 0, (int)(SPAN - ms / SEC));
    EXPECT(rl, b, 60 * SEC, 1, 1, 0);
    EXPECT(rl, a, 61 * SEC, 1, 1, 0);
    EXPECT(rl, a, 61 * SEC, 1, 0, 0);
    EXPECT(rl, a, 61 * SEC, 0, 0, 61);
    EXPECT(rl, b, 61 * SEC, 1, 0, 0);
    EXPECT(rl, b, 61 * SEC, 0, 0, 60);
    ratelimit_free(rl);
}

/* ---- Randomized, against a reference that keeps every accepted second ---- */

#define SIM_OWNERS 6
#define SIM_MAX 20000

struct ref_owner {
    int64_t sec[SIM_MAX]; /* accepted requests' seconds, in order */
    int64_t ms[SIM_MAX];
    size_t n;
};

/* Accepted requests in the seconds (lo, hi], hi at or after the last one. */
static int64_t ref_count(const struct ref_owner *r, int64_t lo, int64_t hi)
{
    int64_t c = 0;
    for (size_t i = r->n; i > 0 && r->sec[i - 1] > lo; i--)
        c += r->sec[i - 1] <= hi;
    return c;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void simulate(int limit, int64_t t, int steps, struct ref_owner *ref)
{
    struct ratelimit *rl;
    char owners[SIM_OWNERS][33];
    assert_int_equal(ratelimit_new(limit, &rl), 0);
    for (int i = 0; i < SIM_OWNERS; i++) {
        owner_name(i, owners[i]);
        ref[i].n = 0;
    }
    for (int step = 0; step < steps; step++) {
        /* mostly small steps (bursts), sometimes seconds, rarely minutes */
        uint64_t r = rng() % 100;
        t += r < 70 ? (int64_t)(rng() % 50) : r < 98 ? (int64_t)(rng() % 5000) : SPAN * SEC;
        int i = (int)(rng() % SIM_OWNERS);
        struct ref_owner *o = &ref[i];
        int64_t now = t / SEC, count = ref_count(o, now - SPAN, now);
        int want = count < limit, want_retry = 0;
        if (!want) /* the first second from which one more fits */
            for (want_retry = 1; ref_count(o, now + want_retry - SPAN, now) >= limit; want_retry++)
                ;
        struct taken got = take(rl, owners[i], t);
        if (got.ok != want || got.remaining != (want ? (int)(limit - count - 1) : 0) ||
            (!want && got.retry != want_retry))
            fail_msg("limit %d, step %d, owner %d at %lld ms (count %lld): ok %d remaining %d "
                     "retry %d, want ok %d remaining %lld retry %d",
                     limit, step, i, (long long)t, (long long)count, got.ok, got.remaining,
                     got.retry, want, want ? (long long)(limit - count - 1) : 0LL, want_retry);
        if (!want) {
            assert_true(want_retry >= 1 && want_retry <= SPAN);
        } else {
            assert_true(o->n < SIM_MAX);
            o->sec[o->n] = now;
            o->ms[o->n++] = t;
        }
    }
    ratelimit_free(rl);
}

static void test_random_against_reference(void **state)
{
    (void)state;
    static struct ref_owner ref[SIM_OWNERS];
    static const int limits[] = {1, 2, 3, 7, 10, 100};
    for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
        simulate(limits[l], (int64_t)(rng() % 100000) * SEC + 123, 20000, ref);
        /* no 60 s span, to the millisecond, ever admitted more than the limit */
        for (int i = 0; i < SIM_OWNERS; i++) {
            size_t lo = 0;
            for (size_t hi = 0; hi < ref[i].n; hi++) {
                while (ref[i].ms[lo] <= ref[i].ms[hi] - 60 * SEC)
                    lo++;
                if ((int)(hi - lo + 1) > limits[l])
                    fail_msg("limit %d: %zu accepted from %lld to %lld ms", limits[l], hi - lo + 1,
                             (long long)ref[i].ms[lo], (long long)ref[i].ms[hi]);
            }
        }
    }
}

/* ratelimit.h: "no 60-second span ever holds more than `limit` accepted
 * requests", spans that start inside a second too: a burst at the end of
 * second 0 and another at the start of second 60 are 59.001 s apart. */
static void test_no_minute_holds_more_than_limit(void **state)
{
    (void)state;
    struct ratelimit *rl;
    const char *o = "0000000000000000000000000000000c";
    int accepted = 0, remaining, retry;
    assert_int_equal(ratelimit_new(5, &rl), 0);
    for (int i = 0; i < 5; i++)
        accepted += ratelimit_take(rl, o, 999, &remaining, &retry);
    for (int i = 0; i < 5; i++) /* 59.001 s later */
        accepted += ratelimit_take(rl, o, 60 * SEC, &remaining, &retry);
    assert_int_equal(retry, 1); /* at 61.000 s, 60.001 s after the burst */
    ratelimit_free(rl);
    if (accepted > 5)
        fail_msg("%d requests accepted between 999 ms and 60000 ms (59.001 s), limit 5", accepted);
}

/* ---- Many owners: the table grows, and idle owners are dropped ---- */

size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* Bytes the allocator has handed out and not had back. */
static size_t allocated_bytes(void)
{
    if (__sanitizer_get_current_allocated_bytes != NULL)
        return __sanitizer_get_current_allocated_bytes();
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_many_owners(void **state)
{
    (void)state;
    struct ratelimit *rl;
    char o[33];
    enum { N = 5000 };
    assert_int_equal(ratelimit_new(3, &rl), 0);
    int64_t t = 100000 * SEC;
    /* every owner keeps its count while the table doubles around it */
    for (int i = 0; i < N; i++) {
        owner_name(i, o);
        EXPECT(rl, o, t, 1, 2, 0);
        EXPECT(rl, o, t, 1, 1, 0);
    }
    for (int i = 0; i < N; i++) {
        owner_name(i, o);
        EXPECT(rl, o, t + 30 * SEC, 1, 0, 0);
        EXPECT(rl, o, t + 30 * SEC, 0, 0, 31);
    }
    /* a minute on, new owners: the idle ones are dropped to make room, and
     * come back with an empty window */
    t += 91 * SEC;
    for (int i = N; i < 2 * N; i++) {
        owner_name(i, o);
        EXPECT(rl, o, t, 1, 2, 0);
    }
    for (int i = 0; i < 2 * N; i++) {
        owner_name(i, o);
        EXPECT(rl, o, t + 1, 1, i < N ? 2 : 1, 0);
    }

    /* a stream of new owners, 1,000 a minute for 100 minutes: memory stays
     * that of about 1,000 owners, not of the 100,000 seen */
    size_t before = allocated_bytes();
    for (int round = 0; round < 100; round++) {
        t += (SPAN + 1) * SEC;
        for (int i = 0; i < 1000; i++) {
            owner_name(1000000 + round * 1000 + i, o);
            EXPECT(rl, o, t, 1, 2, 0);
        }
    }
    size_t after = allocated_bytes();
    if (after > before && after - before > 16u << 20)
        fail_msg("the limiter grew by %zu bytes over 100,000 owners", after - before);
    ratelimit_free(rl);
}

/* ---- Threads ---- */

struct worker {
    struct ratelimit *rl;
    int accepted;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    int remaining, retry;
    for (int i = 0; i < 2000; i++)
        w->accepted += ratelimit_take(w->rl, "11111111111111111111111111111111", 7 * SEC + i % 1000,
                                      &remaining, &retry);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct worker w[8];
    pthread_t th[8];
    struct ratelimit *rl;
    int total = 0;
    assert_int_equal(ratelimit_new(100, &rl), 0);
    for (int i = 0; i < 8; i++) {
        w[i].rl = rl;
        w[i].accepted = 0;
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += w[i].accepted;
    }
    assert_int_equal(total, 100);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_refused_do_not_count),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_many_owners),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_no_minute_holds_more_than_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
