/* db_sqlite_write.c - the SQLite backend of db.h, part two: the analytics
 * writers (realtime counts, batch aggregation, meta rows, retention) and
 * the scheduled jobs' runs. Every
 * write to a date's analytics_daily rows raises the date's version in the
 * same transaction (analytics_day_versions: see aq.h). */
#include "store/db_sqlite_int.h"

#include "base/err.h"
#include "base/timeutil.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Raise a date's version: its analytics_daily rows changed. */
#define BUMP_SQL                                                                                   \
    "INSERT INTO analytics_day_versions (date, version) VALUES (?1, 1) "                           \
    "ON CONFLICT DO UPDATE SET version = version + 1"

/* The statements of db_counts_add(), prepared on first use: offline
 * commands that never count pay nothing for them. */
#define COUNT_STMTS 9
static int prepare_counts(struct db_sqlite *db)
{
    /* (Parenthesized: each entry is one statement split over lines.) */
    static const char *const sql[COUNT_STMTS] = {
        ("INSERT INTO analytics_daily (owner, date, image_id, variant, country, requests, "
         "bandwidth_bytes, bot_requests, bot_bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes, "
         "bot_requests = bot_requests + excluded.bot_requests, "
         "bot_bandwidth_bytes = bot_bandwidth_bytes + excluded.bot_bandwidth_bytes"),
        ("INSERT INTO analytics_owner_daily (owner, date, requests, bandwidth_bytes, "
         "bot_requests, bot_bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes, "
         "bot_requests = bot_requests + excluded.bot_requests, "
         "bot_bandwidth_bytes = bot_bandwidth_bytes + excluded.bot_bandwidth_bytes"),
        ("INSERT INTO analytics_monthly (owner, year_month, requests, bandwidth_bytes) "
         "VALUES (?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes"),
        ("INSERT INTO analytics_status_daily (owner, date, status, requests, bot_requests) "
         "VALUES (?, ?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bot_requests = bot_requests + excluded.bot_requests"),
        "SELECT 1 FROM analytics_batch_days WHERE date = ?",
        BUMP_SQL,
        "INSERT OR IGNORE INTO analytics_flushes (id, at) VALUES (?, strftime('%s', 'now'))",
        ("INSERT INTO analytics_hourly (owner, hour, image_id, requests, bandwidth_bytes, "
         "bot_requests, bot_bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes, "
         "bot_requests = bot_requests + excluded.bot_requests, "
         "bot_bandwidth_bytes = bot_bandwidth_bytes + excluded.bot_bandwidth_bytes"),
        ("INSERT INTO analytics_clients_daily (owner, date, image_id, client, requests, "
         "bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?) "
         "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
         "bandwidth_bytes = bandwidth_bytes + excluded.bandwidth_bytes"),
    };
    sqlite3_stmt **st[COUNT_STMTS] = {&db->add_daily,  &db->add_owner_day, &db->add_monthly,
                                      &db->add_status, &db->day_done,      &db->bump,
                                      &db->receipt,    &db->add_hourly,    &db->add_client};
    if (db->add_client != NULL)
        return 0;
    for (int i = 0; i < COUNT_STMTS; i++)
        if (sqlite3_prepare_v3(db->conn, sql[i], -1, SQLITE_PREPARE_PERSISTENT, st[i], NULL) !=
            SQLITE_OK) {
            for (int j = 0; j < COUNT_STMTS; j++) {
                sqlite3_finalize(*st[j]);
                *st[j] = NULL;
            }
            return PF_EDB;
        }
    return 0;
}

static int add_one(struct db_sqlite *db, const struct db_count *c)
{
    sqlite3_stmt *st;
    /* A bot's count adds to the row's bot_ columns as well as its totals. */
    int bot = c->client == DB_CLIENT_BOT;
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
        sqlite3_bind_int64(st, 8, bot ? c->requests : 0);
        sqlite3_bind_int64(st, 9, bot ? c->bytes : 0);
        break;
    case DB_COUNT_OWNER_DAY:
        st = db->add_owner_day;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->date, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, c->requests);
        sqlite3_bind_int64(st, 4, c->bytes);
        sqlite3_bind_int64(st, 5, bot ? c->requests : 0);
        sqlite3_bind_int64(st, 6, bot ? c->bytes : 0);
        if (db_sqlite_step_done(st) != 0)
            return PF_EDB;
        st = db->add_monthly;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        /* analytics_monthly's year_month is the date's YYYY-MM. */
        sqlite3_bind_text(st, 2, c->date, 7, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, c->requests);
        sqlite3_bind_int64(st, 4, c->bytes);
        break;
    case DB_COUNT_HOURLY:
        st = db->add_hourly;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, c->hour);
        sqlite3_bind_text(st, 3, c->image_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, c->requests);
        sqlite3_bind_int64(st, 5, c->bytes);
        sqlite3_bind_int64(st, 6, bot ? c->requests : 0);
        sqlite3_bind_int64(st, 7, bot ? c->bytes : 0);
        break;
    case DB_COUNT_CLIENT:
        st = db->add_client;
        if (db_client_name(c->client) == NULL)
            return PF_EINVAL;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->date, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, c->image_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, db_client_name(c->client), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, c->requests);
        sqlite3_bind_int64(st, 6, c->bytes);
        break;
    default:
        st = db->add_status;
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->date, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, c->status);
        sqlite3_bind_int64(st, 4, c->requests);
        sqlite3_bind_int64(st, 5, bot ? c->requests : 0);
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

