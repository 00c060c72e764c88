/* bench/evlog_bench.c - what one analytics event costs the request path.
 *
 * Linked with the library objects (every build/obj/ object but cli/): `make
 * build/evlog_bench`, run by bench/analytics.sh (and so by `make bench`).
 *
 *   evlog_bench [-n EVENTS_PER_THREAD] [-r REPS] [-t MAX_THREADS] [-o OPS] [DIR]
 *
 * OPS: a comma-separated subset of clock,append,rollup,record,record-events,
 * latency (default: all of them, in that order), e.g. `-o append` under perf.
 *
 * For 1 .. MAX_THREADS threads (default 2), each measurement runs REPS times
 * (default 3), each time on a fresh store under DIR (default: a mkdtemp
 * directory in $TMPDIR or /tmp, removed at the end):
 *
 *   clock_gettime     CLOCK_REALTIME, as capture_stamp() reads it
 *   evlog_append      one record into the thread's mmap'd segment (fsync_ms
 *                     1000, the server's default: the sync thread fdatasyncs
 *                     every 500 ms)
 *   rollup_add        realtime counting only (the flusher writes to SQLite
 *                     every 500 ms, ANALYTICS_REALTIME_FLUSH_MS=1000)
 *   record            the whole per-response path of the CDN route's
 *                     answered() hook, ANALYTICS_ENGINE=embedded with
 *                     realtime on: capture_stamp() (clock, request id,
 *                     country check, the client class of a Chrome
 *                     User-Agent, its unique-client point with a peer
 *                     address), then event_emit() to the analytics sink
 *                     (append, rollup_add)
 *   record            the same with realtime off (events only)
 *
 * The events cycle through 64 distinct (image, variant, country) keys of
 * one owner, status 200, 9532 bytes. Each thread times its own loop with
 * CLOCK_MONOTONIC after a common start barrier; ns/op is the mean over the
 * threads of (elapsed / events). Every run is checked afterwards: the store
 * is read back with evlog_scan() and must hold exactly the events appended,
 * and the realtime tables must count exactly the events added. A failed
 * check exits 1.
 *
 * `latency` then times every single evlog_append() of one thread (1 thread,
 * EVENTS_PER_THREAD events, one run) and prints the distribution: a mean
 * hides the page faults (one per 4 KiB page of records, i.e. every 57th
 * append, and the first touch of a new 16 MiB segment). Each sample includes
 * the two clock_gettime(CLOCK_MONOTONIC) calls around the append.
 *
 * Output: Markdown tables on stdout (best and median of the REPS runs),
 * progress on stderr. */
#include "analytics/analytics.h"
#include "analytics/engine.h"
#include "config/config.h"
#include "base/err.h"
#include "analytics/evlog.h"
#include "analytics/rollup.h"
#include "analytics/uaclass.h"
#include "base/keyhash.h"
#include "store/db.h"

#include <errno.h>
#include <arpa/inet.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <netinet/in.h>
#include <unistd.h>

#define NKEYS 64
#define MAX_THREADS 8
#define MAX_REPS 15

enum op { OP_CLOCK, OP_APPEND, OP_ROLLUP, OP_RECORD, OP_RECORD_NORT, OP_COUNT };

static const char *const op_name[OP_COUNT] = {
    "clock_gettime(CLOCK_REALTIME)",
    "evlog_append()",
    "rollup_add()",
    "capture_stamp() + event_emit() (events + realtime)",
    "capture_stamp() + event_emit() (events only)",
};

static const char *const op_flag[OP_COUNT] = {"clock", "append", "rollup", "record",
                                              "record-events"};

static struct event events[NKEYS];
/* What a browser's request brings to capture_stamp(): a typical Chrome
 * User-Agent (classified, then hashed with the address into the day's
 * unique-clients sketch) and a peer address. */
static const char chrome_ua[] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                                "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
static struct sockaddr_in peer;
static uint8_t owner[16];
static const char *const countries[4] = {"US", "DE", "FR", "JP"};

