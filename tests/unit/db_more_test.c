/* db_more_test.c - issue 20's part of the database boundary (src/store/db.h),
 * through its public API only, on every backend as db_test.c: the bot_
 * columns of the daily tables, the hourly and client-class counts (added,
 * left out for dates the batch aggregated, counted once under a flush id,
 * replaced by the batch with or without `more`), the unique-client sketches
 * (merged by register maximum, idempotent, their estimates, no merge lost
 * between concurrent writers), the days' salts (first writer wins, purged, and on SQLite gone from
 * the files' bytes), the retention of the new tables, and `db copy` of them (salts never copied).
 *
 * Which database: as db_test.c (PIXFLARE_TEST_DATABASE, else a fresh SQLite
 * file per case). On a shared database every case uses its own owners and
 * dates (2041 on); the global operations (db_cleanup_more_before(),
 * db_salt_purge_before()) only touch dates of 2002, which no other case of
 * either file writes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "base/hll.h"
#include "base/timeutil.h"
#include "store/db.h"

#define OWNER(tag) "0000000000000000000000000000" tag
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- The database of a test case (as db_test.c) ---- */

struct fixture {
    char dir[64]; /* "" when PIXFLARE_TEST_DATABASE names the database */
    char url[512];
    struct db *db, *db2;
};