static int date_done(struct db_sqlite *db, struct done_cache *dc, const char *date, int *done)
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
static int bump_once(struct db_sqlite *db, struct done_cache *seen, const char *date)
{
    for (int i = 0; i < seen->n; i++)
        if (strcmp(seen->date[i], date) == 0)
            return 0;
    if (seen->n < 8) /* more dates than that in one flush: raised again, harmless */
        snprintf(seen->date[seen->n++], sizeof(seen->date[0]), "%s", date);
    sqlite3_bind_text(db->bump, 1, date, -1, SQLITE_STATIC);
    return db_sqlite_step_done(db->bump);
}

int db_sqlite_counts_add(struct db *base, const char *flush_id, const struct db_count *rows,
                         size_t n, int64_t *dropped, char *err, size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    struct done_cache dc = {.n = 0}, bumped = {.n = 0};
    char purged[16] = "";
    int64_t left_out = 0;
    int rc = prepare_counts(db);
    err[0] = '\0';
    if (rc == 0 && sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    if (rc == 0 && flush_id != NULL) {
        sqlite3_bind_text(db->receipt, 1, flush_id, -1, SQLITE_STATIC);
        rc = db_sqlite_step_done(db->receipt);
        if (rc == 0 && sqlite3_changes(db->conn) == 0) { /* written before: nothing to add */
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
            if (dropped != NULL)
                *dropped = 0;
            return 0;
        }
    }
    if (rc == 0 && (rc = db_sqlite_meta_get(&db->base, "cleanup_before", purged, sizeof(purged))) ==
                       PF_ENOTFOUND)
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
        snprintf(err, errlen, "%s",
                 rc == PF_EINVAL ? "a count of an unknown client class" : sqlite3_errmsg(db->conn));
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    } else if (dropped != NULL) {
        *dropped = left_out;
    }
    return rc;
}

/* ---- Batch aggregation and retention ---------------------------------- */

/* A one-row, one-integer query with `date` bound to every parameter. */
static int query_int(struct db_sqlite *db, const char *sql, const char *date, int64_t *out)
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

static int meta_put(struct db_sqlite *db, const char *key, const char *value, const char *now)
{
    return db_sqlite_exec_text(
        db, NULL,
        "INSERT INTO analytics_meta (key, value, updated_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        key, value, now, (const char *)NULL);
}

/* Insert the date's new rows (already in key order). */
static int insert_rows(struct db_sqlite *db, const char *date, const struct db_daily_row *daily,
                       size_t ndaily, const struct db_status_row *status, size_t nstatus)
{
    sqlite3_stmt *d = NULL, *s = NULL;
    int rc = db_sqlite_prep(db,
                            "INSERT INTO analytics_daily (owner, date, image_id, variant, country, "
                            "requests, bandwidth_bytes, bot_requests, bot_bandwidth_bytes) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            &d);
    if (rc == 0)
        rc = db_sqlite_prep(db,
                            "INSERT INTO analytics_status_daily (owner, date, status, requests, "
                            "bot_requests) VALUES (?, ?, ?, ?, ?)",
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
        sqlite3_bind_int64(d, 8, r->bot_requests);
        sqlite3_bind_int64(d, 9, r->bot_bytes);
        rc = db_sqlite_step_done(d);
    }
    for (size_t i = 0; rc == 0 && i < nstatus; i++) {
        sqlite3_bind_text(s, 1, status[i].owner, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 3, status[i].status);
        sqlite3_bind_int64(s, 4, status[i].requests);
        sqlite3_bind_int64(s, 5, status[i].bot_requests);
        rc = db_sqlite_step_done(s);
    }
    sqlite3_finalize(d);
    sqlite3_finalize(s);
    return rc;
}

/* Run each statement of `sql` (NULL-ended) with ?1 bound to `date` (when
 * it has a parameter). */
static int run_each(struct db_sqlite *db, const char *const *sql, const char *date)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && sql[i] != NULL; i++)
        rc = db_sqlite_exec_text(db, NULL, sql[i], date, (const char *)NULL);
    return rc;
}

