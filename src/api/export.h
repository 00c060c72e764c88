/* export.h - GET /v1/analytics/export: every analytics_daily row of the key
 * owner over a range of up to a year (date, image, variant, country,
 * requests, bandwidth), streamed as CSV or NDJSON in the table's key order,
 * with memory that stays flat however long the export.
 *
 * The API's thread that answered the call reads the first page (so that a
 * database that cannot be read is a 503 before any byte is sent) and hands
 * the server a streamed body (http.h's `stream`). From then on the body is
 * a small buffer: the server's event loop only copies out what it holds,
 * and the export's own threads refill it a page at a time
 * (db_daily_page(): keyset pages, no transaction or connection held between
 * them) whenever it runs low. A client that reads slowly therefore holds
 * no thread and no more than about one page of text; one that goes away
 * stops the refills; neither blocks the event loop on the database.
 *
 * The export owns its threads; its database connections are borrowed from
 * the API's through `pool` for one page at a time. */
#ifndef PF_EXPORT_H
#define PF_EXPORT_H

#include "api/query.h"
#include "http/http.h"
#include "store/db.h"

struct export;

/* Where the export's threads borrow a connection for a page: get() gives
 * one (NULL: none can be opened now), put() takes it back. Both are called
 * from the export's threads; ctx must outlive the export. */
struct export_pool {
    struct db *(*get)(void *ctx);
    void (*put)(void *ctx, struct db *db);
    void *ctx;
};

#define EXPORT_THREADS 2 /* threads refilling exports (each borrows a connection per page) */

/* OUT: *out, freed with export_free(). */
int export_new(const struct export_pool *pool, struct export **out);

/* Stop the threads once the queued refills have run, and free. Call it
 * after the HTTP server has stopped (the server waits for the refills it
 * is owed, which these threads make). NULL is fine. */
void export_free(struct export *ex);

/* Answer an export of owner_hex's rows over p's range (p->csv: CSV, else
 * NDJSON) into resp: reads the first page with `db` (the caller's, still
 * the caller's after), then makes resp a 200 with a streamed body that
 * owns what it needs (resp->body_release frees it). Returns 0, or the
 * database's error with resp untouched (the caller answers it). */
int export_start(struct export *ex, struct db *db, const char *owner_hex,
                 const struct api_params *p, struct http_resp *resp);

#endif
