/* ticker.h - a thread that calls a function at a fixed rate.
 *
 * Deadlines run on CLOCK_MONOTONIC at fixed rate (a slow call is not
 * followed by a full period of waiting, and a wall-clock step changes
 * nothing), which is what "within N ms" guarantees need. */
#ifndef PF_TICKER_H
#define PF_TICKER_H

struct ticker;

/* Start calling fn(ctx) every period_ms (at least 1). OUT: *out. */
int ticker_start(int period_ms, void (*fn)(void *ctx), void *ctx, struct ticker **out);

/* Stop and join: fn is not running and is not called again on return. */
void ticker_stop(struct ticker *t);

#endif
