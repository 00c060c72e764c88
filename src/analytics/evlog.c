/* evlog.c - see evlog.h.
 *
 * ON-DISK FORMAT (version 1). All integers are little-endian.
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
 *        6    1  record version, 1
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
 *       69    3  reserved, zero
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
 * the length byte; a new version may only append fields to the payload. */
#include "analytics/evlog.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/ticker.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
/* xxHash's inline build: a record's checksum is a few ns of code, less than
 * the cost of calling it through the shared library. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define SYNC0 0x9E
#define SYNC1 0x7D
#define RECORD_VERSION 1
#define PAYLOAD_LEN 64
#define FILE_VERSION 1
#define NO_VARIANT 255
/* A thread's first segment of an hour is 256 KiB (3.6k events), each next
 * one twice the last, up to 16 MiB (233k events): a quiet hour costs little
 * disk and fallocate time, a busy one rotates (open, fallocate, mmap)
 * rarely. */
#define SEGMENT_MIN (256u << 10)
#define SEGMENT_MAX (16u << 20)
#define MS_PER_HOUR 3600000LL
#define MS_PER_DAY 86400000LL

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
    put_u32(out + 2, checksum(out + 6, EVLOG_RECORD_SIZE - 6));
}

/* A record frame: sync, version, length and checksum hold. */
static int frame_ok(const uint8_t *p, size_t len)
{
    return len >= EVLOG_RECORD_SIZE && p[0] == SYNC0 && p[1] == SYNC1 && p[6] == RECORD_VERSION &&
           p[7] == PAYLOAD_LEN && get_u32(p + 2) == checksum(p + 6, EVLOG_RECORD_SIZE - 6);
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
    if (p[69] != 0 || p[70] != 0 || p[71] != 0)
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
    return 0;
}

int evlog_decode(const uint8_t *p, size_t len, struct event *ev)
{
    return frame_ok(p, len) ? decode_fields(p, ev) : PF_EFORMAT;
}

static void encode_header(uint8_t out[EVLOG_FILE_HEADER])
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

static int all_zero(const uint8_t *p, size_t len)
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

struct day_filter;
static int filter_take(struct day_filter *f, struct event **slot);
static int filter_keep(struct day_filter *f, const struct event *ev);

/* The scanner behind evlog_scan_buffer() and the day scans: each valid
 * record goes to fn(ctx, ev), or, when `f` is set, is decoded straight into
 * f's batch (no copy; see filter_take()). */
static int scan_core(const uint8_t *buf, size_t len, int (*fn)(void *ctx, const struct event *ev),
                     void *ctx, struct day_filter *f, struct evlog_file_stats *st)
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
            int rc = f != NULL ? filter_take(f, &ev) : 0;
            if (rc != 0)
                return rc;
            /* A valid frame whose fields do not decode is damage too. */
            if (decode_fields(buf + off, ev) == 0) {
                st->events++;
                rc = f != NULL ? filter_keep(f, ev) : fn != NULL ? fn(ctx, ev) : 0;
                if (rc != 0)
                    return rc;
            } else {
                st->damaged_bytes += EVLOG_RECORD_SIZE;
            }
            off += EVLOG_RECORD_SIZE;
            st->valid_end = off;
            continue;
        }
        if (all_zero(buf + off, len - off))
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
    return scan_core(buf, len, fn, ctx, NULL, st);
}

/* ---- Writing ---------------------------------------------------------- */

struct seg {
    int fd;
    uint8_t *map;
    size_t cap;    /* bytes mapped and preallocated */
    size_t used;   /* bytes written, header included; writer thread only */
    size_t synced; /* `used` at the last fdatasync; sync thread only */
    size_t seen;   /* `used` at the sync thread's last pass */
    int64_t hour;  /* UTC hour of its events */
    int dir_synced;
    struct seg *next; /* on the retired list */
    char path[PATH_MAX];
};

struct writer {
    pthread_mutex_t mu; /* writer vs sync thread; never another writer */
    struct evlog *lg;
    int slot;
    unsigned seq;
    uint64_t counter;          /* request ids; writer thread only */
    _Atomic uint64_t appended; /* this writer's, summed by evlog_get_stats() */
    struct seg *cur;
    struct seg *spare;      /* the next segment, prepared by the sync thread */
    struct seg *synced_cur; /* sync thread only: the current segment at its last pass */
    size_t synced_used;
    struct seg *retired;    /* full or past hours, to be sealed by the sync thread */
    int64_t retry_ms;       /* after a failed segment open: not before (monotonic ms) */
    int64_t spare_retry_ms; /* the same for preparing a spare; sync thread only */
    struct writer *next;
};

struct evlog {
    char dir[PATH_MAX]; /* DATA_DIR/events/<dataset> */
    int lock_fd;
    int fsync_ms;
    FILE *log;
    uint64_t gen; /* tells this store's thread-local writers from stale ones */
    uint8_t run[8];
    char run_hex[17];
    pthread_mutex_t list_mu; /* the writer list: taken once per thread */
    struct writer *writers;
    int nwriters;
    struct ticker *sync; /* NULL until started */
    _Atomic uint64_t dropped, syncs, segments;
    uint64_t dropped_reported;
    uint64_t sync_errors, sync_errors_reported; /* sync thread only */
    int sync_errno;
};

