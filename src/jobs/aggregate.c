/* aggregate.c - see aggregate.h.
 *
 * The engine hands over the date's groups: one per distinct (owner, image,
 * variant, country, status), far fewer than events. They are sorted once,
 * by the analytics_daily key then status, which lays out both tables' rows
 * in their key order: the statuses analytics_daily counts (200, 206, 304)
 * are summed into its rows, and every status into analytics_status_daily.
 * What counts where mirrors the realtime rollup exactly
 * (rollup_counts_daily()), so that both agree. */
#include "jobs/aggregate.h"

#include "analytics/rollup.h"
#include "base/err.h"
#include "base/keyhash.h"
#include "base/timeutil.h"
#include "base/variant.h"
#include "jobs/joblock.h"
#include "store/db.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Variants sort by name in analytics_daily's key: rank of each index, by
 * the variant byte (ENGINE_NO_VARIANT, a path that does not parse, ranks last;
 * such keys make status rows only). */
static uint8_t variant_rank[256];
static pthread_once_t rank_once = PTHREAD_ONCE_INIT;

static void rank_variants(void)
{
    for (int i = 0; i < VARIANT_COUNT; i++) {
        int r = 0;
        for (int j = 0; j < VARIANT_COUNT; j++)
            r += strcmp(variant_table[j].name, variant_table[i].name) < 0;
        variant_rank[i] = (uint8_t)r;
    }
    for (int i = VARIANT_COUNT; i < 256; i++)
        variant_rank[i] = (uint8_t)i;
}

static inline int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

/* Where a key sorts after its owner and image: variant name, country,
 * status. */
static inline uint64_t tail_order(const struct engine_key *k)
{
    return (uint64_t)variant_rank[engine_key_variant(k)] << 40 | (k->w[3] & 0xff) << 32 |
           ((k->w[3] >> 8) & 0xff) << 24 | (uint64_t)engine_key_status(k);
}

/* All keys in analytics_daily's key order (owner hex, which keeps the
 * bytes' order; image id; variant name; country), then status. Words are
 * compared as big-endian numbers, i.e. as bytes, without memcmp calls. */
static int cmp_key(const void *a, const void *b)
{
    const struct engine_key *x = &((const struct engine_group *)a)->k,
                            *y = &((const struct engine_group *)b)->k;
    for (int i = 0; i < 3; i++)
        if (x->w[i] != y->w[i])
            return cmp_u64(__builtin_bswap64(x->w[i]), __builtin_bswap64(y->w[i]));
    return cmp_u64(tail_order(x), tail_order(y));
}

/* Same analytics_daily row: all but the status. */
static int same_daily(const struct engine_key *x, const struct engine_key *y)
{
    return x->w[0] == y->w[0] && x->w[1] == y->w[1] && x->w[2] == y->w[2] &&
           ((x->w[3] ^ y->w[3]) & 0xffffff) == 0;
}

static void owner_hex(const uint8_t owner[16], char out[33])
{
    static const uint8_t zero[16];
    if (memcmp(owner, zero, 16) == 0)
        out[0] = '\0';
    else
        keyhash_hex(owner, 16, out);
}

/* Add one key's count to its owner's status rows (the owner's run of keys
 * is being read; s[first..*ns) are its rows so far, few). */
static void add_status(struct db_status_row *s, size_t first, size_t *ns, const char *owner,
                       int status, int64_t requests, int64_t bot_requests)
{
    for (size_t i = first; i < *ns; i++)
        if (s[i].status == status) {
            s[i].requests += requests;
            s[i].bot_requests += bot_requests;
            return;
        }
    /* Insert in status order. */
    size_t at = *ns;
    while (at > first && s[at - 1].status > status) {
        s[at] = s[at - 1];
        at--;
    }
    memcpy(s[at].owner, owner, 33);
    s[at].status = status;
    s[at].requests = requests;
    s[at].bot_requests = bot_requests;
    (*ns)++;
}

/* The hourly and per-client counts of one image, or of the owner's images
 * together, while the owner's (and the image's) run of keys is read. */
