/* bench/siphash_bench.c - why the client hash is hand-written: per-call cost
 * of base/siphash.c against OpenSSL 3, and what the sketch operations cost.
 *
 * Linked with the library objects like the other C benchmarks: `make
 * BUILD=build build/siphash_bench`, then
 *
 *   siphash_bench [-n CALLS] [-r REPS]
 *
 * Every hash runs CALLS times (default 2,000,000) over a 120-byte input (an
 * IPv4 address and a browser's user agent, the input the server will hash),
 * whose first 4 bytes change each call so nothing can be hoisted out of the
 * loop; REPS rounds (default 5), each timing every variant in turn, best
 * and median ns/call printed. Times are the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID), so that other load on the machine counts less. Each
 * OpenSSL variant is checked first to give siphash_24()'s exact output (and
 * HMAC to give OpenSSL's one-shot HMAC()), or the benchmark exits 1.
 *
 *   siphash_24()                    base/siphash.c
 *   EVP_MAC SIPHASH, init(key)     one EVP_MAC_CTX per thread, EVP_MAC_init
 *                                  with the key, update, final, every call
 *   EVP_MAC SIPHASH, init(NULL)    the same context keyed once; per call
 *                                  EVP_MAC_init(ctx, NULL, 0, NULL) (OpenSSL
 *                                  3 restores the keyed state), update, final:
 *                                  the cheapest use OpenSSL allows
 *   EVP_MAC SIPHASH, dup           EVP_MAC_CTX_dup of a context keyed once
 *                                  (and never used), update, final, free,
 *                                  every call
 *   EVP_MAC HMAC-SHA256, init(NULL) as init(NULL) above, HMAC with SHA-256
 *   HMAC() one-shot                as base/keyhash.c calls it
 *
 * then the sketch (base/hll.h): hll_add() of precomputed hashes into a
 * 16 KiB sketch, hll_merge(), hll_estimate(), hll_encode() and hll_decode()
 * of a dense sketch. Output: a Markdown table on stdout. */
#include "base/hll.h"
#include "base/siphash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INPUT_LEN 120
#define MAX_REPS 15

enum variant { V_SIP, V_EVP_KEY, V_EVP_NULL, V_EVP_DUP, V_HMAC_EVP, V_HMAC_ONESHOT, V_COUNT };

static const char *const variant_name[V_COUNT] = {
    "`siphash_24()` (base/siphash.c)",
    "OpenSSL EVP_MAC SIPHASH, `EVP_MAC_init(ctx, key)` + update + final",
    "OpenSSL EVP_MAC SIPHASH, `EVP_MAC_init(ctx, NULL)` on a keyed ctx + update + final",
    "OpenSSL EVP_MAC SIPHASH, `EVP_MAC_CTX_dup` of a keyed ctx + update + final + free",
    "OpenSSL EVP_MAC HMAC-SHA256, `EVP_MAC_init(ctx, NULL)` + update + final",
    "OpenSSL `HMAC(EVP_sha256(), ...)` one-shot (as base/keyhash.c)",
};

static uint8_t key[SIPHASH_KEY_LEN];
static uint8_t input[INPUT_LEN];
static EVP_MAC *sip_mac, *hmac_mac;
/* sip_template is keyed once and never used: EVP_MAC_CTX_dup copies a
 * context's current state, so a used one would not do. */
static EVP_MAC_CTX *sip_ctx, *sip_keyed, *sip_template, *hmac_ctx;
static OSSL_PARAM sip_params[2], hmac_params[2];
static size_t sip_size = 8;
static char digest_name[] = "SHA256";

static void die(const char *what)
{
    fprintf(stderr, "siphash_bench: %s\n", what);
    exit(1);
}

/* The thread's CPU time: on a shared machine, time spent descheduled is
 * not the hash's. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* One call of a variant on input; returns 8 bytes of its output. */
