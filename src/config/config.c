/* config.c - settings table, --config file parser and validators.
 *
 * The --config file format: one KEY=value per line; blank lines and lines
 * starting with '#' are ignored; an optional leading "export " is accepted;
 * a value may be wrapped in single or double quotes (as in the seed's shell
 * examples), and text after a closing quote is only allowed if it is a
 * comment. Keys must be known settings: a typo stops start-up rather than
 * being silently ignored. */
#include "config/config.h"

#include "base/err.h"
#include "base/fsutil.h"
#include "base/strbuf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum key_id {
    K_LISTEN,
    K_DATA_DIR,
    K_STORAGE_DIR,
    K_DATABASE,
    K_SECRET,
    K_COUNTRY_HEADER,
    K_GEOIP_DB,
    K_ENGINE,
    K_DATASET,
    K_ENGINE_URL,
    K_ENGINE_USER,
    K_ENGINE_PASSWORD,
    K_ENGINE_BATCH_MS,
    K_ENGINE_TIMEOUT_MS,
    K_REALTIME,
    K_BATCH,
    K_RETENTION,
    K_AGG_CRON,
    K_CLEANUP_CRON,
    K_FLUSH_MS,
    K_FSYNC_MS,
    K_RATE_LIMIT,
    K_THREADS,
    K_CACHE_MB,
    K_DATABASE_FILE,
    K_METRICS_LISTEN,
    K_MIN_FREE_MB,
    K_MAX_CONNECTIONS,
    K_IDLE_TIMEOUT,
    K_HEADER_TIMEOUT,
    K_HOURLY_RETENTION,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "PIXFLARE_LISTEN",
    "PIXFLARE_DATA_DIR",
    "PIXFLARE_STORAGE_DIR",
    "PIXFLARE_DATABASE",
    "PIXFLARE_SECRET",
    "PIXFLARE_COUNTRY_HEADER",
    "PIXFLARE_GEOIP_DB",
    "ANALYTICS_ENGINE",
    "ANALYTICS_DATASET",
    "ANALYTICS_ENGINE_URL",
    "ANALYTICS_ENGINE_USER",
    "ANALYTICS_ENGINE_PASSWORD",
    "ANALYTICS_ENGINE_BATCH_MS",
    "ANALYTICS_ENGINE_TIMEOUT_MS",
    "ANALYTICS_REALTIME_ENABLED",
    "ANALYTICS_BATCH_ENABLED",
    "ANALYTICS_RETENTION_DAYS",
    "ANALYTICS_AGGREGATION_CRON",
    "ANALYTICS_CLEANUP_CRON",
    "ANALYTICS_REALTIME_FLUSH_MS",
    "ANALYTICS_FSYNC_MS",
    "PIXFLARE_API_RATE_LIMIT",
    "PIXFLARE_THREADS",
    "PIXFLARE_CACHE_MB",
    "PIXFLARE_DATABASE_FILE",
    "PIXFLARE_METRICS_LISTEN",
    "PIXFLARE_MIN_FREE_MB",
    "PIXFLARE_MAX_CONNECTIONS",
    "PIXFLARE_IDLE_TIMEOUT_S",
    "PIXFLARE_HEADER_TIMEOUT_S",
    "ANALYTICS_HOURLY_RETENTION_DAYS",
};

static int find_key(const char *key)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strcmp(key, key_names[i]) == 0)
            return i;
    return -1;
}

/* Levenshtein distance of a and b (b is a setting's name: short). */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t row[64];
    if (nb >= sizeof(row) / sizeof(row[0]))
        return (size_t)-1;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* The length of a PIXFLARE_ or ANALYTICS_ prefix of s (0: neither). */
static size_t prefix_len(const char *s)
{
    if (strncmp(s, "PIXFLARE_", 9) == 0)
        return 9;
    if (strncmp(s, "ANALYTICS_", 10) == 0)
        return 10;
    return 0;
}

/* The setting whose name is closest to name[0..n). The names after the
 * prefix are compared too, so that a setting given the other prefix
 * (PIXFLARE_RETENTION_DAYS) finds its own (ANALYTICS_RETENTION_DAYS). */
