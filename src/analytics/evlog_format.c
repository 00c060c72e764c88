/* evlog_format.c - the event log's on-disk format (see evlog.h): records
 * and file headers encoded and checked, and a file's bytes scanned.
 *
 * ON-DISK FORMAT (file version 1; records of version 1 and 2). All
 * integers are little-endian.
 *
 * Layout: DATA_DIR/events/<dataset>/<YYYY-MM-DD>/<HH>-<run>-<slot>-<seq>.<ext>
 *   YYYY-MM-DD, HH  UTC day and hour of every event in the file
 *   run             16 hex digits, random per server start
 *   slot            writing thread, 3 decimal digits
 *   seq             segment number of that thread, 6 digits, in write order
 *   ext             "open" while a server writes it; "pfe" once sealed
 * A segment is made as ".<name>.open.tmp" and renamed to its name once its
 * header is written; a leftover .tmp holds nothing and is removed at start.
 * DATA_DIR/events/<dataset>/.lock is flock()ed by the one writing server.
 *
 * A file is a 16-byte header followed by records:
 *
 *   header
 *   offset size  field
 *        0    8  magic "PFEVLOG\0"
 *        8    4  format version, 1
 *       12    4  low 32 bits of XXH3-64 of bytes 0..11
 *
 *   record (72 bytes)
 *   offset size  field
 *        0    2  sync bytes 0x9E 0x7D
 *        2    4  low 32 bits of XXH3-64 of record bytes 6..71
 *        6    1  record version: 2 (written), 1 (read: before clients)
 *        7    1  payload length, 64
 *        8    8  timestamp: ms since 1970-01-01T00:00:00Z, int64
 *       16   16  request id
 *       32   16  owner: first 16 bytes of HMAC-SHA256(secret, owner name);
 *                all zero when no known owner could be charged
 *       48    8  image id, ASCII [a-z0-9], NUL-padded; byte 55 is always 0;
 *                empty when no image was found
 *       56    8  response body bytes, uint64
 *       64    2  HTTP status, uint16
 *       66    2  country, two ASCII characters [A-Z][A-Z0-9]
 *       68    1  variant: index in variant.c's table (0 original, 1 w128,
 *                2 w256, 3 w512, 4 w1024, 5 w1536, 6 w2048, 7 thumb,
 *                8 og-image); 255 when the request named none
 *       69    1  version 2: client class, 0 human, 1 bot, 2 preview
 *                (db.h's db_client); version 1: zero, read as human
 *       70    2  reserved, zero
 *
 * A live segment is preallocated (fallocate) and memory-mapped; bytes past
 * the last record are zero. Sealing cuts the file to its last record. A
 * reader takes a record where the sync bytes, version, length and checksum
 * all hold; bytes that do not form one are skipped up to the next record that
 * does (damage, reported) or to the end (a torn tail when the file is
 * sealed, a record being written when it is live). Readers accept
 * unknown files in a day directory by skipping them (bad header).
 *
 * Versioning: a reader skips records whose version it does not know, using
 * the length byte; a new version may only append fields to the payload or
 * give a reserved byte a meaning (version 2: byte 69). */
#include "analytics/evlog.h"
#include "analytics/evlog_int.h"

#include "base/err.h"
#include "base/variant.h"

#include <endian.h>
#include <string.h>
/* xxHash's inline build: a record's checksum is a few ns of code, less than
 * the cost of calling it through the shared library. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define SYNC0 0x9E
#define SYNC1 0x7D
#define RECORD_VERSION 2
#define RECORD_VERSION_V1 1 /* before the client class: read still */
#define CLIENT_CLASSES 3
#define PAYLOAD_LEN 64
#define FILE_VERSION 1
#define NO_VARIANT 255

static const uint8_t file_magic[8] = {'P', 'F', 'E', 'V', 'L', 'O', 'G', 0};

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Loads: the format is little-endian, as the machines it runs on; memcpy
 * compiles to one unaligned load. */
static inline uint16_t get_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return le16toh(v);
}

static inline uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static inline uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static uint32_t checksum(const uint8_t *p, size_t len)
{
    return (uint32_t)XXH3_64bits(p, len);
}