static uint64_t one(enum variant v)
{
    uint8_t out[EVP_MAX_MD_SIZE];
    size_t len = 0;
    unsigned int ulen = 0;
    EVP_MAC_CTX *c;
    switch (v) {
    case V_SIP:
        return siphash_24(key, input, INPUT_LEN);
    case V_EVP_KEY:
        if (EVP_MAC_init(sip_ctx, key, sizeof(key), sip_params) != 1 ||
            EVP_MAC_update(sip_ctx, input, INPUT_LEN) != 1 ||
            EVP_MAC_final(sip_ctx, out, &len, sizeof(out)) != 1)
            die("EVP_MAC SIPHASH failed");
        return le64(out);
    case V_EVP_NULL:
        if (EVP_MAC_init(sip_keyed, NULL, 0, NULL) != 1 ||
            EVP_MAC_update(sip_keyed, input, INPUT_LEN) != 1 ||
            EVP_MAC_final(sip_keyed, out, &len, sizeof(out)) != 1)
            die("EVP_MAC SIPHASH (init NULL) failed");
        return le64(out);
    case V_EVP_DUP:
        c = EVP_MAC_CTX_dup(sip_template);
        if (c == NULL || EVP_MAC_update(c, input, INPUT_LEN) != 1 ||
            EVP_MAC_final(c, out, &len, sizeof(out)) != 1)
            die("EVP_MAC SIPHASH (dup) failed");
        EVP_MAC_CTX_free(c);
        return le64(out);
    case V_HMAC_EVP:
        if (EVP_MAC_init(hmac_ctx, NULL, 0, NULL) != 1 ||
            EVP_MAC_update(hmac_ctx, input, INPUT_LEN) != 1 ||
            EVP_MAC_final(hmac_ctx, out, &len, sizeof(out)) != 1)
            die("EVP_MAC HMAC failed");
        return le64(out);
    case V_HMAC_ONESHOT:
        if (HMAC(EVP_sha256(), key, sizeof(key), input, INPUT_LEN, out, &ulen) == NULL)
            die("HMAC failed");
        return le64(out);
    default:
        return 0;
    }
}

static void setup(void)
{
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(0xa5 ^ (i * 7));
    /* An address and a user agent, cut to INPUT_LEN bytes. */
    const char *text = "203.0.113.77\nMozilla/5.0 (Windows NT 10.0; Win64; x64) "
                       "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    if (strlen(text) < INPUT_LEN)
        die("input shorter than INPUT_LEN");
    memcpy(input, text, INPUT_LEN);

    sip_params[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &sip_size);
    sip_params[1] = OSSL_PARAM_construct_end();
    hmac_params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0);
    hmac_params[1] = OSSL_PARAM_construct_end();
    sip_mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (sip_mac == NULL || hmac_mac == NULL)
        die("EVP_MAC_fetch failed");
    sip_ctx = EVP_MAC_CTX_new(sip_mac);
    sip_keyed = EVP_MAC_CTX_new(sip_mac);
    sip_template = EVP_MAC_CTX_new(sip_mac);
    hmac_ctx = EVP_MAC_CTX_new(hmac_mac);
    if (sip_ctx == NULL || sip_keyed == NULL || sip_template == NULL || hmac_ctx == NULL ||
        EVP_MAC_init(sip_keyed, key, sizeof(key), sip_params) != 1 ||
        EVP_MAC_init(sip_template, key, sizeof(key), sip_params) != 1 ||
        EVP_MAC_init(hmac_ctx, key, sizeof(key), hmac_params) != 1)
        die("EVP_MAC setup failed");

    /* Same answers, on several inputs, before any timing. */
    for (int t = 0; t < 4; t++) {
        input[0] = (uint8_t)('0' + t);
        uint64_t want = siphash_24(key, input, INPUT_LEN);
        for (enum variant v = V_EVP_KEY; v <= V_EVP_DUP; v++)
            if (one(v) != want)
                die("an OpenSSL SipHash variant disagrees with siphash_24()");
        if (one(V_HMAC_EVP) != one(V_HMAC_ONESHOT))
            die("EVP_MAC HMAC disagrees with HMAC()");
    }
    memcpy(input, text, 4);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static volatile uint64_t sink;

static void report(const char *name, double *ns, int reps)
{
    qsort(ns, (size_t)reps, sizeof(double), cmp_double);
    printf("| %s | %.1f | %.1f |\n", name, ns[0], ns[reps / 2]);
}

