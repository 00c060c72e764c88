/* ship_test.c - the shipper's state file (ship.c, whose top comment gives
 * its format): a valid one accepted, and rewritten with all it held; a
 * damaged one (a flipped byte, no sum line, cut short, a line that does not
 * parse) refused by ship_start() with PF_EFORMAT and a message naming it,
 * and left as it was. ship_start() gets a ClickHouse client of a port
 * nobody listens on: clickhouse_open() does not connect, and the shipping
 * thread's tries fail at once, so that ship_stop() returns at once too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "analytics/clickhouse.h"
#include "analytics/ship.h"
#include "base/err.h"
#include "base/timeutil.h"

#define DATASET "t"

/* ---- Helpers ------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void make_tmpdir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/pixflare-ship-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A state file's text with its sum line, as state_write() makes it. */
static char *with_sum(const char *body)
{
    size_t n = strlen(body);
    char *s = malloc(n + 32);
    assert_non_null(s);
    snprintf(s, n + 32, "%ssum %016" PRIx64 "\n", body, (uint64_t)XXH3_64bits(body, n));
    return s;
}

static void state_path(const char *dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/events", dir);
    assert_true(mkdir(out, 0755) == 0 || errno == EEXIST);
    snprintf(out, cap, "%s/events/%s", dir, DATASET);
    assert_true(mkdir(out, 0755) == 0 || errno == EEXIST);
    snprintf(out, cap, "%s/events/%s/ship.state", dir, DATASET);
}

static int start_ship(const char *dir, struct ship **out, char *err, size_t errlen)
{
    struct clickhouse *ch = NULL;
    char cerr[256] = "";
    assert_int_equal(
        clickhouse_open("http://127.0.0.1:1/", NULL, NULL, 2000, &ch, cerr, sizeof(cerr)), 0);
    struct ship_config cfg = {.data_dir = dir,
                              .dataset = DATASET,
                              .table = "events",
                              .nodes_table = "nodes",
                              .node = 0x1234,
                              .batch_ms = 50,
                              .log = NULL};
    err[0] = '\0';
    return ship_start(&cfg, ch, out, err, errlen);
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    return buf;
}

/* Whether text ends in a sum line that holds. */
static int sum_holds(const char *text)
{
    const char *sum = strstr(text, "\nsum ");
    uint64_t want = 0;
    return sum != NULL && sscanf(sum + 1, "sum %16" SCNx64, &want) == 1 &&
           want == (uint64_t)XXH3_64bits(text, (size_t)(sum + 1 - text));
}

static const char valid_body[] = "pixflare-ship 1\n"
                                 "node 0000000000001234\n"
                                 "next 7\n"
                                 "pending 5 20454 3 2\n"
                                 "range 00-00000000000000aa-000-000001 16 88\n"
                                 "range 00-00000000000000aa-001-000001 0 160\n"
                                 "cursor 20454 00-00000000000000aa-000-000001 16\n"
                                 "cursor 20453 23-00000000000000bb-000-000004 232\n";

static void test_state_valid(void **state)
{
    (void)state;
    char dir[64], path[512], err[1024];
    make_tmpdir(dir, sizeof(dir));
    struct ship *s = NULL;

    /* None yet: every segment from its start; one is written. */
    state_path(dir, path, sizeof(path));
    int64_t t = timeutil_mono_ms();
    assert_int_equal(start_ship(dir, &s, err, sizeof(err)), 0);
    ship_stop(s);
    size_t len;
    char *text = read_text(path, &len);
    assert_true(sum_holds(text));
    assert_non_null(strstr(text, "pixflare-ship 1\nnode 0000000000001234\nnext 1\n"));
    free(text);

    /* Written by hand, pending batch and cursors included: accepted, and
     * rewritten with all of it (ClickHouse could not be asked about the
     * batch), the next batch number skipped by one. */
    char *valid = with_sum(valid_body);
    write_bytes(path, valid, strlen(valid));
    assert_int_equal(start_ship(dir, &s, err, sizeof(err)), 0);
    struct ship_stats st;
    for (int i = 0; i < 1000; i++) { /* the thread's first try fails */
        ship_get_stats(s, &st);
        if (st.failures > 0)
            break;
        usleep(10 * 1000);
    }
    assert_int_equal(st.shipped, 0);
    assert_true(st.failures >= 1);
    assert_int_equal(st.down, 1);
    ship_stop(s);
    text = read_text(path, &len);
    assert_true(sum_holds(text));
    assert_non_null(strstr(text, "\nnext 8\n"));
    assert_non_null(strstr(text, "\npending 5 20454 3 2\n"
                                 "range 00-00000000000000aa-000-000001 16 88\n"
                                 "range 00-00000000000000aa-001-000001 0 160\n"));
    assert_non_null(strstr(text, "\ncursor 20454 00-00000000000000aa-000-000001 16\n"));
    assert_non_null(strstr(text, "\ncursor 20453 23-00000000000000bb-000-000004 232\n"));
    free(text);
    /* What it wrote it reads back. */
    assert_int_equal(start_ship(dir, &s, err, sizeof(err)), 0);
    ship_stop(s);
    print_message("    three starts and stops against an unreachable ClickHouse: %" PRId64 " ms\n",
                  timeutil_mono_ms() - t);
    free(valid);
    rm_tree(dir);
}