void evlog_encode(const struct event *ev, uint8_t out[EVLOG_RECORD_SIZE])
{
    memset(out, 0, EVLOG_RECORD_SIZE);
    out[0] = SYNC0;
    out[1] = SYNC1;
    out[6] = RECORD_VERSION;
    out[7] = PAYLOAD_LEN;
    put_u64(out + 8, (uint64_t)ev->ts_ms);
    memcpy(out + 16, ev->request_id, 16);
    memcpy(out + 32, ev->owner, 16);
    memcpy(out + 48, ev->image_id, strnlen(ev->image_id, 7));
    put_u64(out + 56, ev->bytes);
    put_u16(out + 64, (uint16_t)ev->status);
    memcpy(out + 66, ev->country, 2);
    out[68] = ev->variant < 0 ? NO_VARIANT : (uint8_t)ev->variant;
    out[69] = ev->client < CLIENT_CLASSES ? ev->client : 0;
    put_u32(out + 2, checksum(out + 6, EVLOG_RECORD_SIZE - 6));
}

/* A record frame: sync, version, length and checksum hold. */
static int frame_ok(const uint8_t *p, size_t len)
{
    return len >= EVLOG_RECORD_SIZE && p[0] == SYNC0 && p[1] == SYNC1 &&
           (p[6] == RECORD_VERSION || p[6] == RECORD_VERSION_V1) && p[7] == PAYLOAD_LEN &&
           get_u32(p + 2) == checksum(p + 6, EVLOG_RECORD_SIZE - 6);
}

/* Character classes of the record's text fields, by byte: bit 0 an image
 * id character [a-z0-9], bit 1 a country's first [A-Z], bit 2 its second
 * [A-Z0-9]. */
static const uint8_t char_class[256] = {
    ['0'] = 5, ['1'] = 5, ['2'] = 5, ['3'] = 5, ['4'] = 5, ['5'] = 5, ['6'] = 5, ['7'] = 5,
    ['8'] = 5, ['9'] = 5, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['A'] = 6, ['B'] = 6, ['C'] = 6, ['D'] = 6,
    ['E'] = 6, ['F'] = 6, ['G'] = 6, ['H'] = 6, ['I'] = 6, ['J'] = 6, ['K'] = 6, ['L'] = 6,
    ['M'] = 6, ['N'] = 6, ['O'] = 6, ['P'] = 6, ['Q'] = 6, ['R'] = 6, ['S'] = 6, ['T'] = 6,
    ['U'] = 6, ['V'] = 6, ['W'] = 6, ['X'] = 6, ['Y'] = 6, ['Z'] = 6,
};

/* Decode the fields of a record whose frame holds. */
static int decode_fields(const uint8_t *p, struct event *ev)
{
    /* The checksum says these are the bytes written; the fields are still
     * checked, so that a reader never passes on what no writer makes. The
     * image id: id characters, then zeros; byte 55 always zero. */
    uint64_t id = get_u64(p + 48);
    uint64_t zeros = (id - 0x0101010101010101ULL) & ~id & 0x8080808080808080ULL;
    unsigned n = zeros ? (unsigned)__builtin_ctzll(zeros) / 8 : 8; /* the first zero byte */
    if (n > 7 || (id >> (8 * n)) != 0)
        return PF_EFORMAT;
    for (unsigned i = 0; i < n; i++)
        if (!(char_class[p[48 + i]] & 1))
            return PF_EFORMAT;
    if (!(char_class[p[66]] & 2) || !(char_class[p[67]] & 4))
        return PF_EFORMAT;
    if (p[68] >= VARIANT_COUNT && p[68] != NO_VARIANT)
        return PF_EFORMAT;
    if ((p[6] == RECORD_VERSION_V1 ? p[69] != 0 : p[69] >= CLIENT_CLASSES) || p[70] != 0 ||
        p[71] != 0)
        return PF_EFORMAT;
    ev->ts_ms = (int64_t)get_u64(p + 8);
    memcpy(ev->request_id, p + 16, 16);
    memcpy(ev->owner, p + 32, 16);
    memcpy(ev->image_id, p + 48, 8);
    ev->bytes = get_u64(p + 56);
    ev->status = get_u16(p + 64);
    ev->country[0] = (char)p[66];
    ev->country[1] = (char)p[67];
    ev->country[2] = '\0';
    ev->variant = p[68] == NO_VARIANT ? -1 : p[68];
    ev->client = p[69];
    ev->upoint = 0;
    return 0;
}

int evlog_decode(const uint8_t *p, size_t len, struct event *ev)
{
    return frame_ok(p, len) ? decode_fields(p, ev) : PF_EFORMAT;
}

void evlog_encode_header(uint8_t out[EVLOG_FILE_HEADER])
{
    memcpy(out, file_magic, 8);
    put_u32(out + 8, FILE_VERSION);
    put_u32(out + 12, checksum(out, 12));
}

