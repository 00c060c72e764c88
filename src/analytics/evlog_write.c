/* evlog_write.c - the event log's writer (see evlog.h): each thread's
 * memory-mapped segments, the sync thread that fdatasyncs them and seals
 * past hours, and the recovery of what an unclean stop left open. The
 * format is evlog_format.c's. */
#include "analytics/evlog.h"
#include "analytics/evlog_int.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/metrics.h"
#include "base/ticker.h"
#include "base/timeutil.h"

#include <dirent.h>
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

/* A thread's first segment of an hour is 256 KiB (3.6k events), each next
 * one twice the last, up to 16 MiB (233k events): a quiet hour costs little
 * disk and fallocate time, a busy one rotates (open, fallocate, mmap)
 * rarely. */
#define SEGMENT_MIN (256u << 10)
#define SEGMENT_MAX (16u << 20)

/* Records held in memory, over all writers, while no segment can be made
 * (a full disk): 64 MiB, 932k events. Beyond it events are dropped. */
#define HELD_MAX ((size_t)64 << 20)

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
    _Atomic uint64_t appended; /* this writer's, summed by evlog_get_stats() */
    struct seg *cur;
    struct seg *spare;      /* the next segment, prepared by the sync thread */
    struct seg *synced_cur; /* sync thread only: the current segment at its last pass */
    size_t synced_used;
    struct seg *retired;    /* full or past hours, to be sealed by the sync thread */
    int64_t retry_ms;       /* after a failed segment open: not before (monotonic ms) */
    int64_t spare_retry_ms; /* the same for preparing a spare; sync thread only */
    /* Encoded records appended while no segment could be made (disk full),
     * in order; the sync thread writes them out (write_held()). */
    uint8_t *held;
    size_t held_len, held_cap;
    int64_t held_retry_ms; /* sync thread only */
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
    /* Records held in memory (see struct writer), and those written out
     * since (counted as appended then). */
    _Atomic size_t held_bytes;
    _Atomic uint64_t held_written, held_total;
    int held_reported;             /* sync thread only: the line about holding was logged */
    uint64_t held_seen, held_from; /* sync thread only: held_total at the last pass, at that line */
    /* Failed fdatasyncs (see sync_failed()): the count is read by scrapes;
     * the rest is the sync thread's. */
    _Atomic uint64_t sync_errors;
    uint64_t sync_errors_logged; /* sync_errors at the last line logged */
    int64_t sync_error_logged_ms;
    int sync_failing; /* the last pass had a failure: the marker file exists */
    /* metrics: the store's size on disk, recounted by the sync thread at
     * most every DISK_RECOUNT_MS (a walk of the day directories: cheap, and
     * off every writer's path), and the fdatasync times */
    _Atomic uint64_t disk_bytes;
    int64_t disk_counted_ms;
    int m_fsync;
};

#define DISK_RECOUNT_MS 30000

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
    evlog_encode_header(s->map);
    s->used = EVLOG_FILE_HEADER;
    if (rename(tmp, s->path) != 0)
        goto fail;
    /* on disk at once (preallocated); the next recount sees it too */
    atomic_fetch_add_explicit(&lg->disk_bytes, cap, memory_order_relaxed);
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

/* The marker file of a failing fdatasync: what /readyz and the operator
 * read (see health.c); removed once syncs work again, or at the next
 * start. */
static void marker_path(const struct evlog *lg, char *out, size_t cap)
{
    snprintf(out, cap, "%s/" EVLOG_FSYNC_MARKER, lg->dir);
}

/* A sync of `path` failed with errno `e`: counted, and recorded in the
 * marker file (the last failure's line). Sync thread (or close). Returns
 * the count so far. */
static uint64_t record_failure(struct evlog *lg, const char *what, const char *path, int e)
{
    char marker[PATH_MAX + 32], tmp[PATH_MAX + 40], iso[21];
    timeutil_format_iso8601((int64_t)time(NULL), iso);
    marker_path(lg, marker, sizeof(marker));
    /* Replaced whole (a temporary renamed over it): /readyz may read it at
     * any moment. Not synced: it says how things are now. */
    snprintf(tmp, sizeof(tmp), "%s.tmp", marker);
    FILE *f = fopen(tmp, "w");
    if (f != NULL) {
        fprintf(f, "%s of %s failed at %s: %s\n", what, path, iso, strerror(e));
        if (fclose(f) != 0 || rename(tmp, marker) != 0)
            unlink(tmp);
    }
    lg->sync_failing = 1;
    return atomic_fetch_add(&lg->sync_errors, 1) + 1;
}

