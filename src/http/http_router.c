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
    int def; /* index + 1 of the default, 0: none */
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
    if (len > 0 && path[0] == '/') {
        const char *slash = memchr(path + 1, '/', len - 1);
        n = slash ? (size_t)(slash - path - 1) : len - 1;
        for (int i = 0; i < r->n; i++)
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
