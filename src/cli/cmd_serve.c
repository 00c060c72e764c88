/* cmd_serve.c - `pixflare serve`: the composition root. It opens each part
 * in order (storage, catalog, event engine, analytics, CDN, API), registers
 * the routes with the router, starts the HTTP server and the scheduled jobs,
 * and on SIGINT or SIGTERM stops them in the reverse order: jobs, then the
 * server (in-flight responses finish), then the analytics (counts flushed,
 * events sealed). */
#include "cli/cli.h"

#include "analytics/analytics.h"
#include "analytics/engine.h"
#include "api/api.h"
#include "api/dash.h"
#include "api/health.h"
#include "api/prom.h"
#include "base/err.h"
#include "base/metrics.h"
#include "cdn/catalog.h"
#include "cdn/cdn.h"
#include "cdn/cdn_route.h"
#include "cdn/storage.h"
#include "http/http_router.h"
#include "http/http_server.h"
#include "jobs/jobs.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* Each connection holds a descriptor; the usual soft limit of 1024 would cap
 * the server far below what it can serve, so take the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* /healthz and /readyz, on either listener. */
static int add_probes(struct http_router *router, struct health *health)
{
    struct http_route r = health_route_http(health);
    int rc = http_router_add(router, "healthz", &r);
    return rc == 0 ? http_router_add(router, "readyz", &r) : rc;
}

/* The routes: the server's own under their first path segment, the CDN for
 * every other path. */
static int add_routes(struct http_router *router, struct cdn_route *cdn, int threads,
                      struct api *api, struct health *health)
{
    struct http_route r = cdn_route_http(cdn, threads);
    int rc = http_router_add(router, NULL, &r);
    if (rc == 0) {
        r = api_route_http(api);
        rc = http_router_add(router, "v1", &r);
    }
    if (rc == 0) {
        r = dash_route_http();
        rc = http_router_add(router, "dashboard", &r);
    }
    return rc == 0 ? add_probes(router, health) : rc;
}

/* The metrics listener's routes: /metrics and the two probes, nothing else. */
static int add_metrics_routes(struct http_router *router, struct health *health)
{
    struct http_route r = prom_route_http();
    int rc = http_router_add(router, "metrics", &r);
    return rc == 0 ? add_probes(router, health) : rc;
}

static int open_health(const struct config *cfg, struct health **out)
{
    char events[4096];
    snprintf(events, sizeof(events), "%s/events/%s", cfg->data_dir, cfg->dataset);
    struct health_opts o = {cfg->database, cfg->data_dir, cfg->storage_dir,
                            cfg->engine == CONFIG_ENGINE_NONE ? NULL : events,
                            (uint64_t)cfg->min_free_mb << 20};
    return health_new(&o, out);
}

/* pixflare_build_info{version}: 1, the usual way to put the version on
 * every dashboard. */
static void register_build_info(void)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "version=\"%s\"", cli_version);
    metrics_gauge_set(metrics_gauge("pixflare_build_info", labels,
                                    "Always 1; the version of the running binary."),
                      1);
}

