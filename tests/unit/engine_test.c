/* engine_test.c - the event engine (analytics/engine.h) through its public
 * interface only, on temporary data directories:
 *   - engine_open() per ANALYTICS_ENGINE: none (no engine), clickhouse
 *     on a port nothing listens on (refused, saying it is unreachable; the
 *     rest of the clickhouse engine is tests/integration/test_clickhouse.py's,
 *     on a real server), embedded;
 *   - events written from two threads across two UTC days (midnight and
 *     the day's last millisecond included) are counted by the writer and
 *     read back whole by engine_scan_day(), each in its own day;
 *   - engine_group_day() with one and with three readers gives the same
 *     groups, whose keys decode to what was emitted and whose counts and
 *     bytes add up to the day's; a stop flag ends a long grouping;
 *   - engine_has_day(), engine_purge_before();
 *   - one writer per data directory (PF_ECONFLICT for a second), while
 *     readers need none. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "analytics/engine.h"
#include "base/err.h"
#include "config/config.h"

#define MS_PER_HOUR INT64_C(3600000)
#define MS_PER_DAY INT64_C(86400000)
#define WRITERS 2
#define PER_THREAD_DAY 5000 /* events each writer emits for each day */
#define DAYS 2
#define STOP_EVENTS 80000 /* more than the 65536 between checks of the stop flag */

/* ---- Fixture: a temporary data directory and its configuration --------- */

