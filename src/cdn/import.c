/* import.c - see import.h. */
#include "cdn/import.h"

#include "store/db.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "cdn/storage.h"
#include "cdn/urlpath.h"
#include "base/utf8.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int name_chars_ok(const char *s)
{
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

const char *import_check_owner(const char *name)
{
    if (name[0] == '\0' || strlen(name) > 64)
        return "owner names are 1-64 characters";
    if (urlpath_reserved_owner(name))
        return "reserved for the server's own routes (i, v1, dashboard, metrics, healthz, "
               "readyz, and names starting with '.' or '_')";
    if (!name_chars_ok(name))
        return "owner names use only letters, digits, '.', '_' and '-'";
    return NULL;
}

const char *import_check_album(const char *name)
{
    if (name[0] == '\0' || strlen(name) > 128)
        return "album names are 1-128 characters";
    if (name[0] == '.')
        return "album names may not start with '.'";
    if (!name_chars_ok(name))
        return "album names use only letters, digits, '.', '_' and '-'";
    return NULL;
}

const char *import_check_filename(const char *name)
{
    if (name[0] == '\0' || strlen(name) > 255)
        return "file names are 1-255 bytes";
    if (name[0] == '.')
        return "hidden file (name starts with '.')";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            return "file names may not hold control characters or '\\'";
    if (!utf8_valid(name, strlen(name)))
        return "file names must be UTF-8 (the API answers in JSON)";
    return NULL;
}

int import_new_id(char id[7])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    int n = 0;
    while (n < 6) {
        unsigned char buf[16];
        int rc = fsutil_random(buf, sizeof(buf));
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < sizeof(buf) && n < 6; i++)
            if (buf[i] < 252) /* 252 = 7 * 36: no modulo bias */
                id[n++] = alphabet[buf[i] % 36];
    }
    id[6] = '\0';
    return 0;
}

/* SHA-256 of a file and its first bytes. OUT: hex[65], head, *head_len, *size. */
static int hash_file(const char *path, char hex[65], unsigned char head[16], size_t *head_len,
                     int64_t *size)
{
    unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int rc = 0;
    int64_t total = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = PF_EIO;
        goto done;
    }
    *head_len = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = PF_EIO;
            goto done;
        }
        if (r == 0)
            break;
        if (total == 0) {
            *head_len = (size_t)r < 16 ? (size_t)r : 16;
            memcpy(head, buf, *head_len);
        }
        total += r;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned int i = 0; i < 32 && i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *size = total;
done:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static void refuse(FILE *errs, struct import_stats *stats, const char *rel, const char *why)
{
    fprintf(errs, "pixflare import: %s: %s\n", rel, why);
    stats->refused++;
}

/* Import one file. Returns 0 unless the import cannot go on. */
static int import_file(struct db *db, struct storage *st, const char *path, const char *owner,
                       const char *album, const char *filename, FILE *out, FILE *errs,
                       struct import_stats *stats)
{
    char rel[512];
    struct db_image img, existing;
    unsigned char head[16];
    size_t head_len = 0;
    const char *type = NULL, *why;
    snprintf(rel, sizeof(rel), "%s/%s/%s", owner, album, filename);

    why = import_check_filename(filename);
    if (why != NULL) {
        refuse(errs, stats, rel, why);
        return 0;
    }
    memset(&img, 0, sizeof(img));
    if (hash_file(path, img.sha256, head, &head_len, &img.size_bytes) != 0) {
        refuse(errs, stats, rel, strerror(errno));
        return 0;
    }
    if (storage_sniff(head, head_len, &type) != 0) {
        refuse(errs, stats, rel, "not a JPEG, PNG, WebP or GIF image");
        return 0;
    }
    int rc = db_image_by_path(db, owner, album, filename, &existing);
    if (rc == 0) {
        if (strcmp(existing.sha256, img.sha256) != 0) {
            refuse(errs, stats, rel,
                   "already imported with different content; images are immutable "
                   "(served with Cache-Control: immutable), import it under a new name");
            return 0;
        }
        fprintf(out, "%s\t%s\n", existing.id, rel);
        stats->unchanged++;
        return 0;
    }
    if (rc != PF_ENOTFOUND)
        return rc;
    if (storage_probe(path, &img.width, &img.height) != 0) {
        refuse(errs, stats, rel, "image data cannot be decoded");
        return 0;
    }
    snprintf(img.owner, sizeof(img.owner), "%s", owner);
    snprintf(img.album, sizeof(img.album), "%s", album);
    snprintf(img.filename, sizeof(img.filename), "%s", filename);
    snprintf(img.content_type, sizeof(img.content_type), "%s", type);
    img.created_at = (int64_t)time(NULL);
    for (int attempt = 0; attempt < 8; attempt++) {
        rc = import_new_id(img.id);
        if (rc != 0)
            return rc;
        struct storage_ref ref = {img.id, img.sha256, img.content_type, (time_t)img.created_at};
        /* Copy first, then insert: a row never points at a missing file.
         * A taken id (in storage or in the table) means: draw another. */
        rc = storage_put_original(st, &ref, path);
        if (rc == PF_EEXISTS)
            continue;
        if (rc != 0) {
            refuse(errs, stats, rel, "cannot copy into the storage directory");
            return 0;
        }
        rc = db_image_insert(db, &img);
        if (rc == 0)
            break;
        storage_remove(st, &ref);
        if (rc != PF_EEXISTS)
            return rc;
        if (db_image_by_path(db, owner, album, filename, &existing) == 0) {
            /* Another import registered it meanwhile. */
            fprintf(out, "%s\t%s\n", existing.id, rel);
            stats->unchanged++;
            return 0;
        }
    }
    if (rc != 0)
        return rc;
    fprintf(out, "%s\t%s\n", img.id, rel);
    stats->imported++;
    return 0;
}