struct run_counts {
    struct db_hourly_row hour[24];
    struct db_client_row client[DB_CLIENTS];
};

/* The batch's other rows, grown as the runs end. */
struct more_rows {
    struct db_hourly_row *h;
    struct db_client_row *c;
    size_t nh, nc, caph, capc;
};

static void run_add(struct run_counts *r, const struct engine_group *g)
{
    int hour = engine_key_hour(&g->k), client = engine_key_client(&g->k);
    int bot = client == DB_CLIENT_BOT;
    struct db_hourly_row *h = &r->hour[hour < 24 ? hour : 23];
    h->requests += (int64_t)g->requests;
    h->bytes += (int64_t)g->bytes;
    h->bot_requests += bot ? (int64_t)g->requests : 0;
    h->bot_bytes += bot ? (int64_t)g->bytes : 0;
    struct db_client_row *c = &r->client[client < DB_CLIENTS ? client : DB_CLIENT_HUMAN];
    c->requests += (int64_t)g->requests;
    c->bytes += (int64_t)g->bytes;
}

/* Move a run's non-zero counts into m, as rows of owner/image (image ""
 * for the owner's totals) of the day starting at hour0; r is zeroed. */
static int run_flush(struct run_counts *r, struct more_rows *m, const char *owner,
                     const char *image, int64_t hour0)
{
    int rc = 0;
    if (m->nh + 24 > m->caph) {
        size_t cap = m->caph ? m->caph * 2 : 256;
        struct db_hourly_row *nh = realloc(m->h, cap * sizeof(*nh));
        if (nh == NULL)
            rc = PF_ENOMEM;
        else {
            m->h = nh;
            m->caph = cap;
        }
    }
    if (rc == 0 && m->nc + DB_CLIENTS > m->capc) {
        size_t cap = m->capc ? m->capc * 2 : 64;
        struct db_client_row *nc = realloc(m->c, cap * sizeof(*nc));
        if (nc == NULL)
            rc = PF_ENOMEM;
        else {
            m->c = nc;
            m->capc = cap;
        }
    }
    for (int i = 0; rc == 0 && i < 24; i++)
        if (r->hour[i].requests > 0) {
            struct db_hourly_row *h = &m->h[m->nh++];
            *h = r->hour[i];
            memcpy(h->owner, owner, 33);
            snprintf(h->image_id, sizeof(h->image_id), "%s", image);
            h->hour = hour0 + i;
        }
    for (int i = 0; rc == 0 && i < DB_CLIENTS; i++)
        if (r->client[i].requests > 0) {
            struct db_client_row *c = &m->c[m->nc++];
            *c = r->client[i];
            memcpy(c->owner, owner, 33);
            snprintf(c->image_id, sizeof(c->image_id), "%s", image);
            c->client = i;
        }
    memset(r, 0, sizeof(*r));
    return rc;
}

static int cmp_hourly(const void *a, const void *b)
{
    const struct db_hourly_row *x = a, *y = b;
    int c = strcmp(x->owner, y->owner);
    if (c == 0)
        c = (x->hour > y->hour) - (x->hour < y->hour);
    return c != 0 ? c : strcmp(x->image_id, y->image_id);
}

static int cmp_client(const void *a, const void *b)
{
    const struct db_client_row *x = a, *y = b;
    int c = strcmp(x->owner, y->owner);
    if (c == 0)
        c = strcmp(x->image_id, y->image_id);
    return c != 0 ? c : (x->client > y->client) - (x->client < y->client);
}

/* The grouped counts as database rows, each list in its table's key order,
 * from one sort of the distinct keys (far fewer than events). `keys` is
 * sorted in place. */
