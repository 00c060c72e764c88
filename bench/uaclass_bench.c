/* uaclass_bench.c - nanoseconds per uaclass_of() call (src/analytics/uaclass.c)
 * for six user agents, each answered by the per-thread cache (the same
 * string again) and by the full match (a distinct string every call, so the
 * cache never answers; the strings are made before the clock starts). The
 * distinct strings carry a counter where it changes no class: at the end,
 * or over bytes 8 to 15 of the two that fill UACLASS_MATCH_MAX (512 bytes,
 * all matched: the most a client can make us read), which start "Mozilla/":
 *   random512   random words of letters, digits and punctuation (a human);
 *   adversary   " cubot camscan libhttp java; googlewv" over and over: every
 *               prefilter of isbot's lookaround rules matches, all along the
 *               string, and PCRE2 must confirm each and find none true.
 * Uses the engine uaclass_init() chose; PIXFLARE_UACLASS_PCRE=1 forces PCRE2.
 *
 *   make BUILD=build bench-uaclass      (or build/uaclass_bench [ROUNDS])
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so time slices
 * other processes take are not counted; each figure is the best of ROUNDS
 * runs (default 5), as the machine's other load (caches, frequency) only
 * ever adds time. */
#include "analytics/uaclass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N = 200000, LEN = UACLASS_MATCH_MAX + 1 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static char random_ua[LEN], adversary[LEN];
    static const char *uas[][2] = {
        {"Chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                   "Gecko) Chrome/131.0.0.0 Safari/537.36"},
        {"Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
        {"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"Slackbot", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
        {"random512", random_ua},
        {"adversary", adversary},
    };
    int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5;
    if (rounds < 1)
        rounds = 1;
    /* Fixed seed: the same bytes each run. */
    /* No ',' and no ')': isbot has rules for "()" and for "word word," at
     * the start. */
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "(/.;:+-_";
    srand(1);
    for (size_t i = 0; i < UACLASS_MATCH_MAX; i++)
        random_ua[i] = rand() % 7 == 0 ? ' ' : chars[rand() % (int)(sizeof chars - 1)];
    memcpy(random_ua, "Mozilla/", 8);
    /* After "Mozilla/" and 8 bytes for the counter; each "bot" follows
     * " cu". */
    static const char unit[] = " cubot camscan libhttp java; googlewv";
    memset(adversary, 'x', 16);
    memcpy(adversary, "Mozilla/", 8);
    for (size_t i = 16; i < UACLASS_MATCH_MAX; i++)
        adversary[i] = unit[(i - 16) % (sizeof unit - 1)];
    char err[256];
    if (uaclass_init(err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int pcre = strncmp(uaclass_engine(), "pcre2", 5) == 0;
    size_t m = pcre ? 300 : 20000;
    char *many = malloc(m * (LEN + 32));
    if (many == NULL)
        return 1;
    printf("engine %s, best of %d rounds, %zu distinct strings a round\n", uaclass_engine(), rounds,
           m);
    unsigned sink = 0;
    for (size_t u = 0; u < sizeof uas / sizeof uas[0]; u++) {
        double cached = 1e300, full = 1e300;
        for (int r = 0; r < rounds; r++) {
            for (size_t i = 0; i < m; i++) {
                char *s = many + i * (LEN + 32);
                if (strlen(uas[u][1]) >= UACLASS_MATCH_MAX) {
                    memcpy(s, uas[u][1], LEN);
                    char num[24];
                    int k = snprintf(num, sizeof num, "%d.%zu", r, i);
                    memcpy(s + 8, num, (size_t)k);
                } else {
                    snprintf(s, LEN + 32, "%s %d.%zu", uas[u][1], r, i);
                }
            }
            double t0 = now();
            for (int i = 0; i < N; i++)
                sink += uaclass_of(uas[u][1]);
            double t = (now() - t0) / N;
            cached = t < cached ? t : cached;
            t0 = now();
            for (size_t i = 0; i < m; i++)
                sink += uaclass_of(many + i * (LEN + 32));
            t = (now() - t0) / (double)m;
            full = t < full ? t : full;
        }
        printf("%-10s %-7s cached %6.0f ns/call   full match %9.0f ns/call\n", uas[u][0],
               uaclass_name(uaclass_of(uas[u][1])), cached, full);
    }
    free(many);
    uaclass_free();
    return sink == 0xFFFFFFFF;
}
