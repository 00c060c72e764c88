/* ship.c - see ship.h: the local event log shipped to ClickHouse, each
 * event exactly once.
 *
 * HOW EXACTLY ONCE HOLDS
 *
 * 1. Batches. A batch is a list of ranges (segment, from, to) of the spool's
 *    segments, all of one UTC day, at most SHIP_BATCH_MAX events, and a
 *    number `seq` this node never uses twice. Every row ClickHouse gets
 *    carries the node id and the batch's seq (columns `node`, `batch`).
 * 2. Intent before insert. The batch, with its ranges and its row count, is
 *    written durably to the state file (below) as `pending` before its rows
 *    are sent. A segment's bytes below an offset never change (it is only
 *    appended to, then sealed), so the ranges name the same events for as
 *    long as the segment exists, and no segment is deleted while a range or
 *    an unshipped byte points into it.
 * 3. One insert per batch is atomic in ClickHouse: the rows are fewer than
 *    max_insert_block_size (1,048,576), so they form one block, and all of
 *    one day, so they go into one partition: one part, committed whole or
 *    not at all.
 * 4. Acknowledged: the cursors move to the ranges' ends and `pending` is
 *    cleared, in memory at once and on disk with the next state write.
 * 5. Any doubt (the insert failed in any way, or the server starts and finds
 *    a `pending` batch) is resolved by asking ClickHouse before sending
 *    again: first whether an insert with the batch's query id
 *    (pixflare-NODE-SEQ) is still running (system.processes; if so, wait),
 *    then how many rows of (node, seq) the day's partition holds. All: the
 *    batch is acknowledged, not sent. None: it is sent again, under the same
 *    seq and query id. Some (never seen, since inserts are atomic; kept for
 *    a server that splits blocks): the request ids present are fetched and
 *    only the missing rows are sent.
 * So a timeout after ClickHouse inserted, a lost answer, ClickHouse down,
 * or this process killed at any instruction (before, during or after the
 * insert, before or after the state write) ends with each event once.
 * What is left: an insert ClickHouse received whole but only starts after
 * the check of step 5 and the new insert both finished (the two would
 * overlap otherwise, and ClickHouse refuses a second query with a running
 * query's id); the check waits at least the retry backoff (250 ms and up)
 * after a failure, so that window is a request held unstarted for longer
 * than that inside ClickHouse.
 *
 * PROGRESS FOR THE BATCH AGGREGATION. A date's events are complete in
 * ClickHouse only once every node has shipped them. Each node records in
 * the nodes table (engine_clickhouse.c) `shipped_through`: a time before
 * which it holds nothing unshipped (now minus SHIP_GRACE_MS when its spool
 * is empty, else the start of the hour of its oldest unshipped segment; the
 * largest value after a clean stop that shipped everything). The batch
 * refuses a date a node has not shipped through.
 *
 * STATE FILE FORMAT (version 1): DATA_DIR/events/<dataset>/ship.state,
 * text, replaced atomically (temporary file, fsync, rename, fsync of the
 * directory). Lines, fields separated by one space:
 *   pixflare-ship 1
 *   node <16 hex digits>             the node that wrote it
 *   next <seq>                       the next batch number (decimal;
 *                                    also skipped by one at each start)
 *   pending <seq> <day> <rows> <n>   optional: the batch sent but not known
 *                                    acknowledged, followed by its n ranges
 *   range <stem> <from> <to>         byte offsets in segment <stem> of <day>
 *   cursor <day> <stem> <offset>     where reading goes on in that segment
 *                                    (a segment with no cursor: from 0)
 *   sum <16 hex digits>              XXH3-64 of every byte before this line
 * <day> is days since 1970-01-01, <stem> a segment's name without its
 * extension (evlog_format.c). A file that does not parse or whose sum does
 * not hold stops the server (exit 2): the shipper no longer knows what
 * ClickHouse has. */
#include "analytics/ship.h"

#include "analytics/evlog.h"
#include "base/err.h"
#include "base/metrics.h"
#include "base/fsutil.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define SHIP_GRACE_MS 60000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define PROGRESS_EVERY_MS 30000
#define MS_PER_DAY ((int64_t)86400000)
#define STATE_MAX (64u << 20)

struct cursor {
    int64_t day;
    char stem[EVLOG_STEM_MAX];
    uint64_t off;
};

struct range {
    int64_t day;
    char stem[EVLOG_STEM_MAX];
    uint64_t from, to;
};