static _Atomic uint64_t next_gen = 1;
static _Thread_local struct writer *tl_writer;
static _Thread_local uint64_t tl_gen;

static void seg_path(const struct evlog *lg, int slot, int64_t hour, unsigned seq, char *out,
                     size_t cap)
{
    char day[11];
    timeutil_format_date(hour * 3600, day);
    snprintf(out, cap, "%s/%s/%02d-%s-%03d-%06u.open", lg->dir, day, (int)(hour % 24), lg->run_hex,
             slot, seq);
}

/* The size of the segment after `prev` for events of `hour`. */
static size_t next_cap(const struct seg *prev, int64_t hour)
{
    if (prev == NULL || prev->hour != hour)
        return SEGMENT_MIN;
    return prev->cap * 2 < SEGMENT_MAX ? prev->cap * 2 : SEGMENT_MAX;
}

/* Create segment `seq` of writer `slot` for events of `hour`: a few
 * syscalls, and a fallocate that may take milliseconds for a large one. The
 * sync thread prepares most segments ahead (see prepare_spare()); a writer
 * only creates one itself when the hour turns or none is ready. */
static int seg_create(struct evlog *lg, int slot, int64_t hour, unsigned seq, size_t cap,
                      struct seg **out)
{
    struct seg *s = calloc(1, sizeof(*s));
    int rc = PF_EIO;
    if (s == NULL)
        return PF_ENOMEM;
    s->fd = -1;
    s->hour = hour;
    s->cap = cap;
    seg_path(lg, slot, hour, seq, s->path, sizeof(s->path));
    char dir[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(dir, sizeof(dir), "%s", s->path);
    *strrchr(dir, '/') = '\0';
    if (fsutil_mkdirs(dir, 0755) != 0)
        goto fail;
    /* Made under a hidden name and renamed once its header is written, so
     * that a reader (or a recovery after a crash right here) never sees a
     * half-written header. */
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, strrchr(s->path, '/') + 1);
    s->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0)
        goto fail;
    /* Reserve the blocks now: a write into a mapped hole on a full disk
     * would kill the process with SIGBUS. */
    if (posix_fallocate(s->fd, 0, (off_t)s->cap) != 0)
        goto fail;
    s->map = mmap(NULL, s->cap, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        goto fail;
    }
    encode_header(s->map);
    s->used = EVLOG_FILE_HEADER;
    if (rename(tmp, s->path) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (s->map != NULL)
        munmap(s->map, s->cap);
    if (s->fd >= 0) {
        close(s->fd);
        unlink(tmp);
    }
    free(s);
    return rc;
}

/* Make a segment final: synced, cut to its records, renamed to .pfe (or
 * removed when it holds none). On the sync thread or at close. */
static void seg_seal(struct evlog *lg, struct seg *s)
{
    char sealed[PATH_MAX];
    munmap(s->map, s->cap);
    if (s->used <= EVLOG_FILE_HEADER) {
        close(s->fd);
        unlink(s->path);
        free(s);
        return;
    }
    int ok = ftruncate(s->fd, (off_t)s->used) == 0 && fsync(s->fd) == 0;
    close(s->fd);
    snprintf(sealed, sizeof(sealed), "%.*s.pfe", (int)(strlen(s->path) - 5), s->path);
    if (ok && rename(s->path, sealed) == 0)
        fsutil_sync_parent(sealed);
    else if (lg->log)
        fprintf(lg->log, "pixflare: events: cannot seal %s: %s\n", s->path, strerror(errno));
    free(s);
}

static struct writer *writer_get(struct evlog *lg)
{
    if (tl_gen == lg->gen)
        return tl_writer;
    struct writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    w->lg = lg;
    pthread_mutex_lock(&lg->list_mu);
    w->slot = lg->nwriters++;
    w->next = lg->writers;
    lg->writers = w;
    pthread_mutex_unlock(&lg->list_mu);
    tl_writer = w;
    tl_gen = lg->gen;
    return w;
}

void evlog_request_id(struct evlog *lg, uint8_t out[16])
{
    struct writer *w = writer_get(lg);
    uint64_t n = w ? ++w->counter : 0;
    memcpy(out, lg->run, 8);
    put_u16(out + 8, (uint16_t)(w ? w->slot : 0xffff));
    for (int i = 0; i < 6; i++)
        out[10 + i] = (uint8_t)(n >> (40 - 8 * i));
}

