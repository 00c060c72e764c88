/* cmd_backup.c - pixflare backup (being written: issue 18). */
#include "cli/cli.h"

#include <stdio.h>

int cmd_backup(const char *config_file, int argc, char **argv)
{
    (void)config_file;
    (void)argc;
    (void)argv;
    fprintf(stderr, "pixflare backup: not built yet\n");
    return 1;
}
