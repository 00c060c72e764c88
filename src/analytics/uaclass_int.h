/* uaclass_int.h - internal to the uaclass module: the crawler patterns that
 * scripts/uaclass_refresh.sh generates into uaclass_data.c (crawler-user-agents'
 * named crawlers, isbot's generic rules). */
#ifndef PF_UACLASS_INT_H
#define PF_UACLASS_INT_H

#include <stddef.h>

/* The npm packages' versions the patterns come from. */
extern const char uaclass_data_version[];
/* Its patterns (JavaScript regular expressions PCRE2 compiles unchanged). */
extern const char *const uaclass_data_patterns[];
extern const size_t uaclass_data_count;
/* isbot's generic rules, matched case-insensitively. */
extern const char *const uaclass_data_generic[];
extern const size_t uaclass_data_generic_count;

/* The Hyperscan database, compiled when the binary is built (tools/uaclass_db
 * writes it as C: $(BUILD)/gen/uaclass_db.c), because compiling it costs
 * about 0.4 s of CPU at every start (seconds under ASan). Weak: a program
 * linked without it (the tool itself, the fuzzers) compiles at start. The
 * database is made for the building CPU; one that does not load (another
 * CPU, another Hyperscan version) is compiled at start as well.
 * uaclass_db_confirm lists the prefiltered patterns, (list, index) in
 * the order their PCRE2 confirmations are made (see CONFIRM_ID). */
extern const unsigned char uaclass_db_bytes[] __attribute__((weak));
extern const size_t uaclass_db_len __attribute__((weak));
extern const unsigned short uaclass_db_confirm[][2] __attribute__((weak));
extern const size_t uaclass_db_nconfirm __attribute__((weak));

/* The tool's: compile the database for this CPU and serialize it. OUT: *bytes (free()), *len, and
 * the prefiltered patterns (confirm[i][0] the list, [1] the index; *nconfirm of them, at most 32).
 * Returns 0 or PF_EINVAL with the reason in err. */
int uaclass_db_export(char **bytes, size_t *len, unsigned short confirm[][2], size_t *nconfirm,
                      char *err, size_t errlen);

#endif
