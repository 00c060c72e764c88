/* db_copy.c - see db.h's db_copy(): a whole database into an empty one,
 * table by table (db_tables), in chunks of rows, inside one transaction of
 * the target, so that a failed copy leaves the target empty. Values travel
 * as text through each backend's table_rows and table_insert. */
#include "store/db.h"
#include "store/db_int.h"

#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_ROWS 2000
#define NO_VALUE ((size_t)-1)

struct chunk {
    struct db *dst;
    const struct db_table *t;
    const char **values; /* CHUNK_ROWS * t->ncols, made at each flush */
    size_t *offs;        /* where each value starts in text; NO_VALUE: NULL */
    char *text;
    size_t text_len, text_cap;
    size_t n;
    int64_t done, total;
    db_copy_progress_fn progress;
    void *ctx;
    char *err;
    size_t errlen;
};

static int chunk_flush(struct chunk *c)
{
    if (c->n == 0)
        return 0;
    /* Offsets until now: `text` may move while it grows. */
    size_t nv = c->n * (size_t)c->t->ncols;
    for (size_t i = 0; i < nv; i++)
        c->values[i] = c->offs[i] == NO_VALUE ? NULL : c->text + c->offs[i];
    int rc = db_table_insert(c->dst, c->t, c->values, c->n, c->err, c->errlen);
    c->done += (int64_t)c->n;
    c->n = 0;
    c->text_len = 0;
    if (rc == 0 && c->progress != NULL)
        c->progress(c->ctx, c->t->name, c->done, c->total);
    return rc;
}

static int chunk_row(void *ctx, const char *const *values)
{
    struct chunk *c = ctx;
    for (int i = 0; i < c->t->ncols; i++) {
        const char *v = values[i];
        size_t at = c->n * (size_t)c->t->ncols + (size_t)i;
        if (v == NULL) {
            c->offs[at] = NO_VALUE;
            continue;
        }
        size_t len = strlen(v) + 1;
        if (c->text_len + len > c->text_cap) {
            size_t cap = c->text_cap ? c->text_cap * 2 : 1 << 16;
            while (cap < c->text_len + len)
                cap *= 2;
            char *p = realloc(c->text, cap);
            if (p == NULL) {
                snprintf(c->err, c->errlen, "out of memory");
                return PF_ENOMEM;
            }
            c->text = p;
            c->text_cap = cap;
        }
        memcpy(c->text + c->text_len, v, len);
        c->offs[at] = c->text_len;
        c->text_len += len;
    }
    return ++c->n == CHUNK_ROWS ? chunk_flush(c) : 0;
}

int db_table_select(const struct db_table *t, const char *hex_fmt, char *out, size_t cap)
{
    const char *p = t->columns;
    size_t used = 0;
    out[0] = '\0';
    for (int i = 1; *p != '\0'; i++) {
        size_t len = strcspn(p, ",");
        char col[64];
        if (len >= sizeof(col))
            return PF_EINVAL;
        snprintf(col, sizeof(col), "%.*s", (int)len, p);
        used += (size_t)snprintf(out + used, cap > used ? cap - used : 0, "%s", i > 1 ? ", " : "");
        if (i == t->hex_col)
            used += (size_t)snprintf(out + used, cap > used ? cap - used : 0, hex_fmt, col);
        else
            used += (size_t)snprintf(out + used, cap > used ? cap - used : 0, "%s", col);
        p += len;
        p += strspn(p, ", ");
    }
    return used < cap ? 0 : PF_EINVAL;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int db_hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > cap)
        return PF_EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return PF_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return 0;
}

int db_copy_is_empty(struct db *db, int *empty, char *what, size_t whatlen)
{
    *empty = 1;
    for (size_t i = 0; i < db_table_count; i++) {
        int64_t rows = 0;
        int rc = db_table_count_rows(db, &db_tables[i], &rows);
        if (rc != 0)
            return rc;
        if (rows > 0) {
            *empty = 0;
            snprintf(what, whatlen, "%s has %lld rows", db_tables[i].name, (long long)rows);
            return 0;
        }
    }
    return 0;
}

int db_copy(struct db *src, struct db *dst, db_copy_progress_fn progress, void *ctx,
            int64_t *copied, char *err, size_t errlen)
{
    struct chunk c = {.dst = dst, .progress = progress, .ctx = ctx, .err = err, .errlen = errlen};
    int rc = 0;
    err[0] = '\0';
    *copied = 0;
    for (size_t i = 0; rc == 0 && i < db_table_count; i++) {
        int64_t rows = 0;
        rc = db_table_count_rows(src, &db_tables[i], &rows);
        c.total += rows;
    }
    c.values = malloc(CHUNK_ROWS * 16 * sizeof(*c.values));
    c.offs = malloc(CHUNK_ROWS * 16 * sizeof(*c.offs));
    if (rc == 0 && (c.values == NULL || c.offs == NULL))
        rc = PF_ENOMEM;
    if (rc == 0)
        rc = db_tx_begin(dst);
    for (size_t i = 0; rc == 0 && i < db_table_count; i++) {
        c.t = &db_tables[i];
        rc = db_table_rows(src, c.t, chunk_row, &c);
        if (rc == 0)
            rc = chunk_flush(&c);
    }
    if (rc == 0)
        rc = db_tx_commit(dst, err, errlen);
    else
        db_tx_rollback(dst);
    if (rc != 0 && err[0] == '\0')
        snprintf(err, errlen, "%s", err_str(rc));
    if (rc == 0)
        *copied = c.done;
    free(c.values);
    free(c.offs);
    free(c.text);
    return rc;
}
