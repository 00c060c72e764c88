/* http_framing.c - see http_framing.h. */
#include "http/http_framing.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2: tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

void http_framing_add(struct http_framing *f, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    f->header_bytes += name_len + value_len + 4;
    if (name_len == 0)
        f->bad_name = 1;
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)name[i]))
            f->bad_name = 1;
    for (size_t i = 0; value != NULL && i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            f->bad_value = 1;
    }
    if (strcasecmp(name, "Content-Length") == 0) {
        f->content_lengths++;
    } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
        f->transfer_encodings++;
        f->transfer_encoding = value != NULL ? value : "";
    } else if (strcasecmp(name, "Host") == 0) {
        f->hosts++;
    }
}

int http_framing_target_ok(const char *target, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Origin form ("/path"), or the absolute form of an http(s) URI with an
 * authority (RFC 9112 3.2.1, 3.2.2: a server must accept the latter). The
 * asterisk and authority forms are for OPTIONS and CONNECT, which we do
 * not serve. */
static int target_form_ok(const char *t)
{
    const char *p = NULL;
    if (t[0] == '/')
        return 1;
    if (strncasecmp(t, "http://", 7) == 0)
        p = t + 7;
    else if (strncasecmp(t, "https://", 8) == 0)
        p = t + 8;
    return p != NULL && *p != '\0' && *p != '/';
}

static int fail(int status, const char *code, const char *msg, const char **c, const char **m)
{
    *c = code;
    *m = msg;
    return status;
}

/* The Transfer-Encoding verdict (RFC 9112 6.1, 6.3): libmicrohttpd takes
 * a body as chunked only when the value is exactly "chunked" (any case),
 * and otherwise reads it to the end of the connection; anything else is
 * refused so that nothing after it is read as a request. */
static int check_coding(const char *te, const char **c, const char **m)
{
    if (strcasecmp(te, "chunked") == 0)
        return 0;
    /* The final coding: after the last comma, without parameters. */
    const char *last = strrchr(te, ',');
    last = last != NULL ? last + 1 : te;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t n = strcspn(last, " \t;");
    int final_chunked = n == 7 && strncasecmp(last, "chunked", 7) == 0;
    if (!final_chunked)
        return fail(400, "BAD_REQUEST", "the final transfer coding must be chunked", c, m);
    if (strchr(te, ',') != NULL)
        return fail(501, "NOT_IMPLEMENTED", "no transfer coding but chunked is supported", c, m);
    return fail(400, "BAD_REQUEST", "malformed Transfer-Encoding", c, m);
}

int http_framing_check(const struct http_framing *f, const char *target, int http11,
                       const char **code, const char **message)
{
    if (!target_form_ok(target))
        return fail(400, "BAD_REQUEST", "the request target must be a path or an http URI", code,
                    message);
    if (f->bad_name)
        return fail(400, "BAD_REQUEST", "a header name is not a token (space before the colon?)",
                    code, message);
    if (f->bad_value)
        return fail(400, "BAD_REQUEST", "a header value holds a control character", code, message);
    if (f->hosts > 1 || (http11 && f->hosts == 0))
        return fail(400, "BAD_REQUEST", "an HTTP/1.1 request needs exactly one Host header", code,
                    message);
    if (f->content_lengths > 1)
        return fail(400, "BAD_REQUEST", "more than one Content-Length", code, message);
    if (f->transfer_encodings > 0 && f->content_lengths > 0)
        return fail(400, "BAD_REQUEST", "both Content-Length and Transfer-Encoding", code, message);
    if (f->transfer_encodings > 1)
        return fail(400, "BAD_REQUEST", "more than one Transfer-Encoding", code, message);
    if (f->transfer_encodings == 1)
        return check_coding(f->transfer_encoding, code, message);
    return 0;
}
