/* cmd_cron.c - `pixflare cron-next EXPR`: the next fire times of a cron expression, UTC. */
#include "cli/cli.h"

#include "base/cron.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cmd_cron_next(const char *config_file, int argc, char **argv)
{
    (void)config_file;
    const char *expr = NULL;
    int64_t from = (int64_t)time(NULL);
    long count = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("cron-next", "%s", "--from needs a value");
            if (timeutil_parse_iso8601(argv[++i], &from) != 0)
                return cli_usage_error("cron-next",
                                       "--from '%s' is not an ISO-8601 UTC time "
                                       "(YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z])",
                                       argv[i]);
        } else if (strcmp(argv[i], "--count") == 0) {
            char *end = NULL;
            if (i + 1 >= argc)
                return cli_usage_error("cron-next", "%s", "--count needs a value");
            count = strtol(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0' || count < 1 || count > 1000)
                return cli_usage_error("cron-next", "--count '%s' must be 1-1000", argv[i]);
        } else if (strncmp(argv[i], "--", 2) == 0) {
            return cli_usage_error("cron-next", "unknown option '%s'", argv[i]);
        } else if (expr == NULL) {
            expr = argv[i];
        } else {
            return cli_usage_error("cron-next", "unexpected argument '%s' (quote the expression)",
                                   argv[i]);
        }
    }
    if (expr == NULL)
        return cli_usage_error("cron-next", "%s", "missing EXPR");
    struct cron_expr e;
    char why[200];
    if (cron_parse(expr, &e, why, sizeof(why)) != 0) {
        fprintf(stderr, "pixflare cron-next: invalid cron expression '%s': %s\n", expr, why);
        return CLI_EXIT_USAGE;
    }
    int64_t t = from - 1; /* a fire time equal to --from counts */
    for (long i = 0; i < count; i++) {
        if (cron_next(&e, t, &t) != 0) {
            fprintf(stderr, "pixflare cron-next: '%s' never fires\n", expr);
            return i == 0 ? CLI_EXIT_USAGE : 0;
        }
        char out[21];
        timeutil_format_iso8601(t, out);
        printf("%s\n", out);
    }
    return 0;
}
