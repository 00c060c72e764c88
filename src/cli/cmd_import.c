/* cmd_import.c - `pixflare import DIR`: register every image under DIR/<owner>/<album>/<file>. */
#include "cli/cli.h"

#include "base/err.h"
#include "cdn/import.h"

#include <stdio.h>

int cmd_import(const char *config_file, int argc, char **argv)
{
    struct cli_offline o;
    struct import_stats stats;
    if (argc != 2)
        return cli_usage_error("import", "%s", argc < 2 ? "missing DIR" : "too many arguments");
    if (argv[1][0] == '-')
        return cli_usage_error("import", "unknown option '%s'", argv[1]);
    /* Before the data directory is opened (or made): a wrong path changes
     * nothing. */
    const char *why = import_check_dir(argv[1]);
    if (why != NULL) {
        fprintf(stderr, "pixflare import: %s %s\n", argv[1], why);
        return CLI_EXIT_USAGE;
    }
    int rc = cli_offline_open(config_file, argv[0], &o);
    if (rc != 0)
        return rc;
    rc = import_dir(o.db, o.st, argv[1], stdout, stderr, &stats);
    if (rc == PF_EIO) {
        why = import_check_dir(argv[1]);
        fprintf(stderr, "pixflare import: %s %s\n", argv[1], why ? why : "cannot be read");
        rc = CLI_EXIT_USAGE;
    } else if (rc != 0) {
        fprintf(stderr, "pixflare import: %s\n", err_str(rc));
        rc = 1;
    } else {
        fprintf(stderr, "pixflare import: %d imported, %d already present, %d refused\n",
                stats.imported, stats.unchanged, stats.refused);
        rc = stats.refused > 0 ? CLI_EXIT_USAGE : 0;
    }
    cli_offline_close(&o);
    return rc;
}
