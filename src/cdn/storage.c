/* storage.c - see storage.h.
 *
 * Variant generation runs under one of STRIPES mutexes chosen by image id and
 * variant, so two concurrent first requests for the same variant generate it
 * once; requests for anything already published never take a lock. */
#include "cdn/storage.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/metrics.h"
#include "base/timeutil.h"
#include "base/variant.h"
#include "http/hdr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vips/vips.h>
#include <vips/vector.h> /* vips_vector_set_enabled(); not in vips.h */

#define STRIPES 64
/* Objects up to this size are kept in memory; larger ones go out with
 * sendfile(2), which is as fast as a copy from memory at that size. */
#define MEM_OBJ_MAX (1u << 20)

struct obj_node {
    struct storage_obj obj;
    struct obj_node *next;
};

struct storage {
    char *dir;
    size_t cache_budget;
    _Atomic size_t cache_used;
    pthread_mutex_t stripes[STRIPES];
    pthread_mutex_t list_lock; /* guards objs */
    struct obj_node *objs;     /* every object made, freed at close */
    _Atomic size_t cache_objs; /* objects held in memory */
    /* metrics: an answer from memory is a hit; one from the disk (too big
     * for memory, or over the budget) or made now is a miss. Nothing is
     * evicted yet: the budget, once full, sends the rest from disk. */
    int m_hits, m_misses, m_evictions, m_generated, m_failed, m_gen_time;
};

static void collect(void *ctx, struct metrics_out *out)
{
    struct storage *st = ctx;
    metrics_out_family(out, "pixflare_cache_objects", "gauge",
                       "Objects (originals and variants) held in memory.");
    metrics_out_sample(out, "pixflare_cache_objects", NULL,
                       (double)atomic_load_explicit(&st->cache_objs, memory_order_relaxed));
    metrics_out_family(out, "pixflare_cache_bytes", "gauge",
                       "Bytes of objects held in memory (PIXFLARE_CACHE_MB bounds them).");
    metrics_out_sample(out, "pixflare_cache_bytes", NULL,
                       (double)atomic_load_explicit(&st->cache_used, memory_order_relaxed));
}

static void register_metrics(struct storage *st)
{
    st->m_hits =
        metrics_counter("pixflare_cache_hits_total", "", "Objects answered from memory.", 0);
    st->m_misses = metrics_counter("pixflare_cache_misses_total", "",
                                   "Objects answered from disk, or read or made first.", 0);
    st->m_evictions = metrics_counter("pixflare_cache_evictions_total", "",
                                      "Objects dropped from memory to make room.", 0);
    st->m_generated =
        metrics_counter("pixflare_variant_generations_total", "", "Variants made with libvips.", 0);
    st->m_failed =
        metrics_counter("pixflare_variant_failures_total", "",
                        "Variants libvips could not make, or that could not be stored.", 0);
    st->m_gen_time = metrics_histogram("pixflare_variant_generation_duration_seconds", "",
                                       "Time to make and store one variant.",
                                       metrics_latency_bounds, metrics_latency_nbounds);
}

static const struct {
    const char *type, *ext, *save_suffix;
} formats[] = {
    {"image/jpeg", "jpg", ".jpg[Q=85,strip]"},
    {"image/png", "png", ".png[strip]"},
    {"image/webp", "webp", ".webp[Q=80,strip]"},
    {"image/gif", "gif", ".gif"},
};
#define FORMAT_COUNT (sizeof(formats) / sizeof(formats[0]))

const char *storage_ext(const char *content_type)
{
    for (size_t i = 0; i < FORMAT_COUNT; i++)
        if (strcmp(content_type, formats[i].type) == 0)
            return formats[i].ext;
    return NULL;
}

static const char *save_suffix(const char *content_type)
{
    for (size_t i = 0; i < FORMAT_COUNT; i++)
        if (strcmp(content_type, formats[i].type) == 0)
            return formats[i].save_suffix;
    return NULL;
}

