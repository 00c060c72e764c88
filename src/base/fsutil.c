/* fsutil.c - see fsutil.h. */
#include "base/fsutil.h"

#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int fsutil_mkdirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return PF_EINVAL;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return PF_EIO;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return PF_EIO;
    return 0;
}

int fsutil_sync_parent(const char *path)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(dir))
        return PF_EINVAL;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return PF_EIO;
    int rc = fsync(fd) == 0 ? 0 : PF_EIO;
    close(fd);
    return rc;
}

#define TEMP_MARK ".tmp."

/* Open a fresh temporary file beside `path` (see fsutil.h for its name).
 * OUT: tmp (its name), *fd. */
static int open_temp_beside(const char *path, mode_t mode, char tmp[PATH_MAX], int *fd)
{
    /* A clash of 64 random bits is all but impossible; O_EXCL makes one
     * harmless (another name is drawn). */
    for (int attempt = 0; attempt < 4; attempt++) {
        unsigned long long r = 0;
        if (fsutil_random(&r, sizeof(r)) != 0)
            return PF_EIO;
        int n = snprintf(tmp, PATH_MAX, "%s" TEMP_MARK "%016llx", path, r);
        if (n < 0 || n >= PATH_MAX)
            return PF_EINVAL;
        *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (*fd < 0 && errno == EEXIST)
            continue;
        if (*fd < 0)
            return PF_EIO;
        /* The mode asked for, whatever the umask. */
        if (fchmod(*fd, mode) != 0) {
            close(*fd);
            unlink(tmp);
            return PF_EIO;
        }
        return 0;
    }
    return PF_EIO;
}

int fsutil_is_temp(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    const char *mark = NULL;
    for (const char *p = strstr(base, TEMP_MARK); p != NULL; p = strstr(p + 1, TEMP_MARK))
        mark = p;
    if (mark == NULL || mark == base)
        return 0;
    const char *tail = mark + strlen(TEMP_MARK);
    size_t n = strlen(tail);
    if (n == 16)
        return strspn(tail, "0123456789abcdef") == 16;
    return n == 6 && strspn(tail, "0123456789abcdefghijklmnopqrstuvwxyz"
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 6;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return PF_EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* fsync, close and rename the temporary into place; unlinks it on failure. */
static int commit_temp(int fd, const char *tmp, const char *path, int rc)
{
    if (rc == 0 && fsync(fd) != 0)
        rc = PF_EIO;
    if (close(fd) != 0 && rc == 0)
        rc = PF_EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = PF_EIO;
    if (rc != 0)
        unlink(tmp);
    else
        rc = fsutil_sync_parent(path);
    return rc;
}

int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    int fd;
    int rc = open_temp_beside(path, mode, tmp, &fd);
    if (rc != 0)
        return rc;
    rc = write_all(fd, data, len);
    return commit_temp(fd, tmp, path, rc);
}

int fsutil_write_new(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    int fd;
    int rc = open_temp_beside(path, mode, tmp, &fd);
    if (rc != 0)
        return rc;
    rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = PF_EIO;
    if (close(fd) != 0 && rc == 0)
        rc = PF_EIO;
    if (rc == 0 && link(tmp, path) != 0) {
        if (errno == EEXIST)
            rc = PF_EEXISTS;
        else if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS && errno != EMLINK)
            rc = PF_EIO;
        else if (rename(tmp, path) != 0) /* no hard links here: replace, still whole */
            rc = PF_EIO;
    }
    unlink(tmp); /* the published file keeps its other name (gone after a rename) */
    if (rc == 0)
        rc = fsutil_sync_parent(path);
    return rc;
}

int fsutil_copy_atomic(const char *src, const char *dst, mode_t mode)
{
    char tmp[PATH_MAX];
    char buf[65536];
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return PF_EIO;
    int fd;
    int rc = open_temp_beside(dst, mode, tmp, &fd);
    if (rc != 0)
        goto done;
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = PF_EIO;
            break;
        }
        if (r == 0)
            break;
        rc = write_all(fd, buf, (size_t)r);
        if (rc != 0)
            break;
    }
    rc = commit_temp(fd, tmp, dst, rc);
done:
    close(in);
    return rc;
}

int fsutil_read_file(const char *path, size_t max, char **data, size_t *len)
{
    int rc = 0;
    char *buf = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = PF_EIO;
        goto done;
    }
    if ((size_t)st.st_size > max) {
        rc = PF_ETOOBIG;
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = PF_ENOMEM;
        goto done;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
done:
    free(buf);
    close(fd);
    return rc;
}

int fsutil_random(void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = getrandom(p, len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return PF_EIO;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int fsutil_free_bytes(const char *path, uint64_t *bytes)
{
    struct statvfs vfs;
    if (statvfs(path, &vfs) != 0)
        return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
    *bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return 0;
}