static int header_ok(const uint8_t *p, size_t len)
{
    return len >= EVLOG_FILE_HEADER && memcmp(p, file_magic, 8) == 0 &&
           get_u32(p + 8) == FILE_VERSION && get_u32(p + 12) == checksum(p, 12);
}

int evlog_all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* Offset of the next valid record frame at or after `from`, or len. */
static size_t resync(const uint8_t *buf, size_t len, size_t from)
{
    for (size_t o = from; o + EVLOG_RECORD_SIZE <= len; o++) {
        const uint8_t *q = memchr(buf + o, SYNC0, len - o);
        if (q == NULL)
            break;
        o = (size_t)(q - buf);
        if (frame_ok(q, len - o))
            return o;
    }
    return len;
}

/* The scanner behind evlog_scan_buffer() and the day scans: each valid
 * record goes to fn(ctx, ev), or, when `f` is set, is decoded straight into
 * f's batch (no copy; see evlog_filter_take()). */
int evlog_scan_core(const uint8_t *buf, size_t len, int (*fn)(void *ctx, const struct event *ev),
                    void *ctx, struct evlog_day_filter *f, struct evlog_file_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!header_ok(buf, len)) {
        st->bad_header = 1;
        return 0;
    }
    size_t off = EVLOG_FILE_HEADER;
    st->valid_end = off;
    while (off < len) {
        /* The hardware prefetcher stops at 4 KiB page boundaries; a scan
         * reads on into the next page. */
        __builtin_prefetch(buf + off + 1024);
        if (frame_ok(buf + off, len - off)) {
            struct event local, *ev = &local;
            int rc = f != NULL ? evlog_filter_take(f, &ev) : 0;
            if (rc != 0)
                return rc;
            /* A valid frame whose fields do not decode is damage too. */
            if (decode_fields(buf + off, ev) == 0) {
                st->events++;
                rc = f != NULL ? evlog_filter_keep(f, ev) : fn != NULL ? fn(ctx, ev) : 0;
                if (rc != 0)
                    return rc;
            } else {
                st->damaged_bytes += EVLOG_RECORD_SIZE;
            }
            off += EVLOG_RECORD_SIZE;
            st->valid_end = off;
            continue;
        }
        if (evlog_all_zero(buf + off, len - off))
            break; /* preallocated, never written */
        size_t next = resync(buf, len, off + 1);
        if (next == len) {
            st->tail_bytes = len - off;
            break;
        }
        st->damaged_bytes += next - off;
        off = next;
    }
    return 0;
}

int evlog_scan_buffer(const uint8_t *buf, size_t len, int (*fn)(void *ctx, const struct event *ev),
                      void *ctx, struct evlog_file_stats *st)
{
    return evlog_scan_core(buf, len, fn, ctx, NULL, st);
}

int evlog_scan_from(const uint8_t *buf, size_t len, size_t base, size_t from, size_t until,
                    int live, struct event *out, size_t max, struct evlog_piece *r)
{
    /* Work in buffer indices; base is the file offset of buf[0]. */
    size_t off = from > base ? from - base : 0, lim = until - base;
    memset(r, 0, sizeof(*r));
    if (until < base)
        lim = 0; /* the range ends before these bytes: nothing in it */
    else if (lim > len)
        lim = len;
    if (base == 0 && off < EVLOG_FILE_HEADER) {
        if (live && (len < EVLOG_FILE_HEADER || evlog_all_zero(buf, EVLOG_FILE_HEADER))) {
            r->next = 0; /* just created: its header is not written yet */
            return 0;
        }
        if (!header_ok(buf, len)) {
            r->bad_header = 1;
            r->next = len;
            r->end = !live;
            return 0;
        }
        off = EVLOG_FILE_HEADER;
    }
    while (off < lim && r->n < max) {
        if (frame_ok(buf + off, lim - off)) {
            if (decode_fields(buf + off, &out[r->n]) == 0)
                r->n++;
            else
                r->damaged += EVLOG_RECORD_SIZE;
            off += EVLOG_RECORD_SIZE;
            continue;
        }
        /* Live: the records past here are not written yet (or are being
         * written): stop, and read on from here next time. */
        if (live || evlog_all_zero(buf + off, lim - off))
            break;
        size_t next = resync(buf, lim, off + 1);
        r->damaged += next - off;
        off = next;
    }
    r->next = base + off;
    r->end = !live && (off >= len || evlog_all_zero(buf + off, len - off));
    return 0;
}
