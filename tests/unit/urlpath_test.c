/* urlpath_test.c - the CDN path parser: routes, decoding and refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cdn/urlpath.h"
#include "base/variant.h"

static int parse(const char *raw, struct urlpath *p)
{
    return urlpath_parse(raw, strlen(raw), p);
}

static void test_by_name(void **state)
{
    (void)state;
    struct urlpath p;
    assert_int_equal(parse("/alice/pics/dino.jpg", &p), 0);
    assert_int_equal(p.kind, URLPATH_BY_NAME);
    assert_string_equal(p.owner, "alice");
    assert_string_equal(p.album, "pics");
    assert_string_equal(p.filename, "dino.jpg");
    assert_int_equal(p.variant, VARIANT_ORIGINAL_INDEX);
    assert_int_equal(parse("/alice/pics/dino.jpg/og-image", &p), 0);
    assert_string_equal(variant_table[p.variant].name, "og-image");
}

static void test_by_id(void **state)
{
    (void)state;
    struct urlpath p;
    assert_int_equal(parse("/i/abc123/thumb", &p), 0);
    assert_int_equal(p.kind, URLPATH_BY_ID);
    assert_string_equal(p.id, "abc123");
    assert_string_equal(variant_table[p.variant].name, "thumb");
    assert_int_not_equal(parse("/i/ABC123", &p), 0);
    assert_int_equal(p.status, 404);
    assert_int_not_equal(parse("/i/abc12", &p), 0);
    assert_int_equal(p.status, 404);
}

static void test_decoding(void **state)
{
    (void)state;
    struct urlpath p;
    assert_int_equal(parse("/alice/pics/my%20photo%2Ejpg", &p), 0);
    assert_string_equal(p.filename, "my photo.jpg");
    assert_int_equal(parse("/alice/pics/caf%C3%A9.png", &p), 0);
    assert_string_equal(p.filename, "caf\xc3\xa9.png");
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        int status;
    } cases[] = {
        {"/alice/../etc/passwd", 400},
        {"/alice/%2e%2e/x/y", 400},
        {"/alice/%2E%2E/x/y", 400},
        {"/alice/pics/..", 400},
        {"/alice/./pics/x", 400},
        {"/a/b/c%00.jpg", 400},
        {"/a/b/c%2fd", 400},
        {"/a/b/c%5c..%5cd", 400},
        {"/a/b/c%zz", 400},
        {"/a/b/c%4", 400},
        {"/a/b/c%0a", 400},
        {"/a/b/c/w9", 400},
        {"/a/b/c/ORIGINAL", 400},
        {"/a/b", 404},
        {"/a/b/c/d/e", 404},
        {"/a//c", 404},
        {"/a/b/c/", 404},
        {"/", 404},
        {"/v2/x/y", 0},
        {"/_x/y/z", 404},
        {"/.well-known/a/b", 404},
        {"noslash", 400},
        {"/i", 404},
        {"/i/abc123/x/y", 404},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct urlpath p;
        int rc = parse(cases[i].path, &p);
        if (cases[i].status == 0) {
            assert_int_equal(rc, 0);
            continue;
        }
        if (rc == 0 || p.status != cases[i].status)
            fail_msg("%s: rc=%d status=%d, want %d", cases[i].path, rc, p.status, cases[i].status);
        assert_non_null(p.code);
        assert_non_null(p.message);
    }
}

static void test_lengths(void **state)
{
    (void)state;
    char buf[URLPATH_MAX + 64];
    struct urlpath p;
    memset(buf, 'a', sizeof(buf));
    buf[0] = '/';
    buf[URLPATH_MAX + 1] = '\0';
    assert_int_not_equal(parse(buf, &p), 0);
    assert_int_equal(p.status, 414);
    /* a 256-byte segment */
    memcpy(buf, "/a/b/", 5);
    memset(buf + 5, 'x', 256);
    buf[5 + 256] = '\0';
    assert_int_not_equal(parse(buf, &p), 0);
    assert_int_equal(p.status, 400);
    buf[5 + 255] = '\0';
    assert_int_equal(parse(buf, &p), 0);
}

static void test_server_routes(void **state)
{
    (void)state;
    struct urlpath p;
    assert_int_equal(parse("/healthz", &p), 0);
    assert_int_equal(p.kind, URLPATH_SERVER);
    assert_string_equal(p.route, "healthz");
    assert_int_equal(parse("/v1/analytics/overview", &p), 0);
    assert_int_equal(p.kind, URLPATH_SERVER);
    assert_int_equal(parse("/readyz", &p), 0);
    assert_int_equal(p.kind, URLPATH_SERVER);
    assert_true(urlpath_reserved_owner("readyz"));
    assert_true(urlpath_reserved_owner("healthz"));
    assert_true(urlpath_reserved_owner("dashboard"));
    assert_true(urlpath_reserved_owner(".git"));
    assert_true(urlpath_reserved_owner("_private"));
    assert_true(urlpath_reserved_owner("i"));
    assert_false(urlpath_reserved_owner("alice"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_name),  cmocka_unit_test(test_by_id),
        cmocka_unit_test(test_decoding), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_lengths),  cmocka_unit_test(test_server_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
