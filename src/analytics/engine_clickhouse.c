/* engine_clickhouse.c - the `clickhouse` event engine (engine.h): events
 * kept in a ClickHouse table, written through the node's local event log
 * (the spool) by the shipper (ship.h), read with SQL over HTTP
 * (clickhouse.h).
 *
 * THE TABLES (created when absent; an existing table is checked and used
 * if its columns are these, with any more beside them). In the database of
 * ANALYTICS_ENGINE_URL's ?database= (else `default`):
 *
 *   <ANALYTICS_DATASET>: one row per CDN response, SPEC.md's event fields
 *     timestamp   UInt64           ms since 1970-01-01T00:00:00Z (UTC)
 *     request_id  FixedString(16)  (hex(request_id) is `pixflare events`')
 *     owner       FixedString(16)  keyed owner hash; zeros: no known owner
 *     image_id    String           '' when no image was found
 *     variant     Enum8            '' (-1: none named), 'original' (0),
 *                                  'w128' (1) ... 'og-image' (8), as
 *                                  base/variant.c's table
 *     status      UInt16
 *     country     FixedString(2)
 *     bytes       UInt64           response body bytes
 *   and two of the shipper's, which make a retried batch recognisable:
 *     node        UInt64           the node that shipped the row
 *     batch       UInt64           that node's batch number
 *   and, since 0.7, the client class told from the user agent:
 *     client      UInt8            0 human, 1 bot, 2 preview (db.h's
 *                                  db_client); a table made before 0.7
 *                                  gets it by ALTER TABLE, 0 for old rows
 *   ENGINE = MergeTree() PARTITION BY intDiv(timestamp, 86400000) (a UTC day
 *   per partition, whatever the server's time zone) ORDER BY (owner,
 *   image_id, variant, country, status): the batch aggregation's GROUP BY
 *   (which also groups by the hour of the day and the client).
 *   Only what ClickHouse 18.16 (Debian 12) already had: no DateTime64, no
 *   LowCardinality, no TTL. The retention drops whole partitions.
 *
 *   <ANALYTICS_DATASET>_nodes: each node's shipping progress
 *     node UInt64, shipped_through Int64 (ms: the node holds no unshipped
 *     event older than this), updated UInt64 (ms, the node's clock),
 *     version UInt64 (grows with every write of the node, across restarts:
 *     a clock set back does not make an old row the newest)
 *   ENGINE = ReplacingMergeTree(version) ORDER BY node.
 *
 * Grouping a day checks first that every node that may hold events of the
 * day has shipped through its end (see ship.c). */
#include "analytics/engine.h"
#include "analytics/engine_int.h"

#include "analytics/chrows.h"
#include "analytics/clickhouse.h"
#include "analytics/evlog.h"
#include "analytics/ship.h"
#include "base/err.h"
#include "base/strbuf.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_DAY ((int64_t)86400000)
/* A node seen this long before a day must have shipped it too: it may have
 * run through the day unable to reach ClickHouse, and so not said so. */
#define NODE_MEMORY_MS (7 * MS_PER_DAY)

struct chengine {
    struct engine base;
    char *data_dir, *dataset, *url, *user, *password;
    char nodes_table[80];
    int fsync_ms, batch_ms, timeout_ms;
    int check; /* engine_open_check()'s: reading only */
    uint64_t node;
    struct clickhouse *ch; /* reads; the shipper has its own */
    struct evlog *writer;  /* NULL: not writing */
    struct ship *ship;
};

/* ---- The table -------------------------------------------------------- */

static void variant_enum(struct strbuf *b)
{
    strbuf_puts(b, "Enum8('' = -1");
    for (int i = 0; i < VARIANT_COUNT; i++)
        strbuf_printf(b, ", '%s' = %d", variant_table[i].name, i);
    strbuf_puts(b, ")");
}

struct column {
    const char *name, *type; /* type NULL: Enum8 (checked by prefix) */
};

static const struct column columns[] = {
    {"timestamp", "UInt64"},
    {"request_id", "FixedString(16)"},
    {"owner", "FixedString(16)"},
    {"image_id", "String"},
    {"variant", NULL},
    {"status", "UInt16"},
    {"country", "FixedString(2)"},
    {"bytes", "UInt64"},
    {"node", "UInt64"},
    {"batch", "UInt64"},
    {"client", "UInt8"},
};

