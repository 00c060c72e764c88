/* cmd_demo.c - `pixflare demo`: demo owners, images, API keys, and thirty
 * days of demo traffic (once per data directory). */
#include "cli/cli.h"

#include "analytics/analytics.h"
#include "analytics/engine.h"
#include "base/err.h"
#include "base/fsutil.h"
#include "cdn/catalog.h"
#include "cli/demo.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Thirty days of demo traffic, recorded once per data directory (a marker
 * file says it was), through the analytics the settings enable. */
static int demo_traffic_once(struct cli_offline *o)
{
    char marker[PATH_MAX], err[512] = "";
    struct catalog *cat = NULL;
    struct engine *engine = NULL;
    struct analytics *an = NULL;
    uint64_t n = 0;
    int rc;
    snprintf(marker, sizeof(marker), "%s/.demo-traffic-recorded", o->cfg.data_dir);
    if (access(marker, F_OK) == 0)
        return 0;
    rc = engine_open(&o->cfg, &engine, err, sizeof(err));
    if (rc == 0 && engine == NULL && !o->cfg.realtime_enabled)
        return 0; /* nothing would be recorded */
    if (rc == 0)
        rc = catalog_open(o->cfg.database, o->cfg.secret, &cat, err, sizeof(err));
    if (rc == 0)
        rc = analytics_open(&o->cfg, engine, stderr, &an, err, sizeof(err));
    if (rc == PF_ECONFLICT) {
        fprintf(stderr, "pixflare demo: a server is running on this data directory; no demo "
                        "traffic recorded\n");
        catalog_close(cat);
        engine_close(engine);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "pixflare demo: %s\n", err);
    } else {
        rc = demo_traffic(analytics_sink(an), cat, 30, 20261124, &n);
        analytics_close(an); /* flushes the counts, seals the files */
        if (rc == 0) {
            rc = fsutil_write_atomic(marker, "", 0, 0644);
            fprintf(stderr, "pixflare demo: recorded %llu requests of demo traffic over 30 days\n",
                    (unsigned long long)n);
        }
    }
    catalog_close(cat);
    engine_close(engine);
    return rc;
}

int cmd_demo(const char *config_file, int argc, char **argv)
{
    struct cli_offline o;
    char src[PATH_MAX], base[128];
    if (argc > 1)
        return cli_usage_error("demo", "unexpected argument '%s'", argv[1]);
    int rc = cli_offline_open(config_file, argv[0], &o);
    if (rc != 0)
        return rc;
    snprintf(src, sizeof(src), "%s/demo-src", o.cfg.data_dir);
    rc = demo_run(o.db, o.st, src, stdout, stderr);
    if (rc == 0)
        rc = demo_traffic_once(&o);
    if (rc != 0) {
        fprintf(stderr, "pixflare demo: %s\n", err_str(rc));
        rc = 1;
    } else {
        const char *host = o.cfg.listen_host;
        if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
            host = "127.0.0.1";
        int v6 = strchr(host, ':') != NULL;
        snprintf(base, sizeof(base), "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
                 o.cfg.listen_port);
        fprintf(stderr,
                "pixflare demo: ready. After 'pixflare serve', try:\n"
                "  %s/alice/pics/sunset.jpg\n  %s/alice/pics/sunset.jpg/w512\n"
                "  %s/alice/travel/harbour.webp/og-image\n  %s/bob/art/portrait.jpg/thumb\n",
                base, base, base, base);
        const char *owners[DEMO_OWNERS];
        char keys[DEMO_OWNERS][64], path[PATH_MAX];
        int nkeys = 0;
        snprintf(path, sizeof(path), "%s/demo-keys", o.cfg.data_dir);
        if (demo_keys(o.db, o.cfg.secret, path, owners, keys, &nkeys) != 0) {
            fprintf(stderr, "pixflare demo: cannot make the demo API keys\n");
            rc = 1;
        }
        for (int i = 0; i < nkeys; i++)
            fprintf(stderr,
                    "  API key of %s (also in %s):\n    curl -H 'Authorization: Bearer %s' "
                    "'%s/v1/analytics/overview?days=30'\n",
                    owners[i], path, keys[i], base);
        if (nkeys > 0)
            fprintf(stderr, "  Stats dashboard: %s/dashboard (sign in with a key above)\n", base);
    }
    cli_offline_close(&o);
    return rc;
}