static const char *closest_key(const char *name, size_t n)
{
    size_t best = (size_t)-1, p = prefix_len(name);
    const char *found = key_names[0];
    for (int k = 0; k < K_COUNT; k++) {
        const char *key = key_names[k];
        size_t kp = prefix_len(key);
        size_t d = edit_distance(name, n, key, strlen(key));
        size_t ds = edit_distance(name + p, n - p, key + kp, strlen(key) - kp) + 1;
        if (ds < d)
            d = ds;
        if (d < best) {
            best = d;
            found = key;
        }
    }
    return found;
}

int config_env_warnings(char *const *env, char **out)
{
    struct strbuf b = {0};
    *out = NULL;
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        const char *v = env[i];
        size_t n = strcspn(v, "=");
        if (prefix_len(v) == 0 || strncmp(v, "PIXFLARE_TEST_", 14) == 0 ||
            (n == 12 && strncmp(v, "PIXFLARE_BIN", 12) == 0))
            continue;
        int known = 0;
        for (int k = 0; k < K_COUNT && !known; k++)
            known = strlen(key_names[k]) == n && strncmp(v, key_names[k], n) == 0;
        if (!known)
            strbuf_printf(&b, "%.*s is not a setting; did you mean %s?\n", (int)n, v,
                          closest_key(v, n));
    }
    if (b.failed) {
        strbuf_free(&b);
        return PF_ENOMEM;
    }
    *out = b.p;
    return 0;
}

int config_parse_bool(const char *s, int *v)
{
    static const char *const yes[] = {"true", "1", "yes"};
    static const char *const no[] = {"false", "0", "no"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *v = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *v = 0;
            return 0;
        }
    }
    return PF_EINVAL;
}

int config_parse_text(const char *text, size_t len,
                      int (*fn)(void *ctx, const char *key, const char *value), void *ctx,
                      char *err, size_t errlen)
{
    int rc = 0, lineno = 0;
    char *line = malloc(len + 1);
    if (line == NULL) {
        snprintf(err, errlen, "out of memory");
        return PF_ENOMEM;
    }
    size_t pos = 0;
    while (pos < len && rc == 0) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        lineno++;
        size_t n = end - pos;
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos = end + 1;
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (memchr(line, '\0', n) != NULL) {
            snprintf(err, errlen, "line %d: NUL byte", lineno);
            rc = PF_EINVAL;
            break;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (strncmp(p, "export ", 7) == 0)
            p += 7;
        while (*p == ' ' || *p == '\t')
            p++;
        char *key = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (p == key || *p != '=') {
            snprintf(err, errlen, "line %d: expected KEY=value", lineno);
            rc = PF_EINVAL;
            break;
        }
        *p++ = '\0';
        char *val = p;
        if (*val == '\'' || *val == '"') {
            char *close = strchr(val + 1, *val);
            if (close == NULL) {
                snprintf(err, errlen, "line %d: unterminated quote", lineno);
                rc = PF_EINVAL;
                break;
            }
            char *after = close + 1;
            while (*after == ' ' || *after == '\t')
                after++;
            if (*after != '\0' && *after != '#') {
                snprintf(err, errlen, "line %d: text after the closing quote", lineno);
                rc = PF_EINVAL;
                break;
            }
            *close = '\0';
            val++;
        } else {
            char *e = val + strlen(val);
            while (e > val && (e[-1] == ' ' || e[-1] == '\t'))
                *--e = '\0';
        }
        rc = fn(ctx, key, val);
        if (rc == PF_EINVAL)
            snprintf(err, errlen, "line %d: unknown setting %s; did you mean %s?", lineno, key,
                     closest_key(key, strlen(key)));
        else if (rc != 0)
            snprintf(err, errlen, "line %d: %s", lineno, err_str(rc));
    }
    free(line);
    return rc;
}

struct file_values {
    char *v[K_COUNT];
};

static int collect_file_value(void *ctx, const char *key, const char *value)
{
    struct file_values *fv = ctx;
    int k = find_key(key);
    if (k < 0)
        return PF_EINVAL;
    free(fv->v[k]);
    fv->v[k] = strdup(value);
    return fv->v[k] == NULL ? PF_ENOMEM : 0;
}

