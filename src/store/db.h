/* db.h - the D1 role: Pixflare's relational database behind one small API.
 *
 * This header is the whole boundary: nothing above src/store/ names a
 * backend. db_open() picks the backend by the URL's scheme (db.c) and every
 * call goes through its operations table (db_int.h), so a new backend is a
 * new file implementing the same operations with the same meaning; the unit
 * test tests/unit/db_test.c holds every backend to it. Today the backend is
 * SQLite (D1 is SQLite; db_sqlite*.c). A `struct db` is one connection and
 * must be used by one thread at a time. Each backend versions its schema and
 * migrates it forward in db_open().
 *
 * Backends: SQLite ("sqlite:PATH", the default: one machine) and
 * PostgreSQL ("postgres://..." or "postgresql://...", any libpq URI: the
 * database several nodes share; db_postgres*.c). A PostgreSQL connection
 * that breaks is reopened by the next call, at most once per backoff
 * period; meanwhile calls fail fast with PF_EUNAVAIL, which callers answer
 * as "unavailable" (the API's 503) and never log per call: the backend logs
 * once that the database is down and once that it is back. */
#ifndef PF_DB_H
#define PF_DB_H

#include <stdatomic.h>
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

/* Open the database PIXFLARE_DATABASE names (`url`: "sqlite:PATH" or a
 * PostgreSQL URI; the backend is chosen by the scheme), creating and
 * migrating its schema if needed (PostgreSQL: under an advisory lock, so
 * that nodes starting at once do not race). OUT: *out, closed with
 * db_close(). On failure a one-line reason with its fix is written into err
 * (never the password): PF_EINVAL for a scheme this build has no backend
 * for, or a server that refuses us for good (wrong password, no such
 * database, a version too old); PF_EUNAVAIL when the server cannot be
 * reached; PF_EDB when the database cannot be opened or migrated. */
int db_open(const char *url, struct db **out, char *err, size_t errlen);
void db_close(struct db *db);

/* Open the database `url` names without changing it (pixflare doctor): no
 * SQLite file or folder made, no schema created or migrated, and the
 * connection never writes (SQLite's query_only; PostgreSQL's read-only
 * transactions). Errors as db_open()'s, plus PF_ENOTFOUND when there is no
 * Pixflare database there yet (no SQLite file, or no schema) and
 * PF_ECONFLICT when its schema is not this build's version (err says which
 * way, and the fix). OUT: *out (NULL on error), *schema: the version found
 * (0: none), also on PF_ECONFLICT. */
int db_open_check(const char *url, struct db **out, int *schema, char *err, size_t errlen);

/* The database's clock, Unix milliseconds: PostgreSQL's server clock,
 * SQLite's the machine's own (it runs in this process). Nodes date events
 * and choose job slots by their own clocks, the rate limit by the
 * database's: `pixflare doctor` compares the two. OUT: *ms. */
int db_now_ms(struct db *db, int64_t *ms);

/* Copy the database into a new SQLite file at `dest` (pixflare backup),
 * while servers go on using it: SQLite's online backup API, a few hundred
 * pages per step, all steps inside one read transaction, so the copy is
 * one snapshot and, in WAL mode, no writer ever waits for it. `dest` must
 * not exist (PF_EEXISTS); it is made mode 0600 and fsync'ed, its directory
 * is not. progress (may be NULL) is called after each step with the pages
 * copied and the total. A database that is not a file here (PostgreSQL)
 * returns PF_EINVAL, and err then holds pg_dump's connection options for
 * it, "--host=H --port=P --username=U --dbname=D" (those the URL sets;
 * never a password). Other errors: PF_EDB / PF_EIO with the reason in
 * err, and no file left at `dest`. */
typedef void (*db_backup_progress_fn)(void *ctx, int64_t done, int64_t total);
int db_backup(struct db *db, const char *dest, db_backup_progress_fn progress, void *ctx, char *err,
              size_t errlen);

/* The backend's name ("sqlite", "postgres"). */
const char *db_backend(const struct db *db);

