/* variant.h - the preset image variants of SPEC.md's CDN route.
 *
 * `original` is the stored file itself. `wN` scales down to at most N pixels
 * wide keeping the aspect ratio (never up). `thumb` and `og-image` cover an
 * exact box: scaled (up if need be) and centre-cropped. The table is static
 * data; nothing here allocates. */
#ifndef PF_VARIANT_H
#define PF_VARIANT_H

#include <stddef.h>

enum variant_mode { VARIANT_ORIGINAL, VARIANT_WIDTH, VARIANT_COVER };

struct variant {
    const char *name;
    enum variant_mode mode;
    int width, height; /* height only for VARIANT_COVER */
};

#define VARIANT_COUNT 9
#define VARIANT_ORIGINAL_INDEX 0

/* The table, index 0 being `original`. */
extern const struct variant variant_table[VARIANT_COUNT];

/* Index of the variant named by the first `len` bytes of `name`, or -1. */
int variant_find(const char *name, size_t len);

#endif