int evlog_append(struct evlog *lg, const struct event *ev)
{
    struct writer *w = writer_get(lg);
    int rc = 0;
    if (w == NULL) {
        atomic_fetch_add_explicit(&lg->dropped, 1, memory_order_relaxed);
        return PF_ENOMEM;
    }
    int64_t hour = ev->ts_ms / MS_PER_HOUR;
    pthread_mutex_lock(&w->mu);
    struct seg *s = w->cur;
    if (s == NULL || s->hour != hour || s->used + EVLOG_RECORD_SIZE > s->cap) {
        /* `s` stays valid while w->mu is held, even once retired. */
        if (s != NULL) {
            s->next = w->retired;
            w->retired = s;
            w->cur = NULL;
        }
        struct seg *spare = w->spare;
        w->spare = NULL;
        if (spare != NULL && spare->hour == hour) {
            w->cur = spare;
            atomic_fetch_add_explicit(&lg->segments, 1, memory_order_relaxed);
        } else {
            if (spare != NULL) { /* prepared for an hour now past */
                spare->next = w->retired;
                w->retired = spare;
            }
            /* A failed open (disk full) is retried once a second, not on
             * every request. */
            if (timeutil_mono_ms() >= w->retry_ms &&
                seg_create(lg, w->slot, hour, w->seq++, next_cap(s, hour), &w->cur) != 0) {
                w->cur = NULL;
                w->retry_ms = timeutil_mono_ms() + 1000;
            } else if (w->cur != NULL) {
                atomic_fetch_add_explicit(&lg->segments, 1, memory_order_relaxed);
            }
        }
        s = w->cur;
    }
    if (s != NULL) {
        /* The record is written whole into the shared mapping: from here on
         * it is the kernel's, whatever happens to this process. */
        evlog_encode(ev, s->map + s->used);
        s->used += EVLOG_RECORD_SIZE;
        /* Only this thread writes it: a plain store, no locked add. */
        atomic_store_explicit(&w->appended,
                              atomic_load_explicit(&w->appended, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&lg->dropped, 1, memory_order_relaxed);
        rc = PF_EIO;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Make the pages the writer will fill before the next pass present and
 * writable, so that its appends take no page fault (each is a few
 * microseconds in the kernel, on the request path). Done after the
 * fdatasync, which write-protects the pages it cleans. The range is what
 * the last pass saw written, at least 64 KiB: populated pages are dirty, so
 * the next fdatasync writes them (zeros) once more; an idle segment is left
 * alone. */
static void prefault(struct seg *s, size_t used)
{
#ifdef MADV_POPULATE_WRITE
    static size_t page;
    if (page == 0)
        page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rate = used > s->seen ? used - s->seen : 0;
    if (rate == 0 && s->seen != 0)
        return; /* idle: nothing will be written, keep the pages clean */
    size_t ahead = rate > 65536 ? rate : 65536;
    size_t from = used / page * page, to = used + ahead < s->cap ? used + ahead : s->cap;
    s->seen = used;
    if (to > from)
        madvise(s->map + from, to - from, MADV_POPULATE_WRITE); /* a hint: errors are harmless */
#else
    (void)s;
    (void)used;
#endif
}

/* Once a writer's segment is half full, make its next one here, so that
 * the writer finds it ready: the fallocate and the first page faults stay
 * off the request path. The sequence number is taken under the writer's
 * mutex; the files are made outside it. */
static void prepare_spare(struct evlog *lg, struct writer *w)
{
    struct seg *spare = NULL;
    if (timeutil_mono_ms() < w->spare_retry_ms)
        return;
    pthread_mutex_lock(&w->mu);
    struct seg *cur = w->cur;
    int need = cur != NULL && w->spare == NULL && cur->used * 2 >= cur->cap;
    int64_t hour = cur ? cur->hour : 0;
    size_t cap = cur ? next_cap(cur, hour) : 0;
    unsigned seq = need ? w->seq++ : 0;
    pthread_mutex_unlock(&w->mu);
    if (!need)
        return;
    if (seg_create(lg, w->slot, hour, seq, cap, &spare) != 0) {
        w->spare_retry_ms = timeutil_mono_ms() + 1000; /* disk full: not every pass */
        return;
    }
    prefault(spare, spare->used);
    pthread_mutex_lock(&w->mu);
    /* Only if the writer took no number meanwhile (it made a segment of its
     * own): segment numbers must follow the order of the events. */
    if (w->spare == NULL && w->seq == seq + 1) {
        w->spare = spare;
        spare = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    if (spare != NULL)
        seg_seal(lg, spare); /* not needed after all: removed, it is empty */
}

/* One pass of the sync thread: fdatasync live segments with new records,
 * retire segments of past hours (so yesterday's files are sealed even if
 * their thread serves nothing more), and seal retired ones. fsync runs
 * outside the writer's mutex: only this thread ever closes a segment, so
 * the descriptor stays valid. */
static void sync_writers(struct evlog *lg, int closing)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t hour = ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000) / MS_PER_HOUR;
    pthread_mutex_lock(&lg->list_mu);
    struct writer *ws = lg->writers;
    pthread_mutex_unlock(&lg->list_mu);
    /* First every writer's fdatasync and seals, so that the deadline holds
     * for the last writer too; then the slower preparation for later. */
    for (struct writer *w = ws; w != NULL; w = w->next) {
        pthread_mutex_lock(&w->mu);
        struct seg *cur = w->cur;
        if (cur != NULL && cur->hour < hour) {
            cur->next = w->retired;
            w->retired = cur;
            w->cur = cur = NULL;
        }
        if (w->spare != NULL && w->spare->hour < hour) {
            w->spare->next = w->retired;
            w->retired = w->spare;
            w->spare = NULL;
        }
        struct seg *retired = w->retired;
        size_t used = cur ? cur->used : 0;
        w->retired = NULL;
        pthread_mutex_unlock(&w->mu);
        w->synced_cur = cur;
        w->synced_used = used;
        if (cur != NULL && used > cur->synced) {
            if (fdatasync(cur->fd) != 0) {
                lg->sync_errors++; /* `synced` stays: the next pass tries again */
                lg->sync_errno = errno;
            } else {
                /* A new segment's name, and its day directory's, must reach
                 * the disk too, or a power loss could lose the whole file. */
                if (!cur->dir_synced) {
                    char day_dir[PATH_MAX];
                    snprintf(day_dir, sizeof(day_dir), "%s", cur->path);
                    *strrchr(day_dir, '/') = '\0';
                    cur->dir_synced =
                        fsutil_sync_parent(cur->path) == 0 && fsutil_sync_parent(day_dir) == 0;
                }
                cur->synced = used;
                atomic_fetch_add_explicit(&lg->syncs, 1, memory_order_relaxed);
            }
        }
        while (retired != NULL) {
            struct seg *next = retired->next;
            seg_seal(lg, retired);
            retired = next;
        }
    }
    if (closing)
        return;
    for (struct writer *w = ws; w != NULL; w = w->next) {
        /* Only this thread seals, so the segment seen above is still
         * mapped, current or retired since. */
        if (w->synced_cur != NULL)
            prefault(w->synced_cur, w->synced_used);
        prepare_spare(lg, w);
    }
}

static void sync_pass(void *arg)
{
    struct evlog *lg = arg;
    sync_writers(lg, 0);
    uint64_t dropped = atomic_load(&lg->dropped);
    if (dropped != lg->dropped_reported && lg->log) {
        fprintf(lg->log, "pixflare: events: %llu events could not be stored (disk full?)\n",
                (unsigned long long)(dropped - lg->dropped_reported));
        lg->dropped_reported = dropped;
    }
    if (lg->sync_errors != lg->sync_errors_reported && lg->log) {
        fprintf(lg->log, "pixflare: events: fdatasync failed (%s); retrying\n",
                strerror(lg->sync_errno));
        lg->sync_errors_reported = lg->sync_errors;
    }
}

/* ---- Directory walking ------------------------------------------------- */

static int name_is_day(const char *s, int64_t *day)
{
    int64_t t;
    if (strlen(s) != 10 || timeutil_parse_date(s, &t) != 0)
        return 0;
    *day = t / 86400;
    return 1;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir that `keep` accepts. OUT: *names (n entries), freed
 * with free_names(). */
static void free_names(char **v, size_t n);

static int list_dir(const char *dir, int (*keep)(const char *name), char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    *names = NULL;
    *n = 0;
    if (d == NULL)
        return errno == ENOENT ? 0 : PF_EIO;
    /* A short listing would silently skip files: out of memory fails. */
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!keep(de->d_name))
            continue;
        if (cnt == cap) {
            char **nv = realloc(v, (cap ? cap * 2 : 32) * sizeof(*v));
            if (nv == NULL) {
                rc = PF_ENOMEM;
                break;
            }
            v = nv;
            cap = cap ? cap * 2 : 32;
        }
        if ((v[cnt] = strdup(de->d_name)) == NULL)
            rc = PF_ENOMEM;
        else
            cnt++;
    }
    closedir(d);
    if (rc != 0) {
        free_names(v, cnt);
        return rc;
    }
    if (cnt > 0)
        qsort(v, cnt, sizeof(*v), cmp_str);
    *names = v;
    *n = cnt;
    return 0;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int keep_day(const char *name)
{
    int64_t d;
    return name_is_day(name, &d);
}

static int keep_segment(const char *name)
{
    return name[0] != '.' && (has_suffix(name, ".pfe") || has_suffix(name, ".open"));
}

static int keep_tmp_segment(const char *name)
{
    return name[0] == '.' && has_suffix(name, ".open.tmp");
}

static int keep_open_segment(const char *name)
{
    return name[0] != '.' && has_suffix(name, ".open");
}

/* Map a whole file (read-only unless `writable`). OUT: *buf, *len (buf NULL
 * for an empty file). */
static int map_file(const char *path, int writable, int *fd_out, uint8_t **buf, size_t *len)
{
    struct stat sb;
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    *buf = NULL;
    *len = 0;
    if (fd < 0)
        return PF_EIO;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return PF_EIO;
    }
    if (sb.st_size > 0) {
        /* A reader maps the page tables in one go (MAP_POPULATE): a scan
         * touches every page, and 4 KiB page faults would cost more than
         * the checksums. */
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ,
                       MAP_SHARED | (writable ? 0 : MAP_POPULATE), fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return PF_EIO;
        }
        *buf = m;
        *len = (size_t)sb.st_size;
    }
    if (fd_out != NULL)
        *fd_out = fd;
    else
        close(fd);
    return 0;
}

