/* db_sqlite.c - the SQLite backend of db.h, part one: the schema and its
 * migrations, the connection, the image catalog, and the operations table
 * db_open() reaches the backend through (db_sqlite_write.c and
 * db_sqlite_read.c hold the rest).
 *
 * The database runs in WAL mode so the server's readers never block an
 * import (or, later, the analytics writers), with synchronous=NORMAL, which in
 * WAL mode is durable across application crashes and loses at most the last
 * transactions on power loss. Migrations are an append-only list: entry i
 * takes the schema from version i to i+1, all inside one transaction. */
#include "store/db_sqlite_int.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const migrations[] = {
    /* 0 -> 1: the image catalog. */
    "CREATE TABLE images ("
    "  id TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  album TEXT NOT NULL,"
    "  filename TEXT NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  size_bytes INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL," /* ISO-8601 UTC, as the seed's meta rows */
    "  sha256 TEXT NOT NULL,"
    "  width INTEGER NOT NULL,"
    "  height INTEGER NOT NULL,"
    "  UNIQUE (owner, album, filename)"
    ");"
    "CREATE INDEX images_owner ON images (owner);",

    /* 1 -> 2: the analytics tables of SPEC.md. `owner` is the keyed owner
     * hash (32 hex characters) as in the events, or '' for a response that
     * no known owner can be charged with; dates are YYYY-MM-DD (UTC). The
     * primary keys are the realtime and batch writers' upsert keys and lead
     * with (owner, date), the API's range scans. */
    "CREATE TABLE analytics_daily ("
    "  owner TEXT NOT NULL,"
    "  date TEXT NOT NULL,"
    "  image_id TEXT NOT NULL,"
    "  variant TEXT NOT NULL,"
    "  country TEXT NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  bandwidth_bytes INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (owner, date, image_id, variant, country)"
    ") WITHOUT ROWID;"
    "CREATE TABLE analytics_monthly ("
    "  owner TEXT NOT NULL,"
    "  year_month TEXT NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  bandwidth_bytes INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (owner, year_month)"
    ") WITHOUT ROWID;"
    "CREATE TABLE analytics_status_daily ("
    "  owner TEXT NOT NULL,"
    "  date TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (owner, date, status)"
    ") WITHOUT ROWID;"
    "CREATE TABLE analytics_meta ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL"
    ");",

    /* 2 -> 3: batch aggregation and retention.
     * - analytics_owner_daily: each owner's totals per day, written in the
     *   same transactions as analytics_daily. A month's row is recomputed
     *   from its (at most 31) rows here, never from the month's millions of
     *   daily rows, and stays right after the cleanup removed some of them:
     *   this table, like analytics_monthly, is kept (it holds no image or
     *   country detail). It also lists the owners with analytics_daily rows
     *   on a date, so the batch and the cleanup reach a date's rows by
     *   (owner, date) ranges of the primary key: an index on
     *   analytics_daily(date) would double the cost of every insert.
     * - Indexes on `date` for the small tables.
     * - analytics_batch_days: the dates the batch has aggregated. Realtime
     *   counts that arrive for such a date are dropped (the batch counted
     *   their events already), and the scheduler catches up the dates
     *   missing here. */
    "CREATE INDEX analytics_status_daily_date ON analytics_status_daily (date);"
    "CREATE TABLE analytics_owner_daily ("
    "  owner TEXT NOT NULL,"
    "  date TEXT NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  bandwidth_bytes INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (owner, date)"
    ") WITHOUT ROWID;"
    "CREATE INDEX analytics_owner_daily_date ON analytics_owner_daily (date);"
    "INSERT INTO analytics_owner_daily SELECT owner, date, SUM(requests), SUM(bandwidth_bytes) "
    "  FROM analytics_daily GROUP BY owner, date;"
    "CREATE TABLE analytics_batch_days ("
    "  date TEXT PRIMARY KEY,"
    "  events INTEGER NOT NULL,"
    "  daily_rows INTEGER NOT NULL,"
    "  status_rows INTEGER NOT NULL,"
    "  drift INTEGER NOT NULL,"
    "  aggregated_at TEXT NOT NULL"
    ");",

    /* 3 -> 4: the HTTP API.
     * - api_keys: a key is "pfk_" + id + "_" + secret (auth.h); only its
     *   keyed hash is kept. `owner` is the owner's name (the API answers
     *   with it), times are ISO-8601 UTC, NULL for never.
     * - analytics_day_versions: a counter per date, raised in the same
     *   transaction by every write to the date's analytics_daily rows (the
     *   realtime writer, the batch, the cleanup). The API's in-memory
     *   copies of a date's rows (aq.h) are kept as long as the date's
     *   version has not moved, in this process or any other. Rows are
     *   never deleted: a version never comes back. */
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL,"
    "  scopes TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  expires_at TEXT,"
    "  last_used_at TEXT,"
    "  revoked_at TEXT"
    ");"
    "CREATE INDEX api_keys_owner ON api_keys (owner);"
    "CREATE TABLE analytics_day_versions ("
    "  date TEXT PRIMARY KEY,"
    "  version INTEGER NOT NULL"
    ") WITHOUT ROWID;",

    /* 4 -> 5: analytics_flushes, the receipts of realtime flushes
     * (db_counts_add()'s flush_id, a node's id and sequence number) with
     * the Unix time they were written, so that a flush retried after an
     * unknown outcome counts once. Pruned by the cleanup after a week. */
    "CREATE TABLE analytics_flushes ("
    "  id TEXT PRIMARY KEY,"
    "  at INTEGER NOT NULL"
    ");",

    /* 5 -> 6: job_runs, the scheduled jobs' runs (db_job_begin()): one row
     * per job and slot (the cron fire time, Unix seconds), naming the node
     * that ran it last (config_node_id()) and how many times it was
     * started; finished_at and ok stay NULL until the run ends, so a slot
     * whose runner died is told from one that ran. Times are Unix seconds
     * of the database's clock. Pruned by db_job_end() after a week. */
    "CREATE TABLE job_runs ("
    "  job TEXT NOT NULL,"
    "  slot INTEGER NOT NULL,"
    "  node TEXT NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER,"
    "  ok INTEGER,"
    "  PRIMARY KEY (job, slot)"
    ");",

    /* 6 -> 7: hourly series, client classes, unique clients (issue 20).
     * - bot_requests, bot_bandwidth_bytes: the part of requests and
     *   bandwidth_bytes that came from clients told to be bots (db.h's
     *   DB_CLIENT_BOT); requests stays every client's total.
     * - analytics_hourly: per owner and hour (Unix time / 3600, UTC), each
     *   image's counts and, as image_id '', the owner's total of the hour.
     *   The key leads with (owner, image_id, hour), so the API's one read
     *   of it (an image's, or the totals', run of hours) is one range; the
     *   index on hour serves the retention and the batch's replacement of
     *   a date's 24 hours.
     * - analytics_clients_daily: requests and bytes per owner, date, image
     *   ('' the owner's total) and client class ('human', 'bot',
     *   'preview').
     * - analytics_uniques_daily: a HyperLogLog sketch of the distinct
     *   clients per owner, date and image ('' the owner's whole day), as
     *   hll_encode() writes it, with its estimate beside it so that reads
     *   never decode. A rowid table (sketches reach 12 KiB, too large for
     *   WITHOUT ROWID's b-tree cells), `uniques` before `registers` so a
     *   read of the estimate stops before the sketch's overflow pages.
     * - analytics_salts: the day's random salt of the client hash, made by
     *   the first node to ask and purged after the day (db_salt_get());
     *   connections run with secure_delete, so a purged salt is zeroed in
     *   the file, not left in a free page. */
    "ALTER TABLE analytics_daily ADD COLUMN bot_requests INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE analytics_daily ADD COLUMN bot_bandwidth_bytes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE analytics_owner_daily ADD COLUMN bot_requests INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE analytics_owner_daily ADD COLUMN bot_bandwidth_bytes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE analytics_status_daily ADD COLUMN bot_requests INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE analytics_hourly ("
    "  owner TEXT NOT NULL,"
    "  hour INTEGER NOT NULL,"
    "  image_id TEXT NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  bandwidth_bytes INTEGER NOT NULL DEFAULT 0,"
    "  bot_requests INTEGER NOT NULL DEFAULT 0,"
    "  bot_bandwidth_bytes INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (owner, image_id, hour)"
    ") WITHOUT ROWID;"
    "CREATE INDEX analytics_hourly_hour ON analytics_hourly (hour);"
    "CREATE TABLE analytics_clients_daily ("
    "  owner TEXT NOT NULL,"
    "  date TEXT NOT NULL,"
    "  image_id TEXT NOT NULL,"
    "  client TEXT NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  bandwidth_bytes INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (owner, date, image_id, client)"
    ") WITHOUT ROWID;"
    "CREATE INDEX analytics_clients_daily_date ON analytics_clients_daily (date);"
    /* The API's read of one image's (or the owner's) classes over a range:
     * one range of this covering index; the key's (owner, date, ...)
     * would walk every image's rows of every date (50 ms for 90 days of
     * 3,400 images; 2.7 ms with it). */
    "CREATE INDEX analytics_clients_daily_image ON analytics_clients_daily "
    "(owner, image_id, date, client, requests, bandwidth_bytes);"
    "CREATE TABLE analytics_uniques_daily ("
    "  owner TEXT NOT NULL,"
    "  date TEXT NOT NULL,"
    "  image_id TEXT NOT NULL,"
    "  uniques INTEGER NOT NULL,"
    "  registers BLOB NOT NULL,"
    "  PRIMARY KEY (owner, date, image_id)"
    ");"
    "CREATE INDEX analytics_uniques_daily_date ON analytics_uniques_daily (date);"
    /* The API's reads of one image's (or the owner's, image_id '') estimates
     * over a range: one range of this covering index, where the key's
     * (owner, date, image_id) would walk every image of every date. */
    "CREATE INDEX analytics_uniques_daily_image ON analytics_uniques_daily "
    "(owner, image_id, date, uniques);"
    "CREATE TABLE analytics_salts ("
    "  date TEXT PRIMARY KEY,"
    "  salt BLOB NOT NULL,"
    "  created_at TEXT NOT NULL"
    ");",
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

