/* uniq.c - see uniq.h.
 *
 * Two salt slots, each under a sequence lock: the writer (the flusher) makes
 * the sequence odd, writes the day and the key, makes it even again; a
 * reader copies the day and key between two reads of an even, unchanged
 * sequence, else gives up (0: that request adds no point, which can only
 * happen in the instant a slot rotates, once a day). The key words are
 * atomics (relaxed), so that the copy is race-free as C and ThreadSanitizer
 * see it. */
#include "analytics/uniq.h"

#include "base/err.h"
#include "base/hll.h"
#include "base/siphash.h"
#include "base/timeutil.h"
#include "store/db.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The bytes hashed: the address, then the user agent up to this much (a
 * longer one is as distinct by its first kilobyte). */
#define UA_MAX 1024

struct slot {
    atomic_uint seq;
    atomic_llong day; /* days since 1970-01-01; -1: empty */
    atomic_ullong key[2];
};

struct uniq {
    struct slot slot[2];
    int64_t purged_before; /* the day before which the database holds no salt */
};

int uniq_new(struct uniq **out)
{
    struct uniq *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return PF_ENOMEM;
    for (int i = 0; i < 2; i++)
        atomic_init(&u->slot[i].day, -1);
    u->purged_before = -1;
    *out = u;
    return 0;
}

static void slot_set(struct slot *s, int64_t day, const uint8_t key[16])
{
    uint64_t k[2] = {0, 0};
    if (key != NULL)
        memcpy(k, key, 16);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel); /* odd: being written */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->day, day, memory_order_relaxed);
    atomic_store_explicit(&s->key[0], k[0], memory_order_relaxed);
    atomic_store_explicit(&s->key[1], k[1], memory_order_relaxed);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_release); /* even: done */
    memset(k, 0, sizeof(k));
    __asm__ volatile("" : : "r"(k) : "memory"); /* keep the wipe */
}

void uniq_free(struct uniq *u)
{
    if (u == NULL)
        return;
    for (int i = 0; i < 2; i++)
        slot_set(&u->slot[i], -1, NULL);
    free(u);
}

/* Copy slot s's key if it holds `day`. */
static int slot_get(const struct slot *s, int64_t day, uint8_t key[16])
{
    struct slot *m = (struct slot *)s; /* atomics are read through a non-const pointer */
    unsigned a = atomic_load_explicit(&m->seq, memory_order_acquire);
    if (a & 1u)
        return 0;
    int64_t d = atomic_load_explicit(&m->day, memory_order_relaxed);
    uint64_t k[2] = {atomic_load_explicit(&m->key[0], memory_order_relaxed),
                     atomic_load_explicit(&m->key[1], memory_order_relaxed)};
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&m->seq, memory_order_relaxed) != a || d != day)
        return 0;
    memcpy(key, k, 16);
    return 1;
}

uint32_t uniq_point(const struct uniq *u, int64_t ts_ms, const void *addr, size_t addrlen,
                    const char *ua)
{
    uint8_t key[16], buf[16 + UA_MAX];
    int64_t day = ts_ms / 86400000;
    uint32_t point = 0;
    if (u == NULL || addrlen > 16 ||
        !(slot_get(&u->slot[0], day, key) || slot_get(&u->slot[1], day, key)))
        return 0;
    size_t n = addrlen, ualen = ua != NULL ? strnlen(ua, UA_MAX) : 0;
    memcpy(buf, addr, addrlen);
    memcpy(buf + n, ua, ualen);
    n += ualen;
    uint16_t idx;
    uint8_t rank;
    hll_point(siphash_24(key, buf, n), &idx, &rank);
    point = (uint32_t)idx << 8 | rank;
    memset(key, 0, sizeof(key));
    __asm__ volatile("" : : "r"(key) : "memory");
    return point;
}

int uniq_refresh(struct uniq *u, struct db *db, int64_t now, char *err, size_t errlen)
{
    int64_t today = now / 86400;
    uint8_t salt[16];
    char date[11];
    int rc = 0;
    /* Forget what has ended; fetch today's and tomorrow's into free slots. */
    for (int i = 0; i < 2; i++) {
        int64_t d = atomic_load(&u->slot[i].day);
        if (d != -1 && d < today)
            slot_set(&u->slot[i], -1, NULL);
    }
    for (int64_t day = today; rc == 0 && day <= today + 1; day++) {
        if (atomic_load(&u->slot[0].day) == day || atomic_load(&u->slot[1].day) == day)
            continue;
        int free_slot = atomic_load(&u->slot[0].day) == -1 ? 0 : 1;
        timeutil_format_date(day * 86400, date);
        rc = db_salt_get(db, date, salt, err, errlen);
        if (rc == 0)
            slot_set(&u->slot[free_slot], day, salt);
    }
    if (rc == 0 && u->purged_before != today) {
        timeutil_format_date(today * 86400, date);
        rc = db_salt_purge_before(db, date, NULL, err, errlen);
        if (rc == 0)
            u->purged_before = today;
    }
    memset(salt, 0, sizeof(salt));
    __asm__ volatile("" : : "r"(salt) : "memory");
    return rc;
}
