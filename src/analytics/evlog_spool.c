/* evlog_spool.c - the event log read piecewise (evlog.h's "spool"): a
 * reader that keeps its own offset in each segment, as the ClickHouse
 * shipper does, lists days and segments and reads on from its offset;
 * and a segment copied as it stands (pixflare backup). */
#include "analytics/evlog.h"
#include "analytics/evlog_int.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void day_dir(const char *data_dir, const char *dataset, int64_t day, char *out, size_t cap)
{
    char date[11];
    timeutil_format_date(day * 86400, date);
    snprintf(out, cap, "%s/events/%s/%s", data_dir, dataset, date);
}

int evlog_list_days(const char *data_dir, const char *dataset, int64_t **days, size_t *n)
{
    char root[PATH_MAX];
    char **names = NULL;
    size_t cnt = 0;
    *days = NULL;
    *n = 0;
    snprintf(root, sizeof(root), "%s/events/%s", data_dir, dataset);
    int rc = evlog_list_dir(root, evlog_keep_day, &names, &cnt);
    if (rc == 0 && cnt > 0 && (*days = malloc(cnt * sizeof(**days))) == NULL)
        rc = PF_ENOMEM;
    for (size_t i = 0; rc == 0 && i < cnt; i++)
        evlog_name_is_day(names[i], &(*days)[i]); /* sorted names: ascending days */
    if (rc == 0)
        *n = cnt;
    evlog_free_names(names, cnt);
    return rc;
}

static int keep_segment(const char *name)
{
    if (name[0] == '.')
        return 0;
    size_t len = strlen(name);
    if (evlog_has_suffix(name, ".pfe"))
        return len - 4 < EVLOG_STEM_MAX;
    return evlog_has_suffix(name, ".open") && len - 5 < EVLOG_STEM_MAX;
}

int evlog_list_segments(const char *data_dir, const char *dataset, int64_t day,
                        struct evlog_segment **segs, size_t *n)
{
    char dir[PATH_MAX];
    char **names = NULL;
    size_t cnt = 0, m = 0;
    *segs = NULL;
    *n = 0;
    day_dir(data_dir, dataset, day, dir, sizeof(dir));
    int rc = evlog_list_dir(dir, keep_segment, &names, &cnt);
    if (rc == 0 && cnt > 0 && (*segs = calloc(cnt, sizeof(**segs))) == NULL)
        rc = PF_ENOMEM;
    for (size_t i = 0; rc == 0 && i < cnt; i++) {
        struct evlog_segment *s = &(*segs)[m];
        const char *dot = strrchr(names[i], '.');
        char path[PATH_MAX];
        struct stat sb;
        snprintf(s->stem, sizeof(s->stem), "%.*s", (int)(dot - names[i]), names[i]);
        s->live = strcmp(dot, ".open") == 0;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        s->size = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        /* Sealed between two readdir() calls, a segment may be listed under
         * both names: once is enough. */
        if (m > 0 && strcmp((*segs)[m - 1].stem, s->stem) == 0) {
            (*segs)[m - 1].live = 0;
            continue;
        }
        m++;
    }
    if (rc == 0)
        *n = m;
    evlog_free_names(names, cnt);
    return rc;
}

/* Read a live segment with pread(2), never mmap: its server may cut it to
 * length at any moment (sealing), and a mapped read past the new end would
 * kill this process with SIGBUS. It is read in chunks of whole records from
 * `from` until a chunk ends in bytes not (yet) records: a live segment is
 * preallocated, and most of it is zeros not worth copying. */
#define LIVE_CHUNK_RECORDS 910

