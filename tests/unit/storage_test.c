/* storage_test.c - the storage directory: an id is claimed exclusively, so a
 * clashing id can never overwrite another image's original; the sweep
 * removes old temporaries that killed writers left, nothing else; and the
 * hot-object cache evicts within its budget, never frees an object a
 * reader holds, and survives many threads hitting and missing at once
 * (run under ASan and TSan). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fsutil.h"
#include "base/metrics.h"
#include "base/variant.h"
#include "cdn/storage.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_id_claimed_exclusively(void **state)
{
    (void)state;
    char dir[] = "/tmp/pixflare-storage-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char a[256], b[256], stored[512];
    snprintf(a, sizeof(a), "%s/a.png", dir);
    snprintf(b, sizeof(b), "%s/b.png", dir);
    write_file(a, "first image");
    write_file(b, "second image");

    struct storage *st;
    assert_int_equal(storage_open(dir, 0, &st), 0);
    struct storage_ref ref = {"abc123", "00", "image/png", 0};
    assert_int_equal(storage_put_original(st, &ref, a), 0);
    assert_int_equal(storage_put_original(st, &ref, b), PF_EEXISTS);

    char *data = NULL;
    size_t len = 0;
    snprintf(stored, sizeof(stored), "%s/ab/abc123/original.png", dir);
    assert_int_equal(fsutil_read_file(stored, 1024, &data, &len), 0);
    assert_string_equal(data, "first image");
    free(data);

    assert_int_equal(storage_remove(st, &ref), 0);
    assert_int_not_equal(access(stored, F_OK), 0);
    assert_int_equal(storage_put_original(st, &ref, b), 0); /* free again */
    assert_int_equal(storage_remove(st, &ref), 0);
    storage_close(st);

    struct storage_ref gif = {"zz0000", "00", "image/tiff", 0};
    assert_int_equal(storage_open(dir, 0, &st), 0);
    assert_int_equal(storage_put_original(st, &gif, a), PF_EFORMAT);
    storage_close(st);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_sniff(void **state)
{
    (void)state;
    const char *t = NULL;
    assert_int_equal(storage_sniff((const unsigned char *)"\xff\xd8\xff\xe0", 4, &t), 0);
    assert_string_equal(t, "image/jpeg");
    assert_int_equal(storage_sniff((const unsigned char *)"\x89PNG\r\n\x1a\n", 8, &t), 0);
    assert_string_equal(t, "image/png");
    assert_int_equal(storage_sniff((const unsigned char *)"RIFF\0\0\0\0WEBP", 12, &t), 0);
    assert_string_equal(t, "image/webp");
    assert_int_equal(storage_sniff((const unsigned char *)"GIF89a", 6, &t), 0);
    assert_string_equal(t, "image/gif");
    assert_int_equal(storage_sniff((const unsigned char *)"<svg", 4, &t), PF_EFORMAT);
    assert_int_equal(storage_sniff((const unsigned char *)"\xff\xd8", 2, &t), PF_EFORMAT);
}

/* Write `path`; `age` seconds old (by its modification time). */
static void file_aged(const char *path, int age)
{
    write_file(path, "partial");
    struct timespec t[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void test_sweep_temps(void **state)
{
    (void)state;
    char dir[] = "/tmp/pixflare-sweep-XXXXXX", p[256], cmd[300];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/ab/abc123", dir);
    assert_int_equal(fsutil_mkdirs(p, 0755), 0);
    const char *keep[] = {"ab/abc123/original.png", "ab/abc123/w512.png",
                          "ab/abc123/w256.png.tmp.0123456789abcdef", /* being written */
                          "ab/abc123/thumb.png.tmp.notours", "ab/notes.tmp.0123456789abcdef.x"};
    const char *gone[] = {"ab/abc123/w1024.png.tmp.0123456789abcdef", /* a killed writer's */
                          "ab/abc123/original.png.tmp.AbC123"};       /* an older version's */
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, keep[i]);
        file_aged(p, i == 2 ? 60 : 7200);
    }
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, gone[i]);
        file_aged(p, 7200);
    }
    uint64_t removed = 0;
    assert_int_equal(storage_sweep_temps(dir, 3600, NULL, &removed), 0);
    assert_int_equal(removed, 2);
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, keep[i]);
        assert_int_equal(access(p, F_OK), 0);
    }
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, gone[i]);
        assert_int_not_equal(access(p, F_OK), 0);
    }
    /* Stopping gives up at once; a missing directory has nothing to sweep. */
    atomic_int stop = 1;
    assert_int_equal(storage_sweep_temps(dir, 3600, &stop, &removed), PF_ECONFLICT);
    snprintf(p, sizeof(p), "%s/none", dir);
    assert_int_equal(storage_sweep_temps(p, 3600, NULL, &removed), 0);
    assert_int_equal(removed, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- The hot-object cache ---- */

#define NIMG 64
#define IMG_SIZE 4096 /* budget 16 KiB: four objects in memory */

struct cache_fixture {
    char dir[64];
    struct storage *st;
    char ids[NIMG][8];
    struct storage_ref refs[NIMG];
    _Atomic(struct storage_obj *) slots[NIMG];
};

/* NIMG originals of IMG_SIZE bytes; image i's bytes are all 'A' + i % 50
 * after a PNG signature, so a reader can tell whose bytes it holds. */
static void cache_setup(struct cache_fixture *f, size_t budget)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/pixflare-cache-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(storage_open(f->dir, budget, &f->st), 0);
    char src[128];
    snprintf(src, sizeof(src), "%s/src.png", f->dir);
    static char buf[IMG_SIZE];
    for (int i = 0; i < NIMG; i++) {
        memset(buf, 'A' + i % 50, sizeof(buf));
        memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
        FILE *fp = fopen(src, "w");
        assert_non_null(fp);
        assert_int_equal(fwrite(buf, 1, sizeof(buf), fp), sizeof(buf));
        fclose(fp);
        snprintf(f->ids[i], sizeof(f->ids[i]), "c%05d", i);
        f->refs[i] = (struct storage_ref){f->ids[i], "00", "image/png", 0};
        assert_int_equal(storage_put_original(f->st, &f->refs[i], src), 0);
        atomic_init(&f->slots[i], NULL);
    }
}

