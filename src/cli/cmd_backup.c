/* cmd_backup.c - `pixflare backup DEST`: a consistent copy of the data
 * directory, taken while a server runs and takes traffic, that is itself a
 * data directory: restoring is starting a server with PIXFLARE_DATA_DIR=DEST.
 *
 * WHAT IS COPIED, AND IN WHICH ORDER
 *
 * 1. The database (SQLite), through db_backup(): the online backup API
 *    inside one read transaction, so one snapshot, and in WAL mode no
 *    writer of the server waits for it. Written to DEST/pixflare.db, the
 *    default place, wherever PIXFLARE_DATABASE put the original. With
 *    PostgreSQL nothing is copied: one line says to run pg_dump, with the
 *    options naming the database (never a password), and the rest is
 *    copied.
 * 2. The event log, after the database: every segment of every dataset
 *    under events/. A sealed segment never changes: copied whole. A live
 *    one (.open, written through mmap) is copied up to its last whole
 *    record and written sealed (.pfe), which is what recovery would make of
 *    it after a crash at that instant, minus the preallocated zeros. The
 *    server appends an event to the log before the realtime rollup counts
 *    it, and the rollup writes counts to the database later still; so
 *    every request the database snapshot counts has its event in a
 *    segment that existed when the snapshot was taken, and the copy of
 *    that segment, read later, holds it: the copy's events include
 *    everything its database counts (events >= database). The events after
 *    the snapshot that the copy holds are counted by the batch aggregation
 *    on the restored server, as after a crash that lost the rollup's last
 *    unflushed counts. A segment purged or shipped between the listing
 *    and its copy is skipped: gone from the source too.
 *    ANALYTICS_ENGINE=clickhouse: the configured dataset's log is the
 *    node's spool, and it is not copied, nor is node-id (step 4). A copy of
 *    the spool and its ship.state would, on restore, send again whatever
 *    the original shipped after the backup (counted twice), and a
 *    restored node id would number its batches as the original already
 *    had, which the shipper's after-a-doubt check could take for its own.
 *    The restored server is a new node: a new id, an empty spool, its own
 *    batches. What waited in the spool at the backup
 *    is the original node's to ship; ClickHouse holds the rest and is
 *    backed up with its own tools.
 * 3. The storage directory (originals and cached variants, after the
 *    database: a file is published before its image row, and never
 *    changed), to DEST/images, the default place, even when
 *    PIXFLARE_STORAGE_DIR is elsewhere, so that DEST alone is a data
 *    directory. Modification times are kept (Last-Modified).
 * 4. The rest of the data directory as it is: the secret (mode 0600
 *    kept), node-id (a restore is the same node: its flush receipts are
 *    this node's; delete DEST/node-id to start another node from the copy;
 *    with ClickHouse it is left out, above), demo-keys, anything else. Lock files,
 *    temporaries and SQLite's -wal/-shm are not copied.
 *
 * Nothing here takes a lock the server's request path waits for.
 *
 * ALL OR NOTHING. The copy is written to DEST.partial-<16 hex> beside DEST,
 * every file and directory fsync'ed, then renamed to DEST (rename(2)
 * replaces an empty directory) and the parent fsync'ed: DEST never holds
 * a half copy. An error removes the partial directory; a kill leaves it
 * under its name that says so. DEST an empty mount point (no rename onto
 * it): the copy is written inside it, under a file BACKUP-INCOMPLETE
 * made first and removed last. */
#include "cli/cli.h"

#include "analytics/evlog.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "base/progress.h"
#include "base/timeutil.h"
#include "store/db.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER "BACKUP-INCOMPLETE"

struct bk {
    const struct config *cfg;
    char data[PATH_MAX];    /* the data directory, resolved */
    char storage[PATH_MAX]; /* the storage directory, resolved ("" if missing) */
    char db_file[PATH_MAX]; /* the SQLite file, resolved ("" if none) */
    char out[PATH_MAX];     /* where the copy is written */
    uint64_t files, bytes, total;
    uint64_t db_size, db_base; /* the database's share of the progress */
    int show;
    struct progress bar;
    char err[PATH_MAX + 256];
};

