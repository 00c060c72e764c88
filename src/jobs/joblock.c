/* joblock.c - see joblock.h. */
#include "jobs/joblock.h"

#include "base/err.h"
#include "base/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

int joblock_sleep(int64_t seconds, const atomic_int *stop)
{
    for (int64_t ms = seconds * 1000; ms > 0; ms -= 100) {
        if (stop && atomic_load(stop))
            return PF_ECONFLICT;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return stop && atomic_load(stop) ? PF_ECONFLICT : 0;
}

int joblock_take(const char *data_dir, const atomic_int *stop, void (*waiting)(void), int *fd,
                 char *err, size_t errlen)
{
    char path[4096];
    int told = 0;
    fsutil_mkdirs(data_dir, 0755);
    snprintf(path, sizeof(path), "%s/.batch.lock", data_dir);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return PF_EIO;
    }
    while (flock(f, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
            close(f);
            return PF_EIO;
        }
        if (!told && waiting != NULL)
            waiting();
        told = 1;
        if (joblock_sleep(1, stop) != 0) {
            close(f);
            snprintf(err, errlen, "stopped");
            return PF_ECONFLICT;
        }
    }
    *fd = f;
    return 0;
}

void joblock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}
