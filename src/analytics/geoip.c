/* geoip.c - see geoip.h. */
#include "analytics/geoip.h"

#include "base/err.h"

#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct geoip {
    MMDB_s mmdb;
};

int geoip_open(const char *path, struct geoip **out, char *err, size_t errlen)
{
    struct geoip *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return PF_ENOMEM;
    int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->mmdb);
    if (rc != MMDB_SUCCESS) {
        snprintf(err, errlen, "cannot open GeoIP database %s: %s", path, MMDB_strerror(rc));
        free(g);
        return PF_EIO;
    }
    *out = g;
    return 0;
}

void geoip_close(struct geoip *g)
{
    if (g == NULL)
        return;
    MMDB_close(&g->mmdb);
    free(g);
}

/* Both GeoIP2-Country layouts: country.iso_code, else the registered
 * country (for anycast and satellite ranges). */
static int country_of(MMDB_lookup_result_s *res, char cc[3])
{
    static const char *const paths[][3] = {{"country", "iso_code", NULL},
                                           {"registered_country", "iso_code", NULL}};
    if (!res->found_entry)
        return PF_ENOTFOUND;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        MMDB_entry_data_s data;
        if (MMDB_aget_value(&res->entry, &data, paths[i]) == MMDB_SUCCESS && data.has_data &&
            data.type == MMDB_DATA_TYPE_UTF8_STRING && data.data_size == 2) {
            cc[0] = data.utf8_string[0];
            cc[1] = data.utf8_string[1];
            cc[2] = '\0';
            return 0;
        }
    }
    return PF_ENOTFOUND;
}

int geoip_lookup_sockaddr(const struct geoip *g, const struct sockaddr *sa, char cc[3])
{
    int mmdb_error = 0;
    MMDB_lookup_result_s res = MMDB_lookup_sockaddr(&g->mmdb, sa, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS)
        return PF_ENOTFOUND;
    return country_of(&res, cc);
}

int geoip_lookup_string(const struct geoip *g, const char *ip, char cc[3])
{
    int gai_error = 0, mmdb_error = 0;
    MMDB_lookup_result_s res = MMDB_lookup_string(&g->mmdb, ip, &gai_error, &mmdb_error);
    if (gai_error != 0 || mmdb_error != MMDB_SUCCESS)
        return PF_ENOTFOUND;
    return country_of(&res, cc);
}
