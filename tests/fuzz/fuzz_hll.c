/* fuzz_hll.c - fuzzes hll_decode() and hll_merge_encoded() (src/base/hll.c):
 * the reader of the unique-client sketches that the database stores and
 * other nodes send.
 *
 * Input layout: byte 0 picks the mode. Even: the rest is the encoded sketch,
 * as is. Odd: a dense record is built from the rest, since a real one
 * (12,289 bytes) is longer than the fuzzer's inputs (-max_len=4096): format
 * byte 0x02, then bytes 2.. of the input repeated to fill the 12,288 bytes
 * of registers, the total length moved by byte 1 % 5 - 2 (so -2..+2 bytes);
 * byte 1's high bit keeps the repeated bytes' 6-bit values at most 51 so
 * that valid dense records come up too. Each record is an exactly sized
 * heap copy, so ASan sees any read past it. Invariants:
 *  - hll_decode() returns 0 or PF_EINVAL; on PF_EINVAL every register is 0;
 *    hll_merge_encoded() agrees and, on PF_EINVAL, leaves its sketch as it
 *    was;
 *  - an accepted record's registers are all <= 51; it agrees with a second,
 *    separately written reader of the FORMAT SPEC atop hll.c;
 *  - hll_merge_encoded() of it into a filled sketch is the register maximum;
 *  - hll_encode() of the decoded sketch decodes to the same registers, and
 *    equals the input byte for byte when the input was in the form
 *    hll_encode() chooses (sparse for at most 4095 registers set);
 *  - hll_estimate() is 0 exactly when no register is set. */
#include "base/err.h"
#include "base/hll.h"
#include "fuzz_check.h"

#define DENSE_LEN (1 + HLL_M / 4 * 3)

/* The reference reader: 1 and the registers, or 0 for a malformed record
 * (registers then partly written; ref_decode() clears them). */
static int ref_parse(const uint8_t *in, size_t len, uint8_t reg[HLL_M])
{
    memset(reg, 0, HLL_M);
    if (len < 1)
        return 0;
    if (in[0] == 0x01) {
        if (len < 3)
            return 0;
        size_t n = in[1] + 256u * in[2];
        if (len != 3 + 3 * n)
            return 0;
        for (size_t i = 0; i < n; i++) {
            size_t idx = in[3 + 3 * i] + 256u * in[4 + 3 * i];
            uint8_t rank = in[5 + 3 * i];
            if (idx >= HLL_M || rank < 1 || rank > 51)
                return 0;
            if (i > 0 && idx <= (size_t)(in[3 * i] + 256u * in[1 + 3 * i]))
                return 0;
            reg[idx] = rank;
        }
        return 1;
    }
    if (in[0] == 0x02 && len == DENSE_LEN) {
        for (size_t r = 0; r < HLL_M; r++) {
            size_t bit = 6 * r;
            unsigned v = 0;
            for (size_t b = 0; b < 6; b++, bit++)
                v |= (unsigned)(in[1 + bit / 8] >> (bit % 8) & 1) << b;
            if (v > 51)
                return 0;
            reg[r] = (uint8_t)v;
        }
        return 1;
    }
    return 0;
}

static int ref_decode(const uint8_t *in, size_t len, uint8_t reg[HLL_M])
{
    int ok = ref_parse(in, len, reg);
    if (!ok)
        memset(reg, 0, HLL_M);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t *rec;
    size_t len;
    if ((data[0] & 1) == 0) {
        len = size - 1;
        rec = malloc(len ? len : 1);
        if (rec == NULL)
            abort();
        if (len > 0)
            memcpy(rec, data + 1, len);
    } else {
        uint8_t ctl = size > 1 ? data[1] : 0;
        len = (size_t)((long)DENSE_LEN + ctl % 5 - 2);
        rec = malloc(len);
        if (rec == NULL)
            abort();
        rec[0] = 0x02;
        const uint8_t *fill = data + 2;
        size_t nfill = size > 2 ? size - 2 : 0;
        for (size_t i = 1; i < len; i++)
            rec[i] = nfill ? fill[(i - 1) % nfill] : 0;
        if (ctl & 0x80) {
            /* Clamp every 6-bit value to 51: whole groups of three bytes. */
            for (size_t g = 0; 1 + 3 * g + 2 < len; g++) {
                uint8_t *p = rec + 1 + 3 * g;
                uint32_t v = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16, out = 0;
                for (int j = 0; j < 4; j++) {
                    uint32_t r = v >> (6 * j) & 0x3f;
                    out |= (r > 51 ? 51 : r) << (6 * j);
                }
                p[0] = (uint8_t)out;
                p[1] = (uint8_t)(out >> 8);
                p[2] = (uint8_t)(out >> 16);
            }
        }
    }

    struct hll *h = malloc(sizeof(*h)), *m = malloc(sizeof(*m)), *before = malloc(sizeof(*before));
    uint8_t *ref = malloc(HLL_M), *enc = malloc(HLL_ENCODED_MAX);
    if (h == NULL || m == NULL || before == NULL || ref == NULL || enc == NULL)
        abort();
    memset(h->reg, 0x2a, HLL_M);
    int rc = hll_decode(rec, len, h);
    FUZZ_CHECK(rc == 0 || rc == PF_EINVAL);
    int ok = ref_decode(rec, len, ref);
    FUZZ_CHECK(ok == (rc == 0));
    FUZZ_CHECK(memcmp(h->reg, ref, HLL_M) == 0); /* all zero on error */

    /* Merge into a sketch with every value 0..51 in it (made once: the
     * target's speed is what finds bugs). */
    static struct hll filled;
    static int have_filled;
    if (!have_filled) {
        for (size_t i = 0; i < HLL_M; i++)
            filled.reg[i] = (uint8_t)(i * 7 % 52);
        have_filled = 1;
    }
    memcpy(before, &filled, sizeof(filled));
    memcpy(m, &filled, sizeof(filled));
    FUZZ_CHECK(hll_merge_encoded(m, rec, len) == rc);
    for (size_t i = 0; i < HLL_M; i++) {
        uint8_t want = rc == 0 && ref[i] > before->reg[i] ? ref[i] : before->reg[i];
        FUZZ_CHECK(m->reg[i] == want);
    }

    if (rc == 0) {
        size_t set = hll_count_set(h);
        for (size_t i = 0; i < HLL_M; i++)
            FUZZ_CHECK(h->reg[i] <= HLL_RANK_MAX);
        size_t elen = hll_encode(h, enc, HLL_ENCODED_MAX);
        FUZZ_CHECK(elen == (set <= 4095 ? 3 + 3 * set : (size_t)HLL_ENCODED_MAX));
        int canonical = (rec[0] == 0x01) == (set <= 4095);
        if (canonical)
            FUZZ_CHECK(elen == len && memcmp(enc, rec, len) == 0);
        FUZZ_CHECK(hll_decode(enc, elen, m) == 0);
        FUZZ_CHECK(memcmp(m->reg, h->reg, HLL_M) == 0);
        FUZZ_CHECK((hll_estimate(h) == 0) == (set == 0));
    }
    free(enc);
    free(ref);
    free(before);
    free(m);
    free(h);
    free(rec);
    return 0;
}
