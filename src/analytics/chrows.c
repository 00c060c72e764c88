/* chrows.c - see chrows.h. */
#include "analytics/chrows.h"

#include "base/err.h"
#include "base/variant.h"

#include <stdlib.h>
#include <string.h>

void chrows_init_events(struct chrows *r, int (*fn)(void *ctx, const struct event *ev), void *ctx)
{
    memset(r, 0, sizeof(*r));
    r->fn = fn;
    r->ctx = ctx;
}

void chrows_init_groups(struct chrows *r)
{
    memset(r, 0, sizeof(*r));
    r->groups = 1;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* image_id String: a one-byte length (at most 7; a LEB128 length below 128
 * is one byte) and the characters, [a-z0-9] as every writer makes them
 * (what reaches `pixflare events` is printed into JSON unescaped). Its
 * length, 0 when incomplete. */
static long take_image(const uint8_t *p, size_t avail, char out[8])
{
    if (avail < 1)
        return 0;
    if (p[0] > 7)
        return PF_EFORMAT;
    if (avail < (size_t)1 + p[0])
        return 0;
    for (int i = 1; i <= p[0]; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')))
            return PF_EFORMAT;
    memset(out, 0, 8);
    memcpy(out, p + 1, p[0]);
    return 1 + p[0];
}

/* A country: [A-Z][A-Z0-9], as SPEC.md and the event log have it. */
static int country_ok(const uint8_t *c)
{
    return c[0] >= 'A' && c[0] <= 'Z' &&
           ((c[1] >= 'A' && c[1] <= 'Z') || (c[1] >= '0' && c[1] <= '9'));
}

static int variant_of(int8_t v)
{
    return v >= 0 && v < VARIANT_COUNT ? v : -1;
}

static long event_row(struct chrows *r, const uint8_t *p, size_t avail)
{
    struct event ev;
    if (avail < 40)
        return 0;
    ev.ts_ms = (int64_t)le(p, 8);
    memcpy(ev.request_id, p + 8, 16);
    memcpy(ev.owner, p + 24, 16);
    long k = take_image(p + 40, avail - 40, ev.image_id);
    if (k <= 0)
        return k;
    size_t o = 40 + (size_t)k;
    if (avail < o + 14)
        return 0;
    if (!country_ok(p + o + 3) || p[o + 13] >= CHROWS_CLIENTS)
        return PF_EFORMAT;
    ev.variant = variant_of((int8_t)p[o]);
    ev.status = (int)le(p + o + 1, 2);
    ev.country[0] = (char)p[o + 3];
    ev.country[1] = (char)p[o + 4];
    ev.country[2] = '\0';
    ev.bytes = le(p + o + 5, 8);
    ev.client = p[o + 13];
    ev.upoint = 0;
    r->events++;
    r->fn_rc = r->fn(r->ctx, &ev);
    return r->fn_rc ? r->fn_rc : (long)(o + 14);
}

static long group_row(struct chrows *r, const uint8_t *p, size_t avail)
{
    char image[8];
    if (avail < 16)
        return 0;
    long k = take_image(p + 16, avail - 16, image);
    if (k <= 0)
        return k;
    size_t o = 16 + (size_t)k;
    if (avail < o + 23)
        return 0;
    if (!country_ok(p + o + 1) || p[o + 5] > 23 || p[o + 6] >= CHROWS_CLIENTS)
        return PF_EFORMAT;
    if (r->n == r->gcap) {
        size_t cap = r->gcap ? r->gcap * 2 : 4096;
        struct engine_group *ng = realloc(r->g, cap * sizeof(*ng));
        if (ng == NULL)
            return PF_ENOMEM;
        r->g = ng;
        r->gcap = cap;
    }
    struct event ev;
    memset(&ev, 0, sizeof(ev));
    memcpy(ev.owner, p, 16);
    memcpy(ev.image_id, image, 8);
    ev.variant = variant_of((int8_t)p[o]);
    ev.country[0] = (char)p[o + 1];
    ev.country[1] = (char)p[o + 2];
    ev.status = (int)le(p + o + 3, 2);
    ev.client = p[o + 6];
    struct engine_group *g = &r->g[r->n++];
    engine_key_make(&g->k, &ev);
    engine_key_set_hour(&g->k, p[o + 5]);
    g->requests = le(p + o + 7, 8);
    g->bytes = le(p + o + 15, 8);
    r->events += g->requests;
    return (long)(o + 23);
}

int chrows_take(void *ctx, const uint8_t *p, size_t n)
{
    struct chrows *r = ctx;
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 1 << 12;
        while (cap < r->len + n)
            cap *= 2;
        uint8_t *nb = realloc(r->buf, cap);
        if (nb == NULL)
            return PF_ENOMEM;
        r->buf = nb;
        r->cap = cap;
    }
    if (n > 0)
        memcpy(r->buf + r->len, p, n);
    r->len += n;
    size_t off = 0;
    while (off < r->len) {
        long k = r->groups ? group_row(r, r->buf + off, r->len - off)
                           : event_row(r, r->buf + off, r->len - off);
        if (k < 0)
            return (int)k;
        if (k == 0)
            break;
        off += (size_t)k;
    }
    memmove(r->buf, r->buf + off, r->len - off);
    r->len -= off;
    return 0;
}

int chrows_finish(const struct chrows *r)
{
    return r->len != 0 ? PF_EFORMAT : 0;
}

void chrows_free(struct chrows *r)
{
    free(r->buf);
    free(r->g);
    r->buf = NULL;
    r->g = NULL;
}
