/* http_router.c - see http_router.h. A handful of routes: a linear scan
 * over their first segments is a few compares. */
#include "http/http_router.h"

#include "base/err.h"

#include <stdlib.h>
#include <string.h>

struct http_router {
    struct {
        const char *segment; /* NULL: the default */
        size_t len;
        struct http_route route;
    } r[HTTP_ROUTER_MAX];
    int n;
    int def;       /* index + 1 of the default, 0: none */
    size_t maxlen; /* of the segments: a longer first segment is the default's */
    /* Whether a segment starts with the byte: most image paths' first byte
     * (an owner's name) rules every segment out at once. */
    unsigned char first[256];
};

int http_router_new(struct http_router **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : PF_ENOMEM;
}

void http_router_free(struct http_router *r)
{
    free(r);
}

int http_router_add(struct http_router *r, const char *segment, const struct http_route *route)
{
    for (int i = 0; i < r->n; i++)
        if ((segment == NULL && r->r[i].segment == NULL) ||
            (segment != NULL && r->r[i].segment != NULL && strcmp(segment, r->r[i].segment) == 0))
            return PF_EEXISTS;
    if (r->n >= HTTP_ROUTER_MAX)
        return PF_ERANGE;
    r->r[r->n].segment = segment;
    r->r[r->n].len = segment ? strlen(segment) : 0;
    if (r->r[r->n].len > r->maxlen)
        r->maxlen = r->r[r->n].len;
    if (segment != NULL && segment[0] != '\0')
        r->first[(unsigned char)segment[0]] = 1;
    r->r[r->n].route = *route;
    r->n++;
    if (segment == NULL)
        r->def = r->n;
    return 0;
}

const struct http_route *http_router_find(const struct http_router *r, const char *path, size_t len,
                                          int *index)
{
    size_t n = 0;
    if (len > 1 && path[0] == '/' && r->first[(unsigned char)path[1]]) {
        /* The first segment's length, looked at no further than the longest
         * registered one (an image path's first segment is often longer). */
        while (n <= r->maxlen && 1 + n < len && path[1 + n] != '/')
            n++;
        for (int i = 0; n <= r->maxlen && i < r->n; i++)
            if (r->r[i].segment != NULL && r->r[i].len == n &&
                memcmp(r->r[i].segment, path + 1, n) == 0) {
                if (index != NULL)
                    *index = i + 1;
                return &r->r[i].route;
            }
    }
    if (index != NULL)
        *index = r->def;
    return r->def ? &r->r[r->def - 1].route : NULL;
}

const struct http_route *http_router_get(const struct http_router *r, int index)
{
    return index >= 1 && index <= r->n ? &r->r[index - 1].route : NULL;
}

int http_router_count(const struct http_router *r)
{
    return r->n;
}