/* Parse a whole decimal integer within [lo, hi]. OUT: *v. */
static int parse_int(const char *s, long lo, long hi, long *v)
{
    if (*s == '\0' || strlen(s) > 12)
        return PF_EINVAL;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return PF_EINVAL;
    long n = strtol(s, NULL, 10);
    if (n < lo || n > hi)
        return PF_EINVAL;
    *v = n;
    return 0;
}

static int bad(char *err, size_t errlen, int k, const char *val, const char *allowed)
{
    snprintf(err, errlen, "%s='%s': %s", key_names[k], val, allowed);
    return PF_EINVAL;
}

/* An ADDRESS:PORT setting (key k). OUT: *host (malloc'd), *port. */
static int parse_addr(int k, const char *s, char **host_out, int *port_out, char *err,
                      size_t errlen)
{
    const char *allowed = "expected ADDRESS:PORT with a numeric IPv4 address or [IPv6] address "
                          "and a port 0-65535, e.g. 127.0.0.1:8080";
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host) || colon == s)
        return bad(err, errlen, k, s, allowed);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    long port;
    if (parse_int(colon + 1, 0, 65535, &port) != 0)
        return bad(err, errlen, k, s, allowed);
    unsigned char addr[16];
    char *h = host;
    if (h[0] == '[') {
        size_t n = strlen(h);
        if (n < 3 || h[n - 1] != ']')
            return bad(err, errlen, k, s, allowed);
        h[n - 1] = '\0';
        h++;
        if (inet_pton(AF_INET6, h, addr) != 1)
            return bad(err, errlen, k, s, allowed);
    } else if (strcmp(h, "localhost") == 0) {
        h = "127.0.0.1";
    } else if (inet_pton(AF_INET, h, addr) != 1) {
        return bad(err, errlen, k, s, allowed);
    }
    *host_out = strdup(h);
    *port_out = (int)port;
    return *host_out == NULL ? PF_ENOMEM : 0;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

static int valid_header_name(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return 0;
    return strlen(s) <= 64;
}

static int valid_dataset(const char *s)
{
    if (!isalpha((unsigned char)s[0]) && s[0] != '_')
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return 0;
    return strlen(s) <= 64;
}

/* PIXFLARE_DATABASE. A PostgreSQL URL may hold a password: messages show
 * its scheme only. */
static int parse_database(struct config *cfg, const char *v, char *err, size_t errlen)
{
    if (v == NULL) {
        char *path = join(cfg->data_dir, "/pixflare.db");
        cfg->database = path ? join("sqlite:", path) : NULL;
        free(path);
    } else if (strncmp(v, "sqlite:", 7) == 0 && v[7] != '\0') {
        cfg->database = strdup(v);
    } else if ((strncmp(v, "postgres://", 11) == 0 || strncmp(v, "postgresql://", 13) == 0) &&
               strcspn(v, " \t\r\n") == strlen(v)) {
        cfg->database = strdup(v);
    } else {
        /* The scheme only: the rest may be a password. */
        char shown[48];
        size_t n = strcspn(v, ":");
        if (strncmp(v, "sqlite:", 7) == 0)
            snprintf(shown, sizeof(shown), "%.40s", v);
        else if (v[n] == ':' && n <= 16 && strspn(v, "abcdefghijklmnopqrstuvwxyz+-.") == n)
            snprintf(shown, sizeof(shown), "%.*s:...(hidden)", (int)n, v);
        else
            snprintf(shown, sizeof(shown), "(hidden)");
        return bad(err, errlen, K_DATABASE, shown,
                   "expected sqlite:PATH or a PostgreSQL URL postgres://USER:PASSWORD@HOST:PORT/DB "
                   "without spaces");
    }
    return cfg->database == NULL ? PF_ENOMEM : 0;
}

/* PIXFLARE_DATABASE_FILE: the URL in a file only its owner can read
 * (systemd credentials, a 0600 file). OUT: *url (malloc'd), the file's
 * first line. */
