/* http_framing_test.c - the framing verdicts of http_framing.c, header by
 * header (the integration tests send the same requests on raw sockets). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http/http_framing.h"

/* The verdict on `target` with header lines "Name", "value", ..., NULL. */
static int verdict(const char *target, int http11, const char **code, ...)
{
    struct http_framing f;
    const char *msg = NULL;
    va_list ap;
    memset(&f, 0, sizeof(f));
    va_start(ap, code);
    for (const char *n = va_arg(ap, const char *); n != NULL; n = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        http_framing_add(&f, n, strlen(n), v, strlen(v));
    }
    va_end(ap);
    *code = NULL;
    int st = http_framing_check(&f, target, http11, code, &msg);
    assert_true(st == 0 || (*code != NULL && msg != NULL && msg[0] != '\0'));
    return st;
}

static void test_good(void **state)
{
    (void)state;
    const char *c;
    assert_int_equal(verdict("/a/b", 1, &c, "Host", "x", NULL), 0);
    assert_int_equal(verdict("/a", 1, &c, "Host", "x", "Content-Length", "5", NULL), 0);
    assert_int_equal(verdict("/a", 1, &c, "Host", "x", "Transfer-Encoding", "chunked", NULL), 0);
    assert_int_equal(verdict("/a", 1, &c, "Host", "x", "transfer-encoding", "CHUNKED", NULL), 0);
    assert_int_equal(verdict("/a", 0, &c, NULL), 0); /* HTTP/1.0: Host optional */
    assert_int_equal(verdict("http://h/a", 1, &c, "Host", "x", NULL), 0);
    assert_int_equal(verdict("HTTPS://h", 1, &c, "Host", "x", NULL), 0);
    assert_int_equal(verdict("/a", 1, &c, "Host", "", "X-Tab", "a\tb", "X-8", "caf\xc3\xa9", NULL),
                     0);
}

static void test_smuggling(void **state)
{
    (void)state;
    const char *c;
    assert_int_equal(verdict("/a", 1, &c, "Host", "x", "Content-Length", "5", "Transfer-Encoding",
                             "chunked", NULL),
                     400);
    assert_int_equal(
        verdict("/a", 1, &c, "Host", "x", "Content-Length", "0", "Content-Length", "0", NULL), 400);
    assert_string_equal(c, "BAD_REQUEST");
    const char *bad400[] = {"gzip",        "chunkedx", "chunked, gzip", "chunked ",
                            "chunked;x=1", "",         "chunked,"};
    for (size_t i = 0; i < sizeof(bad400) / sizeof(bad400[0]); i++)
        assert_int_equal(verdict("/a", 1, &c, "Host", "x", "Transfer-Encoding", bad400[i], NULL),
                         400);
    assert_int_equal(verdict("/a", 1, &c, "Host", "x", "Transfer-Encoding", "gzip, chunked", NULL),
                     501);
    assert_string_equal(c, "NOT_IMPLEMENTED");
    assert_int_equal(verdict("/a", 1, &c, "Host", "x", "Transfer-Encoding", "chunked",
                             "Transfer-Encoding", "chunked", NULL),
                     400);
}

static void test_names_values_targets_hosts(void **state)
{
    (void)state;
    const char *c;
    const char *names[] = {"X-A ", "X-A\t", "X A", "", " Host", "X:A", "X\"A"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_int_equal(verdict("/a", 1, &c, "Host", "x", names[i], "v", NULL), 400);
    const char *values[] = {"a\rb", "a\nb", "\x1b[31m", "a\x7f", "\x01"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        assert_int_equal(verdict("/a", 1, &c, "Host", "x", "X-A", values[i], NULL), 400);
    const char *targets[] = {"*", "h:80", "http://", "http:///a", "ftp://h/a", "a/b"};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
        assert_int_equal(verdict(targets[i], 1, &c, "Host", "x", NULL), 400);
    assert_int_equal(verdict("/a", 1, &c, NULL), 400);
    assert_int_equal(verdict("/a", 1, &c, "Host", "x", "host", "y", NULL), 400);
    assert_int_equal(verdict("/a", 0, &c, "Host", "x", "Host", "y", NULL), 400);
    /* A NUL in a value, when the value's length says so. */
    struct http_framing f;
    memset(&f, 0, sizeof(f));
    http_framing_add(&f, "X-A", 3, "a\0b", 3);
    assert_true(f.bad_value);
    assert_true(http_framing_target_ok("/a/b?c=d%20e", 12));
    assert_false(http_framing_target_ok("/a b", 4));
    assert_false(http_framing_target_ok("/a\x01", 3));
    assert_false(http_framing_target_ok("/a\0b", 4));
    assert_false(http_framing_target_ok("/a\x7f", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_names_values_targets_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
