/* evlog_spool_test.c - the event log read piecewise (evlog.h's "spool",
 * evlog_spool.c, over evlog_format.c's evlog_scan_from()), as the ClickHouse
 * shipper reads it.
 *
 * Live segments read from 0 and then from each returned `next`, with small
 * `max`, while several threads append; then sealed by evlog_close() and
 * read on to their end; crafted segments holding a record being written,
 * damage, a bad header; reads bounded by `until`; days and segments listed;
 * segments removed. (The shipper's state file: ship_test.c.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "analytics/evlog.h"
#include "base/err.h"
#include "base/timeutil.h"

#define REC EVLOG_RECORD_SIZE
#define HDR EVLOG_FILE_HEADER
#define DATASET "t"
#define MS_PER_HOUR INT64_C(3600000)
#define MS_PER_DAY INT64_C(86400000)
#define T0_MS INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define STEM_A "00-00000000000000aa-000-000001"
#define STEM_B "00-00000000000000aa-001-000001"

/* ---- Helpers ------------------------------------------------------------ */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A file header as the spec at the top of evlog_format.c lays it out. */
static void make_header(uint8_t out[HDR])
{
    memcpy(out, "PFEVLOG", 8);
    put_le32(out + 8, 1);
    put_le32(out + 12, (uint32_t)XXH3_64bits(out, 12));
}

static struct event sample_event(int i)
{
    struct event ev;
    memset(&ev, 0, sizeof(ev));
    ev.ts_ms = T0_MS + i;
    for (int k = 0; k < 16; k++) {
        ev.request_id[k] = (uint8_t)(k + 3 * i);
        ev.owner[k] = (uint8_t)(0xA0 ^ k);
    }
    snprintf(ev.image_id, sizeof(ev.image_id), "img%d", i % 1000);
    ev.variant = i % 9;
    ev.status = 200;
    memcpy(ev.country, "DE", 3);
    ev.bytes = (uint64_t)i;
    return ev;
}

/* A segment's bytes: header, then sample records first..first+n-1, then
 * `zeros` zero bytes (a live segment's preallocated room). Caller frees. */
static uint8_t *make_segment(int first, int n, size_t zeros, size_t *len)
{
    *len = HDR + (size_t)n * REC + zeros;
    uint8_t *buf = calloc(1, *len);
    assert_non_null(buf);
    make_header(buf);
    for (int i = 0; i < n; i++) {
        struct event ev = sample_event(first + i);
        evlog_encode(&ev, buf + HDR + (size_t)i * REC);
    }
    return buf;
}

static size_t at(size_t k) /* file offset of record k */
{
    return HDR + k * REC;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void make_tmpdir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/pixflare-spool-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void mkdir_p(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            assert_true(mkdir(tmp, 0755) == 0 || errno == EEXIST);
            *p = '/';
        }
    }
    assert_true(mkdir(tmp, 0755) == 0 || errno == EEXIST);
}