static int read_database_file(const char *path, int also_set, char **url, char *err, size_t errlen)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    if (also_set)
        return bad(err, errlen, K_DATABASE_FILE, path,
                   "set either PIXFLARE_DATABASE or PIXFLARE_DATABASE_FILE, not both");
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return bad(err, errlen, K_DATABASE_FILE, path, "no such file");
    if ((st.st_mode & 077) != 0)
        return bad(err, errlen, K_DATABASE_FILE, path,
                   "must not be readable by group or others: chmod 600 it");
    if (fsutil_read_file(path, 64 << 10, &text, &len) != 0)
        return bad(err, errlen, K_DATABASE_FILE, path, "cannot be read");
    text[strcspn(text, "\r\n")] = '\0';
    if (text[0] == '\0') {
        free(text);
        return bad(err, errlen, K_DATABASE_FILE, path, "is empty: expected a database URL");
    }
    *url = text;
    return 0;
}

static int validate(struct config *cfg, const char *const val[K_COUNT], char *err, size_t errlen)
{
    long n;
    int rc = parse_addr(K_LISTEN, val[K_LISTEN], &cfg->listen_host, &cfg->listen_port, err, errlen);
    if (rc == 0 && val[K_METRICS_LISTEN] != NULL && val[K_METRICS_LISTEN][0] != '\0')
        rc = parse_addr(K_METRICS_LISTEN, val[K_METRICS_LISTEN], &cfg->metrics_host,
                        &cfg->metrics_port, err, errlen);
    if (rc != 0)
        return rc;

    if (val[K_DATA_DIR][0] == '\0')
        return bad(err, errlen, K_DATA_DIR, val[K_DATA_DIR], "must not be empty");
    cfg->data_dir = strdup(val[K_DATA_DIR]);
    cfg->storage_dir =
        val[K_STORAGE_DIR] ? strdup(val[K_STORAGE_DIR]) : join(val[K_DATA_DIR], "/images");
    if (cfg->data_dir == NULL || cfg->storage_dir == NULL)
        return PF_ENOMEM;
    if (cfg->storage_dir[0] == '\0')
        return bad(err, errlen, K_STORAGE_DIR, "", "must not be empty");

    char *from_file = NULL;
    if (val[K_DATABASE_FILE] != NULL) {
        int frc = read_database_file(val[K_DATABASE_FILE], val[K_DATABASE] != NULL, &from_file, err,
                                     errlen);
        if (frc != 0)
            return frc;
    }
    int drc = parse_database(cfg, from_file ? from_file : val[K_DATABASE], err, errlen);
    free(from_file);
    if (drc != 0)
        return drc;
    if (cfg->database == NULL)
        return PF_ENOMEM;

    if (val[K_SECRET] != NULL) {
        if (strlen(val[K_SECRET]) < 16)
            return bad(err, errlen, K_SECRET, "(hidden)", "must be at least 16 characters");
        cfg->secret = strdup(val[K_SECRET]);
        if (cfg->secret == NULL)
            return PF_ENOMEM;
    }

    if (!valid_header_name(val[K_COUNTRY_HEADER]))
        return bad(err, errlen, K_COUNTRY_HEADER, val[K_COUNTRY_HEADER],
                   "expected an HTTP header name (letters, digits, '-', '_') or empty");
    cfg->country_header = strdup(val[K_COUNTRY_HEADER]);
    if (cfg->country_header == NULL)
        return PF_ENOMEM;

    if (val[K_GEOIP_DB] != NULL && val[K_GEOIP_DB][0] != '\0') {
        if (access(val[K_GEOIP_DB], R_OK) != 0)
            return bad(err, errlen, K_GEOIP_DB, val[K_GEOIP_DB], "must be a readable .mmdb file");
        cfg->geoip_db = strdup(val[K_GEOIP_DB]);
        if (cfg->geoip_db == NULL)
            return PF_ENOMEM;
    }

    if (strcmp(val[K_ENGINE], "embedded") == 0)
        cfg->engine = CONFIG_ENGINE_EMBEDDED;
    else if (strcmp(val[K_ENGINE], "clickhouse") == 0)
        cfg->engine = CONFIG_ENGINE_CLICKHOUSE;
    else if (strcmp(val[K_ENGINE], "none") == 0)
        cfg->engine = CONFIG_ENGINE_NONE;
    else
        return bad(err, errlen, K_ENGINE, val[K_ENGINE], "expected embedded, clickhouse or none");

    if (!valid_dataset(val[K_DATASET]))
        return bad(err, errlen, K_DATASET, val[K_DATASET],
                   "expected 1-64 letters, digits or '_', not starting with a digit");
    cfg->dataset = strdup(val[K_DATASET]);
    if (cfg->dataset == NULL)
        return PF_ENOMEM;

    const char *url = val[K_ENGINE_URL];
    if (url != NULL && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return bad(err, errlen, K_ENGINE_URL, "(hidden: it may hold credentials)",
                   "expected an http:// or https:// URL");
    if (cfg->engine == CONFIG_ENGINE_CLICKHOUSE && url == NULL)
        return bad(err, errlen, K_ENGINE_URL, "", "is required when ANALYTICS_ENGINE=clickhouse");
    cfg->engine_url = url ? strdup(url) : NULL;
    cfg->engine_user = val[K_ENGINE_USER] ? strdup(val[K_ENGINE_USER]) : NULL;
    cfg->engine_password = val[K_ENGINE_PASSWORD] ? strdup(val[K_ENGINE_PASSWORD]) : NULL;
    if ((url && !cfg->engine_url) || (val[K_ENGINE_USER] && !cfg->engine_user) ||
        (val[K_ENGINE_PASSWORD] && !cfg->engine_password))
        return PF_ENOMEM;

    const char *bool_allowed = "expected true, false, 1, 0, yes or no";
    if (config_parse_bool(val[K_REALTIME], &cfg->realtime_enabled) != 0)
        return bad(err, errlen, K_REALTIME, val[K_REALTIME], bool_allowed);
    if (config_parse_bool(val[K_BATCH], &cfg->batch_enabled) != 0)
        return bad(err, errlen, K_BATCH, val[K_BATCH], bool_allowed);

    if (parse_int(val[K_RETENTION], 1, 36500, &n) != 0)
        return bad(err, errlen, K_RETENTION, val[K_RETENTION],
                   "expected a whole number of days, 1-36500");
    cfg->retention_days = (int)n;
    /* Hourly rows are 24 per day: kept a week by default (the API's hourly
     * ranges are at most 7 days), and never longer than the daily ones. */
    if (parse_int(val[K_HOURLY_RETENTION], 1, 36500, &n) != 0)
        return bad(err, errlen, K_HOURLY_RETENTION, val[K_HOURLY_RETENTION],
                   "expected a whole number of days, 1-36500");
    cfg->hourly_retention_days = n < cfg->retention_days ? (int)n : cfg->retention_days;

    char why[200];
    char allowed[260];
    if (cron_parse(val[K_AGG_CRON], &cfg->aggregation_cron, why, sizeof(why)) != 0) {
        snprintf(allowed, sizeof(allowed), "invalid cron expression (%s)", why);
        return bad(err, errlen, K_AGG_CRON, val[K_AGG_CRON], allowed);
    }
    if (cron_parse(val[K_CLEANUP_CRON], &cfg->cleanup_cron, why, sizeof(why)) != 0) {
        snprintf(allowed, sizeof(allowed), "invalid cron expression (%s)", why);
        return bad(err, errlen, K_CLEANUP_CRON, val[K_CLEANUP_CRON], allowed);
    }
    cfg->aggregation_cron_text = strdup(val[K_AGG_CRON]);
    cfg->cleanup_cron_text = strdup(val[K_CLEANUP_CRON]);
    if (cfg->aggregation_cron_text == NULL || cfg->cleanup_cron_text == NULL)
        return PF_ENOMEM;

    if (parse_int(val[K_FLUSH_MS], 1, 3600000, &n) != 0)
        return bad(err, errlen, K_FLUSH_MS, val[K_FLUSH_MS], "expected milliseconds, 1-3600000");
    cfg->realtime_flush_ms = (int)n;
    if (parse_int(val[K_FSYNC_MS], 0, 3600000, &n) != 0)
        return bad(err, errlen, K_FSYNC_MS, val[K_FSYNC_MS], "expected milliseconds, 0-3600000");
    cfg->fsync_ms = (int)n;
    if (parse_int(val[K_ENGINE_BATCH_MS], 10, 60000, &n) != 0)
        return bad(err, errlen, K_ENGINE_BATCH_MS, val[K_ENGINE_BATCH_MS],
                   "expected milliseconds, 10-60000");
    cfg->engine_batch_ms = (int)n;
    if (parse_int(val[K_ENGINE_TIMEOUT_MS], 100, 3600000, &n) != 0)
        return bad(err, errlen, K_ENGINE_TIMEOUT_MS, val[K_ENGINE_TIMEOUT_MS],
                   "expected milliseconds, 100-3600000");
    cfg->engine_timeout_ms = (int)n;
    if (parse_int(val[K_RATE_LIMIT], 0, 1000000, &n) != 0)
        return bad(err, errlen, K_RATE_LIMIT, val[K_RATE_LIMIT],
                   "expected requests per minute, 0 (off) to 1000000");
    cfg->api_rate_limit = (int)n;

    if (val[K_THREADS] == NULL) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = cpus < 1 ? 1 : cpus > 64 ? 64 : (int)cpus;
    } else if (parse_int(val[K_THREADS], 1, 256, &n) == 0) {
        cfg->threads = (int)n;
    } else {
        return bad(err, errlen, K_THREADS, val[K_THREADS], "expected a thread count, 1-256");
    }
    if (parse_int(val[K_CACHE_MB], 0, 1048576, &n) != 0)
        return bad(err, errlen, K_CACHE_MB, val[K_CACHE_MB], "expected MiB, 0-1048576");
    cfg->cache_bytes = (size_t)n << 20;
    if (parse_int(val[K_MIN_FREE_MB], 0, 1048576, &n) != 0)
        return bad(err, errlen, K_MIN_FREE_MB, val[K_MIN_FREE_MB], "expected MiB, 0-1048576");
    cfg->min_free_mb = (int)n;
    if (parse_int(val[K_MAX_CONNECTIONS], 1, 1000000, &n) != 0)
        return bad(err, errlen, K_MAX_CONNECTIONS, val[K_MAX_CONNECTIONS],
                   "expected a connection count, 1-1000000");
    cfg->max_connections = (int)n;
    if (parse_int(val[K_IDLE_TIMEOUT], 1, 3600, &n) != 0)
        return bad(err, errlen, K_IDLE_TIMEOUT, val[K_IDLE_TIMEOUT], "expected seconds, 1-3600");
    cfg->idle_timeout_s = (int)n;
    if (parse_int(val[K_HEADER_TIMEOUT], 1, 3600, &n) != 0)
        return bad(err, errlen, K_HEADER_TIMEOUT, val[K_HEADER_TIMEOUT],
                   "expected seconds, 1-3600");
    cfg->header_timeout_s = (int)n;
    return 0;
}