/* Whether several processes share this database as one cluster
 * (PostgreSQL): then limits that must hold across them (db_rate_take())
 * live in the database. */
int db_shared(const struct db *db);

/* The cluster-wide API rate limit (shared databases only; PF_EINVAL
 * otherwise): ratelimit.h's sliding window of one-second buckets, kept in
 * the database and taken by the database's clock, so every node counts
 * against the same `limit` requests per 61 s of `owner`. OUT: *allowed,
 * *remaining, and when refused *retry_after (1-61 s). */
int db_rate_take(struct db *db, const char *owner, int limit, int *allowed, int *remaining,
                 int *retry_after);

/* How long a statement waits for another connection's lock (default 5 s). */
void db_set_busy_timeout(struct db *db, int ms);

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

/* The class of client a request came from, told from its user agent at
 * capture (uaclass.h) and then forgotten: analytics_clients_daily's
 * `client` ('human', 'bot', 'preview'), and the bot_* columns of the other
 * tables (what exclude_bots=true subtracts). */
enum db_client { DB_CLIENT_HUMAN = 0, DB_CLIENT_BOT = 1, DB_CLIENT_PREVIEW = 2 };
#define DB_CLIENTS 3
/* "human", "bot", "preview"; NULL for another value. */
const char *db_client_name(int client);

/* A count to add to one analytics row (see SPEC.md's tables). */
enum db_count_kind {
    DB_COUNT_DAILY,
    DB_COUNT_OWNER_DAY,
    DB_COUNT_STATUS,
    DB_COUNT_HOURLY, /* analytics_hourly: image_id "" is the owner's total row */
    DB_COUNT_CLIENT, /* analytics_clients_daily: (owner, date, image_id, client); image_id ""
                        is the owner's total row */
};

struct db_count {
    enum db_count_kind kind;
    char owner[33];      /* keyed owner hash in hex, "" when unattributed */
    char date[11];       /* YYYY-MM-DD (HOURLY: the hour's date) */
    char image_id[8];    /* DAILY, HOURLY, CLIENT */
    const char *variant; /* DAILY */
    char country[3];     /* DAILY */
    int status;          /* STATUS */
    int client;          /* db_client: a BOT count also adds to the row's bot_ columns */
    int64_t hour;        /* HOURLY: Unix time / 3600 */
    int64_t requests;
    int64_t bytes; /* DAILY, OWNER_DAY, HOURLY, CLIENT */
};

/* Add every count to its row (creating it at zero) in one transaction: all
 * or nothing. `flush_id` (NULL: none) names this set of counts: it is
 * recorded in the same transaction (analytics_flushes), and a call with an
 * id recorded before adds nothing and returns 0. So a caller that cannot
 * tell whether a failed call committed (the connection broke during
 * COMMIT) retries the same counts under the same id, and they count once.
 * OWNER_DAY counts (an owner's DAILY counts of a date, summed)
 * go to analytics_owner_daily and to the month's analytics_monthly row.
 * Counts for a date the batch has aggregated are left out: the batch counted
 * their events already. OUT: *dropped (if not NULL), the requests so left
 * out (STATUS counts). PF_EDB with SQLite's reason in err (busy, disk full,
 * ...). */
int db_counts_add(struct db *db, const char *flush_id, const struct db_count *rows, size_t n,
                  int64_t *dropped, char *err, size_t errlen);

/* ---- Batch aggregation and retention ---- */

struct db_daily_row {
    char owner[33];
    char image_id[8];
    const char *variant;
    char country[3];
    int64_t requests, bytes;         /* every client */
    int64_t bot_requests, bot_bytes; /* of them, DB_CLIENT_BOT's */
};

struct db_status_row {
    char owner[33];
    int status;
    int64_t requests;
    int64_t bot_requests;
};

/* The batch's rows beside the daily ones (db_batch_replace_day()'s
 * `more`): the date's hourly rows (image_id "" the owner's total of the
 * hour, as the realtime writer keeps it) and its rows by client class. */
