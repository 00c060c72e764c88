/* fuzz_names.c - fuzzes the checks on the names `pixflare import` reads from
 * disk and `keys create --owner` takes: import_check_owner(),
 * import_check_album() and import_check_filename() (src/cdn/import.c), and
 * that every name they let in can be asked for through the CDN's URL parser,
 * urlpath_parse() (src/cdn/urlpath.c). The rest of import.c (the database,
 * the storage, libvips) is stubbed: the checks never reach it.
 *
 * Input layout: three NUL-separated names, owner, album and file name (a
 * missing one is "x"). Invariants checked:
 *  - each check answers NULL or a non-empty reason; an accepted owner or
 *    album is 1-64 or 1-128 characters of [A-Za-z0-9._-] not starting with
 *    '.'; an accepted file name is 1-255 bytes of valid UTF-8 with no control
 *    character, DEL or '\\', not starting with '.';
 *  - when all three are accepted (and the file name has no '/', which a
 *    name read from a directory cannot hold), the path /owner/album/file with
 *    every byte but [A-Za-z0-9] %-escaped, and that path with each variant
 *    appended, parse as BY_NAME to the same three names and the variant. */
#include "base/err.h"
#include "base/utf8.h"
#include "base/variant.h"
#include "cdn/import.h"
#include "cdn/storage.h"
#include "cdn/urlpath.h"
#include "fuzz_check.h"
#include "store/db.h"

/* import.c's other callees, never reached by the checks. */
int db_image_insert(struct db *db, const struct db_image *img)
{
    (void)db, (void)img;
    abort();
}
int db_image_by_path(struct db *db, const char *owner, const char *album, const char *filename,
                     struct db_image *out)
{
    (void)db, (void)owner, (void)album, (void)filename, (void)out;
    abort();
}
int storage_sniff(const unsigned char *head, size_t len, const char **content_type)
{
    (void)head, (void)len, (void)content_type;
    abort();
}
int storage_probe(const char *path, int *width, int *height)
{
    (void)path, (void)width, (void)height;
    abort();
}
int storage_put_original(struct storage *st, const struct storage_ref *ref, const char *src)
{
    (void)st, (void)ref, (void)src;
    abort();
}
int storage_remove(struct storage *st, const struct storage_ref *ref)
{
    (void)st, (void)ref;
    abort();
}

static int plain(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n < 1 || n > max || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static size_t escape(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name[3] = {NULL, NULL, NULL};
    size_t p = 0;
    for (int i = 0; i < 3; i++) {
        const uint8_t *nul = p < size ? memchr(data + p, 0, size - p) : NULL;
        size_t n = p >= size ? 0 : nul ? (size_t)(nul - (data + p)) : size - p;
        name[i] = p >= size ? fuzz_cstr((const uint8_t *)"x", 1) : fuzz_cstr(data + p, n);
        p += n + 1;
    }
    const char *why[3] = {import_check_owner(name[0]), import_check_album(name[1]),
                          import_check_filename(name[2])};
    for (int i = 0; i < 3; i++)
        FUZZ_CHECK(why[i] == NULL || why[i][0] != '\0');
    if (why[0] == NULL)
        FUZZ_CHECK(plain(name[0], 64) && !urlpath_reserved_owner(name[0]));
    if (why[1] == NULL)
        FUZZ_CHECK(plain(name[1], 128));
    if (why[2] == NULL) {
        size_t n = strlen(name[2]);
        FUZZ_CHECK(n >= 1 && n <= 255 && name[2][0] != '.' && utf8_valid(name[2], n));
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK((unsigned char)name[2][i] >= 0x20 && name[2][i] != 0x7f &&
                       name[2][i] != '\\');
    }
    if (why[0] == NULL && why[1] == NULL && why[2] == NULL && strchr(name[2], '/') == NULL) {
        char path[1 + 64 * 3 + 1 + 128 * 3 + 1 + 255 * 3 + 1 + 16];
        size_t n = 0;
        for (int i = 0; i < 3; i++) {
            path[n++] = '/';
            n += escape(name[i], path + n);
        }
        for (int v = -1; v < VARIANT_COUNT; v++) {
            size_t len = n;
            if (v >= 0)
                len += (size_t)snprintf(path + n, sizeof(path) - n, "/%s", variant_table[v].name);
            struct urlpath u;
            int rc = urlpath_parse(path, len, &u);
            if (rc != 0)
                fprintf(stderr, "%.*s: %d %s\n", (int)len, path, u.status, u.message);
            FUZZ_CHECK(rc == 0 && u.kind == URLPATH_BY_NAME);
            FUZZ_CHECK(strcmp(u.owner, name[0]) == 0 && strcmp(u.album, name[1]) == 0 &&
                       strcmp(u.filename, name[2]) == 0);
            FUZZ_CHECK(u.variant == (v >= 0 ? v : VARIANT_ORIGINAL_INDEX));
        }
    }
    for (int i = 0; i < 3; i++)
        free(name[i]);
    return 0;
}
