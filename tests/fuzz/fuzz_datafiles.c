/* fuzz_datafiles.c - fuzzes the readers of the two small files a data
 * directory keeps beside the database: node-id (config_node_id()) and secret
 * (config_ensure_secret()), both in src/config/config.c. A restored, copied
 * or hand-edited data directory may hold anything there.
 *
 * Input layout: byte 0's low bit picks the file (0: node-id, 1: secret);
 * with bit 1 set the file is missing (the function makes one); else the
 * rest is written as the file's content into a scratch directory made once
 * per process (in /dev/shm when it can be; removed at exit), then read back
 * through the function.
 * Invariants checked:
 *  - a missing file is made: a 16-hex-digit id, a 64-hex-digit secret;
 *  - node-id: accepted exactly when the file has at least 16 bytes and the
 *    first 16 are lowercase hex (a reference check), and then the id is those
 *    16 characters; refused with PF_EINVAL and a message otherwise (PF_ETOOBIG
 *    past 64 bytes);
 *  - secret: an accepted secret is the file's text with trailing whitespace
 *    cut, at least 16 characters long as the C string the HMAC is keyed with
 *    (a NUL inside the file must not leave a shorter key); refused with a
 *    message otherwise. */
#include "base/err.h"
#include "config/config.h"
#include "fuzz_check.h"

#include <ctype.h>
#include <fcntl.h>
#include <unistd.h>

static char dir[64];
static char node_path[96], secret_path[96];

static void cleanup(void)
{
    unlink(node_path);
    unlink(secret_path);
    rmdir(dir);
}

static void put(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(len == 0 || write(fd, data, len) == (ssize_t)len);
    close(fd);
}

static int all_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir[0] == '\0') {
        /* tmpfs when there is one: a file is written and read per input. */
        snprintf(dir, sizeof(dir), "/dev/shm/pf-fuzz-datafiles-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            snprintf(dir, sizeof(dir), "/tmp/pf-fuzz-datafiles-XXXXXX");
            FUZZ_CHECK(mkdtemp(dir) != NULL);
        }
        snprintf(node_path, sizeof(node_path), "%s/node-id", dir);
        snprintf(secret_path, sizeof(secret_path), "%s/secret", dir);
        atexit(cleanup);
    }
    if (size == 0)
        return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.data_dir = dir;
    char err[512] = "";
    if (data[0] & 2) {
        char id[17];
        unlink(node_path);
        unlink(secret_path);
        FUZZ_CHECK(config_node_id(&cfg, id, err, sizeof(err)) == 0);
        FUZZ_CHECK(strlen(id) == 16 && all_hex((const uint8_t *)id, 16));
        FUZZ_CHECK(config_ensure_secret(&cfg, err, sizeof(err)) == 0);
        FUZZ_CHECK(strlen(cfg.secret) == 64 && all_hex((const uint8_t *)cfg.secret, 64));
        free(cfg.secret);
    } else if ((data[0] & 1) == 0) {
        char id[17];
        put(node_path, body, len);
        int rc = config_node_id(&cfg, id, err, sizeof(err));
        if (len > 64) {
            FUZZ_CHECK(rc == PF_ETOOBIG && err[0] != '\0');
        } else if (len >= 16 && all_hex(body, 16)) {
            FUZZ_CHECK(rc == 0);
            FUZZ_CHECK(strlen(id) == 16 && memcmp(id, body, 16) == 0);
        } else {
            FUZZ_CHECK(rc == PF_EINVAL && err[0] != '\0');
        }
    } else {
        put(secret_path, body, len);
        int rc = config_ensure_secret(&cfg, err, sizeof(err));
        if (len > 4096) {
            FUZZ_CHECK(rc != 0 && err[0] != '\0' && cfg.secret == NULL);
        } else if (rc == 0) {
            FUZZ_CHECK(cfg.secret != NULL);
            size_t n = strlen(cfg.secret);
            FUZZ_CHECK(n >= 16);
            /* The file's text, trailing whitespace cut. */
            FUZZ_CHECK(n <= len && memcmp(cfg.secret, body, n) == 0);
            for (size_t i = n; i < len; i++)
                FUZZ_CHECK(isspace(body[i]));
        } else {
            FUZZ_CHECK(err[0] != '\0' && cfg.secret == NULL);
        }
        free(cfg.secret);
    }
    return 0;
}