int storage_sniff(const unsigned char *h, size_t len, const char **content_type)
{
    if (len >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff)
        *content_type = "image/jpeg";
    else if (len >= 8 && memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0)
        *content_type = "image/png";
    else if (len >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0)
        *content_type = "image/webp";
    else if (len >= 6 && (memcmp(h, "GIF87a", 6) == 0 || memcmp(h, "GIF89a", 6) == 0))
        *content_type = "image/gif";
    else
        return PF_EFORMAT;
    return 0;
}

int storage_vips_init(const char *argv0)
{
    if (VIPS_INIT(argv0) != 0)
        return PF_EIMAGE;
    /* Each variant is made once and then served from disk: libvips's
     * operation cache would only hold memory. */
    vips_cache_set_max(0);
    /* No ORC-compiled vector paths: Debian 12's liborc (0.4.33) frees and
     * merges its code memory without enough locking, and variants made on
     * several threads at once crashed in orc_code_free() (seen under ASan,
     * reported against libvips as a liborc race). The plain C paths make a
     * variant 10-30% slower, once per variant. */
    vips_vector_set_enabled(FALSE);
    return 0;
}

void storage_vips_shutdown(void)
{
    vips_shutdown();
}

int storage_probe(const char *path, int *width, int *height)
{
    VipsImage *img = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (img == NULL) {
        vips_error_clear();
        return PF_EFORMAT;
    }
    *width = vips_image_get_width(img);
    *height = vips_image_get_height(img);
    g_object_unref(img);
    return 0;
}

int storage_open(const char *dir, size_t cache_bytes, struct storage **out)
{
    struct storage *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return PF_ENOMEM;
    st->dir = strdup(dir);
    int rc = st->dir == NULL ? PF_ENOMEM : fsutil_mkdirs(dir, 0755);
    if (rc != 0) {
        free(st->dir);
        free(st);
        return rc;
    }
    st->cache_budget = cache_bytes;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&st->stripes[i], NULL);
    pthread_mutex_init(&st->list_lock, NULL);
    register_metrics(st);
    metrics_collector_add(collect, st); /* without it, only the two gauges are missing */
    *out = st;
    return 0;
}

void storage_close(struct storage *st)
{
    if (st == NULL)
        return;
    metrics_collector_remove(st);
    struct obj_node *n = st->objs;
    while (n != NULL) {
        struct obj_node *next = n->next;
        free((void *)n->obj.data);
        free(n->obj.path);
        free(n);
        n = next;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&st->stripes[i]);
    pthread_mutex_destroy(&st->list_lock);
    free(st->dir);
    free(st);
}

static int file_path(const struct storage *st, const struct storage_ref *ref, const char *name,
                     char out[PATH_MAX])
{
    const char *ext = storage_ext(ref->content_type);
    if (ext == NULL)
        return PF_EFORMAT;
    int n = snprintf(out, PATH_MAX, "%s/%.2s/%s/%s.%s", st->dir, ref->id, ref->id, name, ext);
    return n < 0 || n >= PATH_MAX ? PF_EINVAL : 0;
}

int storage_put_original(struct storage *st, const struct storage_ref *ref, const char *src)
{
    char path[PATH_MAX];
    int rc = file_path(st, ref, "original", path);
    if (rc != 0)
        return rc;
    /* Claim the id's directory with an exclusive mkdir: an id that is
     * already taken (a random clash) must never overwrite another image. */
    char *slash = strrchr(path, '/');
    *slash = '\0';
    char *shard = strrchr(path, '/');
    *shard = '\0';
    rc = fsutil_mkdirs(path, 0755);
    *shard = '/';
    if (rc == 0 && mkdir(path, 0755) != 0)
        rc = errno == EEXIST ? PF_EEXISTS : PF_EIO;
    *slash = '/';
    if (rc != 0)
        return rc;
    rc = fsutil_copy_atomic(src, path, 0644);
    if (rc != 0)
        storage_remove(st, ref);
    return rc;
}

