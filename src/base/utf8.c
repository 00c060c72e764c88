/* utf8.c - see utf8.h. */
#include "base/utf8.h"

#include <string.h>

static int cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

size_t utf8_seq(const unsigned char *s, size_t len)
{
    if (len == 0)
        return 0; /* before reading s[0]: there may be no byte there */
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return len >= 2 && cont(s[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        /* E0: no overlongs (A0-BF); ED: no surrogates (80-9F). */
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return len >= 3 && s[1] >= lo && s[1] <= hi && cont(s[2]) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        /* F0: no overlongs (90-BF); F4: nothing above U+10FFFF (80-8F). */
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return len >= 4 && s[1] >= lo && s[1] <= hi && cont(s[2]) && cont(s[3]) ? 4 : 0;
    }
    return 0;
}

int utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

void utf8_clean(const char *in, char *out, size_t cap)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)in;
    size_t len = strlen(in), o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        const char *src = n ? in + i : fffd;
        size_t m = n ? n : 3;
        if (o + m + 1 > cap)
            break;
        memcpy(out + o, src, m);
        o += m;
        i += n ? n : 1;
    }
    if (cap > 0)
        out[o] = '\0';
}
