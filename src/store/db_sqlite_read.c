/* db_sqlite_read.c - the SQLite backend of db.h, part three: API keys and the
 * analytics API's reads.
 *
 * These run on the API's threads, each with its own connection, many times
 * a second: their statements are prepared once per connection and kept
 * (db->read[]). Every read is a range of a primary key; none sorts or
 * scans a table. */
#include "store/db_sqlite_int.h"

#include "base/err.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <string.h>

/* Columns of an api_keys row as struct db_key wants them. */
#define KEY_COLUMNS                                                                                \
    "id, owner, key_hash, scopes, CAST(strftime('%s', created_at) AS INTEGER), "                   \
    "COALESCE(CAST(strftime('%s', expires_at) AS INTEGER), 0), "                                   \
    "COALESCE(CAST(strftime('%s', last_used_at) AS INTEGER), 0), "                                 \
    "COALESCE(CAST(strftime('%s', revoked_at) AS INTEGER), 0)"

static const char *const read_sql[DBQ_COUNT] = {
    [DBQ_KEY_GET] = "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = ?1",
    [DBQ_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
    [DBQ_VERSIONS] = "SELECT date, version FROM analytics_day_versions "
                     "WHERE date BETWEEN ?1 AND ?2",
    [DBQ_OWNER_DAYS] = "SELECT date, requests, bandwidth_bytes, bot_requests, bot_bandwidth_bytes "
                       "FROM analytics_owner_daily WHERE owner = ?1 AND date BETWEEN ?2 AND ?3",
    [DBQ_STATUSES] = "SELECT status, SUM(requests), SUM(bot_requests) FROM analytics_status_daily "
                     "WHERE owner = ?1 AND date BETWEEN ?2 AND ?3 GROUP BY status",
    [DBQ_SEGMENT] = "SELECT image_id, variant, country, requests, bandwidth_bytes, bot_requests, "
                    "bot_bandwidth_bytes FROM analytics_daily WHERE owner = ?1 AND date = ?2",
    /* The dates come from the owner's day totals, so that each is one seek
     * of analytics_daily's (owner, date, image_id) prefix: the image's rows
     * and no other owner's or image's. */
    [DBQ_IMAGE_ROWS] = "SELECT date, variant, country, requests, bandwidth_bytes, bot_requests, "
                       "bot_bandwidth_bytes FROM analytics_daily WHERE owner = ?1 AND date IN "
                       "(SELECT date FROM analytics_owner_daily WHERE owner = ?1 "
                       "AND date BETWEEN ?3 AND ?4) AND image_id = ?2",
    [DBQ_IMAGE_BY_ID] = "SELECT " DB_SQLITE_IMAGE_COLUMNS " FROM images WHERE id = ?1",
    /* One range of the primary key (owner, image_id, hour). */
    [DBQ_HOURS] = "SELECT hour, requests, bandwidth_bytes, bot_requests, bot_bandwidth_bytes "
                  "FROM analytics_hourly WHERE owner = ?1 AND image_id = ?2 "
                  "AND hour BETWEEN ?3 AND ?4 ORDER BY hour",
    /* The owner's dates are one range of the key (owner, date, image_id,
     * client), the image's rows a seek within each date. */
    [DBQ_CLIENTS] = "SELECT client, SUM(requests), SUM(bandwidth_bytes) "
                    "FROM analytics_clients_daily WHERE owner = ?1 AND date BETWEEN ?3 AND ?4 "
                    "AND image_id = ?2 GROUP BY client",
    /* The estimates only: `uniques` is stored before the registers, so the
     * sketches' overflow pages are never read. */
    [DBQ_UNIQUES] = "SELECT date, uniques FROM analytics_uniques_daily WHERE owner = ?1 "
                    "AND date BETWEEN ?3 AND ?4 AND image_id = ?2 ORDER BY date",
    [DBQ_IMAGE_UNIQUES] = "SELECT image_id, SUM(uniques) FROM analytics_uniques_daily "
                          "WHERE owner = ?1 AND date BETWEEN ?2 AND ?3 AND image_id <> '' "
                          "GROUP BY image_id",
    /* The export's pages: one seek of the primary key past the last key
     * given, read in key order without sorting. The row value must be the
     * range's start: `+date` keeps the planner from starting at `from`
     * instead (then every page would scan the range's earlier rows). */
    [DBQ_DAILY_PAGE] = "SELECT date, image_id, variant, country, requests, bandwidth_bytes "
                       "FROM analytics_daily WHERE owner = ?1 AND +date >= ?2 AND date <= ?3 "
                       "AND (date, image_id, variant, country) > (?4, ?5, ?6, ?7) "
                       "ORDER BY date, image_id, variant, country LIMIT ?8",
};

/* The kept statement `which`, reset and with its bindings cleared, or NULL
 * when it cannot be prepared. */
static sqlite3_stmt *stmt(struct db_sqlite *db, enum db_sqlite_read_stmt which)
{
    sqlite3_stmt **st = &db->read[which];
    if (*st == NULL && sqlite3_prepare_v3(db->conn, read_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                          st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(*st);
    sqlite3_clear_bindings(*st);
    return *st;
}

/* Bind text parameters ?1.. (NULL-ended: at most 4). */
static void bind_texts(sqlite3_stmt *st, const char *a, const char *b, const char *c, const char *d)
{
    const char *v[4] = {a, b, c, d};
    for (int i = 0; i < 4 && v[i] != NULL; i++)
        sqlite3_bind_text(st, i + 1, v[i], -1, SQLITE_STATIC);
}

/* ---- API keys ---- */

static void iso_or_null(sqlite3_stmt *st, int col, int64_t t)
{
    char iso[21];
    if (t == 0) {
        sqlite3_bind_null(st, col);
        return;
    }
    timeutil_format_iso8601(t, iso);
    sqlite3_bind_text(st, col, iso, -1, SQLITE_TRANSIENT);
}

int db_sqlite_key_insert(struct db *base, const struct db_key *k)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = NULL;
    int rc =
        db_sqlite_prep(db,
                       "INSERT INTO api_keys (id, owner, key_hash, scopes, created_at, expires_at, "
                       "last_used_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL)",
                       &st);
    if (rc == 0) {
        bind_texts(st, k->id, k->owner, k->key_hash, k->scopes);
        iso_or_null(st, 5, k->created_at);
        iso_or_null(st, 6, k->expires_at);
        int s = sqlite3_step(st);
        rc = s == SQLITE_DONE ? 0 : s == SQLITE_CONSTRAINT ? PF_EEXISTS : PF_EDB;
    }
    sqlite3_finalize(st);
    return rc;
}

static void read_key(sqlite3_stmt *st, struct db_key *k)
{
    db_sqlite_copy_col(k->id, sizeof(k->id), st, 0);
    db_sqlite_copy_col(k->owner, sizeof(k->owner), st, 1);
    db_sqlite_copy_col(k->key_hash, sizeof(k->key_hash), st, 2);
    db_sqlite_copy_col(k->scopes, sizeof(k->scopes), st, 3);
    k->created_at = sqlite3_column_int64(st, 4);
    k->expires_at = sqlite3_column_int64(st, 5);
    k->last_used_at = sqlite3_column_int64(st, 6);
    k->revoked_at = sqlite3_column_int64(st, 7);
}

int db_sqlite_key_get(struct db *base, const char *id, struct db_key *out)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_KEY_GET);
    if (st == NULL)
        return PF_EDB;
    bind_texts(st, id, NULL, NULL, NULL);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        read_key(st, out);
    sqlite3_reset(st);
    return s == SQLITE_ROW ? 0 : s == SQLITE_DONE ? PF_ENOTFOUND : PF_EDB;
}

