/* fuzz_chrows.c - fuzzes src/analytics/chrows.c, the parser of ClickHouse's
 * RowBinary answers (events and groups), with the answer cut into chunks of
 * every size.
 *
 * Input layout: byte 0 picks the answer (bit 0: groups, else events) and
 * seeds the chunk sizes; the rest is the answer. Invariants checked:
 *  - fed in one chunk and in chunks of varying sizes, the parse gives the
 *    same result (return code, events, groups, bytes left over): a row cut
 *    by a chunk boundary is kept and completed, never lost or misread;
 *  - every image id is at most 7 characters of [a-z0-9], NUL-padded, every
 *    country [A-Z][A-Z0-9], every variant a table index or -1
 *    (ENGINE_NO_VARIANT in a key), and the bytes left over are fewer than
 *    one longest row;
 *  - a callback that stops the parse has its return passed through. */
#include "analytics/chrows.h"
#include "base/err.h"
#include "base/variant.h"
#include "fuzz_check.h"

struct seen {
    uint64_t n, sum;
    int stop_at; /* stop (return PF_ECONFLICT) at this event; -1: never */
};

static int on_event(void *ctx, const struct event *ev)
{
    struct seen *s = ctx;
    FUZZ_CHECK(ev->image_id[7] == '\0');
    for (size_t i = strlen(ev->image_id); i < 8; i++)
        FUZZ_CHECK(ev->image_id[i] == '\0');
    for (size_t i = 0; ev->image_id[i]; i++)
        FUZZ_CHECK(strchr("abcdefghijklmnopqrstuvwxyz0123456789", ev->image_id[i]) != NULL);
    FUZZ_CHECK(ev->country[0] >= 'A' && ev->country[0] <= 'Z');
    FUZZ_CHECK(ev->variant >= -1 && ev->variant < VARIANT_COUNT);
    FUZZ_CHECK(ev->country[2] == '\0');
    s->sum += ev->bytes ^ (uint64_t)ev->ts_ms ^ (uint64_t)ev->status;
    if ((int)s->n++ == s->stop_at)
        return PF_ECONFLICT;
    return 0;
}

/* Parse data in chunks whose sizes come from `seed` (0: one chunk). */
static int parse(const uint8_t *data, size_t size, int groups, unsigned seed, struct chrows *r,
                 struct seen *s)
{
    if (groups)
        chrows_init_groups(r);
    else
        chrows_init_events(r, on_event, s);
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && off < size) {
        size_t k = seed == 0 ? size : 1 + (seed = seed * 1103515245u + 12345u) % 97;
        if (k > size - off)
            k = size - off;
        rc = chrows_take(r, data + off, k);
        off += k;
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int groups = data[0] & 1;
    unsigned seed = data[0] | 1u;
    struct chrows a, b;
    struct seen sa = {0, 0, -1}, sb = {0, 0, -1};
    int ra = parse(data + 1, size - 1, groups, 0, &a, &sa);
    int rb = parse(data + 1, size - 1, groups, seed, &b, &sb);
    FUZZ_CHECK(ra == rb);
    FUZZ_CHECK(ra == 0 || ra == PF_EFORMAT || ra == PF_ENOMEM);
    FUZZ_CHECK(a.events == b.events && a.n == b.n);
    FUZZ_CHECK(sa.n == sb.n && sa.sum == sb.sum);
    if (ra == 0) {
        FUZZ_CHECK(a.len == b.len && a.len < 64);
        FUZZ_CHECK((chrows_finish(&a) == 0) == (a.len == 0));
    }
    for (size_t i = 0; groups && ra == 0 && i < a.n; i++) {
        FUZZ_CHECK(memcmp(&a.g[i], &b.g[i], sizeof(a.g[i])) == 0);
        uint8_t v = engine_key_variant(&a.g[i].k);
        FUZZ_CHECK(v < VARIANT_COUNT || v == ENGINE_NO_VARIANT);
        FUZZ_CHECK(engine_key_image(&a.g[i].k)[7] == '\0');
    }
    chrows_free(&a);
    chrows_free(&b);
    /* A callback's stop passes through, and nothing is read after it. */
    if (!groups && sa.n > 0) {
        struct chrows c;
        struct seen sc = {0, 0, (int)(sa.n / 2)};
        int rc = parse(data + 1, size - 1, 0, seed, &c, &sc);
        FUZZ_CHECK(rc == PF_ECONFLICT && c.fn_rc == PF_ECONFLICT);
        FUZZ_CHECK(sc.n == sa.n / 2 + 1);
        chrows_free(&c);
    }
    return 0;
}