int main(int argc, char **argv)
{
    long calls = 2000000;
    int reps = 5, opt;
    while ((opt = getopt(argc, argv, "n:r:")) != -1) {
        if (opt == 'n')
            calls = atol(optarg);
        else if (opt == 'r')
            reps = atoi(optarg);
        else
            die("usage: siphash_bench [-n CALLS] [-r REPS]");
    }
    if (calls < 1000 || reps < 1 || reps > MAX_REPS)
        die("CALLS >= 1000 and 1 <= REPS <= 15");
    setup();

    printf("| operation (%d-byte input, %ld calls) | ns/call best | ns/call median |\n", INPUT_LEN,
           calls);
    printf("| --- | ---: | ---: |\n");
    /* Round-robin: each round times every variant once, so a busy moment
     * of the machine falls on all of them alike. */
    double vns[V_COUNT][MAX_REPS], ns[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        for (enum variant v = V_SIP; v < V_COUNT; v++) {
            long n = v == V_SIP ? calls : calls / 4; /* OpenSSL's are slow: fewer */
            uint64_t acc = 0;
            double t0 = now_ns();
            for (long i = 0; i < n; i++) {
                uint32_t c = (uint32_t)i;
                memcpy(input, &c, 4);
                acc ^= one(v);
            }
            vns[v][r] = (now_ns() - t0) / (double)n;
            sink = acc;
        }
    }
    for (enum variant v = V_SIP; v < V_COUNT; v++)
        report(variant_name[v], vns[v], reps);

    /* The sketch: hashes precomputed, so this is hll_add alone. */
    size_t nh = 1u << 20;
    uint64_t *hashes = malloc(nh * sizeof(*hashes));
    struct hll *h = malloc(sizeof(*h)), *h2 = malloc(sizeof(*h2));
    uint8_t *enc = malloc(HLL_ENCODED_MAX);
    if (hashes == NULL || h == NULL || h2 == NULL || enc == NULL)
        die("out of memory");
    for (size_t i = 0; i < nh; i++) {
        uint32_t c = (uint32_t)i;
        memcpy(input, &c, 4);
        hashes[i] = siphash_24(key, input, INPUT_LEN);
    }
    for (int r = 0; r < reps; r++) {
        hll_clear(h);
        double t0 = now_ns();
        for (size_t i = 0; i < nh; i++)
            hll_add(h, hashes[i]);
        ns[r] = (now_ns() - t0) / (double)nh;
        sink = h->reg[hashes[0] >> HLL_Q];
    }
    report("`hll_add()` (precomputed hashes, one 16 KiB sketch)", ns, reps);
    memcpy(h2, h, sizeof(*h));
    long ops = 20000;
    struct {
        const char *name;
        int op;
    } sk[] = {{"`hll_merge()` (16,384 registers)", 0},
              {"`hll_estimate()`", 1},
              {"`hll_encode()` (dense, 12,289 bytes)", 2},
              {"`hll_decode()` (dense)", 3}};
    size_t elen = hll_encode(h, enc, HLL_ENCODED_MAX);
    for (size_t k = 0; k < sizeof(sk) / sizeof(sk[0]); k++) {
        for (int r = 0; r < reps; r++) {
            uint64_t acc = 0;
            double t0 = now_ns();
            for (long i = 0; i < ops; i++) {
                if (sk[k].op == 0) {
                    h->reg[i & (HLL_M - 1)] = 0;
                    hll_merge(h, h2);
                    acc += h->reg[7];
                } else if (sk[k].op == 1) {
                    h->reg[i & (HLL_M - 1)] ^= 1;
                    acc += hll_estimate(h);
                } else if (sk[k].op == 2) {
                    acc += hll_encode(h, enc, HLL_ENCODED_MAX);
                } else if (hll_decode(enc, elen, h2) == 0) {
                    acc += h2->reg[i & (HLL_M - 1)];
                }
            }
            ns[r] = (now_ns() - t0) / (double)ops;
            sink = acc;
        }
        report(sk[k].name, ns, reps);
    }

    free(enc);
    free(h2);
    free(h);
    free(hashes);
    EVP_MAC_CTX_free(hmac_ctx);
    EVP_MAC_CTX_free(sip_template);
    EVP_MAC_CTX_free(sip_keyed);
    EVP_MAC_CTX_free(sip_ctx);
    EVP_MAC_free(hmac_mac);
    EVP_MAC_free(sip_mac);
    return 0;
}
