/* http_client.c - see http_client.h. */
#include "http/http_client.h"

#include "base/err.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

struct sink {
    char *buf;
    size_t cap, len;
};

/* Keep what fits; take (and drop) the rest so the transfer completes. */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t bytes = size * n;
    size_t room = s->cap - 1 - s->len;
    size_t take = bytes < room ? bytes : room;
    memcpy(s->buf + s->len, data, take);
    s->len += take;
    s->buf[s->len] = '\0';
    return bytes;
}

int http_client_get(const char *url, int timeout_ms, int *status, char *body, size_t cap, char *err,
                    size_t errlen)
{
    char why[CURL_ERROR_SIZE] = "";
    struct sink s = {body, cap, 0};
    int rc = 0;
    if (cap == 0)
        return PF_EINVAL;
    body[0] = '\0';
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return PF_ENOMEM;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* a probe of this host, never via a proxy */
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", why[0] ? why : curl_easy_strerror(cc));
        rc = PF_EUNAVAIL;
    } else {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        *status = (int)code;
    }
    curl_easy_cleanup(c);
    return rc;
}