/* Seal the segments a previous server left open (it was killed): cut each
 * after its last valid record, so a torn record is gone and every record
 * the dead server wrote is kept. */
static int recover(struct evlog *lg)
{
    char **days = NULL, **files = NULL;
    size_t ndays = 0, nfiles = 0;
    int rc = list_dir(lg->dir, keep_day, &days, &ndays);
    for (size_t i = 0; rc == 0 && i < ndays; i++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/%s", lg->dir, days[i]);
        /* Segments a killed server was still making: nothing in them. */
        if (list_dir(dir, keep_tmp_segment, &files, &nfiles) == 0) {
            for (size_t j = 0; j < nfiles; j++) {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/%s", dir, files[j]);
                unlink(path);
            }
            free_names(files, nfiles);
        }
        if (list_dir(dir, keep_open_segment, &files, &nfiles) != 0)
            continue;
        for (size_t j = 0; j < nfiles; j++) {
            char path[PATH_MAX], sealed[PATH_MAX];
            uint8_t *buf;
            size_t len;
            int fd = -1;
            struct evlog_file_stats st;
            snprintf(path, sizeof(path), "%s/%s", dir, files[j]);
            if (map_file(path, 1, &fd, &buf, &len) != 0) {
                if (lg->log)
                    fprintf(lg->log, "pixflare: events: cannot read %s: %s (skipped)\n", path,
                            strerror(errno));
                continue;
            }
            evlog_scan_buffer(buf, len, NULL, NULL, &st);
            int empty =
                buf == NULL || all_zero(buf, len) ||
                (!st.bad_header && st.events == 0 && st.damaged_bytes == 0 && st.tail_bytes == 0);
            if (buf != NULL)
                munmap(buf, len);
            if (empty) {
                close(fd);
                unlink(path); /* killed before its first record */
                continue;
            }
            snprintf(sealed, sizeof(sealed), "%.*s.pfe", (int)(strlen(path) - 5), path);
            if (st.bad_header || st.events == 0) {
                /* Damaged, not empty: kept as it is for inspection; readers
                 * report it and skip what they cannot read. */
                close(fd);
                if (lg->log)
                    fprintf(lg->log,
                            "pixflare: events: %s is damaged (%s); kept as %s, skipped by "
                            "readers\n",
                            path, st.bad_header ? "bad file header" : "no valid record", sealed);
                if (rename(path, sealed) == 0)
                    fsutil_sync_parent(sealed);
                continue;
            }
            if (lg->log)
                fprintf(lg->log,
                        "pixflare: events: recovered %s after an unclean stop: %llu events kept"
                        "%s\n",
                        path, (unsigned long long)st.events,
                        st.tail_bytes ? ", a torn record at the end cut off" : "");
            int ok = ftruncate(fd, (off_t)st.valid_end) == 0 && fsync(fd) == 0;
            close(fd);
            if (ok && rename(path, sealed) == 0)
                fsutil_sync_parent(sealed);
        }
        free_names(files, nfiles);
    }
    free_names(days, ndays);
    return rc;
}