/* temp.batch_owners := the owners with rows on `date` (by their day
 * totals) and the owners of the new rows. */
static int collect_owners(struct db_sqlite *db, const char *date, const struct db_daily_row *daily,
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
static int recompute_owners(struct db_sqlite *db, const char *date,
                            const struct db_daily_row *daily, size_t ndaily)
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
            "INSERT INTO analytics_owner_daily (owner, date, requests, bandwidth_bytes, "
            "bot_requests, bot_bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?)",
            &st);
    for (size_t i = 0; rc == 0 && i < ndaily;) {
        int64_t req = 0, bytes = 0, bot_req = 0, bot_bytes = 0;
        size_t j = i;
        for (; j < ndaily && strcmp(daily[j].owner, daily[i].owner) == 0; j++) {
            req += daily[j].requests;
            bytes += daily[j].bytes;
            bot_req += daily[j].bot_requests;
            bot_bytes += daily[j].bot_bytes;
        }
        sqlite3_bind_text(st, 1, daily[i].owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, date, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, req);
        sqlite3_bind_int64(st, 4, bytes);
        sqlite3_bind_int64(st, 5, bot_req);
        sqlite3_bind_int64(st, 6, bot_bytes);
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

/* The date's analytics_clients_daily rows, and if more->hours its
 * analytics_hourly rows (its 24 hours, by the index on hour), become the
 * batch's. */
static int replace_more(struct db_sqlite *db, const char *date, const struct db_batch_more *more)
{
    sqlite3_stmt *st = NULL;
    int64_t first = 0;
    int rc = db_sqlite_exec_text(db, NULL, "DELETE FROM analytics_clients_daily WHERE date = ?1",
                                 date, (const char *)NULL);
    if (rc == 0)
        rc = db_sqlite_prep(db,
                            "INSERT INTO analytics_clients_daily (owner, date, image_id, client, "
                            "requests, bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?)",
                            &st);
    for (size_t i = 0; rc == 0 && i < more->nclients; i++) {
        const struct db_client_row *c = &more->clients[i];
        if (db_client_name(c->client) == NULL) {
            rc = PF_EINVAL;
            break;
        }
        sqlite3_bind_text(st, 1, c->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, date, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, c->image_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, db_client_name(c->client), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, c->requests);
        sqlite3_bind_int64(st, 6, c->bytes);
        rc = db_sqlite_step_done(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != 0 || !more->hours)
        return rc;
    if (timeutil_parse_date(date, &first) != 0)
        return PF_EINVAL;
    first /= 3600;
    if (rc == 0)
        rc = db_sqlite_prep(db, "DELETE FROM analytics_hourly WHERE hour >= ?1 AND hour < ?1 + 24",
                            &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, first);
        rc = db_sqlite_step_done(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == 0)
        rc = db_sqlite_prep(db,
                            "INSERT INTO analytics_hourly (owner, hour, image_id, requests, "
                            "bandwidth_bytes, bot_requests, bot_bandwidth_bytes) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            &st);
    for (size_t i = 0; rc == 0 && i < more->nhourly; i++) {
        const struct db_hourly_row *h = &more->hourly[i];
        sqlite3_bind_text(st, 1, h->owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, h->hour);
        sqlite3_bind_text(st, 3, h->image_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, h->requests);
        sqlite3_bind_int64(st, 5, h->bytes);
        sqlite3_bind_int64(st, 6, h->bot_requests);
        sqlite3_bind_int64(st, 7, h->bot_bytes);
        rc = db_sqlite_step_done(st);
    }
    sqlite3_finalize(st);
    return rc;
}

int db_sqlite_batch_replace_day(struct db *base, const char *date, const struct db_daily_row *daily,
                                size_t ndaily, const struct db_status_row *status, size_t nstatus,
                                const struct db_batch_more *more, int64_t events,
                                struct db_batch_stats *bs, char *err, size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
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
    if (rc == 0 && more != NULL)
        rc = replace_more(db, date, more);
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
        int g = db_sqlite_meta_get(&db->base, "last_aggregation_date", last, sizeof(last));
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
        snprintf(err, errlen, "%s",
                 rc == PF_EINVAL ? "a row of an unknown client class, or a bad date"
                                 : sqlite3_errmsg(db->conn));
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int db_sqlite_flush_nodes(struct db *base, int64_t from, int64_t to,
                          int (*fn)(void *ctx, const char *node), void *ctx)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *st = NULL;
    int rc = db_sqlite_prep(db,
                            "SELECT DISTINCT substr(id, 1, instr(id, '.') - 1) FROM "
                            "analytics_flushes WHERE at >= ?1 AND at < ?2 AND instr(id, '.') > 1",
                            &st),
        step = SQLITE_DONE;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, from);
        sqlite3_bind_int64(st, 2, to);
    }
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = fn(ctx, (const char *)sqlite3_column_text(st, 0));
    if (rc == 0 && step != SQLITE_DONE)
        rc = PF_EDB;
    sqlite3_finalize(st);
    return rc;
}

int db_sqlite_batch_day_done(struct db *base, const char *date, int *done)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    int64_t one = 0;
    int rc = query_int(db, "SELECT 1 FROM analytics_batch_days WHERE date = ?", date, &one);
    *done = rc == 0;
    return rc == PF_ENOTFOUND ? 0 : rc;
}

