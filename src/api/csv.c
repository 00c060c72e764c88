/* csv.c - see csv.h. */
#include "api/csv.h"

#include <string.h>

/* Quoted when it holds a comma, quote or line break; and a leading = + - @
 * (or tab, CR) gets a ' before it, so that a spreadsheet shows a file named
 * "=cmd|..." rather than running it. */
void csv_field(struct strbuf *b, const char *s)
{
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        strbuf_puts(b, "\"");
    if (strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0')
        strbuf_puts(b, "'");
    for (const char *p = s; *p; p++) {
        strbuf_put(b, p, 1);
        if (*p == '"') /* doubled inside quotes */
            strbuf_puts(b, "\"");
    }
    if (quote)
        strbuf_puts(b, "\"");
}