static const struct column node_columns[] = {
    {"node", "UInt64"}, {"shipped_through", "Int64"}, {"updated", "UInt64"}, {"version", "UInt64"}};

static int run(struct clickhouse *ch, const char *sql, struct strbuf *answer, char *err,
               size_t errlen)
{
    struct clickhouse_req req = {.sql = sql};
    return clickhouse_query(ch, &req, answer, NULL, err, errlen);
}

/* Check a table's columns against `want`. */
static int check_columns(struct clickhouse *ch, const char *table, const struct column *want,
                         size_t n, char *err, size_t errlen)
{
    struct strbuf q = {0}, ans = {0};
    strbuf_puts(&q, "SELECT name, type FROM system.columns WHERE database = ");
    clickhouse_quote(&q, clickhouse_database(ch));
    strbuf_puts(&q, " AND table = ");
    clickhouse_quote(&q, table);
    strbuf_puts(&q, " FORMAT TabSeparated");
    int rc = q.failed ? PF_ENOMEM : run(ch, q.p, &ans, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char key[80];
        snprintf(key, sizeof(key), "%s\t", want[i].name);
        const char *at = NULL;
        for (const char *p = ans.p ? ans.p : ""; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "")
            if (strncmp(p, key, strlen(key)) == 0) {
                at = p + strlen(key);
                break;
            }
        size_t tlen = at ? strcspn(at, "\n") : 0;
        if (at == NULL) {
            snprintf(err, errlen,
                     "the ClickHouse table %s.%s has the wrong columns: it has no column '%s' "
                     "(drop it, or set ANALYTICS_DATASET to another name)",
                     clickhouse_database(ch), table, want[i].name);
            rc = PF_EINVAL;
        } else if (want[i].type
                       ? (tlen != strlen(want[i].type) || strncmp(at, want[i].type, tlen) != 0)
                       : strncmp(at, "Enum8(", 6) != 0) {
            snprintf(err, errlen,
                     "the ClickHouse table %s.%s has the wrong columns: '%s' is %.*s, expected "
                     "%s (drop it, or set ANALYTICS_DATASET to another name)",
                     clickhouse_database(ch), table, want[i].name, (int)tlen, at,
                     want[i].type ? want[i].type : "Enum8");
            rc = PF_EINVAL;
        }
    }
    strbuf_free(&q);
    strbuf_free(&ans);
    return rc;
}

/* A table made before 0.7 has no `client` column: add it (ClickHouse 18.16
 * has no ADD COLUMN IF NOT EXISTS, so ask system.columns first; two nodes
 * adding it at once: the loser's ALTER fails, and the column is there). */
static int add_client_column(struct chengine *c, char *err, size_t errlen)
{
    struct strbuf q = {0}, ans = {0};
    strbuf_puts(&q, "SELECT count() FROM system.columns WHERE database = ");
    clickhouse_quote(&q, clickhouse_database(c->ch));
    strbuf_puts(&q, " AND table = ");
    clickhouse_quote(&q, c->dataset);
    strbuf_puts(&q, " AND name = 'client' FORMAT TabSeparated");
    int rc = q.failed ? PF_ENOMEM : run(c->ch, q.p, &ans, err, errlen);
    if (rc == 0 && ans.p != NULL && strtoull(ans.p, NULL, 10) == 0) {
        q.len = 0;
        strbuf_printf(&q, "ALTER TABLE %s.%s ADD COLUMN client UInt8 DEFAULT 0",
                      clickhouse_database(c->ch), c->dataset);
        rc = q.failed ? PF_ENOMEM : run(c->ch, q.p, NULL, err, errlen);
        if (rc == PF_EINVAL || rc == PF_EIO)
            rc = 0; /* another node's ALTER won: check_columns() says */
    }
    strbuf_free(&q);
    strbuf_free(&ans);
    return rc;
}

/* engine_open_check()'s: the table is there, with its columns; nothing
 * made. */
