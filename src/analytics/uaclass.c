/* uaclass.c - human, bot or preview from a User-Agent (uaclass.h).
 *
 * Three lists of patterns: the link previewers below, then the named crawlers
 * of crawler-user-agents, then isbot's generic rules (both in uaclass_data.c;
 * isbot's catch the HTTP libraries and "name/1.0" clients the first list
 * misses). The previewers come first because most of them are in the crawler
 * lists too and must come out as "preview".
 *
 * Two engines, chosen once by uaclass_init():
 *   Hyperscan  all 1,750-odd patterns in one database, scanned in one pass
 *              (about a microsecond for a browser's user agent); the few it
 *              cannot compile are prefiltered and confirmed by PCRE2 (see
 *              CONFIRM_ID). Needs SSSE3.
 *   PCRE2      one JIT-compiled alternation per list: right, but a user agent
 *              that matches nothing costs hundreds of microseconds, since the
 *              1,500 alternatives are tried at every offset. Used where
 *              Hyperscan cannot run (with a warning on stderr), or when the
 *              environment has PIXFLARE_UACLASS_PCRE=1 (for the tests, which
 *              check that both engines agree).
 * Both are compiled once and then only read, so threads share them; each
 * thread has its own match data and scratch space (a pthread key frees them
 * when the thread exits) and a 4-way set-associative cache of its recent
 * answers, keyed by a 64-bit XXH3 of the whole user agent and its length. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "analytics/uaclass.h"

#include "analytics/uaclass_int.h"
#include "base/err.h"

#include <hs.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* Link unfurlers: services that fetch a page or image because a person
 * shared its link, to show a card beside the message. Case-sensitive like
 * the crawler list. A service that also crawls under another name (Applebot,
 * Googlebot) is a bot under that name. */
static const char *const preview_patterns[] = {
    /* Slack: unfurling links, and its image proxy showing shared images
     * ("Slackbot 1.0" alone is its other, non-preview traffic). */
    "Slackbot-LinkExpanding",
    "Slack-ImgProxy",
    /* Discord's embeds. */
    "Discordbot",
    /* Facebook, Messenger, Instagram and Threads link cards; Apple's iMessage
     * link previews send "... facebookexternalhit/1.1 Facebot Twitterbot/1.0"
     * and so are found here too. */
    "facebookexternalhit",
    "Facebot",
    "Meta-ExternalHit",
    /* X (Twitter) cards. */
    "Twitterbot",
    /* LinkedIn. */
    "LinkedInBot",
    /* WhatsApp's previews ("WhatsApp/2.23.20.0 A"; its in-app browser is a
     * normal Mozilla/5.0 string, hence the anchor). Signal sends the same. */
    "^WhatsApp",
    /* Telegram. */
    "TelegramBot",
    /* Skype and Microsoft Teams ("SkypeUriPreview Preview/0.5"), and
     * Microsoft's newer previewer for Teams and Outlook. */
    "SkypeUriPreview",
    "MicrosoftPreview/",
    /* Pinterest: fetching the image of a link being pinned. */
    "Pinterestbot",
    "Pinterest/0\\.",
    /* Reddit's link thumbnails. */
    "redditbot",
    /* Mastodon (http.rb/x (Mastodon/4.2; +https://instance/)), and the other
     * fediverse servers' link cards: Pleroma/Akkoma, Misskey's Summaly,
     * Friendica, Lemmy, Bluesky's card service. */
    "Mastodon/",
    "Pleroma ",
    "Akkoma ",
    "SummalyBot",
    "^Friendica ",
    "^Lemmy/",
    "Bluesky Cardyb",
    "BlueskyPreviewBot",
    /* Embed services used by many sites and apps. */
    "Embedly",
    "Iframely",
    /* Google: the snippet renderer of shared links, and the proxy that
     * fetches images shown in Gmail messages. */
    "Google-PageRenderer",
    "GoogleImageProxy",
    /* Other chat and messaging apps: Viber, Snapchat, VK, Odnoklassniki,
     * KakaoTalk, Line, Zalo, Skype for Business, Mattermost, Rocket.Chat,
     * Matrix (Synapse), Discourse onebox, Chatwork, DingTalk, Keybase,
     * Yahoo Mail, Steam chat, GroupMe. */
    "^Viber",
    "Snap URL Preview",
    "SnapURLPreview",
    "vkShare",
    "OdklBot/",
    "kakaotalk-scrap",
    "Mattermost-Bot",
    "Rocket\\.Chat",
    "^Synapse \\(bot",
    "Discourse Forum Onebox",
    "Chatwork LinkPreview",
    "DingTalkBot-LinkService",
    "KeybaseBot",
    "Yahoo Link Preview",
    "SteamChatURLLookup",
    "GroupMeBot",
    /* Tools that show previews of shared links: Buffer, ClickUp, Evernote,
     * Notion, Medium, Flipboard. */
    "BufferLinkPreviewBot",
    "ClickUpLinkUnfurler",
    "EvernoteRichLinkBot",
    "^Notion/",
    "Mediumbot-MetaTagFetcher",
    "FlipboardProxy",
};

