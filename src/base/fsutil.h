/* fsutil.h - durable file helpers shared by storage, catalog and config.
 *
 * Durable writes follow the Redis aof.c recipe: write a temporary file in the
 * destination directory, fsync it, rename it over the target, fsync the
 * directory. A reader therefore sees either the old file or the whole new one,
 * never a prefix. All functions return 0 or a negative PF_E* code.
 *
 * The temporary file is "<target>.tmp.<16 hex digits>", the digits from
 * the kernel's CSPRNG, created with O_EXCL: unique across the processes
 * and the hosts that share a directory (the storage directory on a network
 * filesystem), where a pid, or mkstemp's six letters, may clash. A writer
 * killed half-way leaves its temporary behind: readers never open such a
 * name, and fsutil_is_temp() tells it from real files for a sweep. */
#ifndef PF_FSUTIL_H
#define PF_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Create `path` and any missing parents with `mode` (like mkdir -p). */
int fsutil_mkdirs(const char *path, mode_t mode);

/* Atomically replace `path` with `len` bytes of `data`, file mode `mode`. */
int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Create `path` with `len` bytes of `data`, file mode `mode`, unless it
 * exists: the first writer wins and a published file never changes, so a
 * reader that has opened or measured it is never switched to another
 * writer's bytes. The temporary is linked to `path` (link(2) fails when
 * the name is taken, atomically, NFS included); on a filesystem without
 * hard links it is renamed over it instead. PF_EEXISTS when `path` was
 * there first (another writer's whole file: use it). */
int fsutil_write_new(const char *path, const void *data, size_t len, mode_t mode);

/* Whether the last component of `path` is a temporary file's name, as
 * fsutil's writers make them (also those of older versions, mkstemp's
 * "<target>.tmp.XXXXXX"). */
int fsutil_is_temp(const char *path);

/* Atomically copy the file `src` to `dst` (same recipe as fsutil_write_atomic). */
int fsutil_copy_atomic(const char *src, const char *dst, mode_t mode);

/* Read a whole regular file of at most `max` bytes. OUT: *data (malloc'd,
 * NUL-terminated, caller frees), *len. PF_ETOOBIG when larger than `max`. */
int fsutil_read_file(const char *path, size_t max, char **data, size_t *len);

/* fsync the directory that contains `path` so a rename in it is durable. */
int fsutil_sync_parent(const char *path);

/* Fill `buf` with `len` bytes from the kernel's CSPRNG. */
int fsutil_random(void *buf, size_t len);

/* Bytes free to an unprivileged writer on the filesystem holding `path`
 * (statvfs: f_bavail * f_frsize). OUT: *bytes. PF_ENOTFOUND when `path`
 * does not exist, PF_EIO otherwise. */
int fsutil_free_bytes(const char *path, uint64_t *bytes);

#endif
