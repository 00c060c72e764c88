/* auth.h - API keys: making them, and checking the one a request carries.
 *
 * A key reads "pfk_" + 12 characters of [a-z0-9] (its id, public: `keys
 * list` shows it) + "_" + 40 characters of [A-Za-z0-9] (its secret, about
 * 238 random bits). The database keeps the id and
 * HMAC-SHA256(PIXFLARE_SECRET, "pixflare api key\n" + key) in hex, never the
 * key: a copy of the database gives no usable key, and with a different
 * PIXFLARE_SECRET no key matches. The stored and computed hashes are
 * compared in constant time. */
#ifndef PF_AUTH_H
#define PF_AUTH_H

#include "store/db.h"

#include <stdint.h>

#define AUTH_KEY_LEN 57 /* strlen("pfk_") + 12 + 1 + 40 */
#define AUTH_SCOPE_READ 1
#define AUTH_SCOPE_WRITE 2

/* Parse a comma-separated scope list ("read", "write", "read,write").
 * OUT: *scopes. PF_EINVAL for an empty list or an unknown scope. */
int auth_parse_scopes(const char *list, int *scopes);
/* The canonical text of a scope set ("read,write") into out[32]. */
void auth_format_scopes(int scopes, char out[32]);

/* Make a key for `owner` and store its record. expires_at: Unix seconds,
 * 0 for never. OUT: key[AUTH_KEY_LEN + 1], to show once; *rec (if not
 * NULL), what was stored. */
int auth_key_create(struct db *db, const char *secret, const char *owner, int scopes,
                    int64_t expires_at, char key[AUTH_KEY_LEN + 1], struct db_key *rec);

/* Who a request's key speaks for. */
struct auth_principal {
    char key_id[16];
    char owner[65];     /* name */
    char owner_hex[33]; /* keyed hash, as in the analytics tables */
    int scopes;
};

enum auth_result {
    AUTH_OK,
    AUTH_MISSING,   /* no Authorization header */
    AUTH_MALFORMED, /* not "Bearer <key>" with a well-formed key */
    AUTH_UNKNOWN,   /* no such key (or the secret part does not match) */
    AUTH_REVOKED,
    AUTH_EXPIRED,
    AUTH_ERROR /* the database failed */
};

/* Check an Authorization header value (may be NULL) at time `now` (Unix
 * seconds). AUTH_OK fills *p and records the use (at most once a minute per
 * key, so that reads do not turn into writes). *message: a short reason for
 * the others, for the 401 body. */
enum auth_result auth_check(struct db *db, const char *secret, const char *authorization,
                            int64_t now, struct auth_principal *p, const char **message);

/* Whether s is a well-formed key (for the fuzz target and tests). OUT:
 * id[13] (if not NULL), its id. */
int auth_key_wellformed(const char *s, size_t len, char id[13]);

#endif
