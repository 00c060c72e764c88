/* fsutil_test.c - durable writes: temporaries named uniquely and never
 * left behind, fsutil_write_new()'s first writer wins against processes
 * writing the same file at once (each reader sees one writer's whole
 * bytes), and the names a sweep takes for temporaries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fsutil.h"

/* Names in `dir` other than . and .. */
static int entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void remove_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void expect_file(const char *path, const char *want)
{
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(fsutil_read_file(path, 1 << 20, &data, &len), 0);
    assert_string_equal(data, want);
    free(data);
}

static void test_write_new_first_wins(void **state)
{
    (void)state;
    char dir[] = "/tmp/pixflare-fsutil-XXXXXX", p[256];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/w512.png", dir);
    assert_int_equal(fsutil_write_new(p, "first", 5, 0644), 0);
    assert_int_equal(fsutil_write_new(p, "second", 6, 0644), PF_EEXISTS);
    expect_file(p, "first");
    /* fsutil_write_atomic() replaces; neither leaves a temporary. */
    assert_int_equal(fsutil_write_atomic(p, "third", 5, 0600), 0);
    expect_file(p, "third");
    assert_int_equal(entries(dir), 1);
    remove_dir(dir);
}

#define WRITERS 6
#define FILES 40
#define SIZE (256 * 1024)

/* Processes write the same files at once, each its own bytes: every file
 * ends whole and one writer's, each writer told whether it won, one winner
 * per file, and no temporary left. */
static void test_concurrent_writers(void **state)
{
    (void)state;
    char dir[] = "/tmp/pixflare-fsutil-XXXXXX", p[256];
    int fds[WRITERS][2];
    assert_non_null(mkdtemp(dir));
    for (int w = 0; w < WRITERS; w++) {
        assert_int_equal(pipe(fds[w]), 0);
        if (fork() != 0)
            continue;
        char *buf = malloc(SIZE), won[FILES];
        int bad = buf == NULL;
        for (int f = 0; f < FILES && !bad; f++) {
            memset(buf, 'a' + w, SIZE);
            snprintf(p, sizeof(p), "%s/f%d", dir, f);
            int rc = fsutil_write_new(p, buf, SIZE, 0644);
            won[f] = rc == 0;
            bad = rc != 0 && rc != PF_EEXISTS;
        }
        bad = bad || write(fds[w][1], won, FILES) != FILES;
        _exit(bad);
    }
    int winners[FILES] = {0}, winner_of[FILES];
    for (int w = 0; w < WRITERS; w++) {
        char won[FILES];
        int st = 0;
        assert_int_equal(read(fds[w][0], won, FILES), FILES);
        assert_true(wait(&st) > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        for (int f = 0; f < FILES; f++)
            if (won[f]) {
                winners[f]++;
                winner_of[f] = w;
            }
        close(fds[w][0]);
        close(fds[w][1]);
    }
    for (int f = 0; f < FILES; f++) {
        char *data = NULL;
        size_t len = 0;
        assert_int_equal(winners[f], 1);
        snprintf(p, sizeof(p), "%s/f%d", dir, f);
        assert_int_equal(fsutil_read_file(p, SIZE, &data, &len), 0);
        assert_int_equal(len, SIZE);
        for (size_t i = 0; i < len; i++)
            if (data[i] != 'a' + winner_of[f])
                fail_msg("f%d: byte %zu is '%c', not the winner's '%c'", f, i, data[i],
                         'a' + winner_of[f]);
        free(data);
    }
    assert_int_equal(entries(dir), FILES);
    remove_dir(dir);
}

static void test_temp_names(void **state)
{
    (void)state;
    assert_true(fsutil_is_temp("w512.png.tmp.0123456789abcdef"));
    assert_true(fsutil_is_temp("/s/ab/abc123/w512.png.tmp.0123456789abcdef"));
    assert_true(fsutil_is_temp("original.jpg.tmp.Ab3xYz")); /* mkstemp's, before */
    assert_false(fsutil_is_temp("w512.png"));
    assert_false(fsutil_is_temp(".tmp.0123456789abcdef"));
    assert_false(fsutil_is_temp("w512.png.tmp.0123456789ABCDEF"));
    assert_false(fsutil_is_temp("w512.png.tmp.0123456789abcde"));
    assert_false(fsutil_is_temp("w512.png.tmp.Ab3x-z"));
    assert_false(fsutil_is_temp("a.tmp.0123456789abcdef/w512.png"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_new_first_wins),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_temp_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
