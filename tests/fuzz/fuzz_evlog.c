/* fuzz_evlog.c - fuzzes the event store's record decoder and file scanner
 * (evlog_decode(), evlog_scan_buffer() and evlog_encode() in src/analytics/evlog_format.c).
 *
 * The input is a whole event file. It is scanned twice: as given, and as a
 * "fixed up" copy whose header is made valid and whose 72-byte slots that
 * start with a record's sync, version and length bytes get their checksum
 * recomputed, so that mutations of the fields reach the field checks behind
 * the checksum. Invariants checked for both:
 *  - every event the scan passes on is sane: image id NUL-terminated, at most
 *    7 characters [a-z0-9]; country [A-Z][A-Z0-9]; variant -1..8;
 *  - the stats add up: valid_end <= len; header + 72 * events + damaged bytes
 *    is exactly valid_end; a torn tail runs from valid_end to the end, and
 *    without one everything after valid_end is zero (preallocated space);
 *  - they equal those of a slow reference scanner written from the format
 *    spec at the top of evlog_format.c, and the events come in the same order;
 *  - a callback's non-zero return stops the scan and is returned.
 * evlog_decode() runs at every offset: fewer than 72 bytes never decode, and
 * any event it accepts is sane and re-encodes to the identical 72 bytes.
 * Last, an event built from the input's bytes with valid fields survives
 * evlog_encode() then evlog_decode() unchanged. */
#include "base/err.h"
#include "analytics/evlog.h"
#include "fuzz_check.h"

#include <xxhash.h>

#define HDR EVLOG_FILE_HEADER
#define REC EVLOG_RECORD_SIZE

static const uint8_t magic[8] = {'P', 'F', 'E', 'V', 'L', 'O', 'G', 0};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The spec's rules, written independently of evlog_format.c. */
static int ref_header_ok(const uint8_t *p, size_t len)
{
    return len >= HDR && memcmp(p, magic, 8) == 0 && le32(p + 8) == 1 &&
           le32(p + 12) == (uint32_t)XXH3_64bits(p, 12);
}

static int ref_frame_ok(const uint8_t *p, size_t len)
{
    return len >= REC && p[0] == 0x9E && p[1] == 0x7D && (p[6] == 1 || p[6] == 2) && p[7] == 64 &&
           le32(p + 2) == (uint32_t)XXH3_64bits(p + 6, REC - 6);
}

static void check_event(const struct event *ev)
{
    size_t n = strnlen(ev->image_id, sizeof(ev->image_id));
    FUZZ_CHECK(n <= 7);
    for (size_t i = 0; i < n; i++) {
        char c = ev->image_id[i];
        FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
    }
    FUZZ_CHECK(ev->country[0] >= 'A' && ev->country[0] <= 'Z');
    FUZZ_CHECK((ev->country[1] >= 'A' && ev->country[1] <= 'Z') ||
               (ev->country[1] >= '0' && ev->country[1] <= '9'));
    FUZZ_CHECK(ev->country[2] == '\0');
    FUZZ_CHECK(ev->variant >= -1 && ev->variant <= 8);
    FUZZ_CHECK(ev->status >= 0 && ev->status <= 65535);
}

static int same_stats(const struct evlog_file_stats *a, const struct evlog_file_stats *b)
{
    return a->events == b->events && a->damaged_bytes == b->damaged_bytes &&
           a->tail_bytes == b->tail_bytes && a->valid_end == b->valid_end &&
           a->bad_header == b->bad_header;
}

static int same_event(const struct event *a, const struct event *b)
{
    return a->ts_ms == b->ts_ms && memcmp(a->request_id, b->request_id, 16) == 0 &&
           memcmp(a->owner, b->owner, 16) == 0 &&
           memcmp(a->image_id, b->image_id, sizeof(a->image_id)) == 0 && a->variant == b->variant &&
           a->status == b->status && memcmp(a->country, b->country, 3) == 0 &&
           a->bytes == b->bytes && a->client == b->client;
}

