/* query.h - the analytics API's query strings and parameters.
 *
 * query_parse() splits a raw query string ("days=7&format=csv") into
 * decoded pairs; query_add() takes one raw pair (libmicrohttpd splits the
 * string, and leaves pairs raw: see api.c). Decoding is strict: '+' is a
 * space, "%XX" a byte, and a bad escape, a byte outside printable ASCII, a repeated
 * name or a value too long is an error. query_params() then checks the
 * parameters of SPEC.md's HTTP API against a given today. Errors name the
 * parameter and say what is allowed, for a 400 body. Nothing allocates. */
#ifndef PF_QUERY_H
#define PF_QUERY_H

#include <stddef.h>
#include <stdint.h>

#define QUERY_MAX_PARAMS 16
#define QUERY_NAME_MAX 32
#define QUERY_VALUE_MAX 64

struct query {
    size_t n;
    struct {
        char name[QUERY_NAME_MAX + 1];
        char value[QUERY_VALUE_MAX + 1];
    } p[QUERY_MAX_PARAMS];
};

struct query_error {
    char param[QUERY_NAME_MAX + 1]; /* the parameter at fault, or "" */
    char message[160];
};

/* Add one raw pair (`value` NULL when the pair had no '='). PF_EINVAL with
 * *e filled on a bad one. */
int query_add(struct query *q, const char *name, size_t nlen, const char *value, size_t vlen,
              struct query_error *e);

/* Parse a whole raw query string (without the '?'). Empty pairs ("a=1&&b=2",
 * a trailing '&') are skipped. */
int query_parse(const char *raw, size_t len, struct query *q, struct query_error *e);

/* The value of `name`, or NULL. */
const char *query_get(const struct query *q, const char *name);

enum query_endpoint { QUERY_OVERVIEW, QUERY_IMAGE };

struct api_params {
    int64_t start, end; /* Unix seconds of the first and last date's midnight */
    int days;           /* end - start + 1 */
    int limit;          /* top_images (overview) */
    int csv;
    int hourly;       /* interval=hour (the range is then at most API_HOURLY_DAYS_MAX) */
    int compare;      /* compare=previous: also the period of `days` before start */
    int exclude_bots; /* exclude_bots=true */
};

#define API_DAYS_DEFAULT 30
#define API_DAYS_MAX 90
#define API_LIMIT_DEFAULT 10
#define API_LIMIT_MAX 100
#define API_HOURLY_DAYS_MAX 7   /* interval=hour: 24 entries a day */
#define API_EXPORT_DAYS_MAX 366 /* the export's range: a year, leap years included */

/* Check the parameters for an endpoint, with today's date at `today`
 * (Unix seconds, any time of the day). Unknown parameters are errors
 * (`limit` is unknown to the image endpoint): a misspelt one would
 * otherwise silently answer with the defaults. */
int query_params(const struct query *q, enum query_endpoint ep, int64_t today,
                 struct api_params *out, struct query_error *e);

/* The export's parameters (GET /v1/analytics/export): days, start and end
 * as query_params() checks them (same defaults and messages) but for a
 * range of up to API_EXPORT_DAYS_MAX days, and format csv (the default:
 * out->csv = 1) or ndjson (out->csv = 0); anything else is unknown. */
int query_export_params(const struct query *q, int64_t today, struct api_params *out,
                        struct query_error *e);

#endif