int db_sqlite_day_requests(struct db *base, const char *date, int64_t *requests)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    /* Status rows count every request; the owners' day totals stand for the
     * daily rows (and so the months) if status rows were removed. */
    return query_int(db,
                     "SELECT MAX((SELECT COALESCE(SUM(requests), 0) FROM analytics_status_daily "
                     "WHERE date = ?1), (SELECT COALESCE(SUM(requests), 0) FROM "
                     "analytics_owner_daily WHERE date = ?1))",
                     date, requests);
}

int db_sqlite_meta_get(struct db *base, const char *key, char *value, size_t len)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
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

int db_sqlite_meta_set(struct db *base, const char *key, const char *value, char *err,
                       size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    char now[21];
    db_sqlite_now_iso(now);
    int rc = meta_put(db, key, value, now);
    if (rc != 0)
        snprintf(err, errlen, "%s", sqlite3_errmsg(db->conn));
    return rc;
}

/* Delete one date's rows of both tables in one transaction. */
static int cleanup_date(struct db_sqlite *db, const char *date, struct db_cleanup_stats *cs)
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

/* The rows of analytics_daily before `date` that the dated pass cannot see:
 * dates before the last cleanup's cutoff, or owners with no
 * analytics_owner_daily row for the date; what a restored backup, a `db
 * copy` or a hand-written row leaves. The primary key leads with owner, so
 * the owners are walked with one index seek each (a loose scan), and each
 * owner's rows before the cutoff are one range of it: on a table the dated
 * pass keeps clean, that is all this costs. An owner's stray rows go in one
 * transaction that also raises their dates' versions. */
static int sweep_stray(struct db_sqlite *db, const char *date, const atomic_int *stop,
                       struct db_cleanup_stats *cs)
{
    sqlite3_stmt *next = NULL, *stray = NULL;
    char *owner = strdup(""), (*dates)[11] = NULL;
    size_t cap = 0;
    int rc = owner != NULL ? 0 : PF_ENOMEM;
    if (rc == 0)
        rc = db_sqlite_prep(
            db, "SELECT owner FROM analytics_daily WHERE owner > ?1 ORDER BY owner LIMIT 1", &next);
    if (rc == 0)
        rc = db_sqlite_prep(db,
                            "SELECT DISTINCT date FROM analytics_daily WHERE owner = ?1 "
                            "AND date < ?2 ORDER BY 1",
                            &stray);
    while (rc == 0) {
        size_t n = 0;
        sqlite3_bind_text(next, 1, owner, -1, SQLITE_TRANSIENT);
        int step = sqlite3_step(next);
        if (step != SQLITE_ROW) {
            rc = step == SQLITE_DONE ? 0 : PF_EDB;
            break;
        }
        char *o = strdup((const char *)sqlite3_column_text(next, 0));
        sqlite3_reset(next);
        if (o == NULL) {
            rc = PF_ENOMEM;
            break;
        }
        free(owner);
        owner = o;
        sqlite3_bind_text(stray, 1, owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(stray, 2, date, -1, SQLITE_STATIC);
        while (rc == 0 && (step = sqlite3_step(stray)) == SQLITE_ROW) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                void *nd = realloc(dates, ncap * sizeof(*dates));
                if (nd == NULL) {
                    rc = PF_ENOMEM;
                    break;
                }
                dates = nd;
                cap = ncap;
            }
            db_sqlite_copy_col(dates[n++], sizeof(dates[0]), stray, 0);
        }
        if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
            rc = PF_EDB;
        sqlite3_reset(stray);
        if (rc != 0 || n == 0)
            continue;
        if (stop && atomic_load(stop)) {
            rc = PF_ECONFLICT;
            break;
        }
        int64_t changed = 0;
        rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : PF_EDB;
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = db_sqlite_exec_text(db, NULL, BUMP_SQL, dates[i], (const char *)NULL);
        if (rc == 0)
            rc = db_sqlite_exec_text(db, &changed,
                                     "DELETE FROM analytics_daily WHERE owner = ?1 AND date < ?2",
                                     owner, date, (const char *)NULL);
        if (rc == 0 && sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            rc = PF_EDB;
        if (rc == 0)
            cs->daily_rows += changed;
    }
    sqlite3_finalize(next);
    sqlite3_finalize(stray);
    free(owner);
    free(dates);
    return rc;
}

