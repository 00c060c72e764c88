/* cmd_health.c - `pixflare health`: GET the configured listener's /readyz
 * (PIXFLARE_LISTEN; a wildcard address is probed on loopback) and exit 0
 * when it answers 200, 1 otherwise, with one line saying which. The probe
 * of container HEALTHCHECKs and of the systemd unit's ExecStartPost
 * (--wait-ms: keep asking until ready or the time is up). */
#include "cli/cli.h"

#include "base/err.h"
#include "base/timeutil.h"
#include "http/http_client.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A whole number of milliseconds in [lo, hi]. */
static int parse_ms(const char *s, long lo, long hi, long *v)
{
    char *end = NULL;
    if (s == NULL || *s < '0' || *s > '9')
        return PF_EINVAL;
    long n = strtol(s, &end, 10);
    if (*end != '\0' || n < lo || n > hi)
        return PF_EINVAL;
    *v = n;
    return 0;
}

/* The error message of a 503 body, else the body itself. */
static void say_not_ready(int status, const char *body)
{
    json_t *j = json_loads(body, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    printf("not ready (HTTP %d): %s\n", status, msg != NULL ? msg : body);
    json_decref(j);
}

int cmd_health(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    long timeout_ms = 5000, wait_ms = 0;
    for (int i = 1; i < argc; i += 2) {
        long *dst = strcmp(argv[i], "--timeout-ms") == 0 ? &timeout_ms
                    : strcmp(argv[i], "--wait-ms") == 0  ? &wait_ms
                                                         : NULL;
        if (dst == NULL)
            return cli_usage_error("health", "unknown argument '%s'", argv[i]);
        if (i + 1 >= argc || parse_ms(argv[i + 1], dst == &wait_ms ? 0 : 1, 3600000, dst) != 0)
            return cli_usage_error("health", "%s expects milliseconds, 1-3600000", argv[i]);
    }
    int rc = cli_load_config(config_file, &cfg, CLI_ANY_DATA_DIR);
    if (rc != 0)
        return rc;
    if (cfg.listen_port == 0) {
        fprintf(stderr, "pixflare health: PIXFLARE_LISTEN has port 0 (any free port): "
                        "there is no known port to probe\n");
        config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    const char *host = strcmp(cfg.listen_host, "0.0.0.0") == 0 ? "127.0.0.1"
                       : strcmp(cfg.listen_host, "::") == 0    ? "::1"
                                                               : cfg.listen_host;
    char url[160], body[2048], err[512];
    snprintf(url, sizeof(url), "http://%s%s%s:%d/readyz", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", cfg.listen_port);
    int64_t deadline = timeutil_mono_ms() + wait_ms;
    int status = 0;
    for (;;) {
        rc = http_client_get(url, (int)timeout_ms, &status, body, sizeof(body), err, sizeof(err));
        if ((rc == 0 && status == 200) || timeutil_mono_ms() >= deadline)
            break;
        struct timespec pause = {0, 250 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (rc != 0)
        printf("unreachable: %s: %s\n", url, err);
    else if (status == 200)
        printf("ready: %s\n", url);
    else
        say_not_ready(status, body);
    config_free(&cfg);
    return rc == 0 && status == 200 ? 0 : 1;
}
