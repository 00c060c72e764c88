/* strbuf.h - a growing, always NUL-terminated text buffer for answers and
 * bulk statements built piece by piece (the API's CSV, PostgreSQL's array
 * literals and COPY data).
 *
 * Out of memory is sticky: the buffer is marked failed, later appends do
 * nothing, and the caller checks `failed` once at the end instead of after
 * every append. Zero-initialise (`struct strbuf b = {0}`); strbuf_free()
 * releases p (or the caller takes it over and frees it). */
#ifndef PF_STRBUF_H
#define PF_STRBUF_H

#include <stddef.h>
#include <stdint.h>

struct strbuf {
    char *p; /* NULL until the first append */
    size_t len, cap;
    int failed; /* an append ran out of memory: the content is incomplete */
};

void strbuf_put(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
/* printf-style, any length. */
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_free(struct strbuf *b);

#endif
