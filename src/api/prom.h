/* prom.h - GET /metrics: the process's metrics (base/metrics.h) in
 * Prometheus' text exposition format, for the metrics listener
 * (PIXFLARE_METRICS_LISTEN) only: the main listener never serves them.
 * Any other path under /metrics is a 404. */
#ifndef PF_PROM_H
#define PF_PROM_H

#include "http/http.h"

/* The route for the first path segment "metrics". */
struct http_route prom_route_http(void);

#endif
