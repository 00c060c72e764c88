/* health.h - GET /healthz: the process is alive and serving.
 *
 * Answers {"status":"ok"} at exactly /healthz; any other path under it is
 * a 404 (or the 400 a malformed path gets anywhere). Never an event. */
#ifndef PF_HEALTH_H
#define PF_HEALTH_H

#include "http/http.h"

/* The route to register for the first path segment "healthz". */
struct http_route health_route_http(void);

#endif
