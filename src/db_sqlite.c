/* db_sqlite.c - the SQLite backend of db.h.
 *
 * The database runs in WAL mode so the server's readers never block an
 * import (or, later, the analytics writers), with synchronous=NORMAL, which in
 * WAL mode is durable across application crashes and loses at most the last
 * transactions on power loss. Migrations are an append-only list: entry i
 * takes the schema from version i to i+1, all inside one transaction. */
#include "db.h"

#include "err.h"
#include "fsutil.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct db {
    sqlite3 *conn;
    sqlite3_stmt *insert_image;
    sqlite3_stmt *image_by_path;
    sqlite3_stmt *image_scan;
    sqlite3_stmt *add_daily, *add_monthly, *add_status;
};

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
        fs_mkdirs(dir, 0755);
    }
    if (sqlite3_open_v2(sqlite_path, &db->conn,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", sqlite_path,
                 db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(db->conn, 5000);
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
    sqlite3_finalize(db->add_monthly);
    sqlite3_finalize(db->add_status);
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

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

static void read_row(sqlite3_stmt *st, struct db_image *img)
{
    img->seq = sqlite3_column_int64(st, 0);
    copy_col(img->id, sizeof(img->id), st, 1);
    copy_col(img->owner, sizeof(img->owner), st, 2);
    copy_col(img->album, sizeof(img->album), st, 3);
    copy_col(img->filename, sizeof(img->filename), st, 4);
    copy_col(img->content_type, sizeof(img->content_type), st, 5);
    img->size_bytes = sqlite3_column_int64(st, 6);
    img->created_at = sqlite3_column_int64(st, 7);
    copy_col(img->sha256, sizeof(img->sha256), st, 8);
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
        read_row(st, out);
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
        read_row(st, &img);
        rc = fn(ctx, &img);
        if (rc != 0)
            break;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = PF_EDB;
    sqlite3_reset(st);
    return rc;
}

/* The upserts of db_counts_add(), prepared on first use: offline commands
 * that never count pay nothing for them. */
static int prepare_counts(struct db *db)
{
    if (db->add_daily != NULL)
        return 0;
    if (sqlite3_prepare_v3(db->conn,
                           "INSERT INTO analytics_daily (owner, date, image_id, variant, country, "
                           "requests, bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
                           "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes",
                           -1, SQLITE_PREPARE_PERSISTENT, &db->add_daily, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db->conn,
                           "INSERT INTO analytics_monthly (owner, year_month, requests, "
                           "bandwidth_bytes) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
                           "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes",
                           -1, SQLITE_PREPARE_PERSISTENT, &db->add_monthly, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db->conn,
                           "INSERT INTO analytics_status_daily (owner, date, status, requests) "
                           "VALUES (?, ?, ?, ?) "
                           "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests",
                           -1, SQLITE_PREPARE_PERSISTENT, &db->add_status, NULL) != SQLITE_OK) {
        sqlite3_finalize(db->add_daily);
        sqlite3_finalize(db->add_monthly);
        db->add_daily = db->add_monthly = NULL;
        return PF_EDB;
    }
    return 0;
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
    case DB_COUNT_MONTHLY:
        st = db->add_monthly;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->date, 7, SQLITE_STATIC); /* YYYY-MM of the date */
        sqlite3_bind_int64(st, 3, c->requests);
        sqlite3_bind_int64(st, 4, c->bytes);
        break;
    default:
        st = db->add_status;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->date, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, c->status);
        sqlite3_bind_int64(st, 4, c->requests);
        break;
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : PF_EDB;
}

int db_counts_add(struct db *db, const struct db_count *rows, size_t n, char *err, size_t errlen)
{
    int rc = prepare_counts(db);
    err[0] = '\0';
    if (rc == 0 && sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    else
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = add_one(db, &rows[i]);
    if (rc == 0 && sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    if (rc != 0) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db->conn));
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}
