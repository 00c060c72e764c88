/* urlpath.h - parse the path of a request URL into a CDN route.
 *
 * Input is the raw path exactly as the client sent it (percent-escapes
 * intact, query string already split off). The parser decodes each segment
 * itself so that it can refuse what would be dangerous after decoding: NUL
 * bytes, control characters, encoded slashes and backslashes, and `.`/`..`
 * segments. Nothing is allocated: decoded segments live in the struct. */
#ifndef PF_URLPATH_H
#define PF_URLPATH_H

#include <stddef.h>

#define URLPATH_MAX 2048 /* longer paths are answered 414 */
#define URLPATH_SEGMENT_MAX 255

enum urlpath_kind {
    URLPATH_BY_NAME, /* /{owner}/{album}/{filename}[/{variant}] */
    URLPATH_BY_ID,   /* /i/{image_id}[/{variant}] */
    URLPATH_SERVER,  /* first segment is a reserved route: v1, dashboard, ... */
};

struct urlpath {
    enum urlpath_kind kind;
    const char *owner, *album, *filename; /* BY_NAME, decoded, NUL-terminated */
    const char *id;                       /* BY_ID */
    const char *route;                    /* SERVER: the first segment */
    int variant;                          /* index into variant_table */
    /* On failure: the HTTP status to answer and why (static strings). */
    int status;
    const char *code;
    const char *message;
    char buf[URLPATH_MAX + 8];
};

/* Parse `len` bytes of `raw`. Returns 0 with *out filled, or PF_EINVAL with
 * out->status (400, 404 or 414), out->code and out->message set. */
int urlpath_parse(const char *raw, size_t len, struct urlpath *out);

/* The value of a hex digit (either case), or -1: the %-escapes' rule,
 * shared with the query-string parser. */
int urlpath_hex_digit(char c);

/* Whether the raw path's first segment (before any %-decoding) names one of
 * the server's own routes (v1, dashboard, metrics, healthz). */
int urlpath_server_segment(const char *raw, size_t len);

/* Whether `name` may not be used as an owner (reserved for server routes). */
int urlpath_reserved_owner(const char *name);

#endif
