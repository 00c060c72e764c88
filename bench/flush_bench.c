/* bench/flush_bench.c - realtime flushes into the database, per backend:
 * rows per second through db_counts_add(), the call the realtime flusher
 * (src/analytics/rollup.c, write_table) makes once per
 * ANALYTICS_REALTIME_FLUSH_MS.
 *
 * Linked with the library objects (every build/obj/ object but cli/): `make
 * build/flush_bench`, run by bench/postgres.sh.
 *
 *   flush_bench [-k KEYS,KEYS,...] [-r ROUNDS] [-n ROWS] [-o OWNERS]
 *               NAME=URL [NAME=URL ...]
 *
 * URL is what PIXFLARE_DATABASE takes (sqlite:PATH, postgres://...); every
 * database should start empty (the bench adds to today's rows). For each
 * round (default 3), each KEYS (default 100,1000,10000: distinct DAILY
 * keys per flush) and each mode, every backend is measured in turn, the
 * order rotating by one each round (round 1: as given, round 2: from the
 * second, ...), so that a slow spell of the machine does not always hit
 * the same one:
 *
 *   insert  every flush brings KEYS keys never seen before (new image ids):
 *           each DAILY row is an INSERT
 *   update  every flush brings the same KEYS keys (written once, untimed,
 *           before round 1): each DAILY row adds to an existing row
 *
 * A flush is what write_table() builds from a rollup table of KEYS daily
 * keys: the DAILY rows (today, spread over OWNERS owners, default 100, 4
 * variants per image, 8 countries), the owners' STATUS rows (200, 304 and
 * 404 for every owner present) in one shuffled list (the hash table's slot
 * order, not key order), then one OWNER_DAY row per owner. Each
 * measurement runs ceil(ROWS / rows per flush) flushes (default ROWS
 * 30000; at least 5), each under its own flush id, and times each call
 * with CLOCK_MONOTONIC: rows/s = rows written / the calls' summed time.
 *
 * Checked at the end (exit 1 otherwise): every call returned 0 and dropped
 * nothing, and each database's requests for today (db_day_requests(), the
 * STATUS rows summed) equal the requests this program added there.
 *
 * Output: a line `RESULT round=R backend=NAME keys=K mode=M flushes=F
 * rows=N ms=T rows_per_s=X flush_ms_p50=Y flush_ms_max=Z` per measurement,
 * then Markdown tables (medians over the rounds, and the ratio of each
 * backend to the first one, as the median of the rounds' ratios); progress
 * on stderr. */
#include "base/err.h"
#include "store/db.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BACKENDS 8
#define MAX_SIZES 8
#define MAX_ROUNDS 32
#define NMODES 2

static const char *const mode_name[NMODES] = {"insert", "update"};
static const char *const variants[4] = {"original", "w128", "w512", "thumb"};
static const char *const countries[8] = {"US", "DE", "GB", "IN", "FR", "JP", "BR", "XX"};

struct backend {
    const char *name, *url;
    struct db *db;
    int64_t requests;    /* STATUS requests added, to check at the end */
    uint64_t next_image; /* insert mode: the first image number never used */
    long flushes;
};

struct result {
    double rows_per_s, ms, p50, max;
    long flushes, rows;
};

static struct backend backends[MAX_BACKENDS];
static int nbackends;
static char today[11];
static int owners = 100;
static uint64_t rng = 0x9e3779b97f4a7c15u;

static void die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "flush_bench: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    exit(1);
}

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void owner_hex(int o, char out[33])
{
    uint64_t h = (uint64_t)(o + 1) * 0x9e3779b97f4a7c15u;
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h,
             (unsigned long long)(h ^ 0xa5a5a5a5a5a5a5a5u));
}

/* 6 characters [a-z0-9] for image number `n`. */
static void image_id(uint64_t n, char out[8])
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    for (int i = 5; i >= 0; i--) {
        out[i] = digits[n % 36];
        n /= 36;
    }
    out[6] = '\0';
}

/* The rows of one flush of `keys` DAILY keys, images from `first_image`
 * on (4 keys per image), as write_table() builds them. OUT: *n, and the
 * requests of its STATUS rows added to *requests. */