static void write_bytes(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Overwrite bytes of an existing file in place, as a writer's mapping does. */
static void patch_bytes(const char *path, size_t off, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* DATA_DIR/events/t/<date of day> into out (made). */
static void day_dir(const char *dir, int64_t day, char *out, size_t cap)
{
    char date[11];
    timeutil_format_date(day * 86400, date);
    snprintf(out, cap, "%s/events/%s/%s", dir, DATASET, date);
    mkdir_p(out);
}

/* Write segment `name` (stem and extension) of `day`. OUT: path. */
static void put_segment(const char *dir, int64_t day, const char *name, const uint8_t *buf,
                        size_t len, char *path, size_t cap)
{
    char dd[256];
    day_dir(dir, day, dd, sizeof(dd));
    snprintf(path, cap, "%s/%s", dd, name);
    write_bytes(path, buf, len);
}

static int64_t day0(void)
{
    return T0_MS / MS_PER_DAY;
}

static void read_seg(const char *dir, const char *stem, size_t from, size_t until,
                     struct event *out, size_t max, struct evlog_piece *r)
{
    assert_int_equal(evlog_segment_read(dir, DATASET, day0(), stem, from, until, out, max, r), 0);
}

static void assert_same_event(const struct event *a, const struct event *b)
{
    assert_true(a->ts_ms == b->ts_ms);
    assert_memory_equal(a->request_id, b->request_id, 16);
    assert_memory_equal(a->owner, b->owner, 16);
    assert_memory_equal(a->image_id, b->image_id, sizeof(a->image_id));
    assert_int_equal(a->variant, b->variant);
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->country, b->country);
    assert_true(a->bytes == b->bytes);
}

/* The events out[0..n) are sample events first, first+1, ... */
static void assert_samples(const struct event *out, size_t n, int first)
{
    for (size_t i = 0; i < n; i++) {
        struct event want = sample_event(first + (int)i);
        assert_same_event(&out[i], &want);
    }
}

/* ---- Live segments while threads append, then sealed ---------------------- */

#define THREADS 4
#define PER_THREAD 25000 /* appended while the reader reads */
#define TAIL 100         /* then appended while it waits, read after the close */
#define MAX_SEGS 512

struct appender {
    struct evlog *lg;
    int index;
    int64_t hour_ms;
    _Atomic int *running;
    pthread_barrier_t *pause;
    int failures;
};

static void *append_main(void *arg)
{
    struct appender *a = arg;
    for (int i = 0; i < PER_THREAD + TAIL; i++) {
        if (i == PER_THREAD) {
            atomic_fetch_sub(a->running, 1);
            pthread_barrier_wait(a->pause); /* all here: the reader catches up */
            pthread_barrier_wait(a->pause);
        }
        struct event ev;
        memset(&ev, 0, sizeof(ev));
        ev.ts_ms = a->hour_ms + i;
        ev.request_id[0] = (uint8_t)a->index;
        memcpy(ev.request_id + 1, &i, sizeof(i));
        snprintf(ev.image_id, sizeof(ev.image_id), "t%d", a->index);
        ev.variant = i % 10 - 1;
        ev.status = 200;
        memcpy(ev.country, "US", 3);
        ev.bytes = (uint64_t)a->index * 1000000 + (uint64_t)i;
        if (evlog_append(a->lg, &ev) != 0)
            a->failures++;
        if (i % 256 == 0)
            usleep(100); /* let the reader in between appends */
    }
    return NULL;
}

/* The reader's place in one segment and what it read there. */
struct seg_read {
    char stem[EVLOG_STEM_MAX];
    size_t next;
    int ended, gone;
    uint64_t *bytes; /* events read, as thread * 1000000 + i */
    size_t n, cap;
};

struct reader {
    const char *dir;
    int64_t day;
    struct seg_read seg[MAX_SEGS];
    size_t nseg;
    unsigned rnd;
    uint64_t reads, at_edge;
    struct event buf[64];
};

static struct seg_read *reader_seg(struct reader *rd, const char *stem)
{
    for (size_t i = 0; i < rd->nseg; i++)
        if (strcmp(rd->seg[i].stem, stem) == 0)
            return &rd->seg[i];
    assert_true(rd->nseg < MAX_SEGS);
    struct seg_read *s = &rd->seg[rd->nseg++];
    memset(s, 0, sizeof(*s));
    snprintf(s->stem, sizeof(s->stem), "%s", stem);
    return s;
}

/* One read of segment s on from its `next`, every rule of a clean segment
 * checked. Returns the events read; *caught_up when fewer than asked for
 * were there (the reader reached the record being written, or the end). */
static size_t reader_step(struct reader *rd, struct seg_read *s, int *caught_up)
{
    size_t max = 1 + rand_r(&rd->rnd) % 64, from = s->next;
    struct evlog_piece r;
    int rc =
        evlog_segment_read(rd->dir, DATASET, rd->day, s->stem, from, SIZE_MAX, rd->buf, max, &r);
    rd->reads++;
    *caught_up = 1;
    if (rc == PF_ENOTFOUND) {
        /* Only a spare segment removed unused (it never held an event). */
        assert_int_equal(s->n, 0);
        s->gone = 1;
        return 0;
    }
    assert_int_equal(rc, 0);
    assert_true(r.n <= max);
    assert_int_equal(r.bad_header, 0);
    assert_int_equal(r.damaged, 0);
    assert_true(r.next >= from);
    /* Always a record boundary, and every record up to it is returned. */
    if (r.next != 0) {
        assert_true(r.next >= HDR);
        assert_int_equal((r.next - HDR) % REC, 0);
        assert_int_equal(r.n, (r.next - (from < HDR ? HDR : from)) / REC);
    } else {
        assert_int_equal(r.n, 0);
    }
    for (size_t i = 0; i < r.n; i++) {
        const struct event *ev = &rd->buf[i];
        uint64_t t = ev->bytes / 1000000;
        char id[8];
        snprintf(id, sizeof(id), "t%d", (int)t);
        assert_string_equal(ev->image_id, id);
        assert_string_equal(ev->country, "US");
        assert_int_equal(ev->request_id[0], t);
        /* In order: a segment holds one thread's consecutive events. */
        if (s->n > 0)
            assert_int_equal(ev->bytes, s->bytes[s->n - 1] + 1);
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 1024;
            s->bytes = realloc(s->bytes, s->cap * sizeof(*s->bytes));
            assert_non_null(s->bytes);
        }
        s->bytes[s->n++] = ev->bytes;
    }
    if (r.end) {
        assert_false(s->ended && r.n > 0);
        s->ended = 1;
    }
    s->next = r.next;
    *caught_up = r.n < max;
    rd->at_edge += r.n < max && !r.end;
    return r.n;
}

