/* engine.h - the event engine: the seed's Analytics Engine, where every
 * event is kept and read back.
 *
 * ANALYTICS_ENGINE picks it, here and nowhere else (engine_open()):
 * `embedded` is the event log on local disk (evlog.h); `clickhouse` is a
 * ClickHouse table, fed from the same event log used as a spool (ship.h;
 * engine_clickhouse.c); `none` is no engine (engine_open() gives NULL:
 * events are not kept, and the commands that read them say so). A backend
 * is one file implementing the operations of engine_int.h.
 *
 * An engine is written by one server (engine_writer_start(): the sink the
 * CDN's events go to) and read by anyone: `pixflare events` (a day's events
 * one by one), the batch aggregation (a day grouped: the seed's GraphQL
 * query) and the retention (whole days purged). Reads and purges need no
 * writer. */
#ifndef PF_ENGINE_H
#define PF_ENGINE_H

#include "analytics/event.h"
#include "config/config.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct engine;

/* The engine cfg names. OUT: *out (NULL for ANALYTICS_ENGINE=none), freed
 * with engine_close(). PF_EINVAL, with one line in err, for an engine that
 * cannot be used: for clickhouse, unreachable, credentials refused, or a
 * table with the wrong columns (the tables are created when absent). */
int engine_open(const struct config *cfg, struct engine **out, char *err, size_t errlen);

/* Open the engine cfg names for reading without changing anything
 * (pixflare doctor): no table, directory or node id is made. Embedded:
 * the event directory DATA_DIR/events/DATASET must exist and be writable;
 * clickhouse: the server must answer (within 5 s at most) and the table
 * ANALYTICS_DATASET exist with the right columns. OUT: *out (NULL for
 * ANALYTICS_ENGINE=none, and on error), for reading only: its writer
 * cannot start. Errors, one line in err with the fix: PF_ENOTFOUND (no
 * event directory or table yet), PF_EUNAVAIL (ClickHouse unreachable),
 * PF_EINVAL (not writable, credentials refused, wrong columns). */
int engine_open_check(const struct config *cfg, struct engine **out, char *err, size_t errlen);

/* Stop the writer if it runs, and free. NULL is fine. */
void engine_close(struct engine *e);

/* ANALYTICS_ENGINE's value for e ("embedded", "clickhouse"), or "none" for
 * NULL. */
const char *engine_name(const struct engine *e);

/* ---- Writing (one server at a time) ---- */

/* Start keeping events: take the store (PF_ECONFLICT when another server
 * writes it), repair what an unclean stop left (reported on `log`), start
 * making events durable. OUT: *sink, valid until engine_writer_stop(). */
int engine_writer_start(struct engine *e, FILE *log, struct event_sink *sink, char *err,
                        size_t errlen);

struct engine_write_stats {
    uint64_t appended, dropped, syncs;
};

/* Make everything written durable and stop; no emit may run concurrently or
 * after. OUT: *st (if not NULL). Does nothing when no writer runs. */
void engine_writer_stop(struct engine *e, struct engine_write_stats *st);

/* ---- Reading ---- */

/* What a read found beside the events: damage is skipped and counted. */
struct engine_scan_stats {
    uint64_t events;        /* valid events read */
    uint64_t damaged_bytes; /* skipped: damaged records, torn tails */
    int bad_files;          /* files that are not event files (bad header) */
    int unreadable;         /* files that could not be read */
};

/* Visit every event of UTC day `day` (days since 1970-01-01) in the
 * engine's order; damage is reported on `report` (if not NULL) and skipped.
 * Returns 0, fn's non-zero return, or PF_EIO when the engine cannot be read
 * at all. OUT: *st (if not NULL). */
int engine_scan_day(struct engine *e, int64_t day, int (*fn)(void *ctx, const struct event *ev),
                    void *ctx, FILE *report, struct engine_scan_stats *st);

/* The events of a day grouped by (owner, image, variant, country, status),
 * as the batch aggregation wants them. The key is packed in four words, the
 * same for every engine, so that grouping builds it in registers and
 * sorting compares words (see the accessors below):
 *   w[0], w[1]  owner hash (16 bytes, as in the event)
 *   w[2]        image id, 8 bytes NUL-padded
 *   w[3]        country (bytes 0-1), variant (byte 2; ENGINE_NO_VARIANT when
 *               the request named none), client class (byte 3), status
 *               (bytes 4-5), UTC hour of the day (byte 6) */
