/* evlog_test.c - the event store: record encoding and its validity rules, the
 * file scanner on clean, preallocated, torn, damaged and foreign files, and
 * the store itself (concurrent appends, the lock, crash recovery, retention,
 * hour and day rotation) on temporary data directories. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/err.h"
#include "analytics/evlog.h"
#include "base/timeutil.h"

#define REC EVLOG_RECORD_SIZE
#define HDR EVLOG_FILE_HEADER
#define DATASET "test_ds"
#define MS_PER_HOUR INT64_C(3600000)
#define MS_PER_DAY INT64_C(86400000)

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

/* Recompute a record's checksum after a field was changed on purpose. */
static void fix_checksum(uint8_t *rec)
{
    put_le32(rec + 2, (uint32_t)XXH3_64bits(rec + 6, REC - 6));
}

static struct event sample_event(int i)
{
    struct event ev;
    memset(&ev, 0, sizeof(ev));
    ev.ts_ms = INT64_C(1767225600000) + i;
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

/* A file image: header, then `n` sample records (event i has bytes == i),
 * with `extra` bytes of room after them. Caller frees. */
static uint8_t *make_file(int n, size_t extra, size_t *len)
{
    *len = HDR + (size_t)n * REC;
    uint8_t *buf = calloc(1, *len + extra);
    assert_non_null(buf);
    make_header(buf);
    for (int i = 0; i < n; i++) {
        struct event ev = sample_event(i);
        evlog_encode(&ev, buf + HDR + (size_t)i * REC);
    }
    return buf;
}

struct seen {
    uint64_t bytes[64];
    size_t n;
    int stop_after; /* 0: never */
};

static int seen_cb(void *ctx, const struct event *ev)
{
    struct seen *s = ctx;
    if (s->n < 64)
        s->bytes[s->n] = ev->bytes;
    s->n++;
    return s->stop_after != 0 && (int)s->n == s->stop_after ? 42 : 0;
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
    snprintf(dir, cap, "/tmp/pixflare-evlog-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void write_bytes(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int64_t day_of(const char *date)
{
    int64_t t = 0;
    assert_int_equal(timeutil_parse_date(date, &t), 0);
    return t / 86400;
}

/* Names in dir ending in `suffix`, counted; the first goes to first (if not
 * NULL, cap bytes). */
static int count_files(const char *dir, const char *suffix, char *first, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), m = strlen(suffix);
        if (de->d_name[0] == '.' || l < m || strcmp(de->d_name + l - m, suffix) != 0)
            continue;
        if (n == 0 && first != NULL)
            snprintf(first, cap, "%s", de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* ---- Records ------------------------------------------------------------ */

static void test_roundtrip_edges(void **state)
{
    (void)state;
    struct event ev, back;
    uint8_t rec[REC];

    memset(&ev, 0, sizeof(ev));
    ev.ts_ms = 0;
    ev.variant = -1;
    ev.status = 65535;
    ev.bytes = UINT64_MAX;
    memcpy(ev.country, "XX", 3);
    evlog_encode(&ev, rec);
    assert_int_equal(rec[0], 0x9E);
    assert_int_equal(rec[1], 0x7D);
    assert_int_equal(rec[6], 2); /* record version 2: byte 69 is the client */
    assert_int_equal(rec[7], 64);
    assert_int_equal(rec[68], 255); /* no variant */
    assert_int_equal(rec[64], 0xFF);
    assert_int_equal(rec[65], 0xFF);
    assert_int_equal(evlog_decode(rec, sizeof(rec), &back), 0);
    assert_same_event(&ev, &back);
    assert_string_equal(back.image_id, "");
    assert_int_equal(back.variant, -1);
    assert_int_equal(back.status, 65535);
    assert_true(back.bytes == UINT64_MAX);

    /* Longest image id, last variant, extreme timestamps, a digit country. */
    const int64_t times[] = {INT64_C(1767225600123), INT64_MAX, INT64_MIN, -1};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        ev = sample_event(7);
        ev.ts_ms = times[i];
        memcpy(ev.image_id, "z09az9a", 8);
        ev.variant = 8;
        ev.status = 0;
        ev.bytes = 0;
        memcpy(ev.country, "A1", 3);
        evlog_encode(&ev, rec);
        assert_int_equal(evlog_decode(rec, sizeof(rec), &back), 0);
        assert_same_event(&ev, &back);
    }
    /* Every valid variant. */
    for (int v = -1; v <= 8; v++) {
        ev = sample_event(v + 1);
        ev.variant = v;
        evlog_encode(&ev, rec);
        assert_int_equal(evlog_decode(rec, sizeof(rec), &back), 0);
        assert_int_equal(back.variant, v);
    }
}

/* A valid record, byte `at` set to `value`; checksum recomputed if `fix`. */
static int decode_with(size_t at, uint8_t value, int fix)
{
    struct event ev = sample_event(5), back;
    uint8_t rec[REC];
    evlog_encode(&ev, rec);
    rec[at] = value;
    if (fix)
        fix_checksum(rec);
    return evlog_decode(rec, sizeof(rec), &back);
}

static void test_decode_rejects(void **state)
{
    (void)state;
    struct event ev = sample_event(5), back;
    uint8_t rec[REC];
    evlog_encode(&ev, rec);
    assert_int_equal(evlog_decode(rec, sizeof(rec), &back), 0);
    assert_int_equal(evlog_decode(rec, REC - 1, &back), PF_EFORMAT); /* short */
    assert_int_equal(evlog_decode(rec, 0, &back), PF_EFORMAT);

    /* The frame: checksum (any byte it covers, or itself), sync, version,
     * payload length. */
    assert_int_equal(decode_with(2, (uint8_t)(rec[2] ^ 1), 0), PF_EFORMAT);
    assert_int_equal(decode_with(5, (uint8_t)(rec[5] ^ 0x80), 0), PF_EFORMAT);
    assert_int_equal(decode_with(20, (uint8_t)(rec[20] ^ 1), 0), PF_EFORMAT);
    assert_int_equal(decode_with(71, 1, 0), PF_EFORMAT);
    assert_int_equal(decode_with(0, 0x9F, 1), PF_EFORMAT);
    assert_int_equal(decode_with(1, 0x7C, 1), PF_EFORMAT);
    assert_int_equal(decode_with(6, 3, 1), PF_EFORMAT);
    assert_int_equal(decode_with(6, 0, 1), PF_EFORMAT);
    assert_int_equal(decode_with(7, 63, 1), PF_EFORMAT);
    assert_int_equal(decode_with(7, 65, 1), PF_EFORMAT);

    /* The client class (version 2): 0-2; reserved bytes zero. */
    assert_int_equal(decode_with(69, 2, 1), 0);
    assert_int_equal(decode_with(69, 3, 1), PF_EFORMAT);
    for (size_t at = 70; at < 72; at++)
        assert_int_equal(decode_with(at, 1, 1), PF_EFORMAT);
    /* A version 1 record (before the client class) is read as human; its
     * byte 69 was reserved, so must be zero. */
    ev.client = 2;
    evlog_encode(&ev, rec);
    rec[6] = 1;
    rec[69] = 0;
    fix_checksum(rec);
    assert_int_equal(evlog_decode(rec, sizeof(rec), &back), 0);
    assert_int_equal(back.client, 0);
    rec[69] = 1;
    fix_checksum(rec);
    assert_int_equal(evlog_decode(rec, sizeof(rec), &back), PF_EFORMAT);
    /* Version 2 keeps the class. */
    ev.client = 2;
    evlog_encode(&ev, rec);
    assert_int_equal(evlog_decode(rec, sizeof(rec), &back), 0);
    assert_int_equal(back.client, 2);

    /* Country: [A-Z][A-Z0-9] only. */
    assert_int_equal(decode_with(66, 'u', 1), PF_EFORMAT);
    assert_int_equal(decode_with(66, '1', 1), PF_EFORMAT);
    assert_int_equal(decode_with(66, 0, 1), PF_EFORMAT);
    assert_int_equal(decode_with(67, 'e', 1), PF_EFORMAT);
    assert_int_equal(decode_with(67, '-', 1), PF_EFORMAT);
    assert_int_equal(decode_with(67, ':', 1), PF_EFORMAT); /* '9' + 1 */
    assert_int_equal(decode_with(67, '@', 1), PF_EFORMAT); /* 'A' - 1 */
    assert_int_equal(decode_with(66, '@', 1), PF_EFORMAT);
    assert_int_equal(decode_with(66, '[', 1), PF_EFORMAT); /* 'Z' + 1 */
    assert_int_equal(decode_with(67, 0, 1), PF_EFORMAT);
    assert_int_equal(decode_with(67, '9', 1), 0);

    /* Variant: 0..8 or 255. */
    assert_int_equal(decode_with(68, 9, 1), PF_EFORMAT);
    assert_int_equal(decode_with(68, 254, 1), PF_EFORMAT);
    assert_int_equal(decode_with(68, 8, 1), 0);
    assert_int_equal(decode_with(68, 255, 1), 0);

    /* Image id: [a-z0-9], NUL-padded, byte 55 always 0. The sample's id is
     * "img5" at bytes 48..51. */
    assert_int_equal(decode_with(48, 'I', 1), PF_EFORMAT);
    assert_int_equal(decode_with(49, '-', 1), PF_EFORMAT);
    assert_int_equal(decode_with(50, '_', 1), PF_EFORMAT);
    assert_int_equal(decode_with(51, 0xC3, 1), PF_EFORMAT);
    assert_int_equal(decode_with(53, 'a', 1), PF_EFORMAT); /* after the NUL */
    assert_int_equal(decode_with(55, 'a', 1), PF_EFORMAT);
    assert_int_equal(decode_with(52, 'a', 1), 0); /* "img5a" */
    memcpy(rec + 48, "abcdefgh", 8);              /* 8 characters, no NUL */
    fix_checksum(rec);
    assert_int_equal(evlog_decode(rec, sizeof(rec), &back), PF_EFORMAT);
    memcpy(rec + 48, "abcdefg", 8);
    fix_checksum(rec);
    assert_int_equal(evlog_decode(rec, sizeof(rec), &back), 0);
    assert_string_equal(back.image_id, "abcdefg");
}

/* ---- The scanner -------------------------------------------------------- */

static void test_scan_clean(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_file(5, 0, &len);
    struct evlog_file_stats st;
    struct seen s = {{0}, 0, 0};
    assert_int_equal(evlog_scan_buffer(buf, len, seen_cb, &s, &st), 0);
    assert_int_equal(st.bad_header, 0);
    assert_int_equal(st.events, 5);
    assert_int_equal(st.damaged_bytes, 0);
    assert_int_equal(st.tail_bytes, 0);
    assert_int_equal(st.valid_end, HDR + 5 * REC);
    assert_int_equal(s.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(s.bytes[i], i);

    /* The callback's non-zero return stops the scan and comes back. */
    struct seen stop = {{0}, 0, 2};
    assert_int_equal(evlog_scan_buffer(buf, len, seen_cb, &stop, &st), 42);
    assert_int_equal(stop.n, 2);

    /* A header alone: no events, nothing damaged. */
    assert_int_equal(evlog_scan_buffer(buf, HDR, NULL, NULL, &st), 0);
    assert_int_equal(st.bad_header, 0);
    assert_int_equal(st.events, 0);
    assert_int_equal(st.valid_end, HDR);
    assert_int_equal(st.tail_bytes + st.damaged_bytes, 0);
    free(buf);
}

static void test_scan_zero_tail(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_file(4, 5000, &len);
    struct evlog_file_stats st;
    assert_int_equal(evlog_scan_buffer(buf, len + 5000, NULL, NULL, &st), 0);
    assert_int_equal(st.bad_header, 0);
    assert_int_equal(st.events, 4);
    assert_int_equal(st.damaged_bytes, 0);
    assert_int_equal(st.tail_bytes, 0);
    assert_int_equal(st.valid_end, len);
    /* Fewer zero bytes than a record: still preallocated space. */
    assert_int_equal(evlog_scan_buffer(buf, len + 10, NULL, NULL, &st), 0);
    assert_int_equal(st.tail_bytes + st.damaged_bytes, 0);
    assert_int_equal(st.valid_end, len);
    free(buf);
}

static void test_scan_torn_tail(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_file(4, 0, &len);
    struct evlog_file_stats st;
    size_t cut = len - REC / 2; /* half of record 4 written */
    assert_int_equal(evlog_scan_buffer(buf, cut, NULL, NULL, &st), 0);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.tail_bytes, REC / 2);
    assert_int_equal(st.damaged_bytes, 0);
    assert_int_equal(st.valid_end, HDR + 3 * REC);
    free(buf);

    /* The same torn record inside preallocated zeros: the tail runs to the
     * end of the file, the valid part still ends after record 3. */
    buf = make_file(4, 1000, &len);
    memset(buf + len - REC / 2, 0, REC / 2);
    assert_int_equal(evlog_scan_buffer(buf, len + 1000, NULL, NULL, &st), 0);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.valid_end, HDR + 3 * REC);
    assert_int_equal(st.tail_bytes, len + 1000 - (HDR + 3 * REC));
    assert_int_equal(st.damaged_bytes, 0);
    free(buf);
}

static void test_scan_damage_in_middle(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_file(6, 0, &len);
    struct evlog_file_stats st;
    struct seen s = {{0}, 0, 0};
    buf[HDR + 2 * REC + 40] ^= 0x10; /* record 2's checksum no longer holds */
    assert_int_equal(evlog_scan_buffer(buf, len, seen_cb, &s, &st), 0);
    assert_int_equal(st.events, 5);
    assert_int_equal(st.damaged_bytes, REC);
    assert_int_equal(st.tail_bytes, 0);
    assert_int_equal(st.valid_end, len);
    const uint64_t want[] = {0, 1, 3, 4, 5};
    assert_int_equal(s.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(s.bytes[i], want[i]);
    free(buf);

    /* Two damaged records in a row, then a valid one: one damaged run. */
    buf = make_file(6, 0, &len);
    buf[HDR + 1 * REC + 2] ^= 0x01;
    buf[HDR + 2 * REC + 0] = 0;
    assert_int_equal(evlog_scan_buffer(buf, len, NULL, NULL, &st), 0);
    assert_int_equal(st.events, 4);
    assert_int_equal(st.damaged_bytes, 2 * REC);
    assert_int_equal(st.tail_bytes, 0);
    assert_int_equal(st.valid_end, len);
    free(buf);

    /* Junk of an odd length between records 2 and 3, with a false sync. */
    uint8_t *clean = make_file(6, 0, &len);
    const uint8_t junk[13] = {'j', 0x9E, 0x7D, 1, 64, 0, 0, 0, 0x9E, 0, 0, 0, 'k'};
    buf = malloc(len + sizeof(junk));
    assert_non_null(buf);
    memcpy(buf, clean, HDR + 3 * REC);
    memcpy(buf + HDR + 3 * REC, junk, sizeof(junk));
    memcpy(buf + HDR + 3 * REC + sizeof(junk), clean + HDR + 3 * REC, 3 * REC);
    assert_int_equal(evlog_scan_buffer(buf, len + sizeof(junk), NULL, NULL, &st), 0);
    assert_int_equal(st.events, 6);
    assert_int_equal(st.damaged_bytes, sizeof(junk));
    assert_int_equal(st.tail_bytes, 0);
    assert_int_equal(st.valid_end, len + sizeof(junk));
    free(buf);

    /* A record whose frame holds but whose fields are invalid (a lowercase
     * country with a recomputed checksum) is skipped as damage. */
    clean[HDR + REC + 66] = 'd';
    fix_checksum(clean + HDR + REC);
    assert_int_equal(evlog_scan_buffer(clean, len, NULL, NULL, &st), 0);
    assert_int_equal(st.events, 5);
    assert_int_equal(st.damaged_bytes, REC);
    assert_int_equal(st.tail_bytes, 0);
    free(clean);
}

static void test_scan_bad_header(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_file(3, 0, &len);
    struct evlog_file_stats st;
    const size_t bytes[] = {0, 7, 8, 12, 15};
    for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
        buf[bytes[i]] ^= 0x01;
        assert_int_equal(evlog_scan_buffer(buf, len, NULL, NULL, &st), 0);
        assert_int_equal(st.bad_header, 1);
        assert_int_equal(st.events, 0);
        buf[bytes[i]] ^= 0x01;
    }
    /* Version 2 with a matching checksum is still not a version-1 file. */
    put_le32(buf + 8, 2);
    put_le32(buf + 12, (uint32_t)XXH3_64bits(buf, 12));
    assert_int_equal(evlog_scan_buffer(buf, len, NULL, NULL, &st), 0);
    assert_int_equal(st.bad_header, 1);
    /* Shorter than a header, and empty. */
    make_header(buf);
    assert_int_equal(evlog_scan_buffer(buf, HDR - 1, NULL, NULL, &st), 0);
    assert_int_equal(st.bad_header, 1);
    assert_int_equal(evlog_scan_buffer(buf, 0, NULL, NULL, &st), 0);
    assert_int_equal(st.bad_header, 1);
    assert_int_equal(st.events, 0);
    free(buf);
}

/* ---- The store ---------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 10000

struct appender {
    struct evlog *lg;
    int index;
    int64_t hour_ms;
    int failures;
};

static void *append_main(void *arg)
{
    struct appender *a = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        struct event ev;
        memset(&ev, 0, sizeof(ev));
        ev.ts_ms = a->hour_ms + (int64_t)i * 300; /* spread over the hour */
        event_request_id(ev.request_id);
        snprintf(ev.image_id, sizeof(ev.image_id), "t%d", a->index);
        ev.variant = i % 10 - 1;
        ev.status = 200;
        memcpy(ev.country, "US", 3);
        ev.bytes = (uint64_t)a->index * 1000000 + (uint64_t)i;
        if (evlog_append(a->lg, &ev) != 0)
            a->failures++;
    }
    return NULL;
}

