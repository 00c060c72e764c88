/* hll.c - HyperLogLog registers, Ertl's estimator, and the stored encoding.
 *
 * FORMAT SPEC: an encoded sketch (what the database stores and nodes ship)
 * is one format byte, then the form that byte names. All integers are
 * little-endian. A future layout takes a new format byte; these two never
 * change.
 *
 *   0x01  sparse:  u16 n (0 .. 16384), then n entries of 3 bytes:
 *                  u16 index (0 .. 16383), u8 rank (1 .. 51).
 *                  Indexes strictly increasing; every register not listed
 *                  is 0. Length exactly 3 + 3n.
 *   0x02  dense:   16384 registers of 6 bits, packed four to three bytes:
 *                  registers 4g .. 4g+3 are bits 0-5, 6-11, 12-17, 18-23 of
 *                  the u24 at bytes 1 + 3g .. 3 + 3g. Each value 0 .. 51.
 *                  Length exactly 1 + 12288 = 12289.
 *
 * Example: registers 5 = 3 and 16383 = 1, all others 0, encode as the
 * 9 bytes 01 02 00  05 00 03  ff 3f 01. The empty sketch is 01 00 00.
 *
 * A record is valid only if it matches one form exactly: a wrong length,
 * an index out of order or out of range, a sparse rank of 0, or a value
 * above 51 anywhere makes the whole of it invalid (PF_EINVAL), and nothing
 * of it is applied. hll_encode() writes the sparse form when it is shorter,
 * i.e. for at most 4095 non-zero registers (3 + 3 * 4095 = 12288 bytes);
 * the decoder also accepts a longer sparse form, which means the same
 * registers. */
#include "base/hll.h"

#include "base/err.h"

#include <math.h>
#include <string.h>

#define DENSE_LEN (1 + HLL_M / 4 * 3)
#define SPARSE_MAX_SHORTER ((DENSE_LEN - 1 - 3) / 3) /* 4095 */

enum { FORM_SPARSE = 0x01, FORM_DENSE = 0x02 };

void hll_clear(struct hll *h)
{
    memset(h->reg, 0, sizeof(h->reg));
}

void hll_merge(struct hll *dst, const struct hll *src)
{
    /* A plain loop over bytes: the compiler turns it into vector maxima. */
    for (size_t i = 0; i < HLL_M; i++)
        dst->reg[i] = dst->reg[i] > src->reg[i] ? dst->reg[i] : src->reg[i];
}

size_t hll_count_set(const struct hll *h)
{
    size_t n = 0;
    for (size_t i = 0; i < HLL_M; i++)
        n += h->reg[i] != 0;
    return n;
}

/* Ertl's sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1): the correction for the
 * registers still 0 (x = their share). Converges in a few dozen steps for
 * x < 1; the caller handles x = 1 (the empty sketch). */
static double ertl_sigma(double x)
{
    double y = 1.0, z = x, prev;
    do {
        x *= x;
        prev = z;
        z += x * y;
        y += y;
    } while (z != prev);
    return z;
}

/* Ertl's tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3: the
 * correction for the registers at the maximum (1 - x = their share). */
static double ertl_tau(double x)
{
    if (x == 0.0 || x == 1.0)
        return 0.0;
    double y = 1.0, z = 1.0 - x, prev;
    do {
        x = sqrt(x);
        prev = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
    } while (z != prev);
    return z / 3.0;
}

uint64_t hll_estimate(const struct hll *h)
{
    /* Four partial histograms: consecutive equal registers (most of them,
     * in a small sketch) would otherwise wait on each other's increment. */
    uint32_t part[4][HLL_RANK_MAX + 1] = {{0}}, c[HLL_RANK_MAX + 1];
    for (size_t i = 0; i < HLL_M; i += 4) {
        part[0][h->reg[i]]++;
        part[1][h->reg[i + 1]]++;
        part[2][h->reg[i + 2]]++;
        part[3][h->reg[i + 3]]++;
    }
    for (size_t k = 0; k <= HLL_RANK_MAX; k++)
        c[k] = part[0][k] + part[1][k] + part[2][k] + part[3][k];
    if (c[0] == HLL_M)
        return 0;
    /* Algorithm 6 of the paper: the histogram folded from the top rank
     * down, both ends corrected, then alpha_inf m^2 / z with alpha_inf =
     * 1 / (2 ln 2). */
    const double m = HLL_M;
    double z = m * ertl_tau(1.0 - c[HLL_RANK_MAX] / m);
    for (int k = HLL_Q; k >= 1; k--)
        z = 0.5 * (z + c[k]);
    z += m * ertl_sigma(c[0] / m);
    return (uint64_t)llround(m * m / (2.0 * log(2.0)) / z);
}