struct db_hourly_row {
    char owner[33];
    int64_t hour; /* Unix time / 3600, an hour of the date */
    char image_id[8];
    int64_t requests, bytes, bot_requests, bot_bytes;
};
struct db_client_row {
    char owner[33];
    char image_id[8]; /* "": the owner's total */
    int client;       /* db_client */
    int64_t requests, bytes;
};
struct db_batch_more {
    const struct db_hourly_row *hourly; /* in (owner, hour, image_id) order */
    size_t nhourly;
    const struct db_client_row *clients; /* in (owner, image_id, client) order */
    size_t nclients;
    int hours; /* whether to replace the date's hourly rows (the date is
                  within the hourly retention); else they are left alone */
};

struct db_batch_stats {
    int64_t requests_before; /* analytics_daily's requests that date, before */
    int64_t requests;        /* and after: the events' count */
    int64_t drift;           /* before - after: what realtime counted in excess */
};

/* Make `date`'s analytics_daily and analytics_status_daily rows exactly
 * these (rows sorted in their table's key order, as the caller groups
 * them: inserting in key order is several times faster), recompute the
 * owners' totals of the date and so their month's analytics_monthly row,
 * record the date in analytics_batch_days and the run in analytics_meta
 * (last_aggregation_date only moves forward), in one transaction: on any
 * error nothing changed. `events` is what the event store held. */
/* `more` (may be NULL: those tables are left alone) replaces the date's
 * analytics_clients_daily rows and, if more->hours, its analytics_hourly
 * rows, in the same transaction. The sketches of analytics_uniques_daily
 * are never touched by the batch (events keep no client hash). */
int db_batch_replace_day(struct db *db, const char *date, const struct db_daily_row *daily,
                         size_t ndaily, const struct db_status_row *status, size_t nstatus,
                         const struct db_batch_more *more, int64_t events,
                         struct db_batch_stats *st, char *err, size_t errlen);

/* ---- Unique clients (HyperLogLog sketches, base/hll.h) ---- */

/* Sketch points to merge into one stored sketch: analytics_uniques_daily's
 * row (owner, date, image_id; "" image_id: the owner's sketch of the day).
 * A point is hll_point()'s (register index << 8 | rank). */
struct db_sketch {
    char owner[33];
    char date[11];
    char image_id[8];
    const uint32_t *points;
    size_t npoints;
};

/* Merge each sketch's points into its stored registers (register max,
 * creating the row), and store the new estimate beside them, in one
 * transaction. Idempotent: merging the same points again changes nothing,
 * so a retried call (or another node's sketch of the same clients) never
 * counts a client twice; concurrent calls lose nothing (PostgreSQL locks
 * the rows). A stored sketch that does not decode (hll_decode()) is
 * replaced by the new points, silently. PF_EINVAL (nothing written) for a
 * point whose index or rank is out of range; PF_EDB with the reason in
 * err. */
int db_sketches_merge(struct db *db, const struct db_sketch *s, size_t n, char *err, size_t errlen);

/* The day's random salt for the client hash (16 bytes): made by the first
 * caller (first writer wins, so every node of a cluster gets the same) and
 * stored in analytics_salts until db_salt_purge_before() removes it.
 * OUT: salt. */
int db_salt_get(struct db *db, const char *date, uint8_t salt[16], char *err, size_t errlen);
/* Delete the salts of dates before `date`, for good: on SQLite the
 * connection's secure_delete zeroes them in the pages, then every call
 * runs a TRUNCATE checkpoint that empties the WAL (PF_EDB if a reader's
 * old snapshot keeps part of it: the rows are gone, and a call again
 * finishes the job); on PostgreSQL, VACUUM analytics_salts after a call
 * that removed rows. OUT: *removed (may be NULL). */
int db_salt_purge_before(struct db *db, const char *date, int64_t *removed, char *err,
                         size_t errlen);

/* Call fn with each node id (the part of a flush id before its first '.')
 * of the realtime flushes recorded from Unix time `from` until `to`
 * (receipts are kept a week): the nodes that wrote counts then. */