static void build_flush(struct db_count *rows, size_t *n, size_t keys, uint64_t first_image,
                        int64_t *requests)
{
    int64_t day_req[1024] = {0}, day_bytes[1024] = {0};
    int present[1024] = {0};
    size_t k = 0;
    for (size_t i = 0; i < keys; i++) {
        uint64_t img = first_image + i / 4;
        int o = (int)(img % (uint64_t)owners);
        struct db_count *c = &rows[k++];
        memset(c, 0, sizeof(*c));
        c->kind = DB_COUNT_DAILY;
        owner_hex(o, c->owner);
        memcpy(c->date, today, sizeof(c->date));
        image_id(img, c->image_id);
        c->variant = variants[i % 4];
        memcpy(c->country, countries[img % 8], 3);
        c->requests = 1 + (int64_t)(next_rand() % 50);
        c->bytes = c->requests * 9532;
        day_req[o] += c->requests;
        day_bytes[o] += c->bytes;
        present[o] = 1;
    }
    for (int o = 0; o < owners; o++) {
        if (!present[o])
            continue;
        static const int statuses[3] = {200, 304, 404};
        int64_t part[3] = {day_req[o] - day_req[o] / 10, day_req[o] / 10, 1 + day_req[o] / 30};
        for (int s = 0; s < 3; s++) {
            struct db_count *c = &rows[k++];
            memset(c, 0, sizeof(*c));
            c->kind = DB_COUNT_STATUS;
            owner_hex(o, c->owner);
            memcpy(c->date, today, sizeof(c->date));
            c->status = statuses[s];
            c->requests = part[s];
            *requests += part[s];
        }
    }
    /* The hash table's slot order: DAILY and STATUS rows mixed. */
    for (size_t i = k; i > 1; i--) {
        size_t j = (size_t)(next_rand() % i);
        struct db_count t = rows[i - 1];
        rows[i - 1] = rows[j];
        rows[j] = t;
    }
    for (int o = 0; o < owners; o++) {
        if (!present[o])
            continue;
        struct db_count *c = &rows[k++];
        memset(c, 0, sizeof(*c));
        c->kind = DB_COUNT_OWNER_DAY;
        owner_hex(o, c->owner);
        memcpy(c->date, today, sizeof(c->date));
        c->requests = day_req[o];
        c->bytes = day_bytes[o];
    }
    *n = k;
}