struct job {
    enum op op;
    long n;
    struct evlog *lg;
    struct rollup *ru;
    struct analytics *an;
    pthread_barrier_t *start;
    int64_t t0, t1;
    uint64_t sink;
};

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "evlog_bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void make_events(void)
{
    int64_t ts_ms = now_ns(CLOCK_REALTIME) / 1000000;
    for (int i = 0; i < 16; i++)
        owner[i] = (uint8_t)(0xa0 + i * 7);
    for (int i = 0; i < NKEYS; i++) {
        struct event *ev = &events[i];
        memset(ev, 0, sizeof(*ev));
        ev->ts_ms = ts_ms;
        memcpy(ev->owner, owner, 16);
        snprintf(ev->image_id, sizeof(ev->image_id), "img%03d", i % 16);
        ev->variant = (i / 16) % 2; /* original, w128 */
        ev->status = 200;
        memcpy(ev->country, countries[i / 32], 3);
        ev->bytes = 9532;
    }
}

static void *worker(void *arg)
{
    struct job *j = arg;
    struct event ev;
    uint64_t sink = 0;
    pthread_barrier_wait(j->start);
    j->t0 = now_ns(CLOCK_MONOTONIC);
    switch (j->op) {
    case OP_CLOCK:
        for (long i = 0; i < j->n; i++) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            sink += (uint64_t)ts.tv_nsec;
        }
        break;
    case OP_APPEND:
        for (long i = 0; i < j->n; i++) {
            ev = events[i & (NKEYS - 1)];
            memcpy(ev.request_id + 8, &i, sizeof(i));
            sink += evlog_append(j->lg, &ev) != 0;
        }
        break;
    case OP_ROLLUP:
        for (long i = 0; i < j->n; i++)
            rollup_add(j->ru, &events[i & (NKEYS - 1)]);
        break;
    case OP_RECORD:
    case OP_RECORD_NORT:
        for (long i = 0; i < j->n; i++) {
            /* What the CDN route's answered() hook does for a response. */
            const struct event *e = &events[i & (NKEYS - 1)];
            memset(&ev, 0, sizeof(ev));
            memcpy(ev.owner, owner, 16);
            memcpy(ev.image_id, e->image_id, sizeof(ev.image_id));
            ev.variant = e->variant;
            ev.status = e->status;
            ev.bytes = e->bytes;
            capture_stamp(analytics_capture(j->an), e->country, chrome_ua,
                          (const struct sockaddr *)&peer, &ev);
            event_emit(analytics_sink(j->an), &ev);
        }
        break;
    default:
        break;
    }
    j->t1 = now_ns(CLOCK_MONOTONIC);
    j->sink = sink;
    return NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Events in the store (every day around today). */
static uint64_t stored_events(const char *data_dir, const char *dataset)
{
    struct evlog_file_stats tot;
    int64_t day = now_ns(CLOCK_REALTIME) / 1000000000 / 86400;
    if (evlog_scan(data_dir, dataset, day - 1, day + 1, NULL, NULL, stderr, &tot) != 0)
        die("cannot scan the event store under %s", data_dir);
    if (tot.damaged_bytes != 0 || tot.tail_bytes != 0 || tot.bad_header != 0)
        die("damaged event files under %s", data_dir);
    return tot.events;
}

static int add_requests(void *ctx, const struct db_stat_row *row)
{
    *(int64_t *)ctx += row->requests;
    return 0;
}

/* Requests counted in analytics_status_daily for the bench's one owner. */
static int64_t counted_requests(const char *db_url)
{
    struct db *db = NULL;
    char err[256], hex[33];
    int64_t n = 0;
    keyhash_hex(owner, 16, hex);
    if (db_open(db_url, &db, err, sizeof(err)) != 0 ||
        db_owner_statuses(db, hex, "0000-01-01", "9999-12-31", add_requests, &n) != 0)
        n = -1;
    db_close(db);
    return n;
}

struct result {
    double ns_per_op; /* mean over threads */
    double mops;      /* all threads, per second of wall time */
};

static struct result run_once(enum op op, int threads, long n, const char *dir)
{
    struct job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    pthread_barrier_t start;
    struct evlog *lg = NULL;
    struct rollup *ru = NULL;
    struct analytics *an = NULL;
    struct engine *engine = NULL;
    struct config cfg;
    char err[512], db_path[4200], db_url[4300];
    uint64_t expect = (uint64_t)threads * (uint64_t)n;