static const struct db_ops db_sqlite_ops;
static void db_sqlite_set_busy_timeout(struct db *base, int ms);
static void db_sqlite_close(struct db *base);

static int migrate(sqlite3 *conn, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int version = 0, rc = PF_EDB;
    char *msg = NULL;
    err[0] = '\0';
    /* Up to date (the usual case): no write lock, so that opening the
     * database never waits for, or fails on, another connection's writes. */
    if (sqlite3_prepare_v2(conn, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == MIGRATION_COUNT) {
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_exec(conn, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
        goto done;
    if (sqlite3_prepare_v2(conn, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto done;
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st); /* an open statement would lock tables a migration drops */
    st = NULL;
    if (version > MIGRATION_COUNT) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this build knows (%d); "
                 "upgrade pixflare",
                 version, MIGRATION_COUNT);
        goto done;
    }
    for (int v = version; v < MIGRATION_COUNT; v++)
        if (sqlite3_exec(conn, migrations[v], NULL, NULL, &msg) != SQLITE_OK)
            goto done;
    if (version < MIGRATION_COUNT) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", MIGRATION_COUNT);
        if (sqlite3_exec(conn, pragma, NULL, NULL, &msg) != SQLITE_OK)
            goto done;
    }
    if (sqlite3_exec(conn, "COMMIT", NULL, NULL, &msg) == SQLITE_OK)
        rc = 0;
done:
    if (rc != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "database migration failed: %s",
                     msg ? msg : sqlite3_errmsg(conn));
        sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_free(msg);
    sqlite3_finalize(st);
    return rc;
}

/* db_open_check()'s test of the schema, which it leaves as it is: the
 * version must be this build's. OUT: *version. */
static int check_schema(sqlite3 *conn, const char *path, int *version, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = PF_EDB;
    if (sqlite3_prepare_v2(conn, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errlen, "cannot read database %s: %s", path, sqlite3_errmsg(conn));
        goto done;
    }
    *version = sqlite3_column_int(st, 0);
    rc = *version == MIGRATION_COUNT ? 0 : *version == 0 ? PF_ENOTFOUND : PF_ECONFLICT;
    if (*version == 0)
        snprintf(err, errlen, "%s holds no Pixflare schema: 'pixflare serve' makes it", path);
    else if (*version < MIGRATION_COUNT)
        snprintf(err, errlen,
                 "%s has schema version %d, older than this build's (%d): 'pixflare serve' "
                 "migrates it at start",
                 path, *version, MIGRATION_COUNT);
    else if (*version > MIGRATION_COUNT)
        snprintf(err, errlen,
                 "%s has schema version %d, newer than this build knows (%d): upgrade pixflare",
                 path, *version, MIGRATION_COUNT);
done:
    sqlite3_finalize(st);
    return rc;
}

int db_sqlite_open(const char *sqlite_path, int *check, struct db **out, char *err, size_t errlen)
{
    struct db_sqlite *db = calloc(1, sizeof(*db));
    char *msg = NULL;
    char dir[PATH_MAX];
    struct stat sb;
    int rc = PF_EDB;
    if (db == NULL)
        return PF_ENOMEM;
    db->base.ops = &db_sqlite_ops;
    /* The database may live outside the data directory: make its folder
     * (a check makes nothing: no file, no folder). */
    snprintf(dir, sizeof(dir), "%s", sqlite_path);
    char *slash = strrchr(dir, '/');
    if (check != NULL && stat(sqlite_path, &sb) != 0) {
        rc = errno == ENOENT ? PF_ENOTFOUND : PF_EDB;
        snprintf(err, errlen, "no database at %s: %s", sqlite_path, strerror(errno));
        goto fail;
    } else if (check == NULL && slash != NULL && slash != dir) {
        *slash = '\0';
        fsutil_mkdirs(dir, 0755);
    }
    if (sqlite3_open_v2(sqlite_path, &db->conn,
                        SQLITE_OPEN_READWRITE | (check ? 0 : SQLITE_OPEN_CREATE) |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", sqlite_path,
                 db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
        goto fail;
    }
    db_sqlite_set_busy_timeout(&db->base, 5000);
    /* The journal mode is the file's, set when it is made; a check only
     * forbids itself to write. secure_delete zeroes what a write removes
     * (a purged salt: db_salt_purge_before()) instead of leaving it in a
     * free page or slot of the file; it is a connection's setting, so every
     * connection sets it (cost: see docs/ANALYTICS.md). */
    if (sqlite3_exec(db->conn,
                     check ? "PRAGMA query_only=ON;"
                           : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                             "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", sqlite_path, msg);
        goto fail;
    }
    if (check != NULL && (rc = check_schema(db->conn, sqlite_path, check, err, errlen)) != 0)
        goto fail;
    rc = PF_EDB;
    if (check == NULL && migrate(db->conn, err, errlen) != 0)
        goto fail;
    if (sqlite3_prepare_v3(db->conn,
                           "INSERT INTO images (id, owner, album, filename, content_type, "
                           "size_bytes, created_at, sha256, width, height) VALUES "
                           "(?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', ?, 'unixepoch'), "
                           "?, ?, ?)",
                           -1, SQLITE_PREPARE_PERSISTENT, &db->insert_image, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db->conn,
                           "SELECT rowid, id, owner, album, filename, content_type, size_bytes, "
                           "CAST(strftime('%s', created_at) AS INTEGER), sha256, width, height "
                           "FROM images WHERE owner = ? AND album = ? AND filename = ?",
                           -1, SQLITE_PREPARE_PERSISTENT, &db->image_by_path, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db->conn,
                           "SELECT rowid, id, owner, album, filename, content_type, size_bytes, "
                           "CAST(strftime('%s', created_at) AS INTEGER), sha256, width, height "
                           "FROM images WHERE rowid > ? ORDER BY rowid",
                           -1, SQLITE_PREPARE_PERSISTENT, &db->image_scan, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot prepare statements on %s: %s", sqlite_path,
                 sqlite3_errmsg(db->conn));
        goto fail;
    }
    *out = &db->base;
    return 0;
fail:
    sqlite3_free(msg);
    db_sqlite_close(&db->base);
    return rc;
}

static void db_sqlite_set_busy_timeout(struct db *base, int ms)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    db->busy_ms = ms;
    sqlite3_busy_timeout(db->conn, ms);
}

static void db_sqlite_close(struct db *base)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    if (db == NULL)
        return;
    sqlite3_finalize(db->insert_image);
    sqlite3_finalize(db->image_by_path);
    sqlite3_finalize(db->image_scan);
    sqlite3_finalize(db->add_daily);
    sqlite3_finalize(db->add_owner_day);
    sqlite3_finalize(db->add_monthly);
    sqlite3_finalize(db->add_status);
    sqlite3_finalize(db->day_done);
    sqlite3_finalize(db->bump);
    sqlite3_finalize(db->receipt);
    sqlite3_finalize(db->add_hourly);
    sqlite3_finalize(db->add_client);
    for (int i = 0; i < DBQ_COUNT; i++)
        sqlite3_finalize(db->read[i]);
    sqlite3_close(db->conn);
    free(db);
}

