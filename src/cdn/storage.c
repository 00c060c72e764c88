/* storage.c - see storage.h.
 *
 * Variant generation runs under one of STRIPES mutexes chosen by image id and
 * variant, so two concurrent first requests for the same variant generate it
 * once; requests for anything already published never take a lock.
 *
 * The hot-object cache. Policy: SIEVE (Zhang et al., NSDI'24): objects in
 * memory are on one list, newest at the head; a hit only sets the object's
 * `visited` bit (a relaxed atomic store, and only when it is clear, so a hot
 * object's cache line is not written on every hit); an insertion that needs
 * room moves a hand from the tail towards the head, clearing visited bits,
 * and evicts the first object whose bit is clear. The hand and the list are
 * touched only by insertions (misses), under cache_lock. On a Zipf trace
 * ten times the cache, SIEVE kept 7-10 points more hits than CLOCK or LRU
 * and 2 more than S3-FIFO (bench/cachesim.c, BENCHMARKS.md).
 *
 * Reclamation. A published object holds one reference, the cache's; each
 * reader takes one more and gives it back when its response is sent.
 * Eviction empties the slot (compare-exchange to NULL) and then drops the
 * cache's reference; the last reference frees the bytes. A reader's load
 * of the slot and its increment race with that: the object may reach zero
 * and be recycled between the two. Two rules make this safe without a lock
 * or per-thread epochs (MHD's threads, the pools' and the API's all read):
 * (1) the headers (struct obj_node) are type-stable: never given back to
 * malloc while the storage is open, only recycled through a free list, so
 * an increment never touches freed memory; (2) a reader increments only a
 * count that is not zero (compare-exchange), then loads the slot again and
 * keeps the object only if the slot still points to it (else gives it back
 * and retries). A count above zero that the reader holds keeps the object
 * from being recycled, so the object the slot names on the second load is
 * the one it counted. Epochs (QSBR) would need every reading thread to
 * announce quiescent points, which MHD's threads cannot do for us.
 *
 * Admission. An evicted object leaves a stand-in in its slot: the same
 * object served from disk (sendfile, on the event loop, as large objects
 * are). Its first request is sent from there and marks it; the next one
 * reads it into memory again (storage_take() answers NULL, the request
 * goes to a worker). So a miss on an object used once costs a sendfile,
 * not a read and a copy on a worker thread, and such objects do not
 * displace others (bench/cache.sh, 64 clients at once: more hits, and
 * more requests/s, than reading every miss in: BENCHMARKS.md).
 *
 * Memory: the object bytes on the list stay within the budget
 * (pixflare_cache_bytes). Beyond it: one header (~200 bytes + the path)
 * per object in memory or served from disk, stand-ins included (at most
 * one per image and variant ever served), the recycled headers (at most
 * the largest number alive at once), and objects already evicted but still
 * being sent (at most one per response in flight, each <= 1 MiB). */
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
    struct storage_obj obj; /* first: a published pointer is the node's */
    _Atomic unsigned refs;  /* 0: recycled (on the free list) */
    _Atomic unsigned char visited;
    struct storage *st;
    _Atomic(struct storage_obj *) *slot; /* where it is published */
    struct obj_node *prev, *next;        /* SIEVE list (cache_lock); victims */
    struct obj_node *free_next;          /* free list (list_lock) */
    struct obj_node *all;                /* every header made, freed at close */
};

struct storage {
    char *dir;
    size_t cache_budget;
    pthread_mutex_t stripes[STRIPES];
    pthread_mutex_t list_lock; /* guards all, free */
    struct obj_node *all, *free;
    /* The SIEVE list of objects in memory, and the counts of it that the
     * gauges show (written under the lock, read without it). */
    pthread_mutex_t cache_lock;
    struct obj_node *head, *tail, *hand;
    _Atomic size_t cache_used;
    _Atomic size_t cache_objs;
    /* metrics: an answer from memory is a hit; one from the disk (too big
     * for memory) or read or made now is a miss. */
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
    pthread_mutex_init(&st->cache_lock, NULL);
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
    struct obj_node *n = st->all;
    while (n != NULL) {
        struct obj_node *next = n->all;
        free((void *)n->obj.data);
        free(n->obj.path);
        free(n);
        n = next;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&st->stripes[i]);
    pthread_mutex_destroy(&st->list_lock);
    pthread_mutex_destroy(&st->cache_lock);
    free(st->dir);
    free(st);
}

/* ---- References ---- */

/* A header from the free list, or a new one; zeroed but for its links. */
static struct obj_node *node_alloc(struct storage *st)
{
    pthread_mutex_lock(&st->list_lock);
    struct obj_node *n = st->free;
    if (n != NULL)
        st->free = n->free_next;
    pthread_mutex_unlock(&st->list_lock);
    if (n == NULL) {
        n = calloc(1, sizeof(*n));
        if (n == NULL)
            return NULL;
        pthread_mutex_lock(&st->list_lock);
        n->all = st->all;
        st->all = n;
        pthread_mutex_unlock(&st->list_lock);
    }
    /* refs stays 0 (a stale reader cannot take it) until the node is
     * filled and its count set, just before it is published. */
    memset(&n->obj, 0, sizeof(n->obj));
    atomic_store_explicit(&n->visited, 0, memory_order_relaxed);
    n->st = st;
    n->slot = NULL;
    n->prev = n->next = NULL;
    return n;
}

