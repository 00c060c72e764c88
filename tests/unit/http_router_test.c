/* http_router_test.c - the router (http/http_router.h): a path goes to the
 * route of its raw first segment (exact bytes, no %-decoding, only the
 * first `len` bytes of the path), else to the default route, else to none;
 * the index a lookup gives names the same route in http_router_get(); a
 * segment or default registered twice is refused (PF_EEXISTS) and so is a
 * route past HTTP_ROUTER_MAX (PF_ERANGE), neither changing the routes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/err.h"
#include "http/http.h"
#include "http/http_router.h"

/* Each route is told apart by its ctx, which points at its tag. */
static int tag_v1, tag_dash, tag_cdn, tag_other;

static struct http_route route(const char *name, void *ctx)
{
    struct http_route r;
    memset(&r, 0, sizeof(r));
    r.name = name;
    r.ctx = ctx;
    return r;
}

static struct http_router *new_router(int with_default)
{
    struct http_router *r = NULL;
    assert_int_equal(http_router_new(&r), 0);
    assert_non_null(r);
    struct http_route v1 = route("api", &tag_v1), dash = route("dashboard", &tag_dash),
                      cdn = route("cdn", &tag_cdn);
    assert_int_equal(http_router_add(r, "v1", &v1), 0);
    if (with_default)
        assert_int_equal(http_router_add(r, NULL, &cdn), 0);
    assert_int_equal(http_router_add(r, "dashboard", &dash), 0);
    return r;
}

/* Look `path` up (its first `len` bytes) and check the route found is the
 * one tagged `want` (NULL: none), and that its index round-trips. */
static void expect_route(const struct http_router *r, const char *path, size_t len, void *want)
{
    int index = -1;
    const struct http_route *got = http_router_find(r, path, len, &index);
    if (want == NULL) {
        if (got != NULL)
            fail_msg("'%.*s': expected no route, got %s", (int)len, path, got->name);
        assert_null(http_router_get(r, index));
        return;
    }
    if (got == NULL)
        fail_msg("'%.*s': expected a route, got none", (int)len, path);
    if (got->ctx != want)
        fail_msg("'%.*s': went to %s", (int)len, path, got->name);
    assert_true(index >= 1 && index <= HTTP_ROUTER_MAX);
    const struct http_route *again = http_router_get(r, index);
    assert_non_null(again);
    assert_ptr_equal(again->ctx, want);
    assert_string_equal(again->name, got->name);
    /* The index is optional. */
    assert_ptr_equal(http_router_find(r, path, len, NULL), got);
}

static void expect(const struct http_router *r, const char *path, void *want)
{
    expect_route(r, path, strlen(path), want);
}