/* The per-thread cache: 512 answers in sets of 4 (a 64-byte line each), kept
 * in order of last use. Direct-mapped, two popular browsers landing in one
 * slot evicted each other on most of their requests (BENCHMARKS.md, issue
 * 20's CDN cost: 11.5% of requests missed with 72 user agents); a set
 * overflows only when five recent user agents share it. */
enum { CACHE_SLOTS = 512, CACHE_WAYS = 4 };

/* Hyperscan has no lookarounds, and six of isbot's rules use them. Such a
 * pattern goes into the database as a prefilter (HS_FLAG_PREFILTER: a looser
 * pattern that matches whenever the real one might) and is confirmed by
 * PCRE2 only on the user agents its prefilter matched, so a browser's user
 * agent, which matches none, never runs PCRE2. In the database an exact
 * pattern's match id is its class and a prefilter's is CONFIRM_ID plus its
 * index in confirm[]. */
enum { CONFIRM_MAX = 32, CONFIRM_ID = 16 };

struct confirm {
    pcre2_code *re;
    enum uaclass_kind kind;
    unsigned short list, index; /* the pattern's place (uaclass_db_confirm) */
};

/* One list of patterns and the class a match of it gives. */
struct list {
    const char *what;
    const char *const *pats;
    size_t n;
    enum uaclass_kind kind;
    int caseless;
};

/* One remembered answer; kind1 is the class + 1, so a zeroed slot is empty. */
struct slot {
    uint64_t hash;
    uint32_t len;
    uint32_t kind1;
};

/* A thread's own: PCRE2's match data, Hyperscan's scratch space, and the
 * copy of the user agent PCRE2 matches. That copy is there because PCRE2's
 * JIT reads the subject in 16-byte aligned blocks, up to 15 bytes past its
 * end (harmless as upstream sees it, never crossing a page; but Valgrind
 * reports each read past a malloc'd user agent, and a hardened malloc may
 * trap it): with 16 bytes of slack after UACLASS_MATCH_MAX (zeroed by
 * calloc), every read stays in memory of ours. */
