/* db_postgres_int.h - what the PostgreSQL backend's files share
 * (db_postgres.c: connection, outage handling, schema, catalog, the rate
 * limiter and the operations table; db_postgres_write.c: the analytics
 * writers; db_postgres_read.c: API keys and the API's reads;
 * db_postgres_copy.c: text in bulk, COPY, and db copy's operations;
 * db_postgres_more.c: issue 20's sketches and salts).
 * Not part of the db.h API: only src/store/db_postgres*.c include it. */
#ifndef PF_DB_POSTGRES_INT_H
#define PF_DB_POSTGRES_INT_H

#include "base/strbuf.h"
#include "store/db_int.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Statements prepared on a connection, by their SQL text's address (the
 * SQL is always a static string): at most this many per connection. */
#define DB_PG_STMTS 48

/* Advisory lock keys (pg_advisory_*lock): one namespace per purpose. */
#define DB_PG_LOCK_MIGRATE 0x70786600 /* schema migrations, at open */
#define DB_PG_LOCK_DAYS 0x70786601    /* shared: realtime flushes; exclusive: batch, cleanup */
#define DB_PG_LOCK_IMAGES 0x70786602  /* image inserts commit in `seq` order */
/* 0x70786603, hashtext(owner): pixflare_rate_take(), per owner */
#define DB_PG_LOCK_JOBS 0x70786604 /* session, hashtext(job): a scheduled job's runner */

struct db_pg {
    struct db base; /* first: a struct db * is a struct db_pg * */
    PGconn *conn;   /* NULL or broken: reopened by db_pg_ready() */
    char *url;
    int lock_ms;   /* db_set_busy_timeout()'s, as lock_timeout */
    int in_tx;     /* inside BEGIN .. COMMIT: a broken connection is not retried */
    int temp_ok;   /* the session's temporary table exists */
    int read_only; /* db_open_check()'s: every session's transactions read-only */
    char msg[256]; /* the last error, for err outputs */
    const char *stmt_sql[DB_PG_STMTS];
    int nstmts;
};

/* A usable connection, reopening a broken one when the backoff allows:
 * 0, or PF_EUNAVAIL. */
int db_pg_ready(struct db_pg *db);

/* Run a static SQL statement with text parameters (NULL: SQL NULL),
 * prepared on first use on this connection. OUT: *res (if not NULL; else
 * cleared), to PQclear(). Returns 0, PF_EEXISTS (a unique violation),
 * PF_EUNAVAIL (the connection broke: retried once on a fresh connection
 * when outside a transaction) or PF_EDB; db->msg says why. */
int db_pg_query(struct db_pg *db, const char *sql, int n, const char *const *params,
                PGresult **res);
/* The same for SQL built at run time (not prepared), and for several
 * statements separated by ';' when n is 0. */
int db_pg_exec(struct db_pg *db, const char *sql, int n, const char *const *params, PGresult **res);

/* The code for a failed result r (NULL: the connection's error), with
 * db->msg: PF_EUNAVAIL (the connection is closed), PF_EEXISTS or PF_EDB. */
int db_pg_failure(struct db_pg *db, PGresult *r);

/* BEGIN (db->in_tx set), COMMIT and ROLLBACK (cleared). */
int db_pg_begin(struct db_pg *db);
int db_pg_commit(struct db_pg *db);
void db_pg_rollback(struct db_pg *db);

/* COPY table (columns) FROM STDIN: n rows of ncols text values (NULL:
 * \N), escaped for COPY's text format. */
int db_pg_copy_in(struct db_pg *db, const char *table, const char *columns, int ncols,
                  const char *const *values, size_t n);

/* An integer of a result cell (0 when NULL). */
int64_t db_pg_int(const PGresult *res, int row, int col);
/* Copy a text cell into dst, cut to cap. */
void db_pg_copy_cell(char *dst, size_t cap, const PGresult *res, int row, int col);

/* Append s to a text[] literal (base/strbuf.h) as an element, "..."
 * quoted. */
void db_pg_buf_elem(struct strbuf *b, const char *s);

/* Now as "YYYY-MM-DDTHH:MM:SSZ". */
void db_pg_now_iso(char out[21]);

/* db_postgres_write.c: db.h's operations of the same names. */
int db_pg_counts_add(struct db *base, const char *flush_id, const struct db_count *rows, size_t n,
                     int64_t *dropped, char *err, size_t errlen);
