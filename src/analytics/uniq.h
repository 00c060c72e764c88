/* uniq.h - unique clients, privately: the daily salt and a client's point
 * in the day's HyperLogLog sketch.
 *
 * A client is (address, user agent). Its point is hll_point() of
 * SipHash-2-4 keyed with the salt of the request's UTC day: a random 16
 * bytes made by the first node to ask (db_salt_get(): every node of a
 * cluster shares it through the database) and deleted once its day is over
 * (db_salt_purge_before()), here and in the database. Without the salt the
 * stored registers cannot be tied to an address, and with it gone nobody
 * can recompute a day's points: the same client on the next day is a new
 * client (counted once per day, as Plausible counts). Only the rollup sees a
 * point, to raise one register of the owner's and the image's day sketch
 * (event.h's upoint); no file, table or log holds a point or a hash.
 *
 * The request path reads the salts without a lock (uniq_point()); the
 * rollup's flusher keeps them current (uniq_refresh()): today's and
 * tomorrow's are held, so a request just after midnight finds its salt. */
#ifndef PF_UNIQ_H
#define PF_UNIQ_H

#include <stddef.h>
#include <stdint.h>

struct db;
struct uniq;

int uniq_new(struct uniq **out);
/* Forget the salts (the memory is wiped) and free. NULL is fine. */
void uniq_free(struct uniq *u);

/* The point of the client at `addr` (addrlen bytes: 4 or 16) with user
 * agent `ua` (may be NULL) for a request at ts_ms: index << 8 | rank, never
 * 0; 0 when the salt of that day is not held (yet, or any more). Any
 * thread; no lock, no syscall. */
uint32_t uniq_point(const struct uniq *u, int64_t ts_ms, const void *addr, size_t addrlen,
                    const char *ua);

/* Bring the salts up to date at Unix time `now`: make sure today's and
 * tomorrow's are held (db_salt_get()), and when a day has ended forget its
 * salt and delete it (and any older) from the database. Cheap when nothing
 * is due (no database call). One caller at a time (the flusher). */
int uniq_refresh(struct uniq *u, struct db *db, int64_t now, char *err, size_t errlen);

#endif