static void cache_teardown(struct cache_fixture *f)
{
    char cmd[128];
    storage_close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
}

static const struct storage_obj *cache_get(struct cache_fixture *f, int i)
{
    const struct storage_obj *o = NULL;
    assert_int_equal(storage_get(f->st, &f->refs[i], VARIANT_ORIGINAL_INDEX, &f->slots[i], &o), 0);
    return o;
}

/* Whether o holds image i's bytes, whole: in memory, or in the file it
 * names (an object served from disk, such as an evicted one's stand-in). */
static int holds(const struct storage_obj *o, int i)
{
    char *file = NULL;
    size_t len = 0;
    const unsigned char *d = o->data;
    if (d == NULL && (o->path == NULL || fsutil_read_file(o->path, 1 << 20, &file, &len) != 0 ||
                      len != IMG_SIZE)) {
        free(file);
        return 0;
    }
    if (d == NULL)
        d = (const unsigned char *)file;
    int ok = o->size == IMG_SIZE && memcmp(d, "\x89PNG", 4) == 0;
    for (size_t k = 8; ok && k < IMG_SIZE; k++)
        ok = d[k] == 'A' + i % 50;
    free(file);
    return ok;
}

/* How many slots hold an object in memory, and how many hold any. */
static int in_memory(struct cache_fixture *f, int *published)
{
    int n = 0;
    *published = 0;
    for (int i = 0; i < NIMG; i++) {
        const struct storage_obj *o = atomic_load(&f->slots[i]);
        *published += o != NULL;
        n += o != NULL && o->data != NULL;
    }
    return n;
}

/* A gauge's value in the exposition. */
static double gauge(const char *name)
{
    struct strbuf sb = {0};
    char key[64];
    assert_int_equal(metrics_render(&sb), 0);
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(sb.p, key);
    assert_non_null(p);
    double v = strtod(p + strlen(key), NULL);
    strbuf_free(&sb);
    return v;
}

static int evictions_id(void)
{
    return metrics_counter("pixflare_cache_evictions_total", "",
                           "Objects dropped from memory to make room.", 0);
}

static void test_cache_evicts_within_budget(void **state)
{
    (void)state;
    static struct cache_fixture f;
    cache_setup(&f, 4 * IMG_SIZE);
    uint64_t ev0 = metrics_value(evictions_id());
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < NIMG; i++) {
            const struct storage_obj *o = cache_get(&f, i);
            assert_true(holds(o, i));
            storage_release(o);
            assert_true(gauge("pixflare_cache_bytes") <= 4 * IMG_SIZE);
        }
    }
    /* Four stay in memory; every evicted one left a stand-in sending its
     * file from disk. Asked for once more, an evicted object is sent from
     * disk; asked for again, it is read in (the third round). */
    int published = 0;
    assert_int_equal(in_memory(&f, &published), 4);
    assert_int_equal(published, NIMG);
    assert_int_equal((int)gauge("pixflare_cache_objects"), 4);
    assert_int_equal((int)gauge("pixflare_cache_bytes"), 4 * IMG_SIZE);
    assert_int_equal(metrics_value(evictions_id()) - ev0, 2 * (NIMG - 4));
    cache_teardown(&f);

    /* SIEVE: an object hit since it came in survives a scan of new ones. */
    cache_setup(&f, 4 * IMG_SIZE);
    for (int i = 0; i < 4; i++)
        storage_release(cache_get(&f, i));
    const struct storage_obj *o = storage_take(f.st, &f.slots[0], 1);
    assert_non_null(o); /* a hit: visited */
    storage_release(o);
    for (int i = 4; i < 7; i++)
        storage_release(cache_get(&f, i));
    assert_non_null(atomic_load(&f.slots[0])->data);
    for (int i = 1; i < 4; i++)
        assert_null(atomic_load(&f.slots[i])->data);
    cache_teardown(&f);
}

