/* jobs.c - see jobs.h. */
#include "jobs/jobs.h"

#include "base/err.h"
#include "base/timeutil.h"
#include "jobs/aggregate.h"
#include "jobs/joblock.h"
#include "jobs/retention.h"
#include "jobs/scheduler.h"
#include "store/db.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct jobs {
    const struct config *cfg;
    struct engine *engine;
    struct db *db;
    FILE *log;
    char node[17]; /* config_node_id(): the runner named in job_runs */
    struct scheduler_job list[2];
    struct scheduler *sched;
};

/* The scheduler's claim hook: the database says which node runs a slot
 * (db_job_begin()). Called on the scheduler thread, like the jobs, so the
 * one connection holds the job's lock for as long as its run. */
static int claim_slot(void *ctx, const char *name, int64_t slot, int retry_failed,
                      enum scheduler_claim *out)
{
    struct jobs *j = ctx;
    enum db_job_claim c = DB_JOB_ENDED;
    int rc = db_job_begin(j->db, name, slot, j->node, retry_failed, &c);
    *out = c == DB_JOB_WON ? SCHEDULER_RUN : c == DB_JOB_BUSY ? SCHEDULER_BUSY : SCHEDULER_ENDED;
    return rc;
}

static void release_slot(void *ctx, const char *name, int64_t slot, enum scheduler_outcome outcome)
{
    struct jobs *j = ctx;
    int rc = db_job_end(j->db, name, slot,
                        outcome == SCHEDULER_DONE     ? DB_JOB_DONE
                        : outcome == SCHEDULER_FAILED ? DB_JOB_FAILED
                                                      : DB_JOB_ABANDONED);
    /* Unrecorded, the slot looks unfinished: another node may run it again
     * (the jobs allow it); with this connection gone, so is the lock. */
    if (rc != 0 && rc != PF_EUNAVAIL)
        fprintf(j->log, "pixflare: scheduler: cannot record the end of %s's run: %s\n", name,
                err_str(rc));
}

static int run_aggregate(void *ctx, int64_t now, int catch_up, const atomic_int *stop)
{
    struct jobs *j = ctx;
    struct aggregate_opts o = {.threads = 1, .force = 0, .stop = stop};
    int64_t *days = NULL;
    size_t n = 0;
    int fd = -1, failed = 0;
    char err[512] = "out of memory", line[256], a[11], b[11];
    /* Every run, at start-up or at a slot, aggregates the due dates. */
    int rc = joblock_take(j->cfg->data_dir, stop, NULL, &fd, err, sizeof(err));
    if (rc == 0)
        rc =
            aggregate_due_days(j->cfg, j->engine, j->db, &j->cfg->aggregation_cron, now, &days, &n);
    if (rc != 0 && rc != PF_ECONFLICT)
        fprintf(j->log, "pixflare: batch: cannot start: %s\n",
                rc == PF_EDB ? "database error" : err);
    if (rc == 0 && n == 0 && !catch_up) {
        char last[16] = "none";
        db_meta_get(j->db, "last_aggregation_date", last, sizeof(last));
        fprintf(j->log, "pixflare: batch: no date to aggregate (last aggregated: %s)\n", last);
    }
    if (rc == 0 && n > 1) {
        timeutil_format_date(days[0] * 86400, a);
        timeutil_format_date(days[n - 1] * 86400, b);
        fprintf(j->log, "pixflare: batch: catching up %zu dates (%s .. %s)\n", n, a, b);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct aggregate_day d;
        int r = aggregate_run_day(j->cfg, j->engine, j->db, days[i], &o, &d, err, sizeof(err));
        if (r == PF_ECONFLICT)
            break; /* stopping: the date is left for the next start */
        aggregate_format_day(&d, line, sizeof(line));
        if (r == 0) {
            fprintf(j->log, "pixflare: batch: aggregated %s\n", line);
        } else {
            timeutil_format_date(days[i] * 86400, a);
            fprintf(j->log, "pixflare: batch: %s not aggregated: %s\n", a, err);
            failed++;
        }
    }
    free(days);
    joblock_release(fd);
    return rc != 0 ? rc : failed ? PF_EIO : 0;
}

