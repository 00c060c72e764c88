/* keyhash.c - see keyhash.h. */
#include "base/keyhash.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

void keyhash_owner(const char *secret, const char *owner, uint8_t out[KEYHASH_OWNER_LEN])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)owner, strlen(owner),
             mac, &len) == NULL)
        memset(mac, 0, sizeof(mac)); /* only on OOM inside OpenSSL */
    memcpy(out, mac, KEYHASH_OWNER_LEN);
}

void keyhash_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}