static int make_rows(struct engine_group *keys, size_t n, int64_t day, struct db_daily_row **daily,
                     size_t *ndaily, struct db_status_row **status, size_t *nstatus,
                     struct more_rows *m)
{
    size_t nd = 0, ns = 0, owner_first = 0, last = 0;
    struct db_daily_row *d = malloc((n ? n : 1) * sizeof(*d));
    struct db_status_row *s = malloc((n ? n : 1) * sizeof(*s));
    struct run_counts *ro = calloc(2, sizeof(*ro)), *ri = ro + 1; /* owner's, image's */
    char owner[33] = "", image[8] = "";
    int rc = 0;
    if (d == NULL || s == NULL || ro == NULL) {
        rc = PF_ENOMEM;
        goto done;
    }
    qsort(keys, n, sizeof(*keys), cmp_key);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct engine_key *k = &keys[i].k;
        int bot = engine_key_client(k) == DB_CLIENT_BOT;
        int new_owner = i == 0 || k->w[0] != keys[i - 1].k.w[0] || k->w[1] != keys[i - 1].k.w[1];
        if (i > 0 && (new_owner || k->w[2] != keys[i - 1].k.w[2]))
            rc = run_flush(ri, m, owner, image, day * 24);
        if (rc == 0 && i > 0 && new_owner)
            rc = run_flush(ro, m, owner, "", day * 24);
        if (new_owner) {
            owner_hex(engine_key_owner(k), owner);
            owner_first = ns;
        }
        memcpy(image, engine_key_image(k), 8);
        image[7] = '\0';
        add_status(s, owner_first, &ns, owner, engine_key_status(k), (int64_t)keys[i].requests,
                   bot ? (int64_t)keys[i].requests : 0);
        /* Daily: the statuses analytics_daily counts, with a variant. The
         * hourly and client rows count the same. */
        if (!rollup_counts_daily(engine_key_status(k)) ||
            engine_key_variant(k) == ENGINE_NO_VARIANT)
            continue;
        run_add(ri, &keys[i]);
        run_add(ro, &keys[i]);
        /* The keys of one row differ only in status, hour and client, so
         * they are adjacent (a status analytics_daily leaves out may sit
         * between them). */
        if (nd > 0 && same_daily(k, &keys[last].k)) {
            d[nd - 1].requests += (int64_t)keys[i].requests;
            d[nd - 1].bytes += (int64_t)keys[i].bytes;
            d[nd - 1].bot_requests += bot ? (int64_t)keys[i].requests : 0;
            d[nd - 1].bot_bytes += bot ? (int64_t)keys[i].bytes : 0;
            last = i;
            continue;
        }
        last = i;
        struct db_daily_row *r = &d[nd++];
        memcpy(r->owner, owner, 33);
        memcpy(r->image_id, image, 8);
        r->variant = variant_table[engine_key_variant(k)].name;
        engine_key_country(k, r->country);
        r->requests = (int64_t)keys[i].requests;
        r->bytes = (int64_t)keys[i].bytes;
        r->bot_requests = bot ? r->requests : 0;
        r->bot_bytes = bot ? r->bytes : 0;
    }
    if (rc == 0 && n > 0)
        rc = run_flush(ri, m, owner, image, day * 24);
    if (rc == 0 && n > 0)
        rc = run_flush(ro, m, owner, "", day * 24);
    if (rc == 0 && m->nh > 0) /* (qsort wants an array, even of none) */
        qsort(m->h, m->nh, sizeof(*m->h), cmp_hourly);
    if (rc == 0 && m->nc > 0)
        qsort(m->c, m->nc, sizeof(*m->c), cmp_client);
done:
    free(ro);
    if (rc != 0) {
        free(d);
        free(s);
        d = NULL;
        s = NULL;
        nd = ns = 0;
    }
    *daily = d;
    *ndaily = nd;
    *status = s;
    *nstatus = ns;
    return rc;
}

/* Default readers: one per CPU, at most 8. Each holds a table of every
 * distinct key it meets, and past a few readers the scan is bound by memory
 * bandwidth anyway. */
static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

/* Node ids other than `own` (counted, and the first kept). */
struct others {
    const char *own;
    int n;
    char first[17];
};

static int other_node(void *ctx, const char *node)
{
    struct others *o = ctx;
    if (strcmp(node, o->own) != 0 && o->n++ == 0)
        snprintf(o->first, sizeof(o->first), "%s", node);
    return 0;
}

