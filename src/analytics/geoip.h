/* geoip.h - country of an IP address from a MaxMind-format database.
 *
 * A thin wrapper over libmaxminddb. The database is memory-mapped once and
 * read without locks by any number of threads. The address is looked up
 * and forgotten: nothing here keeps or logs it. */
#ifndef PF_GEOIP_H
#define PF_GEOIP_H

#include <stddef.h>
#include <sys/socket.h>

struct geoip;

/* Open a .mmdb file. OUT: *out. A reason goes into err. */
int geoip_open(const char *path, struct geoip **out, char *err, size_t errlen);
void geoip_close(struct geoip *g);

/* The ISO code of the country the address belongs to, into cc[3]. Returns
 * 0, or PF_ENOTFOUND when the database has no country for it. */
int geoip_lookup_sockaddr(const struct geoip *g, const struct sockaddr *sa, char cc[3]);
int geoip_lookup_string(const struct geoip *g, const char *ip, char cc[3]);

#endif
