/* progress.h - progress of a long command on stderr: on a terminal, one bar
 * redrawn in place (at most ten times a second); otherwise, for logs and
 * pipes, one plain line per step. Other output to the same terminal calls
 * progress_clear() first, so that the bar never garbles it. */
#ifndef PF_PROGRESS_H
#define PF_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

struct progress {
    FILE *out;
    int tty;
    const char *label;
    uint64_t total;
    int drawn;        /* a bar is on screen */
    int64_t start_ms; /* monotonic */
    int64_t last_ms;
};

void progress_begin(struct progress *p, FILE *out, const char *label, uint64_t total);

/* `done` of `total` steps are finished; `note` (may be NULL) names the last. */
void progress_update(struct progress *p, uint64_t done, const char *note);

/* Erase the bar (terminal only) before printing something else. */
void progress_clear(struct progress *p);

/* Leave the last bar on screen, ended by a newline. */
void progress_end(struct progress *p);

#endif