int db_sqlite_cleanup_before(struct db *base, const char *date, const atomic_int *stop,
                             struct db_cleanup_stats *cs, char *err, size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    char marker[16] = "", (*dates)[11] = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    memset(cs, 0, sizeof(*cs));
    err[0] = '\0';
    /* Dates before the last cleanup's cutoff were purged then, and the
     * realtime writer adds nothing to them since (db_counts_add()): only
     * the dates from there on are visited, however long the history kept
     * in analytics_owner_daily. */
    int rc = db_sqlite_meta_get(&db->base, "cleanup_before", marker, sizeof(marker));
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
    if (rc == 0)
        rc = sweep_stray(db, date, stop, cs);
    if (rc == 0 && strcmp(date, marker) > 0) {
        char now[21];
        db_sqlite_now_iso(now);
        rc = meta_put(db, "cleanup_before", date, now);
    }
    /* Flush receipts matter only while their flush may be retried. */
    if (rc == 0)
        rc = db_sqlite_exec_text(db, NULL,
                                 "DELETE FROM analytics_flushes WHERE at < "
                                 "CAST(strftime('%s', 'now') AS INTEGER) - 7 * 86400",
                                 (const char *)NULL);
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

/* ---- Scheduled jobs ---- */

/* One node uses a SQLite database: nothing to lock against, so a claim is
 * won unless the slot's run has ended; the run is recorded all the same,
 * so that a slot a stop left half-done is taken up at the next start. */
int db_sqlite_job_begin(struct db *base, const char *job, int64_t slot, const char *node,
                        int retry_failed, enum db_job_claim *out)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    char s[24], retry[2] = {retry_failed ? '1' : '0', '\0'};
    int64_t changed = 0;
    snprintf(s, sizeof(s), "%lld", (long long)slot);
    int rc =
        db_sqlite_exec_text(db, &changed,
                            "INSERT INTO job_runs (job, slot, node, attempts, started_at) "
                            "VALUES (?1, ?2, ?3, 1, CAST(strftime('%s', 'now') AS INTEGER)) "
                            "ON CONFLICT (job, slot) DO UPDATE SET node = excluded.node, "
                            "attempts = job_runs.attempts + 1, started_at = excluded.started_at, "
                            "finished_at = NULL, ok = NULL "
                            "WHERE job_runs.finished_at IS NULL OR (?4 = '1' AND job_runs.ok = 0)",
                            job, s, node, retry, (const char *)NULL);
    if (rc == 0)
        *out = changed > 0 ? DB_JOB_WON : DB_JOB_ENDED;
    return rc;
}

int db_sqlite_job_end(struct db *base, const char *job, int64_t slot, enum db_job_outcome outcome)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    char s[24], ok[2] = {outcome == DB_JOB_DONE ? '1' : '0', '\0'};
    if (outcome == DB_JOB_ABANDONED)
        return 0; /* left unfinished: the next claim takes it */
    snprintf(s, sizeof(s), "%lld", (long long)slot);
    int rc = db_sqlite_exec_text(db, NULL,
                                 "UPDATE job_runs SET finished_at = "
                                 "CAST(strftime('%s', 'now') AS INTEGER), ok = CAST(?3 AS INTEGER) "
                                 "WHERE job = ?1 AND slot = ?2",
                                 job, s, ok, (const char *)NULL);
    if (rc == 0)
        rc = db_sqlite_exec_text(db, NULL,
                                 "DELETE FROM job_runs WHERE job = ?1 AND slot < "
                                 "CAST(?2 AS INTEGER) - 604800",
                                 job, s, (const char *)NULL);
    return rc;
}
