/* cmd_keys.c - `pixflare keys create|list|revoke`: API keys for /v1/. */
#include "cli/cli.h"

#include "api/auth.h"
#include "base/err.h"
#include "base/timeutil.h"
#include "cdn/import.h"
#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int keys_list_row(void *ctx, const struct db_key *k)
{
    char created[21], expires[21] = "never", used[21] = "never";
    int64_t now = *(const int64_t *)ctx;
    timeutil_format_iso8601(k->created_at, created);
    if (k->expires_at != 0)
        timeutil_format_iso8601(k->expires_at, expires);
    if (k->last_used_at != 0)
        timeutil_format_iso8601(k->last_used_at, used);
    printf("%-12s  %-16s  %-10s  %-20s  %-20s  %-20s  %s\n", k->id, k->owner, k->scopes, created,
           expires, used,
           k->revoked_at                           ? "revoked"
           : k->expires_at && now >= k->expires_at ? "expired"
                                                   : "active");
    return 0;
}

int cmd_keys(const char *config_file, int argc, char **argv)
{
    struct config cfg;
    struct db *db = NULL;
    struct db_key rec;
    char err[512], key[AUTH_KEY_LEN + 1], id[13];
    const char *owner = NULL, *problem;
    int scopes = AUTH_SCOPE_READ, already = 0;
    long long days = 0;
    int64_t now = (int64_t)time(NULL);
    const char *sub = argc > 1 ? argv[1] : "";
    if (strcmp(sub, "create") == 0) {
        for (int i = 2; i < argc; i += 2) { /* flag, value */
            const char *v = i + 1 < argc ? argv[i + 1] : NULL;
            char *end = NULL;
            if (strcmp(argv[i], "--owner") == 0 && v != NULL) {
                owner = v;
            } else if (strcmp(argv[i], "--scopes") == 0 && v != NULL) {
                if (auth_parse_scopes(v, &scopes) != 0)
                    return cli_usage_error("keys",
                                           "--scopes '%s': a list of read and write, "
                                           "such as read,write",
                                           v);
            } else if (strcmp(argv[i], "--expires-days") == 0 && v != NULL) {
                days = strtoll(v, &end, 10);
                if (*v < '0' || *v > '9' || *end != '\0' || days < 1 || days > 36500)
                    return cli_usage_error("keys", "--expires-days '%s' must be 1-36500", v);
            } else {
                return cli_usage_error("keys",
                                       v == NULL && argv[i][0] == '-' ? "%s needs a value"
                                                                      : "unknown argument '%s'",
                                       argv[i]);
            }
        }
        if (owner == NULL)
            return cli_usage_error("keys", "%s", "create needs --owner NAME");
        if ((problem = import_check_owner(owner)) != NULL) {
            fprintf(stderr, "pixflare keys: owner '%s': %s\n", owner, problem);
            return CLI_EXIT_USAGE;
        }
    } else if (strcmp(sub, "list") == 0) {
        if (argc > 2)
            return cli_usage_error("keys", "unexpected argument '%s'", argv[2]);
    } else if (strcmp(sub, "revoke") == 0) {
        if (argc != 3)
            return cli_usage_error("keys", "%s", "revoke takes one key id (as 'keys list' shows)");
        /* The id, or the whole key (its id is in it). */
        const char *a = argv[2];
        if (!auth_key_wellformed(a, strlen(a), id)) {
            if (strlen(a) != 12 || strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789") != 12)
                return cli_usage_error("keys", "'%s' is not a key id (12 characters of a-z, 0-9)",
                                       a);
            memcpy(id, a, 13);
        }
    } else {
        return cli_usage_error("keys",
                               sub[0] ? "unknown subcommand '%s' (create, list, revoke)"
                                      : "missing subcommand%s (create, list, revoke)",
                               sub);
    }
    int rc = cli_load_config(config_file, &cfg, CLI_NEED_SECRET);
    if (rc != 0)
        return rc;
    rc = 1;
    if (db_open(cfg.database, &db, err, sizeof(err)) != 0) {
        fprintf(stderr, "pixflare keys: %s\n", err);
        goto done;
    }
    if (strcmp(sub, "create") == 0) {
        int64_t expires = days ? now + days * 86400 : 0;
        if (auth_key_create(db, cfg.secret, owner, scopes, expires, key, &rec) != 0) {
            fprintf(stderr, "pixflare keys: cannot store the key\n");
            goto done;
        }
        printf("%s\n", key);
        fflush(stdout);
        char when[21] = "never";
        if (expires)
            timeutil_format_iso8601(expires, when);
        fprintf(stderr,
                "pixflare keys: key %s for owner %s (scopes %s, expires %s). It is shown "
                "only this once; 'pixflare keys revoke %s' disables it.\n",
                rec.id, owner, rec.scopes, when, rec.id);
        rc = 0;
    } else if (strcmp(sub, "list") == 0) {
        printf("%-12s  %-16s  %-10s  %-20s  %-20s  %-20s  %s\n", "ID", "OWNER", "SCOPES", "CREATED",
               "EXPIRES", "LAST USED", "STATUS");
        rc = db_key_scan(db, keys_list_row, &now) == 0 ? 0 : 1;
        if (rc != 0)
            fprintf(stderr, "pixflare keys: cannot read the keys\n");
    } else {
        int r = db_key_revoke(db, id, now, &already);
        if (r == PF_ENOTFOUND) {
            fprintf(stderr, "pixflare keys: no API key with id %s\n", id);
            rc = CLI_EXIT_USAGE;
        } else if (r != 0) {
            fprintf(stderr, "pixflare keys: cannot revoke %s: %s\n", id, err_str(r));
        } else {
            fprintf(stderr, "pixflare keys: %s %s\n", id,
                    already ? "was already revoked" : "revoked: it no longer opens the API");
            rc = 0;
        }
    }
done:
    db_close(db);
    config_free(&cfg);
    return rc;
}
