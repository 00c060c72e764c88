/* db_postgres_copy.c - the PostgreSQL backend of db.h, part four: text in
 * bulk. Array literals and COPY's text format (base/strbuf.h), COPY FROM
 * STDIN (the batch's rows, a copy's tables), and the operations of
 * `pixflare db copy` (db_copy.c): a table read row by row in single-row
 * mode, written by COPY, in one transaction. */
#include "store/db_postgres_int.h"

#include "base/err.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Text buffers ---- */

void db_pg_buf_elem(struct strbuf *b, const char *s)
{
    strbuf_put(b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            strbuf_put(b, "\\", 1);
        strbuf_put(b, p, 1);
    }
    strbuf_put(b, "\"", 1);
}

/* One value in COPY's text format. */
static void copy_value(struct strbuf *b, const char *v)
{
    if (v == NULL) {
        strbuf_put(b, "\\N", 2);
        return;
    }
    for (const char *p = v; *p != '\0'; p++) {
        const char *esc = *p == '\\'   ? "\\\\"
                          : *p == '\t' ? "\\t"
                          : *p == '\n' ? "\\n"
                          : *p == '\r' ? "\\r"
                                       : NULL;
        if (esc != NULL)
            strbuf_put(b, esc, 2);
        else
            strbuf_put(b, p, 1);
    }
}