int evlog_open(const char *data_dir, const char *dataset, int fsync_ms, FILE *log,
               struct evlog **out, char *err, size_t errlen)
{
    struct evlog *lg = calloc(1, sizeof(*lg));
    char lock_path[PATH_MAX];
    if (lg == NULL)
        return PF_ENOMEM;
    lg->lock_fd = -1;
    lg->fsync_ms = fsync_ms;
    lg->log = log;
    lg->gen = atomic_fetch_add(&next_gen, 1);
    pthread_mutex_init(&lg->list_mu, NULL);
    snprintf(lg->dir, sizeof(lg->dir), "%s/events/%s", data_dir, dataset);
    snprintf(lock_path, sizeof(lock_path), "%s/.lock", lg->dir);
    if (fsutil_mkdirs(lg->dir, 0755) != 0) {
        snprintf(err, errlen, "cannot create the event store %s: %s", lg->dir, strerror(errno));
        goto fail;
    }
    lg->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lg->lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", lock_path, strerror(errno));
        goto fail;
    }
    if (flock(lg->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "the event store %s is in use by another pixflare server", lg->dir);
        evlog_close(lg);
        return PF_ECONFLICT;
    }
    if (fsutil_random(lg->run, sizeof(lg->run)) != 0) {
        snprintf(err, errlen, "cannot read random bytes");
        goto fail;
    }
    for (int i = 0; i < 8; i++)
        snprintf(lg->run_hex + 2 * i, 3, "%02x", lg->run[i]);
    if (recover(lg) != 0) {
        snprintf(err, errlen, "cannot read the event store %s", lg->dir);
        goto fail;
    }
    /* Half the period: a record waits at most that for the next pass, then
     * its fdatasync; 0 syncs as often as the thread can. */
    if (ticker_start(lg->fsync_ms / 2, sync_pass, lg, &lg->sync) != 0) {
        snprintf(err, errlen, "cannot start the event store's sync thread");
        goto fail;
    }
    *out = lg;
    return 0;
