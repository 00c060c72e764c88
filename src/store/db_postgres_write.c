/* db_postgres_write.c - the PostgreSQL backend of db.h, part two: the
 * analytics writers (realtime counts, batch aggregation, meta rows,
 * retention) and the scheduled jobs' runs. Every write to a date's analytics_daily rows raises the
 * date's version in the same transaction, as in SQLite.
 *
 * A realtime flush is one transaction of a few statements whatever its
 * size: each table's counts travel as arrays (unnest) in one multi-row
 * upsert, grouped (a key given twice adds up) and in key order (two nodes
 * flushing the same keys lock them in the same order: no deadlock). The
 * batch writes a date's rows with COPY. See db_postgres.c for the locks. */
#include "store/db_postgres_int.h"

#include "base/err.h"
#include "base/timeutil.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOCK_DAYS_SHARED "SELECT pg_advisory_xact_lock_shared(1886938625)"
#define LOCK_DAYS "SELECT pg_advisory_xact_lock(1886938625)" /* DB_PG_LOCK_DAYS */

/* Raise the versions of the dates of a text[] (analytics_day_versions). */
#define BUMP_SQL                                                                                   \
    "INSERT INTO analytics_day_versions (date, version) SELECT d, 1 FROM unnest($1::text[]) d "    \
    "GROUP BY d ORDER BY d ON CONFLICT (date) DO UPDATE SET version = "                            \
    "analytics_day_versions.version + 1"

static const char *const sql_receipt =
    "INSERT INTO analytics_flushes (id, at) VALUES ($1, "
    "floor(extract(epoch FROM clock_timestamp()))) ON CONFLICT DO NOTHING";
static const char *const sql_skip =
    "SELECT (SELECT value FROM analytics_meta WHERE key = 'cleanup_before'), "
    "ARRAY(SELECT date FROM analytics_batch_days WHERE date = ANY($1::text[]))::text";
/* The bot_ columns' share of an upsert. */
#define ADD_BOTS                                                                                   \
    ", bot_requests = t.bot_requests + excluded.bot_requests, "                                    \
    "bot_bandwidth_bytes = t.bot_bandwidth_bytes + excluded.bot_bandwidth_bytes"
static const char *const sql_daily =
    "INSERT INTO analytics_daily AS t (owner, date, image_id, variant, country, requests, "
    "bandwidth_bytes, bot_requests, bot_bandwidth_bytes) SELECT o, d, i, v, c, SUM(r), SUM(b), "
    "SUM(br), SUM(bb) FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) AS u(o, d, i, v, c, r, b, br, bb) "
    "GROUP BY o, d, i, v, c ORDER BY o, d, i, v, c ON CONFLICT (owner, date, image_id, variant, "
    "country) DO UPDATE SET requests = t.requests + excluded.requests, "
    "bandwidth_bytes = t.bandwidth_bytes + excluded.bandwidth_bytes" ADD_BOTS;
static const char *const sql_owner_day =
    "INSERT INTO analytics_owner_daily AS t (owner, date, requests, bandwidth_bytes, "
    "bot_requests, bot_bandwidth_bytes) SELECT o, d, SUM(r), SUM(b), SUM(br), SUM(bb) "
    "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) "
    "AS u(o, d, r, b, br, bb) GROUP BY o, d ORDER BY o, d ON CONFLICT (owner, date) DO UPDATE SET "
    "requests = t.requests + excluded.requests, "
    "bandwidth_bytes = t.bandwidth_bytes + excluded.bandwidth_bytes" ADD_BOTS;
static const char *const sql_monthly =
    "INSERT INTO analytics_monthly AS t (owner, year_month, requests, bandwidth_bytes) "
    "SELECT o, substr(d, 1, 7), SUM(r), SUM(b) FROM unnest($1::text[], $2::text[], "
    "$3::bigint[], $4::bigint[]) AS u(o, d, r, b) GROUP BY 1, 2 ORDER BY 1, 2 "
    "ON CONFLICT (owner, year_month) DO UPDATE SET requests = t.requests + excluded.requests, "
    "bandwidth_bytes = t.bandwidth_bytes + excluded.bandwidth_bytes";
static const char *const sql_status =
    "INSERT INTO analytics_status_daily AS t (owner, date, status, requests, bot_requests) "
    "SELECT o, d, s, SUM(r), SUM(br) FROM unnest($1::text[], $2::text[], $3::int[], "
    "$4::bigint[], $5::bigint[]) AS u(o, d, s, r, br) GROUP BY o, d, s ORDER BY o, d, s "
    "ON CONFLICT (owner, date, status) DO UPDATE SET requests = t.requests + excluded.requests, "
    "bot_requests = t.bot_requests + excluded.bot_requests";
