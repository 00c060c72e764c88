/* uaclass.c - human, bot or preview from a User-Agent (uaclass.h).
 *
 * Three PCRE2 patterns, each one alternation: the link previewers below, then
 * the named crawlers of crawler-user-agents, then isbot's generic rules (both
 * in uaclass_data.c; isbot's catch the HTTP libraries and "name/1.0" clients
 * the first list misses). The previewers come first because most of them are
 * in the crawler lists too and must come out as "preview".
 * Both are JIT-compiled once by uaclass_init() and then only read, so threads
 * share them; each thread has its own match data (a pthread key frees it when
 * the thread exits) and a direct-mapped cache of its recent answers, keyed by
 * a 64-bit XXH3 of the whole user agent and its length. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "analytics/uaclass.h"

#include "analytics/uaclass_int.h"
#include "base/err.h"

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

enum { CACHE_SLOTS = 512 };

/* One remembered answer; kind1 is the class + 1, so a zeroed slot is empty. */
struct slot {
    uint64_t hash;
    uint32_t len;
    uint32_t kind1;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pcre2_code *preview_re, *bot_re, *generic_re;
static pthread_key_t md_key;
static int ready;

static _Thread_local struct slot cache[CACHE_SLOTS];

static void md_destroy(void *md)
{
    pcre2_match_data_free(md);
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

/* Compile and JIT one class's patterns. On a refusal, names the pattern that
 * does not compile alone (the alternation's offset is hard to read). */
static int compile(const char *what, const char *const *pats, size_t n, uint32_t opts,
                   pcre2_code **out, char *err, size_t errlen)
{
    int rc = 0, code;
    PCRE2_SIZE off;
    char *src = alternation(pats, n);
    if (src == NULL) {
        snprintf(err, errlen, "uaclass: %s patterns: out of memory", what);
        return PF_ENOMEM;
    }
    *out = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
    if (*out == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        const char *bad = "(none alone)";
        for (size_t i = 0; i < n; i++) {
            pcre2_code *one =
                pcre2_compile((PCRE2_SPTR)pats[i], PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
            if (one == NULL) {
                bad = pats[i];
                break;
            }
            pcre2_code_free(one);
        }
        snprintf(err, errlen, "uaclass: %s patterns do not compile (%s): %s", what, (char *)msg,
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

int uaclass_init(char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (ready)
        goto out;
    rc = compile("preview", preview_patterns, sizeof preview_patterns / sizeof preview_patterns[0],
                 0, &preview_re, err, errlen);
    if (rc == 0)
        rc = compile("crawler", uaclass_data_patterns, uaclass_data_count, 0, &bot_re, err, errlen);
    if (rc == 0)
        rc = compile("generic", uaclass_data_generic, uaclass_data_generic_count, PCRE2_CASELESS,
                     &generic_re, err, errlen);
    if (rc == 0 && pthread_key_create(&md_key, md_destroy) != 0) {
        snprintf(err, errlen, "uaclass: no thread key left");
        rc = PF_ENOMEM;
    }
    if (rc != 0) {
        pcre2_code_free(preview_re);
        pcre2_code_free(bot_re);
        pcre2_code_free(generic_re);
        preview_re = bot_re = generic_re = NULL;
        goto out;
    }
    ready = 1;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

void uaclass_free(void)
{
    pthread_mutex_lock(&lock);
    if (ready) {
        pcre2_match_data_free(pthread_getspecific(md_key));
        pthread_setspecific(md_key, NULL);
        pthread_key_delete(md_key);
        pcre2_code_free(preview_re);
        pcre2_code_free(bot_re);
        pcre2_code_free(generic_re);
        preview_re = bot_re = generic_re = NULL;
        ready = 0;
    }
    pthread_mutex_unlock(&lock);
}

/* Whether re matches the first len bytes of ua; a match error (none is
 * expected of these patterns: no backreferences, no nested repeats) counts
 * as no match. */
static int matches(const pcre2_code *re, const char *ua, size_t len, pcre2_match_data *md)
{
    return pcre2_match(re, (PCRE2_SPTR)ua, len, 0, 0, md, NULL) >= 0;
}

static enum uaclass_kind classify(const char *ua, size_t len)
{
    pcre2_match_data *md = pthread_getspecific(md_key);
    if (md == NULL) {
        /* One pair of offsets: only whether it matched is read. */
        md = pcre2_match_data_create(1, NULL);
        if (md == NULL || pthread_setspecific(md_key, md) != 0) {
            pcre2_match_data_free(md);
            return UACLASS_HUMAN; /* out of memory: the answer that drops nothing */
        }
    }
    if (len > UACLASS_MATCH_MAX)
        len = UACLASS_MATCH_MAX;
    if (matches(preview_re, ua, len, md))
        return UACLASS_PREVIEW;
    if (matches(bot_re, ua, len, md) || matches(generic_re, ua, len, md))
        return UACLASS_BOT;
    return UACLASS_HUMAN;
}

enum uaclass_kind uaclass_of(const char *ua)
{
    if (ua == NULL || ua[0] == '\0')
        return UACLASS_BOT;
    if (!ready)
        return UACLASS_HUMAN;
    size_t len = strlen(ua);
    uint64_t h = XXH3_64bits(ua, len);
    struct slot *s = &cache[h % CACHE_SLOTS];
    /* The patterns are compiled in, so a remembered answer stays right
     * across uaclass_free() and uaclass_init(). Two user agents of one
     * length and one 64-bit hash would share an answer: accepted. */
    if (s->kind1 != 0 && s->hash == h && s->len == (uint32_t)len)
        return (enum uaclass_kind)(s->kind1 - 1);
    enum uaclass_kind k = classify(ua, len);
    s->hash = h;
    s->len = (uint32_t)len;
    s->kind1 = (uint32_t)k + 1;
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
