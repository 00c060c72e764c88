/* bench/evgen.c - a day of synthetic CDN events, for the batch aggregation
 * benchmark.
 *
 * Linked with the project's objects (every build/obj/ object but main.o): `make
 * build/evgen`, run by bench/aggregate.sh.
 *
 *   evgen -d DATA_DIR -D YYYY-MM-DD [-n EVENTS] [-t THREADS] [-s SEED]
 *         [-o OWNERS] [-i IMAGES] [-f FSYNC_MS] [--tsv FILE]
 *
 * Writes EVENTS events (default 10,000,000) of the UTC day YYYY-MM-DD into
 * DATA_DIR's event store (dataset pixflare_cdn_metrics) through the server's
 * own writer: evlog_open(DATA_DIR, "pixflare_cdn_metrics", FSYNC_MS) (default
 * 1000, the server's default; its sync thread fdatasyncs as it would), then
 * evlog_append() from THREADS threads (default 2, like a 2-CPU server's HTTP
 * threads), then evlog_close(). Each thread writes its share in time order,
 * spread over the day with a daily cycle (busiest around 15:00 UTC, quietest
 * around 03:00, 3:1), so the files split by hour and by thread as a real
 * server's do. The store must not be in use by a server.
 *
 * The traffic model (fixed; only the counts are options):
 *   images   IMAGES images (default 1500), popularity Zipf(1.0) by rank;
 *            image ids 6 characters [a-z0-9], distinct (a bijection of the
 *            rank); each image belongs to one owner
 *   owners   OWNERS owners (default 500), each 16 random-looking bytes (a
 *            hash of seed and index, never all zero); images are dealt to
 *            owners with Zipf(1.1) odds, so a few owners hold most traffic;
 *            each owner has a home country
 *   variant  per image, two favourite variants (65% and 25% of its
 *            requests), else the overall mix (original 20%, w512 18%,
 *            w1024 16%, thumb 12%, w256 10%, w128 8%, w1536 6%, w2048 5%,
 *            og-image 5%)
 *   country  60% the owner's home country, else from a weighted list of 53
 *            codes (US 20%, IN, DE, GB, JP, FR, BR, ... XX, T1)
 *   status   200 86% (0.5% of them HEAD: 0 bytes), 304 9% (0 bytes), 206 1%
 *            (part of the image), 404 3.5%, 400 0.5%. A 404 has no image:
 *            40% name a known owner, 60% are unattributed (all-zero owner;
 *            30% of those have no variant either). A 400 (unknown variant)
 *            has no image and no variant.
 *   bytes    per image and variant, fixed: an image's complexity factor
 *            (0.4-2.5) times a typical size (original 1.5 MB, w128 6 KB,
 *            w256 18 KB, w512 55 KB, w1024 170 KB, w1536 340 KB, w2048
 *            560 KB, thumb 7 KB, og-image 110 KB); errors 90 or 110 bytes
 * Request ids are the server's layout (8 bytes per run, 2 of the thread, 6
 * of a counter), derived from the seed. Everything written depends only on
 * the options: the same options give the same events (file names carry the
 * store's random run id).
 *
 * --tsv FILE also writes every event as one tab-separated line (in thread
 * order, then time order), for loading into ClickHouse:
 *   ts_ms  owner  image_id  variant  status  country  bytes
 * owner as 32 lowercase hex digits ("" for the all-zero owner), variant by
 * name ("" for none), image_id "" for none.
 *
 * On stdout, one line of key=value pairs: what was written, and the exact
 * answers the aggregation must give (computed here, independently):
 *   date events threads seed owners images daily_keys daily_requests
 *   daily_bytes status_keys unattributed s200 s206 s304 s400 s404 files
 *   store_bytes gen_ms
 * daily_*: the events that count in analytics_daily (status 200, 206 or 304
 * with a variant) and their distinct (owner, image, variant, country) keys;
 * status_keys: distinct (owner, status). Progress on stderr when it is a
 * terminal. Exit 1 on any error. */
#include "analytics/evlog.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DATASET "pixflare_cdn_metrics"
#define MAX_THREADS 64
#define MS_PER_HOUR 3600000LL
#define TSV_BUF (1u << 20)

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "evgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        die("%s", "out of memory");
    return p;
}