    if (mkdir(dir, 0755) != 0)
        die("cannot create %s", dir);
    snprintf(db_path, sizeof(db_path), "%s/pixflare.db", dir);
    snprintf(db_url, sizeof(db_url), "sqlite:%s", db_path);
    if (op == OP_APPEND && evlog_open(dir, "bench", 1000, stderr, &lg, err, sizeof(err)) != 0)
        die("evlog_open: %s", err);
    if (op == OP_ROLLUP && rollup_open(db_url, "bench00000000000", 1000, 1u << 20, NULL, stderr,
                                       &ru, err, sizeof(err)) != 0)
        die("rollup_open: %s", err);
    if (op == OP_RECORD || op == OP_RECORD_NORT) {
        setenv("PIXFLARE_DATA_DIR", dir, 1);
        unsetenv("PIXFLARE_DATABASE");
        unsetenv("PIXFLARE_GEOIP_DB");
        setenv("ANALYTICS_ENGINE", "embedded", 1);
        setenv("ANALYTICS_DATASET", "bench", 1);
        setenv("ANALYTICS_REALTIME_ENABLED", op == OP_RECORD ? "true" : "false", 1);
        setenv("ANALYTICS_REALTIME_FLUSH_MS", "1000", 1);
        setenv("ANALYTICS_FSYNC_MS", "1000", 1);
        if (config_load(NULL, &cfg, err, sizeof(err)) != 0)
            die("config: %s", err);
        if (engine_open(&cfg, &engine, err, sizeof(err)) != 0 ||
            analytics_open(&cfg, engine, NULL, &an, err, sizeof(err)) != 0)
            die("analytics_open: %s", err);
    }

    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){op, n, lg, ru, an, &start, 0, 0, 0};
        if (pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0)
            die("%s", "pthread_create failed");
    }
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);

    struct result r = {0, 0};
    int64_t t0 = jobs[0].t0, t1 = jobs[0].t1;
    for (int t = 0; t < threads; t++) {
        r.ns_per_op += (double)(jobs[t].t1 - jobs[t].t0) / (double)n / threads;
        t0 = jobs[t].t0 < t0 ? jobs[t].t0 : t0;
        t1 = jobs[t].t1 > t1 ? jobs[t].t1 : t1;
    }
    r.mops = (double)expect / ((double)(t1 - t0) / 1e9) / 1e6;

    /* Check that everything timed was really kept. */
    if (lg != NULL) {
        struct evlog_stats st;
        evlog_get_stats(lg, &st);
        evlog_close(lg);
        if (st.appended != expect || st.dropped != 0)
            die("%s: evlog_append did not store every event", op_name[op]);
        if (stored_events(dir, "bench") != expect)
            die("%s: the store does not hold every event appended", op_name[op]);
    }
    if (ru != NULL) {
        struct rollup_stats st;
        rollup_close(ru, &st);
        if (st.overflow != 0 || counted_requests(db_url) != (int64_t)expect)
            die("%s: the realtime tables do not count every event", op_name[op]);
    }
    if (an != NULL) {
        analytics_close(an);
        engine_close(engine);
        if (stored_events(dir, "bench") != expect)
            die("%s: the store does not hold every event recorded", op_name[op]);
        if (op == OP_RECORD && counted_requests(db_url) != (int64_t)expect)
            die("%s: the realtime tables do not count every event", op_name[op]);
        config_free(&cfg);
    }
    rm_tree(dir);
    return r;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every append of one thread timed on its own. */
