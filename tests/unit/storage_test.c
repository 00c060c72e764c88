/* storage_test.c - the storage directory: an id is claimed exclusively, so a
 * clashing id can never overwrite another image's original; and the sweep
 * removes old temporaries that killed writers left, nothing else. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fsutil.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_claimed_exclusively),
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_sweep_temps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