int config_load(const char *file, struct config *cfg, char *err, size_t errlen)
{
    static const char *const defaults[K_COUNT] = {
        [K_LISTEN] = "127.0.0.1:8080",
        [K_DATA_DIR] = "./data",
        [K_COUNTRY_HEADER] = "CF-IPCountry",
        [K_ENGINE] = "embedded",
        [K_DATASET] = "pixflare_cdn_metrics",
        [K_REALTIME] = "true",
        [K_BATCH] = "true",
        [K_RETENTION] = "90",
        [K_AGG_CRON] = "0 2 * * *",
        [K_CLEANUP_CRON] = "0 1 * * *",
        [K_FLUSH_MS] = "1000",
        [K_FSYNC_MS] = "1000",
        [K_ENGINE_BATCH_MS] = "1000",
        [K_ENGINE_TIMEOUT_MS] = "30000",
        [K_RATE_LIMIT] = "100",
        [K_CACHE_MB] = "256",
        [K_MIN_FREE_MB] = "100",
        [K_MAX_CONNECTIONS] = "10000",
        [K_IDLE_TIMEOUT] = "30",
        [K_HEADER_TIMEOUT] = "10",
        [K_HOURLY_RETENTION] = "7",
    };
    struct file_values fv;
    const char *val[K_COUNT];
    char *text = NULL;
    size_t len = 0;
    int rc = 0;
    memset(&fv, 0, sizeof(fv));
    memset(cfg, 0, sizeof(*cfg));
    if (file != NULL) {
        rc = fsutil_read_file(file, 1 << 20, &text, &len);
        if (rc != 0) {
            snprintf(err, errlen, "--config %s: %s", file,
                     rc == PF_ENOTFOUND ? "no such file" : err_str(rc));
            goto done;
        }
        char why[200];
        rc = config_parse_text(text, len, collect_file_value, &fv, why, sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "--config %s: %s", file, why);
            goto done;
        }
    }
    for (int k = 0; k < K_COUNT; k++) {
        const char *env = getenv(key_names[k]);
        val[k] = env ? env : fv.v[k] ? fv.v[k] : defaults[k];
    }
    rc = validate(cfg, val, err, errlen);