static int db_sqlite_image_insert(struct db *base, const struct db_image *img)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = db->insert_image;
    sqlite3_bind_text(st, 1, img->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, img->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, img->album, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, img->filename, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, img->content_type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, img->size_bytes);
    sqlite3_bind_int64(st, 7, img->created_at);
    sqlite3_bind_text(st, 8, img->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, img->width);
    sqlite3_bind_int(st, 10, img->height);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT)
        return PF_EEXISTS;
    return PF_EDB;
}

void db_sqlite_copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

void db_sqlite_read_image(sqlite3_stmt *st, struct db_image *img)
{
    img->seq = sqlite3_column_int64(st, 0);
    db_sqlite_copy_col(img->id, sizeof(img->id), st, 1);
    db_sqlite_copy_col(img->owner, sizeof(img->owner), st, 2);
    db_sqlite_copy_col(img->album, sizeof(img->album), st, 3);
    db_sqlite_copy_col(img->filename, sizeof(img->filename), st, 4);
    db_sqlite_copy_col(img->content_type, sizeof(img->content_type), st, 5);
    img->size_bytes = sqlite3_column_int64(st, 6);
    img->created_at = sqlite3_column_int64(st, 7);
    db_sqlite_copy_col(img->sha256, sizeof(img->sha256), st, 8);
    img->width = sqlite3_column_int(st, 9);
    img->height = sqlite3_column_int(st, 10);
}

