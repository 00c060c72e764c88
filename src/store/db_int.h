/* db_int.h - what a database backend implements: db.h's operations, one
 * table per backend, and the constructors db_open() chooses from by the
 * URL's scheme. Only src/store/ includes it. A backend's own struct starts
 * with `struct db` (its ops); its functions cast the pointer back. */
#ifndef PF_DB_INT_H
#define PF_DB_INT_H

#include "store/db.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Each operation is db.h's function of the same name, with the same
 * contract, called with a non-NULL db. */
struct db_ops {
    const char *name; /* "sqlite", "postgres" */
    int shared;       /* db_shared() */
    void (*close)(struct db *db);
    void (*set_busy_timeout)(struct db *db, int ms);
    int (*image_insert)(struct db *db, const struct db_image *img);
    int (*image_by_path)(struct db *db, const char *owner, const char *album, const char *filename,
                         struct db_image *out);
    int (*image_scan)(struct db *db, int64_t after,
                      int (*fn)(void *ctx, const struct db_image *img), void *ctx);
    int (*counts_add)(struct db *db, const char *flush_id, const struct db_count *rows, size_t n,
                      int64_t *dropped, char *err, size_t errlen);
    int (*batch_replace_day)(struct db *db, const char *date, const struct db_daily_row *daily,
                             size_t ndaily, const struct db_status_row *status, size_t nstatus,
                             const struct db_batch_more *more, int64_t events,
                             struct db_batch_stats *bs, char *err, size_t errlen);
    int (*sketches_merge)(struct db *db, const struct db_sketch *s, size_t n, char *err,
                          size_t errlen);
    int (*salt_get)(struct db *db, const char *date, uint8_t salt[16], char *err, size_t errlen);
    int (*salt_purge_before)(struct db *db, const char *date, int64_t *removed, char *err,
                             size_t errlen);
    int (*batch_day_done)(struct db *db, const char *date, int *done);
    int (*flush_nodes)(struct db *db, int64_t from, int64_t to,
                       int (*fn)(void *ctx, const char *node), void *ctx);
    int (*day_requests)(struct db *db, const char *date, int64_t *requests);
    int (*meta_get)(struct db *db, const char *key, char *value, size_t len);
    int (*meta_set)(struct db *db, const char *key, const char *value, char *err, size_t errlen);
    int (*cleanup_before)(struct db *db, const char *date, const atomic_int *stop,
                          struct db_cleanup_stats *cs, char *err, size_t errlen);
    int (*cleanup_more_before)(struct db *db, const char *date, int64_t hour, int64_t *rows,
                               char *err, size_t errlen);
    int (*job_begin)(struct db *db, const char *job, int64_t slot, const char *node,
                     int retry_failed, enum db_job_claim *out);
    int (*job_end)(struct db *db, const char *job, int64_t slot, enum db_job_outcome outcome);
    int (*key_insert)(struct db *db, const struct db_key *k);
    int (*key_get)(struct db *db, const char *id, struct db_key *out);
    int (*key_scan)(struct db *db, int (*fn)(void *ctx, const struct db_key *k), void *ctx);
    int (*key_revoke)(struct db *db, const char *id, int64_t now, int *already);
    int (*key_touch)(struct db *db, const char *id, int64_t now);
    int (*read_begin)(struct db *db);
    void (*read_end)(struct db *db);
    int (*day_versions)(struct db *db, const char *from, const char *to, db_stat_fn fn, void *ctx);
    int (*owner_days)(struct db *db, const char *owner, const char *from, const char *to,
                      db_stat_fn fn, void *ctx);
    int (*owner_statuses)(struct db *db, const char *owner, const char *from, const char *to,
                          db_stat_fn fn, void *ctx);
    int (*segment_rows)(struct db *db, const char *owner, const char *date, db_stat_fn fn,
                        void *ctx);
    int (*image_rows)(struct db *db, const char *owner, const char *image_id, const char *from,
                      const char *to, db_stat_fn fn, void *ctx);
    int (*owner_hours)(struct db *db, const char *owner, const char *image_id, int64_t from_hour,
                       int64_t to_hour, db_stat_fn fn, void *ctx);
    int (*owner_clients)(struct db *db, const char *owner, const char *image_id, const char *from,
                         const char *to, db_stat_fn fn, void *ctx);
    int (*owner_uniques)(struct db *db, const char *owner, const char *image_id, const char *from,
                         const char *to, db_stat_fn fn, void *ctx);
    int (*image_uniques)(struct db *db, const char *owner, const char *from, const char *to,
                         db_stat_fn fn, void *ctx);
    int (*image_by_id)(struct db *db, const char *id, struct db_image *out);
    int (*daily_page)(struct db *db, const char *owner, const char *from, const char *to,
                      const struct db_stat_row *after, int limit, db_stat_fn fn, void *ctx,
                      int *rows);
    /* Shared backends only (NULL otherwise). */
    int (*rate_take)(struct db *db, const char *owner, int limit, int *allowed, int *remaining,
                     int *retry_after);
    int (*table_count_rows)(struct db *db, const struct db_table *t, int64_t *rows);
    int (*table_rows)(struct db *db, const struct db_table *t, db_row_fn fn, void *ctx);
    int (*table_insert)(struct db *db, const struct db_table *t, const char *const *values,
                        size_t n, char *err, size_t errlen);
    int (*tx_begin)(struct db *db);
    int (*tx_commit)(struct db *db, char *err, size_t errlen);
    void (*tx_rollback)(struct db *db);
    int (*now_ms)(struct db *db, int64_t *ms);
    int (*backup)(struct db *db, const char *dest, db_backup_progress_fn progress, void *ctx,
                  char *err, size_t errlen);
};

struct db {
    const struct db_ops *ops;
};

/* SQLite (db_sqlite*.c): `path` is the file, created if missing.
 * PostgreSQL (db_postgres*.c): `url` is a libpq connection URI. With
 * `check` not NULL, db_open_check()'s read-only opening: nothing made or
 * migrated; *check gets the schema version found. */
int db_sqlite_open(const char *path, int *check, struct db **out, char *err, size_t errlen);
int db_postgres_open(const char *url, int *check, struct db **out, char *err, size_t errlen);

/* The ORDER BY of a copy's read of t: its own when it has one, else the
 * backend's insertion order (`seq`: SQLite's rowid, PostgreSQL's identity
 * column). */
#define DB_TABLE_ORDER(t, seq) ((t)->order != NULL ? (t)->order : (seq))

/* A copy's read of t's columns (db_copy.c): t->columns with its binary
 * column (t->hex_col) as `hex_fmt` makes it ("hex(%s)": the column's bytes
 * as hex text), into out[0..cap). PF_EINVAL when it does not fit. */
int db_table_select(const struct db_table *t, const char *hex_fmt, char *out, size_t cap);
/* Hex text (either case) to bytes. OUT: out[0..*len). PF_EINVAL for text
 * that is not hex or longer than cap * 2. */
int db_hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *len);

#endif
