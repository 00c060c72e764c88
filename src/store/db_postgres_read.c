/* db_postgres_read.c - the PostgreSQL backend of db.h, part three: API keys
 * and the analytics API's reads. Each statement is prepared once per
 * connection (db_pg_query); every read is a range of a primary key. */
#include "store/db_postgres_int.h"

#include "base/err.h"
#include "base/timeutil.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ISO-8601 text to Unix seconds, NULL as 0. */
#define EPOCH(col) "COALESCE(extract(epoch FROM " col "::timestamptz)::bigint, 0)"
#define KEY_COLUMNS                                                                                \
    "id, owner, key_hash, scopes, " EPOCH("created_at") ", " EPOCH("expires_at") ", " EPOCH(       \
        "last_used_at") ", " EPOCH("revoked_at")

/* ---- API keys ---- */

static void iso_or_null(int64_t t, char out[21], const char **param)
{
    if (t == 0) {
        *param = NULL;
        return;
    }
    timeutil_format_iso8601(t, out);
    *param = out;
}

int db_pg_key_insert(struct db *base, const struct db_key *k)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql =
        "INSERT INTO api_keys (id, owner, key_hash, scopes, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)";
    char created[21], expires[21];
    const char *p[6] = {k->id, k->owner, k->key_hash, k->scopes, NULL, NULL};
    iso_or_null(k->created_at, created, &p[4]);
    iso_or_null(k->expires_at, expires, &p[5]);
    return db_pg_query(db, sql, 6, p, NULL);
}

static void read_key(const PGresult *r, int row, struct db_key *k)
{
    db_pg_copy_cell(k->id, sizeof(k->id), r, row, 0);
    db_pg_copy_cell(k->owner, sizeof(k->owner), r, row, 1);
    db_pg_copy_cell(k->key_hash, sizeof(k->key_hash), r, row, 2);
    db_pg_copy_cell(k->scopes, sizeof(k->scopes), r, row, 3);
    k->created_at = db_pg_int(r, row, 4);
    k->expires_at = db_pg_int(r, row, 5);
    k->last_used_at = db_pg_int(r, row, 6);
    k->revoked_at = db_pg_int(r, row, 7);
}

int db_pg_key_get(struct db *base, const char *id, struct db_key *out)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql = "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = $1";
    PGresult *r = NULL;
    int rc = db_pg_query(db, sql, 1, (const char *[]){id}, &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = PF_ENOTFOUND;
    else if (rc == 0)
        read_key(r, 0, out);
    PQclear(r);
    return rc;
}

int db_pg_key_scan(struct db *base, int (*fn)(void *ctx, const struct db_key *k), void *ctx)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql = "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY created_at, seq";
    PGresult *r = NULL;
    struct db_key k;
    int rc = db_pg_query(db, sql, 0, NULL, &r);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        read_key(r, i, &k);
        rc = fn(ctx, &k);
    }
    PQclear(r);
    return rc;
}

int db_pg_key_revoke(struct db *base, const char *id, int64_t now, int *already)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql =
        "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
    struct db_key k;
    char at[21];
    int rc = db_pg_key_get(base, id, &k);
    *already = rc == 0 && k.revoked_at != 0;
    if (rc != 0 || *already)
        return rc;
    timeutil_format_iso8601(now, at);
    return db_pg_query(db, sql, 2, (const char *[]){id, at}, NULL);
}

int db_pg_key_touch(struct db *base, const char *id, int64_t now)
{
    struct db_pg *db = (struct db_pg *)base;
    /* A record of use never waits on a row another node is writing: if it
     * is locked, the next use records it. */
    static const char *const sql = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND id IN "
                                   "(SELECT id FROM api_keys WHERE id = $1 FOR UPDATE SKIP LOCKED)";
    char at[21];
    timeutil_format_iso8601(now, at);
    return db_pg_query(db, sql, 2, (const char *[]){id, at}, NULL);
}

/* ---- The analytics API's reads ---- */

int db_pg_read_begin(struct db *base)
{
    struct db_pg *db = (struct db_pg *)base;
    int rc = db_pg_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL);
    db->in_tx = rc == 0;
    return rc;
}

void db_pg_read_end(struct db *base)
{
    struct db_pg *db = (struct db_pg *)base;
    if (db->in_tx && db->conn != NULL) {
        PGresult *r = PQexec(db->conn, "COMMIT");
        PQclear(r);
    }
    db->in_tx = 0;
}

