/* evlog.h - the embedded event log: the store of ANALYTICS_ENGINE=embedded
 * (engine_embedded.c makes it an engine.h backend, and its writer a sink).
 *
 * One fixed-size record per CDN response, appended to files under
 * DATA_DIR/events/<dataset>/<YYYY-MM-DD>/ split by UTC hour and by writing
 * thread. The on-disk format is specified at the top of evlog_format.c;
 * the writer is evlog_write.c, the readers evlog_read.c.
 *
 * Writing (the server): evlog_open() takes the store's lock, repairs what an
 * unclean stop left, and starts a sync thread; evlog_append() is called by
 * any number of threads, each writing its own memory-mapped segment, so
 * appends share no lock and make no syscall. An appended record is in the
 * kernel's page cache as soon as evlog_append() returns: a crash of the
 * process (kill -9 included) cannot lose it. The sync thread fdatasync()s
 * every segment with new records within `fsync_ms`, against power loss.
 * When no segment can be made (a full disk), a thread's records are held
 * in memory (bounded) until the sync thread can write them out; see
 * docs/ANALYTICS.md for that and for a failing fdatasync.
 *
 * Reading (the events command, batch aggregation): evlog_scan() visits the
 * events of a range of UTC days, live files included, without the lock. */
#ifndef PF_EVLOG_H
#define PF_EVLOG_H

#include "analytics/event.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EVLOG_RECORD_SIZE 72
#define EVLOG_FILE_HEADER 16

/* The file in the store's directory (DATA_DIR/events/<dataset>/) that says
 * the writer's fdatasyncs are failing: one line, the segment, the time and
 * the error. Made at a failure, removed when a later pass syncs without one
 * (and at the writer's start). /readyz reports it. */
#define EVLOG_FSYNC_MARKER ".fsync-failing"

/* Encode ev as one record. */
void evlog_encode(const struct event *ev, uint8_t out[EVLOG_RECORD_SIZE]);

/* Decode the record at the start of buf (len bytes available). Returns 0
 * with *ev filled, or PF_EFORMAT if no valid record starts there. */
int evlog_decode(const uint8_t *buf, size_t len, struct event *ev);

/* What a scan of one file found. */
struct evlog_file_stats {
    uint64_t events;
    uint64_t damaged_bytes; /* skipped between valid records */
    uint64_t tail_bytes;    /* after the last valid record: a torn tail */
    size_t valid_end;       /* offset just past the last record frame (its
                               checksum holds, even if a field is bad) */
    int bad_header;         /* not an event file (or its header is damaged);
                               in a scan's total: such files */
    int unreadable;         /* in a scan's total: files that could not be read */
};

/* Scan a file's bytes: call fn (if not NULL) for each valid record in order;
 * a non-zero return from fn stops the scan and is returned. Zero bytes after
 * the last record are preallocated space, not damage. */
int evlog_scan_buffer(const uint8_t *buf, size_t len, int (*fn)(void *ctx, const struct event *ev),
                      void *ctx, struct evlog_file_stats *st);

struct evlog;

/* Open the store for writing: lock it (PF_ECONFLICT if another server holds
 * it), seal the segments an unclean stop left open (torn tails cut, reported
 * on `log`), start the sync thread. */
int evlog_open(const char *data_dir, const char *dataset, int fsync_ms, FILE *log,
               struct evlog **out, char *err, size_t errlen);

/* Append one event from the calling thread's own segment. Returns 0 (the
 * event written, or held in memory while no segment can be made), or an
 * error when it could not be kept (the memory bound reached: counted, and
 * reported by the sync thread). Never blocks on another thread's append. */
int evlog_append(struct evlog *lg, const struct event *ev);

/* The sink that appends to lg (evlog_append(), its error counted and
 * reported by the sync thread). */
struct event_sink evlog_sink(struct evlog *lg);

struct evlog_stats {
    uint64_t appended, dropped, syncs, segments;
};
void evlog_get_stats(struct evlog *lg, struct evlog_stats *st);

/* Stop the sync thread and seal every segment (synced, cut to length,
 * renamed). No append may run concurrently or after. */
void evlog_close(struct evlog *lg);