struct batch {
    int active;
    uint64_t seq, rows;
    int64_t day;
    struct range *r;
    size_t n, cap;
};

struct ship {
    struct ship_config cfg;
    char *data_dir, *dataset, *table, *nodes_table;
    char state_path[PATH_MAX];
    char node_hex[17];
    struct clickhouse *ch;
    FILE *log;

    /* The state (the shipping thread's, and ship_start()'s before it). */
    uint64_t next_seq;
    struct batch pending;
    struct cursor *cur;
    size_t ncur, capcur;
    int dirty;     /* the state on disk is older than in memory */
    int uncertain; /* pending may be in ClickHouse: check before sending */

    /* Buffers kept from batch to batch. */
    struct event *ev;
    struct strbuf rows;

    /* Progress written to the nodes table. */
    int64_t wm_written, wm_written_at;
    uint64_t progress_writes;

    /* Health, logged once per change. */
    int down, refused;
    char last_refusal[200];
    int backoff_ms;
    int64_t retry_at; /* monotonic ms */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping, started;

    _Atomic uint64_t shipped, batches, failures, spool_bytes;
    _Atomic int down_flag;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Cursors and the batch ------------------------------------------- */

static struct cursor *cursor_find(struct ship *s, int64_t day, const char *stem)
{
    for (size_t i = 0; i < s->ncur; i++)
        if (s->cur[i].day == day && strcmp(s->cur[i].stem, stem) == 0)
            return &s->cur[i];
    return NULL;
}

static int cursor_set(struct ship *s, int64_t day, const char *stem, uint64_t off)
{
    struct cursor *c = cursor_find(s, day, stem);
    if (c == NULL) {
        if (s->ncur == s->capcur) {
            size_t cap = s->capcur ? s->capcur * 2 : 64;
            struct cursor *n = realloc(s->cur, cap * sizeof(*n));
            if (n == NULL)
                return PF_ENOMEM;
            s->cur = n;
            s->capcur = cap;
        }
        c = &s->cur[s->ncur++];
        c->day = day;
        snprintf(c->stem, sizeof(c->stem), "%s", stem);
    }
    c->off = off;
    s->dirty = 1;
    return 0;
}

static void cursor_drop(struct ship *s, struct cursor *c)
{
    *c = s->cur[--s->ncur];
    s->dirty = 1;
}

static int range_add(struct batch *b, int64_t day, const char *stem, uint64_t from, uint64_t to)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct range *n = realloc(b->r, cap * sizeof(*n));
        if (n == NULL)
            return PF_ENOMEM;
        b->r = n;
        b->cap = cap;
    }
    struct range *r = &b->r[b->n++];
    r->day = day;
    snprintf(r->stem, sizeof(r->stem), "%s", stem);
    r->from = from;
    r->to = to;
    return 0;
}

/* ---- The state file -------------------------------------------------- */

static int state_write(struct ship *s)
{
    struct strbuf b = {0};
    strbuf_printf(&b, "pixflare-ship 1\nnode %s\nnext %" PRIu64 "\n", s->node_hex, s->next_seq);
    if (s->pending.active) {
        strbuf_printf(&b, "pending %" PRIu64 " %" PRId64 " %" PRIu64 " %zu\n", s->pending.seq,
                      s->pending.day, s->pending.rows, s->pending.n);
        for (size_t i = 0; i < s->pending.n; i++)
            strbuf_printf(&b, "range %s %" PRIu64 " %" PRIu64 "\n", s->pending.r[i].stem,
                          s->pending.r[i].from, s->pending.r[i].to);
    }
    for (size_t i = 0; i < s->ncur; i++)
        strbuf_printf(&b, "cursor %" PRId64 " %s %" PRIu64 "\n", s->cur[i].day, s->cur[i].stem,
                      s->cur[i].off);
    int rc = b.failed ? PF_ENOMEM : 0;
    if (rc == 0) {
        strbuf_printf(&b, "sum %016" PRIx64 "\n", (uint64_t)XXH3_64bits(b.p, b.len));
        rc = b.failed ? PF_ENOMEM : fsutil_write_atomic(s->state_path, b.p, b.len, 0644);
    }
    if (rc == 0)
        s->dirty = 0;
    else if (s->log)
        fprintf(s->log, "pixflare: clickhouse: cannot write %s: %s (retried)\n", s->state_path,
                err_str(rc));
    strbuf_free(&b);
    return rc;
}