int db_sqlite_key_scan(struct db *base, int (*fn)(void *ctx, const struct db_key *k), void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = NULL;
    struct db_key k;
    int rc =
        db_sqlite_prep(db, "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY created_at, rowid", &st);
    int s = SQLITE_DONE;
    while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
        read_key(st, &k);
        rc = fn(ctx, &k);
    }
    if (rc == 0 && s != SQLITE_DONE)
        rc = PF_EDB;
    sqlite3_finalize(st);
    return rc;
}

int db_sqlite_key_revoke(struct db *base, const char *id, int64_t now, int *already)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    struct db_key k;
    sqlite3_stmt *st = NULL;
    int rc = db_sqlite_key_get(&db->base, id, &k);
    *already = rc == 0 && k.revoked_at != 0;
    if (rc != 0 || *already)
        return rc;
    rc = db_sqlite_prep(
        db, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", &st);
    if (rc == 0) {
        bind_texts(st, id, NULL, NULL, NULL);
        iso_or_null(st, 2, now);
        rc = db_sqlite_step_done(st);
    }
    sqlite3_finalize(st);
    return rc;
}

int db_sqlite_key_touch(struct db *base, const char *id, int64_t now)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_KEY_TOUCH);
    if (st == NULL)
        return PF_EDB;
    bind_texts(st, id, NULL, NULL, NULL);
    iso_or_null(st, 2, now);
    /* A record of use never waits for a writer (a batch can hold the lock
     * for seconds): if the database is busy, the next use records it. */
    sqlite3_busy_timeout(db->conn, 0);
    int rc = db_sqlite_step_done(st);
    sqlite3_busy_timeout(db->conn, db->busy_ms);
    return rc;
}

