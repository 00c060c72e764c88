/* db.c - see db.h: the backend is chosen by PIXFLARE_DATABASE's scheme, and
 * every operation goes through its table (db_int.h). */
#include "store/db.h"
#include "store/db_int.h"

#include "base/err.h"
#include "base/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* pixflare_database_errors_total{reason}: every failed call of the database
 * (not the answers "not found" or "exists", nor a caller's bad input). */
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;
static int m_unavailable, m_error;

static void metrics_init(void)
{
    const char *help = "Database calls that failed: unavailable (PostgreSQL down or "
                       "reconnecting) or error.";
    m_unavailable =
        metrics_counter("pixflare_database_errors_total", "reason=\"unavailable\"", help, 0);
    m_error = metrics_counter("pixflare_database_errors_total", "reason=\"error\"", help, 0);
}

static int counted(int rc)
{
    if (rc == PF_EUNAVAIL)
        metrics_inc(m_unavailable);
    else if (rc == PF_EDB || rc == PF_EIO || rc == PF_ENOMEM)
        metrics_inc(m_error);
    return rc;
}

/* db_open() and db_open_check(): `check` NULL or the version's place. */
static int open_url(const char *url, int *check, struct db **out, char *err, size_t errlen)
{
    *out = NULL;
    pthread_once(&metrics_once, metrics_init);
    if (strncmp(url, "sqlite:", 7) == 0 && url[7] != '\0')
        return db_sqlite_open(url + 7, check, out, err, errlen);
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return db_postgres_open(url, check, out, err, errlen);
    /* Only the scheme, and only a plain one: the rest of a URL, or a
     * keyword=value connection string, may carry a password. */
    size_t n = strcspn(url, ":");
    if (url[n] == ':' && n > 0 && n <= 16 && strspn(url, "abcdefghijklmnopqrstuvwxyz+-.") == n)
        snprintf(err, errlen,
                 "unsupported database URL scheme '%.*s' (expected sqlite:PATH or "
                 "postgres://...)",
                 (int)n, url);
    else
        snprintf(err, errlen,
                 "the database is not a URL of a known scheme (expected sqlite:PATH or "
                 "postgres://...)");
    return PF_EINVAL;
}

int db_open(const char *url, struct db **out, char *err, size_t errlen)
{
    return open_url(url, NULL, out, err, errlen);
}

int db_open_check(const char *url, struct db **out, int *schema, char *err, size_t errlen)
{
    *schema = 0;
    return open_url(url, schema, out, err, errlen);
}

int db_now_ms(struct db *db, int64_t *ms)
{
    return counted(db->ops->now_ms(db, ms));
}

int db_backup(struct db *db, const char *dest, db_backup_progress_fn progress, void *ctx, char *err,
              size_t errlen)
{
    return db->ops->backup(db, dest, progress, ctx, err, errlen);
}

void db_close(struct db *db)
{
    if (db != NULL)
        db->ops->close(db);
}

void db_set_busy_timeout(struct db *db, int ms)
{
    db->ops->set_busy_timeout(db, ms);
}

int db_image_insert(struct db *db, const struct db_image *img)
{
    return counted(db->ops->image_insert(db, img));
}

int db_image_by_path(struct db *db, const char *owner, const char *album, const char *filename,
                     struct db_image *out)
{
    return counted(db->ops->image_by_path(db, owner, album, filename, out));
}

int db_image_scan(struct db *db, int64_t after, int (*fn)(void *ctx, const struct db_image *img),
                  void *ctx)
{
    return counted(db->ops->image_scan(db, after, fn, ctx));
}

int db_counts_add(struct db *db, const char *flush_id, const struct db_count *rows, size_t n,
                  int64_t *dropped, char *err, size_t errlen)
{
    return counted(db->ops->counts_add(db, flush_id, rows, n, dropped, err, errlen));
}

int db_batch_replace_day(struct db *db, const char *date, const struct db_daily_row *daily,
                         size_t ndaily, const struct db_status_row *status, size_t nstatus,
                         const struct db_batch_more *more, int64_t events,
                         struct db_batch_stats *bs, char *err, size_t errlen)
{
    return counted(db->ops->batch_replace_day(db, date, daily, ndaily, status, nstatus, more,
                                              events, bs, err, errlen));
}

int db_sketches_merge(struct db *db, const struct db_sketch *s, size_t n, char *err, size_t errlen)
{
    return counted(db->ops->sketches_merge(db, s, n, err, errlen));
}

int db_salt_get(struct db *db, const char *date, uint8_t salt[16], char *err, size_t errlen)
{
    return counted(db->ops->salt_get(db, date, salt, err, errlen));
}

int db_salt_purge_before(struct db *db, const char *date, int64_t *removed, char *err,
                         size_t errlen)
{
    int64_t n = 0;
    int rc = counted(db->ops->salt_purge_before(db, date, &n, err, errlen));
    if (removed != NULL)
        *removed = n;
    return rc;
}

int db_flush_nodes(struct db *db, int64_t from, int64_t to, int (*fn)(void *ctx, const char *node),
                   void *ctx)
{
    return counted(db->ops->flush_nodes(db, from, to, fn, ctx));
}

int db_batch_day_done(struct db *db, const char *date, int *done)
{
    return counted(db->ops->batch_day_done(db, date, done));
}

int db_day_requests(struct db *db, const char *date, int64_t *requests)
{
    return counted(db->ops->day_requests(db, date, requests));
}

int db_meta_get(struct db *db, const char *key, char *value, size_t len)
{
    return counted(db->ops->meta_get(db, key, value, len));
}

int db_meta_set(struct db *db, const char *key, const char *value, char *err, size_t errlen)
{
    return counted(db->ops->meta_set(db, key, value, err, errlen));
}

int db_cleanup_before(struct db *db, const char *date, const atomic_int *stop,
                      struct db_cleanup_stats *cs, char *err, size_t errlen)
{
    return counted(db->ops->cleanup_before(db, date, stop, cs, err, errlen));
}

int db_cleanup_more_before(struct db *db, const char *date, int64_t hour, int64_t *rows, char *err,
                           size_t errlen)
{
    int64_t n = 0;
    int rc = counted(db->ops->cleanup_more_before(db, date, hour, &n, err, errlen));
    if (rows != NULL)
        *rows = n;
    return rc;
}

int db_job_begin(struct db *db, const char *job, int64_t slot, const char *node, int retry_failed,
                 enum db_job_claim *out)
{
    return counted(db->ops->job_begin(db, job, slot, node, retry_failed, out));
}

int db_job_end(struct db *db, const char *job, int64_t slot, enum db_job_outcome outcome)
{
    return counted(db->ops->job_end(db, job, slot, outcome));
}

int db_key_insert(struct db *db, const struct db_key *k)
{
    return counted(db->ops->key_insert(db, k));
}

int db_key_get(struct db *db, const char *id, struct db_key *out)
{
    return counted(db->ops->key_get(db, id, out));
}

int db_key_scan(struct db *db, int (*fn)(void *ctx, const struct db_key *k), void *ctx)
{
    return counted(db->ops->key_scan(db, fn, ctx));
}

int db_key_revoke(struct db *db, const char *id, int64_t now, int *already)
{
    return counted(db->ops->key_revoke(db, id, now, already));
}

int db_key_touch(struct db *db, const char *id, int64_t now)
{
    return counted(db->ops->key_touch(db, id, now));
}

int db_read_begin(struct db *db)
{
    return counted(db->ops->read_begin(db));
}

void db_read_end(struct db *db)
{
    db->ops->read_end(db);
}

int db_day_versions(struct db *db, const char *from, const char *to, db_stat_fn fn, void *ctx)
{
    return counted(db->ops->day_versions(db, from, to, fn, ctx));
}

int db_owner_days(struct db *db, const char *owner, const char *from, const char *to, db_stat_fn fn,
                  void *ctx)
{
    return counted(db->ops->owner_days(db, owner, from, to, fn, ctx));
}

int db_owner_statuses(struct db *db, const char *owner, const char *from, const char *to,
                      db_stat_fn fn, void *ctx)
{
    return counted(db->ops->owner_statuses(db, owner, from, to, fn, ctx));
}

int db_segment_rows(struct db *db, const char *owner, const char *date, db_stat_fn fn, void *ctx)
{
    return counted(db->ops->segment_rows(db, owner, date, fn, ctx));
}

int db_image_rows(struct db *db, const char *owner, const char *image_id, const char *from,
                  const char *to, db_stat_fn fn, void *ctx)
{
    return counted(db->ops->image_rows(db, owner, image_id, from, to, fn, ctx));
}

int db_daily_page(struct db *db, const char *owner, const char *from, const char *to,
                  const struct db_stat_row *after, int limit, db_stat_fn fn, void *ctx, int *rows)
{
    /* The first page's key: just below every row of `from` ("2026-01-10"
     * gives "2026-01-1/~"), so that the first seek starts there too (the
     * backends filter by `from` as well, which keeps any other text right). */
    char seek[24] = "";
    struct db_stat_row first = {seek, "", "", ""};
    size_t n = strlen(from);
    if (after == NULL && n > 0 && n < sizeof(seek) - 1) {
        memcpy(seek, from, n);
        seek[n - 1]--;
        seek[n] = '~';
        seek[n + 1] = '\0';
    }
    *rows = 0;
    return counted(db->ops->daily_page(db, owner, from, to, after != NULL ? after : &first, limit,
                                       fn, ctx, rows));
}

int db_owner_hours(struct db *db, const char *owner, const char *image_id, int64_t from_hour,
                   int64_t to_hour, db_stat_fn fn, void *ctx)
{
    return counted(db->ops->owner_hours(db, owner, image_id, from_hour, to_hour, fn, ctx));
}

int db_owner_clients(struct db *db, const char *owner, const char *image_id, const char *from,
                     const char *to, db_stat_fn fn, void *ctx)
{
    return counted(db->ops->owner_clients(db, owner, image_id, from, to, fn, ctx));
}

int db_owner_uniques(struct db *db, const char *owner, const char *image_id, const char *from,
                     const char *to, db_stat_fn fn, void *ctx)
{
    return counted(db->ops->owner_uniques(db, owner, image_id, from, to, fn, ctx));
}

int db_image_uniques(struct db *db, const char *owner, const char *from, const char *to,
                     db_stat_fn fn, void *ctx)
{
    return counted(db->ops->image_uniques(db, owner, from, to, fn, ctx));
}

int db_image_by_id(struct db *db, const char *id, struct db_image *out)
{
    return counted(db->ops->image_by_id(db, id, out));
}

const char *db_client_name(int client)
{
    static const char *const names[DB_CLIENTS] = {"human", "bot", "preview"};
    return client >= 0 && client < DB_CLIENTS ? names[client] : NULL;
}

const char *db_backend(const struct db *db)
{
    return db->ops->name;
}

int db_shared(const struct db *db)
{
    return db->ops->shared;
}

int db_rate_take(struct db *db, const char *owner, int limit, int *allowed, int *remaining,
                 int *retry_after)
{
    if (db->ops->rate_take == NULL)
        return PF_EINVAL;
    return counted(db->ops->rate_take(db, owner, limit, allowed, remaining, retry_after));
}

/* ---- Copying ---- */

/* Parents first is not needed (no foreign keys); the big tables last, so a
 * refusal or an error shows early. analytics_flushes (a node's own
 * receipts) and the rate limiter's buckets are not data: not copied.
 * analytics_salts is never copied, nor is it in a backup's list: a day's
 * salt lives only in the database that made it, until the purge removes
 * it, so that no copy can join a client's hashes across days or
 * databases. */
const struct db_table db_tables[] = {
    {"images",
     "id, owner, album, filename, content_type, size_bytes, created_at, sha256, width, height", 10,
     NULL, 0},
    {"api_keys", "id, owner, key_hash, scopes, created_at, expires_at, last_used_at, revoked_at", 8,
     NULL, 0},
    {"analytics_meta", "key, value, updated_at", 3, "key", 0},
    {"analytics_batch_days", "date, events, daily_rows, status_rows, drift, aggregated_at", 6,
     "date", 0},
    {"analytics_day_versions", "date, version", 2, "date", 0},
    {"analytics_monthly", "owner, year_month, requests, bandwidth_bytes", 4, "owner, year_month",
     0},
    {"analytics_owner_daily",
     "owner, date, requests, bandwidth_bytes, bot_requests, bot_bandwidth_bytes", 6, "owner, date",
     0},
    {"analytics_status_daily", "owner, date, status, requests, bot_requests", 5,
     "owner, date, status", 0},
    {"analytics_clients_daily", "owner, date, image_id, client, requests, bandwidth_bytes", 6,
     "owner, date, image_id, client", 0},
    {"analytics_uniques_daily", "owner, date, image_id, uniques, registers", 5,
     "owner, date, image_id", 5},
    {"analytics_hourly",
     "owner, image_id, hour, requests, bandwidth_bytes, bot_requests, bot_bandwidth_bytes", 7,
     "owner, image_id, hour", 0},
    {"analytics_daily",
     "owner, date, image_id, variant, country, requests, bandwidth_bytes, bot_requests, "
     "bot_bandwidth_bytes",
     9, "owner, date, image_id, variant, country", 0},
};
const size_t db_table_count = sizeof(db_tables) / sizeof(db_tables[0]);

int db_table_count_rows(struct db *db, const struct db_table *t, int64_t *rows)
{
    return counted(db->ops->table_count_rows(db, t, rows));
}

int db_table_rows(struct db *db, const struct db_table *t, db_row_fn fn, void *ctx)
{
    return counted(db->ops->table_rows(db, t, fn, ctx));
}

int db_table_insert(struct db *db, const struct db_table *t, const char *const *values, size_t n,
                    char *err, size_t errlen)
{
    return counted(db->ops->table_insert(db, t, values, n, err, errlen));
}

int db_tx_begin(struct db *db)
{
    return counted(db->ops->tx_begin(db));
}

int db_tx_commit(struct db *db, char *err, size_t errlen)
{
    return counted(db->ops->tx_commit(db, err, errlen));
}

void db_tx_rollback(struct db *db)
{
    db->ops->tx_rollback(db);
}