static int read_live(int fd, size_t from, size_t until, struct event *out, size_t max,
                     struct evlog_piece *r)
{
    uint8_t *buf = malloc(EVLOG_FILE_HEADER + LIVE_CHUNK_RECORDS * EVLOG_RECORD_SIZE);
    size_t start = from < EVLOG_FILE_HEADER ? 0 : from;
    int rc = 0;
    memset(r, 0, sizeof(*r));
    r->next = from;
    if (buf == NULL)
        return PF_ENOMEM;
    while (rc == 0 && r->n < max && start < until) {
        size_t want = LIVE_CHUNK_RECORDS * EVLOG_RECORD_SIZE + (start == 0 ? EVLOG_FILE_HEADER : 0);
        size_t got = 0;
        if (want > until - start)
            want = until - start;
        while (got < want) {
            ssize_t k = pread(fd, buf + got, want - got, (off_t)(start + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                rc = k < 0 ? PF_EIO : 0;
                break;
            }
            got += (size_t)k;
        }
        if (rc != 0 || got == 0)
            break;
        struct evlog_piece p;
        rc = evlog_scan_from(buf, got, start, r->next, start + got, 1, out + r->n, max - r->n, &p);
        if (rc != 0)
            break;
        r->n += p.n;
        r->damaged += p.damaged;
        r->bad_header |= p.bad_header;
        if (p.next == r->next && start > 0)
            break; /* nothing new */
        r->next = p.next;
        if (p.bad_header || p.next < start + got || got < want)
            break; /* stopped at a record not written yet, or the file's end */
        start = p.next;
    }
    free(buf);
    return rc;
}

int evlog_segment_exists(const char *data_dir, const char *dataset, int64_t day, const char *stem)
{
    char dir[PATH_MAX], path[PATH_MAX + EVLOG_STEM_MAX + 8];
    day_dir(data_dir, dataset, day, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s.open", dir, stem);
    if (access(path, F_OK) == 0)
        return 1;
    snprintf(path, sizeof(path), "%s/%s.pfe", dir, stem);
    /* Sealed after the first look: then it has the second name. An error
     * other than "no such file" counts as there. */
    return access(path, F_OK) == 0 || errno != ENOENT;
}

int evlog_segment_read(const char *data_dir, const char *dataset, int64_t day, const char *stem,
                       size_t from, size_t until, struct event *out, size_t max,
                       struct evlog_piece *r)
{
    char dir[PATH_MAX], path[PATH_MAX + EVLOG_STEM_MAX + 8];
    memset(r, 0, sizeof(*r));
    r->next = from;
    day_dir(data_dir, dataset, day, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s.open", dir, stem);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        int rc = read_live(fd, from, until, out, max, r);
        close(fd);
        return rc;
    }
    if (errno != ENOENT)
        return PF_EIO;
    /* Sealed (or sealed since the listing). */
    uint8_t *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s.pfe", dir, stem);
    if (evlog_map_file(path, 0, NULL, &buf, &len) != 0)
        return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
    int rc = 0;
    if (buf == NULL) { /* empty: not even a header */
        r->bad_header = 1;
        r->end = 1;
    } else {
        rc = evlog_scan_from(buf, len, 0, from, until, 0, out, max, r);
        munmap(buf, len);
    }
    return rc;
}

int evlog_segment_remove(const char *data_dir, const char *dataset, int64_t day, const char *stem)
{
    char dir[PATH_MAX], path[PATH_MAX + EVLOG_STEM_MAX + 8];
    day_dir(data_dir, dataset, day, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s.pfe", dir, stem);
    if (unlink(path) != 0 && errno != ENOENT)
        return PF_EIO;
    return 0;
}

/* ---- Copying the store (pixflare backup) ---- */

/* Where a live segment's whole records end: read on as the shipper does
 * (pread, never mmap) until a read brings nothing new. */
static int live_end(int fd, size_t *end, int *bad_header)
{
    struct event *evs = malloc(LIVE_CHUNK_RECORDS * sizeof(*evs));
    struct evlog_piece r;
    size_t from = 0;
    int rc = evs == NULL ? PF_ENOMEM : 0;
    *bad_header = 0;
    while (rc == 0) {
        rc = read_live(fd, from, SIZE_MAX, evs, LIVE_CHUNK_RECORDS, &r);
        if (rc != 0 || r.bad_header || r.next == from)
            break;
        from = r.next;
    }
    *bad_header = rc == 0 && r.bad_header;
    *end = from;
    free(evs);
    return rc;
}

static int copy_bytes(int in, int out, size_t len)
{
    static const size_t chunk = 1 << 16;
    uint8_t *buf = malloc(chunk);
    int rc = buf == NULL ? PF_ENOMEM : 0;
    for (size_t off = 0; rc == 0 && off < len;) {
        size_t want = len - off < chunk ? len - off : chunk;
        ssize_t k = pread(in, buf, want, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = PF_EIO; /* shorter than measured: a sealed file never shrinks */
            break;
        }
        for (ssize_t w = 0; rc == 0 && w < k;) {
            ssize_t m = write(out, buf + w, (size_t)(k - w));
            if (m < 0 && errno != EINTR)
                rc = PF_EIO;
            else if (m > 0)
                w += m;
        }
        off += (size_t)k;
    }
    free(buf);
    return rc;
}

int evlog_segment_copy(const char *data_dir, const char *dataset, int64_t day, const char *stem,
                       const char *dst_data_dir, uint64_t *bytes)
{
    char dir[PATH_MAX], path[PATH_MAX + EVLOG_STEM_MAX + 8];
    char dst[PATH_MAX], dst_path[PATH_MAX + EVLOG_STEM_MAX + 8];
    struct stat sb;
    size_t end = 0;
    int live = 1, bad = 0, rc = 0, out = -1;
    *bytes = 0;
    day_dir(data_dir, dataset, day, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s.open", dir, stem);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0 && errno == ENOENT) {
        live = 0; /* sealed, or sealed since the listing */
        snprintf(path, sizeof(path), "%s/%s.pfe", dir, stem);
        in = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (in < 0)
        return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
    if (live)
        rc = live_end(in, &end, &bad);
    else if (fstat(in, &sb) != 0)
        rc = PF_EIO;
    else
        end = (size_t)sb.st_size;
    /* A live segment whose header is not written yet holds nothing; one
     * whose header is damaged is not an event file: neither is copied. */
    if (rc != 0 || bad || end == 0)
        goto done;
    day_dir(dst_data_dir, dataset, day, dst, sizeof(dst));
    snprintf(dst_path, sizeof(dst_path), "%s/%s.pfe", dst, stem);
    rc = fsutil_mkdirs(dst, 0755);
    if (rc == 0 && (out = open(dst_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        rc = errno == EEXIST ? PF_EEXISTS : PF_EIO;
    if (rc == 0)
        rc = copy_bytes(in, out, end);
    if (rc == 0 && fsync(out) != 0)
        rc = PF_EIO;
    if (rc == 0)
        *bytes = end;
done:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}
