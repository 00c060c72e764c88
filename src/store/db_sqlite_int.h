/* db_sqlite_int.h - what the SQLite backend's files share (db_sqlite.c: schema,
 * connection, catalog, and the operations table; db_sqlite_write.c: the
 * analytics writers; db_sqlite_more.c: sketches, salts and the retention of
 * issue 20's tables; db_sqlite_read.c: API keys and the analytics API's
 * reads). Not part of the db.h API: only src/store/db_sqlite*.c include it. */
#ifndef PF_DB_SQLITE_INT_H
#define PF_DB_SQLITE_INT_H

#include "store/db_int.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The statements of db_sqlite_read.c, prepared on first use and kept. */
enum db_sqlite_read_stmt {
    DBQ_KEY_GET,
    DBQ_KEY_TOUCH,
    DBQ_VERSIONS,
    DBQ_OWNER_DAYS,
    DBQ_STATUSES,
    DBQ_SEGMENT,
    DBQ_IMAGE_ROWS,
    DBQ_IMAGE_BY_ID,
    DBQ_DAILY_PAGE,
    DBQ_HOURS,
    DBQ_CLIENTS,
    DBQ_UNIQUES,
    DBQ_IMAGE_UNIQUES,
    DBQ_COUNT
};

struct db_sqlite {
    struct db base; /* first: a struct db * is a struct db_sqlite * */
    sqlite3 *conn;
    sqlite3_stmt *insert_image;
    sqlite3_stmt *image_by_path;
    sqlite3_stmt *image_scan;
    sqlite3_stmt *add_daily, *add_owner_day, *add_monthly, *add_status, *day_done, *bump, *receipt;
    sqlite3_stmt *add_hourly, *add_client;
    sqlite3_stmt *read[DBQ_COUNT];
    int busy_ms; /* db_set_busy_timeout()'s */
};

/* Prepare a statement for one use (finalized by the caller). */
int db_sqlite_prep(struct db_sqlite *db, const char *sql, sqlite3_stmt **st);
/* Run a prepared statement to completion and reset it. */
int db_sqlite_step_done(sqlite3_stmt *st);
/* Copy a text column (NULL as "") into dst, cut to cap. */
void db_sqlite_copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col);
/* Run one statement with text parameters ?1.. (NULL-ended) to completion.
 * OUT: *changes (if not NULL), the rows it changed. */
int db_sqlite_exec_text(struct db_sqlite *db, int64_t *changes, const char *sql, ...);
/* Now as "YYYY-MM-DDTHH:MM:SSZ". */
void db_sqlite_now_iso(char out[21]);
/* The columns of an images row, as db_image_by_path() selects them. */
#define DB_SQLITE_IMAGE_COLUMNS                                                                    \
    "rowid, id, owner, album, filename, content_type, size_bytes, "                                \
    "CAST(strftime('%s', created_at) AS INTEGER), sha256, width, height"
struct db_image;
void db_sqlite_read_image(sqlite3_stmt *st, struct db_image *img);

/* db_sqlite_write.c: db.h's operations of the same names. */
int db_sqlite_counts_add(struct db *base, const char *flush_id, const struct db_count *rows,
                         size_t n, int64_t *dropped, char *err, size_t errlen);
int db_sqlite_batch_replace_day(struct db *base, const char *date, const struct db_daily_row *daily,
                                size_t ndaily, const struct db_status_row *status, size_t nstatus,
                                const struct db_batch_more *more, int64_t events,
                                struct db_batch_stats *bs, char *err, size_t errlen);
int db_sqlite_batch_day_done(struct db *base, const char *date, int *done);
int db_sqlite_cleanup_more_before(struct db *base, const char *date, int64_t hour, int64_t *rows,
                                  char *err, size_t errlen);
/* db_sqlite_more.c: db.h's operations of the same names. */
int db_sqlite_sketches_merge(struct db *base, const struct db_sketch *s, size_t n, char *err,
                             size_t errlen);
int db_sqlite_salt_get(struct db *base, const char *date, uint8_t salt[16], char *err,
                       size_t errlen);
int db_sqlite_salt_purge_before(struct db *base, const char *date, int64_t *removed, char *err,
                                size_t errlen);
int db_sqlite_flush_nodes(struct db *base, int64_t from, int64_t to,
                          int (*fn)(void *ctx, const char *node), void *ctx);
int db_sqlite_day_requests(struct db *base, const char *date, int64_t *requests);
int db_sqlite_meta_get(struct db *base, const char *key, char *value, size_t len);
int db_sqlite_meta_set(struct db *base, const char *key, const char *value, char *err,
                       size_t errlen);
int db_sqlite_cleanup_before(struct db *base, const char *date, const atomic_int *stop,
                             struct db_cleanup_stats *cs, char *err, size_t errlen);
int db_sqlite_job_begin(struct db *base, const char *job, int64_t slot, const char *node,
                        int retry_failed, enum db_job_claim *out);
int db_sqlite_job_end(struct db *base, const char *job, int64_t slot, enum db_job_outcome outcome);
/* db_sqlite_read.c: db.h's operations of the same names. */
int db_sqlite_key_insert(struct db *base, const struct db_key *k);
int db_sqlite_key_get(struct db *base, const char *id, struct db_key *out);
int db_sqlite_key_scan(struct db *base, int (*fn)(void *ctx, const struct db_key *k), void *ctx);
int db_sqlite_key_revoke(struct db *base, const char *id, int64_t now, int *already);
int db_sqlite_key_touch(struct db *base, const char *id, int64_t now);
int db_sqlite_read_begin(struct db *base);
void db_sqlite_read_end(struct db *base);
int db_sqlite_day_versions(struct db *base, const char *from, const char *to, db_stat_fn fn,
                           void *ctx);
int db_sqlite_owner_days(struct db *base, const char *owner, const char *from, const char *to,
                         db_stat_fn fn, void *ctx);
int db_sqlite_owner_statuses(struct db *base, const char *owner, const char *from, const char *to,
                             db_stat_fn fn, void *ctx);
int db_sqlite_segment_rows(struct db *base, const char *owner, const char *date, db_stat_fn fn,
                           void *ctx);
int db_sqlite_image_rows(struct db *base, const char *owner, const char *image_id, const char *from,
                         const char *to, db_stat_fn fn, void *ctx);
int db_sqlite_image_by_id(struct db *base, const char *id, struct db_image *out);
int db_sqlite_owner_hours(struct db *base, const char *owner, const char *image_id,
                          int64_t from_hour, int64_t to_hour, db_stat_fn fn, void *ctx);
int db_sqlite_owner_clients(struct db *base, const char *owner, const char *image_id,
                            const char *from, const char *to, db_stat_fn fn, void *ctx);
int db_sqlite_owner_uniques(struct db *base, const char *owner, const char *image_id,
                            const char *from, const char *to, db_stat_fn fn, void *ctx);
int db_sqlite_image_uniques(struct db *base, const char *owner, const char *from, const char *to,
                            db_stat_fn fn, void *ctx);
int db_sqlite_daily_page(struct db *base, const char *owner, const char *from, const char *to,
                         const struct db_stat_row *after, int limit, db_stat_fn fn, void *ctx,
                         int *rows);

#endif
