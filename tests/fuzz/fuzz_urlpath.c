/* fuzz_urlpath.c - fuzzes urlpath_parse() (src/urlpath.c) with raw request paths.
 *
 * The bytes are passed as they are, without a terminator: libFuzzer hands
 * over an exactly sized heap copy, so AddressSanitizer flags any read past
 * `len`. Invariants checked:
 *  - the return value is 0 or PF_EINVAL;
 *  - on failure, status is 400, 404 or 414 (414 whenever the path is longer
 *    than URLPATH_MAX) and code and message are non-empty strings;
 *  - on success, the fields that the kind promises are set and the others are
 *    NULL; every decoded segment (owner, album, filename, id, route) is
 *    NUL-terminated inside out->buf, 1..URLPATH_SEGMENT_MAX bytes long, has no
 *    '/', '\\' or control character, and is never "." or "..";
 *  - BY_NAME owners are not reserved, BY_ID ids are six [a-z0-9] characters,
 *    the variant indexes variant_table;
 *  - re-encoding the decoded route (escaping '%' only, then escaping every
 *    byte that is not alphanumeric) and parsing it again gives the same route. */
#include "base/err.h"
#include "fuzz_check.h"
#include "cdn/urlpath.h"
#include "base/variant.h"

static void check_segment(const struct urlpath *u, const char *s)
{
    FUZZ_CHECK(s != NULL);
    FUZZ_CHECK(s >= u->buf && s < u->buf + sizeof(u->buf));
    const char *end = memchr(s, '\0', (size_t)(u->buf + sizeof(u->buf) - s));
    FUZZ_CHECK(end != NULL);
    size_t n = (size_t)(end - s);
    FUZZ_CHECK(n >= 1 && n <= URLPATH_SEGMENT_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        FUZZ_CHECK(c != '/' && c != '\\');
        FUZZ_CHECK(c >= 0x20 && c != 0x7f);
    }
    FUZZ_CHECK(strcmp(s, ".") != 0 && strcmp(s, "..") != 0);
}

static void check_success(const struct urlpath *u)
{
    FUZZ_CHECK(u->variant >= 0 && u->variant < VARIANT_COUNT);
    switch (u->kind) {
    case URLPATH_BY_NAME:
        check_segment(u, u->owner);
        check_segment(u, u->album);
        check_segment(u, u->filename);
        FUZZ_CHECK(u->id == NULL && u->route == NULL);
        FUZZ_CHECK(!urlpath_reserved_owner(u->owner));
        break;
    case URLPATH_BY_ID:
        check_segment(u, u->id);
        FUZZ_CHECK(strlen(u->id) == 6);
        for (const char *p = u->id; *p; p++)
            FUZZ_CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'));
        FUZZ_CHECK(u->owner == NULL && u->album == NULL && u->filename == NULL);
        FUZZ_CHECK(u->route == NULL);
        break;
    case URLPATH_SERVER:
        check_segment(u, u->route);
        FUZZ_CHECK(urlpath_reserved_owner(u->route));
        FUZZ_CHECK(u->owner == NULL && u->album == NULL && u->filename == NULL);
        FUZZ_CHECK(u->id == NULL);
        break;
    default:
        FUZZ_CHECK(!"unknown urlpath kind");
    }
}

/* Append '/' and the escaped segment `s` to buf (capacity cap, *w used).
 * Returns 0, or -1 when it does not fit. */
static int append_segment(char *buf, size_t cap, size_t *w, const char *s, int escape_all)
{
    static const char hex[] = "0123456789ABCDEF";
    if (*w + 1 > cap)
        return -1;
    buf[(*w)++] = '/';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '%' || (escape_all && !alnum)) {
            if (*w + 3 > cap)
                return -1;
            buf[(*w)++] = '%';
            buf[(*w)++] = hex[c >> 4];
            buf[(*w)++] = hex[c & 15];
        } else {
            if (*w + 1 > cap)
                return -1;
            buf[(*w)++] = (char)c;
        }
    }
    return 0;
}

static int same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Re-encode the parsed route and check that it parses back to itself. A
 * route without a variant segment is re-encoded with "original", which must
 * give the same variant index. */
static void check_roundtrip(const struct urlpath *u, int escape_all)
{
    static struct urlpath again;
    char path[URLPATH_MAX];
    size_t w = 0;
    const char *segs[4] = {NULL, NULL, NULL, NULL};
    int n = 0;
    if (u->kind == URLPATH_SERVER) {
        segs[n++] = u->route;
    } else if (u->kind == URLPATH_BY_ID) {
        segs[n++] = "i";
        segs[n++] = u->id;
        segs[n++] = variant_table[u->variant].name;
    } else {
        segs[n++] = u->owner;
        segs[n++] = u->album;
        segs[n++] = u->filename;
        segs[n++] = variant_table[u->variant].name;
    }
    for (int i = 0; i < n; i++)
        if (append_segment(path, sizeof(path), &w, segs[i], escape_all) != 0)
            return; /* escaping made it longer than a path may be */
    int rc = urlpath_parse(path, w, &again);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(again.kind == u->kind);
    FUZZ_CHECK(same(again.owner, u->owner) && same(again.album, u->album));
    FUZZ_CHECK(same(again.filename, u->filename) && same(again.id, u->id));
    FUZZ_CHECK(same(again.route, u->route));
    if (u->kind != URLPATH_SERVER)
        FUZZ_CHECK(again.variant == u->variant);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct urlpath u;
    int rc = urlpath_parse((const char *)data, size, &u);
    if (rc == 0) {
        check_success(&u);
        check_roundtrip(&u, 0);
        check_roundtrip(&u, 1);
    } else {
        FUZZ_CHECK(rc == PF_EINVAL);
        FUZZ_CHECK(u.status == 400 || u.status == 404 || u.status == 414);
        FUZZ_CHECK(u.code != NULL && u.message != NULL);
        FUZZ_CHECK(u.code[0] != '\0' && u.message[0] != '\0');
        if (size > URLPATH_MAX)
            FUZZ_CHECK(u.status == 414);
    }
    return 0;
}
