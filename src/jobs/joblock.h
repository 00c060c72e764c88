/* joblock.h - one batch job at a time per data directory.
 *
 * `pixflare aggregate`, `pixflare cleanup` and the scheduler's jobs take
 * DATA_DIR/.batch.lock (flock), so that a scheduled job and a command never
 * run at once; the lock goes with its descriptor, so a killed holder never
 * leaves it taken. Waits are cut short by a stop flag (SIGINT, SIGTERM, a
 * server stopping). */
#ifndef PF_JOBLOCK_H
#define PF_JOBLOCK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Take the lock of `data_dir`, waiting for its holder; `waiting` (if not
 * NULL) is called once if the lock is busy. Gives up with PF_ECONFLICT when
 * *stop is set (stop may be NULL). OUT: *fd, for joblock_release(). */
int joblock_take(const char *data_dir, const atomic_int *stop, void (*waiting)(void), int *fd,
                 char *err, size_t errlen);
void joblock_release(int fd);

/* Sleep up to `seconds`, returning early with PF_ECONFLICT when *stop is
 * set (stop may be NULL). */
int joblock_sleep(int64_t seconds, const atomic_int *stop);

#endif
