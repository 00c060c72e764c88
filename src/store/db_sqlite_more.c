/* db_sqlite_more.c - the SQLite backend of db.h, part four: issue 20's
 * tables that are not counts. The unique-client sketches
 * (analytics_uniques_daily, merged by register maximum), the days' salts of
 * the client hash (analytics_salts), and the retention of the hourly,
 * client-class and sketch tables. */
#include "store/db_sqlite_int.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/hll.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Sketches ---- */

/* Merge one sketch's points into its row: read the stored registers (if
 * any), raise them to the points, store them with the new estimate. h and
 * enc are the caller's buffers (16 KiB and HLL_ENCODED_MAX). A stored
 * sketch that does not decode (a hand edit, a disk fault: hll_decode() is
 * strict) is replaced by the new points, without a word: the estimate
 * restarts low rather than the whole flush failing for ever. */
static int merge_one(sqlite3_stmt *get, sqlite3_stmt *put, const struct db_sketch *s, struct hll *h,
                     uint8_t *enc)
{
    hll_clear(h);
    sqlite3_bind_text(get, 1, s->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(get, 2, s->date, -1, SQLITE_STATIC);
    sqlite3_bind_text(get, 3, s->image_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(get);
    if (step == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(get, 0);
        int len = sqlite3_column_bytes(get, 0);
        if (b == NULL || hll_decode(b, (size_t)len, h) != 0)
            hll_clear(h);
    }
    sqlite3_reset(get);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return PF_EDB;
    for (size_t i = 0; i < s->npoints; i++) {
        uint32_t p = s->points[i];
        uint32_t idx = p >> 8, rank = p & 0xff;
        if (idx >= HLL_M || rank < 1 || rank > HLL_RANK_MAX)
            return PF_EINVAL;
        hll_set_max(h, (uint16_t)idx, (uint8_t)rank);
    }
    size_t len = hll_encode(h, enc, HLL_ENCODED_MAX);
    if (len == 0)
        return PF_EDB;
    sqlite3_bind_text(put, 1, s->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(put, 2, s->date, -1, SQLITE_STATIC);
    sqlite3_bind_text(put, 3, s->image_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(put, 4, (int64_t)hll_estimate(h));
    sqlite3_bind_blob(put, 5, enc, (int)len, SQLITE_STATIC);
    return db_sqlite_step_done(put);
}

int db_sqlite_sketches_merge(struct db *base, const struct db_sketch *s, size_t n, char *err,
                             size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *get = NULL, *put = NULL;
    struct hll *h = malloc(sizeof(*h));
    uint8_t *enc = malloc(HLL_ENCODED_MAX);
    int rc = h == NULL || enc == NULL ? PF_ENOMEM : 0;
    err[0] = '\0';
    if (rc == 0)
        rc = db_sqlite_prep(db,
                            "SELECT registers FROM analytics_uniques_daily WHERE owner = ?1 AND "
                            "date = ?2 AND image_id = ?3",
                            &get);
    if (rc == 0)
        rc = db_sqlite_prep(db,
                            "INSERT INTO analytics_uniques_daily (owner, date, image_id, uniques, "
                            "registers) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE SET "
                            "uniques = excluded.uniques, registers = excluded.registers",
                            &put);
    if (rc == 0 && sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = merge_one(get, put, &s[i], h, enc);
    if (rc == 0 && sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = PF_EDB;
    if (rc != 0) {
        snprintf(err, errlen, "%s",
                 rc == PF_ENOMEM   ? "out of memory"
                 : rc == PF_EINVAL ? "a sketch point out of range"
                                   : sqlite3_errmsg(db->conn));
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    free(h);
    free(enc);
    return rc;
}

/* ---- Salts ---- */

int db_sqlite_salt_get(struct db *base, const char *date, uint8_t salt[16], char *err,
                       size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *ins = NULL, *get = NULL;
    uint8_t fresh[16];
    char now[21];
    int rc = fsutil_random(fresh, sizeof(fresh));
    err[0] = '\0';
    db_sqlite_now_iso(now);
    /* The first writer's salt stays; a later one's is ignored. */
    if (rc == 0)
        rc = db_sqlite_prep(db,
                            "INSERT OR IGNORE INTO analytics_salts (date, salt, created_at) "
                            "VALUES (?1, ?2, ?3)",
                            &ins);
    if (rc == 0) {
        sqlite3_bind_text(ins, 1, date, -1, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, fresh, sizeof(fresh), SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, now, -1, SQLITE_STATIC);
        rc = db_sqlite_step_done(ins);
    }
    if (rc == 0)
        rc = db_sqlite_prep(db, "SELECT salt FROM analytics_salts WHERE date = ?1", &get);
    if (rc == 0) {
        sqlite3_bind_text(get, 1, date, -1, SQLITE_STATIC);
        if (sqlite3_step(get) == SQLITE_ROW && sqlite3_column_bytes(get, 0) == 16)
            memcpy(salt, sqlite3_column_blob(get, 0), 16);
        else
            rc = PF_EDB;
    }
    if (rc != 0)
        snprintf(err, errlen, "%s",
                 rc == PF_EIO ? "no random bytes (getrandom)" : sqlite3_errmsg(db->conn));
    sqlite3_finalize(ins);
    sqlite3_finalize(get);
    explicit_bzero(fresh, sizeof(fresh));
    return rc;
}

int db_sqlite_salt_purge_before(struct db *base, const char *date, int64_t *removed, char *err,
                                size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    int log = -1, done = -1, wal_left = 0;
    err[0] = '\0';
    int rc = db_sqlite_exec_text(db, removed, "DELETE FROM analytics_salts WHERE date < ?1", date,
                                 (const char *)NULL);
    /* secure_delete zeroed the row in the page the delete wrote, but the
     * WAL still holds the page as the insert wrote it, until a checkpoint
     * copies the new page into the database and TRUNCATE empties the WAL.
     * A reader in an older snapshot keeps part of the WAL: then the
     * checkpoint is partial and this call fails. The checkpoint runs on
     * every call, not only when rows were deleted, so that the caller's
     * retry (which deletes nothing) finishes the job. */
    if (rc == 0) {
        int c = sqlite3_wal_checkpoint_v2(db->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
        wal_left = c == SQLITE_BUSY || (c == SQLITE_OK && log != 0);
        rc = c == SQLITE_OK && log == 0 ? 0 : PF_EDB;
    }
    if (rc != 0)
        snprintf(err, errlen, "%s",
                 wal_left ? "the salts were deleted, but the WAL could not be emptied "
                            "(a reader holds an old snapshot): call again"
                          : sqlite3_errmsg(db->conn));
    return rc;
}

/* ---- Retention ---- */

/* Delete t's rows whose `key` is below `cut`, one key value (a date, an
 * hour) per statement and so per transaction: each is one seek of the
 * key's index to its smallest value, then that value's rows. The realtime
 * writer waits for one such delete at a time. OUT: *rows += deleted. */
static int delete_below(struct db_sqlite *db, const char *table, const char *key,
                        sqlite3_value *cut, int64_t *rows)
{
    char sql[256];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s = (SELECT MIN(%s) FROM %s WHERE %s < ?1)",
             table, key, key, table, key);
    int rc = db_sqlite_prep(db, sql, &st);
    while (rc == 0) {
        sqlite3_bind_value(st, 1, cut);
        rc = db_sqlite_step_done(st);
        int64_t n = sqlite3_changes64(db->conn);
        if (rc != 0 || n == 0)
            break;
        *rows += n;
    }
    sqlite3_finalize(st);
    return rc;
}

int db_sqlite_cleanup_more_before(struct db *base, const char *date, int64_t hour, int64_t *rows,
                                  char *err, size_t errlen)
{
    struct db_sqlite *db = (struct db_sqlite *)base;
    sqlite3_stmt *v = NULL;
    err[0] = '\0';
    *rows = 0;
    /* The cutoffs as SQL values, for delete_below()'s one statement text. */
    int rc = db_sqlite_prep(db, "SELECT ?1, ?2", &v);
    if (rc == 0) {
        sqlite3_bind_text(v, 1, date, -1, SQLITE_STATIC);
        sqlite3_bind_int64(v, 2, hour);
        rc = sqlite3_step(v) == SQLITE_ROW ? 0 : PF_EDB;
    }
    if (rc == 0)
        rc = delete_below(db, "analytics_clients_daily", "date", sqlite3_column_value(v, 0), rows);
    if (rc == 0)
        rc = delete_below(db, "analytics_uniques_daily", "date", sqlite3_column_value(v, 0), rows);
    if (rc == 0)
        rc = delete_below(db, "analytics_hourly", "hour", sqlite3_column_value(v, 1), rows);
    if (rc != 0)
        snprintf(err, errlen, "%s", sqlite3_errmsg(db->conn));
    sqlite3_finalize(v);
    return rc;
}
