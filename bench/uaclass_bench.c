/* uaclass_bench.c - nanoseconds per uaclass_of() call (src/analytics/uaclass.c):
 * for three typical user agents, each answered by the per-thread cache (the
 * same string again) and by the full match (a distinct string every call,
 * made by a counter in the user agent, so the cache never answers). */
#include "analytics/uaclass.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
    static const char *const uas[][2] = {
        {"Chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                   "Gecko) Chrome/131.0.0.0 Safari/537.36"},
        {"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"Slackbot", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
    };
    char err[256];
    if (uaclass_init(err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    enum { N = 200000, M = 20000 };
    unsigned sink = 0;
    for (size_t u = 0; u < sizeof uas / sizeof uas[0]; u++) {
        double t0 = now();
        for (int i = 0; i < N; i++)
            sink += uaclass_of(uas[u][1]);
        double cached = (now() - t0) / N;
        char buf[512];
        t0 = now();
        for (int i = 0; i < M; i++) {
            /* The counter goes where it changes no class: before the end. */
            snprintf(buf, sizeof buf, "%s %d", uas[u][1], i);
            sink += uaclass_of(buf);
        }
        double full = (now() - t0) / M;
        printf("%-10s %-7s cached %6.0f ns/call   full match %7.0f ns/call\n", uas[u][0],
               uaclass_name(uaclass_of(uas[u][1])), cached, full);
    }
    uaclass_free();
    return sink == 0xFFFFFFFF;
}
