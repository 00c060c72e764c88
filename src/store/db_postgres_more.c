/* db_postgres_more.c - the PostgreSQL backend of db.h, part five: issue 20's
 * tables that are not counts, as db_sqlite_more.c: the unique-client
 * sketches and the days' salts. (Their retention is with the others', in
 * db_postgres_write.c.)
 *
 * Several nodes merge into the same sketch rows at once, so a merge is a
 * read-modify-write under row locks: the missing rows are made first
 * (empty sketches, ON CONFLICT DO NOTHING), then all the call's rows are
 * read FOR UPDATE in key order (two nodes lock them in the same order: no
 * deadlock), raised in memory and written back; four round trips whatever
 * the number of sketches. */
#include "store/db_postgres_int.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/hll.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Sketches ---- */

static int key_cmp(const struct db_sketch *a, const struct db_sketch *b)
{
    int c = strcmp(a->owner, b->owner);
    if (c == 0)
        c = strcmp(a->date, b->date);
    return c != 0 ? c : strcmp(a->image_id, b->image_id);
}

static int by_key(const void *x, const void *y)
{
    const struct db_sketch *const *a = x, *const *b = y;
    return key_cmp(*a, *b);
}

/* Append bytes as a bytea literal's hex input, "\x..." (an array element
 * after db_pg_buf_elem()'s quoting). */
static void put_bytea_elem(struct strbuf *b, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    strbuf_put(b, "\"\\\\x", 4);
    for (size_t i = 0; i < len; i++) {
        char two[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        strbuf_put(b, two, 2);
    }
    strbuf_put(b, "\"", 1);
}

/* Raise h to the sketch's points. PF_EINVAL for a point out of range. */
static int apply_points(struct hll *h, const struct db_sketch *s)
{
    for (size_t i = 0; i < s->npoints; i++) {
        uint32_t idx = s->points[i] >> 8, rank = s->points[i] & 0xff;
        if (idx >= HLL_M || rank < 1 || rank > HLL_RANK_MAX)
            return PF_EINVAL;
        hll_set_max(h, (uint16_t)idx, (uint8_t)rank);
    }
    return 0;
}

int db_pg_sketches_merge(struct db *base, const struct db_sketch *s, size_t n, char *err,
                         size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql_make =
        "INSERT INTO analytics_uniques_daily (owner, date, image_id, uniques, registers) "
        "SELECT o, d, i, 0, $4::bytea FROM unnest($1::text[], $2::text[], $3::text[]) "
        "AS u(o, d, i) GROUP BY o, d, i ORDER BY o, d, i ON CONFLICT DO NOTHING";
    static const char *const sql_lock =
        "SELECT t.owner, t.date, t.image_id, encode(t.registers, 'hex') "
        "FROM analytics_uniques_daily t JOIN (SELECT DISTINCT o, d, i FROM unnest($1::text[], "
        "$2::text[], $3::text[]) AS u(o, d, i)) u ON t.owner = u.o AND t.date = u.d "
        "AND t.image_id = u.i ORDER BY t.owner, t.date, t.image_id FOR UPDATE OF t";
    static const char *const sql_put =
        "UPDATE analytics_uniques_daily t SET registers = u.r, uniques = u.n "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[]) "
        "AS u(o, d, i, r, n) WHERE t.owner = u.o AND t.date = u.d AND t.image_id = u.i";
    struct strbuf keys[3] = {{0}}, out[5] = {{0}};
    const struct db_sketch **order = malloc((n > 0 ? n : 1) * sizeof(*order));
    struct hll *h = malloc(sizeof(*h));
    uint8_t *enc = malloc(HLL_ENCODED_MAX);
    char empty[16];
    PGresult *r = NULL;
    size_t k = 0, nout = 0;
    int rc = order == NULL || h == NULL || enc == NULL ? PF_ENOMEM : 0;
    err[0] = '\0';
    if (rc != 0 || n == 0)
        goto done;
    for (size_t i = 0; i < n; i++)
        order[i] = &s[i];
    qsort(order, n, sizeof(*order), by_key);
    for (size_t i = 0; i < n; i++) {
        const char *t[3] = {order[i]->owner, order[i]->date, order[i]->image_id};
        for (int c = 0; c < 3; c++) {
            strbuf_put(&keys[c], i == 0 ? "{" : ",", 1);
            db_pg_buf_elem(&keys[c], t[c]);
        }
    }
    for (int c = 0; c < 3; c++) {
        strbuf_put(&keys[c], "}", 1);
        if (keys[c].failed)
            rc = PF_ENOMEM;
    }
    hll_clear(h);
    size_t elen = hll_encode(h, enc, HLL_ENCODED_MAX);
    snprintf(empty, sizeof(empty), "\\x");
    for (size_t i = 0; i < elen && strlen(empty) + 3 <= sizeof(empty); i++)
        snprintf(empty + strlen(empty), sizeof(empty) - strlen(empty), "%02x", enc[i]);
    const char *p[4] = {keys[0].p, keys[1].p, keys[2].p, empty};
    if (rc == 0)
        rc = db_pg_begin(db);
    if (rc == 0)
        rc = db_pg_query(db, sql_make, 4, p, NULL);
    if (rc == 0)
        rc = db_pg_query(db, sql_lock, 3, p, &r);
    /* The locked rows come in key order, as `order`: walk both. */
    for (int row = 0; rc == 0 && r != NULL && row < PQntuples(r); row++) {
        struct db_sketch key;
        size_t len = 0;
        memset(&key, 0, sizeof(key));
        db_pg_copy_cell(key.owner, sizeof(key.owner), r, row, 0);
        db_pg_copy_cell(key.date, sizeof(key.date), r, row, 1);
        db_pg_copy_cell(key.image_id, sizeof(key.image_id), r, row, 2);
        /* A stored sketch that does not decode is replaced by the points
         * (as on SQLite: db_sqlite_more.c says why). */
        if (db_hex_decode(PQgetvalue(r, row, 3), enc, HLL_ENCODED_MAX, &len) != 0 ||
            hll_decode(enc, len, h) != 0)
            hll_clear(h);
        while (k < n && key_cmp(order[k], &key) < 0)
            k++;
        for (; rc == 0 && k < n && key_cmp(order[k], &key) == 0; k++)
            rc = apply_points(h, order[k]);
        size_t elen2 = rc == 0 ? hll_encode(h, enc, HLL_ENCODED_MAX) : 0;
        if (rc == 0 && elen2 == 0)
            rc = PF_EDB;
        if (rc != 0)
            break;
        const char *t[3] = {key.owner, key.date, key.image_id};
        for (int c = 0; c < 3; c++) {
            strbuf_put(&out[c], nout == 0 ? "{" : ",", 1);
            db_pg_buf_elem(&out[c], t[c]);
        }
        strbuf_put(&out[3], nout == 0 ? "{" : ",", 1);
        put_bytea_elem(&out[3], enc, elen2);
        strbuf_printf(&out[4], "%s%llu", nout == 0 ? "{" : ",",
                      (unsigned long long)hll_estimate(h));
        nout++;
    }
    if (rc == 0 && nout > 0) {
        const char *q[5];
        for (int c = 0; c < 5; c++) {
            strbuf_put(&out[c], "}", 1);
            if (out[c].failed)
                rc = PF_ENOMEM;
            q[c] = out[c].p;
        }
        if (rc == 0)
            rc = db_pg_query(db, sql_put, 5, q, NULL);
    }
    if (rc == 0)
        rc = db_pg_commit(db);
    else
        db_pg_rollback(db);
done:
    if (rc != 0)
        snprintf(err, errlen, "%s",
                 rc == PF_ENOMEM   ? "out of memory"
                 : rc == PF_EINVAL ? "a sketch point out of range"
                                   : db->msg);
    PQclear(r);
    for (int c = 0; c < 3; c++)
        strbuf_free(&keys[c]);
    for (int c = 0; c < 5; c++)
        strbuf_free(&out[c]);
    free(order);
    free(h);
    free(enc);
    return rc;
}