static int db_sqlite_image_by_path(struct db *base, const char *owner, const char *album,
                                   const char *filename, struct db_image *out)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = db->image_by_path;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, album, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, filename, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        db_sqlite_read_image(st, out);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? PF_ENOTFOUND : PF_EDB;
}

static int db_sqlite_image_scan(struct db *base, int64_t after,
                                int (*fn)(void *ctx, const struct db_image *img), void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = db->image_scan;
    struct db_image img;
    int rc = 0, step;
    sqlite3_bind_int64(st, 1, after);
    for (;;) {
        step = sqlite3_step(st);
        if (step != SQLITE_ROW)
            break;
        db_sqlite_read_image(st, &img);
        rc = fn(ctx, &img);
        if (rc != 0)
            break;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = PF_EDB;
    sqlite3_reset(st);
    return rc;
}

int db_sqlite_step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : PF_EDB;
}

/* The batch and cleanup statements run a few times per date: prepared per
 * use, not kept (db_sqlite_prep). */
int db_sqlite_prep(struct db_sqlite *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(db->conn, sql, -1, st, NULL) == SQLITE_OK ? 0 : PF_EDB;
}

void db_sqlite_now_iso(char out[21])
{
    timeutil_format_iso8601((int64_t)time(NULL), out);
}

int db_sqlite_exec_text(struct db_sqlite *db, int64_t *changes, const char *sql, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc = db_sqlite_prep(db, sql, &st);
    va_start(ap, sql);
    for (int i = 1; rc == 0; i++) {
        const char *v = va_arg(ap, const char *);
        if (v == NULL)
            break;
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    }
    va_end(ap);
    if (rc == 0)
        rc = db_sqlite_step_done(st);
    if (rc == 0 && changes != NULL)
        *changes = sqlite3_changes64(db->conn);
    sqlite3_finalize(st);
    return rc;
}

