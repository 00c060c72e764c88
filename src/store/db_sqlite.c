/* db_sqlite.c - the SQLite backend of db.h.
 *
 * The database runs in WAL mode so the server's readers never block an
 * import (or, later, the analytics writers), with synchronous=NORMAL, which in
 * WAL mode is durable across application crashes and loses at most the last
 * transactions on power loss. Migrations are an append-only list: entry i
 * takes the schema from version i to i+1, all inside one transaction. */
#include "store/db.h"
#include "store/db_sqlite.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/timeutil.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Raise a date's version: its analytics_daily rows changed. */
#define BUMP_SQL                                                                                   \
    "INSERT INTO analytics_day_versions (date, version) VALUES (?1, 1) "                           \
    "ON CONFLICT DO UPDATE SET version = version + 1"

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
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

int db_schema_version(void)
{
    return MIGRATION_COUNT;
}

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

int db_open(const char *sqlite_path, struct db **out, char *err, size_t errlen)
{
    struct db *db = calloc(1, sizeof(*db));
    char *msg = NULL;
    char dir[PATH_MAX];
    int rc = PF_EDB;
    if (db == NULL)
        return PF_ENOMEM;
    /* The database may live outside the data directory: make its folder. */
    snprintf(dir, sizeof(dir), "%s", sqlite_path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        fsutil_mkdirs(dir, 0755);
    }
    if (sqlite3_open_v2(sqlite_path, &db->conn,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", sqlite_path,
                 db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
        goto fail;
    }
    db_set_busy_timeout(db, 5000);
    if (sqlite3_exec(db->conn,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                     "PRAGMA foreign_keys=ON;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", sqlite_path, msg);
        goto fail;
    }
    if (migrate(db->conn, err, errlen) != 0)
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
    *out = db;
    return 0;
fail:
    sqlite3_free(msg);
    db_close(db);
    return rc;
}

void db_set_busy_timeout(struct db *db, int ms)
{
    db->busy_ms = ms;
    sqlite3_busy_timeout(db->conn, ms);
}

void db_close(struct db *db)
{
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
    for (int i = 0; i < DBQ_COUNT; i++)
        sqlite3_finalize(db->read[i]);
    sqlite3_close(db->conn);
    free(db);
}

int db_image_insert(struct db *db, const struct db_image *img)
{
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

int db_image_by_path(struct db *db, const char *owner, const char *album, const char *filename,
                     struct db_image *out)
{
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

int db_image_scan(struct db *db, int64_t after, int (*fn)(void *ctx, const struct db_image *img),
                  void *ctx)
{
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

/* The statements of db_counts_add(), prepared on first use: offline
 * commands that never count pay nothing for them. */
static int prepare_counts(struct db *db)
{
    /* (Parenthesized: each entry is one statement split over lines.) */
    static const char *const sql[6] = {
        ("INSERT INTO analytics_daily (owner, date, image_id, variant, country, requests, "
         "bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes"),
        ("INSERT INTO analytics_owner_daily (owner, date, requests, bandwidth_bytes) "
         "VALUES (?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes"),
        ("INSERT INTO analytics_monthly (owner, year_month, requests, bandwidth_bytes) "
         "VALUES (?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes"),
        ("INSERT INTO analytics_status_daily (owner, date, status, requests) "
         "VALUES (?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests"),
        "SELECT 1 FROM analytics_batch_days WHERE date = ?",
        BUMP_SQL,
    };
    sqlite3_stmt **st[6] = {&db->add_daily,  &db->add_owner_day, &db->add_monthly,
                            &db->add_status, &db->day_done,      &db->bump};
    if (db->bump != NULL)
        return 0;
    for (int i = 0; i < 6; i++)
        if (sqlite3_prepare_v3(db->conn, sql[i], -1, SQLITE_PREPARE_PERSISTENT, st[i], NULL) !=
            SQLITE_OK) {
            for (int j = 0; j < 6; j++) {
                sqlite3_finalize(*st[j]);
                *st[j] = NULL;
            }
            return PF_EDB;
        }
    return 0;
}

int db_sqlite_step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : PF_EDB;
}

static int add_one(struct db *db, const struct db_count *c)
{
    sqlite3_stmt *st;
    switch (c->kind) {
    case DB_COUNT_DAILY:
        st = db->add_daily;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->date, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, c->image_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, c->variant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, c->country, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, c->requests);
        sqlite3_bind_int64(st, 7, c->bytes);
        break;
    case DB_COUNT_OWNER_DAY:
        for (int i = 0; i < 2; i++) {
            st = i == 0 ? db->add_owner_day : db->add_monthly;
            sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
            /* analytics_monthly's year_month is the date's YYYY-MM. */
            sqlite3_bind_text(st, 2, c->date, i == 0 ? -1 : 7, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, c->requests);
            sqlite3_bind_int64(st, 4, c->bytes);
            if (i == 0 && db_sqlite_step_done(st) != 0)
                return PF_EDB;
        }
        break;
    default:
        st = db->add_status;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->date, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, c->status);
        sqlite3_bind_int64(st, 4, c->requests);
        break;
    }
    return db_sqlite_step_done(st);
}

/* Whether the batch has aggregated `date`, remembered for the transaction
 * in a small cache (a flush spans a day or two). OUT: *done. */
struct done_cache {
    char date[8][11];
    int done[8];
    int n;
};

static int date_done(struct db *db, struct done_cache *dc, const char *date, int *done)
{
    for (int i = 0; i < dc->n; i++)
        if (strcmp(dc->date[i], date) == 0) {
            *done = dc->done[i];
            return 0;
        }
    sqlite3_bind_text(db->day_done, 1, date, -1, SQLITE_STATIC);
    int rc = sqlite3_step(db->day_done);
    sqlite3_reset(db->day_done);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return PF_EDB;
    *done = rc == SQLITE_ROW;
    if (dc->n < 8) {
        snprintf(dc->date[dc->n], sizeof(dc->date[0]), "%s", date);
        dc->done[dc->n++] = *done;
    }
    return 0;
}

/* Raise the version of `date` (analytics_day_versions) once per
 * transaction: `seen` lists the dates raised so far. */
static int bump_once(struct db *db, struct done_cache *seen, const char *date)
{
    for (int i = 0; i < seen->n; i++)
        if (strcmp(seen->date[i], date) == 0)
            return 0;
    if (seen->n < 8) /* more dates than that in one flush: raised again, harmless */
        snprintf(seen->date[seen->n++], sizeof(seen->date[0]), "%s", date);
    sqlite3_bind_text(db->bump, 1, date, -1, SQLITE_STATIC);
    return db_sqlite_step_done(db->bump);
}

int db_counts_add(struct db *db, const struct db_count *rows, size_t n, int64_t *dropped, char *err,
                  size_t errlen)
{
    struct done_cache dc = {.n = 0}, bumped = {.n = 0};
    char purged[16] = "";
    int64_t left_out = 0;
    int rc = prepare_counts(db);
    err[0] = '\0';
    if (rc == 0 && sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    if (rc == 0 && (rc = db_meta_get(db, "cleanup_before", purged, sizeof(purged))) == PF_ENOTFOUND)
        rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int done = strcmp(rows[i].date, purged) < 0;
        /* Checked inside the write transaction: a batch run commits either
         * before (these counts are dropped) or after (it replaces them);
         * so does a cleanup (the dates it purged stay purged). */
        if (!done)
            rc = date_done(db, &dc, rows[i].date, &done);
        if (rc == 0 && done)
            left_out += rows[i].kind == DB_COUNT_STATUS ? rows[i].requests : 0;
        else if (rc == 0)
            rc = add_one(db, &rows[i]);
        if (rc == 0 && !done && rows[i].kind == DB_COUNT_DAILY)
            rc = bump_once(db, &bumped, rows[i].date);
    }
    if (rc == 0 && sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    if (rc != 0) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db->conn));
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    } else if (dropped != NULL) {
        *dropped = left_out;
    }
    return rc;
}