static int table_present(struct chengine *c, char *err, size_t errlen)
{
    struct strbuf q = {0}, ans = {0};
    strbuf_puts(&q, "SELECT count() FROM system.tables WHERE database = ");
    clickhouse_quote(&q, clickhouse_database(c->ch));
    strbuf_puts(&q, " AND name = ");
    clickhouse_quote(&q, c->dataset);
    int rc = q.failed ? PF_ENOMEM : run(c->ch, q.p, &ans, err, errlen);
    if (rc == 0 && (ans.p == NULL || strtoull(ans.p, NULL, 10) == 0)) {
        snprintf(err, errlen,
                 "ClickHouse at %s has no table %s.%s (ANALYTICS_DATASET): 'pixflare serve' "
                 "creates it at start; or is ANALYTICS_DATASET or the URL's ?database= wrong?",
                 clickhouse_where(c->ch), clickhouse_database(c->ch), c->dataset);
        rc = PF_ENOTFOUND;
    }
    if (rc == 0)
        rc = add_client_column(c, err, errlen);
    if (rc == 0)
        rc = check_columns(c->ch, c->dataset, columns, sizeof(columns) / sizeof(columns[0]), err,
                           errlen);
    strbuf_free(&q);
    strbuf_free(&ans);
    return rc;
}

/* Reach ClickHouse, create the tables if absent (unless `check`), check
 * their columns. One line in err says which of these failed. */
static int prepare(struct chengine *c, int check, char *err, size_t errlen)
{
    struct strbuf q = {0};
    const char *db = clickhouse_database(c->ch);
    char why[400] = "";
    int rc = run(c->ch, "SELECT 1", NULL, why, sizeof(why));
    if (rc == PF_EUNAVAIL) {
        snprintf(err, errlen, "ClickHouse is unreachable (ANALYTICS_ENGINE_URL): %s", why);
        goto done;
    }
    if (rc != 0 && clickhouse_auth_refused(c->ch)) {
        snprintf(err, errlen,
                 "ClickHouse refused the credentials (ANALYTICS_ENGINE_USER, "
                 "ANALYTICS_ENGINE_PASSWORD) of user '%s': %s",
                 c->user ? c->user : "default", why);
        goto done;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s", why);
        goto done;
    }
    if (check) {
        rc = table_present(c, err, errlen);
        if (rc == PF_ENOTFOUND)
            goto out;
        goto done;
    }
    strbuf_printf(&q,
                  "CREATE TABLE IF NOT EXISTS %s.%s (timestamp UInt64, request_id "
                  "FixedString(16), owner FixedString(16), image_id String, variant ",
                  db, c->dataset);
    variant_enum(&q);
    strbuf_puts(
        &q, ", status UInt16, country FixedString(2), bytes UInt64, node UInt64, batch "
            "UInt64, client UInt8) ENGINE = MergeTree() PARTITION BY intDiv(timestamp, 86400000) "
            "ORDER BY (owner, image_id, variant, country, status)");
    rc = q.failed ? PF_ENOMEM : run(c->ch, q.p, NULL, err, errlen);
    if (rc == 0) {
        q.len = 0;
        strbuf_printf(&q,
                      "CREATE TABLE IF NOT EXISTS %s.%s (node UInt64, shipped_through Int64, "
                      "updated UInt64, version UInt64) ENGINE = ReplacingMergeTree(version) "
                      "ORDER BY node",
                      db, c->nodes_table);
        rc = q.failed ? PF_ENOMEM : run(c->ch, q.p, NULL, err, errlen);
    }
    if (rc == 0)
        rc = check_columns(c->ch, c->dataset, columns, sizeof(columns) / sizeof(columns[0]), err,
                           errlen);
    if (rc == 0)
        rc = check_columns(c->ch, c->nodes_table, node_columns,
                           sizeof(node_columns) / sizeof(node_columns[0]), err, errlen);
done:
    /* engine_open() says PF_EINVAL for any reason it cannot be used; a
     * check tells the unreachable server apart. */
    rc = rc == PF_ENOMEM || (check && rc == PF_EUNAVAIL) ? rc : rc ? PF_EINVAL : 0;
out:
    strbuf_free(&q);
    return rc;
}

/* Run a read whose RowBinary answer goes to r, on `threads` of
 * ClickHouse's (0: its default, which 18.16 sets to the physical cores it
 * counts: one on some virtual machines). */
static int query_rows(struct chengine *c, const char *sql, int threads, struct chrows *r, char *err,
                      size_t errlen)
{
    struct clickhouse_req req = {
        .sql = sql, .sink = chrows_take, .sink_ctx = r, .max_threads = threads};
    int rc = clickhouse_query(c->ch, &req, NULL, NULL, err, errlen);
    if (rc == 0)
        rc = chrows_finish(r);
    if (rc == PF_EFORMAT)
        snprintf(err, errlen, "ClickHouse's answer holds a row Pixflare cannot read");
    return rc;
}

