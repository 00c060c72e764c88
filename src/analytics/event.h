/* event.h - the one record every part of the analytics shares: one event
 * per CDN response (SPEC.md's "Analytics"), and the sink interface events
 * are emitted to.
 *
 * The CDN route makes an event for every response it answers and emits it
 * to one sink; which sinks that sink feeds (the embedded event log, the
 * realtime rollup, and next a ClickHouse shipper) is wired in one place,
 * analytics_open(), from the configuration. An event holds no client data:
 * no address, user agent, referer or query string ever reaches one; only
 * the class its user agent was told to be, and (in memory, for the
 * rollup) one register of a sketch. */
#ifndef PF_EVENT_H
#define PF_EVENT_H

#include <stdint.h>

struct event {
    int64_t ts_ms;          /* Unix time in ms, UTC */
    uint8_t request_id[16]; /* unique per response: event_request_id() */
    uint8_t owner[16];      /* keyed owner hash; all zero: no known owner */
    char image_id[8];       /* "" when no image was found */
    int variant;            /* index in variant_table, -1: none */
    int status;             /* HTTP status */
    char country[3];        /* two characters [A-Z][A-Z0-9] */
    uint64_t bytes;         /* response body bytes */
    uint8_t client;         /* db_client: 0 human, 1 bot, 2 preview (uaclass.h) */
    /* The client's point in the day's unique-clients sketch (hll_point() of
     * a keyed hash of the day's salt, address and user agent: index << 8 |
     * rank; 0: none). Only the realtime rollup reads it, to raise one
     * register; no event file, spool or table ever holds it. */
    uint32_t upoint;
};

/* Make a new request id into out: 8 bytes random per process start, 2 of
 * the calling thread's slot, 6 of its counter (big-endian), so ids are
 * unique without any shared counter. Thread-safe; no syscall but the first
 * call's getrandom(). */
void event_request_id(uint8_t out[16]);

/* Where events go. emit() is called on the request path, from any number
 * of threads at once: it must not block on another thread's emit, and it
 * cannot fail (a sink counts and reports what it could not keep). */
struct event_sink_ops {
    const char *name;
    void (*emit)(void *impl, const struct event *ev);
};

struct event_sink {
    const struct event_sink_ops *ops; /* NULL: a sink that keeps nothing */
    void *impl;
};

static inline void event_emit(const struct event_sink *s, const struct event *ev)
{
    s->ops->emit(s->impl, ev);
}

/* A sink that passes every event to each of up to EVENT_TEE_MAX sinks, in
 * the order they were added. The tee is the caller's (it must outlive the
 * sink made from it); it allocates nothing. */
#define EVENT_TEE_MAX 4
struct event_tee {
    struct event_sink to[EVENT_TEE_MAX];
    int n;
};

/* Add a sink. PF_ERANGE when the tee is full. */
int event_tee_add(struct event_tee *t, struct event_sink s);

/* The sink that feeds every sink added: the only one when there is one (no
 * indirection), none (ops NULL) when there is none. */
struct event_sink event_tee_sink(struct event_tee *t);

#endif
