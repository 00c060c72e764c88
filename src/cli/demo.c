/* demo.c - see demo.h. Each image is a colour gradient with a few discs, so
 * variants and crops are easy to tell apart by eye. Drawing is deterministic:
 * a second run produces the same bytes, which import recognises. */
#include "cli/demo.h"

#include "analytics/event.h"
#include "api/auth.h"
#include "cdn/catalog.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "base/hll.h"
#include "cdn/import.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

static const struct {
    const char *owner, *album, *file;
    int w, h;
    double hue[3]; /* colour weights of the gradient */
} demo_images[] = {
    {"alice", "pics", "sunset.jpg", 1600, 1067, {1.0, 0.45, 0.15}},
    {"alice", "pics", "dino.png", 800, 600, {0.2, 0.8, 0.4}},
    {"alice", "travel", "harbour.webp", 2400, 1350, {0.1, 0.4, 1.0}},
    {"alice", "travel", "tiny-map.png", 96, 64, {0.9, 0.9, 0.2}},
    {"bob", "art", "portrait.jpg", 900, 1400, {0.7, 0.2, 0.9}},
    {"bob", "art", "loop.gif", 320, 240, {0.3, 1.0, 1.0}},
};

/* Draw one image to `path`. */
static int draw(const char *path, int w, int h, const double hue[3])
{
    VipsImage *xyz = NULL, *x = NULL, *y = NULL, *sum = NULL, *rgb = NULL, *img = NULL, *mem = NULL;
    int rc = PF_EIMAGE;
    double scale = 255.0 / (w + h);
    double a[3] = {hue[0] * scale, hue[1] * scale, hue[2] * scale};
    double b[3] = {20, 20, 40};
    if (vips_xyz(&xyz, w, h, NULL) || vips_extract_band(xyz, &x, 0, NULL) ||
        vips_extract_band(xyz, &y, 1, NULL) || vips_add(x, y, &sum, NULL) ||
        vips_linear(sum, &rgb, a, b, 3, NULL) || vips_cast(rgb, &img, VIPS_FORMAT_UCHAR, NULL))
        goto done;
    mem = vips_image_copy_memory(img);
    if (mem == NULL)
        goto done;
    vips_image_set_int(mem, "interpretation", VIPS_INTERPRETATION_sRGB);
    mem->Type = VIPS_INTERPRETATION_sRGB;
    for (int i = 0; i < 5; i++) {
        double ink[3] = {255 - 40 * i, 60 * i, 255 - 50 * i};
        int r = (w < h ? w : h) / (4 + i);
        if (vips_draw_circle(mem, ink, 3, w * (i + 1) / 6, h / 2 + (i % 2 ? r / 2 : -r / 2), r,
                             "fill", TRUE, NULL))
            goto done;
    }
    if (vips_image_write_to_file(mem, path, NULL) == 0)
        rc = 0;
done:
    if (rc != 0) {
        fprintf(stderr, "pixflare demo: cannot draw %s: %s", path, vips_error_buffer());
        vips_error_clear();
    }
    VipsImage *all[] = {xyz, x, y, sum, rgb, img, mem};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i] != NULL)
            g_object_unref(all[i]);
    return rc;
}

int demo_run(struct db *db, struct storage *st, const char *src_dir, FILE *out, FILE *errs)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof(demo_images) / sizeof(demo_images[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s/%s", src_dir, demo_images[i].owner,
                 demo_images[i].album);
        int rc = fsutil_mkdirs(path, 0755);
        if (rc != 0)
            return rc;
        snprintf(path, sizeof(path), "%s/%s/%s/%s", src_dir, demo_images[i].owner,
                 demo_images[i].album, demo_images[i].file);
        if (access(path, F_OK) == 0)
            continue;
        rc = draw(path, demo_images[i].w, demo_images[i].h, demo_images[i].hue);
        if (rc != 0)
            return rc;
    }
    struct import_stats stats;
    int rc = import_dir(db, st, src_dir, out, errs, &stats);
    if (rc == 0 && stats.refused > 0)
        rc = PF_EIMAGE;
    return rc;
}

/* ---- Demo traffic ------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64*: reproducible for a seed, good enough for fake traffic */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static int pick(uint64_t *s, const int *weights, int n)
{
    int total = 0;
    for (int i = 0; i < n; i++)
        total += weights[i];
    int r = (int)(rnd(s) % (uint64_t)total);
    for (int i = 0; i < n; i++) {
        if (r < weights[i])
            return i;
        r -= weights[i];
    }
    return n - 1;
}

static int cmp_event_ts(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    return (x->ts_ms > y->ts_ms) - (x->ts_ms < y->ts_ms);
}

