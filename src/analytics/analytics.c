/* analytics.c - see analytics.h. */
#include "analytics/analytics.h"

#include "base/err.h"
#include "analytics/evlog.h"
#include "analytics/geoip.h"
#include "analytics/rollup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Distinct realtime keys in memory at most (see rollup.h). A flush holds
 * the keys of half a second of traffic; this bound matters only while the
 * database refuses writes for long. Tables grow at half load, 56 bytes per
 * slot: at most 2^19 slots (29 MB) each. */
#define ROLLUP_MAX_KEYS (1u << 18)

struct analytics {
    struct evlog *events;  /* NULL: ANALYTICS_ENGINE=none */
    struct rollup *rollup; /* NULL: realtime off */
    struct geoip *geo;     /* NULL: no PIXFLARE_GEOIP_DB */
    char *country_header;  /* NULL: never read */
    FILE *log;
};

int analytics_open(const struct config *cfg, FILE *log, struct analytics **out, char *err,
                   size_t errlen)
{
    struct analytics *an = calloc(1, sizeof(*an));
    int rc = 0;
    if (an == NULL)
        return PF_ENOMEM;
    an->log = log;
    if (cfg->country_header[0] != '\0' &&
        (an->country_header = strdup(cfg->country_header)) == NULL)
        rc = PF_ENOMEM;
    if (rc == 0 && cfg->geoip_db != NULL && geoip_open(cfg->geoip_db, &an->geo, err, errlen) != 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "PIXFLARE_GEOIP_DB='%s': %s", cfg->geoip_db, why);
        rc = PF_EINVAL; /* a setting that cannot work: the caller exits 2 */
    }
    if (rc == 0 && cfg->engine == CONFIG_ENGINE_EMBEDDED)
        rc = evlog_open(cfg->data_dir, cfg->dataset, cfg->fsync_ms, log, &an->events, err, errlen);
    if (rc == 0 && cfg->realtime_enabled)
        rc = rollup_open(cfg->sqlite_path, cfg->realtime_flush_ms, ROLLUP_MAX_KEYS, log,
                         &an->rollup, err, errlen);
    if (rc != 0) {
        analytics_close(an);
        return rc;
    }
    *out = an;
    return 0;
}

const char *analytics_country_header(const struct analytics *an)
{
    return an->country_header;
}

int analytics_enabled(const struct analytics *an)
{
    return an->events != NULL || an->rollup != NULL;
}

static int valid_country(const char *s)
{
    return s[0] >= 'A' && s[0] <= 'Z' &&
           ((s[1] >= 'A' && s[1] <= 'Z') || (s[1] >= '0' && s[1] <= '9')) && s[2] == '\0';
}

void analytics_country(const struct analytics *an, const char *header, const struct sockaddr *peer,
                       char cc[3])
{
    if (header != NULL && valid_country(header)) {
        memcpy(cc, header, 3);
        return;
    }
    if (an->geo != NULL && peer != NULL && geoip_lookup_sockaddr(an->geo, peer, cc) == 0 &&
        valid_country(cc))
        return;
    memcpy(cc, "XX", 3);
}

void analytics_record(struct analytics *an, const struct an_hit *hit, int status, uint64_t bytes,
                      const char *country, const struct sockaddr *peer)
{
    struct event ev;
    struct timespec ts;
    if (an == NULL || !hit->record || (an->events == NULL && an->rollup == NULL))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    memset(&ev, 0, sizeof(ev));
    ev.ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (hit->owner != NULL)
        memcpy(ev.owner, hit->owner, 16);
    if (hit->image_id != NULL) /* ids are 6 characters; ev is zeroed */
        memcpy(ev.image_id, hit->image_id, strnlen(hit->image_id, sizeof(ev.image_id) - 1));
    ev.variant = hit->variant;
    ev.status = status;
    ev.bytes = bytes;
    analytics_country(an, country, peer, ev.country);
    analytics_record_event(an, &ev);
}

void analytics_record_event(struct analytics *an, struct event *ev)
{
    if (an->events != NULL) {
        evlog_request_id(an->events, ev->request_id);
        evlog_append(an->events, ev);
    }
    if (an->rollup != NULL)
        rollup_add(an->rollup, ev);
}

void analytics_close(struct analytics *an)
{
    if (an == NULL)
        return;
    struct evlog_stats es = {0};
    struct rollup_stats rs = {0};
    if (an->rollup != NULL)
        rollup_close(an->rollup, &rs);
    if (an->events != NULL) {
        evlog_get_stats(an->events, &es);
        evlog_close(an->events);
    }
    if (an->log != NULL && (an->rollup != NULL || an->events != NULL))
        fprintf(an->log,
                "pixflare: analytics: %llu events stored (%llu could not be), %llu fsyncs; "
                "%llu realtime transactions wrote %llu rows (%llu failed, retried)\n",
                (unsigned long long)es.appended, (unsigned long long)es.dropped,
                (unsigned long long)es.syncs, (unsigned long long)rs.flushes,
                (unsigned long long)rs.rows, (unsigned long long)rs.failures);
    geoip_close(an->geo);
    free(an->country_header);
    free(an);
}