struct tstate {
    pcre2_match_data *md;
    hs_scratch_t *scratch; /* NULL with the PCRE2 engine */
    _Alignas(16) char subject[UACLASS_MATCH_MAX + 16];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct list lists[3]; /* in the order of precedence: preview first */
/* The Hyperscan engine: every pattern in db, a scratch to clone per thread,
 * and the patterns it could only prefilter. */
static hs_database_t *db;
static hs_scratch_t *proto;
static struct confirm confirm[CONFIRM_MAX];
static size_t nconfirm;
/* The PCRE2 engine (db is NULL): one alternation per list. */
static pcre2_code *alt[3];
static pthread_key_t key;
static int ready;
/* Seeds the cache's hash, one more at each uaclass_init(): an answer
 * remembered before is not found after, even if the engine changed. */
static uint64_t generation;

static _Thread_local _Alignas(64) struct slot cache[CACHE_SLOTS];

static void tstate_free(void *p)
{
    struct tstate *t = p;
    if (t == NULL)
        return;
    pcre2_match_data_free(t->md);
    hs_free_scratch(t->scratch);
    free(t);
}

/* "(?:p1)|(?:p2)|..." of n patterns. The caller frees it. NULL on ENOMEM. */
static char *alternation(const char *const *pats, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(pats[i]) + 5;
    char *s = malloc(len), *p = s;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(pats[i]);
        if (i > 0)
            *p++ = '|';
        memcpy(p, "(?:", 3);
        memcpy(p + 3, pats[i], l);
        p[3 + l] = ')';
        p += l + 4;
    }
    *p = '\0';
    return s;
}

/* Compile and JIT one list's patterns as one alternation. On a refusal,
 * names the pattern that does not compile alone (the alternation's offset
 * is hard to read). */