fail:
    evlog_close(lg);
    return PF_EIO;
}

void evlog_get_stats(struct evlog *lg, struct evlog_stats *st)
{
    st->appended = 0;
    pthread_mutex_lock(&lg->list_mu);
    for (struct writer *w = lg->writers; w != NULL; w = w->next)
        st->appended += atomic_load_explicit(&w->appended, memory_order_relaxed);
    pthread_mutex_unlock(&lg->list_mu);
    st->dropped = atomic_load(&lg->dropped);
    st->syncs = atomic_load(&lg->syncs);
    st->segments = atomic_load(&lg->segments);
}

void evlog_close(struct evlog *lg)
{
    if (lg == NULL)
        return;
    if (lg->sync != NULL) {
        ticker_stop(lg->sync);
        sync_writers(lg, 1); /* seals what was retired since its last pass */
    }
    struct writer *w = lg->writers;
    while (w != NULL) {
        struct writer *next = w->next;
        if (w->cur != NULL)
            seg_seal(lg, w->cur);
        if (w->spare != NULL)
            seg_seal(lg, w->spare);
        for (struct seg *s = w->retired, *sn; s != NULL; s = sn) {
            sn = s->next;
            seg_seal(lg, s);
        }
        pthread_mutex_destroy(&w->mu);
        free(w);
        w = next;
    }
    if (lg->lock_fd >= 0)
        close(lg->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&lg->list_mu);
    free(lg);
}

/* ---- Reading ----------------------------------------------------------- */

/* Events are handed to the scan's callback in batches: a caller can then
 * overlap its own memory accesses (the batch aggregation prefetches its
 * hash table slots for a whole batch). */
#define SCAN_BATCH 64

struct day_filter {
    int64_t from_ms, to_ms; /* [from, to) */
    int (*fn)(void *ctx, const struct event *evs, size_t n);
    void *ctx;
    size_t n;
    struct event batch[SCAN_BATCH];
};

static int filter_flush(struct day_filter *f)
{
    size_t n = f->n;
    f->n = 0;
    return n > 0 && f->fn ? f->fn(f->ctx, f->batch, n) : 0;
}

/* The next free slot of the batch, flushing a full one first. */
static int filter_take(struct day_filter *f, struct event **slot)
{
    int rc = f->n == SCAN_BATCH ? filter_flush(f) : 0;
    *slot = &f->batch[f->n];
    return rc;
}

/* Keep the event just decoded into the slot if it is of the day. */
static int filter_keep(struct day_filter *f, const struct event *ev)
{
    if (ev->ts_ms >= f->from_ms && ev->ts_ms < f->to_ms)
        f->n++;
    return 0;
}

/* Read a live segment with pread(2), never mmap: its server may cut it to
 * length at any moment (sealing), and a mapped read past the new end would
 * kill this process with SIGBUS. It is read in chunks from the end back to
 * the start: the writer only appends, so whatever a later (lower) chunk
 * shows is at least as new as what an earlier (higher) one showed, and the
 * copy is a clean prefix of the file plus, at most, a torn tail. Read front
 * to back, a page caught half-written before the next page filled would
 * look like damage in the middle. */