done:
    for (int k = 0; k < K_COUNT; k++)
        free(fv.v[k]);
    free(text);
    if (rc != 0)
        config_free(cfg);
    return rc;
}

int config_node_id(const struct config *cfg, char out[17], char *err, size_t errlen)
{
    char *path = join(cfg->data_dir, "/node-id"), *text = NULL;
    size_t len = 0;
    int rc = path == NULL ? PF_ENOMEM : fsutil_mkdirs(cfg->data_dir, 0755);
    if (rc == 0)
        rc = fsutil_read_file(path, 64, &text, &len);
    if (rc == PF_ENOTFOUND) {
        unsigned char raw[8];
        rc = fsutil_random(raw, sizeof(raw));
        for (size_t i = 0; rc == 0 && i < sizeof(raw); i++)
            snprintf(out + 2 * i, 3, "%02x", raw[i]);
        if (rc == 0)
            rc = fsutil_write_atomic(path, out, 16, 0644);
    } else if (rc == 0) {
        if (len < 16 || strspn(text, "0123456789abcdef") < 16) {
            snprintf(err, errlen, "%s: not a node id (16 hex characters); delete it", path);
            rc = PF_EINVAL;
        } else {
            memcpy(out, text, 16);
            out[16] = '\0';
        }
    }
    if (rc != 0 && rc != PF_EINVAL)
        snprintf(err, errlen, "node id file %s: %s", path ? path : "", err_str(rc));
    free(text);
    free(path);
    return rc;
}

