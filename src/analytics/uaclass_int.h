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

#endif