static const char *const sql_hourly =
    "INSERT INTO analytics_hourly AS t (owner, image_id, hour, requests, bandwidth_bytes, "
    "bot_requests, bot_bandwidth_bytes) SELECT o, i, h, SUM(r), SUM(b), SUM(br), SUM(bb) "
    "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], "
    "$7::bigint[]) AS u(o, i, h, r, b, br, bb) GROUP BY o, i, h ORDER BY o, i, h "
    "ON CONFLICT (owner, image_id, hour) DO UPDATE SET requests = t.requests + excluded.requests, "
    "bandwidth_bytes = t.bandwidth_bytes + excluded.bandwidth_bytes" ADD_BOTS;
static const char *const sql_clients =
    "INSERT INTO analytics_clients_daily AS t (owner, date, image_id, client, requests, "
    "bandwidth_bytes) SELECT o, d, i, k, SUM(r), SUM(b) FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::bigint[], $6::bigint[]) AS u(o, d, i, k, r, b) "
    "GROUP BY o, d, i, k ORDER BY o, d, i, k ON CONFLICT (owner, date, image_id, client) "
    "DO UPDATE SET requests = t.requests + excluded.requests, "
    "bandwidth_bytes = t.bandwidth_bytes + excluded.bandwidth_bytes";
static const char *const sql_bump = BUMP_SQL;

/* The array literals of one flush: per kind, one per column. */
#define MAX_COLS 9
struct arrays {
    struct strbuf col[MAX_COLS];
    size_t n;
};

static void arrays_add(struct arrays *a, int ncols, const char *const *text, const int64_t *ints,
                       int nints)
{
    for (int c = 0; c < ncols; c++) {
        struct strbuf *b = &a->col[c];
        strbuf_put(b, a->n == 0 ? "{" : ",", 1);
        if (c < ncols - nints && text[c] == NULL)
            strbuf_puts(b, "NULL"); /* refused by the column's NOT NULL */
        else if (c < ncols - nints)
            db_pg_buf_elem(b, text[c]);
        else
            strbuf_printf(b, "%lld", (long long)ints[c - (ncols - nints)]);
    }
}

static int arrays_run(struct db_pg *db, struct arrays *a, int ncols, const char *sql)
{
    const char *p[MAX_COLS];
    if (a->n == 0)
        return 0;
    for (int c = 0; c < ncols; c++) {
        strbuf_put(&a->col[c], "}", 1);
        if (a->col[c].failed)
            return PF_ENOMEM;
        p[c] = a->col[c].p;
    }
    return db_pg_query(db, sql, ncols, p, NULL);
}

static void arrays_free(struct arrays *a)
{
    for (int c = 0; c < MAX_COLS; c++)
        strbuf_free(&a->col[c]);
}

/* Whether `date` is in the text form of a text[] ("{a,b}"). */
static int listed(const char *list, const char *date)
{
    const char *p = list ? strstr(list, date) : NULL;
    return p != NULL;
}

