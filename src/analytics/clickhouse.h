/* clickhouse.h - a client of ClickHouse's HTTP interface (libcurl): the
 * wire under engine_clickhouse.c and the shipper (ship.h).
 *
 * One `struct clickhouse` is one keep-alive connection, used by one thread
 * at a time. Statements go in the request body; an INSERT's statement goes
 * in the URL and its rows in the body. Reads ask ClickHouse to finish the
 * query before answering (wait_end_of_query), so that an error is an HTTP
 * error, never a 200 cut short. Messages name the server as host:port and
 * never repeat the URL, the user's password or the URL's credentials. */
#ifndef PF_CLICKHOUSE_H
#define PF_CLICKHOUSE_H

#include "base/strbuf.h"

#include <stddef.h>
#include <stdint.h>

struct clickhouse;

/* A client for the server `url` names (http:// or https://; its
 * ?database= picks the database, else "default"; other parameters are
 * passed on as ClickHouse settings). `user` and `password` may be NULL.
 * Nothing is sent yet. PF_EINVAL, with the reason in err, for a URL or
 * database name it cannot use. OUT: *out, freed with clickhouse_close(). */
int clickhouse_open(const char *url, const char *user, const char *password, int timeout_ms,
                    struct clickhouse **out, char *err, size_t errlen);
void clickhouse_close(struct clickhouse *c);

/* The database, and "host:port" for messages. */
const char *clickhouse_database(const struct clickhouse *c);
const char *clickhouse_where(const struct clickhouse *c);

/* Where an answer's bytes go as they arrive: return 0 to go on, anything
 * else to stop (returned by clickhouse_query()). */
typedef int (*clickhouse_sink)(void *ctx, const uint8_t *p, size_t n);

struct clickhouse_req {
    const char *sql;  /* the statement */
    const void *body; /* an INSERT's rows (sql then goes in the URL); NULL: none */
    size_t body_len;
    const char *query_id; /* NULL: ClickHouse picks one */
    clickhouse_sink sink; /* NULL: the answer is kept in `answer` */
    void *sink_ctx;
    int timeout_ms;  /* 0: the client's */
    int max_threads; /* > 0: ClickHouse's max_threads for this query */
};

/* Run one request. `answer` (if not NULL, and no sink) gets the answer's
 * text. Errors, with one line in err:
 *   PF_EUNAVAIL  ClickHouse could not be reached, or the connection broke
 *                or timed out: an INSERT may or may not have been applied;
 *   PF_EINVAL    ClickHouse answered an error (its message in err;
 *                clickhouse_auth_refused() tells the credentials' refusal);
 *   PF_ENOMEM, or the sink's own non-zero return.
 * OUT: *http_status (if not NULL; 0 when nothing was answered). */
int clickhouse_query(struct clickhouse *c, const struct clickhouse_req *req, struct strbuf *answer,
                     int *http_status, char *err, size_t errlen);

/* Whether the last error was ClickHouse refusing the user or password. */
int clickhouse_auth_refused(const struct clickhouse *c);

/* Whether s is a name Pixflare puts in statements unquoted: 1-64 of
 * [A-Za-z0-9_], not starting with a digit. */
int clickhouse_valid_name(const char *s);

/* `s` quoted as a ClickHouse string literal into out ('...' with \\ and \'
 * escaped). */
void clickhouse_quote(struct strbuf *out, const char *s);

#endif