/* ship_start() refuses `text` (len bytes): PF_EFORMAT, a message naming
 * the file (and `why`, if not NULL), and the file left as it was. */
static void expect_refused(const char *dir, const char *path, const char *text, size_t len,
                           const char *why)
{
    struct ship *s = (struct ship *)1;
    char err[1024];
    write_bytes(path, text, len);
    int rc = start_ship(dir, &s, err, sizeof(err));
    if (rc != PF_EFORMAT)
        print_message("accepted (%d): [%.*s]\n", rc, (int)len, text);
    assert_int_equal(rc, PF_EFORMAT);
    assert_null(s);
    assert_non_null(strstr(err, path));
    if (why != NULL && strstr(err, why) == NULL)
        fail_msg("'%s' not in: %s", why, err);
    size_t got;
    char *now = read_text(path, &got);
    assert_int_equal(got, len);
    assert_memory_equal(now, text, len);
    free(now);
}

static void test_state_flipped(void **state)
{
    (void)state;
    char dir[64], path[512];
    make_tmpdir(dir, sizeof(dir));
    state_path(dir, path, sizeof(path));
    char *valid = with_sum(valid_body);
    size_t len = strlen(valid), body = strlen(valid_body);
    char *copy = malloc(len);
    assert_non_null(copy);
    /* Every byte before the sum line (each of the 8 bits in turn), and the
     * sum's digits (their lowest bit: flipping another may only change a hex
     * letter's case, the same number). */
    for (size_t i = 0; i < len - 1; i++) {
        memcpy(copy, valid, len);
        copy[i] ^= (char)(1 << (i < body ? i % 8 : 0));
        expect_refused(dir, path, copy, len, i < body + 4 ? "checksum" : NULL);
    }
    free(copy);
    free(valid);
    rm_tree(dir);
}

static void test_state_no_sum_or_truncated(void **state)
{
    (void)state;
    char dir[64], path[512];
    make_tmpdir(dir, sizeof(dir));
    state_path(dir, path, sizeof(path));
    char *valid = with_sum(valid_body);
    size_t len = strlen(valid);

    expect_refused(dir, path, valid_body, strlen(valid_body), "checksum");
    /* A sum line of no number, or of the sum of something else. */
    char buf[1024];
    snprintf(buf, sizeof(buf), "%ssum \n", valid_body);
    expect_refused(dir, path, buf, strlen(buf), "checksum");
    snprintf(buf, sizeof(buf), "%ssum %016" PRIx64 "\n", valid_body,
             (uint64_t)XXH3_64bits(valid_body, strlen(valid_body) - 1));
    expect_refused(dir, path, buf, strlen(buf), "checksum");
    /* Cut anywhere before its last byte (the final newline). */
    for (size_t n = 0; n + 1 < len; n++)
        expect_refused(dir, path, valid, n, "checksum");
    free(valid);
    rm_tree(dir);
}

static void test_state_bad_lines(void **state)
{
    (void)state;
    char dir[64], path[512];
    make_tmpdir(dir, sizeof(dir));
    state_path(dir, path, sizeof(path));
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"", "line 0"},
        {"pixflare-ship 2\nnext 1\n", "line 1"},
        {"pixflare-ship\nnext 1\n", "line 1"},
        {"next 1\n", "line 1"},
        {"pixflare-ship 1\nbogus 1\n", "line 2"},
        {"pixflare-ship 1\nnext 1\nrange 00-aa 0 72\n", "line 3"},
        {"pixflare-ship 1\nnext 1\npending 3 20454 1 2\nrange 00-aa 16 88\n", "line 4"},
        {"pixflare-ship 1\npending 3 20454 1 1\nrange 00-aa 88 16\n", "line 3"},
        {"pixflare-ship 1\npending 3 20454 1 1\nrange 00-AA 16 88\n", "line 3"},
        {"pixflare-ship 1\npending 3 20454 1 1\nrange ../x 16 88\n", "line 3"},
        {"pixflare-ship 1\npending 3 20454 1 1\nrange 00-aa 16\n", "line 3"},
        {"pixflare-ship 1\npending 3 20454 0 0\npending 4 20454 0 0\n", "line 3"},
        {"pixflare-ship 1\npending 3 20454 1 2000000\n", "line 2"},
        {"pixflare-ship 1\ncursor 20454 00-AA 16\n", "line 2"},
        {"pixflare-ship 1\ncursor 20454 0123456789012345678901234567890123456789abcdefgh 16\n",
         "line 2"},
        {"pixflare-ship 1\ncursor 20454 00-aa\n", "line 2"},
        {"pixflare-ship 1\ncursor x 00-aa 16\n", "line 2"},
        {"pixflare-ship 1\nnext x\n", "line 2"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *text = with_sum(bad[i].body);
        expect_refused(dir, path, text, strlen(text), bad[i].why);
        free(text);
    }
    rm_tree(dir);
}
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_valid),
        cmocka_unit_test(test_state_flipped),
        cmocka_unit_test(test_state_no_sum_or_truncated),
        cmocka_unit_test(test_state_bad_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
