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
 * A segment also keeps the bots' part of each count, so that exclude_bots
 * subtracts it without another read. Totals and series, uniques and
 * clients are read afresh (aq_period.h), status codes from
 * analytics_status_daily (small tables), freshness from analytics_meta;
 * the period before the range (compare) in the same read transaction.
 * Thread-safe: any number of threads, each with its own db connection. */
#ifndef PF_AQ_H
#define PF_AQ_H

#include "api/aq_period.h"
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
    int64_t uniques; /* top images: the sum of the image's daily estimates */
};

/* What to answer (query.h's parameters). */
struct aq_query {
    int64_t start; /* Unix seconds of the first date's midnight, UTC */
    int days;
    int limit;        /* top images (overview) */
    int hourly;       /* the series by hour (aq_period.h) */
    int exclude_bots; /* every count leaves out clients classed bot */
    int compare;      /* also the period of `days` dates just before start */
};

struct aq_result {
    struct aq_period cur;  /* totals, series, uniques of the range */
    struct aq_period prev; /* compare: the period before (else days 0) */
    /* Lists, in SPEC.md's order: requests descending, then bytes
     * descending, then name (status) ascending. */
    struct aq_item *images; /* overview: the top `limit` */
    size_t nimages;
    struct aq_item *countries, *variants, *statuses; /* statuses: overview */
    size_t ncountries, nvariants, nstatuses;
    struct aq_client clients[3]; /* human, preview, bot (not with exclude_bots) */
    int nclients;
    char last_aggregation_date[11]; /* "" if none */
    /* How the answer was made (for logs and the benchmark). */
    int segments, segments_loaded;
    int64_t rows_loaded;
};

/* The overview of owner (keyed hash hex) for q. OUT: *out, freed with
 * aq_result_free(), also on error. */
int aq_overview(struct aq *aq, struct db *db, const char *owner, const struct aq_query *q,
                struct aq_result *out);

/* One image's stats (variants, countries, series, clients; no cache: one
 * image's rows are few and reached by index). */
int aq_image(struct db *db, const char *owner, const char *image_id, const struct aq_query *q,
             struct aq_result *out);

void aq_result_free(struct aq_result *r);

/* Bytes and count of the segments held now (for tests and logs). */
void aq_usage(struct aq *aq, size_t *bytes, size_t *segments);

#endif