/* With the embedded engine each node's events are in its own log: on a
 * database other nodes also write to, this node's events are not the
 * date's, and replacing the date's rows with them would drop the other
 * nodes' counts. The realtime flush receipts name the nodes that wrote
 * around the date (for a week). 0, or PF_EINVAL with the reason. */
static int only_this_node(const struct config *cfg, struct engine *engine, struct db *db,
                          int64_t day, const char *date, char *err, size_t errlen)
{
    char own[17];
    if (!db_shared(db) || strcmp(engine_name(engine), "embedded") != 0)
        return 0;
    int rc = config_node_id(cfg, own, err, errlen);
    struct others o = {own, 0, ""};
    if (rc == 0)
        rc = db_flush_nodes(db, day * 86400, (day + 1) * 86400 + 3600, other_node, &o);
    if (rc == 0 && o.n > 0) {
        snprintf(err, errlen,
                 "%d other node(s) (%s%s) also counted %s in this database, and their events "
                 "are in their own event logs, not this node's: the date's rows are left as "
                 "realtime counted them. A cluster aggregates from a shared event engine "
                 "(ANALYTICS_ENGINE=clickhouse); --force replaces them with this node's events "
                 "alone",
                 o.n, o.first, o.n > 1 ? ", ..." : "", date);
        rc = PF_EINVAL;
    } else if (rc != 0 && err[0] == '\0') {
        snprintf(err, errlen, "cannot read the realtime flush receipts: %s", err_str(rc));
    }
    return rc;
}

/* Node ids the realtime flush receipts name (for a shared engine's check
 * that every node has sent its events of the day). */
struct node_list {
    char **v;
    size_t n, cap;
};

static int add_node(void *ctx, const char *node)
{
    struct node_list *l = ctx;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], node) == 0)
            return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **nv = realloc(l->v, cap * sizeof(*nv));
        if (nv == NULL)
            return PF_ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    if ((l->v[l->n] = strdup(node)) == NULL)
        return PF_ENOMEM;
    l->n++;
    return 0;
}