static void advance(struct bk *b, const char *note)
{
    if (b->show)
        progress_update(&b->bar, b->bytes < b->total ? b->bytes : b->total, note);
}

static int failed(struct bk *b, const char *what, const char *path)
{
    snprintf(b->err, sizeof(b->err), "%s %s: %s", what, path, strerror(errno));
    return PF_EIO;
}

static int sync_dir(struct bk *b, const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : failed(b, "cannot sync", path);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* One regular file, its mode and modification time kept, fsync'ed.
 * ENOENT: the file went away since the listing (a temporary renamed, a
 * purge): not copied, not an error. */
static int copy_file(struct bk *b, const char *src, const char *dst)
{
    struct stat sb;
    char buf[1 << 16];
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
    if (in < 0)
        return errno == ENOENT ? 0 : failed(b, "cannot read", src);
    if (fstat(in, &sb) != 0) {
        rc = failed(b, "cannot read", src);
        goto done;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, sb.st_mode & 07777);
    if (out < 0) {
        rc = failed(b, "cannot create", dst);
        goto done;
    }
    for (;;) {
        ssize_t k = read(in, buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = failed(b, "cannot read", src);
            goto done;
        }
        if (k == 0)
            break;
        for (ssize_t w = 0; w < k;) {
            ssize_t m = write(out, buf + w, (size_t)(k - w));
            if (m < 0 && errno != EINTR) {
                rc = failed(b, "cannot write", dst);
                goto done;
            }
            w += m > 0 ? m : 0;
        }
        b->bytes += (uint64_t)k;
    }
    const struct timespec times[2] = {sb.st_atim, sb.st_mtim};
    /* The umask narrowed the mode open() was given. */
    if (fchmod(out, sb.st_mode & 07777) != 0 || futimens(out, times) != 0 || fsync(out) != 0)
        rc = failed(b, "cannot write", dst);
    b->files++;
done:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

/* What the walk of the data directory leaves to the other steps, or never
 * copies. `path` is resolved, `name` its last component. */
static int skipped(const struct bk *b, const char *path, const char *name)
{
    size_t n = strlen(b->db_file);
    if (fsutil_is_temp(path) || strcmp(path, b->storage) == 0)
        return 1;
    if (n > 0 && strncmp(path, b->db_file, n) == 0 &&
        (path[n] == '\0' || strcmp(path + n, "-wal") == 0 || strcmp(path + n, "-shm") == 0 ||
         strcmp(path + n, "-journal") == 0))
        return 1;
    /* At the top: the event log (its own step), a storage directory that
     * is not the configured one (DEST/images is the storage's), locks. */
    size_t d = strlen(b->data);
    if (strncmp(path, b->data, d) == 0 && path[d] == '/' && strchr(path + d + 1, '/') == NULL)
        return strcmp(name, "events") == 0 || strcmp(name, "images") == 0 ||
               strcmp(name, ".batch.lock") == 0 ||
               (b->cfg->engine == CONFIG_ENGINE_CLICKHOUSE && strcmp(name, "node-id") == 0);
    return 0;
}

/* Copy the tree under src into dst (made), depth first, each directory
 * fsync'ed once filled. `dry`: only add up the bytes (b->total). */
static int copy_tree(struct bk *b, const char *src, const char *dst, int dry)
{
    DIR *d = opendir(src);
    struct stat sb;
    int rc = 0;
    if (d == NULL)
        return errno == ENOENT ? 0 : failed(b, "cannot read", src);
    if (!dry && stat(src, &sb) == 0 && mkdir(dst, sb.st_mode & 07777) != 0 && errno != EEXIST) {
        closedir(d);
        return failed(b, "cannot create", dst);
    }
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        char sp[PATH_MAX], dp[PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(sp, sizeof(sp), "%s/%s", src, e->d_name) >= (int)sizeof(sp) ||
            snprintf(dp, sizeof(dp), "%s/%s", dst, e->d_name) >= (int)sizeof(dp)) {
            errno = ENAMETOOLONG;
            rc = failed(b, "cannot copy", sp);
        } else if (skipped(b, sp, e->d_name) || lstat(sp, &sb) != 0) {
            continue; /* gone since the listing, or not ours to copy */
        } else if (S_ISDIR(sb.st_mode)) {
            rc = copy_tree(b, sp, dp, dry);
        } else if (S_ISREG(sb.st_mode) && dry) {
            b->total += (uint64_t)sb.st_size;
        } else if (S_ISREG(sb.st_mode)) {
            rc = copy_file(b, sp, dp);
            advance(b, NULL);
        } else if (S_ISLNK(sb.st_mode) && !dry) {
            char target[PATH_MAX];
            ssize_t n = readlink(sp, target, sizeof(target) - 1);
            if (n >= 0)
                target[n] = '\0';
            if (n < 0 || symlink(target, dp) != 0)
                rc = failed(b, "cannot copy the link", sp);
        }
    }
    closedir(d);
    return rc != 0 || dry ? rc : sync_dir(b, dst);
}

static void db_progress(void *ctx, int64_t done, int64_t total)
{
    struct bk *b = ctx;
    b->bytes = b->db_base + (total > 0 ? b->db_size * (uint64_t)done / (uint64_t)total : 0);
    advance(b, "database");
}

/* Step 1. *pg: PostgreSQL, told to the user. */
static int copy_database(struct bk *b)
{
    struct db *db = NULL;
    char err[512], path[PATH_MAX + 16];
    int schema = 0, rc = db_open_check(b->cfg->database, &db, &schema, err, sizeof(err));
    int sqlite = strncmp(b->cfg->database, "sqlite:", 7) == 0;
    if (rc == PF_ENOTFOUND && sqlite) {
        printf("database: none yet, nothing to copy\n");
        return 0;
    }
    if (rc != 0 && sqlite) {
        snprintf(b->err, sizeof(b->err), "database: %s", err);
        return rc;
    }
    snprintf(path, sizeof(path), "%s/pixflare.db", b->out);
    b->db_base = b->bytes;
    int opened = rc == 0;
    rc = opened ? db_backup(db, path, db_progress, b, err, sizeof(err)) : PF_EINVAL;
    db_close(db);
    if (rc == PF_EINVAL && !sqlite) {
        if (b->show)
            progress_clear(&b->bar);
        printf("database: PostgreSQL is not copied: back it up with 'pg_dump --format=custom "
               "%s%s--file=FILE' (restore: pg_restore into an empty database, and point "
               "PIXFLARE_DATABASE at it)\n",
               opened ? err : "", opened && err[0] ? " " : "");
        return 0;
    }
    if (rc != 0) {
        snprintf(b->err, sizeof(b->err), "database: %s", err);
        return rc;
    }
    b->files++;
    b->bytes = b->db_base + b->db_size;
    if (b->show)
        progress_clear(&b->bar);
    if (strcmp(b->db_file, "") != 0 && strncmp(b->db_file, b->data, strlen(b->data)) == 0 &&
        strcmp(b->db_file + strlen(b->data), "/pixflare.db") == 0)
        printf("database: pixflare.db, one snapshot\n");
    else
        printf("database: %s copied to DEST/pixflare.db, one snapshot (the default: start "
               "the copy without PIXFLARE_DATABASE)\n",
               b->cfg->database + 7);
    return 0;
}

/* Step 2, one dataset: ship.state and any other file first, then every
 * segment, day by day. */
static int copy_dataset(struct bk *b, const char *name, uint64_t *segments)
{
    char src[PATH_MAX], dst[PATH_MAX + 16], sp[PATH_MAX + 300], dp[PATH_MAX + 300];
    int64_t *days = NULL;
    size_t ndays = 0;
    snprintf(src, sizeof(src), "%s/events/%s", b->data, name);
    snprintf(dst, sizeof(dst), "%s/events/%s", b->out, name);
    int rc = fsutil_mkdirs(dst, 0755) == 0 ? 0 : failed(b, "cannot create", dst);
    DIR *d = rc == 0 ? opendir(src) : NULL;
    for (struct dirent *e; d != NULL && rc == 0 && (e = readdir(d)) != NULL;) {
        struct stat sb;
        snprintf(sp, sizeof(sp), "%s/%s", src, e->d_name);
        snprintf(dp, sizeof(dp), "%s/%s", dst, e->d_name);
        /* .lock is the writing server's; day directories come below. */
        if (e->d_name[0] != '.' && !fsutil_is_temp(sp) && stat(sp, &sb) == 0 && S_ISREG(sb.st_mode))
            rc = copy_file(b, sp, dp);
    }
    if (d != NULL)
        closedir(d);
    if (rc == 0 && evlog_list_days(b->data, name, &days, &ndays) != 0)
        rc = failed(b, "cannot list", src);
    for (size_t i = 0; rc == 0 && i < ndays; i++) {
        struct evlog_segment *segs = NULL;
        size_t n = 0;
        char date[11];
        timeutil_format_date(days[i] * 86400, date);
        if (evlog_list_segments(b->data, name, days[i], &segs, &n) != 0)
            rc = failed(b, "cannot list", src);
        for (size_t s = 0; rc == 0 && s < n; s++) {
            uint64_t bytes = 0;
            int r = evlog_segment_copy(b->data, name, days[i], segs[s].stem, b->out, &bytes);
            if (r != 0 && r != PF_ENOTFOUND) {
                snprintf(b->err, sizeof(b->err), "event segment %s/%s/%s: %s", name, date,
                         segs[s].stem, err_str(r));
                rc = r;
            }
            *segments += bytes > 0;
            b->files += bytes > 0;
            b->bytes += bytes;
            advance(b, date);
        }
        free(segs);
        snprintf(dp, sizeof(dp), "%s/%s", dst, date);
        if (rc == 0 && access(dp, F_OK) == 0)
            rc = sync_dir(b, dp);
    }
    free(days);
    return rc == 0 ? sync_dir(b, dst) : rc;
}

/* Step 2: every dataset under events/ (the configured one, and any an
 * earlier ANALYTICS_DATASET left). */
static int copy_events(struct bk *b)
{
    char src[PATH_MAX + 8], dst[PATH_MAX + 8];
    uint64_t segments = 0;
    int rc = 0, any = 0, spool = 0;
    snprintf(src, sizeof(src), "%s/events", b->data);
    snprintf(dst, sizeof(dst), "%s/events", b->out);
    DIR *d = opendir(src);
    if (d == NULL && errno == ENOENT)
        printf("events: none\n");
    if (d == NULL)
        return errno == ENOENT ? 0 : failed(b, "cannot read", src);
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        char sp[PATH_MAX + 300];
        struct stat sb;
        snprintf(sp, sizeof(sp), "%s/%s", src, e->d_name);
        if (e->d_name[0] == '.' || stat(sp, &sb) != 0 || !S_ISDIR(sb.st_mode))
            continue;
        if (b->cfg->engine == CONFIG_ENGINE_CLICKHOUSE && strcmp(e->d_name, b->cfg->dataset) == 0) {
            spool = 1; /* the node's spool: see the top of the file */
            continue;
        }
        rc = copy_dataset(b, e->d_name, &segments);
        any = 1;
    }
    closedir(d);
    if (rc == 0 && any)
        rc = sync_dir(b, dst);
    if (rc == 0) {
        if (b->show)
            progress_clear(&b->bar);
        printf("events: %" PRIu64 " segments (live ones up to their last whole record)\n",
               segments);
        if (spool)
            printf("events: ANALYTICS_ENGINE=clickhouse: the events are ClickHouse's (back it up "
                   "with its own tools); this node's spool of events not yet shipped is not "
                   "copied, nor its node-id: the copy starts as a new node\n");
    }
    return rc;
}