int db_pg_counts_add(struct db *base, const char *flush_id, const struct db_count *rows, size_t n,
                     int64_t *dropped, char *err, size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    struct arrays daily = {0}, owner_day = {0}, status = {0}, dates = {0}, bumps = {0};
    struct arrays hourly = {0}, clients = {0};
    PGresult *r = NULL;
    char purged[16] = "", *done_list = NULL, bumped[8][11];
    int nbumped = 0;
    int64_t left_out = 0;
    int rc = 0;
    err[0] = '\0';
    /* The flush's dates (a few), to learn which the batch has done. */
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(rows[j].date, rows[i].date) == 0;
        if (!seen) {
            const char *t[1] = {rows[i].date};
            arrays_add(&dates, 1, t, NULL, 0);
            dates.n++;
        }
    }
    rc = db_pg_begin(db);
    if (rc == 0 && flush_id != NULL) {
        const char *p[1] = {flush_id};
        rc = db_pg_query(db, sql_receipt, 1, p, &r);
        if (rc == 0 && strcmp(PQcmdTuples(r), "0") == 0) { /* written before */
            PQclear(r);
            db_pg_rollback(db);
            arrays_free(&dates);
            if (dropped != NULL)
                *dropped = 0;
            return 0;
        }
        PQclear(r);
        r = NULL;
    }
    if (rc == 0)
        rc = db_pg_query(db, LOCK_DAYS_SHARED, 0, NULL, NULL);
    if (rc == 0 && dates.n > 0) {
        strbuf_put(&dates.col[0], "}", 1);
        const char *p[1] = {dates.col[0].p};
        rc = dates.col[0].failed ? PF_ENOMEM : db_pg_query(db, sql_skip, 1, p, &r);
        if (rc == 0) {
            db_pg_copy_cell(purged, sizeof(purged), r, 0, 0);
            done_list = strdup(PQgetvalue(r, 0, 1));
            if (done_list == NULL)
                rc = PF_ENOMEM;
        }
        PQclear(r);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct db_count *c = &rows[i];
        /* Checked under the shared lock: a batch or cleanup commits either
         * before (these counts are left out) or after (it replaces them). */
        if (strcmp(c->date, purged) < 0 || listed(done_list, c->date)) {
            left_out += c->kind == DB_COUNT_STATUS ? c->requests : 0;
            continue;
        }
        /* A bot's count adds to the row's bot_ columns too. */
        int64_t br = c->client == DB_CLIENT_BOT ? c->requests : 0;
        int64_t bb = c->client == DB_CLIENT_BOT ? c->bytes : 0;
        if (c->kind == DB_COUNT_DAILY) {
            const char *t[5] = {c->owner, c->date, c->image_id, c->variant, c->country};
            int64_t v[4] = {c->requests, c->bytes, br, bb};
            arrays_add(&daily, 9, t, v, 4);
            daily.n++;
            /* One element per date (a flush spans a day or two; past 8
             * dates a date may repeat, which the GROUP BY absorbs). */
            int seen = 0;
            for (int j = 0; j < nbumped && !seen; j++)
                seen = strcmp(bumped[j], c->date) == 0;
            const char *d[1] = {c->date};
            if (!seen) {
                if (nbumped < 8)
                    snprintf(bumped[nbumped++], sizeof(bumped[0]), "%s", c->date);
                arrays_add(&bumps, 1, d, NULL, 0);
                bumps.n++;
            }
        } else if (c->kind == DB_COUNT_OWNER_DAY) {
            const char *t[2] = {c->owner, c->date};
            int64_t v[4] = {c->requests, c->bytes, br, bb};
            arrays_add(&owner_day, 6, t, v, 4);
            owner_day.n++;
        } else if (c->kind == DB_COUNT_HOURLY) {
            const char *t[2] = {c->owner, c->image_id};
            int64_t v[5] = {c->hour, c->requests, c->bytes, br, bb};
            arrays_add(&hourly, 7, t, v, 5);
            hourly.n++;
        } else if (c->kind == DB_COUNT_CLIENT) {
            const char *t[4] = {c->owner, c->date, c->image_id, db_client_name(c->client)};
            int64_t v[2] = {c->requests, c->bytes};
            if (t[3] == NULL) {
                rc = PF_EINVAL;
                snprintf(db->msg, sizeof(db->msg), "a count of an unknown client class");
                break;
            }
            arrays_add(&clients, 6, t, v, 2);
            clients.n++;
        } else {
            const char *t[2] = {c->owner, c->date};
            int64_t v[3] = {c->status, c->requests, br};
            arrays_add(&status, 5, t, v, 3);
            status.n++;
        }
    }
    if (rc == 0)
        rc = arrays_run(db, &daily, 9, sql_daily);
    if (rc == 0)
        rc = arrays_run(db, &owner_day, 6, sql_owner_day);
    if (rc == 0 && owner_day.n > 0) {
        const char *p[4] = {owner_day.col[0].p, owner_day.col[1].p, owner_day.col[2].p,
                            owner_day.col[3].p};
        rc = db_pg_query(db, sql_monthly, 4, p, NULL);
    }
    if (rc == 0)
        rc = arrays_run(db, &status, 5, sql_status);
    if (rc == 0)
        rc = arrays_run(db, &hourly, 7, sql_hourly);
    if (rc == 0)
        rc = arrays_run(db, &clients, 6, sql_clients);
    if (rc == 0)
        rc = arrays_run(db, &bumps, 1, sql_bump);
    if (rc == 0)
        rc = db_pg_commit(db);
    if (rc != 0) {
        snprintf(err, errlen, "%s", rc == PF_ENOMEM ? "out of memory" : db->msg);
        db_pg_rollback(db);
    } else if (dropped != NULL) {
        *dropped = left_out;
    }
    free(done_list);
    arrays_free(&daily);
    arrays_free(&owner_day);
    arrays_free(&status);
    arrays_free(&hourly);
    arrays_free(&clients);
    arrays_free(&dates);
    arrays_free(&bumps);
    return rc;
}

/* ---- Batch aggregation and retention ---------------------------------- */