/* One round: every segment listed, read once. OUT: how many are live. */
static size_t reader_round(struct reader *rd, size_t *live)
{
    struct evlog_segment *segs = NULL;
    size_t n = 0, got = 0;
    assert_int_equal(evlog_list_segments(rd->dir, DATASET, rd->day, &segs, &n), 0);
    *live = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(strcmp(segs[i - 1].stem, segs[i].stem) < 0);
        *live += segs[i].live != 0;
        struct seg_read *s = reader_seg(rd, segs[i].stem);
        int caught_up = 0;
        while (!caught_up)
            got += reader_step(rd, s, &caught_up);
    }
    free(segs);
    return got;
}

static int cmp_seg(const void *a, const void *b)
{
    return strcmp(((const struct seg_read *)a)->stem, ((const struct seg_read *)b)->stem);
}

static void test_live_then_sealed(void **state)
{
    (void)state;
    char dir[64], err[256] = "";
    make_tmpdir(dir, sizeof(dir));
    struct evlog *lg = NULL;
    /* A short sync period: the sync thread prepares spares and seals full
     * segments while the reader reads. */
    assert_int_equal(evlog_open(dir, DATASET, 10, NULL, &lg, err, sizeof(err)), 0);

    int64_t now_ms = (int64_t)time(NULL) * 1000;
    int64_t hour_ms = now_ms - now_ms % MS_PER_HOUR;
    static struct reader rd;
    memset(&rd, 0, sizeof(rd));
    rd.dir = dir;
    rd.day = hour_ms / MS_PER_DAY;
    rd.rnd = 12345;

    _Atomic int running = THREADS;
    pthread_barrier_t pause;
    assert_int_equal(pthread_barrier_init(&pause, NULL, THREADS + 1), 0);
    struct appender a[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        a[t] = (struct appender){lg, t, hour_ms, &running, &pause, 0};
        assert_int_equal(pthread_create(&th[t], NULL, append_main, &a[t]), 0);
    }
    size_t live = 0, during = 0, max_live = 0;
    while (atomic_load(&running) > 0) {
        during += reader_round(&rd, &live);
        max_live = live > max_live ? live : max_live;
    }
    /* The writers wait: every event appended so far is read, up to each
     * live segment's last record. */
    pthread_barrier_wait(&pause);
    during += reader_round(&rd, &live);
    assert_int_equal(during, THREADS * PER_THREAD);
    assert_true(live >= THREADS); /* the writers' current segments */
    pthread_barrier_wait(&pause);
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(a[t].failures, 0);
    }
    pthread_barrier_destroy(&pause);
    int64_t *days = NULL;
    size_t ndays = 0;
    assert_int_equal(evlog_list_days(dir, DATASET, &days, &ndays), 0);
    assert_int_equal(ndays, 1);
    assert_true(days[0] == rd.day);
    free(days);

    evlog_close(lg);

    /* Sealed: read on from the last `next` to the end, then end=1 again
     * with nothing more. */
    size_t after = 0;
    for (;;) {
        size_t got = reader_round(&rd, &live);
        assert_int_equal(live, 0);
        /* Those no longer listed too: a spare removed unused at the close. */
        int all = 1;
        for (size_t i = 0; i < rd.nseg; i++) {
            int caught_up = 0;
            while (!rd.seg[i].ended && !rd.seg[i].gone && !caught_up)
                got += reader_step(&rd, &rd.seg[i], &caught_up);
            all &= rd.seg[i].ended || rd.seg[i].gone;
        }
        after += got;
        if (all && got == 0)
            break;
    }
    print_message("    %zu events read while appended (%" PRIu64 " reads, %" PRIu64
                  " up to a live segment's last record, up to %zu live segments), %zu after the "
                  "close; %zu segments\n",
                  during, rd.reads, rd.at_edge, max_live, after, rd.nseg);
    assert_true(rd.nseg > THREADS); /* segments rotated while being read */
    assert_int_equal(after, THREADS * TAIL);

    /* Every event once, each thread's in order across its segments. */
    qsort(rd.seg, rd.nseg, sizeof(rd.seg[0]), cmp_seg);
    uint64_t expect[THREADS] = {0};
    size_t total = 0;
    for (size_t i = 0; i < rd.nseg; i++) {
        struct seg_read *s = &rd.seg[i];
        if (s->n == 0)
            continue;
        uint64_t t = s->bytes[0] / 1000000;
        assert_true(t < THREADS);
        assert_int_equal(s->bytes[0] % 1000000, expect[t]);
        expect[t] += s->n;
        total += s->n;
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(expect[t], PER_THREAD + TAIL);
    assert_int_equal(total, THREADS * (PER_THREAD + TAIL));

    /* Exists until removed; removed, it is gone from the listing. */
    struct evlog_segment *segs = NULL;
    size_t n = 0;
    assert_int_equal(evlog_list_segments(dir, DATASET, rd.day, &segs, &n), 0);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(segs[i].live, 0);
        assert_true(segs[i].size > HDR);
        assert_int_equal(evlog_segment_exists(dir, DATASET, rd.day, segs[i].stem), 1);
        assert_int_equal(evlog_segment_remove(dir, DATASET, rd.day, segs[i].stem), 0);
        assert_int_equal(evlog_segment_exists(dir, DATASET, rd.day, segs[i].stem), 0);
        struct evlog_piece r;
        assert_int_equal(
            evlog_segment_read(dir, DATASET, rd.day, segs[i].stem, 0, SIZE_MAX, rd.buf, 64, &r),
            PF_ENOTFOUND);
    }
    free(segs);
    assert_int_equal(evlog_list_segments(dir, DATASET, rd.day, &segs, &n), 0);
    assert_int_equal(n, 0);
    free(segs);
    for (size_t i = 0; i < rd.nseg; i++)
        free(rd.seg[i].bytes);
    rm_tree(dir);
}

