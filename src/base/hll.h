/* hll.h - HyperLogLog sketches: how many distinct clients, without keeping any.
 *
 * A sketch holds HLL_M = 2^14 one-byte registers and nothing else: each
 * client's 64-bit keyed hash (base/siphash.h) sets one register to at most
 * the rank of its hash, and is then forgotten. Sketches of several nodes or
 * periods merge by register maximum, losslessly: the merge equals the sketch
 * of the union.
 *
 * Accuracy: hll_estimate() uses Otmar Ertl's improved estimator ("New
 * cardinality estimation algorithms for HyperLogLog sketches", 2017,
 * algorithm 6), which needs no empirical bias tables and keeps the relative
 * standard error near 1.04 / sqrt(m) = 1.04 / 128 = 0.81% over the whole
 * range, so about 1.6% at the 95th percentile; small cardinalities (up to a
 * few hundred) come out almost exact, since few registers collide there
 * (tests/unit/hll_test.c measures all of this).
 *
 * The struct is plain data (16 KiB, no pointers): callers own it wherever
 * they like and copy it with memcpy. hll_encode()/hll_decode() turn it into
 * the bytes that are stored and shipped; the format is specified atop hll.c. */
#ifndef PF_HLL_H
#define PF_HLL_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define HLL_P 14                 /* index bits */
#define HLL_M (1u << HLL_P)      /* registers: 16384 */
#define HLL_Q (64 - HLL_P)       /* bits left for the rank: 50 */
#define HLL_RANK_MAX (HLL_Q + 1) /* largest register value: 51 */

/* The largest encoding hll_encode() writes (the dense form): a buffer this
 * size always suffices. */
#define HLL_ENCODED_MAX (1 + HLL_M / 4 * 3)

struct hll {
    uint8_t reg[HLL_M]; /* 0 (never set) .. HLL_RANK_MAX */
};

/* All registers to 0: the empty set. */
void hll_clear(struct hll *h);

/* The register a hash touches and the value it offers: the top HLL_P bits
 * are the index, the rank is the number of leading zeros of the remaining
 * HLL_Q bits plus one (HLL_RANK_MAX when they are all zero).
 * OUT: *idx in [0, HLL_M), *rank in [1, HLL_RANK_MAX]. */
static inline void hll_point(uint64_t hash, uint16_t *idx, uint8_t *rank)
{
    *idx = (uint16_t)(hash >> HLL_Q);
    /* The bit below the HLL_Q bits caps the count at HLL_Q without a branch. */
    uint64_t w = (hash << HLL_P) | ((uint64_t)1 << (HLL_P - 1));
    *rank = (uint8_t)(__builtin_clzll(w) + 1);
}

/* Register idx to at least rank: applies a saved hll_point() later. */
static inline void hll_set_max(struct hll *h, uint16_t idx, uint8_t rank)
{
    assert(idx < HLL_M && rank >= 1 && rank <= HLL_RANK_MAX);
    if (h->reg[idx] < rank)
        h->reg[idx] = rank;
}

/* Add one element by its 64-bit hash (uniformly distributed bits: a keyed
 * hash of the client, never the client itself). A few nanoseconds. */
static inline void hll_add(struct hll *h, uint64_t hash)
{
    uint16_t idx;
    uint8_t rank;
    hll_point(hash, &idx, &rank);
    hll_set_max(h, idx, rank);
}

/* dst = the union of dst and src (register maximum). */
void hll_merge(struct hll *dst, const struct hll *src);

/* Estimated number of distinct hashes added (0 for an empty sketch). */
uint64_t hll_estimate(const struct hll *h);

/* Number of non-zero registers (what decides the encoding's form). */
size_t hll_count_set(const struct hll *h);

/* Encode h into out[0..cap): the sparse form when it is shorter, else the
 * dense one. Returns the number of bytes written (at least 3, at most
 * HLL_ENCODED_MAX), or 0 when cap is too small (nothing useful written). */
size_t hll_encode(const struct hll *h, uint8_t *out, size_t cap);

/* Decode in[0..len) into *out. Strict: 0 on success, PF_EINVAL on any
 * malformed input (unknown format byte, length not exactly as the header
 * says, sparse index out of range or not strictly increasing, rank 0 or
 * above HLL_RANK_MAX); reads nothing outside in[0..len). On error *out is
 * left cleared. */
int hll_decode(const uint8_t *in, size_t len, struct hll *out);

/* dst = the union of dst and the encoded sketch. 0, or PF_EINVAL (as
 * hll_decode) with dst unchanged. */
int hll_merge_encoded(struct hll *dst, const uint8_t *in, size_t len);

#endif