/* ---- Batch aggregation and retention ---------------------------------- */

/* The batch and cleanup statements run a few times per date: prepared per
 * use, not kept (db_sqlite_prep). */
int db_sqlite_prep(struct db *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(db->conn, sql, -1, st, NULL) == SQLITE_OK ? 0 : PF_EDB;
}

/* A one-row, one-integer query with `date` bound to every parameter. */
static int query_int(struct db *db, const char *sql, const char *date, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = db_sqlite_prep(db, sql, &st);
    if (rc == 0) {
        for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++)
            sqlite3_bind_text(st, i, date, -1, SQLITE_STATIC);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
        else
            rc = s == SQLITE_DONE ? PF_ENOTFOUND : PF_EDB;
    }
    sqlite3_finalize(st);
    return rc;
}

void db_sqlite_now_iso(char out[21])
{
    timeutil_format_iso8601((int64_t)time(NULL), out);
}

int db_sqlite_exec_text(struct db *db, int64_t *changes, const char *sql, ...)
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

static int meta_put(struct db *db, const char *key, const char *value, const char *now)
{
    return db_sqlite_exec_text(
        db, NULL,
        "INSERT INTO analytics_meta (key, value, updated_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        key, value, now, (const char *)NULL);
}

/* Insert the date's new rows (already in key order). */
static int insert_rows(struct db *db, const char *date, const struct db_daily_row *daily,
                       size_t ndaily, const struct db_status_row *status, size_t nstatus)
{
    sqlite3_stmt *d = NULL, *s = NULL;
    int rc = db_sqlite_prep(db,
                            "INSERT INTO analytics_daily (owner, date, image_id, variant, country, "
                            "requests, bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            &d);
    if (rc == 0)
        rc = db_sqlite_prep(db,
                            "INSERT INTO analytics_status_daily (owner, date, status, requests) "
                            "VALUES (?, ?, ?, ?)",
                            &s);
    if (rc == 0) {
        sqlite3_bind_text(d, 2, date, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, date, -1, SQLITE_STATIC);
    }
    for (size_t i = 0; rc == 0 && i < ndaily; i++) {
        const struct db_daily_row *r = &daily[i];
        sqlite3_bind_text(d, 1, r->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(d, 3, r->image_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(d, 4, r->variant, -1, SQLITE_STATIC);
        sqlite3_bind_text(d, 5, r->country, -1, SQLITE_STATIC);
        sqlite3_bind_int64(d, 6, r->requests);
        sqlite3_bind_int64(d, 7, r->bytes);
        rc = db_sqlite_step_done(d);
    }
    for (size_t i = 0; rc == 0 && i < nstatus; i++) {
        sqlite3_bind_text(s, 1, status[i].owner, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 3, status[i].status);
        sqlite3_bind_int64(s, 4, status[i].requests);
        rc = db_sqlite_step_done(s);
    }
    sqlite3_finalize(d);
    sqlite3_finalize(s);
    return rc;
}

/* Run each statement of `sql` (NULL-ended) with ?1 bound to `date` (when
 * it has a parameter). */
static int run_each(struct db *db, const char *const *sql, const char *date)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && sql[i] != NULL; i++)
        rc = db_sqlite_exec_text(db, NULL, sql[i], date, (const char *)NULL);
    return rc;
}

/* temp.batch_owners := the owners with rows on `date` (by their day
 * totals) and the owners of the new rows. */
static int collect_owners(struct db *db, const char *date, const struct db_daily_row *daily,
                          size_t ndaily)
{
    static const char *const sql[] = {
        "CREATE TEMP TABLE IF NOT EXISTS batch_owners (owner TEXT PRIMARY KEY) WITHOUT ROWID",
        "DELETE FROM temp.batch_owners",
        ("INSERT OR IGNORE INTO temp.batch_owners SELECT owner FROM analytics_owner_daily "
         "WHERE date = ?1"),
        NULL};
    sqlite3_stmt *st = NULL;
    int rc = run_each(db, sql, date);
    if (rc == 0)
        rc = db_sqlite_prep(db, "INSERT OR IGNORE INTO temp.batch_owners VALUES (?)", &st);
    for (size_t i = 0; rc == 0 && i < ndaily; i++) {
        if (i > 0 && strcmp(daily[i].owner, daily[i - 1].owner) == 0)
            continue; /* sorted by owner */
        sqlite3_bind_text(st, 1, daily[i].owner, -1, SQLITE_STATIC);
        rc = db_sqlite_step_done(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* The date's analytics_owner_daily rows from the new (owner-sorted) rows,
 * and the month's analytics_monthly row of every owner concerned. */
static int recompute_owners(struct db *db, const char *date, const struct db_daily_row *daily,
                            size_t ndaily)
{
    static const char *const wipe[] = {"DELETE FROM analytics_owner_daily WHERE date = ?1", NULL};
    char month[8], first[11], last[11];
    snprintf(month, sizeof(month), "%.7s", date);
    snprintf(first, sizeof(first), "%s-01", month);
    snprintf(last, sizeof(last), "%s-31", month);
    sqlite3_stmt *st = NULL;
    int rc = run_each(db, wipe, date);
    if (rc == 0)
        rc = db_sqlite_prep(
            db,
            "INSERT INTO analytics_owner_daily (owner, date, requests, bandwidth_bytes) "
            "VALUES (?, ?, ?, ?)",
            &st);
    for (size_t i = 0; rc == 0 && i < ndaily;) {
        int64_t req = 0, bytes = 0;
        size_t j = i;
        for (; j < ndaily && strcmp(daily[j].owner, daily[i].owner) == 0; j++) {
            req += daily[j].requests;
            bytes += daily[j].bytes;
        }
        sqlite3_bind_text(st, 1, daily[i].owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, date, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, req);
        sqlite3_bind_int64(st, 4, bytes);
        rc = db_sqlite_step_done(st);
        i = j;
    }
    sqlite3_finalize(st);
    if (rc == 0)
        rc = db_sqlite_exec_text(db, NULL,
                                 "DELETE FROM analytics_monthly WHERE year_month = ?1 AND owner IN "
                                 "(SELECT owner FROM temp.batch_owners)",
                                 month, (const char *)NULL);
    if (rc == 0)
        rc = db_sqlite_exec_text(
            db, NULL,
            "INSERT INTO analytics_monthly (owner, year_month, requests, "
            "bandwidth_bytes) SELECT owner, ?1, SUM(requests), SUM(bandwidth_bytes) "
            "FROM analytics_owner_daily WHERE owner IN "
            "(SELECT owner FROM temp.batch_owners) AND date BETWEEN ?2 AND ?3 "
            "GROUP BY owner",
            month, first, last, (const char *)NULL);
    return rc;
}

int db_batch_replace_day(struct db *db, const char *date, const struct db_daily_row *daily,
                         size_t ndaily, const struct db_status_row *status, size_t nstatus,
                         int64_t events, struct db_batch_stats *bs, char *err, size_t errlen)
{
    /* A date's analytics_daily rows are reached by (owner, date) ranges of
     * the primary key, for the owners collect_owners() lists. */
    static const char *const wipe[] = {
        ("DELETE FROM analytics_daily WHERE owner IN (SELECT owner FROM temp.batch_owners) "
         "AND date = ?1"),
        "DELETE FROM analytics_status_daily WHERE date = ?1", NULL};
    char now[21], value[32], last[16] = "";
    sqlite3_stmt *st = NULL;
    int rc = 0;
    err[0] = '\0';
    memset(bs, 0, sizeof(*bs));
    db_sqlite_now_iso(now);
    for (size_t i = 0; i < ndaily; i++)
        bs->requests += daily[i].requests;
    if (sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    if (rc == 0)
        rc = collect_owners(db, date, daily, ndaily);
    if (rc == 0)
        rc = query_int(db,
                       "SELECT COALESCE(SUM(requests), 0) FROM analytics_daily WHERE owner IN "
                       "(SELECT owner FROM temp.batch_owners) AND date = ?1",
                       date, &bs->requests_before);
    bs->drift = bs->requests_before - bs->requests;
    if (rc == 0)
        rc = run_each(db, wipe, date);
    if (rc == 0)
        rc = insert_rows(db, date, daily, ndaily, status, nstatus);
    if (rc == 0)
        rc = recompute_owners(db, date, daily, ndaily);
    if (rc == 0)
        rc = db_sqlite_exec_text(db, NULL, BUMP_SQL, date, (const char *)NULL);
    if (rc == 0)
        rc =
            db_sqlite_prep(db,
                           "INSERT OR REPLACE INTO analytics_batch_days (date, events, daily_rows, "
                           "status_rows, drift, aggregated_at) VALUES (?, ?, ?, ?, ?, ?)",
                           &st);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, date, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, events);
        sqlite3_bind_int64(st, 3, (int64_t)ndaily);
        sqlite3_bind_int64(st, 4, (int64_t)nstatus);
        sqlite3_bind_int64(st, 5, bs->drift);
        sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
        rc = db_sqlite_step_done(st);
    }
    sqlite3_finalize(st);
    /* The meta rows describe the run of the newest date aggregated: a
     * re-run of an older date does not move last_aggregation_date back. */
    if (rc == 0) {
        int g = db_meta_get(db, "last_aggregation_date", last, sizeof(last));
        if (g != 0 && g != PF_ENOTFOUND)
            rc = PF_EDB;
    }
    if (rc == 0 && strcmp(date, last) >= 0) {
        rc = meta_put(db, "last_aggregation_date", date, now);
        snprintf(value, sizeof(value), "%zu", ndaily + nstatus);
        if (rc == 0)
            rc = meta_put(db, "last_aggregation_rows", value, now);
        snprintf(value, sizeof(value), "%lld", (long long)bs->drift);
        if (rc == 0)
            rc = meta_put(db, "last_aggregation_drift", value, now);
        snprintf(value, sizeof(value), "%lld", (long long)events);
        if (rc == 0)
            rc = meta_put(db, "last_aggregation_events", value, now);
    }
    if (rc == 0 && sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    if (rc != 0) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db->conn));
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int db_batch_day_done(struct db *db, const char *date, int *done)
{
    int64_t one = 0;
    int rc = query_int(db, "SELECT 1 FROM analytics_batch_days WHERE date = ?", date, &one);
    *done = rc == 0;
    return rc == PF_ENOTFOUND ? 0 : rc;
}

int db_day_requests(struct db *db, const char *date, int64_t *requests)
{
    /* Status rows count every request; the owners' day totals stand for the
     * daily rows (and so the months) if status rows were removed. */
    return query_int(db,
                     "SELECT MAX((SELECT COALESCE(SUM(requests), 0) FROM analytics_status_daily "
                     "WHERE date = ?1), (SELECT COALESCE(SUM(requests), 0) FROM "
                     "analytics_owner_daily WHERE date = ?1))",
                     date, requests);
}

int db_meta_get(struct db *db, const char *key, char *value, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = db_sqlite_prep(db, "SELECT value FROM analytics_meta WHERE key = ?", &st);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW)
            db_sqlite_copy_col(value, len, st, 0);
        else
            rc = s == SQLITE_DONE ? PF_ENOTFOUND : PF_EDB;
    }
    sqlite3_finalize(st);
    return rc;
}

int db_meta_set(struct db *db, const char *key, const char *value, char *err, size_t errlen)
{
    char now[21];
    db_sqlite_now_iso(now);
    int rc = meta_put(db, key, value, now);
    if (rc != 0)
        snprintf(err, errlen, "%s", sqlite3_errmsg(db->conn));
    return rc;
}

/* Delete one date's rows of both tables in one transaction. */
static int cleanup_date(struct db *db, const char *date, struct db_cleanup_stats *cs)
{
    static const char *const sql[] = {
        ("DELETE FROM analytics_daily WHERE owner IN (SELECT owner FROM analytics_owner_daily "
         "WHERE date = ?1) AND date = ?1"),
        "DELETE FROM analytics_status_daily WHERE date = ?1", BUMP_SQL};
    int64_t changed[3] = {0, 0, 0};
    int rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : PF_EDB;
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = db_sqlite_exec_text(db, &changed[i], sql[i], date, (const char *)NULL);
    if (rc == 0 && sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    if (rc == 0) {
        cs->daily_rows += changed[0];
        cs->status_rows += changed[1];
        cs->dates += changed[0] + changed[1] > 0;
    }
    return rc;
}

int db_cleanup_before(struct db *db, const char *date, const atomic_int *stop,
                      struct db_cleanup_stats *cs, char *err, size_t errlen)
{
    char marker[16] = "", (*dates)[11] = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    memset(cs, 0, sizeof(*cs));
    err[0] = '\0';
    /* Dates before the last cleanup's cutoff were purged then, and the
     * realtime writer adds nothing to them since (db_counts_add()): only
     * the dates from there on are visited, however long the history kept
     * in analytics_owner_daily. */
    int rc = db_meta_get(db, "cleanup_before", marker, sizeof(marker));
    if (rc == PF_ENOTFOUND)
        rc = 0;
    if (rc == 0)
        rc = db_sqlite_prep(
            db,
            "SELECT date FROM analytics_owner_daily WHERE date >= ?1 AND date < ?2 "
            "UNION SELECT date FROM analytics_status_daily WHERE date < ?2 ORDER BY 1",
            &st);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, marker, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, date, -1, SQLITE_STATIC);
        int step = SQLITE_DONE;
        while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                void *nd = realloc(dates, ncap * sizeof(*dates));
                if (nd == NULL) {
                    rc = PF_ENOMEM;
                    break;
                }
                dates = nd;
                cap = ncap;
            }
            db_sqlite_copy_col(dates[n++], sizeof(dates[0]), st, 0);
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = PF_EDB;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = stop && atomic_load(stop) ? PF_ECONFLICT : cleanup_date(db, dates[i], cs);
    if (rc == 0 && strcmp(date, marker) > 0) {
        char now[21];
        db_sqlite_now_iso(now);
        rc = meta_put(db, "cleanup_before", date, now);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s",
                 rc == PF_ENOMEM      ? "out of memory"
                 : rc == PF_ECONFLICT ? "stopped"
                                      : sqlite3_errmsg(db->conn));
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    }
    free(dates);
    return rc;
}
