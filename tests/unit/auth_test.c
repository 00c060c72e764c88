/* auth_test.c - API keys (src/auth.c) on a fresh SQLite database: scope
 * lists, the shape of created keys, and every answer of auth_check. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "store/db.h"
#include "base/err.h"
#include "base/keyhash.h"

static const char SECRET[] = "unit test secret";
static const char ID_CHARS[] = "abcdefghijklmnopqrstuvwxyz0123456789";
static const char SECRET_CHARS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* ---- Scopes ---- */

static void test_scopes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int scopes; /* 0: refused */
    } cases[] = {
        {"read", AUTH_SCOPE_READ},
        {"write", AUTH_SCOPE_WRITE},
        {"read,write", AUTH_SCOPE_READ | AUTH_SCOPE_WRITE},
        {"write,read", AUTH_SCOPE_READ | AUTH_SCOPE_WRITE},
        {"", 0},
        {",", 0},
        {"read,", 0},
        {",read", 0},
        {"read,,write", 0},
        {"READ", 0},
        {"Read", 0},
        {"read ", 0},
        {" read", 0},
        {"read, write", 0},
        {"read;write", 0},
        {"readwrite", 0},
        {"rea", 0},
        {"reads", 0},
        {"writ", 0},
        {"admin", 0},
        {"read,admin", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int s = -1;
        int rc = auth_parse_scopes(cases[i].text, &s);
        if (cases[i].scopes == 0 && rc != PF_EINVAL)
            fail_msg("'%s' was accepted (%d)", cases[i].text, s);
        if (cases[i].scopes != 0 && (rc != 0 || s != cases[i].scopes))
            fail_msg("'%s': rc %d scopes %d, want %d", cases[i].text, rc, s, cases[i].scopes);
    }
    /* the canonical text parses back to the same set */
    static const char *const canon[] = {NULL, "read", "write", "read,write"};
    for (int s = 1; s <= 3; s++) {
        char text[32];
        int back = 0;
        auth_format_scopes(s, text);
        assert_string_equal(text, canon[s]);
        assert_int_equal(auth_parse_scopes(text, &back), 0);
        assert_int_equal(back, s);
    }
}

/* ---- A database in a temporary directory ---- */

struct fixture {
    char dir[64];
    struct db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[128], err[256];
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/pixflare-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "sqlite:%s/pixflare.db", f->dir);
    if (db_open(path, &f->db, err, sizeof(err)) != 0)
        fail_msg("db_open %s: %s", path, err);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    assert_int_equal(nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(f);
    return 0;
}

/* ---- Created keys ---- */

static void test_created_keys(void **state)
{
    struct fixture *f = *state;
    enum { N = 100 };
    static char keys[N][AUTH_KEY_LEN + 1];
    int seen_id[256] = {0}, seen_secret[256] = {0};
    for (int i = 0; i < N; i++) {
        char *key = keys[i], id[13];
        struct db_key rec, stored;
        assert_int_equal(auth_key_create(f->db, SECRET, "alice", AUTH_SCOPE_READ, 0, key, &rec), 0);
        assert_int_equal(strlen(key), AUTH_KEY_LEN);
        if (!auth_key_wellformed(key, AUTH_KEY_LEN, id))
            fail_msg("created key '%s' is not well-formed", key);
        assert_memory_equal(key, "pfk_", 4);
        assert_int_equal(key[16], '_');
        assert_string_equal(id, rec.id);
        assert_memory_equal(id, key + 4, 12);
        /* the record keeps a hash, never the key or its secret */
        assert_int_equal(strlen(rec.key_hash), 64);
        assert_null(strstr(rec.key_hash, key + 17));
        assert_string_equal(rec.owner, "alice");
        assert_string_equal(rec.scopes, "read");
        assert_int_equal(db_key_get(f->db, id, &stored), 0);
        assert_string_equal(stored.key_hash, rec.key_hash);
        assert_int_equal(stored.expires_at, 0);
        assert_int_equal(stored.revoked_at, 0);
        for (int j = 0; j < i; j++)
            assert_memory_not_equal(keys[j], key, 16); /* ids differ */
        for (int k = 4; k < 16; k++)
            seen_id[(unsigned char)key[k]] = 1;
        for (int k = 17; k < AUTH_KEY_LEN; k++)
            seen_secret[(unsigned char)key[k]] = 1;
    }
    /* 1,200 id and 4,000 secret characters use every character of their
     * alphabets (a miss by chance: below 1e-13) */
    for (const char *c = ID_CHARS; *c; c++)
        if (!seen_id[(unsigned char)*c])
            fail_msg("no created id uses '%c'", *c);
    for (const char *c = SECRET_CHARS; *c; c++)
        if (!seen_secret[(unsigned char)*c])
            fail_msg("no created secret uses '%c'", *c);
}

