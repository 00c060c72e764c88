/* storage.h - the R2 role: originals and cached variants on local disk.
 *
 * Layout under the storage directory, keyed only by image id so that no
 * client-supplied name ever reaches the filesystem:
 *
 *     <dir>/<id[0..1]>/<id>/original.<ext>      as imported, byte for byte
 *     <dir>/<id[0..1]>/<id>/<variant>.<ext>     generated on first request
 *
 * Every file is written as temp + fsync + rename (fsutil.h), so a reader
 * never sees a partial file. Several nodes may share the directory (a
 * network filesystem): temporary names are unique across hosts, and a
 * variant is published first-writer-wins (fsutil_write_new()), so two
 * nodes making the same variant at once both serve the one file that won,
 * and a published file never changes under a reader. A temporary left by
 * a writer killed half-way is never read, and storage_sweep_temps()
 * removes it later. A served file is described by a `struct storage_obj`, made
 * for an (image, variant) and published through an atomic slot the caller
 * owns; objects are immutable. Small objects (up to 1 MiB) are kept in
 * memory so a hot image is served without touching the filesystem: the
 * bytes held stay within the cache budget, and past it the least useful
 * object is evicted (SIEVE; chosen on a Zipf trace, BENCHMARKS.md): its
 * slot gets a stand-in that sends the file from disk, and the object is
 * read into memory again when it is asked for twice. Whoever gets an
 * object holds a reference to it and gives it back with
 * storage_release(): an evicted object's memory is freed only when the
 * last response using it is done. Objects served from disk (larger ones,
 * or when the budget cannot hold them) stay published until
 * storage_close(). */
#ifndef PF_STORAGE_H
#define PF_STORAGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct storage;

struct storage_obj {
    const char *content_type;
    char etag[48];          /* quoted strong entity tag */
    char last_modified[30]; /* IMF-fixdate */
    time_t mtime;
    uint64_t size;
    const unsigned char *data; /* whole body, or NULL: serve from `path` */
    char *path;
};

/* What storage needs to know about an image to find or make its files. */
struct storage_ref {
    const char *id;
    const char *sha256; /* hex of the original */
    const char *content_type;
    time_t created_at;
};

/* Open the storage directory (created if missing). `cache_bytes` bounds the
 * memory used for hot objects. OUT: *out, released with storage_close(). */
int storage_open(const char *dir, size_t cache_bytes, struct storage **out);
void storage_close(struct storage *st);

/* Start/stop libvips. Call once per process around any storage use that may
 * generate variants or inspect images. */
int storage_vips_init(const char *argv0);
void storage_vips_shutdown(void);

/* The file extension (without dot) used for a content type, or NULL if the
 * type is not one Pixflare serves. */
const char *storage_ext(const char *content_type);

/* Sniff the first bytes of a file. OUT: *content_type (static string).
 * PF_EFORMAT for anything but JPEG, PNG, WebP or GIF. */
int storage_sniff(const unsigned char *head, size_t len, const char **content_type);

/* Inspect an image file with libvips (header only). OUT: *width, *height. */
int storage_probe(const char *path, int *width, int *height);

/* Copy `src` in as the original of image `ref`, whose id must be new:
 * PF_EEXISTS when the id's directory already exists (nothing is written). */
int storage_put_original(struct storage *st, const struct storage_ref *ref, const char *src);

/* Remove an original put by storage_put_original() (and its directory) when
 * its registration failed. Variants must not exist yet. */
int storage_remove(struct storage *st, const struct storage_ref *ref);

/* Find or generate the object for `variant` of `ref`, publishing it in *slot
 * (the caller's atomic pointer for that image and variant; it must outlive
 * the storage, and only storage functions may write it). Blocking. OUT:
 * *out, a reference the caller gives back with storage_release().
 * PF_ENOTFOUND when the original is missing, PF_EIMAGE when generation
 * fails. */
int storage_get(struct storage *st, const struct storage_ref *ref, int variant,
                _Atomic(struct storage_obj *) *slot, const struct storage_obj **out);

/* The object published in *slot with a reference taken, or NULL (never
 * made, or an evicted object asked for again): then storage_get() reads or
 * makes it. Never blocks,
 * takes no lock and makes no system call. `count`: whether this look is a
 * request's, counted in the hit/miss metrics and marking the object as
 * used again (0 for a request's second look, after the storage_get() that
 * counted its miss and read the object in). */
const struct storage_obj *storage_take(struct storage *st, _Atomic(struct storage_obj *) *slot,
                                       int count);

/* Give back a reference from storage_get() or storage_take(); NULL is
 * ignored. Any thread, any time before storage_close(). */
void storage_release(const struct storage_obj *obj);

/* Remove the temporary files (fsutil_is_temp()) last written more than
 * `older_than` seconds ago under the storage directory `dir`: what writers
 * killed half-way left. Gives up between directories with PF_ECONFLICT
 * when *stop is set (stop may be NULL). OUT: *removed, also on error. */
int storage_sweep_temps(const char *dir, int64_t older_than, const atomic_int *stop,
                        uint64_t *removed);

#endif