int db_flush_nodes(struct db *db, int64_t from, int64_t to, int (*fn)(void *ctx, const char *node),
                   void *ctx);

/* OUT: *done = whether the batch has aggregated `date`. */
int db_batch_day_done(struct db *db, const char *date, int *done);

/* OUT: *requests = the requests the tables count for `date`: those of
 * analytics_status_daily (every status), or of the owners' day totals if
 * more. */
int db_day_requests(struct db *db, const char *date, int64_t *requests);

/* analytics_meta. db_meta_get: PF_ENOTFOUND when the key is absent. */
int db_meta_get(struct db *db, const char *key, char *value, size_t len);
int db_meta_set(struct db *db, const char *key, const char *value, char *err, size_t errlen);

struct db_cleanup_stats {
    int64_t daily_rows, status_rows, dates;
};

/* Delete analytics_daily and analytics_status_daily rows of dates before
 * `date`, one date per transaction (the realtime writer waits for one short
 * transaction at a time, never for the whole purge); analytics_monthly and
 * analytics_owner_daily are kept. Every such row goes, whatever wrote it:
 * after the dates the server tracked, a sweep finds rows of any owner on any
 * older date (a restored backup, a `db copy`, a row written by hand) with
 * one index seek per owner, and deletes them one owner per transaction.
 * Gives up between transactions with PF_ECONFLICT when *stop is set (stop
 * may be NULL): a next run resumes. OUT: *st, also on error (what was
 * deleted so far). */
int db_cleanup_before(struct db *db, const char *date, const atomic_int *stop,
                      struct db_cleanup_stats *st, char *err, size_t errlen);
/* The retention of the rest: analytics_clients_daily and
 * analytics_uniques_daily rows of dates before `date`, and analytics_hourly
 * rows of hours before `hour` (Unix time / 3600; the hourly retention is
 * its own, ANALYTICS_HOURLY_RETENTION_DAYS). OUT: *rows (may be NULL), the
 * rows deleted. */
int db_cleanup_more_before(struct db *db, const char *date, int64_t hour, int64_t *rows, char *err,
                           size_t errlen);

/* ---- Scheduled jobs: one runner per slot across the nodes ---- */

/* A scheduled job's slot is the cron fire time it runs for (Unix
 * seconds). job_runs keeps one row per (job, slot): the node that ran it
 * last, its attempts, when it started and ended, and whether it
 * succeeded. A week of rows is kept.
 *
 * On a shared database (PostgreSQL) a claim also takes a session-level
 * advisory lock per job on this connection, held until db_job_end() or
 * until the connection closes: a node that dies (its connection drops)
 * lets go of its job at once, and its slot, never marked ended, is
 * claimed by the next node that asks. So each job runs on one node at a
 * time across the cluster and each slot runs to its end once. (A
 * connection that breaks during a run loses the lock: another node may
 * then run the slot again beside it, which the jobs allow, being
 * idempotent.) On SQLite (one node's database) a claim is never BUSY; it
 * still records the run. Every WON is followed by db_job_end() on the
 * same connection. */
enum db_job_claim {
    DB_JOB_WON,   /* run it here, then db_job_end() */
    DB_JOB_BUSY,  /* another connection runs this job now (any slot): ask again later */
    DB_JOB_ENDED, /* the slot's run has ended: nothing to do */
};

enum db_job_outcome {
    DB_JOB_DONE,      /* ended, succeeded */
    DB_JOB_FAILED,    /* ended, failed (the runner logged why) */
    DB_JOB_ABANDONED, /* not ended (stopped half-way): the next claim gets it */
};

/* Claim `slot` of `job` for node `node` (its config_node_id()). A slot
 * whose run ended in failure counts as ended unless `retry_failed` (a
 * node starting up retries what failed before). OUT: *out. */
int db_job_begin(struct db *db, const char *job, int64_t slot, const char *node, int retry_failed,
                 enum db_job_claim *out);
/* End a claim won by db_job_begin(): record the outcome, let go of the
 * job. */
