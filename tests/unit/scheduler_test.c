/* scheduler_test.c - the cron job thread against a clock the test sets:
 * start-up catch-up, firing at slots, coalescing, retry after a failure,
 * a clock set back, one job at a time, and stop at a safe point; and two
 * schedulers (two nodes) sharing a lease as the database gives it: one
 * run per slot, the loser's own share, the take-over of a dead runner's
 * slot, and a claim that fails. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
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

/* ---- Two nodes sharing a lease ---- */

/* db_job_begin()'s meaning in memory: one holder of the job at a time,
 * and the slots whose runs ended. */
struct lease {
    pthread_mutex_t mu;
    int holder; /* node id, 0: none */
    int64_t ended[32];
    int nended;
};

struct node {
    struct lease *lease;
    int id;
    struct counter c;
    atomic_int block;       /* the run waits while set (a long job) */
    atomic_int elsewhere;   /* run_elsewhere() calls */
    atomic_int fail_claims; /* claims left to fail (the database down) */
    atomic_int claims, last_retry;
    FILE *log;
    struct scheduler_job job;
    struct scheduler *s;
};

static int lease_ended(const struct lease *l, int64_t slot)
{
    for (int i = 0; i < l->nended; i++)
        if (l->ended[i] == slot)
            return 1;
    return 0;
}

static int node_claim(void *ctx, const char *name, int64_t slot, int retry_failed,
                      enum scheduler_claim *out)
{
    struct node *n = ctx;
    (void)name;
    atomic_fetch_add(&n->claims, 1);
    atomic_store(&n->last_retry, retry_failed);
    if (atomic_load(&n->fail_claims) > 0) {
        atomic_fetch_sub(&n->fail_claims, 1);
        return PF_EUNAVAIL;
    }
    pthread_mutex_lock(&n->lease->mu);
    if (lease_ended(n->lease, slot)) {
        *out = SCHEDULER_ENDED;
    } else if (n->lease->holder != 0 && n->lease->holder != n->id) {
        *out = SCHEDULER_BUSY;
    } else {
        n->lease->holder = n->id;
        *out = SCHEDULER_RUN;
    }
    pthread_mutex_unlock(&n->lease->mu);
    return 0;
}

static void node_release(void *ctx, const char *name, int64_t slot, enum scheduler_outcome outcome)
{
    struct node *n = ctx;
    (void)name;
    pthread_mutex_lock(&n->lease->mu);
    if (outcome != SCHEDULER_ABANDONED && !lease_ended(n->lease, slot) && n->lease->nended < 32)
        n->lease->ended[n->lease->nended++] = slot;
    if (n->lease->holder == n->id)
        n->lease->holder = 0;
    pthread_mutex_unlock(&n->lease->mu);
}

/* The node dies: its connection, and so its hold, goes. */
static void node_dies(struct node *n)
{
    pthread_mutex_lock(&n->lease->mu);
    if (n->lease->holder == n->id)
        n->lease->holder = 0;
    pthread_mutex_unlock(&n->lease->mu);
}

static int node_run(void *ctx, int64_t now, int catch_up, const atomic_int *stop)
{
    struct node *n = ctx;
    int rc = count_job(&n->c, now, catch_up, stop);
    while (atomic_load(&n->block) && !atomic_load(stop))
        sleep_ms(5);
    return rc;
}

static int node_elsewhere(void *ctx, int64_t now, const atomic_int *stop)
{
    struct node *n = ctx;
    (void)now;
    (void)stop;
    atomic_fetch_add(&n->elsewhere, 1);
    return 0;
}

static void node_start(struct node *n, struct lease *l, int id, const struct cron_expr *cron)
{
    n->lease = l;
    n->id = id;
    n->log = tmpfile();
    n->job = (struct scheduler_job){.name = "shared",
                                    .cron = cron,
                                    .run = node_run,
                                    .ctx = n,
                                    .claim = node_claim,
                                    .release = node_release,
                                    .run_elsewhere = node_elsewhere};
    assert_int_equal(scheduler_start(&n->job, 1, n->log, fake_clock, &n->s), 0);
}

/* Stop the node; OUT: its log. */
static void node_stop(struct node *n, char *text, size_t cap)
{
    scheduler_stop(n->s);
    rewind(n->log);
    size_t len = fread(text, 1, cap - 1, n->log);
    text[len] = '\0';
    fclose(n->log);
}

static int runs_of(struct node *a, struct node *b)
{
    return atomic_load(&a->c.runs) + atomic_load(&b->c.runs);
}

/* Wait up to 3 s for the two nodes' runs to reach want. */
static void wait_both(struct node *a, struct node *b, int want)
{
    for (int i = 0; i < 300 && runs_of(a, b) < want; i++)
        sleep_ms(10);
    assert_int_equal(runs_of(a, b), want);
}

