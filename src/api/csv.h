/* csv.h - the text fields of the API's CSV answers (RFC 4180), one code
 * path for the overview, the image and the export: a field is quoted when
 * it holds a comma, quote or line break, and one that a spreadsheet would
 * take for a formula is defused (OWASP's advice on CSV injection). */
#ifndef PF_CSV_H
#define PF_CSV_H

#include "base/strbuf.h"

/* Append the NUL-terminated text field s to b. */
void csv_field(struct strbuf *b, const char *s);

#endif
