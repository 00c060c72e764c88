/* db_test.c - the database boundary (src/store/db.h) through its public API
 * only, so that every backend is held to the same meaning: the image catalog
 * and API keys (duplicates, not-found answers, scan order), meta rows,
 * realtime counts (added, all or nothing, dropped for dates the batch
 * aggregated or the cleanup purged), the batch's replacement of a date
 * (drift, last_aggregation_date only moving forward), the cleanup (one date
 * at a time, the stop flag, the kept day totals), date versions, read
 * snapshots across two connections, the scheduled jobs' slots (two nodes
 * contending, failed, abandoned and dead runners), and db_open()'s errors.
 *
 * Which database: PIXFLARE_TEST_DATABASE, a db_open() URL. Unset, each test
 * case gets a fresh SQLite file ("sqlite:" + a file in a mkdtemp directory,
 * removed after the case). Set, e.g. to a PostgreSQL URL once that backend
 * exists, every case runs against that one database, which must be EMPTY
 * when the run starts: the test fills it and leaves its rows behind. Cases
 * then share it, so each uses its own owners, dates, image and key ids and
 * never depends on another case's rows or on the order cases run in. One
 * exception to keep in mind: db_cleanup_before() is global (it purges every
 * owner's dates before its cutoff), so only test_cleanup calls it, and only
 * with dates of 2001, before every other case's dates. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/db.h"
#include "base/err.h"

/* A keyed owner hash as the analytics tables hold it: 32 hex characters. */
#define OWNER(tag) "0000000000000000000000000000" tag

/* What the callbacks below return to stop a scan or a read. */
#define STOP 99

/* ---- The database of a test case ---- */

