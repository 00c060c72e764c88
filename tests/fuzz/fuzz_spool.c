/* fuzz_spool.c - fuzzes the piecewise reader of an event file,
 * evlog_scan_from() in src/analytics/evlog_format.c (what
 * evlog_segment_read() in evlog_spool.c runs on a segment's bytes).
 *
 * The input's first 12 bytes choose the read, the rest is the file:
 *   byte 0       flags: 1 live, 2 fix the file up (a valid header, and the
 *                checksum of every 72-byte slot that starts like a record,
 *                so that mutations reach the field checks), 4 `from` on a
 *                record boundary, 8 `until` = SIZE_MAX, 16 `until` on a
 *                record boundary
 *   byte 1       max (255: as many as the file can hold)
 *   bytes 2-5    from, bytes 6-9 until (little-endian, reduced to the file)
 *   bytes 10-11  where a window of the file starts and how long it is
 * Invariants:
 *  - the call succeeds; n <= max; every event is sane; a live read is never
 *    the end, and its only damage is whole frames whose fields do not hold;
 *  - the bytes add up: past the header, next = from + 72 n + damaged (the
 *    header: next is 0 for a live file not yet written, the file's length
 *    for a bad header, else as if from were 16); next >= from, and next
 *    goes no further than `until` or the file's end (the header aside);
 *  - a sealed read is at its end exactly when nothing but zeros follows;
 *  - read again from `from` up to `until` = next: the same events, the
 *    same next and damage (a batch's range names the same events for as
 *    long as the segment exists);
 *  - read piecewise (max 1, then each next), the same events as in one
 *    read, each the encoding of the 72 bytes just before its `next`; and a
 *    sealed read of a whole file gives evlog_scan_buffer()'s events, its
 *    damage being the scan's damaged plus tail bytes;
 *  - a live read's events begin the sealed read's;
 *  - a window of the file (buf at file offset base, as evlog_spool.c reads
 *    a live segment in chunks) reads as the whole file up to the window's
 *    end. */
#include "analytics/evlog.h"
#include "analytics/evlog_int.h"
#include "base/err.h"
#include "fuzz_check.h"

#include <xxhash.h>

#define HDR EVLOG_FILE_HEADER
#define REC EVLOG_RECORD_SIZE
#define PARAMS 12

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
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
}

static int same_event(const struct event *a, const struct event *b)
{
    return a->ts_ms == b->ts_ms && memcmp(a->request_id, b->request_id, 16) == 0 &&
           memcmp(a->owner, b->owner, 16) == 0 &&
           memcmp(a->image_id, b->image_id, sizeof(a->image_id)) == 0 && a->variant == b->variant &&
           a->status == b->status && memcmp(a->country, b->country, 3) == 0 && a->bytes == b->bytes;
}

static int same_events(const struct event *a, const struct event *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!same_event(&a[i], &b[i]))
            return 0;
    return 1;
}

static int header_ok(const uint8_t *p, size_t len)
{
    uint8_t h[HDR];
    if (len < HDR)
        return 0;
    memcpy(h, "PFEVLOG", 8);
    put_le32(h + 8, 1);
    put_le32(h + 12, (uint32_t)XXH3_64bits(h, 12));
    return memcmp(p, h, HDR) == 0;
}

/* A valid header, and valid checksums on every slot that looks like a
 * record (as fuzz_evlog.c does). */
static void fix_up(uint8_t *b, size_t len)
{
    if (len < HDR)
        return;
    memcpy(b, "PFEVLOG", 8);
    put_le32(b + 8, 1);
    put_le32(b + 12, (uint32_t)XXH3_64bits(b, 12));
    for (size_t off = HDR; off + REC <= len; off += REC) {
        uint8_t *p = b + off;
        if (p[0] == 0x9E && p[1] == 0x7D && (p[6] == 1 || p[6] == 2) && p[7] == 64)
            put_le32(p + 2, (uint32_t)XXH3_64bits(p + 6, REC - 6));
    }
}

struct read {
    struct evlog_piece r;
    struct event *ev; /* r.n of them */
};