static void put_u16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static unsigned get_u16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t get_u24(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

size_t hll_encode(const struct hll *h, uint8_t *out, size_t cap)
{
    size_t n = hll_count_set(h);
    if (n <= SPARSE_MAX_SHORTER) {
        size_t need = 3 + 3 * n;
        if (cap < need)
            return 0;
        out[0] = FORM_SPARSE;
        put_u16(out + 1, (unsigned)n);
        uint8_t *p = out + 3;
        for (size_t i = 0; i < HLL_M; i++) {
            if (h->reg[i] != 0) {
                put_u16(p, (unsigned)i);
                p[2] = h->reg[i];
                p += 3;
            }
        }
        return need;
    }
    if (cap < DENSE_LEN)
        return 0;
    out[0] = FORM_DENSE;
    for (size_t g = 0; g < HLL_M / 4; g++) {
        const uint8_t *r = h->reg + 4 * g;
        uint32_t v =
            (uint32_t)r[0] | (uint32_t)r[1] << 6 | (uint32_t)r[2] << 12 | (uint32_t)r[3] << 18;
        uint8_t *p = out + 1 + 3 * g;
        p[0] = (uint8_t)(v & 0xff);
        p[1] = (uint8_t)(v >> 8 & 0xff);
        p[2] = (uint8_t)(v >> 16);
    }
    return DENSE_LEN;
}

/* Check in[0..len) against the FORMAT SPEC, then (only once the whole input
 * checked out) raise dst's registers to it. Returns 0 or PF_EINVAL. */
static int apply(const uint8_t *in, size_t len, struct hll *dst)
{
    int rc = PF_EINVAL;
    if (in == NULL || len < 1)
        goto out;
    if (in[0] == FORM_SPARSE) {
        if (len < 3)
            goto out;
        size_t n = get_u16(in + 1);
        if (n > HLL_M || len != 3 + 3 * n)
            goto out;
        long prev = -1;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *e = in + 3 + 3 * i;
            long idx = (long)get_u16(e);
            if (idx >= (long)HLL_M || idx <= prev || e[2] == 0 || e[2] > HLL_RANK_MAX)
                goto out;
            prev = idx;
        }
        for (size_t i = 0; i < n; i++) {
            const uint8_t *e = in + 3 + 3 * i;
            hll_set_max(dst, (uint16_t)get_u16(e), e[2]);
        }
    } else if (in[0] == FORM_DENSE) {
        if (len != DENSE_LEN)
            goto out;
        for (size_t g = 0; g < HLL_M / 4; g++) {
            uint32_t v = get_u24(in + 1 + 3 * g);
            if ((v & 0x3f) > HLL_RANK_MAX || (v >> 6 & 0x3f) > HLL_RANK_MAX ||
                (v >> 12 & 0x3f) > HLL_RANK_MAX || (v >> 18) > HLL_RANK_MAX)
                goto out;
        }
        for (size_t g = 0; g < HLL_M / 4; g++) {
            uint32_t v = get_u24(in + 1 + 3 * g);
            for (size_t j = 0; j < 4; j++) {
                uint8_t r = (uint8_t)(v >> (6 * j) & 0x3f);
                if (dst->reg[4 * g + j] < r)
                    dst->reg[4 * g + j] = r;
            }
        }
    } else {
        goto out;
    }
    rc = 0;
out:
    return rc;
}

int hll_decode(const uint8_t *in, size_t len, struct hll *out)
{
    hll_clear(out);
    return apply(in, len, out);
}

int hll_merge_encoded(struct hll *dst, const uint8_t *in, size_t len)
{
    return apply(in, len, dst);
}
