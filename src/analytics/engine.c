/* engine.c - see engine.h: the one place ANALYTICS_ENGINE is looked at, and
 * the dispatch to the chosen backend. */
#include "analytics/engine.h"
#include "analytics/engine_int.h"

#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>

int engine_open(const struct config *cfg, struct engine **out, char *err, size_t errlen)
{
    *out = NULL;
    switch (cfg->engine) {
    case CONFIG_ENGINE_EMBEDDED:
        return engine_embedded_new(cfg, out);
    case CONFIG_ENGINE_NONE:
        return 0;
    case CONFIG_ENGINE_CLICKHOUSE:
        break;
    }
    char node[17];
    int rc = config_node_id(cfg, node, err, errlen);
    if (rc == 0)
        rc = engine_clickhouse_new(cfg, strtoull(node, NULL, 16), 0, out, err, errlen);
    return rc;
}

int engine_open_check(const struct config *cfg, struct engine **out, char *err, size_t errlen)
{
    int rc = 0;
    *out = NULL;
    switch (cfg->engine) {
    case CONFIG_ENGINE_EMBEDDED:
        rc = engine_embedded_check(cfg, err, errlen);
        if (rc == 0)
            rc = engine_embedded_new(cfg, out);
        break;
    case CONFIG_ENGINE_NONE:
        break;
    case CONFIG_ENGINE_CLICKHOUSE:
        /* No node id: reading needs none, and making one is a change. */
        rc = engine_clickhouse_new(cfg, 0, 1, out, err, errlen);
        break;
    }
    return rc;
}

void engine_close(struct engine *e)
{
    if (e != NULL) {
        e->ops->writer_stop(e, NULL);
        e->ops->free(e);
    }
}

const char *engine_name(const struct engine *e)
{
    return e != NULL ? e->ops->name : "none";
}

int engine_writer_start(struct engine *e, FILE *log, struct event_sink *sink, char *err,
                        size_t errlen)
{
    return e->ops->writer_start(e, log, sink, err, errlen);
}

void engine_writer_stop(struct engine *e, struct engine_write_stats *st)
{
    e->ops->writer_stop(e, st);
}

int engine_scan_day(struct engine *e, int64_t day, int (*fn)(void *ctx, const struct event *ev),
                    void *ctx, FILE *report, struct engine_scan_stats *st)
{
    return e->ops->scan_day(e, day, fn, ctx, report, st);
}

int engine_group_day(struct engine *e, int64_t day, const struct engine_group_opts *o, FILE *report,
                     struct engine_group **groups, size_t *n, struct engine_scan_stats *st,
                     char *err, size_t errlen)
{
    return e->ops->group_day(e, day, o, report, groups, n, st, err, errlen);
}

int engine_has_day(struct engine *e, int64_t day)
{
    return e->ops->has_day(e, day);
}

int engine_purge_before(struct engine *e, int64_t day, uint64_t *removed, char *err, size_t errlen)
{
    return e->ops->purge_before(e, day, removed, err, errlen);
}