static int valid_stem(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= EVLOG_STEM_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f') || t[i] == '-'))
            return 0;
    return 1;
}

/* Parse the state file's text (NUL-terminated). */
static int state_parse(struct ship *s, char *text, size_t len, char *err, size_t errlen)
{
    char *sum = NULL;
    for (char *p = text; p < text + len; p = strchr(p, '\n') + 1) {
        if (strncmp(p, "sum ", 4) == 0) {
            sum = p;
            break;
        }
        if (strchr(p, '\n') == NULL)
            break;
    }
    uint64_t want = 0;
    if (sum == NULL || sscanf(sum, "sum %16" SCNx64, &want) != 1 ||
        want != (uint64_t)XXH3_64bits(text, (size_t)(sum - text))) {
        snprintf(err, errlen, "its checksum does not hold");
        return PF_EFORMAT;
    }
    *sum = '\0';
    int line = 0;
    size_t ranges_left = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        char stem[EVLOG_STEM_MAX + 1], node[17];
        uint64_t a, b2, c;
        int64_t day;
        size_t n;
        line++;
        if (line == 1) {
            if (strcmp(l, "pixflare-ship 1") != 0)
                goto bad;
        } else if (ranges_left > 0) {
            if (sscanf(l, "range %48s %" SCNu64 " %" SCNu64, stem, &a, &b2) != 3 ||
                !valid_stem(stem) || b2 < a ||
                range_add(&s->pending, s->pending.day, stem, a, b2) != 0)
                goto bad;
            ranges_left--;
        } else if (sscanf(l, "node %16s", node) == 1) {
            (void)node; /* a copied data directory keeps its node-id file too */
        } else if (sscanf(l, "next %" SCNu64, &a) == 1) {
            s->next_seq = a;
        } else if (sscanf(l, "pending %" SCNu64 " %" SCNd64 " %" SCNu64 " %zu", &a, &day, &c, &n) ==
                   4) {
            if (s->pending.active || n > (1u << 20))
                goto bad;
            s->pending.active = 1;
            s->pending.seq = a;
            s->pending.day = day;
            s->pending.rows = c;
            ranges_left = n;
        } else if (sscanf(l, "cursor %" SCNd64 " %48s %" SCNu64, &day, stem, &a) == 3 &&
                   valid_stem(stem)) {
            if (cursor_set(s, day, stem, a) != 0)
                goto bad;
        } else {
            goto bad;
        }
    }
    if (line == 0 || ranges_left > 0)
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "line %d does not parse", line);
    return PF_EFORMAT;
}

static int state_read(struct ship *s, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = fsutil_read_file(s->state_path, STATE_MAX, &text, &len);
    if (rc == PF_ENOTFOUND)
        return 0; /* never shipped: every segment from its start */
    char why[160] = "cannot be read";
    if (rc == 0)
        rc = state_parse(s, text, len, why, sizeof(why));
    if (rc != 0)
        snprintf(err, errlen,
                 "%s: %s; what ClickHouse already holds is unknown. Move it aside to ship the "
                 "local event log again from its start (events already in ClickHouse would then "
                 "be there twice)",
                 s->state_path, why);
    free(text);
    s->uncertain = s->pending.active;
    return rc;
}

/* ---- Rows -------------------------------------------------------------- */

static void put_le(struct strbuf *b, uint64_t v, int n)
{
    uint8_t x[8];
    for (int i = 0; i < n; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    strbuf_put(b, (const char *)x, (size_t)n);
}

/* One event as a RowBinary row of the columns ship_insert() names; the
 * types are the table's (engine_clickhouse.c). */
static void encode_row(struct strbuf *b, const struct event *ev, uint64_t node, uint64_t seq)
{
    size_t idlen = strnlen(ev->image_id, 7);
    put_le(b, (uint64_t)ev->ts_ms, 8);               /* timestamp UInt64 */
    strbuf_put(b, (const char *)ev->request_id, 16); /* request_id FixedString(16) */
    strbuf_put(b, (const char *)ev->owner, 16);      /* owner FixedString(16) */
    put_le(b, idlen, 1);                             /* image_id String: varint length */
    strbuf_put(b, ev->image_id, idlen);
    put_le(b, (uint64_t)(int64_t)(ev->variant < 0 ? -1 : ev->variant), 1); /* variant Enum8 */
    put_le(b, (uint64_t)ev->status, 2);                                    /* status UInt16 */
    strbuf_put(b, ev->country, 2);                                         /* FixedString(2) */
    put_le(b, ev->bytes, 8);                                               /* bytes UInt64 */
    put_le(b, node, 8);                                                    /* node UInt64 */
    put_le(b, seq, 8);                                                     /* batch UInt64 */
    put_le(b, ev->client, 1);                                              /* client UInt8 */
}

/* ---- Talking to ClickHouse --------------------------------------------- */

static void query_id(const struct ship *s, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "pixflare-%s-%" PRIu64, s->node_hex, seq);
}