/* --- randomness ------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) /* splitmix64's finaliser */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* A fixed "random" value for (seed, what, index). */
static uint64_t hash3(uint64_t seed, uint64_t what, uint64_t i)
{
    return mix64(seed * 0x9e3779b97f4a7c15ULL ^ mix64(what * 0xc2b2ae3d27d4eb4fULL + i));
}

static double unit(uint64_t x) /* [0, 1) */
{
    return (double)(x >> 11) * 0x1.0p-53;
}

struct rng { /* xoshiro256** */
    uint64_t s[4];
};

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = hash3(seed, 1000 + stream, (uint64_t)i);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static double rng_unit(struct rng *r)
{
    return unit(rng_next(r));
}

/* --- weighted choice: Walker/Vose alias tables ------------------------------ */

struct alias {
    uint32_t n;
    double *prob;
    uint32_t *other;
};

static void alias_build(struct alias *a, const double *w, uint32_t n)
{
    double sum = 0, *p = xcalloc(n, sizeof(double));
    uint32_t *small = xcalloc(n, sizeof(uint32_t)), *large = xcalloc(n, sizeof(uint32_t));
    uint32_t ns = 0, nl = 0;
    a->n = n;
    a->prob = xcalloc(n, sizeof(double));
    a->other = xcalloc(n, sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++)
        sum += w[i];
    for (uint32_t i = 0; i < n; i++) {
        p[i] = w[i] * n / sum;
        if (p[i] < 1)
            small[ns++] = i;
        else
            large[nl++] = i;
    }
    while (ns > 0 && nl > 0) {
        uint32_t s = small[--ns], l = large[--nl];
        a->prob[s] = p[s];
        a->other[s] = l;
        p[l] -= 1 - p[s];
        if (p[l] < 1)
            small[ns++] = l;
        else
            large[nl++] = l;
    }
    while (nl > 0) {
        uint32_t l = large[--nl];
        a->prob[l] = 1;
        a->other[l] = l;
    }
    while (ns > 0) { /* rounding leftovers */
        uint32_t s = small[--ns];
        a->prob[s] = 1;
        a->other[s] = s;
    }
    free(p);
    free(small);
    free(large);
}

static uint32_t alias_pick(const struct alias *a, uint64_t x)
{
    uint32_t i = (uint32_t)(((x >> 32) * a->n) >> 32);
    return unit(x << 32 | (x >> 32)) < a->prob[i] ? i : a->other[i];
}

static void alias_free(struct alias *a)
{
    free(a->prob);
    free(a->other);
}

/* The project links no libm: natural log and exp for the weights. */
static double ln_pos(double x) /* x >= 1 */
{
    double k = 0;
    while (x >= 2) {
        x /= 2;
        k++;
    }
    /* ln x = 2 atanh((x - 1) / (x + 1)), x in [1, 2) */
    double z = (x - 1) / (x + 1), z2 = z * z, term = z, sum = 0;
    for (int i = 1; i < 60; i += 2) {
        sum += term / i;
        term *= z2;
    }
    return 2 * sum + k * 0.69314718055994530942;
}

static double exp_neg(double y) /* y <= 0 */
{
    int halvings = 0;
    while (y < -0.5) {
        y /= 2;
        halvings++;
    }
    double sum = 1, term = 1;
    for (int i = 1; i < 20; i++) {
        term *= y / i;
        sum += term;
    }
    while (halvings-- > 0)
        sum *= sum;
    return sum;
}

static void zipf_weights(double *w, uint32_t n, double s)
{
    for (uint32_t i = 0; i < n; i++)
        w[i] = exp_neg(-s * ln_pos((double)i + 1));
}

/* --- the model --------------------------------------------------------------- */