/* ---- Crafted live segments ------------------------------------------------ */

/* A record being written is never returned, whatever part of it is there
 * yet; once whole, it is read from where the last read stopped. */
static void test_record_being_written(void **state)
{
    (void)state;
    char dir[64], path[512];
    make_tmpdir(dir, sizeof(dir));
    struct event out[16];
    struct evlog_piece r;
    uint8_t whole[REC];
    struct event ev5 = sample_event(5);
    evlog_encode(&ev5, whole);

    /* [lo, hi): the bytes of record 5 written so far (its last three,
     * reserved, are zero: written or not, the same). */
    static const size_t parts[][2] = {{0, 1},  {0, 2},  {0, 6},  {0, 8},  {0, 36}, {0, 60},
                                      {0, 68}, {2, 72}, {6, 72}, {0, 64}, {8, 72}};
    for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++) {
        size_t len;
        uint8_t *buf = make_segment(0, 5, 4096, &len);
        memcpy(buf + at(5) + parts[p][0], whole + parts[p][0], parts[p][1] - parts[p][0]);
        put_segment(dir, day0(), STEM_A ".open", buf, len, path, sizeof(path));

        read_seg(dir, STEM_A, 0, SIZE_MAX, out, 16, &r);
        assert_int_equal(r.n, 5);
        assert_int_equal(r.next, at(5));
        assert_int_equal(r.end, 0);
        assert_int_equal(r.damaged, 0);
        assert_samples(out, 5, 0);
        read_seg(dir, STEM_A, r.next, SIZE_MAX, out, 16, &r);
        assert_int_equal(r.n, 0);
        assert_int_equal(r.next, at(5));

        /* Finished, and the next one half written. */
        struct event ev6 = sample_event(6);
        uint8_t rec6[REC];
        evlog_encode(&ev6, rec6);
        patch_bytes(path, at(5), whole, REC);
        patch_bytes(path, at(6), rec6, 40);
        read_seg(dir, STEM_A, at(5), SIZE_MAX, out, 16, &r);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.next, at(6));
        assert_samples(out, 1, 5);
        free(buf);
    }

    /* Just created, header not written yet: nothing, read again from 0. */
    uint8_t zeros[4096] = {0};
    put_segment(dir, day0(), STEM_A ".open", zeros, sizeof(zeros), path, sizeof(path));
    read_seg(dir, STEM_A, 0, SIZE_MAX, out, 16, &r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.next, 0);
    assert_int_equal(r.bad_header, 0);
    assert_int_equal(r.end, 0);

    /* The same torn bytes once sealed: a tail of damage, and the end. */
    size_t len;
    uint8_t *buf = make_segment(0, 5, 36, &len);
    memcpy(buf + at(5), whole, 36);
    unlink(path);
    put_segment(dir, day0(), STEM_A ".pfe", buf, len, path, sizeof(path));
    read_seg(dir, STEM_A, at(2), SIZE_MAX, out, 16, &r);
    assert_int_equal(r.n, 3);
    assert_samples(out, 3, 2);
    assert_int_equal(r.next, len);
    assert_int_equal(r.damaged, 36);
    assert_int_equal(r.end, 1);
    free(buf);
    rm_tree(dir);
}