/* ---- The analytics API's reads ---- */

int db_sqlite_read_begin(struct db *base)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    return sqlite3_exec(db->conn, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : PF_EDB;
}

void db_sqlite_read_end(struct db *base)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
}

/* Step `st` to its end, calling fn per row with the row the columns make
 * by `shape`: a string of the fields in column order (d date, i image_id,
 * v variant, c country, s status, r requests, b bytes, R bot_requests,
 * B bot_bytes, h hour, k client (its name), u uniques). */
static int each_row(sqlite3_stmt *st, const char *shape, db_stat_fn fn, void *ctx)
{
    int rc = 0, s;
    if (st == NULL)
        return PF_EDB;
    while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
        struct db_stat_row r = {.date = "", .image_id = "", .variant = "", .country = ""};
        for (int col = 0; shape[col] != '\0'; col++) {
            /* Integers are read as integers: asking for text first would
             * make SQLite print every count. */
            const char **text = shape[col] == 'd'   ? &r.date
                                : shape[col] == 'i' ? &r.image_id
                                : shape[col] == 'v' ? &r.variant
                                : shape[col] == 'c' ? &r.country
                                                    : NULL;
            int64_t *num = shape[col] == 'r'   ? &r.requests
                           : shape[col] == 'b' ? &r.bytes
                           : shape[col] == 'R' ? &r.bot_requests
                           : shape[col] == 'B' ? &r.bot_bytes
                           : shape[col] == 'h' ? &r.hour
                           : shape[col] == 'u' ? &r.uniques
                                               : NULL;
            if (text != NULL) {
                const char *t = (const char *)sqlite3_column_text(st, col);
                *text = t ? t : "";
            } else if (num != NULL) {
                *num = sqlite3_column_int64(st, col);
            } else if (shape[col] == 's') {
                r.status = sqlite3_column_int(st, col);
            } else if (shape[col] == 'k') {
                const char *t = (const char *)sqlite3_column_text(st, col);
                r.client = -1;
                for (int k = 0; k < DB_CLIENTS && t != NULL; k++)
                    if (strcmp(t, db_client_name(k)) == 0)
                        r.client = k;
            }
        }
        rc = fn(ctx, &r);
    }
    if (rc == 0 && s != SQLITE_DONE)
        rc = PF_EDB;
    sqlite3_reset(st);
    return rc;
}

int db_sqlite_day_versions(struct db *base, const char *from, const char *to, db_stat_fn fn,
                           void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_VERSIONS);
    if (st != NULL)
        bind_texts(st, from, to, NULL, NULL);
    return each_row(st, "dr", fn, ctx);
}

int db_sqlite_owner_days(struct db *base, const char *owner, const char *from, const char *to,
                         db_stat_fn fn, void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_OWNER_DAYS);
    if (st != NULL)
        bind_texts(st, owner, from, to, NULL);
    return each_row(st, "drbRB", fn, ctx);
}

