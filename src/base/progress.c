/* progress.c - see progress.h. */
#include "base/progress.h"

#include "base/timeutil.h"

#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 30

void progress_begin(struct progress *p, FILE *out, const char *label, uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->out = out;
    p->tty = isatty(fileno(out));
    p->label = label;
    p->total = total;
    p->start_ms = p->last_ms = timeutil_mono_ms();
}

void progress_update(struct progress *p, uint64_t done, const char *note)
{
    int64_t now = timeutil_mono_ms(), elapsed = now - p->start_ms;
    if (!p->tty) {
        fprintf(p->out, "%s: %llu/%llu%s%s\n", p->label, (unsigned long long)done,
                (unsigned long long)p->total, note ? " " : "", note ? note : "");
        fflush(p->out);
        return;
    }
    if (done < p->total && now - p->last_ms < 100 && p->drawn)
        return;
    p->last_ms = now;
    char bar[BAR_WIDTH + 1];
    size_t fill = p->total ? (size_t)(done * BAR_WIDTH / p->total) : BAR_WIDTH;
    memset(bar, '#', fill);
    memset(bar + fill, '-', BAR_WIDTH - fill);
    bar[BAR_WIDTH] = '\0';
    fprintf(p->out, "\r\033[K%s [%s] %llu/%llu", p->label, bar, (unsigned long long)done,
            (unsigned long long)p->total);
    if (note != NULL)
        fprintf(p->out, " %s", note);
    if (done > 0 && done < p->total) {
        int64_t left = elapsed * (int64_t)(p->total - done) / (int64_t)done / 1000;
        fprintf(p->out, " (about %llds left)", (long long)left);
    }
    fflush(p->out);
    p->drawn = 1;
}

void progress_clear(struct progress *p)
{
    if (p->tty && p->drawn) {
        fputs("\r\033[K", p->out);
        fflush(p->out);
        p->drawn = 0;
    }
}

void progress_end(struct progress *p)
{
    if (p->tty && p->drawn) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    p->drawn = 0;
}
