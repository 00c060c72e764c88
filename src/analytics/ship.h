/* ship.h - the shipper: every event of the node's local event log (the
 * spool, evlog.h) sent to ClickHouse, exactly once, in batches.
 *
 * With ANALYTICS_ENGINE=clickhouse the CDN's events are first made durable
 * in the local event log, as with the embedded engine; one thread then reads
 * the log on from where it left off and inserts what it finds into
 * ClickHouse's table (engine_clickhouse.c owns the table), at most
 * SHIP_BATCH_MAX events or ANALYTICS_ENGINE_BATCH_MS apart. How a failure at
 * any point ends with each event in ClickHouse once is written at the top of
 * ship.c, with the format of the file where the shipper keeps its place.
 *
 * While ClickHouse cannot be reached the events wait in the spool (bounded
 * by the disk; nothing unshipped is ever deleted), the log says so once and
 * once when it is back. A segment is deleted once it is sealed and every
 * event of it is acknowledged. */
#ifndef PF_SHIP_H
#define PF_SHIP_H

#include "analytics/clickhouse.h"

#include <stdint.h>
#include <stdio.h>

#define SHIP_BATCH_MAX 100000

struct ship_config {
    const char *data_dir, *dataset; /* the spool: DATA_DIR/events/<dataset> */
    const char *table;              /* ClickHouse table of the events */
    const char *nodes_table;        /* ClickHouse table of each node's progress */
    uint64_t node;                  /* this node's id (config_node_id()) */
    int batch_ms;                   /* longest wait before events are sent */
    FILE *log;
};

struct ship;

/* Read where the shipper stopped (PF_EFORMAT, with the reason in err, when
 * that file is damaged: then which events ClickHouse has is unknown) and
 * start the shipping thread. `ch` becomes the shipper's. OUT: *out. */
int ship_start(const struct ship_config *cfg, struct clickhouse *ch, struct ship **out, char *err,
               size_t errlen);

/* Stop the thread after one last pass, made when ClickHouse was reachable at
 * the last try (a stop never waits out an outage), and free. Call after the
 * event log is closed, so that the last pass sees every event. NULL is
 * fine. */
void ship_stop(struct ship *s);

struct ship_stats {
    uint64_t shipped;     /* events acknowledged by ClickHouse since start */
    uint64_t batches;     /* inserts acknowledged */
    uint64_t failures;    /* inserts or checks that failed */
    uint64_t spool_bytes; /* bytes of segments in the spool (not yet deleted) */
    int down;             /* the last try failed */
};

void ship_get_stats(struct ship *s, struct ship_stats *st);

#endif
