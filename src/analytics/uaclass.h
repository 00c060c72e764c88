/* uaclass.h - who asked: a person's browser, a bot, or a link preview.
 *
 * Each CDN request is put in one of three classes from its User-Agent at
 * capture; the user agent itself is then forgotten (never stored or logged):
 *
 *   preview  a link unfurler fetching a page or image because someone shared
 *            a link in a chat or social app (Slack, Discord, Facebook and
 *            iMessage, X, LinkedIn, WhatsApp, Telegram, Teams/Skype, ...):
 *            a small list in uaclass.c, checked first;
 *   bot      any other automated client: the patterns of the npm package
 *            crawler-user-agents (MIT; third_party/crawler-user-agents/, refreshed
 *            by scripts/uaclass_refresh.sh), and a missing or empty user
 *            agent (browsers always send one);
 *   human    everything else.
 *
 * Matching uses Hyperscan (every pattern in one database, about a microsecond
 * a user agent), or PCRE2 where Hyperscan cannot run (a CPU without SSSE3:
 * a warning on stderr at init; hundreds of microseconds a new user agent),
 * and a small per-thread cache of recent answers, so a repeated user agent
 * costs a hash. Only the first UACLASS_MATCH_MAX bytes are matched (bot names
 * come early; a long unique user agent cannot make a request expensive).
 * PIXFLARE_UACLASS_PCRE=1 in the environment at init forces PCRE2: for the
 * tests, which run both engines.
 *
 * Lifecycle: uaclass_init() once at startup before the threads that classify
 * start, uaclass_free() at shutdown after they have stopped. Between the two,
 * uaclass_of() may be called from any number of threads. Nothing to free for
 * callers: every string returned is static. */
#ifndef PF_UACLASS_H
#define PF_UACLASS_H

#include <stddef.h>

enum uaclass_kind { UACLASS_HUMAN = 0, UACLASS_BOT = 1, UACLASS_PREVIEW = 2 };

/* Bytes of a user agent matched against the patterns. */
#define UACLASS_MATCH_MAX 512

/* Compile the patterns. Idempotent (a second call returns 0 at once) and
 * serialised by a lock. Returns 0, or PF_ENOMEM / PF_EFORMAT with a reason in
 * err (which pattern PCRE2 refused). Hyperscan failing (no SSSE3, a pattern
 * it refuses) is no error: PCRE2 is used, with one line on stderr. */
int uaclass_init(char *err, size_t errlen);

/* Free the patterns and the calling thread's match data and scratch space
 * (other threads' are freed when they exit). uaclass_init() may be called
 * again after. */
void uaclass_free(void);

/* The engine uaclass_init() chose: "hyperscan" or "pcre2" ("none" before
 * it or after uaclass_free()). */
const char *uaclass_engine(void);

/* The class of a user agent (a C string, any bytes). NULL or "" is BOT.
 * Thread-safe. Before uaclass_init() (or after a failed one) only that rule
 * applies: every other user agent is HUMAN. */
enum uaclass_kind uaclass_of(const char *ua);

/* "human", "bot" or "preview" ("unknown" for a value outside the enum). */
const char *uaclass_name(enum uaclass_kind kind);

/* The class named by "human", "bot" or "preview". OUT: *out. Returns 0, or
 * PF_EINVAL for any other name. */
int uaclass_parse(const char *name, enum uaclass_kind *out);

/* The crawler-user-agents version and pattern count compiled in. */
const char *uaclass_source_version(void);
size_t uaclass_source_count(void);

#endif
