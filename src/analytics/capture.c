/* capture.c - see capture.h. */
#include "analytics/capture.h"

#include "analytics/geoip.h"
#include "analytics/uaclass.h"
#include "analytics/uniq.h"
#include "base/err.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct capture {
    char *country_header;    /* NULL: never read */
    struct geoip *geo;       /* NULL: no PIXFLARE_GEOIP_DB */
    const struct uniq *uniq; /* NULL: no unique clients */
};

int capture_open(const char *country_header, const char *geoip_db, struct capture **out, char *err,
                 size_t errlen)
{
    struct capture *c = calloc(1, sizeof(*c));
    int rc = 0;
    if (c == NULL)
        return PF_ENOMEM;
    if (country_header != NULL && country_header[0] != '\0' &&
        (c->country_header = strdup(country_header)) == NULL)
        rc = PF_ENOMEM;
    if (rc == 0)
        rc = uaclass_init(err, errlen);
    if (rc == 0 && geoip_db != NULL && geoip_open(geoip_db, &c->geo, err, errlen) != 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "PIXFLARE_GEOIP_DB='%s': %s", geoip_db, why);
        rc = PF_EINVAL; /* a setting that cannot work: the caller exits 2 */
    }
    if (rc != 0) {
        capture_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void capture_close(struct capture *c)
{
    if (c == NULL)
        return;
    geoip_close(c->geo);
    free(c->country_header);
    free(c);
}

void capture_set_uniq(struct capture *c, const struct uniq *u)
{
    c->uniq = u;
}

const char *capture_country_header(const struct capture *c)
{
    return c->country_header;
}

static int valid_country(const char *s)
{
    return s[0] >= 'A' && s[0] <= 'Z' &&
           ((s[1] >= 'A' && s[1] <= 'Z') || (s[1] >= '0' && s[1] <= '9')) && s[2] == '\0';
}

void capture_country(const struct capture *c, const char *header, const struct sockaddr *peer,
                     char cc[3])
{
    if (header != NULL && valid_country(header)) {
        memcpy(cc, header, 3);
        return;
    }
    if (c->geo != NULL && peer != NULL && geoip_lookup_sockaddr(c->geo, peer, cc) == 0 &&
        valid_country(cc))
        return;
    memcpy(cc, "XX", 3);
}

void capture_stamp(const struct capture *c, const char *header, const char *ua,
                   const struct sockaddr *peer, struct event *ev)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ev->ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    event_request_id(ev->request_id);
    capture_country(c, header, peer, ev->country);
    ev->client = (uint8_t)uaclass_of(ua);
    ev->upoint = 0;
    /* Bots are not people: they never count as unique clients. */
    if (c->uniq == NULL || ev->client == UACLASS_BOT || peer == NULL)
        return;
    if (peer->sa_family == AF_INET)
        ev->upoint = uniq_point(c->uniq, ev->ts_ms,
                                &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4, ua);
    else if (peer->sa_family == AF_INET6)
        ev->upoint =
            uniq_point(c->uniq, ev->ts_ms,
                       &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, 16, ua);
}
