/* utf8.h - UTF-8 checks (RFC 3629: no overlongs, surrogates or code points
 * above U+10FFFF). JSON must be valid UTF-8 (jansson refuses anything else),
 * and file names come from disks that may hold any bytes. */
#ifndef PF_UTF8_H
#define PF_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if none starts
 * there. */
size_t utf8_seq(const unsigned char *s, size_t len);

/* Whether all of s is valid UTF-8. */
int utf8_valid(const char *s, size_t len);

/* Copy NUL-terminated `in` into out[cap], each byte that starts no valid
 * sequence replaced by U+FFFD; cut (at a sequence boundary) to fit. */
void utf8_clean(const char *in, char *out, size_t cap);

#endif