static int compile(const struct list *l, pcre2_code **out, char *err, size_t errlen)
{
    int rc = 0, code;
    PCRE2_SIZE off;
    uint32_t opts = l->caseless ? PCRE2_CASELESS : 0;
    char *src = alternation(l->pats, l->n);
    if (src == NULL) {
        snprintf(err, errlen, "uaclass: %s patterns: out of memory", l->what);
        return PF_ENOMEM;
    }
    *out = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
    if (*out == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        const char *bad = "(none alone)";
        for (size_t i = 0; i < l->n; i++) {
            pcre2_code *one = pcre2_compile((PCRE2_SPTR)l->pats[i], PCRE2_ZERO_TERMINATED, opts,
                                            &code, &off, NULL);
            if (one == NULL) {
                bad = l->pats[i];
                break;
            }
            pcre2_code_free(one);
        }
        snprintf(err, errlen, "uaclass: %s patterns do not compile (%s): %s", l->what, (char *)msg,
                 bad);
        rc = PF_EFORMAT;
        goto out;
    }
    /* Without JIT (a platform PCRE2 has none for) pcre2_match interprets the
     * pattern: slower, still right, so a JIT failure is not an error. */
    (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
out:
    free(src);
    return rc;
}

/* Free both engines' patterns. */
static void drop(void)
{
    hs_free_scratch(proto);
    hs_free_database(db);
    proto = NULL;
    db = NULL;
    for (size_t i = 0; i < nconfirm; i++)
        pcre2_code_free(confirm[i].re);
    nconfirm = 0;
    for (size_t i = 0; i < 3; i++) {
        pcre2_code_free(alt[i]);
        alt[i] = NULL;
    }
}

/* Build the Hyperscan engine: every list in one database (ids: see
 * CONFIRM_ID), and the prototype scratch. Returns 0, or -1 with the reason
 * in why (the caller then falls back to PCRE2). */
static int hs_build(const hs_platform_info_t *plat, char *why, size_t whylen)
{
    int rc = -1;
    size_t total = 0, n = 0;
    for (size_t i = 0; i < 3; i++)
        total += lists[i].n;
    const char **pats = malloc(total * sizeof *pats);
    unsigned *flags = malloc(total * sizeof *flags), *ids = malloc(total * sizeof *ids);
    hs_compile_error_t *cerr = NULL;
    if (pats == NULL || flags == NULL || ids == NULL) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < 3; i++) {
        const struct list *l = &lists[i];
        for (size_t j = 0; j < l->n; j++, n++) {
            hs_expr_info_t *info;
            pats[n] = l->pats[j];
            flags[n] = HS_FLAG_SINGLEMATCH | (l->caseless ? HS_FLAG_CASELESS : 0);
            ids[n] = (unsigned)l->kind;
            if (hs_expression_info(pats[n], flags[n], &info, &cerr) == HS_SUCCESS) {
                free(info); /* hs_misc_alloc's, malloc by default */
                continue;
            }
            hs_free_compile_error(cerr);
            cerr = NULL;
            int code;
            PCRE2_SIZE off;
            pcre2_code *re =
                nconfirm == CONFIRM_MAX
                    ? NULL
                    : pcre2_compile((PCRE2_SPTR)pats[n], PCRE2_ZERO_TERMINATED,
                                    l->caseless ? PCRE2_CASELESS : 0, &code, &off, NULL);
            if (re == NULL) {
                snprintf(why, whylen, "Hyperscan cannot compile %s pattern %s", l->what, pats[n]);
                goto out;
            }
            (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
            confirm[nconfirm].re = re;
            confirm[nconfirm].kind = l->kind;
            confirm[nconfirm].list = (unsigned short)i;
            confirm[nconfirm].index = (unsigned short)j;
            flags[n] |= HS_FLAG_PREFILTER;
            ids[n] = CONFIRM_ID + (unsigned)nconfirm++;
        }
    }
    if (hs_compile_multi(pats, flags, ids, (unsigned)n, HS_MODE_BLOCK, plat, &db, &cerr) !=
        HS_SUCCESS) {
        snprintf(why, whylen, "Hyperscan refuses %s: %s",
                 cerr->expression >= 0 ? pats[cerr->expression] : "the database", cerr->message);
        db = NULL;
        goto out;
    }
    if (hs_alloc_scratch(db, &proto) != HS_SUCCESS) {
        snprintf(why, whylen, "no memory for Hyperscan's scratch space");
        proto = NULL;
        goto out;
    }
    rc = 0;
out:
    hs_free_compile_error(cerr);
    free(pats);
    free(flags);
    free(ids);
    return rc;
}

/* Load the database compiled with the binary and make its PCRE2
 * confirmations. Returns 0, or -1 (nothing kept: the caller compiles). */
static int hs_load(void)
{
    int rc = -1;
    if (&uaclass_db_len == NULL || &uaclass_db_nconfirm == NULL ||
        uaclass_db_nconfirm > CONFIRM_MAX)
        return -1;
    for (size_t i = 0; i < uaclass_db_nconfirm; i++) {
        unsigned short li = uaclass_db_confirm[i][0], pi = uaclass_db_confirm[i][1];
        int code;
        PCRE2_SIZE off;
        if (li >= 3 || pi >= lists[li].n)
            goto out;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)lists[li].pats[pi], PCRE2_ZERO_TERMINATED,
                                       lists[li].caseless ? PCRE2_CASELESS : 0, &code, &off, NULL);
        if (re == NULL)
            goto out;
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        confirm[nconfirm++] = (struct confirm){re, lists[li].kind, li, pi};
    }
    if (hs_deserialize_database((const char *)uaclass_db_bytes, uaclass_db_len, &db) !=
        HS_SUCCESS) {
        db = NULL;
        goto out;
    }
    if (hs_alloc_scratch(db, &proto) != HS_SUCCESS) {
        proto = NULL;
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        drop();
    return rc;
}

