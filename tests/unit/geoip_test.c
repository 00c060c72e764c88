/* geoip_test.c - country lookups against the real database that `make geoip`
 * builds from Debian's tor-geoipdb, checked against the same source files,
 * and the country an event records (capture_country()): header first, then GeoIP,
 * then "XX".
 *
 * The database is PIXFLARE_TEST_MMDB, else build/geoip/country.mmdb
 * relative to the working directory (the repository root under `make
 * unit`). Without it every test fails, saying to run `make geoip`: a
 * skipped GeoIP test would pass unnoticed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analytics/analytics.h"
#include "config/config.h"
#include "base/err.h"
#include "analytics/geoip.h"

#define TOR_GEOIP "/usr/share/tor/geoip"
#define TOR_GEOIP6 "/usr/share/tor/geoip6"
#define SAMPLES 200

static const char *mmdb_path(void)
{
    const char *p = getenv("PIXFLARE_TEST_MMDB");
    return p != NULL && p[0] != '\0' ? p : "build/geoip/country.mmdb";
}

static struct geoip *open_db(void)
{
    const char *path = mmdb_path();
    char err[512] = "";
    struct geoip *g = NULL;
    if (access(path, R_OK) != 0)
        fail_msg("GeoIP database %s is missing: run `make geoip` (or set PIXFLARE_TEST_MMDB)",
                 path);
    if (geoip_open(path, &g, err, sizeof(err)) != 0)
        fail_msg("%s; rebuild it with `make geoip`", err);
    return g;
}

/* A fixed-seed generator, so a failure names the same sample every run. */
static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

struct range {
    char lo[48], hi[48];
    char cc[3];
};

/* Lines "LOW,HIGH,CC" with a known country; "#" lines and "??" skipped.
 * OUT: *out (n entries, caller frees). */
static void load_ranges(const char *path, struct range **out, size_t *n)
{
    FILE *f = fopen(path, "r");
    char line[256];
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    if (f == NULL)
        fail_msg("%s is missing: apt-get install tor-geoipdb", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (line[0] == '#' || c2 == NULL)
            continue;
        *c1 = *c2 = '\0';
        char *cc = c2 + 1;
        cc[strcspn(cc, "\r\n")] = '\0';
        if (strlen(cc) != 2 || strcmp(cc, "??") == 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            struct range *nv = realloc(*out, cap * sizeof(**out));
            assert_non_null(nv);
            *out = nv;
        }
        struct range *r = &(*out)[(*n)++];
        snprintf(r->lo, sizeof(r->lo), "%s", line);
        snprintf(r->hi, sizeof(r->hi), "%s", c1 + 1);
        memcpy(r->cc, cc, 3);
    }
    fclose(f);
    assert_true(*n > 1000);
}

static void ipv4_text(uint32_t v, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
}

static void test_known_addresses(void **state)
{
    (void)state;
    struct geoip *g = open_db();
    char cc[3] = "";
    assert_int_equal(geoip_lookup_string(g, "8.8.8.8", cc), 0);
    assert_string_equal(cc, "US");
    assert_int_equal(geoip_lookup_string(g, "127.0.0.1", cc), PF_ENOTFOUND);
    assert_int_equal(geoip_lookup_string(g, "10.1.2.3", cc), PF_ENOTFOUND);
    assert_int_equal(geoip_lookup_string(g, "::1", cc), PF_ENOTFOUND);
    assert_int_equal(geoip_lookup_string(g, "not an address", cc), PF_ENOTFOUND);
    assert_int_equal(geoip_lookup_string(g, "", cc), PF_ENOTFOUND);

    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, "8.8.8.8", &sin.sin_addr), 1);
    memset(cc, 0, sizeof(cc));
    assert_int_equal(geoip_lookup_sockaddr(g, (struct sockaddr *)&sin, cc), 0);
    assert_string_equal(cc, "US");
    geoip_close(g);
}

/* Random addresses inside ranges sampled from the IPv4 source file. */
static void test_sampled_ipv4_ranges(void **state)
{
    (void)state;
    struct geoip *g = open_db();
    struct range *r;
    size_t n;
    load_ranges(TOR_GEOIP, &r, &n);
    rng_state = UINT64_C(0x9E3779B97F4A7C15);
    for (int i = 0; i < SAMPLES; i++) {
        const struct range *x = &r[rng_next() % n];
        uint32_t lo = (uint32_t)strtoul(x->lo, NULL, 10), hi = (uint32_t)strtoul(x->hi, NULL, 10);
        assert_true(lo <= hi);
        uint32_t v = lo + (uint32_t)(rng_next() % ((uint64_t)hi - lo + 1));
        char ip[16], cc[3] = "";
        ipv4_text(v, ip);
        int rc = geoip_lookup_string(g, ip, cc);
        if (rc != 0 || strcmp(cc, x->cc) != 0)
            fail_msg("%s (in %s-%s of %s): expected %s, got rc %d cc '%s'", ip, x->lo, x->hi,
                     TOR_GEOIP, x->cc, rc, cc);
    }
    free(r);
    geoip_close(g);
}

/* IPv6: both ends of ranges sampled from the IPv6 source file, outside the
 * blocks the builder aliases to the IPv4 tree (see scripts/geoip.pl). */
static int aliased_v6(const struct in6_addr *a)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    static const uint8_t zero[12] = {0};
    const uint8_t *b = a->s6_addr;
    return memcmp(b, zero, 12) == 0 || memcmp(b, v4mapped, 12) == 0 ||
           (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) ||
           (b[0] == 0x20 && b[1] == 0x02);
}