int aggregate_run_day(const struct config *cfg, struct engine *engine, struct db *db, int64_t day,
                      const struct aggregate_opts *o, struct aggregate_day *out, char *err,
                      size_t errlen)
{
    char date[11];
    struct engine_group *keys = NULL;
    struct db_daily_row *daily = NULL;
    struct db_status_row *status = NULL;
    struct more_rows more = {0};
    size_t nkeys = 0, ndaily = 0, nstatus = 0;
    struct db_batch_stats bs;
    int64_t now = (int64_t)time(NULL), end = (day + 1) * 86400, t0, t1;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    out->day = day;
    err[0] = '\0';
    timeutil_format_date(day * 86400, date);
    pthread_once(&rank_once, rank_variants);
    if (engine == NULL) {
        snprintf(err, errlen,
                 "no event store to aggregate from: ANALYTICS_ENGINE is 'none' (batch "
                 "aggregation reads the event engine)");
        return PF_EINVAL;
    }
    char purged[16] = "";
    if (db_meta_get(db, "cleanup_before", purged, sizeof(purged)) == 0 &&
        strcmp(date, purged) < 0) {
        snprintf(err, errlen,
                 "%s was purged by the retention (a cleanup removed the dates before %s); "
                 "aggregating it again would drop it from its month's totals",
                 date, purged);
        return PF_EINVAL;
    }
    if (day < now / 86400 - cfg->retention_days + 1) {
        char cut[11];
        timeutil_format_date((now / 86400 - cfg->retention_days + 1) * 86400, cut);
        snprintf(err, errlen,
                 "%s is older than the retention (ANALYTICS_RETENTION_DAYS=%d keeps dates from "
                 "%s): its rows and events are purged",
                 date, cfg->retention_days, cut);
        return PF_EINVAL;
    }
    if (now < end) {
        snprintf(err, errlen, "%s has not ended yet (UTC): a day is aggregated once it is over",
                 date);
        return PF_EINVAL;
    }
    if (now < end + AGGREGATE_GRACE_SECONDS &&
        joblock_sleep(end + AGGREGATE_GRACE_SECONDS - now, o->stop) != 0) {
        snprintf(err, errlen, "stopped");
        return PF_ECONFLICT;
    }
    if (!o->force && (rc = only_this_node(cfg, engine, db, day, date, err, errlen)) != 0)
        return rc;
    struct node_list nodes = {0};
    if (strcmp(engine_name(engine), "embedded") != 0 &&
        db_flush_nodes(db, day * 86400, (day + 1) * 86400 + 3600, add_node, &nodes) != 0) {
        free(nodes.v);
        snprintf(err, errlen, "cannot read the realtime flush receipts");
        return PF_EDB;
    }
    t0 = timeutil_mono_ns();
    struct engine_group_opts go = {.threads = o->threads < 1 ? online_cpus() : o->threads,
                                   .stop = o->stop,
                                   .nodes = (const char *const *)nodes.v,
                                   .nnodes = nodes.n,
                                   .force = o->force};
    rc = engine_group_day(engine, day, &go, stderr, &keys, &nkeys, &out->files, err, errlen);
    for (size_t i = 0; i < nodes.n; i++)
        free(nodes.v[i]);
    free(nodes.v);
    int64_t ts = timeutil_mono_ns();
    for (size_t i = 0; rc == 0 && i < nkeys; i++)
        out->events += keys[i].requests; /* the date's events (a file's stray ones left out) */
    if (rc == 0)
        rc = make_rows(keys, nkeys, day, &daily, &ndaily, &status, &nstatus, &more);
    if (rc == PF_ENOMEM && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    t1 = timeutil_mono_ns();
    out->scan_ms = (ts - t0) / 1000000;
    out->sort_ms = (t1 - ts) / 1000000;
    if (rc == 0 && out->files.unreadable > 0) {
        snprintf(err, errlen,
                 "%d event file(s) of %s could not be read (see above); the date's rows are "
                 "left as they were",
                 out->files.unreadable, date);
        rc = PF_EIO;
    }
    uint64_t damaged = out->files.damaged_bytes + (uint64_t)out->files.bad_files;
    if (rc == 0 && damaged > 0 && !o->force) {
        snprintf(err, errlen,
                 "the event store is damaged for %s (%llu bytes skipped, %d bad file(s), see "
                 "above); the date's rows are left as they were. Use --force to aggregate the "
                 "%llu readable events",
                 date, (unsigned long long)out->files.damaged_bytes, out->files.bad_files,
                 (unsigned long long)out->events);
        rc = PF_EFORMAT;
    }
    if (rc == 0 && out->events == 0 && !o->force) {
        int64_t counted = 0;
        rc = db_day_requests(db, date, &counted);
        if (rc != 0)
            snprintf(err, errlen, "cannot read the analytics tables");
        else if (counted > 0) {
            snprintf(err, errlen,
                     "the event store has no events for %s, but the tables count %lld "
                     "requests for it (realtime, or events since removed); they are left as "
                     "they were. Use --force to replace them with nothing",
                     date, (long long)counted);
            rc = PF_EFORMAT;
        }
    }
    if (rc == 0 && o->stop && atomic_load(o->stop)) {
        snprintf(err, errlen, "stopped");
        rc = PF_ECONFLICT;
    }
    if (rc == 0) {
        char why[256];
        /* The hourly rows of a date past the hourly retention would be
         * purged again at the next cleanup: they are left alone. */
        struct db_batch_more bm = {.hourly = more.h,
                                   .nhourly = more.nh,
                                   .clients = more.c,
                                   .nclients = more.nc,
                                   .hours = day >= now / 86400 - cfg->hourly_retention_days + 1};
        rc = db_batch_replace_day(db, date, daily, ndaily, status, nstatus, &bm,
                                  (int64_t)out->events, &bs, why, sizeof(why));
        if (rc != 0)
            snprintf(err, errlen,
                     "database error writing %s: %s; the date's rows are left as "
                     "they were",
                     date, why);
    }
    out->db_ms = (timeutil_mono_ns() - t1) / 1000000;
    if (rc == 0) {
        out->daily_rows = ndaily;
        out->status_rows = nstatus;
        out->requests = bs.requests;
        out->drift = bs.drift;
    }
    free(keys);
    free(daily);
    free(more.h);
    free(more.c);
    free(status);
    return rc;
}

int aggregate_due_days(const struct config *cfg, struct engine *engine, struct db *db,
                       const struct cron_expr *cron, int64_t now, int64_t **days, size_t *n)
{
    char last[16] = "", date[11];
    int64_t today = now / 86400, last_day = -1;
    int64_t from = today - cfg->retention_days + 1;
    int64_t *v = malloc((size_t)(today - from + 1) * sizeof(*v));
    size_t cnt = 0;
    int rc = v ? 0 : PF_ENOMEM;
    if (rc == 0) {
        int g = db_meta_get(db, "last_aggregation_date", last, sizeof(last));
        if (g == 0 && timeutil_parse_date(last, &last_day) == 0)
            last_day /= 86400;
        else if (g != 0 && g != PF_ENOTFOUND)
            rc = g;
    }
    if (rc == 0) {
        /* Dates a cleanup purged are never owed (a smaller retention then). */
        char purged[16];
        int64_t t = 0;
        int g = db_meta_get(db, "cleanup_before", purged, sizeof(purged));
        if (g == 0 && timeutil_parse_date(purged, &t) == 0 && t / 86400 > from)
            from = t / 86400;
        else if (g != 0 && g != PF_ENOTFOUND)
            rc = g;
    }
    for (int64_t d = from; rc == 0 && d < today; d++) {
        int64_t fire = 0;
        int done = 0;
        /* The date's first slot: a fire time at or after its end. */
        if (cron_next(cron, (d + 1) * 86400 - 1, &fire) != 0 || fire > now)
            continue;
        timeutil_format_date(d * 86400, date);
        rc = db_batch_day_done(db, date, &done);
        if (rc != 0 || done)
            continue;
        /* Before the last aggregated date (or before any), a date without
         * events has nothing to aggregate. */
        if ((d <= last_day || last_day < 0) && (engine == NULL || !engine_has_day(engine, d)))
            continue;
        v[cnt++] = d;
    }
    if (rc != 0) {
        free(v);
        return rc;
    }
    *days = v;
    *n = cnt;
    return 0;
}

void aggregate_format_day(const struct aggregate_day *d, char *out, size_t len)
{
    char date[11];
    timeutil_format_date(d->day * 86400, date);
    snprintf(out, len,
             "%s events=%llu daily_rows=%zu status_rows=%zu requests=%lld drift=%lld "
             "scan_ms=%lld sort_ms=%lld db_ms=%lld",
             date, (unsigned long long)d->events, d->daily_rows, d->status_rows,
             (long long)d->requests, (long long)d->drift, (long long)d->scan_ms,
             (long long)d->sort_ms, (long long)d->db_ms);
}

int aggregate_schedule_warning(const struct config *cfg, int64_t now, char *out, size_t len)
{
    /* A date's slot is the first run after it ends; a date on which the job
     * runs waits for the next day with a run. Over two years from today,
     * the longest wait between two days with a run, in days. */
    int64_t today = now / 86400, last = -1, gap = 0;
    for (int64_t d = today; d < today + 800; d++) {
        int64_t t = 0;
        if (cron_next(&cfg->aggregation_cron, d * 86400 - 1, &t) != 0) {
            gap = INT64_MAX;
            break;
        }
        if (t >= (d + 1) * 86400)
            continue; /* no run on day d */
        if (last >= 0 && d - last > gap)
            gap = d - last;
        last = d;
    }
    if (last < 0)
        gap = INT64_MAX;
    if (gap <= cfg->retention_days - 1)
        return 0;
    char span[32] = "years";
    if (gap != INT64_MAX)
        snprintf(span, sizeof(span), "%lld days", (long long)gap);
    snprintf(out, len,
             "ANALYTICS_AGGREGATION_CRON '%s' can leave %s between runs, more than "
             "ANALYTICS_RETENTION_DAYS=%d allows: some dates leave the retention before their "
             "run and are never aggregated",
             cfg->aggregation_cron_text, span, cfg->retention_days);
    return 1;
}