struct fixture {
    char dir[64];
    struct config cfg;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Load the configuration of `engine` for data directory `dir`. */
static int load_config(const char *dir, const char *engine, struct config *cfg, char *err,
                       size_t errlen)
{
    setenv("PIXFLARE_DATA_DIR", dir, 1);
    setenv("PIXFLARE_SECRET", "0123456789abcdef0123456789abcdef", 1);
    setenv("ANALYTICS_ENGINE", engine, 1);
    setenv("ANALYTICS_DATASET", "engine_test", 1);
    setenv("ANALYTICS_FSYNC_MS", "50", 1);
    unsetenv("PIXFLARE_DATABASE");
    unsetenv("PIXFLARE_GEOIP_DB");
    if (strcmp(engine, "clickhouse") == 0)
        setenv("ANALYTICS_ENGINE_URL", "http://127.0.0.1:1", 1);
    else
        unsetenv("ANALYTICS_ENGINE_URL");
    return config_load(NULL, cfg, err, errlen);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[512] = "";
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/pixflare-engine-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    if (load_config(f->dir, "embedded", &f->cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "config_load: %s\n", err);
        nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    config_free(&f->cfg);
    int rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc == 0 ? 0 : -1;
}

static struct engine *open_embedded(const struct fixture *f)
{
    struct engine *e = NULL;
    char err[512] = "";
    if (engine_open(&f->cfg, &e, err, sizeof(err)) != 0)
        fail_msg("engine_open: %s", err);
    assert_non_null(e);
    assert_string_equal(engine_name(e), "embedded");
    return e;
}

/* Days since 1970-01-01 of a UTC date. */
static int64_t utc_day(int year, int month, int mday)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = mday;
    time_t t = timegm(&tm);
    assert_true(t % 86400 == 0);
    return (int64_t)t / 86400;
}

/* ---- The events: every field a function of (writer, day, index) -------- */

static const uint8_t owners[3][16] = {
    {0}, /* no known owner */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
     0x11},
    {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
};
static const char *const images[3] = {"abc123", "x9", ""};
static const int variants[4] = {-1, 0, 3, 8};
static const char *const countries[2] = {"US", "D1"};

/* The indexes of an event's grouped fields. */
struct tuple {
    int owner, image, variant, country, status;
};

static struct tuple tuple_of(int day_index, int i)
{
    struct tuple u;
    u.owner = i % 3;
    u.image = (i / 3) % 3;
    u.variant = i % 4;
    u.country = i % 7 == 0;
    u.status = i % 5 == 0 ? (day_index ? 304 : 404) : 200;
    return u;
}

/* The body bytes of event i of writer t on day day0 + day_index. */
static uint64_t event_bytes(int day_index, int t, int i)
{
    return (uint64_t)(1000 * day_index + 10 * t + i % 997);
}

/* Event i of writer t on day day0 + day_index: the day's first event at
 * 00:00:00.000, its last at 23:59:59.999, the rest from 12:00. */
static struct event make_event(int64_t day0, int day_index, int t, int i, int per_day)
{
    struct event ev;
    struct tuple u = tuple_of(day_index, i);
    int64_t start = (day0 + day_index) * MS_PER_DAY;
    memset(&ev, 0, sizeof(ev));
    ev.ts_ms = i == 0             ? start
               : i == per_day - 1 ? start + MS_PER_DAY - 1
                                  : start + 12 * MS_PER_HOUR + i;
    event_request_id(ev.request_id);
    memcpy(ev.owner, owners[u.owner], 16);
    snprintf(ev.image_id, sizeof(ev.image_id), "%s", images[u.image]);
    ev.variant = variants[u.variant];
    ev.status = u.status;
    memcpy(ev.country, countries[u.country], 3);
    ev.bytes = event_bytes(day_index, t, i);
    return ev;
}

struct writer {
    struct event_sink sink;
    pthread_barrier_t *start;
    int64_t day0;
    int t;
    struct event *out[DAYS]; /* what was emitted, PER_THREAD_DAY per day */
};

static void *write_events(void *arg)
{
    struct writer *w = arg;
    pthread_barrier_wait(w->start);
    for (int d = 0; d < DAYS; d++)
        for (int i = 0; i < PER_THREAD_DAY; i++) {
            w->out[d][i] = make_event(w->day0, d, w->t, i, PER_THREAD_DAY);
            event_emit(&w->sink, &w->out[d][i]);
        }
    return NULL;
}

/* Write both days from WRITERS threads at once. OUT: emitted[d] (the day's
 * events, WRITERS * PER_THREAD_DAY; caller frees). */
static void write_days(struct engine *e, int64_t day0, struct event *emitted[DAYS])
{
    struct event_sink sink;
    char err[512] = "";
    if (engine_writer_start(e, stderr, &sink, err, sizeof(err)) != 0)
        fail_msg("engine_writer_start: %s", err);
    assert_non_null(sink.ops);
    for (int d = 0; d < DAYS; d++) {
        emitted[d] = calloc(WRITERS * PER_THREAD_DAY, sizeof(struct event));
        assert_non_null(emitted[d]);
    }
    pthread_barrier_t start;
    pthread_t th[WRITERS];
    struct writer w[WRITERS];
    assert_int_equal(pthread_barrier_init(&start, NULL, WRITERS), 0);
    for (int t = 0; t < WRITERS; t++) {
        w[t].sink = sink;
        w[t].start = &start;
        w[t].day0 = day0;
        w[t].t = t;
        for (int d = 0; d < DAYS; d++)
            w[t].out[d] = emitted[d] + (size_t)t * PER_THREAD_DAY;
        assert_int_equal(pthread_create(&th[t], NULL, write_events, &w[t]), 0);
    }
    for (int t = 0; t < WRITERS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    pthread_barrier_destroy(&start);

    struct engine_write_stats st;
    memset(&st, 0xff, sizeof(st));
    engine_writer_stop(e, &st);
    assert_int_equal(st.appended, (uint64_t)DAYS * WRITERS * PER_THREAD_DAY);
    assert_int_equal(st.dropped, 0);
}

/* ---- Reading back ------------------------------------------------------- */

static int cmp_by_request_id(const void *a, const void *b)
{
    return memcmp(((const struct event *)a)->request_id, ((const struct event *)b)->request_id, 16);
}

struct collected {
    struct event *evs;
    size_t n, cap;
};

static int collect(void *ctx, const struct event *ev)
{
    struct collected *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->evs = realloc(c->evs, c->cap * sizeof(*c->evs));
        assert_non_null(c->evs);
    }
    c->evs[c->n++] = *ev;
    return 0;
}

static void assert_same_event(const struct event *a, const struct event *b, size_t i)
{
    if (a->ts_ms != b->ts_ms || memcmp(a->request_id, b->request_id, 16) != 0 ||
        memcmp(a->owner, b->owner, 16) != 0 || memcmp(a->image_id, b->image_id, 8) != 0 ||
        a->variant != b->variant || a->status != b->status ||
        memcmp(a->country, b->country, 3) != 0 || a->bytes != b->bytes)
        fail_msg("event %zu (by request id) differs: read ts %lld image '%s' variant %d status %d "
                 "country '%s' bytes %llu; emitted ts %lld image '%s' variant %d status %d "
                 "country '%s' bytes %llu",
                 i, (long long)a->ts_ms, a->image_id, a->variant, a->status, a->country,
                 (unsigned long long)a->bytes, (long long)b->ts_ms, b->image_id, b->variant,
                 b->status, b->country, (unsigned long long)b->bytes);
}

/* engine_scan_day() of `day` gives exactly `emitted` (n events), in any
 * order. */
static void check_scan(struct engine *e, int64_t day, struct event *emitted, size_t n)
{
    struct collected c = {NULL, 0, 0};
    struct engine_scan_stats st;
    memset(&st, 0xff, sizeof(st));
    assert_int_equal(engine_scan_day(e, day, collect, &c, stderr, &st), 0);
    assert_int_equal(c.n, n);
    assert_int_equal(st.events, n);
    assert_int_equal(st.damaged_bytes, 0);
    assert_int_equal(st.bad_files, 0);
    assert_int_equal(st.unreadable, 0);
    uint64_t bytes_read = 0, bytes_emitted = 0;
    for (size_t i = 0; i < n; i++) {
        bytes_read += c.evs[i].bytes;
        bytes_emitted += emitted[i].bytes;
        if (c.evs[i].ts_ms / MS_PER_DAY != day)
            fail_msg("day %lld's scan gave an event of ts %lld", (long long)day,
                     (long long)c.evs[i].ts_ms);
    }
    assert_int_equal(bytes_read, bytes_emitted);
    if (n > 0) {
        qsort(c.evs, n, sizeof(*c.evs), cmp_by_request_id);
        qsort(emitted, n, sizeof(*emitted), cmp_by_request_id);
    }
    for (size_t i = 0; i < n; i++)
        assert_same_event(&c.evs[i], &emitted[i], i);
    free(c.evs);
}

static int cmp_group(const void *a, const void *b)
{
    const struct engine_group *x = a, *y = b;
    for (int i = 0; i < 4; i++)
        if (x->k.w[i] != y->k.w[i])
            return x->k.w[i] < y->k.w[i] ? -1 : 1;
    return 0;
}

static void group_day(struct engine *e, int64_t day, int threads, const atomic_int *stop,
                      struct engine_group **g, size_t *n, uint64_t want_events)
{
    struct engine_group_opts o = {threads, stop};
    struct engine_scan_stats st;
    char err[512] = "";
    memset(&st, 0xff, sizeof(st));
    if (engine_group_day(e, day, &o, stderr, g, n, &st, err, sizeof(err)) != 0)
        fail_msg("engine_group_day(%d threads): %s", threads, err);
    assert_non_null(*g);
    assert_int_equal(st.events, want_events);
    assert_int_equal(st.damaged_bytes, 0);
    assert_int_equal(st.bad_files, 0);
    assert_int_equal(st.unreadable, 0);
    /* The engine also groups by the hour of the day (engine.h): every
     * group's hour must be one of the day's; the tuples below are counted
     * over the whole day, so groups that differ only in hour are added up. */
    for (size_t i = 0; i < *n; i++) {
        assert_true(engine_key_hour(&(*g)[i].k) < 24);
        engine_key_set_hour(&(*g)[i].k, 0);
    }
    qsort(*g, *n, sizeof(**g), cmp_group);
    size_t m = 0;
    for (size_t i = 0; i < *n; i++) {
        if (m > 0 && cmp_group(&(*g)[m - 1], &(*g)[i]) == 0) {
            (*g)[m - 1].requests += (*g)[i].requests;
            (*g)[m - 1].bytes += (*g)[i].bytes;
            continue;
        }
        (*g)[m++] = (*g)[i];
    }
    *n = m;
}

/* What a day's groups should be, counted from the tuples emitted. */
struct expected {
    struct tuple u;
    uint64_t requests, bytes;
    int matched;
};

static int tuple_eq(const struct tuple *a, const struct tuple *b)
{
    return a->owner == b->owner && a->image == b->image && a->variant == b->variant &&
           a->country == b->country && a->status == b->status;
}

static size_t expected_groups(int day_index, struct expected *x, size_t cap)
{
    size_t n = 0;
    for (int t = 0; t < WRITERS; t++)
        for (int i = 0; i < PER_THREAD_DAY; i++) {
            struct tuple u = tuple_of(day_index, i);
            size_t k = 0;
            while (k < n && !tuple_eq(&x[k].u, &u))
                k++;
            if (k == n) {
                assert_true(n < cap);
                memset(&x[n], 0, sizeof(x[n]));
                x[n++].u = u;
            }
            x[k].requests++;
            x[k].bytes += event_bytes(day_index, t, i);
        }
    return n;
}

/* Decode a group's key with the accessors, back to indexes in the tables
 * above; fails on a value no event carried. */
static struct tuple decode_key(const struct engine_key *k)
{
    struct tuple u = {-1, -1, -1, -1, -1};
    char cc[3];
    for (int i = 0; i < 3; i++)
        if (memcmp(engine_key_owner(k), owners[i], 16) == 0)
            u.owner = i;
    const char *img = engine_key_image(k);
    for (int i = 0; i < 3; i++) {
        char padded[8] = {0};
        memcpy(padded, images[i], strlen(images[i]));
        if (memcmp(img, padded, 8) == 0)
            u.image = i;
    }
    for (int i = 0; i < 4; i++)
        if (engine_key_variant(k) == (variants[i] < 0 ? ENGINE_NO_VARIANT : (uint8_t)variants[i]))
            u.variant = i;
    engine_key_country(k, cc);
    for (int i = 0; i < 2; i++)
        if (strcmp(cc, countries[i]) == 0)
            u.country = i;
    u.status = engine_key_status(k);
    if (u.owner < 0 || u.image < 0 || u.variant < 0 || u.country < 0)
        fail_msg("a group key decodes to owner %d image '%.8s' variant %u country '%s' status %d, "
                 "which no event carried",
                 u.owner, img, engine_key_variant(k), cc, u.status);
    /* Every bit of the key is the one layout engine.h gives, for every
     * engine: the key of an event with these fields, nothing else set. */
    struct event ev;
    struct engine_key want;
    memset(&ev, 0, sizeof(ev));
    memcpy(ev.owner, owners[u.owner], 16);
    snprintf(ev.image_id, sizeof(ev.image_id), "%s", images[u.image]);
    ev.variant = variants[u.variant];
    ev.status = u.status;
    memcpy(ev.country, countries[u.country], 3);
    engine_key_make(&want, &ev);
    assert_memory_equal(k, &want, sizeof(want));
    return u;
}

static void check_groups(struct engine *e, int64_t day, int day_index)
{
    struct expected x[200];
    size_t nx = expected_groups(day_index, x, 200);
    uint64_t day_events = (uint64_t)WRITERS * PER_THREAD_DAY, day_bytes = 0;
    for (size_t k = 0; k < nx; k++)
        day_bytes += x[k].bytes;

    struct engine_group *g1 = NULL, *g3 = NULL;
    size_t n1 = 0, n3 = 0;
    group_day(e, day, 1, NULL, &g1, &n1, day_events);
    group_day(e, day, 3, NULL, &g3, &n3, day_events);

    /* One reader or three: the same groups. */
    assert_int_equal(n1, n3);
    for (size_t i = 0; i < n1; i++) {
        assert_memory_equal(&g1[i].k, &g3[i].k, sizeof(g1[i].k));
        assert_int_equal(g1[i].requests, g3[i].requests);
        assert_int_equal(g1[i].bytes, g3[i].bytes);
    }

    /* One group per distinct tuple, each with its events and bytes. */
    assert_int_equal(n1, nx);
    uint64_t requests = 0, bytes = 0;
    for (size_t i = 0; i < n1; i++) {
        assert_true(g1[i].requests > 0);
        if (i > 0)
            assert_true(cmp_group(&g1[i - 1], &g1[i]) < 0); /* keys are distinct */
        requests += g1[i].requests;
        bytes += g1[i].bytes;
        struct tuple u = decode_key(&g1[i].k);
        size_t k = 0;
        while (k < nx && !tuple_eq(&x[k].u, &u))
            k++;
        if (k == nx)
            fail_msg("day %d: a group (owner %d image %d variant %d country %d status %d) that no "
                     "event of the day has",
                     day_index, u.owner, u.image, u.variant, u.country, u.status);
        assert_int_equal(x[k].matched, 0);
        x[k].matched = 1;
        assert_int_equal(g1[i].requests, x[k].requests);
        assert_int_equal(g1[i].bytes, x[k].bytes);
    }
    assert_int_equal(requests, day_events);
    assert_int_equal(bytes, day_bytes);
    free(g1);
    free(g3);
}

/* ---- Tests ------------------------------------------------------------- */

static void test_open_by_engine(void **state)
{
    struct fixture *f = *state;
    struct config cfg;
    struct engine *e = (struct engine *)&cfg; /* not NULL, to see it set */
    char err[512] = "";

    assert_int_equal(load_config(f->dir, "none", &cfg, err, sizeof(err)), 0);
    assert_int_equal(engine_open(&cfg, &e, err, sizeof(err)), 0);
    assert_null(e);
    assert_string_equal(engine_name(NULL), "none");
    engine_close(NULL);
    config_free(&cfg);

    if (load_config(f->dir, "clickhouse", &cfg, err, sizeof(err)) != 0)
        fail_msg("config_load (clickhouse): %s", err);
    e = (struct engine *)&cfg;
    err[0] = '\0';
    assert_int_equal(engine_open(&cfg, &e, err, sizeof(err)), PF_EINVAL);
    assert_null(e);
    if (strstr(err, "ClickHouse is unreachable") == NULL)
        fail_msg("the reason does not say ClickHouse is unreachable: '%s'", err);
    config_free(&cfg);

    e = open_embedded(f);
    /* Nothing written yet: no day, and a day groups to nothing. */
    int64_t day = utc_day(2025, 3, 1);
    assert_false(engine_has_day(e, day));
    struct engine_group_opts o = {2, NULL};
    struct engine_group *g = NULL;
    struct engine_scan_stats st;
    size_t n = 99;
    assert_int_equal(engine_group_day(e, day, &o, NULL, &g, &n, &st, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(st.events, 0);
    free(g);
    engine_close(e);
}

static void test_write_scan_group(void **state)
{
    struct fixture *f = *state;
    struct engine *e = open_embedded(f);
    int64_t day0 = utc_day(2025, 3, 1);
    assert_int_equal(day0, 20148);
    struct event *emitted[DAYS];
    write_days(e, day0, emitted);

    for (int d = 0; d < DAYS; d++) {
        assert_true(engine_has_day(e, day0 + d));
        check_scan(e, day0 + d, emitted[d], (size_t)WRITERS * PER_THREAD_DAY);
        check_groups(e, day0 + d, d);
    }
    assert_false(engine_has_day(e, day0 - 1));
    assert_false(engine_has_day(e, day0 + DAYS));
    check_scan(e, day0 + DAYS, NULL, 0);
    for (int d = 0; d < DAYS; d++)
        free(emitted[d]);
    engine_close(e);
}

static void test_group_stop(void **state)
{
    struct fixture *f = *state;
    struct engine *e = open_embedded(f);
    int64_t day = utc_day(2025, 3, 1);
    struct event_sink sink;
    char err[512] = "";
    if (engine_writer_start(e, stderr, &sink, err, sizeof(err)) != 0)
        fail_msg("engine_writer_start: %s", err);
    for (int i = 0; i < STOP_EVENTS; i++) {
        struct event ev = make_event(day, 0, 0, i, STOP_EVENTS);
        event_emit(&sink, &ev);
    }
    struct engine_write_stats ws;
    engine_writer_stop(e, &ws);
    assert_int_equal(ws.appended, STOP_EVENTS);
    assert_int_equal(ws.dropped, 0);

    atomic_int stop = 1;
    struct engine_group_opts o = {1, &stop};
    struct engine_group *g = (struct engine_group *)&o; /* not NULL, to see it set */
    struct engine_scan_stats st;
    size_t n = 99;
    err[0] = '\0';
    assert_int_equal(engine_group_day(e, day, &o, NULL, &g, &n, &st, err, sizeof(err)),
                     PF_ECONFLICT);
    assert_null(g);
    assert_int_equal(n, 0);
    assert_true(err[0] != '\0');

    /* The same day with the flag clear: every event, grouped. */
    atomic_store(&stop, 0);
    size_t ng = 0;
    group_day(e, day, 1, &stop, &g, &ng, STOP_EVENTS);
    uint64_t requests = 0;
    for (size_t i = 0; i < ng; i++)
        requests += g[i].requests;
    assert_int_equal(requests, STOP_EVENTS);
    free(g);
    engine_close(e);
}

static void test_purge(void **state)
{
    struct fixture *f = *state;
    struct engine *e = open_embedded(f);
    int64_t day0 = utc_day(2025, 3, 1);
    struct event *emitted[DAYS];
    write_days(e, day0, emitted);

    uint64_t removed = 0;
    char err[512] = "";
    /* Nothing before the first day. */
    assert_int_equal(engine_purge_before(e, day0, &removed, err, sizeof(err)), 0);
    assert_int_equal(removed, 0);
    assert_true(engine_has_day(e, day0));

    if (engine_purge_before(e, day0 + 1, &removed, err, sizeof(err)) != 0)
        fail_msg("engine_purge_before: %s", err);
    assert_true(removed > 0);
    assert_false(engine_has_day(e, day0));
    assert_true(engine_has_day(e, day0 + 1));
    check_scan(e, day0, NULL, 0);
    check_scan(e, day0 + 1, emitted[1], (size_t)WRITERS * PER_THREAD_DAY);
    check_groups(e, day0 + 1, 1);

    removed = 99;
    assert_int_equal(engine_purge_before(e, day0 + 1, &removed, err, sizeof(err)), 0);
    assert_int_equal(removed, 0);
    assert_true(engine_has_day(e, day0 + 1));
    for (int d = 0; d < DAYS; d++)
        free(emitted[d]);
    engine_close(e);
}

static void test_one_writer(void **state)
{
    struct fixture *f = *state;
    struct engine *a = open_embedded(f), *b = open_embedded(f);
    struct event_sink sa, sb;
    char err[512] = "";
    int64_t day = utc_day(2025, 3, 2);
    if (engine_writer_start(a, stderr, &sa, err, sizeof(err)) != 0)
        fail_msg("engine_writer_start: %s", err);
    err[0] = '\0';
    assert_int_equal(engine_writer_start(b, stderr, &sb, err, sizeof(err)), PF_ECONFLICT);
    assert_true(err[0] != '\0');

    /* Reads need no writer: b sees what a wrote, its files still live. */
    struct event evs[10];
    for (int i = 0; i < 10; i++) {
        evs[i] = make_event(day, 0, 0, i, 10);
        event_emit(&sa, &evs[i]);
    }
    check_scan(b, day, evs, 10);

    /* Once a stops, b may write. */
    struct engine_write_stats st;
    engine_writer_stop(a, &st);
    assert_int_equal(st.appended, 10);
    if (engine_writer_start(b, stderr, &sb, err, sizeof(err)) != 0)
        fail_msg("engine_writer_start after the first writer stopped: %s", err);
    engine_writer_stop(b, NULL);
    engine_close(a);
    engine_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_by_engine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_scan_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
