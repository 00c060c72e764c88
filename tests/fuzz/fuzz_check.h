/* fuzz_check.h - helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * FUZZ_CHECK aborts with the failed condition so that libFuzzer records the
 * input as a crash; unlike assert() it is never compiled out. fuzz_cstr()
 * copies the fuzzer's bytes into an exactly sized, NUL-terminated heap
 * string, so AddressSanitizer catches a parser that reads one byte past the
 * terminator. The caller frees it. */
#ifndef PF_FUZZ_CHECK_H
#define PF_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* NUL-terminated copy of data[0..size). Aborts on allocation failure. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Little-endian integer from up to 8 bytes (missing bytes read as zero). */
static inline uint64_t fuzz_u64(const uint8_t *data, size_t size)
{
    uint64_t v = 0;
    for (size_t i = 0; i < size && i < 8; i++)
        v |= (uint64_t)data[i] << (8 * i);
    return v;
}

#endif
