/* cmd_doctor.c - `pixflare doctor`: the seed's troubleshooting list ("Dashboard
 * shows no data", "Batch aggregation fails"), automated. One line per check
 * on stdout,
 *
 *   OK    database    sqlite:/srv/pixflare/pixflare.db reachable (schema 6)
 *   WARN  traffic     no CDN request recorded today or yesterday (UTC); fix: ...
 *   FAIL  secret      /srv/pixflare/secret has mode 0644; fix: chmod 600 ...
 *
 * then a summary line; exit 0 when nothing failed, 1 otherwise, 2 when
 * the settings are bad or the data directory is missing. SKIP marks a check
 * that an earlier failure leaves without an answer. Colour only on a
 * terminal (and never with NO_COLOR set).
 *
 * Doctor changes nothing: it never makes the data directory, the secret,
 * the node id, a database or its schema (db_open_check()), nor ClickHouse
 * tables (engine_open_check()); everything it reads, it reads. */
#include "cli/cli.h"

#include "analytics/engine.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "base/timeutil.h"
#include "jobs/aggregate.h"
#include "store/db.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Clock skew against a shared database. Above 2 s a node's clock is not
 * kept by NTP (which holds well under 100 ms): its events near midnight
 * fall on another day than the other nodes' and the database's, and its
 * realtime counts (flushed every ANALYTICS_REALTIME_FLUSH_MS, 1 s) reach
 * a date the others have moved past. Above 60 s the nodes disagree about
 * which minute it is: cron's resolution, so they claim the scheduled
 * jobs' slots at different times, and the rate limiter's window (61 s,
 * kept by the database's clock) no longer matches what the node logs. */
#define SKEW_WARN_MS 2000
#define SKEW_FAIL_MS 60000

/* An owed date whose run was due less than this ago may be running now. */
#define AGGREGATION_GRACE_S 3600

enum level { L_OK, L_WARN, L_FAIL, L_SKIP };

struct doctor {
    const struct config *cfg;
    int color;
    int count[4];
    int64_t now;           /* Unix seconds */
    struct db *db;         /* NULL: cannot be read */
    struct engine *engine; /* NULL: none, or cannot be read */
};

static void say(struct doctor *d, enum level lv, const char *check, const char *fmt, ...)
{
    static const char *const tag[] = {"OK", "WARN", "FAIL", "SKIP"};
    static const char *const col[] = {"\033[32m", "\033[33m", "\033[31m", "\033[2m"};
    va_list ap;
    d->count[lv]++;
    if (d->color)
        printf("%s%-4s\033[0m  %-12s", col[lv], tag[lv], check);
    else
        printf("%-4s  %-12s", tag[lv], check);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* PIXFLARE_DATABASE without what may be secret: a PostgreSQL URL's user
 * information and parameters. */
static void database_shown(const char *url, char *out, size_t len)
{
    const char *scheme = strstr(url, "://");
    if (strncmp(url, "sqlite:", 7) == 0 || scheme == NULL) {
        snprintf(out, len, "%s", url);
        return;
    }
    const char *host = scheme + 3;
    size_t auth = strcspn(host, "@/?");
    if (host[auth] == '@')
        host += auth + 1;
    snprintf(out, len, "%.*s%.*s", (int)(scheme + 3 - url), url, (int)strcspn(host, "?"), host);
}

static int check_data_dir(struct doctor *d)
{
    struct stat sb;
    const char *dir = d->cfg->data_dir;
    if (stat(dir, &sb) != 0) {
        say(d, L_FAIL, "data-dir",
            "PIXFLARE_DATA_DIR=%s: %s; fix: point PIXFLARE_DATA_DIR at the server's data "
            "directory, or make one with 'pixflare serve' or 'pixflare demo'",
            dir, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (!S_ISDIR(sb.st_mode)) {
        say(d, L_FAIL, "data-dir", "PIXFLARE_DATA_DIR=%s is not a directory", dir);
        return CLI_EXIT_USAGE;
    }
    if (access(dir, W_OK | X_OK) != 0)
        say(d, L_FAIL, "data-dir",
            "%s is not writable by this user (uid %u); fix: chown it to the user pixflare "
            "serve runs as",
            dir, (unsigned)geteuid());
    else
        say(d, L_OK, "data-dir", "%s", dir);
    return 0;
}

static void check_analytics(struct doctor *d)
{
    const struct config *c = d->cfg;
    const char *engine = c->engine == CONFIG_ENGINE_NONE         ? "none"
                         : c->engine == CONFIG_ENGINE_CLICKHOUSE ? "clickhouse"
                                                                 : "embedded";
    if (!c->realtime_enabled && !c->batch_enabled)
        say(d, L_FAIL, "analytics",
            "ANALYTICS_REALTIME_ENABLED=false and ANALYTICS_BATCH_ENABLED=false: the CDN serves "
            "but no stats are collected; fix: set either (both is best) to true");
    else if (c->engine == CONFIG_ENGINE_NONE && !c->realtime_enabled)
        say(d, L_FAIL, "analytics",
            "ANALYTICS_ENGINE=none and ANALYTICS_REALTIME_ENABLED=false: nothing is recorded, "
            "the batch has no events to aggregate; fix: ANALYTICS_ENGINE=embedded, or "
            "ANALYTICS_REALTIME_ENABLED=true");
    else if (c->engine == CONFIG_ENGINE_NONE)
        say(d, L_WARN, "analytics",
            "ANALYTICS_ENGINE=none: no raw events are kept, so only realtime counts "
            "(the batch has nothing to aggregate or correct); fix: ANALYTICS_ENGINE=embedded");
    else if (!c->realtime_enabled)
        say(d, L_OK, "analytics",
            "engine %s, batch only (ANALYTICS_REALTIME_ENABLED=false): the dashboard lags by up "
            "to a day",
            engine);
    else
        say(d, L_OK, "analytics", "engine %s, realtime %s, batch %s", engine, "on",
            c->batch_enabled ? "on" : "off (ANALYTICS_BATCH_ENABLED=false)");
}

static void check_secret(struct doctor *d)
{
    char path[PATH_MAX];
    struct stat sb;
    if (d->cfg->secret != NULL) {
        say(d, L_OK, "secret", "PIXFLARE_SECRET is set (environment or --config): no secret file");
        return;
    }
    snprintf(path, sizeof(path), "%s/secret", d->cfg->data_dir);
    if (stat(path, &sb) != 0)
        say(d, L_FAIL, "secret",
            "%s: %s; the next start makes a new secret, and every owner's hash changes (the "
            "counts recorded so far no longer match any owner); fix: restore the file from a "
            "backup (a new installation: run 'pixflare serve' once)",
            path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        say(d, L_FAIL, "secret", "%s is not a regular file", path);
    else if ((sb.st_mode & 077) != 0)
        say(d, L_FAIL, "secret",
            "%s has mode %04o: other users may read the key behind the owner and API-key hashes; "
            "fix: chmod 600 %s",
            path, (unsigned)(sb.st_mode & 07777), path);
    else if (sb.st_uid != geteuid())
        say(d, L_FAIL, "secret",
            "%s is owned by uid %u, not by this user (uid %u); fix: run pixflare as its owner, "
            "or chown it",
            path, (unsigned)sb.st_uid, (unsigned)geteuid());
    else if (access(path, R_OK) != 0)
        say(d, L_FAIL, "secret", "%s cannot be read: %s; fix: chmod 600 %s", path, strerror(errno),
            path);
    else
        say(d, L_OK, "secret", "%s (mode %04o, owned by uid %u)", path,
            (unsigned)(sb.st_mode & 07777), (unsigned)sb.st_uid);
}

/* Free space of one directory's filesystem against PIXFLARE_MIN_FREE_MB. */
static void check_disk_one(struct doctor *d, const char *what, const char *dir, const char *fix)
{
    uint64_t bytes = 0;
    uint64_t need = (uint64_t)d->cfg->min_free_mb << 20;
    int rc = fsutil_free_bytes(dir, &bytes);
    if (rc == PF_ENOTFOUND)
        say(d, L_WARN, "disk", "%s %s does not exist yet; fix: 'pixflare serve' makes it", what,
            dir);
    else if (rc != 0)
        say(d, L_FAIL, "disk", "cannot measure the free space of %s %s: %s", what, dir,
            strerror(errno));
    else if (bytes < need)
        say(d, L_FAIL, "disk",
            "%s %s: %" PRIu64 " MiB free, less than PIXFLARE_MIN_FREE_MB=%d (/readyz fails); "
            "fix: %s",
            what, dir, bytes >> 20, d->cfg->min_free_mb, fix);
    else
        say(d, L_OK, "disk", "%s %s: %" PRIu64 " MiB free (PIXFLARE_MIN_FREE_MB=%d)", what, dir,
            bytes >> 20, d->cfg->min_free_mb);
}

static void check_disk(struct doctor *d)
{
    struct stat a, b;
    check_disk_one(d, "data directory (event log, database)", d->cfg->data_dir,
                   "free space there, or lower ANALYTICS_RETENTION_DAYS");
    /* One line for one filesystem. */
    if (stat(d->cfg->data_dir, &a) == 0 && stat(d->cfg->storage_dir, &b) == 0 &&
        a.st_dev == b.st_dev)
        return;
    check_disk_one(d, "storage directory", d->cfg->storage_dir, "free space there");
}

static void check_database(struct doctor *d)
{
    char shown[512], err[512] = "";
    int schema = 0;
    database_shown(d->cfg->database, shown, sizeof(shown));
    int rc = db_open_check(d->cfg->database, &d->db, &schema, err, sizeof(err));
    if (rc == 0)
        say(d, L_OK, "database", "%s reachable (schema %d)", shown, schema);
    else if (rc == PF_ENOTFOUND && strncmp(d->cfg->database, "sqlite:", 7) == 0)
        say(d, L_FAIL, "database",
            "%s: %s; fix: run 'pixflare serve' (or 'pixflare demo') once, or set "
            "PIXFLARE_DATABASE to the server's database",
            shown, err);
    else
        say(d, L_FAIL, "database", "%s: %s", shown, err);
}

static void check_engine(struct doctor *d)
{
    char err[768] = "";
    const struct config *c = d->cfg;
    if (c->engine == CONFIG_ENGINE_NONE) {
        say(d, L_OK, "engine", "ANALYTICS_ENGINE=none: no event store to check");
        return;
    }
    int rc = engine_open_check(c, &d->engine, err, sizeof(err));
    if (rc == 0) {
        if (c->engine == CONFIG_ENGINE_EMBEDDED)
            say(d, L_OK, "engine", "embedded: %s/events/%s present and writable", c->data_dir,
                c->dataset);
        else
            say(d, L_OK, "engine", "clickhouse: reachable, table %s present", c->dataset);
    } else if (rc == PF_ENOTFOUND && c->engine == CONFIG_ENGINE_EMBEDDED) {
        say(d, L_WARN, "engine", "embedded: %s", err);
    } else if (rc == PF_EUNAVAIL) {
        say(d, L_FAIL, "engine",
            "clickhouse: %s; events wait in the local event log meanwhile; fix: start "
            "ClickHouse or correct ANALYTICS_ENGINE_URL",
            err);
    } else {
        say(d, L_FAIL, "engine", "%s: %s",
            c->engine == CONFIG_ENGINE_CLICKHOUSE ? "clickhouse" : "embedded", err);
    }
}

static int note_node(void *ctx, const char *node)
{
    (void)node;
    (*(int *)ctx)++;
    return 0;
}

/* "Dashboard shows no data": are requests being recorded at all? */
static void check_traffic(struct doctor *d)
{
    const struct config *c = d->cfg;
    int64_t today = d->now / 86400, total = 0;
    int flushes = 0;
    char date[11];
    if (!c->realtime_enabled && (c->engine == CONFIG_ENGINE_NONE || !c->batch_enabled)) {
        say(d, L_SKIP, "traffic", "nothing is recorded (see analytics)");
        return;
    }
    if (d->db == NULL) {
        say(d, L_SKIP, "traffic", "the database cannot be read (see database)");
        return;
    }
    for (int64_t day = today - 1; day <= today; day++) {
        int64_t n = 0;
        timeutil_format_date(day * 86400, date);
        if (db_day_requests(d->db, date, &n) == 0)
            total += n;
    }
    if (c->realtime_enabled)
        db_flush_nodes(d->db, d->now - 86400, d->now + 1, note_node, &flushes);
    int events = 0;
    for (int64_t day = today - 1; d->engine != NULL && day <= today; day++)
        events |= engine_has_day(d->engine, day);
    if (total > 0)
        say(d, L_OK, "traffic", "%" PRId64 " requests counted today and yesterday (UTC)", total);
    else if (flushes > 0)
        say(d, L_OK, "traffic", "realtime counts written in the last 24 h");
    else if (events)
        say(d, c->realtime_enabled ? L_WARN : L_OK, "traffic",
            c->realtime_enabled
                ? "the event store holds requests of today or yesterday (UTC), but realtime "
                  "counted none; fix: check that pixflare serve can write to the database"
                : "the event store holds requests of today or yesterday (UTC); the batch counts "
                  "them after each day");
    else
        say(d, L_WARN, "traffic",
            "no CDN request recorded today or yesterday (UTC); fix: is 'pixflare serve' "
            "running, and does it receive the CDN's requests (curl -I "
            "http://%s:%d/OWNER/ALBUM/FILE)? A quiet site is fine",
            c->listen_host, c->listen_port);
}

/* "Batch aggregation fails": the dates the scheduler owes. */
static void check_aggregation(struct doctor *d)
{
    const struct config *c = d->cfg;
    int64_t *days = NULL;
    size_t n = 0;
    char last[16] = "never", from[11], due[21];
    if (!c->batch_enabled) {
        say(d, L_OK, "aggregation", "ANALYTICS_BATCH_ENABLED=false: no batch to lag");
        return;
    }
    if (c->engine == CONFIG_ENGINE_NONE) {
        say(d, L_SKIP, "aggregation", "ANALYTICS_ENGINE=none: no events to aggregate");
        return;
    }
    if (d->db == NULL) {
        say(d, L_SKIP, "aggregation", "the database cannot be read (see database)");
        return;
    }
    db_meta_get(d->db, "last_aggregation_date", last, sizeof(last));
    if (aggregate_due_days(c, d->engine, d->db, &c->aggregation_cron, d->now, &days, &n) != 0) {
        say(d, L_FAIL, "aggregation", "cannot read what is owed from the database");
        return;
    }
    if (n == 0) {
        int64_t next = 0;
        char when[21] = "never";
        if (cron_next(&c->aggregation_cron, d->now, &next) == 0)
            timeutil_format_iso8601(next, when);
        say(d, L_OK, "aggregation", "up to date: last aggregated date %s, next run %s", last, when);
        free(days);
        return;
    }
    /* The oldest owed date's run: the first fire time after its end. */
    int64_t slot = 0;
    cron_next(&c->aggregation_cron, (days[0] + 1) * 86400 - 1, &slot);
    timeutil_format_date(days[0] * 86400, from);
    timeutil_format_iso8601(slot, due);
    if (d->now - slot < AGGREGATION_GRACE_S)
        say(d, L_WARN, "aggregation",
            "%zu date(s) not aggregated yet, from %s (run due %s: it may be under way); last "
            "aggregated date %s",
            n, from, due, last);
    else
        say(d, L_FAIL, "aggregation",
            "%zu date(s) lagging, the oldest %s (its run was due %s); last aggregated date %s; "
            "fix: is 'pixflare serve' running (it catches up at start)? 'pixflare aggregate "
            "--from %s' does it now",
            n, from, due, last, from);
    free(days);
}

static void check_retention(struct doctor *d)
{
    char why[512];
    if (!d->cfg->batch_enabled)
        say(d, L_OK, "retention", "ANALYTICS_RETENTION_DAYS=%d (no batch)", d->cfg->retention_days);
    else if (aggregate_schedule_warning(d->cfg, d->now, why, sizeof(why)))
        say(d, L_FAIL, "retention",
            "%s; fix: run the aggregation more often, or raise ANALYTICS_RETENTION_DAYS", why);
    else
        say(d, L_OK, "retention",
            "ANALYTICS_RETENTION_DAYS=%d covers the days between aggregation runs ('%s')",
            d->cfg->retention_days, d->cfg->aggregation_cron_text);
}

static void check_clock(struct doctor *d)
{
    struct timespec ts;
    int64_t db_ms = 0;
    if (d->db == NULL) {
        say(d, L_SKIP, "clock", "the database cannot be read (see database)");
        return;
    }
    if (!db_shared(d->db)) {
        say(d, L_OK, "clock", "%s runs in this process: its clock is this machine's",
            db_backend(d->db));
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (db_now_ms(d->db, &db_ms) != 0) {
        say(d, L_FAIL, "clock", "cannot read the database's clock");
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Against the middle of the round trip. */
    int64_t local = (before + (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) / 2;
    int64_t skew = local - db_ms, mag = skew < 0 ? -skew : skew;
    enum level lv = mag > SKEW_FAIL_MS ? L_FAIL : mag > SKEW_WARN_MS ? L_WARN : L_OK;
    if (lv == L_OK)
        say(d, L_OK, "clock", "%+.3f s from the database's (at most %d s)", skew / 1000.0,
            SKEW_WARN_MS / 1000);
    else
        say(d, lv, "clock",
            "this machine's clock is %+.1f s from the database's (WARN above %d s, FAIL above "
            "%d s): events near midnight land on another day, job slots are claimed at other "
            "times; fix: keep the clocks with NTP (timedatectl set-ntp true)",
            skew / 1000.0, SKEW_WARN_MS / 1000, SKEW_FAIL_MS / 1000);
}

int cmd_doctor(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct doctor d;
    if (argc > 1)
        return cli_usage_error("doctor", "unexpected argument '%s'", argv[1]);
    int rc = cli_load_config(config_file, &cfg, CLI_ANY_DATA_DIR);
    if (rc != 0)
        return rc;
    memset(&d, 0, sizeof(d));
    d.cfg = &cfg;
    d.now = (int64_t)time(NULL);
    d.color = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
    rc = check_data_dir(&d);
    if (rc == 0) {
        check_analytics(&d);
        check_secret(&d);
        check_disk(&d);
        check_database(&d);
        check_engine(&d);
        check_traffic(&d);
        check_aggregation(&d);
        check_retention(&d);
        check_clock(&d);
        rc = d.count[L_FAIL] > 0 ? 1 : 0;
    }
    printf("doctor: %d OK, %d WARN, %d FAIL, %d SKIP: %s\n", d.count[L_OK], d.count[L_WARN],
           d.count[L_FAIL], d.count[L_SKIP], rc == 0 ? "nothing fails" : "see FAIL above");
    engine_close(d.engine);
    db_close(d.db);
    config_free(&cfg);
    return rc;
}
