/* cmd_events.c - `pixflare events [--date D]`: a day's raw events from the
 * event engine, one JSON object per line. */
#include "cli/cli.h"

#include "analytics/engine.h"
#include "base/err.h"
#include "base/keyhash.h"
#include "base/timeutil.h"
#include "base/variant.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int print_event(void *ctx, const struct event *ev)
{
    char rid[33], owner[33];
    static const uint8_t zero[16];
    (void)ctx;
    keyhash_hex(ev->request_id, 16, rid);
    if (memcmp(ev->owner, zero, 16) == 0)
        owner[0] = '\0';
    else
        keyhash_hex(ev->owner, 16, owner);
    /* Every field is hex, [a-z0-9], a variant name or [A-Z0-9]: nothing
     * needs escaping. */
    printf("{\"timestamp\":%lld,\"request_id\":\"%s\",\"owner\":\"%s\",\"image_id\":\"%s\","
           "\"variant\":\"%s\",\"status\":%d,\"country\":\"%s\",\"bytes\":%llu}\n",
           (long long)ev->ts_ms, rid, owner, ev->image_id,
           ev->variant >= 0 ? variant_table[ev->variant].name : "", ev->status, ev->country,
           (unsigned long long)ev->bytes);
    return ferror(stdout) ? PF_EIO : 0;
}

int cmd_events(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct engine *engine = NULL;
    struct engine_scan_stats st;
    char err[512] = "";
    int64_t day = (int64_t)time(NULL) / 86400;
    for (int i = 1; i < argc; i++) {
        int64_t t;
        if (strcmp(argv[i], "--date") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("events", "%s", "--date needs a value");
            if (timeutil_parse_date(argv[++i], &t) != 0)
                return cli_usage_error("events", "--date '%s' is not a date (YYYY-MM-DD)", argv[i]);
            day = t / 86400;
        } else {
            return cli_usage_error("events", "unknown argument '%s'", argv[i]);
        }
    }
    int rc = cli_load_config(config_file, &cfg, 0);
    if (rc != 0)
        return rc;
    if (engine_open(&cfg, &engine, err, sizeof(err)) != 0 || engine == NULL) {
        if (engine == NULL && err[0] == '\0')
            snprintf(err, sizeof(err), "ANALYTICS_ENGINE=none: there is no embedded event store");
        fprintf(stderr, "pixflare events: %s\n", err);
        config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    rc = engine_scan_day(engine, day, print_event, NULL, stderr, &st);
    if (fflush(stdout) != 0 || rc == PF_EIO) {
        fprintf(stderr, "pixflare events: %s\n",
                rc == PF_EIO ? "cannot read the event store" : "cannot write the output");
        rc = 1;
    } else {
        rc = st.bad_files || st.unreadable || st.damaged_bytes ? 1 : 0;
    }
    engine_close(engine);
    config_free(&cfg);
    return rc;
}