static int read_live(int fd, uint8_t **buf, size_t *len)
{
    enum { CHUNK = 1 << 16 };
    struct stat sb;
    *buf = NULL;
    *len = 0;
    if (fstat(fd, &sb) != 0)
        return PF_EIO;
    if (sb.st_size == 0)
        return 0;
    size_t size = (size_t)sb.st_size;
    uint8_t *b = calloc(1, size);
    if (b == NULL)
        return PF_ENOMEM;
    size_t end = size;
    while (end > 0) {
        size_t start = end > CHUNK ? end - CHUNK : 0;
        size_t got = 0;
        while (start + got < end) {
            ssize_t n = pread(fd, b + start + got, end - start - got, (off_t)(start + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                free(b);
                return PF_EIO;
            }
            if (n == 0)
                break; /* cut meanwhile (sealed): what is past the cut stays zero */
            got += (size_t)n;
        }
        end = start;
    }
    *buf = b;
    *len = size;
    return 0;
}

/* Scan one segment; `name` is as listed. A live segment may be sealed
 * (renamed to .pfe) between the listing and the open: then the sealed one is
 * read. */
static int scan_file(const char *dir, const char *name, struct day_filter *f, FILE *report,
                     struct evlog_file_stats *total)
{
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    size_t len = 0;
    struct evlog_file_stats st;
    int live = has_suffix(name, ".open"), rc;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (live) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            snprintf(path, sizeof(path), "%s/%.*s.pfe", dir, (int)(strlen(name) - 5), name);
            live = 0;
            rc = map_file(path, 0, NULL, &buf, &len);
            if (rc != 0 && errno == ENOENT)
                return 0; /* removed: an unused spare segment, empty */
        } else {
            rc = fd < 0 ? PF_EIO : read_live(fd, &buf, &len);
            if (fd >= 0)
                close(fd);
        }
    } else {
        rc = map_file(path, 0, NULL, &buf, &len);
    }
    if (rc != 0) {
        if (report)
            fprintf(report, "pixflare: events: cannot read %s: %s (skipped)\n", path,
                    strerror(errno));
        total->unreadable++;
        return 0;
    }
    if (live && (len < EVLOG_FILE_HEADER || all_zero(buf, EVLOG_FILE_HEADER))) {
        free(buf); /* just created: its header is not written yet */
        return 0;
    }
    rc = scan_core(buf, len, NULL, NULL, f, &st);
    if (rc == 0)
        rc = filter_flush(f);
    f->n = 0;
    if (live)
        free(buf);
    else if (buf != NULL)
        munmap(buf, len);
    if (st.bad_header) {
        if (report)
            fprintf(report, "pixflare: events: %s is damaged (bad file header); skipped\n", path);
    } else if (report && (st.damaged_bytes || (st.tail_bytes && !live))) {
        fprintf(report, "pixflare: events: %s is damaged: %llu bytes skipped, %llu events read\n",
                path, (unsigned long long)(st.damaged_bytes + (live ? 0 : st.tail_bytes)),
                (unsigned long long)st.events);
    }
    total->events += st.events;
    total->damaged_bytes += st.damaged_bytes;
    total->tail_bytes += live ? 0 : st.tail_bytes;
    total->bad_header += st.bad_header;
    return rc;
}

/* A segment's name without its extension. */
static size_t stem_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

static int seen(char **done, size_t ndone, const char *name)
{
    for (size_t i = 0; i < ndone; i++)
        if (stem_len(done[i]) == stem_len(name) && memcmp(done[i], name, stem_len(name)) == 0)
            return 1;
    return 0;
}

/* Segments of one listing, shared out among reader threads. */
struct scan_job {
    const char *dir;
    char **names;
    size_t n;
    _Atomic size_t next;
    _Atomic int rc;
    int64_t from_ms, to_ms;
    int (*fn)(void *ctx, const struct event *evs, size_t n);
    FILE *report;
};

struct scan_reader {
    struct scan_job *job;
    void *ctx;
    struct evlog_file_stats sum;
    pthread_t th;
};

static void *scan_reader_main(void *arg)
{
    struct scan_reader *r = arg;
    struct scan_job *job = r->job;
    struct day_filter *f = malloc(sizeof(*f));
    if (f == NULL) {
        int zero = 0;
        atomic_compare_exchange_strong(&job->rc, &zero, PF_ENOMEM);
        return NULL;
    }
    f->from_ms = job->from_ms;
    f->to_ms = job->to_ms;
    f->fn = job->fn;
    f->ctx = r->ctx;
    f->n = 0;
    for (;;) {
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n || atomic_load(&job->rc) != 0)
            break;
        int rc = scan_file(job->dir, job->names[i], f, job->report, &r->sum);
        if (rc != 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&job->rc, &zero, rc);
        }
    }
    free(f);
    return NULL;
}

/* Scan the files of one listing with `nreaders` readers (threads beyond
 * the first; the caller is reader 0). */
static int scan_files(struct scan_job *job, struct scan_reader *readers, int nreaders)
{
    int started = 1;
    for (int t = 1; t < nreaders && (size_t)t < job->n; t++) {
        readers[t].job = job;
        if (pthread_create(&readers[t].th, NULL, scan_reader_main, &readers[t]) != 0)
            break; /* fewer readers: slower, not wrong */
        started++;
    }
    readers[0].job = job;
    scan_reader_main(&readers[0]);
    for (int t = 1; t < started; t++)
        pthread_join(readers[t].th, NULL);
    return atomic_load(&job->rc);
}

/* Scan every segment of one day directory once. A server sealing a segment
 * renames it during the listing, and readdir(3) may then return both names
 * or neither: segments are taken by stem, and the directory is listed again
 * until a listing brings no segment not yet scanned. */