static const struct {
    const char *code;
    double weight;
} country_list[] = {
    {"US", 20.0}, {"IN", 5.0}, {"DE", 6.0}, {"GB", 5.0}, {"JP", 4.5}, {"FR", 4.5}, {"BR", 4.0},
    {"CA", 3.0},  {"IT", 2.5}, {"ES", 2.5}, {"RU", 2.0}, {"NL", 2.0}, {"AU", 2.0}, {"KR", 2.0},
    {"MX", 2.0},  {"ID", 2.0}, {"CN", 1.5}, {"PL", 1.5}, {"TR", 1.5}, {"VN", 1.2}, {"PH", 1.2},
    {"SE", 1.0},  {"CH", 1.0}, {"BE", 1.0}, {"AR", 1.0}, {"TH", 1.0}, {"TW", 0.9}, {"AT", 0.8},
    {"UA", 0.8},  {"CO", 0.8}, {"SA", 0.8}, {"PT", 0.7}, {"CZ", 0.7}, {"RO", 0.7}, {"ZA", 0.7},
    {"MY", 0.7},  {"SG", 0.7}, {"NO", 0.6}, {"DK", 0.6}, {"IE", 0.6}, {"CL", 0.6}, {"NG", 0.6},
    {"EG", 0.6},  {"AE", 0.6}, {"HK", 0.6}, {"PK", 0.6}, {"FI", 0.5}, {"IL", 0.5}, {"BD", 0.5},
    {"PE", 0.4},  {"NZ", 0.4}, {"XX", 0.3}, {"T1", 0.1},
};
#define NCOUNTRY ((uint32_t)(sizeof(country_list) / sizeof(country_list[0])))

/* Overall variant mix, by variant_table index. */
static const double variant_weight[VARIANT_COUNT] = {20, 8, 10, 18, 16, 6, 5, 12, 5};
/* Typical bytes of a 200 for each variant (complexity factor 1). */
static const double variant_bytes[VARIANT_COUNT] = {1500000, 6000,   18000, 55000, 170000,
                                                    340000,  560000, 7000,  110000};

struct model {
    int64_t day_ms;
    uint64_t seed;
    uint32_t owners, images;
    uint8_t (*owner)[16];            /* per owner */
    uint8_t *home;                   /* per owner: country index */
    uint32_t *image_owner;           /* per image rank */
    char (*image_id)[8];             /* per image rank */
    uint8_t (*fav)[2];               /* per image rank: favourite variants */
    uint32_t (*size)[VARIANT_COUNT]; /* per image rank: bytes of a 200 */
    struct alias image_pick, country_pick, variant_pick;
    double hour_cum[25]; /* share of the day's events before each hour */
};

static void model_build(struct model *m)
{
    double *w = xcalloc(m->images > NCOUNTRY ? m->images : NCOUNTRY, sizeof(double));
    struct alias owner_pick;

    m->owner = xcalloc(m->owners, sizeof(*m->owner));
    m->home = xcalloc(m->owners, 1);
    m->image_owner = xcalloc(m->images, sizeof(*m->image_owner));
    m->image_id = xcalloc(m->images, sizeof(*m->image_id));
    m->fav = xcalloc(m->images, sizeof(*m->fav));
    m->size = xcalloc(m->images, sizeof(*m->size));

    for (uint32_t c = 0; c < NCOUNTRY; c++)
        w[c] = country_list[c].weight;
    alias_build(&m->country_pick, w, NCOUNTRY);
    alias_build(&m->variant_pick, variant_weight, VARIANT_COUNT);

    for (uint32_t k = 0; k < m->owners; k++) {
        uint64_t a = hash3(m->seed, 1, k), b = hash3(m->seed, 2, k);
        memcpy(m->owner[k], &a, 8);
        memcpy(m->owner[k] + 8, &b, 8);
        m->owner[k][0] |= 1; /* never all zero: that is "no owner" */
        m->home[k] = (uint8_t)alias_pick(&m->country_pick, hash3(m->seed, 3, k));
    }

    /* Owners' shares of the images: Zipf(1.1) by owner index. */
    zipf_weights(w, m->owners, 1.1);
    alias_build(&owner_pick, w, m->owners);
    /* Image ids: rank -> (rank * A + B) mod 36^6 is a bijection (A prime to
     * 2 and 3), written in base 36: distinct, random-looking ids. */
    const uint64_t space = 2176782336ULL; /* 36^6 */
    const uint64_t mul = 2654435761ULL % space, add = hash3(m->seed, 4, 0) % space;
    for (uint32_t r = 0; r < m->images; r++) {
        m->image_owner[r] = alias_pick(&owner_pick, hash3(m->seed, 5, r));
        uint64_t v = ((uint64_t)r * mul + add) % space;
        for (int i = 5; i >= 0; i--) {
            m->image_id[r][i] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
            v /= 36;
        }
        m->fav[r][0] = (uint8_t)alias_pick(&m->variant_pick, hash3(m->seed, 6, r));
        m->fav[r][1] = (uint8_t)alias_pick(&m->variant_pick, hash3(m->seed, 7, r));
        double cx = 0.4 + 2.1 * unit(hash3(m->seed, 8, r)) * unit(hash3(m->seed, 9, r));
        for (int v2 = 0; v2 < VARIANT_COUNT; v2++)
            m->size[r][v2] = (uint32_t)(variant_bytes[v2] * cx *
                                        (0.9 + 0.2 * unit(hash3(m->seed, 10 + (uint64_t)v2, r))));
    }
    alias_free(&owner_pick);

    zipf_weights(w, m->images, 1.0);
    alias_build(&m->image_pick, w, m->images);
    free(w);

    /* Daily cycle: 1 + 0.5 cos(2 pi (h + 0.5 - 15) / 24), so 3:1 between
     * 15:00 and 03:00 UTC. */
    static const double hour_weight[24] = {0.603, 0.538, 0.504, 0.504, 0.538, 0.603, 0.696, 0.809,
                                           0.935, 1.065, 1.191, 1.304, 1.397, 1.462, 1.496, 1.496,
                                           1.462, 1.397, 1.304, 1.191, 1.065, 0.935, 0.809, 0.696};
    double tot = 0;
    m->hour_cum[0] = 0;
    for (int h = 0; h < 24; h++) {
        tot += hour_weight[h];
        m->hour_cum[h + 1] = tot;
    }
    for (int h = 0; h <= 24; h++)
        m->hour_cum[h] /= tot;
}