int db_pg_copy_in(struct db_pg *db, const char *table, const char *columns, int ncols,
                  const char *const *values, size_t n)
{
    char sql[512];
    struct strbuf b = {0};
    int rc = 0;
    if (n == 0)
        return 0;
    snprintf(sql, sizeof(sql), "COPY %s (%s) FROM STDIN", table, columns);
    PGresult *r = NULL;
    if ((rc = db_pg_ready(db)) != 0)
        return rc;
    r = PQexec(db->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        rc = db_pg_failure(db, r);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    for (size_t i = 0; i < n && rc == 0; i++) {
        for (int c = 0; c < ncols; c++) {
            if (c > 0)
                strbuf_put(&b, "\t", 1);
            copy_value(&b, values[i * (size_t)ncols + (size_t)c]);
        }
        strbuf_put(&b, "\n", 1);
        if (b.failed)
            rc = PF_ENOMEM;
        else if (b.len >= 256 * 1024 || i + 1 == n) {
            if (PQputCopyData(db->conn, b.p, (int)b.len) != 1)
                rc = PF_EUNAVAIL;
            b.len = 0;
        }
    }
    if (PQputCopyEnd(db->conn, rc == 0 ? NULL : "aborted") != 1 && rc == 0)
        rc = PF_EUNAVAIL;
    while ((r = PQgetResult(db->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0)
            rc = db_pg_failure(db, r);
        PQclear(r);
        if (db->conn == NULL)
            break;
    }
    if (rc == PF_ENOMEM)
        snprintf(db->msg, sizeof(db->msg), "out of memory");
    strbuf_free(&b);
    return rc;
}

/* ---- Copying ---- */

int db_pg_table_count_rows(struct db *base, const struct db_table *t, int64_t *rows)
{
    struct db_pg *db = (struct db_pg *)base;
    char sql[128];
    PGresult *r = NULL;
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", t->name);
    int rc = db_pg_exec(db, sql, 0, NULL, &r);
    if (rc == 0)
        *rows = db_pg_int(r, 0, 0);
    PQclear(r);
    return rc;
}

int db_pg_table_rows(struct db *base, const struct db_table *t, db_row_fn fn, void *ctx)
{
    struct db_pg *db = (struct db_pg *)base;
    char sql[1024], cols[512];
    const char *v[16];
    PGresult *r;
    int rc = db_pg_ready(db);
    if (rc != 0 || t->ncols > 16)
        return rc ? rc : PF_EINVAL;
    /* A binary column travels as hex text, as SQLite's hex() writes it. */
    if ((rc = db_table_select(t, "encode(%s, 'hex')", cols, sizeof(cols))) != 0)
        return rc;
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s ORDER BY %s", cols, t->name,
             DB_TABLE_ORDER(t, "seq"));
    /* Row by row: a table of millions never sits in memory. */
    if (!PQsendQuery(db->conn, sql) || !PQsetSingleRowMode(db->conn))
        return db_pg_failure(db, NULL);
    while ((r = PQgetResult(db->conn)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_SINGLE_TUPLE && rc == 0) {
            for (int i = 0; i < t->ncols; i++)
                v[i] = PQgetisnull(r, 0, i) ? NULL : PQgetvalue(r, 0, i);
            rc = fn(ctx, v);
            if (rc != 0)
                PQrequestCancel(db->conn);
        } else if (s != PGRES_TUPLES_OK && s != PGRES_SINGLE_TUPLE && rc == 0) {
            rc = db_pg_failure(db, r);
        }
        PQclear(r);
        if (db->conn == NULL)
            break;
    }
    return rc;
}

int db_pg_table_insert(struct db *base, const struct db_table *t, const char *const *values,
                       size_t n, char *err, size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    const char **v = NULL;
    char *text = NULL;
    size_t at = 0, cap = 0;
    int rc = 0;
    /* The binary column's hex text becomes bytea's hex input (\x followed by the hex),
     * validated first (COPY would take other text as escaped bytes). */
    if (t->hex_col > 0) {
        v = malloc(n * (size_t)t->ncols * sizeof(*v));
        for (size_t r = 0; v != NULL && r < n; r++) {
            const char *h = values[r * (size_t)t->ncols + (size_t)t->hex_col - 1];
            cap += h != NULL ? strlen(h) + 3 : 0;
        }
        text = malloc(cap + 1);
        rc = v == NULL || text == NULL ? PF_ENOMEM : 0;
        for (size_t i = 0; rc == 0 && i < n * (size_t)t->ncols; i++) {
            v[i] = values[i];
            if ((int)(i % (size_t)t->ncols) + 1 != t->hex_col || values[i] == NULL)
                continue;
            size_t len = strlen(values[i]);
            if (len % 2 != 0 || strspn(values[i], "0123456789abcdefABCDEF") != len) {
                rc = PF_EINVAL;
                snprintf(db->msg, sizeof(db->msg), "a binary value is not hex");
                break;
            }
            v[i] = text + at;
            at += (size_t)snprintf(text + at, cap + 1 - at, "\\x%s", values[i]) + 1;
        }
        if (rc == PF_ENOMEM)
            snprintf(db->msg, sizeof(db->msg), "out of memory");
    }
    if (rc == 0)
        rc = db_pg_copy_in(db, t->name, t->columns, t->ncols, v != NULL ? v : values, n);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", t->name, db->msg);
    free(v);
    free(text);
    return rc;
}

int db_pg_tx_begin(struct db *base)
{
    return db_pg_begin((struct db_pg *)base);
}

int db_pg_tx_commit(struct db *base, char *err, size_t errlen)
{
    struct db_pg *db = (struct db_pg *)base;
    /* The identity columns go on after the copied rows; the planner learns
     * the tables' new sizes. */
    int rc = db_pg_exec(db,
                        "SELECT setval(pg_get_serial_sequence('images', 'seq'), "
                        "GREATEST((SELECT MAX(seq) FROM images), 1)); "
                        "SELECT setval(pg_get_serial_sequence('api_keys', 'seq'), "
                        "GREATEST((SELECT MAX(seq) FROM api_keys), 1)); "
                        /* Statistics for the planner, before the first query. */
                        "ANALYZE",
                        0, NULL, NULL);
    if (rc == 0)
        rc = db_pg_commit(db);
    if (rc != 0) {
        snprintf(err, errlen, "%s", db->msg);
        db_pg_rollback(db);
    }
    return rc;
}

void db_pg_tx_rollback(struct db *base)
{
    db_pg_rollback((struct db_pg *)base);
}
