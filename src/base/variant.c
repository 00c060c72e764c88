/* variant.c - see variant.h. */
#include "base/variant.h"

#include <string.h>

const struct variant variant_table[VARIANT_COUNT] = {
    {"original", VARIANT_ORIGINAL, 0, 0},   {"w128", VARIANT_WIDTH, 128, 0},
    {"w256", VARIANT_WIDTH, 256, 0},        {"w512", VARIANT_WIDTH, 512, 0},
    {"w1024", VARIANT_WIDTH, 1024, 0},      {"w1536", VARIANT_WIDTH, 1536, 0},
    {"w2048", VARIANT_WIDTH, 2048, 0},      {"thumb", VARIANT_COVER, 128, 128},
    {"og-image", VARIANT_COVER, 1200, 630},
};

int variant_find(const char *name, size_t len)
{
    for (int i = 0; i < VARIANT_COUNT; i++)
        if (strlen(variant_table[i].name) == len && memcmp(variant_table[i].name, name, len) == 0)
            return i;
    return -1;
}
