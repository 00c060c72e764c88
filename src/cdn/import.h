/* import.h - `pixflare import DIR`: register DIR/<owner>/<album>/<file>.
 *
 * Each image is copied into storage and given a 6-character id; one line
 * "<id>\t<owner>/<album>/<file>" per image goes to `out`, and a message per
 * refused file goes to `errs`. Images are immutable: re-importing the same
 * bytes under the same name is a no-op that prints the existing id, while
 * different bytes under a name already taken are refused. */
#ifndef PF_IMPORT_H
#define PF_IMPORT_H

#include <stdio.h>

struct db;
struct storage;

struct import_stats {
    int imported;  /* new images */
    int unchanged; /* already present with the same bytes */
    int refused;   /* reported on errs */
};

/* Import everything under `dir`. OUT: *stats. Returns 0 when the walk
 * completed (even if some files were refused), or a PF_E* code when it could
 * not go on (unreadable DIR, database failure). */
int import_dir(struct db *db, struct storage *st, const char *dir, FILE *out, FILE *errs,
               struct import_stats *stats);

/* Whether `dir` can be imported from. Returns NULL, or why not, to follow
 * the path in a message: "does not exist", "is not a directory ...",
 * "cannot be read: Permission denied" (static text). */
const char *import_check_dir(const char *dir);

/* Validate names as import does. Return NULL when fine, else the reason. */
const char *import_check_owner(const char *name);
const char *import_check_album(const char *name);
const char *import_check_filename(const char *name);

/* Make a random 6-character [a-z0-9] image id into id[7]. */
int import_new_id(char id[7]);

#endif