static void do_read(const uint8_t *buf, size_t len, size_t base, size_t from, size_t until,
                    int live, size_t max, struct read *out)
{
    out->ev = calloc(max + 1, sizeof(*out->ev));
    FUZZ_CHECK(out->ev != NULL);
    memset(&out->r, 0xA5, sizeof(out->r)); /* all of it must be set */
    FUZZ_CHECK(evlog_scan_from(buf, len, base, from, until, live, out->ev, max, &out->r) == 0);
    FUZZ_CHECK(out->r.n <= max);
    FUZZ_CHECK(out->r.end == 0 || out->r.end == 1);
    FUZZ_CHECK(out->r.bad_header == 0 || out->r.bad_header == 1);
    for (size_t i = 0; i < out->r.n; i++)
        check_event(&out->ev[i]);
}

static int same_read(const struct read *a, const struct read *b)
{
    return a->r.n == b->r.n && a->r.next == b->r.next && a->r.damaged == b->r.damaged &&
           a->r.bad_header == b->r.bad_header && same_events(a->ev, b->ev, a->r.n);
}

/* The rules every read of the whole file (base 0) keeps. */
static void check_bounds(const uint8_t *buf, size_t len, size_t from, size_t until, int live,
                         const struct read *x)
{
    const struct evlog_piece *r = &x->r;
    size_t lim = until < len ? until : len;
    if (live) {
        FUZZ_CHECK(r->damaged % REC == 0); /* only whole frames whose fields do not hold */
        FUZZ_CHECK(r->end == 0);
    }
    if (r->bad_header)
        FUZZ_CHECK(r->n == 0 && r->damaged == 0);
    if (from < HDR) {
        /* The header is read (again): from 1-15 is from 0. */
        if (live && (len < HDR || evlog_all_zero(buf, HDR))) {
            FUZZ_CHECK(r->next == 0 && r->n == 0 && !r->bad_header);
            return;
        }
        if (!header_ok(buf, len)) {
            FUZZ_CHECK(r->bad_header && r->next == len && r->end == !live);
            return;
        }
        FUZZ_CHECK(!r->bad_header);
        from = HDR;
    }
    FUZZ_CHECK(!r->bad_header); /* past the header, it is not looked at */
    FUZZ_CHECK(r->next >= from);
    FUZZ_CHECK(r->next == from + REC * r->n + r->damaged);
    FUZZ_CHECK(r->next <= (from > lim ? from : lim));
    if (!live)
        FUZZ_CHECK(r->end == (r->next >= len || evlog_all_zero(buf + r->next, len - r->next)));
}

/* Read from `from` in pieces of one event, each next the following from.
 * OUT: the events and the damage; returns how many. */
static size_t read_pieces(const uint8_t *buf, size_t len, size_t from, size_t until, int live,
                          struct event *ev, size_t cap, uint64_t *damaged, size_t *last_next)
{
    size_t n = 0;
    *damaged = 0;
    *last_next = from;
    for (size_t guard = 0;; guard++) {
        struct read x;
        FUZZ_CHECK(guard <= len + 2);
        do_read(buf, len, 0, from, until, live, 1, &x);
        check_bounds(buf, len, from, until, live, &x);
        if (x.r.n == 1) {
            uint8_t rec[REC];
            FUZZ_CHECK(n < cap);
            FUZZ_CHECK(x.r.next >= REC && x.r.next <= len);
            evlog_encode(&x.ev[0], rec);
            /* A version 1 record (before the client class) is written
             * back as version 2: the same event, read as human. */
            const uint8_t *src = buf + x.r.next - REC;
            if (src[6] == 1) {
                struct event back;
                FUZZ_CHECK(x.ev[0].client == 0);
                FUZZ_CHECK(evlog_decode(src, REC, &back) == 0);
                FUZZ_CHECK(memcmp(rec + 8, src + 8, REC - 8) == 0);
            } else
                FUZZ_CHECK(memcmp(rec, src, REC) == 0);
            ev[n++] = x.ev[0];
        }
        *damaged += x.r.damaged;
        int stop = x.r.end || x.r.bad_header || (x.r.n == 0 && x.r.next == from) ||
                   (x.r.n == 0 && x.r.next <= from);
        *last_next = x.r.next;
        free(x.ev);
        if (stop)
            break;
        from = *last_next;
    }
    return n;
}

struct collect {
    struct event *ev;
    size_t n, cap;
};

static int collect_cb(void *ctx, const struct event *ev)
{
    struct collect *c = ctx;
    FUZZ_CHECK(c->n < c->cap);
    c->ev[c->n++] = *ev;
    return 0;
}