/* ---- Reading ----------------------------------------------------------- */

static int ch_scan_day(struct engine *e, int64_t day, int (*fn)(void *ctx, const struct event *ev),
                       void *ctx, FILE *report, struct engine_scan_stats *st)
{
    struct chengine *c = (struct chengine *)e;
    struct strbuf q = {0};
    struct chrows r;
    char err[512] = "";
    chrows_init_events(&r, fn, ctx);
    strbuf_printf(&q,
                  "SELECT timestamp, request_id, owner, image_id, CAST(variant AS Int8), status, "
                  "country, bytes, client FROM %s.%s WHERE timestamp >= %" PRId64
                  " AND timestamp < %" PRId64 " ORDER BY timestamp, request_id FORMAT RowBinary",
                  clickhouse_database(c->ch), c->dataset, day * MS_PER_DAY, (day + 1) * MS_PER_DAY);
    int rc = q.failed ? PF_ENOMEM : query_rows(c, q.p, 0, &r, err, sizeof(err));
    if (st != NULL) {
        memset(st, 0, sizeof(*st));
        st->events = r.events;
    }
    strbuf_free(&q);
    chrows_free(&r);
    if (rc == 0 || r.fn_rc != 0)
        return r.fn_rc; /* fn's own return passes through */
    if (report)
        fprintf(report, "pixflare: events: %s\n", err);
    return PF_EIO;
}

/* Every node that may hold events of `day` has shipped through its end.
 * Nodes: those of the nodes table seen since NODE_MEMORY_MS before the
 * day, and those the caller names (the realtime flush receipts). */
static int day_complete(struct chengine *c, int64_t day, const struct engine_group_opts *o,
                        char *err, size_t errlen)
{
    struct strbuf q = {0}, ans = {0};
    int64_t lo = day * MS_PER_DAY, hi = lo + MS_PER_DAY;
    strbuf_printf(&q,
                  "SELECT node, argMax(shipped_through, version), max(updated) FROM %s.%s GROUP "
                  "BY node FORMAT TabSeparated",
                  clickhouse_database(c->ch), c->nodes_table);
    int rc = q.failed ? PF_ENOMEM : run(c->ch, q.p, &ans, err, errlen);
    uint64_t lagging = 0;
    int64_t lag_wm = 0;
    int nlag = 0;
    for (const char *p = ans.p ? ans.p : ""; rc == 0 && *p;) {
        unsigned long long node, up;
        long long wm;
        if (sscanf(p, "%llu\t%lld\t%llu", &node, &wm, &up) != 3) {
            snprintf(err, errlen, "ClickHouse's nodes table answer does not parse");
            rc = PF_EFORMAT;
            break;
        }
        if ((int64_t)up >= lo - NODE_MEMORY_MS && wm < hi && nlag++ == 0) {
            lagging = node;
            lag_wm = wm;
        }
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : "";
    }
    /* Nodes the database saw counting the day that never reported. */
    for (size_t i = 0; rc == 0 && i < o->nnodes; i++) {
        uint64_t node = strtoull(o->nodes[i], NULL, 16);
        char key[32];
        snprintf(key, sizeof(key), "%" PRIu64 "\t", node);
        int known = 0;
        for (const char *p = ans.p ? ans.p : ""; *p;) {
            if (strncmp(p, key, strlen(key)) == 0)
                known = 1;
            const char *nl = strchr(p, '\n');
            p = nl ? nl + 1 : "";
        }
        if (!known && nlag++ == 0) {
            lagging = node;
            lag_wm = 0;
        }
    }
    if (rc == 0 && nlag > 0) {
        char date[11], through[32] = "nothing yet";
        timeutil_format_date(day * 86400, date);
        if (lag_wm > 0)
            timeutil_format_iso8601(lag_wm / 1000, through);
        snprintf(err, errlen,
                 "%d node(s) (%016" PRIx64 "%s) have not shipped all their events of %s to "
                 "ClickHouse (shipped through: %s): they wait in that node's local event log, "
                 "for ClickHouse or for the node to come back. Aggregate later; --force "
                 "aggregates what ClickHouse holds now",
                 nlag, lagging, nlag > 1 ? ", ..." : "", date, through);
        rc = PF_EUNAVAIL;
    }
    strbuf_free(&q);
    strbuf_free(&ans);
    return rc;
}

