/* aq_period.c - see aq_period.h. */
#include "api/aq_period.h"

#include "base/err.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400

int aq_period_init(struct aq_period *p, int64_t start, int days, int hourly, int exclude_bots)
{
    memset(p, 0, sizeof(*p));
    p->start = start;
    p->days = days;
    p->hourly = hourly;
    p->exclude_bots = exclude_bots;
    p->day = calloc((size_t)days, sizeof(*p->day));
    if (hourly)
        p->hour = calloc((size_t)days * 24, sizeof(*p->hour));
    p->points = hourly ? p->hour : p->day;
    p->npoints = hourly ? days * 24 : days;
    return p->day == NULL || (hourly && p->hour == NULL) ? PF_ENOMEM : 0;
}

void aq_period_free(struct aq_period *p)
{
    free(p->day);
    free(p->hour);
    memset(p, 0, sizeof(*p));
}

/* The period's dates, for the reads. */
static void bounds(const struct aq_period *p, char from[11], char to[11])
{
    timeutil_format_date(p->start, from);
    timeutil_format_date(p->start + (int64_t)(p->days - 1) * DAY, to);
}

/* A row's counts, its bots' part left out under exclude_bots. */
static void counts(const struct aq_period *p, const struct db_stat_row *row, int64_t *req,
                   int64_t *bytes)
{
    *req = row->requests - (p->exclude_bots ? row->bot_requests : 0);
    *bytes = row->bytes - (p->exclude_bots ? row->bot_bytes : 0);
}

void aq_period_add_day(struct aq_period *p, int o, const struct db_stat_row *row)
{
    int64_t req, bytes;
    counts(p, row, &req, &bytes);
    p->day[o].requests += req;
    p->day[o].bytes += bytes;
    p->requests += req;
    p->bytes += bytes;
}

/* A read's state: the period, and the last date's offset (rows come
 * grouped by date, so a date is parsed once per run of its rows). */
struct reader {
    struct aq_period *p;
    int *has_day;
    char last[11];
    int last_offset;
};

/* The day offset of a date in the period, or -1. */
static int offset(struct reader *r, const char *date)
{
    int64_t t;
    if (strcmp(date, r->last) == 0)
        return r->last_offset;
    int o = -1;
    if (timeutil_parse_date(date, &t) == 0 && t >= r->p->start &&
        (t - r->p->start) / DAY < r->p->days)
        o = (int)((t - r->p->start) / DAY);
    snprintf(r->last, sizeof(r->last), "%s", date);
    r->last_offset = o;
    return o;
}

static int on_day(void *ctx, const struct db_stat_row *row)
{
    struct reader *r = ctx;
    int o = offset(r, row->date);
    if (o >= 0) {
        aq_period_add_day(r->p, o, row);
        if (r->has_day != NULL)
            r->has_day[o] = 1;
    }
    return 0;
}

int aq_period_owner_days(struct aq_period *p, struct db *db, const char *owner, int *has_day)
{
    char from[11], to[11];
    struct reader r = {p, has_day, "", -1};
    bounds(p, from, to);
    return db_owner_days(db, owner, from, to, on_day, &r);
}

int aq_period_image_days(struct aq_period *p, struct db *db, const char *owner,
                         const char *image_id)
{
    char from[11], to[11];
    struct reader r = {p, NULL, "", -1};
    bounds(p, from, to);
    return db_image_rows(db, owner, image_id, from, to, on_day, &r);
}

static int on_uniques(void *ctx, const struct db_stat_row *row)
{
    struct reader *r = ctx;
    int o = offset(r, row->date);
    if (o >= 0) {
        r->p->day[o].uniques += row->uniques;
        r->p->uniques += row->uniques;
    }
    return 0;
}

static int on_hour(void *ctx, const struct db_stat_row *row)
{
    struct reader *r = ctx;
    int64_t o = row->hour - r->p->start / 3600, req, bytes;
    if (o >= 0 && o < (int64_t)r->p->days * 24) {
        counts(r->p, row, &req, &bytes);
        r->p->hour[o].requests += req;
        r->p->hour[o].bytes += bytes;
    }
    return 0;
}

int aq_period_more(struct aq_period *p, struct db *db, const char *owner, const char *image_id)
{
    char from[11], to[11];
    struct reader r = {p, NULL, "", -1};
    bounds(p, from, to);
    int rc = db_owner_uniques(db, owner, image_id, from, to, on_uniques, &r);
    if (rc == 0 && p->hourly) {
        int64_t first = p->start / 3600;
        rc = db_owner_hours(db, owner, image_id, first, first + (int64_t)p->days * 24 - 1, on_hour,
                            &r);
    }
    return rc;
}

struct clients_ctx {
    int64_t requests[DB_CLIENTS], bytes[DB_CLIENTS];
};

static int on_client(void *ctx, const struct db_stat_row *row)
{
    struct clients_ctx *c = ctx;
    /* A class this build does not know (a newer writer's) is left out. */
    if (row->client >= 0 && row->client < DB_CLIENTS) {
        c->requests[row->client] += row->requests;
        c->bytes[row->client] += row->bytes;
    }
    return 0;
}

int aq_period_clients(struct db *db, const char *owner, const char *image_id, const char *from,
                      const char *to, int exclude_bots, struct aq_client out[3], int *n)
{
    /* The contract's order: people first, then link previews, then bots. */
    static const int order[] = {DB_CLIENT_HUMAN, DB_CLIENT_PREVIEW, DB_CLIENT_BOT};
    struct clients_ctx c;
    memset(&c, 0, sizeof(c));
    int rc = db_owner_clients(db, owner, image_id, from, to, on_client, &c);
    *n = 0;
    for (int i = 0; rc == 0 && i < 3; i++) {
        if (exclude_bots && order[i] == DB_CLIENT_BOT)
            continue;
        out[*n].name = db_client_name(order[i]);
        out[*n].requests = c.requests[order[i]];
        out[*n].bytes = c.bytes[order[i]];
        (*n)++;
    }
    return rc;
}
