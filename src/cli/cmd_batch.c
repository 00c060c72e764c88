/* cmd_batch.c - `pixflare aggregate` and `pixflare cleanup`: the seed's two
 * cron jobs run by hand, with a progress bar on a terminal. Both take the
 * batch lock (waiting for a scheduled job that holds it) and stop at the
 * next safe point on SIGINT or SIGTERM. */
#include "cli/cli.h"

#include "analytics/engine.h"
#include "base/err.h"
#include "base/progress.h"
#include "base/timeutil.h"
#include "jobs/aggregate.h"
#include "jobs/joblock.h"
#include "jobs/retention.h"
#include "store/db.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* SIGINT/SIGTERM during aggregate or cleanup: stop at the next safe point
 * (a date is either written whole or not at all). */
static atomic_int batch_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    atomic_store(&batch_stop, 1);
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void say_waiting(void)
{
    fprintf(stderr, "pixflare: another aggregation or cleanup is running (the server's "
                    "scheduler or a command); waiting for it to finish\n");
}

/* Parse a --date/--from/--to value. OUT: *day. */
static int parse_day_arg(const char *cmd, const char *flag, const char *v, int64_t *day)
{
    int64_t t = 0;
    if (v == NULL) {
        fprintf(stderr, "pixflare %s: %s needs a value (see 'pixflare %s --help')\n", cmd, flag,
                cmd);
        return CLI_EXIT_USAGE;
    }
    if (timeutil_parse_date(v, &t) != 0) {
        fprintf(stderr, "pixflare %s: %s '%s' is not a date (YYYY-MM-DD, a real calendar date)\n",
                cmd, flag, v);
        return CLI_EXIT_USAGE;
    }
    *day = t / 86400;
    return 0;
}

