/* chrows.h - ClickHouse's RowBinary answers to the clickhouse engine's two
 * reads, parsed as they arrive, in chunks of any size (a clickhouse_sink).
 *
 * Events (`pixflare events`): timestamp UInt64, request_id FixedString(16),
 * owner FixedString(16), image_id String, variant Int8, status UInt16,
 * country FixedString(2), bytes UInt64, client UInt8; each goes to a
 * callback.
 * Groups (the batch aggregation): owner FixedString(16), image_id String,
 * variant Int8, country FixedString(2), status UInt16, hour UInt8 (0-23),
 * client UInt8, count UInt64, sum(bytes) UInt64; collected into an array of
 * engine_group.
 * Integers are little-endian, a String is a LEB128 length and its bytes.
 * What no answer to these queries holds (an image id longer than 7 bytes or
 * not [a-z0-9], a country not [A-Z][A-Z0-9], an hour over 23, a client
 * class over 2, an answer that ends inside a
 * row) is PF_EFORMAT. */
#ifndef PF_CHROWS_H
#define PF_CHROWS_H

#include "analytics/engine.h"
#include "analytics/event.h"

#include <stddef.h>
#include <stdint.h>

#define CHROWS_CLIENTS 3 /* client classes: db.h's db_client */

struct chrows {
    uint8_t *buf; /* bytes not parsed yet: less than one row */
    size_t len, cap;
    int groups; /* which answer: 0 events, 1 groups */
    int (*fn)(void *ctx, const struct event *ev);
    void *ctx;
    int fn_rc;              /* fn's non-zero return, which stopped the parse */
    uint64_t events;        /* events parsed, or the groups' requests summed */
    struct engine_group *g; /* the groups (malloc'd; the caller takes them) */
    size_t n, gcap;
};

/* Zero r and set it to pass each event to fn(ctx, ev). */
void chrows_init_events(struct chrows *r, int (*fn)(void *ctx, const struct event *ev), void *ctx);

/* Zero r and set it to collect groups into r->g[0..r->n). */
void chrows_init_groups(struct chrows *r);

/* Take the next n bytes of the answer: 0, PF_EFORMAT, PF_ENOMEM, or fn's
 * non-zero return (also in r->fn_rc). */
int chrows_take(void *r, const uint8_t *p, size_t n);

/* The answer has ended: PF_EFORMAT when it ended inside a row. */
int chrows_finish(const struct chrows *r);

/* Free the buffer and the groups (set r->g to NULL first to keep them). */
void chrows_free(struct chrows *r);

#endif