int storage_remove(struct storage *st, const struct storage_ref *ref)
{
    char path[PATH_MAX];
    int rc = file_path(st, ref, "original", path);
    if (rc != 0)
        return rc;
    unlink(path);
    *strrchr(path, '/') = '\0';
    return rmdir(path) == 0 || errno == ENOENT ? 0 : PF_EIO;
}

/* Make the variant file at `dst` from the original at `src`. */
static int generate_file(const struct storage_ref *ref, const struct variant *v, const char *src,
                         const char *dst)
{
    VipsImage *out = NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc = PF_EIMAGE;
    int vrc;
    /* fail_on=error: a damaged original is refused rather than turned into
     * a garbage variant that would then be cached as immutable. */
    if (v->mode == VARIANT_WIDTH)
        vrc = vips_thumbnail(src, &out, v->width, "height", VIPS_MAX_COORD, "size", VIPS_SIZE_DOWN,
                             "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    else
        vrc = vips_thumbnail(src, &out, v->width, "height", v->height, "size", VIPS_SIZE_BOTH,
                             "crop", VIPS_INTERESTING_CENTRE, "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    /* The decode is lazy: writing the buffer is where most errors surface. */
    if (vrc == 0 &&
        vips_image_write_to_buffer(out, save_suffix(ref->content_type), &buf, &len, NULL) == 0) {
        /* Another node sharing the directory may have made the same
         * variant meanwhile: its file, whole, is the one served. */
        rc = fsutil_write_new(dst, buf, len, 0644);
        if (rc == PF_EEXISTS)
            rc = 0;
        else if (rc != 0)
            fprintf(stderr, "pixflare: cannot write variant %s: %s\n", dst, strerror(errno));
    } else {
        /* libvips's error buffer is shared by all threads: copy it out. */
        char *why = vips_error_buffer_copy();
        size_t n = why ? strlen(why) : 0;
        while (n > 0 && why[n - 1] == '\n')
            why[--n] = '\0';
        fprintf(stderr, "pixflare: cannot make variant %s of image %s: %s\n", v->name, ref->id,
                n > 0 ? why : "libvips failed");
        g_free(why);
    }
    g_free(buf);
    if (out != NULL)
        g_object_unref(out);
    return rc;
}

static int generate(struct storage *st, const struct storage_ref *ref, const struct variant *v,
                    const char *src, const char *dst)
{
    int64_t t0 = timeutil_mono_ns();
    int rc = generate_file(ref, v, src, dst);
    metrics_inc(rc == 0 ? st->m_generated : st->m_failed);
    if (rc == 0)
        metrics_observe_ns(st->m_gen_time, (uint64_t)(timeutil_mono_ns() - t0));
    return rc;
}

/* Describe the file at `path`, reading it into memory when it fits the
 * budget. OUT: *out, linked into st->objs. */
static int make_obj(struct storage *st, const struct storage_ref *ref, const char *path,
                    struct storage_obj **out)
{
    struct stat sb;
    struct obj_node *n = NULL;
    char *data = NULL;
    size_t len = 0;
    int rc = 0;
    if (stat(path, &sb) != 0)
        return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return PF_ENOMEM;
    n->obj.path = strdup(path);
    if (n->obj.path == NULL) {
        rc = PF_ENOMEM;
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    if (size <= MEM_OBJ_MAX && atomic_fetch_add(&st->cache_used, size) + size <= st->cache_budget) {
        rc = fsutil_read_file(path, MEM_OBJ_MAX, &data, &len);
        if (rc != 0 || len != size) {
            atomic_fetch_sub(&st->cache_used, size);
            free(data);
            data = NULL;
            rc = rc != 0 ? rc : PF_EIO;
            goto done;
        }
        atomic_fetch_add_explicit(&st->cache_objs, 1, memory_order_relaxed);
    } else if (size <= MEM_OBJ_MAX) {
        atomic_fetch_sub(&st->cache_used, size);
    }
    n->obj.content_type = ref->content_type;
    n->obj.size = size;
    n->obj.data = (const unsigned char *)data;
    n->obj.mtime = ref->created_at;
    hdr_format_http_date(ref->created_at, n->obj.last_modified);
    pthread_mutex_lock(&st->list_lock);
    n->next = st->objs;
    st->objs = n;
    pthread_mutex_unlock(&st->list_lock);
    *out = &n->obj;
    n = NULL;
done:
    if (n != NULL) {
        free(n->obj.path);
        free(n);
    }
    return rc;
}

int storage_get(struct storage *st, const struct storage_ref *ref, int variant,
                _Atomic(struct storage_obj *) *slot, const struct storage_obj **out)
{
    struct storage_obj *obj = atomic_load_explicit(slot, memory_order_acquire);
    if (obj != NULL) {
        metrics_inc(obj->data != NULL ? st->m_hits : st->m_misses);
        *out = obj;
        return 0;
    }
    metrics_inc(st->m_misses);
    const struct variant *v = &variant_table[variant];
    char src[PATH_MAX], path[PATH_MAX];
    int rc = file_path(st, ref, "original", src);
    if (rc == 0)
        rc = file_path(st, ref, v->name, path);
    if (rc != 0)
        return rc;
    unsigned h = (unsigned)variant;
    for (const char *p = ref->id; *p; p++)
        h = h * 31 + (unsigned char)*p;
    pthread_mutex_t *lock = &st->stripes[h % STRIPES];
    pthread_mutex_lock(lock);
    obj = atomic_load_explicit(slot, memory_order_acquire);
    if (obj != NULL)
        goto done;
    if (v->mode != VARIANT_ORIGINAL && access(path, F_OK) != 0) {
        if (access(src, F_OK) != 0) {
            rc = PF_ENOTFOUND;
            goto done;
        }
        rc = generate(st, ref, v, src, path);
        if (rc != 0)
            goto done;
    }
    rc = make_obj(st, ref, path, &obj);
    if (rc != 0) {
        if (rc != PF_ENOTFOUND)
            fprintf(stderr, "pixflare: cannot read %s: %s\n", path, err_str(rc));
        goto done;
    }
    snprintf(obj->etag, sizeof(obj->etag), "\"%.16s-%s\"", ref->sha256, v->name);
    atomic_store_explicit(slot, obj, memory_order_release);
done:
    pthread_mutex_unlock(lock);
    if (rc == 0)
        *out = obj;
    return rc;
}

/* ---- Sweeping temporaries ---- */

struct sweep {
    time_t before; /* remove what was last written before this */
    const atomic_int *stop;
    uint64_t removed;
};

/* Remove the old temporaries directly in `path`, and recurse into its
 * subdirectories while `depth` allows (the root, the shards, the images). */
static int sweep_dir(struct sweep *sw, const char *path, int depth)
{
    int rc = 0;
    if (sw->stop != NULL && atomic_load(sw->stop))
        return PF_ECONFLICT;
    DIR *d = opendir(path);
    if (d == NULL)
        return errno == ENOENT ? 0 : PF_EIO;
    for (struct dirent *e = readdir(d); e != NULL && rc == 0; e = readdir(d)) {
        char sub[PATH_MAX];
        struct stat sb;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int temp = fsutil_is_temp(e->d_name);
        if (!temp && (depth == 0 || e->d_type == DT_REG))
            continue; /* a real file, or as deep as the layout goes */
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* gone meanwhile: another node's sweep or its writer */
        if (temp && S_ISREG(sb.st_mode)) {
            if (sb.st_mtime < sw->before && unlinkat(dirfd(d), e->d_name, 0) == 0)
                sw->removed++;
        } else if (S_ISDIR(sb.st_mode) &&
                   snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) < (int)sizeof(sub)) {
            rc = sweep_dir(sw, sub, depth - 1);
        }
    }
    closedir(d);
    return rc;
}

int storage_sweep_temps(const char *dir, int64_t older_than, const atomic_int *stop,
                        uint64_t *removed)
{
    struct sweep sw = {time(NULL) - (time_t)older_than, stop, 0};
    int rc = sweep_dir(&sw, dir, 2);
    *removed = sw.removed;
    return rc;
}
