/* ratelimit.h - requests per minute per owner on the analytics API.
 *
 * A sliding window of one-second buckets: a request is let through when
 * fewer than `limit` requests of the same owner were let through in the
 * current second and the 60 before it. So no 60-second span ever holds more
 * than `limit` accepted requests (a fixed per-minute counter lets twice as
 * many through across a minute boundary), at the price of counting a
 * request for up to a second longer than a minute; a refused request learns
 * when its next one will pass (Retry-After, 1-61 s). Refused requests do
 * not count. 64 counters per active owner; owners idle for a minute are
 * forgotten. Thread-safe (one mutex: the API's path, not the CDN's). */
#ifndef PF_RATELIMIT_H
#define PF_RATELIMIT_H

#include <stdint.h>

struct ratelimit;

/* limit: requests per minute per owner (>= 1). */
int ratelimit_new(int limit, struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);

/* Count a request of `owner` (its first 32 characters) at `now_ms` (a monotonic clock). Returns 1
 * when it may pass, 0 when over the limit. OUT: *remaining, the requests still allowed in the
 * current window; *retry_after, when refused, the seconds to wait (1-61). */
int ratelimit_take(struct ratelimit *rl, const char *owner, int64_t now_ms, int *remaining,
                   int *retry_after);

#endif