/* ---- Copying (db_table_*) ---- */

/* The largest binary value a copy carries (a sketch: HLL_ENCODED_MAX). */
#define BLOB_MAX (64 * 1024)

static int db_sqlite_table_count_rows(struct db *base, const struct db_table *t, int64_t *rows)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    char sql[128];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", t->name);
    int rc = db_sqlite_prep(db, sql, &st);
    if (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        *rows = sqlite3_column_int64(st, 0);
    else
        rc = PF_EDB;
    sqlite3_finalize(st);
    return rc;
}

static int db_sqlite_table_rows(struct db *base, const struct db_table *t, db_row_fn fn, void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    char sql[1024], cols[512];
    const char *v[16];
    sqlite3_stmt *st = NULL;
    int rc = db_table_select(t, "hex(%s)", cols, sizeof(cols)), step = SQLITE_DONE;
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s ORDER BY %s", cols, t->name,
             DB_TABLE_ORDER(t, "rowid"));
    if (rc == 0 && (t->ncols > 16 || db_sqlite_prep(db, sql, &st) != 0))
        rc = PF_EDB;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < t->ncols; i++)
            v[i] = (const char *)sqlite3_column_text(st, i);
        rc = fn(ctx, v);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = PF_EDB;
    sqlite3_finalize(st);
    return rc;
}

