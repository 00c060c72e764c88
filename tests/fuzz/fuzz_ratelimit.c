/* fuzz_ratelimit.c - fuzzes ratelimit_take() (src/api/ratelimit.c): the
 * per-owner sliding window of the analytics API, keyed by the owner string
 * a request's API key speaks for, against a model that keeps every accepted
 * request.
 *
 * Input layout: byte 0 gives the limit (1..16); then operations of
 * [owner length 0..40][owner bytes][time step], the step being milliseconds
 * (0..254 ms) or, for 255, a jump of the next byte in seconds (0..255 s).
 * The clock only moves forward (it is monotonic in the server). Owner bytes
 * may hold NUL (the C string ends there) and high bytes. Invariants checked:
 *  - ratelimit_take's verdict, remaining count and Retry-After equal the
 *    model's: an owner (cut to 32 characters) passes when fewer than `limit`
 *    of its accepted requests fall in the current second and the 60 before
 *    it; remaining = limit - count - 1; a refusal waits (1..61 s) until the
 *    oldest requests that must leave have left;
 *  - so no 61-second span ever holds more than `limit` accepted requests of
 *    one owner, through table growth and the dropping of idle owners. */
#include "api/ratelimit.h"
#include "fuzz_check.h"

#define SPAN 61
#define MAX_OWNERS 512
#define MAX_ACCEPTED 4096

struct model_owner {
    char key[33];
    int64_t sec[MAX_ACCEPTED]; /* accepted requests' seconds, ascending */
    size_t n;
};

static struct model_owner model[MAX_OWNERS];
static size_t nmodel;

static struct model_owner *model_find(const char *key)
{
    for (size_t i = 0; i < nmodel; i++)
        if (strcmp(model[i].key, key) == 0)
            return &model[i];
    if (nmodel == MAX_OWNERS)
        return NULL;
    struct model_owner *m = &model[nmodel++];
    snprintf(m->key, sizeof(m->key), "%s", key);
    m->n = 0;
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int limit = 1 + data[0] % 16;
    struct ratelimit *rl = NULL;
    FUZZ_CHECK(ratelimit_new(limit, &rl) == 0);
    nmodel = 0;
    int64_t now_ms = 1000000; /* a monotonic clock well past its start */
    size_t p = 1;
    while (p < size) {
        size_t olen = data[p++] % 41;
        if (olen > size - p)
            olen = size - p;
        char owner[41];
        memcpy(owner, data + p, olen);
        owner[olen] = '\0';
        p += olen;
        if (p < size) {
            uint8_t step = data[p++];
            if (step == 255 && p < size)
                now_ms += (int64_t)data[p++] * 1000;
            else
                now_ms += step;
        }

        char key[33];
        snprintf(key, sizeof(key), "%s", owner);
        struct model_owner *m = model_find(key);
        if (m == NULL || m->n == MAX_ACCEPTED)
            break;
        int64_t now = now_ms / 1000;
        size_t first = 0; /* the first accepted request still in the window */
        while (first < m->n && m->sec[first] <= now - SPAN)
            first++;
        int64_t count = (int64_t)(m->n - first);
        int want_ok = count < limit, want_remaining = 0, want_retry = 0;
        if (want_ok) {
            want_remaining = (int)(limit - count - 1);
            m->sec[m->n++] = now;
        } else {
            /* The request that must leave for one more to fit. */
            int64_t leaves = m->sec[first + (size_t)(count - limit)] + SPAN;
            want_retry = (int)(leaves - now);
            if (want_retry < 1)
                want_retry = 1;
        }

        int remaining = -1, retry = -1;
        int ok = ratelimit_take(rl, owner, now_ms, &remaining, &retry);
        if (ok != want_ok || remaining != want_remaining || retry != want_retry)
            fprintf(stderr, "owner \"%s\" at %lld ms: got %d/%d/%d, model %d/%d/%d\n", key,
                    (long long)now_ms, ok, remaining, retry, want_ok, want_remaining, want_retry);
        FUZZ_CHECK(ok == want_ok);
        FUZZ_CHECK(remaining == want_remaining);
        FUZZ_CHECK(retry == want_retry);
        FUZZ_CHECK(ok ? retry == 0 : (retry >= 1 && retry <= SPAN));
    }
    ratelimit_free(rl);
    return 0;
}