/* Make a segment final: synced, cut to its records, renamed to .pfe (or
 * removed when it holds none). On the sync thread or at close. Returns 0,
 * or -1 when its fsync failed (counted and recorded like a failed
 * fdatasync; the file stays .open, and the next start seals it). */
static int seg_seal(struct evlog *lg, struct seg *s)
{
    char sealed[PATH_MAX];
    int rc = 0;
    munmap(s->map, s->cap);
    if (s->used <= EVLOG_FILE_HEADER) {
        close(s->fd);
        unlink(s->path);
        free(s);
        return 0;
    }
    int ok = ftruncate(s->fd, (off_t)s->used) == 0, e = 0;
    if (ok && fsync(s->fd) != 0) {
        e = errno;
        ok = 0;
        rc = -1;
        record_failure(lg, "fsync (sealing)", s->path, e);
    } else if (!ok) {
        e = errno;
    }
    close(s->fd);
    snprintf(sealed, sizeof(sealed), "%.*s.pfe", (int)(strlen(s->path) - 5), s->path);
    if (ok && rename(s->path, sealed) == 0)
        fsutil_sync_parent(sealed);
    else if (lg->log)
        fprintf(lg->log,
                "pixflare: events: cannot seal %s: %s (kept as it is; the next start "
                "seals it)\n",
                s->path, strerror(e ? e : errno));
    free(s);
    return rc;
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

/* No segment can take `ev` (a full disk, or no descriptor left): keep its
 * record in the writer's memory, within HELD_MAX over all writers. Under
 * w->mu. Returns 0, or PF_ENOMEM when the bound or memory leaves no room
 * (the event is then dropped). */
static int hold(struct evlog *lg, struct writer *w, const struct event *ev)
{
    if (atomic_load_explicit(&lg->held_bytes, memory_order_relaxed) + EVLOG_RECORD_SIZE > HELD_MAX)
        return PF_ENOMEM;
    if (w->held_len + EVLOG_RECORD_SIZE > w->held_cap) {
        size_t cap = w->held_cap ? w->held_cap * 2 : (size_t)EVLOG_RECORD_SIZE * 1024;
        uint8_t *p = realloc(w->held, cap);
        if (p == NULL)
            return PF_ENOMEM;
        w->held = p;
        w->held_cap = cap;
    }
    evlog_encode(ev, w->held + w->held_len);
    w->held_len += EVLOG_RECORD_SIZE;
    atomic_fetch_add_explicit(&lg->held_bytes, EVLOG_RECORD_SIZE, memory_order_relaxed);
    atomic_fetch_add_explicit(&lg->held_total, 1, memory_order_relaxed);
    return 0;
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
    if (w->held_len > 0) {
        /* Some are held (no segment could be made): this one too, so that
         * the sync thread writes them all out in order. */
        if (hold(lg, w, ev) != 0) {
            atomic_fetch_add_explicit(&lg->dropped, 1, memory_order_relaxed);
            rc = PF_EIO;
        }
        pthread_mutex_unlock(&w->mu);
        return rc;
    }
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
    } else if (hold(lg, w, ev) != 0) { /* else kept in memory, written out later */
        atomic_fetch_add_explicit(&lg->dropped, 1, memory_order_relaxed);
        rc = PF_EIO;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static void sink_emit(void *impl, const struct event *ev)
{
    (void)evlog_append(impl, ev); /* a failure is counted in `dropped` */
}

static const struct event_sink_ops sink_ops = {"evlog", sink_emit};

struct event_sink evlog_sink(struct evlog *lg)
{
    return (struct event_sink){&sink_ops, lg};
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

/* Write out the records writer `w` held in memory (hold()), in order, into
 * new segments of their hours, numbered before any later event's: the
 * writer holds every event while some are held, and this runs under its
 * mutex (it waits for a few file creations and a copy, once, after a full
 * disk). The segments are retired, so the next pass syncs and seals them
 * outside the mutex. When a segment still cannot be made, what is left
 * stays held and is tried again a second later. Sync thread (or close).
 * Returns how many records are still held. */
static size_t write_held(struct evlog *lg, struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    size_t len = w->held_len, done = 0;
    while (done < len) {
        struct event ev;
        struct seg *seg = NULL;
        (void)evlog_decode(w->held + done, EVLOG_RECORD_SIZE, &ev); /* encoded here: valid */
        int64_t hour = ev.ts_ms / MS_PER_HOUR;
        size_t n = 0; /* the run of records of that hour, up to a full segment */
        while (done + n < len && EVLOG_FILE_HEADER + n + EVLOG_RECORD_SIZE <= SEGMENT_MAX &&
               evlog_decode(w->held + done + n, EVLOG_RECORD_SIZE, &ev) == 0 &&
               ev.ts_ms / MS_PER_HOUR == hour)
            n += EVLOG_RECORD_SIZE;
        if (seg_create(lg, w->slot, hour, w->seq, EVLOG_FILE_HEADER + n, &seg) != 0)
            break;
        w->seq++;
        memcpy(seg->map + seg->used, w->held + done, n);
        seg->used += n;
        seg->next = w->retired;
        w->retired = seg;
        done += n;
        atomic_fetch_sub(&lg->held_bytes, n);
        atomic_fetch_add(&lg->held_written, n / EVLOG_RECORD_SIZE);
    }
    if (done > 0)
        memmove(w->held, w->held + done, len - done);
    w->held_len = len - done;
    if (w->held_len > 0)
        w->held_retry_ms = timeutil_mono_ms() + 1000;
    size_t left = w->held_len / EVLOG_RECORD_SIZE;
    pthread_mutex_unlock(&w->mu);
    return left;
}

/* Bytes the files under `dir` and its subdirectories (the days) hold on
 * disk: allocated blocks, so a preallocated live segment counts whole. */
static uint64_t disk_usage(const char *dir, int depth)
{
    uint64_t total = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_blocks * 512;
        } else if (S_ISDIR(st.st_mode) && depth > 0) {
            char sub[PATH_MAX];
            snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
            total += disk_usage(sub, depth - 1);
        }
    }
    closedir(d);
    return total;
}

static void collect(void *ctx, struct metrics_out *out)
{
    struct evlog *lg = ctx;
    struct evlog_stats st;
    evlog_get_stats(lg, &st);
    metrics_out_family(out, "pixflare_events_appended_total", "counter",
                       "Events written to the local event log.");
    metrics_out_sample(out, "pixflare_events_appended_total", NULL, (double)st.appended);
    metrics_out_family(out, "pixflare_events_dropped_total", "counter",
                       "Events that could not be written to the local event log (disk full?).");
    metrics_out_sample(out, "pixflare_events_dropped_total", NULL, (double)st.dropped);
    metrics_out_family(out, "pixflare_event_log_fsync_errors_total", "counter",
                       "Syncs of the local event log's segments that failed (fdatasync: the "
                       "segment then sealed, new events in a new one; fsync when sealing).");
    metrics_out_sample(out, "pixflare_event_log_fsync_errors_total", NULL,
                       (double)atomic_load(&lg->sync_errors));
    metrics_out_family(out, "pixflare_events_held", "gauge",
                       "Events held in memory because no event log segment could be made "
                       "(disk full?), written out once one can.");
    metrics_out_sample(out, "pixflare_events_held", NULL,
                       (double)(atomic_load(&lg->held_bytes) / EVLOG_RECORD_SIZE));
    metrics_out_family(out, "pixflare_event_log_bytes", "gauge",
                       "Bytes the local event log holds on disk (recounted every 30 s).");
    metrics_out_sample(out, "pixflare_event_log_bytes", NULL,
                       (double)atomic_load_explicit(&lg->disk_bytes, memory_order_relaxed));
}

/* An fdatasync of live segment `s` of writer `w` failed. After such a
 * failure the state of its pages is unknown: Linux may have marked the
 * pages it could not write clean (or dropped them), and a retried fsync
 * reports success without writing them (PostgreSQL's "fsyncgate"). So the
 * segment is not synced again as if nothing happened: it is retired (the
 * next pass seals it, keeping its records as the kernel holds them) and
 * the writer's next event goes to a new segment, whose syncs tell whether
 * the disk works again. The failure is counted, logged (the first one at
 * once, then at most once a minute with the count) and recorded in the
 * marker file. Never silent, and the server goes on serving. */
static void sync_failed(struct evlog *lg, struct writer *w, struct seg *s, size_t used, int e)
{
    uint64_t n = record_failure(lg, "fdatasync", s->path, e);
    pthread_mutex_lock(&w->mu);
    if (w->cur == s) {
        s->next = w->retired;
        w->retired = s;
        w->cur = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    w->synced_cur = NULL;
    int64_t now = timeutil_mono_ms();
    if (lg->log && (lg->sync_errors_logged == 0 || now - lg->sync_error_logged_ms >= 60000)) {
        fprintf(lg->log,
                "pixflare: events: fdatasync of %s failed (%s): its %zu events may not be on "
                "disk; that segment is kept as it is, not synced again, and new events go to "
                "a new one (%llu sync failures so far)\n",
                s->path, strerror(e), (used - EVLOG_FILE_HEADER) / EVLOG_RECORD_SIZE,
                (unsigned long long)n);
        lg->sync_errors_logged = n;
        lg->sync_error_logged_ms = now;
    }
}

/* One pass of the sync thread: fdatasync live segments with new records,
 * retire segments of past hours (so yesterday's files are sealed even if
 * their thread serves nothing more), and seal retired ones. fsync runs
 * outside the writer's mutex: only this thread ever closes a segment, so
 * the descriptor stays valid. */
static void sync_writers(struct evlog *lg, int closing)
{
    int failed = 0, synced_any = 0;
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
            int64_t t0 = timeutil_mono_ns();
            int synced = fdatasync(cur->fd);
            metrics_observe_ns(lg->m_fsync, (uint64_t)(timeutil_mono_ns() - t0));
            if (synced != 0) {
                sync_failed(lg, w, cur, used, errno);
                failed = 1;
            } else {
                synced_any = 1;
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
            if (seg_seal(lg, retired) != 0)
                failed = 1;
            retired = next;
        }
    }
    if (lg->sync_failing && synced_any && !failed) {
        char path[PATH_MAX + 32];
        marker_path(lg, path, sizeof(path));
        unlink(path);
        lg->sync_failing = 0;
        if (lg->log)
            fprintf(lg->log, "pixflare: events: fdatasync works again (%llu failures)\n",
                    (unsigned long long)atomic_load(&lg->sync_errors));
    }
    if (closing)
        return;
    for (struct writer *w = ws; w != NULL; w = w->next) {
        /* Only this thread seals, so the segment seen above is still
         * mapped, current or retired since. */
        if (w->synced_cur != NULL)
            prefault(w->synced_cur, w->synced_used);
        prepare_spare(lg, w);
        if (timeutil_mono_ms() >= w->held_retry_ms)
            (void)write_held(lg, w); /* (the lock-free check: the next pass sees it) */
    }
}

static void sync_pass(void *arg)
{
    struct evlog *lg = arg;
    sync_writers(lg, 0);
    if (timeutil_mono_ms() - lg->disk_counted_ms >= DISK_RECOUNT_MS) {
        atomic_store_explicit(&lg->disk_bytes, disk_usage(lg->dir, 1), memory_order_relaxed);
        lg->disk_counted_ms = timeutil_mono_ms();
    }
    /* Said once per episode, even one that began and ended between two
     * passes (held_total moved). */
    size_t held = atomic_load(&lg->held_bytes) / EVLOG_RECORD_SIZE;
    uint64_t held_total = atomic_load(&lg->held_total);
    if (held_total != lg->held_seen && !lg->held_reported && lg->log) {
        fprintf(lg->log,
                "pixflare: events: cannot make a new segment (disk full?): events are held in "
                "memory (at most %zu MiB) and written out once one can be made\n",
                HELD_MAX >> 20);
        lg->held_reported = 1;
        lg->held_from = lg->held_seen;
    }
    lg->held_seen = held_total;
    if (held == 0 && lg->held_reported && lg->log) {
        fprintf(lg->log, "pixflare: events: the %llu events held in memory are written out\n",
                (unsigned long long)(held_total - lg->held_from));
        lg->held_reported = 0;
    }
    uint64_t dropped = atomic_load(&lg->dropped);
    if (dropped != lg->dropped_reported && lg->log) {
        fprintf(lg->log, "pixflare: events: %llu events could not be stored (disk full?)\n",
                (unsigned long long)(dropped - lg->dropped_reported));
        lg->dropped_reported = dropped;
    }
}

/* ---- Recovery, open and close ------------------------------------------ */

static int keep_tmp_segment(const char *name)
{
    return name[0] == '.' && evlog_has_suffix(name, ".open.tmp");
}

static int keep_open_segment(const char *name)
{
    return name[0] != '.' && evlog_has_suffix(name, ".open");
}

/* Seal the segments a previous server left open (it was killed): cut each
 * after its last valid record, so a torn record is gone and every record
 * the dead server wrote is kept. */
static int recover(struct evlog *lg)
{
    char **days = NULL, **files = NULL;
    size_t ndays = 0, nfiles = 0;
    int rc = evlog_list_dir(lg->dir, evlog_keep_day, &days, &ndays);
    for (size_t i = 0; rc == 0 && i < ndays; i++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/%s", lg->dir, days[i]);
        /* Segments a killed server was still making: nothing in them. */
        if (evlog_list_dir(dir, keep_tmp_segment, &files, &nfiles) == 0) {
            for (size_t j = 0; j < nfiles; j++) {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/%s", dir, files[j]);
                unlink(path);
            }
            evlog_free_names(files, nfiles);
        }
        if (evlog_list_dir(dir, keep_open_segment, &files, &nfiles) != 0)
            continue;
        for (size_t j = 0; j < nfiles; j++) {
            char path[PATH_MAX], sealed[PATH_MAX];
            uint8_t *buf;
            size_t len;
            int fd = -1;
            struct evlog_file_stats st;
            snprintf(path, sizeof(path), "%s/%s", dir, files[j]);
            if (evlog_map_file(path, 1, &fd, &buf, &len) != 0) {
                if (lg->log)
                    fprintf(lg->log, "pixflare: events: cannot read %s: %s (skipped)\n", path,
                            strerror(errno));
                continue;
            }
            evlog_scan_buffer(buf, len, NULL, NULL, &st);
            int empty =
                buf == NULL || evlog_all_zero(buf, len) ||
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
            int e = errno;
            close(fd);
            if (ok && rename(path, sealed) == 0)
                fsutil_sync_parent(sealed);
            else if (lg->log) /* readable as it is; the next start tries again */
                fprintf(lg->log, "pixflare: events: cannot seal %s: %s (kept as it is)\n", path,
                        strerror(ok ? errno : e));
        }
        evlog_free_names(files, nfiles);
    }
    evlog_free_names(days, ndays);
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
    /* A failure a previous run recorded is that run's: its log says so;
     * this run's syncs say whether the disk works now. */
    marker_path(lg, lock_path, sizeof(lock_path));
    unlink(lock_path);
    if (recover(lg) != 0) {
        snprintf(err, errlen, "cannot read the event store %s", lg->dir);
        goto fail;
    }
    lg->m_fsync = metrics_histogram("pixflare_event_log_fsync_duration_seconds", "",
                                    "Time of one fdatasync of a live event log segment.",
                                    metrics_latency_bounds, metrics_latency_nbounds);
    atomic_store(&lg->disk_bytes, disk_usage(lg->dir, 1));
    lg->disk_counted_ms = timeutil_mono_ms();
    if (metrics_collector_add(collect, lg) != 0) {
        snprintf(err, errlen, "out of memory");
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
    st->appended += atomic_load(&lg->held_written);
    st->dropped = atomic_load(&lg->dropped);
    st->syncs = atomic_load(&lg->syncs);
    st->segments = atomic_load(&lg->segments);
}

void evlog_close(struct evlog *lg)
{
    if (lg == NULL)
        return;
    metrics_collector_remove(lg);
    if (lg->sync != NULL) {
        ticker_stop(lg->sync);
        sync_writers(lg, 1); /* seals what was retired since its last pass */
    }
    /* The last chance for events held in memory; what still cannot be
     * written is lost, and said so. */
    size_t lost = 0;
    for (struct writer *w = lg->writers; w != NULL; w = w->next)
        if (w->held_len > 0)
            lost += write_held(lg, w);
    if (lost > 0 && lg->log)
        fprintf(lg->log,
                "pixflare: events: %zu events held in memory could not be written (disk "
                "full?): lost from the event log\n",
                lost);
    atomic_fetch_add(&lg->dropped, lost);
    struct writer *w = lg->writers;
    while (w != NULL) {
        struct writer *next = w->next;
        free(w->held);
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
