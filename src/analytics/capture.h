/* capture.h - what an event learns of the request it stands for.
 *
 * The CDN route knows the image, owner, variant, status and size of its
 * answer; capture_stamp() adds the rest: the time, a request id and the
 * country, taken from the configured header (PIXFLARE_COUNTRY_HEADER) or
 * from the client's address through a GeoIP database
 * (PIXFLARE_GEOIP_DB); the client class from the User-Agent (uaclass.h);
 * and the client's point in the day's unique-clients sketch (uniq.h). The
 * address and user agent are looked at and dropped: they never reach an
 * event, a file or a log. */
#ifndef PF_CAPTURE_H
#define PF_CAPTURE_H

#include "analytics/event.h"

#include <stddef.h>
#include <sys/socket.h>

struct capture;

/* country_header: the header to read ("" or NULL: none); geoip_db: a .mmdb
 * file, or NULL. OUT: *out, freed with capture_close(). PF_EINVAL when the
 * database cannot be read (reason in err: a setting that cannot work). */
int capture_open(const char *country_header, const char *geoip_db, struct capture **out, char *err,
                 size_t errlen);
void capture_close(struct capture *c);

/* The request header carrying the country, or NULL when none is read. */
const char *capture_country_header(const struct capture *c);

/* Resolve the country: the header's value (may be NULL) when it is two
 * characters [A-Z][A-Z0-9], else the GeoIP country of `peer` (may be
 * NULL), else "XX". OUT: cc[3]. */
void capture_country(const struct capture *c, const char *header, const struct sockaddr *peer,
                     char cc[3]);

struct uniq;
/* Give every event its point in the day's unique-clients sketch from `u`
 * (uniq.h; the caller's, outliving c). Without: no point (upoint 0). Set
 * before any capture_stamp(). */
void capture_set_uniq(struct capture *c, const struct uniq *u);

/* Fill ev's time (now), request id, country (as capture_country()), client
 * class (uaclass_of(ua): `ua` the User-Agent header, NULL when absent) and
 * unique-client point (not for bots); the caller sets the other fields.
 * The address and user agent are used here and forgotten. */
void capture_stamp(const struct capture *c, const char *header, const char *ua,
                   const struct sockaddr *peer, struct event *ev);

#endif