static int scan_day(const char *dir, int64_t day,
                    int (*fn)(void *ctx, const struct event *evs, size_t n), FILE *report,
                    struct scan_reader *readers, int nreaders)
{
    char **done = NULL;
    size_t ndone = 0, cap = 0;
    int rc = 0, fresh = 1;
    while (rc == 0 && fresh) {
        char **files = NULL;
        size_t nfiles = 0, first = ndone;
        fresh = 0;
        if (list_dir(dir, keep_segment, &files, &nfiles) != 0) {
            rc = PF_EIO;
            break;
        }
        for (size_t j = 0; rc == 0 && j < nfiles; j++) {
            if (seen(done, ndone, files[j]))
                continue;
            if (ndone == cap) {
                char **nd = realloc(done, (cap = cap ? cap * 2 : 32) * sizeof(*nd));
                if (nd == NULL) {
                    rc = PF_ENOMEM;
                    break;
                }
                done = nd;
            }
            done[ndone++] = files[j];
            files[j] = NULL;
            fresh = 1;
        }
        free_names(files, nfiles);
        if (rc == 0 && ndone > first) {
            struct scan_job job = {.dir = dir,
                                   .names = done + first,
                                   .n = ndone - first,
                                   .from_ms = day * MS_PER_DAY,
                                   .to_ms = (day + 1) * MS_PER_DAY,
                                   .fn = fn,
                                   .report = report};
            atomic_init(&job.next, 0);
            atomic_init(&job.rc, 0);
            rc = scan_files(&job, readers, nreaders);
        }
    }
    free_names(done, ndone);
    return rc;
}

int evlog_scan_mt(const char *data_dir, const char *dataset, int64_t day_from, int64_t day_to,
                  int threads, int (*fn)(void *ctx, const struct event *evs, size_t n),
                  void *const *ctxs, FILE *report, struct evlog_file_stats *total)
{
    char root[PATH_MAX];
    char **days = NULL;
    size_t ndays = 0;
    int nreaders = threads < 1 ? 1 : threads;
    struct scan_reader *readers = calloc((size_t)nreaders, sizeof(*readers));
    if (readers == NULL)
        return PF_ENOMEM;
    for (int t = 0; t < nreaders; t++)
        readers[t].ctx = ctxs ? ctxs[t] : NULL;
    struct stat sb;
    snprintf(root, sizeof(root), "%s/events/%s", data_dir, dataset);
    int rc = stat(root, &sb) != 0 && errno == ENOENT ? PF_ENOTFOUND
                                                     : list_dir(root, keep_day, &days, &ndays);
    for (size_t i = 0; rc == 0 && i < ndays; i++) {
        int64_t day = 0;
        char dir[PATH_MAX];
        name_is_day(days[i], &day);
        if (day < day_from || day > day_to)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, days[i]);
        rc = scan_day(dir, day, fn, report, readers, nreaders);
    }
    free_names(days, ndays);
    if (total != NULL) {
        memset(total, 0, sizeof(*total));
        for (int t = 0; t < nreaders; t++) {
            total->events += readers[t].sum.events;
            total->damaged_bytes += readers[t].sum.damaged_bytes;
            total->tail_bytes += readers[t].sum.tail_bytes;
            total->bad_header += readers[t].sum.bad_header;
            total->unreadable += readers[t].sum.unreadable;
        }
    }
    free(readers);
    return rc;
}

/* evlog_scan()'s one-event callback, behind the batch one. */
struct one_by_one {
    int (*fn)(void *ctx, const struct event *ev);
    void *ctx;
};

static int each_event(void *ctx, const struct event *evs, size_t n)
{
    struct one_by_one *o = ctx;
    for (size_t i = 0; i < n; i++) {
        int rc = o->fn ? o->fn(o->ctx, &evs[i]) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

int evlog_scan(const char *data_dir, const char *dataset, int64_t day_from, int64_t day_to,
               int (*fn)(void *ctx, const struct event *ev), void *ctx, FILE *report,
               struct evlog_file_stats *total)
{
    struct one_by_one o = {fn, ctx};
    void *ctxs[1] = {&o};
    int rc = evlog_scan_mt(data_dir, dataset, day_from, day_to, 1, each_event, ctxs, report, total);
    return rc == PF_ENOTFOUND ? 0 : rc;
}

static int keep_any(const char *name)
{
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int evlog_purge_before(const char *data_dir, const char *dataset, int64_t day,
                       uint64_t *files_removed)
{
    char root[PATH_MAX];
    char **days = NULL;
    size_t ndays = 0;
    *files_removed = 0;
    snprintf(root, sizeof(root), "%s/events/%s", data_dir, dataset);
    int rc = list_dir(root, keep_day, &days, &ndays);
    for (size_t i = 0; rc == 0 && i < ndays; i++) {
        int64_t d = 0;
        char dir[PATH_MAX];
        char **files = NULL;
        size_t nfiles = 0;
        name_is_day(days[i], &d);
        if (d >= day)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, days[i]);
        if (list_dir(dir, keep_any, &files, &nfiles) != 0) {
            rc = PF_EIO;
            break;
        }
        for (size_t j = 0; j < nfiles; j++) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", dir, files[j]);
            if (unlink(path) == 0)
                (*files_removed)++;
            else
                rc = PF_EIO;
        }
        free_names(files, nfiles);
        if (rc == 0 && rmdir(dir) != 0)
            rc = PF_EIO;
    }
    free_names(days, ndays);
    if (rc == 0)
        fsutil_sync_parent(root);
    return rc;
}
