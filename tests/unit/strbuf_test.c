/* strbuf_test.c - base/strbuf.h: appends keep the text NUL-terminated
 * across growth, printf appends, and free resets the buffer for reuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/strbuf.h"

static void test_appends_and_growth(void **state)
{
    (void)state;
    struct strbuf b = {0};
    strbuf_puts(&b, "a,");
    strbuf_put(&b, "bcdef", 2);
    strbuf_printf(&b, "-%d-%s", 42, "x");
    assert_string_equal(b.p, "a,bc-42-x");
    assert_int_equal(b.len, 9);
    /* Past the first 4 KiB: the content moves, and stays whole. */
    for (int i = 0; i < 3000; i++)
        strbuf_puts(&b, "0123456789");
    assert_int_equal(b.len, 9 + 30000);
    assert_int_equal(strlen(b.p), b.len);
    assert_memory_equal(b.p + b.len - 10, "0123456789", 10);
    assert_false(b.failed);
    strbuf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    strbuf_put(&b, "", 0); /* an empty append still terminates */
    assert_non_null(b.p);
    assert_string_equal(b.p, "");
    strbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
