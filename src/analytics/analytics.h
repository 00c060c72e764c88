/* analytics.h - one event per CDN response, to the event store and the
 * realtime rollups, as ANALYTICS_ENGINE and ANALYTICS_REALTIME_ENABLED say.
 *
 * The HTTP layer calls analytics_record() once per response of the CDN
 * route, before the response is queued: with the event store on, a response
 * a client received always has its event on disk (see evlog.h). The event
 * holds no client data: the country is taken from the configured header or
 * from the client address through GeoIP, and the address is then dropped. */
#ifndef PF_ANALYTICS_H
#define PF_ANALYTICS_H

#include "config/config.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct analytics;
struct event;

/* What the CDN route knows of a response for its event. */
struct an_hit {
    int record;           /* 1: a CDN response, to be recorded */
    const uint8_t *owner; /* keyed owner hash (16 bytes), NULL: no known owner */
    const char *image_id; /* NULL: no known image */
    int variant;          /* -1: none named */
};

/* Open what cfg enables (possibly nothing: then analytics_record() is a
 * no-op). Messages about recovered files go to `log`. PF_EINVAL when a
 * setting cannot work (an unreadable PIXFLARE_GEOIP_DB), PF_ECONFLICT when
 * another server writes the event store; the reason is in err. */
int analytics_open(const struct config *cfg, FILE *log, struct analytics **out, char *err,
                   size_t errlen);

/* The request header carrying the country, or NULL when none is read. */
const char *analytics_country_header(const struct analytics *an);

/* Record one response. `country` is the header's value (may be NULL),
 * `peer` the client address (may be NULL), used only for a GeoIP lookup. */
void analytics_record(struct analytics *an, const struct an_hit *hit, int status, uint64_t bytes,
                      const char *country, const struct sockaddr *peer);

/* Record an event made elsewhere (the demo's traffic): its request id is
 * filled in here, the rest is taken as it is. */
void analytics_record_event(struct analytics *an, struct event *ev);

/* Whether anything is recorded at all. */
int analytics_enabled(const struct analytics *an);

/* Write everything out (realtime counts flushed, segments sealed), print a
 * one-line summary on `log`, and free. No record may run concurrently. */
void analytics_close(struct analytics *an);

/* Resolve the country as analytics_record() does. OUT: cc[3]. Exposed for
 * the tests. */
void analytics_country(const struct analytics *an, const char *header, const struct sockaddr *peer,
                       char cc[3]);

#endif