static void check_all(const uint8_t *buf, size_t len, size_t from, size_t until, int live,
                      size_t max, unsigned window)
{
    size_t all = len / REC + 2;
    struct read x, again, whole;

    /* The read, and its range read again. */
    do_read(buf, len, 0, from, until, live, max, &x);
    check_bounds(buf, len, from, until, live, &x);
    do_read(buf, len, 0, from, x.r.next, live, all, &again);
    FUZZ_CHECK(same_read(&again, &x));
    free(again.ev);

    /* Piecewise equals whole. */
    do_read(buf, len, 0, from, until, live, all, &whole);
    check_bounds(buf, len, from, until, live, &whole);
    FUZZ_CHECK(x.r.n <= whole.r.n && same_events(x.ev, whole.ev, x.r.n));
    struct event *pieces = calloc(all, sizeof(*pieces));
    FUZZ_CHECK(pieces != NULL);
    uint64_t damaged;
    size_t last;
    size_t np = read_pieces(buf, len, from, until, live, pieces, all, &damaged, &last);
    FUZZ_CHECK(np == whole.r.n && same_events(pieces, whole.ev, np));
    FUZZ_CHECK(damaged == whole.r.damaged && last == whole.r.next);
    free(pieces);

    /* A live read begins the sealed one; it is all of it when the sealed
     * read skipped nothing more (no damage past the live read's stop). */
    if (live) {
        struct read sealed;
        do_read(buf, len, 0, from, until, 0, all, &sealed);
        FUZZ_CHECK(whole.r.n <= sealed.r.n && same_events(whole.ev, sealed.ev, whole.r.n));
        if (!sealed.r.bad_header && whole.r.next != 0) {
            FUZZ_CHECK(sealed.r.damaged >= whole.r.damaged);
            if (sealed.r.damaged == whole.r.damaged)
                FUZZ_CHECK(same_read(&sealed, &whole));
        }
        free(sealed.ev);
    }

    /* A sealed read of the whole file is the file scan. */
    if (!live && from == 0 && until == SIZE_MAX) {
        struct collect c = {calloc(all, sizeof(struct event)), 0, all};
        struct evlog_file_stats st;
        FUZZ_CHECK(c.ev != NULL);
        FUZZ_CHECK(evlog_scan_buffer(buf, len, collect_cb, &c, &st) == 0);
        FUZZ_CHECK(st.bad_header == whole.r.bad_header);
        FUZZ_CHECK(c.n == whole.r.n && same_events(c.ev, whole.ev, c.n));
        FUZZ_CHECK(whole.r.damaged == st.damaged_bytes + st.tail_bytes);
        FUZZ_CHECK(whole.r.end == 1);
        free(c.ev);
    }

    /* A window [b, b + w) of the file, past its header, from b on. (With
     * until < b, evlog_scan_from() reads the whole window: no caller asks
     * for that, evlog_spool.c stops before.) */
    if (len > HDR) {
        size_t b = HDR + (window & 0xff) % (len - HDR);
        size_t w = (window >> 8) == 0 ? len - b : (window >> 8) % (len - b + 1);
        size_t u = until < b + w ? until : b + w;
        if (until >= b) {
            struct read full, win;
            do_read(buf, len, 0, b, u, live, max, &full);
            do_read(buf + b, w, b, b, until, live, max, &win);
            FUZZ_CHECK(same_read(&full, &win));
            if (w == len - b)
                FUZZ_CHECK(full.r.end == win.r.end);
            free(full.ev);
            free(win.ev);
        }
    }
    free(x.ev);
    free(whole.ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t p[PARAMS] = {0};
    memcpy(p, data, size < PARAMS ? size : PARAMS);
    size_t len = size > PARAMS ? size - PARAMS : 0;
    uint8_t *buf = malloc(len + 1); /* exactly the file: ASan sees any read past it */
    FUZZ_CHECK(buf != NULL);
    if (len > 0)
        memcpy(buf, data + PARAMS, len);
    int live = p[0] & 1;
    if (p[0] & 2)
        fix_up(buf, len);
    size_t max = p[1] == 255 ? len / REC + 2 : p[1];
    uint32_t rf = (uint32_t)fuzz_u64(p + 2, 4), ru = (uint32_t)fuzz_u64(p + 6, 4);
    size_t from = p[0] & 4 ? HDR + REC * (rf % (len / REC + 2)) : rf % (len + 80);
    size_t until = p[0] & 8    ? SIZE_MAX
                   : p[0] & 16 ? HDR + REC * (ru % (len / REC + 2))
                               : ru % (len + 80);
    check_all(buf, len, from, until, live, max, (unsigned)fuzz_u64(p + 10, 2));
    free(buf);
    return 0;
}
