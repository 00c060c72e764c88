/* health.h - GET /healthz (the process is alive and serving) and GET
 * /readyz (it can do its work): the probes of load balancers, container
 * runtimes, systemd (`pixflare health`) and people.
 *
 * /healthz answers {"status":"ok"} and never touches anything. /readyz runs
 * the checks below off the event loop (the route's own thread) and answers
 * 200 {"status":"ready","checks":{...}} or 503 with SPEC.md's error body,
 * code NOT_READY, whose message names the first failing check, and the
 * same "checks" object beside it:
 *   database     the database answers a read (its own connection)
 *   event_store  the event log's directory takes a new file (an unnamed
 *                O_TMPFILE, never seen by readers); "disabled" without one
 *   disk         the data and storage directories' filesystems have at
 *                least min_free_bytes free
 * Any other path under either is a 404. Never an event. */
#ifndef PF_HEALTH_H
#define PF_HEALTH_H

#include "http/http.h"

#include <stddef.h>
#include <stdint.h>

struct health;

struct health_opts {
    const char *database;    /* db_open()'s URL */
    const char *data_dir;    /* disk check */
    const char *storage_dir; /* disk check */
    const char *events_dir;  /* the event log's directory, or NULL (no engine) */
    uint64_t min_free_bytes;
};

/* The strings are copied. Nothing is opened until the first check. */
int health_new(const struct health_opts *o, struct health **out);
void health_free(struct health *h);

/* Run the checks now (any thread; serialized). OUT: the JSON answer's
 * status (200 or 503) and body (malloc'd, caller frees). */
int health_ready(struct health *h, int *status, char **body);

/* The route for the first path segments "healthz" and "readyz" (register
 * it under both). `h` outlives the server; NULL answers /readyz 503. */
struct http_route health_route_http(struct health *h);

#endif
