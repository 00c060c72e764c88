/* catalog.h - the image catalog as the server sees it: an in-memory index
 * of the `images` table by owner/album/filename and by id.
 *
 * Lookups take no lock and make no database round trip: the index is built
 * at open and extended by catalog_refresh(), which reads only rows added since
 * the last refresh (images are never changed in place, only added). Entries
 * live until catalog_close(); pointers handed out stay valid until then. */
#ifndef PF_CATALOG_H
#define PF_CATALOG_H

#include "base/variant.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct catalog;
struct storage_obj;

struct catalog_image {
    char id[8];
    const char *owner, *album, *filename;
    char content_type[32];
    char sha256[65];
    int64_t size_bytes;
    time_t created_at;
    uint8_t owner_hash[16]; /* keyed hash of owner, as analytics stores it */
    /* Storage objects per variant, published by storage_get(). */
    _Atomic(struct storage_obj *) objs[VARIANT_COUNT];
    /* Unix time before which a failed variant is not generated again. */
    _Atomic int64_t fail_until[VARIANT_COUNT];
};

/* Open the catalog over the database at `database` (db_open()'s URL) and load it;
 * owner hashes are keyed with `secret`. OUT: *out, released with
 * catalog_close(). A reason goes into err. */
int catalog_open(const char *database, const char *secret, struct catalog **out, char *err,
                 size_t errlen);
void catalog_close(struct catalog *cat);

/* Lock-free lookups; NULL when absent. On a miss, the caller may call
 * catalog_refresh() and look again. */
struct catalog_image *catalog_find_name(const struct catalog *cat, const char *owner,
                                        const char *album, const char *filename);
struct catalog_image *catalog_find_id(const struct catalog *cat, const char *id);

/* The keyed hash of a known owner (one with at least one image), or NULL. */
const uint8_t *catalog_owner_hash(const struct catalog *cat, const char *owner);

/* Load rows added to the database since the last refresh. At most one
 * refresh runs at a time and at most one per 200 ms: a flood of lookups for
 * unknown images costs the database nothing. Returns 1 if rows were added. */
int catalog_refresh(struct catalog *cat);

/* Whether catalog_refresh() would look at the database now. */
int catalog_refresh_due(const struct catalog *cat);

/* Number of images indexed. */
size_t catalog_count(const struct catalog *cat);

#endif
