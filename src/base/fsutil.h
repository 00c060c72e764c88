/* fsutil.h - durable file helpers shared by storage, catalog and config.
 *
 * Durable writes follow the Redis aof.c recipe: write a temporary file in the
 * destination directory, fsync it, rename it over the target, fsync the
 * directory. A reader therefore sees either the old file or the whole new one,
 * never a prefix. All functions return 0 or a negative PF_E* code. */
#ifndef PF_FSUTIL_H
#define PF_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Create `path` and any missing parents with `mode` (like mkdir -p). */
int fsutil_mkdirs(const char *path, mode_t mode);

/* Atomically replace `path` with `len` bytes of `data`, file mode `mode`. */
int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Atomically copy the file `src` to `dst` (same recipe as fsutil_write_atomic). */
int fsutil_copy_atomic(const char *src, const char *dst, mode_t mode);

/* Read a whole regular file of at most `max` bytes. OUT: *data (malloc'd,
 * NUL-terminated, caller frees), *len. PF_ETOOBIG when larger than `max`. */
int fsutil_read_file(const char *path, size_t max, char **data, size_t *len);

/* fsync the directory that contains `path` so a rename in it is durable. */
int fsutil_sync_parent(const char *path);

/* Fill `buf` with `len` bytes from the kernel's CSPRNG. */
int fsutil_random(void *buf, size_t len);

#endif