/* A one-row, one-integer query with `date` as $1. */
static int query_int(struct db_pg *db, const char *sql, const char *date, int64_t *out)
{
    PGresult *r = NULL;
    const char *p[1] = {date};
    int rc = db_pg_query(db, sql, 1, p, &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = PF_ENOTFOUND;
    else if (rc == 0)
        *out = db_pg_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static const char *const sql_meta_put =
    "INSERT INTO analytics_meta (key, value, updated_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

static int meta_put(struct db_pg *db, const char *key, const char *value, const char *now)
{
    const char *p[3] = {key, value, now};
    return db_pg_query(db, sql_meta_put, 3, p, NULL);
}

/* COPY the date's new rows. */
static int insert_rows(struct db_pg *db, const char *date, const struct db_daily_row *daily,
                       size_t ndaily, const struct db_status_row *status, size_t nstatus)
{
    size_t n = ndaily > nstatus ? ndaily : nstatus;
    const char **v = malloc((n > 0 ? n : 1) * 9 * sizeof(*v));
    char(*num)[4][24] = malloc((n > 0 ? n : 1) * sizeof(*num));
    int rc = v == NULL || num == NULL ? PF_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < ndaily; i++) {
        const struct db_daily_row *d = &daily[i];
        snprintf(num[i][0], sizeof(num[i][0]), "%lld", (long long)d->requests);
        snprintf(num[i][1], sizeof(num[i][1]), "%lld", (long long)d->bytes);
        snprintf(num[i][2], sizeof(num[i][2]), "%lld", (long long)d->bot_requests);
        snprintf(num[i][3], sizeof(num[i][3]), "%lld", (long long)d->bot_bytes);
        const char *row[9] = {d->owner,  date,      d->image_id, d->variant, d->country,
                              num[i][0], num[i][1], num[i][2],   num[i][3]};
        memcpy(&v[i * 9], row, sizeof(row));
    }
    if (rc == 0)
        rc = db_pg_copy_in(db, "analytics_daily",
                           "owner, date, image_id, variant, country, requests, bandwidth_bytes, "
                           "bot_requests, bot_bandwidth_bytes",
                           9, v, ndaily);
    for (size_t i = 0; rc == 0 && i < nstatus; i++) {
        snprintf(num[i][0], sizeof(num[i][0]), "%d", status[i].status);
        snprintf(num[i][1], sizeof(num[i][1]), "%lld", (long long)status[i].requests);
        snprintf(num[i][2], sizeof(num[i][2]), "%lld", (long long)status[i].bot_requests);
        const char *row[5] = {status[i].owner, date, num[i][0], num[i][1], num[i][2]};
        memcpy(&v[i * 5], row, sizeof(row));
    }
    if (rc == 0)
        rc = db_pg_copy_in(db, "analytics_status_daily",
                           "owner, date, status, requests, bot_requests", 5, v, nstatus);
    if (rc == PF_ENOMEM)
        snprintf(db->msg, sizeof(db->msg), "out of memory");
    free(v);
    free(num);
    return rc;
}

/* batch_owners := the owners with rows on the date (their day totals) and
 * those of the new (owner-sorted) rows. */
static int collect_owners(struct db_pg *db, const char *date, const struct db_daily_row *daily,
                          size_t ndaily)
{
    static const char *const sql_fill =
        "INSERT INTO batch_owners SELECT owner FROM analytics_owner_daily WHERE date = $1 "
        "UNION SELECT unnest($2::text[]) ON CONFLICT DO NOTHING";
    struct strbuf owners = {0};
    int rc = 0;
    if (!db->temp_ok)
        rc = db_pg_exec(db,
                        "CREATE TEMP TABLE IF NOT EXISTS batch_owners (owner TEXT COLLATE \"C\" "
                        "PRIMARY KEY) ON COMMIT DELETE ROWS",
                        0, NULL, NULL);
    db->temp_ok = rc == 0;
    strbuf_put(&owners, "{", 1);
    for (size_t i = 0, k = 0; i < ndaily; i++) {
        if (i > 0 && strcmp(daily[i].owner, daily[i - 1].owner) == 0)
            continue;
        if (k++ > 0)
            strbuf_put(&owners, ",", 1);
        db_pg_buf_elem(&owners, daily[i].owner);
    }
    strbuf_put(&owners, "}", 1);
    const char *p[2] = {date, owners.p};
    if (rc == 0)
        rc = owners.failed ? PF_ENOMEM : db_pg_query(db, sql_fill, 2, p, NULL);
    strbuf_free(&owners);
    return rc;
}

/* The date's analytics_owner_daily rows from the new rows, and the month's
 * analytics_monthly rows of every owner concerned. */
static int recompute_owners(struct db_pg *db, const char *date, const struct db_daily_row *daily,
                            size_t ndaily)
{
    static const char *const sql_wipe = "DELETE FROM analytics_owner_daily WHERE date = $1";
    static const char *const sql_put =
        "INSERT INTO analytics_owner_daily (owner, date, requests, bandwidth_bytes, bot_requests, "
        "bot_bandwidth_bytes) SELECT o, $1, r, b, br, bb FROM unnest($2::text[], $3::bigint[], "
        "$4::bigint[], $5::bigint[], $6::bigint[]) AS u(o, r, b, br, bb)";
    static const char *const sql_month_wipe =
        "DELETE FROM analytics_monthly WHERE year_month = $1 AND owner IN "
        "(SELECT owner FROM batch_owners)";
    static const char *const sql_month_put =
        "INSERT INTO analytics_monthly (owner, year_month, requests, bandwidth_bytes) "
        "SELECT owner, $1, SUM(requests), SUM(bandwidth_bytes) FROM analytics_owner_daily "
        "WHERE owner IN (SELECT owner FROM batch_owners) AND date BETWEEN $2 AND $3 "
        "GROUP BY owner";
    struct arrays a = {0};
    char month[8], first[11], last[11];
    snprintf(month, sizeof(month), "%.7s", date);
    snprintf(first, sizeof(first), "%s-01", month);
    snprintf(last, sizeof(last), "%s-31", month);
    int rc = db_pg_query(db, sql_wipe, 1, (const char *[]){date}, NULL);
    for (size_t i = 0; rc == 0 && i < ndaily;) {
        int64_t v[4] = {0, 0, 0, 0};
        size_t j = i;
        for (; j < ndaily && strcmp(daily[j].owner, daily[i].owner) == 0; j++) {
            v[0] += daily[j].requests;
            v[1] += daily[j].bytes;
            v[2] += daily[j].bot_requests;
            v[3] += daily[j].bot_bytes;
        }
        const char *t[1] = {daily[i].owner};
        arrays_add(&a, 5, t, v, 4);
        a.n++;
        i = j;
    }
    if (rc == 0 && a.n > 0) {
        int failed = 0;
        for (int c = 0; c < 5; c++) {
            strbuf_put(&a.col[c], "}", 1);
            failed |= a.col[c].failed;
        }
        const char *p[6] = {date, a.col[0].p, a.col[1].p, a.col[2].p, a.col[3].p, a.col[4].p};
        rc = failed ? PF_ENOMEM : db_pg_query(db, sql_put, 6, p, NULL);
    }
    arrays_free(&a);
    if (rc == 0) {
        const char *p[1] = {month};
        rc = db_pg_query(db, sql_month_wipe, 1, p, NULL);
    }
    if (rc == 0) {
        const char *p[3] = {month, first, last};
        rc = db_pg_query(db, sql_month_put, 3, p, NULL);
    }
    return rc;
}

/* The date's analytics_clients_daily rows, and if more->hours its
 * analytics_hourly rows (its 24 hours, by the index on hour), become the
 * batch's, by COPY. */
static int replace_more(struct db_pg *db, const char *date, const struct db_batch_more *more)
{
    static const char *const sql_wipe_clients =
        "DELETE FROM analytics_clients_daily WHERE date = $1";
    static const char *const sql_wipe_hours =
        "DELETE FROM analytics_hourly WHERE hour >= $1 AND hour < $1::bigint + 24";
    size_t n = more->nclients > more->nhourly ? more->nclients : more->nhourly;
    const char **v = malloc((n > 0 ? n : 1) * 7 * sizeof(*v));
    char(*num)[5][24] = malloc((n > 0 ? n : 1) * sizeof(*num));
    int64_t first = 0;
    int rc = v == NULL || num == NULL ? PF_ENOMEM : 0;
    if (rc == 0)
        rc = db_pg_query(db, sql_wipe_clients, 1, (const char *[]){date}, NULL);
    for (size_t i = 0; rc == 0 && i < more->nclients; i++) {
        const struct db_client_row *c = &more->clients[i];
        snprintf(num[i][0], sizeof(num[i][0]), "%lld", (long long)c->requests);
        snprintf(num[i][1], sizeof(num[i][1]), "%lld", (long long)c->bytes);
        const char *row[6] = {c->owner,  date,     c->image_id, db_client_name(c->client),
                              num[i][0], num[i][1]};
        if (row[3] == NULL) {
            rc = PF_EINVAL;
            snprintf(db->msg, sizeof(db->msg), "a row of an unknown client class");
        }
        memcpy(&v[i * 6], row, sizeof(row));
    }
    if (rc == 0)
        rc = db_pg_copy_in(db, "analytics_clients_daily",
                           "owner, date, image_id, client, requests, bandwidth_bytes", 6, v,
                           more->nclients);
    if (rc == 0 && more->hours && timeutil_parse_date(date, &first) != 0) {
        rc = PF_EINVAL;
        snprintf(db->msg, sizeof(db->msg), "not a date: %s", date);
    }
    if (rc == 0 && more->hours) {
        snprintf(num[0][0], sizeof(num[0][0]), "%lld", (long long)(first / 3600));
        rc = db_pg_query(db, sql_wipe_hours, 1, (const char *[]){num[0][0]}, NULL);
    }
    for (size_t i = 0; rc == 0 && more->hours && i < more->nhourly; i++) {
        const struct db_hourly_row *h = &more->hourly[i];
        snprintf(num[i][0], sizeof(num[i][0]), "%lld", (long long)h->hour);
        snprintf(num[i][1], sizeof(num[i][1]), "%lld", (long long)h->requests);
        snprintf(num[i][2], sizeof(num[i][2]), "%lld", (long long)h->bytes);
        snprintf(num[i][3], sizeof(num[i][3]), "%lld", (long long)h->bot_requests);
        snprintf(num[i][4], sizeof(num[i][4]), "%lld", (long long)h->bot_bytes);
        const char *row[7] = {h->owner,  h->image_id, num[i][0], num[i][1],
                              num[i][2], num[i][3],   num[i][4]};
        memcpy(&v[i * 7], row, sizeof(row));
    }
    if (rc == 0 && more->hours)
        rc = db_pg_copy_in(db, "analytics_hourly",
                           "owner, image_id, hour, requests, bandwidth_bytes, bot_requests, "
                           "bot_bandwidth_bytes",
                           7, v, more->nhourly);
    if (rc == PF_ENOMEM)
        snprintf(db->msg, sizeof(db->msg), "out of memory");
    free(v);
    free(num);
    return rc;
}

int db_pg_batch_replace_day(struct db *base, const char *date, const struct db_daily_row *daily,
                            size_t ndaily, const struct db_status_row *status, size_t nstatus,
                            const struct db_batch_more *more, int64_t events,
                            struct db_batch_stats *bs, char *err, size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql_before =
        "SELECT COALESCE(SUM(requests), 0) FROM analytics_daily WHERE owner IN "
        "(SELECT owner FROM batch_owners) AND date = $1";
    static const char *const sql_wipe_daily =
        "DELETE FROM analytics_daily WHERE owner IN (SELECT owner FROM batch_owners) AND date = $1";
    static const char *const sql_wipe_status = "DELETE FROM analytics_status_daily WHERE date = $1";
    static const char *const sql_day =
        "INSERT INTO analytics_batch_days (date, events, daily_rows, status_rows, drift, "
        "aggregated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (date) DO UPDATE SET "
        "events = excluded.events, daily_rows = excluded.daily_rows, status_rows = "
        "excluded.status_rows, drift = excluded.drift, aggregated_at = excluded.aggregated_at";
    static const char *const sql_last =
        "SELECT value FROM analytics_meta WHERE key = 'last_aggregation_date'";
    char now[21], value[32], last[16] = "", nums[4][24], dates[1][32];
    PGresult *r = NULL;
    int rc;
    err[0] = '\0';
    memset(bs, 0, sizeof(*bs));
    db_pg_now_iso(now);
    for (size_t i = 0; i < ndaily; i++)
        bs->requests += daily[i].requests;
    snprintf(dates[0], sizeof(dates[0]), "{\"%s\"}", date);
    rc = db_pg_begin(db);
    if (rc == 0)
        rc = db_pg_query(db, LOCK_DAYS, 0, NULL, NULL);
    if (rc == 0)
        rc = collect_owners(db, date, daily, ndaily);
    if (rc == 0)
        rc = query_int(db, sql_before, date, &bs->requests_before);
    bs->drift = bs->requests_before - bs->requests;
    if (rc == 0)
        rc = db_pg_query(db, sql_wipe_daily, 1, (const char *[]){date}, NULL);
    if (rc == 0)
        rc = db_pg_query(db, sql_wipe_status, 1, (const char *[]){date}, NULL);
    if (rc == 0)
        rc = insert_rows(db, date, daily, ndaily, status, nstatus);
    if (rc == 0)
        rc = recompute_owners(db, date, daily, ndaily);
    if (rc == 0 && more != NULL)
        rc = replace_more(db, date, more);
    if (rc == 0)
        rc = db_pg_query(db, sql_bump, 1, (const char *[]){dates[0]}, NULL);
    snprintf(nums[0], sizeof(nums[0]), "%lld", (long long)events);
    snprintf(nums[1], sizeof(nums[1]), "%zu", ndaily);
    snprintf(nums[2], sizeof(nums[2]), "%zu", nstatus);
    snprintf(nums[3], sizeof(nums[3]), "%lld", (long long)bs->drift);
    if (rc == 0)
        rc = db_pg_query(db, sql_day, 6,
                         (const char *[]){date, nums[0], nums[1], nums[2], nums[3], now}, NULL);
    /* The meta rows describe the run of the newest date aggregated. */
    if (rc == 0 && (rc = db_pg_query(db, sql_last, 0, NULL, &r)) == 0 && PQntuples(r) > 0)
        db_pg_copy_cell(last, sizeof(last), r, 0, 0);
    PQclear(r);
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
    if (rc == 0)
        rc = db_pg_commit(db);
    if (rc != 0) {
        snprintf(err, errlen, "%s", rc == PF_ENOMEM ? "out of memory" : db->msg);
        db_pg_rollback(db);
    }
    return rc;
}

int db_pg_flush_nodes(struct db *base, int64_t from, int64_t to,
                      int (*fn)(void *ctx, const char *node), void *ctx)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql = "SELECT DISTINCT split_part(id, '.', 1) FROM analytics_flushes "
                                   "WHERE at >= $1 AND at < $2 AND position('.' IN id) > 1";
    char a[24], b[24];
    PGresult *r = NULL;
    snprintf(a, sizeof(a), "%lld", (long long)from);
    snprintf(b, sizeof(b), "%lld", (long long)to);
    int rc = db_pg_query(db, sql, 2, (const char *[]){a, b}, &r);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = fn(ctx, PQgetvalue(r, i, 0));
    PQclear(r);
    return rc;
}

