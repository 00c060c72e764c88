/* metrics_test.c - base/metrics: counts from many threads sum exactly
 * (also after their threads end), histograms fill the right buckets and
 * render cumulatively, registration is idempotent, gauges and collectors
 * render, a removed collector is never called again, and the exposition's
 * lines are well formed (HELP and TYPE once per family, escaped help). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/metrics.h"
#include "base/strbuf.h"

#define THREADS 8
#define PER_THREAD 250000

static int counter_id;

static void *count_loop(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++)
        metrics_inc(counter_id);
    return NULL;
}

static char *render(void)
{
    struct strbuf sb = {0};
    assert_int_equal(metrics_render(&sb), 0);
    return sb.p;
}

/* The value on the line that starts with `series` followed by a space. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    fail_msg("no sample %s in:\n%s", series, text);
    return -1;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void counts_from_threads_sum_exactly(void **state)
{
    (void)state;
    counter_id = metrics_counter("test_threads_total", "", "Counted by threads.", 0);
    assert_true(counter_id > 0);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, count_loop, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* The threads are gone; their counts stay. */
    assert_int_equal(metrics_value(counter_id), (uint64_t)THREADS * PER_THREAD);
    metrics_add(counter_id, 5);
    char *text = render();
    assert_true(value_of(text, "test_threads_total") == (double)THREADS * PER_THREAD + 5);
    assert_int_equal(count_of(text, "# TYPE test_threads_total counter\n"), 1);
    free(text);
}

static void registration_is_idempotent(void **state)
{
    (void)state;
    int a = metrics_counter("test_same_total", "k=\"v\"", "Same.", 0);
    int b = metrics_counter("test_same_total", "k=\"v\"", "Same.", 0);
    int c = metrics_counter("test_same_total", "k=\"w\"", "Same.", 0);
    assert_int_equal(a, b);
    assert_int_not_equal(a, c);
    /* A name taken by another kind is refused: the sink slot. */
    assert_int_equal(metrics_histogram("test_same_total", "", "x", metrics_latency_bounds, 3), 0);
    metrics_inc(0); /* the sink counts nothing anyone sees */
    metrics_inc(a);
    metrics_add(c, 2);
    char *text = render();
    assert_true(value_of(text, "test_same_total{k=\"v\"}") == 1);
    assert_true(value_of(text, "test_same_total{k=\"w\"}") == 2);
    assert_int_equal(count_of(text, "# HELP test_same_total "), 1);
    free(text);
}

static void hidden_zero_series_are_left_out(void **state)
{
    (void)state;
    int seen = metrics_counter("test_sparse_total", "s=\"200\"", "Sparse.", METRICS_HIDE_ZERO);
    metrics_counter("test_sparse_total", "s=\"404\"", "Sparse.", METRICS_HIDE_ZERO);
    metrics_inc(seen);
    char *text = render();
    assert_true(value_of(text, "test_sparse_total{s=\"200\"}") == 1);
    assert_null(strstr(text, "test_sparse_total{s=\"404\"}"));
    free(text);
}

static void histograms_fill_buckets_cumulatively(void **state)
{
    (void)state;
    static const double bounds[] = {0.001, 0.01, 0.1};
    int h = metrics_histogram("test_latency_seconds", "route=\"x\"", "Latency.", bounds, 3);
    assert_true(h > 0);
    metrics_observe_ns(h, 500000);     /* 0.0005 s: first bucket */
    metrics_observe_ns(h, 1000000);    /* exactly 0.001 s: le is inclusive */
    metrics_observe_ns(h, 50000000);   /* 0.05 s */
    metrics_observe_ns(h, 2000000000); /* 2 s: +Inf only */
    int b = metrics_histogram("test_size_bytes", "", "Sizes.", (const double[]){10, 100}, 2);
    metrics_observe(b, 10);
    metrics_observe(b, 11);
    metrics_observe(b, 1000);
    char *text = render();
    assert_true(value_of(text, "test_latency_seconds_bucket{route=\"x\",le=\"0.001\"}") == 2);
    assert_true(value_of(text, "test_latency_seconds_bucket{route=\"x\",le=\"0.01\"}") == 2);
    assert_true(value_of(text, "test_latency_seconds_bucket{route=\"x\",le=\"0.1\"}") == 3);
    assert_true(value_of(text, "test_latency_seconds_bucket{route=\"x\",le=\"+Inf\"}") == 4);
    assert_true(value_of(text, "test_latency_seconds_count{route=\"x\"}") == 4);
    double sum = value_of(text, "test_latency_seconds_sum{route=\"x\"}");
    assert_true(sum > 2.0514 && sum < 2.0516);
    assert_true(value_of(text, "test_size_bytes_bucket{le=\"10\"}") == 1);
    assert_true(value_of(text, "test_size_bytes_bucket{le=\"100\"}") == 2);
    assert_true(value_of(text, "test_size_bytes_sum") == 1021);
    assert_non_null(strstr(text, "# TYPE test_latency_seconds histogram\n"));
    free(text);
}

static void gauges_and_help_escapes(void **state)
{
    (void)state;
    int g = metrics_gauge("test_next_seconds", "job=\"a\"", "Back\\slash and\nnewline.");
    assert_true(g >= 0);
    metrics_gauge_set(g, 1767225600.5);
    char *text = render();
    assert_true(value_of(text, "test_next_seconds{job=\"a\"}") == 1767225600.5);
    assert_non_null(strstr(text, "# HELP test_next_seconds Back\\\\slash and\\nnewline.\n"));
    free(text);
}

static int collector_calls;

static void collect(void *ctx, struct metrics_out *out)
{
    collector_calls++;
    metrics_out_family(out, "test_queue_length", "gauge", "Queue.");
    metrics_out_sample(out, "test_queue_length", NULL, (double)*(int *)ctx);
}

static void collectors_run_until_removed(void **state)
{
    (void)state;
    static int length = 42;
    assert_int_equal(metrics_collector_add(collect, &length), 0);
    char *text = render();
    assert_true(value_of(text, "test_queue_length") == 42);
    free(text);
    assert_int_equal(collector_calls, 1);
    metrics_collector_remove(&length);
    text = render();
    assert_null(strstr(text, "test_queue_length"));
    free(text);
    assert_int_equal(collector_calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_from_threads_sum_exactly),
        cmocka_unit_test(registration_is_idempotent),
        cmocka_unit_test(hidden_zero_series_are_left_out),
        cmocka_unit_test(histograms_fill_buckets_cumulatively),
        cmocka_unit_test(gauges_and_help_escapes),
        cmocka_unit_test(collectors_run_until_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