static struct db *open_url(const char *url)
{
    struct db *db = NULL;
    char err[256] = "";
    int rc = db_open(url, &db, err, sizeof(err));
    if (rc != 0)
        fail_msg("db_open: %s (%s)", err_str(rc), err);
    return db;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *env = getenv("PIXFLARE_TEST_DATABASE");
    assert_non_null(f);
    if (env != NULL && env[0] != '\0') {
        snprintf(f->url, sizeof(f->url), "%s", env);
    } else {
        snprintf(f->dir, sizeof(f->dir), "/tmp/pixflare-dbm-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->url, sizeof(f->url), "sqlite:%s/pixflare.db", f->dir);
    }
    f->db = open_url(f->url);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->db2 != NULL)
        db_close(f->db2);
    db_close(f->db);
    if (f->dir[0] != '\0')
        assert_int_equal(nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(f);
    return 0;
}

/* ---- Counts ---- */

static struct db_count count(enum db_count_kind kind, const char *owner, const char *date,
                             const char *image_id, int client, int64_t hour_or_status, int64_t req,
                             int64_t bytes)
{
    struct db_count c;
    memset(&c, 0, sizeof(c));
    c.kind = kind;
    snprintf(c.owner, sizeof(c.owner), "%s", owner);
    snprintf(c.date, sizeof(c.date), "%s", date);
    snprintf(c.image_id, sizeof(c.image_id), "%s", image_id);
    c.variant = kind == DB_COUNT_DAILY ? "w256" : NULL;
    snprintf(c.country, sizeof(c.country), "%s", kind == DB_COUNT_DAILY ? "FR" : "");
    c.client = client;
    if (kind == DB_COUNT_HOURLY)
        c.hour = hour_or_status;
    else
        c.status = (int)hour_or_status;
    c.requests = req;
    c.bytes = bytes;
    return c;
}
#define BOT DB_CLIENT_BOT
#define HUMAN DB_CLIENT_HUMAN
#define PREVIEW DB_CLIENT_PREVIEW
#define DAILY(o, d, i, k, r, b) count(DB_COUNT_DAILY, o, d, i, k, 0, r, b)
#define OWNER_DAY(o, d, k, r, b) count(DB_COUNT_OWNER_DAY, o, d, "", k, 0, r, b)
#define STATUS(o, d, k, s, r) count(DB_COUNT_STATUS, o, d, "", k, s, r, 0)
#define HOURLY(o, d, h, i, k, r, b) count(DB_COUNT_HOURLY, o, d, i, k, h, r, b)
#define CLIENT(o, d, i, k, r, b) count(DB_COUNT_CLIENT, o, d, i, k, 0, r, b)

static int64_t add(struct db *db, const char *flush_id, const struct db_count *rows, size_t n)
{
    char err[256] = "";
    int64_t dropped = -1;
    int rc = db_counts_add(db, flush_id, rows, n, &dropped, err, sizeof(err));
    if (rc != 0)
        fail_msg("db_counts_add: %s (%s)", err_str(rc), err);
    return dropped;
}
#define ADD(db, rows) add((db), NULL, (rows), COUNT_OF(rows))

/* The first hour of a date (Unix time / 3600). */
static int64_t hour0(const char *date)
{
    int64_t t = 0;
    assert_int_equal(timeutil_parse_date(date, &t), 0);
    return t / 3600;
}

/* ---- Reading back: each row's fields by `shape`, rows joined by "; " ---- */

struct collector {
    const char *shape; /* d date, i image_id, v variant, s status, r requests,
                          b bytes, R bot_requests, B bot_bytes, h hour (as
                          hours after `base`), k client name, u uniques */
    int64_t base;
    int n;
    char row[32][96];
};

struct text {
    char s[2048];
};

static int collect(void *ctx, const struct db_stat_row *r)
{
    struct collector *c = ctx;
    assert_true(c->n < 32);
    char *out = c->row[c->n++];
    size_t cap = sizeof(c->row[0]), used = 0;
    for (const char *p = c->shape; *p != '\0' && used < cap; p++) {
        const char *sep = p == c->shape ? "" : " ";
        long long v = *p == 's'   ? r->status
                      : *p == 'r' ? r->requests
                      : *p == 'b' ? r->bytes
                      : *p == 'R' ? r->bot_requests
                      : *p == 'B' ? r->bot_bytes
                      : *p == 'h' ? r->hour - c->base
                      : *p == 'u' ? r->uniques
                                  : 0;
        const char *t = *p == 'd'   ? r->date
                        : *p == 'i' ? r->image_id
                        : *p == 'v' ? r->variant
                        : *p == 'k' ? db_client_name(r->client)
                                    : NULL;
        if (strchr("divk", *p) != NULL)
            used += (size_t)snprintf(out + used, cap - used, "%s%s", sep, t ? t : "?");
        else
            used += (size_t)snprintf(out + used, cap - used, "%s%lld", sep, v);
    }
    return 0;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(a, b);
}

static struct text rows_text(struct collector *c, int ordered)
{
    struct text t = {""};
    size_t used = 0;
    if (!ordered)
        qsort(c->row, (size_t)c->n, sizeof(c->row[0]), by_text);
    for (int i = 0; i < c->n && used < sizeof(t.s); i++)
        used +=
            (size_t)snprintf(t.s + used, sizeof(t.s) - used, "%s%s", i > 0 ? "; " : "", c->row[i]);
    return t;
}

static struct text segment(struct db *db, const char *owner, const char *date)
{
    struct collector c = {.shape = "ivrbRB"};
    assert_int_equal(db_segment_rows(db, owner, date, collect, &c), 0);
    return rows_text(&c, 1);
}

static struct text owner_days(struct db *db, const char *owner, const char *from, const char *to)
{
    struct collector c = {.shape = "drbRB"};
    assert_int_equal(db_owner_days(db, owner, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

static struct text statuses(struct db *db, const char *owner, const char *from, const char *to)
{
    struct collector c = {.shape = "srR"};
    assert_int_equal(db_owner_statuses(db, owner, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

static struct text image_rows(struct db *db, const char *owner, const char *image_id,
                              const char *from, const char *to)
{
    struct collector c = {.shape = "dvrbRB"};
    assert_int_equal(db_image_rows(db, owner, image_id, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

/* Hours as offsets from `base`, in the read's (hour) order. */
static struct text hours(struct db *db, const char *owner, const char *image_id, int64_t base,
                         int64_t from, int64_t to)
{
    struct collector c = {.shape = "hrbRB", .base = base};
    assert_int_equal(db_owner_hours(db, owner, image_id, base + from, base + to, collect, &c), 0);
    return rows_text(&c, 1);
}

static struct text clients(struct db *db, const char *owner, const char *image_id, const char *from,
                           const char *to)
{
    struct collector c = {.shape = "krb"};
    assert_int_equal(db_owner_clients(db, owner, image_id, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

static struct text uniques(struct db *db, const char *owner, const char *image_id, const char *from,
                           const char *to)
{
    struct collector c = {.shape = "du"};
    assert_int_equal(db_owner_uniques(db, owner, image_id, from, to, collect, &c), 0);
    return rows_text(&c, 1);
}

static struct text image_uniques(struct db *db, const char *owner, const char *from, const char *to)
{
    struct collector c = {.shape = "iu"};
    assert_int_equal(db_image_uniques(db, owner, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

static int64_t version(struct db *db, const char *date)
{
    struct collector c = {.shape = "r"};
    assert_int_equal(db_day_versions(db, date, date, collect, &c), 0);
    return c.n == 1 ? strtoll(c.row[0], NULL, 10) : 0;
}

/* ---- Bot columns, hourly and client counts ---- */

static void test_bot_columns(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("m0a1"), *d = "2041-01-05", *d2 = "2041-01-06";
    const struct db_count c[] = {DAILY(a, d, "m1a001", HUMAN, 5, 500),
                                 DAILY(a, d, "m1a001", BOT, 2, 200),
                                 DAILY(a, d, "m1a002", PREVIEW, 1, 10),
                                 OWNER_DAY(a, d, HUMAN, 6, 510),
                                 OWNER_DAY(a, d, BOT, 2, 200),
                                 STATUS(a, d, HUMAN, 200, 5),
                                 STATUS(a, d, BOT, 200, 2),
                                 STATUS(a, d, PREVIEW, 200, 1),
                                 STATUS(a, d, BOT, 404, 3),
                                 DAILY(a, d2, "m1a001", BOT, 4, 40),
                                 OWNER_DAY(a, d2, BOT, 4, 40),
                                 STATUS(a, d2, BOT, 200, 4)};
    assert_int_equal(ADD(f->db, c), 0);
    /* requests stays every client's total; bot_ counts the bots' part. */
    assert_string_equal(segment(f->db, a, d).s, "m1a001 w256 7 700 2 200; m1a002 w256 1 10 0 0");
    assert_string_equal(owner_days(f->db, a, d, d2).s,
                        "2041-01-05 8 710 2 200; 2041-01-06 4 40 4 40");
    assert_string_equal(statuses(f->db, a, d, d2).s, "200 12 6; 404 3 3");
    assert_string_equal(image_rows(f->db, a, "m1a001", d, d2).s,
                        "2041-01-05 w256 7 700 2 200; 2041-01-06 w256 4 40 4 40");
    assert_string_equal(db_client_name(DB_CLIENT_HUMAN), "human");
    assert_string_equal(db_client_name(DB_CLIENT_BOT), "bot");
    assert_string_equal(db_client_name(DB_CLIENT_PREVIEW), "preview");
    assert_null(db_client_name(DB_CLIENTS));
    assert_null(db_client_name(-1));
}

static void test_hourly_and_clients(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("m1a1"), *b = OWNER("m1b1"), *d = "2041-02-01", *d2 = "2041-02-02";
    int64_t h = hour0(d);
    int64_t v0 = version(f->db, d);
    const struct db_count c[] = {
        HOURLY(a, d, h + 3, "", HUMAN, 4, 40),
        HOURLY(a, d, h + 3, "", BOT, 1, 10),
        HOURLY(a, d, h + 3, "m2a001", HUMAN, 4, 40),
        HOURLY(a, d, h + 3, "m2a001", BOT, 1, 10),
        HOURLY(a, d, h + 1, "", PREVIEW, 2, 20),
        HOURLY(a, d, h + 1, "m2a002", PREVIEW, 2, 20),
        HOURLY(a, d2, h + 24, "", HUMAN, 7, 70),
        HOURLY(b, d, h + 3, "", BOT, 9, 90),
        CLIENT(a, d, "", HUMAN, 4, 40),
        CLIENT(a, d, "", BOT, 1, 10),
        CLIENT(a, d, "", PREVIEW, 2, 20),
        CLIENT(a, d, "m2a001", HUMAN, 4, 40),
        CLIENT(a, d, "m2a001", BOT, 1, 10),
        CLIENT(a, d2, "", BOT, 3, 30),
        CLIENT(b, d, "", BOT, 9, 90),
    };
    assert_int_equal(ADD(f->db, c), 0);
    assert_int_equal(ADD(f->db, c), 0); /* the upserts add up */
    assert_string_equal(hours(f->db, a, "", h, 0, 47).s,
                        "1 4 40 0 0; 3 10 100 2 20; 24 14 140 0 0");
    assert_string_equal(hours(f->db, a, "", h, 2, 23).s, "3 10 100 2 20"); /* inclusive range */
    assert_string_equal(hours(f->db, a, "", h, 3, 3).s, "3 10 100 2 20");
    assert_string_equal(hours(f->db, a, "", h, 4, 23).s, "");
    assert_string_equal(hours(f->db, a, "m2a001", h, 0, 47).s, "3 10 100 2 20");
    assert_string_equal(hours(f->db, a, "m2a002", h, 0, 47).s, "1 4 40 0 0");
    assert_string_equal(hours(f->db, b, "", h, 0, 47).s, "3 18 180 18 180");
    assert_string_equal(clients(f->db, a, "", d, d2).s, "bot 8 80; human 8 80; preview 4 40");
    assert_string_equal(clients(f->db, a, "", d, d).s, "bot 2 20; human 8 80; preview 4 40");
    assert_string_equal(clients(f->db, a, "m2a001", d, d2).s, "bot 2 20; human 8 80");
    assert_string_equal(clients(f->db, a, "m2a009", d, d2).s, "");
    assert_string_equal(clients(f->db, b, "", d, d2).s, "bot 18 180");
    /* Hourly and client rows are not analytics_daily's: no version moves. */
    assert_int_equal(version(f->db, d), v0);
}

/* Counts for a date the batch aggregated are left out, hourly and client
 * counts too; a flush id counts its hourly and client rows once. */
static void test_dropped_and_receipts(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("m2a1"), *d = "2041-03-01", *d2 = "2041-03-02";
    int64_t h = hour0(d), dropped;
    char err[256] = "";
    struct db_batch_stats st;
    assert_int_equal(
        db_batch_replace_day(f->db, d, NULL, 0, NULL, 0, NULL, 0, &st, err, sizeof(err)), 0);
    const struct db_count c[] = {HOURLY(a, d, h + 5, "", HUMAN, 3, 30),
                                 CLIENT(a, d, "", HUMAN, 3, 30), STATUS(a, d, HUMAN, 200, 3),
                                 HOURLY(a, d2, h + 30, "", BOT, 2, 20),
                                 CLIENT(a, d2, "", BOT, 2, 20)};
    dropped = ADD(f->db, c);
    assert_int_equal(dropped, 3);
    assert_string_equal(hours(f->db, a, "", h, 0, 47).s, "30 2 20 2 20");
    assert_string_equal(clients(f->db, a, "", d, d).s, "");
    assert_string_equal(clients(f->db, a, "", d2, d2).s, "bot 2 20");

    const struct db_count r[] = {HOURLY(a, d2, h + 31, "m3a001", BOT, 1, 5),
                                 CLIENT(a, d2, "m3a001", PREVIEW, 1, 5)};
    assert_int_equal(add(f->db, "dbm-node.1", r, COUNT_OF(r)), 0);
    assert_int_equal(add(f->db, "dbm-node.1", r, COUNT_OF(r)), 0);
    assert_string_equal(hours(f->db, a, "m3a001", h, 0, 47).s, "31 1 5 1 5");
    assert_string_equal(clients(f->db, a, "m3a001", d2, d2).s, "preview 1 5");
    assert_int_equal(add(f->db, "dbm-node.2", r, COUNT_OF(r)), 0);
    assert_string_equal(hours(f->db, a, "m3a001", h, 0, 47).s, "31 2 10 2 10");
}

/* ---- The batch ---- */

static struct db_daily_row daily_row(const char *owner, const char *image_id, int64_t r, int64_t b,
                                     int64_t br, int64_t bb)
{
    struct db_daily_row d;
    memset(&d, 0, sizeof(d));
    snprintf(d.owner, sizeof(d.owner), "%s", owner);
    snprintf(d.image_id, sizeof(d.image_id), "%s", image_id);
    d.variant = "orig";
    snprintf(d.country, sizeof(d.country), "DE");
    d.requests = r;
    d.bytes = b;
    d.bot_requests = br;
    d.bot_bytes = bb;
    return d;
}

static void replace(struct db *db, const char *date, const struct db_daily_row *d, size_t nd,
                    const struct db_status_row *s, size_t ns, const struct db_batch_more *more)
{
    struct db_batch_stats st;
    char err[256] = "";
    int rc = db_batch_replace_day(db, date, d, nd, s, ns, more, 9, &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("db_batch_replace_day: %s (%s)", err_str(rc), err);
}

static void test_batch_more(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("m3a1"), *b = OWNER("m3b1");
    const char *d0 = "2041-04-01", *d = "2041-04-02", *d2 = "2041-04-03";
    int64_t h = hour0(d);
    /* Realtime rows on the date and on its neighbours (hours -1 and 24). */
    const struct db_count c[] = {HOURLY(a, d0, h - 1, "", HUMAN, 1, 1),
                                 HOURLY(a, d, h, "", HUMAN, 5, 5),
                                 HOURLY(b, d, h + 23, "m4b001", BOT, 6, 6),
                                 HOURLY(a, d2, h + 24, "", HUMAN, 2, 2),
                                 CLIENT(a, d, "", HUMAN, 5, 5),
                                 CLIENT(b, d, "", BOT, 6, 6),
                                 CLIENT(a, d2, "", HUMAN, 2, 2)};
    assert_int_equal(ADD(f->db, c), 0);

    /* Without `more`: the bot columns of the daily rows and their owner
     * totals; hourly and client rows stay. */
    const struct db_daily_row rows[] = {daily_row(a, "m4a001", 5, 50, 2, 20),
                                        daily_row(a, "m4a002", 3, 30, 0, 0),
                                        daily_row(b, "m4b001", 6, 60, 6, 60)};
    struct db_status_row s[] = {{.owner = "", .status = 200, .requests = 14, .bot_requests = 8}};
    snprintf(s[0].owner, sizeof(s[0].owner), "%s", a);
    replace(f->db, d, rows, COUNT_OF(rows), s, 1, NULL);
    assert_string_equal(segment(f->db, a, d).s, "m4a001 orig 5 50 2 20; m4a002 orig 3 30 0 0");
    assert_string_equal(owner_days(f->db, a, d, d).s, "2041-04-02 8 80 2 20");
    assert_string_equal(owner_days(f->db, b, d, d).s, "2041-04-02 6 60 6 60");
    assert_string_equal(statuses(f->db, a, d, d).s, "200 14 8");
    assert_string_equal(hours(f->db, a, "", h, -1, 24).s, "-1 1 1 0 0; 0 5 5 0 0; 24 2 2 0 0");
    assert_string_equal(clients(f->db, b, "", d, d).s, "bot 6 6");

    /* With `more` but not its hours: the date's client rows are the
     * batch's (b's gone), the hourly rows stay. */
    struct db_client_row cl[] = {{.client = HUMAN, .requests = 7, .bytes = 70},
                                 {.client = BOT, .requests = 1, .bytes = 10},
                                 {.client = PREVIEW, .requests = 3, .bytes = 30}};
    for (size_t i = 0; i < COUNT_OF(cl); i++)
        snprintf(cl[i].owner, sizeof(cl[i].owner), "%s", a);
    snprintf(cl[2].image_id, sizeof(cl[2].image_id), "m4a001");
    struct db_batch_more more = {.clients = cl, .nclients = COUNT_OF(cl)};
    replace(f->db, d, rows, COUNT_OF(rows), s, 1, &more);
    assert_string_equal(clients(f->db, a, "", d, d).s, "bot 1 10; human 7 70");
    assert_string_equal(clients(f->db, a, "m4a001", d, d).s, "preview 3 30");
    assert_string_equal(clients(f->db, b, "", d, d).s, "");
    assert_string_equal(clients(f->db, a, "", d2, d2).s, "human 2 2"); /* another date */
    assert_string_equal(hours(f->db, b, "m4b001", h, 0, 23).s, "23 6 6 6 6");

    /* With its hours: the date's 24 hours are the batch's, the neighbours'
     * hours stay. */
    struct db_hourly_row hr[] = {
        {.hour = h + 2, .requests = 4, .bytes = 40, .bot_requests = 1, .bot_bytes = 10},
        {.hour = h + 2, .requests = 4, .bytes = 40}};
    snprintf(hr[0].owner, sizeof(hr[0].owner), "%s", a);
    snprintf(hr[1].owner, sizeof(hr[1].owner), "%s", a);
    snprintf(hr[1].image_id, sizeof(hr[1].image_id), "m4a001");
    more.hourly = hr;
    more.nhourly = COUNT_OF(hr);
    more.hours = 1;
    replace(f->db, d, rows, COUNT_OF(rows), s, 1, &more);
    assert_string_equal(hours(f->db, a, "", h, -1, 24).s, "-1 1 1 0 0; 2 4 40 1 10; 24 2 2 0 0");
    assert_string_equal(hours(f->db, a, "m4a001", h, -1, 24).s, "2 4 40 0 0");
    assert_string_equal(hours(f->db, b, "m4b001", h, -1, 24).s, "");
    assert_string_equal(clients(f->db, a, "", d, d).s, "bot 1 10; human 7 70");
}

/* ---- Sketches ---- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The points of n clients numbered from `first`. */
static uint32_t *points(uint64_t first, size_t n)
{
    uint32_t *p = malloc(n * sizeof(*p));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = first + i;
        uint16_t idx;
        uint8_t rank;
        hll_point(splitmix(&x), &idx, &rank);
        p[i] = (uint32_t)idx << 8 | rank;
    }
    return p;
}

static struct db_sketch sketch(const char *owner, const char *date, const char *image_id,
                               const uint32_t *p, size_t n)
{
    struct db_sketch s;
    memset(&s, 0, sizeof(s));
    snprintf(s.owner, sizeof(s.owner), "%s", owner);
    snprintf(s.date, sizeof(s.date), "%s", date);
    snprintf(s.image_id, sizeof(s.image_id), "%s", image_id);
    s.points = p;
    s.npoints = n;
    return s;
}

static void merge(struct db *db, const struct db_sketch *s, size_t n)
{
    char err[256] = "";
    int rc = db_sketches_merge(db, s, n, err, sizeof(err));
    if (rc != 0)
        fail_msg("db_sketches_merge: %s (%s)", err_str(rc), err);
}

static int64_t estimate_of(struct db *db, const char *owner, const char *image_id, const char *date)
{
    struct collector c = {.shape = "u"};
    assert_int_equal(db_owner_uniques(db, owner, image_id, date, date, collect, &c), 0);
    assert_int_equal(c.n, 1);
    return strtoll(c.row[0], NULL, 10);
}

static void test_sketches(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("m4a1"), *d = "2041-05-01", *d2 = "2041-05-02";
    uint32_t *p1 = points(1, 20000), *p2 = points(10001, 20000), *small = points(500000, 7);
    char err[256] = "";
    /* One node's 20,000 clients; another's 20,000, half of them the same. */
    struct db_sketch s[] = {sketch(a, d, "", p1, 20000), sketch(a, d, "m5a001", small, 7),
                            sketch(a, d2, "m5a001", small, 3), sketch(a, d2, "", small, 7)};
    merge(f->db, s, COUNT_OF(s));
    int64_t one = estimate_of(f->db, a, "", d);
    assert_true(one > 20000 * 0.97 && one < 20000 * 1.03);
    assert_string_equal(uniques(f->db, a, "m5a001", d, d2).s, "2041-05-01 7; 2041-05-02 3");
    assert_string_equal(uniques(f->db, a, "", d2, d2).s, "2041-05-02 7");
    assert_string_equal(uniques(f->db, a, "m5a009", d, d2).s, "");
    assert_string_equal(image_uniques(f->db, a, d, d2).s, "m5a001 10");
    assert_string_equal(image_uniques(f->db, a, d2, d2).s, "m5a001 3");

    /* Idempotent: the same points again change nothing, nor does a
     * subset; the other node's points make the union's estimate. */
    merge(f->db, s, COUNT_OF(s));
    merge(f->db, s, 1);
    assert_int_equal(estimate_of(f->db, a, "", d), one);
    assert_string_equal(image_uniques(f->db, a, d, d2).s, "m5a001 10");
    struct db_sketch other = sketch(a, d, "", p2, 20000);
    merge(f->db, &other, 1);
    int64_t both = estimate_of(f->db, a, "", d);
    assert_true(both > 30000 * 0.97 && both < 30000 * 1.03);
    merge(f->db, s, 1);
    assert_int_equal(estimate_of(f->db, a, "", d), both);

    /* A point out of range is refused, and the call changes nothing. */
    uint32_t bad[2] = {p1[0], (uint32_t)HLL_M << 8 | 1};
    struct db_sketch wrong[] = {sketch(a, d2, "m5a002", small, 7), sketch(a, d2, "", bad, 2)};
    assert_int_equal(db_sketches_merge(f->db, wrong, 2, err, sizeof(err)), PF_EINVAL);
    assert_string_equal(uniques(f->db, a, "m5a002", d, d2).s, "");
    bad[1] = 5u << 8; /* rank 0 */
    assert_int_equal(db_sketches_merge(f->db, wrong, 2, err, sizeof(err)), PF_EINVAL);
    assert_string_equal(uniques(f->db, a, "", d2, d2).s, "2041-05-02 7");
    free(p1);
    free(p2);
    free(small);
}

/* Writers on connections of their own (processes) merge into the same
 * sketches at once, each in its own key order, the rows new at first: no
 * merge is lost (the stored sketch is exactly the union's: the estimate
 * equals the one of all the points raised in memory). */
enum { WRITERS = 3, ROUNDS = 12, PER_ROUND = 400 };

static void test_concurrent_sketches(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("m5c1"), *d = "2041-05-09";
    const char *img[3] = {"", "m5c001", "m5c002"};
    pid_t pid[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pid[w] = fork();
        assert_true(pid[w] >= 0);
        if (pid[w] > 0)
            continue;
        struct db *db = NULL;
        char err[256];
        int bad = db_open(f->url, &db, err, sizeof(err)) != 0;
        if (db != NULL)
            db_set_busy_timeout(db, 30000);
        for (int i = 0; i < ROUNDS && !bad; i++) {
            uint32_t *p = points((uint64_t)(w * ROUNDS + i) * PER_ROUND, PER_ROUND);
            struct db_sketch s[3];
            for (int k = 0; k < 3; k++) /* writer w starts at image w */
                s[k] = sketch(a, d, img[(k + w) % 3], p, PER_ROUND);
            int rc = 0;
            for (int tries = 0; tries < 100; tries++) /* a deadlock victim retries */
                if ((rc = db_sketches_merge(db, s, 3, err, sizeof(err))) == 0)
                    break;
            bad = rc != 0;
            free(p);
        }
        db_close(db);
        _exit(bad);
    }
    for (int w = 0; w < WRITERS; w++) {
        int st = 0;
        assert_int_equal(waitpid(pid[w], &st, 0), pid[w]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    struct hll *h = malloc(sizeof(*h));
    assert_non_null(h);
    hll_clear(h);
    uint32_t *all = points(0, WRITERS * ROUNDS * PER_ROUND);
    for (size_t i = 0; i < WRITERS * ROUNDS * PER_ROUND; i++)
        hll_set_max(h, (uint16_t)(all[i] >> 8), (uint8_t)(all[i] & 0xff));
    int64_t want = (int64_t)hll_estimate(h);
    for (int k = 0; k < 3; k++)
        assert_int_equal(estimate_of(f->db, a, img[k], d), want);
    free(all);
    free(h);
}

/* ---- Salts ---- */

/* Whether the 16 bytes occur in the file (absent: not). */
static int file_has(const char *path, const uint8_t bytes[16])
{
    FILE *fp = fopen(path, "rb");
    int found = 0;
    if (fp == NULL)
        return 0;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    for (size_t i = 0; !found && i + 16 <= got; i++)
        found = memcmp(buf + i, bytes, 16) == 0;
    free(buf);
    return found;
}

static void salt(struct db *db, const char *date, uint8_t out[16])
{
    char err[256] = "";
    int rc = db_salt_get(db, date, out, err, sizeof(err));
    if (rc != 0)
        fail_msg("db_salt_get: %s (%s)", err_str(rc), err);
}

static void test_salts(void **state)
{
    struct fixture *f = *state;
    const char *d1 = "2002-01-01", *d2 = "2002-01-02", *d3 = "2002-01-03";
    uint8_t s1[16], again[16], s2[16], s3[16], zero[16] = {0};
    char err[256] = "", path[160];
    int64_t removed = -1;
    f->db2 = open_url(f->url);
    salt(f->db, d1, s1);
    salt(f->db2, d1, again); /* first writer wins: every connection, the same */
    assert_memory_equal(s1, again, 16);
    salt(f->db, d1, again);
    assert_memory_equal(s1, again, 16);
    assert_memory_not_equal(s1, zero, 16);
    salt(f->db2, d2, s2);
    salt(f->db, d3, s3);
    assert_memory_not_equal(s1, s2, 16);
    assert_memory_not_equal(s2, s3, 16);
    snprintf(path, sizeof(path), "%s/pixflare.db", f->dir);
    /* SQLite: the salt is in the files now (so the check below can fail). */
    if (f->dir[0] != '\0') {
        char wal[176];
        snprintf(wal, sizeof(wal), "%s-wal", path);
        assert_true(file_has(path, s1) || file_has(wal, s1));
    }

    /* SQLite: a reader's older snapshot keeps the WAL from being emptied:
     * the purge deletes, says so, and a call again finishes. */
    if (f->dir[0] != '\0') {
        struct collector c = {.shape = "d"};
        db_set_busy_timeout(f->db, 100);
        assert_int_equal(db_read_begin(f->db2), 0);
        assert_int_equal(db_day_versions(f->db2, d1, d1, collect, &c), 0);
        assert_int_equal(db_salt_purge_before(f->db, d3, &removed, err, sizeof(err)), PF_EDB);
        assert_non_null(strstr(err, "WAL"));
        db_read_end(f->db2);
        db_set_busy_timeout(f->db, 5000);
    }
    assert_int_equal(db_salt_purge_before(f->db, d3, &removed, err, sizeof(err)), 0);
    assert_int_equal(removed, f->dir[0] != '\0' ? 0 : 2);
    /* SQLite: the purged salts' bytes are nowhere in the database file or
     * its WAL (secure_delete, then the WAL's checkpoint and truncation);
     * the kept one still is. */
    if (f->dir[0] != '\0') {
        char wal[176];
        snprintf(wal, sizeof(wal), "%s-wal", path);
        assert_false(file_has(path, s1) || file_has(wal, s1));
        assert_false(file_has(path, s2) || file_has(wal, s2));
        assert_true(file_has(path, s3) || file_has(wal, s3));
    }
    assert_int_equal(db_salt_purge_before(f->db, d3, &removed, err, sizeof(err)), 0);
    assert_int_equal(removed, 0);
    salt(f->db2, d3, again); /* kept */
    assert_memory_equal(s3, again, 16);
    salt(f->db2, d1, again); /* purged: a new day's salt would be new */
    assert_memory_not_equal(s1, again, 16);
    assert_int_equal(db_salt_purge_before(f->db, "2002-12-31", NULL, err, sizeof(err)), 0);

    /* And after the last purge, none of them. */
    if (f->dir[0] != '\0') {
        char wal[176];
        snprintf(wal, sizeof(wal), "%s-wal", path);
        const uint8_t *gone[4] = {s1, s2, s3, again};
        for (int i = 0; i < 4; i++) {
            assert_false(file_has(path, gone[i]));
            assert_false(file_has(wal, gone[i]));
        }
    }
}

/* ---- Retention ---- */

static void test_cleanup_more(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("m6a1"), *d1 = "2002-03-01", *d2 = "2002-03-02", *d3 = "2002-03-03";
    int64_t h = hour0(d1), rows = -1;
    char err[256] = "";
    uint32_t *p = points(7, 5);
    const struct db_count c[] = {
        CLIENT(a, d1, "", HUMAN, 1, 1),         CLIENT(a, d1, "x", BOT, 1, 1),
        CLIENT(a, d2, "", HUMAN, 2, 2),         CLIENT(a, d3, "", HUMAN, 3, 3),
        HOURLY(a, d1, h + 1, "", HUMAN, 1, 1),  HOURLY(a, d1, h + 2, "", HUMAN, 1, 1),
        HOURLY(a, d2, h + 30, "", HUMAN, 2, 2), HOURLY(a, d3, h + 50, "", HUMAN, 3, 3)};
    struct db_sketch s[] = {sketch(a, d1, "", p, 5), sketch(a, d1, "m7a001", p, 2),
                            sketch(a, d2, "", p, 4), sketch(a, d3, "", p, 3)};
    assert_int_equal(ADD(f->db, c), 0);
    merge(f->db, s, COUNT_OF(s));
    /* Clients and sketches before d2; hours before h + 30. */
    assert_int_equal(db_cleanup_more_before(f->db, d2, h + 30, &rows, err, sizeof(err)), 0);
    assert_int_equal(rows, 2 + 2 + 2);
    assert_string_equal(clients(f->db, a, "", d1, d3).s, "human 5 5");
    assert_string_equal(clients(f->db, a, "x", d1, d3).s, "");
    assert_string_equal(uniques(f->db, a, "", d1, d3).s, "2002-03-02 4; 2002-03-03 3");
    assert_string_equal(image_uniques(f->db, a, d1, d3).s, "");
    assert_string_equal(hours(f->db, a, "", h, 0, 71).s, "30 2 2 0 0; 50 3 3 0 0");
    assert_int_equal(db_cleanup_more_before(f->db, d2, h + 30, &rows, err, sizeof(err)), 0);
    assert_int_equal(rows, 0);
    assert_int_equal(
        db_cleanup_more_before(f->db, "2002-12-31", h + 24 * 300, NULL, err, sizeof(err)), 0);
    assert_string_equal(hours(f->db, a, "", h, 0, 71).s, "");
    assert_string_equal(uniques(f->db, a, "", d1, d3).s, "");
    free(p);
}

/* ---- db copy ---- */

static void test_copy_more(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("m8a1"), *d = "2041-08-01";
    int64_t h = hour0(d), copied = 0;
    uint32_t *p = points(90000, 3000), *q = points(91000, 3000);
    char dir[] = "/tmp/pixflare-dbmcopy-XXXXXX", url[128], err[256] = "";
    uint8_t s1[16], s2[16];
    const struct db_count c[] = {
        DAILY(a, d, "m8a001", BOT, 3, 30), OWNER_DAY(a, d, BOT, 3, 30), STATUS(a, d, BOT, 200, 3),
        HOURLY(a, d, h + 4, "m8a001", BOT, 3, 30), CLIENT(a, d, "m8a001", BOT, 3, 30)};
    struct db_sketch s[] = {sketch(a, d, "", p, 3000), sketch(a, d, "m8a001", p, 10)};
    assert_int_equal(ADD(f->db, c), 0);
    merge(f->db, s, COUNT_OF(s));
    salt(f->db, d, s1);
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "sqlite:%s/copy.db", dir);
    f->db2 = open_url(url);
    assert_int_equal(db_copy(f->db, f->db2, NULL, NULL, &copied, err, sizeof(err)), 0);
    assert_string_equal(segment(f->db2, a, d).s, segment(f->db, a, d).s);
    assert_string_equal(owner_days(f->db2, a, d, d).s, "2041-08-01 3 30 3 30");
    assert_string_equal(statuses(f->db2, a, d, d).s, "200 3 3");
    assert_string_equal(hours(f->db2, a, "m8a001", h, 0, 23).s, "4 3 30 3 30");
    assert_string_equal(clients(f->db2, a, "m8a001", d, d).s, "bot 3 30");
    assert_string_equal(uniques(f->db2, a, "", d, d).s, uniques(f->db, a, "", d, d).s);
    assert_string_equal(image_uniques(f->db2, a, d, d).s, image_uniques(f->db, a, d, d).s);
    /* The registers came too: the same merge on both gives the same. */
    struct db_sketch more = sketch(a, d, "", q, 3000);
    merge(f->db, &more, 1);
    merge(f->db2, &more, 1);
    assert_int_equal(estimate_of(f->db2, a, "", d), estimate_of(f->db, a, "", d));
    /* The salt did not. */
    salt(f->db2, d, s2);
    assert_memory_not_equal(s1, s2, 16);
    db_close(f->db2);
    f->db2 = NULL;
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(p);
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bot_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hourly_and_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_and_receipts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_more, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sketches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_sketches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_salts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_more, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_more, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