const char *import_check_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return errno == ENOENT ? "does not exist" : strerror(errno);
    if (!S_ISDIR(sb.st_mode))
        return "is not a directory (import takes DIR holding <owner>/<album>/<file>)";
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == EACCES ? "cannot be read: Permission denied" : strerror(errno);
    closedir(d);
    return NULL;
}

/* Why a directory the walk met cannot be listed. */
static const char *unreadable(const char *path)
{
    const char *why = import_check_dir(path);
    return why != NULL ? why : "cannot be read";
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Sorted entries of a directory, without "." and "..". OUT: *list, *n. */
static int list_dir(const char *path, struct dirent ***list, int *n)
{
    *n = scandir(path, list, NULL, alphasort);
    return *n < 0 ? PF_EIO : 0;
}

static void free_list(struct dirent **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static int skip_entry(const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

int import_dir(struct db *db, struct storage *st, const char *dir, FILE *out, FILE *errs,
               struct import_stats *stats)
{
    struct dirent **owners = NULL, **albums = NULL, **files = NULL;
    int nowners = 0, nalbums = 0, nfiles = 0, rc;
    char path[PATH_MAX];
    memset(stats, 0, sizeof(*stats));
    rc = list_dir(dir, &owners, &nowners);
    if (rc != 0)
        return rc;
    for (int o = 0; o < nowners && rc == 0; o++) {
        const char *owner = owners[o]->d_name;
        if (skip_entry(owner))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, owner);
        if (!is_dir(path)) {
            refuse(errs, stats, owner, "not a directory (expected DIR/<owner>/<album>/<file>)");
            continue;
        }
        const char *why = import_check_owner(owner);
        if (why != NULL) {
            refuse(errs, stats, owner, why);
            continue;
        }
        if (list_dir(path, &albums, &nalbums) != 0) {
            refuse(errs, stats, owner, unreadable(path));
            continue;
        }
        for (int a = 0; a < nalbums && rc == 0; a++) {
            const char *album = albums[a]->d_name;
            if (skip_entry(album))
                continue;
            char rel[256];
            snprintf(rel, sizeof(rel), "%s/%s", owner, album);
            snprintf(path, sizeof(path), "%s/%s/%s", dir, owner, album);
            if (!is_dir(path)) {
                refuse(errs, stats, rel, "not a directory (expected DIR/<owner>/<album>/<file>)");
                continue;
            }
            why = import_check_album(album);
            if (why != NULL) {
                refuse(errs, stats, rel, why);
                continue;
            }
            if (list_dir(path, &files, &nfiles) != 0) {
                refuse(errs, stats, rel, unreadable(path));
                continue;
            }
            for (int f = 0; f < nfiles && rc == 0; f++) {
                const char *file = files[f]->d_name;
                if (skip_entry(file))
                    continue;
                int n = snprintf(path, sizeof(path), "%s/%s/%s/%s", dir, owner, album, file);
                struct stat sb;
                if (n >= (int)sizeof(path) || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
                    char frel[512];
                    snprintf(frel, sizeof(frel), "%s/%s", rel, file);
                    refuse(errs, stats, frel, "not a regular file");
                    continue;
                }
                rc = import_file(db, st, path, owner, album, file, out, errs, stats);
            }
            free_list(files, nfiles);
            files = NULL;
        }
        free_list(albums, nalbums);
        albums = NULL;
    }
    free_list(owners, nowners);
    return rc;
}
