/* fuzz_config.c - fuzzes the --config file parser config_parse_text() and
 * config_parse_bool() (src/config.c).
 *
 * config_parse_text gets the raw bytes with their length (libFuzzer's buffer
 * is exactly sized, so ASan catches reads past it); config_parse_bool gets
 * them as an exactly sized NUL-terminated string. Invariants checked:
 *  - every (key, value) handed to the callback is a NUL-terminated string
 *    (strlen under ASan), the key is a non-empty [A-Za-z0-9_] word, neither
 *    contains a newline, and the two together are no longer than the input;
 *  - the callback is called at most once per line, and never again after it
 *    has refused a pair;
 *  - the result is 0, PF_EINVAL or the callback's refusal; on failure err is
 *    NUL-terminated and starts with "line N: " with N within the input's
 *    line count;
 *  - config_parse_bool returns 0 with *v in {0, 1} exactly for the six
 *    spellings of its header (any case), and PF_EINVAL otherwise;
 *  - config_load() with the input as PIXFLARE_DATABASE (a URL that may hold
 *    a password) returns 0 or PF_EINVAL, and a refusal never repeats what
 *    follows the scheme of anything but a sqlite: value: the message shows
 *    at most the scheme. */
#include "config/config.h"
#include "base/err.h"
#include "fuzz_check.h"

#include <strings.h>

/* A refusal code no parser path returns, to tell the callback's apart. */
#define REFUSED (-100)

struct seen {
    size_t input_len;
    size_t lines;
    size_t calls;
    int refused;
};

static int on_pair(void *ctx, const char *key, const char *value)
{
    struct seen *s = ctx;
    FUZZ_CHECK(!s->refused);
    s->calls++;
    FUZZ_CHECK(s->calls <= s->lines);
    size_t klen = strlen(key), vlen = strlen(value);
    FUZZ_CHECK(klen >= 1);
    FUZZ_CHECK(klen + vlen <= s->input_len);
    for (const char *p = key; *p; p++)
        FUZZ_CHECK((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || *p == '_');
    FUZZ_CHECK(strchr(value, '\n') == NULL);
    /* Refuse some keys to exercise the "unknown setting" path. */
    if (key[0] == 'X') {
        s->refused = 1;
        return REFUSED;
    }
    return 0;
}

static void check_text(const uint8_t *data, size_t size)
{
    struct seen s = {size, 0, 0, 0};
    for (size_t i = 0; i < size; i++)
        s.lines += data[i] == '\n';
    s.lines++;
    char err[96];
    memset(err, 'x', sizeof(err));
    int rc = config_parse_text((const char *)data, size, on_pair, &s, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == PF_EINVAL || rc == REFUSED);
    FUZZ_CHECK((rc == REFUSED) == s.refused);
    if (rc != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        unsigned long line = 0;
        FUZZ_CHECK(sscanf(err, "line %lu: ", &line) == 1);
        FUZZ_CHECK(line >= 1 && line <= s.lines);
    }
}

static void check_bool(const uint8_t *data, size_t size)
{
    static const char *const yes[] = {"true", "1", "yes"};
    static const char *const no[] = {"false", "0", "no"};
    char *text = fuzz_cstr(data, size);
    int expect = -1;
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            expect = 1;
        if (strcasecmp(text, no[i]) == 0)
            expect = 0;
    }
    int v = -1;
    int rc = config_parse_bool(text, &v);
    if (expect < 0) {
        FUZZ_CHECK(rc == PF_EINVAL);
    } else {
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(v == expect);
    }
    free(text);
}

static void check_database(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    struct config cfg;
    char err[512];
    if (strlen(text) == size && size > 0) { /* an environment value has no NUL */
        /* putenv of one static buffer, not setenv: glibc's setenv never
         * frees the strings it replaces, and over millions of inputs the
         * process grew past libFuzzer's RSS limit. */
        static char env[sizeof("PIXFLARE_DATABASE=") + 4096];
        if (size >= sizeof(env) - sizeof("PIXFLARE_DATABASE="))
            goto done;
        snprintf(env, sizeof(env), "PIXFLARE_DATABASE=%s", text);
        putenv(env);
        int rc = config_load(NULL, &cfg, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || rc == PF_EINVAL);
        if (rc == 0)
            config_free(&cfg);
        /* The value as shown (between the first quote and "': ") is
         * "(hidden)" or the input's scheme and ":...(hidden)". */
        const char *open = strchr(err, '\''), *close = open ? strstr(open + 1, "': ") : NULL;
        if (rc != 0 && strncmp(text, "sqlite:", 7) != 0 && open != NULL && close != NULL &&
            strncmp(err, "PIXFLARE_DATABASE=", 18) == 0) {
            size_t n = (size_t)(close - open - 1), scheme = strcspn(text, ":");
            FUZZ_CHECK((n == 8 && memcmp(open + 1, "(hidden)", 8) == 0) ||
                       (n == scheme + 12 && memcmp(open + 1, text, scheme) == 0 &&
                        memcmp(open + 1 + scheme, ":...(hidden)", 12) == 0));
        }
    }
done:
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_text(data, size);
    check_bool(data, size);
    check_database(data, size);
    return 0;
}
