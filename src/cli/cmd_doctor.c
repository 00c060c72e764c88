/* cmd_doctor.c - pixflare doctor (being written: issue 18). */
#include "cli/cli.h"

#include <stdio.h>

int cmd_doctor(const char *config_file, int argc, char **argv)
{
    (void)config_file;
    (void)argc;
    (void)argv;
    fprintf(stderr, "pixflare doctor: not built yet\n");
    return 1;
}
