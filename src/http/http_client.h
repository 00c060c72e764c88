/* http_client.h - one HTTP GET, for the command line's probes (`pixflare
 * health`): libcurl, a timeout, the status and the start of the body. The
 * server's own requests never come here. */
#ifndef PF_HTTP_CLIENT_H
#define PF_HTTP_CLIENT_H

#include <stddef.h>

/* GET `url` within `timeout_ms` (connect included). OUT: *status, and the
 * body's first bytes, NUL-terminated, in body[0..cap). Returns 0 with any
 * status, or PF_EUNAVAIL with libcurl's reason in err (refused, timed out,
 * ...), or PF_ENOMEM. */
int http_client_get(const char *url, int timeout_ms, int *status, char *body, size_t cap, char *err,
                    size_t errlen);

#endif
