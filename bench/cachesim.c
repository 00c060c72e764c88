/* cachesim.c - hit ratios of eviction policies on a Zipf trace, to choose
 * the hot-object cache's policy (BENCHMARKS.md, "Hot-object cache").
 *
 *     cc -O2 -o cachesim bench/cachesim.c -lm
 *     cachesim [objects] [cache] [requests] [alpha...]
 *
 * Objects are of one size (the cache holds `cache` of them), keys are
 * drawn from a Zipf(alpha) law over `objects` keys, the first `requests`
 * warm the cache and the next `requests` are counted. Policies: LRU,
 * FIFO, CLOCK (one bit), SIEVE (NSDI'24) and S3-FIFO (SOSP'23: 10% small
 * FIFO, 90% main FIFO with 2-bit counters, a ghost FIFO of keys). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* ---- a doubly linked list over key indices, head = newest ---- */
struct dl {
    int *prev, *next, head, tail, n;
};
static void dl_init(struct dl *l, int cap)
{
    l->prev = malloc(sizeof(int) * cap);
    l->next = malloc(sizeof(int) * cap);
    l->head = l->tail = -1;
    l->n = 0;
}
static void dl_push(struct dl *l, int k)
{
    l->prev[k] = -1;
    l->next[k] = l->head;
    if (l->head >= 0)
        l->prev[l->head] = k;
    l->head = k;
    if (l->tail < 0)
        l->tail = k;
    l->n++;
}
static void dl_del(struct dl *l, int k)
{
    if (l->prev[k] >= 0)
        l->next[l->prev[k]] = l->next[k];
    else
        l->head = l->next[k];
    if (l->next[k] >= 0)
        l->prev[l->next[k]] = l->prev[k];
    else
        l->tail = l->prev[k];
    l->n--;
}

enum { LRU, FIFO, CLOCK, SIEVE, S3FIFO, NPOL };
static const char *names[] = {"LRU", "FIFO", "CLOCK", "SIEVE", "S3-FIFO"};

static double run(int pol, const int *trace, long nreq, int nobj, int cap)
{
    struct dl q, s, m, g;
    char *in = calloc(nobj, 1), *bit = calloc(nobj, 1), *where = calloc(nobj, 1);
    int *ring = malloc(sizeof(int) * cap), hand = 0, used = 0;
    long hits = 0;
    dl_init(&q, nobj);
    dl_init(&s, nobj);
    dl_init(&m, nobj);
    dl_init(&g, nobj);
    int sieve_hand = -1, scap = cap / 10 > 0 ? cap / 10 : 1;
    for (long i = 0; i < 2 * nreq; i++) {
        int k = trace[i], hit = 0;
        switch (pol) {
        case LRU:
        case FIFO:
            if (in[k]) {
                hit = 1;
                if (pol == LRU) {
                    dl_del(&q, k);
                    dl_push(&q, k);
                }
                break;
            }
            if (q.n == cap) {
                int v = q.tail;
                dl_del(&q, v);
                in[v] = 0;
            }
            dl_push(&q, k);
            in[k] = 1;
            break;
        case CLOCK: /* a ring of cap entries, the hand clears bits */
            if (in[k]) {
                hit = 1;
                bit[k] = 1;
                break;
            }
            if (used < cap) {
                ring[used++] = k;
            } else {
                while (bit[ring[hand]]) {
                    bit[ring[hand]] = 0;
                    hand = (hand + 1) % cap;
                }
                in[ring[hand]] = 0;
                ring[hand] = k;
                hand = (hand + 1) % cap;
            }
            in[k] = 1;
            bit[k] = 0;
            break;
        case SIEVE: /* new at head; the hand walks tail to head */
            if (in[k]) {
                hit = 1;
                bit[k] = 1;
                break;
            }
            if (q.n == cap) {
                int h = sieve_hand >= 0 ? sieve_hand : q.tail;
                while (bit[h]) {
                    bit[h] = 0;
                    h = q.prev[h] >= 0 ? q.prev[h] : q.tail;
                }
                sieve_hand = q.prev[h];
                dl_del(&q, h);
                in[h] = 0;
            }
            dl_push(&q, k);
            in[k] = 1;
            bit[k] = 0;
            break;
        case S3FIFO: /* where: 1 small, 2 main, 3 ghost; bit: 0..3 */
            if (where[k] == 1 || where[k] == 2) {
                hit = 1;
                if (bit[k] < 3)
                    bit[k]++;
                break;
            }
            while (s.n + m.n >= cap) {
                if (s.n >= scap || m.n == 0) {
                    int v = s.tail;
                    dl_del(&s, v);
                    if (bit[v] >= 1) {
                        where[v] = 2;
                        bit[v] = 0;
                        dl_push(&m, v);
                    } else {
                        where[v] = 3;
                        dl_push(&g, v);
                        if (g.n > cap - scap) {
                            int o = g.tail;
                            dl_del(&g, o);
                            where[o] = 0;
                        }
                    }
                } else {
                    int v = m.tail;
                    dl_del(&m, v);
                    if (bit[v] > 0) {
                        bit[v]--;
                        dl_push(&m, v);
                    } else {
                        where[v] = 0;
                    }
                }
            }
            if (where[k] == 3) {
                dl_del(&g, k);
                where[k] = 2;
                dl_push(&m, k);
            } else {
                where[k] = 1;
                dl_push(&s, k);
            }
            bit[k] = 0;
            break;
        }
        if (i >= nreq)
            hits += hit;
    }
    free(in);
    free(bit);
    free(where);
    free(ring);
    free(q.prev), free(q.next), free(s.prev), free(s.next);
    free(m.prev), free(m.next), free(g.prev), free(g.next);
    return (double)hits / (double)nreq;
}

int main(int argc, char **argv)
{
    int nobj = argc > 1 ? atoi(argv[1]) : 10000;
    int cap = argc > 2 ? atoi(argv[2]) : 1000;
    long nreq = argc > 3 ? atol(argv[3]) : 2000000;
    double def[] = {0.8, 0.9, 1.0};
    int nalpha = argc > 4 ? argc - 4 : 3;
    double *cdf = malloc(sizeof(double) * nobj);
    int *trace = malloc(sizeof(int) * 2 * nreq), *perm = malloc(sizeof(int) * nobj);
    for (int i = 0; i < nobj; i++)
        perm[i] = i;
    for (int i = nobj - 1; i > 0; i--) { /* ranks land on random keys */
        int j = (int)(uniform() * (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    printf("objects %d, cache %d objects, %ld requests counted after %ld of warm-up\n", nobj, cap,
           nreq, nreq);
    printf("%-6s", "alpha");
    for (int p = 0; p < NPOL; p++)
        printf(" %8s", names[p]);
    printf("\n");
    for (int a = 0; a < nalpha; a++) {
        double alpha = argc > 4 ? atof(argv[4 + a]) : def[a], sum = 0;
        for (int i = 0; i < nobj; i++)
            cdf[i] = (sum += 1.0 / pow(i + 1, alpha));
        for (long i = 0; i < 2 * nreq; i++) {
            double u = uniform() * sum;
            int lo = 0, hi = nobj - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (cdf[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            trace[i] = perm[lo];
        }
        printf("%-6.2f", alpha);
        for (int p = 0; p < NPOL; p++)
            printf(" %7.2f%%", 100.0 * run(p, trace, nreq, nobj, cap));
        printf("\n");
    }
    free(cdf);
    free(trace);
    free(perm);
    return 0;
}
