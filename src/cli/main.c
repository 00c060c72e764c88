/* main.c - the command line: a thin dispatcher. It reads the global
 * --config flag, warns of environment variables that look like settings but
 * are not, finds the subcommand in the table below (its one-line summary,
 * usage and help live here, so that `pixflare help` lists them all), answers
 * --help, and runs the subcommand's function (cli.h; one file each).
 *
 * A command's help says what it does, each of its flags, and what it prints
 * (stdout: the result; stderr: messages). Keep that form when adding one. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cmd {
    const char *name;
    int (*run)(const char *config_file, int argc, char **argv);
    const char *summary; /* one line for `pixflare help` */
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
    {"serve", cmd_serve, "serve the images, the analytics API and the dashboard; run the jobs",
     "pixflare serve",
     "Serve until SIGINT or SIGTERM, then let in-flight responses finish, flush\n"
     "the counts, seal the event files and exit 0. No flags: the settings come\n"
     "from the environment or --config FILE (README.md). Makes the data\n"
     "directory if it is missing.\n"
     "The main listener, PIXFLARE_LISTEN (default 127.0.0.1:8080), answers GET\n"
     "and HEAD on:\n"
     "  /{owner}/{album}/{file}[/{variant}]  an image; variants original,\n"
     "  /i/{image_id}[/{variant}]            w128-w2048, thumb, og-image\n"
     "  /v1/analytics/overview, /v1/analytics/images/{image_id}\n"
     "                                       the API (Authorization: Bearer KEY)\n"
     "  /dashboard                           the stats dashboard\n"
     "  /healthz                             alive: 200\n"
     "  /readyz                              ready: 200, or 503 naming the check\n"
     "                                       that fails (database, event_store, disk)\n"
     "The metrics listener, PIXFLARE_METRICS_LISTEN (unset: none), answers\n"
     "/metrics (Prometheus text format), /healthz and /readyz, nothing else.\n"
     "The scheduled aggregation and cleanup run inside (ANALYTICS_*_CRON).\n"
     "Prints nothing on stdout. On stderr: where it serves, then warnings and\n"
     "errors (never a client address, user agent or query string), and a\n"
     "summary at the stop. An address that cannot be listened on: one line,\n"
     "exit 1; a bad setting: one line naming it, exit 2."},
    {"import", cmd_import, "register the images under DIR/<owner>/<album>/<file>",
     "pixflare import DIR",
     "Copy every image (JPEG, PNG, WebP, GIF) under DIR/<owner>/<album>/<file>\n"
     "into the storage directory and register it. No flags. Makes the data\n"
     "directory if it is missing.\n"
     "Prints '<image_id>\\t<owner>/<album>/<file>' on stdout per image; an image\n"
     "already imported with the same bytes prints its id again, so importing\n"
     "twice is harmless. On stderr: one line per refused file with the reason\n"
     "(owners i, v1, dashboard, metrics, healthz, readyz and names starting\n"
     "with '.' or '_' are reserved for the server's routes), then the counts.\n"
     "Exit 2 if DIR cannot be read (missing, not a directory, no permission:\n"
     "said which) or if any file was refused; 1 on a database failure."},
    {"keys", cmd_keys, "create, list and revoke the API keys of /v1/ and the dashboard",
     "pixflare keys create --owner NAME [--scopes read,write] [--expires-days N]\n"
     "       pixflare keys list\n"
     "       pixflare keys revoke ID",
     "API keys for /v1/ and the dashboard; a key sees only its owner's data.\n"
     "  create               print a new key alone on its line on stdout, once:\n"
     "                       only its keyed hash is kept (its id on stderr)\n"
     "    --owner NAME       whose data the key reads (required)\n"
     "    --scopes LIST      read (default; the analytics API), write, or both:\n"
     "                       read,write\n"
     "    --expires-days N   1-36500 (default: never)\n"
     "  list                 print a table on stdout: ID, OWNER, SCOPES, CREATED,\n"
     "                       EXPIRES, LAST USED (to the minute), STATUS; never\n"
     "                       the key\n"
     "  revoke ID            disable a key (its id, or the key itself) at once,\n"
     "                       in running servers too; says so on stderr\n"
     "The data directory must exist (exit 2)."},
    {"demo", cmd_demo, "fill the data directory with demo images, API keys and traffic",
     "pixflare demo",
     "Draw demo images for owners alice and bob and import them (stdout:\n"
     "'<image_id>\\t<owner>/<album>/<file>' per image, as import prints), record\n"
     "30 days of demo traffic once, and make a read API key per owner (kept in\n"
     "$PIXFLARE_DATA_DIR/demo-keys). On stderr: URLs to try, a curl command per\n"
     "key and the dashboard's address. Running it again adds nothing. No flags.\n"
     "Makes the data directory if it is missing."},
    {"events", cmd_events, "print a day's raw events, one JSON object per line",
     "pixflare events [--date YYYY-MM-DD]",
     "Print a day's raw events from the event store (ANALYTICS_ENGINE) on\n"
     "stdout, one JSON object per line: timestamp (ms since 1970, UTC),\n"
     "request_id, owner (keyed hash), image_id, variant, status, country, bytes;\n"
     "by hour, then by server thread, each thread's in time order.\n"
     "  --date YYYY-MM-DD  the day (default: today, UTC)\n"
     "Damaged files are reported on stderr and skipped (exit status 1). The\n"
     "data directory must exist (exit 2)."},
    {"aggregate", cmd_aggregate, "batch aggregation: a date's analytics tables from its events",
     "pixflare aggregate [--date D | --from D [--to D]] [--threads N] [--force]",
     "Batch aggregation: make each date's analytics_daily and\n"
     "analytics_status_daily rows equal to the event store's counts (replacing,\n"
     "never adding to, what realtime counted), recompute the owners' monthly\n"
     "totals and record the run in analytics_meta. Only dates that have ended\n"
     "(UTC). Idempotent.\n"
     "  --date D     one date, YYYY-MM-DD (default: yesterday)\n"
     "  --from D     the first date of a range ...\n"
     "  --to D       ... and its last (default: yesterday)\n"
     "  --threads N  event readers (default: one per CPU)\n"
     "  --force      aggregate what is readable of a damaged date\n"
     "Prints one line per date on stdout: 'D events=N daily_rows=N status_rows=N\n"
     "requests=N drift=N scan_ms=N sort_ms=N db_ms=N' (drift: what the tables\n"
     "counted minus the events), and a summary on stderr. A date whose event\n"
     "files cannot be read, are damaged, or are missing while the tables count\n"
     "requests is left as it was and reported (exit status 1) unless --force.\n"
     "The data directory must exist (exit 2)."},
    {"cleanup", cmd_cleanup, "delete what is older than ANALYTICS_RETENTION_DAYS, now",
     "pixflare cleanup",
     "Retention: delete analytics_daily and analytics_status_daily rows and raw\n"
     "event files of dates older than the last ANALYTICS_RETENTION_DAYS dates\n"
     "(today included); analytics_monthly is kept. Raw events of yesterday\n"
     "and today are always kept. Records last_cleanup_at in analytics_meta. No\n"
     "flags. Prints one line on stdout: 'kept dates from D\n"
     "(ANALYTICS_RETENTION_DAYS=N): removed N analytics_daily rows and N\n"
     "analytics_status_daily rows of N dates, and N event files'. The data\n"
     "directory must exist (exit 2)."},
    {"cron-next", cmd_cron_next, "print the next fire times of a cron expression",
     "pixflare cron-next EXPR [--from ISO8601] [--count N]",
     "Print the next fire times of a cron expression on stdout, one per line,\n"
     "UTC, ISO-8601 (2026-11-25T02:00:00Z). EXPR has 5 fields, minute hour\n"
     "day-of-month month day-of-week, as in crontab(5): quote it. To check\n"
     "ANALYTICS_AGGREGATION_CRON and ANALYTICS_CLEANUP_CRON; needs no settings.\n"
     "  --from ISO8601  start at this time, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z]\n"
     "                  (a fire time equal to it counts; default: now)\n"
     "  --count N       how many, 1-1000 (default 5)"},
    {"db", cmd_db, "copy a whole database into an empty one (SQLite, PostgreSQL)",
     "pixflare db copy [--from URL] --to URL",
     "Copy a whole database into an empty one, of either backend: sqlite:PATH or\n"
     "postgres://USER:PASSWORD@HOST:PORT/DB (any libpq URI). The source defaults\n"
     "to the configured PIXFLARE_DATABASE, so that an existing SQLite install\n"
     "moves to PostgreSQL with one command.\n"
     "  --from URL  the source (default: PIXFLARE_DATABASE; then the data\n"
     "              directory must exist)\n"
     "  --to URL    the target, which must be empty (else exit 2)\n"
     "Images, API keys and every analytics table are copied in one transaction\n"
     "of the target: an error leaves it empty. Stop the servers writing to the\n"
     "source first. A progress bar shows on stderr when it is a terminal; at\n"
     "the end one line on stdout: 'copied N rows of T tables from B into B'.\n"
     "A password in a URL on the command line is visible to ps while the copy\n"
     "runs: leave it out and let libpq find it in PGPASSWORD or ~/.pgpass."},
    {"health", cmd_health, "ask the server's /readyz: exit 0 ready, 1 not",
     "pixflare health [--timeout-ms N] [--wait-ms N]",
     "Probe the configured listener's /readyz (PIXFLARE_LISTEN; a wildcard\n"
     "address is probed on loopback) and exit 0 when the server is ready, 1\n"
     "when it is not or cannot be reached. Prints one line: 'ready: URL',\n"
     "'not ready (HTTP 503): <the failing check>' or 'unreachable: URL: <why>'.\n"
     "For container and systemd health checks.\n"
     "  --timeout-ms N  longest wait for one answer (default 5000)\n"
     "  --wait-ms N     keep asking every 250 ms until ready or N ms have\n"
     "                  passed (default 0: ask once); for start-up checks"},
    {"doctor", cmd_doctor, "check the installation: one line per check, OK / WARN / FAIL",
     "pixflare doctor",
     "Check the installation with the server's settings, changing nothing (no\n"
     "data directory, database, schema, secret or ClickHouse table is made).\n"
     "No flags. Prints one line per check on stdout, 'LEVEL  CHECK  what was\n"
     "found; fix: what to do', LEVEL being OK, WARN, FAIL or SKIP (an earlier\n"
     "failure leaves nothing to check), coloured on a terminal (not with\n"
     "NO_COLOR), then 'doctor: N OK, N WARN, N FAIL, N SKIP: ...'. The checks:\n"
     "  data-dir     PIXFLARE_DATA_DIR exists and is writable\n"
     "  analytics    ANALYTICS_REALTIME_ENABLED and ANALYTICS_BATCH_ENABLED not\n"
     "               both off (no stats), ANALYTICS_ENGINE not none\n"
     "  secret       the secret file is mode 0600 and yours (or PIXFLARE_SECRET)\n"
     "  disk         free space of the data and storage directories at least\n"
     "               PIXFLARE_MIN_FREE_MB\n"
     "  database     PIXFLARE_DATABASE exists, answers, has this build's schema\n"
     "  engine       the event store: embedded, its directory writable;\n"
     "               clickhouse, answers within 5 s and has ANALYTICS_DATASET\n"
     "  traffic      CDN requests recorded today or yesterday (UTC)\n"
     "  aggregation  no date left unaggregated after its run was due\n"
     "               (ANALYTICS_AGGREGATION_CRON)\n"
     "  retention    ANALYTICS_RETENTION_DAYS outlasts the gap between runs\n"
     "  clock        this machine's clock within 2 s (WARN) / 60 s (FAIL) of\n"
     "               PostgreSQL's\n"
     "Exit 0 when nothing fails, 1 otherwise, 2 for bad settings or a missing\n"
     "data directory."},
    {"backup", cmd_backup, "copy the data directory consistently, even while serving",
     "pixflare backup DEST",
     "Write a consistent copy of the data directory to DEST while the server\n"
     "runs and takes traffic; DEST is itself a data directory: to restore, start\n"
     "a server with PIXFLARE_DATA_DIR=DEST. No flags. DEST must not exist or be\n"
     "an empty directory, outside the data and storage directories (else exit\n"
     "2). In order: the database (SQLite: one snapshot by the online backup\n"
     "API, the server's writers never wait), the event log (sealed segments\n"
     "whole, live ones up to their last whole record), the storage directory\n"
     "(into DEST/images, even when PIXFLARE_STORAGE_DIR is elsewhere; likewise\n"
     "the database into DEST/pixflare.db), then the rest (the secret, mode 0600,\n"
     "node-id: a restore is the same node). With PostgreSQL the database is not\n"
     "copied: a line gives the pg_dump command for it (never a password). The\n"
     "copy is written beside DEST and renamed to it at the end: an error leaves\n"
     "nothing at DEST (exit 1). A progress bar shows on stderr when it is a\n"
     "terminal. Prints on stdout one line per part ('database: ...',\n"
     "'events: ...', 'images: ...'), then 'backup: N files, B bytes in T s: DEST'."},
    {"help", cmd_help, "list the commands, or describe one", "pixflare help [COMMAND]",
     "Without COMMAND: every command with one line of what it does. With\n"
     "COMMAND: its usage, flags and what it prints, as 'pixflare COMMAND --help'."},
};