struct fixture {
    char dir[64]; /* "" when PIXFLARE_TEST_DATABASE names the database */
    char url[512];
    struct db *db, *db2; /* db2: a second connection, when a case opens one */
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
        snprintf(f->dir, sizeof(f->dir), "/tmp/pixflare-db-XXXXXX");
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

/* ---- Writing ---- */

/* A count of `kind`; the fields a kind does not use stay zero. */
static struct db_count count(enum db_count_kind kind, const char *owner, const char *date,
                             const char *image_id, const char *variant, const char *country,
                             int code, int64_t req, int64_t bytes)
{
    struct db_count c;
    memset(&c, 0, sizeof(c));
    c.kind = kind;
    snprintf(c.owner, sizeof(c.owner), "%s", owner);
    snprintf(c.date, sizeof(c.date), "%s", date);
    snprintf(c.image_id, sizeof(c.image_id), "%s", image_id);
    c.variant = variant;
    snprintf(c.country, sizeof(c.country), "%s", country);
    c.status = code;
    c.requests = req;
    c.bytes = bytes;
    return c;
}
#define DAILY(o, d, i, v, c, r, b) count(DB_COUNT_DAILY, o, d, i, v, c, 0, r, b)
#define OWNER_DAY(o, d, r, b) count(DB_COUNT_OWNER_DAY, o, d, "", NULL, "", 0, r, b)
#define STATUS(o, d, s, r) count(DB_COUNT_STATUS, o, d, "", NULL, "", s, r, 0)
/* The counts of one image served on a date as the realtime writer sends
 * them: its DAILY row, its owner's day total and the status. */
#define HIT(o, d, i, v, c, r, b, s)                                                                \
    DAILY(o, d, i, v, c, r, b), OWNER_DAY(o, d, r, b), STATUS(o, d, s, r)
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* db_counts_add() that must succeed. Returns *dropped. */
static int64_t add_counts(struct db *db, const struct db_count *rows, size_t n)
{
    char err[256] = "";
    int64_t dropped = -1;
    int rc = db_counts_add(db, NULL, rows, n, &dropped, err, sizeof(err));
    if (rc != 0)
        fail_msg("db_counts_add: %s (%s)", err_str(rc), err);
    return dropped;
}
#define ADD(db, rows) add_counts((db), (rows), COUNT_OF(rows))

/* db_batch_replace_day() that must succeed, the date's new rows given as
 * DAILY and STATUS counts in key order (their dates are not read, and
 * OWNER_DAY counts are left out: the batch makes the totals). */
static struct db_batch_stats replace_day(struct db *db, const char *date,
                                         const struct db_count *rows, size_t n, int64_t events)
{
    struct db_daily_row d[8];
    struct db_status_row s[8];
    struct db_batch_stats st;
    size_t nd = 0, ns = 0;
    char err[256] = "";
    memset(d, 0, sizeof(d));
    memset(s, 0, sizeof(s));
    for (size_t i = 0; i < n; i++) {
        const struct db_count *c = &rows[i];
        assert_true(nd < 8 && ns < 8);
        if (c->kind == DB_COUNT_DAILY) {
            memcpy(d[nd].owner, c->owner, sizeof(d[nd].owner));
            memcpy(d[nd].image_id, c->image_id, sizeof(d[nd].image_id));
            memcpy(d[nd].country, c->country, sizeof(d[nd].country));
            d[nd].variant = c->variant;
            d[nd].requests = c->requests;
            d[nd++].bytes = c->bytes;
        } else if (c->kind == DB_COUNT_STATUS) {
            memcpy(s[ns].owner, c->owner, sizeof(s[ns].owner));
            s[ns].status = c->status;
            s[ns++].requests = c->requests;
        }
    }
    int rc = db_batch_replace_day(db, date, d, nd, s, ns, NULL, events, &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("db_batch_replace_day %s: %s (%s)", date, err_str(rc), err);
    return st;
}
#define REPLACE(db, date, rows, events) replace_day((db), (date), (rows), COUNT_OF(rows), (events))

/* ---- Reading back ---- */

enum { MAX_ROWS = 16 };

/* A read's rows as text, so that one assertion compares them all: each
 * row's fields joined by spaces, the rows by "; ". */
struct text {
    char s[1024];
};

struct collector {
    /* The fields db.h says the read sets, in this order: d date,
     * i image_id, v variant, c country, s status, r requests, b bytes. */
    const char *shape;
    int n, stop_after; /* stop_after > 0: return STOP after that many rows */
    char row[MAX_ROWS][96];
};

static const char *str(const char *s)
{
    return s != NULL ? s : "";
}

static int collect(void *ctx, const struct db_stat_row *r)
{
    struct collector *c = ctx;
    assert_true(c->n < MAX_ROWS);
    char *out = c->row[c->n++];
    size_t cap = sizeof(c->row[0]), used = 0;
    for (const char *p = c->shape; *p != '\0' && used < cap; p++) {
        const char *sep = p == c->shape ? "" : " ";
        if (*p == 's' || *p == 'r' || *p == 'b')
            used += snprintf(out + used, cap - used, "%s%lld", sep,
                             *p == 's'   ? (long long)r->status
                             : *p == 'r' ? (long long)r->requests
                                         : (long long)r->bytes);
        else
            used += snprintf(out + used, cap - used, "%s%s", sep,
                             str(*p == 'd'   ? r->date
                                 : *p == 'i' ? r->image_id
                                 : *p == 'v' ? r->variant
                                             : r->country));
    }
    return c->stop_after > 0 && c->n >= c->stop_after ? STOP : 0;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The rows collected, sorted unless the read promises an order. */
static struct text rows_text(struct collector *c, int ordered)
{
    struct text t = {""};
    size_t used = 0;
    if (!ordered)
        qsort(c->row, (size_t)c->n, sizeof(c->row[0]), by_text);
    for (int i = 0; i < c->n && used < sizeof(t.s); i++)
        used += snprintf(t.s + used, sizeof(t.s) - used, "%s%s", i > 0 ? "; " : "", c->row[i]);
    return t;
}

/* db_segment_rows(): in key order. */
static struct text segment(struct db *db, const char *owner, const char *date)
{
    struct collector c = {.shape = "ivcrb"};
    assert_int_equal(db_segment_rows(db, owner, date, collect, &c), 0);
    return rows_text(&c, 1);
}

static struct text owner_days(struct db *db, const char *owner, const char *from, const char *to)
{
    struct collector c = {.shape = "drb"};
    assert_int_equal(db_owner_days(db, owner, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

static struct text statuses(struct db *db, const char *owner, const char *from, const char *to)
{
    struct collector c = {.shape = "sr"};
    assert_int_equal(db_owner_statuses(db, owner, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

static struct text image_rows(struct db *db, const char *owner, const char *image_id,
                              const char *from, const char *to)
{
    struct collector c = {.shape = "dvcrb"};
    assert_int_equal(db_image_rows(db, owner, image_id, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

/* The dates db_day_versions() lists. */
static struct text versioned(struct db *db, const char *from, const char *to)
{
    struct collector c = {.shape = "d"};
    assert_int_equal(db_day_versions(db, from, to, collect, &c), 0);
    return rows_text(&c, 0);
}

/* The date's version: 0 when it has none. */
static int64_t version(struct db *db, const char *date)
{
    struct collector c = {.shape = "r"};
    assert_int_equal(db_day_versions(db, date, date, collect, &c), 0);
    assert_true(c.n <= 1);
    return c.n == 1 ? strtoll(c.row[0], NULL, 10) : 0;
}

static int64_t day_requests(struct db *db, const char *date)
{
    int64_t n = -1;
    assert_int_equal(db_day_requests(db, date, &n), 0);
    return n;
}

static int day_done(struct db *db, const char *date)
{
    int done = -1;
    assert_int_equal(db_batch_day_done(db, date, &done), 0);
    return done;
}

static void expect_meta(struct db *db, const char *key, const char *want)
{
    char v[64] = "";
    int rc = db_meta_get(db, key, v, sizeof(v));
    if (rc != 0)
        fail_msg("meta %s: %s", key, err_str(rc));
    assert_string_equal(v, want);
}

/* ---- db_open ---- */

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    struct db *db = NULL;
    char err[256];

    /* A scheme with no backend: the reason names the scheme and nothing
     * after it, since a URL may carry a user and a password. */
    memset(err, 'x', sizeof(err));
    assert_int_equal(
        db_open("mysql://pfuser:hunter2@db.example.org:3306/pix", &db, err, sizeof(err)),
        PF_EINVAL);
    assert_null(db);
    assert_non_null(memchr(err, '\0', sizeof(err)));
    assert_non_null(strstr(err, "mysql"));
    static const char *const secret[] = {"pfuser", "hunter2", "db.example", "3306", "/pix"};
    for (size_t i = 0; i < COUNT_OF(secret); i++)
        if (strstr(err, secret[i]) != NULL)
            fail_msg("the error echoes '%s': %s", secret[i], err);
    assert_int_equal(db_open("mysql://x", &db, err, sizeof(err)), PF_EINVAL);
    assert_null(db);
    assert_true(err[0] != '\0');
    /* A keyword=value connection string (libpq's other form) has no scheme
     * to name: nothing of it is echoed. */
    assert_int_equal(db_open("host=db.example user=pix password=hunter2", &db, err, sizeof(err)),
                     PF_EINVAL);
    assert_null(db);
    assert_null(strstr(err, "hunter2"));
    assert_null(strstr(err, "db.example"));

    /* A database that cannot be opened (SQLite only: a path under a
     * regular file). */
    if (f->dir[0] != '\0') {
        char file[128], url[160];
        snprintf(file, sizeof(file), "%s/plain-file", f->dir);
        FILE *fp = fopen(file, "w");
        assert_non_null(fp);
        fclose(fp);
        snprintf(url, sizeof(url), "sqlite:%s/sub/pixflare.db", file);
        err[0] = '\0';
        assert_int_equal(db_open(url, &db, err, sizeof(err)), PF_EDB);
        assert_null(db);
        assert_true(err[0] != '\0');
    }
}

/* ---- Images and keys ---- */

static struct db_image image(const char *id, const char *owner, const char *album,
                             const char *filename, int64_t created_at)
{
    struct db_image img;
    memset(&img, 0, sizeof(img));
    snprintf(img.id, sizeof(img.id), "%s", id);
    snprintf(img.owner, sizeof(img.owner), "%s", owner);
    snprintf(img.album, sizeof(img.album), "%s", album);
    snprintf(img.filename, sizeof(img.filename), "%s", filename);
    snprintf(img.content_type, sizeof(img.content_type), "image/jpeg");
    img.size_bytes = 1000 + created_at % 1000;
    img.created_at = created_at;
    memset(img.sha256, "0123456789abcdef"[created_at % 16], 64);
    img.width = 640;
    img.height = 480;
    return img;
}

/* Whether got is want as stored and read back (seq aside). */
static void expect_image(const struct db_image *got, const struct db_image *want)
{
    char a[640], b[640];
    const struct db_image *img[2] = {got, want};
    char *text[2] = {a, b};
    for (int i = 0; i < 2; i++)
        snprintf(text[i], sizeof(a), "%s %s/%s/%s %s %lld bytes at %lld sha %s %dx%d", img[i]->id,
                 img[i]->owner, img[i]->album, img[i]->filename, img[i]->content_type,
                 (long long)img[i]->size_bytes, (long long)img[i]->created_at, img[i]->sha256,
                 img[i]->width, img[i]->height);
    assert_true(got->seq > 0);
    assert_string_equal(a, b);
}

/* The ids a scan gives of one case's rows (a shared database holds other
 * cases' too), as text, and their seqs. */
struct id_list {
    const char *owner; /* the case's owners start with it */
    int n, stop_after; /* stop_after > 0: return STOP after that many */
    char ids[128];
    int64_t seq[8];
};

static int list_add(struct id_list *l, const char *owner, const char *id, int64_t seq)
{
    size_t used = strlen(l->ids);
    if (strncmp(owner, l->owner, strlen(l->owner)) != 0)
        return 0;
    assert_true(l->n < 8);
    l->seq[l->n++] = seq;
    snprintf(l->ids + used, sizeof(l->ids) - used, "%s%s", used > 0 ? " " : "", id);
    return l->stop_after > 0 && l->n >= l->stop_after ? STOP : 0;
}

static int collect_image(void *ctx, const struct db_image *img)
{
    return list_add(ctx, img->owner, img->id, img->seq);
}

static int collect_key(void *ctx, const struct db_key *k)
{
    return list_add(ctx, k->owner, k->id, 0);
}

static void test_images(void **state)
{
    struct fixture *f = *state;
    const struct db_image img[4] = {
        image("i1aa01", "dbt-ialice", "pics", "a.jpg", 1700000001),
        image("i1aa02", "dbt-ialice", "pics", "b.jpg", 1700000002),
        image("i1aa03", "dbt-ialice", "other", "a.jpg", 1700000003), /* another album */
        image("i1aa04", "dbt-ibob", "pics", "a.jpg", 1700000004),    /* another owner */
    };
    struct db_image got, dup;
    for (int i = 0; i < 4; i++)
        assert_int_equal(db_image_insert(f->db, &img[i]), 0);
    assert_int_equal(db_image_by_path(f->db, "dbt-ialice", "pics", "a.jpg", &got), 0);
    expect_image(&got, &img[0]);
    assert_int_equal(db_image_by_id(f->db, "i1aa03", &got), 0);
    expect_image(&got, &img[2]);

    /* Duplicates: the id, then the owner/album/filename; neither is stored. */
    dup = image("i1aa01", "dbt-ialice", "pics", "c.jpg", 1700000009);
    assert_int_equal(db_image_insert(f->db, &dup), PF_EEXISTS);
    assert_int_equal(db_image_by_path(f->db, "dbt-ialice", "pics", "c.jpg", &got), PF_ENOTFOUND);
    dup = image("i1aa09", "dbt-ialice", "pics", "a.jpg", 1700000009);
    assert_int_equal(db_image_insert(f->db, &dup), PF_EEXISTS);
    assert_int_equal(db_image_by_id(f->db, "i1aa09", &got), PF_ENOTFOUND);
    assert_int_equal(db_image_by_path(f->db, "dbt-ialice", "pics", "a.jpg", &got), 0);
    expect_image(&got, &img[0]);

    /* Not found: each part of the path matters. */
    assert_int_equal(db_image_by_path(f->db, "dbt-ialice", "pics", "z.jpg", &got), PF_ENOTFOUND);
    assert_int_equal(db_image_by_path(f->db, "dbt-ialice", "none", "a.jpg", &got), PF_ENOTFOUND);
    assert_int_equal(db_image_by_path(f->db, "dbt-icarol", "pics", "a.jpg", &got), PF_ENOTFOUND);
    assert_int_equal(db_image_by_id(f->db, "zzzzzz", &got), PF_ENOTFOUND);

    /* The scan: in seq order, which is insertion order, after `after`; a
     * non-zero return from fn stops it and is returned. */
    struct id_list all = {.owner = "dbt-i"}, tail = all, none = all, first = all;
    first.stop_after = 1;
    assert_int_equal(db_image_scan(f->db, 0, collect_image, &all), 0);
    assert_string_equal(all.ids, "i1aa01 i1aa02 i1aa03 i1aa04");
    for (int i = 1; i < 4; i++)
        assert_true(all.seq[i] > all.seq[i - 1]);
    assert_int_equal(db_image_scan(f->db, all.seq[1], collect_image, &tail), 0);
    assert_string_equal(tail.ids, "i1aa03 i1aa04");
    assert_int_equal(tail.seq[0], all.seq[2]);
    assert_int_equal(db_image_scan(f->db, all.seq[3], collect_image, &none), 0);
    assert_string_equal(none.ids, "");
    assert_int_equal(db_image_scan(f->db, all.seq[0] - 1, collect_image, &first), STOP);
    assert_string_equal(first.ids, "i1aa01");
}

static struct db_key key(const char *id, const char *scopes, int64_t created, int64_t expires)
{
    struct db_key k;
    memset(&k, 0, sizeof(k));
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.owner, sizeof(k.owner), "dbt-keys");
    memset(k.key_hash, id[strlen(id) - 1], 64);
    snprintf(k.scopes, sizeof(k.scopes), "%s", scopes);
    k.created_at = created;
    k.expires_at = expires;
    return k;
}

/* Read the key back: its fields as text (the hash's first character). */
static void expect_key(struct db *db, const char *id, const char *want)
{
    struct db_key k;
    char got[256];
    assert_int_equal(db_key_get(db, id, &k), 0);
    snprintf(got, sizeof(got), "%s %s %s %.1s... created %lld expires %lld used %lld revoked %lld",
             k.id, k.owner, k.scopes, k.key_hash, (long long)k.created_at, (long long)k.expires_at,
             (long long)k.last_used_at, (long long)k.revoked_at);
    assert_int_equal(strlen(k.key_hash), 64);
    assert_string_equal(got, want);
}

static void test_keys(void **state)
{
    struct fixture *f = *state;
    const struct db_key k1 = key("dbtkey1", "read", 1700000500, 0);
    const struct db_key k2 = key("dbtkey2", "read,write", 1700000100, 1800000000);
    const struct db_key clash = key("dbtkey1", "write", 1700000900, 0);
    struct db_key got;
    int already = -1;
    assert_int_equal(db_key_insert(f->db, &k1), 0);
    assert_int_equal(db_key_insert(f->db, &k2), 0);
    assert_int_equal(db_key_insert(f->db, &clash), PF_EEXISTS); /* and changes nothing */
    expect_key(f->db, "dbtkey1",
               "dbtkey1 dbt-keys read 1... created 1700000500 expires 0 used 0 revoked 0");
    expect_key(f->db, "dbtkey2",
               "dbtkey2 dbt-keys read,write 2... created 1700000100 expires "
               "1800000000 used 0 revoked 0");
    assert_int_equal(db_key_get(f->db, "dbtnokey", &got), PF_ENOTFOUND);

    /* Oldest first (k2 was created before k1, inserted after it). */
    struct id_list all = {.owner = "dbt-keys"}, first = all;
    first.stop_after = 1;
    assert_int_equal(db_key_scan(f->db, collect_key, &all), 0);
    assert_string_equal(all.ids, "dbtkey2 dbtkey1");
    assert_int_equal(db_key_scan(f->db, collect_key, &first), STOP);
    assert_string_equal(first.ids, "dbtkey2");

    /* Uses (the last one is kept), then revocation: once; a second time
     * changes nothing and says so. The other key is untouched. */
    assert_int_equal(db_key_touch(f->db, "dbtkey1", 1700001000), 0);
    assert_int_equal(db_key_touch(f->db, "dbtkey1", 1700002000), 0);
    assert_int_equal(db_key_revoke(f->db, "dbtkey1", 1700003000, &already), 0);
    assert_int_equal(already, 0);
    assert_int_equal(db_key_revoke(f->db, "dbtkey1", 1700004000, &already), 0);
    assert_int_equal(already, 1);
    expect_key(f->db, "dbtkey1",
               "dbtkey1 dbt-keys read 1... created 1700000500 expires 0 used "
               "1700002000 revoked 1700003000");
    expect_key(f->db, "dbtkey2",
               "dbtkey2 dbt-keys read,write 2... created 1700000100 expires "
               "1800000000 used 0 revoked 0");
    assert_int_equal(db_key_revoke(f->db, "dbtnokey", 1700004000, &already), PF_ENOTFOUND);
    db_key_touch(f->db, "dbtnokey", 1700002000); /* db.h leaves its answer open */
    assert_int_equal(db_key_get(f->db, "dbtnokey", &got), PF_ENOTFOUND);
}

/* ---- Meta rows, reopening ---- */

/* Meta rows are set and overwritten; reopening keeps everything, and a
 * second connection opens beside the first (an up-to-date schema is not
 * migrated again). */
static void test_meta_reopen(void **state)
{
    struct fixture *f = *state;
    const char *o = OWNER("a9a1"), *d = "2035-05-05";
    const struct db_image img = image("r1ab01", "dbt-reopen", "a", "x.jpg", 1700000000);
    const struct db_count c[] = {HIT(o, d, "r1ab01", "orig", "NL", 2, 20, 200)};
    char v[64] = "", err[256] = "";
    struct db_image got;
    assert_int_equal(db_meta_get(f->db, "db_test.note", v, sizeof(v)), PF_ENOTFOUND);
    assert_int_equal(db_meta_set(f->db, "db_test.note", "one", err, sizeof(err)), 0);
    expect_meta(f->db, "db_test.note", "one");
    assert_int_equal(db_meta_set(f->db, "db_test.note", "two", err, sizeof(err)), 0);
    assert_int_equal(db_meta_set(f->db, "db_test.empty", "", err, sizeof(err)), 0);
    expect_meta(f->db, "db_test.note", "two");
    expect_meta(f->db, "db_test.empty", "");
    assert_int_equal(db_image_insert(f->db, &img), 0);
    assert_int_equal(ADD(f->db, c), 0);

    db_close(f->db);
    f->db = open_url(f->url);
    f->db2 = open_url(f->url);
    expect_meta(f->db2, "db_test.note", "two");
    assert_int_equal(db_image_by_id(f->db2, "r1ab01", &got), 0);
    expect_image(&got, &img);
    assert_string_equal(segment(f->db, o, d).s, "r1ab01 orig NL 2 20");
    assert_string_equal(owner_days(f->db2, o, d, d).s, "2035-05-05 2 20");
}

/* db_open_check(): an existing database as it is, read-only; nothing made
 * where there is none. db_now_ms(): the database's clock. */
static void test_open_check(void **state)
{
    struct fixture *f = *state;
    struct db *db = NULL;
    char err[256] = "", v[16], url[600];
    int schema = -1;
    int64_t ms = 0;
    struct stat sb;
    assert_int_equal(db_open_check(f->url, &db, &schema, err, sizeof(err)), 0);
    assert_true(schema > 0);
    assert_int_equal(db_meta_get(db, "db_test.absent", v, sizeof(v)), PF_ENOTFOUND);
    assert_int_not_equal(db_meta_set(db, "db_test.check", "x", err, sizeof(err)), 0);
    assert_int_equal(db_now_ms(db, &ms), 0);
    int64_t skew = ms / 1000 - (int64_t)time(NULL);
    assert_true(skew > -10 && skew < 10);
    db_close(db);
    assert_int_equal(db_meta_get(f->db, "db_test.check", v, sizeof(v)), PF_ENOTFOUND);
    if (f->dir[0] == '\0')
        return;
    snprintf(url, sizeof(url), "sqlite:%s/none/pixflare.db", f->dir);
    assert_int_equal(db_open_check(url, &db, &schema, err, sizeof(err)), PF_ENOTFOUND);
    assert_null(db);
    assert_int_equal(schema, 0);
    assert_non_null(strstr(err, "no database at"));
    assert_int_not_equal(stat(url + 7, &sb), 0);
    snprintf(url, sizeof(url), "%s/none", f->dir);
    assert_int_not_equal(stat(url, &sb), 0);
}

/* ---- Realtime counts and date versions ---- */

static void test_counts(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("c0a1"), *b = OWNER("c0b1");
    const char *d0 = "2031-01-04", *d1 = "2031-01-05", *d2 = "2031-01-06";
    const struct db_count c[] = {DAILY(a, d1, "c1a002", "w512", "FR", 1, 100),
                                 DAILY(a, d1, "c1a001", "w512", "FR", 3, 300),
                                 DAILY(a, d1, "c1a001", "orig", "DE", 2, 2000),
                                 OWNER_DAY(a, d1, 6, 2400),
                                 STATUS(a, d1, 200, 5),
                                 STATUS(a, d1, 304, 1),
                                 STATUS("", d1, 404, 2), /* unattributed */
                                 DAILY(b, d2, "c1b001", "w256", "US", 4, 40),
                                 OWNER_DAY(b, d2, 4, 40),
                                 STATUS(b, d2, 200, 3)};
    char err[256] = "";
    assert_int_equal(ADD(f->db, c), 0);
    assert_string_equal(segment(f->db, a, d1).s,
                        "c1a001 orig DE 2 2000; c1a001 w512 FR 3 300; c1a002 w512 FR 1 100");
    assert_string_equal(segment(f->db, b, d2).s, "c1b001 w256 US 4 40");
    assert_string_equal(segment(f->db, b, d1).s, "");
    assert_string_equal(owner_days(f->db, a, d0, d2).s, "2031-01-05 6 2400");
    assert_string_equal(owner_days(f->db, b, d0, d2).s, "2031-01-06 4 40");
    assert_string_equal(owner_days(f->db, a, d0, d0).s, ""); /* from and to are inclusive */
    assert_string_equal(owner_days(f->db, a, d2, d2).s, "");
    assert_string_equal(statuses(f->db, a, d0, d2).s, "200 5; 304 1");
    assert_string_equal(statuses(f->db, "", d1, d1).s, "404 2");
    assert_string_equal(image_rows(f->db, a, "c1a001", d0, d2).s,
                        "2031-01-05 orig DE 2 2000; 2031-01-05 w512 FR 3 300");
    assert_string_equal(image_rows(f->db, a, "c1a002", d2, d2).s, "");
    assert_string_equal(image_rows(f->db, b, "c1a001", d0, d2).s, ""); /* a's image id */
    /* Status rows count every request; owners' day totals if they are more. */
    assert_int_equal(day_requests(f->db, d1), 8);
    assert_int_equal(day_requests(f->db, d2), 4);
    assert_int_equal(day_requests(f->db, d0), 0);
    assert_int_equal(day_done(f->db, d1), 0);

    /* Counts add up (dropped may be NULL), and statuses sum over dates. */
    int64_t v1 = version(f->db, d1), dropped = -1;
    assert_int_equal(db_counts_add(f->db, NULL, c, COUNT_OF(c), NULL, err, sizeof(err)), 0);
    const struct db_count more[] = {STATUS(a, d2, 200, 7)};
    assert_int_equal(ADD(f->db, more), 0);
    assert_string_equal(segment(f->db, a, d1).s,
                        "c1a001 orig DE 4 4000; c1a001 w512 FR 6 600; c1a002 w512 FR 2 200");
    assert_string_equal(owner_days(f->db, a, d0, d2).s, "2031-01-05 12 4800");
    assert_string_equal(statuses(f->db, a, d0, d2).s, "200 17; 304 2");
    assert_string_equal(statuses(f->db, a, d2, d2).s, "200 7");
    assert_int_equal(day_requests(f->db, d1), 16);
    assert_true(version(f->db, d1) > v1);

    /* All or nothing: a row the database refuses (a DAILY count without a
     * variant) undoes the whole call. */
    v1 = version(f->db, d1);
    const struct db_count bad[] = {HIT(a, d1, "c1a003", "w512", "FR", 1, 1, 200),
                                   DAILY(a, d1, "c1a004", NULL, "FR", 1, 1)};
    assert_int_equal(db_counts_add(f->db, NULL, bad, COUNT_OF(bad), &dropped, err, sizeof(err)),
                     PF_EDB);
    assert_true(err[0] != '\0');
    assert_string_equal(segment(f->db, a, d1).s,
                        "c1a001 orig DE 4 4000; c1a001 w512 FR 6 600; c1a002 w512 FR 2 200");
    assert_string_equal(owner_days(f->db, a, d1, d1).s, "2031-01-05 12 4800");
    assert_string_equal(statuses(f->db, a, d1, d1).s, "200 10; 304 2");
    assert_int_equal(version(f->db, d1), v1);
    /* The connection is still usable after the failed transaction. */
    const struct db_count after[] = {STATUS(a, d1, 200, 1)};
    assert_int_equal(ADD(f->db, after), 0);
    assert_string_equal(statuses(f->db, a, d1, d1).s, "200 11; 304 2");

    /* Every read stops at a non-zero return from fn and returns it. */
    struct collector r[5];
    for (int i = 0; i < 5; i++)
        r[i] = (struct collector){.shape = "d", .stop_after = 1};
    assert_int_equal(db_segment_rows(f->db, a, d1, collect, &r[0]), STOP);
    assert_int_equal(db_owner_statuses(f->db, a, d0, d2, collect, &r[1]), STOP);
    assert_int_equal(db_image_rows(f->db, a, "c1a001", d0, d2, collect, &r[2]), STOP);
    assert_int_equal(db_owner_days(f->db, a, d0, d2, collect, &r[3]), STOP);
    assert_int_equal(db_day_versions(f->db, d0, d2, collect, &r[4]), STOP);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r[i].n, 1);
}

/* A date's version goes up with every write to its analytics_daily rows
 * (realtime counts, the batch; the cleanup in test_cleanup). */
static void test_versions(void **state)
{
    struct fixture *f = *state;
    const char *o = OWNER("d0a1"), *v1 = "2032-02-01", *v2 = "2032-02-02", *v3 = "2032-02-03";
    const struct db_count c1[] = {HIT(o, v1, "d1a001", "orig", "FR", 1, 1, 200)};
    const struct db_count c2[] = {HIT(o, v1, "d1a001", "orig", "FR", 1, 1, 200),
                                  HIT(o, v2, "d1a001", "orig", "FR", 1, 1, 200)};
    assert_string_equal(versioned(f->db, v1, v3).s, ""); /* never written: absent */
    assert_int_equal(ADD(f->db, c1), 0);
    int64_t x1 = version(f->db, v1);
    assert_true(x1 > 0);
    assert_int_equal(version(f->db, v2), 0);
    assert_int_equal(ADD(f->db, c2), 0);
    int64_t x2 = version(f->db, v1), y1 = version(f->db, v2);
    assert_true(x2 > x1);
    assert_true(y1 > 0);
    /* The range is inclusive and holds only versioned dates. */
    assert_string_equal(versioned(f->db, v2, v3).s, "2032-02-02");
    assert_string_equal(versioned(f->db, v1, v3).s, "2032-02-01; 2032-02-02");

    /* The batch's replacement is a write too, an empty day's included. */
    REPLACE(f->db, v1, c1, 1);
    assert_true(version(f->db, v1) > x2);
    replace_day(f->db, v3, NULL, 0, 0);
    assert_true(version(f->db, v3) > 0);
    assert_int_equal(version(f->db, v2), y1);
}

/* ---- Batch aggregation ---- */

static void test_batch_replace(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("e0a1"), *b = OWNER("e0b1"), *c = OWNER("e0c1");
    const char *b0 = "2033-03-09", *b1 = "2033-03-10";
    const struct db_count realtime[] = {DAILY(a, b1, "e1a001", "w512", "FR", 4, 400),
                                        DAILY(a, b1, "e1a002", "orig", "US", 6, 600),
                                        OWNER_DAY(a, b1, 10, 1000),
                                        STATUS(a, b1, 200, 10),
                                        HIT(b, b1, "e1b001", "w512", "FR", 5, 50, 404),
                                        HIT(a, b0, "e1a001", "w512", "FR", 2, 20, 200)};
    assert_int_equal(ADD(f->db, realtime), 0);
    assert_int_equal(day_done(f->db, b1), 0);

    /* The events' rows replace the date's rows of every owner, those of
     * owners absent from them included (b). */
    const struct db_count batch[] = {
        DAILY(a, b1, "e1a001", "w512", "FR", 3, 300),
        DAILY(a, b1, "e1a003", "w512", "FR", 4, 400),
        DAILY(c, b1, "e1c001", "orig", "JP", 1, 10),
        STATUS(a, b1, 200, 7),
        STATUS(c, b1, 200, 1),
    };
    struct db_batch_stats st = REPLACE(f->db, b1, batch, 8);
    assert_int_equal(st.requests_before, 15);
    assert_int_equal(st.requests, 8);
    assert_int_equal(st.drift, 15 - 8);
    assert_string_equal(segment(f->db, a, b1).s, "e1a001 w512 FR 3 300; e1a003 w512 FR 4 400");
    assert_string_equal(segment(f->db, b, b1).s, "");
    assert_string_equal(segment(f->db, c, b1).s, "e1c001 orig JP 1 10");
    assert_string_equal(owner_days(f->db, a, b0, b1).s, "2033-03-09 2 20; 2033-03-10 7 700");
    assert_string_equal(owner_days(f->db, b, b0, b1).s, "");
    assert_string_equal(owner_days(f->db, c, b0, b1).s, "2033-03-10 1 10");
    assert_string_equal(statuses(f->db, a, b1, b1).s, "200 7");
    assert_string_equal(statuses(f->db, b, b0, b1).s, "");
    assert_string_equal(statuses(f->db, a, b0, b0).s, "200 2"); /* another date: untouched */
    assert_string_equal(segment(f->db, a, b0).s, "e1a001 w512 FR 2 20");
    assert_string_equal(image_rows(f->db, a, "e1a001", b0, b1).s,
                        "2033-03-09 w512 FR 2 20; 2033-03-10 w512 FR 3 300");
    assert_string_equal(image_rows(f->db, a, "e1a002", b0, b1).s, "");
    assert_int_equal(day_requests(f->db, b1), 8);
    assert_int_equal(day_done(f->db, b1), 1);
    assert_int_equal(day_done(f->db, b0), 0);

    /* Realtime counts that arrive late for the aggregated date are left
     * out (its STATUS requests reported); the other date's are added. */
    const struct db_count late[] = {HIT(a, b1, "e1a001", "w512", "FR", 5, 500, 200),
                                    STATUS(a, b1, 500, 2),
                                    HIT(a, b0, "e1a001", "w512", "FR", 1, 10, 200)};
    int64_t vb1 = version(f->db, b1);
    assert_int_equal(ADD(f->db, late), 7);
    assert_string_equal(segment(f->db, a, b1).s, "e1a001 w512 FR 3 300; e1a003 w512 FR 4 400");
    assert_string_equal(owner_days(f->db, a, b0, b1).s, "2033-03-09 3 30; 2033-03-10 7 700");
    assert_string_equal(statuses(f->db, a, b1, b1).s, "200 7");
    assert_string_equal(statuses(f->db, a, b0, b0).s, "200 3");

    /* Aggregating the date again replaces the batch's own rows. */
    const struct db_count again[] = {DAILY(a, b1, "e1a001", "w512", "FR", 2, 200),
                                     STATUS(a, b1, 200, 2)};
    st = REPLACE(f->db, b1, again, 2);
    assert_int_equal(st.requests_before, 8);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.drift, 6);
    assert_string_equal(segment(f->db, a, b1).s, "e1a001 w512 FR 2 200");
    assert_string_equal(segment(f->db, c, b1).s, "");
    assert_string_equal(owner_days(f->db, c, b0, b1).s, "");
    assert_string_equal(owner_days(f->db, a, b0, b1).s, "2033-03-09 3 30; 2033-03-10 2 200");
    assert_int_equal(day_requests(f->db, b1), 2);
    assert_true(version(f->db, b1) > vb1);
}

/* last_aggregation_date (and the run's meta rows) only move forward. Its
 * dates are later than every other case's, so that in a shared database
 * this case's runs are the newest whatever the order. */
static void test_last_aggregation(void **state)
{
    struct fixture *f = *state;
    const char *o = OWNER("f0a1"), *l1 = "2090-06-10", *l2 = "2090-06-20";
    const struct db_count newer[] = {DAILY(o, l2, "f1a001", "w512", "FR", 2, 20),
                                     DAILY(o, l2, "f1a002", "w512", "FR", 3, 30),
                                     STATUS(o, l2, 200, 5)};
    const struct db_count older[] = {DAILY(o, l1, "f1a001", "orig", "DE", 1, 10),
                                     STATUS(o, l1, 200, 1)};
    struct db_batch_stats st = REPLACE(f->db, l2, newer, 6);
    assert_int_equal(st.requests_before, 0);
    assert_int_equal(st.requests, 5);
    assert_int_equal(st.drift, -5); /* realtime counted nothing */
    expect_meta(f->db, "last_aggregation_date", l2);
    expect_meta(f->db, "last_aggregation_rows", "3");
    expect_meta(f->db, "last_aggregation_drift", "-5");

    /* An older date, aggregated again: its rows change, the meta rows
     * still describe the newest date's run. */
    st = REPLACE(f->db, l1, older, 1);
    assert_int_equal(st.drift, -1);
    expect_meta(f->db, "last_aggregation_date", l2);
    expect_meta(f->db, "last_aggregation_rows", "3");
    expect_meta(f->db, "last_aggregation_drift", "-5");
    assert_int_equal(day_done(f->db, l1), 1);
    assert_int_equal(day_done(f->db, l2), 1);
    assert_string_equal(segment(f->db, o, l1).s, "f1a001 orig DE 1 10");
    assert_string_equal(owner_days(f->db, o, l1, l2).s, "2090-06-10 1 10; 2090-06-20 5 50");

    /* The newest date again, now empty: its rows and total go. */
    replace_day(f->db, l2, NULL, 0, 0);
    expect_meta(f->db, "last_aggregation_date", l2);
    assert_string_equal(segment(f->db, o, l2).s, "");
    assert_string_equal(owner_days(f->db, o, l1, l2).s, "2090-06-10 1 10");
    assert_int_equal(day_requests(f->db, l2), 0);
}

/* ---- Retention ---- */

/* db_cleanup_before()'s answer and stats as text. */
static struct text cleanup(struct db *db, const char *date, const atomic_int *stop)
{
    struct db_cleanup_stats st;
    struct text t;
    char err[256] = "";
    memset(&st, 0xff, sizeof(st)); /* set also on error */
    int rc = db_cleanup_before(db, date, stop, &st, err, sizeof(err));
    if (rc != 0 && err[0] == '\0')
        fail_msg("db_cleanup_before: %s with no reason", err_str(rc));
    snprintf(t.s, sizeof(t.s), "%s: %lld daily, %lld status rows, %lld dates",
             rc == 0 ? "ok" : err_str(rc), (long long)st.daily_rows, (long long)st.status_rows,
             (long long)st.dates);
    return t;
}

static void test_cleanup(void **state)
{
    struct fixture *f = *state;
    const char *x = OWNER("a0a1"), *y = OWNER("a0b1");
    const char *c1 = "2001-01-10", *c2 = "2001-01-20", *c3 = "2001-02-05", *cut = "2001-02-01";
    const struct db_count c[] = {DAILY(x, c1, "a1a001", "w512", "FR", 1, 10),
                                 DAILY(x, c1, "a1a002", "orig", "FR", 2, 20),
                                 OWNER_DAY(x, c1, 3, 30),
                                 STATUS(x, c1, 200, 3),
                                 HIT(y, c1, "a1b001", "w512", "FR", 4, 40, 200),
                                 HIT(x, c2, "a1a001", "w512", "FR", 5, 50, 304),
                                 HIT(x, c3, "a1a001", "w512", "FR", 6, 60, 200)};
    const struct db_count late[] = {HIT(x, c2, "a1a001", "w512", "FR", 9, 90, 200),
                                    HIT(x, c3, "a1a001", "w512", "FR", 1, 10, 200)};
    atomic_int stop = 1;
    assert_int_equal(ADD(f->db, c), 0);
    int64_t vc1 = version(f->db, c1), vc2 = version(f->db, c2);

    /* Stopped: gives up between dates (here before the first) with
     * PF_ECONFLICT, and says what it deleted: nothing. */
    assert_string_equal(cleanup(f->db, cut, &stop).s,
                        "conflicts with existing data: 0 daily, 0 status rows, 0 dates");
    assert_string_equal(segment(f->db, x, c1).s, "a1a001 w512 FR 1 10; a1a002 orig FR 2 20");
    assert_string_equal(statuses(f->db, x, c1, c2).s, "200 3; 304 5");

    /* A next run does it all, one date at a time. */
    atomic_store(&stop, 0);
    assert_string_equal(cleanup(f->db, cut, &stop).s, "ok: 4 daily, 3 status rows, 2 dates");
    assert_string_equal(segment(f->db, x, c1).s, "");
    assert_string_equal(segment(f->db, y, c1).s, "");
    assert_string_equal(segment(f->db, x, c2).s, "");
    assert_string_equal(segment(f->db, x, c3).s, "a1a001 w512 FR 6 60");
    assert_string_equal(statuses(f->db, x, c1, c2).s, "");
    assert_string_equal(statuses(f->db, y, c1, c2).s, "");
    assert_string_equal(statuses(f->db, x, c3, c3).s, "200 6");
    assert_string_equal(image_rows(f->db, x, "a1a001", c1, c3).s, "2001-02-05 w512 FR 6 60");
    /* The owners' day totals are kept, and still count the date. */
    assert_string_equal(owner_days(f->db, x, c1, c3).s,
                        "2001-01-10 3 30; 2001-01-20 5 50; 2001-02-05 6 60");
    assert_string_equal(owner_days(f->db, y, c1, c3).s, "2001-01-10 4 40");
    assert_int_equal(day_requests(f->db, c1), 7);
    assert_true(version(f->db, c1) > vc1);
    assert_true(version(f->db, c2) > vc2);
    expect_meta(f->db, "cleanup_before", cut);

    /* Counts for a purged date are left out; the kept date's are added. */
    assert_int_equal(ADD(f->db, late), 9);
    assert_string_equal(segment(f->db, x, c2).s, "");
    assert_string_equal(owner_days(f->db, x, c2, c3).s, "2001-01-20 5 50; 2001-02-05 7 70");
    assert_string_equal(statuses(f->db, x, c3, c3).s, "200 7");

    /* Nothing left to purge; an earlier cutoff does not move the mark back. */
    assert_string_equal(cleanup(f->db, cut, NULL).s, "ok: 0 daily, 0 status rows, 0 dates");
    assert_string_equal(cleanup(f->db, "2001-01-15", NULL).s,
                        "ok: 0 daily, 0 status rows, 0 dates");
    expect_meta(f->db, "cleanup_before", cut);
    assert_int_equal(ADD(f->db, late), 9);
    assert_string_equal(segment(f->db, x, c3).s, "a1a001 w512 FR 8 80");
}

/* ---- Read snapshots ---- */

/* A read transaction sees one snapshot, taken by its first read (as both
 * SQLite and PostgreSQL's REPEATABLE READ take it): a second connection's
 * commits show only in a later transaction. */
static void test_snapshot(void **state)
{
    struct fixture *f = *state;
    const char *o = OWNER("b0a1"), *s1 = "2034-04-04";
    const struct db_count one[] = {HIT(o, s1, "b1a001", "w512", "FR", 1, 10, 200)};
    const struct db_count ten[] = {HIT(o, s1, "b1a001", "w512", "FR", 10, 100, 200)};
    const struct db_image img = image("s1ab01", "dbt-snapshot", "a", "s.jpg", 1700000000);
    struct db_image got;
    char v[16], err[256] = "";
    assert_int_equal(ADD(f->db, one), 0);
    f->db2 = open_url(f->url);
    db_set_busy_timeout(f->db2, 2000);
    db_set_busy_timeout(f->db, 2000);

    assert_int_equal(db_read_begin(f->db), 0);
    assert_string_equal(owner_days(f->db, o, s1, s1).s, "2034-04-04 1 10");
    int64_t v1 = version(f->db, s1);
    /* The reader does not hold the writer up. */
    assert_int_equal(ADD(f->db2, ten), 0);
    assert_int_equal(db_image_insert(f->db2, &img), 0);
    assert_int_equal(db_meta_set(f->db2, "db_test.snapshot", "new", err, sizeof(err)), 0);
    assert_string_equal(owner_days(f->db, o, s1, s1).s, "2034-04-04 1 10");
    assert_string_equal(segment(f->db, o, s1).s, "b1a001 w512 FR 1 10");
    assert_string_equal(statuses(f->db, o, s1, s1).s, "200 1");
    assert_int_equal(version(f->db, s1), v1);
    assert_int_equal(db_image_by_id(f->db, "s1ab01", &got), PF_ENOTFOUND);
    assert_int_equal(db_meta_get(f->db, "db_test.snapshot", v, sizeof(v)), PF_ENOTFOUND);
    db_read_end(f->db);

    assert_int_equal(db_read_begin(f->db), 0);
    assert_string_equal(owner_days(f->db, o, s1, s1).s, "2034-04-04 11 110");
    assert_string_equal(segment(f->db, o, s1).s, "b1a001 w512 FR 11 110");
    assert_true(version(f->db, s1) > v1);
    assert_int_equal(db_image_by_id(f->db, "s1ab01", &got), 0);
    expect_meta(f->db, "db_test.snapshot", "new");
    db_read_end(f->db);

    /* Outside a read transaction, each read sees the latest commit. */
    assert_int_equal(ADD(f->db, one), 0);
    assert_string_equal(owner_days(f->db2, o, s1, s1).s, "2034-04-04 12 120");
}

/* ---- Flush ids, concurrent writers, the shared rate limit, copying ---- */

/* A flush retried under its id counts once: the caller could not tell
 * whether the first attempt committed. */
static void test_flush_ids(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("f1a1"), *d = "2032-02-02";
    const struct db_count c[] = {HIT(a, d, "f1a001", "w512", "FR", 3, 300, 200)};
    char err[256];
    int64_t dropped = -1;
    assert_int_equal(db_counts_add(f->db, "node-1", c, COUNT_OF(c), &dropped, err, sizeof(err)), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(db_counts_add(f->db, "node-1", c, COUNT_OF(c), &dropped, err, sizeof(err)), 0);
    assert_string_equal(owner_days(f->db, a, d, d).s, "2032-02-02 3 300");
    assert_string_equal(statuses(f->db, a, d, d).s, "200 3");
    /* Another id is another flush; so is every call without one. */
    assert_int_equal(db_counts_add(f->db, "node-2", c, COUNT_OF(c), NULL, err, sizeof(err)), 0);
    assert_int_equal(db_counts_add(f->db, NULL, c, COUNT_OF(c), NULL, err, sizeof(err)), 0);
    assert_string_equal(owner_days(f->db, a, d, d).s, "2032-02-02 9 900");
    assert_string_equal(segment(f->db, a, d).s, "f1a001 w512 FR 9 900");
}

#define WRITERS 2
#define FLUSHES 150

/* Two processes flush the same keys at once, each with its own
 * connection: every count arrives (no lost update, no deadlock left
 * unretried). */
static void test_concurrent_flushes(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("c0c1"), *d = "2032-03-03";
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
        for (int i = 0; i < FLUSHES && !bad; i++) {
            /* Keys in a different order in each writer. */
            const struct db_count c[] = {
                HIT(a, d, w ? "c0a002" : "c0a001", "orig", "DE", 1, 10, 200),
                HIT(a, d, w ? "c0a001" : "c0a002", "orig", "DE", 1, 10, 200)};
            int rc = 0;
            for (int tries = 0; tries < 100; tries++) /* a deadlock victim retries */
                if ((rc = db_counts_add(db, NULL, c, COUNT_OF(c), NULL, err, sizeof(err))) == 0)
                    break;
            bad = rc != 0;
        }
        db_close(db);
        _exit(bad);
    }
    for (int w = 0; w < WRITERS; w++) {
        int st = 0;
        assert_int_equal(waitpid(pid[w], &st, 0), pid[w]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    char want[64];
    snprintf(want, sizeof(want), "%s %d %d", d, WRITERS * FLUSHES * 2, WRITERS * FLUSHES * 20);
    assert_string_equal(owner_days(f->db, a, d, d).s, want);
    snprintf(want, sizeof(want), "c0a001 orig DE %d %d; c0a002 orig DE %d %d", WRITERS * FLUSHES,
             WRITERS * FLUSHES * 10, WRITERS * FLUSHES, WRITERS * FLUSHES * 10);
    assert_string_equal(segment(f->db, a, d).s, want);
}

/* The rate limit of a shared database holds across its connections (the
 * nodes); a local database has none (each process counts its own). */
static void test_rate_take(void **state)
{
    struct fixture *f = *state;
    int ok = -1, remaining = -1, retry = -1;
    if (!db_shared(f->db)) {
        assert_int_equal(db_rate_take(f->db, OWNER("r001"), 3, &ok, &remaining, &retry), PF_EINVAL);
        return;
    }
    f->db2 = open_url(f->url);
    for (int i = 0; i < 3; i++) {
        struct db *db = i == 1 ? f->db2 : f->db; /* two nodes share the count */
        assert_int_equal(db_rate_take(db, OWNER("r001"), 3, &ok, &remaining, &retry), 0);
        assert_int_equal(ok, 1);
        assert_int_equal(remaining, 2 - i);
    }
    assert_int_equal(db_rate_take(f->db2, OWNER("r001"), 3, &ok, &remaining, &retry), 0);
    assert_int_equal(ok, 0);
    assert_int_equal(remaining, 0);
    assert_true(retry >= 1 && retry <= 61);
    /* Another owner has its own window. */
    assert_int_equal(db_rate_take(f->db2, OWNER("r002"), 3, &ok, &remaining, &retry), 0);
    assert_int_equal(ok, 1);
}

/* ---- Scheduled jobs' slots (db_job_begin / db_job_end) ---- */

static enum db_job_claim claim(struct db *db, const char *job, int64_t slot, const char *node,
                               int retry_failed)
{
    enum db_job_claim c = DB_JOB_ENDED;
    int rc = db_job_begin(db, job, slot, node, retry_failed, &c);
    if (rc != 0)
        fail_msg("db_job_begin %s %lld: %s", job, (long long)slot, err_str(rc));
    return c;
}

static void end_job(struct db *db, const char *job, int64_t slot, enum db_job_outcome outcome)
{
    assert_int_equal(db_job_end(db, job, slot, outcome), 0);
}

/* Two connections (two nodes) claim the same slot: on a shared database
 * one wins and the other is told the job is busy, for any of its slots,
 * while another job is free; once the winner ends, the slot is ended for
 * everyone. On SQLite (one node) nothing is busy, and an ended slot is
 * ended all the same. */
static void test_job_contention(void **state)
{
    struct fixture *f = *state;
    const char *a = "dbt-job-a", *b = "dbt-job-b";
    int shared = db_shared(f->db);
    f->db2 = open_url(f->url);
    assert_int_equal(claim(f->db, a, 1000, "node-1", 0), DB_JOB_WON);
    if (shared) {
        assert_int_equal(claim(f->db2, a, 1000, "node-2", 0), DB_JOB_BUSY);
        assert_int_equal(claim(f->db2, a, 1060, "node-2", 0), DB_JOB_BUSY); /* the job, any slot */
        assert_int_equal(claim(f->db2, a, 1000, "node-2", 1), DB_JOB_BUSY);
    }
    assert_int_equal(claim(f->db2, b, 1000, "node-2", 0), DB_JOB_WON); /* another job: free */
    end_job(f->db2, b, 1000, DB_JOB_DONE);
    end_job(f->db, a, 1000, DB_JOB_DONE);
    /* Ended: for the other node, for the winner, and for a start-up retry
     * (it succeeded). */
    assert_int_equal(claim(f->db2, a, 1000, "node-2", 0), DB_JOB_ENDED);
    assert_int_equal(claim(f->db, a, 1000, "node-1", 0), DB_JOB_ENDED);
    assert_int_equal(claim(f->db2, a, 1000, "node-2", 1), DB_JOB_ENDED);
    assert_int_equal(claim(f->db2, b, 1000, "node-1", 0), DB_JOB_ENDED);
    /* The job is free again: its next slot goes to whoever asks first. */
    assert_int_equal(claim(f->db2, a, 1060, "node-2", 0), DB_JOB_WON);
    if (shared)
        assert_int_equal(claim(f->db, a, 1060, "node-1", 0), DB_JOB_BUSY);
    end_job(f->db2, a, 1060, DB_JOB_DONE);
    assert_int_equal(claim(f->db, a, 1060, "node-1", 0), DB_JOB_ENDED);
}

/* A failed run ends its slot, except for a node starting up that retries
 * failures; a run stopped half-way (abandoned) leaves its slot to the next
 * claim. */
static void test_job_failed_and_abandoned(void **state)
{
    struct fixture *f = *state;
    const char *c = "dbt-job-c", *d = "dbt-job-d";
    f->db2 = open_url(f->url);
    assert_int_equal(claim(f->db, c, 2000, "node-1", 0), DB_JOB_WON);
    end_job(f->db, c, 2000, DB_JOB_FAILED);
    assert_int_equal(claim(f->db2, c, 2000, "node-2", 0), DB_JOB_ENDED);
    assert_int_equal(claim(f->db2, c, 2000, "node-2", 1), DB_JOB_WON);
    end_job(f->db2, c, 2000, DB_JOB_DONE);
    assert_int_equal(claim(f->db, c, 2000, "node-1", 1), DB_JOB_ENDED);

    assert_int_equal(claim(f->db, d, 3000, "node-1", 0), DB_JOB_WON);
    end_job(f->db, d, 3000, DB_JOB_ABANDONED);
    assert_int_equal(claim(f->db2, d, 3000, "node-2", 0), DB_JOB_WON);
    end_job(f->db2, d, 3000, DB_JOB_DONE);
    assert_int_equal(claim(f->db, d, 3000, "node-1", 0), DB_JOB_ENDED);
    /* A week of slots is kept: an end prunes the job's older ones. */
    assert_int_equal(claim(f->db, d, 3000 + 604800 + 60, "node-1", 0), DB_JOB_WON);
    end_job(f->db, d, 3000 + 604800 + 60, DB_JOB_DONE);
    assert_int_equal(claim(f->db, d, 3000, "node-1", 0), DB_JOB_WON); /* forgotten */
    end_job(f->db, d, 3000, DB_JOB_DONE);
}

/* A node that dies holding a slot (a process killed: its connection
 * closes, it never ends the run) lets another node claim the slot and run
 * it. */
static void test_job_dead_holder(void **state)
{
    struct fixture *f = *state;
    const char *e = "dbt-job-e";
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct db *db = NULL;
        char err[256], won = 0;
        enum db_job_claim c = DB_JOB_ENDED;
        if (db_open(f->url, &db, err, sizeof(err)) == 0 &&
            db_job_begin(db, e, 4000, "node-dead", 0, &c) == 0 && c == DB_JOB_WON)
            won = 1;
        if (write(pipefd[1], &won, 1) != 1)
            won = 0;
        pause(); /* holding the slot until killed */
        _exit(0);
    }
    char won = 0;
    assert_int_equal(read(pipefd[0], &won, 1), 1);
    assert_int_equal(won, 1);
    if (db_shared(f->db))
        assert_int_equal(claim(f->db, e, 4000, "node-1", 0), DB_JOB_BUSY);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    close(pipefd[0]);
    close(pipefd[1]);
    /* The server notices the closed connection at once, but ends the
     * session (and lets go of its locks) a moment later. */
    enum db_job_claim c = DB_JOB_BUSY;
    for (int i = 0; i < 100 && c == DB_JOB_BUSY; i++) {
        c = claim(f->db, e, 4000, "node-1", 0);
        if (c == DB_JOB_BUSY)
            usleep(50 * 1000);
    }
    assert_int_equal(c, DB_JOB_WON);
    end_job(f->db, e, 4000, DB_JOB_DONE);
    assert_int_equal(claim(f->db, e, 4000, "node-1", 0), DB_JOB_ENDED);
}

/* A copy into an empty database reads the same; the copy is not empty. */
static void test_copy(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("cp01"), *d = "2032-04-04";
    const struct db_count c[] = {HIT(a, d, "cp0001", "w256", "US", 5, 50, 200),
                                 STATUS(a, d, 404, 2)};
    char dir[] = "/tmp/pixflare-copy-XXXXXX", url[128], err[256], what[128];
    int64_t copied = 0;
    int empty = -1;
    assert_int_equal(ADD(f->db, c), 0);
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "sqlite:%s/copy.db", dir);
    f->db2 = open_url(url);
    assert_int_equal(db_copy_is_empty(f->db2, &empty, what, sizeof(what)), 0);
    assert_int_equal(empty, 1);
    assert_int_equal(db_copy(f->db, f->db2, NULL, NULL, &copied, err, sizeof(err)), 0);
    assert_true(copied >= 4);
    assert_int_equal(db_copy_is_empty(f->db2, &empty, what, sizeof(what)), 0);
    assert_int_equal(empty, 0);
    assert_string_equal(owner_days(f->db2, a, d, d).s, owner_days(f->db, a, d, d).s);
    assert_string_equal(segment(f->db2, a, d).s, "cp0001 w256 US 5 50");
    assert_string_equal(statuses(f->db2, a, d, d).s, statuses(f->db, a, d, d).s);
    assert_int_equal(version(f->db2, d), version(f->db, d));
    db_close(f->db2);
    f->db2 = NULL;
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* db_backup(): a copy of one snapshot, taken while another connection
 * writes (which never waits for it), into a new file only; PostgreSQL
 * answers with pg_dump's options instead. */
struct backup_writer {
    struct db *db;
    const char *date;
    int calls, rc;
};

static void backup_write(void *ctx, int64_t done, int64_t total)
{
    struct backup_writer *w = ctx;
    const struct db_count c[] = {STATUS(OWNER("bk02"), w->date, 200, 7)};
    assert_true(done >= 0 && done <= total);
    if (w->calls++ == 0)
        w->rc = ADD(w->db, c);
}

static void test_backup(void **state)
{
    struct fixture *f = *state;
    const char *d = "2033-05-05";
    const struct db_count c[] = {STATUS(OWNER("bk01"), d, 200, 3)};
    char dir[] = "/tmp/pixflare-backup-XXXXXX", path[128], url[160], err[256] = "";
    struct db_image img = image("bk0001", "alice", "pics", "a.png", 10), got;
    struct backup_writer w = {.date = d};
    assert_int_equal(db_image_insert(f->db, &img), 0);
    assert_int_equal(ADD(f->db, c), 0);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/copy.db", dir);
    if (f->dir[0] == '\0') {
        assert_int_equal(db_backup(f->db, path, NULL, NULL, err, sizeof(err)), PF_EINVAL);
        assert_non_null(strstr(err, "--dbname="));
        assert_null(strstr(err, "password"));
        assert_int_equal(rmdir(dir), 0);
        return;
    }
    f->db2 = open_url(f->url);
    w.db = f->db2;
    assert_int_equal(db_backup(f->db, path, backup_write, &w, err, sizeof(err)), 0);
    assert_true(w.calls > 0);
    assert_int_equal(w.rc, 0); /* the writer did not wait for the copy */
    assert_int_equal(day_requests(f->db, d), 10);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct db *copy = open_url(url);
    assert_int_equal(db_image_by_id(copy, "bk0001", &got), 0);
    assert_string_equal(got.filename, "a.png");
    assert_int_equal(day_requests(copy, d), 3); /* the snapshot, before the write */
    db_close(copy);
    assert_int_equal(db_backup(f->db, path, NULL, NULL, err, sizeof(err)), PF_EEXISTS);
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* ---- The export's pages (db_daily_page) ---- */

/* The key of the last row a page gave, for the next page's `after`. */
struct page_key {
    char date[11], image_id[16], variant[16], country[4];
    struct collector c;
};

static int page_row(void *ctx, const struct db_stat_row *r)
{
    struct page_key *k = ctx;
    snprintf(k->date, sizeof(k->date), "%s", r->date);
    snprintf(k->image_id, sizeof(k->image_id), "%s", r->image_id);
    snprintf(k->variant, sizeof(k->variant), "%s", r->variant);
    snprintf(k->country, sizeof(k->country), "%s", r->country);
    return collect(&k->c, r);
}

/* One page of `limit` rows after k's key (the first page when k->date is
 * ""), as text; k then holds the page's last key. OUT: *rows. */
static struct text page(struct db *db, const char *owner, const char *from, const char *to,
                        struct page_key *k, int limit, int *rows)
{
    struct db_stat_row after = {k->date, k->image_id, k->variant, k->country};
    k->c = (struct collector){.shape = "divcrb"};
    assert_int_equal(
        db_daily_page(db, owner, from, to, k->date[0] ? &after : NULL, limit, page_row, k, rows),
        0);
    assert_int_equal(*rows, k->c.n);
    return rows_text(&k->c, 1);
}

/* Pages follow one another in key order (byte order: "Zoom" before
 * "orig", "w1024" before "w128"), hold only the owner's rows of the dates,
 * and a short page ends the range; a row written behind the last key is
 * not seen, one ahead of it is. */
static void test_export_pages(void **state)
{
    struct fixture *f = *state;
    const char *a = OWNER("e0a1"), *b = OWNER("e0b1");
    const char *d0 = "2033-03-01", *d1 = "2033-03-02", *d2 = "2033-03-03", *d3 = "2033-03-04";
    const struct db_count c[] = {
        DAILY(a, d2, "e1a001", "orig", "FR", 1, 10),  DAILY(a, d1, "e1a002", "w128", "US", 2, 20),
        DAILY(a, d1, "e1a002", "w1024", "US", 3, 30), DAILY(a, d1, "e1a001", "orig", "DE", 4, 40),
        DAILY(a, d1, "e1a001", "Zoom", "DE", 5, 50),  DAILY(a, d1, "e1a001", "orig", "AT", 6, 60),
        DAILY(b, d1, "e1b001", "orig", "FR", 7, 70),  DAILY(a, d0, "e1a001", "orig", "FR", 8, 80),
        DAILY(a, d3, "e1a001", "orig", "FR", 9, 90)};
    struct page_key k;
    int n = -1;
    assert_int_equal(ADD(f->db, c), 0);
    memset(&k, 0, sizeof(k));
    assert_string_equal(page(f->db, a, d1, d2, &k, 2, &n).s,
                        "2033-03-02 e1a001 Zoom DE 5 50; 2033-03-02 e1a001 orig AT 6 60");
    assert_int_equal(n, 2);
    assert_string_equal(page(f->db, a, d1, d2, &k, 2, &n).s,
                        "2033-03-02 e1a001 orig DE 4 40; 2033-03-02 e1a002 w1024 US 3 30");
    /* Between pages: a row before the last key (not seen) and one after. */
    const struct db_count late[] = {DAILY(a, d1, "e1a000", "orig", "FR", 1, 1),
                                    DAILY(a, d1, "e1a003", "orig", "FR", 2, 2)};
    assert_int_equal(ADD(f->db, late), 0);
    assert_string_equal(page(f->db, a, d1, d2, &k, 2, &n).s,
                        "2033-03-02 e1a002 w128 US 2 20; 2033-03-02 e1a003 orig FR 2 2");
    assert_int_equal(n, 2);
    assert_string_equal(page(f->db, a, d1, d2, &k, 2, &n).s, "2033-03-03 e1a001 orig FR 1 10");
    assert_int_equal(n, 1); /* short: the range is done */
    assert_string_equal(page(f->db, a, d1, d2, &k, 2, &n).s, "");
    assert_int_equal(n, 0);

    /* One page for all; one date; no rows; another owner. */
    memset(&k, 0, sizeof(k));
    assert_string_equal(page(f->db, a, d0, d0, &k, 100, &n).s, "2033-03-01 e1a001 orig FR 8 80");
    memset(&k, 0, sizeof(k));
    assert_string_equal(page(f->db, b, d0, d3, &k, 100, &n).s, "2033-03-02 e1b001 orig FR 7 70");
    memset(&k, 0, sizeof(k));
    assert_string_equal(page(f->db, a, "2033-04-01", "2033-04-30", &k, 100, &n).s, "");
    assert_int_equal(n, 0);
    memset(&k, 0, sizeof(k));
    (void)page(f->db, a, d0, d3, &k, 100, &n);
    assert_int_equal(n, 10);

    /* The batch's replacement of a date between pages: later pages read
     * the new rows. */
    memset(&k, 0, sizeof(k));
    assert_string_equal(page(f->db, a, d2, d3, &k, 1, &n).s, "2033-03-03 e1a001 orig FR 1 10");
    const struct db_count day3[] = {DAILY(a, "", "e1a001", "w512", "JP", 11, 110),
                                    STATUS(a, "", 200, 11)};
    REPLACE(f->db, d3, day3, 11);
    assert_string_equal(page(f->db, a, d2, d3, &k, 1, &n).s, "2033-03-04 e1a001 w512 JP 11 110");
    assert_string_equal(page(f->db, a, d2, d3, &k, 1, &n).s, "");

    /* fn's non-zero return stops the page and is returned. */
    struct collector stop = {.shape = "d", .stop_after = 1};
    assert_int_equal(db_daily_page(f->db, a, d0, d3, NULL, 100, collect, &stop, &n), STOP);
    assert_int_equal(stop.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_aggregation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_take, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_contention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_failed_and_abandoned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_dead_holder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