struct collect {
    struct event *ev; /* room for len / 72 + 1 events */
    size_t n, cap;
    size_t stop_after; /* 0: never stop */
};

#define STOP_RC 7

static int collect_cb(void *ctx, const struct event *ev)
{
    struct collect *c = ctx;
    check_event(ev);
    FUZZ_CHECK(c->n < c->cap);
    c->ev[c->n++] = *ev;
    return c->stop_after != 0 && c->n == c->stop_after ? STOP_RC : 0;
}

/* The reference scanner: a record where a frame holds, skipping byte by
 * byte to the next frame otherwise. OUT: *st, the decoded events in ev. */
static void ref_scan(const uint8_t *buf, size_t len, struct evlog_file_stats *st, struct event *ev,
                     size_t *nev)
{
    memset(st, 0, sizeof(*st));
    *nev = 0;
    if (!ref_header_ok(buf, len)) {
        st->bad_header = 1;
        return;
    }
    size_t off = HDR;
    st->valid_end = off;
    while (off < len) {
        if (ref_frame_ok(buf + off, len - off)) {
            if (evlog_decode(buf + off, len - off, &ev[*nev]) == 0) {
                (*nev)++;
                st->events++;
            } else {
                st->damaged_bytes += REC;
            }
            off += REC;
            st->valid_end = off;
            continue;
        }
        size_t z = off;
        while (z < len && buf[z] == 0)
            z++;
        if (z == len)
            break;
        size_t next = off + 1;
        while (next < len && !ref_frame_ok(buf + next, len - next))
            next++;
        if (next >= len) {
            st->tail_bytes = len - off;
            break;
        }
        st->damaged_bytes += next - off;
        off = next;
    }
}

static void check_scan(const uint8_t *buf, size_t len, size_t stop_seed)
{
    size_t cap = len / REC + 1;
    struct event *ref_ev = calloc(cap, sizeof(*ref_ev));
    struct collect c = {calloc(cap, sizeof(*c.ev)), 0, cap, 0};
    struct evlog_file_stats st, ref;
    size_t nref = 0;
    FUZZ_CHECK(ref_ev != NULL && c.ev != NULL);

    FUZZ_CHECK(evlog_scan_buffer(buf, len, NULL, NULL, &st) == 0);
    struct evlog_file_stats st_nofn = st;
    FUZZ_CHECK(evlog_scan_buffer(buf, len, collect_cb, &c, &st) == 0);
    FUZZ_CHECK(same_stats(&st, &st_nofn));
    FUZZ_CHECK(c.n == st.events);

    FUZZ_CHECK(st.valid_end <= len);
    FUZZ_CHECK(st.events * REC + (st.bad_header ? 0 : HDR) <= len);
    if (st.bad_header) {
        FUZZ_CHECK(st.events == 0 && st.damaged_bytes == 0 && st.tail_bytes == 0);
    } else {
        FUZZ_CHECK(len >= HDR && st.valid_end >= HDR);
        FUZZ_CHECK(HDR + st.events * REC + st.damaged_bytes == st.valid_end);
        if (st.tail_bytes != 0) {
            FUZZ_CHECK(st.valid_end + st.tail_bytes == len);
        } else {
            for (size_t i = st.valid_end; i < len; i++)
                FUZZ_CHECK(buf[i] == 0);
        }
    }

    ref_scan(buf, len, &ref, ref_ev, &nref);
    FUZZ_CHECK(same_stats(&st, &ref));
    FUZZ_CHECK(nref == c.n);
    for (size_t i = 0; i < nref; i++)
        FUZZ_CHECK(same_event(&ref_ev[i], &c.ev[i]));

    /* Stopping early: the callback's code comes back after that many. */
    if (st.events > 0) {
        struct collect s = {c.ev, 0, cap, 1 + stop_seed % st.events};
        struct evlog_file_stats st2;
        FUZZ_CHECK(evlog_scan_buffer(buf, len, collect_cb, &s, &st2) == STOP_RC);
        FUZZ_CHECK(s.n == s.stop_after && st2.events == s.stop_after);
    }
    free(ref_ev);
    free(c.ev);
}