/* The last reference is gone: free the bytes, recycle the header. */
static void node_recycle(struct obj_node *n)
{
    struct storage *st = n->st;
    free((void *)n->obj.data);
    free(n->obj.path);
    n->obj.data = NULL;
    n->obj.path = NULL;
    pthread_mutex_lock(&st->list_lock);
    n->free_next = st->free;
    st->free = n;
    pthread_mutex_unlock(&st->list_lock);
}

void storage_release(const struct storage_obj *obj)
{
    struct obj_node *n = (struct obj_node *)obj;
    /* acq_rel: every reader's use of the object happens before its free. */
    if (n != NULL && atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) == 1)
        node_recycle(n);
}

/* A reference to the object in *slot, or NULL (see the top of the file). */
static struct obj_node *take(_Atomic(struct storage_obj *) *slot)
{
    for (;;) {
        struct storage_obj *o = atomic_load_explicit(slot, memory_order_acquire);
        if (o == NULL)
            return NULL;
        struct obj_node *n = (struct obj_node *)o;
        unsigned r = atomic_load_explicit(&n->refs, memory_order_relaxed);
        while (r != 0 && !atomic_compare_exchange_weak_explicit(
                             &n->refs, &r, r + 1, memory_order_acquire, memory_order_relaxed))
            ;
        /* Zero: evicted and freed since the load; the slot has changed. */
        if (r != 0) {
            if (atomic_load_explicit(slot, memory_order_acquire) == o)
                return n;
            storage_release(o); /* evicted, maybe recycled: not ours */
        }
    }
}

/* Whether n is a small object served from disk that memory could hold: an
 * evicted object's stand-in (see evict_one()). */
static int admissible(const struct storage *st, const struct obj_node *n)
{
    return n->obj.data == NULL && n->obj.size <= MEM_OBJ_MAX && n->obj.size <= st->cache_budget;
}

const struct storage_obj *storage_take(struct storage *st, _Atomic(struct storage_obj *) *slot,
                                       int count)
{
    struct obj_node *n = take(slot);
    if (n == NULL || !count)
        return n != NULL ? &n->obj : NULL;
    if (n->obj.data != NULL) {
        metrics_inc(st->m_hits);
        /* Only a request's own look marks the object: the uncounted second
         * look of the request that read it in would make every new object
         * look reused. */
        if (!atomic_load_explicit(&n->visited, memory_order_relaxed))
            atomic_store_explicit(&n->visited, 1, memory_order_relaxed);
        return &n->obj;
    }
    /* An evicted object asked for again: read it in (the caller's
     * storage_get(), off the event loop); asked for once, send it from disk
     * and remember the request. Objects used once do not displace others. */
    if (admissible(st, n)) {
        if (atomic_load_explicit(&n->visited, memory_order_relaxed)) {
            storage_release(&n->obj);
            return NULL;
        }
        atomic_store_explicit(&n->visited, 1, memory_order_relaxed);
    }
    metrics_inc(st->m_misses);
    return &n->obj;
}

/* ---- SIEVE, under cache_lock ---- */

/* Unlink the object the hand finds, put a stand-in in its slot and chain it
 * on *victims (through next) for the caller to release once the lock is
 * dropped. */
static void evict_one(struct storage *st, struct obj_node **victims)
{
    struct obj_node *h = st->hand != NULL ? st->hand : st->tail;
    while (atomic_load_explicit(&h->visited, memory_order_relaxed)) {
        atomic_store_explicit(&h->visited, 0, memory_order_relaxed);
        h = h->prev != NULL ? h->prev : st->tail;
    }
    st->hand = h->prev;
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        st->head = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    else
        st->tail = h->prev;
    /* Its slot gets a stand-in that sends the file from disk (or NULL if
     * none can be made): a request for an evicted object costs a sendfile,
     * not a read into memory on a worker thread, until it is asked for
     * again (storage_take()). Only the cache writes a slot that holds an
     * object, under this lock or its stripe's with the slot empty. */
    struct obj_node *standin = node_alloc(st);
    if (standin != NULL) {
        standin->obj = h->obj;
        standin->obj.data = NULL;
        standin->obj.path = strdup(h->obj.path);
        if (standin->obj.path == NULL) {
            node_recycle(standin);
            standin = NULL;
        } else {
            standin->slot = h->slot;
            atomic_store_explicit(&standin->refs, 1, memory_order_relaxed);
        }
    }
    struct storage_obj *expect = &h->obj;
    atomic_compare_exchange_strong_explicit(h->slot, &expect, standin ? &standin->obj : NULL,
                                            memory_order_release, memory_order_relaxed);
    atomic_store_explicit(&st->cache_used,
                          atomic_load_explicit(&st->cache_used, memory_order_relaxed) -
                              (size_t)h->obj.size,
                          memory_order_relaxed);
    atomic_fetch_sub_explicit(&st->cache_objs, 1, memory_order_relaxed);
    metrics_inc(st->m_evictions);
    h->next = *victims;
    *victims = h;
}