static void model_free(struct model *m)
{
    free(m->owner);
    free(m->home);
    free(m->image_owner);
    free(m->image_id);
    free(m->fav);
    free(m->size);
    alias_free(&m->image_pick);
    alias_free(&m->country_pick);
    alias_free(&m->variant_pick);
}

/* --- distinct keys: an open-addressing set of non-zero uint64 ---------------- */

struct set {
    uint64_t *slot;
    size_t mask, count;
};

static void set_init(struct set *s, size_t cap)
{
    s->mask = cap - 1; /* cap: a power of two */
    s->count = 0;
    s->slot = xcalloc(cap, sizeof(uint64_t));
}

static void set_add(struct set *s, uint64_t key);

static void set_grow(struct set *s)
{
    struct set bigger;
    set_init(&bigger, (s->mask + 1) * 2);
    for (size_t i = 0; i <= s->mask; i++)
        if (s->slot[i] != 0)
            set_add(&bigger, s->slot[i]);
    free(s->slot);
    *s = bigger;
}

static void set_add(struct set *s, uint64_t key)
{
    size_t i = (size_t)mix64(key) & s->mask;
    while (s->slot[i] != 0) {
        if (s->slot[i] == key)
            return;
        i = (i + 1) & s->mask;
    }
    s->slot[i] = key;
    if (++s->count * 2 > s->mask + 1)
        set_grow(s);
}

static void set_merge(struct set *to, const struct set *from)
{
    for (size_t i = 0; i <= from->mask; i++)
        if (from->slot[i] != 0)
            set_add(to, from->slot[i]);
}

/* --- the writers ------------------------------------------------------------- */

enum { ST_200, ST_206, ST_304, ST_400, ST_404, ST_COUNT };
static const int status_code[ST_COUNT] = {200, 206, 304, 400, 404};

struct job {
    const struct model *m;
    struct evlog *lg;
    int index;
    uint64_t n;
    int tsv_fd; /* -1: none */
    const char *tsv_path;
    _Atomic uint64_t done;
    /* results */
    struct set daily, status;
    uint64_t daily_requests, daily_bytes, unattributed, by_status[ST_COUNT], failed;
};

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static char *put_tsv(char *p, const struct event *ev, int zero_owner)
{
    static const char hex[] = "0123456789abcdef";
    p = put_u64(p, (uint64_t)ev->ts_ms);
    *p++ = '\t';
    if (!zero_owner)
        for (int i = 0; i < 16; i++) {
            *p++ = hex[ev->owner[i] >> 4];
            *p++ = hex[ev->owner[i] & 15];
        }
    *p++ = '\t';
    for (const char *s = ev->image_id; *s; s++)
        *p++ = *s;
    *p++ = '\t';
    if (ev->variant >= 0)
        for (const char *s = variant_table[ev->variant].name; *s; s++)
            *p++ = *s;
    *p++ = '\t';
    p = put_u64(p, (uint64_t)ev->status);
    *p++ = '\t';
    *p++ = ev->country[0];
    *p++ = ev->country[1];
    *p++ = '\t';
    p = put_u64(p, ev->bytes);
    *p++ = '\n';
    return p;
}