static void test_sampled_ipv6_ranges(void **state)
{
    (void)state;
    struct geoip *g = open_db();
    struct range *r;
    size_t n;
    load_ranges(TOR_GEOIP6, &r, &n);
    rng_state = UINT64_C(0x2545F4914F6CDD1D);
    int checked = 0;
    for (int i = 0; checked < SAMPLES / 4 && i < SAMPLES; i++) {
        const struct range *x = &r[rng_next() % n];
        struct in6_addr lo, hi;
        assert_int_equal(inet_pton(AF_INET6, x->lo, &lo), 1);
        assert_int_equal(inet_pton(AF_INET6, x->hi, &hi), 1);
        if (aliased_v6(&lo) || aliased_v6(&hi))
            continue;
        const char *ends[2] = {x->lo, x->hi};
        for (int e = 0; e < 2; e++) {
            char cc[3] = "";
            int rc = geoip_lookup_string(g, ends[e], cc);
            if (rc != 0 || strcmp(cc, x->cc) != 0)
                fail_msg("%s (in %s-%s of %s): expected %s, got rc %d cc '%s'", ends[e], x->lo,
                         x->hi, TOR_GEOIP6, x->cc, rc, cc);
        }
        checked++;
    }
    assert_int_equal(checked, SAMPLES / 4);
    /* A fixed one too: 2001:4860:4860::8888 is Google's public resolver. */
    char cc[3] = "";
    assert_int_equal(geoip_lookup_string(g, "2001:4860:4860::8888", cc), 0);
    assert_string_equal(cc, "US");
    free(r);
    geoip_close(g);
}

/* ---- capture_country(), as the analytics wires it ---------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Analytics with nothing recorded (no store, no rollups), so only the
 * country resolution is live; GeoIP from `mmdb` (NULL: none). */
static struct analytics *open_analytics(const char *data_dir, const char *mmdb)
{
    struct config cfg;
    struct analytics *an = NULL;
    char err[512] = "";
    setenv("PIXFLARE_DATA_DIR", data_dir, 1);
    setenv("PIXFLARE_SECRET", "0123456789abcdef0123456789abcdef", 1);
    setenv("ANALYTICS_ENGINE", "none", 1);
    setenv("ANALYTICS_REALTIME_ENABLED", "false", 1);
    if (mmdb != NULL)
        setenv("PIXFLARE_GEOIP_DB", mmdb, 1);
    else
        unsetenv("PIXFLARE_GEOIP_DB");
    if (config_load(NULL, &cfg, err, sizeof(err)) != 0)
        fail_msg("config_load: %s", err);
    if (analytics_open(&cfg, NULL, NULL, &an, err, sizeof(err)) != 0)
        fail_msg("analytics_open: %s", err);
    config_free(&cfg);
    assert_null(analytics_sink(an));
    return an;
}

static void analytics_country(struct analytics *an, const char *header, const struct sockaddr *peer,
                              char cc[3])
{
    capture_country(analytics_capture(an), header, peer, cc);
}

static struct sockaddr_in ipv4_peer(const char *ip)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(44321);
    assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static void test_analytics_country(void **state)
{
    (void)state;
    struct geoip *probe = open_db(); /* fails with the `make geoip` hint */
    geoip_close(probe);
    char dir[] = "/tmp/pixflare-geoip-XXXXXX";
    assert_non_null(mkdtemp(dir));

    struct analytics *an = open_analytics(dir, mmdb_path());
    struct sockaddr_in google = ipv4_peer("8.8.8.8"), local = ipv4_peer("127.0.0.1");
    const struct sockaddr *g = (const struct sockaddr *)&google;
    const struct sockaddr *lo = (const struct sockaddr *)&local;
    char cc[3];

    /* A well-formed header wins, even over the peer's address. */
    analytics_country(an, "US", lo, cc);
    assert_string_equal(cc, "US");
    analytics_country(an, "DE", g, cc);
    assert_string_equal(cc, "DE");
    analytics_country(an, "XX", g, cc);
    assert_string_equal(cc, "XX");
    analytics_country(an, "T1", g, cc);
    assert_string_equal(cc, "T1");
    analytics_country(an, "A1", NULL, cc);
    assert_string_equal(cc, "A1");

    /* A malformed one falls back to GeoIP. */
    const char *bad[] = {"us", "USA", "", "1A", "U", "U ", " US", "Us", "U-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(cc, 0, sizeof(cc));
        analytics_country(an, bad[i], g, cc);
        if (strcmp(cc, "US") != 0)
            fail_msg("header '%s' from 8.8.8.8: expected US, got '%s'", bad[i], cc);
        analytics_country(an, bad[i], NULL, cc);
        assert_string_equal(cc, "XX");
    }

    /* No header: GeoIP, else XX. */
    analytics_country(an, NULL, g, cc);
    assert_string_equal(cc, "US");
    analytics_country(an, NULL, lo, cc);
    assert_string_equal(cc, "XX");
    analytics_country(an, NULL, NULL, cc);
    assert_string_equal(cc, "XX");
    analytics_close(an);

    /* No GeoIP database configured: XX whatever the address. */
    an = open_analytics(dir, NULL);
    analytics_country(an, NULL, g, cc);
    assert_string_equal(cc, "XX");
    analytics_country(an, "usa", g, cc);
    assert_string_equal(cc, "XX");
    analytics_country(an, "FR", g, cc);
    assert_string_equal(cc, "FR");
    analytics_close(an);

    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_addresses),
        cmocka_unit_test(test_sampled_ipv4_ranges),
        cmocka_unit_test(test_sampled_ipv6_ranges),
        cmocka_unit_test(test_analytics_country),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