int db_pg_batch_replace_day(struct db *base, const char *date, const struct db_daily_row *daily,
                            size_t ndaily, const struct db_status_row *status, size_t nstatus,
                            const struct db_batch_more *more, int64_t events,
                            struct db_batch_stats *bs, char *err, size_t errlen);
int db_pg_batch_day_done(struct db *base, const char *date, int *done);
int db_pg_cleanup_more_before(struct db *base, const char *date, int64_t hour, int64_t *rows,
                              char *err, size_t errlen);
/* db_postgres_more.c: db.h's operations of the same names. */
int db_pg_sketches_merge(struct db *base, const struct db_sketch *s, size_t n, char *err,
                         size_t errlen);
int db_pg_salt_get(struct db *base, const char *date, uint8_t salt[16], char *err, size_t errlen);
int db_pg_salt_purge_before(struct db *base, const char *date, int64_t *removed, char *err,
                            size_t errlen);
int db_pg_flush_nodes(struct db *base, int64_t from, int64_t to,
                      int (*fn)(void *ctx, const char *node), void *ctx);
int db_pg_day_requests(struct db *base, const char *date, int64_t *requests);
int db_pg_meta_get(struct db *base, const char *key, char *value, size_t len);
int db_pg_meta_set(struct db *base, const char *key, const char *value, char *err, size_t errlen);
int db_pg_cleanup_before(struct db *base, const char *date, const atomic_int *stop,
                         struct db_cleanup_stats *cs, char *err, size_t errlen);
int db_pg_job_begin(struct db *base, const char *job, int64_t slot, const char *node,
                    int retry_failed, enum db_job_claim *out);
int db_pg_job_end(struct db *base, const char *job, int64_t slot, enum db_job_outcome outcome);
/* db_postgres_read.c: db.h's operations of the same names. */
int db_pg_key_insert(struct db *base, const struct db_key *k);
int db_pg_key_get(struct db *base, const char *id, struct db_key *out);
int db_pg_key_scan(struct db *base, int (*fn)(void *ctx, const struct db_key *k), void *ctx);
int db_pg_key_revoke(struct db *base, const char *id, int64_t now, int *already);
int db_pg_key_touch(struct db *base, const char *id, int64_t now);
int db_pg_read_begin(struct db *base);
void db_pg_read_end(struct db *base);
int db_pg_day_versions(struct db *base, const char *from, const char *to, db_stat_fn fn, void *ctx);
int db_pg_owner_days(struct db *base, const char *owner, const char *from, const char *to,
                     db_stat_fn fn, void *ctx);
int db_pg_owner_statuses(struct db *base, const char *owner, const char *from, const char *to,
                         db_stat_fn fn, void *ctx);
int db_pg_segment_rows(struct db *base, const char *owner, const char *date, db_stat_fn fn,
                       void *ctx);
int db_pg_image_rows(struct db *base, const char *owner, const char *image_id, const char *from,
                     const char *to, db_stat_fn fn, void *ctx);
int db_pg_daily_page(struct db *base, const char *owner, const char *from, const char *to,
                     const struct db_stat_row *after, int limit, db_stat_fn fn, void *ctx,
                     int *rows);
int db_pg_owner_hours(struct db *base, const char *owner, const char *image_id, int64_t from_hour,
                      int64_t to_hour, db_stat_fn fn, void *ctx);
int db_pg_owner_clients(struct db *base, const char *owner, const char *image_id, const char *from,
                        const char *to, db_stat_fn fn, void *ctx);
int db_pg_owner_uniques(struct db *base, const char *owner, const char *image_id, const char *from,
                        const char *to, db_stat_fn fn, void *ctx);
int db_pg_image_uniques(struct db *base, const char *owner, const char *from, const char *to,
                        db_stat_fn fn, void *ctx);
int db_pg_rate_take(struct db *base, const char *owner, int limit, int *allowed, int *remaining,
                    int *retry_after);
/* db_postgres_copy.c: db_copy()'s operations (db_int.h). */
int db_pg_table_count_rows(struct db *base, const struct db_table *t, int64_t *rows);
int db_pg_table_rows(struct db *base, const struct db_table *t, db_row_fn fn, void *ctx);
int db_pg_table_insert(struct db *base, const struct db_table *t, const char *const *values,
                       size_t n, char *err, size_t errlen);
int db_pg_tx_begin(struct db *base);
int db_pg_tx_commit(struct db *base, char *err, size_t errlen);
void db_pg_tx_rollback(struct db *base);

#endif
