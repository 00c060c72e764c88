/* cli.h - what the subcommands share, and the subcommands main.c
 * dispatches to (one file each: cmd_<name>.c).
 *
 * Exit codes: 0 success; 1 a runtime failure (I/O, database); 2 bad usage or
 * bad input (unknown flag, invalid value, refused import), with a one-line
 * reason on stderr. Every subcommand has the same signature: the --config
 * file (or NULL) and its own argv, argv[0] being the program's path. */
#ifndef PF_CLI_H
#define PF_CLI_H

#include "config/config.h"

struct db;
struct storage;

#define CLI_EXIT_USAGE 2

int cmd_serve(const char *config_file, int argc, char **argv);
int cmd_import(const char *config_file, int argc, char **argv);
int cmd_demo(const char *config_file, int argc, char **argv);
int cmd_keys(const char *config_file, int argc, char **argv);
int cmd_events(const char *config_file, int argc, char **argv);
int cmd_aggregate(const char *config_file, int argc, char **argv);
int cmd_cleanup(const char *config_file, int argc, char **argv);
int cmd_cron_next(const char *config_file, int argc, char **argv);
int cmd_db(const char *config_file, int argc, char **argv);
int cmd_health(const char *config_file, int argc, char **argv);
int cmd_doctor(const char *config_file, int argc, char **argv);
int cmd_backup(const char *config_file, int argc, char **argv);

/* "X.Y.Z", from the repository's VERSION file (compiled into cli.c). */
extern const char cli_version[];

/* "pixflare CMD: <fmt with arg> (see 'pixflare CMD --help')" on stderr.
 * Returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, const char *arg);

/* cli_load_config()'s flags. By default a PIXFLARE_DATA_DIR that does not
 * exist is refused (exit 2): a command that reads or changes a data
 * directory must not create an empty one where a typo or a wrong working
 * directory points. */
#define CLI_NEED_SECRET 1   /* make sure PIXFLARE_SECRET is set (the secret file) */
#define CLI_MAKE_DATA_DIR 2 /* serve, import, demo: a missing data directory is made */
#define CLI_ANY_DATA_DIR 4  /* health, doctor: not checked here (doctor reports it) */

/* Load and validate the settings as `flags` say. Returns 0, or the exit
 * code with the reason printed. */
int cli_load_config(const char *file, struct config *cfg, int flags);

/* What the offline commands (import, demo) work on. */
struct cli_offline {
    struct config cfg;
    struct db *db;
    struct storage *st;
};

/* Load the settings (making the data directory and the secret if need be)
 * and open the database and storage. On failure
 * everything is released and the exit code is returned. */
int cli_offline_open(const char *config_file, const char *argv0, struct cli_offline *o);
void cli_offline_close(struct cli_offline *o);

#endif