int db_sqlite_owner_statuses(struct db *base, const char *owner, const char *from, const char *to,
                             db_stat_fn fn, void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_STATUSES);
    if (st != NULL)
        bind_texts(st, owner, from, to, NULL);
    return each_row(st, "srR", fn, ctx);
}

int db_sqlite_segment_rows(struct db *base, const char *owner, const char *date, db_stat_fn fn,
                           void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_SEGMENT);
    if (st != NULL)
        bind_texts(st, owner, date, NULL, NULL);
    return each_row(st, "ivcrbRB", fn, ctx);
}

int db_sqlite_image_rows(struct db *base, const char *owner, const char *image_id, const char *from,
                         const char *to, db_stat_fn fn, void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_IMAGE_ROWS);
    if (st != NULL)
        bind_texts(st, owner, image_id, from, to);
    return each_row(st, "dvcrbRB", fn, ctx);
}

int db_sqlite_image_by_id(struct db *base, const char *id, struct db_image *out)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_IMAGE_BY_ID);
    if (st == NULL)
        return PF_EDB;
    bind_texts(st, id, NULL, NULL, NULL);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        db_sqlite_read_image(st, out);
    sqlite3_reset(st);
    return s == SQLITE_ROW ? 0 : s == SQLITE_DONE ? PF_ENOTFOUND : PF_EDB;
}

/* ---- The export's pages ---- */

/* Bind the key of `after` (NULL: the empty key) as ?first..?first+3. */
static void bind_texts4(sqlite3_stmt *st, int first, const struct db_stat_row *after)
{
    const char *v[4] = {"", "", "", ""};
    if (after != NULL) {
        v[0] = after->date;
        v[1] = after->image_id;
        v[2] = after->variant;
        v[3] = after->country;
    }
    for (int i = 0; i < 4; i++)
        sqlite3_bind_text(st, first + i, v[i], -1, SQLITE_TRANSIENT);
}

struct page_count {
    db_stat_fn fn;
    void *ctx;
    int rows;
};

static int count_row(void *ctx, const struct db_stat_row *row)
{
    struct page_count *pc = ctx;
    pc->rows++;
    return pc->fn(pc->ctx, row);
}

int db_sqlite_daily_page(struct db *base, const char *owner, const char *from, const char *to,
                         const struct db_stat_row *after, int limit, db_stat_fn fn, void *ctx,
                         int *rows)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    struct page_count pc = {fn, ctx, 0};
    sqlite3_stmt *st = stmt(db, DBQ_DAILY_PAGE);
    if (st != NULL) {
        bind_texts(st, owner, from, to, NULL);
        bind_texts4(st, 4, after);
        sqlite3_bind_int(st, 8, limit);
    }
    int rc = each_row(st, "divcrb", count_row, &pc);
    *rows = pc.rows;
    return rc;
}

/* ---- Issue 20's reads ---- */

int db_sqlite_owner_hours(struct db *base, const char *owner, const char *image_id,
                          int64_t from_hour, int64_t to_hour, db_stat_fn fn, void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_HOURS);
    if (st != NULL) {
        bind_texts(st, owner, image_id, NULL, NULL);
        sqlite3_bind_int64(st, 3, from_hour);
        sqlite3_bind_int64(st, 4, to_hour);
    }
    return each_row(st, "hrbRB", fn, ctx);
}

int db_sqlite_owner_clients(struct db *base, const char *owner, const char *image_id,
                            const char *from, const char *to, db_stat_fn fn, void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_CLIENTS);
    if (st != NULL)
        bind_texts(st, owner, image_id, from, to);
    return each_row(st, "krb", fn, ctx);
}

int db_sqlite_owner_uniques(struct db *base, const char *owner, const char *image_id,
                            const char *from, const char *to, db_stat_fn fn, void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_UNIQUES);
    if (st != NULL)
        bind_texts(st, owner, image_id, from, to);
    return each_row(st, "du", fn, ctx);
}

int db_sqlite_image_uniques(struct db *base, const char *owner, const char *from, const char *to,
                            db_stat_fn fn, void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = stmt(db, DBQ_IMAGE_UNIQUES);
    if (st != NULL)
        bind_texts(st, owner, from, to, NULL);
    return each_row(st, "iu", fn, ctx);
}
