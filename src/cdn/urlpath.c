/* urlpath.c - see urlpath.h. */
#include "cdn/urlpath.h"

#include "base/err.h"
#include "base/variant.h"

#include <string.h>

static const char *const server_routes[] = {"v1", "dashboard", "metrics", "healthz", "readyz"};

int urlpath_reserved_owner(const char *name)
{
    if (name[0] == '.' || name[0] == '_' || strcmp(name, "i") == 0)
        return 1;
    for (size_t i = 0; i < sizeof(server_routes) / sizeof(server_routes[0]); i++)
        if (strcmp(name, server_routes[i]) == 0)
            return 1;
    return 0;
}

int urlpath_server_segment(const char *p, size_t len)
{
    size_t i = 1, n;
    if (len == 0 || p[0] != '/')
        return 0;
    for (n = 0; i + n < len && p[i + n] != '/'; n++)
        ;
    for (size_t r = 0; r < sizeof(server_routes) / sizeof(server_routes[0]); r++)
        if (strlen(server_routes[r]) == n && memcmp(p + i, server_routes[r], n) == 0)
            return 1;
    return 0;
}

static int fail(struct urlpath *out, int status, const char *code, const char *message)
{
    out->status = status;
    out->code = code;
    out->message = message;
    return PF_EINVAL;
}

int urlpath_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9')))
            return 0;
    return n == 6;
}

int urlpath_parse(const char *raw, size_t len, struct urlpath *out)
{
    const char *seg[5];
    int nseg = 0;
    size_t w = 0;

    out->status = 0;
    out->variant = 0;
    out->owner = out->album = out->filename = out->id = out->route = NULL;
    if (len > URLPATH_MAX)
        return fail(out, 414, "URI_TOO_LONG", "request path is longer than 2048 bytes");
    if (len == 0 || raw[0] != '/')
        return fail(out, 400, "INVALID_PARAMETER", "request path must start with '/'");

    /* Decode segment by segment into buf, each NUL-terminated. More than five
     * segments is never a route, but keep scanning so traversal attempts get
     * their 400 rather than a 404. */
    size_t i = 1;
    int too_many = 0;
    for (;;) {
        size_t start = w;
        while (i < len && raw[i] != '/') {
            char c = raw[i];
            if (c == '%') {
                int hi = i + 2 < len ? urlpath_hex_digit(raw[i + 1]) : -1;
                int lo = i + 2 < len ? urlpath_hex_digit(raw[i + 2]) : -1;
                if (hi < 0 || lo < 0)
                    return fail(out, 400, "INVALID_PARAMETER", "malformed percent-escape in path");
                c = (char)(hi * 16 + lo);
                i += 3;
                if (c == '/')
                    return fail(out, 400, "INVALID_PARAMETER", "encoded '/' in path");
            } else {
                i++;
            }
            if (c == '\0')
                return fail(out, 400, "INVALID_PARAMETER", "NUL byte in path");
            if ((unsigned char)c < 0x20 || c == 0x7f)
                return fail(out, 400, "INVALID_PARAMETER", "control character in path");
            if (c == '\\')
                return fail(out, 400, "INVALID_PARAMETER", "backslash in path");
            if (w - start >= URLPATH_SEGMENT_MAX)
                return fail(out, 400, "INVALID_PARAMETER", "path segment is longer than 255 bytes");
            out->buf[w++] = c;
        }
        out->buf[w] = '\0';
        const char *s = out->buf + start;
        if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
            return fail(out, 400, "INVALID_PARAMETER", "path leaves the storage directory");
        if (nseg < 5)
            seg[nseg++] = s;
        else
            too_many = 1;
        w++;
        if (i >= len)
            break;
        i++; /* skip '/' */
    }

    for (int k = 0; k < nseg; k++)
        if (seg[k][0] == '\0')
            return fail(out, 404, "NOT_FOUND", "not found");
    if (too_many)
        return fail(out, 404, "NOT_FOUND", "not found");

    for (size_t r = 0; r < sizeof(server_routes) / sizeof(server_routes[0]); r++) {
        if (strcmp(seg[0], server_routes[r]) == 0) {
            out->kind = URLPATH_SERVER;
            out->route = seg[0];
            return 0;
        }
    }

    const char *variant = NULL;
    if (strcmp(seg[0], "i") == 0) {
        if (nseg != 2 && nseg != 3)
            return fail(out, 404, "NOT_FOUND", "not found");
        if (!valid_id(seg[1]))
            return fail(out, 404, "NOT_FOUND", "image not found");
        out->kind = URLPATH_BY_ID;
        out->id = seg[1];
        variant = nseg == 3 ? seg[2] : NULL;
    } else {
        if (nseg != 3 && nseg != 4)
            return fail(out, 404, "NOT_FOUND", "not found");
        if (urlpath_reserved_owner(seg[0]))
            return fail(out, 404, "NOT_FOUND", "not found");
        out->kind = URLPATH_BY_NAME;
        out->owner = seg[0];
        out->album = seg[1];
        out->filename = seg[2];
        variant = nseg == 4 ? seg[3] : NULL;
    }
    if (variant != NULL) {
        out->variant = variant_find(variant, strlen(variant));
        if (out->variant < 0)
            return fail(out, 400, "INVALID_PARAMETER",
                        "unknown variant (use original, w128, w256, w512, w1024, w1536, w2048, "
                        "thumb or og-image)");
    }
    return 0;
}