/* A live segment is read in chunks (evlog_spool.c): reads that cross their
 * boundaries, start inside one, or end at a segment's last byte. */
static void test_live_chunks(void **state)
{
    (void)state;
    char dir[64], path[512];
    make_tmpdir(dir, sizeof(dir));
    enum { N = 3000 };
    struct event *out = calloc(N + 10, sizeof(*out));
    assert_non_null(out);
    struct evlog_piece r;
    static const int counts[] = {N, 910, 1820, 909, 911, 1};
    static const size_t tails[] = {20000, 0, 0, 72, 0, 5};
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        int n = counts[c];
        size_t len;
        uint8_t *buf = make_segment(0, n, tails[c], &len);
        put_segment(dir, day0(), STEM_A ".open", buf, len, path, sizeof(path));
        read_seg(dir, STEM_A, 0, SIZE_MAX, out, N + 10, &r);
        assert_int_equal(r.n, n);
        assert_int_equal(r.next, at(n));
        assert_int_equal(r.end, 0);
        assert_samples(out, r.n, 0);
        /* Piecewise, for a few sizes of piece. */
        static const size_t maxes[] = {1, 7, 909, 910, 911, 1000};
        for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
            size_t from = 0, seen = 0;
            for (;;) {
                read_seg(dir, STEM_A, from, SIZE_MAX, out, maxes[m], &r);
                assert_true(r.n <= maxes[m]);
                assert_int_equal(r.next, at(seen + r.n));
                assert_samples(out, r.n, (int)seen);
                seen += r.n;
                if (r.n == 0)
                    break;
                from = r.next;
            }
            assert_int_equal(seen, n);
        }
        free(buf);
    }

    /* From the middle across chunks; up to an `until`. */
    size_t len;
    uint8_t *buf = make_segment(0, N, 20000, &len);
    put_segment(dir, day0(), STEM_A ".open", buf, len, path, sizeof(path));
    read_seg(dir, STEM_A, at(905), SIZE_MAX, out, 1000, &r);
    assert_int_equal(r.n, 1000);
    assert_int_equal(r.next, at(1905));
    assert_samples(out, 1000, 905);
    read_seg(dir, STEM_A, 0, at(2000), out, N, &r);
    assert_int_equal(r.n, 2000);
    assert_int_equal(r.next, at(2000));
    read_seg(dir, STEM_A, at(100), at(1900), out, N, &r);
    assert_int_equal(r.n, 1800);
    assert_int_equal(r.next, at(1900));
    assert_samples(out, r.n, 100);

    /* One more appended in the zeros: read from where the last read ended. */
    read_seg(dir, STEM_A, at(0), SIZE_MAX, out, N + 10, &r);
    assert_int_equal(r.next, at(N));
    uint8_t rec[REC];
    struct event ev = sample_event(N);
    evlog_encode(&ev, rec);
    patch_bytes(path, at(N), rec, REC);
    read_seg(dir, STEM_A, r.next, SIZE_MAX, out, N + 10, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.next, at(N + 1));
    assert_samples(out, 1, N);
    free(buf);
    free(out);
    rm_tree(dir);
}

