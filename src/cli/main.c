/* main.c - the command line: one function per subcommand.
 *
 * Exit codes: 0 success; 1 a runtime failure (I/O, database); 2 bad usage or
 * bad input (unknown flag, invalid value, refused import), with a one-line
 * reason on stderr. */
#include "analytics/analytics.h"
#include "api/api.h"
#include "api/auth.h"
#include "jobs/batch.h"
#include "cdn/catalog.h"
#include "cdn/cdn.h"
#include "config/config.h"
#include "base/cron.h"
#include "store/db.h"
#include "cli/demo.h"
#include "base/err.h"
#include "analytics/evlog.h"
#include "base/fsutil.h"
#include "http/http.h"
#include "cdn/import.h"
#include "base/keyhash.h"
#include "base/progress.h"
#include "jobs/scheduler.h"
#include "cdn/storage.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2

struct cmd {
    const char *name;
    int (*run)(const char *config_file, int argc, char **argv);
    const char *usage;
    const char *help;
};

static const struct cmd *find_cmd(const char *name);

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "pixflare %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'pixflare %s --help')\n", cmd);
    return EXIT_USAGE;
}

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

static int load_config(const char *file, struct config *cfg, int need_secret)
{
    char err[512];
    if (config_load(file, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        return EXIT_USAGE;
    }
    if (need_secret && config_ensure_secret(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        config_free(cfg);
        return 1;
    }
    return 0;
}

/* What the offline commands (import, demo) work on. */
struct offline {
    struct config cfg;
    struct db *db;
    struct storage *st;
};

/* Load the settings and open the database and storage. On failure everything
 * is released and the exit code is returned. */
static int offline_open(const char *config_file, const char *argv0, struct offline *o)
{
    char err[512];
    memset(o, 0, sizeof(*o));
    int rc = load_config(config_file, &o->cfg, 1);
    if (rc != 0)
        return rc;
    rc = 1;
    if (storage_vips_init(argv0) != 0)
        fprintf(stderr, "pixflare: cannot start libvips\n");
    else if (db_open(o->cfg.sqlite_path, &o->db, err, sizeof(err)) != 0)
        fprintf(stderr, "pixflare: %s\n", err);
    else if (storage_open(o->cfg.storage_dir, 0, &o->st) != 0)
        fprintf(stderr, "pixflare: cannot open storage directory %s\n", o->cfg.storage_dir);
    else
        rc = 0;
    if (rc != 0) {
        db_close(o->db);
        storage_vips_shutdown();
        config_free(&o->cfg);
    }
    return rc;
}

static void offline_close(struct offline *o)
{
    db_close(o->db);
    storage_close(o->st);
    storage_vips_shutdown();
    config_free(&o->cfg);
}

/* Each connection holds a descriptor; the usual soft limit of 1024 would cap
 * the server far below what it can serve, so take the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int cmd_serve(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct storage *st = NULL;
    struct catalog *cat = NULL;
    struct cdn *cdn = NULL;
    struct http_server *srv = NULL;
    struct analytics *an = NULL;
    struct batch_jobs *jobs = NULL;
    struct scheduler *sched = NULL;
    struct api *api = NULL;
    struct scheduler_job sj[2];
    size_t nj = 0;
    char err[512];
    int rc = 1, port = 0;
    if (argc > 1)
        return usage_error("serve", "unexpected argument '%s'", argv[1]);
    rc = load_config(config_file, &cfg, 1);
    if (rc != 0)
        return rc;
    if (cfg.engine == CONFIG_ENGINE_CLICKHOUSE) {
        fprintf(stderr, "pixflare: ANALYTICS_ENGINE=clickhouse is not supported by this build "
                        "yet; use embedded or none\n");
        config_free(&cfg);
        return EXIT_USAGE;
    }
    rc = 1;

    /* Block the stop signals before any thread starts so that only sigwait()
     * below sees them; every worker inherits the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (storage_vips_init(argv[0]) != 0) {
        fprintf(stderr, "pixflare: cannot start libvips\n");
        goto done;
    }
    if (storage_open(cfg.storage_dir, cfg.cache_bytes, &st) != 0) {
        fprintf(stderr, "pixflare: cannot open storage directory %s\n", cfg.storage_dir);
        goto done;
    }
    if (catalog_open(cfg.sqlite_path, cfg.secret, &cat, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        goto done;
    }
    rc = analytics_open(&cfg, stderr, &an, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        rc = rc == PF_EINVAL ? EXIT_USAGE : 1;
        goto done;
    }
    rc = 1;
    if (cdn_new(cat, st, &cdn) != 0)
        goto done;
    /* With nothing to record, the request path skips even the country
     * header lookup. */
    if (api_new(&cfg, API_THREADS, cdn, &api, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        goto done;
    }
    struct http_options opt = {
        cfg.listen_host, cfg.listen_port, cfg.threads, cdn, analytics_enabled(an) ? an : NULL, api};
    if (http_start(&opt, &srv, &port, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        goto done;
    }
    fprintf(stderr, "pixflare: serving %zu images from %s on http://%s%s%s:%d/ (%d threads)\n",
            catalog_count(cat), cfg.storage_dir, strchr(cfg.listen_host, ':') ? "[" : "",
            cfg.listen_host, strchr(cfg.listen_host, ':') ? "]" : "", port, cfg.threads);
    /* The cron triggers: retention always (it applies to realtime rows
     * too), the aggregation when batch mode is on and there are events. */
    if (batch_jobs_open(&cfg, stderr, &jobs, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        goto done;
    }
    sj[nj++] = (struct scheduler_job){"cleanup", &cfg.cleanup_cron, batch_job_cleanup, jobs};
    if (cfg.batch_enabled && cfg.engine == CONFIG_ENGINE_EMBEDDED) {
        char warn[512];
        if (batch_schedule_warning(&cfg, (int64_t)time(NULL), warn, sizeof(warn)))
            fprintf(stderr, "pixflare: warning: %s\n", warn);
        sj[nj++] =
            (struct scheduler_job){"aggregation", &cfg.aggregation_cron, batch_job_aggregate, jobs};
    } else if (cfg.batch_enabled)
        fprintf(stderr, "pixflare: batch aggregation is off: there is no event store "
                        "(ANALYTICS_ENGINE=none)\n");
    if (scheduler_start(sj, nj, stderr, NULL, &sched) != 0) {
        fprintf(stderr, "pixflare: cannot start the scheduler\n");
        goto done;
    }
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "pixflare: %s received, finishing in-flight requests\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    scheduler_stop(sched); /* a running job stops at its next safe point */
    sched = NULL;
    http_stop(srv, 10000);
    analytics_close(an); /* after the last response: flush and seal */
    an = NULL;
    fprintf(stderr, "pixflare: stopped\n");
    rc = 0;
done:
    scheduler_stop(sched);
    batch_jobs_close(jobs);
    if (srv != NULL && rc != 0)
        http_stop(srv, 0);
    analytics_close(an);
    api_free(api);
    cdn_free(cdn);
    catalog_close(cat);
    storage_close(st);
    storage_vips_shutdown();
    config_free(&cfg);
    return rc;
}

static int cmd_import(const char *config_file, int argc, char **argv)
{
    struct offline o;
    struct import_stats stats;
    if (argc != 2)
        return usage_error("import", "%s", argc < 2 ? "missing DIR" : "too many arguments");
    if (argv[1][0] == '-')
        return usage_error("import", "unknown option '%s'", argv[1]);
    int rc = offline_open(config_file, argv[0], &o);
    if (rc != 0)
        return rc;
    rc = import_dir(o.db, o.st, argv[1], stdout, stderr, &stats);
    if (rc == PF_EIO) {
        fprintf(stderr, "pixflare import: cannot read directory %s\n", argv[1]);
        rc = EXIT_USAGE;
    } else if (rc != 0) {
        fprintf(stderr, "pixflare import: %s\n", err_str(rc));
        rc = 1;
    } else {
        fprintf(stderr, "pixflare import: %d imported, %d already present, %d refused\n",
                stats.imported, stats.unchanged, stats.refused);
        rc = stats.refused > 0 ? EXIT_USAGE : 0;
    }
    offline_close(&o);
    return rc;
}

/* Thirty days of demo traffic, recorded once per data directory (a marker
 * file says it was), through the analytics the settings enable. */
static int demo_traffic_once(struct offline *o)
{
    char marker[PATH_MAX], err[512];
    struct catalog *cat = NULL;
    struct analytics *an = NULL;
    uint64_t n = 0;
    int rc;
    snprintf(marker, sizeof(marker), "%s/.demo-traffic-recorded", o->cfg.data_dir);
    if (access(marker, F_OK) == 0 ||
        (o->cfg.engine != CONFIG_ENGINE_EMBEDDED && !o->cfg.realtime_enabled))
        return 0;
    rc = catalog_open(o->cfg.sqlite_path, o->cfg.secret, &cat, err, sizeof(err));
    if (rc == 0)
        rc = analytics_open(&o->cfg, stderr, &an, err, sizeof(err));
    if (rc == PF_ECONFLICT) {
        fprintf(stderr, "pixflare demo: a server is running on this data directory; no demo "
                        "traffic recorded\n");
        catalog_close(cat);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "pixflare demo: %s\n", err);
    } else {
        rc = demo_traffic(an, cat, 30, 20261124, &n);
        analytics_close(an); /* flushes the counts, seals the files */
        if (rc == 0) {
            rc = fsutil_write_atomic(marker, "", 0, 0644);
            fprintf(stderr, "pixflare demo: recorded %llu requests of demo traffic over 30 days\n",
                    (unsigned long long)n);
        }
    }
    catalog_close(cat);
    return rc;
}

static int cmd_demo(const char *config_file, int argc, char **argv)
{
    struct offline o;
    char src[PATH_MAX], base[128];
    if (argc > 1)
        return usage_error("demo", "unexpected argument '%s'", argv[1]);
    int rc = offline_open(config_file, argv[0], &o);
    if (rc != 0)
        return rc;
    snprintf(src, sizeof(src), "%s/demo-src", o.cfg.data_dir);
    rc = demo_run(o.db, o.st, src, stdout, stderr);
    if (rc == 0)
        rc = demo_traffic_once(&o);
    if (rc != 0) {
        fprintf(stderr, "pixflare demo: %s\n", err_str(rc));
        rc = 1;
    } else {
        const char *host = o.cfg.listen_host;
        if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
            host = "127.0.0.1";
        int v6 = strchr(host, ':') != NULL;
        snprintf(base, sizeof(base), "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
                 o.cfg.listen_port);
        fprintf(stderr,
                "pixflare demo: ready. After 'pixflare serve', try:\n"
                "  %s/alice/pics/sunset.jpg\n  %s/alice/pics/sunset.jpg/w512\n"
                "  %s/alice/travel/harbour.webp/og-image\n  %s/bob/art/portrait.jpg/thumb\n",
                base, base, base, base);
        const char *owners[DEMO_OWNERS];
        char keys[DEMO_OWNERS][64], path[PATH_MAX];
        int nkeys = 0;
        snprintf(path, sizeof(path), "%s/demo-keys", o.cfg.data_dir);
        if (demo_keys(o.db, o.cfg.secret, path, owners, keys, &nkeys) != 0) {
            fprintf(stderr, "pixflare demo: cannot make the demo API keys\n");
            rc = 1;
        }
        for (int i = 0; i < nkeys; i++)
            fprintf(stderr,
                    "  API key of %s (also in %s):\n    curl -H 'Authorization: Bearer %s' "
                    "'%s/v1/analytics/overview?days=30'\n",
                    owners[i], path, keys[i], base);
        if (nkeys > 0)
            fprintf(stderr, "  Stats dashboard: %s/dashboard (sign in with a key above)\n", base);
    }
    offline_close(&o);
    return rc;
}

static int cmd_cron_next(const char *config_file, int argc, char **argv)
{
    (void)config_file;
    const char *expr = NULL;
    int64_t from = (int64_t)time(NULL);
    long count = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0) {
            if (i + 1 >= argc)
                return usage_error("cron-next", "%s", "--from needs a value");
            if (timeutil_parse_iso8601(argv[++i], &from) != 0)
                return usage_error("cron-next",
                                   "--from '%s' is not an ISO-8601 UTC time "
                                   "(YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z])",
                                   argv[i]);
        } else if (strcmp(argv[i], "--count") == 0) {
            char *end = NULL;
            if (i + 1 >= argc)
                return usage_error("cron-next", "%s", "--count needs a value");
            count = strtol(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0' || count < 1 || count > 1000)
                return usage_error("cron-next", "--count '%s' must be 1-1000", argv[i]);
        } else if (strncmp(argv[i], "--", 2) == 0) {
            return usage_error("cron-next", "unknown option '%s'", argv[i]);
        } else if (expr == NULL) {
            expr = argv[i];
        } else {
            return usage_error("cron-next", "unexpected argument '%s' (quote the expression)",
                               argv[i]);
        }
    }
    if (expr == NULL)
        return usage_error("cron-next", "%s", "missing EXPR");
    struct cron_expr e;
    char why[200];
    if (cron_parse(expr, &e, why, sizeof(why)) != 0) {
        fprintf(stderr, "pixflare cron-next: invalid cron expression '%s': %s\n", expr, why);
        return EXIT_USAGE;
    }
    int64_t t = from - 1; /* a fire time equal to --from counts */
    for (long i = 0; i < count; i++) {
        if (cron_next(&e, t, &t) != 0) {
            fprintf(stderr, "pixflare cron-next: '%s' never fires\n", expr);
            return i == 0 ? EXIT_USAGE : 0;
        }
        char out[21];
        timeutil_format_iso8601(t, out);
        printf("%s\n", out);
    }
    return 0;
}

static int print_event(void *ctx, const struct event *ev)
{
    char rid[33], owner[33];
    static const uint8_t zero[16];
    (void)ctx;
    keyhash_hex(ev->request_id, 16, rid);
    if (memcmp(ev->owner, zero, 16) == 0)
        owner[0] = '\0';
    else
        keyhash_hex(ev->owner, 16, owner);
    /* Every field is hex, [a-z0-9], a variant name or [A-Z0-9]: nothing
     * needs escaping. */
    printf("{\"timestamp\":%lld,\"request_id\":\"%s\",\"owner\":\"%s\",\"image_id\":\"%s\","
           "\"variant\":\"%s\",\"status\":%d,\"country\":\"%s\",\"bytes\":%llu}\n",
           (long long)ev->ts_ms, rid, owner, ev->image_id,
           ev->variant >= 0 ? variant_table[ev->variant].name : "", ev->status, ev->country,
           (unsigned long long)ev->bytes);
    return ferror(stdout) ? PF_EIO : 0;
}

static int cmd_events(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    int64_t day = (int64_t)time(NULL) / 86400;
    for (int i = 1; i < argc; i++) {
        int64_t t;
        if (strcmp(argv[i], "--date") == 0) {
            if (i + 1 >= argc)
                return usage_error("events", "%s", "--date needs a value");
            if (timeutil_parse_date(argv[++i], &t) != 0)
                return usage_error("events", "--date '%s' is not a date (YYYY-MM-DD)", argv[i]);
            day = t / 86400;
        } else {
            return usage_error("events", "unknown argument '%s'", argv[i]);
        }
    }
    int rc = load_config(config_file, &cfg, 0);
    if (rc != 0)
        return rc;
    if (cfg.engine != CONFIG_ENGINE_EMBEDDED) {
        fprintf(stderr, "pixflare events: ANALYTICS_ENGINE=%s: there is no embedded event store\n",
                cfg.engine == CONFIG_ENGINE_NONE ? "none" : "clickhouse");
        config_free(&cfg);
        return EXIT_USAGE;
    }
    struct evlog_file_stats st;
    rc = evlog_scan(cfg.data_dir, cfg.dataset, day, day, print_event, NULL, stderr, &st);
    if (fflush(stdout) != 0 || rc == PF_EIO) {
        fprintf(stderr, "pixflare events: %s\n",
                rc == PF_EIO ? "cannot read the event store" : "cannot write the output");
        rc = 1;
    } else {
        rc = st.bad_header || st.unreadable || st.damaged_bytes || st.tail_bytes ? 1 : 0;
    }
    config_free(&cfg);
    return rc;
}

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
        return EXIT_USAGE;
    }
    if (timeutil_parse_date(v, &t) != 0) {
        fprintf(stderr, "pixflare %s: %s '%s' is not a date (YYYY-MM-DD, a real calendar date)\n",
                cmd, flag, v);
        return EXIT_USAGE;
    }
    *day = t / 86400;
    return 0;
}