static void test_cache_reader_keeps_object(void **state)
{
    (void)state;
    static struct cache_fixture f;
    cache_setup(&f, 2 * IMG_SIZE);
    const struct storage_obj *held = cache_get(&f, 7);
    const struct storage_obj *held2 = storage_take(f.st, &f.slots[7], 1);
    assert_ptr_equal(held, held2);
    assert_non_null(held->data);
    for (int i = 8; i < 20; i++) /* evicts image 7 from memory */
        storage_release(cache_get(&f, i));
    const struct storage_obj *stub = atomic_load(&f.slots[7]);
    assert_ptr_not_equal(stub, held);
    assert_null(stub->data);
    /* Asked for once: sent from disk; again: to be read in (NULL). */
    const struct storage_obj *o = storage_take(f.st, &f.slots[7], 1);
    assert_ptr_equal(o, stub);
    assert_true(holds(o, 7));
    storage_release(o);
    assert_null(storage_take(f.st, &f.slots[7], 1));
    assert_true(holds(held, 7)); /* still whole: ASan would see a free */
    storage_release(held);
    assert_true(holds(held2, 7));
    storage_release(held2);
    /* Read in again, into a recycled or new header. */
    const struct storage_obj *again = cache_get(&f, 7);
    assert_non_null(again->data);
    assert_true(holds(again, 7));
    storage_release(again);
    assert_true(gauge("pixflare_cache_bytes") <= 2 * IMG_SIZE);

    /* A budget smaller than an object: served from disk, kept published. */
    static struct cache_fixture g;
    cache_setup(&g, IMG_SIZE - 1);
    const struct storage_obj *d = cache_get(&g, 3);
    assert_null(d->data);
    assert_non_null(d->path);
    storage_release(d);
    assert_ptr_equal(atomic_load(&g.slots[3]), d);
    d = storage_take(g.st, &g.slots[3], 1);
    storage_release(d);
    assert_ptr_equal(storage_take(g.st, &g.slots[3], 1), d); /* never read in */
    storage_release(d);
    cache_teardown(&g);
    cache_teardown(&f);
}

struct hammer {
    struct cache_fixture *f;
    unsigned seed;
    long bad;
};

/* Many gets and takes over a working set 16 times the cache, holding a
 * few objects at once, as responses being sent do. */
static void *hammer(void *arg)
{
    struct hammer *h = arg;
    const struct storage_obj *held[4] = {NULL, NULL, NULL, NULL};
    int held_id[4] = {0, 0, 0, 0};
    for (int n = 0; n < 20000; n++) {
        h->seed = h->seed * 1103515245u + 12345u;
        unsigned r = h->seed >> 8;
        /* Skewed: half the requests go to an eighth of the images. */
        int i = (int)(r % 2 ? r / 2 % (NIMG / 8) : r / 2 % NIMG);
        int k = n % 4;
        if (held[k] != NULL) {
            h->bad += !holds(held[k], held_id[k]);
            storage_release(held[k]);
        }
        const struct storage_obj *o = storage_take(h->f->st, &h->f->slots[i], 1);
        if (o == NULL &&
            storage_get(h->f->st, &h->f->refs[i], VARIANT_ORIGINAL_INDEX, &h->f->slots[i], &o) != 0)
            h->bad++;
        held[k] = o;
        held_id[k] = i;
    }
    for (int k = 0; k < 4; k++) {
        if (held[k] != NULL) {
            h->bad += !holds(held[k], held_id[k]);
            storage_release(held[k]);
        }
    }
    return NULL;
}

static void test_cache_threads(void **state)
{
    (void)state;
    static struct cache_fixture f;
    cache_setup(&f, 4 * IMG_SIZE);
    uint64_t ev0 = metrics_value(evictions_id());
    enum { THREADS = 6 };
    pthread_t t[THREADS];
    struct hammer h[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (struct hammer){&f, (unsigned)i * 7919u + 1u, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &h[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(h[i].bad, 0);
    }
    assert_true(metrics_value(evictions_id()) > ev0);
    assert_true(gauge("pixflare_cache_bytes") <= 4 * IMG_SIZE);
    int published = 0;
    assert_int_equal(in_memory(&f, &published), (int)gauge("pixflare_cache_objects"));
    cache_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_claimed_exclusively),
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_sweep_temps),
        cmocka_unit_test(test_cache_evicts_within_budget),
        cmocka_unit_test(test_cache_reader_keeps_object),
        cmocka_unit_test(test_cache_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