int config_ensure_secret(struct config *cfg, char *err, size_t errlen)
{
    char *path = NULL;
    char *text = NULL;
    size_t len = 0;
    if (cfg->secret != NULL)
        return 0;
    int rc = fsutil_mkdirs(cfg->data_dir, 0755);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create data directory %s: %s", cfg->data_dir,
                 strerror(errno));
        return rc;
    }
    path = join(cfg->data_dir, "/secret");
    if (path == NULL)
        return PF_ENOMEM;
    rc = fsutil_read_file(path, 4096, &text, &len);
    if (rc == PF_ENOTFOUND) {
        unsigned char raw[32];
        char hex[65];
        rc = fsutil_random(raw, sizeof(raw));
        for (size_t i = 0; rc == 0 && i < sizeof(raw); i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        if (rc == 0)
            rc = fsutil_write_atomic(path, hex, 64, 0600);
        if (rc == 0)
            cfg->secret = strdup(hex);
    } else if (rc == 0) {
        while (len > 0 && isspace((unsigned char)text[len - 1]))
            text[--len] = '\0';
        if (len < 16) {
            snprintf(err, errlen, "%s: secret file is shorter than 16 characters", path);
            rc = PF_EINVAL;
            goto done;
        }
        /* The key is used as a C string: a NUL would silently cut it (to
         * fewer than 16 characters, or to nothing). */
        if (strlen(text) != len) {
            snprintf(err, errlen, "%s: secret file holds a NUL byte", path);
            rc = PF_EINVAL;
            goto done;
        }
        cfg->secret = text;
        text = NULL;
    }
    if (rc != 0)
        snprintf(err, errlen, "secret file %s: %s", path, err_str(rc));
    else if (cfg->secret == NULL)
        rc = PF_ENOMEM;
done:
    free(text);
    free(path);
    return rc;
}

void config_free(struct config *cfg)
{
    char **strs[] = {&cfg->listen_host,       &cfg->data_dir,        &cfg->storage_dir,
                     &cfg->database,          &cfg->secret,          &cfg->country_header,
                     &cfg->geoip_db,          &cfg->dataset,         &cfg->engine_url,
                     &cfg->engine_user,       &cfg->engine_password, &cfg->aggregation_cron_text,
                     &cfg->cleanup_cron_text, &cfg->metrics_host};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}
