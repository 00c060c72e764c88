/* fsync_eio.c - a fault-injecting LD_PRELOAD shim for the tests
 * (tests/integration/test_faults.py builds it with cc -shared -fPIC).
 *
 * While the file named by PF_FAULT_ON exists, the calls named in
 * PF_FAULT_OPS (a comma list of fsync, fdatasync, msync, pwrite, write;
 * default "fsync,fdatasync,msync") fail with EIO when they act on a file
 * whose path contains one of PF_FAULT_MATCH's comma-separated substrings
 * (default "/events/"; msync has no descriptor and fails whenever on).
 * Each injected failure appends "op path" to PF_FAULT_LOG, if set, so a
 * test can tell that the fault did happen. Everything else is passed on
 * untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#define NEXT(type, name) ((type)dlsym(RTLD_NEXT, name))

static int listed(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static int matches(const char *list, const char *path)
{
    char one[256];
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0 && len < sizeof(one)) {
            memcpy(one, p, len);
            one[len] = '\0';
            if (strstr(path, one) != NULL)
                return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Whether `op` on `fd` (-1: no descriptor) is to fail now. */
static int fault(const char *op, int fd)
{
    const char *on = getenv("PF_FAULT_ON");
    const char *ops = getenv("PF_FAULT_OPS");
    const char *match = getenv("PF_FAULT_MATCH");
    char link[64], path[4096] = "";
    if (on == NULL || !listed(ops ? ops : "fsync,fdatasync,msync", op) || access(on, F_OK) != 0)
        return 0;
    if (fd >= 0) {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof(path) - 1);
        if (n <= 0)
            return 0;
        path[n] = '\0';
        if (!matches(match ? match : "/events/", path))
            return 0;
    }
    const char *logp = getenv("PF_FAULT_LOG");
    if (logp != NULL) {
        int lfd = open(logp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (lfd >= 0) {
            char line[4200];
            int len = snprintf(line, sizeof(line), "%s %s\n", op, path);
            /* the real write: never this shim's again */
            if (len > 0 &&
                NEXT(ssize_t(*)(int, const void *, size_t), "write")(lfd, line, (size_t)len) < 0)
                len = 0;
            close(lfd);
        }
    }
    return 1;
}

int fsync(int fd)
{
    if (fault("fsync", fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(int (*)(int), "fsync")(fd);
}

int fdatasync(int fd)
{
    if (fault("fdatasync", fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(int (*)(int), "fdatasync")(fd);
}

int msync(void *addr, size_t len, int flags)
{
    if (fault("msync", -1)) {
        errno = EIO;
        return -1;
    }
    return NEXT(int (*)(void *, size_t, int), "msync")(addr, len, flags);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (fault("pwrite", fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(ssize_t(*)(int, const void *, size_t, off_t), "pwrite")(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    if (fault("pwrite", fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(ssize_t(*)(int, const void *, size_t, off_t), "pwrite64")(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    /* The log's own write() and every socket pass by: only files that match. */
    if (fault("write", fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(ssize_t(*)(int, const void *, size_t), "write")(fd, buf, n);
}