static void print_usage(FILE *f)
{
    fprintf(f, "usage: pixflare [--config FILE] COMMAND [ARGS]\n"
               "       pixflare --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'pixflare COMMAND --help' (or 'pixflare help COMMAND') describes a command:\n"
               "its usage, its flags and what it prints. The settings come from the\n"
               "environment (PIXFLARE_*, ANALYTICS_*) or --config FILE, a file of KEY=value\n"
               "lines (the environment wins); see README.md.\n");
}

static void print_help(const struct cmd *c)
{
    printf("usage: %s\n\n%s\n", c->usage, c->help);
}

static int cmd_help(const char *config_file, int argc, char **argv)
{
    (void)config_file;
    if (argc > 2)
        return cli_usage_error("help", "unexpected argument '%s'", argv[2]);
    if (argc < 2) {
        print_usage(stdout);
        return 0;
    }
    const struct cmd *c = find_cmd(argv[1]);
    if (c == NULL)
        return cli_usage_error("help", "unknown command '%s'", argv[1]);
    print_help(c);
    return 0;
}

/* Once per run, whatever the command: a misspelt setting is otherwise
 * silently ignored. */
static void warn_environment(void)
{
    char *text = NULL;
    if (config_env_warnings(environ, &text) != 0 || text == NULL)
        return;
    for (char *line = text; *line != '\0';) {
        size_t n = strcspn(line, "\n");
        fprintf(stderr, "pixflare: warning: %.*s\n", (int)n, line);
        line += n + (line[n] == '\n');
    }
    free(text);
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
    warn_environment();
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
    if (wants_help(sub_argc, sub_argv)) {
        print_help(c);
        return 0;
    }
    /* argv[0] of a subcommand is its name; libvips wants the program path. */
    char *saved = sub_argv[0];
    sub_argv[0] = argv[0];
    int rc = c->run(config_file, sub_argc, sub_argv);
    sub_argv[0] = saved;
    return rc;
}