int uaclass_db_export(char **bytes, size_t *len, unsigned short out[][2], size_t *nout, char *err,
                      size_t errlen)
{
    /* For the CPU that builds (which, built from source, runs it): another
     * CPU's Hyperscan refuses a database that needs what it lacks, and
     * hs_load() then falls back to compiling. */
    hs_platform_info_t plat;
    int rc = PF_EINVAL;
    if (hs_populate_platform(&plat) != HS_SUCCESS) {
        snprintf(err, errlen, "Hyperscan cannot run on this CPU");
        return rc;
    }
    pthread_mutex_lock(&lock);
    lists[0] =
        (struct list){"preview", preview_patterns,
                      sizeof preview_patterns / sizeof preview_patterns[0], UACLASS_PREVIEW, 0};
    lists[1] = (struct list){"crawler", uaclass_data_patterns, uaclass_data_count, UACLASS_BOT, 0};
    lists[2] =
        (struct list){"generic", uaclass_data_generic, uaclass_data_generic_count, UACLASS_BOT, 1};
    *bytes = NULL;
    if (hs_build(&plat, err, errlen) == 0 && hs_serialize_database(db, bytes, len) == HS_SUCCESS) {
        for (size_t i = 0; i < nconfirm; i++) {
            out[i][0] = confirm[i].list;
            out[i][1] = confirm[i].index;
        }
        *nout = nconfirm;
        rc = 0;
    } else if (*bytes == NULL && err[0] == '\0')
        snprintf(err, errlen, "cannot serialize the Hyperscan database");
    drop();
    pthread_mutex_unlock(&lock);
    return rc;
}

int uaclass_init(char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (ready)
        goto out;
    lists[0] =
        (struct list){"preview", preview_patterns,
                      sizeof preview_patterns / sizeof preview_patterns[0], UACLASS_PREVIEW, 0};
    lists[1] = (struct list){"crawler", uaclass_data_patterns, uaclass_data_count, UACLASS_BOT, 0};
    lists[2] =
        (struct list){"generic", uaclass_data_generic, uaclass_data_generic_count, UACLASS_BOT, 1};
    const char *force = getenv("PIXFLARE_UACLASS_PCRE");
    if (force == NULL || strcmp(force, "1") != 0) {
        char why[400] = "";
        if (hs_valid_platform() != HS_SUCCESS)
            snprintf(why, sizeof why, "this CPU lacks SSSE3, which Hyperscan needs");
        else if (hs_load() != 0)
            (void)hs_build(NULL, why, sizeof why);
        if (why[0] != '\0') {
            fprintf(stderr, "pixflare: uaclass: %s; matching user agents with PCRE2 (slower)\n",
                    why);
            drop();
        }
    }
    for (size_t i = 0; rc == 0 && db == NULL && i < 3; i++)
        rc = compile(&lists[i], &alt[i], err, errlen);
    if (rc == 0 && pthread_key_create(&key, tstate_free) != 0) {
        snprintf(err, errlen, "uaclass: no thread key left");
        rc = PF_ENOMEM;
    }
    if (rc != 0) {
        drop();
        goto out;
    }
    generation++;
    ready = 1;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

void uaclass_free(void)
{
    pthread_mutex_lock(&lock);
    if (ready) {
        tstate_free(pthread_getspecific(key));
        pthread_setspecific(key, NULL);
        pthread_key_delete(key);
        drop();
        ready = 0;
    }
    pthread_mutex_unlock(&lock);
}

const char *uaclass_engine(void)
{
    if (!ready)
        return "none";
    return db != NULL ? "hyperscan" : "pcre2";
}

/* The calling thread's state, made at its first call. NULL on ENOMEM. */
static struct tstate *tstate_get(void)
{
    struct tstate *t = pthread_getspecific(key);
    if (t != NULL)
        return t;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    /* One pair of offsets: only whether it matched is read. */
    t->md = pcre2_match_data_create(1, NULL);
    if (t->md == NULL || (db != NULL && hs_clone_scratch(proto, &t->scratch) != HS_SUCCESS) ||
        pthread_setspecific(key, t) != 0) {
        tstate_free(t);
        return NULL;
    }
    return t;
}

/* Whether re matches the first len bytes of ua (len <= UACLASS_MATCH_MAX),
 * matched as t->subject (see struct tstate); a match error (none is expected
 * of these patterns: no backreferences, no nested repeats) counts as no
 * match. */
static int matches(const pcre2_code *re, const char *ua, size_t len, struct tstate *t)
{
    memcpy(t->subject, ua, len);
    return pcre2_match(re, (PCRE2_SPTR)t->subject, len, 0, 0, t->md, NULL) >= 0;
}

/* What one Hyperscan scan found: the strongest class of an exact match (the
 * classes' values are their precedence: human < bot < preview) and the
 * prefilters that matched, one bit each. */
struct found {
    unsigned kind;
    uint32_t maybe;
};

static int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags,
                    void *ctx)
{
    struct found *f = ctx;
    (void)from;
    (void)to;
    (void)flags;
    if (id >= CONFIRM_ID)
        f->maybe |= UINT32_C(1) << (id - CONFIRM_ID);
    else if (id > f->kind)
        f->kind = id;
    /* Non-zero stops the scan: a preview is the answer, whatever follows. */
    return f->kind == UACLASS_PREVIEW;
}

