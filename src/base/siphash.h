/* siphash.h - SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash.
 *
 * Pixflare hashes each client's address and user agent with it, keyed by
 * the day's random salt, before the address is dropped, to feed the unique-client sketches
 * (base/hll.h). A keyed hash, so that nobody without the day's key can test
 * whether a given client is in a sketch; a short-input PRF, so that it costs
 * tens of nanoseconds on the request path. Hand-written rather than taken
 * from OpenSSL (EVP_MAC "SIPHASH"): at its cheapest OpenSSL needs a keyed
 * context per thread, re-initialised, fed and finalised per hash, with a
 * failure to handle at each step, and still costs about 1.5 times as much
 * (HMAC-SHA256, as base/keyhash.c uses, 5 to 20 times); BENCHMARKS.md, "Client hash
 * (SipHash)", has the numbers (bench/siphash_bench.c). The output equals the
 * reference implementation's 8 bytes read as a little-endian integer. */
#ifndef PF_SIPHASH_H
#define PF_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* SipHash-2-4 of data[0..len) under key (k0 = key[0..8) and k1 = key[8..16),
 * little-endian, as in the reference). data may be NULL when len is 0. */
uint64_t siphash_24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len);

#endif
