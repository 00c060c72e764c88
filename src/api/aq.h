/* aq.h - the analytics API's queries: an owner's overview and one image's
 * stats over a range of dates.
 *
 * An overview over 90 days may cover millions of analytics_daily rows, too
 * many to group in SQLite within a request's budget. So each (owner, date)
 * is kept in memory, grouped by image, country and variant (a "segment"),
 * and a query adds up at most 90 segments. A segment stays valid while its
 * date's version (analytics_day_versions, raised by every write to the
 * date's rows, in this process or another) has not moved: the versions are
 * read in the query's own read transaction, and a stale or missing segment
 * is loaded in that same transaction, so an answer always matches one
 * snapshot of the database. Today's segment, which the realtime writer
 * changes every second or so, is reloaded when it changed (one date's rows).
 * Segments live in an LRU bounded by a memory budget; a query holds
 * references to the ones it adds up, so eviction never frees them under it.
 *
 * Totals and the daily series come from analytics_owner_daily, status codes
 * from analytics_status_daily (small tables), freshness from analytics_meta.
 * Thread-safe: any number of threads, each with its own db connection. */
#ifndef PF_AQ_H
#define PF_AQ_H

#include "store/db.h"

#include <stddef.h>
#include <stdint.h>

struct aq;

/* budget: bytes of segments kept at most. */
int aq_new(size_t budget, struct aq **out);
void aq_free(struct aq *aq);

/* One entry of a list: an image id, a country, a variant name, or a status
 * (name empty, `status` set). */
struct aq_item {
    char name[16];
    int status;
    int64_t requests, bytes;
};

struct aq_day {
    int64_t requests, bytes;
};

struct aq_result {
    int days;              /* of the range */
    struct aq_day *series; /* one per day of the range, zeros included */
    int64_t requests, bytes;
    /* Lists, in SPEC.md's order: requests descending, then bytes
     * descending, then name (status) ascending. */
    struct aq_item *images; /* overview: the top `limit` */
    size_t nimages;
    struct aq_item *countries, *variants, *statuses; /* statuses: overview */
    size_t ncountries, nvariants, nstatuses;
    char last_aggregation_date[11]; /* "" if none */
    /* How the answer was made (for logs and the benchmark). */
    int segments, segments_loaded;
    int64_t rows_loaded;
};

/* The overview of owner (keyed hash hex) for `days` dates from `start`
 * (Unix seconds of its midnight, UTC). OUT: *out, freed with
 * aq_result_free(), also on error. */
int aq_overview(struct aq *aq, struct db *db, const char *owner, int64_t start, int days, int limit,
                struct aq_result *out);

/* One image's stats (variants, countries, series; no cache: one image's
 * rows are few and reached by index). */
int aq_image(struct db *db, const char *owner, const char *image_id, int64_t start, int days,
             struct aq_result *out);

void aq_result_free(struct aq_result *r);

/* Bytes and count of the segments held now (for tests and logs). */
void aq_usage(struct aq *aq, size_t *bytes, size_t *segments);

#endif