/* ---- Salts ---- */

int db_pg_salt_get(struct db *base, const char *date, uint8_t salt[16], char *err, size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    static const char *const sql_put =
        "INSERT INTO analytics_salts (date, salt, created_at) VALUES ($1, $2::bytea, $3) "
        "ON CONFLICT DO NOTHING";
    static const char *const sql_get =
        "SELECT encode(salt, 'hex') FROM analytics_salts WHERE date = $1";
    uint8_t fresh[16];
    char hex[2 + 32 + 1], now[21];
    PGresult *r = NULL;
    size_t len = 0;
    int rc = fsutil_random(fresh, sizeof(fresh));
    err[0] = '\0';
    db_pg_now_iso(now);
    snprintf(hex, sizeof(hex), "\\x");
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 + 2 * i, sizeof(hex) - 2 - 2 * (size_t)i, "%02x", fresh[i]);
    /* The first writer's salt stays, on every node. */
    if (rc == 0)
        rc = db_pg_query(db, sql_put, 3, (const char *[]){date, hex, now}, NULL);
    if (rc == 0)
        rc = db_pg_query(db, sql_get, 1, (const char *[]){date}, &r);
    if (rc == 0 && (PQntuples(r) != 1 || db_hex_decode(PQgetvalue(r, 0, 0), salt, 16, &len) != 0 ||
                    len != 16)) {
        rc = PF_EDB;
        snprintf(db->msg, sizeof(db->msg), "analytics_salts: no 16-byte salt for %s", date);
    }
    if (rc != 0)
        snprintf(err, errlen, "%s", rc == PF_EIO ? "no random bytes (getrandom)" : db->msg);
    PQclear(r);
    explicit_bzero(fresh, sizeof(fresh));
    explicit_bzero(hex, sizeof(hex));
    return rc;
}

int db_pg_salt_purge_before(struct db *base, const char *date, int64_t *removed, char *err,
                            size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    PGresult *r = NULL;
    err[0] = '\0';
    int rc = db_pg_query(db, "DELETE FROM analytics_salts WHERE date < $1", 1,
                         (const char *[]){date}, &r);
    *removed = rc == 0 ? strtoll(PQcmdTuples(r), NULL, 10) : 0;
    PQclear(r);
    /* The deleted rows stay in the table's pages until a vacuum frees
     * them (VACUUM runs outside a transaction: a call of its own). The
     * server's WAL and its archives, if any, are the operator's to keep
     * short (docs/ANALYTICS.md). */
    if (rc == 0 && *removed > 0)
        rc = db_pg_exec(db, "VACUUM analytics_salts", 0, NULL, NULL);
    if (rc != 0)
        snprintf(err, errlen, "%s", db->msg);
    return rc;
}