static enum uaclass_kind classify(const char *ua, size_t len)
{
    struct tstate *t = tstate_get();
    if (t == NULL)
        return UACLASS_HUMAN; /* out of memory: the answer that drops nothing */
    if (len > UACLASS_MATCH_MAX)
        len = UACLASS_MATCH_MAX;
    if (db == NULL) {
        for (size_t i = 0; i < 3; i++)
            if (matches(alt[i], ua, len, t))
                return lists[i].kind;
        return UACLASS_HUMAN;
    }
    struct found f = {UACLASS_HUMAN, 0};
    /* HS_SCAN_TERMINATED is the early stop above; no other error is
     * expected (the scratch is made for this database), and one would
     * leave what was found so far. */
    (void)hs_scan(db, ua, (unsigned)len, 0, t->scratch, on_match, &f);
    for (size_t i = 0; f.maybe != 0 && i < nconfirm; i++)
        if ((f.maybe >> i & 1) != 0 && confirm[i].kind > f.kind &&
            matches(confirm[i].re, ua, len, t))
            f.kind = confirm[i].kind;
    return (enum uaclass_kind)f.kind;
}

enum uaclass_kind uaclass_of(const char *ua)
{
    if (ua == NULL || ua[0] == '\0')
        return UACLASS_BOT;
    if (!ready)
        return UACLASS_HUMAN;
    size_t len = strlen(ua);
    uint64_t h = XXH3_64bits_withSeed(ua, len, generation);
    struct slot *set = &cache[h % (CACHE_SLOTS / CACHE_WAYS) * CACHE_WAYS];
    /* Two user agents of one length and one 64-bit hash would share an
     * answer: accepted. */
    for (size_t w = 0; w < CACHE_WAYS; w++) {
        if (set[w].kind1 != 0 && set[w].hash == h && set[w].len == (uint32_t)len) {
            struct slot hit = set[w];
            memmove(&set[1], &set[0], w * sizeof set[0]); /* to the front */
            set[0] = hit;
            return (enum uaclass_kind)(hit.kind1 - 1);
        }
    }
    enum uaclass_kind k = classify(ua, len);
    /* The least recently used goes. */
    memmove(&set[1], &set[0], (CACHE_WAYS - 1) * sizeof set[0]);
    set[0].hash = h;
    set[0].len = (uint32_t)len;
    set[0].kind1 = (uint32_t)k + 1;
    return k;
}

const char *uaclass_name(enum uaclass_kind kind)
{
    switch (kind) {
    case UACLASS_HUMAN:
        return "human";
    case UACLASS_BOT:
        return "bot";
    case UACLASS_PREVIEW:
        return "preview";
    }
    return "unknown";
}

int uaclass_parse(const char *name, enum uaclass_kind *out)
{
    static const enum uaclass_kind all[] = {UACLASS_HUMAN, UACLASS_BOT, UACLASS_PREVIEW};
    for (size_t i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, uaclass_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return PF_EINVAL;
}

const char *uaclass_source_version(void)
{
    return uaclass_data_version;
}

size_t uaclass_source_count(void)
{
    return uaclass_data_count;
}