/* ---- Sealed segments: damage, bad headers --------------------------------- */

/* Read a whole segment in pieces of `max`. OUT: events (their bytes) and
 * the damage counted. Returns the number of events. */
static size_t read_all(const char *dir, const char *stem, size_t max, uint64_t *bytes,
                       uint64_t *damaged)
{
    struct event out[64];
    struct evlog_piece r;
    size_t from = 0, n = 0;
    *damaged = 0;
    assert_true(max <= 64);
    for (int guard = 0;; guard++) {
        assert_true(guard < 10000);
        read_seg(dir, stem, from, SIZE_MAX, out, max, &r);
        assert_true(r.n <= max);
        assert_true(r.next >= from);
        for (size_t i = 0; i < r.n; i++)
            bytes[n++] = out[i].bytes;
        *damaged += r.damaged;
        if (r.end)
            break;
        assert_true(r.next > from); /* sealed: always progress */
        from = r.next;
    }
    /* And the end stays the end. */
    read_seg(dir, stem, r.next, SIZE_MAX, out, max, &r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.end, 1);
    return n;
}

static void test_sealed_damage(void **state)
{
    (void)state;
    char dir[64], path[512];
    make_tmpdir(dir, sizeof(dir));
    uint64_t bytes[64], damaged;
    size_t len;

    /* One byte flipped inside record 7's payload: that record only. */
    uint8_t *buf = make_segment(0, 20, 0, &len);
    buf[at(7) + 30] ^= 0x40;
    put_segment(dir, day0(), STEM_A ".pfe", buf, len, path, sizeof(path));
    for (size_t max = 1; max <= 64; max += 21) {
        size_t n = read_all(dir, STEM_A, max, bytes, &damaged);
        assert_int_equal(n, 19);
        assert_int_equal(damaged, REC);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(bytes[i], i < 7 ? i : i + 1);
    }
    free(buf);

    /* Record 3's sync byte, 5 junk bytes after record 10, record 14 a frame
     * whose fields do not hold (country in lower case, checksum fixed), two
     * records zeroed in the middle (a lost page), zeros at the end (not
     * cut: not damage). */
    size_t n0 = 30;
    uint8_t *src = make_segment(0, (int)n0, 0, &len);
    buf = calloc(1, len + 5 + 500);
    assert_non_null(buf);
    memcpy(buf, src, at(11));
    memcpy(buf + at(11), "junk!", 5);
    memcpy(buf + at(11) + 5, src + at(11), len - at(11));
    size_t flen = len + 5 + 500;
    buf[at(3)] = 0x00;
    uint8_t *r14 = buf + at(14) + 5;
    r14[66] = 'd';
    put_le32(r14 + 2, (uint32_t)XXH3_64bits(r14 + 6, REC - 6));
    memset(buf + at(20) + 5, 0, 2 * REC);
    put_segment(dir, day0(), STEM_B ".pfe", buf, flen, path, sizeof(path));
    for (size_t max = 1; max <= 64; max += 9) {
        size_t n = read_all(dir, STEM_B, max, bytes, &damaged);
        assert_int_equal(damaged, REC + 5 + REC + 2 * REC);
        assert_int_equal(n, n0 - 4);
        for (size_t i = 0, k = 0; k < n0; k++)
            if (k != 3 && k != 14 && k != 20 && k != 21)
                assert_int_equal(bytes[i++], k);
    }
    free(buf);
    free(src);
    rm_tree(dir);
}

