/* cmd_health.c - pixflare health (being written: issue 18). */
#include "cli/cli.h"

#include <stdio.h>

int cmd_health(const char *config_file, int argc, char **argv)
{
    (void)config_file;
    (void)argc;
    (void)argv;
    fprintf(stderr, "pixflare health: not built yet\n");
    return 1;
}