struct collected {
    uint8_t (*ids)[16];
    uint64_t *bytes;
    size_t n, cap;
};

static int collect_cb(void *ctx, const struct event *ev)
{
    struct collected *c = ctx;
    if (c->n < c->cap) {
        memcpy(c->ids[c->n], ev->request_id, 16);
        c->bytes[c->n] = ev->bytes;
    }
    c->n++;
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_appends(void **state)
{
    (void)state;
    char dir[64], err[256] = "";
    make_tmpdir(dir, sizeof(dir));
    struct evlog *lg = NULL;
    assert_int_equal(evlog_open(dir, DATASET, 600000, NULL, &lg, err, sizeof(err)), 0);

    int64_t now_ms = (int64_t)time(NULL) * 1000;
    int64_t hour_ms = now_ms - now_ms % MS_PER_HOUR;
    struct appender a[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        a[t] = (struct appender){lg, t, hour_ms, 0};
        assert_int_equal(pthread_create(&th[t], NULL, append_main, &a[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(a[t].failures, 0);
    }
    struct evlog_stats es;
    evlog_get_stats(lg, &es);
    assert_int_equal(es.appended, THREADS * PER_THREAD);
    assert_int_equal(es.dropped, 0);
    assert_int_equal(es.segments, 2 * THREADS);
    evlog_close(lg);

    /* Sealed, nothing left open. */
    char day[11], daydir[128];
    timeutil_format_date(hour_ms / 1000, day);
    snprintf(daydir, sizeof(daydir), "%s/events/%s/%s", dir, DATASET, day);
    /* Per thread: a 256 KiB segment (3640 events), then a 512 KiB one. */
    assert_int_equal(count_files(daydir, ".pfe", NULL, 0), 2 * THREADS);
    assert_int_equal(count_files(daydir, ".open", NULL, 0), 0);

    struct collected c = {calloc(THREADS * PER_THREAD, 16),
                          calloc(THREADS * PER_THREAD, sizeof(uint64_t)), 0, THREADS * PER_THREAD};
    assert_non_null(c.ids);
    assert_non_null(c.bytes);
    struct evlog_file_stats total;
    int64_t d = hour_ms / MS_PER_DAY;
    assert_int_equal(evlog_scan(dir, DATASET, d, d, collect_cb, &c, stderr, &total), 0);
    assert_int_equal(c.n, THREADS * PER_THREAD);
    assert_int_equal(total.events, THREADS * PER_THREAD);
    assert_int_equal(total.damaged_bytes, 0);
    assert_int_equal(total.tail_bytes, 0);
    assert_int_equal(total.bad_header, 0);

    qsort(c.ids, c.n, 16, cmp_id);
    for (size_t i = 1; i < c.n; i++)
        assert_true(memcmp(c.ids[i - 1], c.ids[i], 16) != 0);
    /* Every (thread, i) exactly once. */
    qsort(c.bytes, c.n, sizeof(uint64_t), cmp_u64);
    for (int t = 0, k = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++, k++)
            assert_int_equal(c.bytes[k], (uint64_t)t * 1000000 + (uint64_t)i);

    /* Other days hold nothing. */
    assert_int_equal(evlog_scan(dir, DATASET, d + 1, d + 3, NULL, NULL, NULL, &total), 0);
    assert_int_equal(total.events, 0);
    free(c.ids);
    free(c.bytes);
    rm_tree(dir);
}

static void test_lock_conflict(void **state)
{
    (void)state;
    char dir[64], err[256] = "";
    make_tmpdir(dir, sizeof(dir));
    struct evlog *a = NULL, *b = NULL;
    assert_int_equal(evlog_open(dir, DATASET, 50, NULL, &a, err, sizeof(err)), 0);
    assert_int_equal(evlog_open(dir, DATASET, 50, NULL, &b, err, sizeof(err)), PF_ECONFLICT);
    assert_null(b);
    assert_non_null(strstr(err, "in use"));
    /* Another dataset is another store. */
    assert_int_equal(evlog_open(dir, "other_ds", 50, NULL, &b, err, sizeof(err)), 0);
    evlog_close(b);
    b = NULL;
    /* Closing releases the lock. */
    evlog_close(a);
    assert_int_equal(evlog_open(dir, DATASET, 50, NULL, &b, err, sizeof(err)), 0);
    evlog_close(b);
    rm_tree(dir);
}

static void test_crash_recovery(void **state)
{
    (void)state;
    char dir[64], err[256] = "", daydir[160], path[256], empty[256], sealed[256];
    make_tmpdir(dir, sizeof(dir));
    const int64_t day = day_of("2025-06-14");
    snprintf(daydir, sizeof(daydir), "%s/events/%s/2025-06-14", dir, DATASET);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", daydir);
    assert_int_equal(system(cmd), 0);

    /* What a killed server leaves: header, 3 records, half of a fourth, and
     * the rest of the preallocated segment still zero. */
    const size_t zeros = 8192;
    size_t len;
    uint8_t *buf = make_file(4, zeros, &len);
    for (int i = 0; i < 4; i++) {
        struct event ev = sample_event(i);
        ev.ts_ms = day * MS_PER_DAY + 13 * MS_PER_HOUR + i;
        evlog_encode(&ev, buf + HDR + (size_t)i * REC);
    }
    memset(buf + len - REC / 2, 0, REC / 2);
    snprintf(path, sizeof(path), "%s/13-0123456789abcdef-000-0000.open", daydir);
    snprintf(sealed, sizeof(sealed), "%s/13-0123456789abcdef-000-0000.pfe", daydir);
    write_bytes(path, buf, len + zeros);
    /* And one killed before its first record: header and zeros only. */
    memset(buf + HDR, 0, len + zeros - HDR);
    snprintf(empty, sizeof(empty), "%s/13-0123456789abcdef-001-0000.open", daydir);
    write_bytes(empty, buf, len + zeros);
    free(buf);

    char *logtext = NULL;
    size_t loglen = 0;
    FILE *log = open_memstream(&logtext, &loglen);
    assert_non_null(log);
    struct evlog *lg = NULL;
    assert_int_equal(evlog_open(dir, DATASET, 50, log, &lg, err, sizeof(err)), 0);
    evlog_close(lg);
    fclose(log);
    assert_non_null(strstr(logtext, "recovered"));
    assert_non_null(strstr(logtext, "3 events kept"));
    free(logtext);

    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    assert_int_not_equal(stat(empty, &sb), 0);
    assert_int_equal(stat(sealed, &sb), 0);
    assert_int_equal(sb.st_size, HDR + 3 * REC);

    struct seen s = {{0}, 0, 0};
    struct evlog_file_stats total;
    assert_int_equal(evlog_scan(dir, DATASET, day, day, seen_cb, &s, stderr, &total), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(total.events, 3);
    assert_int_equal(total.damaged_bytes + total.tail_bytes + total.bad_header, 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(s.bytes[i], i);
    rm_tree(dir);
}

/* Append `n` events at `ts_ms` with bytes numbered from `first`. */
static void append_at(struct evlog *lg, int64_t ts_ms, int n, uint64_t first)
{
    for (int i = 0; i < n; i++) {
        struct event ev = sample_event(i);
        ev.ts_ms = ts_ms + i;
        ev.bytes = first + (uint64_t)i;
        event_request_id(ev.request_id);
        assert_int_equal(evlog_append(lg, &ev), 0);
    }
}

static void test_purge_before(void **state)
{
    (void)state;
    char dir[64], err[256] = "", path[200];
    make_tmpdir(dir, sizeof(dir));
    const char *days[3] = {"2025-02-27", "2025-02-28", "2025-03-01"};
    struct evlog *lg = NULL;
    assert_int_equal(evlog_open(dir, DATASET, 600000, NULL, &lg, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++)
        append_at(lg, day_of(days[i]) * MS_PER_DAY + 6 * MS_PER_HOUR, 5, 0);
    evlog_close(lg);

    uint64_t removed = 99;
    /* Nothing is before the first day. */
    assert_int_equal(evlog_purge_before(dir, DATASET, day_of(days[0]), &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(evlog_purge_before(dir, DATASET, day_of(days[2]), &removed), 0);
    assert_int_equal(removed, 2);
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        snprintf(path, sizeof(path), "%s/events/%s/%s", dir, DATASET, days[i]);
        assert_int_equal(stat(path, &sb) == 0, i == 2);
    }
    snprintf(path, sizeof(path), "%s/events/%s/.lock", dir, DATASET);
    assert_int_equal(access(path, F_OK), 0);

    struct evlog_file_stats total;
    assert_int_equal(evlog_scan(dir, DATASET, 0, day_of("2100-01-01"), NULL, NULL, NULL, &total),
                     0);
    assert_int_equal(total.events, 5);
    /* A store never written: nothing to do. */
    assert_int_equal(evlog_purge_before(dir, "never_used", day_of(days[2]), &removed), 0);
    assert_int_equal(removed, 0);
    rm_tree(dir);
}

static void test_hour_and_day_rotation(void **state)
{
    (void)state;
    char dir[64], err[256] = "", path[200], first[128];
    make_tmpdir(dir, sizeof(dir));
    const int64_t d = day_of("2024-02-29");
    struct evlog *lg = NULL;
    assert_int_equal(evlog_open(dir, DATASET, 600000, NULL, &lg, err, sizeof(err)), 0);
    append_at(lg, d * MS_PER_DAY + 5 * MS_PER_HOUR, 10, 0);                       /* 05h */
    append_at(lg, d * MS_PER_DAY + 17 * MS_PER_HOUR + MS_PER_HOUR - 10, 10, 100); /* 17h */
    append_at(lg, (d + 1) * MS_PER_DAY + 3 * MS_PER_HOUR, 30, 200);               /* next day */
    append_at(lg, d * MS_PER_DAY + 5 * MS_PER_HOUR + 1000, 5, 300);               /* back */
    append_at(lg, (d + 1) * MS_PER_DAY - 10, 10, 400);                            /* 23:59:59.990 */
    evlog_close(lg);

    /* 2024-02-29: two segments of 05h, one of 17h, one of 23h. */
    snprintf(path, sizeof(path), "%s/events/%s/2024-02-29", dir, DATASET);
    assert_int_equal(count_files(path, ".pfe", NULL, 0), 4);
    assert_int_equal(count_files(path, ".open", NULL, 0), 0);
    snprintf(path, sizeof(path), "%s/events/%s/2024-03-01", dir, DATASET);
    assert_int_equal(count_files(path, ".pfe", first, sizeof(first)), 1);
    assert_int_equal(strncmp(first, "03-", 3), 0);

    struct collected c = {calloc(100, 16), calloc(100, sizeof(uint64_t)), 0, 100};
    assert_non_null(c.ids);
    assert_non_null(c.bytes);
    struct evlog_file_stats total;
    assert_int_equal(evlog_scan(dir, DATASET, d, d, collect_cb, &c, stderr, &total), 0);
    assert_int_equal(c.n, 35);
    assert_int_equal(total.events, 35); /* nothing of another day in its files */
    /* File order: by hour, then by writer and segment. */
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(c.bytes[i], i);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(c.bytes[10 + i], 300 + i);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(c.bytes[15 + i], 100 + i);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(c.bytes[25 + i], 400 + i);

    c.n = 0;
    assert_int_equal(evlog_scan(dir, DATASET, d + 1, d + 1, collect_cb, &c, stderr, &total), 0);
    assert_int_equal(c.n, 30);
    assert_int_equal(total.events, 30);
    for (size_t i = 0; i < 30; i++)
        assert_int_equal(c.bytes[i], 200 + i);

    c.n = 0;
    assert_int_equal(evlog_scan(dir, DATASET, d - 1, d + 1, collect_cb, &c, stderr, &total), 0);
    assert_int_equal(c.n, 65);
    c.n = 0;
    assert_int_equal(evlog_scan(dir, DATASET, d + 2, d + 30, collect_cb, &c, stderr, &total), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(total.events, 0);
    free(c.ids);
    free(c.bytes);
    rm_tree(dir);
}

struct rotator {
    struct evlog *lg;
    int64_t day_ms;
    int rounds;
    _Atomic int done;
    _Atomic uint64_t appended;
};

/* Append in alternating hours, so that every batch retires the segment of
 * the other hour and the sync thread (fsync_ms 1) seals it: cut to length
 * and renamed while the reader scans. */
static void *rotate_main(void *arg)
{
    struct rotator *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        append_at(r->lg, r->day_ms + (i % 2 ? 7 : 8) * MS_PER_HOUR, 50, (uint64_t)i * 50);
        atomic_fetch_add(&r->appended, 50);
    }
    atomic_store(&r->done, 1);
    return NULL;
}

static void test_read_while_sealing(void **state)
{
    (void)state;
    char dir[64], err[256] = "";
    make_tmpdir(dir, sizeof(dir));
    int64_t d = day_of("2025-06-01");
    struct evlog *lg = NULL;
    assert_int_equal(evlog_open(dir, DATASET, 1, NULL, &lg, err, sizeof(err)), 0);
    struct rotator r = {lg, d * MS_PER_DAY, 400, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, rotate_main, &r), 0);
    char *report = NULL;
    size_t report_len = 0;
    FILE *rep = open_memstream(&report, &report_len);
    int scans = 0;
    while (!atomic_load(&r.done)) {
        uint64_t before = atomic_load(&r.appended);
        struct evlog_file_stats total;
        assert_int_equal(evlog_scan(dir, DATASET, d, d, NULL, NULL, rep, &total), 0);
        /* Never fewer events than were appended before the scan began: a
         * segment sealed under the reader is read, not skipped. */
        assert_true(total.events >= before);
        assert_int_equal(total.bad_header, 0);
        scans++;
    }
    pthread_join(t, NULL);
    evlog_close(lg);
    fclose(rep);
    if (report_len != 0)
        fprintf(stderr, "%s", report);
    assert_int_equal(report_len, 0); /* nothing reported as damaged or unreadable */
    free(report);
    assert_true(scans > 0);
    struct evlog_file_stats total;
    assert_int_equal(evlog_scan(dir, DATASET, d, d, NULL, NULL, NULL, &total), 0);
    assert_int_equal(total.events, 400 * 50);
    rm_tree(dir);
}

/* With the sync thread passing continuously (fsync_ms 0), spares are
 * prepared while the writers fill theirs: each writer's events still come
 * back in the order it wrote them (segment numbers follow write order). */
static void test_spares_keep_write_order(void **state)
{
    (void)state;
    enum { N = 2 };
    char dir[64], err[256] = "";
    make_tmpdir(dir, sizeof(dir));
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    struct evlog *lg = NULL;
    assert_int_equal(evlog_open(dir, DATASET, 0, NULL, &lg, err, sizeof(err)), 0);
    struct appender a[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct appender){lg, i, now_ms - now_ms % MS_PER_HOUR, 0};
        assert_int_equal(pthread_create(&t[i], NULL, append_main, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
    evlog_close(lg);
    struct collected c = {calloc(N * PER_THREAD, 16), calloc(N * PER_THREAD, sizeof(uint64_t)), 0,
                          N * PER_THREAD};
    assert_non_null(c.ids);
    assert_non_null(c.bytes);
    struct evlog_file_stats total;
    int64_t d = (now_ms - now_ms % MS_PER_HOUR) / MS_PER_DAY;
    assert_int_equal(evlog_scan(dir, DATASET, d, d, collect_cb, &c, stderr, &total), 0);
    assert_int_equal(c.n, N * PER_THREAD);
    uint64_t last[N] = {0, 0};
    int seen_any[N] = {0, 0};
    for (size_t k = 0; k < c.n; k++) {
        int w = (int)(c.bytes[k] / 1000000);
        assert_true(w >= 0 && w < N);
        if (seen_any[w])
            assert_true(c.bytes[k] == last[w] + 1);
        last[w] = c.bytes[k];
        seen_any[w] = 1;
    }
    free(c.ids);
    free(c.bytes);
    rm_tree(dir);
}

/* No segment can be made (here: RLIMIT_FSIZE 0, so fallocate fails with
 * EFBIG, as a full disk fails it with ENOSPC): events are held in memory,
 * none dropped, and written out in order once segments can be made again. */
static void test_full_disk_holds_events(void **state)
{
    (void)state;
    char dir[64], err[256] = "";
    make_tmpdir(dir, sizeof(dir));
    struct evlog *lg = NULL;
    struct evlog_stats st;
    struct rlimit old, none;
    /* Hours ahead: the sync thread leaves them current. */
    int64_t a = ((int64_t)time(NULL) * 1000 / MS_PER_HOUR + 1) * MS_PER_HOUR, b = a + MS_PER_HOUR;
    assert_int_equal(evlog_open(dir, DATASET, 20, NULL, &lg, err, sizeof(err)), 0);
    int i = 0;
    for (; i < 10; i++) {
        struct event ev = sample_event(i);
        ev.ts_ms = a + i;
        assert_int_equal(evlog_append(lg, &ev), 0);
    }
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    none = old;
    none.rlim_cur = 0;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &none), 0);
    for (; i < 160; i++) { /* hour b needs a new segment: held, then a's too */
        struct event ev = sample_event(i);
        ev.ts_ms = (i < 110 ? b : a) + i;
        assert_int_equal(evlog_append(lg, &ev), 0);
    }
    evlog_get_stats(lg, &st);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.appended, 10);
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int k = 0; k < 10; k++) /* still held while nothing can be made */
        nanosleep(&pause, NULL);
    evlog_get_stats(lg, &st);
    assert_int_equal(st.appended, 10);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    for (int k = 0; k < 500 && st.appended < 160; k++) {
        nanosleep(&pause, NULL);
        evlog_get_stats(lg, &st);
    }
    assert_int_equal(st.appended, 160);
    for (; i < 170; i++) {
        struct event ev = sample_event(i);
        ev.ts_ms = b + i;
        assert_int_equal(evlog_append(lg, &ev), 0);
    }
    evlog_close(lg);
    /* In order: by hour, then by segment number. */
    uint64_t want[170];
    size_t n = 0;
    for (int k = 0; k < 10; k++)
        want[n++] = (uint64_t)k;
    for (int k = 110; k < 160; k++)
        want[n++] = (uint64_t)k;
    for (int k = 10; k < 110; k++)
        want[n++] = (uint64_t)k;
    for (int k = 160; k < 170; k++)
        want[n++] = (uint64_t)k;
    struct collected c = {calloc(170, 16), calloc(170, sizeof(uint64_t)), 0, 170};
    assert_non_null(c.ids);
    assert_non_null(c.bytes);
    struct evlog_file_stats total;
    assert_int_equal(
        evlog_scan(dir, DATASET, a / MS_PER_DAY, b / MS_PER_DAY, collect_cb, &c, stderr, &total),
        0);
    assert_int_equal(c.n, 170);
    assert_memory_equal(c.bytes, want, sizeof(want));
    free(c.ids);
    free(c.bytes);
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_edges),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_scan_clean),
        cmocka_unit_test(test_scan_zero_tail),
        cmocka_unit_test(test_scan_torn_tail),
        cmocka_unit_test(test_scan_damage_in_middle),
        cmocka_unit_test(test_scan_bad_header),
        cmocka_unit_test(test_concurrent_appends),
        cmocka_unit_test(test_lock_conflict),
        cmocka_unit_test(test_crash_recovery),
        cmocka_unit_test(test_purge_before),
        cmocka_unit_test(test_hour_and_day_rotation),
        cmocka_unit_test(test_read_while_sealing),
        cmocka_unit_test(test_spares_keep_write_order),
        cmocka_unit_test(test_full_disk_holds_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
