/* evlog_int.h - what the event log's files share: evlog_format.c (the
 * on-disk format, whose specification heads that file), evlog_write.c (the
 * writer, the sync thread, recovery) and evlog_read.c (directory walking,
 * scans, the purge). Not part of evlog.h: only src/analytics/evlog_*.c
 * include it. */
#ifndef PF_EVLOG_INT_H
#define PF_EVLOG_INT_H

#include "analytics/evlog.h"

#include <stddef.h>
#include <stdint.h>

#define MS_PER_HOUR 3600000LL
#define MS_PER_DAY 86400000LL

/* ---- The format (evlog_format.c) ---- */

/* A file header into out. */
void evlog_encode_header(uint8_t out[EVLOG_FILE_HEADER]);

/* Whether p[0..len) is all zero bytes (preallocated, never written). */
int evlog_all_zero(const uint8_t *p, size_t len);

/* Events are handed to the scan's callback in batches: a caller can then
 * overlap its own memory accesses (the batch aggregation prefetches its
 * hash table slots for a whole batch). */
#define EVLOG_SCAN_BATCH 64

struct evlog_day_filter {
    int64_t from_ms, to_ms; /* [from, to) */
    int (*fn)(void *ctx, const struct event *evs, size_t n);
    void *ctx;
    size_t n;
    struct event batch[EVLOG_SCAN_BATCH];
};

static inline int evlog_filter_flush(struct evlog_day_filter *f)
{
    size_t n = f->n;
    f->n = 0;
    return n > 0 && f->fn ? f->fn(f->ctx, f->batch, n) : 0;
}

/* The next free slot of the batch, flushing a full one first. */
static inline int evlog_filter_take(struct evlog_day_filter *f, struct event **slot)
{
    int rc = f->n == EVLOG_SCAN_BATCH ? evlog_filter_flush(f) : 0;
    *slot = &f->batch[f->n];
    return rc;
}

/* Keep the event just decoded into the slot if it is of the day. */
static inline int evlog_filter_keep(struct evlog_day_filter *f, const struct event *ev)
{
    if (ev->ts_ms >= f->from_ms && ev->ts_ms < f->to_ms)
        f->n++;
    return 0;
}

/* The scanner behind evlog_scan_buffer() and the day scans: each valid
 * record goes to fn(ctx, ev), or, when `f` is set, is decoded straight into
 * f's batch (no copy; see evlog_filter_take()). */
int evlog_scan_core(const uint8_t *buf, size_t len, int (*fn)(void *ctx, const struct event *ev),
                    void *ctx, struct evlog_day_filter *f, struct evlog_file_stats *st);

/* Decode the records of a file from file offset `from` (a record boundary
 * past the header; 0 for the file's start, whose header is checked) up to
 * offset `until`, at most `max` events into out. buf[0..len) holds the
 * file's bytes from offset `base` (0: the whole file, mapped). A sealed
 * file's damage is skipped and counted; a live file's reading stops at the
 * first record not (yet) whole. OUT: *r (see evlog_segment_read()), with
 * file offsets. */
int evlog_scan_from(const uint8_t *buf, size_t len, size_t base, size_t from, size_t until,
                    int live, struct event *out, size_t max, struct evlog_piece *r);

/* ---- Directory walking (evlog_read.c) ---- */

/* Whether s names a day directory (YYYY-MM-DD). OUT: *day. */
int evlog_name_is_day(const char *s, int64_t *day);
int evlog_keep_day(const char *name);
int evlog_has_suffix(const char *s, const char *suf);

/* Sorted names in dir that `keep` accepts (a missing dir has none). OUT:
 * *names (n entries), freed with evlog_free_names(). */
int evlog_list_dir(const char *dir, int (*keep)(const char *name), char ***names, size_t *n);
void evlog_free_names(char **v, size_t n);

/* Map a whole file (read-only unless `writable`). OUT: *fd_out (if not
 * NULL, else closed), *buf, *len (buf NULL for an empty file). */
int evlog_map_file(const char *path, int writable, int *fd_out, uint8_t **buf, size_t *len);

#endif