static void test_two_nodes_one_run_per_slot(void **state)
{
    (void)state;
    struct cron_expr every_minute;
    char err[128], la[4096], lb[4096];
    struct lease l = {PTHREAD_MUTEX_INITIALIZER, 0, {0}, 0};
    struct node a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(cron_parse("* * * * *", &every_minute, err, sizeof(err)), 0);
    set_now("2026-11-24T00:00:30Z");
    node_start(&a, &l, 1, &every_minute);
    node_start(&b, &l, 2, &every_minute);
    /* The start-up catch-up is claimed as the slot of 00:00, retrying
     * failures: run once, by either. */
    wait_both(&a, &b, 1);
    assert_int_equal(atomic_load(&a.c.catch_ups) + atomic_load(&b.c.catch_ups), 1);
    sleep_ms(300);
    assert_true(atomic_load(&a.claims) >= 1 && atomic_load(&b.claims) >= 1);
    assert_int_equal(atomic_load(&a.last_retry), 1);
    set_now("2026-11-24T00:00:40Z"); /* past a poll, should either have waited */
    sleep_ms(1200);
    assert_int_equal(runs_of(&a, &b), 1);

    /* Each fire: one run, by either; the other runs its own share. */
    for (int k = 1; k <= 2; k++) {
        char iso[32];
        snprintf(iso, sizeof(iso), "2026-11-24T00:0%d:00Z", k);
        set_now(iso);
        wait_both(&a, &b, 1 + k);
        sleep_ms(1200);
        snprintf(iso, sizeof(iso), "2026-11-24T00:0%d:10Z", k);
        set_now(iso);
        sleep_ms(1200);
        assert_int_equal(runs_of(&a, &b), 1 + k);
        assert_int_equal(atomic_load(&a.elsewhere) + atomic_load(&b.elsewhere), k);
    }
    assert_int_equal(atomic_load(&a.last_retry), 0);
    node_stop(&a, la, sizeof(la));
    node_stop(&b, lb, sizeof(lb));
    assert_int_equal(l.nended, 3);
    assert_int_equal(atomic_load(&a.c.overlaps) + atomic_load(&b.c.overlaps), 0);
    /* One line per slot skipped, on the node that skipped it. */
    int lines = 0;
    for (const char *p = la; (p = strstr(p, " on another node")) != NULL; p++)
        lines++;
    for (const char *p = lb; (p = strstr(p, " on another node")) != NULL; p++)
        lines++;
    assert_int_equal(lines, 2);
}

static void test_a_dead_runners_slot_is_taken_over(void **state)
{
    (void)state;
    struct cron_expr daily;
    char err[128], la[4096], lb[4096];
    struct lease l = {PTHREAD_MUTEX_INITIALIZER, 0, {0}, 0};
    struct node a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(cron_parse("0 1 * * *", &daily, err, sizeof(err)), 0);
    set_now("2026-11-24T00:59:50Z");
    atomic_store(&a.block, 1);
    node_start(&a, &l, 1, &daily);
    wait_runs(&a.c.runs, 1); /* a's start-up run, going on and on */
    node_start(&b, &l, 2, &daily);
    for (int i = 0; i < 300 && atomic_load(&b.claims) < 1; i++)
        sleep_ms(10);                /* b's start-up: the slot of the day before, busy */
    set_now("2026-11-24T01:00:00Z"); /* the slot fires on both: a is still busy */
    sleep_ms(1200);
    assert_int_equal(atomic_load(&b.c.runs), 0);
    for (int i = 0; i < 300 && atomic_load(&b.claims) < 2; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&b.elsewhere), 1); /* the fire: b's own share */
    set_now("2026-11-24T01:00:06Z");                /* b asks again: still a's */
    sleep_ms(1200);
    assert_int_equal(atomic_load(&b.c.runs), 0);
    assert_true(atomic_load(&b.claims) >= 3);

    node_dies(&a);
    set_now("2026-11-24T01:00:12Z");
    wait_runs(&b.c.runs, 1);
    assert_int_equal(atomic_load(&b.c.catch_ups), 0);
    for (int i = 0; i < 300 && l.nended < 1; i++)
        sleep_ms(10);
    assert_int_equal(l.nended, 1);
    assert_int_equal(l.ended[0], 1795482000); /* 2026-11-24T01:00:00Z */
    set_now("2026-11-24T01:00:30Z");          /* ended: b asks no more */
    int claims = atomic_load(&b.claims);
    sleep_ms(1200);
    assert_int_equal(atomic_load(&b.claims), claims);
    atomic_store(&a.block, 0);
    node_stop(&a, la, sizeof(la));
    node_stop(&b, lb, sizeof(lb));
    assert_non_null(strstr(lb, "scheduler: shared of 2026-11-24T01:00:00Z runs on another node"));
    assert_non_null(strstr(lb, "scheduler: shared of 2026-11-24T01:00:00Z was left unfinished by "
                               "its node; running it here"));
}

static void test_a_failed_claim_is_asked_again(void **state)
{
    (void)state;
    struct cron_expr daily;
    char err[128], la[4096];
    struct lease l = {PTHREAD_MUTEX_INITIALIZER, 0, {0}, 0};
    struct node a;
    memset(&a, 0, sizeof(a));
    assert_int_equal(cron_parse("0 1 * * *", &daily, err, sizeof(err)), 0);
    set_now("2026-11-24T02:00:00Z");
    atomic_store(&a.fail_claims, 2);
    node_start(&a, &l, 1, &daily);
    sleep_ms(300);
    assert_int_equal(atomic_load(&a.c.runs), 0);
    set_now("2026-11-24T02:00:05Z");
    sleep_ms(1200);
    assert_int_equal(atomic_load(&a.claims), 2);
    assert_int_equal(atomic_load(&a.c.runs), 0);
    set_now("2026-11-24T02:00:10Z");
    wait_runs(&a.c.runs, 1);
    assert_int_equal(atomic_load(&a.last_retry), 0); /* asked again: no longer the start-up */
    node_stop(&a, la, sizeof(la));
    const char *first = strstr(la, "cannot tell whether another node runs it");
    assert_non_null(first);
    assert_null(strstr(first + 1, "cannot tell whether")); /* said once */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_catch_up_failure_and_clock),
        cmocka_unit_test(test_one_job_at_a_time_in_order),
        cmocka_unit_test(test_stop_waits_for_the_running_job),
        cmocka_unit_test(test_two_nodes_one_run_per_slot),
        cmocka_unit_test(test_a_dead_runners_slot_is_taken_over),
        cmocka_unit_test(test_a_failed_claim_is_asked_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
