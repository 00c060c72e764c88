/* analytics.h - the one place the analytics is wired from the settings.
 *
 * analytics_open() makes what the configuration enables and ties it
 * together: the capture (PIXFLARE_COUNTRY_HEADER, PIXFLARE_GEOIP_DB), the
 * event engine's writer (the engine ANALYTICS_ENGINE names, chosen by
 * engine_open()) and the realtime rollup (ANALYTICS_REALTIME_ENABLED), as
 * sinks of the one sink the CDN route emits every response's event to. So
 * the seed's modes are all here: both (the default), either, or neither
 * (ANALYTICS_ENGINE=none with realtime off: the CDN serves and nothing is
 * recorded). With the engine on, an event is written before its response
 * is queued: a response a client received always has its event (evlog.h). */
#ifndef PF_ANALYTICS_H
#define PF_ANALYTICS_H

#include "analytics/capture.h"
#include "analytics/engine.h"
#include "analytics/event.h"
#include "config/config.h"

#include <stddef.h>
#include <stdio.h>

struct analytics;

/* Open what cfg enables; `engine` (NULL: none) is the caller's, and must
 * outlive the analytics. Messages about recovered files go to `log`.
 * PF_EINVAL when a setting cannot work (an unreadable PIXFLARE_GEOIP_DB),
 * PF_ECONFLICT when another server writes the event store; the reason is
 * in err. */
int analytics_open(const struct config *cfg, struct engine *engine, FILE *log,
                   struct analytics **out, char *err, size_t errlen);

/* The sink the CDN's events go to, or NULL when nothing is recorded. */
const struct event_sink *analytics_sink(const struct analytics *an);

/* What the events learn of their requests (the country). */
const struct capture *analytics_capture(const struct analytics *an);

/* Write everything out (realtime counts flushed, the engine's writer
 * stopped: segments sealed), print a one-line summary on `log`, and free.
 * No emit may run concurrently or after. NULL is fine. */
void analytics_close(struct analytics *an);

#endif