int db_job_end(struct db *db, const char *job, int64_t slot, enum db_job_outcome outcome);

/* ---- API keys (auth.h makes and checks them) ---- */

struct db_key {
    char id[16];       /* the key's public part */
    char owner[65];    /* the owner's name */
    char key_hash[65]; /* hex of the key's keyed hash */
    char scopes[32];   /* "read", "write" or "read,write" */
    int64_t created_at;
    int64_t expires_at;   /* 0: never */
    int64_t last_used_at; /* 0: never */
    int64_t revoked_at;   /* 0: not revoked */
};

/* PF_EEXISTS when the id is taken. */
int db_key_insert(struct db *db, const struct db_key *k);
/* PF_ENOTFOUND when there is no such key. */
int db_key_get(struct db *db, const char *id, struct db_key *out);
/* Call fn for every key, oldest first; a non-zero return stops the scan. */
int db_key_scan(struct db *db, int (*fn)(void *ctx, const struct db_key *k), void *ctx);
/* Revoke (a second time changes nothing). OUT: *already = it was revoked
 * before. PF_ENOTFOUND when there is no such key. */
int db_key_revoke(struct db *db, const char *id, int64_t now, int *already);
/* Record a use of the key at `now`. */
int db_key_touch(struct db *db, const char *id, int64_t now);

/* ---- The analytics API's reads ---- */

/* One row of a read below; which fields are set is said there. Strings
 * live until fn returns. */
struct db_stat_row {
    const char *date, *image_id, *variant, *country;
    int status;
    int64_t requests, bytes;
    int64_t bot_requests, bot_bytes; /* of them, bots' (where the table has them) */
    int64_t hour;                    /* db_owner_hours */
    int client;                      /* db_owner_clients */
    int64_t uniques;                 /* db_owner_uniques, db_image_uniques */
};
typedef int (*db_stat_fn)(void *ctx, const struct db_stat_row *row);

/* A read transaction: the reads between see one snapshot of the database
 * (writers go on meanwhile), taken at the latest by its first read.
 * db_read_end() also after an error. */
int db_read_begin(struct db *db);
void db_read_end(struct db *db);

/* The reads call fn per row; a non-zero return from fn stops the read and
 * is returned. Dates are YYYY-MM-DD, from and to inclusive.
 * - db_day_versions: date, requests = the date's version (dates never
 *   written since the schema has versions are absent: version 0).
 * - db_owner_days: date, requests, bytes of analytics_owner_daily.
 * - db_owner_statuses: status, requests summed over the dates, by status.
 * - db_segment_rows: one date's analytics_daily rows of the owner:
 *   image_id, variant, country, requests, bytes, in key order.
 * - db_image_rows: one image's analytics_daily rows over the dates: date,
 *   variant, country, requests, bytes.
 * All of these also set bot_requests (and bot_bytes where the table has
 * it: all but analytics_status_daily).
 * - db_owner_hours: analytics_hourly rows of the owner's image `image_id`
 *   ("": the owner's totals) for the hours from..to (Unix time / 3600,
 *   inclusive): hour, requests, bytes, bot_requests, bot_bytes, in hour
 *   order; hours without a row are absent.
 * - db_owner_clients: the analytics_clients_daily rows of the owner's image
 *   `image_id` ("": the owner's totals) summed over the dates, by class:
 *   client, requests, bytes.
 * - db_owner_uniques: the estimates of the owner's sketches of image
 *   `image_id` ("": the owner's day sketches) over the dates: date,
 *   uniques, in date order; dates without a sketch are absent.
 * - db_image_uniques: for every image of the owner with a sketch over the
 *   dates, the sum of its daily estimates: image_id, uniques (any order). */
int db_day_versions(struct db *db, const char *from, const char *to, db_stat_fn fn, void *ctx);
int db_owner_days(struct db *db, const char *owner, const char *from, const char *to, db_stat_fn fn,
                  void *ctx);
int db_owner_statuses(struct db *db, const char *owner, const char *from, const char *to,
                      db_stat_fn fn, void *ctx);
