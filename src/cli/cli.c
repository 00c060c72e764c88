/* cli.c - see cli.h. */
#include "cli/cli.h"

#include "base/err.h"
#include "cdn/storage.h"
#include "store/db.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The repository's VERSION file, passed by the Makefile to this file alone. */
#ifndef PF_VERSION
#error "PF_VERSION must be defined (the Makefile reads VERSION)"
#endif

const char cli_version[] = PF_VERSION;

int cli_usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "pixflare %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'pixflare %s --help')\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_load_config(const char *file, struct config *cfg, int flags)
{
    char err[512];
    struct stat sb;
    if (config_load(file, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    if ((flags & (CLI_MAKE_DATA_DIR | CLI_ANY_DATA_DIR)) == 0) {
        const char *why = NULL;
        if (stat(cfg->data_dir, &sb) != 0)
            why = errno == ENOENT ? "does not exist; set PIXFLARE_DATA_DIR to the server's data "
                                    "directory, or make one with 'pixflare serve', 'pixflare "
                                    "import' or 'pixflare demo'"
                                  : strerror(errno);
        else if (!S_ISDIR(sb.st_mode))
            why = "is not a directory";
        if (why != NULL) {
            fprintf(stderr, "pixflare: PIXFLARE_DATA_DIR=%s: %s\n", cfg->data_dir, why);
            config_free(cfg);
            return CLI_EXIT_USAGE;
        }
    }
    if ((flags & CLI_NEED_SECRET) && config_ensure_secret(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        config_free(cfg);
        return 1;
    }
    return 0;
}

int cli_offline_open(const char *config_file, const char *argv0, struct cli_offline *o)
{
    char err[512];
    memset(o, 0, sizeof(*o));
    int rc = cli_load_config(config_file, &o->cfg, CLI_NEED_SECRET | CLI_MAKE_DATA_DIR);
    if (rc != 0)
        return rc;
    int dbrc = 0;
    rc = 1;
    if (storage_vips_init(argv0) != 0) {
        fprintf(stderr, "pixflare: cannot start libvips\n");
    } else if ((dbrc = db_open(o->cfg.database, &o->db, err, sizeof(err))) != 0) {
        /* A database that refuses us or cannot be reached: a setting to fix. */
        fprintf(stderr, "pixflare: %s\n", err);
        if (dbrc == PF_EINVAL || dbrc == PF_EUNAVAIL)
            rc = CLI_EXIT_USAGE;
    } else if (storage_open(o->cfg.storage_dir, 0, &o->st) != 0) {
        fprintf(stderr, "pixflare: cannot open storage directory %s\n", o->cfg.storage_dir);
    } else {
        rc = 0;
    }
    if (rc != 0) {
        db_close(o->db);
        storage_vips_shutdown();
        config_free(&o->cfg);
    }
    return rc;
}

void cli_offline_close(struct cli_offline *o)
{
    db_close(o->db);
    storage_close(o->st);
    storage_vips_shutdown();
    config_free(&o->cfg);
}