static int ch_group_day(struct engine *e, int64_t day, const struct engine_group_opts *o,
                        FILE *report, struct engine_group **groups, size_t *n,
                        struct engine_scan_stats *st, char *err, size_t errlen)
{
    struct chengine *c = (struct chengine *)e;
    struct strbuf q = {0};
    struct chrows r;
    (void)report;
    chrows_init_groups(&r);
    *groups = NULL;
    *n = 0;
    memset(st, 0, sizeof(*st));
    int rc = o->force ? 0 : day_complete(c, day, o, err, errlen);
    if (rc == 0) {
        strbuf_printf(
            &q,
            "SELECT owner, image_id, CAST(variant AS Int8), country, status, "
            "toUInt8(intDiv(timestamp %% 86400000, 3600000)) AS hour, client, count(), "
            "sum(bytes) FROM %s.%s WHERE timestamp >= %" PRId64 " AND timestamp < %" PRId64
            " GROUP BY owner, image_id, variant, country, status, hour, client FORMAT RowBinary",
            clickhouse_database(c->ch), c->dataset, day * MS_PER_DAY, (day + 1) * MS_PER_DAY);
        rc = q.failed ? PF_ENOMEM : query_rows(c, q.p, o->threads, &r, err, errlen);
    }
    if (rc == 0 && r.g == NULL && (r.g = malloc(sizeof(*r.g))) == NULL)
        rc = PF_ENOMEM; /* none: still an array to free(), as the embedded engine gives */
    if (rc == 0) {
        *groups = r.g;
        *n = r.n;
        st->events = r.events;
        r.g = NULL;
    } else if (rc != PF_EUNAVAIL) {
        if (rc == PF_ENOMEM)
            snprintf(err, errlen, "out of memory grouping the events");
        rc = rc == PF_ENOMEM ? rc : PF_EIO;
    }
    chrows_free(&r);
    strbuf_free(&q);
    return rc;
}

static int ch_has_day(struct engine *e, int64_t day)
{
    struct chengine *c = (struct chengine *)e;
    char sql[256], err[256];
    struct strbuf ans = {0};
    snprintf(sql, sizeof(sql),
             "SELECT count() FROM %s.%s WHERE timestamp >= %" PRId64 " AND timestamp < %" PRId64,
             clickhouse_database(c->ch), c->dataset, day * MS_PER_DAY, (day + 1) * MS_PER_DAY);
    int rc = run(c->ch, sql, &ans, err, sizeof(err));
    /* Unknown (ClickHouse unreachable) counts as absent: the catch-up then
     * leaves the date to its next run, rather than trying (and logging)
     * every date of the retention while ClickHouse is away. */
    int has = rc == 0 && ans.p && strtoull(ans.p, NULL, 10) > 0;
    strbuf_free(&ans);
    return has;
}

static int ch_purge_before(struct engine *e, int64_t day, uint64_t *removed, char *err,
                           size_t errlen)
{
    struct chengine *c = (struct chengine *)e;
    struct strbuf q = {0}, ans = {0};
    *removed = 0;
    strbuf_puts(&q, "SELECT DISTINCT partition FROM system.parts WHERE active AND database = ");
    clickhouse_quote(&q, clickhouse_database(c->ch));
    strbuf_puts(&q, " AND table = ");
    clickhouse_quote(&q, c->dataset);
    strbuf_puts(&q, " FORMAT TabSeparated");
    int rc = q.failed ? PF_ENOMEM : run(c->ch, q.p, &ans, err, errlen);
    for (const char *p = ans.p ? ans.p : ""; rc == 0 && *p;) {
        char *end;
        long long part = strtoll(p, &end, 10);
        if (end != p && part < day) {
            char sql[256];
            snprintf(sql, sizeof(sql), "ALTER TABLE %s.%s DROP PARTITION %lld",
                     clickhouse_database(c->ch), c->dataset, part);
            rc = run(c->ch, sql, NULL, err, errlen);
            if (rc == 0)
                (*removed)++;
        }
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : "";
    }
    strbuf_free(&q);
    strbuf_free(&ans);
    return rc;
}