static void write_all(int fd, const char *buf, size_t len, const char *path)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("cannot write %s", path);
        buf += w;
        len -= (size_t)w;
    }
}

static void *writer_main(void *arg)
{
    struct job *j = arg;
    const struct model *m = j->m;
    struct rng r;
    struct event ev;
    char *tsv = j->tsv_fd >= 0 ? xcalloc(TSV_BUF, 1) : NULL, *tp = tsv;
    uint8_t run[8];
    uint64_t done = 0, counter = 0, run64 = hash3(m->seed, 20, 0);
    static const uint8_t zero_owner[16];

    memcpy(run, &run64, 8);
    rng_seed(&r, m->seed, (uint64_t)j->index);
    set_init(&j->daily, 1u << 16);
    set_init(&j->status, 1u << 12);
    memset(&ev, 0, sizeof(ev));

    for (int h = 0; h < 24; h++) {
        uint64_t from = (uint64_t)(j->n * m->hour_cum[h]);
        uint64_t to = h == 23 ? j->n : (uint64_t)(j->n * m->hour_cum[h + 1]);
        uint64_t c = to - from;
        int64_t hour_ms = m->day_ms + h * MS_PER_HOUR;
        int64_t step = c > 0 ? MS_PER_HOUR / (int64_t)c : 0;
        for (uint64_t e = 0; e < c; e++) {
            uint64_t x = rng_next(&r);
            /* In time order: event e of the hour in its own 1/c slot. */
            ev.ts_ms = hour_ms + (int64_t)(e * (uint64_t)MS_PER_HOUR / c) +
                       (step > 0 ? (int64_t)((x >> 40) % (uint64_t)step) : 0);
            memcpy(ev.request_id, run, 8);
            ev.request_id[8] = (uint8_t)(j->index >> 8);
            ev.request_id[9] = (uint8_t)j->index;
            counter++;
            for (int i = 0; i < 6; i++)
                ev.request_id[10 + i] = (uint8_t)(counter >> (40 - 8 * i));

            uint32_t img = alias_pick(&m->image_pick, rng_next(&r));
            uint32_t own = m->image_owner[img];
            double u = rng_unit(&r);
            int st = u < 0.86    ? ST_200
                     : u < 0.95  ? ST_304
                     : u < 0.96  ? ST_206
                     : u < 0.995 ? ST_404
                                 : ST_400;
            int attributed = 1;
            ev.status = status_code[st];
            if (st == ST_200 || st == ST_206 || st == ST_304) {
                double v = rng_unit(&r);
                ev.variant = v < 0.65   ? m->fav[img][0]
                             : v < 0.90 ? m->fav[img][1]
                                        : (int)alias_pick(&m->variant_pick, rng_next(&r));
                memcpy(ev.image_id, m->image_id[img], 8);
                uint64_t full = m->size[img][ev.variant];
                if (st == ST_304 || (st == ST_200 && rng_unit(&r) < 0.005))
                    ev.bytes = 0; /* 304, or HEAD */
                else if (st == ST_206)
                    ev.bytes = 1 + (uint64_t)(rng_unit(&r) * (double)(full - 1));
                else
                    ev.bytes = full;
            } else if (st == ST_404) {
                memset(ev.image_id, 0, sizeof(ev.image_id));
                attributed = rng_unit(&r) < 0.40;
                ev.variant = !attributed && rng_unit(&r) < 0.30
                                 ? -1
                                 : (int)alias_pick(&m->variant_pick, rng_next(&r));
                ev.bytes = 90;
            } else { /* 400: an unknown variant */
                memset(ev.image_id, 0, sizeof(ev.image_id));
                ev.variant = -1;
                ev.bytes = 110;
            }
            uint32_t ci = attributed && rng_unit(&r) < 0.60
                              ? m->home[own]
                              : alias_pick(&m->country_pick, rng_next(&r));
            memcpy(ev.country, country_list[ci].code, 3);
            memcpy(ev.owner, attributed ? m->owner[own] : zero_owner, 16);

            if (evlog_append(j->lg, &ev) != 0)
                j->failed++;
            j->by_status[st]++;
            j->unattributed += !attributed;
            /* Keys: the image rank stands for (owner, image id), one-to-one. */
            set_add(&j->status,
                    ((uint64_t)(attributed ? own + 1 : 0) << 16 | (uint64_t)ev.status) + 1);
            if (st == ST_200 || st == ST_206 || st == ST_304) {
                set_add(&j->daily, ((uint64_t)img << 16 | (uint64_t)ev.variant << 8 | ci) + 1);
                j->daily_requests++;
                j->daily_bytes += ev.bytes;
            }
            if (tsv != NULL) {
                if (tp - tsv > (ptrdiff_t)TSV_BUF - 256) {
                    write_all(j->tsv_fd, tsv, (size_t)(tp - tsv), j->tsv_path);
                    tp = tsv;
                }
                tp = put_tsv(tp, &ev, !attributed);
            }
            if ((++done & 0xffff) == 0)
                atomic_store_explicit(&j->done, done, memory_order_relaxed);
        }
    }
    if (tsv != NULL) {
        write_all(j->tsv_fd, tsv, (size_t)(tp - tsv), j->tsv_path);
        free(tsv);
    }
    atomic_store_explicit(&j->done, done, memory_order_relaxed);
    return NULL;
}