static int db_sqlite_table_insert(struct db *base, const struct db_table *t,
                                  const char *const *values, size_t n, char *err, size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    char sql[512];
    sqlite3_stmt *st = NULL;
    /* Text into columns of INTEGER affinity is stored as an integer. */
    int len = snprintf(sql, sizeof(sql), "INSERT INTO %s (%s) VALUES (?", t->name, t->columns);
    for (int i = 1; i < t->ncols; i++)
        len += snprintf(sql + len, sizeof(sql) - (size_t)len, ", ?");
    snprintf(sql + len, sizeof(sql) - (size_t)len, ")");
    /* The binary column comes as hex text (db_table_select()). */
    uint8_t *bin = t->hex_col > 0 ? malloc(BLOB_MAX) : NULL;
    int rc = t->hex_col > 0 && bin == NULL ? PF_ENOMEM : db_sqlite_prep(db, sql, &st);
    for (size_t r = 0; rc == 0 && r < n; r++) {
        for (int i = 0; rc == 0 && i < t->ncols; i++) {
            const char *v = values[r * (size_t)t->ncols + (size_t)i];
            size_t blen = 0;
            if (v == NULL)
                sqlite3_bind_null(st, i + 1);
            else if (i + 1 != t->hex_col)
                sqlite3_bind_text(st, i + 1, v, -1, SQLITE_STATIC);
            else if ((rc = db_hex_decode(v, bin, BLOB_MAX, &blen)) == 0)
                sqlite3_bind_blob(st, i + 1, bin, (int)blen, SQLITE_TRANSIENT);
        }
        if (rc == 0)
            rc = db_sqlite_step_done(st);
    }
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", t->name,
                 rc == PF_EINVAL   ? "a binary value is not hex"
                 : rc == PF_ENOMEM ? "out of memory"
                                   : sqlite3_errmsg(db->conn));
    sqlite3_finalize(st);
    free(bin);
    return rc;
}

static int db_sqlite_tx_begin(struct db *base)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    return sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : PF_EDB;
}