/* Visit every event of UTC days [day_from, day_to] (days since 1970-01-01)
 * in file order: by hour, then by writer. Damaged files and records are
 * reported on `report` (if not NULL) and skipped. Counts go to *total if
 * not NULL. Returns 0, fn's non-zero return, or PF_EIO when the store's
 * directory cannot be read. */
int evlog_scan(const char *data_dir, const char *dataset, int64_t day_from, int64_t day_to,
               int (*fn)(void *ctx, const struct event *ev), void *ctx, FILE *report,
               struct evlog_file_stats *total);

/* evlog_scan() with `threads` readers sharing out each day's files, and
 * events passed in batches (of up to 64, in file order): fn is called
 * concurrently, reader t passing ctxs[t] (each reader sees whole files, in
 * no set order). PF_ENOTFOUND when the dataset has no directory at all
 * (nothing was ever recorded). */
int evlog_scan_mt(const char *data_dir, const char *dataset, int64_t day_from, int64_t day_to,
                  int threads, int (*fn)(void *ctx, const struct event *evs, size_t n),
                  void *const *ctxs, FILE *report, struct evlog_file_stats *total);

/* Retention: delete the files of every day before `day` (whole files,
 * whole day directories). OUT: *files_removed. */
int evlog_purge_before(const char *data_dir, const char *dataset, int64_t day,
                       uint64_t *files_removed);

/* ---- The spool: segments read piecewise (evlog_spool.c) ----
 *
 * For a reader that keeps its own place in each segment (the ClickHouse
 * shipper): a segment is named by its day and stem (its file name without
 * .open or .pfe, which stays the same when it is sealed), and read from a
 * byte offset that the previous read returned. The bytes before that offset
 * never change: a segment is only appended to, then sealed. */

/* The UTC days that have a directory in the store, ascending. OUT: *days
 * (malloc'd, free()), *n. */
int evlog_list_days(const char *data_dir, const char *dataset, int64_t **days, size_t *n);

#define EVLOG_STEM_MAX 48

struct evlog_segment {
    char stem[EVLOG_STEM_MAX];
    int live; /* .open: a server may still append to it */
    uint64_t size;
};

/* The segments of UTC day `day`, by stem, ascending. OUT: *segs (malloc'd,
 * free()), *n. */
int evlog_list_segments(const char *data_dir, const char *dataset, int64_t day,
                        struct evlog_segment **segs, size_t *n);

struct evlog_piece {
    size_t n;         /* events read */
    size_t next;      /* where to read on: just past the last byte taken */
    int end;          /* the segment is sealed and read to its end */
    int bad_header;   /* not an event file: nothing in it is read */
    uint64_t damaged; /* bytes skipped as damage (sealed segments only) */
};

/* Read the events of segment `stem` of `day` from byte `from` (0 at first,
 * then a previous read's `next`) up to byte `until` (SIZE_MAX: the end), at
 * most `max` into out. A live segment is read up to its first record not
 * whole yet. PF_ENOTFOUND when the segment is gone. OUT: *r. */
int evlog_segment_read(const char *data_dir, const char *dataset, int64_t day, const char *stem,
                       size_t from, size_t until, struct event *out, size_t max,
                       struct evlog_piece *r);

/* Whether segment `stem` of `day` exists, live or sealed. */
int evlog_segment_exists(const char *data_dir, const char *dataset, int64_t day, const char *stem);

/* Delete a sealed segment (read and kept elsewhere). */
int evlog_segment_remove(const char *data_dir, const char *dataset, int64_t day, const char *stem);

/* Write segment `stem` of `day` into the store of the same dataset under
 * dst_data_dir (pixflare backup), as a sealed segment of the same stem
 * (its directories made): a sealed segment whole; of a live one, the bytes
 * up to its first record not whole yet, which is what sealing it now would
 * keep (a segment's bytes below a whole record never change, and a
 * concurrent seal only cuts zeros past them). A live segment with no
 * header yet or a damaged one is not copied (*bytes 0). The new file is
 * fsync'ed, its directory is not. PF_ENOTFOUND when the segment is gone
 * (purged, or shipped and deleted), PF_EEXISTS when the target exists.
 * OUT: *bytes, those written. */
int evlog_segment_copy(const char *data_dir, const char *dataset, int64_t day, const char *stem,
                       const char *dst_data_dir, uint64_t *bytes);

#endif