static void latency_run(long n, const char *dir)
{
    struct evlog *lg = NULL;
    char err[512];
    int64_t *lat = malloc((size_t)n * sizeof(*lat)), total = 0, over_100us = 0, over_1ms = 0;
    if (lat == NULL)
        die("%s", "out of memory");
    if (mkdir(dir, 0755) != 0)
        die("cannot create %s", dir);
    if (evlog_open(dir, "bench", 1000, stderr, &lg, err, sizeof(err)) != 0)
        die("evlog_open: %s", err);
    for (long i = 0; i < n; i++) {
        struct event ev = events[i & (NKEYS - 1)];
        memcpy(ev.request_id + 8, &i, sizeof(i));
        int64_t t0 = now_ns(CLOCK_MONOTONIC);
        if (evlog_append(lg, &ev) != 0)
            die("%s", "evlog_append failed");
        lat[i] = now_ns(CLOCK_MONOTONIC) - t0;
    }
    evlog_close(lg);
    if (stored_events(dir, "bench") != (uint64_t)n)
        die("%s", "latency: the store does not hold every event appended");
    rm_tree(dir);
    for (long i = 0; i < n; i++) {
        total += lat[i];
        over_100us += lat[i] > 100000;
        over_1ms += lat[i] > 1000000;
    }
    qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
    printf("\n| evlog_append(), each timed, 1 thread | events | mean | p50 | p90 | p99 | p99.9 | "
           "p99.99 | max | > 100 us | > 1 ms |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    printf(
        "| ns per append | %ld | %.0f | %lld | %lld | %lld | %lld | %lld | %lld | %lld | %lld |\n",
        n, (double)total / (double)n, (long long)lat[n / 2], (long long)lat[n * 9 / 10],
        (long long)lat[n * 99 / 100], (long long)lat[n * 999 / 1000],
        (long long)lat[n * 9999 / 10000], (long long)lat[n - 1], (long long)over_100us,
        (long long)over_1ms);
    fflush(stdout);
    fprintf(stderr, "   evlog_append() each timed: p50 %lld ns, p99 %lld ns, max %lld ns\n",
            (long long)lat[n / 2], (long long)lat[n * 99 / 100], (long long)lat[n - 1]);
    free(lat);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(void)
{
    fprintf(stderr, "usage: evlog_bench [-n EVENTS_PER_THREAD] [-r REPS] [-t MAX_THREADS] "
                    "[-o clock,append,rollup,record,record-events,latency] [DIR]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long n = 5000000;
    int reps = 3, max_threads = 2, opt;
    char base[4096];
    int made_base = 0, want[OP_COUNT], want_latency = 1;
    for (int op = 0; op < OP_COUNT; op++)
        want[op] = 1;
    while ((opt = getopt(argc, argv, "n:r:t:o:h")) != -1) {
        switch (opt) {
        case 'o':
            for (int op = 0; op < OP_COUNT; op++) {
                char list[256];
                snprintf(list, sizeof(list), ",%s,", optarg);
                char needle[32];
                snprintf(needle, sizeof(needle), ",%s,", op_flag[op]);
                want[op] = strstr(list, needle) != NULL;
                want_latency = strstr(list, ",latency,") != NULL;
            }
            break;
        case 'n':
            n = strtol(optarg, NULL, 10);
            break;
        case 'r':
            reps = atoi(optarg);
            break;
        case 't':
            max_threads = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (n < 1 || reps < 1 || reps > MAX_REPS || max_threads < 1 || max_threads > MAX_THREADS)
        usage();
    if (optind < argc) {
        snprintf(base, sizeof(base), "%s", argv[optind]);
        if (mkdir(base, 0755) != 0 && errno != EEXIST)
            die("cannot create %s", base);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(base, sizeof(base), "%s/evlog-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(base) == NULL)
            die("cannot create a directory in %s", tmp && *tmp ? tmp : "/tmp");
        made_base = 1;
    }
    make_events();
    peer.sin_family = AF_INET;
    peer.sin_addr.s_addr = htonl(0xcb007107); /* 203.0.113.7 */
    /* Compiled once before the threads, as uaclass.h asks. */
    char uerr[256];
    if (uaclass_init(uerr, sizeof(uerr)) != 0)
        die("%s", uerr);

    printf("| operation | threads | events/thread | ns/op best | ns/op median | M ops/s, all "
           "threads (best) |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
    for (int op = 0; op < OP_COUNT; op++) {
        if (!want[op])
            continue;
        for (int threads = 1; threads <= max_threads; threads++) {
            double ns[MAX_REPS], best_ns = 0, best_mops = 0;
            for (int r = 0; r < reps; r++) {
                char dir[4200];
                snprintf(dir, sizeof(dir), "%s/run-%d-%d-%d", base, op, threads, r);
                struct result res = run_once((enum op)op, threads, n, dir);
                ns[r] = res.ns_per_op;
                if (r == 0 || res.ns_per_op < best_ns)
                    best_ns = res.ns_per_op;
                if (res.mops > best_mops)
                    best_mops = res.mops;
                fprintf(stderr, "   %s, %d thread(s), run %d: %.1f ns/op, %.2f M ops/s\n",
                        op_name[op], threads, r + 1, res.ns_per_op, res.mops);
            }
            printf("| %s | %d | %ld | %.1f | %.1f | %.2f |\n", op_name[op], threads, n, best_ns,
                   median(ns, reps), best_mops);
            fflush(stdout);
        }
    }
    if (want_latency) {
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s/latency", base);
        latency_run(n, dir);
    }
    if (made_base)
        rm_tree(base);
    uaclass_free();
    return 0;
}
