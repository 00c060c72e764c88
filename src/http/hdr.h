/* hdr.h - parsers for the request headers the CDN route honours.
 *
 * Pure functions over client-supplied strings: no allocation, no globals,
 * safe on any input (each has a fuzz target). */
#ifndef PF_HDR_H
#define PF_HDR_H

#include <stdint.h>
#include <time.h>

enum hdr_range {
    HDR_RANGE_NONE,          /* absent, other unit or several ranges: send it all (200) */
    HDR_RANGE_OK,            /* one satisfiable range: 206 */
    HDR_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes * / size */
};

/* Interpret a Range header value against a body of `size` bytes.
 * OUT: *first, *count (only for HDR_RANGE_OK). A `bytes=` value that does
 * not parse is answered 416, as nginx does; an unknown unit is ignored as
 * RFC 9110 requires; several ranges are served as the whole body (RFC 9110
 * allows a server to ignore Range). */
enum hdr_range hdr_parse_range(const char *value, uint64_t size, uint64_t *first, uint64_t *count);

/* Whether an If-None-Match value (a list of entity tags or "*") matches
 * `etag` under the weak comparison RFC 9110 prescribes for it. */
int hdr_etag_matches(const char *if_none_match, const char *etag);

/* The same for If-Match, under the strong comparison: weak members of the
 * list never match. */
int hdr_etag_matches_strong(const char *if_match, const char *etag);

/* Whether an Accept-Encoding value accepts gzip (RFC 9110 12.5.3): `gzip`
 * or `x-gzip` listed with a weight above 0, or, when neither is listed, `*`
 * with a weight above 0. NULL (no header) accepts nothing but identity.
 * A member that does not parse is ignored. */
int hdr_accepts_gzip(const char *accept_encoding);

/* Parse an HTTP date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), or the
 * obsolete RFC 850 and asctime forms. OUT: *t. Returns 0, or PF_EINVAL for
 * anything else (impossible dates such as 31 Feb included). */
int hdr_parse_http_date(const char *value, time_t *t);

/* Format `t` as an IMF-fixdate into out (at least 30 bytes). */
void hdr_format_http_date(time_t t, char out[30]);

#endif