#define ENGINE_NO_VARIANT 255

struct engine_key {
    uint64_t w[4];
};

struct engine_group {
    struct engine_key k;
    uint64_t requests; /* events of the group; never 0 */
    uint64_t bytes;
};

struct engine_group_opts {
    int threads;            /* readers (>= 1) */
    const atomic_int *stop; /* when set: give up (PF_ECONFLICT) */
    /* A shared engine fed by several nodes (clickhouse) groups a day only
     * once every node that may hold events of it has sent them all
     * (PF_EUNAVAIL otherwise, naming one): the nodes it knows of, and
     * these (16 hex digits each: the nodes the database saw counting the
     * day). `force` groups what the engine holds, whatever. */
    const char *const *nodes;
    size_t nnodes;
    int force;
};

/* Group every event of UTC day `day`. Damage is skipped, counted in *st and
 * reported on `report`. OUT: *groups (malloc'd, free(); in no set order),
 * *n, *st. Errors, with the reason in err: PF_ENOMEM, PF_ECONFLICT
 * (stopped), PF_EIO (the engine cannot be read). */
int engine_group_day(struct engine *e, int64_t day, const struct engine_group_opts *o, FILE *report,
                     struct engine_group **groups, size_t *n, struct engine_scan_stats *st,
                     char *err, size_t errlen);

/* Whether the engine holds anything for UTC day `day` (a day never written,
 * or purged, has nothing to aggregate). */
int engine_has_day(struct engine *e, int64_t day);

/* Retention: drop every event of the days before `day`. OUT: *removed, the
 * units dropped (embedded: files; clickhouse: day partitions; its local
 * spool is not touched: nothing unshipped is ever deleted). Reason in err
 * on failure. */
int engine_purge_before(struct engine *e, int64_t day, uint64_t *removed, char *err, size_t errlen);

static inline uint64_t engine_load64(const void *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
}

/* Build the key of an event, in registers (byte-wise stores followed by
 * word loads would stall on store forwarding). */
static inline void engine_key_make(struct engine_key *k, const struct event *ev)
{
    uint8_t variant = ev->variant < 0 ? ENGINE_NO_VARIANT : (uint8_t)ev->variant;
    k->w[0] = engine_load64(ev->owner);
    k->w[1] = engine_load64(ev->owner + 8);
    k->w[2] = engine_load64(ev->image_id);
    k->w[3] = (uint64_t)(uint8_t)ev->country[0] | (uint64_t)(uint8_t)ev->country[1] << 8 |
              (uint64_t)variant << 16 | (uint64_t)ev->client << 24 |
              (uint64_t)(uint16_t)ev->status << 32 |
              (uint64_t)(uint8_t)((ev->ts_ms % 86400000 + 86400000) % 86400000 / 3600000) << 48;
}

static inline void engine_key_set_hour(struct engine_key *k, unsigned hour)
{
    k->w[3] = (k->w[3] & ~(0xffULL << 48)) | (uint64_t)(uint8_t)hour << 48;
}
static inline int engine_key_client(const struct engine_key *k)
{
    return (int)(uint8_t)(k->w[3] >> 24);
}
static inline int engine_key_hour(const struct engine_key *k)
{
    return (int)(uint8_t)(k->w[3] >> 48);
}

static inline const uint8_t *engine_key_owner(const struct engine_key *k)
{
    return (const uint8_t *)&k->w[0];
}

static inline const char *engine_key_image(const struct engine_key *k)
{
    return (const char *)&k->w[2];
}

static inline uint8_t engine_key_variant(const struct engine_key *k)
{
    return (uint8_t)(k->w[3] >> 16);
}

static inline int engine_key_status(const struct engine_key *k)
{
    return (int)(uint16_t)(k->w[3] >> 32);
}

static inline void engine_key_country(const struct engine_key *k, char out[3])
{
    out[0] = (char)(k->w[3] & 0xff);
    out[1] = (char)((k->w[3] >> 8) & 0xff);
    out[2] = '\0';
}

#endif
