/* fuzz_utf8.c - fuzzes utf8_seq(), utf8_valid() and utf8_clean() (src/base/utf8.c):
 * the checks that guard file names found on disk (import) and the album and
 * file names the API puts into JSON.
 *
 * Input layout: byte 0 picks the output capacity of utf8_clean (0..255); the
 * rest is the text. Invariants checked, against ref_seq(), a second,
 * separately written decoder that computes the code point and rules out
 * overlongs, surrogates and values above U+10FFFF (RFC 3629 section 3):
 *  - utf8_seq agrees with ref_seq at every offset, and for len 0 answers 0
 *    without reading (the text is an exactly sized heap copy, so ASan sees
 *    any read past it);
 *  - utf8_valid agrees with walking ref_seq over the text;
 *  - utf8_clean's output is NUL-terminated inside cap, valid UTF-8, equal to
 *    the longest prefix of the reference cleaning (each byte that starts no
 *    valid sequence replaced by U+FFFD) that fits at a sequence boundary; a
 *    valid text that fits comes out unchanged. */
#include "base/utf8.h"
#include "fuzz_check.h"

/* Length of the valid sequence at s[0..len), or 0: decode, then judge the
 * code point. */
static size_t ref_seq(const unsigned char *s, size_t len)
{
    if (len == 0)
        return 0;
    size_t n;
    uint32_t cp, min;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2, cp = s[0] & 0x1F, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3, cp = s[0] & 0x0F, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4, cp = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int ref_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = ref_seq(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cap = data[0];
    const uint8_t *text = data + 1;
    size_t len = size - 1;

    /* An exactly sized copy: nothing past the text is readable. */
    unsigned char *exact = malloc(len ? len : 1);
    if (exact == NULL)
        abort();
    if (len > 0)
        memcpy(exact, text, len);
    FUZZ_CHECK(utf8_seq(exact + len, 0) == 0 || len == 0);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(utf8_seq(exact + i, len - i) == ref_seq(exact + i, len - i));
    FUZZ_CHECK(utf8_valid((const char *)exact, len) == ref_valid(exact, len));
    free(exact);

    /* utf8_clean reads a C string: the text up to its first NUL. */
    char *in = fuzz_cstr(text, len);
    size_t inlen = strlen(in);
    char *ref = malloc(inlen * 3 + 1), *out = malloc(cap ? cap : 1);
    if (ref == NULL || out == NULL)
        abort();
    /* The reference cleaning, unbounded, and the longest boundary prefix
     * that fits in cap with its NUL. */
    size_t r = 0, fit = 0;
    int cut = 0;
    for (size_t i = 0; i < inlen;) {
        size_t n = ref_seq((const unsigned char *)in + i, inlen - i);
        size_t m = n ? n : 3;
        memcpy(ref + r, n ? in + i : "\xEF\xBF\xBD", m);
        r += m;
        if (!cut && r + 1 <= cap)
            fit = r;
        else
            cut = 1;
        i += n ? n : 1;
    }
    memset(out, 'x', cap ? cap : 1);
    utf8_clean(in, out, cap);
    if (cap > 0) {
        size_t olen = strnlen(out, cap);
        FUZZ_CHECK(olen < cap);
        FUZZ_CHECK(olen == fit);
        FUZZ_CHECK(memcmp(out, ref, fit) == 0);
        FUZZ_CHECK(ref_valid((const unsigned char *)out, olen));
        if (ref_valid((const unsigned char *)in, inlen) && inlen < cap)
            FUZZ_CHECK(strcmp(out, in) == 0);
    }
    free(ref);
    free(out);
    free(in);
    return 0;
}