static void test_first_segment(void **state)
{
    (void)state;
    struct http_router *r = new_router(1);
    assert_int_equal(http_router_count(r), 3);

    expect(r, "/v1", &tag_v1);
    expect(r, "/v1/", &tag_v1);
    expect(r, "/v1/x", &tag_v1);
    expect(r, "/v1/analytics/overview", &tag_v1);
    expect(r, "/v1//", &tag_v1);
    expect(r, "/dashboard", &tag_dash);
    expect(r, "/dashboard/", &tag_dash);
    expect(r, "/dashboard/app.js", &tag_dash);

    /* Anything else is the default's: a longer or shorter segment, no
     * leading slash, an empty path or first segment, another case, or the
     * segment %-encoded (segments are raw bytes). */
    const char *others[] = {"/v1x",        "/v",    "/",       "",       "x",
                            "v1",          "/%761", "/V1",     "//v1",   "/dash",
                            "/dashboardx", "/x/v1", "/v1.png", "/v1%2F", "/ad/v1/x"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        expect(r, others[i], &tag_cdn);
    http_router_free(r);
}

/* Only the first `len` bytes of the path are looked at: the server's path
 * is not NUL-terminated. */
static void test_length_is_honoured(void **state)
{
    (void)state;
    struct http_router *r = new_router(1);
    expect_route(r, "/v1xyz", 3, &tag_v1);
    expect_route(r, "/v1/rest", 2, &tag_cdn); /* "/v" */
    expect_route(r, "/v1/rest", 4, &tag_v1);  /* "/v1/" */
    expect_route(r, "/v1/rest", 1, &tag_cdn); /* "/" */
    expect_route(r, "/v1/rest", 0, &tag_cdn); /* "" */
    expect_route(r, "/dashboardz", 10, &tag_dash);
    expect_route(r, "/dashboard", 9, &tag_cdn); /* "/dashboar" */
    /* A buffer with no NUL at all. */
    char buf[3] = {'/', 'v', '1'};
    expect_route(r, buf, sizeof(buf), &tag_v1);
    http_router_free(r);
}

static void test_no_default(void **state)
{
    (void)state;
    struct http_router *r = new_router(0);
    assert_int_equal(http_router_count(r), 2);
    expect(r, "/v1/x", &tag_v1);
    expect(r, "/dashboard/app.js", &tag_dash);
    expect(r, "/abc123/w256", NULL);
    expect(r, "/v1x", NULL);
    expect(r, "/", NULL);
    expect(r, "", NULL);
    expect(r, "x", NULL);
    http_router_free(r);
}

static void test_get_by_index(void **state)
{
    (void)state;
    struct http_router *r = new_router(1);
    int n = http_router_count(r);
    assert_int_equal(n, 3);
    /* Every index 1..n is a route, each a different one, and nothing lies
     * outside that range. */
    void *seen[3] = {NULL, NULL, NULL};
    for (int i = 1; i <= n; i++) {
        const struct http_route *rt = http_router_get(r, i);
        assert_non_null(rt);
        for (int k = 0; k < i - 1; k++)
            assert_ptr_not_equal(seen[k], rt->ctx);
        seen[i - 1] = rt->ctx;
    }
    assert_null(http_router_get(r, 0));
    assert_null(http_router_get(r, n + 1));
    assert_null(http_router_get(r, -1));
    /* The route is a copy: changing the caller's struct after add changes
     * nothing. */
    struct http_route other = route("other", &tag_other);
    assert_int_equal(http_router_add(r, "healthz", &other), 0);
    other.ctx = &tag_v1;
    other.name = "changed";
    const struct http_route *h = http_router_find(r, "/healthz", 8, NULL);
    assert_non_null(h);
    assert_ptr_equal(h->ctx, &tag_other);
    assert_string_equal(h->name, "other");
    http_router_free(r);
}

static void test_duplicates(void **state)
{
    (void)state;
    struct http_router *r = new_router(1);
    struct http_route other = route("other", &tag_other);
    /* The same segment from another string: compared by content. */
    char v1[] = "v1";
    assert_int_equal(http_router_add(r, v1, &other), PF_EEXISTS);
    assert_int_equal(http_router_add(r, "dashboard", &other), PF_EEXISTS);
    assert_int_equal(http_router_add(r, NULL, &other), PF_EEXISTS);
    assert_int_equal(http_router_count(r), 3);
    /* The routes registered first still answer. */
    expect(r, "/v1", &tag_v1);
    expect(r, "/dashboard", &tag_dash);
    expect(r, "/anything", &tag_cdn);
    http_router_free(r);
}

static void test_full(void **state)
{
    (void)state;
    static const char *const segs[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    static int tags[HTTP_ROUTER_MAX + 1];
    struct http_router *r = NULL;
    assert_int_equal(http_router_new(&r), 0);
    /* The default counts as one of the HTTP_ROUTER_MAX. */
    struct http_route def = route("cdn", &tag_cdn);
    assert_int_equal(http_router_add(r, NULL, &def), 0);
    for (int i = 0; i < HTTP_ROUTER_MAX - 1; i++) {
        struct http_route rt = route(segs[i], &tags[i]);
        assert_int_equal(http_router_add(r, segs[i], &rt), 0);
    }
    assert_int_equal(http_router_count(r), HTTP_ROUTER_MAX);
    struct http_route extra = route("extra", &tags[HTTP_ROUTER_MAX]);
    assert_int_equal(http_router_add(r, "zzz", &extra), PF_ERANGE);
    assert_int_equal(http_router_count(r), HTTP_ROUTER_MAX);
    expect(r, "/zzz", &tag_cdn);
    /* Every registered route is still found, each at its own index. */
    for (int i = 0; i < HTTP_ROUTER_MAX - 1; i++) {
        char path[4] = {'/', segs[i][0], '/', 'x'};
        expect_route(r, path, 2, &tags[i]);
        expect_route(r, path, 4, &tags[i]);
    }
    http_router_free(r);

    /* Without a default, still HTTP_ROUTER_MAX segments and no more. */
    assert_int_equal(http_router_new(&r), 0);
    for (int i = 0; i < HTTP_ROUTER_MAX + 1; i++) {
        struct http_route rt = route(segs[i], &tags[i]);
        assert_int_equal(http_router_add(r, segs[i], &rt), i < HTTP_ROUTER_MAX ? 0 : PF_ERANGE);
    }
    assert_int_equal(http_router_count(r), HTTP_ROUTER_MAX);
    expect(r, "/g", &tags[HTTP_ROUTER_MAX - 1]);
    expect(r, "/h", NULL);
    http_router_free(r);
}

static void test_empty_router(void **state)
{
    (void)state;
    struct http_router *r = NULL;
    assert_int_equal(http_router_new(&r), 0);
    assert_int_equal(http_router_count(r), 0);
    expect(r, "/v1", NULL);
    expect(r, "", NULL);
    assert_null(http_router_get(r, 1));
    http_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_segment), cmocka_unit_test(test_length_is_honoured),
        cmocka_unit_test(test_no_default),    cmocka_unit_test(test_get_by_index),
        cmocka_unit_test(test_duplicates),    cmocka_unit_test(test_full),
        cmocka_unit_test(test_empty_router),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