int db_pg_batch_day_done(struct db *base, const char *date, int *done)
{
    int64_t one = 0;
    int rc = query_int((struct db_pg *)base, "SELECT 1 FROM analytics_batch_days WHERE date = $1",
                       date, &one);
    *done = rc == 0;
    return rc == PF_ENOTFOUND ? 0 : rc;
}

int db_pg_day_requests(struct db *base, const char *date, int64_t *requests)
{
    return query_int((struct db_pg *)base,
                     "SELECT GREATEST((SELECT COALESCE(SUM(requests), 0) FROM "
                     "analytics_status_daily WHERE date = $1), (SELECT COALESCE(SUM(requests), 0) "
                     "FROM analytics_owner_daily WHERE date = $1))",
                     date, requests);
}

int db_pg_meta_get(struct db *base, const char *key, char *value, size_t len)
{
    struct db_pg *db = (struct db_pg *)base;
    PGresult *r = NULL;
    int rc = db_pg_query(db, "SELECT value FROM analytics_meta WHERE key = $1", 1,
                         (const char *[]){key}, &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = PF_ENOTFOUND;
    else if (rc == 0)
        db_pg_copy_cell(value, len, r, 0, 0);
    PQclear(r);
    return rc;
}

int db_pg_meta_set(struct db *base, const char *key, const char *value, char *err, size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    char now[21];
    db_pg_now_iso(now);
    int rc = meta_put(db, key, value, now);
    if (rc != 0)
        snprintf(err, errlen, "%s", db->msg);
    return rc;
}

/* Delete one date's rows of both tables in one transaction. */
static int cleanup_date(struct db_pg *db, const char *date, struct db_cleanup_stats *cs)
{
    static const char *const sql[2] = {
        ("DELETE FROM analytics_daily WHERE owner IN (SELECT owner FROM analytics_owner_daily "
         "WHERE date = $1) AND date = $1"),
        "DELETE FROM analytics_status_daily WHERE date = $1"};
    char list[32];
    int64_t changed[2] = {0, 0};
    PGresult *r = NULL;
    snprintf(list, sizeof(list), "{\"%s\"}", date);
    int rc = db_pg_begin(db);
    if (rc == 0)
        rc = db_pg_query(db, LOCK_DAYS, 0, NULL, NULL);
    for (int i = 0; rc == 0 && i < 2; i++) {
        rc = db_pg_query(db, sql[i], 1, (const char *[]){date}, &r);
        if (rc == 0)
            changed[i] = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
        r = NULL;
    }
    if (rc == 0)
        rc = db_pg_query(db, sql_bump, 1, (const char *[]){list}, NULL);
    if (rc == 0)
        rc = db_pg_commit(db);
    else
        db_pg_rollback(db);
    if (rc == 0) {
        cs->daily_rows += changed[0];
        cs->status_rows += changed[1];
        cs->dates += changed[0] + changed[1] > 0;
    }
    return rc;
}

/* As sweep_stray() in db_sqlite_write.c: the rows of analytics_daily
 * before `date` that the dated pass cannot see (dates before the last
 * cutoff, owners with no analytics_owner_daily row for the date), found by
 * a loose scan of the primary key (one index seek per owner) and deleted
 * one owner per transaction, their dates' versions raised. */
static int sweep_stray(struct db_pg *db, const char *date, const atomic_int *stop,
                       struct db_cleanup_stats *cs)
{
    PGresult *next = NULL, *stray = NULL, *r = NULL;
    char *owner = strdup("");
    int rc = owner != NULL ? 0 : PF_ENOMEM;
    while (rc == 0) {
        rc = db_pg_query(db,
                         "SELECT owner FROM analytics_daily WHERE owner > $1 ORDER BY owner "
                         "LIMIT 1",
                         1, (const char *[]){owner}, &next);
        if (rc != 0 || PQntuples(next) == 0)
            break;
        char *o = strdup(PQgetvalue(next, 0, 0));
        PQclear(next);
        next = NULL;
        if (o == NULL) {
            rc = PF_ENOMEM;
            break;
        }
        free(owner);
        owner = o;
        rc = db_pg_query(db,
                         "SELECT coalesce('{' || string_agg(DISTINCT date, ',') || '}', '') "
                         "FROM analytics_daily WHERE owner = $1 AND date < $2",
                         2, (const char *[]){owner, date}, &stray);
        const char *list = rc == 0 && PQntuples(stray) == 1 ? PQgetvalue(stray, 0, 0) : "";
        if (rc != 0 || list[0] == '\0') {
            PQclear(stray);
            stray = NULL;
            continue;
        }
        if (stop && atomic_load(stop)) {
            rc = PF_ECONFLICT;
            break;
        }
        rc = db_pg_begin(db);
        if (rc == 0)
            rc = db_pg_query(db, LOCK_DAYS, 0, NULL, NULL);
        if (rc == 0)
            rc = db_pg_query(db, sql_bump, 1, (const char *[]){list}, NULL);
        if (rc == 0)
            rc = db_pg_query(db, "DELETE FROM analytics_daily WHERE owner = $1 AND date < $2", 2,
                             (const char *[]){owner, date}, &r);
        int64_t changed = rc == 0 ? strtoll(PQcmdTuples(r), NULL, 10) : 0;
        PQclear(r);
        r = NULL;
        if (rc == 0)
            rc = db_pg_commit(db);
        else
            db_pg_rollback(db);
        if (rc == 0)
            cs->daily_rows += changed;
        PQclear(stray);
        stray = NULL;
    }
    PQclear(next);
    PQclear(stray);
    free(owner);
    return rc;
}

int db_pg_cleanup_before(struct db *base, const char *date, const atomic_int *stop,
                         struct db_cleanup_stats *cs, char *err, size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql_dates =
        "SELECT date FROM analytics_owner_daily WHERE date >= $1 AND date < $2 "
        "UNION SELECT date FROM analytics_status_daily WHERE date < $2 ORDER BY 1";
    static const char *const sql_prune =
        "DELETE FROM analytics_flushes WHERE at < floor(extract(epoch FROM clock_timestamp())) - "
        "7 * 86400; DELETE FROM api_rate WHERE sec < floor(extract(epoch FROM clock_timestamp())) "
        "- 120";
    char marker[16] = "";
    PGresult *r = NULL;
    memset(cs, 0, sizeof(*cs));
    err[0] = '\0';
    /* As in SQLite: only the dates from the last cutoff on are visited. */
    int rc = db_pg_meta_get(base, "cleanup_before", marker, sizeof(marker));
    if (rc == PF_ENOTFOUND)
        rc = 0;
    if (rc == 0)
        rc = db_pg_query(db, sql_dates, 2, (const char *[]){marker, date}, &r);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = stop && atomic_load(stop) ? PF_ECONFLICT : cleanup_date(db, PQgetvalue(r, i, 0), cs);
    PQclear(r);
    if (rc == 0)
        rc = sweep_stray(db, date, stop, cs);
    if (rc == 0 && strcmp(date, marker) > 0) {
        char now[21];
        db_pg_now_iso(now);
        rc = meta_put(db, "cleanup_before", date, now);
    }
    /* Flush receipts matter only while their flush may be retried. */
    if (rc == 0)
        rc = db_pg_exec(db, sql_prune, 0, NULL, NULL);
    if (rc != 0)
        snprintf(err, errlen, "%s", rc == PF_ECONFLICT ? "stopped" : db->msg);
    return rc;
}

/* Delete t's rows whose key is below $1, one key value (a date, an hour)
 * per statement, and so per transaction: the smallest value by the key's
 * index, then its rows. OUT: *rows += deleted. */
static int delete_below(struct db_pg *db, const char *sql, const char *cut, int64_t *rows)
{
    for (;;) {
        PGresult *r = NULL;
        int rc = db_pg_query(db, sql, 1, (const char *[]){cut}, &r);
        int64_t n = rc == 0 ? strtoll(PQcmdTuples(r), NULL, 10) : 0;
        PQclear(r);
        if (rc != 0 || n == 0)
            return rc;
        *rows += n;
    }
}

int db_pg_cleanup_more_before(struct db *base, const char *date, int64_t hour, int64_t *rows,
                              char *err, size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql[3] = {
        ("DELETE FROM analytics_clients_daily WHERE date = "
         "(SELECT MIN(date) FROM analytics_clients_daily WHERE date < $1)"),
        ("DELETE FROM analytics_uniques_daily WHERE date = "
         "(SELECT MIN(date) FROM analytics_uniques_daily WHERE date < $1)"),
        ("DELETE FROM analytics_hourly WHERE hour = "
         "(SELECT MIN(hour) FROM analytics_hourly WHERE hour < $1::bigint)")};
    char h[24];
    int rc = 0;
    err[0] = '\0';
    *rows = 0;
    snprintf(h, sizeof(h), "%lld", (long long)hour);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = delete_below(db, sql[i], i < 2 ? date : h, rows);
    if (rc != 0)
        snprintf(err, errlen, "%s", db->msg);
    return rc;
}

/* ---- Scheduled jobs: pixflare_job_begin() and _end() (db_postgres.c) ---- */

int db_pg_job_begin(struct db *base, const char *job, int64_t slot, const char *node,
                    int retry_failed, enum db_job_claim *out)
{
    struct db_pg *db = (struct db_pg *)base;
    PGresult *r = NULL;
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)slot);
    const char *p[4] = {job, s, node, retry_failed ? "true" : "false"};
    int rc = db_pg_query(db, "SELECT pixflare_job_begin($1, $2, $3, $4)", 4, p, &r);
    if (rc == 0 && PQntuples(r) == 1) {
        const char *v = PQgetvalue(r, 0, 0);
        *out = strcmp(v, "won") == 0    ? DB_JOB_WON
               : strcmp(v, "busy") == 0 ? DB_JOB_BUSY
                                        : DB_JOB_ENDED;
    } else if (rc == 0) {
        rc = PF_EDB;
    }
    PQclear(r);
    return rc;
}

int db_pg_job_end(struct db *base, const char *job, int64_t slot, enum db_job_outcome outcome)
{
    struct db_pg *db = (struct db_pg *)base;
    char s[24], o[4];
    snprintf(s, sizeof(s), "%lld", (long long)slot);
    snprintf(o, sizeof(o), "%d", outcome == DB_JOB_DONE ? 0 : outcome == DB_JOB_FAILED ? 1 : 2);
    const char *p[3] = {job, s, o};
    return db_pg_query(db, "SELECT pixflare_job_end($1, $2, $3)", 3, p, NULL);
}
