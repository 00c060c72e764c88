/* engine_int.h - what an event engine backend implements (engine.h's
 * operations), and the constructors engine_open() chooses from. Only
 * src/analytics/engine*.c include it. */
#ifndef PF_ENGINE_INT_H
#define PF_ENGINE_INT_H

#include "analytics/engine.h"

#include <stdint.h>

/* Each operation is engine.h's function of the same name, called with a
 * non-NULL engine. */
struct engine_ops {
    const char *name; /* ANALYTICS_ENGINE's value */
    int (*writer_start)(struct engine *e, FILE *log, struct event_sink *sink, char *err,
                        size_t errlen);
    void (*writer_stop)(struct engine *e, struct engine_write_stats *st);
    int (*scan_day)(struct engine *e, int64_t day, int (*fn)(void *ctx, const struct event *ev),
                    void *ctx, FILE *report, struct engine_scan_stats *st);
    int (*group_day)(struct engine *e, int64_t day, const struct engine_group_opts *o, FILE *report,
                     struct engine_group **groups, size_t *n, struct engine_scan_stats *st,
                     char *err, size_t errlen);
    int (*has_day)(struct engine *e, int64_t day);
    int (*purge_before)(struct engine *e, int64_t day, uint64_t *removed, char *err, size_t errlen);
    void (*free)(struct engine *e);
};

/* The head of every backend's own struct. */
struct engine {
    const struct engine_ops *ops;
};

/* The embedded event log (engine_embedded.c). */
int engine_embedded_new(const struct config *cfg, struct engine **out);

/* engine_open_check()'s test of the embedded engine's directory. */
int engine_embedded_check(const struct config *cfg, char *err, size_t errlen);

/* ClickHouse (engine_clickhouse.c): reached, its tables made or checked;
 * `node` is this node's id, which the rows it ships carry. With `check`,
 * engine_open_check()'s: nothing made, the table only looked for, and no
 * writer. */
int engine_clickhouse_new(const struct config *cfg, uint64_t node, int check, struct engine **out,
                          char *err, size_t errlen);

#endif
