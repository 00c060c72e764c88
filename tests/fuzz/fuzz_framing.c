/* fuzz_framing.c - fuzzes the request framing checks of
 * src/http/http_framing.c: http_framing_add(), http_framing_target_ok() and
 * http_framing_check(), fed what libmicrohttpd would hand the handler.
 *
 * Input layout: byte 0's low bit says HTTP/1.1; the rest is split at '\n':
 * the first piece is the target, each later one a header line, its name up
 * to the first ':' (a line without one has an empty value) and its first
 * NUL, as libmicrohttpd's names end there. Values are passed with their
 * lengths (NULs included). Invariants checked:
 *  - the counts equal a reference count of Content-Length, Transfer-Encoding
 *    and Host lines (any case), and header_bytes adds up;
 *  - the target verdict agrees with a reference (no byte <= 0x20 or 0x7f);
 *  - the check answers 0, 400 or 501, with a code and message when not 0;
 *    it is never 0 with two Content-Lengths, with Content-Length and
 *    Transfer-Encoding together, with a name that is not a token, or for
 *    HTTP/1.1 without exactly one Host. */
#include "fuzz_check.h"
#include "http/http_framing.h"

#include <strings.h>

static int is_name(const char *n, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(n, want, len) == 0;
}

static int tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int http11 = data[0] & 1;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t tlen = nl ? (size_t)(nl - p) : (size_t)(end - p);
    char *target = fuzz_cstr((const uint8_t *)p, tlen);
    int ref_target = 1;
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)target[i] <= 0x20 || target[i] == 0x7f)
            ref_target = 0;
    FUZZ_CHECK(!http_framing_target_ok(target, tlen) == !ref_target);

    struct http_framing f;
    memset(&f, 0, sizeof(f));
    int cl = 0, te = 0, hosts = 0, bad_name = 0;
    size_t bytes = 0, nkept = 0;
    char *kept[128]; /* values live until the check: f keeps a pointer */
    p = nl ? nl + 1 : end;
    while (p < end && nkept < 128) {
        nl = memchr(p, '\n', (size_t)(end - p));
        size_t llen = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *colon = memchr(p, ':', llen);
        size_t nlen = colon ? (size_t)(colon - p) : llen;
        const char *v = colon ? colon + 1 : p + llen;
        size_t vlen = colon ? llen - nlen - 1 : 0;
        char *name = fuzz_cstr((const uint8_t *)p, nlen),
             *value = fuzz_cstr((const uint8_t *)v, vlen);
        nlen = strlen(name); /* libmicrohttpd's names end at a NUL */
        http_framing_add(&f, name, nlen, value, vlen);
        cl += is_name(name, nlen, "Content-Length");
        te += is_name(name, nlen, "Transfer-Encoding");
        hosts += is_name(name, nlen, "Host");
        int token = nlen > 0;
        for (size_t i = 0; i < nlen; i++)
            token = token && tchar((unsigned char)name[i]);
        bad_name |= !token;
        bytes += nlen + vlen + 4;
        free(name);
        kept[nkept++] = value;
        p = nl ? nl + 1 : end;
    }
    FUZZ_CHECK(f.content_lengths == cl && f.transfer_encodings == te && f.hosts == hosts);
    FUZZ_CHECK(f.header_bytes == bytes);
    if (ref_target) {
        const char *code = NULL, *message = NULL;
        int v = http_framing_check(&f, target, http11, &code, &message);
        FUZZ_CHECK(v == 0 || v == 400 || v == 501);
        if (v != 0)
            FUZZ_CHECK(code != NULL && code[0] && message != NULL && message[0]);
        if (cl >= 2 || (cl && te) || (http11 && hosts != 1) || bad_name)
            FUZZ_CHECK(v != 0);
    }
    for (size_t i = 0; i < nkept; i++)
        free(kept[i]);
    free(target);
    return 0;
}
