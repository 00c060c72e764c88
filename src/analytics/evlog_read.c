/* evlog_read.c - the event log's readers (see evlog.h): directory
 * walking, scans of a range of days by one or several threads, live files
 * included, and the retention's purge of whole days. */
#include "analytics/evlog.h"
#include "analytics/evlog_int.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/timeutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Directory walking ------------------------------------------------- */

int evlog_name_is_day(const char *s, int64_t *day)
{
    int64_t t;
    if (strlen(s) != 10 || timeutil_parse_date(s, &t) != 0)
        return 0;
    *day = t / 86400;
    return 1;
}

int evlog_has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int evlog_list_dir(const char *dir, int (*keep)(const char *name), char ***names, size_t *n)
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
        evlog_free_names(v, cnt);
        return rc;
    }
    if (cnt > 0)
        qsort(v, cnt, sizeof(*v), cmp_str);
    *names = v;
    *n = cnt;
    return 0;
}

void evlog_free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int evlog_keep_day(const char *name)
{
    int64_t d;
    return evlog_name_is_day(name, &d);
}

static int keep_segment(const char *name)
{
    return name[0] != '.' && (evlog_has_suffix(name, ".pfe") || evlog_has_suffix(name, ".open"));
}

/* Map a whole file (read-only unless `writable`). OUT: *buf, *len (buf NULL
 * for an empty file). */
int evlog_map_file(const char *path, int writable, int *fd_out, uint8_t **buf, size_t *len)
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

/* ---- Reading ----------------------------------------------------------- */

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
static int scan_file(const char *dir, const char *name, struct evlog_day_filter *f, FILE *report,
                     struct evlog_file_stats *total)
{
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    size_t len = 0;
    struct evlog_file_stats st;
    int live = evlog_has_suffix(name, ".open"), rc;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (live) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            snprintf(path, sizeof(path), "%s/%.*s.pfe", dir, (int)(strlen(name) - 5), name);
            live = 0;
            rc = evlog_map_file(path, 0, NULL, &buf, &len);
            if (rc != 0 && errno == ENOENT)
                return 0; /* removed: an unused spare segment, empty */
        } else {
            rc = fd < 0 ? PF_EIO : read_live(fd, &buf, &len);
            if (fd >= 0)
                close(fd);
        }
    } else {
        rc = evlog_map_file(path, 0, NULL, &buf, &len);
    }
    if (rc != 0) {
        if (report)
            fprintf(report, "pixflare: events: cannot read %s: %s (skipped)\n", path,
                    strerror(errno));
        total->unreadable++;
        return 0;
    }
    if (live && (len < EVLOG_FILE_HEADER || evlog_all_zero(buf, EVLOG_FILE_HEADER))) {
        free(buf); /* just created: its header is not written yet */
        return 0;
    }
    rc = evlog_scan_core(buf, len, NULL, NULL, f, &st);
    if (rc == 0)
        rc = evlog_filter_flush(f);
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
    struct evlog_day_filter *f = malloc(sizeof(*f));
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
        if (evlog_list_dir(dir, keep_segment, &files, &nfiles) != 0) {
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
        evlog_free_names(files, nfiles);
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
    evlog_free_names(done, ndone);
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
    int rc = stat(root, &sb) != 0 && errno == ENOENT
                 ? PF_ENOTFOUND
                 : evlog_list_dir(root, evlog_keep_day, &days, &ndays);
    for (size_t i = 0; rc == 0 && i < ndays; i++) {
        int64_t day = 0;
        char dir[PATH_MAX];
        evlog_name_is_day(days[i], &day);
        if (day < day_from || day > day_to)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, days[i]);
        rc = scan_day(dir, day, fn, report, readers, nreaders);
    }
    evlog_free_names(days, ndays);
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
    int rc = evlog_list_dir(root, evlog_keep_day, &days, &ndays);
    for (size_t i = 0; rc == 0 && i < ndays; i++) {
        int64_t d = 0;
        char dir[PATH_MAX];
        char **files = NULL;
        size_t nfiles = 0;
        evlog_name_is_day(days[i], &d);
        if (d >= day)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, days[i]);
        if (evlog_list_dir(dir, keep_any, &files, &nfiles) != 0) {
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
        evlog_free_names(files, nfiles);
        if (rc == 0 && rmdir(dir) != 0)
            rc = PF_EIO;
    }
    evlog_free_names(days, ndays);
    if (rc == 0)
        fsutil_sync_parent(root);
    return rc;
}