int cmd_aggregate(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct db *db = NULL;
    struct engine *engine = NULL;
    int64_t today = (int64_t)time(NULL) / 86400;
    int64_t from = -1, to = -1, date = -1;
    int threads = 0, force = 0, fd = -1, rc;
    char err[512] = "", line[256];
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--date") == 0 || strcmp(argv[i], "--from") == 0 ||
            strcmp(argv[i], "--to") == 0) {
            int64_t *dst = argv[i][2] == 'd' ? &date : argv[i][2] == 'f' ? &from : &to;
            if ((rc = parse_day_arg("aggregate", argv[i], v, dst)) != 0)
                return rc;
            i++;
        } else if (strcmp(argv[i], "--threads") == 0) {
            char *end = NULL;
            long n = v ? strtol(v, &end, 10) : 0;
            if (v == NULL || *end != '\0' || end == v || n < 1 || n > 64)
                return cli_usage_error("aggregate", "--threads '%s' must be 1-64", v ? v : "");
            threads = (int)n;
            i++;
        } else if (strcmp(argv[i], "--force") == 0) {
            force = 1;
        } else {
            return cli_usage_error("aggregate", "unknown argument '%s'", argv[i]);
        }
    }
    if (date >= 0 && (from >= 0 || to >= 0))
        return cli_usage_error("aggregate", "%s", "--date cannot be combined with --from/--to");
    if (to >= 0 && from < 0)
        return cli_usage_error("aggregate", "%s", "--to needs --from");
    if (date >= 0)
        from = to = date;
    else if (from < 0)
        from = to = today - 1; /* yesterday, as the scheduled job */
    else if (to < 0)
        to = today - 1;
    if (from > to) {
        char a[11], b[11];
        timeutil_format_date(from * 86400, a);
        timeutil_format_date(to * 86400, b);
        fprintf(stderr, "pixflare aggregate: --from %s is after --to %s\n", a, b);
        return CLI_EXIT_USAGE;
    }
    if (to >= today) {
        char b[11];
        timeutil_format_date(to * 86400, b);
        fprintf(stderr,
                "pixflare aggregate: %s has not ended yet (UTC); a day is aggregated once it "
                "is over (realtime mode counts the current day)\n",
                b);
        return CLI_EXIT_USAGE;
    }
    rc = cli_load_config(config_file, &cfg, 0);
    if (rc != 0)
        return rc;
    if (engine_open(&cfg, &engine, err, sizeof(err)) != 0 || engine == NULL) {
        if (engine == NULL && err[0] == '\0')
            snprintf(err, sizeof(err),
                     "no event store to aggregate from: ANALYTICS_ENGINE=none "
                     "(set ANALYTICS_ENGINE=embedded)");
        fprintf(stderr, "pixflare aggregate: %s\n", err);
        config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    if (from < today - cfg.retention_days + 1) {
        char a[11], c[11];
        timeutil_format_date(from * 86400, a);
        timeutil_format_date((today - cfg.retention_days + 1) * 86400, c);
        fprintf(stderr,
                "pixflare aggregate: %s is older than the retention (ANALYTICS_RETENTION_DAYS=%d "
                "keeps dates from %s)\n",
                a, cfg.retention_days, c);
        engine_close(engine);
        config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    catch_stop_signals();
    rc = 1;
    if (joblock_take(cfg.data_dir, &batch_stop, say_waiting, &fd, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare aggregate: %s\n", err);
        goto done;
    }
    if (db_open(cfg.database, &db, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare aggregate: %s\n", err);
        goto done;
    }
    struct aggregate_opts o = {.threads = threads, .force = force, .stop = &batch_stop};
    struct progress pg;
    uint64_t ndays = (uint64_t)(to - from + 1), events = 0;
    int failed = 0, refused = 0, stopped = 0;
    int64_t t0 = timeutil_mono_ms();
    if (ndays > 1)
        progress_begin(&pg, stderr, "pixflare aggregate", ndays);
    for (int64_t d = from; d <= to; d++) {
        struct aggregate_day bd;
        char ds[11];
        timeutil_format_date(d * 86400, ds);
        int r = aggregate_run_day(&cfg, engine, db, d, &o, &bd, err, sizeof(err));
        if (ndays > 1)
            progress_clear(&pg);
        if (r == PF_ECONFLICT) {
            stopped = 1;
            break;
        }
        if (r == 0) {
            aggregate_format_day(&bd, line, sizeof(line));
            printf("%s\n", line);
            fflush(stdout);
            events += bd.events;
        } else {
            fprintf(stderr, "pixflare aggregate: %s: %s\n", ds, err);
            failed++;
            refused += r == PF_EINVAL; /* a date that cannot be aggregated */
        }
        if (ndays > 1)
            progress_update(&pg, (uint64_t)(d - from + 1), ds);
    }
    if (ndays > 1)
        progress_end(&pg);
    if (stopped)
        fprintf(stderr, "pixflare aggregate: stopped; the dates not listed above are left as "
                        "they were\n");
    if (ndays > 1) {
        int64_t ms = timeutil_mono_ms() - t0;
        fprintf(stderr, "pixflare aggregate: %llu dates, %llu events in %.1f s; %d failed\n",
                (unsigned long long)ndays, (unsigned long long)events, (double)ms / 1000.0, failed);
    }
    rc = refused ? CLI_EXIT_USAGE : failed || stopped || ferror(stdout) ? 1 : 0;
done:
    db_close(db);
    joblock_release(fd);
    engine_close(engine);
    config_free(&cfg);
    return rc;
}

int cmd_cleanup(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct db *db = NULL;
    struct engine *engine = NULL;
    struct retention_result c;
    char err[512] = "", cut[11];
    int fd = -1;
    if (argc > 1)
        return cli_usage_error("cleanup", "unexpected argument '%s'", argv[1]);
    int rc = cli_load_config(config_file, &cfg, 0);
    if (rc != 0)
        return rc;
    catch_stop_signals();
    rc = 1;
    if (engine_open(&cfg, &engine, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare cleanup: %s\n", err);
        config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    if (joblock_take(cfg.data_dir, &batch_stop, say_waiting, &fd, err, sizeof(err)) != 0 ||
        db_open(cfg.database, &db, err, sizeof(err)) != 0 ||
        retention_run(&cfg, engine, db, (int64_t)time(NULL), &batch_stop, &c, err, sizeof(err)) !=
            0) {
        fprintf(stderr, "pixflare cleanup: %s\n", err);
        goto done;
    }
    timeutil_format_date(c.cutoff_day * 86400, cut);
    printf("kept dates from %s (ANALYTICS_RETENTION_DAYS=%d): removed %lld analytics_daily "
           "rows and %lld analytics_status_daily rows of %lld dates, and %llu event files\n",
           cut, cfg.retention_days, (long long)c.daily_rows, (long long)c.status_rows,
           (long long)c.dates, (unsigned long long)c.files);
    rc = 0;
done:
    db_close(db);
    joblock_release(fd);
    engine_close(engine);
    config_free(&cfg);
    return rc;
}