/* Publish n in its slot: on the list if it holds its bytes in memory,
 * evicting what it takes to fit. The caller holds a reference besides the
 * cache's. */
static void publish(struct storage *st, struct obj_node *n)
{
    struct obj_node *victims = NULL;
    struct storage_obj *old = NULL;
    atomic_store_explicit(&n->refs, 2, memory_order_relaxed);
    if (n->obj.data == NULL) {
        old = atomic_exchange_explicit(n->slot, &n->obj, memory_order_acq_rel);
        storage_release(old); /* a stand-in replaced: the cache's reference */
        return;
    }
    size_t size = (size_t)n->obj.size;
    pthread_mutex_lock(&st->cache_lock);
    while (st->tail != NULL &&
           atomic_load_explicit(&st->cache_used, memory_order_relaxed) + size > st->cache_budget)
        evict_one(st, &victims);
    n->next = st->head;
    if (st->head != NULL)
        st->head->prev = n;
    st->head = n;
    if (st->tail == NULL)
        st->tail = n;
    atomic_store_explicit(&st->cache_used,
                          atomic_load_explicit(&st->cache_used, memory_order_relaxed) + size,
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&st->cache_objs, 1, memory_order_relaxed);
    old = atomic_exchange_explicit(n->slot, &n->obj, memory_order_acq_rel);
    pthread_mutex_unlock(&st->cache_lock);
    storage_release(old);
    while (victims != NULL) {
        struct obj_node *v = victims;
        victims = v->next;
        storage_release(&v->obj);
    }
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

/* Describe the file at `path`, reading it into memory when the cache can
 * hold it. OUT: *out, not yet published (refs 0). */
static int make_obj(struct storage *st, const struct storage_ref *ref, const char *path,
                    struct obj_node **out)
{
    struct stat sb;
    char *data = NULL;
    size_t len = 0;
    int rc = 0;
    if (stat(path, &sb) != 0)
        return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
    struct obj_node *n = node_alloc(st);
    if (n == NULL)
        return PF_ENOMEM;
    n->obj.path = strdup(path);
    if (n->obj.path == NULL) {
        rc = PF_ENOMEM;
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    if (size <= MEM_OBJ_MAX && size <= st->cache_budget) {
        rc = fsutil_read_file(path, MEM_OBJ_MAX, &data, &len);
        if (rc != 0 || len != size) {
            free(data);
            rc = rc != 0 ? rc : PF_EIO;
            goto done;
        }
    }
    n->obj.content_type = ref->content_type;
    n->obj.size = size;
    n->obj.data = (const unsigned char *)data;
    n->obj.mtime = ref->created_at;
    hdr_format_http_date(ref->created_at, n->obj.last_modified);
    *out = n;
    n = NULL;
done:
    if (n != NULL)
        node_recycle(n);
    return rc;
}

int storage_get(struct storage *st, const struct storage_ref *ref, int variant,
                _Atomic(struct storage_obj *) *slot, const struct storage_obj **out)
{
    const struct storage_obj *obj = storage_take(st, slot, 1);
    if (obj != NULL) {
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
    /* Only this stripe publishes in the slot: once it is checked empty here,
     * it stays empty until publish() (eviction only empties slots). */
    struct obj_node *n = take(slot);
    if (n != NULL && admissible(st, n)) {
        storage_release(&n->obj); /* a stand-in: read the file in */
        n = NULL;
    } else if (n != NULL) {
        /* Read in by a request that came just before: a reuse, as a hit is
         * (else a hot object's coalesced misses leave it looking unused). */
        if (n->obj.data != NULL)
            atomic_store_explicit(&n->visited, 1, memory_order_relaxed);
        goto done;
    }
    if (v->mode != VARIANT_ORIGINAL && access(path, F_OK) != 0) {
        if (access(src, F_OK) != 0) {
            rc = PF_ENOTFOUND;
            goto done;
        }
        rc = generate(st, ref, v, src, path);
        if (rc != 0)
            goto done;
    }
    rc = make_obj(st, ref, path, &n);
    if (rc != 0) {
        if (rc != PF_ENOTFOUND)
            fprintf(stderr, "pixflare: cannot read %s: %s\n", path, err_str(rc));
        goto done;
    }
    snprintf(n->obj.etag, sizeof(n->obj.etag), "\"%.16s-%s\"", ref->sha256, v->name);
    n->slot = slot;
    publish(st, n);
done:
    pthread_mutex_unlock(lock);
    if (rc == 0)
        *out = &n->obj;
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