static int cmd_aggregate(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct db *db = NULL;
    int64_t today = (int64_t)time(NULL) / 86400;
    int64_t from = -1, to = -1, date = -1;
    int threads = 0, force = 0, fd = -1, rc;
    char err[512], line[256];
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
                return usage_error("aggregate", "--threads '%s' must be 1-64", v ? v : "");
            threads = (int)n;
            i++;
        } else if (strcmp(argv[i], "--force") == 0) {
            force = 1;
        } else {
            return usage_error("aggregate", "unknown argument '%s'", argv[i]);
        }
    }
    if (date >= 0 && (from >= 0 || to >= 0))
        return usage_error("aggregate", "%s", "--date cannot be combined with --from/--to");
    if (to >= 0 && from < 0)
        return usage_error("aggregate", "%s", "--to needs --from");
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
        return EXIT_USAGE;
    }
    if (to >= today) {
        char b[11];
        timeutil_format_date(to * 86400, b);
        fprintf(stderr,
                "pixflare aggregate: %s has not ended yet (UTC); a day is aggregated once it "
                "is over (realtime mode counts the current day)\n",
                b);
        return EXIT_USAGE;
    }
    rc = load_config(config_file, &cfg, 0);
    if (rc != 0)
        return rc;
    if (cfg.engine != CONFIG_ENGINE_EMBEDDED) {
        fprintf(stderr,
                "pixflare aggregate: no event store to aggregate from: ANALYTICS_ENGINE=%s "
                "(set ANALYTICS_ENGINE=embedded)\n",
                cfg.engine == CONFIG_ENGINE_NONE ? "none" : "clickhouse");
        config_free(&cfg);
        return EXIT_USAGE;
    }
    if (from < today - cfg.retention_days + 1) {
        char a[11], c[11];
        timeutil_format_date(from * 86400, a);
        timeutil_format_date((today - cfg.retention_days + 1) * 86400, c);
        fprintf(stderr,
                "pixflare aggregate: %s is older than the retention (ANALYTICS_RETENTION_DAYS=%d "
                "keeps dates from %s)\n",
                a, cfg.retention_days, c);
        config_free(&cfg);
        return EXIT_USAGE;
    }
    catch_stop_signals();
    rc = 1;
    if (batch_lock(&cfg, &batch_stop, say_waiting, &fd, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare aggregate: %s\n", err);
        goto done;
    }
    if (db_open(cfg.sqlite_path, &db, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare aggregate: %s\n", err);
        goto done;
    }
    struct batch_opts o = {.threads = threads, .force = force, .stop = &batch_stop};
    struct progress pg;
    uint64_t ndays = (uint64_t)(to - from + 1), events = 0;
    int failed = 0, refused = 0, stopped = 0;
    int64_t t0 = timeutil_mono_ms();
    if (ndays > 1)
        progress_begin(&pg, stderr, "pixflare aggregate", ndays);
    for (int64_t d = from; d <= to; d++) {
        struct batch_day bd;
        char ds[11];
        timeutil_format_date(d * 86400, ds);
        int r = batch_aggregate_day(&cfg, db, d, &o, &bd, err, sizeof(err));
        if (ndays > 1)
            progress_clear(&pg);
        if (r == PF_ECONFLICT) {
            stopped = 1;
            break;
        }
        if (r == 0) {
            batch_format_day(&bd, line, sizeof(line));
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
    rc = refused ? EXIT_USAGE : failed || stopped || ferror(stdout) ? 1 : 0;
done:
    db_close(db);
    batch_unlock(fd);
    config_free(&cfg);
    return rc;
}

static int cmd_cleanup(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct db *db = NULL;
    struct batch_cleanup c;
    char err[512], cut[11];
    int fd = -1;
    if (argc > 1)
        return usage_error("cleanup", "unexpected argument '%s'", argv[1]);
    int rc = load_config(config_file, &cfg, 0);
    if (rc != 0)
        return rc;
    catch_stop_signals();
    rc = 1;
    if (batch_lock(&cfg, &batch_stop, say_waiting, &fd, err, sizeof(err)) != 0 ||
        db_open(cfg.sqlite_path, &db, err, sizeof(err)) != 0 ||
        batch_cleanup(&cfg, db, (int64_t)time(NULL), &batch_stop, &c, err, sizeof(err)) != 0) {
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
    batch_unlock(fd);
    config_free(&cfg);
    return rc;
}

static int keys_list_row(void *ctx, const struct db_key *k)
{
    char created[21], expires[21] = "never", used[21] = "never";
    int64_t now = *(const int64_t *)ctx;
    timeutil_format_iso8601(k->created_at, created);
    if (k->expires_at != 0)
        timeutil_format_iso8601(k->expires_at, expires);
    if (k->last_used_at != 0)
        timeutil_format_iso8601(k->last_used_at, used);
    printf("%-12s  %-16s  %-10s  %-20s  %-20s  %-20s  %s\n", k->id, k->owner, k->scopes, created,
           expires, used,
           k->revoked_at                           ? "revoked"
           : k->expires_at && now >= k->expires_at ? "expired"
                                                   : "active");
    return 0;
}

static int cmd_keys(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct db *db = NULL;
    struct db_key rec;
    char err[512], key[AUTH_KEY_LEN + 1], id[13];
    const char *owner = NULL, *problem;
    int scopes = AUTH_SCOPE_READ, already = 0;
    long long days = 0;
    int64_t now = (int64_t)time(NULL);
    const char *sub = argc > 1 ? argv[1] : "";
    if (strcmp(sub, "create") == 0) {
        for (int i = 2; i < argc; i += 2) { /* flag, value */
            const char *v = i + 1 < argc ? argv[i + 1] : NULL;
            char *end = NULL;
            if (strcmp(argv[i], "--owner") == 0 && v != NULL) {
                owner = v;
            } else if (strcmp(argv[i], "--scopes") == 0 && v != NULL) {
                if (auth_parse_scopes(v, &scopes) != 0)
                    return usage_error("keys",
                                       "--scopes '%s': a list of read and write, "
                                       "such as read,write",
                                       v);
            } else if (strcmp(argv[i], "--expires-days") == 0 && v != NULL) {
                days = strtoll(v, &end, 10);
                if (*v < '0' || *v > '9' || *end != '\0' || days < 1 || days > 36500)
                    return usage_error("keys", "--expires-days '%s' must be 1-36500", v);
            } else {
                return usage_error("keys",
                                   v == NULL && argv[i][0] == '-' ? "%s needs a value"
                                                                  : "unknown argument '%s'",
                                   argv[i]);
            }
        }
        if (owner == NULL)
            return usage_error("keys", "%s", "create needs --owner NAME");
        if ((problem = import_check_owner(owner)) != NULL) {
            fprintf(stderr, "pixflare keys: owner '%s': %s\n", owner, problem);
            return EXIT_USAGE;
        }
    } else if (strcmp(sub, "list") == 0) {
        if (argc > 2)
            return usage_error("keys", "unexpected argument '%s'", argv[2]);
    } else if (strcmp(sub, "revoke") == 0) {
        if (argc != 3)
            return usage_error("keys", "%s", "revoke takes one key id (as 'keys list' shows)");
        /* The id, or the whole key (its id is in it). */
        const char *a = argv[2];
        if (!auth_key_wellformed(a, strlen(a), id)) {
            if (strlen(a) != 12 || strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789") != 12)
                return usage_error("keys", "'%s' is not a key id (12 characters of a-z, 0-9)", a);
            memcpy(id, a, 13);
        }
    } else {
        return usage_error("keys",
                           sub[0] ? "unknown subcommand '%s' (create, list, revoke)"
                                  : "missing subcommand%s (create, list, revoke)",
                           sub);
    }
    int rc = load_config(config_file, &cfg, 1);
    if (rc != 0)
        return rc;
    rc = 1;
    if (db_open(cfg.sqlite_path, &db, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare keys: %s\n", err);
        goto done;
    }
    if (strcmp(sub, "create") == 0) {
        int64_t expires = days ? now + days * 86400 : 0;
        if (auth_key_create(db, cfg.secret, owner, scopes, expires, key, &rec) != 0) {
            fprintf(stderr, "pixflare keys: cannot store the key\n");
            goto done;
        }
        printf("%s\n", key);
        fflush(stdout);
        char when[21] = "never";
        if (expires)
            timeutil_format_iso8601(expires, when);
        fprintf(stderr,
                "pixflare keys: key %s for owner %s (scopes %s, expires %s). It is shown "
                "only this once; 'pixflare keys revoke %s' disables it.\n",
                rec.id, owner, rec.scopes, when, rec.id);
        rc = 0;
    } else if (strcmp(sub, "list") == 0) {
        printf("%-12s  %-16s  %-10s  %-20s  %-20s  %-20s  %s\n", "ID", "OWNER", "SCOPES", "CREATED",
               "EXPIRES", "LAST USED", "STATUS");
        rc = db_key_scan(db, keys_list_row, &now) == 0 ? 0 : 1;
        if (rc != 0)
            fprintf(stderr, "pixflare keys: cannot read the keys\n");
    } else {
        int r = db_key_revoke(db, id, now, &already);
        if (r == PF_ENOTFOUND) {
            fprintf(stderr, "pixflare keys: no API key with id %s\n", id);
            rc = EXIT_USAGE;
        } else if (r != 0) {
            fprintf(stderr, "pixflare keys: cannot revoke %s: %s\n", id, err_str(r));
        } else {
            fprintf(stderr, "pixflare keys: %s %s\n", id,
                    already ? "was already revoked" : "revoked: it no longer opens the API");
            rc = 0;
        }
    }
done:
    db_close(db);
    config_free(&cfg);
    return rc;
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
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pixflare: unknown option '%s'\n", argv[i]);
            print_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const struct cmd *c = find_cmd(argv[i]);
    if (c == NULL) {
        fprintf(stderr, "pixflare: unknown command '%s'\n", argv[i]);
        print_usage(stderr);
        return EXIT_USAGE;
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
