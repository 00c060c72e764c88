/* cmd_db.c - `pixflare db copy [--from URL] --to URL`: a whole database into
 * an empty one, of either backend (an existing SQLite install moving to
 * PostgreSQL, or back). URLs are never printed: they may hold a password. */
#include "cli/cli.h"

#include "base/err.h"
#include "base/progress.h"
#include "store/db.h"

#include <stdio.h>
#include <string.h>

struct shown {
    struct progress bar;
    const char *table;
    int64_t at;
};

/* Each table's first chunk, then every twentieth of the whole: a log gets
 * a few dozen lines, not one per chunk (a terminal redraws anyway). */
static void show(void *ctx, const char *table, int64_t done, int64_t total)
{
    struct shown *s = ctx;
    if (s->table == NULL || strcmp(s->table, table) != 0 || done - s->at >= total / 20 ||
        done == total) {
        progress_update(&s->bar, (uint64_t)done, table);
        s->table = table;
        s->at = done;
    }
}

/* Open one side; on failure the reason, and the exit code in *rc. */
static struct db *open_side(const char *which, const char *url, int *rc)
{
    struct db *db = NULL;
    char err[512];
    int r = db_open(url, &db, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "pixflare db copy: %s database: %s\n", which, err);
        *rc = r == PF_EINVAL || r == PF_EUNAVAIL ? CLI_EXIT_USAGE : 1;
    }
    return db;
}

static int db_copy_cmd(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct db *src = NULL, *dst = NULL;
    struct shown bar = {.table = NULL};
    const char *from = NULL, *to = NULL;
    char err[512], what[128];
    int rc = 1, empty = 0, have_cfg = 0;
    int64_t copied = 0;
    for (int i = 2; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--from") == 0 && v != NULL)
            from = v;
        else if (strcmp(argv[i], "--to") == 0 && v != NULL)
            to = v;
        else
            return cli_usage_error("db", "unknown or incomplete option '%s'", argv[i]);
    }
    if (to == NULL)
        return cli_usage_error("db", "%s needs --to URL (sqlite:PATH or postgres://...)", "copy");
    if (from == NULL) { /* the configured database */
        if ((rc = cli_load_config(config_file, &cfg, 0)) != 0)
            return rc;
        have_cfg = 1;
        from = cfg.database;
    }
    if (strcmp(from, to) == 0) {
        fprintf(stderr, "pixflare db copy: the source and the target are the same database\n");
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    rc = 1;
    if ((src = open_side("source", from, &rc)) == NULL ||
        (dst = open_side("target", to, &rc)) == NULL)
        goto done;
    if (db_copy_is_empty(dst, &empty, what, sizeof(what)) != 0) {
        fprintf(stderr, "pixflare db copy: cannot read the target database\n");
        goto done;
    }
    if (!empty) {
        fprintf(stderr,
                "pixflare db copy: the target database is not empty (%s); copy into a new, empty "
                "database\n",
                what);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    int64_t total = 0;
    for (size_t i = 0; i < db_table_count; i++) {
        int64_t n = 0;
        if (db_table_count_rows(src, &db_tables[i], &n) == 0)
            total += n;
    }
    progress_begin(&bar.bar, stderr, "copying", (uint64_t)total);
    rc = db_copy(src, dst, show, &bar, &copied, err, sizeof(err));
    progress_end(&bar.bar);
    if (rc != 0) {
        fprintf(stderr, "pixflare db copy: %s; the target is left empty\n", err);
        rc = 1;
        goto done;
    }
    printf("copied %lld rows of %zu tables from %s into %s\n", (long long)copied, db_table_count,
           db_backend(src), db_backend(dst));
    rc = 0;
done:
    db_close(src);
    db_close(dst);
    if (have_cfg)
        config_free(&cfg);
    return rc;
}

int cmd_db(const char *config_file, int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "copy") == 0)
        return db_copy_cmd(config_file, argc, argv);
    return cli_usage_error("db", "unknown subcommand '%s' (expected copy)",
                           argc > 1 ? argv[1] : "");
}
