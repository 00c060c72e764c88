/* demo.c - see demo.h. Each image is a colour gradient with a few discs, so
 * variants and crops are easy to tell apart by eye. Drawing is deterministic:
 * a second run produces the same bytes, which import recognises. */
#include "demo.h"

#include "err.h"
#include "fsutil.h"
#include "import.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
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
        int rc = fs_mkdirs(path, 0755);
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