static void test_bad_header(void **state)
{
    (void)state;
    char dir[64], path[512];
    make_tmpdir(dir, sizeof(dir));
    struct event out[16];
    struct evlog_piece r;
    size_t len;
    uint8_t *buf = make_segment(0, 3, 0, &len);
    buf[12] ^= 1; /* the header's checksum */

    put_segment(dir, day0(), STEM_A ".pfe", buf, len, path, sizeof(path));
    read_seg(dir, STEM_A, 0, SIZE_MAX, out, 16, &r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.bad_header, 1);
    assert_int_equal(r.end, 1);
    read_seg(dir, STEM_A, r.next, SIZE_MAX, out, 16, &r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.end, 1);

    /* Live: nothing read either, but not the end. */
    put_segment(dir, day0(), STEM_B ".open", buf, len, path, sizeof(path));
    read_seg(dir, STEM_B, 0, SIZE_MAX, out, 16, &r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.bad_header, 1);
    assert_int_equal(r.end, 0);
    unlink(path);

    /* Empty, shorter than a header, another file's magic. */
    static const char *contents[] = {"", "PFEVLOG", "PFEVLOX\0\1\0\0\0abcdefgh"};
    static const size_t lens[] = {0, 7, 20};
    for (size_t i = 0; i < 3; i++) {
        put_segment(dir, day0(), STEM_A ".pfe", (const uint8_t *)contents[i], lens[i], path,
                    sizeof(path));
        read_seg(dir, STEM_A, 0, SIZE_MAX, out, 16, &r);
        assert_int_equal(r.n, 0);
        assert_int_equal(r.bad_header, 1);
        assert_int_equal(r.end, 1);
    }
    free(buf);
    rm_tree(dir);
}

/* ---- until: a batch's range read again ------------------------------------ */

static void test_until_ranges(void **state)
{
    (void)state;
    char dir[64], path[512];
    make_tmpdir(dir, sizeof(dir));
    struct event first[64], again[128];
    struct evlog_piece r, r2;
    size_t len;

    /* Live, sealed, and sealed with damage. */
    for (int kind = 0; kind < 3; kind++) {
        uint8_t *buf = make_segment(0, 50, kind == 0 ? 3000 : 0, &len);
        if (kind == 2) {
            buf[at(9) + 40] ^= 1;
            buf[at(30)] ^= 1;
        }
        const char *name = kind == 0 ? STEM_A ".open" : STEM_A ".pfe";
        put_segment(dir, day0(), name, buf, len, path, sizeof(path));
        size_t from = 0, total = 0;
        for (;;) {
            read_seg(dir, STEM_A, from, SIZE_MAX, first, 7, &r);
            if (r.next == from)
                break;
            total += r.n;
            /* [from, next) read again: the same events, the same end. */
            read_seg(dir, STEM_A, from, r.next, again, 128, &r2);
            assert_int_equal(r2.n, r.n);
            assert_int_equal(r2.next, r.next);
            assert_int_equal(r2.damaged, r.damaged);
            for (size_t i = 0; i < r.n; i++)
                assert_same_event(&again[i], &first[i]);
            from = r.next;
        }
        assert_int_equal(total, kind == 2 ? 48 : 50);
        unlink(path);
        free(buf);
    }

    /* An `until` on a record boundary inside the segment: exactly up to it. */
    uint8_t *buf = make_segment(0, 50, 0, &len);
    put_segment(dir, day0(), STEM_A ".pfe", buf, len, path, sizeof(path));
    read_seg(dir, STEM_A, at(10), at(20), again, 128, &r);
    assert_int_equal(r.n, 10);
    assert_int_equal(r.next, at(20));
    assert_int_equal(r.end, 0);
    assert_samples(again, 10, 10);
    read_seg(dir, STEM_A, at(20), at(20), again, 128, &r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.next, at(20));
    read_seg(dir, STEM_A, 0, at(0), again, 128, &r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.next, at(0));
    read_seg(dir, STEM_A, at(45), len, again, 128, &r);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.end, 1);
    free(buf);
    rm_tree(dir);
}

/* ---- Listing, existence, removal ------------------------------------------ */

