/* keyhash.h - keyed hashes of names: what Pixflare stores instead of them.
 *
 * The owner of every event and analytics row is HMAC-SHA256(secret, owner)
 * cut to its first 16 bytes: stable for one installation, useless to anyone
 * without PIXFLARE_SECRET. The key is the secret's text as configured. */
#ifndef PF_KEYHASH_H
#define PF_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

#define KEYHASH_OWNER_LEN 16

/* OUT: out[KEYHASH_OWNER_LEN] = first 16 bytes of HMAC-SHA256(secret, owner). */
void keyhash_owner(const char *secret, const char *owner, uint8_t out[KEYHASH_OWNER_LEN]);

/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void keyhash_hex(const uint8_t *bytes, size_t n, char *out);

#endif