/* Files and bytes under the day's directory of the store. */
static void store_usage(const char *data_dir, const char *date, uint64_t *files, uint64_t *bytes)
{
    char dir[4200], path[4500];
    struct dirent *de;
    struct stat st;
    snprintf(dir, sizeof(dir), "%s/events/%s/%s", data_dir, DATASET, date);
    DIR *d = opendir(dir);
    *files = *bytes = 0;
    if (d == NULL)
        die("cannot read %s", dir);
    while ((de = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (de->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            (*files)++;
            *bytes += (uint64_t)st.st_size;
        }
    }
    closedir(d);
}

static void usage(void)
{
    fprintf(stderr, "usage: evgen -d DATA_DIR -D YYYY-MM-DD [-n EVENTS] [-t THREADS] [-s SEED] "
                    "[-o OWNERS] [-i IMAGES] [-f FSYNC_MS] [--tsv FILE]\n");
    exit(2);
}

static uint64_t parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "evgen: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

static int64_t now_ms(void)
{
    return timeutil_mono_ns() / 1000000;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"tsv", required_argument, NULL, 'T'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *data_dir = NULL, *date = NULL, *tsv_path = NULL;
    uint64_t n = 10000000, seed = 1;
    int threads = 2, fsync_ms = 1000, opt;
    struct model m;
    memset(&m, 0, sizeof(m));
    m.owners = 500;
    m.images = 1500;
    while ((opt = getopt_long(argc, argv, "d:D:n:t:s:o:i:f:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            data_dir = optarg;
            break;
        case 'D':
            date = optarg;
            break;
        case 'n':
            n = parse_u64(optarg, 1, 1ULL << 40, "-n EVENTS");
            break;
        case 't':
            threads = (int)parse_u64(optarg, 1, MAX_THREADS, "-t THREADS");
            break;
        case 's':
            seed = parse_u64(optarg, 0, UINT64_MAX, "-s SEED");
            break;
        case 'o':
            m.owners = (uint32_t)parse_u64(optarg, 1, 1u << 24, "-o OWNERS");
            break;
        case 'i':
            m.images = (uint32_t)parse_u64(optarg, 1, 1u << 24, "-i IMAGES");
            break;
        case 'f':
            fsync_ms = (int)parse_u64(optarg, 0, 3600000, "-f FSYNC_MS");
            break;
        case 'T':
            tsv_path = optarg;
            break;
        default:
            usage();
        }
    }
    int64_t day_s;
    if (data_dir == NULL || date == NULL || optind != argc)
        usage();
    if (timeutil_parse_date(date, &day_s) != 0) {
        fprintf(stderr, "evgen: bad date (YYYY-MM-DD): %s\n", date);
        return 2;
    }
    m.day_ms = day_s * 1000;
    m.seed = seed;

    int64_t t0 = now_ms();
    model_build(&m);

    struct evlog *lg = NULL;
    char err[512], part[4200];
    if (evlog_open(data_dir, DATASET, fsync_ms, stderr, &lg, err, sizeof(err)) != 0)
        die("%s", err);

    struct job *jobs = xcalloc((size_t)threads, sizeof(*jobs));
    pthread_t tid[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        struct job *j = &jobs[t];
        j->m = &m;
        j->lg = lg;
        j->index = t;
        j->n = n / (uint64_t)threads + ((uint64_t)t < n % (uint64_t)threads);
        j->tsv_fd = -1;
        if (tsv_path != NULL) {
            snprintf(part, sizeof(part), "%s.part%d", tsv_path, t);
            j->tsv_fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (j->tsv_fd < 0)
                die("cannot create %s", part);
            j->tsv_path = tsv_path;
        }
        if (pthread_create(&tid[t], NULL, writer_main, j) != 0)
            die("%s", "pthread_create failed");
    }

    /* Progress, when someone watches. */
    if (isatty(2)) {
        for (;;) {
            uint64_t done = 0;
            for (int t = 0; t < threads; t++)
                done += atomic_load_explicit(&jobs[t].done, memory_order_relaxed);
            fprintf(stderr, "\revgen: %3d%% (%llu of %llu events)", (int)(done * 100 / n),
                    (unsigned long long)done, (unsigned long long)n);
            if (done >= n)
                break;
            struct timespec ts = {0, 250000000};
            nanosleep(&ts, NULL);
        }
        fprintf(stderr, "\n");
    }
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);

    struct evlog_stats est;
    evlog_get_stats(lg, &est);
    evlog_close(lg);

    /* The TSV: the threads' parts, in thread order. */
    if (tsv_path != NULL) {
        int out = open(tsv_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0)
            die("cannot create %s", tsv_path);
        for (int t = 0; t < threads; t++) {
            snprintf(part, sizeof(part), "%s.part%d", tsv_path, t);
            close(jobs[t].tsv_fd);
            int in = open(part, O_RDONLY | O_CLOEXEC);
            if (in < 0)
                die("cannot read %s", part);
            for (;;) {
                ssize_t c = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
                if (c < 0 && errno == EINTR)
                    continue;
                if (c < 0)
                    die("cannot copy into %s", tsv_path);
                if (c == 0)
                    break;
            }
            close(in);
            unlink(part);
        }
        if (close(out) != 0)
            die("cannot write %s", tsv_path);
    }

    struct set daily, status;
    uint64_t daily_requests = 0, daily_bytes = 0, unattributed = 0, failed = 0;
    uint64_t by_status[ST_COUNT] = {0};
    set_init(&daily, 1u << 16);
    set_init(&status, 1u << 12);
    for (int t = 0; t < threads; t++) {
        struct job *j = &jobs[t];
        set_merge(&daily, &j->daily);
        set_merge(&status, &j->status);
        free(j->daily.slot);
        free(j->status.slot);
        daily_requests += j->daily_requests;
        daily_bytes += j->daily_bytes;
        unattributed += j->unattributed;
        failed += j->failed;
        for (int s = 0; s < ST_COUNT; s++)
            by_status[s] += j->by_status[s];
    }
    if (failed != 0 || est.dropped != 0 || est.appended != n)
        die("%s", "the event store did not take every event");

    uint64_t files, bytes;
    store_usage(data_dir, date, &files, &bytes);
    printf("date=%s events=%llu threads=%d seed=%llu owners=%u images=%u daily_keys=%zu "
           "daily_requests=%llu daily_bytes=%llu status_keys=%zu unattributed=%llu s200=%llu "
           "s206=%llu s304=%llu s400=%llu s404=%llu files=%llu store_bytes=%llu gen_ms=%lld\n",
           date, (unsigned long long)n, threads, (unsigned long long)seed, m.owners, m.images,
           daily.count, (unsigned long long)daily_requests, (unsigned long long)daily_bytes,
           status.count, (unsigned long long)unattributed, (unsigned long long)by_status[ST_200],
           (unsigned long long)by_status[ST_206], (unsigned long long)by_status[ST_304],
           (unsigned long long)by_status[ST_400], (unsigned long long)by_status[ST_404],
           (unsigned long long)files, (unsigned long long)bytes, (long long)(now_ms() - t0));
    free(daily.slot);
    free(status.slot);
    free(jobs);
    model_free(&m);
    return 0;
}