static void test_listing(void **state)
{
    (void)state;
    char dir[64], path[512], dd[256];
    make_tmpdir(dir, sizeof(dir));
    int64_t *days = NULL;
    size_t nd = 0;
    struct evlog_segment *segs = NULL;
    size_t ns = 0;

    /* Nothing recorded yet. */
    assert_int_equal(evlog_list_days(dir, DATASET, &days, &nd), 0);
    assert_int_equal(nd, 0);
    free(days);
    assert_int_equal(evlog_list_segments(dir, DATASET, day0(), &segs, &ns), 0);
    assert_int_equal(ns, 0);
    free(segs);

    /* Days ascending; other names in the dataset's directory ignored. */
    day_dir(dir, day0() + 2, dd, sizeof(dd));
    day_dir(dir, day0() - 1, dd, sizeof(dd));
    day_dir(dir, day0(), dd, sizeof(dd));
    snprintf(path, sizeof(path), "%s/events/%s/junk", dir, DATASET);
    mkdir_p(path);
    snprintf(path, sizeof(path), "%s/events/%s/2026-13-01", dir, DATASET);
    mkdir_p(path);
    snprintf(path, sizeof(path), "%s/events/%s/ship.state", dir, DATASET);
    write_bytes(path, (const uint8_t *)"x", 1);
    assert_int_equal(evlog_list_days(dir, DATASET, &days, &nd), 0);
    assert_int_equal(nd, 3);
    assert_true(days[0] == day0() - 1 && days[1] == day0() && days[2] == day0() + 2);
    free(days);

    /* Segments by stem; hidden, foreign and over-long names ignored; one
     * seen under both names (sealed between two readdir calls) once, as
     * sealed. */
    size_t len;
    uint8_t *buf = make_segment(0, 4, 0, &len);
    static const char *names[] = {"01-00000000000000aa-000-000002.pfe",
                                  "00-00000000000000aa-001-000001.open",
                                  "00-00000000000000aa-000-000001.pfe",
                                  "02-00000000000000aa-000-000003.open",
                                  "02-00000000000000aa-000-000003.pfe",
                                  ".00-00000000000000aa-002-000001.open.tmp",
                                  "readme.txt",
                                  "0123456789012345678901234567890123456789abcdefgh.pfe",
                                  "0123456789012345678901234567890123456789abcdefg.pfe"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        put_segment(dir, day0(), names[i], buf, len - (i == 0 ? REC : 0), path, sizeof(path));
    assert_int_equal(evlog_list_segments(dir, DATASET, day0(), &segs, &ns), 0);
    static const struct {
        const char *stem;
        int live;
        uint64_t size;
    } want[] = {{"00-00000000000000aa-000-000001", 0, 0},
                {"00-00000000000000aa-001-000001", 1, 0},
                {"01-00000000000000aa-000-000002", 0, REC},
                {"0123456789012345678901234567890123456789abcdefg", 0, 0},
                {"02-00000000000000aa-000-000003", 0, 0}};
    assert_int_equal(ns, 5);
    for (size_t i = 0; i < ns; i++) {
        assert_string_equal(segs[i].stem, want[i].stem);
        assert_int_equal(segs[i].live, want[i].live);
        assert_int_equal(segs[i].size, len - want[i].size);
    }
    free(segs);

    /* Existence and removal: a live segment is never removed. */
    const char *live = "00-00000000000000aa-001-000001";
    const char *sealed = "01-00000000000000aa-000-000002";
    const char *none = "03-00000000000000aa-000-000009";
    assert_int_equal(evlog_segment_exists(dir, DATASET, day0(), live), 1);
    assert_int_equal(evlog_segment_remove(dir, DATASET, day0(), live), 0);
    assert_int_equal(evlog_segment_exists(dir, DATASET, day0(), live), 1);
    assert_int_equal(evlog_segment_exists(dir, DATASET, day0(), sealed), 1);
    assert_int_equal(evlog_segment_remove(dir, DATASET, day0(), sealed), 0);
    assert_int_equal(evlog_segment_exists(dir, DATASET, day0(), sealed), 0);
    assert_int_equal(evlog_segment_exists(dir, DATASET, day0(), none), 0);
    assert_int_equal(evlog_segment_remove(dir, DATASET, day0(), none), 0);
    assert_int_equal(evlog_segment_exists(dir, DATASET, day0() + 1, live), 0);
    struct event out[4];
    struct evlog_piece r;
    assert_int_equal(evlog_segment_read(dir, DATASET, day0(), none, 0, SIZE_MAX, out, 4, &r),
                     PF_ENOTFOUND);
    assert_int_equal(evlog_segment_read(dir, DATASET, day0(), sealed, 0, SIZE_MAX, out, 4, &r),
                     PF_ENOTFOUND);
    assert_int_equal(evlog_list_segments(dir, DATASET, day0(), &segs, &ns), 0);
    assert_int_equal(ns, 4);
    free(segs);
    free(buf);
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_then_sealed), cmocka_unit_test(test_record_being_written),
        cmocka_unit_test(test_live_chunks),      cmocka_unit_test(test_sealed_damage),
        cmocka_unit_test(test_bad_header),       cmocka_unit_test(test_until_ranges),
        cmocka_unit_test(test_listing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