static void expect_malformed(const char *s, size_t len, const char *why)
{
    char id[13] = "unchanged";
    if (auth_key_wellformed(s, len, id))
        fail_msg("accepted %s: '%.*s'", why, (int)len, s);
    assert_string_equal(id, "unchanged");
}

static void test_near_misses(void **state)
{
    struct fixture *f = *state;
    char key[AUTH_KEY_LEN + 1], bad[AUTH_KEY_LEN + 2], why[64];
    assert_int_equal(auth_key_create(f->db, SECRET, "alice", AUTH_SCOPE_READ, 0, key, NULL), 0);
    assert_true(auth_key_wellformed(key, AUTH_KEY_LEN, NULL));
    /* lengths */
    expect_malformed(key, AUTH_KEY_LEN - 1, "a key one short");
    expect_malformed(key, 0, "nothing");
    memcpy(bad, key, AUTH_KEY_LEN);
    bad[AUTH_KEY_LEN] = 'a';
    expect_malformed(bad, AUTH_KEY_LEN + 1, "a key one long");
    /* every position, with characters its part does not allow */
    static const char not_id[] = "A_-. /\x01\x7f\x80\xff", not_secret[] = "_-. /+=\x01\x7f\x80";
    for (int i = 0; i < AUTH_KEY_LEN; i++) {
        const char *others = i < 4 ? "PFKx_-" : i < 16 ? not_id : i == 16 ? "-a0A." : not_secret;
        for (const char *c = others; *c; c++) {
            if (*c == key[i])
                continue;
            memcpy(bad, key, AUTH_KEY_LEN);
            bad[i] = *c;
            snprintf(why, sizeof(why), "0x%02x at %d", (unsigned char)*c, i);
            expect_malformed(bad, AUTH_KEY_LEN, why);
        }
        /* a NUL inside: the length says 57, the key is shorter */
        memcpy(bad, key, AUTH_KEY_LEN);
        bad[i] = '\0';
        snprintf(why, sizeof(why), "NUL at %d", i);
        expect_malformed(bad, AUTH_KEY_LEN, why);
    }
    /* and the characters they do allow */
    for (const char *c = ID_CHARS; *c; c++) {
        memcpy(bad, key, AUTH_KEY_LEN);
        bad[4] = *c;
        assert_true(auth_key_wellformed(bad, AUTH_KEY_LEN, NULL));
    }
    for (const char *c = SECRET_CHARS; *c; c++) {
        memcpy(bad, key, AUTH_KEY_LEN);
        bad[AUTH_KEY_LEN - 1] = *c;
        assert_true(auth_key_wellformed(bad, AUTH_KEY_LEN, NULL));
    }
}

/* ---- auth_check ---- */

static enum auth_result check(struct db *db, const char *header, int64_t now,
                              struct auth_principal *p)
{
    const char *message = "untouched";
    enum auth_result r = auth_check(db, SECRET, header, now, p, &message);
    if (r == AUTH_OK)
        assert_null(message);
    else if (message == NULL || message[0] == '\0' || strcmp(message, "untouched") == 0)
        fail_msg("'%s': result %d without a message", header ? header : "(null)", (int)r);
    return r;
}