int demo_traffic(const struct event_sink *sink, struct catalog *cat, int days, uint64_t seed,
                 uint64_t *events)
{
    static const char *const countries[] = {"US", "DE", "GB", "FR", "JP", "BR", "IN",
                                            "CA", "AU", "NL", "SE", "XX", "T1"};
    static const int country_w[] = {30, 12, 10, 8, 8, 6, 6, 5, 4, 4, 3, 3, 1};
    /* original w128 w256 w512 w1024 w1536 w2048 thumb og-image */
    static const int variant_w[VARIANT_COUNT] = {30, 4, 10, 15, 15, 2, 1, 20, 5};
    static const double variant_share[VARIANT_COUNT] = {1.0,  0.02, 0.06, 0.2, 0.45,
                                                        0.75, 0.9,  0.02, 0.3};
    static const int popularity[] = {120, 60, 90, 15, 70, 30}; /* per day, by demo image */
    const int n_images = (int)(sizeof(demo_images) / sizeof(demo_images[0]));
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    int64_t today = now_ms / 86400000;
    uint64_t s = seed | 1;
    *events = 0;
    for (int64_t day = today - days + 1; day <= today; day++) {
        size_t cap = 0, n = 0;
        for (int i = 0; i < n_images; i++)
            cap += (size_t)popularity[i] * 3;
        struct event *evs = calloc(cap, sizeof(*evs));
        if (evs == NULL)
            return PF_ENOMEM;
        /* Weekends are busier; each image's traffic drifts from day to day. */
        int weekday = (int)((day + 4) % 7); /* 1970-01-01 was a Thursday */
        double day_factor = (weekday == 0 || weekday == 6) ? 1.4 : 1.0;
        for (int i = 0; i < n_images; i++) {
            struct catalog_image *img = catalog_find_name(
                cat, demo_images[i].owner, demo_images[i].album, demo_images[i].file);
            if (img == NULL)
                continue;
            int count = (int)(popularity[i] * day_factor * (0.6 + (double)(rnd(&s) % 80) / 100));
            for (int k = 0; k < count && n < cap; k++) {
                struct event *ev = &evs[n++];
                int64_t span = day == today ? now_ms - day * 86400000 : 86400000;
                ev->ts_ms = day * 86400000 + (int64_t)(rnd(&s) % (uint64_t)(span > 0 ? span : 1));
                memcpy(ev->owner, img->owner_hash, 16);
                snprintf(ev->image_id, sizeof(ev->image_id), "%s", img->id);
                ev->variant = pick(&s, variant_w, VARIANT_COUNT);
                int c = pick(&s, country_w, (int)(sizeof(country_w) / sizeof(country_w[0])));
                memcpy(ev->country, countries[c], 3);
                /* Clients: mostly browsers, some crawlers and link
                 * unfurlers; a browser is one of the owner's day's
                 * visitors (a pool smaller than its requests: some come
                 * back), its sketch point made from the visitor's number
                 * as uniq.c makes one from a salted hash. */
                int who = (int)(rnd(&s) % 100);
                ev->client = who < 84 ? 0 : who < 93 ? 1 : 2;
                if (ev->client != 1) {
                    uint64_t z =
                        ((uint64_t)day << 24 ^ (uint64_t)img->owner_hash[0] << 16 ^ rnd(&s) % 160) *
                        0x9E3779B97F4A7C15ULL;
                    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
                    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
                    uint16_t idx;
                    uint8_t rank;
                    hll_point(z ^ (z >> 31), &idx, &rank);
                    ev->upoint = (uint32_t)idx << 8 | rank;
                }
                uint64_t full = (uint64_t)((double)img->size_bytes * variant_share[ev->variant]);
                int roll = (int)(rnd(&s) % 100);
                if (roll < 86) {
                    ev->status = 200;
                    ev->bytes = full;
                } else if (roll < 95) {
                    ev->status = 304;
                } else if (roll < 98) {
                    ev->status = 206;
                    ev->bytes = full / 4;
                } else {
                    ev->status = 404; /* a mistyped variant of a known owner's path */
                    ev->image_id[0] = '\0';
                }
            }
        }
        qsort(evs, n, sizeof(*evs), cmp_event_ts);
        for (size_t k = 0; k < n; k++) {
            event_request_id(evs[k].request_id);
            event_emit(sink, &evs[k]);
        }
        *events += n;
        free(evs);
    }
    return 0;
}

int demo_keys(struct db *db, const char *secret, const char *path, const char *owners[DEMO_OWNERS],
              char keys[DEMO_OWNERS][64], int *n)
{
    static const char *const names[DEMO_OWNERS] = {"alice", "bob"};
    char *old = NULL, *text = NULL;
    size_t len = 0;
    int rc = 0, changed = 0;
    fsutil_read_file(path, 4096, &old, &len); /* absent: all keys are made */
    *n = 0;
    for (int i = 0; rc == 0 && i < DEMO_OWNERS; i++) {
        struct auth_principal who;
        const char *why;
        char bearer[80];
        owners[i] = names[i];
        keys[i][0] = '\0';
        /* Lines read "<owner> <key>". */
        for (char *line = old; line != NULL && *line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            size_t on = strlen(names[i]);
            if (strncmp(line, names[i], on) == 0 && line[on] == ' ' &&
                strcspn(line + on + 1, "\n") == AUTH_KEY_LEN &&
                auth_key_wellformed(line + on + 1, AUTH_KEY_LEN, NULL)) {
                memcpy(keys[i], line + on + 1, AUTH_KEY_LEN);
                keys[i][AUTH_KEY_LEN] = '\0';
            }
        }
        snprintf(bearer, sizeof(bearer), "Bearer %s", keys[i]);
        if (keys[i][0] == '\0' ||
            auth_check(db, secret, bearer, (int64_t)time(NULL), &who, &why) != AUTH_OK ||
            strcmp(who.owner, names[i]) != 0) {
            rc = auth_key_create(db, secret, names[i], AUTH_SCOPE_READ, 0, keys[i], NULL);
            changed = 1;
        }
        if (rc == 0)
            (*n)++;
    }
    if (rc == 0 && changed) {
        size_t cap = DEMO_OWNERS * 80;
        text = malloc(cap);
        if (text == NULL) {
            rc = PF_ENOMEM;
        } else {
            size_t off = 0;
            for (int i = 0; i < DEMO_OWNERS; i++)
                off += (size_t)snprintf(text + off, cap - off, "%s %s\n", names[i], keys[i]);
            rc = fsutil_write_atomic(path, text, off, 0600);
        }
    }
    free(old);
    free(text);
    return rc;
}
