/* config_test.c - defaults, validation messages, the --config file format,
 * and that the environment wins over the file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "base/err.h"

static const char *const all_keys[] = {"PIXFLARE_LISTEN",
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
                                       "PIXFLARE_MAX_CONNECTIONS",
                                       "PIXFLARE_IDLE_TIMEOUT_S",
                                       "PIXFLARE_HEADER_TIMEOUT_S"};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++)
        unsetenv(all_keys[i]);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    struct config c;
    char err[512];
    assert_int_equal(config_load(NULL, &c, err, sizeof(err)), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.data_dir, "./data");
    assert_string_equal(c.storage_dir, "./data/images");
    assert_string_equal(c.database, "sqlite:./data/pixflare.db");
    assert_string_equal(c.database, "sqlite:./data/pixflare.db");
    assert_string_equal(c.country_header, "CF-IPCountry");
    assert_null(c.geoip_db);
    assert_int_equal(c.engine, CONFIG_ENGINE_EMBEDDED);
    assert_string_equal(c.dataset, "pixflare_cdn_metrics");
    assert_true(c.realtime_enabled);
    assert_true(c.batch_enabled);
    assert_int_equal(c.retention_days, 90);
    assert_string_equal(c.aggregation_cron_text, "0 2 * * *");
    assert_string_equal(c.cleanup_cron_text, "0 1 * * *");
    assert_int_equal(c.realtime_flush_ms, 1000);
    assert_int_equal(c.fsync_ms, 1000);
    assert_int_equal(c.api_rate_limit, 100);
    assert_null(c.secret);
    config_free(&c);
}

static void expect_bad(const char *key, const char *value, const char *needle)
{
    struct config c;
    char err[512] = "";
    setenv(key, value, 1);
    int rc = config_load(NULL, &c, err, sizeof(err));
    unsetenv(key);
    if (rc == 0)
        fail_msg("%s='%s' was accepted", key, value);
    if (strstr(err, key) == NULL || strstr(err, needle) == NULL)
        fail_msg("%s='%s': message '%s' lacks the name or '%s'", key, value, err, needle);
}

static void test_validation(void **state)
{
    (void)state;
    expect_bad("PIXFLARE_LISTEN", "8080", "ADDRESS:PORT");
    expect_bad("PIXFLARE_LISTEN", "127.0.0.1:70000", "0-65535");
    expect_bad("PIXFLARE_LISTEN", "example.com:80", "numeric");
    expect_bad("PIXFLARE_DATA_DIR", "", "must not be empty");
    expect_bad("PIXFLARE_DATABASE", "mysql://x", "sqlite:PATH");
    expect_bad("PIXFLARE_SECRET", "short", "at least 16");
    expect_bad("PIXFLARE_COUNTRY_HEADER", "CF IPCountry", "header name");
    expect_bad("PIXFLARE_GEOIP_DB", "/nonexistent/country.mmdb", "readable");
    expect_bad("ANALYTICS_ENGINE", "bigquery", "embedded, clickhouse or none");
    expect_bad("ANALYTICS_ENGINE", "clickhouse", "ANALYTICS_ENGINE_URL");
    expect_bad("ANALYTICS_DATASET", "1abc", "letters");
    expect_bad("ANALYTICS_REALTIME_ENABLED", "maybe", "true, false");
    expect_bad("ANALYTICS_BATCH_ENABLED", "", "true, false");
    expect_bad("ANALYTICS_RETENTION_DAYS", "0", "1-36500");
    expect_bad("ANALYTICS_RETENTION_DAYS", "90d", "1-36500");
    expect_bad("ANALYTICS_RETENTION_DAYS", "-5", "1-36500");
    expect_bad("ANALYTICS_AGGREGATION_CRON", "0 2 * *", "missing day-of-week");
    expect_bad("ANALYTICS_CLEANUP_CRON", "0 24 * * *", "column 3");
    expect_bad("ANALYTICS_REALTIME_FLUSH_MS", "0", "1-3600000");
    expect_bad("ANALYTICS_FSYNC_MS", "fast", "0-3600000");
    expect_bad("PIXFLARE_API_RATE_LIMIT", "-1", "0 (off)");
    expect_bad("PIXFLARE_THREADS", "0", "1-256");
    expect_bad("PIXFLARE_CACHE_MB", "lots", "MiB");
    expect_bad("PIXFLARE_MAX_CONNECTIONS", "0", "1-1000000");
    expect_bad("PIXFLARE_MAX_CONNECTIONS", "10k", "1-1000000");
    expect_bad("PIXFLARE_IDLE_TIMEOUT_S", "0", "1-3600");
    expect_bad("PIXFLARE_HEADER_TIMEOUT_S", "3601", "1-3600");
}

static void test_bools_and_listen(void **state)
{
    (void)state;
    int v;
    const char *yes[] = {"true", "TRUE", "1", "yes", "Yes"};
    const char *no[] = {"false", "False", "0", "no", "NO"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(config_parse_bool(yes[i], &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(config_parse_bool(no[i], &v), 0);
        assert_int_equal(v, 0);
    }
    assert_int_not_equal(config_parse_bool("on", &v), 0);
    struct config c;
    char err[512];
    setenv("PIXFLARE_LISTEN", "[::1]:0", 1);
    assert_int_equal(config_load(NULL, &c, err, sizeof(err)), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
    config_free(&c);
    unsetenv("PIXFLARE_LISTEN");
}

static void test_file(void **state)
{
    (void)state;
    char path[] = "/tmp/pixflare-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# comment\n"
                        "\n"
                        "export ANALYTICS_RETENTION_DAYS='30' # trailing comment\n"
                        "ANALYTICS_REALTIME_ENABLED=\"no\"\r\n"
                        "  PIXFLARE_LISTEN = 127.0.0.1:9000\n";
    /* "KEY = value" is not KEY=value: a space before '=' is refused. */
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    struct config c;
    char err[512];
    assert_int_not_equal(config_load(path, &c, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "line 5"));

    FILE *f = fopen(path, "w");
    fputs("export ANALYTICS_RETENTION_DAYS='30' # trailing comment\n"
          "ANALYTICS_REALTIME_ENABLED=\"no\"\r\n"
          "PIXFLARE_LISTEN=127.0.0.1:9000\n",
          f);
    fclose(f);
    assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
    assert_int_equal(c.retention_days, 30);
    assert_false(c.realtime_enabled);
    assert_int_equal(c.listen_port, 9000);
    config_free(&c);

    /* the environment wins over the file */
    setenv("ANALYTICS_RETENTION_DAYS", "7", 1);
    assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
    assert_int_equal(c.retention_days, 7);
    config_free(&c);
    unsetenv("ANALYTICS_RETENTION_DAYS");

    f = fopen(path, "w");
    fputs("ANALYTICS_RETENTON_DAYS=30\n", f);
    fclose(f);
    assert_int_not_equal(config_load(path, &c, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "unknown setting ANALYTICS_RETENTON_DAYS; did you mean "
                                "ANALYTICS_RETENTION_DAYS?"));

    f = fopen(path, "w");
    fputs("PIXFLARE_SECRET='abc\n", f);
    fclose(f);
    assert_int_not_equal(config_load(path, &c, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "unterminated quote"));
    unlink(path);

    assert_int_not_equal(config_load("/nonexistent.env", &c, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "no such file"));
}