int db_segment_rows(struct db *db, const char *owner, const char *date, db_stat_fn fn, void *ctx);
int db_image_rows(struct db *db, const char *owner, const char *image_id, const char *from,
                  const char *to, db_stat_fn fn, void *ctx);
int db_owner_hours(struct db *db, const char *owner, const char *image_id, int64_t from_hour,
                   int64_t to_hour, db_stat_fn fn, void *ctx);
int db_owner_clients(struct db *db, const char *owner, const char *image_id, const char *from,
                     const char *to, db_stat_fn fn, void *ctx);
int db_owner_uniques(struct db *db, const char *owner, const char *image_id, const char *from,
                     const char *to, db_stat_fn fn, void *ctx);
int db_image_uniques(struct db *db, const char *owner, const char *from, const char *to,
                     db_stat_fn fn, void *ctx);

/* The export's read (GET /v1/analytics/export), a page at a time: up to
 * `limit` of the owner's analytics_daily rows with from <= date <= to
 * whose key (date, image_id, variant, country) is after `after`'s (NULL:
 * from the first), in key order (byte order of the text), one call of fn
 * each: date, image_id, variant, country, requests, bytes. The next page
 * passes the last row given as `after` (keyset paging); fewer than `limit`
 * rows (OUT: *rows) means the range is done. Each page is one statement
 * and so one snapshot, and nothing is held between pages (no transaction,
 * no cursor): an export of any length never keeps a connection busy or
 * the writers waiting. The price: rows of a date that the batch replaces
 * (db_batch_replace_day) while the pages are being read come from before
 * or after the replacement, as the page that reads them saw the table, and
 * a date cut by a page boundary may show some of each. */
int db_daily_page(struct db *db, const char *owner, const char *from, const char *to,
                  const struct db_stat_row *after, int limit, db_stat_fn fn, void *ctx, int *rows);

/* Look up an image by id. PF_ENOTFOUND if absent. */
int db_image_by_id(struct db *db, const char *id, struct db_image *out);

/* ---- Copying a whole database (pixflare db copy) ---- */

/* The tables a copy carries, in the order it copies them; their columns
 * are the same on every backend (SPEC.md's tables). Values travel as text,
 * NULL as a NULL pointer. */
struct db_table {
    const char *name;
    const char *columns; /* "a, b, c" */
    int ncols;
    const char *order; /* ORDER BY of a read: the copy keeps insertion order */
    int hex_col;       /* 1-based: the binary column (BLOB, bytea), whose bytes travel
                          as hex text; 0: none */
};
extern const struct db_table db_tables[];
extern const size_t db_table_count;

typedef int (*db_row_fn)(void *ctx, const char *const *values);

/* OUT: *rows, the table's row count. */
int db_table_count_rows(struct db *db, const struct db_table *t, int64_t *rows);
/* Call fn for each row of the table, in t->order. */
int db_table_rows(struct db *db, const struct db_table *t, db_row_fn fn, void *ctx);
/* Insert n rows (n * t->ncols values, row after row). */
int db_table_insert(struct db *db, const struct db_table *t, const char *const *values, size_t n,
                    char *err, size_t errlen);
/* One transaction around a copy's inserts: all or nothing. */
int db_tx_begin(struct db *db);
int db_tx_commit(struct db *db, char *err, size_t errlen);
void db_tx_rollback(struct db *db);

/* db_copy.c. OUT: *empty = whether every table of db_tables is empty; if
 * not, `what` names one that is not and its row count. */
int db_copy_is_empty(struct db *db, int *empty, char *what, size_t whatlen);
typedef void (*db_copy_progress_fn)(void *ctx, const char *table, int64_t done, int64_t total);
/* Copy every row of db_tables from src into dst (empty: the caller checked)
 * in one transaction of dst: on error dst is left as it was. progress (may
 * be NULL) is called after each chunk. OUT: *copied, the rows. */
int db_copy(struct db *src, struct db *dst, db_copy_progress_fn progress, void *ctx,
            int64_t *copied, char *err, size_t errlen);

#endif