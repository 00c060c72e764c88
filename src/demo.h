/* demo.h - `pixflare demo`: demo owners, albums and images drawn by the
 * program itself (no downloads), imported like any other images. */
#ifndef PF_DEMO_H
#define PF_DEMO_H

#include <stdint.h>
#include <stdio.h>

struct db;
struct storage;

/* Draw the demo images under `src_dir` (skipping ones already there) and
 * import them. Prints the import lines to `out`. */
int demo_run(struct db *db, struct storage *st, const char *src_dir, FILE *out, FILE *errs);

struct analytics;
struct catalog;

/* Make `days` days of plausible traffic (ending now) for every image in the
 * catalog, recorded through `an` as the server would. */
int demo_traffic(struct analytics *an, struct catalog *cat, int days, uint64_t seed,
                 uint64_t *events);

#endif