static void check_decode_everywhere(const uint8_t *buf, size_t len)
{
    for (size_t off = 0; off <= len; off++) {
        struct event ev;
        uint8_t again[REC];
        int rc = evlog_decode(buf + off, len - off, &ev);
        FUZZ_CHECK(rc == 0 || rc == PF_EFORMAT);
        if (rc != 0)
            continue;
        FUZZ_CHECK(len - off >= REC);
        FUZZ_CHECK(ref_frame_ok(buf + off, len - off));
        check_event(&ev);
        evlog_encode(&ev, again);
        /* Records are written as version 2; a version 1 record (before
         * the client class, read as human) encodes back with the same
         * payload. */
        if (buf[off + 6] == 1) {
            FUZZ_CHECK(ev.client == 0);
            FUZZ_CHECK(memcmp(again + 8, buf + off + 8, REC - 8) == 0);
        } else
            FUZZ_CHECK(memcmp(again, buf + off, REC) == 0);
    }
}

/* A valid header, and valid checksums on every slot that looks like a
 * record (sync, version and length bytes in place). */
static uint8_t *fixed_up(const uint8_t *data, size_t size, size_t *len)
{
    *len = size < HDR ? HDR : size;
    uint8_t *b = calloc(1, *len);
    FUZZ_CHECK(b != NULL);
    if (size > 0)
        memcpy(b, data, size);
    memcpy(b, magic, 8);
    put_le32(b + 8, 1);
    put_le32(b + 12, (uint32_t)XXH3_64bits(b, 12));
    for (size_t off = HDR; off + REC <= *len; off += REC) {
        uint8_t *p = b + off;
        if (p[0] == 0x9E && p[1] == 0x7D && (p[6] == 1 || p[6] == 2) && p[7] == 64)
            put_le32(p + 2, (uint32_t)XXH3_64bits(p + 6, REC - 6));
    }
    return b;
}

/* An event with valid fields taken from the first 64 input bytes. */
static void check_roundtrip(const uint8_t *data, size_t size)
{
    static const char ids[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t in[64] = {0};
    uint8_t rec[REC];
    struct event ev, back;
    memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
    memset(&ev, 0, sizeof(ev));
    ev.ts_ms = (int64_t)fuzz_u64(in, 8);
    memcpy(ev.request_id, in + 8, 16);
    memcpy(ev.owner, in + 24, 16);
    size_t n = in[40] % 8;
    for (size_t i = 0; i < n; i++)
        ev.image_id[i] = ids[in[41 + i] % 36];
    ev.variant = (int)(in[48] % 10) - 1;
    ev.status = (int)(in[49] | in[50] << 8);
    ev.country[0] = (char)('A' + in[51] % 26);
    ev.country[1] =
        ids[in[52] % 36] >= 'a' ? (char)(ids[in[52] % 36] - 'a' + 'A') : ids[in[52] % 36];
    ev.bytes = fuzz_u64(in + 53, 8);
    ev.client = (uint8_t)(in[61] % 3);
    evlog_encode(&ev, rec);
    FUZZ_CHECK(ref_frame_ok(rec, sizeof(rec)));
    FUZZ_CHECK(evlog_decode(rec, sizeof(rec), &back) == 0);
    FUZZ_CHECK(same_event(&ev, &back));
    FUZZ_CHECK(evlog_decode(rec, sizeof(rec) - 1, &back) == PF_EFORMAT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t stop_seed = (size_t)fuzz_u64(data, size);
    check_scan(data, size, stop_seed);
    check_decode_everywhere(data, size);

    size_t len;
    uint8_t *fixed = fixed_up(data, size, &len);
    check_scan(fixed, len, stop_seed);
    check_decode_everywhere(fixed, len);
    free(fixed);

    check_roundtrip(data, size);
    return 0;
}
