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

struct catalog;
struct event_sink;

/* Make `days` days of plausible traffic (ending now) for every image in the
 * catalog, emitted to `sink` as the server would. */
int demo_traffic(const struct event_sink *sink, struct catalog *cat, int days, uint64_t seed,
                 uint64_t *events);

/* The demo owners' API keys (read scope), kept in `path` (mode 0600) so
 * that running the demo again shows the same keys while they work; a key
 * revoked or lost is replaced. OUT: owners[i] and keys[i] (static names,
 * key text), *n. */
#define DEMO_OWNERS 2
int demo_keys(struct db *db, const char *secret, const char *path, const char *owners[DEMO_OWNERS],
              char keys[DEMO_OWNERS][64], int *n);

#endif