/* Call fn per row of r, with the row the columns make by `shape` (as in
 * db_sqlite_read.c: d date, i image_id, v variant, c country, s status,
 * r requests, b bytes, R bot_requests, B bot_bytes, h hour, k client (its
 * name), u uniques). */
static int each_row(PGresult *r, const char *shape, db_stat_fn fn, void *ctx)
{
    int rc = 0;
    for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
        struct db_stat_row s = {.date = "", .image_id = "", .variant = "", .country = ""};
        for (int col = 0; shape[col] != '\0'; col++) {
            const char *v = PQgetvalue(r, row, col);
            int64_t *num = shape[col] == 'r'   ? &s.requests
                           : shape[col] == 'b' ? &s.bytes
                           : shape[col] == 'R' ? &s.bot_requests
                           : shape[col] == 'B' ? &s.bot_bytes
                           : shape[col] == 'h' ? &s.hour
                           : shape[col] == 'u' ? &s.uniques
                                               : NULL;
            if (num != NULL) {
                *num = strtoll(v, NULL, 10);
                continue;
            }
            switch (shape[col]) {
            case 'd':
                s.date = v;
                break;
            case 'i':
                s.image_id = v;
                break;
            case 'v':
                s.variant = v;
                break;
            case 'c':
                s.country = v;
                break;
            case 's':
                s.status = atoi(v);
                break;
            case 'k':
                s.client = -1;
                for (int k = 0; k < DB_CLIENTS; k++)
                    if (strcmp(v, db_client_name(k)) == 0)
                        s.client = k;
                break;
            default:
                break;
            }
        }
        rc = fn(ctx, &s);
    }
    return rc;
}

static int read_rows(struct db_pg *db, const char *sql, int n, const char *const *p,
                     const char *shape, db_stat_fn fn, void *ctx)
{
    PGresult *r = NULL;
    int rc = db_pg_query(db, sql, n, p, &r);
    if (rc == 0)
        rc = each_row(r, shape, fn, ctx);
    PQclear(r);
    return rc;
}

int db_pg_day_versions(struct db *base, const char *from, const char *to, db_stat_fn fn, void *ctx)
{
    static const char *const sql =
        "SELECT date, version FROM analytics_day_versions WHERE date BETWEEN $1 AND $2";
    return read_rows((struct db_pg *)base, sql, 2, (const char *[]){from, to}, "dr", fn, ctx);
}

int db_pg_owner_days(struct db *base, const char *owner, const char *from, const char *to,
                     db_stat_fn fn, void *ctx)
{
    static const char *const sql =
        "SELECT date, requests, bandwidth_bytes, bot_requests, bot_bandwidth_bytes "
        "FROM analytics_owner_daily WHERE owner = $1 AND date BETWEEN $2 AND $3";
    return read_rows((struct db_pg *)base, sql, 3, (const char *[]){owner, from, to}, "drbRB", fn,
                     ctx);
}

int db_pg_owner_statuses(struct db *base, const char *owner, const char *from, const char *to,
                         db_stat_fn fn, void *ctx)
{
    static const char *const sql =
        "SELECT status, SUM(requests), SUM(bot_requests) FROM analytics_status_daily "
        "WHERE owner = $1 AND date BETWEEN $2 AND $3 GROUP BY status";
    return read_rows((struct db_pg *)base, sql, 3, (const char *[]){owner, from, to}, "srR", fn,
                     ctx);
}

int db_pg_segment_rows(struct db *base, const char *owner, const char *date, db_stat_fn fn,
                       void *ctx)
{
    static const char *const sql =
        "SELECT image_id, variant, country, requests, bandwidth_bytes, bot_requests, "
        "bot_bandwidth_bytes FROM analytics_daily "
        "WHERE owner = $1 AND date = $2 ORDER BY image_id, variant, country";
    return read_rows((struct db_pg *)base, sql, 2, (const char *[]){owner, date}, "ivcrbRB", fn,
                     ctx);
}

