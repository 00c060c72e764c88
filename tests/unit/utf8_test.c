/* utf8_test.c - RFC 3629 validation and the lossy copy the API's JSON uses,
 * checked against an independent decoder over every 1- to 3-byte sequence
 * and the 4-byte ones that can matter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/utf8.h"

/* Reference: decode by the definition (bit patterns, then the range rules). */
static int ref_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i], n, cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            n = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            n = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            n = 4, cp = c & 0x07;
        else
            return 0;
        if (i + n > len)
            return 0;
        for (unsigned k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return 1;
}

static void test_exhaustive(void **state)
{
    (void)state;
    unsigned char b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (unsigned char)x;
        assert_int_equal(utf8_valid((char *)b, 1), ref_valid(b, 1));
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (unsigned char)y;
            assert_int_equal(utf8_valid((char *)b, 2), ref_valid(b, 2));
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (unsigned char)z;
                if (utf8_valid((char *)b, 3) != ref_valid(b, 3))
                    fail_msg("%02x %02x %02x", x, y, z);
                /* 4-byte: leads from E0, every second and third byte, the
                 * continuation range's edges and just outside as tails. */
                static const unsigned char tails[] = {0x41, 0x7F, 0x80, 0xBF, 0xC0};
                for (size_t t = 0; x >= 0xE0 && t < sizeof(tails); t++) {
                    unsigned w = tails[t];
                    b[3] = (unsigned char)w;
                    if (utf8_valid((char *)b, 4) != ref_valid(b, 4))
                        fail_msg("%02x %02x %02x %02x", x, y, z, w);
                }
            }
        }
    }
}

static void test_clean(void **state)
{
    (void)state;
    char out[64];
    utf8_clean("caf\xc3\xa9.png", out, sizeof(out));
    assert_string_equal(out, "caf\xc3\xa9.png");
    utf8_clean("caf\xe9.png", out, sizeof(out)); /* Latin-1 e-acute */
    assert_string_equal(out, "caf\xef\xbf\xbd.png");
    utf8_clean("\xed\xa0\x80x", out, sizeof(out)); /* a surrogate: 3 bad bytes */
    assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx");
    utf8_clean("ab\xe2\x82\xac", out, 5); /* the euro sign does not fit: cut before it */
    assert_string_equal(out, "ab");
    utf8_clean("\xff\xfe", out, 4); /* room for one replacement only */
    assert_string_equal(out, "\xef\xbf\xbd");
    assert_true(utf8_valid(out, strlen(out)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_exhaustive),
                                       cmocka_unit_test(test_clean)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
