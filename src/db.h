/* db.h - the D1 role: Pixflare's relational database behind one small API.
 *
 * Today the backend is SQLite (D1 is SQLite); the interface is kept narrow so
 * a PostgreSQL backend can sit behind it later. A `struct db` is one
 * connection and must be used by one thread at a time. The schema is
 * versioned (PRAGMA user_version) and migrated forward by db_open(). */
#ifndef PF_DB_H
#define PF_DB_H

#include <stddef.h>
#include <stdint.h>

struct db;

struct db_image {
    int64_t seq; /* insertion order (rowid); set by the database */
    char id[8];  /* 6 characters of [a-z0-9] */
    char owner[65];
    char album[129];
    char filename[256];
    char content_type[32];
    int64_t size_bytes;
    int64_t created_at; /* Unix seconds, UTC */
    char sha256[65];    /* hex of the original's SHA-256 */
    int width, height;
};

/* Open (creating if needed) and migrate. OUT: *out, closed with db_close().
 * On failure a reason is written into err. */
int db_open(const char *sqlite_path, struct db **out, char *err, size_t errlen);
void db_close(struct db *db);

/* How long a statement waits for another connection's lock (default 5 s). */
void db_set_busy_timeout(struct db *db, int ms);

/* The schema version this build migrates to. */
int db_schema_version(void);

/* Insert an image row. PF_EEXISTS when the id or the owner/album/filename is
 * taken (the caller retries with a new id or reports the duplicate). */
int db_image_insert(struct db *db, const struct db_image *img);

/* Look up by owner/album/filename. OUT: *out. PF_ENOTFOUND if absent. */
int db_image_by_path(struct db *db, const char *owner, const char *album, const char *filename,
                     struct db_image *out);

/* Call fn for every image with seq > after, in seq order. A non-zero return
 * from fn stops the scan and is returned. */
int db_image_scan(struct db *db, int64_t after, int (*fn)(void *ctx, const struct db_image *img),
                  void *ctx);

/* A count to add to one analytics row (see SPEC.md's tables). */
enum db_count_kind { DB_COUNT_DAILY, DB_COUNT_MONTHLY, DB_COUNT_STATUS };

struct db_count {
    enum db_count_kind kind;
    char owner[33];      /* keyed owner hash in hex, "" when unattributed */
    char date[11];       /* YYYY-MM-DD; MONTHLY uses its YYYY-MM */
    char image_id[8];    /* DAILY */
    const char *variant; /* DAILY */
    char country[3];     /* DAILY */
    int status;          /* STATUS */
    int64_t requests;
    int64_t bytes; /* DAILY, MONTHLY */
};

/* Add every count to its row (creating it at zero) in one transaction: all
 * or nothing. PF_EDB with SQLite's reason in err (busy, disk full, ...). */
int db_counts_add(struct db *db, const struct db_count *rows, size_t n, char *err, size_t errlen);

#endif
