/* aq_period.h - the parts of an analytics answer read afresh on every call
 * (small tables, reached by index), beside aq.h's cached segments: a
 * period's totals and series, its unique clients and its clients by class.
 *
 * A period is a range of dates. Its totals and daily series come from
 * analytics_owner_daily (the owner) or are added up by the caller from one
 * image's analytics_daily rows (aq_period_add_day); its hourly series
 * (interval=hour) from analytics_hourly, 24 entries a day, zeros included;
 * its uniques from the daily HyperLogLog estimates of
 * analytics_uniques_daily: a client is counted once per UTC day (the hash's
 * salt rotates daily), so a period's uniques are the sum of its days'.
 * With exclude_bots every count leaves out the rows' bot_ columns; uniques
 * never count bots. The reads run inside the caller's read transaction
 * (db_read_begin), so that all parts of an answer are one snapshot.
 * Not thread-safe per period; any number of periods at once. */
#ifndef PF_AQ_PERIOD_H
#define PF_AQ_PERIOD_H

#include "store/db.h"

#include <stdint.h>

/* One entry of a series: a day (uniques set) or an hour (uniques 0). */
struct aq_point {
    int64_t requests, bytes, uniques;
};

struct aq_period {
    int64_t start;           /* Unix seconds of the first date's midnight */
    int days;                /* dates of the period */
    int hourly;              /* `points` are hours (24 * days) rather than days */
    int exclude_bots;        /* counts leave out the bot_ columns */
    int npoints;             /* of the series shown: days, or 24 * days */
    struct aq_point *points; /* the series shown: `day` or `hour` */
    struct aq_point *day;    /* per date */
    struct aq_point *hour;   /* per hour when hourly, else NULL */
    int64_t requests, bytes, uniques;
};

/* Start a period: zeros. OUT: *p, freed with aq_period_free() (also on
 * error). */
int aq_period_init(struct aq_period *p, int64_t start, int days, int hourly, int exclude_bots);
void aq_period_free(struct aq_period *p);

/* Count one analytics row of date offset `o` (0 = start) into the totals
 * and the day series, leaving out its bots' part under exclude_bots. */
void aq_period_add_day(struct aq_period *p, int o, const struct db_stat_row *row);

/* The owner's day totals (analytics_owner_daily) into the totals and the
 * day series. OUT: has_day[days] (may be NULL): 1 for a date with a row. */
int aq_period_owner_days(struct aq_period *p, struct db *db, const char *owner, int *has_day);

/* One image's day totals, from its analytics_daily rows (the previous
 * period of the image endpoint; the current one is added up by aq.c with
 * its lists). */
int aq_period_image_days(struct aq_period *p, struct db *db, const char *owner,
                         const char *image_id);

/* The uniques (totals and day series) and, if hourly, the hourly series of
 * the owner's image `image_id` ("": the owner's totals). */
int aq_period_more(struct aq_period *p, struct db *db, const char *owner, const char *image_id);

/* Requests and bytes of a client class over a period. */
struct aq_client {
    const char *name; /* "human", "preview", "bot" (static) */
    int64_t requests, bytes;
};

/* The clients of the owner's image `image_id` ("": the owner's totals)
 * from date `from` to `to` (YYYY-MM-DD): human, preview, bot in this
 * order, zeros included; without bot under exclude_bots. OUT: out[3],
 * *n. */
int aq_period_clients(struct db *db, const char *owner, const char *image_id, const char *from,
                      const char *to, int exclude_bots, struct aq_client out[3], int *n);

#endif
