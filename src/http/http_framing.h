/* http_framing.h - the checks of a request's framing (RFC 9112) that
 * libmicrohttpd 0.9.75 leaves undone, run on what it parsed: the request
 * target as its URI log saw it and every header line as name and value.
 *
 * A request that fails them must be answered with the status returned and
 * the connection closed: with two Content-Lengths, Content-Length and
 * Transfer-Encoding together, or a transfer coding other than a lone
 * "chunked", the server and anything in front of it may disagree on where
 * the body ends, and the bytes after it are not to be read as a request
 * (RFC 9112 6.1, 6.3, "request smuggling"). What libmicrohttpd hides from
 * us (a NUL, which ends its strings; a folded line, which it glues to the
 * field's name) is documented in docs/HTTP.md. */
#ifndef PF_HTTP_FRAMING_H
#define PF_HTTP_FRAMING_H

#include <stddef.h>

/* What the header lines of one request showed. Zero it, then
 * http_framing_add() each line. */
struct http_framing {
    size_t header_bytes;           /* names and values, plus 4 a line */
    int content_lengths;           /* Content-Length lines */
    int transfer_encodings;        /* Transfer-Encoding lines */
    int hosts;                     /* Host lines */
    int bad_name;                  /* a name that is not a token (RFC 9110 5.1) */
    int bad_value;                 /* a value with a control character (not HTAB) */
    const char *transfer_encoding; /* the last one's value (not copied) */
};

void http_framing_add(struct http_framing *f, const char *name, size_t name_len, const char *value,
                      size_t value_len);

/* Whether a request target's bytes are all visible (no control character,
 * space or DEL: RFC 9112 3.2). */
int http_framing_target_ok(const char *target, size_t len);

/* The verdict on a request whose target (path, from the request line)
 * passed http_framing_target_ok, given its headers. http11: the request
 * says HTTP/1.1 (Host is then required). Returns 0 (fine), or 400/501 with
 * *code and *message set for the JSON error body (static strings). */
int http_framing_check(const struct http_framing *f, const char *target, int http11,
                       const char **code, const char **message);

#endif
