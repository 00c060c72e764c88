/* scheduler_test.c - the cron job thread against a clock the test sets:
 * start-up catch-up, firing at slots, coalescing, retry after a failure,
 * a clock set back, one job at a time, and stop at a safe point. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/cron.h"
#include "base/err.h"
#include "jobs/scheduler.h"
#include "base/timeutil.h"

static _Atomic int64_t fake_now;

static int64_t fake_clock(void)
{
    return atomic_load(&fake_now);
}

static void set_now(const char *iso)
{
    int64_t t = 0;
    assert_int_equal(timeutil_parse_iso8601(iso, &t), 0);
    atomic_store(&fake_now, t);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

struct counter {
    atomic_int runs, catch_ups, fail, running, overlaps, hold_ms;
    atomic_int *order; /* shared sequence number, for the order of jobs */
    atomic_int last_seq;
    _Atomic int64_t last_now;
};

static int count_job(void *ctx, int64_t now, int catch_up, const atomic_int *stop)
{
    struct counter *c = ctx;
    (void)stop;
    if (atomic_fetch_add(&c->running, 1) != 0)
        atomic_fetch_add(&c->overlaps, 1);
    if (c->order != NULL)
        atomic_store(&c->last_seq, atomic_fetch_add(c->order, 1));
    atomic_fetch_add(&c->runs, 1);
    if (catch_up)
        atomic_fetch_add(&c->catch_ups, 1);
    atomic_store(&c->last_now, now);
    if (atomic_load(&c->hold_ms) > 0)
        sleep_ms(atomic_load(&c->hold_ms));
    atomic_fetch_sub(&c->running, 1);
    return atomic_load(&c->fail) ? PF_EIO : 0;
}

/* Wait up to 3 s for *v to reach want. */
static void wait_runs(atomic_int *v, int want)
{
    for (int i = 0; i < 300 && atomic_load(v) < want; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(v), want);
}

static void test_slots_catch_up_failure_and_clock(void **state)
{
    (void)state;
    struct cron_expr every_minute;
    char err[128];
    struct counter c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(cron_parse("* * * * *", &every_minute, err, sizeof(err)), 0);
    struct scheduler_job job = {"count", &every_minute, count_job, &c};
    FILE *log = tmpfile();
    struct scheduler *s = NULL;
    set_now("2026-11-24T00:00:30Z");
    assert_int_equal(scheduler_start(&job, 1, log, fake_clock, &s), 0);
    wait_runs(&c.runs, 1); /* the start-up call */
    assert_int_equal(atomic_load(&c.catch_ups), 1);
    sleep_ms(1200);
    assert_int_equal(atomic_load(&c.runs), 1); /* no slot yet */

    set_now("2026-11-24T00:01:00Z");
    wait_runs(&c.runs, 2);
    assert_int_equal(atomic_load(&c.catch_ups), 1);
    set_now("2026-11-24T00:01:40Z");
    sleep_ms(1200);
    assert_int_equal(atomic_load(&c.runs), 2); /* one run per slot */

    /* A failing run is logged and the job runs again at its next slot. */
    atomic_store(&c.fail, 1);
    set_now("2026-11-24T00:02:00Z");
    wait_runs(&c.runs, 3);
    atomic_store(&c.fail, 0);
    set_now("2026-11-24T00:03:00Z");
    wait_runs(&c.runs, 4);

    /* Forward past many slots: one run, not one per slot missed. */
    set_now("2026-11-24T05:00:10Z");
    wait_runs(&c.runs, 5);
    sleep_ms(1200);
    assert_int_equal(atomic_load(&c.runs), 5);

    /* The clock set back a day: the slots follow it. */
    set_now("2026-11-23T05:00:30Z");
    sleep_ms(1200);
    set_now("2026-11-23T05:01:00Z");
    wait_runs(&c.runs, 6);
    assert_int_equal(atomic_load(&c.last_now), fake_clock());

    scheduler_stop(s);
    assert_int_equal(atomic_load(&c.overlaps), 0);
    char text[4096] = "";
    rewind(log);
    size_t n = fread(text, 1, sizeof(text) - 1, log);
    text[n] = '\0';
    fclose(log);
    assert_non_null(strstr(text, "scheduler: count next at 2026-11-24T00:01:00Z"));
    assert_non_null(strstr(text, "scheduler: count failed; next run at 2026-11-24T00:03:00Z"));
}

static void test_one_job_at_a_time_in_order(void **state)
{
    (void)state;
    struct cron_expr every_minute;
    char err[128];
    atomic_int order = 0;
    struct counter a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.order = b.order = &order;
    atomic_store(&a.hold_ms, 300);
    atomic_store(&b.hold_ms, 300);
    assert_int_equal(cron_parse("* * * * *", &every_minute, err, sizeof(err)), 0);
    struct scheduler_job jobs[2] = {{"a", &every_minute, count_job, &a},
                                    {"b", &every_minute, count_job, &b}};
    struct scheduler *s = NULL;
    set_now("2026-11-24T00:00:59Z");
    assert_int_equal(scheduler_start(jobs, 2, NULL, fake_clock, &s), 0);
    wait_runs(&b.runs, 1);
    assert_true(atomic_load(&a.last_seq) < atomic_load(&b.last_seq)); /* a, then b */
    set_now("2026-11-24T00:01:00Z");
    wait_runs(&b.runs, 2);
    assert_int_equal(atomic_load(&a.runs), 2);
    assert_true(atomic_load(&a.last_seq) < atomic_load(&b.last_seq));
    scheduler_stop(s);
    /* Never two at once, across both jobs. */
    assert_int_equal(atomic_load(&a.overlaps) + atomic_load(&b.overlaps), 0);
}

struct stopper {
    atomic_int started, returned;
};

static int until_stopped(void *ctx, int64_t now, int catch_up, const atomic_int *stop)
{
    struct stopper *st = ctx;
    (void)now;
    (void)catch_up;
    atomic_store(&st->started, 1);
    while (!atomic_load(stop))
        sleep_ms(5);
    sleep_ms(100); /* finishing the current step */
    atomic_store(&st->returned, 1);
    return PF_ECONFLICT;
}

static void test_stop_waits_for_the_running_job(void **state)
{
    (void)state;
    struct cron_expr daily;
    char err[128];
    struct stopper st;
    memset(&st, 0, sizeof(st));
    assert_int_equal(cron_parse("0 2 * * *", &daily, err, sizeof(err)), 0);
    struct scheduler_job job = {"long", &daily, until_stopped, &st};
    struct scheduler *s = NULL;
    set_now("2026-11-24T00:00:00Z");
    assert_int_equal(scheduler_start(&job, 1, NULL, fake_clock, &s), 0);
    wait_runs(&st.started, 1);
    assert_int_equal(atomic_load(&st.returned), 0);
    scheduler_stop(s);
    assert_int_equal(atomic_load(&st.returned), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_catch_up_failure_and_clock),
        cmocka_unit_test(test_one_job_at_a_time_in_order),
        cmocka_unit_test(test_stop_waits_for_the_running_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