/* Step 3: the storage directory into DEST/images. */
static int copy_storage(struct bk *b)
{
    char dst[PATH_MAX + 8], def[PATH_MAX + 8];
    uint64_t before = b->files;
    snprintf(dst, sizeof(dst), "%s/images", b->out);
    snprintf(def, sizeof(def), "%s/images", b->data);
    if (b->storage[0] == '\0')
        return 0;
    int rc = copy_tree(b, b->storage, dst, 0);
    if (rc == 0 && b->show)
        progress_clear(&b->bar);
    if (rc == 0)
        printf("images: %" PRIu64 " files%s%s%s\n", b->files - before,
               strcmp(b->storage, def) == 0 ? "" : " from PIXFLARE_STORAGE_DIR=",
               strcmp(b->storage, def) == 0 ? "" : b->cfg->storage_dir,
               strcmp(b->storage, def) == 0
                   ? ""
                   : " copied to DEST/images (the default: start the copy without "
                     "PIXFLARE_STORAGE_DIR)");
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* DEST must not exist, or be an empty directory, and must not lie inside
 * what is copied. OUT: *in_place, DEST an empty mount point. Returns 0 or
 * the exit code, the reason printed. */
static int check_dest(struct bk *b, const char *dest, int *in_place)
{
    struct stat sb, pb;
    char parent[PATH_MAX], real[PATH_MAX];
    const char *why = NULL;
    snprintf(parent, sizeof(parent), "%s", dest);
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        snprintf(parent, sizeof(parent), ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    *in_place = 0;
    if (stat(dest, &sb) == 0) {
        DIR *d = S_ISDIR(sb.st_mode) ? opendir(dest) : NULL;
        struct dirent *e = NULL;
        while (d != NULL && (e = readdir(d)) != NULL &&
               (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0))
            ;
        if (!S_ISDIR(sb.st_mode))
            why = "exists and is not a directory";
        else if (d == NULL)
            why = strerror(errno);
        else if (e != NULL)
            why = "is not empty (a backup goes to a new or empty directory)";
        if (d != NULL)
            closedir(d);
        *in_place = why == NULL && stat(parent, &pb) == 0 && pb.st_dev != sb.st_dev;
    } else if (errno != ENOENT) {
        why = strerror(errno);
    } else if (stat(parent, &pb) != 0 || !S_ISDIR(pb.st_mode)) {
        why = "its parent directory does not exist";
    }
    if (why == NULL && realpath(parent, real) != NULL) {
        size_t d = strlen(b->data), s = strlen(b->storage);
        if ((strncmp(real, b->data, d) == 0 && (real[d] == '/' || real[d] == '\0')) ||
            (s > 0 && strncmp(real, b->storage, s) == 0 && (real[s] == '/' || real[s] == '\0')))
            why = "is inside the data or storage directory it would copy";
    }
    if (why != NULL) {
        fprintf(stderr, "pixflare backup: DEST %s: %s\n", dest, why);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static int run_backup(struct bk *b, const char *dest, int in_place)
{
    char path[PATH_MAX + 32];
    uint64_t part = 0;
    int rc = 0;
    if (in_place) {
        snprintf(b->out, sizeof(b->out), "%s", dest);
        snprintf(path, sizeof(path), "%s/" MARKER, dest);
        rc = fsutil_write_atomic(path, "a backup is being written here, or failed\n", 42, 0644);
    } else {
        rc = fsutil_random(&part, sizeof(part));
        snprintf(b->out, sizeof(b->out), "%s.partial-%016" PRIx64, dest, part);
        if (rc == 0 && mkdir(b->out, 0700) != 0)
            rc = failed(b, "cannot create", b->out);
    }
    if (rc != 0) {
        if (b->err[0] == '\0')
            snprintf(b->err, sizeof(b->err), "cannot write to %s: %s", dest, err_str(rc));
        return rc;
    }
    /* The order is the consistency argument at the top of the file. */
    rc = copy_database(b);
    if (rc == 0)
        rc = copy_events(b);
    if (rc == 0)
        rc = copy_storage(b);
    if (rc == 0)
        rc = copy_tree(b, b->data, b->out, 0);
    struct stat sb;
    if (rc == 0 && !in_place && stat(b->data, &sb) == 0 && chmod(b->out, sb.st_mode & 07777) != 0)
        rc = failed(b, "cannot set the mode of", b->out);
    if (rc == 0 && in_place && (unlink(path) != 0 || sync_dir(b, dest) != 0))
        rc = failed(b, "cannot remove", path);
    if (rc == 0 && !in_place && (rename(b->out, dest) != 0 || fsutil_sync_parent(dest) != 0))
        rc = failed(b, "cannot rename the copy to", dest);
    if (rc != 0 && !in_place)
        nftw(b->out, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int cmd_backup(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct bk *b = NULL;
    const char *dest = NULL;
    char clean[PATH_MAX];
    int in_place = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage_error("backup", "unknown flag '%s'", argv[i]);
        if (dest != NULL)
            return cli_usage_error("backup", "unexpected argument '%s'", argv[i]);
        dest = argv[i];
    }
    if (dest == NULL || dest[0] == '\0')
        return cli_usage_error("backup", "%s", "DEST is missing");
    int rc = cli_load_config(config_file, &cfg, 0);
    if (rc != 0)
        return rc;
    rc = 1;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        goto done;
    b->cfg = &cfg;
    snprintf(clean, sizeof(clean), "%s", dest);
    for (size_t n = strlen(clean); n > 1 && clean[n - 1] == '/'; n--)
        clean[n - 1] = '\0';
    if (realpath(cfg.data_dir, b->data) == NULL) {
        fprintf(stderr, "pixflare backup: PIXFLARE_DATA_DIR=%s: %s\n", cfg.data_dir,
                strerror(errno));
        goto done;
    }
    if (realpath(cfg.storage_dir, b->storage) == NULL)
        b->storage[0] = '\0'; /* nothing imported yet */
    if (strncmp(cfg.database, "sqlite:", 7) == 0 && realpath(cfg.database + 7, b->db_file) == NULL)
        b->db_file[0] = '\0';
    rc = check_dest(b, clean, &in_place);
    if (rc != 0)
        goto done;
    int64_t t0 = timeutil_mono_ms();
    struct stat sb;
    char events[PATH_MAX + 8];
    if (b->db_file[0] != '\0' && stat(b->db_file, &sb) == 0)
        b->db_size = (uint64_t)sb.st_size;
    b->total = b->db_size;
    snprintf(events, sizeof(events), "%s/events", b->data);
    copy_tree(b, events, "", 1);
    if (b->storage[0] != '\0')
        copy_tree(b, b->storage, "", 1);
    copy_tree(b, b->data, "", 1);
    b->show = isatty(STDERR_FILENO);
    if (b->show)
        progress_begin(&b->bar, stderr, "backup", b->total);
    rc = run_backup(b, clean, in_place) == 0 ? 0 : 1;
    if (b->show)
        progress_end(&b->bar);
    if (rc != 0) {
        fprintf(stderr, "pixflare backup: %s; %s\n", b->err,
                in_place ? "DEST is incomplete (see " MARKER " there)" : "nothing was written");
        goto done;
    }
    if (cfg.secret != NULL)
        printf("secret: PIXFLARE_SECRET is set (no secret file is copied): start the copy "
               "with the same PIXFLARE_SECRET\n");
    printf("backup: %" PRIu64 " files, %" PRIu64 " bytes in %.1f s: %s\n", b->files, b->bytes,
           (double)(timeutil_mono_ms() - t0) / 1000.0, clean);
done:
    free(b);
    config_free(&cfg);
    return rc;
}