static int run_cleanup(void *ctx, int64_t now, int catch_up, const atomic_int *stop)
{
    struct jobs *j = ctx;
    struct retention_result c = {.cutoff_day = 0};
    char last[32], err[512], cut[11];
    int fd = -1;
    if (catch_up) {
        /* Run at start-up only if a slot passed since the last cleanup. */
        int64_t t = 0, next = 0;
        if (db_meta_get(j->db, "last_cleanup_at", last, sizeof(last)) == 0 &&
            timeutil_parse_iso8601(last, &t) == 0 &&
            (cron_next(&j->cfg->cleanup_cron, t, &next) != 0 || next > now))
            return 0;
    }
    int rc = joblock_take(j->cfg->data_dir, stop, NULL, &fd, err, sizeof(err));
    if (rc == 0)
        rc = retention_run(j->cfg, j->engine, j->db, now, stop, &c, err, sizeof(err));
    joblock_release(fd);
    if (rc == PF_ECONFLICT)
        return rc;
    timeutil_format_date(c.cutoff_day * 86400, cut);
    if (rc != 0)
        fprintf(j->log, "pixflare: cleanup: %s\n", err);
    else
        fprintf(j->log,
                "pixflare: cleanup: kept dates from %s: removed %lld daily rows and %lld status "
                "rows of %lld dates, and %llu event files\n",
                cut, (long long)c.daily_rows, (long long)c.status_rows, (long long)c.dates,
                (unsigned long long)c.files);
    if (c.temp_files > 0)
        fprintf(j->log,
                "pixflare: cleanup: removed %llu temporary files that stopped writers left in "
                "the storage directory\n",
                (unsigned long long)c.temp_files);
    return rc;
}

/* A cleanup slot that another node runs: the database and the storage
 * directory are shared, but this node's embedded event log is its own,
 * and only this node can purge it. */
static int purge_own_events(void *ctx, int64_t now, const atomic_int *stop)
{
    struct jobs *j = ctx;
    uint64_t files = 0;
    char err[512];
    int fd = -1;
    int rc = joblock_take(j->cfg->data_dir, stop, NULL, &fd, err, sizeof(err));
    if (rc == 0)
        rc = retention_purge_events(j->cfg, j->engine, now, &files, err, sizeof(err));
    joblock_release(fd);
    if (rc != 0 && rc != PF_ECONFLICT)
        fprintf(j->log, "pixflare: cleanup: this node's events: %s\n", err);
    else if (rc == 0 && files > 0)
        fprintf(j->log, "pixflare: cleanup: removed %llu event files of this node\n",
                (unsigned long long)files);
    return rc;
}

int jobs_start(const struct config *cfg, struct engine *engine, FILE *log, struct jobs **out,
               char *err, size_t errlen)
{
    struct jobs *j = calloc(1, sizeof(*j));
    size_t n = 0;
    if (j == NULL)
        return PF_ENOMEM;
    j->cfg = cfg;
    j->engine = engine;
    j->log = log;
    int rc = config_node_id(cfg, j->node, err, errlen);
    if (rc == 0)
        rc = db_open(cfg->database, &j->db, err, errlen);
    if (rc != 0) {
        free(j);
        return rc;
    }
    int own_events = engine != NULL && strcmp(engine_name(engine), "embedded") == 0;
    j->list[n++] = (struct scheduler_job){.name = "cleanup",
                                          .cron = &cfg->cleanup_cron,
                                          .run = run_cleanup,
                                          .ctx = j,
                                          .claim = claim_slot,
                                          .release = release_slot,
                                          .run_elsewhere = own_events ? purge_own_events : NULL};
    if (cfg->batch_enabled && engine != NULL) {
        char warn[512];
        if (aggregate_schedule_warning(cfg, (int64_t)time(NULL), warn, sizeof(warn)))
            fprintf(log, "pixflare: warning: %s\n", warn);
        j->list[n++] = (struct scheduler_job){.name = "aggregation",
                                              .cron = &cfg->aggregation_cron,
                                              .run = run_aggregate,
                                              .ctx = j,
                                              .claim = claim_slot,
                                              .release = release_slot};
    } else if (cfg->batch_enabled) {
        fprintf(log, "pixflare: batch aggregation is off: there is no event store "
                     "(ANALYTICS_ENGINE=none)\n");
    }
    if (scheduler_start(j->list, n, log, NULL, &j->sched) != 0) {
        snprintf(err, errlen, "cannot start the scheduler");
        jobs_stop(j);
        return PF_ENOMEM;
    }
    *out = j;
    return 0;
}

void jobs_stop(struct jobs *j)
{
    if (j == NULL)
        return;
    scheduler_stop(j->sched); /* a running job stops at its next safe point */
    db_close(j->db);
    free(j);
}