/* A one-number answer. */
static int ask_count(struct ship *s, const char *sql, uint64_t *out, char *err, size_t errlen)
{
    struct strbuf ans = {0};
    struct clickhouse_req req = {.sql = sql};
    int rc = clickhouse_query(s->ch, &req, &ans, NULL, err, errlen);
    char *end = NULL;
    if (rc == 0) {
        errno = 0;
        *out = ans.p ? strtoull(ans.p, &end, 10) : 0;
        if (ans.p == NULL || end == ans.p || errno != 0) {
            snprintf(err, errlen, "ClickHouse at %s answered no number to a count",
                     clickhouse_where(s->ch));
            rc = PF_EFORMAT;
        }
    }
    strbuf_free(&ans);
    return rc;
}

/* Request ids of the batch already in ClickHouse: sorted 16-byte ids. */
struct id_set {
    uint8_t (*id)[16];
    size_t n, cap;
    uint8_t part[16];
    size_t partlen;
};

static int take_ids(void *ctx, const uint8_t *p, size_t n)
{
    struct id_set *set = ctx;
    while (n > 0) {
        size_t k = 16 - set->partlen < n ? 16 - set->partlen : n;
        memcpy(set->part + set->partlen, p, k);
        set->partlen += k;
        p += k;
        n -= k;
        if (set->partlen == 16) {
            if (set->n == set->cap) {
                size_t cap = set->cap ? set->cap * 2 : 1024;
                void *nid = realloc(set->id, cap * 16);
                if (nid == NULL)
                    return PF_ENOMEM;
                set->id = nid;
                set->cap = cap;
            }
            memcpy(set->id[set->n++], set->part, 16);
            set->partlen = 0;
        }
    }
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* The WHERE clause that finds a batch's rows, its day's partition first. */
static void batch_where(const struct ship *s, const struct batch *b, struct strbuf *q)
{
    strbuf_printf(q,
                  " WHERE timestamp >= %" PRId64 " AND timestamp < %" PRId64 " AND node = %" PRIu64
                  " AND batch = %" PRIu64,
                  b->day * MS_PER_DAY, (b->day + 1) * MS_PER_DAY, s->cfg.node, b->seq);
}

/* Step 5 of the design: how much of the pending batch ClickHouse holds.
 * OUT: *present (rows), and, when some but not all are there, *ids. */
static int check_pending(struct ship *s, uint64_t *present, struct id_set *ids, char *err,
                         size_t errlen)
{
    char qid[64];
    struct strbuf q = {0};
    uint64_t running = 0;
    query_id(s, s->pending.seq, qid, sizeof(qid));
    strbuf_printf(&q, "SELECT count() FROM system.processes WHERE query_id = '%s'", qid);
    int rc = q.failed ? PF_ENOMEM : ask_count(s, q.p, &running, err, errlen);
    if (rc == 0 && running > 0) {
        snprintf(err, errlen, "batch %" PRIu64 " is still being inserted; waiting", s->pending.seq);
        rc = PF_EUNAVAIL;
    }
    q.len = 0;
    strbuf_printf(&q, "SELECT count() FROM %s.%s", clickhouse_database(s->ch), s->table);
    batch_where(s, &s->pending, &q);
    if (rc == 0)
        rc = q.failed ? PF_ENOMEM : ask_count(s, q.p, present, err, errlen);
    if (rc == 0 && *present > 0 && *present < s->pending.rows) {
        q.len = 0;
        strbuf_printf(&q, "SELECT request_id FROM %s.%s", clickhouse_database(s->ch), s->table);
        batch_where(s, &s->pending, &q);
        strbuf_puts(&q, " FORMAT RowBinary");
        struct clickhouse_req req = {.sql = q.p, .sink = take_ids, .sink_ctx = ids};
        rc = q.failed ? PF_ENOMEM : clickhouse_query(s->ch, &req, NULL, NULL, err, errlen);
        if (rc == 0)
            qsort(ids->id, ids->n, 16, cmp_id);
    }
    strbuf_free(&q);
    return rc;
}

/* Send events ev[0..n) as batch `b`, skipping those whose ids are in
 * `skip` (if not NULL). */
static int insert_rows(struct ship *s, const struct batch *b, const struct event *ev, size_t n,
                       const struct id_set *skip, char *err, size_t errlen)
{
    char qid[64], sql[512];
    s->rows.len = 0;
    for (size_t i = 0; i < n; i++)
        if (skip == NULL || skip->n == 0 ||
            bsearch(ev[i].request_id, skip->id, skip->n, 16, cmp_id) == NULL)
            encode_row(&s->rows, &ev[i], s->cfg.node, b->seq);
    if (s->rows.failed)
        return PF_ENOMEM;
    if (s->rows.len == 0)
        return 0;
    query_id(s, b->seq, qid, sizeof(qid));
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.%s (timestamp, request_id, owner, image_id, variant, status, "
             "country, bytes, node, batch, client) FORMAT RowBinary",
             clickhouse_database(s->ch), s->table);
    struct clickhouse_req req = {
        .sql = sql, .body = s->rows.p, .body_len = s->rows.len, .query_id = qid};
    return clickhouse_query(s->ch, &req, NULL, NULL, err, errlen);
}

/* ---- The spool --------------------------------------------------------- */

/* Read the pending batch's events again, range by range. OUT: *n. */
static int reread(struct ship *s, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    for (size_t i = 0; i < s->pending.n; i++) {
        const struct range *r = &s->pending.r[i];
        struct evlog_piece p;
        int rc = evlog_segment_read(s->data_dir, s->dataset, r->day, r->stem, r->from, r->to,
                                    s->ev + *n, SHIP_BATCH_MAX - *n, &p);
        if (rc != 0) {
            snprintf(err, errlen, "cannot read segment %s of the local event log again: %s",
                     r->stem, err_str(rc));
            return rc;
        }
        *n += p.n;
    }
    if (*n != s->pending.rows) {
        /* Lost since (a power loss cut the segment's unsynced tail): send
         * what is still there. */
        if (s->log)
            fprintf(s->log,
                    "pixflare: clickhouse: batch %" PRIu64 " had %" PRIu64
                    " events, the local event log now holds %zu of them\n",
                    s->pending.seq, s->pending.rows, *n);
        s->pending.rows = *n;
    }
    return 0;
}

/* Ranges of the next batch: the oldest day with unshipped events, read on
 * from each segment's cursor. Sealed segments wholly shipped are deleted on
 * the way. OUT: s->pending (not active yet), *n events in s->ev, *oldest:
 * the start of the hour of the oldest segment holding unshipped events
 * (INT64_MAX: none). */
static int build(struct ship *s, size_t *n, int64_t *oldest)
{
    int64_t *days = NULL;
    size_t ndays = 0;
    uint64_t spool = 0;
    int rc = evlog_list_days(s->data_dir, s->dataset, &days, &ndays);
    int64_t today = now_ms() / MS_PER_DAY;
    *n = 0;
    *oldest = INT64_MAX;
    s->pending.n = 0;
    s->pending.rows = 0;
    /* Cursors of segments that are gone (deleted once shipped, or a spare
     * segment removed unused) are dropped. Asked of the file system, not of
     * a listing: readdir() may miss a file renamed meanwhile (sealed), and a
     * cursor dropped for a segment that exists would send it again. */
    for (size_t i = 0; rc == 0 && i < s->ncur;) {
        if (!evlog_segment_exists(s->data_dir, s->dataset, s->cur[i].day, s->cur[i].stem))
            cursor_drop(s, &s->cur[i]);
        else
            i++;
    }
    for (size_t d = 0; rc == 0 && d < ndays; d++) {
        struct evlog_segment *segs = NULL;
        size_t nsegs = 0;
        rc = evlog_list_segments(s->data_dir, s->dataset, days[d], &segs, &nsegs);
        int take =
            rc == 0 && (s->pending.n == 0 || s->pending.day == days[d]) && *n < SHIP_BATCH_MAX;
        for (size_t i = 0; rc == 0 && i < nsegs; i++) {
            struct cursor *c = cursor_find(s, days[d], segs[i].stem);
            uint64_t from = c ? c->off : 0;
            struct evlog_piece p;
            spool += segs[i].size;
            if (!take) {
                if (from < segs[i].size && *oldest == INT64_MAX)
                    *oldest = days[d] * MS_PER_DAY + atoi(segs[i].stem) * 3600000LL;
                continue;
            }
            int r = evlog_segment_read(s->data_dir, s->dataset, days[d], segs[i].stem, from,
                                       SIZE_MAX, s->ev + *n, SHIP_BATCH_MAX - *n, &p);
            if (r == PF_ENOTFOUND)
                continue;
            if (r != 0) {
                rc = r;
                break;
            }
            if ((p.bad_header || p.damaged) && s->log)
                fprintf(s->log,
                        "pixflare: clickhouse: segment %s of the local event log is damaged: "
                        "%" PRIu64 " bytes skipped%s\n",
                        segs[i].stem, p.damaged, p.bad_header ? " (bad header)" : "");
            if (p.next != from) {
                s->pending.day = days[d];
                rc = range_add(&s->pending, days[d], segs[i].stem, from, p.next);
                *n += p.n;
                if (*oldest == INT64_MAX && p.n > 0)
                    *oldest = days[d] * MS_PER_DAY + atoi(segs[i].stem) * 3600000LL;
            } else if (p.end) {
                /* Sealed, and every event of it acknowledged. */
                if (evlog_segment_remove(s->data_dir, s->dataset, days[d], segs[i].stem) == 0) {
                    spool -= segs[i].size;
                    if (c != NULL)
                        cursor_drop(s, c);
                }
            }
            if (*n >= SHIP_BATCH_MAX)
                take = 0;
        }
        free(segs);
        if (rc == 0 && nsegs == 0 && days[d] < today - 1) {
            char dir[PATH_MAX], date[11];
            timeutil_format_date(days[d] * 86400, date);
            snprintf(dir, sizeof(dir), "%s/events/%s/%s", s->data_dir, s->dataset, date);
            rmdir(dir); /* empty: every segment shipped */
        }
    }
    free(days);
    s->pending.rows = *n;
    s->spool_bytes = spool;
    return rc;
}

/* The cursors move past the pending batch. */
static int acknowledge(struct ship *s)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->pending.n; i++)
        rc = cursor_set(s, s->pending.r[i].day, s->pending.r[i].stem, s->pending.r[i].to);
    if (rc == 0) {
        s->shipped += s->pending.rows;
        s->batches++;
        s->pending.active = 0;
        s->pending.n = 0;
        s->uncertain = 0;
        s->dirty = 1;
    }
    return rc;
}

