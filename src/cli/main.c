/* main.c - the command line: a thin dispatcher. It reads the global
 * --config flag, finds the subcommand in the table below (its usage and
 * help text live here, so `pixflare help` lists them all), answers --help,
 * and runs the subcommand's function (cli.h; one file each). */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

struct cmd {
    const char *name;
    int (*run)(const char *config_file, int argc, char **argv);
    const char *usage;
    const char *help;
};

static const struct cmd *find_cmd(const char *name);

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

static int cmd_help(const char *config_file, int argc, char **argv);

static const struct cmd commands[] = {
    {"serve", cmd_serve, "pixflare serve",
     "Serve the CDN route (GET/HEAD /{owner}/{album}/{file}[/{variant}] and\n"
     "/i/{id}[/{variant}]) until SIGINT or SIGTERM. Settings come from the\n"
     "environment (see README.md), e.g. PIXFLARE_LISTEN=127.0.0.1:8080."},
    {"import", cmd_import, "pixflare import DIR",
     "Register every image under DIR/<owner>/<album>/<file>: copy it into the\n"
     "storage directory and print '<image_id>\\t<owner>/<album>/<file>'.\n"
     "Exits 2 if any file was refused (reason on stderr)."},
    {"keys", cmd_keys,
     "pixflare keys create --owner NAME [--scopes read,write] [--expires-days N]\n"
     "       pixflare keys list\n"
     "       pixflare keys revoke ID",
     "API keys for /v1/. 'create' prints a new key alone on stdout, once: only\n"
     "its keyed hash is kept. Scopes: read (default; the analytics API) and\n"
     "write. --expires-days: 1-36500 (default: never). 'list' shows each key's\n"
     "id, owner, scopes, creation, expiry, last use (to the minute) and status,\n"
     "never the key. 'revoke' takes the id (or the key) and disables it at\n"
     "once, in running servers too."},
    {"demo", cmd_demo, "pixflare demo",
     "Draw demo images for owners alice and bob and import them."},
    {"events", cmd_events, "pixflare events [--date YYYY-MM-DD]",
     "Print the day's raw events (default: today, UTC) from the embedded event\n"
     "store, one JSON object per line: timestamp (ms since 1970, UTC), request_id,\n"
     "owner (keyed hash), image_id, variant, status, country, bytes; by hour,\n"
     "then by server thread, each thread's in time order. Damaged\n"
     "files are reported on stderr and skipped (exit status 1)."},
    {"aggregate", cmd_aggregate,
     "pixflare aggregate [--date D | --from D [--to D]] [--threads N] [--force]",
     "Batch aggregation: make each date's analytics_daily and\n"
     "analytics_status_daily rows equal to the event store's counts (replacing,\n"
     "never adding to, what realtime counted), recompute the owners' monthly\n"
     "totals and record the run in analytics_meta. Default: yesterday (UTC);\n"
     "--from alone runs to yesterday. Only dates that have ended. Idempotent.\n"
     "Prints one line per date: 'D events=N daily_rows=N status_rows=N\n"
     "requests=N drift=N scan_ms=N sort_ms=N db_ms=N' (drift: what the tables\n"
     "counted minus the events). A date whose event files cannot be read, are\n"
     "damaged, or are missing while the tables count requests is left as it\n"
     "was and reported (exit status 1); --force aggregates what is readable.\n"
     "--threads: event readers (default: one per CPU)."},
    {"cleanup", cmd_cleanup, "pixflare cleanup",
     "Retention: delete analytics_daily and analytics_status_daily rows and raw\n"
     "event files of dates older than the last ANALYTICS_RETENTION_DAYS dates\n"
     "(today included); analytics_monthly is kept. Raw events of yesterday\n"
     "and today are always kept. Records last_cleanup_at in analytics_meta."},
    {"cron-next", cmd_cron_next, "pixflare cron-next EXPR [--from ISO8601] [--count N]",
     "Print the next N (default 5) fire times of a 5-field cron expression, UTC."},
    {"db", cmd_db, "pixflare db copy [--from URL] --to URL",
     "Copy a whole database into an empty one, of either backend: sqlite:PATH or\n"
     "postgres://USER:PASSWORD@HOST:PORT/DB (any libpq URI). The source defaults\n"
     "to the configured PIXFLARE_DATABASE, so that an existing SQLite install\n"
     "moves to PostgreSQL with one command. Images, API keys and every\n"
     "analytics table are copied in one transaction of the target: an error\n"
     "leaves it empty. A target that is not empty is refused (exit 2). Stop the\n"
     "servers writing to the source first. A progress bar shows on a terminal.\n"
     "A password in a URL on the command line is visible to ps while the copy\n"
     "runs: leave it out and let libpq find it in PGPASSWORD or ~/.pgpass."},
    {"health", cmd_health, "pixflare health [--timeout-ms N] [--wait-ms N]",
     "Probe the configured listener's /readyz (PIXFLARE_LISTEN; a wildcard\n"
     "address is probed on loopback) and exit 0 when the server is ready, 1\n"
     "when it is not or cannot be reached. Prints one line: 'ready: URL',\n"
     "'not ready (HTTP 503): <the failing check>' or 'unreachable: URL: <why>'.\n"
     "For container and systemd health checks.\n"
     "  --timeout-ms N  longest wait for one answer (default 5000)\n"
     "  --wait-ms N     keep asking every 250 ms until ready or N ms have\n"
     "                  passed (default 0: ask once); for start-up checks"},
    {"doctor", cmd_doctor, "pixflare doctor",
     "Check the installation: one line per check, OK / WARN / FAIL with the\n"
     "fix. Exit 0 when nothing fails, 1 otherwise."},
    {"backup", cmd_backup, "pixflare backup DEST",
     "Write a consistent copy of the data directory to DEST (which must not\n"
     "exist or be empty) while the server runs: DEST is itself a data directory."},
    {"help", cmd_help, "pixflare help [COMMAND]", "Show help."},
};

static void print_usage(FILE *f)
{
    fprintf(f, "usage: pixflare [--config FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "\n'pixflare COMMAND --help' describes a command.\n");
}

static int cmd_help(const char *config_file, int argc, char **argv)
{
    (void)config_file;
    const struct cmd *c = argc > 1 ? find_cmd(argv[1]) : NULL;
    if (c != NULL)
        printf("usage: %s\n\n%s\n", c->usage, c->help);
    else
        print_usage(stdout);
    return 0;
}

static const struct cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const char *config_file = NULL;
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_file = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_file = argv[i] + 9;
            i++;
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("pixflare %s\n", cli_version);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pixflare: unknown option '%s'\n", argv[i]);
            print_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const struct cmd *c = find_cmd(argv[i]);
    if (c == NULL) {
        fprintf(stderr, "pixflare: unknown command '%s'\n", argv[i]);
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    if (c->run != cmd_help && wants_help(sub_argc, sub_argv)) {
        printf("usage: %s\n\n%s\n", c->usage, c->help);
        return 0;
    }
    /* argv[0] of a subcommand is its name; libvips wants the program path. */
    char *saved = sub_argv[0];
    sub_argv[0] = argv[0];
    int rc = c->run(config_file, sub_argc, sub_argv);
    sub_argv[0] = saved;
    return rc;
}
