/* db_int.h - what the SQLite backend's files share (db_sqlite.c: schema,
 * catalog, analytics writers; db_read.c: API keys and the analytics API's
 * reads). Not part of the db.h API: nothing outside src/db_*.c includes it. */
#ifndef PF_DB_INT_H
#define PF_DB_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* The statements of db_read.c, prepared on first use and kept. */
enum db_sqlite_read_stmt {
    DBQ_KEY_GET,
    DBQ_KEY_TOUCH,
    DBQ_VERSIONS,
    DBQ_OWNER_DAYS,
    DBQ_STATUSES,
    DBQ_SEGMENT,
    DBQ_IMAGE_ROWS,
    DBQ_IMAGE_BY_ID,
    DBQ_COUNT
};

struct db {
    sqlite3 *conn;
    sqlite3_stmt *insert_image;
    sqlite3_stmt *image_by_path;
    sqlite3_stmt *image_scan;
    sqlite3_stmt *add_daily, *add_owner_day, *add_monthly, *add_status, *day_done, *bump;
    sqlite3_stmt *read[DBQ_COUNT];
    int busy_ms; /* db_set_busy_timeout()'s */
};

/* Prepare a statement for one use (finalized by the caller). */
int db_sqlite_prep(struct db *db, const char *sql, sqlite3_stmt **st);
/* Run a prepared statement to completion and reset it. */
int db_sqlite_step_done(sqlite3_stmt *st);
/* Copy a text column (NULL as "") into dst, cut to cap. */
void db_sqlite_copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col);
/* Run one statement with text parameters ?1.. (NULL-ended) to completion.
 * OUT: *changes (if not NULL), the rows it changed. */
int db_sqlite_exec_text(struct db *db, int64_t *changes, const char *sql, ...);
/* Now as "YYYY-MM-DDTHH:MM:SSZ". */
void db_sqlite_now_iso(char out[21]);
/* The columns of an images row, as db_image_by_path() selects them. */
#define DB_SQLITE_IMAGE_COLUMNS                                                                    \
    "rowid, id, owner, album, filename, content_type, size_bytes, "                                \
    "CAST(strftime('%s', created_at) AS INTEGER), sha256, width, height"
struct db_image;
void db_sqlite_read_image(sqlite3_stmt *st, struct db_image *img);

#endif
