/* uaclass_bench.c - nanoseconds per uaclass_of() call (src/analytics/uaclass.c)
 * for five user agents, each answered by the per-thread cache (the same
 * string again) and by the full match (a distinct string every call, made by
 * a counter in the user agent, so the cache never answers). The last is 512
 * random printable bytes (UACLASS_MATCH_MAX, all of it matched), the worst a
 * client can send. With the engine uaclass_init() chose; run it with
 * PIXFLARE_UACLASS_PCRE=1 for the PCRE2 one.
 *
 *   make BUILD=build bench-uaclass      (or build/uaclass_bench [ROUNDS])
 *
 * Each figure is the best of ROUNDS runs (default 5): the machine's other
 * load only ever adds time. */
#include "analytics/uaclass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static char random_ua[UACLASS_MATCH_MAX + 1];
    static const char *uas[][2] = {
        {"Chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                   "Gecko) Chrome/131.0.0.0 Safari/537.36"},
        {"Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
        {"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"Slackbot", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
        {"random512", random_ua},
    };
    int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5;
    if (rounds < 1)
        rounds = 1;
    /* Fixed seed: the same bytes each run. Printable ASCII but no '|' or
     * ' ' (isbot has a rule for each), so the string is a human's and the
     * scan cannot stop early; the counter goes over its first bytes. */
    srand(1);
    for (size_t i = 0; i < UACLASS_MATCH_MAX; i++) {
        char c;
        do
            c = (char)(33 + rand() % 94);
        while (c == '|');
        random_ua[i] = c;
    }
    char err[256];
    if (uaclass_init(err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("engine %s, best of %d rounds\n", uaclass_engine(), rounds);
    enum { N = 200000 };
    int m = strncmp(uaclass_engine(), "pcre2", 5) == 0 ? 500 : 100000;
    unsigned sink = 0;
    static char buf[UACLASS_MATCH_MAX + 32];
    for (size_t u = 0; u < sizeof uas / sizeof uas[0]; u++) {
        double cached = 1e300, full = 1e300;
        for (int r = 0; r < rounds; r++) {
            double t0 = now();
            for (int i = 0; i < N; i++)
                sink += uaclass_of(uas[u][1]);
            double t = (now() - t0) / N;
            cached = t < cached ? t : cached;
            t0 = now();
            for (int i = 0; i < m; i++) {
                /* The counter goes where it changes no class: at the end,
                 * or over the random string's first bytes. */
                if (u == 4) {
                    memcpy(buf, random_ua, sizeof random_ua);
                    char num[16];
                    int k = snprintf(num, sizeof num, "%d%d", r, i);
                    memcpy(buf, num, (size_t)k);
                } else {
                    snprintf(buf, sizeof buf, "%s %d.%d", uas[u][1], r, i);
                }
                sink += uaclass_of(buf);
            }
            t = (now() - t0) / m;
            full = t < full ? t : full;
        }
        printf("%-10s %-7s cached %6.0f ns/call   full match %9.0f ns/call\n", uas[u][0],
               uaclass_name(uaclass_of(uas[u][1])), cached, full);
    }
    uaclass_free();
    return sink == 0xFFFFFFFF;
}