/* ---- The thread --------------------------------------------------------- */

static void note_ok(struct ship *s)
{
    if (s->down && s->log)
        fprintf(s->log,
                "pixflare: clickhouse: ClickHouse at %s is reachable again; shipping the local "
                "spool (%.1f MB)\n",
                clickhouse_where(s->ch), (double)s->spool_bytes / 1e6);
    s->down = 0;
    s->refused = 0;
    s->backoff_ms = 0;
    s->down_flag = 0;
}

static void note_failure(struct ship *s, int rc, const char *why)
{
    s->failures++;
    s->down_flag = 1;
    if (rc == PF_EUNAVAIL) {
        if (!s->down && s->log)
            fprintf(s->log,
                    "pixflare: clickhouse: cannot ship events: %s; they wait in the local event "
                    "log (%s/events/%s) and are sent when it is back\n",
                    why, s->data_dir, s->dataset);
        s->down = 1;
    } else if (!s->refused || strcmp(s->last_refusal, why) != 0) {
        /* ClickHouse answered: log its message once, keep the batch. */
        if (s->log)
            fprintf(s->log,
                    "pixflare: clickhouse: a batch of %" PRIu64 " events was refused, kept and "
                    "retried: %s\n",
                    s->pending.rows, why);
        s->refused = 1;
        snprintf(s->last_refusal, sizeof(s->last_refusal), "%s", why);
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    s->retry_at = timeutil_mono_ms() + s->backoff_ms;
}

/* Write this node's progress to the nodes table when it moved enough (or
 * crossed a day). */
static void progress(struct ship *s, int64_t wm, int force)
{
    int64_t now = now_ms();
    if (!force && (wm <= s->wm_written ||
                   (wm - s->wm_written < PROGRESS_EVERY_MS &&
                    wm / MS_PER_DAY == s->wm_written / MS_PER_DAY) ||
                   now - s->wm_written_at < 1000))
        return;
    char sql[512], err[400];
    /* The version: the batch number, which only grows and is bumped at
     * each start (ship_start()), then a count of this run's writes. */
    uint64_t version = s->next_seq << 24 | (++s->progress_writes & 0xffffff);
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.%s (node, shipped_through, updated, version) VALUES (%" PRIu64
             ", %" PRId64 ", %" PRId64 ", %" PRIu64 ")",
             clickhouse_database(s->ch), s->nodes_table, s->cfg.node, wm, now, version);
    struct clickhouse_req req = {.sql = sql};
    if (clickhouse_query(s->ch, &req, NULL, NULL, err, sizeof(err)) == 0) {
        s->wm_written = wm;
        s->wm_written_at = now;
    }
}

/* One pass: resolve or send the pending batch, else build and send the
 * next. Returns 1 when more may be waiting (a full batch went), 0 when the
 * spool is shipped, or an error (logged). */
static int pass(struct ship *s)
{
    char err[512] = "";
    size_t n = 0;
    int64_t oldest = INT64_MAX;
    int rc = 0, full = 0;
    struct id_set ids = {0};
    if (s->pending.active) {
        uint64_t present = 0;
        if (s->uncertain)
            rc = check_pending(s, &present, &ids, err, sizeof(err));
        if (rc == 0 && s->uncertain && present >= s->pending.rows) {
            if (present > s->pending.rows && s->log)
                fprintf(s->log,
                        "pixflare: clickhouse: batch %" PRIu64 " is in ClickHouse %" PRIu64
                        " times over %" PRIu64 " rows\n",
                        s->pending.seq, present, s->pending.rows);
            rc = acknowledge(s);
        } else if (rc == 0) {
            rc = reread(s, &n, err, sizeof(err));
            if (rc == 0) {
                rc = insert_rows(s, &s->pending, s->ev, n, present ? &ids : NULL, err, sizeof(err));
                if (rc == 0)
                    rc = acknowledge(s);
                else
                    s->uncertain = 1;
            }
        }
        full = rc == 0;
    } else {
        rc = build(s, &n, &oldest);
        if (rc == 0 && s->pending.n > 0) {
            s->pending.active = 1;
            s->pending.seq = s->next_seq++;
            if (n == 0) {
                rc = acknowledge(s); /* only damage or headers passed over */
            } else {
                /* The intent, durable before the rows leave (step 2). */
                rc = state_write(s);
                if (rc == 0) {
                    rc = insert_rows(s, &s->pending, s->ev, n, NULL, err, sizeof(err));
                    if (rc == 0)
                        rc = acknowledge(s);
                    else
                        s->uncertain = 1;
                } else {
                    s->pending.active = 0;
                    s->next_seq--;
                    snprintf(err, sizeof(err), "cannot write the shipper's state");
                }
            }
            full = rc == 0 && n >= SHIP_BATCH_MAX;
        } else if (rc != 0) {
            snprintf(err, sizeof(err), "cannot read the local event log: %s", err_str(rc));
        }
    }
    free(ids.id);
    if (rc != 0) {
        note_failure(s, rc, err);
        return rc;
    }
    note_ok(s);
    if (s->dirty)
        state_write(s);
    if (!full && !s->pending.active)
        progress(s, oldest == INT64_MAX ? now_ms() - SHIP_GRACE_MS : oldest, 0);
    return full ? 1 : 0;
}

static void *ship_main(void *arg)
{
    struct ship *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int64_t wait = s->cfg.batch_ms;
        if (s->retry_at == 0 || timeutil_mono_ms() >= s->retry_at) {
            pthread_mutex_unlock(&s->mu);
            int rc = pass(s);
            pthread_mutex_lock(&s->mu);
            if (rc == 1)
                continue;
            if (rc < 0)
                wait = s->retry_at - timeutil_mono_ms();
            else
                s->retry_at = 0;
        } else {
            wait = s->retry_at - timeutil_mono_ms();
        }
        if (wait < 1)
            wait = 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!s->stopping)
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void ship_free(struct ship *s)
{
    clickhouse_close(s->ch);
    free(s->data_dir);
    free(s->dataset);
    free(s->table);
    free(s->nodes_table);
    free(s->pending.r);
    free(s->cur);
    free(s->ev);
    strbuf_free(&s->rows);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static void collect(void *ctx, struct metrics_out *out)
{
    struct ship_stats st;
    ship_get_stats(ctx, &st);
    metrics_out_family(out, "pixflare_ship_pending_bytes", "gauge",
                       "Bytes of event log segments waiting in the local spool for ClickHouse.");
    metrics_out_sample(out, "pixflare_ship_pending_bytes", NULL, (double)st.spool_bytes);
    metrics_out_family(out, "pixflare_ship_events_total", "counter",
                       "Events ClickHouse acknowledged.");
    metrics_out_sample(out, "pixflare_ship_events_total", NULL, (double)st.shipped);
    metrics_out_family(out, "pixflare_ship_errors_total", "counter",
                       "Inserts or checks of ClickHouse that failed (and were retried).");
    metrics_out_sample(out, "pixflare_ship_errors_total", NULL, (double)st.failures);
    metrics_out_family(out, "pixflare_ship_down", "gauge",
                       "1 when the last try to reach ClickHouse failed.");
    metrics_out_sample(out, "pixflare_ship_down", NULL, st.down ? 1 : 0);
}

int ship_start(const struct ship_config *cfg, struct clickhouse *ch, struct ship **out, char *err,
               size_t errlen)
{
    struct ship *s = calloc(1, sizeof(*s));
    int rc = 0;
    *out = NULL;
    if (s == NULL) {
        clickhouse_close(ch);
        return PF_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->ch = ch;
    s->cfg = *cfg;
    s->log = cfg->log;
    s->data_dir = strdup(cfg->data_dir);
    s->dataset = strdup(cfg->dataset);
    s->table = strdup(cfg->table);
    s->nodes_table = strdup(cfg->nodes_table);
    s->ev = malloc(SHIP_BATCH_MAX * sizeof(*s->ev));
    snprintf(s->node_hex, sizeof(s->node_hex), "%016" PRIx64, cfg->node);
    snprintf(s->state_path, sizeof(s->state_path), "%s/events/%s/ship.state", cfg->data_dir,
             cfg->dataset);
    if (!s->data_dir || !s->dataset || !s->table || !s->nodes_table || !s->ev)
        rc = PF_ENOMEM;
    if (rc == 0)
        rc = state_read(s, err, errlen);
    if (rc == 0) {
        /* A new run's progress rows must outrank the last run's. */
        s->next_seq++;
        rc = state_write(s);
        if (rc != 0)
            snprintf(err, errlen, "cannot write %s", s->state_path);
    }
    if (rc == 0 && pthread_create(&s->thread, NULL, ship_main, s) != 0) {
        snprintf(err, errlen, "cannot start the shipping thread");
        rc = PF_ENOMEM;
    }
    if (rc != 0) {
        ship_free(s);
        return rc;
    }
    s->started = 1;
    metrics_collector_add(collect, s); /* without it, only these gauges are missing */
    *out = s;
    return 0;
}

void ship_stop(struct ship *s)
{
    if (s == NULL)
        return;
    metrics_collector_remove(s);
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    /* The last pass: the log is closed, so once the spool is empty this
     * node holds nothing unshipped until it starts again. */
    if (!s->down_flag) {
        int rc = 0, rounds = 0;
        uint64_t before;
        /* Until a pass finds nothing to send: the one after the last batch
         * deletes the segments it emptied. */
        do {
            before = s->batches;
            rc = pass(s);
        } while ((rc == 1 || (rc == 0 && s->batches != before)) && rounds++ < 100000);
        if (rc == 0 && !s->pending.active && s->spool_bytes == 0)
            progress(s, INT64_MAX, 1);
    }
    if (s->dirty)
        state_write(s);
    if (s->log)
        fprintf(s->log,
                "pixflare: clickhouse: %" PRIu64 " events shipped in %" PRIu64 " batches (%" PRIu64
                " failed tries); %s\n",
                (uint64_t)s->shipped, (uint64_t)s->batches, (uint64_t)s->failures,
                s->spool_bytes == 0 && !s->pending.active
                    ? "the local spool is empty"
                    : "events wait in the local spool for the next start");
    ship_free(s);
}

void ship_get_stats(struct ship *s, struct ship_stats *st)
{
    st->shipped = s->shipped;
    st->batches = s->batches;
    st->failures = s->failures;
    st->spool_bytes = s->spool_bytes;
    st->down = s->down_flag;
}