/* One flush through db_counts_add(); returns its milliseconds. */
static double flush(struct backend *b, const struct db_count *rows, size_t n)
{
    char id[64], err[512];
    int64_t dropped = -1;
    snprintf(id, sizeof(id), "flush-bench-%s-%ld", b->name, b->flushes++);
    double t0 = now_ms();
    int rc = db_counts_add(b->db, id, rows, n, &dropped, err, sizeof(err));
    double t1 = now_ms();
    if (rc != 0)
        die("db_counts_add on %s: %s", b->name, err);
    if (dropped != 0)
        die("db_counts_add on %s dropped counts%s", b->name, "");
    return t1 - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *in, int n)
{
    double v[MAX_ROUNDS * 1024];
    memcpy(v, in, (size_t)n * sizeof(*v));
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct result measure(struct backend *b, size_t keys, int mode, long nflushes,
                             struct db_count *rows, uint64_t update_base)
{
    static double each[4096];
    struct result r = {0};
    if (nflushes > 4096)
        nflushes = 4096;
    for (long f = 0; f < nflushes; f++) {
        size_t n = 0;
        uint64_t first = mode == 0 ? b->next_image : update_base;
        if (mode == 0)
            b->next_image += (keys + 3) / 4;
        build_flush(rows, &n, keys, first, &b->requests);
        each[f] = flush(b, rows, n);
        r.ms += each[f];
        r.rows += (long)n;
        if (each[f] > r.max)
            r.max = each[f];
    }
    r.flushes = nflushes;
    r.p50 = median(each, (int)nflushes);
    r.rows_per_s = r.ms > 0 ? (double)r.rows / (r.ms / 1e3) : 0;
    return r;
}

static void usage(void)
{
    fprintf(stderr, "usage: flush_bench [-k KEYS,KEYS,...] [-r ROUNDS] [-n ROWS] [-o OWNERS] "
                    "NAME=URL [NAME=URL ...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES];
    int nsizes = 0, rounds = 3, opt;
    long target_rows = 30000;
    const char *size_list = "100,1000,10000";
    while ((opt = getopt(argc, argv, "k:r:n:o:h")) != -1) {
        switch (opt) {
        case 'k':
            size_list = optarg;
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 'n':
            target_rows = strtol(optarg, NULL, 10);
            break;
        case 'o':
            owners = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    for (const char *p = size_list; *p != '\0' && nsizes < MAX_SIZES;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1000000)
            usage();
        sizes[nsizes++] = (size_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            usage();
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || owners < 1 || owners > 1024 || target_rows < 1 ||
        nsizes == 0 || optind >= argc || argc - optind > MAX_BACKENDS)
        usage();
    for (int i = optind; i < argc; i++) {
        struct backend *b = &backends[nbackends++];
        char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i])
            usage();
        *eq = '\0';
        b->name = argv[i];
        b->url = eq + 1;
        char err[512];
        if (db_open(b->url, &b->db, err, sizeof(err)) != 0)
            die("cannot open %s: %s", b->name, err);
        b->next_image = 1000000; /* the update keys are images 0 .. */
    }
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(today, sizeof(today), "%Y-%m-%d", &tm);

    size_t max_keys = 0;
    for (int s = 0; s < nsizes; s++)
        if (sizes[s] > max_keys)
            max_keys = sizes[s];
    struct db_count *rows = malloc((max_keys + 4 * (size_t)owners) * sizeof(*rows));
    if (rows == NULL)
        die("out of memory%s%s", "", "");

    /* The keys the update mode adds to: written once, untimed. Each size
     * has its own images (sizes[s] * ... from s * 250000 / 4). */
    for (int bi = 0; bi < nbackends; bi++)
        for (int s = 0; s < nsizes; s++) {
            size_t n = 0;
            build_flush(rows, &n, sizes[s], (uint64_t)s * 250000, &backends[bi].requests);
            flush(&backends[bi], rows, n);
        }

    static struct result res[MAX_ROUNDS][MAX_SIZES][NMODES][MAX_BACKENDS];
    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < nsizes; s++)
            for (int m = 0; m < NMODES; m++)
                for (int i = 0; i < nbackends; i++) {
                    int bi = (i + r) % nbackends;
                    struct backend *b = &backends[bi];
                    size_t images = (sizes[s] + 3) / 4;
                    size_t per = sizes[s] + 4 * (images < (size_t)owners ? images : (size_t)owners);
                    long nf = (long)((target_rows + (long)per - 1) / (long)per);
                    if (nf < 5)
                        nf = 5;
                    struct result x = measure(b, sizes[s], m, nf, rows, (uint64_t)s * 250000);
                    res[r][s][m][bi] = x;
                    printf("RESULT round=%d backend=%s keys=%zu mode=%s flushes=%ld rows=%ld "
                           "ms=%.1f rows_per_s=%.0f flush_ms_p50=%.2f flush_ms_max=%.2f\n",
                           r + 1, b->name, sizes[s], mode_name[m], x.flushes, x.rows, x.ms,
                           x.rows_per_s, x.p50, x.max);
                    fflush(stdout);
                    fprintf(stderr,
                            "   round %d, %s, %zu keys, %s: %ld flushes of %ld rows, %.0f rows/s, "
                            "%.2f ms per flush (median)\n",
                            r + 1, b->name, sizes[s], mode_name[m], x.flushes, x.rows / x.flushes,
                            x.rows_per_s, x.p50);
                }

    /* The check: today's requests in each database = what was added. */
    int bad = 0;
    for (int bi = 0; bi < nbackends; bi++) {
        int64_t got = -1;
        if (db_day_requests(backends[bi].db, today, &got) != 0 || got != backends[bi].requests) {
            fprintf(stderr, "flush_bench: %s counts %lld requests for %s, expected %lld\n",
                    backends[bi].name, (long long)got, today, (long long)backends[bi].requests);
            bad = 1;
        }
        printf("CHECK backend=%s requests=%lld expected=%lld flushes=%ld %s\n", backends[bi].name,
               (long long)got, (long long)backends[bi].requests, backends[bi].flushes,
               got == backends[bi].requests ? "ok" : "MISMATCH");
    }

    printf("\n| DAILY keys per flush | rows per flush | mode | backend | rows/s (median) | ms per "
           "flush (median of the rounds' medians) | rows/s against %s (median of the rounds' "
           "ratios) |\n",
           backends[0].name);
    printf("| ---: | ---: | --- | --- | ---: | ---: | ---: |\n");
    for (int s = 0; s < nsizes; s++)
        for (int m = 0; m < NMODES; m++)
            for (int bi = 0; bi < nbackends; bi++) {
                double rps[MAX_ROUNDS], p50[MAX_ROUNDS], ratio[MAX_ROUNDS];
                for (int r = 0; r < rounds; r++) {
                    rps[r] = res[r][s][m][bi].rows_per_s;
                    p50[r] = res[r][s][m][bi].p50;
                    ratio[r] =
                        res[r][s][m][0].rows_per_s > 0 ? rps[r] / res[r][s][m][0].rows_per_s : 0;
                }
                printf("| %zu | %ld | %s | %s | %.0f | %.2f | %.2fx |\n", sizes[s],
                       res[0][s][m][bi].rows / res[0][s][m][bi].flushes, mode_name[m],
                       backends[bi].name, median(rps, rounds), median(p50, rounds),
                       median(ratio, rounds));
            }
    for (int bi = 0; bi < nbackends; bi++)
        db_close(backends[bi].db);
    free(rows);
    return bad;
}
