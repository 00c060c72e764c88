/* analytics.c - see analytics.h. */
#include "analytics/analytics.h"

#include "analytics/rollup.h"
#include "analytics/uniq.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>

/* Distinct realtime keys in memory at most (see rollup.h). A flush holds
 * the keys of half a second of traffic; this bound matters only while the
 * database refuses writes for long. Tables grow at half load, 80 bytes per
 * slot (key, counts and the bots' share): at most 2^19 slots (42 MB) each.
 * A request makes up to five keys (status, daily, hour, and the owner's and
 * the image's sketch register), most of them shared with other requests. */
#define ROLLUP_MAX_KEYS (1u << 18)

struct analytics {
    struct capture *cap;
    struct engine *engine; /* the caller's; NULL: ANALYTICS_ENGINE=none */
    int writing;           /* the engine's writer was started here */
    struct rollup *rollup; /* NULL: realtime off */
    struct uniq *uniq;     /* the day's salts; NULL: realtime off */
    struct event_tee tee;
    struct event_sink sink; /* ops NULL: nothing recorded */
    FILE *log;
};

int analytics_open(const struct config *cfg, struct engine *engine, FILE *log,
                   struct analytics **out, char *err, size_t errlen)
{
    struct analytics *an = calloc(1, sizeof(*an));
    struct event_sink s;
    if (an == NULL)
        return PF_ENOMEM;
    an->log = log;
    an->engine = engine;
    int rc = capture_open(cfg->country_header, cfg->geoip_db, &an->cap, err, errlen);
    if (rc == 0 && engine != NULL) {
        rc = engine_writer_start(engine, log, &s, err, errlen);
        an->writing = rc == 0;
        if (rc == 0)
            rc = event_tee_add(&an->tee, s);
    }
    char node[17] = "";
    if (rc == 0 && cfg->realtime_enabled)
        rc = config_node_id(cfg, node, err, errlen);
    /* Unique clients are counted by the rollup (their sketches are only
     * ever in its memory and the database): realtime off, none. */
    if (rc == 0 && cfg->realtime_enabled)
        rc = uniq_new(&an->uniq);
    if (rc == 0 && cfg->realtime_enabled) {
        rc = rollup_open(cfg->database, node, cfg->realtime_flush_ms, ROLLUP_MAX_KEYS, an->uniq,
                         log, &an->rollup, err, errlen);
        if (rc == 0)
            capture_set_uniq(an->cap, an->uniq);
        if (rc == 0)
            rc = event_tee_add(&an->tee, rollup_sink(an->rollup));
    }
    if (rc != 0) {
        analytics_close(an);
        return rc;
    }
    an->sink = event_tee_sink(&an->tee);
    *out = an;
    return 0;
}

const struct event_sink *analytics_sink(const struct analytics *an)
{
    return an->sink.ops != NULL ? &an->sink : NULL;
}

const struct capture *analytics_capture(const struct analytics *an)
{
    return an->cap;
}

void analytics_close(struct analytics *an)
{
    if (an == NULL)
        return;
    struct engine_write_stats es = {0};
    struct rollup_stats rs = {0};
    if (an->rollup != NULL)
        rollup_close(an->rollup, &rs);
    if (an->writing)
        engine_writer_stop(an->engine, &es);
    if (an->log != NULL && (an->rollup != NULL || an->writing))
        fprintf(an->log,
                "pixflare: analytics: %llu events stored (%llu could not be), %llu fsyncs; "
                "%llu realtime transactions wrote %llu rows (%llu failed, retried)\n",
                (unsigned long long)es.appended, (unsigned long long)es.dropped,
                (unsigned long long)es.syncs, (unsigned long long)rs.flushes,
                (unsigned long long)rs.rows, (unsigned long long)rs.failures);
    capture_close(an->cap);
    uniq_free(an->uniq);
    free(an);
}