static int db_sqlite_tx_commit(struct db *base, char *err, size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    if (sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    snprintf(err, errlen, "%s", sqlite3_errmsg(db->conn));
    return PF_EDB;
}

static void db_sqlite_tx_rollback(struct db *base)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

/* SQLite runs in this process: its clock is the machine's. */
static int db_sqlite_now_ms(struct db *base, int64_t *ms)
{
    struct timespec ts;
    (void)base;
    clock_gettime(CLOCK_REALTIME, &ts);
    *ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

/* The online backup API copies pages from a connection; run inside one
 * read transaction of ours, every step reads the same snapshot (WAL mode:
 * the writers go on, and the backup never restarts because of them).
 * Without it a step after another connection's commit would start over,
 * and a busy server could keep a large copy from ever ending. */
#define BACKUP_STEP_PAGES 256

static int db_sqlite_backup(struct db *base, const char *dest, db_backup_progress_fn progress,
                            void *ctx, char *err, size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3 *out = NULL;
    sqlite3_backup *bk = NULL;
    sqlite3_stmt *st = NULL;
    int rc = PF_EDB, step = SQLITE_OK, in_tx = 0;
    /* O_EXCL: a file left there is not ours to overwrite. */
    int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", dest, strerror(errno));
        return errno == EEXIST ? PF_EEXISTS : PF_EIO;
    }
    close(fd);
    if (sqlite3_exec(db->conn, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        db_sqlite_prep(db, "SELECT count(*) FROM sqlite_master", &st) != 0 ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errlen, "cannot read the database: %s", sqlite3_errmsg(db->conn));
        goto done;
    }
    sqlite3_finalize(st); /* the transaction, and so its snapshot, stays */
    st = NULL;
    in_tx = 1;
    if (sqlite3_open_v2(dest, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        (bk = sqlite3_backup_init(out, "main", db->conn, "main")) == NULL) {
        snprintf(err, errlen, "%s: %s", dest, out ? sqlite3_errmsg(out) : "out of memory");
        goto done;
    }
    while ((step = sqlite3_backup_step(bk, BACKUP_STEP_PAGES)) == SQLITE_OK ||
           step == SQLITE_BUSY || step == SQLITE_LOCKED) {
        if (step != SQLITE_OK)
            sqlite3_sleep(10);
        else if (progress != NULL)
            progress(ctx, sqlite3_backup_pagecount(bk) - sqlite3_backup_remaining(bk),
                     sqlite3_backup_pagecount(bk));
    }
    if (progress != NULL && step == SQLITE_DONE)
        progress(ctx, sqlite3_backup_pagecount(bk), sqlite3_backup_pagecount(bk));
    /* finish commits the copy on `out` (synchronous=FULL, the default of a
     * connection in rollback mode: synced); its code is the step's error. */
    if (sqlite3_backup_finish(bk) != SQLITE_OK || step != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", dest, sqlite3_errmsg(out));
        goto done;
    }
    bk = NULL;
    if (sqlite3_close(out) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot close", dest);
        goto done;
    }
    out = NULL;
    /* The copy's header says WAL, as the source's: closing left no -wal. */
    fd = open(dest, O_RDONLY | O_CLOEXEC);
    rc = fd >= 0 && fsync(fd) == 0 ? 0 : PF_EIO;
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", dest, strerror(errno));
    if (fd >= 0)
        close(fd);
done:
    if (bk != NULL)
        sqlite3_backup_finish(bk);
    sqlite3_close(out);
    sqlite3_finalize(st);
    if (in_tx || !sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc != 0)
        unlink(dest);
    return rc;
}

static const struct db_ops db_sqlite_ops = {
    .name = "sqlite",
    .shared = 0,
    .close = db_sqlite_close,
    .set_busy_timeout = db_sqlite_set_busy_timeout,
    .image_insert = db_sqlite_image_insert,
    .image_by_path = db_sqlite_image_by_path,
    .image_scan = db_sqlite_image_scan,
    .counts_add = db_sqlite_counts_add,
    .batch_replace_day = db_sqlite_batch_replace_day,
    .sketches_merge = db_sqlite_sketches_merge,
    .salt_get = db_sqlite_salt_get,
    .salt_purge_before = db_sqlite_salt_purge_before,
    .batch_day_done = db_sqlite_batch_day_done,
    .flush_nodes = db_sqlite_flush_nodes,
    .day_requests = db_sqlite_day_requests,
    .meta_get = db_sqlite_meta_get,
    .meta_set = db_sqlite_meta_set,
    .cleanup_before = db_sqlite_cleanup_before,
    .cleanup_more_before = db_sqlite_cleanup_more_before,
    .job_begin = db_sqlite_job_begin,
    .job_end = db_sqlite_job_end,
    .key_insert = db_sqlite_key_insert,
    .key_get = db_sqlite_key_get,
    .key_scan = db_sqlite_key_scan,
    .key_revoke = db_sqlite_key_revoke,
    .key_touch = db_sqlite_key_touch,
    .read_begin = db_sqlite_read_begin,
    .read_end = db_sqlite_read_end,
    .day_versions = db_sqlite_day_versions,
    .owner_days = db_sqlite_owner_days,
    .owner_statuses = db_sqlite_owner_statuses,
    .segment_rows = db_sqlite_segment_rows,
    .image_rows = db_sqlite_image_rows,
    .daily_page = db_sqlite_daily_page,
    .owner_hours = db_sqlite_owner_hours,
    .owner_clients = db_sqlite_owner_clients,
    .owner_uniques = db_sqlite_owner_uniques,
    .image_uniques = db_sqlite_image_uniques,
    .image_by_id = db_sqlite_image_by_id,
    .rate_take = NULL,
    .table_count_rows = db_sqlite_table_count_rows,
    .table_rows = db_sqlite_table_rows,
    .table_insert = db_sqlite_table_insert,
    .tx_begin = db_sqlite_tx_begin,
    .tx_commit = db_sqlite_tx_commit,
    .tx_rollback = db_sqlite_tx_rollback,
    .now_ms = db_sqlite_now_ms,
    .backup = db_sqlite_backup,
};
