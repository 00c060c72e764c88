/* demo.h - `pixflare demo`: demo owners, albums and images drawn by the
 * program itself (no downloads), imported like any other images. */
#ifndef PF_DEMO_H
#define PF_DEMO_H

#include <stdio.h>

struct db;
struct storage;

/* Draw the demo images under `src_dir` (skipping ones already there) and
 * import them. Prints the import lines to `out`. */
int demo_run(struct db *db, struct storage *st, const char *src_dir, FILE *out, FILE *errs);

#endif