static void test_secret(void **state)
{
    (void)state;
    char dir[] = "/tmp/pixflare-secret-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("PIXFLARE_DATA_DIR", dir, 1);
    struct config c;
    char err[512], first[80];
    assert_int_equal(config_load(NULL, &c, err, sizeof(err)), 0);
    assert_int_equal(config_ensure_secret(&c, err, sizeof(err)), 0);
    assert_int_equal(strlen(c.secret), 64);
    snprintf(first, sizeof(first), "%s", c.secret);
    config_free(&c);
    assert_int_equal(config_load(NULL, &c, err, sizeof(err)), 0);
    assert_int_equal(config_ensure_secret(&c, err, sizeof(err)), 0);
    assert_string_equal(c.secret, first); /* generated once, then kept */
    config_free(&c);
    char path[200];
    snprintf(path, sizeof(path), "%s/secret", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    unlink(path);
    rmdir(dir);
    unsetenv("PIXFLARE_DATA_DIR");
}

/* Variables that look like settings and are not: one line each naming the
 * closest setting; never the value; the test harness's own left alone. */
static void test_env_warnings(void **state)
{
    (void)state;
    char *out = (char *)"unset";
    char *good[] = {"PIXFLARE_LISTEN=127.0.0.1:1",
                    "ANALYTICS_ENGINE=none",
                    "PIXFLARE_TEST_PG_URL=postgres://x",
                    "PIXFLARE_BIN=/bin/true",
                    "PATH=/bin",
                    "PIXFLARE=1",
                    "analytics_engine=x",
                    NULL};
    assert_int_equal(config_env_warnings(good, &out), 0);
    assert_null(out);
    char *bad[] = {"PIXFLARE_LISTN=secret-value",
                   "PIXFLARE_RETENTION_DAYS=3",
                   "ANALYTICS_ENGINE_URLS=http://x",
                   "PIXFLARE_BINARY=x",
                   "PIXFLARE_LISTEN=127.0.0.1:1",
                   "ANALYTICS_=",
                   NULL};
    assert_int_equal(config_env_warnings(bad, &out), 0);
    assert_non_null(out);
    assert_string_equal(out, "PIXFLARE_LISTN is not a setting; did you mean PIXFLARE_LISTEN?\n"
                             "PIXFLARE_RETENTION_DAYS is not a setting; did you mean "
                             "ANALYTICS_RETENTION_DAYS?\n"
                             "ANALYTICS_ENGINE_URLS is not a setting; did you mean "
                             "ANALYTICS_ENGINE_URL?\n"
                             "PIXFLARE_BINARY is not a setting; did you mean PIXFLARE_LISTEN?\n"
                             "ANALYTICS_ is not a setting; did you mean ANALYTICS_ENGINE?\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_validation, clear_env),
        cmocka_unit_test_setup(test_bools_and_listen, clear_env),
        cmocka_unit_test_setup(test_file, clear_env),
        cmocka_unit_test_setup(test_secret, clear_env),
        cmocka_unit_test(test_env_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
