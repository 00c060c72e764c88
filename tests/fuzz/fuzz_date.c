/* fuzz_date.c - fuzzes timeutil_parse_iso8601() and timeutil_format_iso8601() (src/timeutil.c).
 *
 * The input is copied into an exactly sized NUL-terminated string (ASan
 * catches reads past the terminator). Invariants checked:
 *  - timeutil_parse_iso8601 returns 0 or PF_EINVAL;
 *  - on success the time lies in 1970..9999, and timeutil_format_iso8601 prints a
 *    20-character "YYYY-MM-DDTHH:MM:SSZ" that parses back to the same value;
 *  - the printed date, hour and minute (and second, when given) equal the
 *    ones in the input: accepted dates are real calendar dates, never
 *    normalised ones such as 2023-02-29 becoming March 1st;
 *  - the same print/parse round trip holds for a time taken from the first
 *    8 input bytes, reduced into 1970..9999. */
#include "base/err.h"
#include "fuzz_check.h"
#include "base/timeutil.h"

/* 10000-01-01T00:00:00Z: the first instant four year digits cannot print. */
#define YEAR_10000 INT64_C(253402300800)

static void check_roundtrip(int64_t t)
{
    char text[21];
    int64_t back = -1;
    timeutil_format_iso8601(t, text);
    FUZZ_CHECK(strlen(text) == 20);
    FUZZ_CHECK(text[4] == '-' && text[7] == '-' && text[10] == 'T' && text[19] == 'Z');
    FUZZ_CHECK(timeutil_parse_iso8601(text, &back) == 0);
    FUZZ_CHECK(back == t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    int64_t t = -1;
    int rc = timeutil_parse_iso8601(s, &t);
    FUZZ_CHECK(rc == 0 || rc == PF_EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(t >= 0 && t < YEAR_10000);
        check_roundtrip(t);
        char text[21];
        timeutil_format_iso8601(t, text);
        size_t n = strlen(s);
        if (n > 0 && s[n - 1] == 'Z')
            n--;
        FUZZ_CHECK(n == 10 || n == 16 || n == 19);
        FUZZ_CHECK(memcmp(text, s, 10) == 0);
        if (n >= 16)
            FUZZ_CHECK(memcmp(text + 11, s + 11, 5) == 0);
        else
            FUZZ_CHECK(memcmp(text + 11, "00:00", 5) == 0);
        if (n == 19)
            FUZZ_CHECK(memcmp(text + 17, s + 17, 2) == 0);
        else
            FUZZ_CHECK(memcmp(text + 17, "00", 2) == 0);
    }
    check_roundtrip((int64_t)(fuzz_u64(data, size) % (uint64_t)YEAR_10000));
    free(s);
    return 0;
}
