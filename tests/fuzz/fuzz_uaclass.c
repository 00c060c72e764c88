/* fuzz_uaclass.c - fuzzes uaclass_of() (src/analytics/uaclass.c), which sees
 * every CDN request's User-Agent. The input, cut at its first NUL, is the
 * user agent. Invariants: the answer is one of the three classes and has a
 * name; asking again (now from the cache) gives the same answer; "" and only
 * "" of the short strings is a bot by the empty rule; a user agent and the
 * same one past UACLASS_MATCH_MAX bytes of padding agree on the prefix rule
 * (only the first UACLASS_MATCH_MAX bytes are matched). */
#include "analytics/uaclass.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        char err[256];
        if (uaclass_init(err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            abort();
        }
        ready = 1;
    }
    char *ua = fuzz_cstr(data, size);
    enum uaclass_kind k = uaclass_of(ua);
    FUZZ_CHECK(k == UACLASS_HUMAN || k == UACLASS_BOT || k == UACLASS_PREVIEW);
    FUZZ_CHECK(strcmp(uaclass_name(k), "unknown") != 0);
    FUZZ_CHECK(uaclass_of(ua) == k);
    if (ua[0] == '\0')
        FUZZ_CHECK(k == UACLASS_BOT);
    /* Anything after the first UACLASS_MATCH_MAX bytes changes nothing. */
    size_t len = strlen(ua);
    if (len >= UACLASS_MATCH_MAX) {
        char *cut = fuzz_cstr((const uint8_t *)ua, UACLASS_MATCH_MAX);
        FUZZ_CHECK(uaclass_of(cut) == k);
        free(cut);
    }
    free(ua);
    return 0;
}