int cmd_serve(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct storage *st = NULL;
    struct catalog *cat = NULL;
    struct cdn *cdn = NULL;
    struct cdn_route *cdn_route = NULL;
    struct http_router *router = NULL;
    struct http_server *srv = NULL, *msrv = NULL;
    struct http_router *mrouter = NULL;
    struct health *health = NULL;
    struct engine *engine = NULL;
    struct analytics *an = NULL;
    struct jobs *jobs = NULL;
    struct api *api = NULL;
    char err[512];
    int rc = 1, port = 0, mport = 0;
    if (argc > 1)
        return cli_usage_error("serve", "unexpected argument '%s'", argv[1]);
    rc = cli_load_config(config_file, &cfg, CLI_MAKE_DATA_DIR);
    if (rc != 0)
        return rc;
    /* A taken address is one line and nothing else: asked before anything
     * is created, opened or logged. */
    const char *which = "";
    rc = http_server_probe(cfg.listen_host, cfg.listen_port, err, sizeof(err));
    if (rc == 0 && cfg.metrics_host != NULL) {
        which = "metrics listener (PIXFLARE_METRICS_LISTEN): ";
        rc = http_server_probe(cfg.metrics_host, cfg.metrics_port, err, sizeof(err));
    }
    if (rc != 0) {
        fprintf(stderr, "pixflare: %s%s\n", which, err);
        config_free(&cfg);
        return 1;
    }
    if (config_ensure_secret(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    if (engine_open(&cfg, &engine, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    rc = 1;

    /* Block the stop signals before any thread starts so that only sigwait()
     * below sees them; every worker inherits the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (storage_vips_init(argv[0]) != 0) {
        fprintf(stderr, "pixflare: cannot start libvips\n");
        goto done;
    }
    if (storage_open(cfg.storage_dir, cfg.cache_bytes, &st) != 0) {
        fprintf(stderr, "pixflare: cannot open storage directory %s\n", cfg.storage_dir);
        goto done;
    }
    rc = catalog_open(cfg.database, cfg.secret, &cat, err, sizeof(err));
    if (rc != 0) {
        /* A database that refuses us or cannot be reached is the
         * operator's setting to fix: exit 2, one line. */
        fprintf(stderr, "pixflare: %s\n", err);
        rc = rc == PF_EINVAL || rc == PF_EUNAVAIL ? CLI_EXIT_USAGE : 1;
        goto done;
    }
    rc = analytics_open(&cfg, engine, stderr, &an, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        rc = rc == PF_EINVAL ? CLI_EXIT_USAGE : 1;
        goto done;
    }
    rc = 1;
    /* With nothing to record, the CDN route has no answered() hook: the
     * request path skips even the country header lookup. */
    if (cdn_new(cat, st, &cdn) != 0 ||
        cdn_route_new(cdn, analytics_capture(an), analytics_sink(an), &cdn_route) != 0)
        goto done;
    if (api_new(&cfg, API_THREADS, cdn, &api, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        goto done;
    }
    register_build_info();
    if (open_health(&cfg, &health) != 0 || http_router_new(&router) != 0 ||
        add_routes(router, cdn_route, cfg.threads, api, health) != 0) {
        fprintf(stderr, "pixflare: cannot set up the routes\n");
        goto done;
    }
    if (cfg.metrics_host != NULL) {
        struct http_server_options mopt = {cfg.metrics_host, cfg.metrics_port, 1, NULL, 0};
        if (http_router_new(&mrouter) != 0 || add_metrics_routes(mrouter, health) != 0) {
            fprintf(stderr, "pixflare: cannot set up the metrics routes\n");
            goto done;
        }
        mopt.router = mrouter;
        if (http_server_start(&mopt, &msrv, &mport, err, sizeof(err)) != 0) {
            fprintf(stderr, "pixflare: metrics listener (PIXFLARE_METRICS_LISTEN): %s\n", err);
            goto done;
        }
    }
    /* The requests are counted only when someone can read the counts. */
    struct http_server_options opt = {
        cfg.listen_host,          cfg.listen_port,     cfg.threads,        router,
        cfg.metrics_host != NULL, cfg.max_connections, cfg.idle_timeout_s, cfg.header_timeout_s};
    if (http_server_start(&opt, &srv, &port, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        goto done;
    }
    fprintf(stderr, "pixflare: serving %zu images from %s on http://%s%s%s:%d/ (%d threads)\n",
            catalog_count(cat), cfg.storage_dir, strchr(cfg.listen_host, ':') ? "[" : "",
            cfg.listen_host, strchr(cfg.listen_host, ':') ? "]" : "", port, cfg.threads);
    if (msrv != NULL)
        fprintf(stderr, "pixflare: metrics on http://%s%s%s:%d/metrics\n",
                strchr(cfg.metrics_host, ':') ? "[" : "", cfg.metrics_host,
                strchr(cfg.metrics_host, ':') ? "]" : "", mport);
    if (jobs_start(&cfg, engine, stderr, &jobs, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare: %s\n", err);
        goto done;
    }
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "pixflare: %s received, finishing in-flight requests\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    jobs_stop(jobs); /* a running job stops at its next safe point */
    jobs = NULL;
    http_server_stop(srv, 10000);
    srv = NULL;
    http_server_stop(msrv, 1000);
    msrv = NULL;
    analytics_close(an); /* after the last response: flush and seal */
    an = NULL;
    fprintf(stderr, "pixflare: stopped\n");
    rc = 0;
done:
    jobs_stop(jobs);
    http_server_stop(srv, 0);
    http_server_stop(msrv, 0);
    analytics_close(an);
    http_router_free(router);
    http_router_free(mrouter);
    health_free(health);
    api_free(api);
    cdn_route_free(cdn_route);
    cdn_free(cdn);
    catalog_close(cat);
    storage_close(st);
    storage_vips_shutdown();
    engine_close(engine);
    config_free(&cfg);
    return rc;
}
