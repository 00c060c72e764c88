/* db.c - see db.h: the backend is chosen by PIXFLARE_DATABASE's scheme, and
 * every operation goes through its table (db_int.h). */
#include "store/db.h"
#include "store/db_int.h"

#include "base/err.h"

#include <stdio.h>
#include <string.h>

int db_open(const char *url, struct db **out, char *err, size_t errlen)
{
    *out = NULL;
    if (strncmp(url, "sqlite:", 7) == 0 && url[7] != '\0')
        return db_sqlite_open(url + 7, out, err, errlen);
    /* Only the scheme, and only a plain one: the rest of a URL, or a
     * keyword=value connection string, may carry a password. */
    size_t n = strcspn(url, ":");
    if (url[n] == ':' && n > 0 && n <= 16 && strspn(url, "abcdefghijklmnopqrstuvwxyz+-.") == n)
        snprintf(err, errlen, "unsupported database URL scheme '%.*s' (expected sqlite:PATH)",
                 (int)n, url);
    else
        snprintf(err, errlen, "the database is not a URL of a known scheme (expected sqlite:PATH)");
    return PF_EINVAL;
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
    return db->ops->image_insert(db, img);
}

int db_image_by_path(struct db *db, const char *owner, const char *album, const char *filename,
                     struct db_image *out)
{
    return db->ops->image_by_path(db, owner, album, filename, out);
}

int db_image_scan(struct db *db, int64_t after, int (*fn)(void *ctx, const struct db_image *img),
                  void *ctx)
{
    return db->ops->image_scan(db, after, fn, ctx);
}

int db_counts_add(struct db *db, const struct db_count *rows, size_t n, int64_t *dropped, char *err,
                  size_t errlen)
{
    return db->ops->counts_add(db, rows, n, dropped, err, errlen);
}

int db_batch_replace_day(struct db *db, const char *date, const struct db_daily_row *daily,
                         size_t ndaily, const struct db_status_row *status, size_t nstatus,
                         int64_t events, struct db_batch_stats *bs, char *err, size_t errlen)
{
    return db->ops->batch_replace_day(db, date, daily, ndaily, status, nstatus, events, bs, err,
                                      errlen);
}

int db_batch_day_done(struct db *db, const char *date, int *done)
{
    return db->ops->batch_day_done(db, date, done);
}

int db_day_requests(struct db *db, const char *date, int64_t *requests)
{
    return db->ops->day_requests(db, date, requests);
}

int db_meta_get(struct db *db, const char *key, char *value, size_t len)
{
    return db->ops->meta_get(db, key, value, len);
}

int db_meta_set(struct db *db, const char *key, const char *value, char *err, size_t errlen)
{
    return db->ops->meta_set(db, key, value, err, errlen);
}

int db_cleanup_before(struct db *db, const char *date, const atomic_int *stop,
                      struct db_cleanup_stats *cs, char *err, size_t errlen)
{
    return db->ops->cleanup_before(db, date, stop, cs, err, errlen);
}

int db_key_insert(struct db *db, const struct db_key *k)
{
    return db->ops->key_insert(db, k);
}

int db_key_get(struct db *db, const char *id, struct db_key *out)
{
    return db->ops->key_get(db, id, out);
}

int db_key_scan(struct db *db, int (*fn)(void *ctx, const struct db_key *k), void *ctx)
{
    return db->ops->key_scan(db, fn, ctx);
}

int db_key_revoke(struct db *db, const char *id, int64_t now, int *already)
{
    return db->ops->key_revoke(db, id, now, already);
}

int db_key_touch(struct db *db, const char *id, int64_t now)
{
    return db->ops->key_touch(db, id, now);
}

int db_read_begin(struct db *db)
{
    return db->ops->read_begin(db);
}

void db_read_end(struct db *db)
{
    db->ops->read_end(db);
}

int db_day_versions(struct db *db, const char *from, const char *to, db_stat_fn fn, void *ctx)
{
    return db->ops->day_versions(db, from, to, fn, ctx);
}

int db_owner_days(struct db *db, const char *owner, const char *from, const char *to, db_stat_fn fn,
                  void *ctx)
{
    return db->ops->owner_days(db, owner, from, to, fn, ctx);
}

int db_owner_statuses(struct db *db, const char *owner, const char *from, const char *to,
                      db_stat_fn fn, void *ctx)
{
    return db->ops->owner_statuses(db, owner, from, to, fn, ctx);
}

int db_segment_rows(struct db *db, const char *owner, const char *date, db_stat_fn fn, void *ctx)
{
    return db->ops->segment_rows(db, owner, date, fn, ctx);
}

int db_image_rows(struct db *db, const char *owner, const char *image_id, const char *from,
                  const char *to, db_stat_fn fn, void *ctx)
{
    return db->ops->image_rows(db, owner, image_id, from, to, fn, ctx);
}

int db_image_by_id(struct db *db, const char *id, struct db_image *out)
{
    return db->ops->image_by_id(db, id, out);
}