int db_pg_image_rows(struct db *base, const char *owner, const char *image_id, const char *from,
                     const char *to, db_stat_fn fn, void *ctx)
{
    /* One seek of the (owner, date, image_id) prefix per date the owner has
     * traffic on, as in SQLite; in no particular order (aq.c sums them),
     * so nothing is sorted. */
    static const char *const sql =
        "SELECT d.date, d.variant, d.country, d.requests, d.bandwidth_bytes, d.bot_requests, "
        "d.bot_bandwidth_bytes FROM analytics_owner_daily o JOIN analytics_daily d ON d.owner = "
        "o.owner "
        "AND d.date = o.date AND d.image_id = $2 WHERE o.owner = $1 AND o.date BETWEEN $3 AND $4";
    return read_rows((struct db_pg *)base, sql, 4, (const char *[]){owner, image_id, from, to},
                     "dvcrbRB", fn, ctx);
}

/* ---- The export's pages ---- */

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

int db_pg_daily_page(struct db *base, const char *owner, const char *from, const char *to,
                     const struct db_stat_row *after, int limit, db_stat_fn fn, void *ctx,
                     int *rows)
{
    /* One range of the primary key: the row comparison, on the key's
     * columns after the owner, is an index condition of the btree, so a
     * page starts where the last one ended and needs no sort (the columns
     * are COLLATE "C": the same byte order as SQLite's). `from` is only a
     * filter (an expression: no index condition), so that the scan starts
     * at the row comparison rather than at `from`. */
    static const char *const sql =
        "SELECT date, image_id, variant, country, requests, bandwidth_bytes FROM analytics_daily "
        "WHERE owner = $1 AND date || '' >= $2 AND date <= $3 "
        "AND (date, image_id, variant, country) > ($4, $5, $6, $7) "
        "ORDER BY date, image_id, variant, country LIMIT $8::int";
    struct page_count pc = {fn, ctx, 0};
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *p[8] = {owner, from, to, "", "", "", "", lim};
    if (after != NULL) {
        p[3] = after->date;
        p[4] = after->image_id;
        p[5] = after->variant;
        p[6] = after->country;
    }
    int rc = read_rows((struct db_pg *)base, sql, 8, p, "divcrb", count_row, &pc);
    *rows = pc.rows;
    return rc;
}

/* ---- Issue 20's reads (db_sqlite_read.c says which range each is) ---- */

int db_pg_owner_hours(struct db *base, const char *owner, const char *image_id, int64_t from_hour,
                      int64_t to_hour, db_stat_fn fn, void *ctx)
{
    static const char *const sql =
        "SELECT hour, requests, bandwidth_bytes, bot_requests, bot_bandwidth_bytes "
        "FROM analytics_hourly WHERE owner = $1 AND image_id = $2 "
        "AND hour BETWEEN $3::bigint AND $4::bigint ORDER BY hour";
    char a[24], b[24];
    snprintf(a, sizeof(a), "%lld", (long long)from_hour);
    snprintf(b, sizeof(b), "%lld", (long long)to_hour);
    return read_rows((struct db_pg *)base, sql, 4, (const char *[]){owner, image_id, a, b}, "hrbRB",
                     fn, ctx);
}

int db_pg_owner_clients(struct db *base, const char *owner, const char *image_id, const char *from,
                        const char *to, db_stat_fn fn, void *ctx)
{
    static const char *const sql =
        "SELECT client, SUM(requests), SUM(bandwidth_bytes) FROM analytics_clients_daily "
        "WHERE owner = $1 AND date BETWEEN $3 AND $4 AND image_id = $2 GROUP BY client";
    return read_rows((struct db_pg *)base, sql, 4, (const char *[]){owner, image_id, from, to},
                     "krb", fn, ctx);
}

int db_pg_owner_uniques(struct db *base, const char *owner, const char *image_id, const char *from,
                        const char *to, db_stat_fn fn, void *ctx)
{
    static const char *const sql =
        "SELECT date, uniques FROM analytics_uniques_daily WHERE owner = $1 "
        "AND date BETWEEN $3 AND $4 AND image_id = $2 ORDER BY date";
    return read_rows((struct db_pg *)base, sql, 4, (const char *[]){owner, image_id, from, to},
                     "du", fn, ctx);
}

int db_pg_image_uniques(struct db *base, const char *owner, const char *from, const char *to,
                        db_stat_fn fn, void *ctx)
{
    static const char *const sql =
        "SELECT image_id, SUM(uniques) FROM analytics_uniques_daily WHERE owner = $1 "
        "AND date BETWEEN $2 AND $3 AND image_id <> '' GROUP BY image_id";
    return read_rows((struct db_pg *)base, sql, 3, (const char *[]){owner, from, to}, "iu", fn,
                     ctx);
}
