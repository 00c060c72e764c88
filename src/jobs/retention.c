/* retention.c - see retention.h. */
#include "jobs/retention.h"

#include "base/err.h"
#include "base/timeutil.h"
#include "cdn/storage.h"
#include "store/db.h"

#include <stdio.h>
#include <string.h>

int retention_purge_events(const struct config *cfg, struct engine *engine, int64_t now,
                           uint64_t *files, char *err, size_t errlen)
{
    int64_t today = now / 86400, cutoff = today - cfg->retention_days + 1;
    *files = 0;
    if (engine == NULL)
        return 0;
    /* Raw events of yesterday and today stay whatever the retention: the
     * server may still be writing them, and yesterday's are the batch's
     * input. */
    return engine_purge_before(engine, cutoff < today - 1 ? cutoff : today - 1, files, err, errlen);
}

int retention_run(const struct config *cfg, struct engine *engine, struct db *db, int64_t now,
                  const atomic_int *stop, struct retention_result *out, char *err, size_t errlen)
{
    char date[11], iso[21], why[256], value[64];
    struct db_cleanup_stats cs;
    int64_t today = now / 86400;
    memset(out, 0, sizeof(*out));
    out->cutoff_day = today - cfg->retention_days + 1;
    timeutil_format_date(out->cutoff_day * 86400, date);
    int rc = db_cleanup_before(db, date, stop, &cs, why, sizeof(why));
    out->daily_rows = cs.daily_rows;
    out->status_rows = cs.status_rows;
    out->dates = cs.dates;
    if (rc == PF_ECONFLICT) {
        snprintf(err, errlen, "stopped");
        return rc;
    }
    if (rc != 0) {
        snprintf(err, errlen, "database error deleting rows before %s: %s", date, why);
        return rc;
    }
    /* Hourly rows keep ANALYTICS_HOURLY_RETENTION_DAYS dates, today
     * included; client and sketch rows the daily retention's. */
    int64_t hour = (today - cfg->hourly_retention_days + 1) * 24;
    rc = db_cleanup_more_before(db, date, hour, &out->more_rows, why, sizeof(why));
    if (rc != 0) {
        snprintf(err, errlen, "database error deleting hourly, client and sketch rows: %s", why);
        return rc;
    }
    rc = retention_purge_events(cfg, engine, now, &out->files, err, errlen);
    if (rc != 0)
        return rc;
    timeutil_format_iso8601(now, iso);
    rc = db_meta_set(db, "last_cleanup_at", iso, why, sizeof(why));
    snprintf(value, sizeof(value), "%lld", (long long)(out->daily_rows + out->status_rows));
    if (rc == 0)
        rc = db_meta_set(db, "last_cleanup_rows", value, why, sizeof(why));
    snprintf(value, sizeof(value), "%llu", (unsigned long long)out->files);
    if (rc == 0)
        rc = db_meta_set(db, "last_cleanup_files", value, why, sizeof(why));
    if (rc != 0) {
        snprintf(err, errlen, "database error recording the cleanup: %s", why);
        return rc;
    }
    /* An hour: far longer than any write of a file takes. */
    storage_sweep_temps(cfg->storage_dir, 3600, stop, &out->temp_files);
    return 0;
}