static enum auth_result check_key(struct db *db, const char *fmt, const char *key, int64_t now,
                                  struct auth_principal *p)
{
    char header[256];
    snprintf(header, sizeof(header), fmt, key);
    return check(db, header, now, p);
}

#define NOW INT64_C(1795478400) /* 2026-11-24 */

static void test_check(void **state)
{
    struct fixture *f = *state;
    struct auth_principal p;
    struct db_key rec;
    char alice[AUTH_KEY_LEN + 1], bob[AUTH_KEY_LEN + 1], other[AUTH_KEY_LEN + 1];
    char hex[33];
    uint8_t raw[KEYHASH_OWNER_LEN];
    assert_int_equal(auth_key_create(f->db, SECRET, "alice", AUTH_SCOPE_READ, 0, alice, &rec), 0);
    assert_int_equal(
        auth_key_create(f->db, SECRET, "bob", AUTH_SCOPE_READ | AUTH_SCOPE_WRITE, 0, bob, NULL), 0);

    /* missing, other schemes, malformed keys */
    assert_int_equal(check(f->db, NULL, NOW, &p), AUTH_MISSING);
    assert_int_equal(check(f->db, "", NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check(f->db, "Basic YWxpY2U6cGFzcw==", NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "Basic %s", alice, NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "Token %s", alice, NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "%s", alice, NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check(f->db, "Bearer", NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check(f->db, "Bearer ", NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check(f->db, "Bearer pfk_", NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "Bearer%s", alice, NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "Bearer %sx", alice, NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "Bearer x%s", alice, NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "Bearer %s x", alice, NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "Bearer %s,", alice, NOW, &p), AUTH_MALFORMED);
    assert_int_equal(check_key(f->db, "Bearer \"%s\"", alice, NOW, &p), AUTH_MALFORMED);
    char cut[AUTH_KEY_LEN];
    memcpy(cut, alice, AUTH_KEY_LEN - 1);
    cut[AUTH_KEY_LEN - 1] = '\0';
    assert_int_equal(check_key(f->db, "Bearer %s", cut, NOW, &p), AUTH_MALFORMED);

    /* ok: the scheme in any case, spaces around the key */
    assert_int_equal(check_key(f->db, "Bearer %s", alice, NOW, &p), AUTH_OK);
    assert_string_equal(p.owner, "alice");
    assert_string_equal(p.key_id, rec.id);
    assert_int_equal(p.scopes, AUTH_SCOPE_READ);
    keyhash_owner(SECRET, "alice", raw);
    keyhash_hex(raw, KEYHASH_OWNER_LEN, hex);
    assert_string_equal(p.owner_hex, hex);
    assert_int_equal(check_key(f->db, "bearer %s", alice, NOW, &p), AUTH_OK);
    assert_int_equal(check_key(f->db, "BEARER    %s  \t ", alice, NOW, &p), AUTH_OK);
    assert_int_equal(check_key(f->db, "Bearer %s", bob, NOW, &p), AUTH_OK);
    assert_string_equal(p.owner, "bob");
    assert_int_equal(p.scopes, AUTH_SCOPE_READ | AUTH_SCOPE_WRITE);
    keyhash_owner(SECRET, "bob", raw);
    keyhash_hex(raw, KEYHASH_OWNER_LEN, hex);
    assert_string_equal(p.owner_hex, hex);

    /* unknown: another id, or the right id with another secret part, or
     * another PIXFLARE_SECRET; all three read the same */
    const char *m1 = NULL, *m2 = NULL, *m3 = NULL;
    memcpy(other, alice, sizeof(other));
    other[4] = other[4] == 'a' ? 'b' : 'a';
    assert_int_equal(auth_check(f->db, SECRET, "Bearer x", NOW, &p, &m1), AUTH_MALFORMED);
    char header[128];
    snprintf(header, sizeof(header), "Bearer %s", other);
    assert_int_equal(auth_check(f->db, SECRET, header, NOW, &p, &m1), AUTH_UNKNOWN);
    memcpy(other, alice, sizeof(other));
    other[AUTH_KEY_LEN - 1] = other[AUTH_KEY_LEN - 1] == 'A' ? 'B' : 'A';
    snprintf(header, sizeof(header), "Bearer %s", other);
    assert_int_equal(auth_check(f->db, SECRET, header, NOW, &p, &m2), AUTH_UNKNOWN);
    snprintf(header, sizeof(header), "Bearer %s", alice);
    assert_int_equal(auth_check(f->db, "another secret", header, NOW, &p, &m3), AUTH_UNKNOWN);
    assert_string_equal(m1, m2);
    assert_string_equal(m1, m3);

    /* revoked; a wrong secret part still reads as unknown (revocation is
     * not revealed to whoever knows only the id) */
    int already = -1;
    assert_int_equal(db_key_revoke(f->db, rec.id, NOW, &already), 0);
    assert_int_equal(already, 0);
    assert_int_equal(check_key(f->db, "Bearer %s", alice, NOW + 1, &p), AUTH_REVOKED);
    assert_int_equal(check_key(f->db, "Bearer %s", other, NOW + 1, &p), AUTH_UNKNOWN);
    /* bob's key is untouched */
    assert_int_equal(check_key(f->db, "Bearer %s", bob, NOW + 1, &p), AUTH_OK);
}

static void test_expiry_and_use(void **state)
{
    struct fixture *f = *state;
    struct auth_principal p;
    struct db_key rec, k;
    char key[AUTH_KEY_LEN + 1], gone[AUTH_KEY_LEN + 1];
    int64_t exp = NOW + 3600;
    assert_int_equal(auth_key_create(f->db, SECRET, "carol", AUTH_SCOPE_READ, exp, key, &rec), 0);
    assert_int_equal(db_key_get(f->db, rec.id, &k), 0);
    assert_int_equal(k.expires_at, exp);
    assert_int_equal(k.last_used_at, 0);

    /* expires at expires_at exactly */
    assert_int_equal(check_key(f->db, "Bearer %s", key, exp - 1, &p), AUTH_OK);
    assert_int_equal(check_key(f->db, "Bearer %s", key, exp, &p), AUTH_EXPIRED);
    assert_int_equal(check_key(f->db, "Bearer %s", key, exp + 86400, &p), AUTH_EXPIRED);

    /* revoked wins over expired */
    int already;
    assert_int_equal(db_key_revoke(f->db, rec.id, exp + 1, &already), 0);
    assert_int_equal(check_key(f->db, "Bearer %s", key, exp + 2, &p), AUTH_REVOKED);

    /* uses are recorded at most once a minute */
    assert_int_equal(auth_key_create(f->db, SECRET, "dave", AUTH_SCOPE_READ, 0, gone, &rec), 0);
    assert_int_equal(check_key(f->db, "Bearer %s", gone, NOW, &p), AUTH_OK);
    assert_int_equal(db_key_get(f->db, rec.id, &k), 0);
    assert_int_equal(k.last_used_at, NOW);
    assert_int_equal(check_key(f->db, "Bearer %s", gone, NOW + 59, &p), AUTH_OK);
    assert_int_equal(db_key_get(f->db, rec.id, &k), 0);
    assert_int_equal(k.last_used_at, NOW);
    assert_int_equal(check_key(f->db, "Bearer %s", gone, NOW + 60, &p), AUTH_OK);
    assert_int_equal(db_key_get(f->db, rec.id, &k), 0);
    assert_int_equal(k.last_used_at, NOW + 60);
    /* a refused check records nothing */
    assert_int_equal(check_key(f->db, "Bearer %sx", gone, NOW + 500, &p), AUTH_MALFORMED);
    assert_int_equal(db_key_get(f->db, rec.id, &k), 0);
    assert_int_equal(k.last_used_at, NOW + 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes),
        cmocka_unit_test_setup_teardown(test_created_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_near_misses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_and_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
