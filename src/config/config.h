/* config.h - every setting of Pixflare, its default and its validation.
 *
 * Settings come from the environment and, optionally, a KEY=value file given
 * with --config (the environment wins). Every value is validated up front:
 * config_load() fails with a one-line reason naming the variable, the value
 * and what is allowed, and the caller exits 2. The struct's strings are owned
 * by it; config_free() releases them. */
#ifndef PF_CONFIG_H
#define PF_CONFIG_H

#include "base/cron.h"

#include <stddef.h>

enum config_engine { CONFIG_ENGINE_EMBEDDED, CONFIG_ENGINE_CLICKHOUSE, CONFIG_ENGINE_NONE };

struct config {
    char *listen_host; /* numeric IPv4/IPv6 address, without brackets */
    int listen_port;   /* 0: any free port */
    char *data_dir;
    char *storage_dir;
    char *database;       /* db_open()'s URL: sqlite:PATH (a default made whole) */
    char *secret;         /* NULL until config_ensure_secret() when not set */
    char *country_header; /* "" disables the header */
    char *geoip_db;       /* NULL when unset */
    enum config_engine engine;
    char *dataset;
    char *engine_url, *engine_user, *engine_password;
    int engine_batch_ms;   /* clickhouse: longest wait before shipping events */
    int engine_timeout_ms; /* clickhouse: longest wait for one HTTP request */
    int realtime_enabled;
    int batch_enabled;
    int retention_days;
    int hourly_retention_days; /* analytics_hourly; at most retention_days */
    char *aggregation_cron_text;
    struct cron_expr aggregation_cron;
    char *cleanup_cron_text;
    struct cron_expr cleanup_cron;
    int realtime_flush_ms;
    int fsync_ms;
    int api_rate_limit; /* requests per minute per owner; 0 disables */
    int threads;        /* HTTP worker threads */
    size_t cache_bytes; /* memory budget for hot objects */
    char *metrics_host; /* PIXFLARE_METRICS_LISTEN's address; NULL: no metrics listener */
    int metrics_port;
    int min_free_mb;      /* /readyz fails below this much free disk (MiB) */
    int max_connections;  /* open HTTP connections; beyond: 503 and close */
    int idle_timeout_s;   /* a connection with no traffic for this long is closed */
    int header_timeout_s; /* a connection's first request headers must be in by then */
};

/* Load and validate. `file` may be NULL. On failure returns PF_EINVAL and
 * writes the reason into err; *cfg is then left zeroed. */
int config_load(const char *file, struct config *cfg, char *err, size_t errlen);

/* The environment's PIXFLARE_* and ANALYTICS_* variables that are not
 * settings: a typo would otherwise be ignored without a word. One line per
 * variable, "NAME is not a setting; did you mean SETTING?" naming the
 * setting closest by edit distance; values are never shown. The test
 * harness's own variables, PIXFLARE_TEST_* and PIXFLARE_BIN, are not
 * warned about. `env` is environ's form (NAME=value, NULL-terminated).
 * OUT: *out, the lines (malloc'd, each ending in '\n') or NULL when all is
 * well. Returns 0 or PF_ENOMEM. */
int config_env_warnings(char *const *env, char **out);

/* Make sure cfg->secret is set: read it from DATA_DIR/secret or create that
 * file (mode 0600) with 32 random bytes in hex. Creates DATA_DIR if needed. */
int config_ensure_secret(struct config *cfg, char *err, size_t errlen);

/* This node's id: 16 hex characters kept in $PIXFLARE_DATA_DIR/node-id
 * (made once, random). Several nodes on one database tell their writes
 * apart by it (realtime flush ids; the batch's check that no other node
 * wrote a date it would replace from this node's events alone). */
int config_node_id(const struct config *cfg, char out[17], char *err, size_t errlen);

void config_free(struct config *cfg);

/* Parse a boolean as the settings do (true/false/1/0/yes/no, any case).
 * OUT: *v. PF_EINVAL for anything else. */
int config_parse_bool(const char *s, int *v);

/* Parse one line-oriented KEY=value text (the --config file format) and call
 * `fn` for every pair. Returns PF_EINVAL with the line number in err on a
 * malformed line. Exposed for the fuzz target and tests. */
int config_parse_text(const char *text, size_t len,
                      int (*fn)(void *ctx, const char *key, const char *value), void *ctx,
                      char *err, size_t errlen);

#endif
