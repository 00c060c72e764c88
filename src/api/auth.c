/* auth.c - see auth.h. */
#include "api/auth.h"

#include "base/err.h"
#include "base/keyhash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PREFIX "pfk_"
#define PREFIX_LEN 4
#define ID_LEN 12
#define SECRET_LEN 40
#define TOUCH_EVERY 60 /* seconds between two records of a key's use */

static const char id_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
static const char secret_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int auth_parse_scopes(const char *list, int *scopes)
{
    int s = 0;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 4 && strncmp(p, "read", 4) == 0)
            s |= AUTH_SCOPE_READ;
        else if (n == 5 && strncmp(p, "write", 5) == 0)
            s |= AUTH_SCOPE_WRITE;
        else
            return PF_EINVAL;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    *scopes = s;
    return 0;
}

void auth_format_scopes(int scopes, char out[32])
{
    snprintf(out, 32, "%s%s%s", scopes & AUTH_SCOPE_READ ? "read" : "",
             (scopes & AUTH_SCOPE_READ) && (scopes & AUTH_SCOPE_WRITE) ? "," : "",
             scopes & AUTH_SCOPE_WRITE ? "write" : "");
}

/* n characters drawn uniformly from `set` (of `m` characters) into out.
 * Bytes at or above the largest multiple of m are drawn again, so that no
 * character is likelier than another. */
static int random_chars(char *out, size_t n, const char *set, unsigned m)
{
    unsigned char buf[64];
    unsigned limit = 256 - 256 % m;
    size_t got = 0;
    while (got < n) {
        if (RAND_bytes(buf, sizeof(buf)) != 1)
            return PF_EIO;
        for (size_t i = 0; i < sizeof(buf) && got < n; i++)
            if (buf[i] < limit)
                out[got++] = set[buf[i] % m];
    }
    return 0;
}

/* The stored hash of a key: hex of HMAC-SHA256(secret, label + key). */
static void key_hash(const char *secret, const char *key, size_t len, char hex[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    unsigned char msg[32 + AUTH_KEY_LEN];
    static const char label[] = "pixflare api key\n";
    memcpy(msg, label, sizeof(label) - 1);
    memcpy(msg + sizeof(label) - 1, key, len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, sizeof(label) - 1 + len, mac, &maclen);
    keyhash_hex(mac, maclen, hex);
}

int auth_key_wellformed(const char *s, size_t len, char id[13])
{
    if (len != AUTH_KEY_LEN || memcmp(s, PREFIX, PREFIX_LEN) != 0 || s[PREFIX_LEN + ID_LEN] != '_')
        return 0;
    for (size_t i = 0; i < ID_LEN; i++)
        if (memchr(id_chars, s[PREFIX_LEN + i], sizeof(id_chars) - 1) == NULL)
            return 0;
    for (size_t i = 0; i < SECRET_LEN; i++)
        if (memchr(secret_chars, s[PREFIX_LEN + ID_LEN + 1 + i], sizeof(secret_chars) - 1) == NULL)
            return 0;
    if (id != NULL) {
        memcpy(id, s + PREFIX_LEN, ID_LEN);
        id[ID_LEN] = '\0';
    }
    return 1;
}

int auth_key_create(struct db *db, const char *secret, const char *owner, int scopes,
                    int64_t expires_at, char key[AUTH_KEY_LEN + 1], struct db_key *rec)
{
    struct db_key k;
    int rc = PF_EEXISTS;
    memset(&k, 0, sizeof(k));
    /* An id clash (36^12 ids) is all but impossible; a few tries anyway. */
    for (int tries = 0; tries < 5 && rc == PF_EEXISTS; tries++) {
        memcpy(key, PREFIX, PREFIX_LEN);
        key[PREFIX_LEN + ID_LEN] = '_';
        rc = random_chars(key + PREFIX_LEN, ID_LEN, id_chars, sizeof(id_chars) - 1);
        if (rc == 0)
            rc = random_chars(key + PREFIX_LEN + ID_LEN + 1, SECRET_LEN, secret_chars,
                              sizeof(secret_chars) - 1);
        key[AUTH_KEY_LEN] = '\0';
        if (rc != 0)
            break;
        memcpy(k.id, key + PREFIX_LEN, ID_LEN);
        k.id[ID_LEN] = '\0';
        snprintf(k.owner, sizeof(k.owner), "%s", owner);
        key_hash(secret, key, AUTH_KEY_LEN, k.key_hash);
        auth_format_scopes(scopes, k.scopes);
        k.created_at = (int64_t)time(NULL);
        k.expires_at = expires_at;
        rc = db_key_insert(db, &k);
    }
    if (rc == 0 && rec != NULL)
        *rec = k;
    if (rc != 0)
        OPENSSL_cleanse(key, AUTH_KEY_LEN);
    return rc;
}

enum auth_result auth_check(struct db *db, const char *secret, const char *authorization,
                            int64_t now, struct auth_principal *p, const char **message)
{
    struct db_key k;
    char id[ID_LEN + 1], hex[65];
    uint8_t owner[KEYHASH_OWNER_LEN];
    if (authorization == NULL) {
        *message = "missing Authorization header (Authorization: Bearer <API key>)";
        return AUTH_MISSING;
    }
    /* RFC 9110 11.1: the scheme is case-insensitive; spaces may follow. */
    const char *s = authorization;
    if (strncasecmp(s, "Bearer ", 7) != 0) {
        *message = "the Authorization header must be 'Bearer <API key>'";
        return AUTH_MALFORMED;
    }
    for (s += 7; *s == ' '; s++)
        ;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (!auth_key_wellformed(s, len, id)) {
        *message = "malformed API key";
        return AUTH_MALFORMED;
    }
    int rc = db_key_get(db, id, &k);
    if (rc == PF_ENOTFOUND) {
        *message = "unknown API key";
        return AUTH_UNKNOWN;
    }
    if (rc != 0) {
        *message = "cannot read the API keys";
        return AUTH_ERROR;
    }
    key_hash(secret, s, len, hex);
    if (strlen(k.key_hash) != 64 || CRYPTO_memcmp(hex, k.key_hash, 64) != 0) {
        *message = "unknown API key";
        return AUTH_UNKNOWN;
    }
    if (k.revoked_at != 0) {
        *message = "this API key was revoked";
        return AUTH_REVOKED;
    }
    if (k.expires_at != 0 && now >= k.expires_at) {
        *message = "this API key has expired";
        return AUTH_EXPIRED;
    }
    if (now - k.last_used_at >= TOUCH_EVERY)
        db_key_touch(db, id, now); /* best effort: a busy database must not fail the read */
    memset(p, 0, sizeof(*p));
    snprintf(p->key_id, sizeof(p->key_id), "%s", id);
    snprintf(p->owner, sizeof(p->owner), "%s", k.owner);
    keyhash_owner(secret, k.owner, owner);
    keyhash_hex(owner, KEYHASH_OWNER_LEN, p->owner_hex);
    auth_parse_scopes(k.scopes, &p->scopes);
    *message = NULL;
    return AUTH_OK;
}