/* ---- Writing ------------------------------------------------------------ */

static int ch_writer_start(struct engine *e, FILE *log, struct event_sink *sink, char *err,
                           size_t errlen)
{
    struct chengine *c = (struct chengine *)e;
    struct clickhouse *ship_ch = NULL;
    if (c->check) {
        snprintf(err, errlen, "opened for a check: cannot write");
        return PF_EINVAL;
    }
    int rc = evlog_open(c->data_dir, c->dataset, c->fsync_ms, log, &c->writer, err, errlen);
    if (rc == 0)
        rc = clickhouse_open(c->url, c->user, c->password, c->timeout_ms, &ship_ch, err, errlen);
    if (rc == 0) {
        struct ship_config sc = {.data_dir = c->data_dir,
                                 .dataset = c->dataset,
                                 .table = c->dataset,
                                 .nodes_table = c->nodes_table,
                                 .node = c->node,
                                 .batch_ms = c->batch_ms,
                                 .log = log};
        rc = ship_start(&sc, ship_ch, &c->ship, err, errlen);
        if (rc == PF_EFORMAT)
            rc = PF_EINVAL;
    }
    if (rc == 0) {
        *sink = evlog_sink(c->writer);
    } else if (c->writer != NULL) {
        evlog_close(c->writer);
        c->writer = NULL;
    }
    return rc;
}

static void ch_writer_stop(struct engine *e, struct engine_write_stats *st)
{
    struct chengine *c = (struct chengine *)e;
    struct evlog_stats es = {0};
    if (c->writer != NULL) {
        evlog_get_stats(c->writer, &es);
        evlog_close(c->writer);
        c->writer = NULL;
    }
    ship_stop(c->ship); /* after the log is sealed: its last pass sees every event */
    c->ship = NULL;
    if (st != NULL) {
        st->appended = es.appended;
        st->dropped = es.dropped;
        st->syncs = es.syncs;
    }
}

static void ch_free(struct engine *e)
{
    struct chengine *c = (struct chengine *)e;
    clickhouse_close(c->ch);
    free(c->data_dir);
    free(c->dataset);
    free(c->url);
    free(c->user);
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
    free(c);
}

static const struct engine_ops clickhouse_ops = {
    .name = "clickhouse",
    .writer_start = ch_writer_start,
    .writer_stop = ch_writer_stop,
    .scan_day = ch_scan_day,
    .group_day = ch_group_day,
    .has_day = ch_has_day,
    .purge_before = ch_purge_before,
    .free = ch_free,
};

int engine_clickhouse_new(const struct config *cfg, uint64_t node, int check, struct engine **out,
                          char *err, size_t errlen)
{
    struct chengine *c = calloc(1, sizeof(*c));
    int rc = 0;
    *out = NULL;
    if (c == NULL)
        return PF_ENOMEM;
    c->base.ops = &clickhouse_ops;
    c->node = node;
    c->fsync_ms = cfg->fsync_ms;
    c->batch_ms = cfg->engine_batch_ms;
    c->timeout_ms = cfg->engine_timeout_ms;
    c->data_dir = strdup(cfg->data_dir);
    c->dataset = strdup(cfg->dataset);
    c->url = strdup(cfg->engine_url);
    c->user = cfg->engine_user ? strdup(cfg->engine_user) : NULL;
    c->password = cfg->engine_password ? strdup(cfg->engine_password) : NULL;
    snprintf(c->nodes_table, sizeof(c->nodes_table), "%s_nodes", cfg->dataset);
    if (!c->data_dir || !c->dataset || !c->url || (cfg->engine_user && !c->user) ||
        (cfg->engine_password && !c->password))
        rc = PF_ENOMEM;
    c->check = check;
    /* A check answers within 5 s, whatever ANALYTICS_ENGINE's timeout. */
    int timeout_ms = check && cfg->engine_timeout_ms > 5000 ? 5000 : cfg->engine_timeout_ms;
    if (rc == 0)
        rc = clickhouse_open(c->url, c->user, c->password, timeout_ms, &c->ch, err, errlen);
    if (rc == 0)
        rc = prepare(c, check, err, errlen);
    if (rc != 0) {
        ch_free(&c->base);
        return rc;
    }
    *out = &c->base;
    return 0;
}
